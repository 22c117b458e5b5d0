//! How much a model thinks, per model family (protocols.md, issue 4):
//!
//! | family | default | adaptive | low | high |
//! |---|---|---|---|---|
//! | Claude 4.6 and later | adaptive | `{type:adaptive}` | + `effort: low` | + `effort: high` |
//! | Claude 3.7 – 4.5 | low | budget 8,192 | budget 2,048 | budget 24,576 |
//! | OpenAI reasoning (o-series, gpt-5) | low | `effort: medium` | `effort: low` | `effort: high` |
//! | anything else | none | none | none | none |
//!
//! Newer Claude models reject `{type:"enabled"}`, older ones `{type:"adaptive"}`, so the
//! family decides the shape, never the mode alone.

use serde_json::{Value, json};

use pincer_config::ThinkingMode;

/// Model families that differ in how thinking is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Claude 4.6 or later: adaptive thinking with effort levels.
    ClaudeAdaptive,
    /// Claude 3.7 to 4.5: extended thinking with a token budget.
    ClaudeBudget,
    /// An OpenAI reasoning model: `reasoning.effort`.
    OpenAiReasoning,
    /// No thinking control.
    Plain,
}

/// The family of model `name`.
pub fn family(name: &str) -> Family {
    let name = name.to_ascii_lowercase();
    if let Some(rest) = name.strip_prefix("claude") {
        return match claude_version(rest) {
            Some(v) if v >= (4, 6) => Family::ClaudeAdaptive,
            Some(v) if v >= (3, 7) => Family::ClaudeBudget,
            _ => Family::Plain,
        };
    }
    let o_series = name.starts_with('o') && name[1..].starts_with(|c: char| c.is_ascii_digit());
    let gpt5 = name.starts_with("gpt-5") && !name.contains("-chat");
    if o_series || gpt5 {
        Family::OpenAiReasoning
    } else {
        Family::Plain
    }
}

/// `(major, minor)` from the part of a Claude model id after `claude`: `-opus-4-6`,
/// `-4.6-sonnet`, `-3-7-sonnet-latest`, `-opus-4-20250514` (a date is not a minor).
fn claude_version(rest: &str) -> Option<(u32, u32)> {
    let numbers: Vec<&str> = rest
        .split(['-', '.'])
        .filter(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        .collect();
    let major = numbers.first()?.parse().ok()?;
    let minor = numbers
        .get(1)
        .filter(|p| p.len() <= 2)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    Some((major, minor))
}

/// The model id to send, and whether the name asked for adaptive thinking: the seed
/// writes `claude-opus-4-6-adaptive`, which is `claude-opus-4-6` in adaptive mode.
pub fn model_id(name: &str) -> (String, bool) {
    match name.strip_suffix("-adaptive") {
        Some(base) if !base.is_empty() => (base.to_string(), true),
        _ => (name.to_string(), false),
    }
}

/// The mode a model runs in when the agent sets none.
pub fn default_mode(family: Family) -> Option<ThinkingMode> {
    match family {
        Family::ClaudeAdaptive => Some(ThinkingMode::Adaptive),
        Family::ClaudeBudget | Family::OpenAiReasoning => Some(ThinkingMode::Low),
        Family::Plain => None,
    }
}

/// What an Anthropic request carries for thinking.
#[derive(Debug, Clone, PartialEq)]
pub struct AnthropicThinking {
    /// The `thinking` object.
    pub thinking: Option<Value>,
    /// The `output_config` object.
    pub output_config: Option<Value>,
    /// `max_tokens` must exceed a thinking budget: the least it may be.
    pub min_max_tokens: u32,
}

/// Budgets for Claude 3.7 – 4.5 (the API needs at least 1,024).
const BUDGET_LOW: u32 = 2_048;
const BUDGET_ADAPTIVE: u32 = 8_192;
const BUDGET_HIGH: u32 = 24_576;
/// Room left for the answer above a budget.
const ANSWER_ROOM: u32 = 4_096;

/// The thinking part of an Anthropic request for `model` in `mode` (`None`: the
/// family's default).
pub fn anthropic(model: &str, mode: Option<ThinkingMode>) -> AnthropicThinking {
    let family = family(model);
    let mode = mode.or_else(|| default_mode(family));
    let none = AnthropicThinking {
        thinking: None,
        output_config: None,
        min_max_tokens: 0,
    };
    match (family, mode) {
        (Family::ClaudeAdaptive, Some(mode)) => AnthropicThinking {
            thinking: Some(json!({ "type": "adaptive" })),
            output_config: match mode {
                ThinkingMode::Adaptive => None,
                ThinkingMode::Low => Some(json!({ "effort": "low" })),
                ThinkingMode::High => Some(json!({ "effort": "high" })),
            },
            min_max_tokens: 0,
        },
        (Family::ClaudeBudget, Some(mode)) => {
            let budget = match mode {
                ThinkingMode::Low => BUDGET_LOW,
                ThinkingMode::Adaptive => BUDGET_ADAPTIVE,
                ThinkingMode::High => BUDGET_HIGH,
            };
            AnthropicThinking {
                thinking: Some(json!({ "type": "enabled", "budget_tokens": budget })),
                output_config: None,
                min_max_tokens: budget + ANSWER_ROOM,
            }
        }
        _ => none,
    }
}

/// The `reasoning` object of an OpenAI request for `model` in `mode`.
pub fn openai(model: &str, mode: Option<ThinkingMode>) -> Option<Value> {
    let family = family(model);
    if family != Family::OpenAiReasoning {
        return None;
    }
    let effort = match mode.or_else(|| default_mode(family))? {
        ThinkingMode::Low => "low",
        ThinkingMode::Adaptive => "medium",
        ThinkingMode::High => "high",
    };
    Some(json!({ "effort": effort }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families() {
        for m in [
            "claude-opus-4-6",
            "claude-4.6-sonnet",
            "claude-sonnet-4-6-20260101",
            "claude-opus-5",
        ] {
            assert_eq!(family(m), Family::ClaudeAdaptive, "{m}");
        }
        for m in [
            "claude-sonnet-4-5",
            "claude-3-7-sonnet-latest",
            "claude-opus-4-20250514",
            "claude-opus-4-1",
        ] {
            assert_eq!(family(m), Family::ClaudeBudget, "{m}");
        }
        for m in ["o3", "o4-mini", "gpt-5", "gpt-5-mini"] {
            assert_eq!(family(m), Family::OpenAiReasoning, "{m}");
        }
        for m in [
            "claude-3-5-sonnet-latest",
            "gpt-4.1",
            "gpt-5-chat-latest",
            "echo",
            "llama3",
        ] {
            assert_eq!(family(m), Family::Plain, "{m}");
        }
    }

    #[test]
    fn anthropic_payloads() {
        let adaptive = anthropic("claude-opus-4-6", None);
        assert_eq!(adaptive.thinking, Some(json!({"type": "adaptive"})));
        assert_eq!(adaptive.output_config, None);
        let low = anthropic("claude-opus-4-6", Some(ThinkingMode::Low));
        assert_eq!(low.output_config, Some(json!({"effort": "low"})));
        let old = anthropic("claude-sonnet-4-5", None);
        assert_eq!(
            old.thinking,
            Some(json!({"type": "enabled", "budget_tokens": 2048}))
        );
        assert!(old.min_max_tokens > 2048);
        let old_high = anthropic("claude-sonnet-4-5", Some(ThinkingMode::High));
        assert_eq!(
            old_high.thinking,
            Some(json!({"type": "enabled", "budget_tokens": 24576}))
        );
        assert_eq!(
            anthropic("claude-3-5-haiku", Some(ThinkingMode::High)).thinking,
            None
        );
    }

    #[test]
    fn openai_payloads_and_the_seed_model_name() {
        assert_eq!(openai("gpt-5", None), Some(json!({"effort": "low"})));
        assert_eq!(
            openai("o3", Some(ThinkingMode::Adaptive)),
            Some(json!({"effort": "medium"}))
        );
        assert_eq!(openai("gpt-4.1", Some(ThinkingMode::High)), None);
        assert_eq!(
            model_id("claude-opus-4-6-adaptive"),
            ("claude-opus-4-6".into(), true)
        );
        assert_eq!(model_id("gpt-5"), ("gpt-5".into(), false));
    }
}
