//! Drives the Discord fake with a raw WebSocket client and plain HTTP, checking it speaks the
//! gateway and REST protocols from the notes: Hello/Identify/READY, heartbeats, sequence
//! numbers and replay on resume, op 7/op 9, close codes, REST auth, message shapes and
//! Discord's rate-limit answers.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use pincer_fakes::discord::{
    Author, DiscordFake, INTENT_DIRECT_MESSAGES, INTENT_GUILD_MESSAGES, INTENT_GUILDS,
    INTENT_MESSAGE_CONTENT, Incoming, Knobs, Limit, TEST_TOKEN,
};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

const WAIT: Duration = Duration::from_secs(5);
const ALL: u64 =
    INTENT_GUILDS | INTENT_GUILD_MESSAGES | INTENT_DIRECT_MESSAGES | INTENT_MESSAGE_CONTENT;

/// A fake with a short heartbeat interval, so timeouts stay out of the way but are quick.
fn fake() -> DiscordFake {
    DiscordFake::start_with(Knobs {
        heartbeat_interval: Duration::from_secs(2),
        ..Knobs::default()
    })
}

async fn connect(fake: &DiscordFake) -> Socket {
    let url = format!("{}/?v=10&encoding=json", fake.gateway_url());
    let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws
}

/// What the server sent next: a payload or the close code (`None`: no close frame).
#[derive(Debug)]
enum Got {
    Payload(Value),
    Closed(Option<u16>),
}

async fn next(ws: &mut Socket) -> Got {
    loop {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("no frame from the fake in time");
        match message {
            Some(Ok(Message::Text(text))) => {
                return Got::Payload(serde_json::from_str(&text).unwrap());
            }
            Some(Ok(Message::Close(frame))) => {
                return Got::Closed(frame.map(|f| u16::from(f.code)));
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return Got::Closed(None),
        }
    }
}

async fn recv(ws: &mut Socket) -> Value {
    match next(ws).await {
        Got::Payload(v) => v,
        Got::Closed(code) => panic!("expected a payload, got close {code:?}"),
    }
}

async fn recv_close(ws: &mut Socket) -> Option<u16> {
    match next(ws).await {
        Got::Closed(code) => code,
        Got::Payload(v) => panic!("expected a close, got {v}"),
    }
}

/// Nothing arrives within `within`.
async fn silent(ws: &mut Socket, within: Duration) {
    if let Ok(Some(Ok(m))) = tokio::time::timeout(within, ws.next()).await {
        panic!("unexpected frame {m:?}");
    }
}

async fn send(ws: &mut Socket, payload: Value) {
    ws.send(Message::text(payload.to_string())).await.unwrap();
}

fn identify_payload(token: &str, intents: u64) -> Value {
    json!({"op": 2, "d": {
        "token": token,
        "intents": intents,
        "properties": {"os": "linux", "browser": "pincer", "device": "pincer"},
    }})
}

/// Connects, identifies, and returns the socket and the READY payload.
async fn ready(fake: &DiscordFake, intents: u64) -> (Socket, Value) {
    let mut ws = connect(fake).await;
    assert_eq!(recv(&mut ws).await["op"], 10);
    send(&mut ws, identify_payload(TEST_TOKEN, intents)).await;
    let ready = recv(&mut ws).await;
    assert_eq!(ready["t"], "READY", "{ready}");
    (ws, ready)
}

async fn resume(ws: &mut Socket, session_id: &str, seq: u64) {
    send(
        ws,
        json!({"op": 6, "d": {"token": TEST_TOKEN, "session_id": session_id, "seq": seq}}),
    )
    .await;
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn alice() -> Author {
    Author::new("42", "alice")
}

async fn rest(
    fake: &DiscordFake,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new().request(method, format!("{}{path}", fake.api_base()));
    if let Some(token) = token {
        request = request.header("authorization", format!("Bot {token}"));
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

async fn post_message(fake: &DiscordFake, channel: &str, body: Value) -> reqwest::Response {
    rest(
        fake,
        reqwest::Method::POST,
        &format!("/channels/{channel}/messages"),
        Some(TEST_TOKEN),
        Some(body),
    )
    .await
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

// ---------------------------------------------------------------- gateway

#[tokio::test]
async fn hello_identify_ready() {
    let fake = fake();
    let mut ws = connect(&fake).await;
    let hello = recv(&mut ws).await;
    assert_eq!(
        hello,
        json!({"op": 10, "d": {"heartbeat_interval": 2000}, "s": null, "t": null})
    );
    send(&mut ws, identify_payload(TEST_TOKEN, ALL)).await;
    let ready = recv(&mut ws).await;
    assert_eq!(ready["op"], 0);
    assert_eq!(ready["t"], "READY");
    assert_eq!(ready["s"], 1);
    let d = &ready["d"];
    assert_eq!(d["v"], 10);
    assert_eq!(d["user"]["id"], "100000000000000001");
    assert_eq!(d["user"]["username"], "pincer-bot");
    assert_eq!(d["user"]["bot"], true);
    assert_eq!(d["resume_gateway_url"], fake.gateway_url());
    assert_eq!(d["guilds"], json!([]));
    assert_eq!(d["application"]["id"], "100000000000000001");
    assert_eq!(d["session_id"].as_str().unwrap().len(), 32);

    let c = fake.counters();
    assert_eq!((c.connections, c.live_connections, c.identifies), (1, 1, 1));
    assert_eq!(c.dispatched, 1);
    let frames = fake.frames();
    assert_eq!(frames.len(), 1);
    assert_eq!((frames[0].connection, frames[0].op), (1, 2));
    assert_eq!(frames[0].d["intents"], ALL);
}

#[tokio::test]
async fn heartbeat_is_acked_and_zombie_knob_stops_acks() {
    let fake = fake();
    let (mut ws, _) = ready(&fake, ALL).await;
    send(&mut ws, json!({"op": 1, "d": 1})).await;
    assert_eq!(
        recv(&mut ws).await,
        json!({"op": 11, "d": null, "s": null, "t": null})
    );
    fake.set(|k| k.ack_heartbeats = false);
    send(&mut ws, json!({"op": 1, "d": 1})).await;
    silent(&mut ws, Duration::from_millis(300)).await;
    let c = fake.counters();
    assert_eq!((c.heartbeats, c.acks), (2, 1));
    // The server may ask for a heartbeat at once (op 1).
    fake.request_heartbeat();
    assert_eq!(recv(&mut ws).await["op"], 1);
}

#[tokio::test]
async fn heartbeats_are_allowed_before_identify() {
    let fake = fake();
    let mut ws = connect(&fake).await;
    recv(&mut ws).await;
    send(&mut ws, json!({"op": 1, "d": null})).await;
    assert_eq!(recv(&mut ws).await["op"], 11);
}

#[tokio::test]
async fn post_dispatches_message_create_with_next_seq() {
    let fake = fake();
    let (mut ws, _) = ready(&fake, ALL).await;
    let id = fake.post(Incoming::guild("200", "300", alice(), "hello bot"));
    let event = recv(&mut ws).await;
    assert_eq!(
        (event["op"].clone(), event["s"].clone()),
        (json!(0), json!(2))
    );
    assert_eq!(event["t"], "MESSAGE_CREATE");
    let d = &event["d"];
    assert_eq!(d["id"], id);
    assert_eq!(d["channel_id"], "200");
    assert_eq!(d["guild_id"], "300");
    assert_eq!(d["content"], "hello bot");
    assert_eq!(d["type"], 0);
    assert_eq!(d["author"]["id"], "42");
    assert_eq!(d["author"]["username"], "alice");
    assert!(d["author"].get("bot").is_none());
    assert_eq!(d["mentions"], json!([]));
    assert!(d["timestamp"].as_str().unwrap().ends_with("+00:00"));

    let dm = fake.post(Incoming::dm("500", alice(), "psst").mentioning_bot());
    let event = recv(&mut ws).await;
    assert_eq!(event["s"], 3);
    assert_eq!(event["d"]["id"], dm);
    assert!(event["d"].get("guild_id").is_none());
    assert_eq!(event["d"]["mentions"][0]["id"], "100000000000000001");
    assert!(dm.parse::<u64>().unwrap() > id.parse::<u64>().unwrap());
    assert_eq!(fake.counters().dispatched, 3);
}

#[tokio::test]
async fn intents_gate_events_and_message_content() {
    let fake = fake();
    // GUILD_MESSAGES without MESSAGE_CONTENT and without DIRECT_MESSAGES.
    let (mut ws, _) = ready(&fake, INTENT_GUILD_MESSAGES).await;
    fake.post(Incoming::dm("500", alice(), "not delivered"));
    fake.post(Incoming::guild("200", "300", alice(), "hidden"));
    let event = recv(&mut ws).await;
    assert_eq!(event["s"], 2, "the DM took no sequence number");
    assert_eq!(event["d"]["content"], "");
    fake.post(Incoming::guild("200", "300", alice(), "<@100000000000000001> hi").mentioning_bot());
    assert_eq!(
        recv(&mut ws).await["d"]["content"],
        "<@100000000000000001> hi"
    );
    fake.create_thread("200", "300", "no GUILDS intent");
    silent(&mut ws, Duration::from_millis(200)).await;

    let (mut dm_ws, _) = ready(&fake, INTENT_DIRECT_MESSAGES).await;
    fake.post(Incoming::dm("500", alice(), "dm text"));
    assert_eq!(recv(&mut dm_ws).await["d"]["content"], "dm text");
}

#[tokio::test]
async fn thread_create_and_messages_in_threads() {
    let fake = fake();
    let (mut ws, _) = ready(&fake, ALL).await;
    let thread = fake.create_thread("200", "300", "topic");
    let event = recv(&mut ws).await;
    assert_eq!(event["t"], "THREAD_CREATE");
    assert_eq!(event["s"], 2);
    let d = &event["d"];
    assert_eq!(d["id"], thread);
    assert_eq!(d["type"], 11);
    assert_eq!(d["parent_id"], "200");
    assert_eq!(d["guild_id"], "300");
    assert_eq!(d["name"], "topic");
    assert_eq!(d["newly_created"], true);
    fake.post(Incoming::guild(&thread, "300", alice(), "in thread"));
    let event = recv(&mut ws).await;
    assert_eq!(event["d"]["channel_id"], thread);
    assert_eq!(event["d"]["guild_id"], "300");
}

#[tokio::test]
async fn dropped_connection_buffers_and_resume_replays() {
    let fake = fake();
    let (ws, ready_event) = ready(&fake, ALL).await;
    let session = ready_event["d"]["session_id"].as_str().unwrap().to_owned();
    drop(ws);
    wait_until("the drop to be seen", || {
        fake.counters().live_connections == 0
    })
    .await;
    let first = fake.post(Incoming::guild("200", "300", alice(), "one"));
    let second = fake.post(Incoming::guild("200", "300", alice(), "two"));

    let mut ws = connect(&fake).await;
    assert_eq!(recv(&mut ws).await["op"], 10);
    resume(&mut ws, &session, 1).await;
    let a = recv(&mut ws).await;
    let b = recv(&mut ws).await;
    let resumed = recv(&mut ws).await;
    assert_eq!(
        (a["s"].clone(), a["d"]["id"].clone()),
        (json!(2), json!(first))
    );
    assert_eq!(
        (b["s"].clone(), b["d"]["id"].clone()),
        (json!(3), json!(second))
    );
    assert_eq!(
        (resumed["t"].clone(), resumed["s"].clone()),
        (json!("RESUMED"), json!(4))
    );
    let c = fake.counters();
    assert_eq!((c.resumes, c.successful_resumes, c.replayed), (1, 1, 2));
    assert_eq!(c.connections, 2);

    // Live again: new events flow with the next sequence number.
    fake.post(Incoming::guild("200", "300", alice(), "three"));
    assert_eq!(recv(&mut ws).await["s"], 5);
}

#[tokio::test]
async fn drop_all_cuts_without_close_frame_and_session_survives() {
    let fake = fake();
    let (mut ws, ready_event) = ready(&fake, ALL).await;
    let session = ready_event["d"]["session_id"].as_str().unwrap().to_owned();
    fake.drop_all();
    assert_eq!(recv_close(&mut ws).await, None);
    assert_eq!(fake.counters().live_connections, 0);
    fake.post(Incoming::guild("200", "300", alice(), "while away"));
    let mut ws = connect(&fake).await;
    recv(&mut ws).await;
    resume(&mut ws, &session, 1).await;
    assert_eq!(recv(&mut ws).await["d"]["content"], "while away");
    assert_eq!(recv(&mut ws).await["t"], "RESUMED");
}

#[tokio::test]
async fn resume_of_unknown_session_gets_invalid_session_false() {
    let fake = fake();
    let mut ws = connect(&fake).await;
    recv(&mut ws).await;
    resume(&mut ws, "0123456789abcdef0123456789abcdef", 3).await;
    assert_eq!(
        recv(&mut ws).await,
        json!({"op": 9, "d": false, "s": null, "t": null})
    );
    let c = fake.counters();
    assert_eq!(
        (c.resumes, c.successful_resumes, c.invalid_sessions),
        (1, 0, 1)
    );
    // The connection is still unauthenticated: it may Identify now.
    send(&mut ws, identify_payload(TEST_TOKEN, ALL)).await;
    assert_eq!(recv(&mut ws).await["t"], "READY");
}

#[tokio::test]
async fn resume_with_seq_from_the_future_is_closed_4007() {
    let fake = fake();
    let (ws, ready_event) = ready(&fake, ALL).await;
    let session = ready_event["d"]["session_id"].as_str().unwrap().to_owned();
    drop(ws);
    let mut ws = connect(&fake).await;
    recv(&mut ws).await;
    resume(&mut ws, &session, 99).await;
    assert_eq!(recv_close(&mut ws).await, Some(4007));
}

#[tokio::test]
async fn resume_while_old_connection_is_live_closes_the_old_one() {
    let fake = fake();
    let (mut old, ready_event) = ready(&fake, ALL).await;
    let session = ready_event["d"]["session_id"].as_str().unwrap().to_owned();
    let mut new = connect(&fake).await;
    recv(&mut new).await;
    resume(&mut new, &session, 1).await;
    assert_eq!(recv(&mut new).await["t"], "RESUMED");
    assert_eq!(recv_close(&mut old).await, Some(4000));
    let c = fake.counters();
    assert_eq!((c.max_live_connections, c.live_connections), (2, 1));
}

#[tokio::test]
async fn reconnect_op_7_then_resume() {
    let fake = fake();
    let (mut ws, ready_event) = ready(&fake, ALL).await;
    let session = ready_event["d"]["session_id"].as_str().unwrap().to_owned();
    fake.send_reconnect();
    assert_eq!(
        recv(&mut ws).await,
        json!({"op": 7, "d": null, "s": null, "t": null})
    );
    // A client closes with a non-1000 code to keep its session.
    ws.close(Some(CloseFrame {
        code: 4000u16.into(),
        reason: "reconnect".into(),
    }))
    .await
    .unwrap();
    let mut ws = connect(&fake).await;
    recv(&mut ws).await;
    resume(&mut ws, &session, 1).await;
    assert_eq!(recv(&mut ws).await["t"], "RESUMED");
}

#[tokio::test]
async fn client_close_1000_ends_the_session() {
    let fake = fake();
    let (mut ws, ready_event) = ready(&fake, ALL).await;
    let session = ready_event["d"]["session_id"].as_str().unwrap().to_owned();
    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    }))
    .await
    .unwrap();
    wait_until("the close", || fake.counters().live_connections == 0).await;
    let mut ws = connect(&fake).await;
    recv(&mut ws).await;
    resume(&mut ws, &session, 1).await;
    assert_eq!(recv(&mut ws).await["d"], false);
}

#[tokio::test]
async fn invalidate_session_resumable_and_not() {
    let fake = fake();
    let (mut ws, ready_event) = ready(&fake, ALL).await;
    let session = ready_event["d"]["session_id"].as_str().unwrap().to_owned();
    fake.invalidate_session(true);
    assert_eq!(
        recv(&mut ws).await,
        json!({"op": 9, "d": true, "s": null, "t": null})
    );
    fake.post(Incoming::guild("200", "300", alice(), "buffered"));
    drop(ws);
    let mut ws = connect(&fake).await;
    recv(&mut ws).await;
    resume(&mut ws, &session, 1).await;
    assert_eq!(recv(&mut ws).await["d"]["content"], "buffered");
    assert_eq!(recv(&mut ws).await["t"], "RESUMED");

    fake.invalidate_session(false);
    assert_eq!(recv(&mut ws).await["d"], false);
    drop(ws);
    let mut ws = connect(&fake).await;
    recv(&mut ws).await;
    resume(&mut ws, &session, 3).await;
    assert_eq!(recv(&mut ws).await["d"], false);
    assert_eq!(fake.counters().invalid_sessions, 3);
}

#[tokio::test]
async fn close_all_sends_the_code_and_keeps_the_session() {
    let fake = fake();
    let (mut ws, ready_event) = ready(&fake, ALL).await;
    let session = ready_event["d"]["session_id"].as_str().unwrap().to_owned();
    fake.close_all(4000);
    assert_eq!(recv_close(&mut ws).await, Some(4000));
    let mut ws = connect(&fake).await;
    recv(&mut ws).await;
    resume(&mut ws, &session, 1).await;
    assert_eq!(recv(&mut ws).await["t"], "RESUMED");
    fake.close_all(4014);
    assert_eq!(recv_close(&mut ws).await, Some(4014));
}

#[tokio::test]
async fn close_codes_for_bad_clients() {
    let fake = fake();
    let cases: Vec<(Vec<Value>, u16)> = vec![
        (vec![identify_payload("wrong-token", ALL)], 4004),
        (vec![json!({"op": 3, "d": {"status": "online"}})], 4003),
        (vec![json!({"op": 42, "d": null})], 4001),
        (vec![json!("not a payload")], 4002),
        (
            vec![
                identify_payload(TEST_TOKEN, ALL),
                identify_payload(TEST_TOKEN, ALL),
            ],
            4005,
        ),
        (vec![identify_payload(TEST_TOKEN, 1 << 40)], 4013),
    ];
    for (payloads, code) in cases {
        let mut ws = connect(&fake).await;
        recv(&mut ws).await;
        for p in payloads {
            send(&mut ws, p).await;
        }
        loop {
            match next(&mut ws).await {
                Got::Payload(v) => assert_eq!(v["t"], "READY"),
                Got::Closed(got) => {
                    assert_eq!(got, Some(code));
                    break;
                }
            }
        }
    }
    let mut ws = connect(&fake).await;
    recv(&mut ws).await;
    ws.send(Message::text("{nope")).await.unwrap();
    assert_eq!(recv_close(&mut ws).await, Some(4002));

    fake.set(|k| k.disallowed_intents = INTENT_MESSAGE_CONTENT);
    let mut ws = connect(&fake).await;
    recv(&mut ws).await;
    send(&mut ws, identify_payload(TEST_TOKEN, ALL)).await;
    assert_eq!(recv_close(&mut ws).await, Some(4014));
}

#[tokio::test]
async fn unsupported_encoding_is_refused() {
    let fake = fake();
    let url = format!("{}/?v=10&encoding=etf", fake.gateway_url());
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(recv(&mut ws).await["op"], 10);
    assert_eq!(recv_close(&mut ws).await, Some(4002));
}

#[tokio::test]
async fn missing_heartbeats_close_4009_and_session_stays_resumable() {
    let fake = DiscordFake::start_with(Knobs {
        heartbeat_interval: Duration::from_millis(200),
        ..Knobs::default()
    });
    let (mut ws, ready_event) = ready(&fake, ALL).await;
    let session = ready_event["d"]["session_id"].as_str().unwrap().to_owned();
    let started = Instant::now();
    // One heartbeat keeps it alive; then silence.
    tokio::time::sleep(Duration::from_millis(150)).await;
    send(&mut ws, json!({"op": 1, "d": 1})).await;
    assert_eq!(recv(&mut ws).await["op"], 11);
    assert_eq!(recv_close(&mut ws).await, Some(4009));
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(430) && elapsed < Duration::from_secs(2),
        "{elapsed:?}"
    );
    let mut ws = connect(&fake).await;
    recv(&mut ws).await;
    resume(&mut ws, &session, 1).await;
    assert_eq!(recv(&mut ws).await["t"], "RESUMED");
}

#[test]
fn works_from_sync_code_and_drop_closes_sockets() {
    let fake = fake();
    let url = fake.gateway_url();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("{url}/?v=10&encoding=json"))
            .await
            .unwrap();
        assert_eq!(recv(&mut ws).await["op"], 10);
        drop(fake);
        assert!(matches!(next(&mut ws).await, Got::Closed(_)));
    });
}

// ---------------------------------------------------------------- REST

#[tokio::test]
async fn rest_requires_bot_token() {
    let fake = fake();
    for token in [None, Some("wrong")] {
        let r = rest(&fake, reqwest::Method::GET, "/users/@me", token, None).await;
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({"message": "401: Unauthorized", "code": 0})
        );
    }
    let bearer = reqwest::Client::new()
        .get(format!("{}/users/@me", fake.api_base()))
        .bearer_auth(TEST_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 401);
    let me = rest(
        &fake,
        reqwest::Method::GET,
        "/users/@me",
        Some(TEST_TOKEN),
        None,
    )
    .await;
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.unwrap();
    assert_eq!(
        (me["id"].clone(), me["bot"].clone()),
        (json!("100000000000000001"), json!(true))
    );

    let missing = rest(&fake, reqwest::Method::GET, "/nope", Some(TEST_TOKEN), None).await;
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.json::<Value>().await.unwrap(),
        json!({"message": "404: Not Found", "code": 0})
    );
    let recorded = fake.requests();
    assert_eq!(recorded.len(), 5);
    assert_eq!(recorded[0].authorization, None);
    assert_eq!(recorded[3].path, "/api/v10/users/@me");
    assert_eq!(
        recorded[3].authorization.as_deref(),
        Some("Bot discord-test-token")
    );
    assert_eq!(recorded[3].status, 200);
}

#[tokio::test]
async fn gateway_bot_describes_the_gateway() {
    let fake = fake();
    let r = rest(
        &fake,
        reqwest::Method::GET,
        "/gateway/bot",
        Some(TEST_TOKEN),
        None,
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["url"], fake.gateway_url());
    assert!(fake.gateway_url().starts_with("ws://127.0.0.1:"));
    assert_eq!(body["shards"], 1);
    let limit = &body["session_start_limit"];
    assert_eq!(
        (limit["total"].clone(), limit["remaining"].clone()),
        (json!(1000), json!(1000))
    );
    assert_eq!(limit["max_concurrency"], 1);
    assert!(limit["reset_after"].as_u64().unwrap() > 0);
    let (_ws, _) = ready(&fake, ALL).await;
    let body: Value = rest(
        &fake,
        reqwest::Method::GET,
        "/gateway/bot",
        Some(TEST_TOKEN),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["session_start_limit"]["remaining"], 999);
}

#[tokio::test]
async fn session_start_limit_exhausted_gets_invalid_session() {
    let fake = fake();
    fake.set(|k| k.session_start_limit = 0);
    let mut ws = connect(&fake).await;
    recv(&mut ws).await;
    send(&mut ws, identify_payload(TEST_TOKEN, ALL)).await;
    assert_eq!(recv(&mut ws).await["d"], false);
}

#[tokio::test]
async fn message_post_shape_reply_and_echo() {
    let fake = fake();
    let (mut ws, _) = ready(&fake, ALL).await;
    let incoming = fake.post(Incoming::guild("200", "300", alice(), "question"));
    recv(&mut ws).await;

    let r = post_message(
        &fake,
        "200",
        json!({"content": "answer", "message_reference": {"message_id": incoming}}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-ratelimit-limit"), Some("5"));
    assert_eq!(header(&r, "x-ratelimit-remaining"), Some("4"));
    assert!(header(&r, "x-ratelimit-bucket").is_some());
    let reset_after: f64 = header(&r, "x-ratelimit-reset-after")
        .unwrap()
        .parse()
        .unwrap();
    assert!(reset_after > 4.0 && reset_after <= 5.0);
    let reset: f64 = header(&r, "x-ratelimit-reset").unwrap().parse().unwrap();
    assert!(reset > 1.7e9);
    let message: Value = r.json().await.unwrap();
    assert_eq!(message["channel_id"], "200");
    assert_eq!(message["content"], "answer");
    assert_eq!(message["author"]["id"], "100000000000000001");
    assert_eq!(message["author"]["bot"], true);
    assert_eq!(message["message_reference"]["message_id"], incoming);
    assert!(message["timestamp"].is_string());
    let id = message["id"].as_str().unwrap().to_owned();

    // Discord echoes the bot's own message to its session.
    let echo = recv(&mut ws).await;
    assert_eq!(echo["t"], "MESSAGE_CREATE");
    assert_eq!(echo["s"], 3);
    assert_eq!(echo["d"]["id"], id);
    assert_eq!(echo["d"]["author"]["bot"], true);
    assert_eq!(echo["d"]["guild_id"], "300");

    let typing = rest(
        &fake,
        reqwest::Method::POST,
        "/channels/200/typing",
        Some(TEST_TOKEN),
        None,
    )
    .await;
    assert_eq!(typing.status(), 204);

    let sent = fake.messages("200");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].id, id);
    assert_eq!(sent[0].content, "answer");
    assert_eq!(sent[0].reply_to.as_deref(), Some(incoming.as_str()));
    assert_eq!(fake.all_messages(), sent);
    assert!(fake.messages("201").is_empty());
    assert_eq!(fake.counters().messages_posted, 1);
}

#[tokio::test]
async fn message_validation_errors() {
    let fake = DiscordFake::start_with(Knobs {
        route_limit: None,
        ..Knobs::default()
    });
    let ok = post_message(&fake, "200", json!({"content": "é".repeat(2000)})).await;
    assert_eq!(ok.status(), 200);
    let long = post_message(&fake, "200", json!({"content": "x".repeat(2001)})).await;
    assert_eq!(long.status(), 400);
    let body: Value = long.json().await.unwrap();
    assert_eq!(body["code"], 50035);
    assert_eq!(body["message"], "Invalid Form Body");
    assert_eq!(
        body["errors"]["content"]["_errors"][0]["code"],
        "BASE_TYPE_MAX_LENGTH"
    );
    let empty = post_message(&fake, "200", json!({"content": ""})).await;
    assert_eq!(empty.status(), 400);
    assert_eq!(empty.json::<Value>().await.unwrap()["code"], 50006);
    let unknown_reply = post_message(
        &fake,
        "200",
        json!({"content": "x", "message_reference": {"message_id": "1"}}),
    )
    .await;
    assert_eq!(unknown_reply.status(), 400);
    let body: Value = unknown_reply.json().await.unwrap();
    assert_eq!(
        body["errors"]["message_reference"]["_errors"][0]["code"],
        "MESSAGE_REFERENCE_UNKNOWN_MESSAGE"
    );
    let bad_json = reqwest::Client::new()
        .post(format!("{}/channels/200/messages", fake.api_base()))
        .header("authorization", format!("Bot {TEST_TOKEN}"))
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_json.status(), 400);
    assert_eq!(bad_json.json::<Value>().await.unwrap()["code"], 50109);
    assert_eq!(fake.all_messages().len(), 1);
    assert_eq!(fake.requests().last().unwrap().body, json!("{oops"));
}

#[tokio::test]
async fn route_bucket_429_per_channel() {
    let fake = DiscordFake::start_with(Knobs {
        route_limit: Some(Limit {
            requests: 2,
            per: Duration::from_millis(600),
        }),
        ..Knobs::default()
    });
    for remaining in ["1", "0"] {
        let r = post_message(&fake, "200", json!({"content": "hi"})).await;
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "x-ratelimit-remaining"), Some(remaining));
    }
    let limited = post_message(&fake, "200", json!({"content": "hi"})).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(header(&limited, "retry-after"), Some("1"));
    assert_eq!(header(&limited, "x-ratelimit-scope"), Some("user"));
    assert_eq!(header(&limited, "x-ratelimit-remaining"), Some("0"));
    assert_eq!(header(&limited, "x-ratelimit-limit"), Some("2"));
    assert!(header(&limited, "x-ratelimit-global").is_none());
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["message"], "You are being rate limited.");
    assert_eq!(body["global"], false);
    let retry_after = body["retry_after"].as_f64().unwrap();
    assert!(retry_after > 0.0 && retry_after <= 0.6, "{retry_after}");

    // Another channel has its own bucket.
    assert_eq!(
        post_message(&fake, "201", json!({"content": "hi"}))
            .await
            .status(),
        200
    );
    tokio::time::sleep(Duration::from_secs_f64(retry_after)).await;
    assert_eq!(
        post_message(&fake, "200", json!({"content": "hi"}))
            .await
            .status(),
        200
    );
    let c = fake.counters();
    assert_eq!(
        (c.rate_limited, c.global_rate_limited, c.messages_posted),
        (1, 0, 4)
    );
    assert_eq!(fake.requests()[2].status, 429);
}

#[tokio::test]
async fn global_limit_429() {
    let fake = DiscordFake::start_with(Knobs {
        global_limit: 3,
        route_limit: None,
        ..Knobs::default()
    });
    for _ in 0..3 {
        let r = rest(
            &fake,
            reqwest::Method::GET,
            "/users/@me",
            Some(TEST_TOKEN),
            None,
        )
        .await;
        assert_eq!(r.status(), 200);
    }
    let limited = post_message(&fake, "200", json!({"content": "hi"})).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(header(&limited, "x-ratelimit-global"), Some("true"));
    assert_eq!(header(&limited, "x-ratelimit-scope"), Some("global"));
    assert_eq!(header(&limited, "retry-after"), Some("1"));
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["global"], true);
    let c = fake.counters();
    assert_eq!(
        (c.rate_limited, c.global_rate_limited, c.messages_posted),
        (1, 1, 0)
    );
}

#[tokio::test]
async fn injected_429s() {
    let fake = fake();
    fake.inject_429(1, Duration::from_millis(1500), false);
    fake.inject_429(1, Duration::from_millis(250), true);
    let first = post_message(&fake, "200", json!({"content": "hi"})).await;
    assert_eq!(first.status(), 429);
    assert_eq!(header(&first, "retry-after"), Some("2"));
    assert_eq!(header(&first, "x-ratelimit-scope"), Some("user"));
    assert_eq!(header(&first, "x-ratelimit-reset-after"), Some("1.500"));
    assert_eq!(first.json::<Value>().await.unwrap()["retry_after"], 1.5);
    let second = post_message(&fake, "200", json!({"content": "hi"})).await;
    assert_eq!(second.status(), 429);
    assert_eq!(header(&second, "x-ratelimit-global"), Some("true"));
    let body: Value = second.json().await.unwrap();
    assert_eq!(
        (body["global"].clone(), body["retry_after"].clone()),
        (json!(true), json!(0.25))
    );
    assert_eq!(
        post_message(&fake, "200", json!({"content": "hi"}))
            .await
            .status(),
        200
    );
    let c = fake.counters();
    assert_eq!(
        (c.rate_limited, c.global_rate_limited, c.messages_posted),
        (2, 1, 1)
    );
}
