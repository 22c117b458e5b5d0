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

/// Streams `reply` into `events` in chunks of `chunk` characters (at least one), each
/// after `delay`. Walks the reply in place: a copy as chars took four bytes a byte for the
/// whole stream.
pub async fn stream(
    reply: String,
    chunk: usize,
    delay: Duration,
    events: mpsc::Sender<ProviderEvent>,
) {
    for piece in pieces(&reply, chunk) {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if events
            .send(ProviderEvent::Delta(piece.to_string()))
            .await
            .is_err()
        {
            return;
        }
    }
    let _ = events.send(ProviderEvent::Done).await;
}

/// `text` in pieces of `chunk` characters (at least one), the last one shorter.
fn pieces(text: &str, chunk: usize) -> impl Iterator<Item = &str> {
    let chunk = chunk.max(1);
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest
            .char_indices()
            .nth(chunk)
            .map_or(rest.len(), |(i, _)| i);
        let (piece, tail) = rest.split_at(end);
        rest = tail;
        Some(piece)
    })
}

#[cfg(test)]
mod tests {
    use super::pieces;

    #[test]
    fn pieces_count_characters_not_bytes_and_join_up() {
        let text = "héllo wörld ✓";
        let got: Vec<&str> = pieces(text, 4).collect();
        assert_eq!(got, ["héll", "o wö", "rld ", "✓"]);
        assert_eq!(got.concat(), text);
        assert_eq!(pieces("ab", 0).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(pieces("", 3).count(), 0);
    }
}
