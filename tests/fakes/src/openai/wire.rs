//! Reading requests: headers, the API key, the default reply derived from `input`, token
//! splitting and rough usage counts.

use std::collections::BTreeMap;

use serde_json::Value;

use super::Knobs;
use super::errors::ApiError;

/// The key from `Authorization: Bearer KEY`, checked against the knobs. Rate-limited keys
/// authenticate (they are real keys that ran out of budget).
pub(super) fn authenticate(
    knobs: &Knobs,
    headers: &BTreeMap<String, String>,
) -> Result<String, ApiError> {
    let key = headers.get("authorization").and_then(|v| {
        let (scheme, key) = v.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
    });
    match key {
        Some(k)
            if knobs
                .valid_keys
                .iter()
                .chain(&knobs.rate_limited_keys)
                .any(|v| v == k) =>
        {
            Ok(k.to_owned())
        }
        other => Err(ApiError::invalid_api_key(other)),
    }
}

/// Whether the request only prepares the connection (`generate: false`).
pub(super) fn is_warmup(body: &Value) -> bool {
    body.get("generate").and_then(Value::as_bool) == Some(false)
}

/// The reply when no script says otherwise: echo the last user message, or the tool output
/// when the request is answering a function call.
pub(super) fn default_reply(body: &Value) -> String {
    match body.get("input") {
        Some(Value::String(text)) => format!("openai: {text}"),
        Some(Value::Array(items)) => {
            if let Some(last) = items.last()
                && last.get("type").and_then(Value::as_str) == Some("function_call_output")
            {
                return format!("tool said: {}", content_text(last.get("output")));
            }
            let user = items
                .iter()
                .rev()
                .find(|item| item.get("role").and_then(Value::as_str) == Some("user"));
            let text = user.map(|u| content_text(u.get("content")));
            format!("openai: {}", text.unwrap_or_default())
        }
        _ => "openai: ".to_owned(),
    }
}

/// Text of a message `content` or tool `output`: a string, or the `text` of each part.
fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Splits text into "tokens": each word with the whitespace after it, so the pieces
/// concatenate back to exactly the input.
pub(super) fn split_tokens(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut has_word = false;
    let mut after_word_space = false;
    for ch in text.chars() {
        if ch.is_whitespace() {
            after_word_space |= has_word;
        } else if after_word_space {
            tokens.push(std::mem::take(&mut current));
            after_word_space = false;
        } else {
            has_word = true;
        }
        current.push(ch);
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

/// Splits function-call arguments into about three pieces on character boundaries.
pub(super) fn split_arguments(arguments: &str) -> Vec<String> {
    let chars: Vec<char> = arguments.chars().collect();
    if chars.is_empty() {
        return Vec::new();
    }
    let size = chars.len().div_ceil(3);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

/// Words of the request's `instructions`.
pub(super) fn instruction_words(body: &Value) -> u64 {
    body.get("instructions")
        .and_then(Value::as_str)
        .map_or(0, |s| s.split_whitespace().count() as u64)
}

/// A rough input token count: words in every string of `input` and `instructions`.
pub(super) fn input_words(body: &Value) -> u64 {
    fn words(v: &Value) -> u64 {
        match v {
            Value::String(s) => s.split_whitespace().count() as u64,
            Value::Array(a) => a.iter().map(words).sum(),
            Value::Object(o) => o
                .iter()
                .filter(|(k, _)| matches!(k.as_str(), "content" | "text" | "output"))
                .map(|(_, v)| words(v))
                .sum(),
            _ => 0,
        }
    }
    let input = body.get("input").map_or(0, words);
    let instructions = body.get("instructions").map_or(0, words);
    input + instructions
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tokens_concatenate_back() {
        for text in ["openai: hello  world ", "  lead", "", "one", "a\nb\tc"] {
            assert_eq!(split_tokens(text).concat(), text);
        }
        assert_eq!(
            split_tokens("openai: hi there"),
            ["openai: ", "hi ", "there"]
        );
    }

    #[test]
    fn arguments_in_three_pieces() {
        let args = r#"{"city":"Paris"}"#;
        let pieces = split_arguments(args);
        assert_eq!(pieces.len(), 3);
        assert_eq!(pieces.concat(), args);
    }

    #[test]
    fn default_reply_reads_last_user_message_or_tool_output() {
        assert_eq!(default_reply(&json!({"input": "hi"})), "openai: hi");
        let body = json!({"input": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "answer"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "second"}]},
        ]});
        assert_eq!(default_reply(&body), "openai: second");
        let body = json!({"input": [
            {"type": "function_call_output", "call_id": "call_1", "output": "42"},
        ]});
        assert_eq!(default_reply(&body), "tool said: 42");
    }
}
