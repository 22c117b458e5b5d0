//! The built-in offline model: it answers `echo: <the user's message>`, streamed in chunks
//! of `[providers.echo] chunkSize` characters, each after `chunkDelayMs`, then its
//! [`usage`] (an estimate: it has no tokenizer). Deterministic, free, and what the gateway
//! runs on with no API keys.

use std::time::Duration;

use tokio::sync::mpsc;

use crate::{ProviderEvent, ProviderRequest, Usage};

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

/// Bytes per token of the estimate: about right for English text, and what the real
/// providers' counts come to on ordinary prose.
pub const BYTES_PER_TOKEN: u64 = 4;

/// The tokens the echo model says it used for `reply` to `request`: bytes / 4, rounded up,
/// of the input ([`crate::text_bytes`]: the system prompt, the text of every item, the
/// tool definitions) and of the reply.
pub fn usage(request: &ProviderRequest, reply: &str) -> Usage {
    let tokens = |bytes: usize| (bytes as u64).div_ceil(BYTES_PER_TOKEN);
    Usage {
        input_tokens: tokens(crate::text_bytes(request)),
        output_tokens: tokens(reply.len()),
    }
}

/// Streams `reply` into `events` in chunks of `chunk` characters (at least one), each
/// after `delay`, then `usage` and the end. Walks the reply in place: a copy as chars took
/// four bytes a byte for the whole stream.
pub async fn stream(
    reply: String,
    usage: Usage,
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
    if events.send(ProviderEvent::Usage(usage)).await.is_err() {
        return;
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
    use super::*;
    use crate::{ChatMessage, Item};
    use pincer_core::Role;

    #[tokio::test]
    async fn the_reply_ends_with_its_estimated_usage() {
        let request = ProviderRequest {
            request_id: "r".into(),
            model: "echo".into(),
            system_prompt: Some("abcd".into()),
            items: vec![Item::Message(ChatMessage {
                role: Role::User,
                content: "hello".into(),
            })],
            tools: Vec::new(),
            thinking: None,
            api_key: None,
            options: Default::default(),
        };
        let reply = reply_to(&request);
        assert_eq!(reply, "echo: hello");
        // 4 + 5 input bytes, 11 reply bytes: rounded up.
        let want = Usage {
            input_tokens: 3,
            output_tokens: 3,
        };
        assert_eq!(usage(&request, &reply), want);
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        stream(reply, want, 100, Duration::ZERO, tx).await;
        let mut got = Vec::new();
        while let Some(event) = rx.recv().await {
            got.push(event);
        }
        let tail = [ProviderEvent::Usage(want), ProviderEvent::Done];
        assert_eq!(got[got.len() - 2..], tail);
    }

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
