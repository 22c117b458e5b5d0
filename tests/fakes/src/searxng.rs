//! A fake of a self-hosted SearXNG instance's search endpoint, for offline tests of the
//! `web_search` tool.
//!
//! Written from the protocol notes (`protocols.md`, "Tool back ends") and SearXNG's
//! documented search API, not from Pincer's client. It answers like a real instance:
//!
//! - `GET /search?q=…&format=json`, or `POST /search` with the same parameters as
//!   `application/x-www-form-urlencoded` data (form fields win over query-string ones, as
//!   SearXNG merges them): 200 `{"query","number_of_results","results":[{"url","title",
//!   "content","engine","publishedDate",…}],"answers":[],"corrections":[],"infoboxes":[],
//!   "suggestions":[…],"unresponsive_engines":[…]}` with every result of
//!   [`Knobs::results`] (SearXNG has no result-count parameter) or, when none are
//!   scripted, a default set built from the query;
//! - `format` missing or unknown is the HTML results page (`text/html`), as SearXNG falls
//!   back to `html`; `json` with [`Knobs::json_disabled`] is 403 with Flask's HTML
//!   "Forbidden" page, as an instance whose `search.formats` lacks `json`; `csv` and `rss`
//!   are always 403 (the fake enables neither; a stock `settings.yml` enables only `html`);
//! - the parameters are checked as SearXNG's web adapter does, the first bad one answering
//!   400 `{"error":"Invalid value \"x\" for parameter pageno"}` (`"Empty pageno
//!   parameter"` when empty) in JSON: `pageno` a positive integer, `language` `auto` or
//!   `xx[-YY]`, `safesearch` 0–2, `time_range` empty, `day`, `week`, `month` or `year`. A
//!   missing or empty `q` is 400 `{"error":"No query"}` (the HTML format shows the start
//!   page instead). `categories` and `engines` (comma-separated) are recorded; `engines`
//!   names the engines of the default results.
//!
//! `time_range=week` is accepted although the protocol notes list only `day`, `month` and
//! `year`: real SearXNG accepts `week` (its web adapter allows `day`, `week`, `month`,
//! `year`), and a fake that refused it would fail a client that works in production.
//!
//! Failures are scripted with [`Knobs`]: [`Knobs::json_disabled`], [`Knobs::latency`],
//! [`Knobs::rate_limited_requests`] (429 "Too Many Requests", as SearXNG's limiter answers)
//! and [`Knobs::unresponsive_engines`]. Every request is recorded ([`SearxngFake::requests`])
//! with its query pairs, form pairs and the merged parameters SearXNG reads.
//!
//! Deliberate simplifications: no bang (`!go`) or `:lang` parsing (`query` echoes `q`);
//! unknown engines and categories are not filtered out; `answers`, `corrections` and
//! `infoboxes` are always empty; multipart forms are not read; the HTML pages are minimal.
//!
//! ```no_run
//! use pincer_fakes::searxng::{SearxResult, SearxngFake};
//!
//! let fake = SearxngFake::start();
//! fake.set(|k| k.results = Some(vec![SearxResult::new("Rust", "https://www.rust-lang.org/", "A language")]));
//! // point the client at fake.base_url(); then:
//! fake.set(|k| k.json_disabled = true); // the next JSON search is 403
//! # let _ = fake.requests();
//! ```

mod server;
mod wire;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, MutexGuard};

use crate::serve::{Listener, Runtime, Server};

/// The search path, under [`SearxngFake::base_url`].
pub const SEARCH_PATH: &str = "/search";

/// Runtime-adjustable behaviour of the fake. Change it with [`SearxngFake::set`]; a change
/// applies to requests that arrive afterwards. [`Knobs::rate_limited_requests`] is used up
/// by the fake.
#[derive(Debug, Clone, PartialEq)]
pub struct Knobs {
    /// The instance does not serve the `json` format: such requests are 403. Default false.
    pub json_disabled: bool,
    /// The results to answer, all of them. `None`: a default set of five built from the
    /// query (the first two with `publishedDate`, the others `null`). Default `None`.
    pub results: Option<Vec<SearxResult>>,
    /// `number_of_results`; `None` answers 0, as real instances mostly do (few engines
    /// report a total). Default `None`.
    pub number_of_results: Option<u64>,
    /// `suggestions`. Default empty.
    pub suggestions: Vec<String>,
    /// `unresponsive_engines` as (engine, error) pairs, e.g. `("brave", "timeout")`: engines
    /// that failed while the others answered. Default empty.
    pub unresponsive_engines: Vec<(String, String)>,
    /// Wait before answering each request. Default zero.
    pub latency: Duration,
    /// The next this many requests to `/search` are 429 (each one uses one up). Default 0.
    pub rate_limited_requests: u32,
}

/// One result as SearXNG returns it in `results`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearxResult {
    /// `url`.
    pub url: String,
    /// `title`.
    pub title: String,
    /// `content` (the snippet, plain text).
    pub content: String,
    /// `engine`, the engine that found it (also `engines`). Default `"duckduckgo"`.
    pub engine: String,
    /// `publishedDate`, ISO 8601 as Python's `isoformat` prints it
    /// (`"2026-12-04T09:30:00"`); `null` on the wire when `None`.
    pub published_date: Option<String>,
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
    /// The query string's pairs, decoded, in the order sent.
    pub query_pairs: Vec<(String, String)>,
    /// The form body's pairs, decoded (`POST` with `application/x-www-form-urlencoded`;
    /// empty otherwise).
    pub form: Vec<(String, String)>,
    /// What SearXNG reads: the form's fields, then query-string fields the form lacks,
    /// first value of each name.
    pub params: BTreeMap<String, String>,
    /// Every header, by lowercase name (repeats joined with `", "`).
    pub headers: BTreeMap<String, String>,
    /// The status answered; `None` while waiting ([`Knobs::latency`]) or when the client
    /// went away first.
    pub status: Option<u16>,
    /// When it arrived.
    pub at: Instant,
}

/// A running fake SearXNG instance on `127.0.0.1`. Dropping it stops the server and closes
/// every connection.
#[derive(Debug)]
pub struct SearxngFake {
    server: Server,
    shared: Arc<Shared>,
}

/// Everything mutable, behind one lock.
#[derive(Debug)]
struct State {
    knobs: Knobs,
    records: Vec<Recorded>,
    /// Requests recorded since the start, cleared ones included: a record's index.
    recorded: usize,
}

/// The lock around [`State`].
#[derive(Debug)]
struct Shared(Mutex<State>);

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            json_disabled: false,
            results: None,
            number_of_results: None,
            suggestions: Vec::new(),
            unresponsive_engines: Vec::new(),
            latency: Duration::ZERO,
            rate_limited_requests: 0,
        }
    }
}

// === impl SearxResult ===

impl SearxResult {
    /// A result found by `duckduckgo`, with no `publishedDate`.
    pub fn new(title: &str, url: &str, content: &str) -> SearxResult {
        SearxResult {
            url: url.to_owned(),
            title: title.to_owned(),
            content: content.to_owned(),
            engine: "duckduckgo".to_owned(),
            published_date: None,
        }
    }

    /// The same result found by `engine`.
    pub fn by(mut self, engine: &str) -> SearxResult {
        self.engine = engine.to_owned();
        self
    }

    /// The same result with `publishedDate` (`"2026-12-04T09:30:00"`).
    pub fn published(mut self, date: &str) -> SearxResult {
        self.published_date = Some(date.to_owned());
        self
    }
}

// === impl Recorded ===

impl Recorded {
    /// The value SearXNG reads for `name` (see [`Recorded::params`]), if sent.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// A header's value by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

// === impl SearxngFake ===

impl SearxngFake {
    /// Starts a fake with default [`Knobs`]; returns once the port is bound. Works from sync
    /// code and from either flavour of `#[tokio::test]`.
    ///
    /// # Panics
    /// When no loopback port can be bound or the runtime cannot start.
    pub fn start() -> SearxngFake {
        SearxngFake::start_with(Knobs::default())
    }

    /// Starts a fake with the given knobs; returns once the port is bound.
    ///
    /// # Panics
    /// When no loopback port can be bound or the runtime cannot start.
    pub fn start_with(knobs: Knobs) -> SearxngFake {
        let shared = Arc::new(Shared(Mutex::new(State {
            knobs,
            records: Vec::new(),
            recorded: 0,
        })));
        let routes = server::routes(Arc::clone(&shared));
        let server = Listener::bind("searxng").serve(Runtime::CurrentThread, routes);
        SearxngFake { server, shared }
    }

    /// The instance's base URL: `http://127.0.0.1:PORT`, no trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// The search endpoint: `{base_url}/search`.
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

    /// A copy of the current knobs (with the countdown as far as it has run).
    pub fn knobs(&self) -> Knobs {
        self.shared.lock().knobs.clone()
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().records.clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.lock().records.clear();
    }
}

// === impl Shared ===

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock()
    }

    /// Logs a request as it arrives (no status yet); returns its index.
    fn record(&self, record: Recorded) -> usize {
        let mut state = self.lock();
        state.records.push(record);
        state.recorded += 1;
        state.recorded - 1
    }

    /// Sets the status of record `index`; a no-op when the log was cleared since.
    fn finish(&self, index: usize, status: u16) {
        let mut state = self.lock();
        let first_kept = state.recorded - state.records.len();
        if let Some(record) = index
            .checked_sub(first_kept)
            .and_then(|i| state.records.get_mut(i))
        {
            record.status = Some(status);
        }
    }
}
