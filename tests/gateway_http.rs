//! The OpenAI-compatible API and the probes, on the real binary: what an SDK and a
//! load balancer see.

mod common;

use common::{Gw, TempDir, answers_per_inbox, http_session};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn a_completion_is_answered_by_the_echo_model_and_kept_in_the_transcript() {
    let home = TempDir::new();
    let gw = Gw::start(home.path(), None).await;
    use std::os::unix::fs::PermissionsExt;
    let token_file = std::fs::metadata(home.path().join("gateway.token")).expect("token file");
    assert_eq!(token_file.permissions().mode() & 0o777, 0o600, "owner only");
    assert!(
        gw.log().contains("gateway.token"),
        "the log says where the token is"
    );
    let (status, body) = gw
        .chat("alice", "hello there", None)
        .await
        .expect("request");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "echo: hello there"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert!(body["usage"]["total_tokens"].as_u64().unwrap_or(0) > 0);

    let transcript = gw.transcript(&http_session("alice")).await;
    let roles: Vec<&str> = transcript
        .iter()
        .filter_map(|e| e["role"].as_str())
        .collect();
    assert_eq!(roles, ["user", "assistant"]);
    assert_eq!(transcript[1]["content"], "echo: hello there");
    let (_, sessions) = gw.get("/admin/sessions").await;
    assert!(
        sessions["sessions"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["key"] == http_session("alice")))
    );
}

#[tokio::test]
async fn a_streamed_completion_arrives_in_chunks_shaped_as_openai_sends_them() {
    let home = TempDir::new();
    let gw = Gw::start(
        home.path(),
        Some("[providers.echo]\nchunkSize = 4\nchunkDelayMs = 5\n"),
    )
    .await;
    let response = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(gw.token())
        .json(&json!({"model": "main", "stream": true, "stream_options": {"include_usage": true}, "user": "s", "messages": [{"role": "user", "content": "stream this reply"}]}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/event-stream")
    );
    let text = response.text().await.expect("body");
    let events: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).expect("chunk is JSON"))
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "echo: stream this reply");
    let pieces = chunks
        .iter()
        .filter(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
        })
        .count();
    assert!(pieces >= 5, "streamed in {pieces} pieces");
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "stop")
    );
    assert!(
        chunks
            .last()
            .is_some_and(|c| c["usage"]["total_tokens"].as_u64().is_some())
    );
}

#[tokio::test]
async fn a_retry_with_the_same_idempotency_key_gets_the_same_reply_and_no_second_turn() {
    let home = TempDir::new();
    let gw = Gw::start(home.path(), None).await;
    let (_, first) = gw.chat("bob", "once", Some("key-1")).await.expect("first");
    let (_, again) = gw.chat("bob", "once", Some("key-1")).await.expect("retry");
    assert_eq!(first["id"], again["id"]);
    assert_eq!(again["choices"][0]["message"]["content"], "echo: once");
    let transcript = gw.transcript(&http_session("bob")).await;
    assert_eq!(
        transcript.len(),
        2,
        "one user message, one reply: {transcript:?}"
    );
    assert!(answers_per_inbox(&transcript).values().all(|n| *n == 1));
    // A different key is a new message.
    gw.chat("bob", "once", Some("key-2"))
        .await
        .expect("second message");
    assert_eq!(gw.transcript(&http_session("bob")).await.len(), 4);
}

#[tokio::test]
async fn the_api_names_what_is_wrong_with_a_request() {
    let home = TempDir::new();
    let gw = Gw::start(home.path(), None).await;
    let chat = gw.url("/v1/chat/completions");

    let r = gw
        .http
        .post(&chat)
        .json(&json!({}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "no token");
    let r = gw
        .http
        .post(&chat)
        .bearer_auth("wrong")
        .json(&json!({}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "wrong token");

    let (status, body) = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "pincer:nobody", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "model_not_found");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("nobody")
    );

    let (status, body) = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "main", "messages": []}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("messages")
    );

    let r = gw
        .http
        .post(&chat)
        .bearer_auth(gw.token())
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let big = "x".repeat(2 * 1024 * 1024);
    let r = gw
        .http
        .post(&chat)
        .bearer_auth(gw.token())
        .json(&json!({"model": "main", "messages": [{"role": "user", "content": big}]}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // The unread body must not poison the connection the next request would reuse.
    assert_eq!(r.headers()["connection"], "close");

    let (status, models) = gw.get("/v1/models").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "pincer:main");
}

#[tokio::test]
async fn probes_answer_get_and_head_and_refuse_other_methods() {
    let home = TempDir::new();
    let gw = Gw::start(home.path(), None).await;
    for path in ["/health", "/healthz"] {
        let body = gw.get_public(path).await;
        assert_eq!(body, json!({"ok": true, "status": "live"}));
    }
    for path in ["/startup", "/startupz", "/ready", "/readyz"] {
        let r = gw.http.get(gw.url(path)).send().await.expect("get");
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let r = gw.http.head(gw.url(path)).send().await.expect("head");
        assert_eq!(r.status(), StatusCode::OK, "HEAD {path}");
        let r = gw.http.post(gw.url(path)).send().await.expect("post");
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "POST {path}");
    }
    let body = gw.get_public("/readyz").await;
    assert_eq!(body["ready"], true);
    assert_eq!(body["failing"], json!([]));
    assert!(body.get("tree").is_none());
    let verbose = gw.get_public("/readyz?verbose").await;
    assert_eq!(verbose["tree"][0]["path"], "pincer");

    let metrics = gw.get_text("/metrics").await;
    gw.chat("m", "count me", None).await.expect("chat");
    let metrics_after = gw.get_text("/metrics").await;
    assert!(metrics.contains("pincer_actor_restarts_total"));
    assert!(
        metrics_after.contains("pincer_messages_in_total{channel=\"http\"} "),
        "{metrics_after}"
    );
    assert!(metrics_after.contains("pincer_turns_total{agent=\"main\"} "));
    assert!(metrics_after.contains("pincer_inbox_pending 0"));
    assert!(metrics_after.contains("pincer_reply_seconds_bucket"));
}

/// A non-loopback address of this machine, if it has one.
fn outside_address() -> Option<std::net::IpAddr> {
    let out = std::process::Command::new("hostname")
        .arg("-I")
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|a| a.parse::<std::net::IpAddr>().ok())
        .find(|a| a.is_ipv4() && !a.is_loopback())
}

#[tokio::test]
async fn remote_callers_without_the_token_learn_only_whether_it_is_ready() {
    let Some(ip) = outside_address() else {
        eprintln!("skipped: no non-loopback address on this machine");
        return;
    };
    let home = TempDir::new();
    let config =
        "[gateway]\nbind = \"0.0.0.0\"\n\n[gateway.auth]\ntoken = \"remote-secret-0123456789\"\n";
    let gw = Gw::spawn(home.path(), Some(config), common::free_port());
    assert!(
        gw.wait_readyz(true, std::time::Duration::from_secs(20))
            .await,
        "{}",
        gw.log()
    );
    let base = format!("http://{ip}:{}", gw.port);
    let remote = |path: &str, token: Option<&str>| {
        let request = gw.http.get(format!("{base}{path}"));
        match token {
            Some(t) => request.bearer_auth(t),
            None => request,
        }
        .send()
    };

    let body: Value = remote("/readyz?verbose", None)
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(body, json!({"ready": true, "status": "ready"}));
    let body: Value = remote("/readyz?verbose", Some("remote-secret-0123456789"))
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(
        body["tree"][0]["path"], "pincer",
        "the token shows everything"
    );
    for (path, token, status) in [
        ("/metrics", None, StatusCode::UNAUTHORIZED),
        ("/admin/tree", Some("wrong"), StatusCode::UNAUTHORIZED),
        (
            "/admin/tree",
            Some("remote-secret-0123456789"),
            StatusCode::OK,
        ),
    ] {
        let r = remote(path, token).await.expect("request");
        assert_eq!(r.status(), status, "{path} with {token:?}");
    }
    assert!(
        !home.path().join("gateway.token").exists(),
        "a configured token is not written to disk"
    );
}
