//! WebSocket mode: the upgrade (auth, refusal, handshake delay) and one task per socket that
//! reads `response.create` frames, allows one response in flight, keeps the latest response
//! id for continuations and enforces the connection age limit.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;
use warp::Reply;
use warp::http::HeaderMap;
use warp::reply::Response;
use warp::ws::{Message, WebSocket, Ws};

use super::errors::ApiError;
use super::http::{add_common_headers, error_response};
use super::plan::{Out, Plan, decide, event_type};
use super::state::{Shared, bump, drop_one};
use super::wire::{authenticate, is_warmup};
use super::{Recorded, Transport, player};
use crate::serve::{close_ws, header_map, sleep_until};

/// Answers an upgrade request: `101`, or an HTTP error before any upgrade.
pub(super) async fn upgrade(socket: Ws, headers: HeaderMap, shared: Arc<Shared>) -> Response {
    let knobs = shared.knobs();
    if !knobs.handshake_delay.is_zero() {
        tokio::time::sleep(knobs.handshake_delay).await;
    }
    let headers = header_map(&headers);
    let refusal = match knobs.refuse_websocket {
        Some(status) => Err(ApiError::websocket_refused(status)),
        None => authenticate(&knobs, &headers).map(|_| ()),
    };
    let connection = refusal.is_ok().then(|| shared.next_number("conn"));
    shared.record(Recorded {
        transport: Transport::Upgrade,
        method: "GET".to_owned(),
        path: "/v1/responses".to_owned(),
        headers: headers.clone(),
        body: Value::Null,
        connection,
        at: std::time::Instant::now(),
        continuation: false,
        warmup: false,
    });
    if let Err(err) = refusal {
        bump(&shared.counters.upgrades_refused);
        return error_response(&shared, &err);
    }
    let conn = Conn {
        id: connection.unwrap_or_default(),
        opened: Instant::now(),
        headers,
        latest: None,
        in_flight: None,
        shared: Arc::clone(&shared),
    };
    let mut response = socket.on_upgrade(move |ws| conn.run(ws)).into_response();
    add_common_headers(&shared, response.headers_mut(), false);
    response
}

/// What to do after handling a frame.
enum Flow {
    Continue,
    /// The socket has been closed (or must be dropped); end the task.
    Exit,
}

/// One open socket.
struct Conn {
    id: u64,
    opened: Instant,
    headers: BTreeMap<String, String>,
    /// The latest completed response on this socket: the one a `store: false` continuation
    /// may name.
    latest: Option<String>,
    in_flight: Option<mpsc::Receiver<Out>>,
    shared: Arc<Shared>,
}

/// Keeps `sockets_open` right however the task ends.
struct OpenGuard(Arc<Shared>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        drop_one(&self.0.counters.sockets_open);
    }
}

impl Conn {
    async fn run(mut self, mut socket: WebSocket) {
        bump(&self.shared.counters.sockets_opened);
        bump(&self.shared.counters.sockets_open);
        let _guard = OpenGuard(Arc::clone(&self.shared));
        let mut kill = self.shared.kill_watch();
        let mut knobs_changed = self.shared.knobs_watch();
        loop {
            // Re-read each turn: the knob may change while the socket is open.
            let deadline = self
                .shared
                .knobs()
                .max_connection_age
                .map(|age| self.opened + age);
            let idle_expiry = deadline.filter(|_| self.in_flight.is_none());
            tokio::select! {
                // Returning drops the socket without a close frame: 1006 for the client.
                _ = kill.changed() => return,
                _ = knobs_changed.changed() => {}
                () = sleep_until(idle_expiry) => {
                    self.expire(&mut socket).await;
                    return;
                }
                out = next_out(&mut self.in_flight) => match out {
                    Some(out) => if let Flow::Exit = self.deliver(&mut socket, out).await {
                        return;
                    },
                    None => self.in_flight = None,
                },
                frame = socket.next() => match frame {
                    Some(Ok(message)) => if let Flow::Exit = self.on_message(&mut socket, message).await {
                        return;
                    },
                    // Closed by the peer (tungstenite already answered its close frame) or
                    // broken.
                    Some(Err(_)) | None => return,
                },
            }
        }
    }

    /// Forwards one output of the response in flight.
    async fn deliver(&mut self, socket: &mut WebSocket, out: Out) -> Flow {
        match out {
            Out::Event(event) => {
                let kind = event_type(&event);
                if kind == Some("response.completed") {
                    self.latest = event
                        .pointer("/response/id")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                }
                // A response that has ended is no longer in flight, as on the real API:
                // a `response.create` sent right after its last event is taken, even if
                // the player's channel has not reported its end to this loop yet.
                if matches!(
                    kind,
                    Some("response.completed" | "response.failed" | "response.incomplete")
                ) {
                    self.in_flight = None;
                }
                send_json(socket, &event).await
            }
            // 1006 may never appear on the wire: drop the TCP connection instead.
            Out::Cut(1006) => Flow::Exit,
            Out::Cut(code) => {
                close_ws(socket, code, "").await;
                Flow::Exit
            }
        }
    }

    async fn on_message(&mut self, socket: &mut WebSocket, message: Message) -> Flow {
        if message.is_text() {
            let text = message.to_str().unwrap_or_default().to_owned();
            self.on_frame(socket, &text).await
        } else if message.is_binary() {
            self.send_error(socket, &ApiError::binary_frame()).await
        } else {
            // Ping/pong are answered by tungstenite; a close frame ends the next read.
            Flow::Continue
        }
    }

    async fn on_frame(&mut self, socket: &mut WebSocket, text: &str) -> Flow {
        // When it arrived, before the fake's own work on it (a continuation's context).
        let at = std::time::Instant::now();
        let body: Value =
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()));
        let outcome = self.evaluate(&body);
        let plan = match &outcome {
            Ok(Some(plan)) => Some(plan),
            _ => None,
        };
        self.shared.record(Recorded {
            transport: Transport::Ws,
            method: "GET".to_owned(),
            path: "/v1/responses".to_owned(),
            headers: self.headers.clone(),
            body,
            connection: Some(self.id),
            at,
            continuation: plan.is_some_and(|p| p.continuation),
            warmup: plan.is_some_and(|p| p.warmup),
        });
        match outcome {
            Ok(Some(plan)) => {
                if plan.warmup {
                    bump(&self.shared.counters.warmups);
                }
                self.in_flight = Some(player::spawn(Arc::clone(&self.shared), plan));
                Flow::Continue
            }
            Ok(None) => {
                self.expire(socket).await;
                Flow::Exit
            }
            Err(err) => self.send_error(socket, &err).await,
        }
    }

    /// The outcome of one frame: a plan, an error frame, or `None` when the socket is past
    /// its age limit.
    fn evaluate(&self, body: &Value) -> Result<Option<Plan>, ApiError> {
        if !body.is_object() {
            return Err(ApiError::invalid_json());
        }
        let kind = body.get("type").and_then(Value::as_str).unwrap_or("");
        if kind != "response.create" {
            return Err(ApiError::unknown_message_type(kind));
        }
        if !is_warmup(body) {
            bump(&self.shared.counters.ws_requests);
        }
        let knobs = self.shared.knobs();
        if knobs
            .max_connection_age
            .is_some_and(|age| self.opened.elapsed() >= age)
        {
            return Ok(None);
        }
        if self.in_flight.is_some() {
            return Err(ApiError::already_in_flight());
        }
        let key = authenticate(&knobs, &self.headers).ok();
        if key.is_some_and(|k| knobs.rate_limited_keys.contains(&k)) {
            return Err(ApiError::rate_limited(knobs.retry_after_ms));
        }
        decide(&self.shared, body, self.latest.as_deref()).map(Some)
    }

    async fn send_error(&self, socket: &mut WebSocket, err: &ApiError) -> Flow {
        err.count(&self.shared);
        send_json(socket, &err.ws_frame()).await
    }

    /// Past the age limit: say why, then close normally.
    async fn expire(&self, socket: &mut WebSocket) {
        if let Flow::Continue = self.send_error(socket, &ApiError::connection_limit()).await {
            close_ws(socket, 1000, "websocket_connection_limit_reached").await;
        }
    }
}

async fn send_json(socket: &mut WebSocket, value: &Value) -> Flow {
    match socket.send(Message::text(value.to_string())).await {
        Ok(()) => Flow::Continue,
        Err(_) => Flow::Exit,
    }
}

async fn next_out(in_flight: &mut Option<mpsc::Receiver<Out>>) -> Option<Out> {
    match in_flight {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
