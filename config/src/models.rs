//! What is known of models' windows: how many tokens a request may hold and how many of
//! them a reply may take, by provider and model name.
//!
//! A name is matched by its longest known prefix (`gpt-4o-mini-2024-07-18` is a
//! `gpt-4o`, `claude-opus-4-6-adaptive` a `claude-opus-4-6`), case-insensitively, so dated
//! snapshots and the seed's `-adaptive` names need no rows of their own. A model the
//! table does not know has no window here; its agent then uses [`DEFAULT_WINDOW`] unless
//! `agents.<id>.model.contextWindow` says otherwise.
//!
//! Checked in 2026-12 against Anthropic's "What's new in Claude 4.6" page
//! (platform.claude.com: Opus 4.6 has 200K tokens, 1M in beta, and 128K of output) and
//! copies of its models overview; OpenAI's model pages as mirrored by the Vercel AI
//! Gateway, OpenRouter and contextwindows.dev (gpt-5 400,000 / 128,000; gpt-4.1
//! 1,047,576 / 32,768; gpt-4o 128,000 / 16,384; o3, o4-mini 200,000 / 100,000;
//! gpt-3.5-turbo 16,385). OpenAI's own pages were not reachable from here.
//!
//! Where a model offers more than its plain window (Claude's 1M-token beta, gpt-5.4's
//! 1,050,000 tokens billed double past 272K of input), the table keeps the plain one:
//! a budget that is too small costs an earlier summary, one that is too large a refused
//! request or a doubled bill. `contextWindow` opts in to more.

/// A model's window, in tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Everything one request may hold: input and reply together.
    pub context: u32,
    /// The longest reply the model writes.
    pub output: u32,
}

/// The window of a model the table does not know. 128K tokens is what most chat models
/// since 2024 accept (gpt-4o, gpt-5-chat, Llama 3.1, Mistral Large), so a budget taken
/// from it fits them; the smaller ones (gpt-4, gpt-3.5-turbo) are in the table. 4,096
/// tokens is the longest reply the older models write (gpt-4-turbo, Claude 3): every
/// model in use writes at least that.
pub const DEFAULT_WINDOW: Window = Window {
    context: 128_000,
    output: 4_096,
};

/// The echo model's window: it has none of its own, and a fixed one gives echo agents a
/// budget (and compaction something to do in tests) like any other agent.
pub const ECHO_WINDOW: Window = Window {
    context: 128_000,
    output: 4_096,
};

/// The fewest tokens a window may leave for input beside its reply, and the smallest
/// `contextWindow` or `budget`: room for a system prompt and one short exchange.
pub const MIN_CONTEXT_TOKENS: u32 = 1_024;

const fn w(context: u32, output: u32) -> Window {
    Window { context, output }
}

/// OpenAI models by name prefix.
const OPENAI: &[(&str, Window)] = &[
    // gpt-5, 5.1, 5.2 and later: 400K, 128K out (272K of input). gpt-5.4 and later
    // accept 1,050,000 at a higher price past 272K: see the module docs.
    ("gpt-5", w(400_000, 128_000)),
    // The chat snapshots behind ChatGPT are smaller.
    ("gpt-5-chat", w(128_000, 16_384)),
    ("gpt-5.1-chat", w(128_000, 16_384)),
    ("gpt-4.1", w(1_047_576, 32_768)),
    ("gpt-4o", w(128_000, 16_384)),
    // The first gpt-4o snapshot wrote at most 4,096 tokens.
    ("gpt-4o-2024-05-13", w(128_000, 4_096)),
    ("gpt-4-turbo", w(128_000, 4_096)),
    // The original gpt-4: its 8,192 tokens are shared by input and reply, so half is
    // kept for the reply (the `-preview` turbo snapshots land here too: smaller is safe).
    ("gpt-4", w(8_192, 4_096)),
    ("gpt-3.5-turbo", w(16_385, 4_096)),
    ("o1", w(200_000, 100_000)),
    ("o1-mini", w(128_000, 65_536)),
    ("o1-preview", w(128_000, 32_768)),
    ("o3", w(200_000, 100_000)),
    ("o4-mini", w(200_000, 100_000)),
];

/// Anthropic models by name prefix. Every Claude since 3 has 200K tokens (Sonnet 4 and
/// later, Opus 4.6 and later: 1M in beta, or at a long-context price).
const ANTHROPIC: &[(&str, Window)] = &[
    // Opus 4 and 4.1.
    ("claude-opus-4", w(200_000, 32_000)),
    ("claude-opus-4-5", w(200_000, 64_000)),
    ("claude-opus-4-6", w(200_000, 128_000)),
    ("claude-opus-4-7", w(200_000, 128_000)),
    ("claude-opus-4-8", w(200_000, 128_000)),
    ("claude-sonnet-4", w(200_000, 64_000)),
    // Haiku 4.5 (there was no Haiku 4.0).
    ("claude-haiku-4", w(200_000, 64_000)),
    // The seed's version-first names (`claude-4.6-sonnet`): any Claude 4.
    ("claude-4", w(200_000, 64_000)),
    ("claude-3-7-sonnet", w(200_000, 64_000)),
    ("claude-3-5-", w(200_000, 8_192)),
    ("claude-3-", w(200_000, 4_096)),
];

/// The window of `model` at `provider` (`openai`, `anthropic`, `echo`), by the longest
/// known prefix of the name; `None` when the table does not know it. Every echo model has
/// [`ECHO_WINDOW`].
pub fn known_window(provider: &str, model: &str) -> Option<Window> {
    let table = match provider {
        "echo" => return Some(ECHO_WINDOW),
        "openai" => OPENAI,
        "anthropic" => ANTHROPIC,
        _ => return None,
    };
    let name = model.to_ascii_lowercase();
    table
        .iter()
        .filter(|(prefix, _)| name.starts_with(prefix))
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|(_, window)| *window)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_families_by_longest_prefix() {
        let cases = [
            ("gpt-5", w(400_000, 128_000)),
            ("gpt-5-mini-2025-08-07", w(400_000, 128_000)),
            ("gpt-5.2", w(400_000, 128_000)),
            ("gpt-5-chat-latest", w(128_000, 16_384)),
            ("gpt-4.1-nano", w(1_047_576, 32_768)),
            ("gpt-4o-mini", w(128_000, 16_384)),
            ("GPT-4o", w(128_000, 16_384)),
            ("gpt-4o-2024-05-13", w(128_000, 4_096)),
            ("gpt-4-turbo-2024-04-09", w(128_000, 4_096)),
            ("gpt-4", w(8_192, 4_096)),
            ("gpt-3.5-turbo-0125", w(16_385, 4_096)),
            ("o1", w(200_000, 100_000)),
            ("o1-mini", w(128_000, 65_536)),
            ("o3-mini", w(200_000, 100_000)),
            ("o4-mini", w(200_000, 100_000)),
        ];
        for (model, window) in cases {
            assert_eq!(known_window("openai", model), Some(window), "{model}");
        }
    }

    #[test]
    fn anthropic_families_by_longest_prefix() {
        let cases = [
            ("claude-opus-4-20250514", 32_000),
            ("claude-opus-4-1", 32_000),
            ("claude-opus-4-5-20251101", 64_000),
            ("claude-opus-4-6-adaptive", 128_000),
            ("claude-sonnet-4-6", 64_000),
            ("claude-haiku-4-5-20251001", 64_000),
            ("claude-4.6-sonnet", 64_000),
            ("claude-3-7-sonnet-latest", 64_000),
            ("claude-3-5-haiku-20241022", 8_192),
            ("claude-3-opus-20240229", 4_096),
        ];
        for (model, output) in cases {
            assert_eq!(
                known_window("anthropic", model),
                Some(w(200_000, output)),
                "{model}"
            );
        }
    }

    #[test]
    fn echo_has_a_fixed_window_and_the_unknown_none() {
        assert_eq!(known_window("echo", "echo"), Some(ECHO_WINDOW));
        assert_eq!(known_window("echo", "anything"), Some(ECHO_WINDOW));
        assert_eq!(known_window("openai", "davinci-002"), None);
        assert_eq!(known_window("anthropic", "claude-2.1"), None);
        // A name is looked up at its own provider only.
        assert_eq!(known_window("openai", "claude-3-opus"), None);
        assert_eq!(known_window("mistral", "gpt-4o"), None);
    }

    #[test]
    fn every_row_leaves_room_for_input() {
        for (prefix, window) in OPENAI.iter().chain(ANTHROPIC) {
            assert!(
                window.context >= window.output + MIN_CONTEXT_TOKENS,
                "{prefix}"
            );
        }
    }
}
