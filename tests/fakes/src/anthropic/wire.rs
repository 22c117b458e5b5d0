//! Encoding a turn on the wire: SSE events (with their timing) or one JSON Message.

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use serde_json::{Value, json};

use super::reply::{Turn, split_tokens};
use super::validate::ApiError;

/// One step of a response body. A body is planned up front as a list of steps so the
/// timing and failure injection are plain data, testable without a socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Step {
    /// Send these bytes.
    Data(Bytes),
    /// Wait.
    Sleep(Duration),
    /// Abort the connection mid-body.
    Cut,
    /// Never send anything again.
    Hang,
}

/// The body of a response as a byte stream. Ends with an error for [`Step::Cut`], which
/// makes hyper drop the connection without the chunked terminator, as a broken upstream
/// would.
pub(super) fn body_stream(
    steps: VecDeque<Step>,
) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + Sync + 'static {
    futures::stream::unfold(Some(steps), |state| async move {
        let mut steps = state?;
        loop {
            match steps.pop_front()? {
                Step::Data(b) => return Some((Ok(b), Some(steps))),
                Step::Sleep(d) => tokio::time::sleep(d).await,
                Step::Cut => {
                    let err = io::Error::new(io::ErrorKind::ConnectionAborted, "fake cut");
                    return Some((Err(err), None));
                }
                Step::Hang => futures::future::pending::<()>().await,
            }
        }
    })
}

/// Per-message facts every event repeats.
#[derive(Debug, Clone)]
pub(super) struct MessageMeta {
    pub(super) id: String,
    pub(super) model: String,
    pub(super) input_tokens: u64,
}

/// A content block: its `content_block_start` payload, its deltas, its final form.
#[derive(Debug)]
struct Block {
    start: Value,
    deltas: Vec<Value>,
    done: Value,
    /// Output tokens the block costs (its deltas, less the signature).
    tokens: u64,
}

/// A stand-in for the opaque signature the API puts on thinking blocks: deterministic,
/// base64-looking, and tied to the text (FNV-1a) so a tampered block would not match.
fn signature(thinking: &str) -> String {
    let hash = thinking.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("EqQBCkgIBxABGAIiQFake{hash:016x}Sig==")
}

/// Splits compact JSON into small pieces, as the API streams `input_json_delta`.
fn json_pieces(json: &str) -> Vec<String> {
    let chars: Vec<char> = json.chars().collect();
    chars.chunks(8).map(|c| c.iter().collect()).collect()
}

fn blocks(turn: &Turn) -> Vec<Block> {
    let mut out = Vec::new();
    if let Some(thinking) = &turn.thinking {
        let sig = signature(thinking);
        let tokens = split_tokens(thinking);
        let mut deltas: Vec<Value> = tokens
            .iter()
            .map(|t| json!({"type": "thinking_delta", "thinking": t}))
            .collect();
        deltas.push(json!({"type": "signature_delta", "signature": sig}));
        out.push(Block {
            start: json!({"type": "thinking", "thinking": ""}),
            deltas,
            done: json!({"type": "thinking", "thinking": thinking, "signature": sig}),
            tokens: tokens.len() as u64,
        });
    }
    if let Some(text) = &turn.text {
        let tokens = split_tokens(text);
        out.push(Block {
            start: json!({"type": "text", "text": ""}),
            deltas: tokens
                .iter()
                .map(|t| json!({"type": "text_delta", "text": t}))
                .collect(),
            done: json!({"type": "text", "text": text}),
            tokens: tokens.len() as u64,
        });
    }
    if let Some(tool) = &turn.tool {
        // The API opens with an empty partial_json; clients must cope with it.
        let pieces: Vec<String> = std::iter::once(String::new())
            .chain(json_pieces(&tool.input.to_string()))
            .collect();
        out.push(Block {
            start: json!({"type": "tool_use", "id": tool.id, "name": tool.name, "input": {}}),
            tokens: pieces.len() as u64,
            deltas: pieces
                .iter()
                .map(|p| json!({"type": "input_json_delta", "partial_json": p}))
                .collect(),
            done: json!({"type": "tool_use", "id": tool.id, "name": tool.name, "input": tool.input}),
        });
    }
    out
}

fn usage(input_tokens: u64, output_tokens: u64) -> Value {
    json!({
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
    })
}

/// The full non-streaming Message.
pub(super) fn message_json(meta: &MessageMeta, turn: &Turn) -> Value {
    let blocks = blocks(turn);
    let output: u64 = blocks.iter().map(|b| b.tokens).sum();
    json!({
        "id": meta.id,
        "type": "message",
        "role": "assistant",
        "model": meta.model,
        "content": blocks.into_iter().map(|b| b.done).collect::<Vec<_>>(),
        "stop_reason": turn.stop_reason,
        "stop_sequence": turn.stop_sequence,
        "usage": usage(meta.input_tokens, output),
    })
}

/// How many content deltas a turn streams (for timing a non-streaming answer).
pub(super) fn delta_count(turn: &Turn) -> usize {
    blocks(turn).iter().map(|b| b.deltas.len()).sum()
}

/// The error body the API sends, over HTTP or as an `event: error`.
pub(super) fn error_json(err: &ApiError, request_id: &str) -> Value {
    json!({
        "type": "error",
        "error": {"type": err.error_type, "message": err.message},
        "request_id": request_id,
    })
}

/// One SSE event.
#[derive(Debug, Clone)]
pub(super) struct Event {
    name: &'static str,
    data: Value,
}

impl Event {
    fn new(name: &'static str, data: Value) -> Event {
        Event { name, data }
    }

    fn is_delta(&self) -> bool {
        self.name == "content_block_delta"
    }

    fn encode(&self) -> Bytes {
        Bytes::from(format!("event: {}\ndata: {}\n\n", self.name, self.data))
    }
}

/// Every event of a complete streamed turn, in order, starting with `message_start`
/// and `ping` (the real API pings right after the start).
pub(super) fn turn_events(meta: &MessageMeta, turn: &Turn) -> Vec<Event> {
    let blocks = blocks(turn);
    let output: u64 = blocks.iter().map(|b| b.tokens).sum();
    let mut events = vec![
        Event::new(
            "message_start",
            json!({"type": "message_start", "message": {
                "id": meta.id,
                "type": "message",
                "role": "assistant",
                "model": meta.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": usage(meta.input_tokens, 1),
            }}),
        ),
        Event::new("ping", json!({"type": "ping"})),
    ];
    for (index, block) in blocks.into_iter().enumerate() {
        events.push(Event::new(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": block.start}),
        ));
        for delta in block.deltas {
            events.push(Event::new(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index, "delta": delta}),
            ));
        }
        events.push(Event::new(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
    }
    events.push(Event::new(
        "message_delta",
        json!({
            "type": "message_delta",
            "delta": {"stop_reason": turn.stop_reason, "stop_sequence": turn.stop_sequence},
            "usage": usage(meta.input_tokens, output),
        }),
    ));
    events.push(Event::new("message_stop", json!({"type": "message_stop"})));
    events
}

/// The streaming delays.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timing {
    pub(super) first_token: Duration,
    pub(super) token: Duration,
    pub(super) ping_every: Option<Duration>,
}

/// How a stream ends.
#[derive(Debug, Clone)]
pub(super) enum End {
    /// Through `message_stop`.
    Complete,
    /// After this many deltas, an `event: error` with this payload; then the body ends.
    ErrorAfter(usize, Value),
    /// After this many deltas, the connection drops.
    CutAfter(usize),
}

/// Builds the body steps, inserting `ping`s into long silences when asked to.
#[derive(Debug)]
struct Steps {
    steps: VecDeque<Step>,
    ping_every: Option<Duration>,
    silent_for: Duration,
}

impl Steps {
    fn sleep(&mut self, d: Duration) {
        let mut left = d;
        if let Some(every) = self.ping_every.filter(|p| !p.is_zero()) {
            while self.silent_for + left >= every {
                let chunk = every - self.silent_for;
                self.steps.push_back(Step::Sleep(chunk));
                self.steps.push_back(Step::Data(
                    Event::new("ping", json!({"type": "ping"})).encode(),
                ));
                self.silent_for = Duration::ZERO;
                left -= chunk;
            }
            self.silent_for += left;
        }
        if !left.is_zero() {
            self.steps.push_back(Step::Sleep(left));
        }
    }

    fn emit(&mut self, event: &Event) {
        self.steps.push_back(Step::Data(event.encode()));
        self.silent_for = Duration::ZERO;
    }
}

/// Lays the events out in time and applies the ending.
pub(super) fn sse_steps(events: &[Event], timing: Timing, end: End) -> VecDeque<Step> {
    let mut out = Steps {
        steps: VecDeque::new(),
        ping_every: timing.ping_every,
        silent_for: Duration::ZERO,
    };
    let stop_after = match &end {
        End::Complete => None,
        End::ErrorAfter(n, _) | End::CutAfter(n) => Some(*n),
    };
    let mut deltas = 0;
    let mut in_content = false;
    for event in events {
        // A failing stream never reaches message_delta, however few deltas the turn has.
        let limit_hit = event.is_delta() && stop_after.is_some_and(|n| deltas >= n);
        if limit_hit || (event.name == "message_delta" && stop_after.is_some()) {
            break;
        }
        if event.name == "content_block_start" && !in_content {
            out.sleep(timing.first_token);
            in_content = true;
        } else if event.is_delta() && deltas > 0 {
            out.sleep(timing.token);
        }
        out.emit(event);
        if event.is_delta() {
            deltas += 1;
        }
    }
    match end {
        End::Complete => {}
        End::ErrorAfter(_, payload) => out.emit(&Event::new("error", payload)),
        End::CutAfter(_) => {
            // Let hyper flush what was sent before the abort, so the client sees the
            // partial stream and then the broken connection (not an empty response).
            out.steps.push_back(Step::Sleep(Duration::from_millis(20)));
            out.steps.push_back(Step::Cut);
        }
    }
    out.steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anthropic::reply::ToolCall;

    fn meta() -> MessageMeta {
        MessageMeta {
            id: "msg_1".into(),
            model: "claude-sonnet-4-6".into(),
            input_tokens: 5,
        }
    }

    fn names(steps: &VecDeque<Step>) -> Vec<String> {
        steps
            .iter()
            .map(|s| match s {
                Step::Data(b) => {
                    let s = String::from_utf8_lossy(b);
                    s.lines()
                        .next()
                        .unwrap_or("")
                        .trim_start_matches("event: ")
                        .to_owned()
                }
                Step::Sleep(d) => format!("sleep {}", d.as_millis()),
                Step::Cut => "CUT".into(),
                Step::Hang => "HANG".into(),
            })
            .collect()
    }

    fn text_turn(text: &str) -> Turn {
        Turn {
            thinking: None,
            text: Some(text.into()),
            tool: None,
            stop_reason: "end_turn".into(),
            stop_sequence: None,
        }
    }

    #[test]
    fn timing_and_pings() {
        let timing = Timing {
            first_token: Duration::from_millis(250),
            token: Duration::from_millis(10),
            ping_every: Some(Duration::from_millis(100)),
        };
        let steps = sse_steps(
            &turn_events(&meta(), &text_turn("a b")),
            timing,
            End::Complete,
        );
        assert_eq!(
            names(&steps),
            [
                "message_start",
                "ping",
                "sleep 100",
                "ping",
                "sleep 100",
                "ping",
                "sleep 50",
                "content_block_start",
                "content_block_delta",
                "sleep 10",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
            ]
        );
    }

    #[test]
    fn error_and_cut_endings() {
        let t = Timing {
            first_token: Duration::ZERO,
            token: Duration::ZERO,
            ping_every: None,
        };
        let events = turn_events(&meta(), &text_turn("a b c"));
        let steps = sse_steps(&events, t, End::ErrorAfter(1, json!({"type": "error"})));
        assert_eq!(
            names(&steps),
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "error"
            ]
        );
        let steps = sse_steps(&events, t, End::CutAfter(99));
        assert_eq!(names(&steps).last().map(String::as_str), Some("CUT"));
        assert!(!names(&steps).contains(&"message_delta".to_owned()));
    }

    #[test]
    fn tool_json_pieces_rebuild_the_input() {
        let input = json!({"city": "Paris", "days": [1, 2, 3]});
        let turn = Turn {
            thinking: None,
            text: None,
            tool: Some(ToolCall {
                id: "toolu_1".into(),
                name: "weather".into(),
                input: input.clone(),
            }),
            stop_reason: "tool_use".into(),
            stop_sequence: None,
        };
        let joined: String = turn_events(&meta(), &turn)
            .iter()
            .filter_map(|e| e.data["delta"]["partial_json"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(serde_json::from_str::<Value>(&joined).unwrap(), input);
        assert_eq!(message_json(&meta(), &turn)["content"][0]["input"], input);
    }
}
