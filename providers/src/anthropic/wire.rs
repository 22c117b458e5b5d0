//! The Messages API on the wire (protocols.md): request bodies and stream events.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::{Item, Options, ProviderRequest, Reasoning, ToolCall, ToolChoice, Usage, thinking};
use pincer_core::Role;

/// The body of `POST /v1/messages` for `request`, streaming, with `max_tokens` (raised
/// above the thinking budget when there is one).
pub fn body(request: &ProviderRequest, max_tokens: u32) -> Map<String, Value> {
    let max_tokens = request.options.max_tokens.unwrap_or(max_tokens);
    let (model, named_adaptive) = thinking::model_id(&request.model);
    let mode = request
        .thinking
        .or(named_adaptive.then_some(pincer_config::ThinkingMode::Adaptive));
    let think = thinking::anthropic(&model, mode);
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert(
        "max_tokens".into(),
        json!(max_tokens.max(think.min_max_tokens)),
    );
    body.insert("stream".into(), json!(true));
    if let Some(prompt) = &request.system_prompt {
        body.insert("system".into(), json!(prompt));
    }
    body.insert("messages".into(), Value::Array(messages(&request.items)));
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|t| json!({ "name": t.name, "description": t.description, "input_schema": t.parameters }))
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(thinking) = think.thinking {
        body.insert("thinking".into(), thinking);
    }
    if let Some(config) = think.output_config {
        body.insert("output_config".into(), config);
    }
    options(&request.options, &mut body);
    body
}

/// The caller's options as Messages fields (`seed` and an output format have none: the
/// gateway refuses them before a call is made, see [`Options::unsupported_by`]).
fn options(options: &Options, body: &mut Map<String, Value>) {
    if let Some(t) = options.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(p) = options.top_p {
        body.insert("top_p".into(), json!(p));
    }
    if !options.stop.is_empty() {
        body.insert("stop_sequences".into(), json!(options.stop));
    }
    let choice = match &options.tool_choice {
        Some(ToolChoice::Auto) => json!({"type": "auto"}),
        Some(ToolChoice::None) => json!({"type": "none"}),
        Some(ToolChoice::Required) => json!({"type": "any"}),
        Some(ToolChoice::Function(name)) => json!({"type": "tool", "name": name}),
        None => return,
    };
    body.insert("tool_choice".into(), choice);
}

/// Items as alternating user/assistant messages of content blocks, starting with a user
/// message (the API refuses anything else): consecutive items of one side merge.
fn messages(items: &[Item]) -> Vec<Value> {
    let mut out: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for item in items {
        let (role, block) = match item {
            Item::Message(m) if m.content.is_empty() => continue,
            Item::Message(m) => {
                let role = if m.role == Role::Assistant {
                    "assistant"
                } else {
                    "user"
                };
                (role, json!({ "type": "text", "text": &*m.content }))
            }
            Item::ToolCall(call) => {
                let input = serde_json::from_str::<Value>(&call.arguments)
                    .ok()
                    .filter(Value::is_object)
                    .unwrap_or_else(|| json!({}));
                (
                    "assistant",
                    json!({ "type": "tool_use", "id": call.call_id, "name": call.name, "input": input }),
                )
            }
            Item::Reasoning(r) if r.redacted => (
                "assistant",
                json!({ "type": "redacted_thinking", "data": r.signature }),
            ),
            Item::Reasoning(r) => (
                "assistant",
                json!({ "type": "thinking", "thinking": r.text, "signature": r.signature }),
            ),
            Item::ToolOutput { call_id, output } => (
                "user",
                json!({ "type": "tool_result", "tool_use_id": call_id, "content": output }),
            ),
        };
        if out.is_empty() && role == "assistant" {
            continue;
        }
        match out.last_mut() {
            Some((last, blocks)) if *last == role => blocks.push(block),
            _ => out.push((role, vec![block])),
        }
    }
    out.into_iter()
        .map(|(role, content)| json!({ "role": role, "content": content }))
        .collect()
}

/// What one event means for the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing to pass on.
    Nothing,
    /// Reply text.
    Delta(String),
    /// Thinking text.
    Thinking(String),
    /// A complete tool call.
    ToolCall(ToolCall),
    /// A complete thinking block.
    Reasoning(Reasoning),
    /// `message_stop`.
    Stopped,
    /// An `error` event: its `error.type` and message.
    Error(String, String),
}

/// Reads the events of one message.
#[derive(Debug, Default)]
pub struct Decoder {
    /// Tool-use blocks open, by index: id, name, input JSON so far.
    tools: HashMap<u64, (String, String, String)>,
    /// Thinking blocks open, by index.
    thinking: HashMap<u64, Reasoning>,
    stop_reason: Option<String>,
    /// Token counts so far: `message_start` gives them first, `message_delta` repeats
    /// them cumulatively (its `output_tokens` always, the input counts when present).
    counts: Counts,
}

/// The usage fields of a message, as last reported.
#[derive(Debug, Default)]
struct Counts {
    input: Option<u64>,
    cache_creation: Option<u64>,
    cache_read: Option<u64>,
    output: Option<u64>,
}

impl Counts {
    /// Takes the counts `usage` carries; absent or null fields keep what came before.
    fn update(&mut self, usage: Option<&Value>) {
        let Some(usage) = usage else { return };
        let count = |field: &str| usage.get(field).and_then(Value::as_u64);
        for (slot, field) in [
            (&mut self.input, "input_tokens"),
            (&mut self.cache_creation, "cache_creation_input_tokens"),
            (&mut self.cache_read, "cache_read_input_tokens"),
            (&mut self.output, "output_tokens"),
        ] {
            if let Some(n) = count(field) {
                *slot = Some(n);
            }
        }
    }
}

impl Decoder {
    /// Takes one event's data.
    pub fn step(&mut self, event: &Value) -> Step {
        let text = |pointer: &str| {
            event
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let index = event
            .get("index")
            .and_then(Value::as_u64)
            .unwrap_or_default();
        match event
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
        {
            "content_block_start" => {
                match event.pointer("/content_block/type").and_then(Value::as_str) {
                    Some("tool_use") => {
                        let open = (
                            text("/content_block/id"),
                            text("/content_block/name"),
                            String::new(),
                        );
                        self.tools.insert(index, open);
                    }
                    Some(kind @ ("thinking" | "redacted_thinking")) => {
                        let block = Reasoning {
                            text: text("/content_block/thinking"),
                            signature: text("/content_block/data"),
                            redacted: kind == "redacted_thinking",
                        };
                        self.thinking.insert(index, block);
                    }
                    _ => {}
                }
                Step::Nothing
            }
            "content_block_delta" => match event.pointer("/delta/type").and_then(Value::as_str) {
                Some("text_delta") => Step::Delta(text("/delta/text")),
                Some("thinking_delta") => {
                    let delta = text("/delta/thinking");
                    if let Some(block) = self.thinking.get_mut(&index) {
                        block.text.push_str(&delta);
                    }
                    Step::Thinking(delta)
                }
                Some("signature_delta") => {
                    if let Some(block) = self.thinking.get_mut(&index) {
                        block.signature.push_str(&text("/delta/signature"));
                    }
                    Step::Nothing
                }
                Some("input_json_delta") => {
                    if let Some(tool) = self.tools.get_mut(&index) {
                        tool.2.push_str(&text("/delta/partial_json"));
                    }
                    Step::Nothing
                }
                _ => Step::Nothing,
            },
            "content_block_stop" => {
                if let Some(block) = self.thinking.remove(&index) {
                    return Step::Reasoning(block);
                }
                match self.tools.remove(&index) {
                    Some((call_id, name, input)) => Step::ToolCall(ToolCall {
                        call_id,
                        name,
                        arguments: if input.trim().is_empty() {
                            "{}".into()
                        } else {
                            input
                        },
                    }),
                    None => Step::Nothing,
                }
            }
            "message_start" => {
                self.counts.update(event.pointer("/message/usage"));
                Step::Nothing
            }
            "message_delta" => {
                self.counts.update(event.get("usage"));
                if let Some(reason) = event.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.stop_reason = Some(reason.to_string());
                }
                Step::Nothing
            }
            "message_stop" => Step::Stopped,
            "error" => Step::Error(text("/error/type"), text("/error/message")),
            _ => Step::Nothing,
        }
    }

    /// The `stop_reason` given, if any.
    pub fn stop_reason(&self) -> Option<&str> {
        self.stop_reason.as_deref()
    }

    /// The tokens the message used, if the stream said: input counts the cache's
    /// tokens too (`cache_creation_input_tokens` and `cache_read_input_tokens` are
    /// input the model read, reported apart from `input_tokens`).
    pub fn usage(&self) -> Option<Usage> {
        let c = &self.counts;
        let counts = [c.input, c.cache_creation, c.cache_read, c.output];
        if counts.iter().all(Option::is_none) {
            return None;
        }
        let input = [c.input, c.cache_creation, c.cache_read]
            .into_iter()
            .flatten()
            .fold(0_u64, u64::saturating_add);
        Some(Usage {
            input_tokens: input,
            output_tokens: c.output.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ChatMessage;
    use pincer_config::ThinkingMode;

    fn msg(role: Role, text: &str) -> Item {
        Item::Message(ChatMessage {
            role,
            content: text.into(),
        })
    }

    #[test]
    fn messages_alternate_and_start_with_the_user() {
        let items = vec![
            msg(Role::Assistant, "stray"),
            msg(Role::User, "a"),
            msg(Role::User, "b"),
            Item::ToolCall(ToolCall {
                call_id: "t1".into(),
                name: "echo".into(),
                arguments: "{\"text\":\"x\"}".into(),
            }),
            Item::ToolOutput {
                call_id: "t1".into(),
                output: "x".into(),
            },
        ];
        let got = messages(&items);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0]["role"], "user");
        assert_eq!(got[0]["content"].as_array().map(Vec::len), Some(2));
        assert_eq!(got[1]["content"][0]["input"], json!({"text": "x"}));
        assert_eq!(got[2]["content"][0]["type"], "tool_result");
    }

    #[test]
    fn thinking_per_model_family_and_the_seed_name() {
        let mut request = ProviderRequest {
            request_id: "r".into(),
            model: "claude-opus-4-6-adaptive".into(),
            system_prompt: None,
            items: vec![msg(Role::User, "hi")],
            tools: Vec::new(),
            thinking: None,
            api_key: None,
            options: Default::default(),
        };
        let b = body(&request, 1000);
        assert_eq!(b["model"], "claude-opus-4-6");
        assert_eq!(b["thinking"], json!({"type": "adaptive"}));
        request.model = "claude-sonnet-4-5".into();
        request.thinking = Some(ThinkingMode::High);
        let b = body(&request, 1000);
        assert_eq!(
            b["thinking"],
            json!({"type": "enabled", "budget_tokens": 24576})
        );
        assert!(b["max_tokens"].as_u64() > Some(24576));
    }

    #[test]
    fn a_tool_use_block_becomes_one_call() {
        let mut d = Decoder::default();
        d.step(&json!({"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"tu_1","name":"echo","input":{}}}));
        d.step(&json!({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"text\":"}}));
        d.step(&json!({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"x\"}"}}));
        let step = d.step(&json!({"type":"content_block_stop","index":1}));
        assert_eq!(
            step,
            Step::ToolCall(ToolCall {
                call_id: "tu_1".into(),
                name: "echo".into(),
                arguments: "{\"text\":\"x\"}".into()
            })
        );
    }
}

#[cfg(test)]
mod usage_tests {
    use super::*;

    #[test]
    fn input_counts_the_cache_and_message_delta_has_the_last_word() {
        let mut d = Decoder::default();
        assert_eq!(d.usage(), None);
        d.step(&json!({"type":"message_start","message":{"id":"m","usage":{"input_tokens":10,"cache_creation_input_tokens":200,"cache_read_input_tokens":3000,"output_tokens":1}}}));
        d.step(&json!({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":42}}));
        let want = Usage {
            input_tokens: 3210,
            output_tokens: 42,
        };
        assert_eq!(d.usage(), Some(want));
        // Newer streams repeat the input counts in message_delta, cumulatively.
        d.step(&json!({"type":"message_delta","delta":{},"usage":{"input_tokens":11,"cache_read_input_tokens":null,"output_tokens":43}}));
        let want = Usage {
            input_tokens: 3211,
            output_tokens: 43,
        };
        assert_eq!(d.usage(), Some(want));
    }
}

#[cfg(test)]
mod reasoning_tests {
    use super::*;

    #[test]
    fn a_thinking_block_comes_back_whole_with_its_signature() {
        let mut d = Decoder::default();
        d.step(&json!({"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}));
        assert_eq!(
            d.step(&json!({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hm"}})),
            Step::Thinking("hm".into())
        );
        d.step(&json!({"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"sig"}}));
        let step = d.step(&json!({"type":"content_block_stop","index":0}));
        let want = Reasoning {
            text: "hm".into(),
            signature: "sig".into(),
            redacted: false,
        };
        assert_eq!(step, Step::Reasoning(want));
    }
}
