//! A fake of the Brave Search API's web search, for offline tests of the `web_search`
//! tool.
//!
//! Written from the protocol notes (`protocols.md`, "Tool back ends") and Brave's public
//! API documentation, not from Pincer's client. It answers like the real service:
//!
//! - `GET /res/v1/web/search?q=…` with `X-Subscription-Token: KEY`: 200
//!   `{"type":"search","query":{"original":q,…},"web":{"type":"search","results":[{"title",
//!   "url","description","age"?,"page_age"?,…}],…}}`, at most `count` results (1–20,
//!   default 20, Brave's documented default), taken from [`Knobs::results`] or, when none
//!   are scripted, from a default set built from the query;
//! - the token is checked first: missing or unknown is 401 (status configurable with
//!   [`Knobs::invalid_key_status`]) `SUBSCRIPTION_TOKEN_INVALID`, a key in
//!   [`Knobs::forbidden_keys`] is 403, each in Brave's error shape
//!   `{"type":"ErrorResponse","error":{"id","status","code","detail","meta"},"time"}`;
//! - then the rate limiter: while [`Knobs::rate_limited_requests`] is non-zero, each
//!   authenticated request uses one up and is 429 `RATE_LIMITED` with Brave's rate-limit
//!   headers, one figure per window as Brave documents them: `X-RateLimit-Reset: 1, 1419704`
//!   (seconds until the per-second window, then the monthly one, starts again);
//! - then the parameters: a missing or empty `q`, `q` over 400 characters or 50 words,
//!   `count` outside 1–20 or not an integer, `freshness` other than `pd` `pw` `pm` `py` or
//!   `YYYY-MM-DDtoYYYY-MM-DD` are 422 `VALIDATION` "Unable to validate request parameter(s)"
//!   with one entry per bad parameter in `meta.errors` (pydantic's `type`, `loc`, `msg`,
//!   `input`), as Brave lists them.
//!
//! Failures are scripted with [`Knobs`]: [`Knobs::latency`] (a slow upstream),
//! [`Knobs::rate_limited_requests`] (429s), [`Knobs::garbage_bodies`] (a 200 whose body is
//! cut-off JSON). Every request is recorded ([`BraveFake::requests`]) with its decoded
//! query pairs and headers, so a test asserts exactly what reached the upstream.
//!
//! Deliberate simplifications: `country`, `search_lang` and `ui_lang` are recorded but not
//! checked against Brave's lists; `offset`, `safesearch` and the other optional parameters
//! are accepted and ignored; other paths are 404 and other methods 405, in the same error
//! shape; no `mixed`, `news`, `videos` or `discussions` sections. Real Brave has been seen
//! answering a bad token with 422 rather than 401: set [`Knobs::invalid_key_status`] to 422
//! to test a client against that.
//!
//! ```no_run
//! use pincer_fakes::brave::{BraveFake, TEST_KEY, WebResult};
//!
//! let fake = BraveFake::start();
//! fake.set(|k| k.results = Some(vec![WebResult::new("Rust", "https://www.rust-lang.org/", "A language")]));
//! fake.rate_limit(1, 2);
//! // point the client at fake.base_url() with TEST_KEY: the first search is 429
//! // (X-RateLimit-Reset: 2, 1419704), the next one answers the scripted result.
//! # let _ = fake.requests();
//! ```

mod server;
mod state;
mod wire;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use self::state::Shared;
use crate::serve::{Listener, Runtime, Server};

/// A key the fake accepts unless [`Knobs::valid_keys`] drops it.
pub const TEST_KEY: &str = "brave-test-key";

/// The web search path, under [`BraveFake::base_url`].
pub const SEARCH_PATH: &str = "/res/v1/web/search";

/// Results per answer when `count` is absent (Brave's documented default), and the largest
/// `count` accepted.
pub const MAX_COUNT: usize = 20;

/// Seconds until the monthly window resets, in the second figure of `X-RateLimit-Reset`
/// by default (the example in Brave's rate-limit documentation).
pub const DEFAULT_MONTHLY_RESET_SECS: u64 = 1_419_704;

/// Runtime-adjustable behaviour of the fake. Change it with [`BraveFake::set`]; a change
/// applies to requests that arrive afterwards. The two countdowns
/// ([`Knobs::rate_limited_requests`], [`Knobs::garbage_bodies`]) are used up by the fake.
#[derive(Debug, Clone, PartialEq)]
pub struct Knobs {
    /// Keys accepted in `X-Subscription-Token`. Default `[TEST_KEY]`.
    pub valid_keys: Vec<String>,
    /// Keys that exist but may not use web search: 403. Checked before
    /// [`Knobs::valid_keys`]. Default empty.
    pub forbidden_keys: Vec<String>,
    /// Status for a missing or unknown key. Default 401 (the protocol notes); real Brave
    /// has been seen answering 422 with the same `SUBSCRIPTION_TOKEN_INVALID` body.
    pub invalid_key_status: u16,
    /// The results to answer, trimmed to `count`. `None`: a default set of five built from
    /// the query (some with `age`/`page_age`, some without). Default `None`.
    pub results: Option<Vec<WebResult>>,
    /// Wait before answering each request. Default zero.
    pub latency: Duration,
    /// The next this many authenticated requests are 429 (each one uses one up). Default 0.
    pub rate_limited_requests: u32,
    /// First figure of `X-RateLimit-Reset` on a 429: seconds until the per-second window
    /// resets. Default 1.
    pub rate_limit_reset_secs: u64,
    /// Second figure of `X-RateLimit-Reset` (the monthly window); `None` sends the first
    /// figure alone. Default `Some(DEFAULT_MONTHLY_RESET_SECS)`, as Brave sends both.
    pub rate_limit_monthly_reset_secs: Option<u64>,
    /// The next this many answers that would be 200 are 200 with a body cut off mid-JSON
    /// instead (each one uses one up). Default 0.
    pub garbage_bodies: u32,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            valid_keys: vec![TEST_KEY.to_owned()],
            forbidden_keys: Vec::new(),
            invalid_key_status: 401,
            results: None,
            latency: Duration::ZERO,
            rate_limited_requests: 0,
            rate_limit_reset_secs: 1,
            rate_limit_monthly_reset_secs: Some(DEFAULT_MONTHLY_RESET_SECS),
            garbage_bodies: 0,
        }
    }
}

/// One web result as Brave returns it in `web.results`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebResult {
    /// `title`.
    pub title: String,
    /// `url`.
    pub url: String,
    /// `description` (a snippet; Brave marks matches with `<strong>`).
    pub description: String,
    /// `age`, a human date such as `"2 days ago"` or `"March 3, 2026"`; omitted when `None`.
    pub age: Option<String>,
    /// `page_age`, an ISO 8601 date-time such as `"2026-03-03T10:00:00"`; omitted when
    /// `None`.
    pub page_age: Option<String>,
}

/// One HTTP request as the fake saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// The HTTP method.
    pub method: String,
    /// The path as sent (still percent-encoded), without the query.
    pub path: String,
    /// The raw query string; empty when there is none.
    pub query: String,
    /// The query's pairs, decoded, in the order sent (repeats kept).
    pub params: Vec<(String, String)>,
    /// `X-Subscription-Token` as sent, if any.
    pub token: Option<String>,
    /// Every header, by lowercase name (repeats joined with `", "`).
    pub headers: BTreeMap<String, String>,
    /// The status answered; `None` while waiting ([`Knobs::latency`]) or when the client
    /// went away first.
    pub status: Option<u16>,
    /// When it arrived.
    pub at: Instant,
}

/// A running fake Brave Search API on `127.0.0.1`. Dropping it stops the server and closes
/// every connection.
#[derive(Debug)]
pub struct BraveFake {
    server: Server,
    shared: Arc<Shared>,
}

// === impl WebResult ===

impl WebResult {
    /// A result with no `age` or `page_age`.
    pub fn new(title: &str, url: &str, description: &str) -> WebResult {
        WebResult {
            title: title.to_owned(),
            url: url.to_owned(),
            description: description.to_owned(),
            age: None,
            page_age: None,
        }
    }

    /// The same result with `age` and `page_age` set.
    pub fn dated(mut self, age: &str, page_age: &str) -> WebResult {
        self.age = Some(age.to_owned());
        self.page_age = Some(page_age.to_owned());
        self
    }
}

// === impl Recorded ===

impl Recorded {
    /// The last value of query parameter `name`, if sent: the one the fake validates, as
    /// FastAPI does (Brave's pydantic-shaped errors suggest it runs on it; unconfirmed).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A header's value by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

// === impl BraveFake ===

impl BraveFake {
    /// Starts a fake with default [`Knobs`]; returns once the port is bound. Works from sync
    /// code and from either flavour of `#[tokio::test]`.
    ///
    /// # Panics
    /// When no loopback port can be bound or the runtime cannot start.
    pub fn start() -> BraveFake {
        BraveFake::start_with(Knobs::default())
    }

    /// Starts a fake with the given knobs; returns once the port is bound.
    ///
    /// # Panics
    /// When no loopback port can be bound or the runtime cannot start.
    pub fn start_with(knobs: Knobs) -> BraveFake {
        let shared = Arc::new(Shared::new(knobs));
        let routes = server::routes(Arc::clone(&shared));
        let server = Listener::bind("brave").serve(Runtime::CurrentThread, routes);
        BraveFake { server, shared }
    }

    /// The base URL that replaces `https://api.search.brave.com`: `http://127.0.0.1:PORT`,
    /// no trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// The full web search endpoint: `{base_url}/res/v1/web/search`.
    pub fn search_url(&self) -> String {
        format!("{}{SEARCH_PATH}", self.base_url())
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Changes the knobs; applies to requests that arrive afterwards.
    pub fn set<F: FnOnce(&mut Knobs)>(&self, f: F) {
        f(&mut self.shared.lock().knobs);
    }

    /// A copy of the current knobs (with the countdowns as far as they have run).
    pub fn knobs(&self) -> Knobs {
        self.shared.lock().knobs.clone()
    }

    /// The next `requests` authenticated requests are 429, `X-RateLimit-Reset` starting
    /// with `reset_secs`.
    pub fn rate_limit(&self, requests: u32, reset_secs: u64) {
        self.set(|k| {
            k.rate_limited_requests = requests;
            k.rate_limit_reset_secs = reset_secs;
        });
    }

    /// The next answer that would be 200 carries a body cut off mid-JSON.
    pub fn garbage_once(&self) {
        self.set(|k| k.garbage_bodies = 1);
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().records.clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.clear();
    }
}
