//! The gateway socket: Hello, heartbeats and their timeout, Identify, Resume, the opcode
//! and authentication checks with Discord's close codes, and the per-connection send limit.
//! Frames from the rest of the fake (dispatches, op 7, op 9, closes) arrive through the
//! connection's command channel, already in sequence order.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::time::Instant;
use warp::Reply;
use warp::reply::Response;
use warp::ws::{Message, WebSocket, Ws};

use super::Frame;
use super::state::{Cmd, IdentifyOutcome, ResumeOutcome, Shared, close_reason, op_frame};
use crate::serve::{close_ws, sleep_until};

/// Every intent bit Discord defines (0..=25).
const KNOWN_INTENTS: u64 = (1 << 26) - 1;
/// Non-heartbeat payloads a connection may send per [`SEND_WINDOW`].
const SEND_LIMIT: u32 = 120;
const SEND_WINDOW: Duration = Duration::from_secs(60);

/// Answers an upgrade of `/gateway`; `query` is the raw query string (may be empty).
pub(super) fn upgrade(socket: Ws, query: &str, shared: Arc<Shared>) -> Response {
    let reject = check_query(query);
    socket
        .on_upgrade(move |ws| run(ws, shared, reject))
        .into_response()
}

/// Close code for an unsupported `v`, `encoding` or `compress`, if any.
fn check_query(query: &str) -> Option<u16> {
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "v" if !matches!(value, "9" | "10") => return Some(4012),
            // The fake speaks JSON text frames only (no ETF, no zlib/zstd transport).
            "encoding" if value != "json" => return Some(4002),
            "compress" => return Some(4002),
            _ => {}
        }
    }
    None
}

/// What the loop does after a frame.
enum Flow {
    Continue,
    /// Close with this code (the connection is detached first).
    Close(u16),
    /// The socket is gone.
    Exit,
}

/// Unregisters the connection however its task ends.
struct Registration {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shared.close_connection(self.id, false);
    }
}

struct Conn {
    shared: Arc<Shared>,
    id: u64,
    last_beat: Instant,
    interval: Duration,
    window_start: Instant,
    window_count: u32,
}

async fn run(mut socket: WebSocket, shared: Arc<Shared>, reject: Option<u16>) {
    let (id, mut rx) = shared.open_connection();
    let _registration = Registration {
        shared: Arc::clone(&shared),
        id,
    };
    let interval = shared.knobs().heartbeat_interval;
    let hello = op_frame(
        10,
        json!({"heartbeat_interval": u64::try_from(interval.as_millis()).unwrap_or(u64::MAX)}),
    );
    if socket.send(Message::text(hello)).await.is_err() {
        return;
    }
    if let Some(code) = reject {
        shared.close_connection(id, false);
        close(&mut socket, code).await;
        return;
    }
    let now = Instant::now();
    let mut conn = Conn {
        shared,
        id,
        last_beat: now,
        interval,
        window_start: now,
        window_count: 0,
    };
    loop {
        let factor = conn.shared.knobs().heartbeat_timeout_factor;
        let deadline = (factor > 0.0).then(|| conn.last_beat + conn.interval.mul_f32(factor));
        let flow = tokio::select! {
            biased;
            cmd = rx.recv() => match cmd {
                Some(Cmd::Send(text)) => match socket.send(Message::text(text)).await {
                    Ok(()) => Flow::Continue,
                    Err(_) => Flow::Exit,
                },
                Some(Cmd::Close(code, reason)) => {
                    close_ws(&mut socket, code, reason).await;
                    Flow::Exit
                }
                // Returning drops the TCP stream without a close frame.
                Some(Cmd::Drop) | None => Flow::Exit,
            },
            frame = socket.next() => match frame {
                Some(Ok(message)) => {
                    if message.is_close() {
                        // Detached at once; closing with 1000/1001 ends the session, as on
                        // Discord. Tungstenite answers the close; the next read ends.
                        let code = message.close_frame().map(|(code, _)| code);
                        conn.shared.close_connection(id, matches!(code, Some(1000 | 1001)));
                        Flow::Continue
                    } else if message.is_text() {
                        let text = message.to_str().unwrap_or_default().to_owned();
                        conn.on_text(&mut socket, &text).await
                    } else if message.is_binary() {
                        Flow::Close(4002)
                    } else {
                        Flow::Continue
                    }
                }
                // Closed (tungstenite answered the close frame) or broken.
                Some(Err(_)) | None => Flow::Exit,
            },
            () = sleep_until(deadline) => Flow::Close(4009),
        };
        match flow {
            Flow::Continue => {}
            Flow::Exit => return,
            Flow::Close(code) => {
                // Detached before the close frame: what happens next is buffered.
                conn.shared.close_connection(id, false);
                close(&mut socket, code).await;
                return;
            }
        }
    }
}

impl Conn {
    async fn on_text(&mut self, socket: &mut WebSocket, text: &str) -> Flow {
        let Ok(payload) = serde_json::from_str::<Value>(text) else {
            return Flow::Close(4002);
        };
        let Some(op) = payload.get("op").and_then(Value::as_u64) else {
            return Flow::Close(4002);
        };
        let d = payload.get("d").cloned().unwrap_or(Value::Null);
        self.shared.record_frame(Frame {
            connection: self.id,
            op,
            d: d.clone(),
            at: std::time::Instant::now(),
        });
        if op != 1 {
            let now = Instant::now();
            if now.duration_since(self.window_start) >= SEND_WINDOW {
                self.window_start = now;
                self.window_count = 0;
            }
            self.window_count += 1;
            if self.window_count > SEND_LIMIT {
                return Flow::Close(4008);
            }
        }
        let authenticated = self.shared.is_authenticated(self.id);
        match op {
            1 => self.heartbeat(socket).await,
            2 => {
                self.shared.count(|c| c.identifies += 1);
                if authenticated {
                    return Flow::Close(4005);
                }
                self.identify(&d)
            }
            6 => {
                self.shared.count(|c| c.resumes += 1);
                if authenticated {
                    return Flow::Close(4005);
                }
                self.resume(&d)
            }
            // Presence update, voice state update, request guild members, request
            // soundboard sounds: valid once authenticated, ignored by the fake.
            3 | 4 | 8 | 31 if authenticated => Flow::Continue,
            3 | 4 | 8 | 31 => Flow::Close(4003),
            _ => Flow::Close(4001),
        }
    }

    async fn heartbeat(&mut self, socket: &mut WebSocket) -> Flow {
        self.last_beat = Instant::now();
        let ack = self.shared.knobs().ack_heartbeats;
        self.shared.count(|c| {
            c.heartbeats += 1;
            if ack {
                c.acks += 1;
            }
        });
        if !ack {
            return Flow::Continue;
        }
        match socket.send(Message::text(op_frame(11, Value::Null))).await {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Exit,
        }
    }

    fn identify(&mut self, d: &Value) -> Flow {
        let token = d.get("token").and_then(Value::as_str);
        let intents = d.get("intents").and_then(Value::as_u64);
        let properties = d.get("properties").filter(|p| p.is_object());
        let (Some(token), Some(intents), Some(_)) = (token, intents, properties) else {
            return Flow::Close(4002);
        };
        let knobs = self.shared.knobs();
        if !knobs.tokens.iter().any(|t| t == token) {
            return Flow::Close(4004);
        }
        if let Some(shard) = d.get("shard").filter(|s| !s.is_null()) {
            let pair = shard.as_array().and_then(|a| match a.as_slice() {
                [id, count] => Some((id.as_u64()?, count.as_u64()?)),
                _ => None,
            });
            match pair {
                Some((id, count)) if count >= 1 && id < count => {}
                _ => return Flow::Close(4010),
            }
        }
        if intents & !KNOWN_INTENTS != 0 {
            return Flow::Close(4013);
        }
        if intents & knobs.disallowed_intents != 0 {
            return Flow::Close(4014);
        }
        match self.shared.identify(self.id, token, intents) {
            IdentifyOutcome::Ready | IdentifyOutcome::LimitReached => Flow::Continue,
        }
    }

    fn resume(&mut self, d: &Value) -> Flow {
        let token = d.get("token").and_then(Value::as_str);
        let session_id = d.get("session_id").and_then(Value::as_str);
        let seq = match d.get("seq") {
            None | Some(Value::Null) => Some(0),
            Some(v) => v.as_u64(),
        };
        let (Some(token), Some(session_id), Some(seq)) = (token, session_id, seq) else {
            return Flow::Close(4002);
        };
        if !self.shared.knobs().tokens.iter().any(|t| t == token) {
            return Flow::Close(4004);
        }
        match self.shared.resume(self.id, token, session_id, seq) {
            ResumeOutcome::Resumed | ResumeOutcome::Invalid => Flow::Continue,
            ResumeOutcome::BadSeq => Flow::Close(4007),
        }
    }
}

/// Closes with `code` and Discord's reason for it.
async fn close(socket: &mut WebSocket, code: u16) {
    close_ws(socket, code, close_reason(code)).await;
}
