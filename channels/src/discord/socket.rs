//! One gateway connection: hello, identify or resume, heartbeats, dispatches, and why it
//! ended (which decides what the link does next).

use std::future::Future;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::{DiscordResume, Links};

/// GUILDS | GUILD_MESSAGES | DIRECT_MESSAGES | MESSAGE_CONTENT.
pub const INTENTS: u64 = 1 | (1 << 9) | (1 << 12) | (1 << 15);

/// Largest frame taken (READY of a big bot is large, but not this large).
const MAX_FRAME: usize = 16 * 1024 * 1024;

/// Time to connect and get Hello.
const HELLO_WAIT: Duration = Duration::from_secs(15);

/// What a link does with the dispatches that matter.
pub trait Dispatch: Sync {
    /// MESSAGE_CREATE (`bot_id` is the bot's own user id). An error means it was not taken
    /// in: its sequence number does not move past it, and the connection resumes so
    /// Discord replays it.
    fn on_message(
        &self,
        d: &Value,
        bot_id: &str,
    ) -> impl Future<Output = Result<(), String>> + Send;

    /// THREAD_CREATE.
    fn on_thread(&self, d: &Value) -> impl Future<Output = ()> + Send;
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Reconnect; resume the session if `resume`, else identify anew.
    Reconnect {
        /// Whether the session can be resumed.
        resume: bool,
        /// Why, for the status line.
        why: String,
    },
    /// Do not reconnect (bad token, disallowed intents, ...): the reason.
    Fatal(String),
}

/// Runs one connection of `account` to `url` until it ends, with the session kept in
/// `links` and dispatches handed to `dispatch`.
pub async fn connect(
    dispatch: &impl Dispatch,
    links: &Links,
    account: &str,
    token: &str,
    url: &str,
) -> End {
    let reconnect = |why: String| End::Reconnect { resume: true, why };
    let base = url.trim_end_matches('/').to_string();
    let url = format!("{base}/?v=10&encoding=json");
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME))
        .max_frame_size(Some(MAX_FRAME));
    let connecting = tokio_tungstenite::connect_async_with_config(url, Some(config), true);
    let mut socket = match tokio::time::timeout(HELLO_WAIT, connecting).await {
        Ok(Ok((socket, _))) => socket,
        Ok(Err(e)) => return reconnect(format!("cannot connect to the gateway: {e}")),
        Err(_) => return reconnect("gateway did not answer the connect".into()),
    };
    let hello = match tokio::time::timeout(HELLO_WAIT, socket.next()).await {
        Ok(Some(Ok(Message::Text(text)))) => serde_json::from_str::<Value>(&text).ok(),
        _ => None,
    };
    let Some(interval) = hello
        .filter(|h| h.get("op").and_then(Value::as_u64) == Some(10))
        .and_then(|h| h.pointer("/d/heartbeat_interval").and_then(Value::as_u64))
    else {
        return reconnect("no Hello from the gateway".into());
    };
    let interval = Duration::from_millis(interval.max(100));
    let resume = links.resume(account);
    let opening = match &resume {
        Some(r) => {
            json!({"op": 6, "d": {"token": token, "session_id": r.session_id, "seq": r.seq}})
        }
        None => json!({"op": 2, "d": {
            "token": token,
            "intents": INTENTS,
            "properties": {"os": std::env::consts::OS, "browser": "pincer", "device": "pincer"},
        }}),
    };
    if socket
        .send(Message::text(opening.to_string()))
        .await
        .is_err()
    {
        return reconnect("socket closed before identify".into());
    }
    let mut bot_id = resume.map(|r| r.bot_id).unwrap_or_default();
    let mut last_seq: Option<u64> = links.resume(account).map(|r| r.seq);
    // First beat after interval × jitter, as Discord asks, so a fleet does not beat in step.
    let mut next_beat = tokio::time::Instant::now() + interval.mul_f64(fastrand::f64());
    let mut acked = true;
    loop {
        let frame = tokio::select! {
            frame = socket.next() => frame,
            () = tokio::time::sleep_until(next_beat) => {
                if !acked {
                    // No ACK for the last beat: a zombie connection. Close with a code that
                    // keeps the session, and resume on a new one.
                    let _ = socket.close(Some(CloseFrame { code: CloseCode::Library(4000), reason: "zombie".into() })).await;
                    return reconnect("heartbeat not acknowledged (zombie connection)".into());
                }
                acked = false;
                next_beat += interval;
                if socket.send(Message::text(json!({"op": 1, "d": last_seq}).to_string())).await.is_err() {
                    return reconnect("socket closed".into());
                }
                continue;
            }
        };
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(close))) => {
                return closed(close.map(|c| (u16::from(c.code), c.reason.to_string())));
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return reconnect(format!("socket error: {e}")),
            None => return reconnect("socket closed without a close frame".into()),
        };
        let Ok(payload) = serde_json::from_str::<Value>(&text) else {
            tracing::warn!(
                account,
                "Gateway sent a frame that is not JSON; ignoring it."
            );
            continue;
        };
        let d = payload.get("d").cloned().unwrap_or(Value::Null);
        match payload.get("op").and_then(Value::as_u64) {
            Some(0) => {
                let seq = payload.get("s").and_then(Value::as_u64);
                let kind = payload.get("t").and_then(Value::as_str).unwrap_or("");
                match kind {
                    "READY" => {
                        bot_id = d
                            .pointer("/user/id")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string();
                        let fresh = DiscordResume {
                            session_id: d
                                .get("session_id")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_string(),
                            resume_url: d
                                .get("resume_gateway_url")
                                .and_then(Value::as_str)
                                .unwrap_or(&base)
                                .to_string(),
                            seq: seq.unwrap_or(0),
                            bot_id: bot_id.clone(),
                        };
                        links.set_resume(account, Some(fresh));
                        links.connected(account, "gateway");
                        tracing::info!(account, "Discord session ready (identified).");
                    }
                    "RESUMED" => {
                        links.connected(account, "gateway");
                        tracing::info!(account, "Discord session resumed.");
                    }
                    "MESSAGE_CREATE" => {
                        if let Err(error) = dispatch.on_message(&d, &bot_id).await {
                            // Not durable: leave the sequence number before it, and resume
                            // later so Discord replays it.
                            tracing::warn!(account, %error, "Cannot take a message in; resuming to get it again.");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            return reconnect(format!("intake failed: {error}"));
                        }
                    }
                    "THREAD_CREATE" => dispatch.on_thread(&d).await,
                    _ => {}
                }
                if let Some(seq) = seq {
                    last_seq = Some(last_seq.map_or(seq, |l| l.max(seq)));
                    links.advance(account, seq);
                }
            }
            Some(1) => {
                let _ = socket
                    .send(Message::text(json!({"op": 1, "d": last_seq}).to_string()))
                    .await;
            }
            Some(7) => {
                let _ = socket
                    .close(Some(CloseFrame {
                        code: CloseCode::Library(4000),
                        reason: "reconnect".into(),
                    }))
                    .await;
                return reconnect("gateway asked to reconnect (op 7)".into());
            }
            Some(9) => {
                let resumable = d.as_bool() == Some(true);
                if !resumable {
                    links.set_resume(account, None);
                }
                let _ = socket
                    .close(Some(CloseFrame {
                        code: CloseCode::Library(4000),
                        reason: "invalid session".into(),
                    }))
                    .await;
                // Discord asks for a pause of 1–5 s before identifying again.
                tokio::time::sleep(Duration::from_millis(1000 + fastrand::u64(..4000))).await;
                return End::Reconnect {
                    resume: resumable,
                    why: "invalid session (op 9)".into(),
                };
            }
            Some(11) => acked = true,
            _ => {}
        }
    }
}

/// What a close frame means.
fn closed(close: Option<(u16, String)>) -> End {
    match close {
        Some((code @ (4004 | 4010..=4014), reason)) => End::Fatal(format!(
            "gateway closed with {code} ({}): not reconnecting until the config changes",
            if reason.is_empty() {
                describe(code)
            } else {
                reason.as_str()
            }
        )),
        // Invalid sequence, session timed out: the session is gone.
        Some((code @ (4007 | 4009), reason)) => End::Reconnect {
            resume: false,
            why: format!("gateway closed with {code} ({reason})"),
        },
        Some((code, reason)) => End::Reconnect {
            resume: true,
            why: format!("gateway closed with {code} ({reason})"),
        },
        None => End::Reconnect {
            resume: true,
            why: "gateway closed".into(),
        },
    }
}

fn describe(code: u16) -> &'static str {
    match code {
        4004 => "authentication failed",
        4010 => "invalid shard",
        4011 => "sharding required",
        4012 => "invalid API version",
        4013 => "invalid intents",
        4014 => "disallowed intents: enable the privileged intents for this bot",
        _ => "fatal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes_decide_between_resume_identify_and_giving_up() {
        assert!(
            matches!(closed(Some((4004, String::new()))), End::Fatal(r) if r.contains("authentication failed"))
        );
        assert!(matches!(closed(Some((4014, String::new()))), End::Fatal(_)));
        assert!(matches!(
            closed(Some((4009, "timeout".into()))),
            End::Reconnect { resume: false, .. }
        ));
        assert!(matches!(
            closed(Some((4000, String::new()))),
            End::Reconnect { resume: true, .. }
        ));
        assert!(matches!(
            closed(Some((1001, String::new()))),
            End::Reconnect { resume: true, .. }
        ));
        assert!(matches!(closed(None), End::Reconnect { resume: true, .. }));
    }
}
