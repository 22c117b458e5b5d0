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
//!
//! ```
//! use pincer_tools::ssrf::{Policy, check_addr, check_name, literal};
//!
//! let policy = Policy::new(&["192.168.1.0/24"])?;
//! let loopback = literal("0x7f.1").expect("an address, not a name");
//! assert!(check_addr(loopback, &policy).is_err());
//! assert!(check_addr("192.168.1.20".parse()?, &policy).is_ok());
//! assert!(check_addr("169.254.169.254".parse()?, &Policy::new(&["169.254.0.0/16"])?).is_err());
//! assert!(check_name("printer.local").is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`literal`]: crate::ssrf::literal
//! [`check_name`]: crate::ssrf::check_name
//! [`check_addr`]: crate::ssrf::check_addr
//! [`Policy`]: crate::ssrf::Policy
//! [`resolve`]: crate::ssrf::resolve

// Links spelled out: rustdoc resolves this module's own doc from the crate root, where the
// `pub mod` line's doc is.

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
