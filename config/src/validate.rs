//! Checks across keys. Every problem is collected, each naming its entity; warnings are
//! kept apart.

use std::collections::BTreeMap;

use super::Config;
use super::secret::SecretValue;

/// Returns the warnings, or every error found.
pub(super) fn validate(config: &Config) -> Result<Vec<String>, Vec<String>> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();

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

fn list(ids: &[&String]) -> String {
    ids.iter()
        .map(|id| format!("`{id}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
