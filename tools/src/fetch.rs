//! The client behind the `web_fetch` tool: one page by URL, as text a model can read.
//!
//! [`Fetcher::fetch`] takes the tool's arguments ([`FetchArgs`]: `url`, `extract_mode`,
//! `max_chars`) and returns a [`Page`] (final URL, status, content type, title, text, and
//! whether it was cut) or a [`FetchError`] whose text is written for the model.
//!
//! - **Only http and https.** Anything else is refused before any lookup.
//! - **Every hop through the SSRF guard.** [`check_url`] reads the URL's host as the URL
//!   parser normalized it (so `0x7f000001` and `127.1` reach the guard as `127.0.0.1`),
//!   calls [`ssrf::resolve`] once, and the hop's client connects only to the addresses it
//!   returned: a client is built per hop with a resolver that answers the checked host
//!   with the checked addresses and fails for anything else, so no second lookup can
//!   happen (DNS rebinding), and with proxies off (a proxy would look the name up itself).
//! - **Redirects by hand**, at most [`MAX_REDIRECTS`], each hop checked again; a redirect
//!   into a refused address fails naming the hop.
//! - **Bounded**: the whole fetch (every hop, the lookups, the body) within
//!   [`Limits::timeout`] (30 s), the body read up to [`Limits::max_body_bytes`] (2 MB) and
//!   cut there with a note, the text cut to `max_chars` with a marker.
//! - **Text out**: HTML becomes markdown-flavoured text or plain text, other text types
//!   (plain, JSON, XML, CSV) pass through, binary types are described, not shown. The
//!   charset comes from a byte order mark, the `Content-Type` header, a `<meta>` tag in
//!   an HTML page, else UTF-8 (invalid bytes replaced).
//! - **Cached** for 15 minutes by (URL, mode, `max_chars`), bounded in entries and bytes;
//!   only 2xx pages are kept.
//!
//! An HTTP error status is a [`Page`], not an error: a 404 or 500 page often says why
//! (moved, rate limited, an API's JSON error) and the model can act on it; the status is
//! in [`Page::status`] and [`Page::status_line`] for the tool to show. The page's text is
//! untrusted: the gateway's tool module wraps it in its markers, not this crate.
//!
//! [`ssrf::resolve`]: crate::ssrf::resolve
//! [`Fetcher::fetch`]: crate::fetch::Fetcher::fetch
//! [`FetchArgs`]: crate::fetch::FetchArgs
//! [`Page`]: crate::fetch::Page
//! [`Page::status`]: crate::fetch::Page::status
//! [`Page::status_line`]: crate::fetch::Page::status_line
//! [`FetchError`]: crate::fetch::FetchError
//! [`check_url`]: crate::fetch::check_url
//! [`MAX_REDIRECTS`]: crate::fetch::MAX_REDIRECTS
//! [`Limits::timeout`]: crate::fetch::Limits::timeout
//! [`Limits::max_body_bytes`]: crate::fetch::Limits::max_body_bytes

// Links spelled out, as in `ssrf`: rustdoc resolves this doc from the crate root.

mod args;
mod body;
mod cache;
mod client;
mod error;
mod extract;
mod hop;

#[cfg(test)]
mod tests;

pub use args::{DEFAULT_MAX_CHARS, ExtractMode, FetchArgs, MAX_MAX_CHARS};
pub use cache::{Cache, CacheKey};
pub use client::{Fetcher, Limits, MAX_REDIRECTS, Page};
pub use error::FetchError;
pub use hop::{Target, check_url};
