//! How the OpenAI API's `messages` combine with sessions, on the real binary with the echo
//! model: a request without a session is stateless and leaves no live session behind; a
//! named session is seeded by the first request's history and later ignores it; the
//! fields that cannot be honoured are 400s naming them.

mod common;

use std::time::Duration;

use common::{Gw, TempDir, http_session, until};
use serde_json::{Value, json};

fn texts(transcript: &[Value]) -> Vec<(String, String)> {
    transcript
        .iter()
        .map(|e| {
            let role = e["role"].as_str().unwrap_or_default().to_string();
            (role, e["content"].as_str().unwrap_or_default().to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn stateless_requests_share_nothing_and_named_sessions_are_seeded_once() {
    let home = TempDir::new();
    let gw = Gw::start(home.path(), None).await;

    // Stateless: answered, and its one-off session does not stay as a live actor.
    for text in ["first caller", "second caller"] {
        let (status, body) = gw
            .post(
                "/v1/chat/completions",
                json!({"model": "main", "messages": [{"role": "user", "content": text}]}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert!(
            body["choices"][0]["message"]["content"]
                .as_str()
                .unwrap_or_default()
                .contains(text),
            "{body}"
        );
        assert!(body["usage"]["prompt_tokens"].as_u64() > Some(0), "{body}");
    }
    until(
        "one-off sessions to stop",
        &gw,
        Duration::from_secs(5),
        async || {
            let running = gw.running_paths().await;
            match running.iter().find(|p| p.contains(":request:")) {
                Some(p) => Err(format!("still running: {p}")),
                None => Ok(()),
            }
        },
    )
    .await;
    assert!(
        !gw.running_paths()
            .await
            .iter()
            .any(|p| p.contains("anonymous"))
    );

    // A named session without history is seeded by the request's earlier messages...
    let history = |last: &str| {
        json!({"model": "main", "user": "ada", "messages": [
            {"role": "system", "content": "be terse"},
            {"role": "user", "content": "my name is Ada"},
            {"role": "assistant", "content": "hello Ada"},
            {"role": "user", "content": last},
        ]})
    };
    let (status, body) = gw.post("/v1/chat/completions", history("one")).await;
    assert_eq!(status, 200, "{body}");
    // ...and once it has history, they are ignored: only the new user message is added.
    let (status, body) = gw.post("/v1/chat/completions", history("two")).await;
    assert_eq!(status, 200, "{body}");
    let said: Vec<(String, String)> = texts(&gw.transcript(&http_session("ada")).await)
        .into_iter()
        .filter(|(role, _)| role == "user" || role == "assistant")
        .collect();
    let roles: Vec<&str> = said.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(
        roles,
        [
            "user",
            "assistant",
            "user",
            "assistant",
            "user",
            "assistant"
        ],
        "{said:?}"
    );
    assert_eq!(said[0].1, "my name is Ada");
    assert_eq!(said[1].1, "hello Ada");
    assert_eq!(said[2].1, "one");
    assert_eq!(said[4].1, "two");

    // A named session cannot continue a tool call: that is the stateless path's.
    let (status, body) = gw
        .post("/v1/chat/completions", json!({"model": "main", "user": "ada", "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        ]}))
        .await;
    assert_eq!(
        (status.as_u16(), &body["error"]["param"]),
        (400, &json!("messages")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn what_cannot_be_honoured_is_a_400_naming_the_field() {
    let home = TempDir::new();
    let gw = Gw::start(home.path(), None).await;
    let hi = json!([{"role": "user", "content": "hi"}]);
    let cases = [
        (json!({"model": "main", "messages": hi, "n": 2}), "n"),
        (
            json!({"model": "main", "messages": hi, "logprobs": true}),
            "logprobs",
        ),
        (
            json!({"model": "main", "messages": hi, "frobnicate": 1}),
            "frobnicate",
        ),
        (
            json!({"model": "main", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}]}),
            "messages[0].content[0]",
        ),
    ];
    for (body, param) in cases {
        let (status, reply) = gw.post("/v1/chat/completions", body.clone()).await;
        assert_eq!(status, 400, "{body} -> {reply}");
        assert_eq!(reply["error"]["param"], json!(param), "{reply}");
        assert_eq!(reply["error"]["type"], json!("invalid_request_error"));
    }
    // Accepted as OpenAI's defaults.
    let (status, reply) = gw
        .post("/v1/chat/completions", json!({"model": "main", "messages": hi, "n": 1, "stream_options": null, "store": false}))
        .await;
    assert_eq!(status, 200, "{reply}");
    // `x-pincer-agent` names the agent; /v1/models/{id}.
    let (status, _) = gw.get("/v1/models/pincer:main").await;
    assert_eq!(status, 200);
    let (status, reply) = gw.get("/v1/models/nope").await;
    assert_eq!(
        (status.as_u16(), &reply["error"]["code"]),
        (404, &json!("model_not_found"))
    );
}
