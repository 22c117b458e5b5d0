//! A URL's host read as an IP address the way browsers and `inet_aton` read it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The IP address a URL's host stands for, or `None` if it is a name.
///
/// IPv6 with or without brackets (`[::1]`, `::1`; no zone ids). IPv4 as the WHATWG URL
/// standard's IPv4 parser and `inet_aton` read it, since the HTTP client and the system's
/// resolver both will: one to four parts separated by dots (one trailing dot allowed),
/// each decimal, octal with a leading `0` or hex with `0x`; the last part fills the bytes
/// the others leave. So `0x7f000001`, `017700000001`, `2130706433`, `0x7f.0.0.1`,
/// `0177.0.0.1`, `127.1` and `127.0.1` are all 127.0.0.1. A part out of range, a sign,
/// an empty part or a fifth part make it not an address (`None`), so a name.
pub fn literal(host: &str) -> Option<IpAddr> {
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']')?;
        return inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    if host.contains(':') {
        return host.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    ipv4(host).map(IpAddr::V4)
}

/// The legacy IPv4 forms: up to four numbers, the last filling the remaining bytes.
fn ipv4(host: &str) -> Option<Ipv4Addr> {
    let host = host.strip_suffix('.').unwrap_or(host);
    let mut parts = [0u64; 4];
    let mut count = 0;
    for part in host.split('.') {
        *parts.get_mut(count)? = number(part)?;
        count += 1;
    }
    let (last, leading) = parts[..count].split_last()?;
    if leading.iter().any(|&part| part > 255) {
        return None;
    }
    // The last part fills the bytes the leading ones do not: 32 bits alone, 8 as the fourth.
    let last_bits = 8 * (4 - leading.len() as u32);
    if *last >= 1u64 << last_bits {
        return None;
    }
    let high = leading
        .iter()
        .enumerate()
        .fold(0u64, |acc, (i, &part)| acc | part << (24 - 8 * i as u32));
    u32::try_from(high | last).ok().map(Ipv4Addr::from)
}

/// One part: `0x` hex (`0x` alone is 0, as in the URL standard), a leading `0` octal,
/// else decimal; digits only (no sign, no space).
fn number(part: &str) -> Option<u64> {
    let (digits, radix) =
        if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            if hex.is_empty() {
                return Some(0);
            }
            (hex, 16)
        } else if part.len() > 1 && part.starts_with('0') {
            (&part[1..], 8)
        } else {
            (part, 10)
        };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    // Too many digits for a u64 is out of range anyway.
    u64::from_str_radix(digits, radix).ok()
}
