//! The Brave Search fake, driven over loopback HTTP with a plain client: the answer's
//! shape, `count`, keys, parameter validation, rate limiting, latency, a garbage body, and
//! what the fake records.

use std::time::{Duration, Instant};

use pincer_fakes::brave::{BraveFake, Knobs, MAX_COUNT, SEARCH_PATH, TEST_KEY, WebResult};
use serde_json::{Value, json};

/// A client that never goes through a proxy: traffic stays on loopback.
fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// `GET {search_url}` with these query pairs and key; status, headers and raw body.
async fn search_raw(
    fake: &BraveFake,
    key: Option<&str>,
    params: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut req = client()
        .get(fake.search_url())
        .query(params)
        .header("Accept", "application/json");
    if let Some(key) = key {
        req = req.header("X-Subscription-Token", key);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap())
}

/// The same, body parsed as JSON.
async fn search(fake: &BraveFake, key: Option<&str>, params: &[(&str, &str)]) -> (u16, Value) {
    let (status, _, body) = search_raw(fake, key, params).await;
    (status, serde_json::from_str(&body).unwrap())
}

/// Asserts Brave's error shape and returns `error`.
fn assert_error(body: &Value, status: u16, code: &str) -> Value {
    assert_eq!(body["type"], "ErrorResponse", "{body}");
    let error = &body["error"];
    assert_eq!(error["status"], status, "{body}");
    assert_eq!(error["code"], code, "{body}");
    assert!(
        error["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    assert_eq!(error["id"].as_str().map(str::len), Some(36), "{body}");
    assert!(
        body["time"].as_u64().is_some_and(|t| t > 1_700_000_000),
        "{body}"
    );
    error.clone()
}

/// Query pairs as sent.
type Params<'a> = &'a [(&'a str, &'a str)];

fn results(body: &Value) -> &Vec<Value> {
    body["web"]["results"].as_array().unwrap()
}

#[tokio::test]
async fn happy_path_answers_brave_shape_and_records_the_request() {
    let fake = BraveFake::start();
    let (status, body) = search(&fake, Some(TEST_KEY), &[("q", "rust async io")]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["type"], "search");
    assert_eq!(body["query"]["original"], "rust async io");
    assert_eq!(body["web"]["type"], "search");
    // The default set: five results, the first two dated, the rest not.
    let results = results(&body);
    assert_eq!(results.len(), 5);
    for r in results {
        for key in ["title", "url", "description"] {
            assert!(r[key].as_str().is_some_and(|s| !s.is_empty()), "{key}: {r}");
        }
        assert!(r["url"].as_str().unwrap().starts_with("https://"), "{r}");
    }
    assert!(
        results[0]["title"]
            .as_str()
            .unwrap()
            .contains("rust async io")
    );
    assert_eq!(results[0]["age"], "2 days ago");
    assert_eq!(results[0]["page_age"], "2026-12-04T09:30:00");
    assert!(results[2].get("age").is_none() && results[2].get("page_age").is_none());

    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", SEARCH_PATH));
    assert_eq!(r.query, "q=rust+async+io");
    assert_eq!(r.param("q"), Some("rust async io"));
    assert_eq!(r.token.as_deref(), Some(TEST_KEY));
    assert_eq!(r.header("Accept"), Some("application/json"));
    assert_eq!(r.status, Some(200));
}

#[tokio::test]
async fn count_trims_scripted_results_default_twenty() {
    let scripted: Vec<WebResult> = (1..=25)
        .map(|i| {
            WebResult::new(
                &format!("Result {i}"),
                &format!("https://example.com/{i}"),
                "d",
            )
        })
        .collect();
    let fake = BraveFake::start_with(Knobs {
        results: Some(scripted),
        ..Knobs::default()
    });
    let (status, body) = search(&fake, Some(TEST_KEY), &[("q", "x")]).await;
    assert_eq!(status, 200);
    assert_eq!(results(&body).len(), MAX_COUNT);
    assert_eq!(body["query"]["more_results_available"], true);

    let (_, body) = search(&fake, Some(TEST_KEY), &[("q", "x"), ("count", "3")]).await;
    let titles: Vec<&str> = results(&body)
        .iter()
        .map(|r| r["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Result 1", "Result 2", "Result 3"]);
    // Scripted results carry no age unless given one.
    assert!(results(&body)[0].get("age").is_none());

    fake.set(|k| {
        k.results = Some(vec![
            WebResult::new("Only", "https://example.org/", "one")
                .dated("1 hour ago", "2026-12-06T15:00:00"),
        ]);
    });
    let (_, body) = search(&fake, Some(TEST_KEY), &[("q", "x"), ("count", "20")]).await;
    assert_eq!(results(&body).len(), 1);
    assert_eq!(results(&body)[0]["age"], "1 hour ago");
    assert_eq!(body["query"]["more_results_available"], false);
}

#[tokio::test]
async fn missing_unknown_and_forbidden_keys() {
    let fake = BraveFake::start_with(Knobs {
        forbidden_keys: vec!["free-plan-key".to_owned()],
        ..Knobs::default()
    });
    let q = [("q", "x")];
    let (status, body) = search(&fake, None, &q).await;
    assert_eq!(status, 401);
    let error = assert_error(&body, 401, "SUBSCRIPTION_TOKEN_INVALID");
    assert_eq!(
        error["detail"],
        "The provided subscription token is invalid."
    );
    let (status, body) = search(&fake, Some("nope"), &q).await;
    assert_eq!(status, 401);
    assert_error(&body, 401, "SUBSCRIPTION_TOKEN_INVALID");
    let (status, body) = search(&fake, Some("free-plan-key"), &q).await;
    assert_eq!(status, 403);
    assert_error(&body, 403, "SUBSCRIPTION_FORBIDDEN");

    // Real Brave has been seen answering a bad key with 422: the status is a knob.
    fake.set(|k| k.invalid_key_status = 422);
    let (status, body) = search(&fake, Some("nope"), &q).await;
    assert_eq!(status, 422);
    assert_error(&body, 422, "SUBSCRIPTION_TOKEN_INVALID");

    // A bad key is refused before the parameters are looked at.
    let (status, _) = search(&fake, Some("nope"), &[("count", "99")]).await;
    assert_eq!(status, 422);
    fake.set(|k| k.invalid_key_status = 401);
    let (status, _) = search(&fake, None, &[("count", "99")]).await;
    assert_eq!(status, 401);

    let tokens: Vec<Option<String>> = fake.requests().into_iter().map(|r| r.token).collect();
    assert_eq!(tokens[0], None);
    assert_eq!(tokens[1].as_deref(), Some("nope"));
    let statuses: Vec<Option<u16>> = fake.requests().into_iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401, 401, 403, 422, 422, 401].map(Some).to_vec());
}

#[tokio::test]
async fn bad_parameters_are_422_listing_each_problem() {
    let fake = BraveFake::start();
    let key = Some(TEST_KEY);
    let cases: [(Params, &str, &str); 8] = [
        (&[], "q", "missing"),
        (&[("q", "")], "q", "string_too_short"),
        (&[("q", "x"), ("count", "0")], "count", "greater_than_equal"),
        (&[("q", "x"), ("count", "21")], "count", "less_than_equal"),
        (&[("q", "x"), ("count", "ten")], "count", "int_parsing"),
        (
            &[("q", "x"), ("freshness", "week")],
            "freshness",
            "value_error",
        ),
        (
            &[("q", "x"), ("freshness", "2026-02-30to2026")],
            "freshness",
            "value_error",
        ),
        (
            &[("q", "x"), ("freshness", "2026-13-01to2026-12-01")],
            "freshness",
            "value_error",
        ),
    ];
    for (params, field, kind) in cases {
        let (status, body) = search(&fake, key, params).await;
        assert_eq!(status, 422, "{params:?}: {body}");
        let error = assert_error(&body, 422, "VALIDATION");
        assert_eq!(error["detail"], "Unable to validate request parameter(s)");
        let errors = error["meta"]["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{params:?}: {body}");
        assert_eq!(errors[0]["loc"], json!(["query", field]), "{params:?}");
        assert_eq!(errors[0]["type"], kind, "{params:?}");
    }
    let (_, body) = search(&fake, key, &[("q", "x"), ("count", "21")]).await;
    let entry = &body["error"]["meta"]["errors"][0];
    assert_eq!(entry["msg"], "Input should be less than or equal to 20");
    assert_eq!(entry["input"], "21");
    assert_eq!(entry["ctx"], json!({"le": 20}));

    // Every problem at once, as pydantic reports them.
    let (status, body) = search(&fake, key, &[("count", "50"), ("freshness", "yesterday")]).await;
    assert_eq!(status, 422);
    let locs: Vec<&Value> = body["error"]["meta"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["loc"][1])
        .collect();
    assert_eq!(locs, [&json!("q"), &json!("count"), &json!("freshness")]);

    // Too long, too many words.
    let long = "a".repeat(401);
    let (status, _) = search(&fake, key, &[("q", &long)]).await;
    assert_eq!(status, 422);
    let wordy = vec!["w"; 51].join(" ");
    let (status, _) = search(&fake, key, &[("q", &wordy)]).await;
    assert_eq!(status, 422);

    // Every accepted form passes, with the optional parameters recorded as sent.
    for freshness in ["pd", "pw", "pm", "py", "2026-01-01to2026-12-31"] {
        let params = [
            ("q", "x"),
            ("count", "1"),
            ("country", "DE"),
            ("search_lang", "de"),
            ("ui_lang", "de-DE"),
            ("freshness", freshness),
        ];
        let (status, body) = search(&fake, key, &params).await;
        assert_eq!(status, 200, "{freshness}: {body}");
        assert_eq!(results(&body).len(), 1);
    }
    let last = fake.requests().pop().unwrap();
    assert_eq!(last.param("country"), Some("DE"));
    assert_eq!(last.param("search_lang"), Some("de"));
    assert_eq!(last.param("ui_lang"), Some("de-DE"));
    assert_eq!(last.param("freshness"), Some("2026-01-01to2026-12-31"));
}

#[tokio::test]
async fn rate_limit_for_the_next_n_requests_with_reset_header() {
    let fake = BraveFake::start();
    fake.rate_limit(2, 3);
    // An unauthenticated request is refused before the rate limiter: it uses none up.
    let (status, _, _) = search_raw(&fake, Some("nope"), &[("q", "x")]).await;
    assert_eq!(status, 401);
    for _ in 0..2 {
        let (status, headers, body) = search_raw(&fake, Some(TEST_KEY), &[("q", "x")]).await;
        assert_eq!(status, 429);
        assert_eq!(headers["x-ratelimit-reset"], "3, 1419704");
        assert_eq!(
            headers["x-ratelimit-remaining"]
                .to_str()
                .unwrap()
                .split(", ")
                .next(),
            Some("0")
        );
        assert!(headers.contains_key("x-ratelimit-limit"));
        assert!(headers.contains_key("x-ratelimit-policy"));
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_error(&body, 429, "RATE_LIMITED");
    }
    assert_eq!(fake.knobs().rate_limited_requests, 0);
    let (status, headers, _) = search_raw(&fake, Some(TEST_KEY), &[("q", "x")]).await;
    assert_eq!(status, 200);
    assert!(headers.contains_key("x-ratelimit-reset"));

    // With the monthly window off, the header holds the one figure.
    fake.set(|k| k.rate_limit_monthly_reset_secs = None);
    fake.rate_limit(1, 7);
    let (status, headers, _) = search_raw(&fake, Some(TEST_KEY), &[("q", "x")]).await;
    assert_eq!(
        (status, &headers["x-ratelimit-reset"]),
        (429, &"7".parse().unwrap())
    );
    let statuses: Vec<Option<u16>> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401, 429, 429, 200, 429].map(Some).to_vec());
}

#[tokio::test]
async fn latency_delays_the_answer() {
    let fake = BraveFake::start_with(Knobs {
        latency: Duration::from_millis(300),
        ..Knobs::default()
    });
    let started = Instant::now();
    let (status, _) = search(&fake, Some(TEST_KEY), &[("q", "slow")]).await;
    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));

    // A client that gives up first leaves the record without a status.
    let gave_up = client()
        .get(fake.search_url())
        .query(&[("q", "x")])
        .header("X-Subscription-Token", TEST_KEY)
        .timeout(Duration::from_millis(50))
        .send()
        .await;
    assert!(gave_up.unwrap_err().is_timeout());
    assert_eq!(fake.requests()[1].status, None);
}

#[tokio::test]
async fn garbage_body_once_then_json_again() {
    let fake = BraveFake::start();
    fake.garbage_once();
    // Errors do not use it up.
    let (status, _, _) = search_raw(&fake, Some(TEST_KEY), &[]).await;
    assert_eq!(status, 422);
    let (status, headers, body) = search_raw(&fake, Some(TEST_KEY), &[("q", "x")]).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    assert!(serde_json::from_str::<Value>(&body).is_err(), "{body}");
    let (status, body) = search(&fake, Some(TEST_KEY), &[("q", "x")]).await;
    assert_eq!((status, body["type"].as_str()), (200, Some("search")));
}

#[tokio::test]
async fn other_paths_and_methods_are_refused_in_brave_shape() {
    let fake = BraveFake::start();
    let resp = client()
        .get(format!("{}/res/v1/news/search?q=x", fake.base_url()))
        .header("X-Subscription-Token", TEST_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_error(&resp.json().await.unwrap(), 404, "NOT_FOUND");
    let resp = client()
        .post(fake.search_url())
        .header("X-Subscription-Token", TEST_KEY)
        .form(&[("q", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(fake.requests().len(), 2);
    fake.clear_requests();
    assert!(fake.requests().is_empty());
}
