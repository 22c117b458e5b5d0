//! Context windows and `[agents.<id>.context]` as loaded: keys read, typos named, every
//! problem listed with its key and line, windows not inherited across models.

use super::*;

fn problems(text: &str) -> Vec<String> {
    match toml(text) {
        Err(ConfigError::Invalid(problems)) => problems,
        other => panic!("{text}: {other:?}"),
    }
}

fn warnings(text: &str) -> Vec<String> {
    let dir = tempdir();
    let path = dir.join("pincer.toml");
    std::fs::write(&path, text).expect("write");
    load_file(&path, &[]).expect("loads").warnings
}

#[test]
fn window_and_context_keys_are_read_and_resolved() {
    let c = toml(
        "[agents.main.model]\nprovider = \"openai\"\nname = \"gpt-5\"\ncontextWindow = 272000\nmaxOutputTokens = 32000\n\n[agents.main.context]\nbudget = 100000\ncompactAt = 0.5\nsummaryModel = \"openai/gpt-4o-mini\"\nkeepRecent = 6\n",
    )
    .expect("parses");
    let limits = c.agents["main"].context();
    assert_eq!(
        limits,
        ContextLimits {
            window: 272_000,
            output: 32_000,
            budget: 100_000,
            compact_at: 50_000,
            summary_model: ("openai".to_string(), "gpt-4o-mini".to_string()),
            keep_recent: 6,
        }
    );
    // `compactAt = 1` is an integer in TOML; it is still a share.
    let c = toml("[agents.main.context]\ncompactAt = 1\n").expect("parses");
    assert_eq!(c.agents["main"].context().compact_at, 92_928);
}

#[test]
fn without_a_context_section_the_defaults_apply() {
    let loaded = load(&Sources::default()).expect("defaults load");
    let main = &loaded.config.agents[FALLBACK_AGENT];
    assert_eq!(main.context, ContextConfig::default());
    let limits = main.context();
    assert_eq!((limits.window, limits.output), (128_000, 4_096));
    assert_eq!(limits.budget, 92_928);
    assert_eq!(limits.keep_recent, DEFAULT_KEEP_RECENT);
    assert_eq!(
        limits.summary_model,
        ("echo".to_string(), "echo".to_string())
    );

    let c = toml("[agents.main]\nmodel = \"anthropic/claude-opus-4-6\"\n").expect("parses");
    let limits = c.agents["main"].context();
    // (200,000 - 128,000) × 0.75: Opus 4.6 may write 128K tokens.
    assert_eq!(limits.budget, 54_000);
}

#[test]
fn typos_are_named_with_the_key_meant() {
    let err = toml("[agents.main.context]\ncompactat = 0.5\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown config key `agents.main.context.compactat` at pincer.toml:2; did you mean `compactAt`?"
    );
    let err = toml("[agents.main.model]\nname = \"gpt-5\"\ncontextWindw = 1000\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown config key `agents.main.model.contextWindw` at pincer.toml:3; did you mean `contextWindow`?"
    );
    let err = toml("[agents.main.model]\nname = \"gpt-5\"\nmaxOutputTokens = -5\n").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("config key `agents.main.model.maxOutputTokens` at pincer.toml:3: "),
        "{err}"
    );
}

#[test]
fn out_of_range_values_are_all_listed_with_key_and_line() {
    let found = problems(
        "[agents.main.model]\nname = \"gpt-5\"\ncontextWindow = 512\nmaxOutputTokens = 0\n\n[agents.main.context]\nbudget = 100\ncompactAt = 1.5\nsummaryModel = \"antropic/claude-3-5-haiku\"\n",
    );
    assert_eq!(
        found,
        vec![
            "agents.main.model.contextWindow = 512 (at pincer.toml:3): at least 1,024 tokens",
            "agents.main.model.maxOutputTokens = 0 (at pincer.toml:4): at least 1 token",
            "agents.main.context.budget = 100 (at pincer.toml:7): at least 1,024 tokens",
            "agents.main.context.compactAt = 1.5 (at pincer.toml:8): a share of the budget, more than 0 and at most 1 (0.8 summarizes at 80 %)",
            "agents.main.context.summaryModel = \"antropic/claude-3-5-haiku\" (at pincer.toml:9): `antropic` is not a provider (echo, openai, anthropic); did you mean `anthropic`?",
        ]
    );
    let found = problems("[agents.main.context]\ncompactAt = 0\nsummaryModel = \"llama3\"\n");
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[1].contains("cannot tell the provider of model `llama3`"));
}

#[test]
fn a_window_without_room_beside_its_reply_names_both_keys() {
    let found = problems(
        "[agents.main.model]\nname = \"gpt-5\"\ncontextWindow = 100000\nmaxOutputTokens = 99500\n",
    );
    assert_eq!(
        found,
        vec![
            "agents.main.model.contextWindow = 100000 (at pincer.toml:3) leaves less than 1,024 tokens of input beside agents.main.model.maxOutputTokens = 99500 (at pincer.toml:4); raise agents.main.model.contextWindow or lower agents.main.model.maxOutputTokens",
        ]
    );
    // The reply the table knows counts too: gpt-5 writes up to 128,000 tokens.
    let found = problems("[agents.main.model]\nname = \"gpt-5\"\ncontextWindow = 100000\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("agents.main.model.contextWindow = 100000 (at pincer.toml:3) leaves less than 1,024 tokens of input beside the known maxOutputTokens of `gpt-5` (128,000)"),
        "{found:?}"
    );
}

#[test]
fn a_budget_larger_than_the_window_is_an_error_and_one_without_room_a_warning() {
    let found = problems(
        "[agents.main]\nmodel = \"openai/gpt-4o\"\n\n[agents.main.context]\nbudget = 200000\n",
    );
    assert_eq!(
        found,
        vec![
            "agents.main.context.budget = 200000 (at pincer.toml:5): larger than the known contextWindow of `gpt-4o` (128,000); at most 111,616 leaves room for the reply, unset it is 83,712",
        ]
    );
    let found = warnings(
        "[agents.main]\nmodel = \"openai/gpt-4o\"\n\n[agents.main.context]\nbudget = 120000\n",
    );
    assert!(
        found.iter().any(|w| w.starts_with("agents.main.context.budget = 120000 (at ")
            && w.ends_with("and the known maxOutputTokens of `gpt-4o` (16,384) add up to more than the known contextWindow of `gpt-4o` (128,000): a turn that fills the budget may be refused; at most 111,616 leaves room for the reply")),
        "{found:?}"
    );
}

#[test]
fn a_window_stays_with_its_model_when_agents_inherit() {
    let c = toml(
        "[agents.default.model]\nname = \"gpt-4.1\"\ncontextWindow = 500000\n\n[agents.default.context]\nbudget = 300000\n\n[agents.same]\nsystemPrompt = \"x\"\n\n[agents.claude]\nmodel = \"anthropic/claude-sonnet-4-5\"\n\n[agents.claude.context]\nbudget = 100000\n\n[agents.own.model]\nname = \"claude-haiku-4-5\"\ncontextWindow = 150000\n\n[agents.own.context]\nbudget = 80000\n",
    )
    .expect("parses");
    assert_eq!(c.agents["same"].context().window, 500_000);
    assert_eq!(c.agents["same"].context().budget, 300_000);
    // Another model: the table's window, not gpt-4.1's override.
    assert_eq!(c.agents["claude"].context().window, 200_000);
    assert_eq!(c.agents["own"].context().window, 150_000);

    // A budget inherited onto a smaller model is this agent's problem (the line is the
    // agent's own table: `locate` stops at the deepest key written).
    let found = problems(
        "[agents.default]\nmodel = \"openai/gpt-4.1\"\n\n[agents.default.context]\nbudget = 300000\n\n[agents.small]\nmodel = \"openai/gpt-4o\"\n",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0]
            .starts_with("agents.small.context.budget = 300000 (at pincer.toml:7): larger than"),
        "{found:?}"
    );
    // A problem of `default` itself is reported once, on `default`.
    let found =
        problems("[agents.default.context]\ncompactAt = 2.0\n\n[agents.a]\nsystemPrompt = \"a\"\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("agents.default."), "{found:?}");
}
