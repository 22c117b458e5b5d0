//! `pincer_tools::search` against the Brave and SearXNG fakes (written from protocols.md):
//! what reaches the upstream, how answers and failures come back. Loopback only.

use pincer_fakes::brave::{BraveFake, TEST_KEY, WebResult};
use pincer_fakes::searxng::{SearxResult, SearxngFake};
use pincer_tools::search::{Backend, Freshness, Query, SearchError, search};

fn query(text: &str) -> Query {
    Query {
        text: text.into(),
        count: 3,
        freshness: Some(Freshness::Week),
        country: Some("DE".into()),
        language: Some("de".into()),
    }
}

fn client() -> reqwest::Client {
    pincer_core::net::http_client().expect("client")
}

fn brave(fake: &BraveFake, key: &str) -> Backend {
    Backend::Brave {
        base_url: fake.base_url(),
        api_key: key.into(),
    }
}

#[tokio::test]
async fn brave_gets_the_query_and_its_results_come_back() {
    let fake = BraveFake::start();
    fake.set(|k| {
        k.results = Some(vec![
            WebResult::new("Rust", "https://www.rust-lang.org/", "A language")
                .dated("2 days ago", "2026-12-04"),
            WebResult::new("Tokio", "https://tokio.rs/", "A runtime"),
        ])
    });
    let hits = search(&client(), &brave(&fake, TEST_KEY), &query("rust async"))
        .await
        .expect("hits");
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0].url, "https://www.rust-lang.org/");
    assert_eq!(hits[0].snippet, "A language");
    assert_eq!(hits[0].age.as_deref(), Some("2 days ago"));
    let sent = fake.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].param("q"), Some("rust async"));
    assert_eq!(sent[0].param("count"), Some("3"));
    assert_eq!(sent[0].param("freshness"), Some("pw"));
    assert_eq!(sent[0].param("country"), Some("de"));
    assert_eq!(sent[0].param("search_lang"), Some("de"));
    assert_eq!(sent[0].header("x-subscription-token"), Some(TEST_KEY));
}

#[tokio::test]
async fn brave_failures_say_what_to_do() {
    let fake = BraveFake::start();
    let err = search(&client(), &brave(&fake, "wrong"), &query("x"))
        .await
        .unwrap_err();
    assert_eq!(err, SearchError::Key { status: 401 });
    assert!(err.to_string().contains("tools.webSearch.apiKey"));

    fake.rate_limit(1, 7);
    let err = search(&client(), &brave(&fake, TEST_KEY), &query("x"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        SearchError::RateLimited {
            retry_after: Some(7)
        }
    );

    fake.garbage_once();
    let err = search(&client(), &brave(&fake, TEST_KEY), &query("x"))
        .await
        .unwrap_err();
    assert!(matches!(err, SearchError::Garbled(_)), "{err:?}");

    let long = "word ".repeat(60);
    let err = search(&client(), &brave(&fake, TEST_KEY), &query(&long))
        .await
        .unwrap_err();
    assert!(matches!(err, SearchError::Rejected(_)), "{err:?}");
}

#[tokio::test]
async fn searxng_gets_json_and_its_results_are_trimmed_to_count() {
    let fake = SearxngFake::start();
    fake.set(|k| {
        k.results = Some(
            (0..8)
                .map(|n| {
                    SearxResult::new(&format!("r{n}"), &format!("https://e{n}.org/"), "text")
                        .by("duckduckgo")
                })
                .collect(),
        )
    });
    let backend = Backend::Searxng {
        base_url: fake.base_url(),
    };
    let hits = search(&client(), &backend, &query("pincer"))
        .await
        .expect("hits");
    assert_eq!(hits.len(), 3, "SearXNG has no count: trimmed here");
    assert_eq!(hits[2].title, "r2");
    let sent = fake.requests();
    assert_eq!(sent[0].param("format"), Some("json"));
    assert_eq!(sent[0].param("q"), Some("pincer"));
    assert_eq!(sent[0].param("time_range"), Some("week"));
    assert_eq!(sent[0].param("language"), Some("de"));

    fake.set(|k| k.json_disabled = true);
    let err = search(&client(), &backend, &query("pincer"))
        .await
        .unwrap_err();
    assert_eq!(err, SearchError::NoJson);
    assert!(err.to_string().contains("settings.yml"));
}
