//! Request validation, mirroring what the real Messages API rejects with 400
//! `invalid_request_error`. Messages follow the API's `field.path: problem` style so a
//! test failure points at the offending field.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::model::is_adaptive_generation;

/// An error answer: HTTP status, `error.type`, `error.message`, extra headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ApiError {
    pub(super) status: u16,
    pub(super) error_type: String,
    pub(super) message: String,
    pub(super) headers: Vec<(String, String)>,
}

impl ApiError {
    pub(super) fn new(status: u16, error_type: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error_type: error_type.to_owned(),
            message: message.into(),
            headers: Vec::new(),
        }
    }
}

/// A 400 `invalid_request_error`.
pub(super) fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "invalid_request_error", message)
}

type Check<T> = Result<T, ApiError>;

/// The `anthropic-version` values the API accepts.
const VERSIONS: [&str; 2] = ["2023-06-01", "2023-01-01"];

/// Checks the `anthropic-version` header (required on every endpoint).
pub(super) fn check_version(version: Option<&str>) -> Check<()> {
    match version {
        None => Err(invalid("anthropic-version: header is required")),
        Some(v) if VERSIONS.contains(&v) => Ok(()),
        Some(v) => Err(invalid(format!(
            "anthropic-version: invalid version '{v}'; supported: {}",
            VERSIONS.join(", ")
        ))),
    }
}

/// What the reply depends on, extracted from a valid request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Request {
    pub(super) model: String,
    pub(super) max_tokens: u64,
    pub(super) stream: bool,
    /// Whether the request's thinking mode produces a thinking block.
    pub(super) thinks: bool,
    pub(super) stop_sequences: Vec<String>,
    /// Concatenated `text` of the last user message.
    pub(super) user_text: String,
    /// Contents of the last user message's `tool_result` blocks.
    pub(super) tool_results: Vec<String>,
    /// A rough token count of the prompt, for `usage` and the context limit: the bytes of
    /// the body as compact JSON, divided by 4 (rounded down, at least 1).
    pub(super) input_tokens: u64,
}

/// Validates a `POST /v1/messages` body.
pub(super) fn validate(body: &Value) -> Check<Request> {
    let Some(obj) = body.as_object() else {
        return Err(invalid("body: Input should be a valid dictionary"));
    };
    let model = match obj.get("model") {
        None | Some(Value::Null) => return Err(invalid("model: Field required")),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(_) => return Err(invalid("model: Input should be a valid, non-empty string")),
    };
    let max_tokens = match obj.get("max_tokens") {
        None | Some(Value::Null) => return Err(invalid("max_tokens: Field required")),
        Some(v) => match v.as_u64() {
            Some(0) => {
                return Err(invalid(
                    "max_tokens: Input should be greater than or equal to 1",
                ));
            }
            Some(n) => n,
            None => return Err(invalid("max_tokens: Input should be a valid integer")),
        },
    };
    let messages = match obj.get("messages") {
        None | Some(Value::Null) => return Err(invalid("messages: Field required")),
        Some(Value::Array(m)) => m,
        Some(_) => return Err(invalid("messages: Input should be a valid list")),
    };
    let stream = match obj.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid("stream: Input should be a valid boolean")),
    };
    check_system(obj.get("system"))?;
    check_tools(obj.get("tools"))?;
    let stop_sequences = stop_sequences(obj.get("stop_sequences"))?;
    let thinks = thinking(obj, &model, max_tokens)?;
    let last_user = check_messages(messages)?;
    let (user_text, tool_results) = last_user.map(user_content).unwrap_or_default();
    Ok(Request {
        model,
        max_tokens,
        stream,
        thinks,
        stop_sequences,
        user_text,
        tool_results,
        input_tokens: (body.to_string().len() as u64 / 4).max(1),
    })
}

fn check_system(system: Option<&Value>) -> Check<()> {
    match system {
        None | Some(Value::Null | Value::String(_)) => Ok(()),
        Some(Value::Array(blocks)) => {
            for (i, b) in blocks.iter().enumerate() {
                if b.get("type").and_then(Value::as_str) != Some("text")
                    || !b.get("text").is_some_and(Value::is_string)
                {
                    return Err(invalid(format!(
                        "system.{i}: Input should be a text block with a string `text`"
                    )));
                }
            }
            Ok(())
        }
        Some(_) => Err(invalid("system: Input should be a valid string or list")),
    }
}

/// Custom tool names must match this (the API's pattern `^[a-zA-Z0-9_-]{1,128}$`).
fn valid_tool_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn check_tools(tools: Option<&Value>) -> Check<()> {
    let tools = match tools {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Array(t)) => t,
        Some(_) => return Err(invalid("tools: Input should be a valid list")),
    };
    let mut names = BTreeSet::new();
    for (i, tool) in tools.iter().enumerate() {
        let Some(tool) = tool.as_object() else {
            return Err(invalid(format!(
                "tools.{i}: Input should be a valid dictionary"
            )));
        };
        let kind = tool.get("type").and_then(Value::as_str).unwrap_or("custom");
        let Some(name) = tool.get("name").and_then(Value::as_str) else {
            return Err(invalid(format!("tools.{i}.{kind}.name: Field required")));
        };
        // Server tools (`web_search_20250305`, ...) carry fixed names and no schema.
        if kind == "custom" {
            if !valid_tool_name(name) {
                return Err(invalid(format!(
                    "tools.{i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'"
                )));
            }
            if !tool.get("input_schema").is_some_and(Value::is_object) {
                return Err(invalid(format!(
                    "tools.{i}.custom.input_schema: Field required"
                )));
            }
        }
        if !names.insert(name) {
            return Err(invalid("tools: Tool names must be unique."));
        }
    }
    Ok(())
}

fn stop_sequences(v: Option<&Value>) -> Check<Vec<String>> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.as_str().map(str::to_owned).ok_or_else(|| {
                    invalid(format!(
                        "stop_sequences.{i}: Input should be a valid string"
                    ))
                })
            })
            .collect(),
        Some(_) => Err(invalid("stop_sequences: Input should be a valid list")),
    }
}

const EFFORTS: [&str; 4] = ["low", "medium", "high", "max"];

/// Checks `thinking` and `output_config` against the model's generation; returns
/// whether the reply opens with a thinking block.
fn thinking(obj: &Map<String, Value>, model: &str, max_tokens: u64) -> Check<bool> {
    let effort = match obj.get("output_config") {
        None | Some(Value::Null) => None,
        Some(Value::Object(cfg)) => match cfg.get("effort") {
            None | Some(Value::Null) => None,
            Some(Value::String(e)) if EFFORTS.contains(&e.as_str()) => Some(e.as_str()),
            Some(_) => {
                return Err(invalid(
                    "output_config.effort: Input should be 'low', 'medium', 'high' or 'max'",
                ));
            }
        },
        Some(_) => return Err(invalid("output_config: Input should be a valid dictionary")),
    };
    let thinking = match obj.get("thinking") {
        None | Some(Value::Null) => return Ok(false),
        Some(Value::Object(t)) => t,
        Some(_) => return Err(invalid("thinking: Input should be a valid dictionary")),
    };
    let adaptive_model = is_adaptive_generation(model);
    match thinking.get("type").and_then(Value::as_str) {
        None => Err(invalid("thinking.type: Field required")),
        Some("disabled") => Ok(false),
        Some("enabled") if adaptive_model => Err(invalid(format!(
            "thinking.type.enabled is not supported for model {model}; use \
             thinking.type.adaptive with output_config.effort instead"
        ))),
        Some("enabled") => {
            let Some(budget) = thinking.get("budget_tokens") else {
                return Err(invalid("thinking.enabled.budget_tokens: Field required"));
            };
            let Some(budget) = budget.as_u64() else {
                return Err(invalid(
                    "thinking.enabled.budget_tokens: Input should be a valid integer",
                ));
            };
            if budget < 1024 {
                return Err(invalid(
                    "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
                ));
            }
            if budget >= max_tokens {
                return Err(invalid(format!(
                    "`max_tokens` must be greater than `thinking.budget_tokens` \
                     (max_tokens {max_tokens}, budget_tokens {budget})"
                )));
            }
            Ok(true)
        }
        Some("adaptive") if !adaptive_model => Err(invalid(format!(
            "thinking.type.adaptive is not supported for model {model}; use \
             thinking.type.enabled with budget_tokens"
        ))),
        // High is the default effort; at low effort the model skips thinking here.
        Some("adaptive") => Ok(effort.unwrap_or("high") != "low"),
        Some(other) => Err(invalid(format!(
            "thinking.type: Input tag '{other}' found using 'type' does not match any of \
             the expected tags: 'enabled', 'disabled', 'adaptive'"
        ))),
    }
}

/// Checks roles, alternation, content blocks and tool_use/tool_result pairing; returns
/// the last user message.
fn check_messages(messages: &[Value]) -> Check<Option<&Value>> {
    if messages.is_empty() {
        return Err(invalid("messages: at least one message is required"));
    }
    let mut prev_role: Option<&str> = None;
    // tool_use ids of the previous assistant message, owed a tool_result next.
    let mut owed: Vec<String> = Vec::new();
    let mut last_user = None;
    let last = messages.len() - 1;
    for (i, m) in messages.iter().enumerate() {
        let Some(msg) = m.as_object() else {
            return Err(invalid(format!(
                "messages.{i}: Input should be a valid dictionary"
            )));
        };
        let role = match msg.get("role").and_then(Value::as_str) {
            Some(r @ ("user" | "assistant")) => r,
            Some(_) => {
                return Err(invalid(format!(
                    "messages.{i}.role: Input should be 'user' or 'assistant'"
                )));
            }
            None => return Err(invalid(format!("messages.{i}.role: Field required"))),
        };
        if i == 0 && role != "user" {
            return Err(invalid(
                "messages: first message must use the \"user\" role",
            ));
        }
        if prev_role == Some(role) {
            return Err(invalid(format!(
                "messages: roles must alternate between \"user\" and \"assistant\", but found \
                 multiple \"{role}\" roles in a row"
            )));
        }
        let blocks = check_content(i, role, msg.get("content"), i == last)?;
        if role == "user" {
            let results: Vec<&str> = blocks
                .tool_results
                .iter()
                .map(|(_, id)| id.as_str())
                .collect();
            if let Some((j, id)) = blocks
                .tool_results
                .iter()
                .find(|(_, id)| !owed.contains(id))
            {
                return Err(invalid(format!(
                    "messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` \
                     blocks: {id}. Each `tool_result` block must have a corresponding \
                     `tool_use` block in the previous message."
                )));
            }
            let missing: Vec<&str> = owed
                .iter()
                .map(String::as_str)
                .filter(|id| !results.contains(id))
                .collect();
            if !missing.is_empty() {
                return Err(unanswered_tools(i - 1, &missing));
            }
            last_user = Some(m);
            owed.clear();
        } else {
            owed = blocks.tool_uses;
        }
        prev_role = Some(role);
    }
    if !owed.is_empty() {
        let ids: Vec<&str> = owed.iter().map(String::as_str).collect();
        return Err(unanswered_tools(last, &ids));
    }
    Ok(last_user)
}

fn unanswered_tools(index: usize, ids: &[&str]) -> ApiError {
    invalid(format!(
        "messages.{index}: `tool_use` ids were found without `tool_result` blocks immediately \
         after: {}. Each `tool_use` block must have a corresponding `tool_result` block in the \
         next message.",
        ids.join(", ")
    ))
}

/// The tool ids a message's content carries.
#[derive(Debug, Default)]
struct Blocks {
    tool_uses: Vec<String>,
    /// (block index, tool_use_id)
    tool_results: Vec<(usize, String)>,
}

fn check_content(i: usize, role: &str, content: Option<&Value>, is_last: bool) -> Check<Blocks> {
    let non_empty = || {
        invalid(format!(
            "messages.{i}: all messages must have non-empty content except for the optional \
             final assistant message"
        ))
    };
    let blocks = match content {
        None | Some(Value::Null) => {
            return Err(invalid(format!("messages.{i}.content: Field required")));
        }
        Some(Value::String(s)) => {
            if s.is_empty() && !(is_last && role == "assistant") {
                return Err(non_empty());
            }
            return Ok(Blocks::default());
        }
        Some(Value::Array(b)) => b,
        Some(_) => {
            return Err(invalid(format!(
                "messages.{i}.content: Input should be a valid string or list"
            )));
        }
    };
    if blocks.is_empty() && !(is_last && role == "assistant") {
        return Err(non_empty());
    }
    let mut out = Blocks::default();
    for (j, block) in blocks.iter().enumerate() {
        let at = format!("messages.{i}.content.{j}");
        let Some(kind) = block.get("type").and_then(Value::as_str) else {
            return Err(invalid(format!("{at}.type: Field required")));
        };
        let only = |wanted: &str| -> Check<()> {
            if role == wanted {
                Ok(())
            } else {
                Err(invalid(format!(
                    "{at}: `{kind}` blocks can only be in `{wanted}` messages"
                )))
            }
        };
        let string = |field: &str| -> Check<String> {
            block
                .get(field)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| invalid(format!("{at}.{kind}.{field}: Field required")))
        };
        match kind {
            "text" => {
                if string("text")?.is_empty() {
                    return Err(invalid(format!(
                        "{at}: text content blocks must be non-empty"
                    )));
                }
            }
            "image" | "document" => only("user")?,
            "tool_use" => {
                only("assistant")?;
                string("name")?;
                if !block.get("input").is_some_and(Value::is_object) {
                    return Err(invalid(format!(
                        "{at}.tool_use.input: Input should be a valid dictionary"
                    )));
                }
                out.tool_uses.push(string("id")?);
            }
            "tool_result" => {
                only("user")?;
                match block.get("content") {
                    None | Some(Value::Null | Value::String(_) | Value::Array(_)) => {}
                    Some(_) => {
                        return Err(invalid(format!(
                            "{at}.tool_result.content: Input should be a valid string or list"
                        )));
                    }
                }
                out.tool_results.push((j, string("tool_use_id")?));
            }
            "thinking" => {
                only("assistant")?;
                string("thinking")?;
                string("signature")?;
            }
            "redacted_thinking" => {
                only("assistant")?;
                string("data")?;
            }
            other => {
                return Err(invalid(format!(
                    "{at}: Input tag '{other}' found using 'type' does not match any of the \
                     expected tags: 'text', 'image', 'document', 'tool_use', 'tool_result', \
                     'thinking', 'redacted_thinking'"
                )));
            }
        }
    }
    Ok(out)
}

/// (concatenated text blocks, tool_result contents) of a (valid) user message.
fn user_content(msg: &Value) -> (String, Vec<String>) {
    match msg.get("content") {
        Some(Value::String(s)) => (s.clone(), Vec::new()),
        Some(Value::Array(blocks)) => {
            let mut text = String::new();
            let mut results = Vec::new();
            for b in blocks {
                match b.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        text.push_str(b.get("text").and_then(Value::as_str).unwrap_or(""))
                    }
                    Some("tool_result") => results.push(text_of(b.get("content"))),
                    _ => {}
                }
            }
            (text, results)
        }
        _ => (String::new(), Vec::new()),
    }
}

/// A tool_result's `content`: a string, or the concatenated text of its blocks.
fn text_of(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn body(extra: Value) -> Value {
        let mut b = json!({
            "model": "claude-sonnet-4-6",
            "max_tokens": 2048,
            "messages": [{"role": "user", "content": "hi"}],
        });
        if let (Some(b), Some(extra)) = (b.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                b.insert(k.clone(), v.clone());
            }
        }
        b
    }

    fn err(extra: Value) -> String {
        validate(&body(extra))
            .expect_err("should be rejected")
            .message
    }

    #[test]
    fn accepts_minimal_and_unknown_fields() {
        let r = validate(&body(json!({"metadata": {"user_id": "u"}, "whatever": 1}))).unwrap();
        assert_eq!(r.user_text, "hi");
        assert!(!r.thinks);
    }

    #[test]
    fn thinking_modes() {
        let adaptive = json!({"thinking": {"type": "adaptive"}});
        assert!(validate(&body(adaptive)).unwrap().thinks);
        let low = json!({"thinking": {"type": "adaptive"}, "output_config": {"effort": "low"}});
        assert!(!validate(&body(low)).unwrap().thinks);
        assert!(
            err(json!({"thinking": {"type": "enabled", "budget_tokens": 1024}}))
                .contains("not supported")
        );
        let old = json!({"model": "claude-sonnet-4-5", "thinking": {"type": "enabled", "budget_tokens": 1024}});
        assert!(validate(&body(old)).unwrap().thinks);
        assert!(
            err(json!({"model": "claude-opus-4-1", "thinking": {"type": "adaptive"}}))
                .contains("adaptive is not supported")
        );
        assert!(err(json!({"model": "claude-opus-4-1", "thinking": {"type": "enabled", "budget_tokens": 1000}}))
            .contains("1024"));
        assert!(err(json!({"model": "claude-opus-4-1", "thinking": {"type": "enabled", "budget_tokens": 4096}}))
            .contains("max_tokens"));
        assert!(err(json!({"output_config": {"effort": "extreme"}})).contains("effort"));
    }

    #[test]
    fn messages_rules() {
        assert!(
            err(json!({"messages": [{"role": "assistant", "content": "x"}]}))
                .contains("first message")
        );
        assert!(err(json!({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}))
            .contains("alternate"));
        assert!(err(json!({"messages": [{"role": "system", "content": "a"}]})).contains("role"));
        assert!(
            err(json!({"messages": [{"role": "user", "content": [{"type": "video"}]}]}))
                .contains("video")
        );
        let unanswered = json!({"messages": [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "x", "input": {}}]},
            {"role": "user", "content": "b"},
        ]});
        assert!(err(unanswered).contains("`tool_use` ids were found without `tool_result`"));
        let answered = json!({"messages": [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "x", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "42"}]},
        ]});
        let r = validate(&body(answered)).unwrap();
        assert_eq!(r.tool_results, vec!["42".to_owned()]);
    }

    #[test]
    fn tools_rules() {
        let dotted = json!({"tools": [{"name": "fs.read", "input_schema": {"type": "object"}}]});
        assert!(err(dotted).contains("pattern"));
        let no_schema = json!({"tools": [{"name": "read"}]});
        assert!(err(no_schema).contains("input_schema"));
        let server = json!({"tools": [{"type": "web_search_20250305", "name": "web_search"}]});
        assert!(validate(&body(server)).is_ok());
    }
}
