//! What a caller may ask of one model call beyond its conversation: sampling settings,
//! an output format, how tools may be chosen (the OpenAI-compatible API passes them on).
//!
//! Each provider's API has some of them and not others; [`Options::unsupported_by`] names
//! the first field a provider cannot honour, so that the caller is refused (a clear 400)
//! instead of being silently ignored.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Settings of one model call; `None` (or empty) leaves the provider's default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Options {
    /// Most tokens the reply may have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Sequences that end the reply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    /// The reply's format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// Seed for deterministic sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Which tools the model may or must call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
}

/// The format a reply must have.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Any JSON object.
    JsonObject,
    /// JSON matching a schema.
    JsonSchema {
        /// The schema's name.
        name: String,
        /// The JSON schema.
        schema: Value,
        /// Whether the schema is enforced strictly.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        strict: Option<bool>,
    },
}

/// Which tools the model may call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    /// The model decides.
    Auto,
    /// No tool.
    None,
    /// At least one tool.
    Required,
    /// This tool.
    Function(String),
}

// === impl Options ===

impl Options {
    /// The first field set here that `provider` (`openai`, `anthropic`, `echo`) has no
    /// way to honour, by its OpenAI Chat Completions name; `None` when all can be.
    ///
    /// The Responses API has no `stop` and no `seed`; the Messages API has no `seed` and
    /// no output format. The echo model repeats its input whatever is asked, so it takes
    /// every option (it is the offline model of tests and benchmarks).
    pub fn unsupported_by(&self, provider: &str) -> Option<&'static str> {
        match provider {
            "openai" if !self.stop.is_empty() => Some("stop"),
            "openai" if self.seed.is_some() => Some("seed"),
            "anthropic" if self.seed.is_some() => Some("seed"),
            "anthropic" if self.response_format.is_some() => Some("response_format"),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_provider_names_what_it_cannot_honour() {
        let stop = Options {
            stop: vec!["END".into()],
            ..Options::default()
        };
        assert_eq!(stop.unsupported_by("openai"), Some("stop"));
        assert_eq!(stop.unsupported_by("anthropic"), None);
        let format = Options {
            response_format: Some(ResponseFormat::JsonObject),
            ..Options::default()
        };
        assert_eq!(format.unsupported_by("openai"), None);
        assert_eq!(format.unsupported_by("anthropic"), Some("response_format"));
        let seed = Options {
            seed: Some(1),
            ..Options::default()
        };
        assert_eq!(seed.unsupported_by("openai"), Some("seed"));
        assert_eq!(seed.unsupported_by("echo"), None);
    }
}
