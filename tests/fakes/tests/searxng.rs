//! The SearXNG fake, driven over loopback HTTP with a plain client: the JSON answer, the
//! POST form, formats (HTML fallback, JSON disabled), parameter checks, the limiter,
//! latency, and what the fake records.

use std::time::{Duration, Instant};

use pincer_fakes::searxng::{Knobs, SEARCH_PATH, SearxResult, SearxngFake};
use serde_json::{Value, json};

/// A client that never goes through a proxy: traffic stays on loopback.
fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Status, content type and raw body.
async fn parts(resp: reqwest::Response) -> (u16, String, String) {
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, resp.text().await.unwrap())
}

/// `GET /search` with these query pairs.
async fn get(fake: &SearxngFake, params: &[(&str, &str)]) -> (u16, String, String) {
    parts(
        client()
            .get(fake.search_url())
            .query(params)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// `GET /search` with `format=json` added; status and JSON body.
async fn get_json(fake: &SearxngFake, params: &[(&str, &str)]) -> (u16, Value) {
    let mut params = params.to_vec();
    params.push(("format", "json"));
    let (status, content_type, body) = get(fake, &params).await;
    assert_eq!(content_type, "application/json", "{body}");
    (status, serde_json::from_str(&body).unwrap())
}

fn results(body: &Value) -> &Vec<Value> {
    body["results"].as_array().unwrap()
}

#[tokio::test]
async fn get_json_answers_searxng_shape_and_records_the_request() {
    let fake = SearxngFake::start();
    let (status, body) = get_json(&fake, &[("q", "rust async io")]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["query"], "rust async io");
    assert_eq!(body["number_of_results"], 0);
    for key in [
        "answers",
        "suggestions",
        "infoboxes",
        "corrections",
        "unresponsive_engines",
    ] {
        assert_eq!(body[key], json!([]), "{key}");
    }
    let results = results(&body);
    assert_eq!(results.len(), 5);
    for r in results {
        for key in ["url", "title", "content", "engine"] {
            assert!(r[key].as_str().is_some_and(|s| !s.is_empty()), "{key}: {r}");
        }
        assert_eq!(r["engines"], json!([r["engine"]]));
    }
    assert!(
        results[0]["title"]
            .as_str()
            .unwrap()
            .contains("rust async io")
    );
    assert_eq!(results[0]["publishedDate"], "2026-12-04T09:30:00");
    // Present and null when the engine gave no date, as SearXNG serialises it.
    assert!(results[2].get("publishedDate").is_some_and(Value::is_null));
    let engines: Vec<&str> = results
        .iter()
        .map(|r| r["engine"].as_str().unwrap())
        .collect();
    assert_eq!(
        engines,
        [
            "duckduckgo",
            "wikipedia",
            "brave",
            "duckduckgo",
            "wikipedia"
        ]
    );

    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", SEARCH_PATH));
    assert_eq!(r.query, "q=rust+async+io&format=json");
    assert_eq!(r.param("q"), Some("rust async io"));
    assert_eq!(r.param("format"), Some("json"));
    assert!(r.form.is_empty());
    assert_eq!(r.status, Some(200));
}

#[tokio::test]
async fn post_form_takes_the_same_parameters() {
    let fake = SearxngFake::start();
    let form = [
        ("q", "tokio"),
        ("format", "json"),
        ("categories", "general,it"),
        ("engines", "bing, mojeek"),
        ("language", "de-DE"),
        ("pageno", "2"),
        ("time_range", "month"),
        ("safesearch", "2"),
    ];
    let resp = client()
        .post(format!("{}?q=ignored&extra=kept", fake.search_url()))
        .form(&form)
        .send()
        .await
        .unwrap();
    let (status, content_type, body) = parts(resp).await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, "application/json"),
        "{body}"
    );
    let body: Value = serde_json::from_str(&body).unwrap();
    // Form fields win over the query string's.
    assert_eq!(body["query"], "tokio");
    let engines: Vec<&str> = results(&body)
        .iter()
        .map(|r| r["engine"].as_str().unwrap())
        .collect();
    assert_eq!(engines, ["bing", "mojeek", "bing", "mojeek", "bing"]);

    let r = &fake.requests()[0];
    assert_eq!(r.method, "POST");
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let sent: Vec<(String, String)> = form
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    assert_eq!(r.form, sent);
    assert_eq!(r.param("q"), Some("tokio"));
    assert_eq!(r.param("extra"), Some("kept"));
    assert_eq!(r.param("categories"), Some("general,it"));
    assert_eq!(r.param("time_range"), Some("month"));
    assert_eq!(r.param("safesearch"), Some("2"));
    assert_eq!(
        r.query_pairs,
        [
            ("q".to_owned(), "ignored".to_owned()),
            ("extra".to_owned(), "kept".to_owned())
        ]
    );
}

#[tokio::test]
async fn every_scripted_result_is_returned_untrimmed() {
    let scripted: Vec<SearxResult> = (1..=30)
        .map(|i| SearxResult::new(&format!("R{i}"), &format!("https://example.com/{i}"), "c"))
        .collect();
    let fake = SearxngFake::start_with(Knobs {
        results: Some(scripted),
        number_of_results: Some(1234),
        suggestions: vec!["rust lang".to_owned()],
        unresponsive_engines: vec![("brave".to_owned(), "timeout".to_owned())],
        ..Knobs::default()
    });
    let (status, body) = get_json(&fake, &[("q", "x")]).await;
    assert_eq!(status, 200);
    assert_eq!(results(&body).len(), 30);
    assert_eq!(results(&body)[29]["title"], "R30");
    assert_eq!(results(&body)[0]["engine"], "duckduckgo");
    assert_eq!(body["number_of_results"], 1234);
    assert_eq!(body["suggestions"], json!(["rust lang"]));
    assert_eq!(body["unresponsive_engines"], json!([["brave", "timeout"]]));

    fake.set(|k| {
        k.results = Some(vec![
            SearxResult::new("Dated", "https://example.org/d", "c")
                .by("google")
                .published("2026-01-02T03:04:05"),
        ]);
    });
    let (_, body) = get_json(&fake, &[("q", "x")]).await;
    assert_eq!(results(&body)[0]["engine"], "google");
    assert_eq!(results(&body)[0]["publishedDate"], "2026-01-02T03:04:05");
}

#[tokio::test]
async fn json_disabled_is_403_while_html_still_answers() {
    let fake = SearxngFake::start_with(Knobs {
        json_disabled: true,
        ..Knobs::default()
    });
    let (status, content_type, body) = get(&fake, &[("q", "x"), ("format", "json")]).await;
    assert_eq!(status, 403);
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(body.contains("403 Forbidden"), "{body}");
    // Refused before the query is looked at, as SearXNG checks the format first.
    let (status, _, _) = get(&fake, &[("format", "json")]).await;
    assert_eq!(status, 403);
    let (status, content_type, _) = get(&fake, &[("q", "x")]).await;
    assert_eq!((status, content_type.starts_with("text/html")), (200, true));

    fake.set(|k| k.json_disabled = false);
    let (status, _) = get_json(&fake, &[("q", "x")]).await;
    assert_eq!(status, 200);
    let statuses: Vec<Option<u16>> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [403, 403, 200, 200].map(Some).to_vec());
}

#[tokio::test]
async fn missing_or_other_format_answers_html() {
    let fake = SearxngFake::start();
    for params in [&[("q", "tokio")][..], &[("q", "tokio"), ("format", "xml")]] {
        let (status, content_type, body) = get(&fake, params).await;
        assert_eq!(status, 200);
        assert_eq!(content_type, "text/html; charset=utf-8");
        assert!(body.contains("<article class=\"result"), "{body}");
        assert!(body.contains("tokio - Overview"), "{body}");
        assert!(serde_json::from_str::<Value>(&body).is_err());
    }
    // csv and rss exist in SearXNG but are not enabled here.
    let (status, _, _) = get(&fake, &[("q", "x"), ("format", "csv")]).await;
    assert_eq!(status, 403);
    // The HTML format without a query is the start page.
    let (status, _, body) = get(&fake, &[]).await;
    assert_eq!(status, 200);
    assert!(body.contains("index_endpoint"), "{body}");
}

#[tokio::test]
async fn bad_parameters_are_400_with_searxng_messages() {
    let fake = SearxngFake::start();
    let cases: [(&[(&str, &str)], &str); 7] = [
        (&[], "No query"),
        (&[("q", "")], "No query"),
        (
            &[("q", "x"), ("pageno", "0")],
            "Invalid value \"0\" for parameter pageno",
        ),
        (&[("q", "x"), ("pageno", "")], "Empty pageno parameter"),
        (
            &[("q", "x"), ("language", "english")],
            "Invalid value \"english\" for parameter language",
        ),
        (
            &[("q", "x"), ("safesearch", "3")],
            "Invalid value \"3\" for parameter safesearch",
        ),
        (
            &[("q", "x"), ("time_range", "decade")],
            "Invalid value \"decade\" for parameter time_range",
        ),
    ];
    for (params, message) in cases {
        let (status, body) = get_json(&fake, params).await;
        assert_eq!(
            (status, body),
            (400, json!({ "error": message })),
            "{params:?}"
        );
    }
    // Every accepted value passes; `week` included, as real SearXNG accepts it.
    for time_range in ["day", "week", "month", "year", ""] {
        let (status, _) = get_json(&fake, &[("q", "x"), ("time_range", time_range)]).await;
        assert_eq!(status, 200, "{time_range}");
    }
    for safesearch in ["0", "1", "2"] {
        let (status, _) = get_json(&fake, &[("q", "x"), ("safesearch", safesearch)]).await;
        assert_eq!(status, 200, "{safesearch}");
    }
    let (status, _) = get_json(&fake, &[("q", "x"), ("language", "auto"), ("pageno", "3")]).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn limiter_429_then_latency() {
    let fake = SearxngFake::start_with(Knobs {
        rate_limited_requests: 2,
        ..Knobs::default()
    });
    for _ in 0..2 {
        let (status, _, body) = get(&fake, &[("q", "x"), ("format", "json")]).await;
        assert_eq!((status, body.as_str()), (429, "Too Many Requests"));
    }
    assert_eq!(fake.knobs().rate_limited_requests, 0);
    let (status, _) = get_json(&fake, &[("q", "x")]).await;
    assert_eq!(status, 200);

    fake.set(|k| k.latency = Duration::from_millis(300));
    let started = Instant::now();
    let (status, _) = get_json(&fake, &[("q", "slow")]).await;
    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn other_paths_and_methods_get_flask_pages() {
    let fake = SearxngFake::start();
    let (status, content_type, body) = parts(
        client()
            .get(format!("{}/api/search", fake.base_url()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    assert!(content_type.starts_with("text/html") && body.contains("Not Found"));
    let resp = client().put(fake.search_url()).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(fake.requests().len(), 2);
    fake.clear_requests();
    assert!(fake.requests().is_empty());
}
