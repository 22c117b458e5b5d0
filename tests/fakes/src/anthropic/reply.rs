//! What to answer a valid request: a pure function of the request and the next script.

use serde_json::Value;

use super::Script;
use super::validate::{ApiError, Request};

/// A tool call the model makes.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ToolCall {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) input: Value,
}

/// One assistant turn: optional thinking, optional text, optional tool call.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Turn {
    pub(super) thinking: Option<String>,
    pub(super) text: Option<String>,
    pub(super) tool: Option<ToolCall>,
    pub(super) stop_reason: String,
    pub(super) stop_sequence: Option<String>,
}

/// How the fake answers a valid request.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Outcome {
    /// A complete turn.
    Turn(Turn),
    /// An HTTP error instead of a reply.
    Error(ApiError),
    /// The turn's first `after` deltas, then `event: error`.
    StreamError {
        turn: Turn,
        after: usize,
        error: ApiError,
    },
    /// The turn's first `after` deltas, then the connection drops.
    Cut { turn: Turn, after: usize },
    /// Headers, then silence.
    Hang,
}

/// The text the default reply is about: the tool results if the last user message
/// carries any, else its text.
fn subject(req: &Request) -> String {
    if req.tool_results.is_empty() {
        req.user_text.clone()
    } else {
        req.tool_results.join(" | ")
    }
}

/// The unscripted reply text.
fn default_text(req: &Request) -> String {
    if req.tool_results.is_empty() {
        format!("anthropic: {}", req.user_text)
    } else {
        format!("tool said: {}", req.tool_results.join(" | "))
    }
}

/// The thinking block the request's mode calls for, if any.
fn default_thinking(req: &Request) -> Option<String> {
    req.thinks.then(|| format!("Considering: {}", subject(req)))
}

/// A text turn, honouring `stop_sequences` and `max_tokens` as the real model would.
fn text_turn(req: &Request, thinking: Option<String>, text: String) -> Turn {
    let mut turn = Turn {
        thinking,
        text: Some(text),
        tool: None,
        stop_reason: "end_turn".to_owned(),
        stop_sequence: None,
    };
    truncate(req, &mut turn);
    turn
}

/// Cuts the text at the first stop sequence, then at `max_tokens` tokens.
fn truncate(req: &Request, turn: &mut Turn) {
    let Some(text) = turn.text.as_mut() else {
        return;
    };
    let hit = req
        .stop_sequences
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()).map(|at| (at, s)))
        .min_by_key(|(at, _)| *at);
    if let Some((at, seq)) = hit {
        text.truncate(at);
        turn.stop_reason = "stop_sequence".to_owned();
        turn.stop_sequence = Some(seq.clone());
        turn.tool = None;
    }
    let tokens = split_tokens(text);
    let limit = usize::try_from(req.max_tokens).unwrap_or(usize::MAX);
    if tokens.len() > limit {
        *text = tokens[..limit].concat();
        turn.stop_reason = "max_tokens".to_owned();
        turn.stop_sequence = None;
        turn.tool = None;
    }
}

/// Decides the answer. `tool_id` mints an id for a tool call.
pub(super) fn plan(
    req: &Request,
    script: Option<Script>,
    tool_id: impl FnOnce() -> String,
) -> Outcome {
    let default_turn = || text_turn(req, default_thinking(req), default_text(req));
    match script {
        None => Outcome::Turn(default_turn()),
        Some(Script::Text(text)) => Outcome::Turn(text_turn(req, default_thinking(req), text)),
        Some(Script::Thinking { thinking, text }) => {
            Outcome::Turn(text_turn(req, Some(thinking), text))
        }
        Some(Script::Stop { text, stop_reason }) => {
            let mut turn = text_turn(req, default_thinking(req), text);
            turn.stop_reason = stop_reason;
            Outcome::Turn(turn)
        }
        Some(Script::ToolUse { text, name, input }) => {
            let mut turn = Turn {
                thinking: default_thinking(req),
                text,
                tool: Some(ToolCall {
                    id: tool_id(),
                    name,
                    input,
                }),
                stop_reason: "tool_use".to_owned(),
                stop_sequence: None,
            };
            truncate(req, &mut turn);
            Outcome::Turn(turn)
        }
        Some(Script::HttpError {
            status,
            error_type,
            message,
            headers,
        }) => Outcome::Error(ApiError {
            status,
            error_type,
            message,
            headers,
        }),
        Some(Script::StreamError {
            after_tokens,
            error_type,
            message,
        }) => Outcome::StreamError {
            turn: default_turn(),
            after: after_tokens,
            error: ApiError {
                status: status_for(&error_type),
                error_type,
                message,
                headers: Vec::new(),
            },
        },
        Some(Script::Cut { after_tokens }) => Outcome::Cut {
            turn: default_turn(),
            after: after_tokens,
        },
        Some(Script::Hang) => Outcome::Hang,
    }
}

/// The HTTP status the API uses for an error type (for errors that, streamed, would be
/// an `event: error`, but must be an HTTP error on a non-streaming request).
pub(super) fn status_for(error_type: &str) -> u16 {
    match error_type {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "overloaded_error" => 529,
        _ => 500,
    }
}

/// Splits text into "tokens" at word starts, keeping whitespace attached to the word
/// before it, so the pieces concatenate back to the exact input.
pub(super) fn split_tokens(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut seen_word = false;
    let mut prev_ws = false;
    for (i, c) in text.char_indices() {
        let ws = c.is_whitespace();
        if !ws && prev_ws && seen_word {
            out.push(&text[start..i]);
            start = i;
        }
        seen_word |= !ws;
        prev_ws = ws;
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_concatenate_exactly() {
        for s in [
            "anthropic: hello world",
            "  lead",
            "trail  ",
            "a\n\nb c",
            "",
            "x",
        ] {
            assert_eq!(split_tokens(s).concat(), s);
        }
        assert_eq!(
            split_tokens("anthropic: hi there"),
            ["anthropic: ", "hi ", "there"]
        );
        assert_eq!(split_tokens("  a b"), ["  a ", "b"]);
    }

    fn req() -> Request {
        Request {
            model: "claude-sonnet-4-6".into(),
            max_tokens: 3,
            stream: true,
            thinks: false,
            stop_sequences: vec!["STOP".into()],
            user_text: "hi".into(),
            tool_results: Vec::new(),
            input_tokens: 1,
        }
    }

    #[test]
    fn stop_sequence_and_max_tokens() {
        let Outcome::Turn(t) = plan(&req(), Some(Script::text("one STOP two")), String::new) else {
            panic!()
        };
        assert_eq!(t.text.as_deref(), Some("one "));
        assert_eq!(t.stop_reason, "stop_sequence");
        assert_eq!(t.stop_sequence.as_deref(), Some("STOP"));
        let Outcome::Turn(t) = plan(&req(), Some(Script::text("a b c d e")), String::new) else {
            panic!()
        };
        assert_eq!(t.text.as_deref(), Some("a b c "));
        assert_eq!(t.stop_reason, "max_tokens");
    }
}
