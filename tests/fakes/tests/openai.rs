//! Drives the OpenAI fake with plain HTTP and WebSocket clients, checking it speaks the wire
//! protocol from the notes (event order, sequence numbers, error shapes, close codes).

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use pincer_fakes::openai::{Knobs, OpenAiFake, Script, Transport};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

const WAIT: Duration = Duration::from_secs(5);

async fn post(fake: &OpenAiFake, key: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/responses", fake.base_url()))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Parses a whole SSE body into `(event line, data JSON)` pairs.
fn parse_sse(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|frame| !frame.trim().is_empty())
        .map(|frame| {
            let mut event = String::new();
            let mut data = String::new();
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    event = v.to_owned();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = v.to_owned();
                }
            }
            (event, serde_json::from_str(&data).unwrap())
        })
        .collect()
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

fn deltas(events: &[Value]) -> String {
    events
        .iter()
        .filter(|e| e["type"].as_str().is_some_and(|t| t.ends_with(".delta")))
        .map(|e| e["delta"].as_str().unwrap())
        .collect()
}

async fn connect_with(fake: &OpenAiFake, key: &str) -> Result<Socket, tungstenite::Error> {
    let mut request = fake.ws_url().into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert("authorization", format!("Bearer {key}").parse().unwrap());
    headers.insert("openai-beta", "responses-websocket=v1".parse().unwrap());
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(socket, _)| socket)
}

async fn connect(fake: &OpenAiFake) -> Socket {
    connect_with(fake, "sk-test").await.unwrap()
}

async fn send(socket: &mut Socket, frame: Value) {
    socket.send(Message::text(frame.to_string())).await.unwrap();
}

/// The next message of any kind (panics on timeout).
async fn next_message(socket: &mut Socket) -> Option<Result<Message, tungstenite::Error>> {
    tokio::time::timeout(WAIT, socket.next())
        .await
        .expect("socket read timed out")
}

async fn next_json(socket: &mut Socket) -> Value {
    match next_message(socket).await {
        Some(Ok(Message::Text(text))) => serde_json::from_str(&text).unwrap(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// Reads events until a terminal one (or an error frame) and returns them all.
async fn read_turn(socket: &mut Socket) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let event = next_json(socket).await;
        let kind = event["type"].as_str().unwrap().to_owned();
        events.push(event);
        if matches!(
            kind.as_str(),
            "response.completed" | "response.failed" | "response.incomplete" | "error"
        ) {
            return events;
        }
    }
}

fn create(input: &str) -> Value {
    json!({"type": "response.create", "model": "gpt-5", "store": false,
           "input": [{"role": "user", "content": [{"type": "input_text", "text": input}]}]})
}

#[tokio::test]
async fn sse_text_turn_has_the_real_event_order() {
    let fake = OpenAiFake::start().await;
    let response = post(
        &fake,
        "sk-test",
        json!({"model": "gpt-5", "input": "hello there", "stream": true, "reasoning": {"effort": "low"}}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert!(headers.contains_key("x-request-id"));
    assert!(headers.contains_key("x-ratelimit-remaining-requests"));
    assert!(headers.contains_key("x-ratelimit-reset-tokens"));
    let text = response.text().await.unwrap();
    assert!(!text.contains("[DONE]"));
    let frames = parse_sse(&text);
    for (event, data) in &frames {
        assert_eq!(
            event,
            data["type"].as_str().unwrap(),
            "event line repeats type"
        );
    }
    let events: Vec<Value> = frames.into_iter().map(|(_, d)| d).collect();
    let sequence: Vec<u64> = events
        .iter()
        .map(|e| e["sequence_number"].as_u64().unwrap())
        .collect();
    assert!(
        sequence.windows(2).all(|w| w[1] == w[0] + 1),
        "{sequence:?}"
    );
    assert_eq!(
        types(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(deltas(&events), "openai: hello there");
    let done = &events[10]["response"];
    assert_eq!(done["object"], "response");
    assert_eq!(done["status"], "completed");
    assert_eq!(done["model"], "gpt-5");
    assert!(done["id"].as_str().unwrap().starts_with("resp_"));
    assert!(done["created_at"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(
        done["output"][0]["content"][0]["text"],
        "openai: hello there"
    );
    let usage = &done["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap()
    );
    let counters = fake.counters();
    assert_eq!(counters.sse_requests, 1);
    let recorded = fake.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].transport, Transport::Sse);
    assert_eq!(recorded[0].header("Authorization"), Some("Bearer sk-test"));
    assert_eq!(recorded[0].body["reasoning"]["effort"], "low");
}

#[tokio::test]
async fn sse_errors_before_the_stream() {
    let fake = OpenAiFake::start().await;
    // 401 with the real error shape.
    let response = post(
        &fake,
        "sk-wrong-key-123",
        json!({"model": "gpt-5", "input": "x"}),
    )
    .await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_api_key");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(body["error"]["param"].is_null());
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Incorrect API key provided")
    );
    assert!(
        !body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sk-wrong-key-123")
    );

    // Missing model.
    let response = post(&fake, "sk-test", json!({"input": "x"})).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["param"], "model");

    // Scripted 429 with retry-after and x-should-retry, consumed once.
    fake.script(
        Script::http_error(429, Some("insufficient_quota"))
            .with_header("retry-after", "1")
            .with_header("x-should-retry", "false"),
    );
    let response = post(&fake, "sk-test", json!({"model": "gpt-5", "input": "x"})).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(response.headers()["x-should-retry"], "false");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "insufficient_quota");
    let response = post(&fake, "sk-test", json!({"model": "gpt-5", "input": "x"})).await;
    assert_eq!(response.status(), 200);

    // Unknown previous response.
    let response = post(
        &fake,
        "sk-test",
        json!({"model": "gpt-5", "input": "x", "previous_response_id": "resp_nope"}),
    )
    .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "previous_response_not_found");

    // Unknown route.
    let response = reqwest::get(format!("{}/nothing", fake.base_url()))
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["message"], "Invalid URL (GET /v1/nothing)");

    let counters = fake.counters();
    assert_eq!(counters.unauthorized, 1);
    assert_eq!(counters.rate_limited, 1);
    assert_eq!(counters.previous_not_found, 1);
}

#[tokio::test]
async fn rate_limited_key_gets_retry_after_ms() {
    let knobs = Knobs {
        rate_limited_keys: vec!["sk-limited".into()],
        retry_after_ms: 250,
        ..Knobs::default()
    };
    let fake = OpenAiFake::start_with(knobs).await;
    let response = post(&fake, "sk-limited", json!({"model": "gpt-5", "input": "x"})).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after-ms"], "250");
    assert_eq!(response.headers()["x-ratelimit-remaining-requests"], "0");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");

    let mut socket = connect_with(&fake, "sk-limited").await.unwrap();
    send(&mut socket, create("x")).await;
    let frame = next_json(&mut socket).await;
    assert_eq!(frame["status"], 429);
    assert_eq!(frame["error"]["code"], "rate_limit_exceeded");
    assert_eq!(fake.counters().rate_limited, 2);
}

#[tokio::test]
async fn sse_stream_errors_in_both_shapes_then_failed() {
    let fake = OpenAiFake::start().await;
    fake.script(Script::stream_error(1, "server_error"));
    fake.script(Script::StreamError {
        after_tokens: 0,
        code: "rate_limit_exceeded".into(),
        message: "slow down".into(),
        nested: false,
    });
    let text = post(
        &fake,
        "sk-test",
        json!({"model": "gpt-5", "input": "a b c"}),
    )
    .await
    .text()
    .await
    .unwrap();
    let events: Vec<Value> = parse_sse(&text).into_iter().map(|(_, d)| d).collect();
    let kinds = types(&events);
    assert_eq!(kinds[kinds.len() - 2..], ["error", "response.failed"]);
    assert_eq!(deltas(&events), "openai: ");
    let error = &events[events.len() - 2];
    assert_eq!(error["error"]["code"], "server_error");
    assert!(error["sequence_number"].is_u64());
    let failed = &events[events.len() - 1]["response"];
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"]["code"], "server_error");

    let text = post(&fake, "sk-test", json!({"model": "gpt-5", "input": "a"}))
        .await
        .text()
        .await
        .unwrap();
    let events: Vec<Value> = parse_sse(&text).into_iter().map(|(_, d)| d).collect();
    let error = &events[events.len() - 2];
    assert_eq!(error["code"], "rate_limit_exceeded");
    assert_eq!(error["message"], "slow down");
    assert!(error.get("error").is_none());
}

#[tokio::test]
async fn sse_close_cuts_the_body_without_a_terminal_event() {
    let fake = OpenAiFake::start().await;
    fake.script(Script::close(2, 1011));
    let response = post(
        &fake,
        "sk-test",
        json!({"model": "gpt-5", "input": "one two three"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let mut failed = false;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(bytes) => text.push_str(std::str::from_utf8(&bytes).unwrap()),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "the body must end in an error, got {text}");
    assert!(text.contains("response.output_text.delta"));
    assert!(!text.contains("response.completed"));
}

#[tokio::test]
async fn tool_call_then_function_call_output() {
    let fake = OpenAiFake::start().await;
    let arguments = r#"{"city":"Paris","unit":"c"}"#;
    fake.script(Script::tool_call("get_weather", arguments));
    let text = post(
        &fake,
        "sk-test",
        json!({"model": "gpt-5", "input": "weather?"}),
    )
    .await
    .text()
    .await
    .unwrap();
    let events: Vec<Value> = parse_sse(&text).into_iter().map(|(_, d)| d).collect();
    assert_eq!(
        types(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(deltas(&events), arguments);
    assert_eq!(events[6]["arguments"], arguments);
    let item = &events[8]["response"]["output"][0];
    assert_eq!(item["type"], "function_call");
    assert_eq!(item["name"], "get_weather");
    assert_eq!(item["arguments"], arguments);
    assert_eq!(events[8]["response"]["status"], "completed");
    let call_id = item["call_id"].as_str().unwrap().to_owned();

    let text = post(
        &fake,
        "sk-test",
        json!({"model": "gpt-5", "input": [
            {"role": "user", "content": "weather?"},
            item,
            {"type": "function_call_output", "call_id": call_id, "output": "sunny"},
        ]}),
    )
    .await
    .text()
    .await
    .unwrap();
    let events: Vec<Value> = parse_sse(&text).into_iter().map(|(_, d)| d).collect();
    assert_eq!(deltas(&events), "tool said: sunny");
}

#[tokio::test]
async fn ws_warmup_then_turn_and_continuation() {
    let fake = OpenAiFake::start().await;
    let mut socket = connect(&fake).await;
    send(
        &mut socket,
        json!({"type": "response.create", "generate": false, "model": "gpt-5", "input": [],
               "store": false, "instructions": "be brief", "tools": []}),
    )
    .await;
    let warm = read_turn(&mut socket).await;
    assert_eq!(types(&warm), ["response.created", "response.completed"]);
    assert_eq!(warm[1]["response"]["output"], json!([]));
    let warm_id = warm[1]["response"]["id"].as_str().unwrap().to_owned();

    let mut turn = create("hi");
    turn["previous_response_id"] = json!(warm_id);
    send(&mut socket, turn).await;
    let events = read_turn(&mut socket).await;
    assert_eq!(
        events.last().unwrap()["type"],
        "response.completed",
        "{events:?}"
    );
    assert_eq!(events[0]["sequence_number"], 0);
    assert_eq!(deltas(&events), "openai: hi");
    let first_id = events.last().unwrap()["response"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Continue from the latest response on the same socket.
    let mut next = create("again");
    next["previous_response_id"] = json!(first_id);
    send(&mut socket, next).await;
    let events = read_turn(&mut socket).await;
    assert_eq!(deltas(&events), "openai: again");

    // An older id is gone with store:false: only the latest is kept per connection.
    let mut stale = create("stale");
    stale["previous_response_id"] = json!(first_id);
    send(&mut socket, stale).await;
    let error = next_json(&mut socket).await;
    assert_eq!(
        error,
        json!({"type": "error", "status": 400, "error": {
            "type": "invalid_request_error", "code": "previous_response_not_found",
            "message": format!("Previous response with id '{first_id}' not found."),
            "param": "previous_response_id"}})
    );

    let counters = fake.counters();
    assert_eq!(counters.warmups, 1);
    assert_eq!(counters.ws_requests, 3);
    assert_eq!(counters.continuations, 2);
    assert_eq!(counters.sockets_opened, 1);
    assert_eq!(counters.sockets_open, 1);
    let frames: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.transport == Transport::Ws)
        .collect();
    assert_eq!(frames.len(), 4);
    assert!(frames[0].warmup);
    assert!(frames[1].continuation && frames[2].continuation && !frames[3].continuation);
    assert_eq!(
        frames[0].header("openai-beta"),
        Some("responses-websocket=v1")
    );
    assert_eq!(frames[0].connection, frames[3].connection);
    assert_eq!(frames[1].body["input"][0]["content"][0]["text"], "hi");
}

#[tokio::test]
async fn stored_responses_are_found_from_another_socket_and_http() {
    let fake = OpenAiFake::start().await;
    let mut first = connect(&fake).await;
    let mut stored = create("keep me");
    stored["store"] = json!(true);
    send(&mut first, stored).await;
    let kept = read_turn(&mut first).await.pop().unwrap()["response"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    send(&mut first, create("forget me")).await;
    let lost = read_turn(&mut first).await.pop().unwrap()["response"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut second = connect(&fake).await;
    let mut resumed = create("resume");
    resumed["previous_response_id"] = json!(kept);
    send(&mut second, resumed).await;
    assert_eq!(
        read_turn(&mut second).await.last().unwrap()["type"],
        "response.completed"
    );
    let mut missing = create("resume");
    missing["previous_response_id"] = json!(lost);
    send(&mut second, missing).await;
    assert_eq!(
        next_json(&mut second).await["error"]["code"],
        "previous_response_not_found"
    );

    let response = post(
        &fake,
        "sk-test",
        json!({"model": "gpt-5", "input": "x", "previous_response_id": kept}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(fake.counters().sockets_opened, 2);
}

#[tokio::test]
async fn second_create_while_streaming_is_rejected() {
    let fake = OpenAiFake::start().await;
    fake.set(|k| k.token_delay = Duration::from_millis(50));
    let mut socket = connect(&fake).await;
    send(&mut socket, create("one two three four")).await;
    send(&mut socket, create("again")).await;
    let mut error = None;
    let mut events = Vec::new();
    loop {
        let event = next_json(&mut socket).await;
        if event["type"] == "error" {
            error = Some(event);
            continue;
        }
        let done = event["type"] == "response.completed";
        events.push(event);
        if done {
            break;
        }
    }
    let error = error.expect("an error frame while the first response streams");
    assert_eq!(error["error"]["code"], "response_already_in_flight");
    assert_eq!(deltas(&events), "openai: one two three four");
    assert_eq!(fake.counters().already_in_flight, 1);
}

#[tokio::test]
async fn ws_rejects_bad_keys_and_refuses_when_told() {
    let fake = OpenAiFake::start().await;
    match connect_with(&fake, "sk-bad").await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401);
            let body: Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["error"]["code"], "invalid_api_key");
        }
        other => panic!("expected a 401, got {other:?}"),
    }
    fake.set(|k| k.refuse_websocket = Some(426));
    match connect_with(&fake, "sk-test").await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 426),
        other => panic!("expected a 426, got {other:?}"),
    }
    let counters = fake.counters();
    assert_eq!(counters.upgrades_refused, 2);
    assert_eq!(counters.unauthorized, 1);
    assert_eq!(counters.sockets_opened, 0);
    let upgrades = fake.requests();
    assert!(upgrades.iter().all(|r| r.transport == Transport::Upgrade));
    assert_eq!(
        upgrades[1].header("openai-beta"),
        Some("responses-websocket=v1")
    );
}

#[tokio::test]
async fn ws_frames_are_validated() {
    let fake = OpenAiFake::start().await;
    let mut socket = connect(&fake).await;
    send(&mut socket, json!({"type": "session.update"})).await;
    let error = next_json(&mut socket).await;
    assert_eq!(error["error"]["code"], "unknown_message_type");
    send(
        &mut socket,
        json!({"type": "response.create", "input": "x"}),
    )
    .await;
    let error = next_json(&mut socket).await;
    assert_eq!(error["error"]["param"], "model");
    socket.send(Message::text("not json")).await.unwrap();
    assert_eq!(
        next_json(&mut socket).await["error"]["type"],
        "invalid_request_error"
    );
    // Still usable.
    send(&mut socket, create("ok")).await;
    assert_eq!(
        read_turn(&mut socket).await.last().unwrap()["type"],
        "response.completed"
    );
}

#[tokio::test]
async fn ws_scripted_http_error_keeps_the_socket_open() {
    let fake = OpenAiFake::start().await;
    fake.script(Script::http_error(500, Some("server_error")));
    let mut socket = connect(&fake).await;
    send(&mut socket, create("x")).await;
    let error = next_json(&mut socket).await;
    assert_eq!(error["status"], 500);
    assert_eq!(error["error"]["code"], "server_error");
    send(&mut socket, create("x")).await;
    assert_eq!(
        read_turn(&mut socket).await.last().unwrap()["type"],
        "response.completed"
    );
}

#[tokio::test]
async fn age_limit_sends_the_error_and_closes() {
    let fake = OpenAiFake::start().await;
    fake.set(|k| k.max_connection_age = Some(Duration::from_millis(300)));
    let mut socket = connect(&fake).await;
    send(&mut socket, create("x")).await;
    read_turn(&mut socket).await;
    // Idle past the age: the fake says why and closes normally.
    let error = next_json(&mut socket).await;
    assert_eq!(error["error"]["code"], "websocket_connection_limit_reached");
    assert_eq!(error["status"], 400);
    match next_message(&mut socket).await {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1000),
        other => panic!("expected a close frame, got {other:?}"),
    }

    // A response in flight when the age passes finishes; the next request is refused.
    fake.set(|k| {
        k.max_connection_age = Some(Duration::from_millis(200));
        k.token_delay = Duration::from_millis(100);
    });
    let mut socket = connect(&fake).await;
    send(&mut socket, create("a b c d")).await;
    let events = read_turn(&mut socket).await;
    assert_eq!(events.last().unwrap()["type"], "response.completed");
    send(&mut socket, create("x")).await;
    assert_eq!(
        next_json(&mut socket).await["error"]["code"],
        "websocket_connection_limit_reached"
    );
}

#[tokio::test]
async fn ws_close_scripts_end_the_socket() {
    let fake = OpenAiFake::start().await;
    fake.script(Script::close(2, 1011));
    fake.script(Script::close(1, 1006));
    let mut socket = connect(&fake).await;
    send(&mut socket, create("one two three")).await;
    let mut seen = 0;
    let code = loop {
        match next_message(&mut socket).await {
            Some(Ok(Message::Text(_))) => seen += 1,
            Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(code, Some(1011));
    // Reading on sends our answer to the close frame and sees the end of the stream.
    assert!(next_message(&mut socket).await.is_none());
    assert_eq!(seen, 6, "created, in_progress, item, part, two deltas");

    let mut socket = connect(&fake).await;
    send(&mut socket, create("one two three")).await;
    let ended = loop {
        match next_message(&mut socket).await {
            Some(Ok(Message::Text(_))) => {}
            other => break other,
        }
    };
    assert!(
        matches!(
            ended,
            Some(Err(tungstenite::Error::Protocol(
                tungstenite::error::ProtocolError::ResetWithoutClosingHandshake
            )))
        ),
        "expected a reset without close frame (1006), got {ended:?}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(fake.counters().sockets_open, 0);
}

#[tokio::test]
async fn drop_all_sockets_is_abrupt() {
    let fake = OpenAiFake::start().await;
    let mut socket = connect(&fake).await;
    send(&mut socket, create("x")).await;
    read_turn(&mut socket).await;
    assert_eq!(fake.counters().sockets_open, 1);
    fake.drop_all_sockets();
    match next_message(&mut socket).await {
        Some(Err(tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
        ))) => {}
        other => panic!("expected a reset without close frame (1006), got {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(fake.counters().sockets_open, 0);
}

#[tokio::test]
async fn handshake_delay_is_paid_per_sse_request_and_once_per_socket() {
    let delay = Duration::from_millis(200);
    let fake = OpenAiFake::start().await;
    fake.set(|k| k.handshake_delay = delay);
    for _ in 0..2 {
        let started = Instant::now();
        post(&fake, "sk-test", json!({"model": "gpt-5", "input": "x"}))
            .await
            .text()
            .await
            .unwrap();
        assert!(started.elapsed() >= delay);
    }
    let started = Instant::now();
    let mut socket = connect(&fake).await;
    assert!(started.elapsed() >= delay);
    for _ in 0..2 {
        let started = Instant::now();
        send(&mut socket, create("x")).await;
        read_turn(&mut socket).await;
        assert!(
            started.elapsed() < delay,
            "a turn on an open socket pays no handshake"
        );
    }
}

#[tokio::test]
async fn first_token_and_token_delays_pace_the_stream() {
    let fake = OpenAiFake::start().await;
    fake.set(|k| {
        k.first_token_delay = Duration::from_millis(150);
        k.token_delay = Duration::from_millis(50);
    });
    let mut socket = connect(&fake).await;
    let started = Instant::now();
    send(&mut socket, create("a b c")).await;
    read_turn(&mut socket).await;
    // "openai: a b c" is 4 tokens: 150 + 3 * 50.
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn models_list_checks_auth_and_is_counted() {
    let fake = OpenAiFake::start().await;
    let client = reqwest::Client::new();
    let response = client
        .get(format!("{}/models", fake.base_url()))
        .bearer_auth("sk-test")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "list");
    assert_eq!(body["data"][0]["object"], "model");
    assert!(body["data"][0]["id"].is_string());
    let response = client
        .get(format!("{}/models", fake.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let counters = fake.counters();
    assert_eq!(counters.models_calls, 2);
    assert_eq!(counters.sse_requests + counters.ws_requests, 0);
}

#[tokio::test]
async fn scripts_for_a_model_wait_for_that_model() {
    let fake = OpenAiFake::start().await;
    fake.script(Script::for_model("gpt-5-mini", Script::text("mini only")));
    fake.script(Script::text("anyone"));
    let read = |text: String| {
        deltas(
            &parse_sse(&text)
                .into_iter()
                .map(|(_, d)| d)
                .collect::<Vec<_>>(),
        )
    };
    let a = post(&fake, "sk-test", json!({"model": "gpt-5", "input": "x"}))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(read(a), "anyone");
    let b = post(
        &fake,
        "sk-test",
        json!({"model": "gpt-5-mini", "input": "x"}),
    )
    .await
    .text()
    .await
    .unwrap();
    assert_eq!(read(b), "mini only");
    assert_eq!(fake.scripts_pending(), 0);
}

#[tokio::test]
async fn hang_never_answers_until_sockets_are_dropped() {
    let fake = OpenAiFake::start().await;
    fake.script(Script::Hang);
    let pending = post(&fake, "sk-test", json!({"model": "gpt-5", "input": "x"}));
    let waited = tokio::time::timeout(Duration::from_millis(300), pending).await;
    assert!(waited.is_err(), "a hung request must not answer");

    fake.script(Script::Hang);
    let mut socket = connect(&fake).await;
    send(&mut socket, create("x")).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(200), socket.next())
            .await
            .is_err()
    );
    send(&mut socket, create("y")).await;
    assert_eq!(
        next_json(&mut socket).await["error"]["code"],
        "response_already_in_flight"
    );
    fake.drop_all_sockets();
    assert!(matches!(
        next_message(&mut socket).await,
        Some(Err(_)) | None
    ));
}

#[test]
fn works_from_synchronous_code_and_stops_on_drop() {
    use std::io::{Read, Write};
    let fake = OpenAiFake::start_blocking();
    let addr = fake.addr();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET /v1/models HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer sk-test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"object\":\"list\""));
    drop(fake);
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "the port is closed after drop"
    );
}

/// The input count the fake documents: words of `input` and `instructions`.
#[tokio::test]
async fn usage_counts_words_and_a_continuation_counts_what_it_continues() {
    let fake = OpenAiFake::start().await;
    let text = post(
        &fake,
        "sk-test",
        json!({"model": "gpt-5", "instructions": "be brief", "input": [
            {"role": "user", "content": "one two three"},
        ]}),
    )
    .await
    .text()
    .await
    .unwrap();
    let events: Vec<Value> = parse_sse(&text).into_iter().map(|(_, d)| d).collect();
    let completed = &events[events.len() - 1]["response"];
    // 2 + 3 words in; "openai: one two three" streams as 4 deltas.
    assert_eq!(completed["usage"]["input_tokens"], 5);
    assert_eq!(completed["usage"]["output_tokens"], 4);
    assert_eq!(completed["usage"]["total_tokens"], 9);
    let id = completed["id"].as_str().unwrap().to_owned();

    // Continuing it: its 7 tokens of context (instructions are not carried over), then
    // 2 new words.
    let text = post(
        &fake,
        "sk-test",
        json!({"model": "gpt-5", "previous_response_id": id, "input": "four five"}),
    )
    .await
    .text()
    .await
    .unwrap();
    let events: Vec<Value> = parse_sse(&text).into_iter().map(|(_, d)| d).collect();
    assert_eq!(
        events[events.len() - 1]["response"]["usage"]["input_tokens"],
        9
    );
}

#[tokio::test]
async fn over_the_context_limit_a_stream_fails_as_production_streams_it() {
    let fake = OpenAiFake::start_with(Knobs {
        context_limit: Some(3),
        ..Knobs::default()
    })
    .await;
    fake.script(Script::text("kept for the next good request"));
    // At the limit: fine.
    let ok = post(
        &fake,
        "sk-test",
        json!({"model": "gpt-5", "input": "a b c"}),
    )
    .await;
    assert_eq!(ok.status(), 200);
    assert!(ok.text().await.unwrap().contains("response.completed"));
    fake.script(Script::text("still kept"));

    let over = post(
        &fake,
        "sk-test",
        json!({"model": "gpt-5", "input": "a b c d"}),
    )
    .await;
    assert_eq!(over.status(), 200);
    let events: Vec<Value> = parse_sse(&over.text().await.unwrap())
        .into_iter()
        .map(|(_, d)| d)
        .collect();
    assert_eq!(
        types(&events),
        [
            "response.created",
            "response.in_progress",
            "error",
            "response.failed"
        ]
    );
    assert_eq!(events[2]["sequence_number"], 2);
    assert_eq!(
        events[2]["error"],
        json!({"type": "invalid_request_error", "code": "context_length_exceeded",
               "message": "Your input exceeds the context window of this model. Please adjust your input and try again.",
               "param": "input"})
    );
    let failed = &events[3]["response"];
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"]["code"], "context_length_exceeded");
    // The refused request took no script.
    assert_eq!(fake.scripts_pending(), 1);
    assert_eq!(fake.counters().context_exceeded, 1);

    // Over a socket: the same events.
    let mut socket = connect(&fake).await;
    send(&mut socket, create("a b c d e")).await;
    let mut events = read_turn(&mut socket).await;
    assert_eq!(
        types(&events),
        ["response.created", "response.in_progress", "error"]
    );
    events.push(next_json(&mut socket).await);
    assert_eq!(events[3]["type"], "response.failed");
    assert_eq!(events[2]["error"]["code"], "context_length_exceeded");
    // The socket serves the next request.
    send(&mut socket, create("short")).await;
    let events = read_turn(&mut socket).await;
    assert_eq!(deltas(&events), "still kept");
    assert_eq!(fake.counters().context_exceeded, 2);
}

#[tokio::test]
async fn over_the_context_limit_before_the_stream_is_a_400() {
    let fake = OpenAiFake::start_with(Knobs {
        context_limit: Some(1),
        context_limit_before_stream: true,
        ..Knobs::default()
    })
    .await;
    let over = post(&fake, "sk-test", json!({"model": "gpt-5", "input": "a b"})).await;
    assert_eq!(over.status(), 400);
    let body: Value = over.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": {
            "message": "Your input exceeds the context window of this model. Please adjust your input and try again.",
            "type": "invalid_request_error", "param": "input", "code": "context_length_exceeded"}})
    );
    let mut socket = connect(&fake).await;
    send(&mut socket, create("a b")).await;
    let frame = next_json(&mut socket).await;
    assert_eq!(frame["type"], "error");
    assert_eq!(frame["status"], 400);
    assert_eq!(frame["error"]["code"], "context_length_exceeded");
    assert_eq!(fake.counters().context_exceeded, 2);
}
