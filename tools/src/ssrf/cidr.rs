//! Address ranges and the operator's policy: which private ranges a tool may reach.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An address range: a network address and a prefix length, as in `10.0.0.0/8` or
/// `fd00::/8`. The network has no bits set after the prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// An `allowPrivate` entry that is not an address range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} entry \"{entry}\" is not valid: {problem}", key = super::OPT_IN_KEY)]
pub struct BadCidr {
    /// The entry as written.
    pub entry: String,
    /// What is wrong with it.
    pub problem: CidrProblem,
}

/// What is wrong with an address range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrProblem {
    /// The part before `/` is not an IPv4 or IPv6 address.
    #[error("not an IP address (write it as 10.0.0.0/8 or fd00::/8)")]
    Address,
    /// The part after `/` is not a number up to the address's length.
    #[error("the prefix must be a number from 0 to {max}")]
    Prefix {
        /// 32 for IPv4, 128 for IPv6.
        max: u8,
    },
    /// Bits are set after the prefix, which is usually a typo for another range.
    #[error("bits are set after the prefix (did you mean {network}?)")]
    HostBits {
        /// The range with those bits cleared.
        network: Cidr,
    },
}

/// What an operator opted into: the private ranges tools may reach
/// (`tools.webFetch.allowPrivate`). The default opens nothing. Cloud metadata addresses
/// stay refused whatever it opens.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    allow_private: Vec<Cidr>,
}

// === impl Cidr ===

impl Cidr {
    /// The range of `prefix` leading bits of `network`; `None` if the prefix is longer
    /// than the address or bits are set after it.
    pub fn new(network: IpAddr, prefix: u8) -> Option<Cidr> {
        let cidr = Cidr { network, prefix };
        (prefix <= max_prefix(network) && cidr.masked() == cidr).then_some(cidr)
    }

    /// The network address.
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length in bits.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in the range. An address of the other family never is: an
    /// IPv4-mapped IPv6 address is not in an IPv4 range here ([`super::check_addr`]
    /// judges such an address by its IPv4 address before asking).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = mask32(self.prefix);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = mask128(self.prefix);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }

    /// The same prefix with the bits after it cleared.
    fn masked(self) -> Cidr {
        let network = match self.network {
            IpAddr::V4(net) => IpAddr::V4(Ipv4Addr::from(u32::from(net) & mask32(self.prefix))),
            IpAddr::V6(net) => IpAddr::V6(Ipv6Addr::from(u128::from(net) & mask128(self.prefix))),
        };
        Cidr { network, ..self }
    }
}

/// A prefix-long mask of an IPv4 address (`prefix` at most 32).
fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

/// A prefix-long mask of an IPv6 address (`prefix` at most 128).
fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

fn max_prefix(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// `a.b.c.d/n` or `x::y/n`, strict (only dotted-decimal IPv4, no brackets); an address
/// without `/n` is the one address.
impl FromStr for Cidr {
    type Err = BadCidr;

    fn from_str(entry: &str) -> Result<Cidr, BadCidr> {
        let bad = |problem| BadCidr {
            entry: entry.to_string(),
            problem,
        };
        let (addr, prefix) = match entry.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (entry.trim(), None),
        };
        let network: IpAddr = addr.parse().map_err(|_| bad(CidrProblem::Address))?;
        let max = max_prefix(network);
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| bad(CidrProblem::Prefix { max }))?,
            Some(_) => return Err(bad(CidrProblem::Prefix { max })),
        };
        let cidr = Cidr { network, prefix };
        let masked = cidr.masked();
        if masked != cidr {
            return Err(bad(CidrProblem::HostBits { network: masked }));
        }
        Ok(cidr)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

// === impl Policy ===

impl Policy {
    /// The policy that opens `allow_private`'s ranges, written as `10.0.0.0/8`,
    /// `127.0.0.1/32` or `::1/128` (an address alone is that one address). The first
    /// entry that is not a range is the error, named in it. An IPv4 range also opens the
    /// IPv4-mapped forms of its addresses (they are judged as IPv4), so write IPv4 ranges
    /// as IPv4.
    pub fn new<S: AsRef<str>>(allow_private: &[S]) -> Result<Policy, BadCidr> {
        let allow_private = allow_private
            .iter()
            .map(|entry| entry.as_ref().parse())
            .collect::<Result<_, _>>()?;
        Ok(Policy { allow_private })
    }

    /// The ranges it opens.
    pub fn allow_private(&self) -> &[Cidr] {
        &self.allow_private
    }

    /// Whether one of its ranges contains `ip`.
    pub(super) fn opens(&self, ip: IpAddr) -> bool {
        self.allow_private.iter().any(|cidr| cidr.contains(ip))
    }
}
