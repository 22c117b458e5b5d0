//! The web chat's socket as a test's browser uses it: connect and say `hello`, send
//! frames, read frames until one about a message arrives.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::Gw;

/// A browser's socket.
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The secret of the browser these tests play.
pub const CLIENT: &str = "0123456789abcdef0123456789abcdef";

/// A socket of the test's browser, past its `hello`.
pub async fn connect(gw: &Gw) -> Socket {
    connect_as(gw, CLIENT).await
}

/// A socket of the browser with secret `client`, past its `hello`.
pub async fn connect_as(gw: &Gw, client: &str) -> Socket {
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/ws", gw.port))
            .await
            .expect("websocket");
    send(&mut socket, json!({"type": "hello", "client": client})).await;
    socket
}

/// The next frame of type `kind` (others skipped); an `error` frame fails the test
/// unless `kind` is `error`.
pub async fn next_of(socket: &mut Socket, kind: &str) -> Value {
    loop {
        let frame = next_frame(socket).await;
        if frame["type"] == kind {
            return frame;
        }
        if frame["type"] == "error" {
            panic!("waiting for `{kind}`: {frame}");
        }
    }
}

/// Sends `frame`.
pub async fn send(socket: &mut Socket, frame: Value) {
    socket
        .send(Message::text(frame.to_string()))
        .await
        .expect("send");
}

/// Sends message `id` with `text` to `agent` in the browser's session `session`.
pub async fn say(socket: &mut Socket, agent: &str, session: &str, id: &str, text: &str) {
    let frame = json!({"type": "send", "id": id, "agent": agent, "session": session, "text": text});
    send(socket, frame).await;
}

/// The next JSON frame (within 15 s).
pub async fn next_frame(socket: &mut Socket) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(15), socket.next())
            .await
            .expect("a frame within 15 s")
            .expect("socket open")
            .expect("frame");
        if let Message::Text(text) = msg {
            return serde_json::from_str(&text).expect("JSON frame");
        }
    }
}

/// Frames until one of `kind` for message `id`, every frame read kept in `seen`.
pub async fn until(socket: &mut Socket, kind: &str, id: &str, seen: &mut Vec<Value>) -> Value {
    loop {
        let frame = next_frame(socket).await;
        seen.push(frame.clone());
        if frame["type"] == kind && frame["id"] == id {
            return frame;
        }
    }
}

/// The next frame of `kind` for message `id`; an `error` frame for `id` fails the test.
pub async fn expect(socket: &mut Socket, kind: &str, id: &str) -> Value {
    loop {
        let frame = next_frame(socket).await;
        if frame["id"] != id {
            continue;
        }
        if frame["type"] == "error" && kind != "error" {
            panic!("{frame}");
        }
        if frame["type"] == kind {
            return frame;
        }
    }
}
