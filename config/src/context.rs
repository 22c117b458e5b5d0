//! `[agents.<id>.context]`: how much of a conversation a turn carries, and when older
//! turns are summarized; [`AgentConfig::context`] resolves it with the agent's model
//! into [`ContextLimits`], in tokens, for the session.
//!
//! A turn holds the system prompt, the session's summary (if any) and as many recent
//! turns as fit in `budget`. Once the history passes `compactAt` of the budget, the
//! older turns become one summary, written by `summaryModel` (the agent's own model
//! when unset), and at least `keepRecent` turns stay as they were.

use serde::Deserialize;

use crate::agents::{AgentConfig, ModelConfig};
use crate::models::{DEFAULT_WINDOW, known_window};

/// `[agents.<id>.context]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContextConfig {
    /// Tokens of prompt, summary and history a turn may send, at least 1,024 and at most
    /// the model's window. Default [`BUDGET_PERCENT`] % of what the window leaves beside
    /// the reply.
    pub budget: Option<u32>,
    /// The share of `budget` the history may fill before older turns are summarized,
    /// in (0, 1]. Default [`DEFAULT_COMPACT_AT`].
    #[serde(default = "default_compact_at")]
    pub compact_at: f64,
    /// The model that writes summaries, as `provider/name` (or a name whose provider
    /// can be told, as in `fallbacks`). Default: the agent's own model.
    pub summary_model: Option<String>,
    /// The fewest recent turns a compaction keeps word for word. Default
    /// [`DEFAULT_KEEP_RECENT`]; 0 keeps only the summary.
    #[serde(default = "default_keep_recent")]
    pub keep_recent: u32,
}

/// An agent's context, resolved: every number in tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextLimits {
    /// The model's window: `model.contextWindow`, else the known one, else
    /// [`DEFAULT_WINDOW`]'s.
    pub window: u32,
    /// The longest reply, kept free of the window: `model.maxOutputTokens`, else the
    /// known one, else [`DEFAULT_WINDOW`]'s.
    pub output: u32,
    /// What a turn may send: `context.budget`, else [`BUDGET_PERCENT`] % of
    /// `window - output`.
    pub budget: u32,
    /// The history's size that starts a compaction: `compactAt × budget`, rounded (so
    /// that 0.57 × 100 is 57, not the 56.99… floating point makes of it).
    pub compact_at: u32,
    /// `(provider, name)` of the model that writes summaries: `context.summaryModel`,
    /// else the agent's own model.
    pub summary_model: (String, String),
    /// The fewest recent turns a compaction keeps word for word.
    pub keep_recent: u32,
}

/// The default budget's share of what the window leaves beside the reply, in percent.
/// Token counts before a call are estimates, and a turn's tool rounds add calls and
/// results the history does not hold yet; a quarter is kept for both.
pub const BUDGET_PERCENT: u32 = 75;

/// The default `compactAt`: summarizing at 80 % of the budget leaves the turn that
/// crosses it room to run, and makes a compaction rare rather than every turn.
pub const DEFAULT_COMPACT_AT: f64 = 0.8;

/// The default `keepRecent`: a compaction keeps the last four turns whole, so a reply
/// can still quote what was just said and "that" still refers to something; summaries
/// lose wording, which the most recent turns need most.
pub const DEFAULT_KEEP_RECENT: u32 = 4;

fn default_compact_at() -> f64 {
    DEFAULT_COMPACT_AT
}

fn default_keep_recent() -> u32 {
    DEFAULT_KEEP_RECENT
}

// === impl ContextConfig ===

impl Default for ContextConfig {
    fn default() -> Self {
        Self {
            budget: None,
            compact_at: DEFAULT_COMPACT_AT,
            summary_model: None,
            keep_recent: DEFAULT_KEEP_RECENT,
        }
    }
}

/// [`BUDGET_PERCENT`] % of what `window` leaves beside `output`.
pub(crate) fn default_budget(window: u32, output: u32) -> u32 {
    let room = u64::from(window.saturating_sub(output));
    // At most `window`, so it fits in a u32.
    u32::try_from(room * u64::from(BUDGET_PERCENT) / 100).unwrap_or(window)
}

// === impl AgentConfig ===

impl AgentConfig {
    /// The agent's context limits: its primary model's window (the agent's overrides,
    /// else [`known_window`], else [`DEFAULT_WINDOW`]) and its `[context]` section. A
    /// config that passed the load's checks gives `budget ≤ window` and
    /// `output + 1,024 ≤ window`; this never fails either way.
    pub fn context(&self) -> ContextLimits {
        let model = self.model.clone().unwrap_or_default();
        let (provider, name) = model.resolved();
        let known = known_window(&provider, &name).unwrap_or(DEFAULT_WINDOW);
        let window = model.context_window.unwrap_or(known.context);
        let output = model.max_output_tokens.unwrap_or(known.output);
        let budget = self
            .context
            .budget
            .unwrap_or_else(|| default_budget(window, output));
        // `as` saturates (NaN gives 0); a compactAt outside (0, 1] is refused at load.
        let compact_at = (f64::from(budget) * self.context.compact_at).round() as u32;
        let summary_model = match &self.context.summary_model {
            Some(text) => ModelConfig::from_text(text).resolved(),
            None => (provider, name),
        };
        ContextLimits {
            window,
            output,
            budget,
            compact_at,
            summary_model,
            keep_recent: self.context.keep_recent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::ECHO_WINDOW;

    fn agent(model: &str) -> AgentConfig {
        AgentConfig {
            model: Some(ModelConfig::from_text(model)),
            ..AgentConfig::default()
        }
    }

    #[test]
    fn a_known_model_gets_its_window_and_three_quarters_of_the_rest() {
        let limits = agent("openai/gpt-4.1").context();
        assert_eq!(limits.window, 1_047_576);
        assert_eq!(limits.output, 32_768);
        // (1,047,576 - 32,768) × 0.75
        assert_eq!(limits.budget, 761_106);
        assert_eq!(limits.compact_at, 608_885);
        assert_eq!(
            limits.summary_model,
            ("openai".to_string(), "gpt-4.1".to_string())
        );
        assert_eq!(limits.keep_recent, DEFAULT_KEEP_RECENT);

        // The provider inferred from a bare name.
        let limits = agent("claude-sonnet-4-5").context();
        assert_eq!((limits.window, limits.output), (200_000, 64_000));
        assert_eq!(limits.budget, 102_000);
        assert_eq!(limits.compact_at, 81_600);
    }

    #[test]
    fn an_unknown_model_gets_the_default_window() {
        let limits = agent("openai/davinci-002").context();
        assert_eq!(limits.window, DEFAULT_WINDOW.context);
        assert_eq!(limits.output, DEFAULT_WINDOW.output);
        // (128,000 - 4,096) × 0.75
        assert_eq!(limits.budget, 92_928);
    }

    #[test]
    fn echo_and_no_model_at_all_have_the_echo_window() {
        for agent in [agent("echo"), AgentConfig::default()] {
            let limits = agent.context();
            assert_eq!((limits.window, limits.output), (128_000, 4_096));
            assert_eq!(limits.window, ECHO_WINDOW.context);
            assert_eq!(limits.budget, 92_928);
            assert_eq!(
                limits.summary_model,
                ("echo".to_string(), "echo".to_string())
            );
        }
    }

    #[test]
    fn overrides_win_over_the_table() {
        let mut a = agent("openai/gpt-5");
        if let Some(model) = a.model.as_mut() {
            model.context_window = Some(272_000);
            model.max_output_tokens = Some(32_000);
        }
        let limits = a.context();
        assert_eq!((limits.window, limits.output), (272_000, 32_000));
        assert_eq!(limits.budget, 180_000);

        a.context = ContextConfig {
            budget: Some(50_000),
            compact_at: 0.5,
            summary_model: Some("openai/gpt-4o-mini".to_string()),
            keep_recent: 0,
        };
        let limits = a.context();
        assert_eq!(limits.budget, 50_000);
        assert_eq!(limits.compact_at, 25_000);
        assert_eq!(
            limits.summary_model,
            ("openai".to_string(), "gpt-4o-mini".to_string())
        );
        assert_eq!(limits.keep_recent, 0);

        a.context.budget = Some(100);
        a.context.compact_at = 0.57;
        assert_eq!(a.context().compact_at, 57);
    }

    #[test]
    fn only_the_window_override_keeps_the_known_output() {
        let mut a = agent("anthropic/claude-opus-4-1");
        if let Some(model) = a.model.as_mut() {
            model.context_window = Some(100_000);
        }
        let limits = a.context();
        assert_eq!((limits.window, limits.output), (100_000, 32_000));
        assert_eq!(limits.budget, 51_000);
    }

    #[test]
    fn a_window_smaller_than_its_reply_gives_no_budget_and_no_panic() {
        let mut a = agent("openai/gpt-5");
        if let Some(model) = a.model.as_mut() {
            model.context_window = Some(2_000);
        }
        assert_eq!(a.context().budget, 0);
        assert_eq!(default_budget(u32::MAX, 0), 3_221_225_471);
    }
}
