//! Tools an agent may call: its `skills`, offered to the model as function definitions.
//!
//! This build has one built-in tool, `echo` (it returns its `text` argument): small, but a
//! real round trip through the model's tool-calling protocol, which is what the providers
//! need tested. The agent tool loop of a later issue adds the useful ones here.

use serde_json::{Value, json};

use pincer_providers::{ToolCall, ToolSpec};

/// The tools for an agent with `skills` (unknown skills are left out).
pub fn specs(skills: &[String]) -> Vec<ToolSpec> {
    skills.iter().filter_map(|s| spec(s)).collect()
}

fn spec(name: &str) -> Option<ToolSpec> {
    match name {
        "echo" => Some(ToolSpec {
            name: "echo".into(),
            description: "Repeats the given text back.".into(),
            parameters: json!({
                "type": "object",
                "properties": { "text": { "type": "string", "description": "What to repeat." } },
                "required": ["text"],
                "additionalProperties": false,
            }),
        }),
        _ => None,
    }
}

/// Runs `call` and returns its output (errors are outputs too: the model reads them).
pub async fn run(call: &ToolCall, skills: &[String]) -> String {
    if !skills.iter().any(|s| s == &call.name) || spec(&call.name).is_none() {
        return format!("error: no tool named `{}` is available", call.name);
    }
    let args: Value = match serde_json::from_str(&call.arguments) {
        Ok(args) => args,
        Err(e) => return format!("error: arguments are not JSON: {e}"),
    };
    match call.name.as_str() {
        "echo" => match args.get("text").and_then(Value::as_str) {
            Some(text) => text.to_string(),
            None => "error: `text` (a string) is required".into(),
        },
        other => format!("error: no tool named `{other}` is available"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, arguments: &str) -> ToolCall {
        ToolCall {
            call_id: "c".into(),
            name: name.into(),
            arguments: arguments.into(),
        }
    }

    #[tokio::test]
    async fn echo_and_its_errors() {
        let skills = vec!["echo".to_string(), "nonesuch".to_string()];
        assert_eq!(specs(&skills).len(), 1);
        assert_eq!(run(&call("echo", r#"{"text":"hi"}"#), &skills).await, "hi");
        assert!(
            run(&call("echo", "{"), &skills)
                .await
                .starts_with("error: arguments")
        );
        assert!(run(&call("echo", "{}"), &skills).await.contains("`text`"));
        assert!(run(&call("echo", "{}"), &[]).await.contains("no tool"));
    }
}
