//! Which names and addresses are refused, and why.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{OPT_IN_KEY, Policy};

/// Why an address is refused: the kind of range it is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// `0.0.0.0/8` (this network) and `::`.
    Unspecified,
    /// `127.0.0.0/8` and `::1`.
    Loopback,
    /// `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`, `fc00::/7` (unique local) and
    /// `fec0::/10` (the deprecated site-local range).
    Private,
    /// `169.254.0.0/16` and `fe80::/10`.
    LinkLocal,
    /// `100.64.0.0/10`, shared by carrier-grade NAT.
    Cgnat,
    /// `224.0.0.0/4` and `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `192.0.0.0/24`, `198.18.0.0/15` (benchmarking) and `240.0.0.0/4`.
    Reserved,
    /// `64:ff9b::/96` whose embedded IPv4 address is not itself refused: a NAT64 gateway
    /// reaches it for us, so it is refused unless the operator opens the NAT64 prefix.
    Nat64,
    /// A cloud metadata service (credentials live there): refused whatever the policy.
    Metadata,
}

/// Why a name is refused whatever it resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameKind {
    /// `localhost` and `*.localhost`: this machine.
    Localhost,
    /// `*.local`: multicast DNS on the local network.
    Local,
    /// `*.internal`: private zones (cloud VPCs, Docker's `host.docker.internal`).
    Internal,
    /// `metadata.google.internal`: a cloud metadata service.
    Metadata,
    /// An empty host.
    Empty,
}

/// A host or address a tool may not reach. Its text is the tool's error, and says which
/// opt-in would lift it when one would.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// An address in a refused range.
    Addr {
        /// The address as given or resolved.
        ip: IpAddr,
        /// The range it is in (for an IPv6 address embedding an IPv4 one, the range of
        /// the IPv4 address).
        class: Class,
        /// The name it was resolved from, if any.
        host: Option<String>,
    },
    /// A name refused whatever it resolves to.
    Name {
        /// The name as given.
        host: String,
        /// Which kind of name.
        kind: NameKind,
    },
}

/// Cloud metadata services, refused even inside an opened range: AWS, GCP, Azure, Oracle
/// and DigitalOcean answer at 169.254.169.254, AWS ECS task credentials at 169.254.170.2,
/// Oracle's older endpoint at 192.0.0.192, Alibaba at 100.100.100.200, AWS over IPv6 at
/// fd00:ec2::254.
const METADATA_V4: [Ipv4Addr; 4] = [
    Ipv4Addr::new(169, 254, 169, 254),
    Ipv4Addr::new(169, 254, 170, 2),
    Ipv4Addr::new(192, 0, 0, 192),
    Ipv4Addr::new(100, 100, 100, 200),
];
const METADATA_V6: [Ipv6Addr; 1] = [Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)];

/// Refuses `ip` if it is in a refused range that `policy` does not open; cloud metadata
/// addresses always.
///
/// An IPv6 address embedding an IPv4 one is judged as that IPv4 address, policy included:
/// IPv4-mapped (`::ffff:a.b.c.d`, what a dual-stack socket connects to as IPv4) and
/// IPv4-compatible (`::a.b.c.d`, deprecated). NAT64 (`64:ff9b::a.b.c.d`) is refused as
/// the spec lists it, and even when the operator opens `64:ff9b::/96` (an IPv6-only host
/// behind DNS64 must, to reach IPv4-only sites), the embedded address must pass too: the
/// gateway translates to it, so `64:ff9b::10.0.0.5` is 10.0.0.5 to the network.
pub fn check_addr(ip: IpAddr, policy: &Policy) -> Result<(), Refused> {
    let refuse = |class| {
        Err(Refused::Addr {
            ip,
            class,
            host: None,
        })
    };
    let v6 = match ip {
        IpAddr::V4(v4) => return check_v4(v4, policy).or_else(refuse),
        IpAddr::V6(v6) => v6,
    };
    if let Some(v4) = mapped_or_compatible(v6) {
        return check_v4(v4, policy).or_else(refuse);
    }
    if let Some(v4) = nat64(v6) {
        check_v4(v4, policy).or_else(refuse)?;
        return if policy.opens(ip) {
            Ok(())
        } else {
            refuse(Class::Nat64)
        };
    }
    match class_v6(v6) {
        None => Ok(()),
        Some(Class::Metadata) => refuse(Class::Metadata),
        Some(_) if policy.opens(ip) => Ok(()),
        Some(class) => refuse(class),
    }
}

/// Refuses names that mean this machine, the local network or a private zone, whatever
/// they resolve to: `localhost`, `*.localhost`, `*.local`, `*.internal` (so
/// `metadata.google.internal`). Case and trailing dots do not matter. `host` is the URL's
/// host as the URL parser gives it (lowercase ASCII, IDNA applied); a policy never opens a
/// name (an address it opens can be used instead).
pub fn check_name(host: &str) -> Result<(), Refused> {
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    let is = |suffix: &str| {
        name == suffix
            || name
                .strip_suffix(suffix)
                .is_some_and(|rest| rest.ends_with('.'))
    };
    let kind = if name.is_empty() {
        NameKind::Empty
    } else if name == "metadata.google.internal" {
        NameKind::Metadata
    } else if is("localhost") {
        NameKind::Localhost
    } else if is("local") {
        NameKind::Local
    } else if is("internal") {
        NameKind::Internal
    } else {
        return Ok(());
    };
    Err(Refused::Name {
        host: host.to_string(),
        kind,
    })
}

/// `Ok` if `v4` may be reached under `policy`, else its class.
fn check_v4(v4: Ipv4Addr, policy: &Policy) -> Result<(), Class> {
    match class_v4(v4) {
        None => Ok(()),
        Some(Class::Metadata) => Err(Class::Metadata),
        Some(_) if policy.opens(IpAddr::V4(v4)) => Ok(()),
        Some(class) => Err(class),
    }
}

fn class_v4(v4: Ipv4Addr) -> Option<Class> {
    if METADATA_V4.contains(&v4) {
        return Some(Class::Metadata);
    }
    let [a, b, c, _] = v4.octets();
    Some(match (a, b, c) {
        (0, _, _) => Class::Unspecified,
        (10, _, _) => Class::Private,
        (100, 64..=127, _) => Class::Cgnat,
        (127, _, _) => Class::Loopback,
        (169, 254, _) => Class::LinkLocal,
        (172, 16..=31, _) => Class::Private,
        (192, 0, 0) => Class::Reserved,
        (192, 168, _) => Class::Private,
        (198, 18..=19, _) => Class::Reserved,
        (224..=239, _, _) => Class::Multicast,
        _ if v4 == Ipv4Addr::BROADCAST => Class::Broadcast,
        (240..=255, _, _) => Class::Reserved,
        _ => return None,
    })
}

/// The class of an IPv6 address that embeds no IPv4 address.
fn class_v6(v6: Ipv6Addr) -> Option<Class> {
    if METADATA_V6.contains(&v6) {
        return Some(Class::Metadata);
    }
    let first = v6.segments()[0];
    Some(if v6.is_unspecified() {
        Class::Unspecified
    } else if v6.is_loopback() {
        Class::Loopback
    } else if first & 0xfe00 == 0xfc00 || first & 0xffc0 == 0xfec0 {
        Class::Private
    } else if first & 0xffc0 == 0xfe80 {
        Class::LinkLocal
    } else if first & 0xff00 == 0xff00 {
        Class::Multicast
    } else {
        return None;
    })
}

/// The IPv4 address in `::ffff:a.b.c.d` or `::a.b.c.d` (but not `::` or `::1`, which are
/// IPv6's own unspecified and loopback addresses).
fn mapped_or_compatible(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let bits = u128::from(v6);
    (bits >> 32 == 0 && bits > 1).then(|| Ipv4Addr::from(bits as u32))
}

/// The IPv4 address in `64:ff9b::a.b.c.d` (the NAT64 well-known prefix).
fn nat64(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(v6);
    (bits >> 32 == 0x0064_ff9b_u128 << 64).then(|| Ipv4Addr::from(bits as u32))
}

/// The IPv4 address an IPv6 address is judged by, for messages.
fn embedded(ip: IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(_) => None,
        IpAddr::V6(v6) => mapped_or_compatible(v6).or_else(|| nat64(v6)),
    }
}

// === impl Class ===

impl Class {
    /// The class as an adjective with its article: "a private", "an unspecified".
    fn with_article(self) -> &'static str {
        match self {
            Class::Unspecified => "an unspecified",
            Class::Loopback => "a loopback",
            Class::Private => "a private",
            Class::LinkLocal => "a link-local",
            Class::Cgnat => "a CGNAT (shared)",
            Class::Multicast => "a multicast",
            Class::Broadcast => "a broadcast",
            Class::Reserved => "a reserved",
            Class::Nat64 => "a NAT64",
            Class::Metadata => "a cloud metadata",
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Class::Unspecified => "unspecified",
            Class::Loopback => "loopback",
            Class::Private => "private",
            Class::LinkLocal => "link-local",
            Class::Cgnat => "CGNAT",
            Class::Multicast => "multicast",
            Class::Broadcast => "broadcast",
            Class::Reserved => "reserved",
            Class::Nat64 => "NAT64",
            Class::Metadata => "metadata",
        })
    }
}

// === impl NameKind ===

impl NameKind {
    fn with_article(self) -> &'static str {
        match self {
            NameKind::Localhost => "a loopback name",
            NameKind::Local => "a local-network (mDNS) name",
            NameKind::Internal => "an internal name",
            NameKind::Metadata => "a cloud metadata name",
            NameKind::Empty => "an empty name",
        }
    }
}

// === impl Refused ===

impl Refused {
    /// The same refusal, saying it came from resolving `host`.
    pub(super) fn resolved_from(self, name: &str) -> Refused {
        match self {
            Refused::Addr { ip, class, .. } => Refused::Addr {
                ip,
                class,
                host: Some(name.to_string()),
            },
            name @ Refused::Name { .. } => name,
        }
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Addr { ip, class, host } => {
                let judged_as = embedded(*ip)
                    .map(|v4| format!(" ({v4})"))
                    .unwrap_or_default();
                match host {
                    Some(host) => write!(f, "refused: {host} resolves to {ip}{judged_as}, ")?,
                    None => write!(f, "refused: {ip}{judged_as} is ")?,
                }
                write!(f, "{} address", class.with_article())?;
                match class {
                    Class::Metadata => write!(f, ", never fetched"),
                    _ => write!(f, " (set {OPT_IN_KEY} to reach it)"),
                }
            }
            Refused::Name { host, kind } => {
                let what = kind.with_article();
                match kind {
                    NameKind::Empty => write!(f, "refused: {what}"),
                    NameKind::Metadata => write!(f, "refused: {host} is {what}, never fetched"),
                    _ => write!(
                        f,
                        "refused: {host} is {what}, never fetched whatever it resolves to \
                         ({OPT_IN_KEY} opens addresses, not names)"
                    ),
                }
            }
        }
    }
}
