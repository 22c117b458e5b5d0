//! An upstream that stalls, a turn that runs too long, a session flooded with messages:
//! the user gets a clear answer in bounded time, and the session moves on.

mod common;

use std::time::{Duration, Instant};

use common::{Gw, TempDir, http_session};
use pincer_fakes::anthropic::{self, AnthropicFake};
use pincer_fakes::openai::{OpenAiFake, Script};
use reqwest::StatusCode;
use serde_json::json;

/// `gw.ask`, failing the test instead of waiting for ever.
async fn ask_within(
    gw: &Gw,
    limit: Duration,
    agent: &str,
    user: &str,
    text: &str,
) -> (u16, String) {
    tokio::time::timeout(limit, gw.ask(agent, user, text))
        .await
        .unwrap_or_else(|_| panic!("no answer within {limit:?}; log:\n{}", gw.log()))
}

/// An upstream that takes the request and never answers (not even the status line) fails
/// the call after `readTimeout`, and the user hears which model and which timeout.
#[tokio::test]
async fn an_upstream_that_never_answers_fails_the_turn_after_read_timeout() {
    let fake = OpenAiFake::start().await;
    let home = TempDir::new();
    let config = format!(
        "[providers.openai]\nbaseUrl = \"{}\"\napiKey = \"sk-test\"\nreadTimeout = \"1s\"\n\n[agents.main]\nmodel = \"openai/gpt-4.1\"\n\n[response]\ntransport = \"sse\"\n",
        fake.base_url()
    );
    let gw = Gw::start(home.path(), Some(&config)).await;
    fake.script(Script::Hang);
    let started = Instant::now();
    let (status, text) = ask_within(&gw, Duration::from_secs(20), "main", "u", "hello").await;
    assert_eq!(status, 502, "{text}");
    assert!(text.contains("openai/gpt-4.1"), "names the model: {text}");
    assert!(text.contains("readTimeout"), "names the timeout: {text}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    // The session moved on: its next message is answered.
    let (status, text) = ask_within(&gw, Duration::from_secs(20), "main", "u", "again").await;
    assert_eq!((status, text.as_str()), (200, "openai: again"));
}

/// A stream that stops sending mid-reply, before any text, hands the turn to the next
/// model of the chain.
#[tokio::test]
async fn a_stream_that_stalls_falls_back_along_the_chain() {
    let fake = AnthropicFake::start();
    let home = TempDir::new();
    let config = format!(
        "[providers.anthropic]\nbaseUrl = \"{}\"\napiKey = \"sk-ant-test\"\nreadTimeout = \"1s\"\n\n[agents.main.model]\nprovider = \"anthropic\"\nname = \"claude-sonnet-4-5\"\nfallbacks = [\"echo/echo\"]\n",
        fake.base_url()
    );
    let gw = Gw::start(home.path(), Some(&config)).await;
    fake.script(anthropic::Script::Hang);
    let started = Instant::now();
    let (status, text) =
        ask_within(&gw, Duration::from_secs(20), "main", "s", "still there?").await;
    assert_eq!((status, text.as_str()), (200, "echo: still there?"));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// A turn that runs past `turnTimeout` ends with an error naming the model and the
/// timeout; the session takes its next message.
#[tokio::test]
async fn a_turn_past_its_deadline_ends_with_an_error_and_the_session_moves_on() {
    let home = TempDir::new();
    let gw = Gw::start(
        home.path(),
        Some("[providers.echo]\nchunkSize = 1\nchunkDelayMs = 200\n\n[agents.main]\nturnTimeout = \"3s\"\n"),
    )
    .await;
    let started = Instant::now();
    let (status, text) = ask_within(
        &gw,
        Duration::from_secs(20),
        "main",
        "t",
        "a message long enough to take many seconds",
    )
    .await;
    assert_eq!(status, 502, "{text}");
    assert!(
        text.contains("echo/echo did not answer within 3s")
            && text.contains("agents.main.turnTimeout"),
        "{text}"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(10),
        "{took:?}"
    );
    // "echo: ok" streams in 1.6 s, within the deadline.
    let (status, text) = ask_within(&gw, Duration::from_secs(20), "main", "t", "ok").await;
    assert_eq!((status, text.as_str()), (200, "echo: ok"));
}

/// A session's queue is bounded: past it, new messages get 429 with Retry-After at once,
/// nothing of them is kept, and every message taken is answered once.
#[tokio::test]
async fn a_flooded_session_says_busy_and_keeps_the_rest() {
    let home = TempDir::new();
    let gw = Gw::start(home.path(), Some("[providers.echo]\nchunkDelayMs = 40\n")).await;
    let sent = 90;
    let mut calls = Vec::new();
    for n in 0..sent {
        let (http, url, token) = (gw.http.clone(), gw.url("/v1/chat/completions"), gw.token());
        calls.push(tokio::spawn(async move {
            let r = http
                .post(url)
                .bearer_auth(token)
                .json(&json!({"model": "main", "user": "flood", "messages": [{"role": "user", "content": format!("m{n}")}]}))
                .send()
                .await
                .expect("request");
            let status = r.status();
            let retry_after = r.headers().get("retry-after").is_some();
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            (n, status, retry_after, body)
        }));
    }
    let mut answered = Vec::new();
    let mut busy = 0;
    for call in calls {
        let (n, status, retry_after, body) = tokio::time::timeout(Duration::from_secs(60), call)
            .await
            .expect("every call ends")
            .expect("call task");
        match status {
            StatusCode::OK => answered.push(n),
            StatusCode::TOO_MANY_REQUESTS => {
                busy += 1;
                assert!(retry_after, "429 carries Retry-After: {body}");
                assert_eq!(body["error"]["code"], "session_busy", "{body}");
            }
            other => panic!("message {n}: {other} {body}"),
        }
    }
    assert!(
        busy > 0,
        "90 messages at once to one session: some are refused"
    );
    assert_eq!(answered.len() + busy, sent);
    let transcript = gw.transcript(&http_session("flood")).await;
    let users: Vec<&str> = transcript
        .iter()
        .filter(|e| e["role"] == "user")
        .filter_map(|e| e["content"].as_str())
        .collect();
    assert_eq!(
        users.len(),
        answered.len(),
        "each answered message once, no refused one"
    );
    for n in &answered {
        assert!(
            users.contains(&format!("m{n}").as_str()),
            "m{n} is in the transcript"
        );
    }
}
