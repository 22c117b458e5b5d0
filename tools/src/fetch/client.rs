//! The fetch itself: hops, the body, the text, the cache.

use std::time::{Duration, Instant};

use parking_lot::Mutex;
use reqwest::{StatusCode, Url, header};

use super::body::{self, Kind};
use super::cache::{Cache, CacheKey};
use super::extract;
use super::hop::check_url;
use super::{FetchArgs, FetchError};
use crate::ssrf::Policy;

/// The most redirects followed (the number): enough for `http` to `https` to a
/// canonical host, few enough that a loop ends at once.
pub const MAX_REDIRECTS: usize = 3;

/// What is asked for: HTML first, any text next, anything else last.
const ACCEPT: &str = "text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.8";

/// How long, how much and how many: the fetcher's bounds. Tests shorten them.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The whole fetch: every hop's lookup, connection and answer, and the body. 30 s by
    /// default, what a model's turn can wait for one page.
    pub timeout: Duration,
    /// The most bytes of a body read; past it the page is cut with a note. 2 MB by
    /// default: far more text than `max_chars` keeps, while a page's HTML markup can be
    /// ten times its text.
    pub max_body_bytes: usize,
    /// The most redirects followed, [`MAX_REDIRECTS`] by default.
    pub max_redirects: usize,
    /// How long a page is served from the cache: 15 minutes by default, so a model that
    /// comes back to a page within a conversation does not fetch it again.
    pub cache_ttl: Duration,
    /// The most pages cached, 64 by default.
    pub cache_entries: usize,
    /// The most bytes of text cached, 16 MiB by default (80 pages at the largest
    /// `max_chars`, fewer with multi-byte text).
    pub cache_bytes: usize,
}

/// A page fetched, as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The URL the page came from, after redirects.
    pub url: String,
    /// The HTTP status: 4xx and 5xx pages are pages too (see the module's doc).
    pub status: u16,
    /// The media type without parameters (`text/html`), if the server gave one.
    pub content_type: Option<String>,
    /// The HTML page's `<title>`, if it has one.
    pub title: Option<String>,
    /// The text: converted HTML, text passed through, or a line describing binary
    /// content. Cut to `max_chars` with a marker when `truncated`, and ending with a note
    /// when `body_cut`.
    pub text: String,
    /// Whether the text was cut to `max_chars`.
    pub truncated: bool,
    /// Whether the body was larger than [`Limits::max_body_bytes`] and only its start
    /// was read.
    pub body_cut: bool,
}

/// Fetches pages under one SSRF policy, with a cache. One per policy: when the operator
/// changes `tools.webFetch.allowPrivate`, the gateway builds a new one (and so drops
/// the pages fetched under the old rules).
#[derive(Debug)]
pub struct Fetcher {
    policy: Policy,
    limits: Limits,
    cache: Mutex<Cache>,
}

// === impl Limits ===

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            timeout: Duration::from_secs(30),
            max_body_bytes: 2 * 1024 * 1024,
            max_redirects: MAX_REDIRECTS,
            cache_ttl: Duration::from_secs(15 * 60),
            cache_entries: 64,
            cache_bytes: 16 * 1024 * 1024,
        }
    }
}

// === impl Page ===

impl Page {
    /// `200 OK`, `404 Not Found`: the status with its reason.
    pub fn status_line(&self) -> String {
        let reason = StatusCode::from_u16(self.status)
            .ok()
            .and_then(|status| status.canonical_reason());
        match reason {
            Some(reason) => format!("{} {reason}", self.status),
            None => self.status.to_string(),
        }
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

// === impl Fetcher ===

impl Fetcher {
    /// A fetcher under `policy` with the default limits.
    pub fn new(policy: Policy) -> Fetcher {
        Fetcher::with_limits(policy, Limits::default())
    }

    /// A fetcher under `policy` with `limits`.
    pub fn with_limits(policy: Policy, limits: Limits) -> Fetcher {
        let cache = Cache::new(limits.cache_ttl, limits.cache_entries, limits.cache_bytes);
        Fetcher {
            policy,
            limits,
            cache: Mutex::new(cache),
        }
    }

    /// The policy it fetches under.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The page `args` asks for: from the cache if it was fetched (with a 2xx status) in
    /// the last [`Limits::cache_ttl`] with the same mode and `max_chars`, else fetched.
    pub async fn fetch(&self, args: &FetchArgs) -> Result<Page, FetchError> {
        let url = Url::parse(args.url.trim()).map_err(|error| FetchError::BadUrl {
            url: args.url.clone(),
            reason: error.to_string(),
        })?;
        let key = CacheKey {
            url: url.to_string(),
            mode: args.extract_mode,
            max_chars: args.effective_max_chars(),
        };
        if let Some(page) = self.cache.lock().get(&key, Instant::now()) {
            return Ok(page);
        }
        let page = tokio::time::timeout(self.limits.timeout, self.fetch_uncached(url, &key))
            .await
            .map_err(|_| FetchError::Timeout(self.limits.timeout))??;
        if page.is_success() {
            self.cache.lock().insert(key, page.clone(), Instant::now());
        }
        Ok(page)
    }

    /// Hop by hop: check, connect to what was checked, follow a redirect by hand.
    async fn fetch_uncached(&self, mut url: Url, key: &CacheKey) -> Result<Page, FetchError> {
        let mut redirect = 0;
        loop {
            let target = check_url(&url, &self.policy)
                .await
                .map_err(|error| error.at_redirect(redirect))?;
            let response = target
                .client()?
                .get(url.clone())
                .header(header::ACCEPT, ACCEPT)
                .send()
                .await
                .map_err(|error| http_error(&url, &error))?;
            let location = response
                .status()
                .is_redirection()
                .then(|| response.headers().get(header::LOCATION))
                .flatten();
            let Some(location) = location else {
                return self.read_page(url, response, key).await;
            };
            if redirect == self.limits.max_redirects {
                return Err(FetchError::TooManyRedirects(self.limits.max_redirects));
            }
            redirect += 1;
            let next = location
                .to_str()
                .ok()
                .and_then(|location| url.join(location).ok());
            url = next.ok_or_else(|| FetchError::BadRedirect {
                from: url.to_string(),
                location: String::from_utf8_lossy(location.as_bytes()).into_owned(),
                redirect,
            })?;
        }
    }

    /// The final answer's body as a [`Page`].
    async fn read_page(
        &self,
        url: Url,
        mut response: reqwest::Response,
        key: &CacheKey,
    ) -> Result<Page, FetchError> {
        let status = response.status().as_u16();
        let (essence, charset) = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(body::split_content_type)
            .filter(|(essence, _)| !essence.is_empty())
            .map_or((None, None), |(essence, charset)| (Some(essence), charset));
        let mut page = Page {
            url: url.to_string(),
            status,
            content_type: essence.clone(),
            title: None,
            text: String::new(),
            truncated: false,
            body_cut: false,
        };

        // A binary type with a length is described without reading it.
        let declared = essence.as_deref().map(body::kind_of_type);
        if declared == Some(Kind::Binary)
            && let Some(length) = response.content_length()
        {
            page.text = binary_line(essence.as_deref(), length, false);
            return Ok(page);
        }

        let max = self.limits.max_body_bytes;
        let (bytes, cut) = read_up_to(&mut response, max)
            .await
            .map_err(|error| http_error(&url, &error))?;
        page.body_cut = cut;
        let kind = body::kind(essence.as_deref(), &bytes);
        let text = match kind {
            Kind::Binary => {
                page.text = binary_line(essence.as_deref(), bytes.len() as u64, cut);
                return Ok(page);
            }
            Kind::Text => body::decode(&bytes, charset.as_deref(), false),
            Kind::Html => {
                let html = body::decode(&bytes, charset.as_deref(), true);
                let mode = key.mode;
                // html5ever and the renderer are CPU work on up to 2 MB: off the async
                // threads, and a panic in them becomes an error, not a crash.
                let (title, text) = tokio::task::spawn_blocking(move || {
                    extract::html_to_text(&html, mode).map(|text| (extract::title(&html), text))
                })
                .await
                .map_err(|error| FetchError::Convert(error.to_string()))?
                .map_err(FetchError::Convert)?;
                page.title = title;
                text
            }
        };
        let (mut text, truncated) = extract::cut(text, key.max_chars);
        if cut {
            text.push_str(&format!(
                "\n\n[page cut: only the first {} bytes were read]",
                body::thousands(max as u64)
            ));
        }
        page.text = text;
        page.truncated = truncated;
        Ok(page)
    }
}

/// Reads at most `max` bytes of the body; `true` if there was more.
async fn read_up_to(
    response: &mut reqwest::Response,
    max: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = max - bytes.len();
        if chunk.len() > room {
            bytes.extend_from_slice(&chunk[..room]);
            return Ok((bytes, true));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok((bytes, false))
}

/// `binary content (image/png, 12,345 bytes) not shown`.
fn binary_line(essence: Option<&str>, bytes: u64, cut: bool) -> String {
    let kind = essence.unwrap_or("unknown type");
    let at_least = if cut { "at least " } else { "" };
    format!(
        "binary content ({kind}, {at_least}{} bytes) not shown",
        body::thousands(bytes)
    )
}

fn http_error(url: &Url, error: &reqwest::Error) -> FetchError {
    FetchError::Http {
        url: url.to_string(),
        reason: pincer_core::net::without_url(error),
    }
}
