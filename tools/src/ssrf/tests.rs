//! The guard's rules case by case, then as properties. Only pure checks, literals and
//! names answered before or by `/etc/hosts`: no test sends a packet anywhere but loopback,
//! even with the guard broken.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;

use super::*;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn class_of(text: &str, policy: &Policy) -> Option<Class> {
    match check_addr(ip(text), policy) {
        Ok(()) => None,
        Err(Refused::Addr { class, .. }) => Some(class),
        Err(other) => panic!("{text}: unexpected {other:?}"),
    }
}

fn policy(entries: &[&str]) -> Policy {
    Policy::new(entries).unwrap()
}

/// Every range of the spec with its first and last address, and the addresses just
/// outside it.
const REFUSED: &[(&str, &str, Class)] = &[
    ("0.0.0.0", "0.255.255.255", Class::Unspecified),
    ("10.0.0.0", "10.255.255.255", Class::Private),
    ("100.64.0.0", "100.127.255.255", Class::Cgnat),
    ("127.0.0.0", "127.255.255.255", Class::Loopback),
    ("169.254.0.0", "169.254.255.255", Class::LinkLocal),
    ("172.16.0.0", "172.31.255.255", Class::Private),
    ("192.0.0.0", "192.0.0.255", Class::Reserved),
    ("192.168.0.0", "192.168.255.255", Class::Private),
    ("198.18.0.0", "198.19.255.255", Class::Reserved),
    ("224.0.0.0", "239.255.255.255", Class::Multicast),
    ("240.0.0.0", "255.255.255.254", Class::Reserved),
    ("255.255.255.255", "255.255.255.255", Class::Broadcast),
    ("::", "::", Class::Unspecified),
    ("::1", "::1", Class::Loopback),
    (
        "fc00::",
        "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        Class::Private,
    ),
    (
        "fe80::",
        "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        Class::LinkLocal,
    ),
    (
        "fec0::",
        "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        Class::Private,
    ),
    (
        "ff00::",
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        Class::Multicast,
    ),
];

const ALLOWED: &[&str] = &[
    "1.1.1.1",
    "8.8.8.8",
    "9.255.255.255",
    "11.0.0.0",
    "100.63.255.255",
    "100.128.0.0",
    "126.255.255.255",
    "128.0.0.0",
    "169.253.255.255",
    "169.255.0.0",
    "172.15.255.255",
    "172.32.0.0",
    "192.0.1.0",
    "192.0.2.1",
    "192.167.255.255",
    "192.169.0.0",
    "198.17.255.255",
    "198.20.0.0",
    "223.255.255.255",
    "2001:4860:4860::8888",
    "2606:4700:4700::1111",
    "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "::ffff:8.8.8.8",
    "::8.8.8.8",
];

#[test]
fn each_range_of_the_spec_is_refused_from_its_first_to_its_last_address() {
    for &(first, last, class) in REFUSED {
        for addr in [first, last] {
            assert_eq!(class_of(addr, &Policy::default()), Some(class), "{addr}");
        }
    }
}

#[test]
fn addresses_just_outside_the_ranges_and_public_ones_are_allowed() {
    for &addr in ALLOWED {
        assert_eq!(class_of(addr, &Policy::default()), None, "{addr}");
    }
}

#[test]
fn an_ipv6_address_embedding_an_ipv4_one_is_judged_by_it() {
    let none = Policy::default();
    assert_eq!(class_of("::ffff:127.0.0.1", &none), Some(Class::Loopback));
    assert_eq!(class_of("::ffff:7f00:1", &none), Some(Class::Loopback));
    assert_eq!(class_of("::ffff:10.1.2.3", &none), Some(Class::Private));
    assert_eq!(
        class_of("::ffff:169.254.169.254", &none),
        Some(Class::Metadata)
    );
    assert_eq!(class_of("::ffff:0.0.0.0", &none), Some(Class::Unspecified));
    assert_eq!(class_of("::127.0.0.1", &none), Some(Class::Loopback));
    assert_eq!(class_of("::192.168.1.1", &none), Some(Class::Private));
    assert_eq!(class_of("::2", &none), Some(Class::Unspecified));
    // Opened as IPv4, reached as IPv4-mapped.
    let loopback = policy(&["127.0.0.1/32"]);
    assert_eq!(class_of("::ffff:127.0.0.1", &loopback), None);
    assert_eq!(
        class_of("::ffff:127.0.0.2", &loopback),
        Some(Class::Loopback)
    );
}

#[test]
fn nat64_is_refused_unless_opened_and_its_ipv4_address_must_pass_too() {
    let none = Policy::default();
    assert_eq!(class_of("64:ff9b::8.8.8.8", &none), Some(Class::Nat64));
    assert_eq!(class_of("64:ff9b::10.0.0.5", &none), Some(Class::Private));
    assert_eq!(class_of("64:ff9b::7f00:1", &none), Some(Class::Loopback));
    let nat64 = policy(&["64:ff9b::/96"]);
    assert_eq!(class_of("64:ff9b::8.8.8.8", &nat64), None);
    assert_eq!(class_of("64:ff9b::10.0.0.5", &nat64), Some(Class::Private));
    assert_eq!(
        class_of("64:ff9b::169.254.169.254", &nat64),
        Some(Class::Metadata)
    );
    let both = policy(&["64:ff9b::/96", "10.0.0.0/8"]);
    assert_eq!(class_of("64:ff9b::10.0.0.5", &both), None);
    // Next to the prefix: not NAT64.
    assert_eq!(class_of("64:ff9b:0:0:0:1::", &none), None);
    assert_eq!(class_of("64:ff9b:1::a00:5", &none), None);
}

#[test]
fn cloud_metadata_is_refused_even_when_its_range_is_opened() {
    let everything = policy(&["0.0.0.0/0", "::/0"]);
    for addr in [
        "169.254.169.254",
        "169.254.170.2",
        "192.0.0.192",
        "100.100.100.200",
        "fd00:ec2::254",
        "::ffff:169.254.169.254",
        "::ffff:100.100.100.200",
    ] {
        assert_eq!(class_of(addr, &everything), Some(Class::Metadata), "{addr}");
        assert_eq!(
            class_of(addr, &Policy::default()),
            Some(Class::Metadata),
            "{addr}"
        );
    }
    // Its neighbours are ordinary members of their ranges.
    assert_eq!(class_of("169.254.169.253", &everything), None);
    assert_eq!(class_of("100.100.100.201", &everything), None);
    assert_eq!(class_of("fd00:ec2::253", &everything), None);
}

#[test]
fn an_opened_range_allows_exactly_its_addresses() {
    let lan = policy(&["192.168.1.0/24", "::1/128", "fd12:3456::/32"]);
    assert_eq!(class_of("192.168.1.0", &lan), None);
    assert_eq!(class_of("192.168.1.255", &lan), None);
    assert_eq!(class_of("192.168.2.1", &lan), Some(Class::Private));
    assert_eq!(class_of("::1", &lan), None);
    assert_eq!(class_of("127.0.0.1", &lan), Some(Class::Loopback));
    assert_eq!(class_of("fd12:3456:ffff::1", &lan), None);
    assert_eq!(class_of("fd12:3457::1", &lan), Some(Class::Private));
}

#[test]
fn refusals_say_what_the_address_is_and_how_to_open_it() {
    let text = |addr: &str| {
        check_addr(ip(addr), &Policy::default())
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        text("10.0.0.5"),
        "refused: 10.0.0.5 is a private address (set tools.webFetch.allowPrivate to reach it)"
    );
    assert_eq!(
        text("::ffff:127.0.0.1"),
        "refused: ::ffff:127.0.0.1 (127.0.0.1) is a loopback address \
         (set tools.webFetch.allowPrivate to reach it)"
    );
    assert_eq!(
        text("169.254.169.254"),
        "refused: 169.254.169.254 is a cloud metadata address, never fetched"
    );
    assert_eq!(
        text("0.0.0.0"),
        "refused: 0.0.0.0 is an unspecified address (set tools.webFetch.allowPrivate to reach it)"
    );
    let resolved = check_addr(ip("100.64.1.1"), &Policy::default())
        .unwrap_err()
        .resolved_from("example.com");
    assert_eq!(
        resolved.to_string(),
        "refused: example.com resolves to 100.64.1.1, a CGNAT (shared) address \
         (set tools.webFetch.allowPrivate to reach it)"
    );
    let metadata = check_name("metadata.google.internal")
        .unwrap_err()
        .to_string();
    assert_eq!(
        metadata,
        "refused: metadata.google.internal is a cloud metadata name, never fetched"
    );
    assert!(!metadata.contains("allowPrivate"));
}

#[test]
fn names_for_this_machine_and_private_zones_are_refused() {
    let kind = |host: &str| match check_name(host) {
        Ok(()) => None,
        Err(Refused::Name { kind, .. }) => Some(kind),
        Err(other) => panic!("{host}: unexpected {other:?}"),
    };
    for (host, expected) in [
        ("localhost", NameKind::Localhost),
        ("LOCALHOST", NameKind::Localhost),
        ("localhost.", NameKind::Localhost),
        ("localhost..", NameKind::Localhost),
        ("app.localhost", NameKind::Localhost),
        ("a.b.LocalHost.", NameKind::Localhost),
        ("printer.local", NameKind::Local),
        ("Printer.LOCAL.", NameKind::Local),
        ("db.internal", NameKind::Internal),
        ("host.docker.internal", NameKind::Internal),
        ("ip-10-0-0-1.ec2.internal", NameKind::Internal),
        ("metadata.google.internal", NameKind::Metadata),
        ("METADATA.GOOGLE.INTERNAL.", NameKind::Metadata),
        ("", NameKind::Empty),
        (".", NameKind::Empty),
    ] {
        assert_eq!(kind(host), Some(expected), "{host:?}");
    }
    for host in [
        "example.com",
        "localhost.example.com",
        "notlocalhost",
        "mylocal",
        "local.example",
        "internal.example.com",
        "xinternal",
        "docs.rs",
    ] {
        assert_eq!(kind(host), None, "{host:?}");
    }
    let text = check_name("db.internal").unwrap_err().to_string();
    assert!(
        text.starts_with("refused: db.internal is an internal name"),
        "{text}"
    );
}

#[test]
fn literals_in_every_form_browsers_accept() {
    let loopback = Some(ip("127.0.0.1"));
    for host in [
        "127.0.0.1",
        "127.0.0.1.",
        "0x7f000001",
        "0X7F000001",
        "017700000001",
        "2130706433",
        "0x7f.0.0.1",
        "0x7f.0x0.0x0.0x1",
        "0177.0.0.1",
        "0177.0000.0.01",
        "127.1",
        "127.0.1",
        "127.0.0x1",
        "0x7f.1",
        "0177.1",
    ] {
        assert_eq!(literal(host), loopback, "{host}");
    }
    assert_eq!(literal("0"), Some(ip("0.0.0.0")));
    assert_eq!(literal("0x"), Some(ip("0.0.0.0")));
    assert_eq!(literal("10.1"), Some(ip("10.0.0.1")));
    assert_eq!(literal("192.168.257"), Some(ip("192.168.1.1")));
    assert_eq!(literal("4294967295"), Some(ip("255.255.255.255")));
    assert_eq!(literal("0xa9fea9fe"), Some(ip("169.254.169.254")));
    assert_eq!(literal("[::1]"), Some(ip("::1")));
    assert_eq!(literal("::1"), Some(ip("::1")));
    assert_eq!(literal("[::ffff:127.0.0.1]"), Some(ip("::ffff:127.0.0.1")));
    assert_eq!(literal("[fd00:ec2::254]"), Some(ip("fd00:ec2::254")));
}

#[test]
fn what_is_not_an_address_is_a_name() {
    for host in [
        "",
        ".",
        "..",
        "example.com",
        "1.2.3.4.5",
        "1..2.3",
        ".1.2.3",
        "256.0.0.1",
        "1.256.0.1",
        "1.2.3.256",
        "1.2.65536",
        "1.16777216",
        "4294967296",
        "0x100000000",
        "08",
        "0128.0.0.1",
        "0xg.0.0.1",
        "+1.2.3.4",
        "1.2.3.-4",
        " 1.2.3.4",
        "1.2.3.4 ",
        "1.2.3.4..",
        "99999999999999999999999",
        "[::1",
        "::1]",
        "[127.0.0.1]",
        "[::1]:80",
        "fe80::1%eth0",
        "1:2",
    ] {
        assert_eq!(literal(host), None, "{host:?}");
    }
}

#[test]
fn policy_entries_are_ranges_and_a_bad_one_is_named() {
    let p = policy(&[
        "127.0.0.1/32",
        "10.0.0.0/8",
        "::1/128",
        "192.168.1.7",
        "fd00::",
    ]);
    let shown: Vec<String> = p.allow_private().iter().map(|c| c.to_string()).collect();
    assert_eq!(
        shown,
        [
            "127.0.0.1/32",
            "10.0.0.0/8",
            "::1/128",
            "192.168.1.7/32",
            "fd00::/128"
        ]
    );
    assert_eq!(Policy::new::<String>(&[]).unwrap(), Policy::default());
    let bad = |entry: &str| Policy::new(&["10.0.0.0/8", entry]).unwrap_err();
    assert_eq!(bad("10.0.0.0/33").problem, CidrProblem::Prefix { max: 32 });
    assert_eq!(bad("::/129").problem, CidrProblem::Prefix { max: 128 });
    assert_eq!(bad("10.0.0.0/").problem, CidrProblem::Prefix { max: 32 });
    assert_eq!(bad("10.0.0.0/+8").problem, CidrProblem::Prefix { max: 32 });
    assert_eq!(bad("localhost/8").problem, CidrProblem::Address);
    assert_eq!(bad("0x7f.1/32").problem, CidrProblem::Address);
    assert_eq!(bad("[::1]/128").problem, CidrProblem::Address);
    let error = bad("10.0.0.1/8");
    assert_eq!(error.entry, "10.0.0.1/8");
    assert_eq!(
        error.to_string(),
        "tools.webFetch.allowPrivate entry \"10.0.0.1/8\" is not valid: \
         bits are set after the prefix (did you mean 10.0.0.0/8?)"
    );
    assert_eq!(
        Cidr::new(ip("10.0.0.0"), 8).map(|c| c.to_string()),
        Some("10.0.0.0/8".into())
    );
    assert_eq!(Cidr::new(ip("10.0.0.1"), 8), None);
    assert_eq!(Cidr::new(ip("10.0.0.0"), 33), None);
}

#[test]
fn ranges_contain_their_family_only() {
    let all_v4: Cidr = "0.0.0.0/0".parse().unwrap();
    assert!(all_v4.contains(ip("255.255.255.255")));
    assert!(!all_v4.contains(ip("::ffff:1.2.3.4")));
    let all_v6: Cidr = "::/0".parse().unwrap();
    assert!(all_v6.contains(ip("ffff::")));
    assert!(!all_v6.contains(ip("1.2.3.4")));
    let one: Cidr = "1.2.3.4/32".parse().unwrap();
    assert!(one.contains(ip("1.2.3.4")));
    assert!(!one.contains(ip("1.2.3.5")));
}

// === resolve: literals and names answered locally only ===

#[tokio::test]
async fn resolve_checks_a_literal_without_a_lookup() {
    let none = Policy::default();
    let refused = resolve("0x7f.1", 80, &none).await.unwrap_err();
    assert!(
        matches!(
            refused,
            ResolveError::Refused(Refused::Addr {
                class: Class::Loopback,
                ..
            })
        ),
        "{refused:?}"
    );
    assert!(matches!(
        resolve("[::1]", 80, &none).await,
        Err(ResolveError::Refused(_))
    ));
    let loopback = policy(&["127.0.0.0/8", "::1/128"]);
    assert_eq!(
        resolve("0x7f.1", 8080, &loopback).await.unwrap(),
        [SocketAddr::from(([127, 0, 0, 1], 8080))]
    );
    assert_eq!(
        resolve("[::1]", 443, &loopback).await.unwrap(),
        [SocketAddr::new(ip("::1"), 443)]
    );
    // A public literal needs no lookup either (and nothing connects to it here).
    assert_eq!(
        resolve("8.8.8.8", 443, &none).await.unwrap(),
        [SocketAddr::from(([8, 8, 8, 8], 443))]
    );
    assert!(matches!(
        resolve("169.254.169.254", 80, &policy(&["169.254.0.0/16"])).await,
        Err(ResolveError::Refused(Refused::Addr {
            class: Class::Metadata,
            ..
        }))
    ));
}

#[tokio::test]
async fn resolve_refuses_a_refused_name_before_any_lookup() {
    // Even with loopback opened: names are never opened.
    let loopback = policy(&["127.0.0.0/8", "::1/128"]);
    for host in [
        "localhost",
        "LOCALHOST.",
        "metadata.google.internal",
        "x.local",
    ] {
        assert!(
            matches!(
                resolve(host, 80, &loopback).await,
                Err(ResolveError::Refused(Refused::Name { .. }))
            ),
            "{host}"
        );
    }
}

/// A name `/etc/hosts` maps to loopback (other than `localhost`), so the resolver answers
/// from the file; none (no test) if there is no such line.
fn loopback_name_in_hosts_file() -> Option<String> {
    let hosts = std::fs::read_to_string("/etc/hosts").ok()?;
    hosts.lines().find_map(|line| {
        let line = line.split('#').next()?;
        let mut fields = line.split_whitespace();
        let addr: IpAddr = fields.next()?.parse().ok()?;
        if !addr.is_loopback() {
            return None;
        }
        fields
            .find(|name| check_name(name).is_ok() && literal(name).is_none())
            .map(str::to_string)
    })
}

#[tokio::test]
async fn resolve_checks_every_address_a_name_resolves_to() {
    let Some(name) = loopback_name_in_hosts_file() else {
        eprintln!("no name for loopback in /etc/hosts besides localhost: not tested");
        return;
    };
    let refused = resolve(&name, 80, &Policy::default()).await.unwrap_err();
    match &refused {
        ResolveError::Refused(Refused::Addr { class, host, ip }) => {
            assert_eq!(*class, Class::Loopback);
            assert_eq!(host.as_deref(), Some(name.as_str()));
            assert!(ip.is_loopback());
        }
        other => panic!("{name}: unexpected {other:?}"),
    }
    assert!(refused.to_string().contains(&format!("{name} resolves to")));
    let loopback = policy(&["127.0.0.0/8", "::1/128"]);
    let addrs = resolve(&name, 8080, &loopback).await.unwrap();
    assert!(!addrs.is_empty());
    for addr in &addrs {
        assert!(addr.ip().is_loopback() && addr.port() == 8080, "{addr}");
    }
}

// === properties ===

/// An address in `network/prefix` from random host bits.
fn v4_in(network: [u8; 4], prefix: u32) -> impl Strategy<Value = Ipv4Addr> {
    let base = u32::from(Ipv4Addr::from(network));
    let host_mask = u32::MAX.checked_shr(prefix).unwrap_or(0);
    any::<u32>().prop_map(move |bits| Ipv4Addr::from(base | (bits & host_mask)))
}

fn v6_in(network: Ipv6Addr, prefix: u32) -> impl Strategy<Value = Ipv6Addr> {
    let base = u128::from(network);
    let host_mask = u128::MAX.checked_shr(prefix).unwrap_or(0);
    any::<u128>().prop_map(move |bits| Ipv6Addr::from(base | (bits & host_mask)))
}

fn refused_v4_range() -> impl Strategy<Value = ([u8; 4], u32)> {
    prop::sample::select(vec![
        ([0, 0, 0, 0], 8),
        ([10, 0, 0, 0], 8),
        ([100, 64, 0, 0], 10),
        ([127, 0, 0, 0], 8),
        ([169, 254, 0, 0], 16),
        ([172, 16, 0, 0], 12),
        ([192, 0, 0, 0], 24),
        ([192, 168, 0, 0], 16),
        ([198, 18, 0, 0], 15),
        ([224, 0, 0, 0], 4),
        ([240, 0, 0, 0], 4),
    ])
}

fn refused_v4() -> impl Strategy<Value = Ipv4Addr> {
    refused_v4_range().prop_flat_map(|(net, prefix)| v4_in(net, prefix))
}

/// Written forms of one IPv4 address that `literal` must read as it.
fn forms(v4: Ipv4Addr) -> Vec<String> {
    let n = u32::from(v4);
    let [a, b, c, d] = v4.octets();
    vec![
        v4.to_string(),
        format!("{v4}."),
        n.to_string(),
        format!("0x{n:x}"),
        format!("0X{n:X}"),
        format!("0{n:o}"),
        format!("0x{a:x}.0x{b:x}.0x{c:x}.0x{d:x}"),
        format!("0{a:o}.0{b:o}.0{c:o}.0{d:o}"),
        format!("{a}.{b}.{}", n & 0xffff),
        format!("{a}.{}", n & 0xff_ffff),
        format!("0x{a:x}.0{b:o}.{c}.0x{d:X}"),
    ]
}

proptest! {
    #[test]
    fn all_of_10_slash_8_is_private(addr in v4_in([10, 0, 0, 0], 8)) {
        prop_assert_eq!(
            check_addr(IpAddr::V4(addr), &Policy::default()),
            Err(Refused::Addr { ip: IpAddr::V4(addr), class: Class::Private, host: None })
        );
    }

    #[test]
    fn every_address_of_a_refused_range_is_refused(addr in refused_v4()) {
        prop_assert!(check_addr(IpAddr::V4(addr), &Policy::default()).is_err());
    }

    #[test]
    fn refused_ipv6_ranges_are_refused(addr in prop_oneof![
        v6_in("fc00::".parse().unwrap(), 7),
        v6_in("fe80::".parse().unwrap(), 10),
        v6_in("ff00::".parse().unwrap(), 8),
        v6_in("64:ff9b::".parse().unwrap(), 96),
    ]) {
        prop_assert!(check_addr(IpAddr::V6(addr), &Policy::default()).is_err());
    }

    #[test]
    fn ipv4_mapped_and_compatible_forms_are_judged_as_their_ipv4(
        addr in prop_oneof![refused_v4(), any::<u32>().prop_map(Ipv4Addr::from)],
        opened in prop::sample::select(vec![
            vec![],
            vec!["10.0.0.0/8", "127.0.0.1/32"],
            vec!["0.0.0.0/0"],
        ]),
    ) {
        let policy = policy(&opened);
        let as_v4 = check_addr(IpAddr::V4(addr), &policy).map_err(|r| match r {
            Refused::Addr { class, .. } => class,
            Refused::Name { .. } => unreachable!(),
        });
        let mapped = IpAddr::V6(addr.to_ipv6_mapped());
        let as_mapped = check_addr(mapped, &policy).map_err(|r| match r {
            Refused::Addr { class, .. } => class,
            Refused::Name { .. } => unreachable!(),
        });
        prop_assert_eq!(as_v4, as_mapped);
        let compatible = check_addr(IpAddr::V6(addr.to_ipv6_compatible()), &policy);
        if u32::from(addr) > 1 {
            prop_assert_eq!(as_v4.is_err(), compatible.is_err());
        } else {
            // ::0.0.0.0 and ::0.0.0.1 are IPv6's own :: and ::1, refused as such.
            prop_assert!(compatible.is_err());
        }
    }

    #[test]
    fn nat64_of_a_refused_ipv4_is_refused_even_with_nat64_opened(addr in refused_v4()) {
        let nat64 = Ipv6Addr::from((0x0064_ff9b_u128 << 96) | u128::from(u32::from(addr)));
        let opened = policy(&["64:ff9b::/96"]);
        prop_assert!(check_addr(IpAddr::V6(nat64), &opened).is_err());
    }

    #[test]
    fn public_addresses_are_allowed(addr in prop_oneof![
        v4_in([8, 0, 0, 0], 8).prop_map(IpAddr::V4),
        v4_in([1, 0, 0, 0], 8).prop_map(IpAddr::V4),
        v6_in("2000::".parse().unwrap(), 3).prop_map(IpAddr::V6),
    ]) {
        prop_assert_eq!(check_addr(addr, &Policy::default()), Ok(()));
    }

    #[test]
    fn an_opened_range_allows_exactly_its_addresses_but_never_metadata(
        (net, prefix) in refused_v4_range(),
        extra in 0u32..=16,
        opened_bits in any::<u32>(),
        probe_bits in any::<u32>(),
    ) {
        // A sub-range of a refused range, and a probe somewhere in that refused range.
        let sub_prefix = (prefix + extra).min(32);
        let host_mask = u32::MAX.checked_shr(prefix).unwrap_or(0);
        let base = u32::from(Ipv4Addr::from(net));
        let sub_net = (base | (opened_bits & host_mask)) & !u32::MAX.checked_shr(sub_prefix).unwrap_or(0);
        let cidr = Cidr::new(IpAddr::V4(Ipv4Addr::from(sub_net)), sub_prefix as u8).unwrap();
        let policy = Policy::new(&[cidr.to_string()]).unwrap();
        let probe = IpAddr::V4(Ipv4Addr::from(base | (probe_bits & host_mask)));
        let metadata = matches!(
            check_addr(probe, &Policy::default()),
            Err(Refused::Addr { class: Class::Metadata, .. })
        );
        prop_assert_eq!(
            check_addr(probe, &policy).is_ok(),
            cidr.contains(probe) && !metadata
        );
    }

    #[test]
    fn literal_agrees_with_std_on_dotted_quads(n in any::<u32>()) {
        let v4 = Ipv4Addr::from(n);
        prop_assert_eq!(literal(&v4.to_string()), Some(IpAddr::V4(v4)));
    }

    #[test]
    fn literal_agrees_with_std_wherever_std_reads_an_address(host in "[0-9.]{1,16}") {
        if let Ok(v4) = host.parse::<Ipv4Addr>() {
            prop_assert_eq!(literal(&host), Some(IpAddr::V4(v4)));
        }
    }

    #[test]
    fn literal_reads_every_legacy_form(n in any::<u32>()) {
        let v4 = Ipv4Addr::from(n);
        for form in forms(v4) {
            prop_assert_eq!(literal(&form), Some(IpAddr::V4(v4)), "{}", form);
        }
    }

    #[test]
    fn literal_reads_ipv6_with_and_without_brackets(bits in any::<u128>()) {
        let v6 = Ipv6Addr::from(bits);
        prop_assert_eq!(literal(&v6.to_string()), Some(IpAddr::V6(v6)));
        prop_assert_eq!(literal(&format!("[{v6}]")), Some(IpAddr::V6(v6)));
    }

    #[test]
    fn literal_never_panics(host in "\\PC{0,40}") {
        let _ = literal(&host);
    }

    #[test]
    fn refused_names_are_refused_in_any_case_and_with_a_trailing_dot(
        label in "[a-z0-9-]{1,20}(\\.[a-z0-9-]{1,20}){0,2}",
        suffix in prop::sample::select(vec!["localhost", "local", "internal"]),
        upper in any::<bool>(),
        dot in any::<bool>(),
    ) {
        let mut host = format!("{label}.{suffix}");
        if upper { host = host.to_ascii_uppercase(); }
        if dot { host.push('.'); }
        prop_assert!(check_name(&host).is_err(), "{}", host);
    }

    #[test]
    fn other_names_pass(label in "[a-z0-9-]{1,20}(\\.[a-z0-9-]{1,20}){0,2}",
                        tld in prop::sample::select(vec!["com", "org", "io", "dev", "localdomain"])) {
        let host = format!("{label}.{tld}");
        prop_assert_eq!(check_name(&host), Ok(()));
    }

    #[test]
    fn ranges_print_as_they_parse(bits in any::<u32>(), prefix in 0u8..=32) {
        let masked = bits & u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
        let cidr = Cidr::new(IpAddr::V4(Ipv4Addr::from(masked)), prefix).unwrap();
        prop_assert_eq!(cidr.to_string().parse::<Cidr>(), Ok(cidr));
    }
}
