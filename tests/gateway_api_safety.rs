//! The OpenAI-compatible API under callers who share keys, reuse them, or meet a failing
//! model mid-stream: each caller only ever sees its own replies, and a failure looks like
//! one to an SDK.

mod common;

use common::{Gw, TempDir, http_session};
use pincer_fakes::openai::{OpenAiFake, Script};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn reply(body: &Value) -> &str {
    body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
}

/// An idempotency key belongs to its caller's session: a second caller reusing the first
/// caller's key neither reads the first caller's reply nor loses its own message.
#[tokio::test]
async fn another_session_reusing_an_idempotency_key_gets_its_own_turn() {
    let home = TempDir::new();
    let gw = Gw::start(home.path(), None).await;
    let (status, first) = gw
        .chat("victim", "my private question", Some("shared-key"))
        .await
        .expect("first");
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, second) = gw
        .chat("attacker", "something else", Some("shared-key"))
        .await
        .expect("second");
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(reply(&second), "echo: something else", "{second}");
    assert!(!second.to_string().contains("private"), "{second}");
    let theirs = gw.transcript(&http_session("attacker")).await;
    assert_eq!(
        theirs.len(),
        2,
        "the second caller's message was answered: {theirs:?}"
    );
    assert_eq!(gw.transcript(&http_session("victim")).await.len(), 2);
}

/// The same key with a different request is a client bug, said plainly: 422, and no
/// second turn; the same request again still gets its reply.
#[tokio::test]
async fn the_same_key_with_a_different_request_is_refused() {
    let home = TempDir::new();
    let gw = Gw::start(home.path(), None).await;
    let (status, first) = gw.chat("carol", "first", Some("k-1")).await.expect("first");
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, reused) = gw
        .chat("carol", "a different message", Some("k-1"))
        .await
        .expect("reused");
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reused}");
    assert_eq!(
        reused["error"]["code"], "idempotency_key_reused",
        "{reused}"
    );
    assert!(
        reused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("k-1")),
        "{reused}"
    );
    let (status, again) = gw.chat("carol", "first", Some("k-1")).await.expect("retry");
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["id"], first["id"]);
    assert_eq!(gw.transcript(&http_session("carol")).await.len(), 2);
}

/// A turn that fails after text went out ends the stream with OpenAI's streaming error
/// event (what the SDKs raise on), not with the failure as assistant text and `stop`.
#[tokio::test]
async fn a_failure_mid_stream_is_an_error_event() {
    let fake = OpenAiFake::start().await;
    let home = TempDir::new();
    let config = format!(
        "[providers.openai]\nbaseUrl = \"{}\"\napiKey = \"sk-test\"\n\n[agents.main]\nmodel = \"openai/gpt-4.1\"\n\n[response]\ntransport = \"sse\"\n",
        fake.base_url()
    );
    let gw = Gw::start(home.path(), Some(&config)).await;
    fake.script(Script::StreamError {
        after_tokens: 2,
        code: "server_error".into(),
        message: "The server had an error.".into(),
        nested: true,
    });
    let response = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(gw.token())
        .json(&json!({"model": "main", "stream": true, "user": "s", "messages": [{"role": "user", "content": "one two three"}]}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("body");
    let events: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .filter(|e| *e != "[DONE]")
        .map(|e| serde_json::from_str(e).expect("an event is JSON"))
        .collect();
    let error = events
        .iter()
        .find(|e| e.get("error").is_some())
        .unwrap_or_else(|| panic!("no error event in: {text}"));
    assert_eq!(error["error"]["code"], "turn_failed", "{text}");
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("server_error: The server had an error.")),
        "{text}"
    );
    assert!(
        !events
            .iter()
            .any(|e| e["choices"][0]["finish_reason"] == "stop"),
        "a failed turn does not finish with `stop`: {text}"
    );
    let content: String = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(!content.contains("could not answer"), "{content}");
}
