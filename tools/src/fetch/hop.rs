//! One hop: a URL checked by the SSRF guard, and a client that can reach only what was
//! checked.

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::FetchError;
use crate::ssrf::{self, Policy};

/// A URL the guard passed: where its one hop may connect.
#[derive(Debug, Clone)]
pub struct Target {
    /// The URL, as the URL parser normalized it (what is sent).
    pub url: Url,
    /// Its host as the guard saw it: a name, or an IP address in canonical form.
    pub host: String,
    /// The checked addresses, the only ones the hop connects to.
    pub addrs: Vec<SocketAddr>,
}

/// Answers the checked host with the checked addresses and fails for any other name, so a
/// hop's client never asks the system resolver (a second lookup could answer otherwise).
/// Used instead of `ClientBuilder::resolve_to_addrs`, whose overrides fall back to the
/// system resolver for a name they do not hold: here there is nothing to fall back to.
#[derive(Debug)]
struct Pinned {
    host: String,
    addrs: Vec<SocketAddr>,
}

/// Checks `url` for one hop: the scheme (http or https), then its host through
/// [`ssrf::resolve`], once.
///
/// The host is taken from the parsed URL, which has already read IPv4 literals the way
/// browsers do (`http://0x7f000001/` and `http://127.1/` have the host `127.0.0.1`), so
/// the guard judges the address that would be connected to; a name goes through the
/// guard's name check and one lookup. Nothing is sent.
pub async fn check_url(url: &Url, policy: &Policy) -> Result<Target, FetchError> {
    let scheme = url.scheme();
    if scheme != "http" && scheme != "https" {
        return Err(FetchError::Scheme {
            scheme: scheme.to_string(),
            url: url.to_string(),
            redirect: None,
        });
    }
    let host = url.host_str().unwrap_or_default().to_string();
    // http and https always have a known default port.
    let port = url.port_or_known_default().unwrap_or(80);
    let addrs = ssrf::resolve(&host, port, policy)
        .await
        .map_err(|error| FetchError::from_resolve(error, url.as_str()))?;
    Ok(Target {
        url: url.clone(),
        host,
        addrs,
    })
}

// === impl Target ===

impl Target {
    /// A client for this hop alone: the gateway's client rules (no redirects, connect
    /// timeout, user agent) from `pincer_core::net::client_builder`, proxies off (a proxy
    /// would resolve the name itself, past the guard), and the pinned resolver. An IP
    /// literal host is connected to as it is, without the resolver: it is the address the
    /// guard checked.
    pub(super) fn client(&self) -> Result<reqwest::Client, FetchError> {
        let pinned = Pinned {
            host: self.host.to_ascii_lowercase(),
            addrs: self.addrs.clone(),
        };
        pincer_core::net::client_builder()
            .no_proxy()
            .dns_resolver(Arc::new(pinned))
            .build()
            .map_err(|error| FetchError::Http {
                url: self.url.to_string(),
                reason: format!(
                    "cannot build the HTTP client: {}",
                    pincer_core::net::without_url(&error)
                ),
            })
    }
}

// === impl Pinned ===

impl Resolve for Pinned {
    fn resolve(&self, name: Name) -> Resolving {
        let answer = if name.as_str().eq_ignore_ascii_case(&self.host) {
            let addrs: Addrs = Box::new(self.addrs.clone().into_iter());
            Ok(addrs)
        } else {
            Err(format!("{} was not checked by the SSRF guard", name.as_str()).into())
        };
        Box::pin(std::future::ready(answer))
    }
}
