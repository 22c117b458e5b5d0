//! The Anthropic fake, driven over real HTTP with a plain client.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use pincer_fakes::anthropic::{AnthropicFake, Knobs, Script, TEST_KEY};
use serde_json::{Value, json};

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

fn body(model: &str, text: &str) -> Value {
    json!({
        "model": model,
        "max_tokens": 4096,
        "stream": true,
        "messages": [{"role": "user", "content": text}],
    })
}

/// A request with a good key and version.
async fn post(fake: &AnthropicFake, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/v1/messages", fake.base_url()))
        .header("x-api-key", TEST_KEY)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Parses a complete SSE body into (event name, data).
fn parse_sse(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|frame| !frame.trim().is_empty())
        .map(|frame| {
            let mut name = String::new();
            let mut data = Value::Null;
            for line in frame.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_owned();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(d).unwrap();
                }
            }
            // `data` repeats the event name as `type`.
            assert_eq!(data["type"], name.as_str(), "{frame}");
            (name, data)
        })
        .collect()
}

async fn events(resp: reqwest::Response) -> Vec<(String, Value)> {
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    parse_sse(&resp.text().await.unwrap())
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

/// The concatenation of one delta field over all deltas.
fn joined(events: &[(String, Value)], field: &str) -> String {
    events
        .iter()
        .filter_map(|(_, d)| d["delta"][field].as_str())
        .collect()
}

async fn error_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let request_id = resp.headers()["request-id"].to_str().unwrap().to_owned();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["request_id"], request_id.as_str());
    (status, body)
}

#[tokio::test]
async fn text_turn_event_order_and_record() {
    let fake = AnthropicFake::start();
    let resp = post(&fake, &body("claude-sonnet-4-6", "hello there")).await;
    assert!(resp.headers().contains_key("request-id"));
    let ev = events(resp).await;
    let n = names(&ev);
    assert_eq!(&n[..3], ["message_start", "ping", "content_block_start"]);
    assert_eq!(
        &n[n.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    assert!(
        n[3..n.len() - 3]
            .iter()
            .all(|e| *e == "content_block_delta")
    );
    assert_eq!(n.len() - 6, 3, "one delta per whitespace token");
    assert_eq!(ev[0].1["message"]["model"], "claude-sonnet-4-6");
    assert!(
        ev[0].1["message"]["id"]
            .as_str()
            .unwrap()
            .starts_with("msg_")
    );
    assert_eq!(
        ev[2].1["content_block"],
        json!({"type": "text", "text": ""})
    );
    assert_eq!(joined(&ev, "text"), "anthropic: hello there");
    let delta = &ev[ev.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], 3);

    let c = fake.counters();
    assert_eq!((c.requests, c.streamed, c.models_list), (1, 1, 0));
    let recs = fake.requests();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].path, "/v1/messages");
    assert_eq!(recs[0].header("X-Api-Key"), Some(TEST_KEY));
    assert_eq!(recs[0].header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(recs[0].body["messages"][0]["content"], "hello there");
    assert_eq!(recs[0].status, 200);
}

#[tokio::test]
async fn text_blocks_and_tool_results_drive_the_default_reply() {
    let fake = AnthropicFake::start();
    let mut b = body("claude-opus-4-6", "");
    b["messages"] = json!([{"role": "user", "content": [
        {"type": "text", "text": "one "}, {"type": "text", "text": "two"}]}]);
    assert_eq!(
        joined(&events(post(&fake, &b).await).await, "text"),
        "anthropic: one two"
    );

    b["messages"] = json!([
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "-3C"}]}]},
    ]);
    assert_eq!(
        joined(&events(post(&fake, &b).await).await, "text"),
        "tool said: -3C"
    );
}

/// Asserts a thinking block at index 0 and the text at index 1.
fn assert_thinking_then_text(ev: &[(String, Value)], user: &str) {
    assert_eq!(ev[2].0, "content_block_start");
    assert_eq!(ev[2].1["index"], 0);
    assert_eq!(
        ev[2].1["content_block"],
        json!({"type": "thinking", "thinking": ""})
    );
    assert_eq!(joined(ev, "thinking"), format!("Considering: {user}"));
    let sig: Vec<_> = ev
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == "signature_delta")
        .collect();
    assert_eq!(sig.len(), 1);
    assert_eq!(sig[0].1["index"], 0);
    let text_start = ev
        .iter()
        .find(|(n, d)| n == "content_block_start" && d["index"] == 1)
        .unwrap();
    assert_eq!(text_start.1["content_block"]["type"], "text");
    assert_eq!(joined(ev, "text"), format!("anthropic: {user}"));
}

#[tokio::test]
async fn thinking_block_per_mode() {
    let fake = AnthropicFake::start();

    // Adaptive, default effort (high): thinks.
    let mut b = body("claude-opus-4-6", "why");
    b["thinking"] = json!({"type": "adaptive"});
    assert_thinking_then_text(&events(post(&fake, &b).await).await, "why");

    // Adaptive at medium: thinks.
    b["output_config"] = json!({"effort": "medium"});
    assert_thinking_then_text(&events(post(&fake, &b).await).await, "why");

    // Adaptive at low: no thinking block at all.
    b["output_config"] = json!({"effort": "low"});
    let ev = events(post(&fake, &b).await).await;
    assert_eq!(ev[2].1["content_block"]["type"], "text");
    assert_eq!(ev[2].1["index"], 0);
    assert!(
        ev.iter()
            .all(|(_, d)| d["delta"]["type"] != "thinking_delta")
    );

    // Enabled with a budget on an older model: thinks.
    let mut old = body("claude-3-7-sonnet-latest", "why");
    old["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
    assert_thinking_then_text(&events(post(&fake, &old).await).await, "why");

    // No thinking field: no thinking block.
    let ev = events(post(&fake, &body("claude-opus-4-6", "why")).await).await;
    assert_eq!(ev[2].1["content_block"]["type"], "text");
}

#[tokio::test]
async fn scripted_thinking_forces_a_block() {
    let fake = AnthropicFake::start();
    fake.script(Script::Thinking {
        thinking: "hmm".into(),
        text: "done".into(),
    });
    let ev = events(post(&fake, &body("claude-haiku-4-5", "x")).await).await;
    assert_eq!(joined(&ev, "thinking"), "hmm");
    assert_eq!(joined(&ev, "text"), "done");
}

#[tokio::test]
async fn every_validation_rule_answers_400() {
    let fake = AnthropicFake::start();
    let good = body("claude-sonnet-4-6", "hi");
    let with = |patch: Value| {
        let mut b = good.clone();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                b.as_object_mut().unwrap().remove(k);
            } else {
                b[k] = v.clone();
            }
        }
        b
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        ("no model", with(json!({"model": null})), "model"),
        (
            "no max_tokens",
            with(json!({"max_tokens": null})),
            "max_tokens",
        ),
        ("no messages", with(json!({"messages": null})), "messages"),
        (
            "enabled on 4.6",
            with(json!({"thinking": {"type": "enabled", "budget_tokens": 2048}})),
            "enabled",
        ),
        (
            "enabled on dotted 4.6",
            with(
                json!({"model": "claude-4.6-sonnet", "thinking": {"type": "enabled", "budget_tokens": 2048}}),
            ),
            "enabled",
        ),
        (
            "adaptive on 4.5",
            with(json!({"model": "claude-sonnet-4-5", "thinking": {"type": "adaptive"}})),
            "adaptive",
        ),
        (
            "budget too small",
            with(
                json!({"model": "claude-opus-4-1", "thinking": {"type": "enabled", "budget_tokens": 1023}}),
            ),
            "budget_tokens",
        ),
        (
            "budget not below max_tokens",
            with(
                json!({"model": "claude-opus-4-1", "thinking": {"type": "enabled", "budget_tokens": 4096}}),
            ),
            "max_tokens",
        ),
        (
            "budget missing",
            with(json!({"model": "claude-opus-4-1", "thinking": {"type": "enabled"}})),
            "budget_tokens",
        ),
        (
            "bad effort",
            with(json!({"output_config": {"effort": "extreme"}})),
            "effort",
        ),
        (
            "starts with assistant",
            with(json!({"messages": [{"role": "assistant", "content": "x"}]})),
            "user",
        ),
        (
            "no alternation",
            with(
                json!({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}),
            ),
            "alternate",
        ),
        (
            "bad role",
            with(json!({"messages": [{"role": "system", "content": "a"}]})),
            "role",
        ),
        (
            "bad block",
            with(json!({"messages": [{"role": "user", "content": [{"type": "audio"}]}]})),
            "audio",
        ),
        (
            "bad content",
            with(json!({"messages": [{"role": "user", "content": 7}]})),
            "content",
        ),
    ];
    for (what, b, needle) in cases {
        let (status, err) = error_of(post(&fake, &b).await).await;
        assert_eq!(status, 400, "{what}");
        assert_eq!(err["error"]["type"], "invalid_request_error", "{what}");
        let msg = err["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{what}: {msg}");
    }

    // Version header: missing and unsupported.
    for version in [None, Some("2099-01-01")] {
        let mut req = client()
            .post(format!("{}/v1/messages", fake.base_url()))
            .header("x-api-key", TEST_KEY)
            .json(&good);
        if let Some(v) = version {
            req = req.header("anthropic-version", v);
        }
        let (status, err) = error_of(req.send().await.unwrap()).await;
        assert_eq!(status, 400);
        assert!(
            err["error"]["message"]
                .as_str()
                .unwrap()
                .contains("anthropic-version")
        );
    }
    // Unknown fields are fine, and rejected requests consumed no script.
    fake.script(Script::text("kept"));
    let ok = with(json!({"metadata": {"user_id": "x"}, "service_tier": "auto"}));
    assert_eq!(
        joined(&events(post(&fake, &ok).await).await, "text"),
        "kept"
    );
    assert_eq!(fake.counters().errors(400), 17);
}

#[tokio::test]
async fn bad_or_missing_key_is_401() {
    let fake = AnthropicFake::start();
    for key in [None, Some("sk-ant-wrong")] {
        let mut req = client()
            .post(format!("{}/v1/messages", fake.base_url()))
            .header("anthropic-version", "2023-06-01")
            .json(&body("claude-sonnet-4-6", "hi"));
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        let (status, err) = error_of(req.send().await.unwrap()).await;
        assert_eq!(status, 401);
        assert_eq!(err["error"]["type"], "authentication_error");
    }
    fake.set(|k| k.valid_keys.push("sk-ant-other".into()));
    let resp = client()
        .post(format!("{}/v1/messages", fake.base_url()))
        .header("x-api-key", "sk-ant-other")
        .header("anthropic-version", "2023-06-01")
        .json(&body("claude-sonnet-4-6", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(fake.counters().errors(401), 2);
}

#[tokio::test]
async fn rate_limits_carry_retry_after() {
    let fake = AnthropicFake::start_with(Knobs {
        rate_limited_keys: vec!["sk-ant-slow".into()],
        rate_limit_retry_after: 7,
        ..Knobs::default()
    });
    let resp = client()
        .post(format!("{}/v1/messages", fake.base_url()))
        .header("x-api-key", "sk-ant-slow")
        .header("anthropic-version", "2023-06-01")
        .json(&body("claude-sonnet-4-6", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["retry-after"], "7");
    let (status, err) = error_of(resp).await;
    assert_eq!(status, 429);
    assert_eq!(err["error"]["type"], "rate_limit_error");

    fake.script(Script::rate_limited(3));
    let resp = post(&fake, &body("claude-sonnet-4-6", "hi")).await;
    assert_eq!(resp.headers()["retry-after"], "3");
    assert_eq!(error_of(resp).await.0, 429);
    // The queue is drained: the next request succeeds.
    assert_eq!(
        post(&fake, &body("claude-sonnet-4-6", "hi")).await.status(),
        200
    );
    let c = fake.counters();
    assert_eq!((c.rate_limited, c.requests, c.errors(429)), (2, 3, 2));
}

#[tokio::test]
async fn overloaded_529_with_should_retry() {
    let fake = AnthropicFake::start();
    fake.script(Script::overloaded().with_header("x-should-retry", "true"));
    fake.script(Script::http_error(
        500,
        "api_error",
        "Internal server error",
    ));
    let resp = post(&fake, &body("claude-sonnet-4-6", "hi")).await;
    assert_eq!(resp.headers()["x-should-retry"], "true");
    let (status, err) = error_of(resp).await;
    assert_eq!(status, 529);
    assert_eq!(err["error"]["type"], "overloaded_error");
    let (status, err) = error_of(post(&fake, &body("claude-sonnet-4-6", "hi")).await).await;
    assert_eq!(status, 500);
    assert_eq!(err["error"]["type"], "api_error");
    assert_eq!(fake.counters().errors(529), 1);
    assert_eq!(fake.pending_scripts(), 0);
}

#[tokio::test]
async fn stream_error_event_ends_the_stream() {
    let fake = AnthropicFake::start();
    fake.script(Script::StreamError {
        after_tokens: 1,
        error_type: "overloaded_error".into(),
        message: "Overloaded".into(),
    });
    let ev = events(post(&fake, &body("claude-sonnet-4-6", "a b c d")).await).await;
    assert_eq!(
        names(&ev),
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "error"
        ]
    );
    assert_eq!(ev[4].1["error"]["type"], "overloaded_error");
    assert_eq!(fake.counters().stream_errors, 1);

    // Not streaming: the same failure is an HTTP 529.
    fake.script(Script::StreamError {
        after_tokens: 1,
        error_type: "overloaded_error".into(),
        message: "Overloaded".into(),
    });
    let mut b = body("claude-sonnet-4-6", "x");
    b["stream"] = json!(false);
    assert_eq!(error_of(post(&fake, &b).await).await.0, 529);
}

#[tokio::test]
async fn tool_use_stream() {
    let fake = AnthropicFake::start();
    let input = json!({"city": "Paris", "units": "metric", "days": [1, 2]});
    fake.script(Script::ToolUse {
        text: Some("Let me check.".into()),
        name: "get_weather".into(),
        input: input.clone(),
    });
    let mut b = body("claude-sonnet-4-6", "weather?");
    b["tools"] =
        json!([{"name": "get_weather", "description": "w", "input_schema": {"type": "object"}}]);
    let ev = events(post(&fake, &b).await).await;
    let starts: Vec<&Value> = ev
        .iter()
        .filter(|(n, _)| n == "content_block_start")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(starts.len(), 2);
    assert_eq!(starts[0]["content_block"]["type"], "text");
    let tool = &starts[1]["content_block"];
    assert_eq!(starts[1]["index"], 1);
    assert_eq!(tool["type"], "tool_use");
    assert_eq!(tool["name"], "get_weather");
    assert_eq!(tool["input"], json!({}));
    assert!(tool["id"].as_str().unwrap().starts_with("toolu_"));
    let json_deltas: Vec<&str> = ev
        .iter()
        .filter_map(|(_, d)| d["delta"]["partial_json"].as_str())
        .collect();
    assert!(json_deltas.len() > 2, "input arrives in pieces");
    let rebuilt: Value = serde_json::from_str(&json_deltas.concat()).unwrap();
    assert_eq!(rebuilt, input);
    assert_eq!(joined(&ev, "text"), "Let me check.");
    let stop = ev.iter().find(|(n, _)| n == "message_delta").unwrap();
    assert_eq!(stop.1["delta"]["stop_reason"], "tool_use");

    // Forgetting the tool_result in the next turn is a 400, as upstream.
    b["messages"] = json!([
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": tool["id"], "name": "get_weather", "input": input}]},
        {"role": "user", "content": "well?"},
    ]);
    assert_eq!(error_of(post(&fake, &b).await).await.0, 400);
}

#[tokio::test]
async fn models_list_is_counted_apart() {
    let fake = AnthropicFake::start();
    let get = |key: Option<&str>, query: &str| {
        let mut req = client()
            .get(format!("{}/v1/models{query}", fake.base_url()))
            .header("anthropic-version", "2023-06-01");
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        req.send()
    };
    let resp = get(Some(TEST_KEY), "").await.unwrap();
    assert_eq!(resp.status(), 200);
    let list: Value = resp.json().await.unwrap();
    assert_eq!(list["has_more"], false);
    assert_eq!(list["first_id"], "claude-opus-4-6");
    assert_eq!(list["last_id"], "claude-haiku-4-5");
    assert_eq!(
        list["data"][0],
        json!({"type": "model", "id": "claude-opus-4-6", "display_name": "Claude Opus 4.6",
               "created_at": "2025-01-01T00:00:00Z"})
    );
    let page: Value = get(Some(TEST_KEY), "?limit=1")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["has_more"], true);
    assert_eq!(page["data"].as_array().unwrap().len(), 1);

    assert_eq!(get(None, "").await.unwrap().status(), 401);
    let c = fake.counters();
    assert_eq!((c.models_list, c.requests), (3, 0));
}

#[tokio::test]
async fn non_streaming_message() {
    let fake = AnthropicFake::start();
    let mut b = body("claude-opus-4-6", "plain");
    b["stream"] = json!(false);
    b["thinking"] = json!({"type": "adaptive"});
    let resp = post(&fake, &b).await;
    assert_eq!(resp.status(), 200);
    let msg: Value = resp.json().await.unwrap();
    assert_eq!(msg["type"], "message");
    assert_eq!(msg["role"], "assistant");
    assert_eq!(msg["stop_reason"], "end_turn");
    assert_eq!(msg["stop_sequence"], Value::Null);
    assert_eq!(msg["content"][0]["type"], "thinking");
    assert!(msg["content"][0]["signature"].is_string());
    assert_eq!(
        msg["content"][1],
        json!({"type": "text", "text": "anthropic: plain"})
    );
    assert!(msg["usage"]["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(fake.counters().streamed, 0);
}

#[tokio::test]
async fn cut_and_hang() {
    let fake = AnthropicFake::start();
    fake.script(Script::Cut { after_tokens: 2 });
    let resp = post(&fake, &body("claude-sonnet-4-6", "a b c d e")).await;
    assert_eq!(resp.status(), 200);
    let mut resp = resp;
    let mut got = Vec::new();
    let err = loop {
        match resp.chunk().await {
            Ok(Some(c)) => got.extend_from_slice(&c),
            Ok(None) => panic!("a cut body must not end cleanly"),
            Err(e) => break e,
        }
    };
    assert!(err.is_body() || err.is_decode(), "{err:?}");
    let text = String::from_utf8(got).unwrap();
    assert!(text.contains("content_block_delta"));
    assert!(!text.contains("message_stop"));

    fake.script(Script::Hang);
    let mut resp = post(&fake, &body("claude-sonnet-4-6", "x")).await;
    assert_eq!(resp.status(), 200);
    let waited = tokio::time::timeout(Duration::from_millis(300), resp.chunk()).await;
    assert!(waited.is_err(), "a hung stream sends nothing");
    let c = fake.counters();
    assert_eq!((c.cuts, c.hangs), (1, 1));
}

#[tokio::test]
async fn delays_and_pings() {
    let fake = AnthropicFake::start_with(Knobs {
        first_token_delay: Duration::from_millis(120),
        token_delay: Duration::from_millis(30),
        ping_interval: Some(Duration::from_millis(50)),
        ..Knobs::default()
    });
    let started = Instant::now();
    let ev = events(post(&fake, &body("claude-sonnet-4-6", "a b c")).await).await;
    // 120ms to the first token, then 3 more tokens ("anthropic: ", "a ", "b ", "c").
    assert!(started.elapsed() >= Duration::from_millis(120 + 3 * 30));
    let pings = names(&ev).iter().filter(|n| **n == "ping").count();
    assert!(pings >= 3, "pings during the first-token wait: {pings}");

    fake.set(|k| {
        k.first_token_delay = Duration::ZERO;
        k.token_delay = Duration::ZERO;
        k.handshake_delay = Duration::from_millis(100);
    });
    let started = Instant::now();
    post(&fake, &body("claude-sonnet-4-6", "a")).await;
    assert!(started.elapsed() >= Duration::from_millis(100));
}

#[tokio::test]
async fn unknown_route_is_api_404() {
    let fake = AnthropicFake::start();
    let resp = client()
        .post(format!("{}/v1/v1/messages", fake.base_url()))
        .header("x-api-key", TEST_KEY)
        .send()
        .await
        .unwrap();
    let (status, err) = error_of(resp).await;
    assert_eq!(status, 404);
    assert_eq!(err["error"]["type"], "not_found_error");
    assert_eq!(fake.counters().errors(404), 1);
}

/// Works with no async runtime around, and stops on drop.
#[test]
fn sync_use_and_drop() {
    let fake = AnthropicFake::start();
    let addr = fake.addr();
    let payload = body("claude-sonnet-4-6", "sync").to_string();
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    write!(
        conn,
        "POST /v1/messages HTTP/1.1\r\nhost: {addr}\r\nx-api-key: {TEST_KEY}\r\n\
         anthropic-version: 2023-06-01\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{payload}",
        payload.len()
    )
    .unwrap();
    let mut raw = String::new();
    conn.read_to_string(&mut raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(raw.contains("event: message_stop"));
    assert!(!raw.contains("[DONE]"));

    fake.script(Script::Hang);
    let mut hung = std::net::TcpStream::connect(addr).unwrap();
    write!(
        hung,
        "POST /v1/messages HTTP/1.1\r\nhost: {addr}\r\nx-api-key: {TEST_KEY}\r\n\
         anthropic-version: 2023-06-01\r\ncontent-length: {}\r\n\r\n{payload}",
        payload.len()
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    // Dropping the fake must not wait for the hung connection, and must close it.
    drop(fake);
    hung.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut rest = Vec::new();
    let _ = hung.read_to_end(&mut rest);
    assert!(std::net::TcpStream::connect(addr).is_err());
}

/// The input count the fake documents: the body's compact JSON bytes / 4.
fn estimate(body: &Value) -> u64 {
    (body.to_string().len() as u64 / 4).max(1)
}

#[tokio::test]
async fn usage_is_the_documented_estimate() {
    let fake = AnthropicFake::start();
    let request = body("claude-sonnet-4-6", "one two three");
    let events = events(post(&fake, &request).await).await;
    let start = &events[0].1["message"]["usage"];
    assert_eq!(start["input_tokens"], estimate(&request));
    let (_, delta) = events
        .iter()
        .find(|(name, _)| name == "message_delta")
        .unwrap();
    assert_eq!(delta["usage"]["input_tokens"], estimate(&request));
    // "anthropic: one two three": four words.
    assert_eq!(delta["usage"]["output_tokens"], 4);
}

#[tokio::test]
async fn over_the_context_limit_the_prompt_is_too_long() {
    let short = body("claude-sonnet-4-6", "hi");
    let long = body("claude-sonnet-4-6", &"word ".repeat(40));
    let limit = estimate(&short);
    assert!(estimate(&long) > limit);
    let fake = AnthropicFake::start_with(Knobs {
        context_limit: Some(limit),
        ..Knobs::default()
    });
    fake.script(Script::text("kept"));
    let (status, error) = error_of(post(&fake, &long).await).await;
    assert_eq!(status, 400);
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert_eq!(
        error["error"]["message"],
        format!(
            "prompt is too long: {} tokens > {limit} maximum",
            estimate(&long)
        )
    );
    assert_eq!(fake.counters().context_exceeded, 1);
    assert_eq!(fake.pending_scripts(), 1);
    // At the limit: answered, with the script.
    let events = events(post(&fake, &short).await).await;
    assert_eq!(joined(&events, "text"), "kept");
}
