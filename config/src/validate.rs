//! Checks across keys. Every problem is collected, each naming its entity; warnings are
//! kept apart.

use std::collections::BTreeMap;
use std::path::Path;

use super::Config;
use super::agents::ModelConfig;
use super::secret::SecretValue;

/// The model providers there are (`agents.<id>.model.provider`, `provider/name`).
const PROVIDERS: [&str; 3] = ["echo", "openai", "anthropic"];

/// Returns the warnings, or every error found. `file` (path and text) and `env` say
/// where a key was written, for the errors that name one.
pub(super) fn validate(
    config: &Config,
    file: Option<(&Path, &str)>,
    env: &BTreeMap<String, String>,
) -> Result<Vec<String>, Vec<String>> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let at = |key: &[&str]| {
        let segments: Vec<String> = key.iter().map(|s| s.to_string()).collect();
        super::errors::locate(&segments, file, env)
            .map(|l| format!(" (at {l})"))
            .unwrap_or_default()
    };

    if config.sessions.hibernate_after.is_zero() {
        errors.push(format!(
            "sessions.hibernateAfter{}: must be longer than 0s (a session would stop between \
             every two messages)",
            at(&["sessions", "hibernateAfter"])
        ));
    }

    let marked: Vec<&String> = config
        .agents
        .iter()
        .filter(|(_, a)| a.default)
        .map(|(id, _)| id)
        .collect();
    if marked.len() > 1 {
        errors.push(format!(
            "agents {} are all marked `default = true`; at most one may be",
            list(&marked)
        ));
    }

    for (id, agent) in &config.agents {
        if let Some(model) = &agent.model
            && model.name.is_some()
            && model.provider_name().is_none()
        {
            errors.push(format!(
                "agents.{id}.model: cannot tell the provider of model `{}`; set `provider` (echo, openai, anthropic)",
                model.name.as_deref().unwrap_or("")
            ));
        }
        if let Some(model) = &agent.model {
            // What an agent inherits from `default` is reported once, on `default`.
            let base = config
                .agents
                .get("default")
                .filter(|_| id != "default")
                .and_then(|d| d.model.as_ref());
            check_providers(id, model, base, &at, &mut errors);
        }
        check_tools(id, agent, &at, &mut errors, &mut warnings);
        let base = config.agents.get("default").filter(|_| id != "default");
        check_context(id, agent, base, &at, &mut errors, &mut warnings);
        if let Some(steps) = agent.adaptive_thinking
            && steps.min_steps > steps.max_steps
        {
            errors.push(format!(
                "agents.{id}.adaptiveThinking: minSteps ({}) is greater than maxSteps ({})",
                steps.min_steps, steps.max_steps
            ));
        }
    }

    let agents: Vec<&String> = config.agents.keys().collect();
    for (i, binding) in config.bindings.iter().enumerate() {
        if !config.agents.contains_key(&binding.agent) {
            errors.push(format!(
                "bindings[{i}].agent = \"{}\" names no agent (agents: {})",
                binding.agent,
                list(&agents)
            ));
        }
    }

    // A binding to an account no channel has matches nothing: said, not fatal (the
    // account may be added next).
    let accounts: Vec<String> = config
        .accounts()
        .into_iter()
        .map(|(_, id)| id.to_string())
        .collect();
    for (i, binding) in config.bindings.iter().enumerate() {
        if let Some(account) = &binding.matches.account
            && !accounts.contains(account)
        {
            let known: Vec<&String> = accounts.iter().collect();
            warnings.push(format!(
                "bindings[{i}] (agent `{}`) names account `{account}`, which no channel has (accounts: {}): it matches nothing until that account is added",
                binding.agent,
                list(&known)
            ));
        }
    }

    // Account ids are unique across channels: bindings and the CLI name them alone.
    let mut owners: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (kind, id) in config.accounts() {
        owners.entry(id).or_default().push(kind);
    }
    for (id, kinds) in owners {
        if kinds.len() > 1 {
            errors.push(format!(
                "account id `{id}` is used by channels {}; account ids must be unique",
                kinds.join(" and ")
            ));
        }
    }

    // One bot token, one poller: two accounts with the same token would fight (409s).
    if let Some(telegram) = &config.channels.telegram {
        let mut by_token: BTreeMap<&str, Vec<&String>> = BTreeMap::new();
        for (id, account) in &telegram.accounts {
            if let Some(SecretValue::Plain(token)) = &account.token {
                by_token.entry(token.as_str()).or_default().push(id);
            }
        }
        for ids in by_token.values().filter(|ids| ids.len() > 1) {
            let keys: Vec<String> = ids
                .iter()
                .map(|id| format!("channels.telegram.accounts.{id}.token"))
                .collect();
            errors.push(format!("{} hold the same bot token", keys.join(" and ")));
        }
    }

    if let Some(telegram) = &config.channels.telegram {
        for (topic, settings) in &telegram.dm.topics {
            let Some(skills) = &settings.skills else {
                continue;
            };
            let key = [
                "channels",
                "telegram",
                "dm",
                "topics",
                topic.as_str(),
                "skills",
            ];
            for (i, pattern) in skills.iter().enumerate() {
                let index = format!("[{i}]");
                let mut segments = key.to_vec();
                segments.push(&index);
                if let Err(why) = crate::tools::expand(pattern) {
                    errors.push(format!("{}{index}{}: {why}", key.join("."), at(&segments)));
                }
            }
        }
    }

    check_exec(&config.tools.exec, &at, &mut errors);
    check_web_search(&config.tools.web_search, &at, &mut errors, &mut warnings);

    let default = config.default_agent();
    for id in config.agents.keys() {
        let bound = config.bindings.iter().any(|b| &b.agent == id);
        if !bound && Some(id.as_str()) != default {
            warnings.push(format!(
                "agent `{id}` has no binding and is not the default agent: only `model = \"{id}\"` on the HTTP API reaches it"
            ));
        }
    }

    if errors.is_empty() {
        Ok(warnings)
    } else {
        Err(errors)
    }
}

/// Agent `id`'s tool names (skills, `tools.allow`, `tools.deny`) are tools there are; a
/// tool in its set that this build does not have is a warning (it is not offered).
fn check_tools(
    id: &str,
    agent: &super::AgentConfig,
    at: &dyn Fn(&[&str]) -> String,
    errors: &mut Vec<String>,
    warnings: &mut Vec<String>,
) {
    let lists: [(&[&str], &Vec<String>); 3] = [
        (&["skills"], &agent.skills),
        (&["tools", "allow"], &agent.tools.allow),
        (&["tools", "deny"], &agent.tools.deny),
    ];
    for (key, patterns) in lists {
        for (i, pattern) in patterns.iter().enumerate() {
            if let Err(why) = crate::tools::expand(pattern) {
                let index = format!("[{i}]");
                let mut segments = vec!["agents", id];
                segments.extend_from_slice(key);
                segments.push(&index);
                errors.push(format!(
                    "agents.{id}.{}{index}{}: {why}",
                    key.join("."),
                    at(&segments)
                ));
            }
        }
    }
    let missing: Vec<&str> = crate::tools::agent_set(&agent.tools, &agent.skills)
        .into_iter()
        .filter(|name| !crate::tools::BUILT.contains(name))
        .collect();
    if !missing.is_empty() {
        warnings.push(format!(
            "agent `{id}` may use {}, which this build does not have yet: not offered to its model",
            missing
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
}

/// Agent `id`'s window and `[context]`: each value in range, the summary model one a
/// provider here serves, and the resolved numbers consistent (the reply and 1,024 tokens
/// fit the window; the budget does too, a budget that leaves no room for the reply being
/// a warning). What the agent inherits unchanged from `base` (the agent `default`) is
/// reported once, on `default`.
fn check_context(
    id: &str,
    agent: &super::AgentConfig,
    base: Option<&super::AgentConfig>,
    at: &dyn Fn(&[&str]) -> String,
    errors: &mut Vec<String>,
    warnings: &mut Vec<String>,
) {
    use crate::models::MIN_CONTEXT_TOKENS as MIN;
    let before = errors.len();
    let model = agent.model.clone().unwrap_or_default();
    let base_model = base.and_then(|b| b.model.as_ref());

    if let Some(window) = model.context_window
        && window < MIN
        && base_model.is_none_or(|b| b.context_window != Some(window))
    {
        errors.push(format!(
            "agents.{id}.model.contextWindow = {window}{}: at least {} tokens",
            at(&["agents", id, "model", "contextWindow"]),
            thousands(MIN)
        ));
    }
    if model.max_output_tokens == Some(0)
        && base_model.is_none_or(|b| b.max_output_tokens != Some(0))
    {
        errors.push(format!(
            "agents.{id}.model.maxOutputTokens = 0{}: at least 1 token",
            at(&["agents", id, "model", "maxOutputTokens"])
        ));
    }
    let context = &agent.context;
    let base_context = base.map(|b| &b.context);
    if let Some(budget) = context.budget
        && budget < MIN
        && base_context.is_none_or(|b| b.budget != Some(budget))
    {
        errors.push(format!(
            "agents.{id}.context.budget = {budget}{}: at least {} tokens",
            at(&["agents", id, "context", "budget"]),
            thousands(MIN)
        ));
    }
    let share = context.compact_at;
    // Written so that NaN fails too.
    if !(share > 0.0 && share <= 1.0) && base_context.is_none_or(|b| b.compact_at != share) {
        errors.push(format!(
            "agents.{id}.context.compactAt = {share}{}: a share of the budget, more than 0 and at most 1 (0.8 summarizes at 80 %)",
            at(&["agents", id, "context", "compactAt"])
        ));
    }
    if let Some(summary) = &context.summary_model
        && base_context.is_none_or(|b| b.summary_model.as_ref() != Some(summary))
        && let Some(why) = model_ref_problem(summary)
    {
        errors.push(format!(
            "agents.{id}.context.summaryModel = \"{summary}\"{}: {why}",
            at(&["agents", id, "context", "summaryModel"])
        ));
    }
    if errors.len() > before {
        // The numbers below would only repeat what is wrong.
        return;
    }

    let limits = agent.context();
    if base.is_some_and(|b| {
        b.context() == limits
            && base_model.is_some_and(|m| {
                m.context_window == model.context_window
                    && m.max_output_tokens == model.max_output_tokens
            })
            && b.context.budget == context.budget
    }) {
        return;
    }
    let (provider, name) = model.resolved();
    let known = crate::models::known_window(&provider, &name);
    // A value as written (key, value, line) or where it came from.
    let source = |written: Option<u32>, key: &str, value: u32| match (written, known) {
        (Some(v), _) => format!(
            "agents.{id}.model.{key} = {v}{}",
            at(&["agents", id, "model", key])
        ),
        (None, Some(_)) => format!("the known {key} of `{name}` ({})", thousands(value)),
        (None, None) => format!(
            "the default {key} ({}) of a model not known here",
            thousands(value)
        ),
    };
    let window = source(model.context_window, "contextWindow", limits.window);
    let output = source(model.max_output_tokens, "maxOutputTokens", limits.output);
    if u64::from(limits.output) + u64::from(MIN) > u64::from(limits.window) {
        errors.push(format!(
            "{window} leaves less than {} tokens of input beside {output}; raise agents.{id}.model.contextWindow or lower agents.{id}.model.maxOutputTokens",
            thousands(MIN)
        ));
        return;
    }
    let Some(budget) = context.budget else {
        return;
    };
    let place = at(&["agents", id, "context", "budget"]);
    let room = limits.window - limits.output;
    if budget > limits.window {
        errors.push(format!(
            "agents.{id}.context.budget = {budget}{place}: larger than {window}; at most {} leaves room for the reply, unset it is {}",
            thousands(room),
            thousands(crate::context::default_budget(limits.window, limits.output))
        ));
    } else if budget > room {
        warnings.push(format!(
            "agents.{id}.context.budget = {budget}{place} and {output} add up to more than {window}: a turn that fills the budget may be refused; at most {} leaves room for the reply",
            thousands(room)
        ));
    }
}

/// `1024` as `1,024`.
fn thousands(n: u32) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `[tools.exec]`: allowlist patterns that can match a resolved path, and timeouts in
/// order (`timeout` ≤ `maxTimeout` ≤ 10 min, none zero).
fn check_exec(
    exec: &crate::tools::ExecConfig,
    at: &dyn Fn(&[&str]) -> String,
    errors: &mut Vec<String>,
) {
    use crate::duration::format_duration;
    use crate::tools::{EXEC_MAX_TIMEOUT, ExecConfig};
    for (i, pattern) in exec.allowlist.iter().enumerate() {
        if let Some(why) = ExecConfig::pattern_problem(pattern) {
            let index = format!("[{i}]");
            errors.push(format!(
                "tools.exec.allowlist{index} = \"{pattern}\"{}: {why}",
                at(&["tools", "exec", "allowlist", &index])
            ));
        }
    }
    let timeouts = [
        ("timeout", exec.timeout),
        ("maxTimeout", exec.max_timeout),
        ("approvalTimeout", exec.approval_timeout),
    ];
    for (key, value) in timeouts {
        if value.is_zero() {
            errors.push(format!(
                "tools.exec.{key}{}: must be longer than 0s",
                at(&["tools", "exec", key])
            ));
        }
    }
    if exec.max_timeout > EXEC_MAX_TIMEOUT {
        errors.push(format!(
            "tools.exec.maxTimeout = \"{}\"{}: at most \"{}\" (a turn waits on the call)",
            format_duration(exec.max_timeout),
            at(&["tools", "exec", "maxTimeout"]),
            format_duration(EXEC_MAX_TIMEOUT)
        ));
    }
    if exec.timeout > exec.max_timeout {
        errors.push(format!(
            "tools.exec.timeout = \"{}\"{}: longer than tools.exec.maxTimeout (\"{}\")",
            format_duration(exec.timeout),
            at(&["tools", "exec", "timeout"]),
            format_duration(exec.max_timeout)
        ));
    }
}

/// `[tools.webSearch]` says where searches go: SearXNG has no default address, a base URL
/// is an http(s) URL. A missing Brave key is not an error here: the gateway runs without
/// it and `web_search` calls say what to set (`doctor` too).
fn check_web_search(
    search: &crate::tools::WebSearchConfig,
    at: &dyn Fn(&[&str]) -> String,
    errors: &mut Vec<String>,
    warnings: &mut Vec<String>,
) {
    use crate::tools::SearchProvider;
    match &search.base_url {
        Some(url) if !is_http_url(url) => errors.push(format!(
            "tools.webSearch.baseUrl = \"{url}\"{}: not an http(s) URL (e.g. `https://search.example.org`)",
            at(&["tools", "webSearch", "baseUrl"])
        )),
        Some(_) => {}
        None if search.provider == SearchProvider::Searxng => errors.push(format!(
            "tools.webSearch.baseUrl: provider `searxng`{} has no default address; set the URL of your instance (`baseUrl = \"http://127.0.0.1:8888\"`)",
            at(&["tools", "webSearch", "provider"])
        )),
        None => {}
    }
    if search.provider == SearchProvider::Searxng && search.api_key.is_some() {
        warnings.push(format!(
            "tools.webSearch.apiKey{} is not used: SearXNG takes no key",
            at(&["tools", "webSearch", "apiKey"])
        ));
    }
}

/// Whether `url` is `http://` or `https://` followed by a host.
fn is_http_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    ["http://", "https://"].iter().any(|scheme| {
        lower
            .strip_prefix(scheme)
            .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
    })
}

/// The providers agent `id`'s model names (`provider`, the `provider/name` form, each
/// fallback) are providers there are; what equals `base` (the default agent's model,
/// which it inherits) is left to the check of `default`.
fn check_providers(
    id: &str,
    model: &ModelConfig,
    base: Option<&ModelConfig>,
    at: &dyn Fn(&[&str]) -> String,
    errors: &mut Vec<String>,
) {
    if let Some(provider) = &model.provider
        && base.is_none_or(|b| b.provider.as_ref() != Some(provider))
        && let Some(why) = unknown_provider(provider)
    {
        let place = at(&["agents", id, "model", "provider"]);
        errors.push(format!(
            "agents.{id}.model.provider = \"{provider}\"{place}: {why}"
        ));
    }
    if base.is_some_and(|b| b.fallbacks == model.fallbacks) {
        return;
    }
    for (i, fallback) in model.fallbacks.iter().enumerate() {
        if let Some(why) = model_ref_problem(fallback) {
            let place = at(&["agents", id, "model", "fallbacks", &format!("[{i}]")]);
            errors.push(format!(
                "agents.{id}.model.fallbacks[{i}] = \"{fallback}\"{place}: {why}"
            ));
        }
    }
}

/// Why `text`, a model written as `provider/name` (a fallback, a summary model), names
/// no model a provider here serves; `None` when it does.
fn model_ref_problem(text: &str) -> Option<String> {
    let parsed = ModelConfig::from_text(text);
    match &parsed.provider {
        Some(provider) => unknown_provider(provider).map(|why| format!("`{provider}` {why}")),
        None if parsed.provider_name().is_none() => Some(format!(
            "cannot tell the provider of model `{text}`; write it as `provider/name` (echo, openai, anthropic)"
        )),
        None => None,
    }
}

/// Why `provider` is not one, with the closest one when it looks like a typo; `None` for
/// a provider there is.
fn unknown_provider(provider: &str) -> Option<String> {
    if PROVIDERS.contains(&provider) {
        return None;
    }
    let known: Vec<String> = PROVIDERS.iter().map(|p| p.to_string()).collect();
    let suggestion = super::errors::closest(provider, &known)
        .map(|p| format!("; did you mean `{p}`?"))
        .unwrap_or_default();
    Some(format!(
        "is not a provider (echo, openai, anthropic){suggestion}"
    ))
}

fn list(ids: &[&String]) -> String {
    ids.iter()
        .map(|id| format!("`{id}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
