//! Why a fetch gave no page, in words a model can act on.

use std::time::Duration;

use crate::ssrf::{Refused, ResolveError};

/// Why a fetch gave no page. The text names the URL (the model's own, or a redirect's)
/// and, for a redirect, which one.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL does not parse.
    #[error("not a valid URL: {url} ({reason})")]
    BadUrl {
        /// The text given.
        url: String,
        /// The parser's reason.
        reason: String,
    },
    /// A scheme other than http or https.
    #[error("only http and https URLs can be fetched, not {scheme}:{}", at(*.redirect, .url))]
    Scheme {
        /// The URL's scheme.
        scheme: String,
        /// The URL.
        url: String,
        /// Which redirect led there (`None`: the URL asked for).
        redirect: Option<usize>,
    },
    /// The SSRF guard refused the host or one of its addresses; nothing was sent. The
    /// guard's text starts with `refused: `.
    #[error("{source}{}", at(*.redirect, .url))]
    Refused {
        /// The guard's reason, which says what would lift it.
        source: Refused,
        /// The URL refused.
        url: String,
        /// Which redirect led there (`None`: the URL asked for).
        redirect: Option<usize>,
    },
    /// The host did not resolve (no such name, no answer in time).
    #[error("{source}{}", at(*.redirect, .url))]
    Resolve {
        /// The resolver's error.
        source: ResolveError,
        /// The URL.
        url: String,
        /// Which redirect led there (`None`: the URL asked for).
        redirect: Option<usize>,
    },
    /// The whole fetch took longer than its limit.
    #[error("timed out after {} s", .0.as_secs_f64())]
    Timeout(Duration),
    /// More redirects than allowed.
    #[error("too many redirects ({0})")]
    TooManyRedirects(usize),
    /// A redirect whose `Location` is not a URL.
    #[error("redirect {redirect} from {from} has a bad Location: {location}")]
    BadRedirect {
        /// The URL that answered the redirect.
        from: String,
        /// The header's value (lossy).
        location: String,
        /// Which redirect.
        redirect: usize,
    },
    /// Connecting, sending or reading failed.
    #[error("cannot fetch {url}: {reason}")]
    Http {
        /// The URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error(transparent)]
    Client(#[from] pincer_core::net::ClientError),
    /// Turning the page into text failed.
    #[error("cannot turn the page into text: {0}")]
    Convert(String),
}

/// ` (redirect N: URL)` for a redirect hop, else nothing.
fn at(redirect: Option<usize>, url: &str) -> String {
    match redirect {
        Some(n) => format!(" (redirect {n}: {url})"),
        None => String::new(),
    }
}

// === impl FetchError ===

impl FetchError {
    /// A lookup's failure at `url`, a refusal kept apart from the resolver's errors.
    pub(super) fn from_resolve(error: ResolveError, url: &str) -> FetchError {
        match error {
            ResolveError::Refused(source) => FetchError::Refused {
                source,
                url: url.to_string(),
                redirect: None,
            },
            source => FetchError::Resolve {
                source,
                url: url.to_string(),
                redirect: None,
            },
        }
    }

    /// The same error, said to be at redirect `n` (0: the URL asked for).
    pub(super) fn at_redirect(mut self, n: usize) -> FetchError {
        if n > 0
            && let FetchError::Scheme { redirect, .. }
            | FetchError::Refused { redirect, .. }
            | FetchError::Resolve { redirect, .. } = &mut self
        {
            *redirect = Some(n);
        }
        self
    }

    /// The guard's refusal, if that is what this is.
    pub fn refused(&self) -> Option<&Refused> {
        match self {
            FetchError::Refused { source, .. } => Some(source),
            _ => None,
        }
    }
}
