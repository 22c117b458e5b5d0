//! The one lookup: a host to the addresses a tool may connect to.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use super::{Policy, Refused, check_addr, check_name, literal};

/// How long a lookup may take: the system resolver can wait tens of seconds on a silent
/// server (glibc: 5 s a try, two tries a server), longer than a tool call should wait to
/// learn that a name does not resolve.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a host gave no address to connect to.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The name or one of its addresses is refused.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// The system resolver failed (no such name, no server).
    #[error("cannot resolve {host}: {source}")]
    Lookup {
        /// The name looked up.
        host: String,
        /// The resolver's error.
        #[source]
        source: io::Error,
    },
    /// The lookup took longer than [`LOOKUP_TIMEOUT`].
    #[error("resolving {host} timed out after {}s", LOOKUP_TIMEOUT.as_secs())]
    Timeout {
        /// The name looked up.
        host: String,
    },
    /// The name resolved to no address.
    #[error("{host} has no address")]
    NoAddress {
        /// The name looked up.
        host: String,
    },
}

/// The addresses of `host` (a URL's host: a name, an IP literal in any form [`literal`]
/// reads, IPv6 with or without brackets) at `port`, every one checked against `policy`.
///
/// A literal is checked and returned without a lookup. A name is checked by
/// [`check_name`], resolved once (at most [`LOOKUP_TIMEOUT`]), and refused if any of its
/// addresses is (the error names that one): a name with one private address among public
/// ones could be steered to it by a connection that falls back. Connect to the addresses
/// returned, in order, and look nothing up again: a second lookup could answer otherwise
/// (DNS rebinding). Each redirect hop is a new call.
pub async fn resolve(
    host: &str,
    port: u16,
    policy: &Policy,
) -> Result<Vec<SocketAddr>, ResolveError> {
    if let Some(ip) = literal(host) {
        check_addr(ip, policy)?;
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    check_name(host)?;
    let found = tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| ResolveError::Timeout {
            host: host.to_string(),
        })?
        .map_err(|source| ResolveError::Lookup {
            host: host.to_string(),
            source,
        })?;
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for addr in found {
        check_addr(addr.ip(), policy).map_err(|refused| refused.resolved_from(host))?;
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    if addrs.is_empty() {
        return Err(ResolveError::NoAddress {
            host: host.to_string(),
        });
    }
    Ok(addrs)
}
