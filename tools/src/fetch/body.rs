//! A response's body: read up to a cap, its kind told from its type (or its first bytes),
//! decoded to text.

use encoding_rs::{Encoding, UTF_8};

/// What a body is, for what to do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// HTML (or XHTML): turned into text.
    Html,
    /// Text of another kind (plain, JSON, XML, CSV, JavaScript): passed through.
    Text,
    /// Anything else: described, not shown.
    Binary,
}

/// The start of a body a charset `<meta>` must be in (the HTML standard's prescan).
const META_PRESCAN_BYTES: usize = 1024;

/// A `Content-Type` header split into its lowercase essence (`text/html`) and its charset.
pub(super) fn split_content_type(header: &str) -> (String, Option<String>) {
    let mut parts = header.split(';');
    let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let charset = parts.find_map(|param| {
        let (key, value) = param.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| value.trim().trim_matches(['"', '\'']).to_string())
    });
    (essence, charset)
}

/// The kind of a body of type `essence` (`None`: no header, or an empty one), looking at
/// its first bytes only when the type says nothing.
pub(super) fn kind(essence: Option<&str>, body: &[u8]) -> Kind {
    match essence {
        Some(essence) => kind_of_type(essence),
        None => sniff(body),
    }
}

/// The kind a type names; types unknown to us are binary.
pub(super) fn kind_of_type(essence: &str) -> Kind {
    let (top, sub) = essence.split_once('/').unwrap_or((essence, ""));
    match (top, sub) {
        ("text", "html") | ("application", "xhtml+xml") => Kind::Html,
        ("text", _) => Kind::Text,
        ("application", sub)
            if sub.ends_with("+json")
                || sub.ends_with("+xml")
                || matches!(
                    sub,
                    "json"
                        | "xml"
                        | "javascript"
                        | "ecmascript"
                        | "x-javascript"
                        | "yaml"
                        | "x-yaml"
                        | "toml"
                        | "x-ndjson"
                        | "csv"
                        | "sql"
                        | "graphql"
                ) =>
        {
            Kind::Text
        }
        _ => Kind::Binary,
    }
}

/// A body without a type: HTML if it starts like HTML, text if its start has no NUL
/// byte and is UTF-8 (a cut multi-byte character at the end aside), else binary.
fn sniff(body: &[u8]) -> Kind {
    let head = &body[..body.len().min(META_PRESCAN_BYTES)];
    let start = head
        .strip_prefix(b"\xEF\xBB\xBF")
        .unwrap_or(head)
        .trim_ascii_start();
    let starts_with = |prefix: &[u8]| {
        start.len() >= prefix.len() && start[..prefix.len()].eq_ignore_ascii_case(prefix)
    };
    if starts_with(b"<!doctype html") || starts_with(b"<html") {
        return Kind::Html;
    }
    if head.contains(&0) {
        return Kind::Binary;
    }
    match std::str::from_utf8(head) {
        Ok(_) => Kind::Text,
        Err(error) if error.error_len().is_none() => Kind::Text,
        Err(_) => Kind::Binary,
    }
}

/// `body` as text: the charset of a byte order mark, else of the header, else (HTML) of a
/// `<meta>` in the first 1024 bytes, else UTF-8; bytes invalid in it become U+FFFD.
pub(super) fn decode(body: &[u8], header_charset: Option<&str>, html: bool) -> String {
    if let Some((encoding, bom)) = Encoding::for_bom(body) {
        return encoding
            .decode_without_bom_handling(&body[bom..])
            .0
            .into_owned();
    }
    let encoding = header_charset
        .and_then(|label| Encoding::for_label(label.as_bytes()))
        .or_else(|| html.then(|| meta_charset(body)).flatten())
        .unwrap_or(UTF_8);
    encoding.decode_without_bom_handling(body).0.into_owned()
}

/// The charset a `<meta charset=...>` or `<meta http-equiv content="...; charset=...">`
/// names in the first 1024 bytes. A page cannot be decoded as UTF-16 by what it says in
/// ASCII about itself, so UTF-16 there means UTF-8 (as the HTML standard says).
fn meta_charset(body: &[u8]) -> Option<&'static Encoding> {
    let head = body[..body.len().min(META_PRESCAN_BYTES)].to_ascii_lowercase();
    let mut rest = head.as_slice();
    while let Some(at) = find(rest, b"<meta") {
        let tag = &rest[at..];
        let end = tag.iter().position(|&b| b == b'>').unwrap_or(tag.len());
        let tag_text = &tag[..end];
        if let Some(encoding) = charset_in(tag_text).and_then(Encoding::for_label) {
            let utf16 = encoding == encoding_rs::UTF_16LE || encoding == encoding_rs::UTF_16BE;
            return Some(if utf16 { UTF_8 } else { encoding });
        }
        rest = &tag[end..];
    }
    None
}

/// The label after `charset` `=` in a tag, up to a quote, space, `;` or `/`.
fn charset_in(tag: &[u8]) -> Option<&[u8]> {
    let at = find(tag, b"charset")?;
    let after = tag[at + b"charset".len()..].trim_ascii_start();
    let value = after.strip_prefix(b"=")?.trim_ascii_start();
    let value = value
        .strip_prefix(b"\"")
        .or_else(|| value.strip_prefix(b"'"))
        .unwrap_or(value);
    let len = value
        .iter()
        .position(|&b| matches!(b, b'"' | b'\'' | b';' | b'/' | b' ' | b'\t' | b'\n' | b'\r'))
        .unwrap_or(value.len());
    (len > 0).then(|| &value[..len])
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// `n` with thousands separators: `12,345`.
pub(super) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}
