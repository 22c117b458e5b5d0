//! `[agents.<id>]` (and the seed's `[agent]` shorthand): model, prompt, skills, thinking.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use super::secret::SecretValue;

/// One agent.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AgentConfig {
    /// Marks the default agent (at most one). Without it, an agent named `default` is the
    /// default, and its settings are inherited by every other agent.
    #[serde(default)]
    pub default: bool,
    /// The model: a table, or a string such as `"claude-opus-4-6-adaptive"`,
    /// `"anthropic/claude-4.6-sonnet"` or `"echo"`.
    pub model: Option<ModelConfig>,
    /// The system prompt.
    pub system_prompt: Option<String>,
    /// Skills (tools) the agent may use: added to its `tools.profile`'s set, as
    /// `tools.allow` is.
    #[serde(default)]
    pub skills: Vec<String>,
    /// `[agents.<id>.tools]`: profile, allow, deny.
    #[serde(default)]
    pub tools: crate::tools::AgentTools,
    /// The seed's adaptive-thinking block: turns adaptive mode on and bounds tool rounds.
    pub adaptive_thinking: Option<AdaptiveThinking>,
    /// Show the model's thinking to chat users (quoted, before the answer). Off by
    /// default: thinking is kept in the transcript only.
    #[serde(default)]
    pub show_thinking: bool,
    /// How long a whole turn may take (every model of the chain, every tool round) before
    /// the user gets an error reply naming the model and the timeout. Default 10 min.
    #[serde(
        default = "ten_minutes",
        deserialize_with = "crate::duration::seconds::deserialize"
    )]
    pub turn_timeout: std::time::Duration,
    /// `[agents.<id>.context]`: how much history a turn carries and when it is
    /// summarized; [`AgentConfig::context`] resolves it against the model's window.
    #[serde(default)]
    pub context: crate::context::ContextConfig,
}

fn ten_minutes() -> std::time::Duration {
    std::time::Duration::from_secs(600)
}

/// `[agents.<id>.model]`, or its string form.
#[derive(Debug, Clone, Default)]
pub struct ModelConfig {
    /// `echo`, `openai` or `anthropic`; inferred from the name when unset.
    pub provider: Option<String>,
    /// The model name at the provider.
    pub name: Option<String>,
    /// `[agents.<id>.model.thinking]`.
    pub thinking: Option<ThinkingConfig>,
    /// Models tried in order when this one is exhausted, as `provider/name`.
    pub fallbacks: Vec<String>,
    /// The agent's own API key at its provider (plaintext or a ref), used instead of the
    /// provider's keys for this agent's calls; only this agent's handle can read it.
    pub api_key: Option<SecretValue>,
    /// The model's window in tokens (input and reply together), at least 1,024. Default:
    /// the known one ([`crate::models::known_window`]), else
    /// [`crate::models::DEFAULT_WINDOW`]'s.
    pub context_window: Option<u32>,
    /// The longest reply in tokens, kept free of the window. Default: the known one, else
    /// [`crate::models::DEFAULT_WINDOW`]'s.
    pub max_output_tokens: Option<u32>,
}

/// `[agents.<id>.model.thinking]`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ThinkingConfig {
    /// `adaptive` (the default for Claude 4.6), `low` or `high`.
    pub mode: ThinkingMode,
}

/// How much a model reasons before it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ThinkingMode {
    /// The model decides the depth.
    Adaptive,
    /// Minimal reasoning.
    Low,
    /// Maximum reasoning.
    High,
}

/// The seed's `adaptiveThinking` block.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AdaptiveThinking {
    /// Adaptive mode on or off.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Fewest tool rounds per turn.
    #[serde(default = "one")]
    pub min_steps: u32,
    /// Most tool rounds per turn.
    #[serde(default = "fifteen")]
    pub max_steps: u32,
    /// Let the model scale its depth.
    #[serde(default = "yes")]
    pub auto_scale: bool,
}

const fn yes() -> bool {
    true
}
const fn one() -> u32 {
    1
}
const fn fifteen() -> u32 {
    15
}

impl AgentConfig {
    /// The agent's model, then its fallbacks, as `(provider, model)`.
    pub fn model_chain(&self) -> Vec<(String, String)> {
        let primary = self.model.clone().unwrap_or_default();
        let fallbacks = primary.fallbacks.iter().map(|f| ModelConfig::from_text(f));
        std::iter::once(primary.clone())
            .chain(fallbacks)
            .map(|m| m.resolved())
            .collect()
    }
}

impl ModelConfig {
    /// Parses the string form: `provider/name`, or a bare name whose provider is inferred.
    pub fn from_text(text: &str) -> Self {
        let (provider, name) = match text.split_once('/') {
            Some((p, n)) => (Some(p.to_string()), n.to_string()),
            None => (None, text.to_string()),
        };
        Self {
            provider,
            name: Some(name),
            ..Self::default()
        }
    }

    /// `(provider, model name)` as a call uses them: the provider written or inferred
    /// (echo when neither), the name written or the provider's own.
    pub fn resolved(&self) -> (String, String) {
        let provider = self.provider_name().unwrap_or_else(|| "echo".to_string());
        let name = self.name.clone().unwrap_or_else(|| provider.clone());
        (provider, name)
    }

    /// The provider, as written or inferred from the model name.
    pub fn provider_name(&self) -> Option<String> {
        self.provider.clone().or_else(|| {
            self.name
                .as_deref()
                .and_then(infer_provider)
                .map(str::to_string)
        })
    }
}

/// The provider a bare model name belongs to.
pub fn infer_provider(model: &str) -> Option<&'static str> {
    let m = model.to_ascii_lowercase();
    if m == "echo" {
        Some("echo")
    } else if m.starts_with("claude") {
        Some("anthropic")
    } else if m.starts_with("gpt")
        || m.starts_with('o') && m[1..].starts_with(|c: char| c.is_ascii_digit())
    {
        Some("openai")
    } else {
        None
    }
}

impl<'de> Deserialize<'de> for ModelConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        struct Table {
            provider: Option<String>,
            name: Option<String>,
            thinking: Option<ThinkingConfig>,
            #[serde(default)]
            fallbacks: Vec<String>,
            api_key: Option<SecretValue>,
            context_window: Option<u32>,
            max_output_tokens: Option<u32>,
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ModelConfig;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a model name such as \"anthropic/claude-4.6-sonnet\" or a table { provider, name, thinking, fallbacks, apiKey, contextWindow, maxOutputTokens }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ModelConfig, E> {
                Ok(ModelConfig::from_text(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ModelConfig, A::Error> {
                let t = Table::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(ModelConfig {
                    provider: t.provider,
                    name: t.name,
                    thinking: t.thinking,
                    fallbacks: t.fallbacks,
                    api_key: t.api_key,
                    context_window: t.context_window,
                    max_output_tokens: t.max_output_tokens,
                })
            }
        }
        deserializer.deserialize_any(V)
    }
}
