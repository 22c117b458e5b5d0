//! The pieces without a network: types, charsets, titles, cutting, the cache, arguments.

use std::time::{Duration, Instant};

use crate::fetch::body::{self, Kind};
use crate::fetch::extract;
use crate::fetch::{
    Cache, CacheKey, DEFAULT_MAX_CHARS, ExtractMode, FetchArgs, MAX_MAX_CHARS, Page,
};

#[test]
fn content_types_sort_into_html_text_and_binary() {
    for (essence, kind) in [
        ("text/html", Kind::Html),
        ("application/xhtml+xml", Kind::Html),
        ("text/plain", Kind::Text),
        ("text/csv", Kind::Text),
        ("application/json", Kind::Text),
        ("application/ld+json", Kind::Text),
        ("application/rss+xml", Kind::Text),
        ("application/javascript", Kind::Text),
        ("image/png", Kind::Binary),
        ("application/pdf", Kind::Binary),
        ("application/octet-stream", Kind::Binary),
        ("video/mp4", Kind::Binary),
    ] {
        assert_eq!(body::kind(Some(essence), b"<html>"), kind, "{essence}");
    }
    assert_eq!(
        body::split_content_type("Text/HTML ; Charset=\"ISO-8859-1\""),
        ("text/html".to_string(), Some("ISO-8859-1".to_string()))
    );
    // No type: the first bytes decide.
    assert_eq!(body::kind(None, b"\n  <!DOCTYPE html><p>x"), Kind::Html);
    assert_eq!(body::kind(None, b"\xEF\xBB\xBF<HTML>"), Kind::Html);
    assert_eq!(body::kind(None, "plain words, déjà".as_bytes()), Kind::Text);
    assert_eq!(body::kind(None, b"\x89PNG\r\n\x1a\n\0\0"), Kind::Binary);
    assert_eq!(body::kind(None, b"\xff\xfe\xfd text"), Kind::Binary);
}

#[test]
fn charsets_come_from_bom_header_meta_then_utf8() {
    assert_eq!(body::decode(b"caf\xe9", Some("iso-8859-1"), false), "café");
    assert_eq!(
        body::decode(b"caf\xe9", Some("no-such-charset"), false),
        "caf\u{FFFD}"
    );
    assert_eq!(body::decode(b"caf\xe9", None, false), "caf\u{FFFD}");
    // A BOM wins over the header.
    assert_eq!(
        body::decode(b"\xEF\xBB\xBFcaf\xc3\xa9", Some("latin1"), false),
        "café"
    );
    assert_eq!(body::decode(b"\xFF\xFEh\0i\0", None, false), "hi");
    // The meta is read for HTML only, and the header wins over it.
    let meta = b"<meta charset='windows-1252'><p>\x93quoted\x94";
    assert!(body::decode(meta, None, true).contains("\u{201C}quoted\u{201D}"));
    assert!(body::decode(meta, None, false).contains('\u{FFFD}'));
    assert!(body::decode(meta, Some("utf-8"), true).contains('\u{FFFD}'));
    let unquoted = b"<META HTTP-EQUIV=Content-Type CONTENT=\"text/html;charset=ISO-8859-15\">\xa4";
    assert!(body::decode(unquoted, None, true).ends_with('€'));
    // UTF-16 named in ASCII is taken as UTF-8.
    assert!(body::decode("<meta charset=utf-16>é".as_bytes(), None, true).ends_with('é'));
    // A meta past the first 1024 bytes is not looked for.
    let late = [vec![b' '; 1100], b"<meta charset=latin1>\xe9".to_vec()].concat();
    assert!(body::decode(&late, None, true).ends_with('\u{FFFD}'));
}

#[test]
fn titles_are_found_decoded_and_bounded() {
    assert_eq!(
        extract::title("<html><head><TITLE lang=en>\n A &amp; B &#8212; &#x263A; &bogus; </TITLE>"),
        Some("A & B — ☺ &bogus;".to_string())
    );
    assert_eq!(
        extract::title("<titles>no</titles><title>yes</title>"),
        Some("yes".to_string())
    );
    assert_eq!(extract::title("<title>  </title>"), None);
    assert_eq!(extract::title("<p>no title</p>"), None);
    assert_eq!(
        extract::title("<title>unclosed"),
        Some("unclosed".to_string())
    );
    let long = format!("<title>{}</title>", "x".repeat(1_000));
    let title = extract::title(&long).expect("a title");
    assert_eq!(title.chars().count(), 301);
    assert!(title.ends_with('…'));
}

#[test]
fn cutting_counts_characters_not_bytes() {
    assert_eq!(
        extract::cut("short".to_string(), 5),
        ("short".to_string(), false)
    );
    let (cut, truncated) = extract::cut("ééééé".to_string(), 2);
    assert!(truncated);
    assert_eq!(cut, "éé\n\n[cut: the first 2 of 5 characters shown]");
    assert_eq!(body::thousands(0), "0");
    assert_eq!(body::thousands(999), "999");
    assert_eq!(body::thousands(1_000), "1,000");
    assert_eq!(body::thousands(12_345_678), "12,345,678");
}

#[test]
fn deep_and_odd_html_converts_without_failing() {
    let deep = format!("{}deep{}", "<div>".repeat(5_000), "</div>".repeat(5_000));
    for mode in [ExtractMode::Markdown, ExtractMode::Text] {
        let text = extract::html_to_text(&deep, mode).expect("converted");
        assert!(text.contains("deep"), "{mode:?}");
        for odd in [
            "",
            "<",
            "<table><tr><td>a<td>b</table>",
            "<p>unclosed <b>bold",
            "\0\0",
        ] {
            extract::html_to_text(odd, mode).expect(odd);
        }
    }
}

fn page(text: &str) -> Page {
    Page {
        url: "http://127.0.0.1/".to_string(),
        status: 200,
        content_type: None,
        title: None,
        text: text.to_string(),
        truncated: false,
        body_cut: false,
    }
}

fn key(n: usize) -> CacheKey {
    CacheKey {
        url: format!("http://127.0.0.1/{n}"),
        mode: ExtractMode::Markdown,
        max_chars: 100,
    }
}

#[test]
fn the_cache_expires_by_its_clock() {
    let ttl = Duration::from_secs(15 * 60);
    let mut cache = Cache::new(ttl, 10, 1_000_000);
    let start = Instant::now();
    cache.insert(key(1), page("one"), start);
    assert_eq!(
        cache
            .get(&key(1), start + ttl - Duration::from_secs(1))
            .map(|p| p.text),
        Some("one".into())
    );
    assert_eq!(cache.get(&key(1), start + ttl), None);
    assert!(cache.is_empty());
    assert_eq!(cache.bytes(), 0);
}

#[test]
fn the_cache_is_bounded_in_entries_and_bytes() {
    let now = Instant::now();
    let mut cache = Cache::new(Duration::from_secs(60), 3, 1_000_000);
    for n in 0..5 {
        cache.insert(key(n), page("x"), now);
    }
    assert_eq!(cache.len(), 3);
    assert!(cache.get(&key(0), now).is_none() && cache.get(&key(1), now).is_none());
    assert!(cache.get(&key(4), now).is_some());

    // Each entry is about 100 bytes of text plus ~40 of URLs: two fit in 300.
    let mut cache = Cache::new(Duration::from_secs(60), 100, 300);
    cache.insert(key(1), page(&"a".repeat(100)), now);
    cache.insert(key(2), page(&"b".repeat(100)), now);
    cache.insert(key(3), page(&"c".repeat(100)), now);
    assert_eq!(cache.len(), 2);
    assert!(cache.get(&key(1), now).is_none());
    assert!(cache.bytes() <= 300);
    // A page larger than the whole bound is not kept, and evicts nothing.
    cache.insert(key(4), page(&"d".repeat(1_000)), now);
    assert_eq!(cache.len(), 2);
    // Replacing an entry does not count it twice.
    cache.insert(key(3), page(&"e".repeat(100)), now);
    assert_eq!(cache.len(), 2);
    assert_eq!(
        cache.get(&key(3), now).map(|p| p.text),
        Some("e".repeat(100))
    );
}

#[test]
fn arguments_parse_as_the_model_sends_them() {
    let args: FetchArgs = serde_json::from_str(r#"{"url": "https://example.com/"}"#).expect("args");
    assert_eq!(args, FetchArgs::new("https://example.com/"));
    assert_eq!(args.effective_max_chars(), DEFAULT_MAX_CHARS);
    let args: FetchArgs =
        serde_json::from_str(r#"{"url": "u", "extract_mode": "Text", "max_chars": 999999}"#)
            .expect("args");
    assert_eq!(args.extract_mode, ExtractMode::Text);
    assert_eq!(args.effective_max_chars(), MAX_MAX_CHARS);
    let args: FetchArgs =
        serde_json::from_str(r#"{"url": "u", "extract_mode": "markdown", "max_chars": 0}"#)
            .expect("args");
    assert_eq!(args.extract_mode, ExtractMode::Markdown);
    assert_eq!(args.effective_max_chars(), 1);
    for bad in [
        r#"{}"#,
        r#"{"url": "u", "extract_mode": "pdf"}"#,
        r#"{"url": "u", "depth": 2}"#,
    ] {
        assert!(serde_json::from_str::<FetchArgs>(bad).is_err(), "{bad}");
    }
}
