//! `echo`: returns its `text` argument. Small, but a real round trip through the model's
//! tool-calling protocol, which is what the providers' tests need.

use serde_json::{Value, json};

use super::{Context, Risk, Running, Tool};

/// The tool.
pub(super) struct Echo;

impl Tool for Echo {
    fn name(&self) -> &'static str {
        "echo"
    }

    fn description(&self) -> &'static str {
        "Repeats the given text back."
    }

    fn schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": { "text": { "type": "string", "description": "What to repeat." } },
            "required": ["text"],
            "additionalProperties": false,
        })
    }

    fn risk(&self) -> Risk {
        Risk::Pure
    }

    fn status(&self) -> &'static str {
        "Repeating…"
    }

    fn run(&self, args: Value, _ctx: Context) -> Running {
        let text = args.get("text").and_then(Value::as_str).map(str::to_string);
        Box::pin(async move { text.ok_or_else(|| "`text` (a string) is required".to_string()) })
    }
}
