//! The SSRF guard: which hosts and addresses a tool may reach, and the one lookup that
//! turns a URL's host into addresses already checked.
//!
//! A tool that fetches a URL the model chose must not become a way into the gateway's own
//! network: its loopback, the LAN, the cloud's metadata service. The rules are those of
//! `protocols.md` ("Tool back ends", SSRF):
//!
//! - [`literal`] reads a host the way browsers and `inet_aton` do, so `0x7f000001`,
//!   `0177.0.0.1` and `127.1` are seen as the loopback address they are, not as names.
//! - [`check_name`] refuses names that mean "this machine" or "this network" whatever they
//!   resolve to: `localhost`, `*.localhost`, `*.local`, `*.internal`.
//! - [`check_addr`] refuses loopback, private, link-local, CGNAT, multicast, reserved and
//!   unspecified addresses, judging an IPv6 address that embeds an IPv4 one by that IPv4
//!   address, unless the operator's [`Policy`] opens the range; cloud metadata addresses
//!   are refused whatever the policy says.
//! - [`resolve`] is the only lookup: it checks a literal, or checks the name, resolves it
//!   once and checks every address. The caller connects to exactly the addresses it
//!   returns, so a name that answers a public address to the check and a private one to a
//!   second lookup (DNS rebinding) gets nowhere. Each redirect hop goes through it again.
//!
//! There is no HTTP here: the fetching tool uses these checks.

mod check;
mod cidr;
mod literal;
mod resolve;

#[cfg(test)]
mod tests;

pub use check::{Class, NameKind, Refused, check_addr, check_name};
pub use cidr::{BadCidr, Cidr, CidrProblem, Policy};
pub use literal::literal;
pub use resolve::{LOOKUP_TIMEOUT, ResolveError, resolve};

/// The config key that opens private ranges, named in refusals that it can lift.
pub const OPT_IN_KEY: &str = "tools.webFetch.allowPrivate";
