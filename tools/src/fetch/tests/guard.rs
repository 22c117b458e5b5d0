//! Every hop through the SSRF guard: refusals happen before any connect, and the test
//! site's counter proves nothing reached it.

use std::time::{Duration, Instant};

use reqwest::Url;

use super::site::{Reply, Site, fetcher, loopback_policy};
use crate::fetch::{FetchArgs, FetchError, Fetcher, Target, check_url};
use crate::ssrf::{Class, NameKind, Policy, Refused};

/// The test site's own address in every spelling a URL allows.
fn loopback_spellings(port: u16) -> Vec<String> {
    vec![
        format!("http://127.0.0.1:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://LocalHost.:{port}/"),
        format!("http://[::1]:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        format!("http://0x7f000001:{port}/"),
        format!("http://2130706433:{port}/"),
        format!("http://017700000001:{port}/"),
        format!("http://0177.0.0.1:{port}/"),
        format!("http://127.1:{port}/"),
        format!("http://0.0.0.0:{port}/"),
        format!("https://127.0.0.1:{port}/"),
    ]
}

#[tokio::test]
async fn without_the_opt_in_loopback_is_refused_in_every_spelling() {
    // Invariant: the default policy never reaches this machine, however the host is written.
    let site = Site::start(|_, _| Reply::ok("text/plain", "reached")).await;
    let port = site.addr.port();
    let fetcher = Fetcher::new(Policy::default());
    for url in loopback_spellings(port) {
        let error = fetcher.fetch(&FetchArgs::new(&url)).await.expect_err(&url);
        assert!(error.refused().is_some(), "{url}: {error}");
        assert!(error.to_string().starts_with("refused: "), "{url}: {error}");
        // The guard function alone, as a redirect hop would be checked.
        let parsed = Url::parse(&url).expect("a URL");
        let hop = check_url(&parsed, &Policy::default())
            .await
            .expect_err(&url);
        assert!(hop.refused().is_some(), "{url}: {hop}");
    }
    assert_eq!(site.requests(), 0, "nothing reached the site");
}

#[tokio::test]
async fn the_guard_sees_the_address_the_url_parser_normalized() {
    // Legacy IPv4 forms are read by the URL parser as the address they are; the guard
    // judges that address, not a name.
    for (url, host) in [
        ("http://0x7f000001/", "127.0.0.1"),
        ("http://127.1/", "127.0.0.1"),
        ("http://017700000001/", "127.0.0.1"),
        ("http://0xa9.0xfe.0xa9.0xfe/", "169.254.169.254"),
        ("http://[0:0:0:0:0:ffff:7f00:1]/", "[::ffff:7f00:1]"),
    ] {
        let parsed = Url::parse(url).expect("a URL");
        assert_eq!(parsed.host_str(), Some(host), "{url}");
        let error = check_url(&parsed, &Policy::default()).await.expect_err(url);
        let Some(Refused::Addr { ip, .. }) = error.refused() else {
            panic!("{url}: {error}");
        };
        let expected: std::net::IpAddr = host.trim_matches(['[', ']']).parse().expect("an IP");
        assert_eq!(*ip, expected, "{url}");
    }
    let parsed = Url::parse("http://localhost/").expect("a URL");
    let error = check_url(&parsed, &loopback_policy())
        .await
        .expect_err("name");
    assert!(matches!(
        error.refused(),
        Some(Refused::Name {
            kind: NameKind::Localhost,
            ..
        })
    ));
}

#[tokio::test]
async fn only_http_and_https_are_fetched() {
    let fetcher = fetcher();
    for url in [
        "file:///etc/passwd",
        "ftp://127.0.0.1/",
        "gopher://127.0.0.1/",
        "data:text/plain,hi",
    ] {
        let error = fetcher.fetch(&FetchArgs::new(url)).await.expect_err(url);
        assert!(
            matches!(error, FetchError::Scheme { redirect: None, .. }),
            "{url}: {error}"
        );
        assert!(
            error.to_string().starts_with("only http and https"),
            "{error}"
        );
    }
    let error = fetcher
        .fetch(&FetchArgs::new("not a url"))
        .await
        .expect_err("not a URL");
    assert!(matches!(error, FetchError::BadUrl { .. }), "{error}");
}

/// Fetches `path` from a site whose `/to` redirects to `location`; the refusal and the
/// number of requests the site saw.
async fn redirect_into(location: &'static str) -> (FetchError, usize, Duration) {
    let site = Site::start(move |path, _| match path {
        "/to" => Reply::redirect(location),
        _ => Reply::ok("text/plain", "should not be fetched"),
    })
    .await;
    let started = Instant::now();
    let error = fetcher()
        .fetch(&FetchArgs::new(site.url("/to")))
        .await
        .expect_err(location);
    (error, site.requests(), started.elapsed())
}

#[tokio::test]
async fn a_redirect_into_a_private_address_is_refused_by_the_guard() {
    // Invariant: a redirect hop is checked before any connect: the error is the guard's
    // typed refusal (a connect attempt would be a timeout or a connect error instead),
    // it names the hop, and it comes at once.
    for (location, class) in [
        ("http://10.0.0.1/", Class::Private),
        ("http://169.254.169.254/latest/meta-data/", Class::Metadata),
        ("http://0xa9fea9fe/", Class::Metadata),
        ("http://192.168.0.1:8080/admin", Class::Private),
    ] {
        let (error, requests, elapsed) = redirect_into(location).await;
        let FetchError::Refused {
            source: Refused::Addr { class: got, .. },
            redirect: Some(1),
            ..
        } = &error
        else {
            panic!("{location}: {error:?}");
        };
        assert_eq!(*got, class, "{location}");
        let text = error.to_string();
        assert!(text.starts_with("refused: "), "{text}");
        assert!(text.contains("(redirect 1: http://"), "{text}");
        assert_eq!(requests, 1, "only the redirect itself was fetched");
        assert!(elapsed < Duration::from_secs(2), "{location}: {elapsed:?}");
    }
}

#[tokio::test]
async fn a_redirect_to_another_loopback_address_or_name_is_refused() {
    // The policy opens 127.0.0.1 alone; 127.0.0.2 and localhost stay refused.
    let (error, requests, _) = redirect_into("http://127.0.0.2/").await;
    assert!(
        matches!(
            error.refused(),
            Some(Refused::Addr {
                class: Class::Loopback,
                ..
            })
        ),
        "{error}"
    );
    assert_eq!(requests, 1);
    let (error, requests, _) = redirect_into("http://localhost/").await;
    assert!(
        matches!(error.refused(), Some(Refused::Name { .. })),
        "{error}"
    );
    assert_eq!(requests, 1);
}

#[tokio::test]
async fn a_redirect_to_another_scheme_is_refused_naming_the_hop() {
    let (error, requests, _) = redirect_into("file:///etc/passwd").await;
    assert!(
        matches!(
            error,
            FetchError::Scheme {
                redirect: Some(1),
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("redirect 1"), "{error}");
    assert_eq!(requests, 1);
}

#[tokio::test]
async fn a_hop_client_connects_a_name_only_to_the_checked_addresses() {
    // Invariant: a hop's client never looks a name up: the checked host goes to the
    // checked addresses, any other name fails inside the client. `.test` names are
    // reserved and never resolve, so reaching the site proves the pinned resolver.
    let site = Site::start(|_, _| Reply::ok("text/plain", "pinned")).await;
    let port = site.addr.port();
    let url = Url::parse(&format!("http://pinned.test:{port}/")).expect("a URL");
    let target = Target {
        url: url.clone(),
        host: "pinned.test".to_string(),
        addrs: vec![site.addr],
    };
    let client = target.client().expect("a client");
    let answer = client.get(url).send().await.expect("an answer");
    assert_eq!(answer.text().await.expect("text"), "pinned");
    let elsewhere = format!("http://elsewhere.test:{port}/");
    let error = client
        .get(&elsewhere)
        .send()
        .await
        .expect_err("not checked");
    let text = pincer_core::net::without_url(&error);
    assert!(text.contains("was not checked by the SSRF guard"), "{text}");
    assert_eq!(site.requests(), 1);
}
