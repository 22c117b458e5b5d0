//! The web chat's socket under hostile pages: a session id is not enough to write into
//! another browser's conversation, a socket sees only its own sessions (others as counts),
//! the tree frame stays small with thousands of sessions, and a page that never reads is
//! closed without costing the gateway its memory, while its messages are still answered.

mod common;

use std::time::{Duration, Instant};

use common::{Gw, TempDir};
use futures::{SinkExt, StreamExt};
use pincer_fakes::openai::{OpenAiFake, Script};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const ALICE: &str = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1";
const MALLORY: &str = "m0m0m0m0m0m0m0m0m0m0m0m0m0m0m0m0";

async fn open(gw: &Gw) -> Socket {
    let (socket, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/ws", gw.port))
        .await
        .expect("websocket");
    socket
}

async fn hello(gw: &Gw, client: &str) -> Socket {
    let mut socket = open(gw).await;
    send(&mut socket, json!({"type": "hello", "client": client})).await;
    socket
}

/// A page past its `hello`, on a socket whose receive buffer is 4 kB: what the gateway
/// sends it stays in the gateway's buffers, not the kernel's.
async fn hello_small(gw: &Gw, client: &str) -> Socket {
    let tcp = tokio::net::TcpSocket::new_v4().expect("socket");
    tcp.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let stream = tcp
        .connect(std::net::SocketAddr::from(([127, 0, 0, 1], gw.port)))
        .await
        .expect("connect");
    let (mut socket, _) = tokio_tungstenite::client_async(
        format!("ws://127.0.0.1:{}/ws", gw.port),
        tokio_tungstenite::MaybeTlsStream::Plain(stream),
    )
    .await
    .expect("websocket");
    send(&mut socket, json!({"type": "hello", "client": client})).await;
    socket
}

async fn send(socket: &mut Socket, frame: Value) {
    socket
        .send(Message::text(frame.to_string()))
        .await
        .expect("send");
}

async fn next_frame(socket: &mut Socket) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a frame within 10 s")
            .expect("socket open")
            .expect("frame");
        if let Message::Text(text) = msg {
            return serde_json::from_str(&text).expect("JSON frame");
        }
    }
}

/// Frames until one of `kind` (and message `id`, if given); every frame seen is kept.
async fn until(socket: &mut Socket, kind: &str, id: Option<&str>, seen: &mut Vec<Value>) -> Value {
    loop {
        let frame = next_frame(socket).await;
        seen.push(frame.clone());
        if frame["type"] == kind && id.is_none_or(|id| frame["id"] == id) {
            return frame;
        }
    }
}

/// A page that knows another browser's session id (and even a message id of it) writes
/// into a session of its own: it gets no reply of the other's, and the model sees none of
/// the other's conversation. A socket lists only its owner's sessions, and its tree frame
/// names no session at all.
#[tokio::test]
async fn a_session_id_alone_does_not_reach_another_browsers_conversation() {
    let fake = OpenAiFake::start().await;
    let home = TempDir::new();
    let config = format!(
        "[providers.openai]\nbaseUrl = \"{}\"\napiKey = \"sk-test\"\n\n[agents.main]\nmodel = \"openai/gpt-4.1\"\n\n[response]\ntransport = \"sse\"\n",
        fake.base_url()
    );
    let gw = Gw::start(home.path(), Some(&config)).await;
    fake.script(Script::text("noted: the vault code is 4711"));
    fake.script(Script::text("hello stranger"));

    let mut alice = hello(&gw, ALICE).await;
    let mut seen = Vec::new();
    send(&mut alice, json!({"type": "send", "id": "m1", "agent": "main", "session": "web-shared", "text": "the vault code is 4711"})).await;
    let done = until(&mut alice, "done", Some("m1"), &mut seen).await;
    assert_eq!(done["text"], "noted: the vault code is 4711");

    // Mallory has seen Alice's session id and message id.
    let mut mallory = hello(&gw, MALLORY).await;
    let mut mallory_seen = Vec::new();
    send(&mut mallory, json!({"type": "send", "id": "m1", "agent": "main", "session": "web-shared", "text": "what was the code?"})).await;
    let done = until(&mut mallory, "done", Some("m1"), &mut mallory_seen).await;
    assert_eq!(done["text"], "hello stranger", "not Alice's reply");
    let requests = fake.requests();
    let last = requests.last().expect("a second call upstream");
    assert!(
        !last.body.to_string().contains("4711"),
        "Alice's conversation reached Mallory's turn: {}",
        last.body
    );

    // Each lists only its own session; the tree names none.
    send(&mut mallory, json!({"type": "sessions"})).await;
    let list = until(&mut mallory, "sessions", None, &mut mallory_seen).await;
    assert_eq!(list["total"], 1, "{list}");
    assert_eq!(list["items"][0]["session"], "web-shared");
    assert_eq!(list["items"][0]["agent"], "main");
    let alice_peer = common::web_peer(ALICE, "web-shared");
    let alice_owner = alice_peer.split('.').next().unwrap_or_default().to_string();
    // Another tree frame, after both sessions exist.
    let tree = until(&mut mallory, "tree", None, &mut mallory_seen).await;
    let web_sessions = &tree["tree"][0]["children"]
        .as_array()
        .and_then(|c| c.iter().find(|n| n["path"] == "pincer/channels"))
        .and_then(|n| n["children"].as_array())
        .and_then(|c| {
            c.iter()
                .find(|n| n["path"] == "pincer/channels/channel:web:web")
        })
        .and_then(|n| n["children"].as_array())
        .and_then(|c| {
            c.iter()
                .find(|n| n["path"] == "pincer/channels/channel:web:web/sessions")
        })
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(web_sessions["sessions"]["total"], 2, "{web_sessions}");
    assert_eq!(web_sessions["children"], json!([]));
    for frame in &mallory_seen {
        let text = frame.to_string();
        assert!(
            !text.contains(&alice_owner) && !text.contains("session:agent"),
            "Mallory saw a session of someone: {text}"
        );
    }
    send(&mut alice, json!({"type": "sessions"})).await;
    let list = until(&mut alice, "sessions", None, &mut seen).await;
    assert_eq!(list["total"], 1, "{list}");

    // Nothing before hello.
    let mut anonymous = open(&gw).await;
    send(
        &mut anonymous,
        json!({"type": "send", "id": "m9", "session": "web-shared", "text": "hi"}),
    )
    .await;
    let error = until(&mut anonymous, "error", Some("m9"), &mut Vec::new()).await;
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("hello"),
        "{error}"
    );
    send(&mut anonymous, json!({"type": "hello", "client": "short"})).await;
    let error = until(&mut anonymous, "error", None, &mut Vec::new()).await;
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("client"),
        "{error}"
    );
}

/// With 3,000 sessions the tree frame counts them and stays a few kB; a page pages through
/// its own sessions.
#[tokio::test]
async fn the_tree_frame_counts_thousands_of_sessions_and_stays_small() {
    let home = TempDir::new();
    let gw = Gw::start(home.path(), None).await;
    let sessions = 3_000;
    let token = gw.token();
    let url = gw.url("/v1/chat/completions");
    futures::stream::iter(0..sessions)
        .for_each_concurrent(32, |i| {
            let (http, url, token) = (gw.http.clone(), url.clone(), token.clone());
            async move {
                let r = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"model": "pincer:main", "user": format!("user-{i}"),
                        "messages": [{"role": "user", "content": "hi"}]}))
                    .send()
                    .await
                    .expect("chat");
                assert_eq!(r.status(), 200);
            }
        })
        .await;
    let mut page = hello(&gw, ALICE).await;
    for n in 0..5 {
        send(&mut page, json!({"type": "send", "id": format!("m{n}"), "agent": "main", "session": format!("web-{n}"), "text": "hi"})).await;
        until(&mut page, "done", Some(&format!("m{n}")), &mut Vec::new()).await;
    }
    // A new page: its first tree frame is the shared one, at most a quarter second old;
    // the next ones follow the tree.
    let mut page = hello(&gw, ALICE).await;
    let started = Instant::now();
    let (size, tree) = loop {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no frame with every session"
        );
        let msg = tokio::time::timeout(Duration::from_secs(10), page.next())
            .await
            .expect("a frame")
            .expect("open")
            .expect("frame");
        let Message::Text(text) = msg else { continue };
        let frame: Value = serde_json::from_str(&text).expect("json");
        let all = frame.to_string();
        if frame["type"] == "tree"
            && all.contains(&format!("\"total\":{sessions}"))
            && all.contains("\"total\":5")
        {
            break (text.len(), frame);
        }
    };
    eprintln!("tree frame with {sessions} sessions: {size} bytes");
    assert!(size < 16 * 1024, "{size} bytes");
    let text = tree.to_string();
    assert!(!text.contains("user-"), "no session is named");
    assert!(!text.contains("turn:"), "turns are counted, not listed");

    send(
        &mut page,
        json!({"type": "sessions", "offset": 1, "limit": 2}),
    )
    .await;
    let list = until(&mut page, "sessions", None, &mut Vec::new()).await;
    assert_eq!(list["total"], 5);
    assert_eq!(list["offset"], 1);
    let items: Vec<&str> = list["items"]
        .as_array()
        .map(|items| items.iter().filter_map(|i| i["session"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(items, ["web-1", "web-2"]);
}

/// A page that sends and never reads: the gateway closes its socket once it falls
/// behind, holds no more than a few MB for it meanwhile, and answers every message it took
/// (the replies are in the transcript for the page's resend).
#[tokio::test]
async fn a_page_that_never_reads_is_closed_and_its_messages_still_answered() {
    let home = TempDir::new();
    // The kernel holds at most 64 KiB unsent for a connection (TCP_NOTSENT_LOWAT) and the
    // page's receive buffer is 4 kB: past that, writes wait, and after 2 s it is closed.
    let gw = Gw::start(home.path(), Some("[gateway]\nwriteTimeout = \"2s\"\n")).await;
    let idle_kb = gw.rss_kb();
    let mut page = hello_small(&gw, ALICE).await;
    let text = "r".repeat(60 * 1024);
    let messages = 150;
    let mut sent = 0;
    let started = Instant::now();
    let mut peak_kb = 0;
    for n in 0..messages {
        let frame = json!({"type": "send", "id": format!("m{n}"), "agent": "main", "session": "web-flood", "text": text});
        match tokio::time::timeout(
            Duration::from_secs(5),
            page.send(Message::text(frame.to_string())),
        )
        .await
        {
            Ok(Ok(())) => sent += 1,
            _ => break,
        }
        if n % 10 == 0 {
            peak_kb = peak_kb.max(gw.rss_kb());
            // The echo answers at once; a few at a time keeps the page under its limit
            // of messages waiting for replies.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Now read: what the socket held, then its end. A loaded machine may be slow to get
    // to the stall (every one of these turns also compacts its context): wait long.
    let mut read = 0usize;
    let mut close = None;
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(30), page.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => {
                close = frame;
                break true;
            }
            Ok(Some(Ok(msg))) => read += msg.len(),
            Ok(Some(Err(_)) | None) => break true,
            Err(_) => break false,
        }
    };
    peak_kb = peak_kb.max(gw.rss_kb());
    eprintln!(
        "sent {sent} messages ({} kB) in {:?}; read back {} kB before the end ({close:?}); RSS idle {idle_kb} kB, peak {peak_kb} kB",
        sent * text.len() / 1024,
        started.elapsed(),
        read / 1024
    );
    assert!(ended, "the socket was not closed; log:\n{}", gw.log());
    let replies = sent * (text.len() + 6);
    assert!(
        read < replies,
        "read {read} of {replies} bytes: nothing was dropped"
    );
    if let Some(close) = close {
        assert_eq!(u16::from(close.code), 1013, "{close:?}");
    }
    // Bounded: before the queue had a bound, 20 such pages took the gateway to 3 GB.
    // What it holds here is the socket's 1 MiB queue, up to 32 messages of 60 kB in
    // flight (each copied along the way) and the history the session keeps; a debug
    // build, sharing the machine with the other tests.
    assert!(
        peak_kb < idle_kb + 64 * 1024,
        "RSS went from {idle_kb} kB to {peak_kb} kB"
    );
    // Every message the gateway took is answered: as many replies as messages in the
    // transcript, once it stops growing.
    let key = format!(
        "agent:main:web:web:user:{}",
        common::web_peer(ALICE, "web-flood")
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = usize::MAX;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let transcript = gw.transcript(&key).await;
        let count = |role: &str| transcript.iter().filter(|e| e["role"] == role).count();
        let (asked, answered) = (count("user"), count("assistant"));
        if asked > 0 && asked == answered && transcript.len() == last {
            eprintln!("{asked} messages taken, all answered");
            break;
        }
        last = transcript.len();
        assert!(
            Instant::now() < deadline,
            "{asked} messages taken, {answered} answered"
        );
    }
}

#[tokio::test]
async fn a_page_that_stops_reading_mid_reply_is_closed_after_the_write_timeout() {
    // Four replies of 60 kB (a frame's limit is 64 kB), well inside the socket's queue
    // bound but past what the kernel holds for a client that reads nothing: only the
    // clock can end it.
    let home = TempDir::new();
    let gw = Gw::start(home.path(), Some("[gateway]\nwriteTimeout = \"2s\"\n")).await;
    let mut page = hello_small(&gw, ALICE).await;
    let text = "s".repeat(60 * 1024);
    for n in 0..4 {
        let frame = json!({"type": "send", "id": format!("big{n}"), "agent": "main", "session": "web-stall", "text": text});
        send(&mut page, frame).await;
    }
    let sent = Instant::now();
    tokio::time::sleep(Duration::from_secs(6)).await;
    // Now read: what the kernel held, then the end (a reset, or a close frame).
    let mut read = 0usize;
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(5), page.next()).await {
            Ok(Some(Ok(Message::Close(_))) | Some(Err(_)) | None) => break true,
            Ok(Some(Ok(msg))) => read += msg.len(),
            Err(_) => break false,
        }
    };
    eprintln!(
        "read {} kB of {} kB of replies before the end, {:?} after sending",
        read / 1024,
        4 * text.len() / 1024,
        sent.elapsed()
    );
    assert!(ended, "the stalled page was not closed; log:\n{}", gw.log());
    assert!(
        read < 4 * text.len(),
        "read {read} bytes: every reply got through"
    );
    // The turns went on and were committed.
    let key = format!(
        "agent:main:web:web:user:{}",
        common::web_peer(ALICE, "web-stall")
    );
    let transcript = gw.transcript(&key).await;
    let replies = transcript
        .iter()
        .filter(|e| {
            e["role"] == "assistant" && e["content"].as_str().is_some_and(|t| t.ends_with(&text))
        })
        .count();
    assert_eq!(replies, 4, "{} entries", transcript.len());
}
