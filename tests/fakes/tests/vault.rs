//! The Vault KV v2 fake, driven over real HTTP with a plain client: reads by version,
//! writes with check-and-set, tokens and policies, seal, namespaces, body cap, and a back
//! end that goes down.

use std::io::{Read, Write};
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use pincer_fakes::vault::{Capability, Knobs, Policy, TEST_TOKEN, VaultFake};
use serde_json::{Value, json};

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// Status and JSON body (`Null` when empty).
async fn parts(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// `GET {url}{path}` with an optional token.
async fn get(fake: &VaultFake, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = client().get(format!("{}{path}", fake.url()));
    if let Some(token) = token {
        req = req.header("X-Vault-Token", token);
    }
    parts(req.send().await.unwrap()).await
}

/// `POST {url}{path}` with a JSON body and an optional token.
async fn post(fake: &VaultFake, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let mut req = client().post(format!("{}{path}", fake.url())).json(body);
    if let Some(token) = token {
        req = req.header("X-Vault-Token", token);
    }
    parts(req.send().await.unwrap()).await
}

fn denied() -> Value {
    json!({"errors": ["permission denied"]})
}

/// Go's RFC 3339 with optional fraction, UTC.
fn assert_rfc3339(s: &str) {
    let b = s.as_bytes();
    assert!(s.len() >= 20 && s.ends_with('Z'), "{s}");
    assert_eq!(
        (b[4], b[7], b[10], b[13], b[16]),
        (b'-', b'-', b'T', b':', b':'),
        "{s}"
    );
    assert!(s[..4].parse::<u32>().unwrap() >= 2024, "{s}");
}

#[tokio::test]
async fn read_latest_and_by_version() {
    let fake = VaultFake::start();
    assert_eq!(
        fake.put("secret/pincer/openai", json!({"api_key": "sk-1"})),
        1
    );
    assert_eq!(
        fake.put(
            "secret/pincer/openai",
            json!({"api_key": "sk-2", "org": "o"})
        ),
        2
    );

    let (status, body) = get(&fake, "/v1/secret/data/pincer/openai", Some(TEST_TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["data"], json!({"api_key": "sk-2", "org": "o"}));
    let meta = &body["data"]["metadata"];
    assert_eq!(meta["version"], 2);
    assert_eq!(meta["deletion_time"], "");
    assert_eq!(meta["destroyed"], false);
    assert!(meta["custom_metadata"].is_null());
    assert_rfc3339(meta["created_time"].as_str().unwrap());
    // The envelope.
    let id = body["request_id"].as_str().unwrap();
    assert_eq!(id.len(), 36);
    assert_eq!(id.matches('-').count(), 4);
    assert_eq!(body["lease_id"], "");
    assert_eq!(body["lease_duration"], 0);
    assert_eq!(body["renewable"], false);
    for key in ["wrap_info", "warnings", "auth"] {
        assert!(body[key].is_null(), "{key}: {body}");
    }

    let (status, body) = get(
        &fake,
        "/v1/secret/data/pincer/openai?version=1",
        Some(TEST_TOKEN),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["data"], json!({"api_key": "sk-1"}));
    assert_eq!(body["data"]["metadata"]["version"], 1);

    // Version 0 means the latest, as in KV v2.
    let (_, body) = get(
        &fake,
        "/v1/secret/data/pincer/openai?version=0",
        Some(TEST_TOKEN),
    )
    .await;
    assert_eq!(body["data"]["metadata"]["version"], 2);

    let (status, body) = get(
        &fake,
        "/v1/secret/data/pincer/openai?version=two",
        Some(TEST_TOKEN),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body["errors"][0].as_str().unwrap().contains("version"));

    // Percent-encoded paths are decoded, as Vault's are.
    fake.put("secret/with space", json!({"k": "v"}));
    let (status, _) = get(&fake, "/v1/secret/data/with%20space", Some(TEST_TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(fake.reads(), 5);
}

#[tokio::test]
async fn missing_secret_or_version_is_404_with_empty_errors() {
    let fake = VaultFake::start_with(Knobs {
        max_versions: NonZeroU32::new(2).unwrap(),
        ..Knobs::default()
    });
    let (status, body) = get(&fake, "/v1/secret/data/nope", Some(TEST_TOKEN)).await;
    assert_eq!((status, body), (404, json!({"errors": []})));

    for n in 1..=3 {
        assert_eq!(fake.put("secret/app", json!({"n": n})), n);
    }
    let (status, body) = get(&fake, "/v1/secret/data/app?version=4", Some(TEST_TOKEN)).await;
    assert_eq!((status, body), (404, json!({"errors": []})));
    // Only the last `max_versions` are kept.
    let (status, _) = get(&fake, "/v1/secret/data/app?version=1", Some(TEST_TOKEN)).await;
    assert_eq!(status, 404);
    let (status, body) = get(&fake, "/v1/secret/data/app?version=2", Some(TEST_TOKEN)).await;
    assert_eq!((status, &body["data"]["data"]), (200, &json!({"n": 2})));
    assert_eq!(fake.counters().not_found, 3);
}

#[tokio::test]
async fn tokens_and_policies_gate_every_path() {
    let fake = VaultFake::start();
    fake.put("secret/app/db", json!({"password": "p"}));
    fake.put("secret/other", json!({"password": "q"}));
    fake.add_token("reader", Policy::read("secret/data/app/*"));

    let path = "/v1/secret/data/app/db";
    assert_eq!(get(&fake, path, None).await, (403, denied()));
    assert_eq!(get(&fake, path, Some("")).await, (403, denied()));
    assert_eq!(get(&fake, path, Some("nobody")).await, (403, denied()));
    assert_eq!(get(&fake, path, Some("reader")).await.0, 200);
    // The policy is on the API path: `secret/data/…`, not the secret's own path.
    assert_eq!(
        get(&fake, "/v1/secret/data/other", Some("reader")).await,
        (403, denied())
    );
    // Reading is not writing.
    let write = json!({"data": {"password": "x"}});
    assert_eq!(
        post(&fake, path, Some("reader"), &write).await,
        (403, denied())
    );

    // `Authorization: Bearer` is accepted too.
    let resp = client()
        .get(format!("{}{path}", fake.url()))
        .bearer_auth("reader")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // A narrower deny rule wins over the broader grant.
    fake.add_token(
        "fenced",
        Policy::read("secret/data/*").allow("secret/data/app/*", &[Capability::Deny]),
    );
    assert_eq!(get(&fake, path, Some("fenced")).await.0, 403);
    assert_eq!(
        get(&fake, "/v1/secret/data/other", Some("fenced")).await.0,
        200
    );

    fake.revoke_token("reader");
    assert_eq!(get(&fake, path, Some("reader")).await, (403, denied()));
    assert_eq!(fake.counters().denied, 7);
    // Failed requests are logged with whether a token came, never guessed.
    let r = fake.requests();
    assert!(!r[0].has_token());
    assert_eq!(r[2].token.as_deref(), Some("nobody"));
}

#[tokio::test]
async fn unknown_mount_and_v1_style_paths() {
    let fake = VaultFake::start();
    fake.add_token("reader", Policy::read("secret/data/*"));

    // The ACL comes first: a token the policy covers there learns the route is missing,
    // any other is denied.
    let (status, body) = get(&fake, "/v1/kv/data/app", Some(TEST_TOKEN)).await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"errors": ["no handler for route \"kv/data/app\". route entry not found."]})
    );
    assert_eq!(
        get(&fake, "/v1/kv/data/app", Some("reader")).await,
        (403, denied())
    );

    // A KV v1-style path on a v2 mount: 404 with the engine's warning.
    let (status, body) = get(&fake, "/v1/secret/app", Some(TEST_TOKEN)).await;
    assert_eq!(status, 404);
    assert!(body["data"].is_null());
    let warning = body["warnings"][0].as_str().unwrap();
    assert!(warning.starts_with("Invalid path for a versioned K/V secrets engine"));
    assert!(warning.contains("'vault kv get'"));

    // Other mounts exist only when configured; the longest mount wins.
    fake.set(|k| k.mounts = vec!["secret".into(), "secret/team".into()]);
    fake.put("secret/team/app", json!({"a": 1}));
    assert_eq!(
        get(&fake, "/v1/secret/team/data/app", Some(TEST_TOKEN))
            .await
            .0,
        200
    );
    assert_eq!(fake.secret("secret/team/app"), Some(json!({"a": 1})));
    assert_eq!(fake.secret("secret/app"), None);

    // Outside `/v1/`: Go's plain 404.
    let resp = client()
        .get(format!("{}/secret", fake.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.text().await.unwrap(), "404 page not found\n");
}

#[tokio::test]
async fn sealed_answers_503_to_everything() {
    let fake = VaultFake::start();
    fake.put("secret/app", json!({"k": "v"}));
    fake.seal();
    let sealed = json!({"errors": ["Vault is sealed"]});
    assert_eq!(
        get(&fake, "/v1/secret/data/app", Some(TEST_TOKEN)).await,
        (503, sealed.clone())
    );
    assert_eq!(
        get(&fake, "/v1/secret/data/app", None).await,
        (503, sealed.clone())
    );
    assert_eq!(
        get(&fake, "/v1/nope/x", Some("bad")).await,
        (503, sealed.clone())
    );
    let write = json!({"data": {"k": "w"}});
    assert_eq!(
        post(&fake, "/v1/secret/data/app", Some(TEST_TOKEN), &write).await,
        (503, sealed)
    );
    let (status, health) = get(&fake, "/v1/sys/health", None).await;
    assert_eq!((status, &health["sealed"]), (503, &json!(true)));
    assert_eq!(fake.counters().sealed, 5);

    fake.unseal();
    let (status, body) = get(&fake, "/v1/secret/data/app", Some(TEST_TOKEN)).await;
    assert_eq!((status, &body["data"]["data"]), (200, &json!({"k": "v"})));
    assert_eq!(fake.version("secret/app"), Some(1));
}

#[tokio::test]
async fn writes_add_versions_from_one() {
    let fake = VaultFake::start();
    let (status, body) = post(
        &fake,
        "/v1/secret/data/app/db",
        Some(TEST_TOKEN),
        &json!({"data": {"user": "u", "password": "p1"}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let data = &body["data"];
    assert_eq!(data["version"], 1);
    assert_eq!(data["deletion_time"], "");
    assert_eq!(data["destroyed"], false);
    assert!(data["custom_metadata"].is_null());
    assert_rfc3339(data["created_time"].as_str().unwrap());
    assert_eq!(body["lease_id"], "");

    let resp = client()
        .put(format!("{}/v1/secret/data/app/db", fake.url()))
        .header("X-Vault-Token", TEST_TOKEN)
        .json(&json!({"data": {"user": "u", "password": "p2"}}))
        .send()
        .await
        .unwrap();
    let (status, body) = parts(resp).await;
    assert_eq!((status, &body["data"]["version"]), (200, &json!(2)));
    assert_eq!(
        fake.secret("secret/app/db"),
        Some(json!({"user": "u", "password": "p2"}))
    );
    // A test-side put continues the same count.
    assert_eq!(fake.put("secret/app/db", json!({"password": "p3"})), 3);
    assert_eq!(fake.counters().writes, 2);

    // Creating and updating are distinct capabilities, decided by existence.
    fake.add_token(
        "creator",
        Policy::none().allow("secret/data/*", &[Capability::Create]),
    );
    let body = json!({"data": {"a": 1}});
    assert_eq!(
        post(&fake, "/v1/secret/data/new", Some("creator"), &body)
            .await
            .0,
        200
    );
    assert_eq!(
        post(&fake, "/v1/secret/data/new", Some("creator"), &body).await,
        (403, denied())
    );
}

#[tokio::test]
async fn check_and_set() {
    let fake = VaultFake::start();
    let path = "/v1/secret/data/cas";
    let with_cas = |cas: Value| json!({"data": {"v": 1}, "options": {"cas": cas}});
    let mismatch = json!({"errors": ["check-and-set parameter did not match the current version"]});

    // cas 0: only if it does not exist yet.
    assert_eq!(
        post(&fake, path, Some(TEST_TOKEN), &with_cas(json!(0)))
            .await
            .0,
        200
    );
    assert_eq!(
        post(&fake, path, Some(TEST_TOKEN), &with_cas(json!(0))).await,
        (400, mismatch.clone())
    );
    assert_eq!(
        post(&fake, path, Some(TEST_TOKEN), &with_cas(json!(5))).await,
        (400, mismatch)
    );
    let (status, body) = post(&fake, path, Some(TEST_TOKEN), &with_cas(json!(1))).await;
    assert_eq!((status, &body["data"]["version"]), (200, &json!(2)));
    // Weakly typed, as Vault decodes it.
    assert_eq!(
        post(&fake, path, Some(TEST_TOKEN), &with_cas(json!("2")))
            .await
            .0,
        200
    );
    assert_eq!(fake.version("secret/cas"), Some(3));

    fake.set(|k| k.cas_required = true);
    let (status, body) = post(&fake, path, Some(TEST_TOKEN), &json!({"data": {"v": 2}})).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["errors"][0],
        "check-and-set parameter required for this call"
    );
    assert_eq!(fake.version("secret/cas"), Some(3));
}

#[tokio::test]
async fn malformed_write_bodies_are_400() {
    let fake = VaultFake::start();
    let url = format!("{}/v1/secret/data/app", fake.url());
    let raw = |body: &'static str| {
        client()
            .post(&url)
            .header("X-Vault-Token", TEST_TOKEN)
            .body(body)
            .send()
    };
    let parse_error = json!({"errors": ["error parsing JSON"]});
    assert_eq!(
        parts(raw("{not json").await.unwrap()).await,
        (400, parse_error.clone())
    );
    assert_eq!(
        parts(raw("[1, 2]").await.unwrap()).await,
        (400, parse_error)
    );
    let no_data = json!({"errors": ["no data provided"]});
    assert_eq!(parts(raw("").await.unwrap()).await, (400, no_data.clone()));
    assert_eq!(
        parts(raw(r#"{"options":{}}"#).await.unwrap()).await,
        (400, no_data)
    );
    let (status, body) = parts(raw(r#"{"data":"flat"}"#).await.unwrap()).await;
    assert_eq!(status, 400);
    assert!(body["errors"][0].as_str().unwrap().contains("\"data\""));
    assert_eq!(fake.version("secret/app"), None);
    // The record keeps what was sent.
    let r = fake.requests();
    assert_eq!(r[0].body, json!("{not json"));
    assert_eq!(r[4].body, json!({"data": "flat"}));
}

#[tokio::test]
async fn bodies_over_the_cap_are_413() {
    let fake = VaultFake::start_with(Knobs {
        max_request_bytes: 1024 * 1024,
        ..Knobs::default()
    });
    let path = "/v1/secret/data/big";
    let big = json!({"data": {"blob": "x".repeat(2 * 1024 * 1024)}});
    assert_eq!(
        post(&fake, path, Some(TEST_TOKEN), &big).await,
        (413, json!({"errors": ["error parsing JSON"]}))
    );
    let fits = json!({"data": {"blob": "x".repeat(1000 * 1024)}});
    assert_eq!(post(&fake, path, Some(TEST_TOKEN), &fits).await.0, 200);
    assert_eq!(fake.version("secret/big"), Some(1));
    assert_eq!(fake.requests()[0].body, json!(""));
}

#[tokio::test]
async fn namespace_must_match_when_configured() {
    let fake = VaultFake::start_with(Knobs {
        namespace: Some("org/team".into()),
        ..Knobs::default()
    });
    fake.put("secret/app", json!({"k": "v"}));
    let url = format!("{}/v1/secret/data/app", fake.url());
    let get_ns = |ns: Option<&'static str>, url: String| {
        let mut req = client().get(url).header("X-Vault-Token", TEST_TOKEN);
        if let Some(ns) = ns {
            req = req.header("X-Vault-Namespace", ns);
        }
        async move { parts(req.send().await.unwrap()).await }
    };
    // The root namespace (no header) and other namespaces hold none of its tokens.
    assert_eq!(get_ns(None, url.clone()).await, (403, denied()));
    assert_eq!(get_ns(Some("org"), url.clone()).await, (403, denied()));
    assert_eq!(
        get_ns(Some("other/team"), url.clone()).await,
        (403, denied())
    );
    // Header, header with slashes, path prefix, or split between the two.
    assert_eq!(get_ns(Some("org/team"), url.clone()).await.0, 200);
    assert_eq!(get_ns(Some("/org/team/"), url.clone()).await.0, 200);
    let prefixed = format!("{}/v1/org/team/secret/data/app", fake.url());
    assert_eq!(get_ns(None, prefixed).await.0, 200);
    let split = format!("{}/v1/team/secret/data/app", fake.url());
    assert_eq!(get_ns(Some("org"), split).await.0, 200);

    let seen: Vec<Option<String>> = fake.requests().into_iter().map(|r| r.namespace).collect();
    assert_eq!(seen[0], None);
    assert_eq!(seen[3].as_deref(), Some("org/team"));
    // Every one of them was a read of the secret, whichever way the namespace came.
    assert_eq!(fake.reads(), 7);

    // Without a configured namespace, a header names a namespace that does not exist.
    let plain = VaultFake::start();
    plain.put("secret/app", json!({"k": "v"}));
    let url = format!("{}/v1/secret/data/app", plain.url());
    assert_eq!(get_ns(Some("team"), url.clone()).await, (403, denied()));
    assert_eq!(get_ns(None, url).await.0, 200);
}

#[tokio::test]
async fn down_closes_connections_unanswered_and_keeps_the_data() {
    let fake = VaultFake::start();
    fake.put("secret/app", json!({"k": "v"}));
    fake.set_down(true);
    let err = client()
        .get(format!("{}/v1/secret/data/app", fake.url()))
        .header("X-Vault-Token", TEST_TOKEN)
        .send()
        .await
        .expect_err("a down back end gives no answer");
    assert!(err.status().is_none(), "{err:?}");
    let c = fake.counters();
    assert_eq!((c.dropped, c.reads), (1, 1));
    assert_eq!(fake.requests()[0].status, None);

    // At the socket: the connection closes with not a byte of answer.
    let addr = fake.addr();
    let raw = tokio::task::spawn_blocking(move || {
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(conn, "GET /v1/sys/health HTTP/1.1\r\nhost: {addr}\r\n\r\n").unwrap();
        let mut raw = Vec::new();
        let _ = conn.read_to_end(&mut raw);
        raw
    })
    .await
    .unwrap();
    assert!(raw.is_empty(), "{}", String::from_utf8_lossy(&raw));

    fake.set_down(false);
    let (status, body) = get(&fake, "/v1/secret/data/app", Some(TEST_TOKEN)).await;
    assert_eq!((status, &body["data"]["data"]), (200, &json!({"k": "v"})));
}

#[tokio::test]
async fn latency_delays_answers() {
    let fake = VaultFake::start();
    fake.set(|k| k.latency = Duration::from_millis(150));
    let started = Instant::now();
    assert_eq!(get(&fake, "/v1/sys/health", None).await.0, 200);
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn requests_are_logged_and_counted() {
    let fake = VaultFake::start();
    fake.put("secret/app", json!({"k": "v"}));
    get(&fake, "/v1/secret/data/app?version=1", Some(TEST_TOKEN)).await;
    get(&fake, "/v1/secret/metadata/app", Some(TEST_TOKEN)).await;
    get(&fake, "/v1/secret/data/missing", None).await;

    let r = fake.requests();
    assert_eq!(r.len(), 3);
    assert_eq!(r[0].method, "GET");
    assert_eq!(r[0].path, "/v1/secret/data/app");
    assert_eq!(r[0].query, "version=1");
    assert_eq!(r[0].token.as_deref(), Some(TEST_TOKEN));
    assert_eq!(r[0].status, Some(200));
    // Not served by the fake: it says so instead of pretending.
    assert_eq!(r[1].status, Some(501));
    assert_eq!((r[2].has_token(), r[2].status), (false, Some(403)));
    let c = fake.counters();
    assert_eq!((c.requests, c.reads, c.denied), (3, 2, 1));
}

#[tokio::test]
async fn lookup_self_and_health() {
    let fake = VaultFake::start();
    fake.add_token("app", Policy::read("secret/data/app"));
    let (status, body) = get(&fake, "/v1/auth/token/lookup-self", Some("app")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["id"], "app");
    assert_eq!(body["data"]["policies"], json!(["default"]));
    let (_, body) = get(&fake, "/v1/auth/token/lookup-self", Some(TEST_TOKEN)).await;
    assert_eq!(body["data"]["policies"], json!(["root"]));
    assert_eq!(
        get(&fake, "/v1/auth/token/lookup-self", Some("gone")).await,
        (403, denied())
    );

    let (status, body) = get(&fake, "/v1/sys/health", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        (&body["initialized"], &body["sealed"]),
        (&json!(true), &json!(false))
    );
}

/// Works with no async runtime around, and stops on drop.
#[test]
fn sync_use_and_drop() {
    let fake = VaultFake::start();
    fake.put("secret/app", json!({"k": "v"}));
    let addr = fake.addr();
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    write!(
        conn,
        "GET /v1/secret/data/app HTTP/1.1\r\nhost: {addr}\r\nx-vault-token: {TEST_TOKEN}\r\n\
         connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    conn.read_to_string(&mut raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(raw.contains("cache-control: no-store"), "{raw}");
    assert!(raw.contains(r#""data":{"k":"v"}"#), "{raw}");

    drop(fake);
    assert!(std::net::TcpStream::connect(addr).is_err());
}
