//! The built-in offline model: it answers `echo: <the user's message>`, streamed in chunks
//! of `[providers.echo] chunkSize` characters, each after `chunkDelayMs`. Deterministic,
//! free, and what the gateway runs on with no API keys.

use std::time::Duration;

use tokio::sync::mpsc;

use crate::{ProviderEvent, ProviderRequest};

/// The provider's name in config (`provider = "echo"`).
pub const NAME: &str = "echo";

/// The reply the echo model gives to `request`.
pub fn reply_to(request: &ProviderRequest) -> String {
    let last = crate::last_user_text(&request.items);
    if last.trim().is_empty() {
        "echo: (empty message)".to_string()
    } else {
        format!("echo: {last}")
    }
}

/// Streams `reply` into `events` in chunks of `chunk` characters, each after `delay`.
pub async fn stream(
    reply: String,
    chunk: usize,
    delay: Duration,
    events: mpsc::Sender<ProviderEvent>,
) {
    let chars: Vec<char> = reply.chars().collect();
    for piece in chars.chunks(chunk) {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let text: String = piece.iter().collect();
        if events.send(ProviderEvent::Delta(text)).await.is_err() {
            return;
        }
    }
    let _ = events.send(ProviderEvent::Done).await;
}
