//! The Responses API on the wire (protocols.md): request bodies, and the events of a
//! reply, the same JSON over SSE and WebSocket.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::{
    Item, Options, ProviderRequest, ResponseFormat, ToolCall, ToolChoice, Usage, thinking,
};
use pincer_core::Role;

/// The body of a `response.create` (WebSocket) or `POST /responses` (SSE) for
/// `request`, sending its items from `from` on, continuing `previous` when set.
pub fn body(request: &ProviderRequest, from: usize, previous: Option<&str>) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("model".into(), json!(request.model));
    let input: Vec<Value> = request.items.iter().skip(from).filter_map(item).collect();
    body.insert("input".into(), Value::Array(input));
    if let Some(prompt) = &request.system_prompt {
        body.insert("instructions".into(), json!(prompt));
    }
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|t| {
                json!({
                    "type": "function",
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters,
                })
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(reasoning) = thinking::openai(&request.model, request.thinking) {
        body.insert("reasoning".into(), reasoning);
    }
    options(&request.options, &mut body);
    // The gateway keeps the transcript; the upstream keeps only the socket's latest
    // response, which is what continuation needs.
    body.insert("store".into(), json!(false));
    if let Some(previous) = previous {
        body.insert("previous_response_id".into(), json!(previous));
    }
    body
}

/// The caller's options as Responses fields (`stop` and `seed` have none: the gateway
/// refuses them before a call is made, see [`Options::unsupported_by`]).
fn options(options: &Options, body: &mut Map<String, Value>) {
    if let Some(max) = options.max_tokens {
        body.insert("max_output_tokens".into(), json!(max));
    }
    if let Some(t) = options.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(p) = options.top_p {
        body.insert("top_p".into(), json!(p));
    }
    match &options.response_format {
        Some(ResponseFormat::JsonObject) => {
            body.insert("text".into(), json!({"format": {"type": "json_object"}}));
        }
        Some(ResponseFormat::JsonSchema {
            name,
            schema,
            strict,
        }) => {
            let mut format = json!({"type": "json_schema", "name": name, "schema": schema});
            if let Some(strict) = strict {
                format["strict"] = json!(strict);
            }
            body.insert("text".into(), json!({ "format": format }));
        }
        None => {}
    }
    let choice = match &options.tool_choice {
        Some(ToolChoice::Auto) => json!("auto"),
        Some(ToolChoice::None) => json!("none"),
        Some(ToolChoice::Required) => json!("required"),
        Some(ToolChoice::Function(name)) => json!({"type": "function", "name": name}),
        None => return,
    };
    body.insert("tool_choice".into(), choice);
}

/// A warm-up frame for `model`: prepares the socket, generates nothing.
pub fn warmup(model: &str) -> Value {
    json!({ "type": "response.create", "generate": false, "model": model, "input": [], "store": false })
}

/// An item as Responses input; thinking blocks of other providers are not sent.
fn item(item: &Item) -> Option<Value> {
    Some(match item {
        Item::Message(m) => {
            let role = match m.role {
                Role::Assistant => "assistant",
                Role::System => "developer",
                Role::User | Role::Tool => "user",
            };
            json!({ "role": role, "content": &*m.content })
        }
        Item::ToolCall(call) => json!({
            "type": "function_call",
            "call_id": call.call_id,
            "name": call.name,
            "arguments": call.arguments,
        }),
        Item::ToolOutput { call_id, output } => json!({
            "type": "function_call_output",
            "call_id": call_id,
            "output": output,
        }),
        Item::Reasoning(_) => return None,
    })
}

/// `response.usage` (`input_tokens` counts cached tokens too); `None` when absent or
/// null, or when it carries neither count.
fn usage(usage: Option<&Value>) -> Option<Usage> {
    let usage = usage.filter(|u| u.is_object())?;
    let count = |field: &str| usage.get(field).and_then(Value::as_u64);
    let (input, output) = (count("input_tokens"), count("output_tokens"));
    if input.is_none() && output.is_none() {
        return None;
    }
    Some(Usage {
        input_tokens: input.unwrap_or_default(),
        output_tokens: output.unwrap_or_default(),
    })
}

/// What one event means for the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing to pass on.
    Nothing,
    /// Reply text.
    Delta(String),
    /// Reasoning text.
    Thinking(String),
    /// A complete tool call.
    ToolCall(ToolCall),
    /// The response completed (or ended incomplete, which keeps what came), with the
    /// tokens it used when the event carried `response.usage`, and whether it stopped at
    /// `max_output_tokens`.
    Completed {
        /// `response.usage`.
        usage: Option<Usage>,
        /// `response.incomplete` for `max_output_tokens`.
        cut: bool,
    },
    /// The response failed.
    Failed(Failure),
}

/// A failed response or a refused request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// HTTP-like status of a WebSocket error frame.
    pub status: Option<u16>,
    /// `error.code`.
    pub code: Option<String>,
    /// `error.message`.
    pub message: String,
    /// Whether it came before `response.created`: the request was refused, nothing ran.
    pub refused: bool,
}

/// Reads the events of one response.
#[derive(Debug, Default)]
pub struct Decoder {
    response_id: Option<String>,
    text: String,
    calls: Vec<ToolCall>,
    /// Function-call arguments streamed so far, by item id.
    arguments: HashMap<String, String>,
    error: Option<Failure>,
}

impl Decoder {
    /// Takes one event.
    pub fn step(&mut self, event: &Value) -> Step {
        let kind = event
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let text = |field: &str| {
            event
                .get(field)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        match kind {
            "response.created" => {
                self.response_id = event
                    .pointer("/response/id")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                Step::Nothing
            }
            "response.output_text.delta" => {
                let delta = text("delta");
                self.text.push_str(&delta);
                Step::Delta(delta)
            }
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                Step::Thinking(text("delta"))
            }
            "response.function_call_arguments.delta" => {
                self.arguments
                    .entry(text("item_id"))
                    .or_default()
                    .push_str(&text("delta"));
                Step::Nothing
            }
            "response.output_item.done" => {
                let Some(item) = event.get("item") else {
                    return Step::Nothing;
                };
                if item.get("type").and_then(Value::as_str) != Some("function_call") {
                    return Step::Nothing;
                }
                let field = |f: &str| item.get(f).and_then(Value::as_str).map(str::to_string);
                let streamed = field("id").and_then(|id| self.arguments.remove(&id));
                let call = ToolCall {
                    call_id: field("call_id").unwrap_or_default(),
                    name: field("name").unwrap_or_default(),
                    arguments: field("arguments").or(streamed).unwrap_or_default(),
                };
                self.calls.push(call.clone());
                Step::ToolCall(call)
            }
            "response.completed" | "response.incomplete" => Step::Completed {
                usage: usage(event.pointer("/response/usage")),
                cut: event.pointer("/response/incomplete_details/reason")
                    == Some(&Value::from("max_output_tokens")),
            },
            "response.failed" => {
                let failure = self.error.take().unwrap_or_else(|| Failure {
                    status: None,
                    code: event
                        .pointer("/response/error/code")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    message: event
                        .pointer("/response/error/message")
                        .and_then(Value::as_str)
                        .unwrap_or("the response failed")
                        .to_string(),
                    refused: false,
                });
                Step::Failed(failure)
            }
            "error" => {
                // Nested (what production sends) first, then the flat form of the docs.
                let nested = event.get("error");
                let field = |f: &str| {
                    nested
                        .and_then(|e| e.get(f))
                        .or_else(|| event.get(f))
                        .and_then(Value::as_str)
                        .map(str::to_string)
                };
                let failure = Failure {
                    status: event
                        .get("status")
                        .and_then(Value::as_u64)
                        .and_then(|s| u16::try_from(s).ok()),
                    code: field("code"),
                    message: field("message").unwrap_or_else(|| "upstream error".into()),
                    refused: self.response_id.is_none(),
                };
                if failure.refused {
                    Step::Failed(failure)
                } else {
                    // A `response.failed` follows for a response that had started.
                    self.error = Some(failure);
                    Step::Nothing
                }
            }
            _ => Step::Nothing,
        }
    }

    /// The failure seen so far, when the stream ends without a terminal event.
    pub fn pending_failure(&mut self) -> Option<Failure> {
        self.error.take()
    }

    /// The response's id, once created.
    pub fn response_id(&self) -> Option<&str> {
        self.response_id.as_deref()
    }

    /// The response's output as conversation items (assistant text, then tool calls).
    pub fn output_items(&self) -> Vec<Item> {
        let mut items = Vec::new();
        if !self.text.is_empty() {
            items.push(Item::Message(crate::ChatMessage {
                role: Role::Assistant,
                content: self.text.as_str().into(),
            }));
        }
        items.extend(self.calls.iter().cloned().map(Item::ToolCall));
        items
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ChatMessage;

    #[test]
    fn a_text_reply_and_a_tool_call() {
        let mut d = Decoder::default();
        let events = [
            json!({"type":"response.created","response":{"id":"resp_1"}}),
            json!({"type":"response.output_text.delta","delta":"Hi"}),
            json!({"type":"response.function_call_arguments.delta","item_id":"fc_1","delta":"{\"a\":"}),
            json!({"type":"response.function_call_arguments.delta","item_id":"fc_1","delta":"1}"}),
            json!({"type":"response.output_item.done","item":{"type":"function_call","id":"fc_1","call_id":"c1","name":"t"}}),
            json!({"type":"response.completed","response":{"id":"resp_1","usage":{"input_tokens":12,"input_tokens_details":{"cached_tokens":4},"output_tokens":3,"total_tokens":15}}}),
        ];
        let steps: Vec<Step> = events.iter().map(|e| d.step(e)).collect();
        assert_eq!(steps[1], Step::Delta("Hi".into()));
        assert_eq!(
            steps[4],
            Step::ToolCall(ToolCall {
                call_id: "c1".into(),
                name: "t".into(),
                arguments: "{\"a\":1}".into()
            })
        );
        let usage = Usage {
            input_tokens: 12,
            output_tokens: 3,
        };
        assert_eq!(
            steps[5],
            Step::Completed {
                usage: Some(usage),
                cut: false
            }
        );
        assert_eq!(d.response_id(), Some("resp_1"));
        assert_eq!(d.output_items().len(), 2);
    }

    #[test]
    fn usage_is_read_when_there_and_absent_otherwise() {
        let mut d = Decoder::default();
        let incomplete = json!({"type":"response.incomplete","response":{"usage":{"input_tokens":7,"output_tokens":0}}});
        let usage = Usage {
            input_tokens: 7,
            output_tokens: 0,
        };
        assert_eq!(
            d.step(&incomplete),
            Step::Completed {
                usage: Some(usage),
                cut: false
            }
        );
        let capped = json!({"type":"response.incomplete","response":{"incomplete_details":{"reason":"max_output_tokens"}}});
        assert_eq!(
            d.step(&capped),
            Step::Completed {
                usage: None,
                cut: true
            }
        );
        for response in [json!({}), json!({"usage": null}), json!({"usage": {}})] {
            let event = json!({"type":"response.completed","response":response});
            assert_eq!(
                d.step(&event),
                Step::Completed {
                    usage: None,
                    cut: false
                },
                "{event}"
            );
        }
    }

    #[test]
    fn errors_nested_flat_and_refusals() {
        let mut d = Decoder::default();
        let refused = d.step(&json!({"type":"error","status":400,"error":{"code":"previous_response_not_found","message":"gone"}}));
        assert!(matches!(
            refused,
            Step::Failed(Failure {
                refused: true,
                status: Some(400),
                ..
            })
        ));
        let mut d = Decoder::default();
        d.step(&json!({"type":"response.created","response":{"id":"r"}}));
        assert_eq!(
            d.step(&json!({"type":"error","code":"server_error","message":"boom"})),
            Step::Nothing
        );
        let Step::Failed(f) = d.step(
            &json!({"type":"response.failed","response":{"error":{"code":"x","message":"y"}}}),
        ) else {
            panic!("a failure");
        };
        assert_eq!(
            (f.code.as_deref(), f.message.as_str(), f.refused),
            (Some("server_error"), "boom", false)
        );
    }

    #[test]
    fn bodies_continue_or_carry_everything() {
        let request = ProviderRequest {
            request_id: "r".into(),
            model: "gpt-5".into(),
            system_prompt: Some("be brief".into()),
            items: vec![
                Item::Message(ChatMessage {
                    role: Role::User,
                    content: "a".into(),
                }),
                Item::Message(ChatMessage {
                    role: Role::Assistant,
                    content: "b".into(),
                }),
                Item::Message(ChatMessage {
                    role: Role::User,
                    content: "c".into(),
                }),
            ],
            tools: Vec::new(),
            thinking: None,
            api_key: None,
            options: Default::default(),
        };
        let full = body(&request, 0, None);
        assert_eq!(full["input"].as_array().map(Vec::len), Some(3));
        assert_eq!(full["reasoning"], json!({"effort":"low"}));
        assert_eq!(full["instructions"], json!("be brief"));
        let next = body(&request, 2, Some("resp_1"));
        assert_eq!(next["input"], json!([{"role":"user","content":"c"}]));
        assert_eq!(next["previous_response_id"], json!("resp_1"));
        assert!(full.get("max_output_tokens").is_none() && full.get("text").is_none());
    }

    #[test]
    fn a_caller_s_options_become_responses_fields() {
        let request = ProviderRequest {
            request_id: "r".into(),
            model: "gpt-5".into(),
            system_prompt: None,
            items: Vec::new(),
            tools: Vec::new(),
            thinking: None,
            api_key: None,
            options: Options {
                max_tokens: Some(5),
                temperature: Some(0.5),
                top_p: Some(0.9),
                response_format: Some(ResponseFormat::JsonObject),
                tool_choice: Some(ToolChoice::Function("f".into())),
                ..Options::default()
            },
        };
        let b = body(&request, 0, None);
        assert_eq!(b["max_output_tokens"], json!(5));
        assert_eq!(b["temperature"], json!(0.5));
        assert_eq!(b["top_p"], json!(0.9));
        assert_eq!(b["text"], json!({"format": {"type": "json_object"}}));
        assert_eq!(b["tool_choice"], json!({"type": "function", "name": "f"}));
    }
}
