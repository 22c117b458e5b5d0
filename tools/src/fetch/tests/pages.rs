//! Pages from the test site: conversion, redirects, limits, charsets, the cache.

use std::time::{Duration, Instant};

use super::site::{Reply, Site, fetcher, fetcher_with};
use crate::fetch::{ExtractMode, FetchArgs, FetchError, Limits};

const ARTICLE: &str = r#"<!DOCTYPE html>
<html><head><title>Tea &amp; biscuits</title>
<style>p { color: red }</style><script>var secret = "not text";</script></head>
<body>
<h1>Brewing</h1>
<p>Warm the pot <em>first</em>, then add <strong>loose leaves</strong>.</p>
<ul><li>Assam</li><li>Darjeeling</li></ul>
<p>See <a href="https://example.com/tea">the guide</a> and <code>steep()</code>.</p>
</body></html>"#;

#[tokio::test]
async fn html_becomes_markdown() {
    let site = Site::start(|_, _| Reply::ok("text/html; charset=utf-8", ARTICLE)).await;
    let page = fetcher()
        .fetch(&FetchArgs::new(site.url("/article")))
        .await
        .expect("a page");
    assert_eq!(page.status, 200);
    assert_eq!(page.status_line(), "200 OK");
    assert_eq!(page.content_type.as_deref(), Some("text/html"));
    assert_eq!(page.title.as_deref(), Some("Tea & biscuits"));
    assert_eq!(page.url, site.url("/article"));
    assert!(!page.truncated && !page.body_cut);
    let text = &page.text;
    for expected in [
        "# Brewing",
        "*first*",
        "**loose leaves**",
        "* Assam",
        "* Darjeeling",
        "[the guide][1]",
        "[1]: https://example.com/tea",
        "`steep()`",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
    assert!(
        !text.contains("secret") && !text.contains("color"),
        "{text}"
    );
}

#[tokio::test]
async fn html_becomes_plain_text() {
    let site = Site::start(|_, _| Reply::ok("text/html", ARTICLE)).await;
    let page = fetcher()
        .fetch(&FetchArgs::new(site.url("/")).mode(ExtractMode::Text))
        .await
        .expect("a page");
    let text = &page.text;
    assert_eq!(page.title.as_deref(), Some("Tea & biscuits"));
    for expected in [
        "Brewing",
        "Warm the pot first, then add loose leaves.",
        "Assam",
        "the guide",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
    for markup in ["# ", "*first*", "**", "[1]", "`"] {
        assert!(!text.contains(markup), "{markup:?} in:\n{text}");
    }
}

#[tokio::test]
async fn text_and_json_pass_through() {
    let site = Site::start(|path, _| match path {
        "/json" => Reply::ok("application/json", r#"{"tea": "<b>green</b>"}"#),
        _ => Reply::ok("text/plain", "# not a heading\n<b>not bold</b>"),
    })
    .await;
    let fetcher = fetcher();
    let json = fetcher
        .fetch(&FetchArgs::new(site.url("/json")))
        .await
        .expect("json");
    assert_eq!(json.text, r#"{"tea": "<b>green</b>"}"#);
    assert_eq!(json.title, None);
    let plain = fetcher
        .fetch(&FetchArgs::new(site.url("/plain")))
        .await
        .expect("text");
    assert_eq!(plain.text, "# not a heading\n<b>not bold</b>");
}

#[tokio::test]
async fn a_redirect_chain_of_two_hops_is_followed() {
    let site = Site::start(|path, addr| match path {
        "/first" => Reply::redirect(format!("http://{addr}/second")),
        "/second" => Reply::redirect("/final?x=1").status("301 Moved Permanently"),
        "/final?x=1" => Reply::ok("text/plain", "arrived"),
        other => Reply::ok("text/plain", format!("unexpected {other}")).status("404 Not Found"),
    })
    .await;
    let page = fetcher()
        .fetch(&FetchArgs::new(site.url("/first")))
        .await
        .expect("a page");
    assert_eq!(page.text, "arrived");
    assert_eq!(page.url, site.url("/final?x=1"));
    assert_eq!(site.requests(), 3);
}

#[tokio::test]
async fn more_than_three_redirects_is_an_error() {
    let site = Site::start(|path, _| {
        let n: u32 = path.trim_start_matches("/hop/").parse().unwrap_or(0);
        Reply::redirect(format!("/hop/{}", n + 1))
    })
    .await;
    let error = fetcher()
        .fetch(&FetchArgs::new(site.url("/hop/0")))
        .await
        .expect_err("a loop");
    assert!(matches!(error, FetchError::TooManyRedirects(3)), "{error}");
    assert_eq!(error.to_string(), "too many redirects (3)");
    assert_eq!(site.requests(), 4, "the first request and three redirects");
}

#[tokio::test]
async fn an_oversized_body_is_cut_with_a_note() {
    let site = Site::start(|_, _| Reply::ok("text/plain", "a".repeat(50_000))).await;
    let limits = Limits {
        max_body_bytes: 10_000,
        ..Limits::default()
    };
    let page = fetcher_with(limits)
        .fetch(&FetchArgs::new(site.url("/big")))
        .await
        .expect("a page");
    assert!(page.body_cut);
    assert!(!page.truncated);
    let (body, note) = page.text.split_once("\n\n").expect("a note");
    assert_eq!(body, "a".repeat(10_000));
    assert_eq!(note, "[page cut: only the first 10,000 bytes were read]");
}

#[tokio::test]
async fn text_is_cut_to_max_chars_with_a_marker() {
    let site = Site::start(|_, _| Reply::ok("text/plain; charset=utf-8", "é".repeat(1_000))).await;
    let page = fetcher()
        .fetch(&FetchArgs::new(site.url("/")).max_chars(100))
        .await
        .expect("a page");
    assert!(page.truncated);
    assert!(page.text.starts_with(&"é".repeat(100)));
    assert!(!page.text.starts_with(&"é".repeat(101)));
    assert!(
        page.text
            .ends_with("[cut: the first 100 of 1,000 characters shown]"),
        "{}",
        page.text
    );
}

#[tokio::test]
async fn binary_content_is_described_not_shown() {
    let site = Site::start(|path, _| match path {
        "/png" => Reply::ok("image/png", vec![0x89; 12_345]),
        "/pdf" => Reply::ok("application/pdf", b"%PDF-1.7 ...".to_vec()),
        _ => Reply {
            length: false,
            ..Reply::ok("application/octet-stream", vec![0u8; 3_000])
        },
    })
    .await;
    let fetcher = fetcher();
    let fetch = |path: &'static str| {
        let fetcher = &fetcher;
        let url = site.url(path);
        async move { fetcher.fetch(&FetchArgs::new(url)).await.expect(path) }
    };
    assert_eq!(
        fetch("/png").await.text,
        "binary content (image/png, 12,345 bytes) not shown"
    );
    assert_eq!(
        fetch("/pdf").await.text,
        "binary content (application/pdf, 12 bytes) not shown"
    );
    let stream = fetch("/stream").await;
    assert_eq!(
        stream.text,
        "binary content (application/octet-stream, 3,000 bytes) not shown"
    );
    assert_eq!(
        stream.content_type.as_deref(),
        Some("application/octet-stream")
    );
}

#[tokio::test]
async fn a_slow_server_times_out() {
    let site = Site::start(|_, _| Reply {
        delay: Duration::from_secs(10),
        ..Reply::ok("text/plain", "too late")
    })
    .await;
    let limits = Limits {
        timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let started = Instant::now();
    let error = fetcher_with(limits)
        .fetch(&FetchArgs::new(site.url("/slow")))
        .await
        .expect_err("too slow");
    assert!(matches!(error, FetchError::Timeout(_)), "{error}");
    assert_eq!(error.to_string(), "timed out after 0.2 s");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(
        FetchError::Timeout(Limits::default().timeout).to_string(),
        "timed out after 30 s"
    );
}

#[tokio::test]
async fn latin_1_pages_are_decoded_by_header_or_meta() {
    let site = Site::start(|path, _| match path {
        "/header" => Reply::ok(
            "text/html; charset=ISO-8859-1",
            b"<html><head><title>Caf\xe9</title></head><body><p>cr\xe8me br\xfbl\xe9e</p></body></html>".to_vec(),
        ),
        "/meta" => Reply::ok(
            "text/html",
            b"<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=windows-1252\"></head><body><p>na\xefve \x80</p></body></html>".to_vec(),
        ),
        "/plain" => Reply::ok("text/plain; charset=latin1", b"gr\xfc\xdfe".to_vec()),
        _ => Reply::ok("text/html", "<p>déjà vu \u{1F375}</p>"),
    })
    .await;
    let fetcher = fetcher();
    let text = |path: &'static str| {
        let fetcher = &fetcher;
        let url = site.url(path);
        async move {
            fetcher
                .fetch(&FetchArgs::new(url).mode(ExtractMode::Text))
                .await
                .expect(path)
        }
    };
    let header = text("/header").await;
    assert_eq!(header.text, "crème brûlée");
    assert_eq!(header.title.as_deref(), Some("Café"));
    assert_eq!(text("/meta").await.text, "naïve €");
    assert_eq!(text("/plain").await.text, "grüße");
    assert_eq!(text("/utf8").await.text, "déjà vu \u{1F375}");
}

#[tokio::test]
async fn error_statuses_are_pages_with_their_status() {
    let site =
        Site::start(|_, _| Reply::ok("text/html", "<p>No such tea.</p>").status("404 Not Found"))
            .await;
    let fetcher = fetcher();
    let page = fetcher
        .fetch(&FetchArgs::new(site.url("/missing")))
        .await
        .expect("a page");
    assert_eq!(page.status, 404);
    assert_eq!(page.status_line(), "404 Not Found");
    assert!(!page.is_success());
    assert_eq!(page.text, "No such tea.");
    // Not cached: asked again, fetched again.
    fetcher
        .fetch(&FetchArgs::new(site.url("/missing")))
        .await
        .expect("a page");
    assert_eq!(site.requests(), 2);
}

#[tokio::test]
async fn pages_are_cached_by_url_mode_and_max_chars() {
    let site = Site::start(|_, _| Reply::ok("text/html", ARTICLE)).await;
    let limits = Limits {
        cache_ttl: Duration::from_millis(300),
        ..Limits::default()
    };
    let fetcher = fetcher_with(limits);
    let args = FetchArgs::new(site.url("/article"));
    let first = fetcher.fetch(&args).await.expect("a page");
    let again = fetcher.fetch(&args).await.expect("a page");
    assert_eq!(first, again);
    assert_eq!(site.requests(), 1, "the second came from the cache");
    // The same URL normalized is the same entry.
    let spelled = FetchArgs::new(site.url("/article").replace("http://", "HTTP://"));
    fetcher.fetch(&spelled).await.expect("a page");
    assert_eq!(site.requests(), 1);
    // Another mode or max_chars is another entry.
    fetcher
        .fetch(&args.clone().mode(ExtractMode::Text))
        .await
        .expect("a page");
    fetcher
        .fetch(&args.clone().max_chars(10))
        .await
        .expect("a page");
    assert_eq!(site.requests(), 3);
    // Past the time to live, fetched again.
    tokio::time::sleep(Duration::from_millis(400)).await;
    fetcher.fetch(&args).await.expect("a page");
    assert_eq!(site.requests(), 4);
}
