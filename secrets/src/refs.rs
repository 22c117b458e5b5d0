//! Who uses which secret: every secret-bearing value of a config with the actor it belongs
//! to (its owner, whose handle alone may read it) and its key in the config; and refs
//! settled onto the back end alias that holds them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use pincer_config::{Config, FileMode, SecretProvider, SecretRef, SecretSource, SecretValue};
use pincer_core::paths;

/// One secret-bearing value in a config.
#[derive(Debug, Clone)]
pub struct Use {
    /// The actor path whose handle may read it.
    pub owner: String,
    /// Where it is written, as a dotted config key (`providers.openai.apiKeys[1]`).
    pub key: String,
    /// Plaintext or a ref.
    pub value: SecretValue,
    /// Whether its owner cannot work without it, and so is not ready while it is
    /// unresolved (a provider's key, an account's token). A tool's key is not: the
    /// gateway and its agents stay ready, and a call that needs it fails saying why.
    pub required: bool,
}

/// The owner of the gateway token (the port's actor).
pub fn gateway_owner() -> String {
    paths::top("health")
}

/// The owner of a provider's keys.
pub fn provider_owner(name: &str) -> String {
    paths::provider(name)
}

/// The owner of an agent's own key.
pub fn agent_owner(id: &str) -> String {
    paths::agent(id)
}

/// The owner of a channel account's token and webhook secret.
pub fn account_owner(kind: &str, account: &str) -> String {
    paths::account(kind, account)
}

/// The owner of a tool's key (`tool:web_search`). No actor has this path: the gateway's
/// tool runtime reads through it and hands the value to the tool's back end.
pub fn tool_owner(tool: &str) -> String {
    format!("tool:{tool}")
}

/// The owner of back-end credentials (a Vault token): the watcher itself.
pub fn secrets_owner() -> String {
    paths::top("secrets")
}

/// Every secret-bearing value of `config`, plaintext included.
pub fn uses(config: &Config) -> Vec<Use> {
    let mut out = Vec::new();
    let mut push = |owner: &str, key: String, value: &SecretValue| {
        out.push(Use {
            owner: owner.to_string(),
            key,
            value: value.clone(),
            required: true,
        });
    };
    if let Some(token) = &config.gateway.auth.token {
        push(&gateway_owner(), "gateway.auth.token".into(), token);
    }
    let providers = [
        (
            "openai",
            config
                .providers
                .openai
                .as_ref()
                .map(|o| (&o.api_key, &o.api_keys)),
        ),
        (
            "anthropic",
            config
                .providers
                .anthropic
                .as_ref()
                .map(|a| (&a.api_key, &a.api_keys)),
        ),
    ];
    for (name, keys) in providers {
        let Some((first, more)) = keys else { continue };
        let owner = provider_owner(name);
        if let Some(key) = first {
            push(&owner, format!("providers.{name}.apiKey"), key);
        }
        for (i, key) in more.iter().enumerate() {
            push(&owner, format!("providers.{name}.apiKeys[{i}]"), key);
        }
    }
    for (id, agent) in &config.agents {
        if let Some(key) = agent.model.as_ref().and_then(|m| m.api_key.as_ref()) {
            push(&agent_owner(id), format!("agents.{id}.model.apiKey"), key);
        }
    }
    if let Some(telegram) = &config.channels.telegram {
        for (id, account) in &telegram.accounts {
            let owner = account_owner("telegram", id);
            if let Some(token) = &account.token {
                push(
                    &owner,
                    format!("channels.telegram.accounts.{id}.token"),
                    token,
                );
            }
            if let Some(secret) = &account.webhook_secret {
                let key = format!("channels.telegram.accounts.{id}.webhookSecret");
                push(&owner, key, secret);
            }
        }
    }
    if let Some(discord) = &config.channels.discord {
        for (id, account) in &discord.accounts {
            if let Some(token) = &account.token {
                let key = format!("channels.discord.accounts.{id}.token");
                push(&account_owner("discord", id), key, token);
            }
        }
    }
    for (alias, provider) in &config.secrets.providers {
        if let SecretProvider::Vault {
            token: Some(token), ..
        } = provider
        {
            push(
                &secrets_owner(),
                format!("secrets.providers.{alias}.token"),
                token,
            );
        }
    }
    if let Some(key) = &config.tools.web_search.api_key {
        out.push(Use {
            owner: tool_owner("web_search"),
            key: "tools.webSearch.apiKey".into(),
            value: key.clone(),
            required: false,
        });
    }
    out
}

/// A ref settled onto its back end: what snapshots are keyed by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// The kind of back end.
    pub source: SecretSource,
    /// The `[secrets.providers.<alias>]` (or `default` for a built-in one).
    pub alias: String,
    /// The id in that back end.
    pub id: String,
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.source.name(), self.alias, self.id)
    }
}

/// The alias of built-in back ends (env, `$PINCER_HOME/secrets.json`, AWS's default chain).
pub const DEFAULT_ALIAS: &str = "default";

/// Settles `r` onto an alias of `config`: the one it names, else the alias `default` of
/// its source, else the only alias of its source, else the built-in back end (env, file
/// and aws have one; vault does not).
pub fn settle(r: &SecretRef, config: &Config) -> Result<Key, String> {
    let providers = &config.secrets.providers;
    let key = |alias: &str| Key {
        source: r.source,
        alias: alias.to_string(),
        id: r.id.clone(),
    };
    if let Some(alias) = &r.provider {
        return match providers.get(alias) {
            Some(p) if source_of(p) == r.source => Ok(key(alias)),
            Some(p) => Err(format!(
                "secret `{r}`: [secrets.providers.{alias}] is a `{}` back end, the ref says `{}`",
                source_of(p).name(),
                r.source.name()
            )),
            None if alias == DEFAULT_ALIAS && r.source != SecretSource::Vault => {
                Ok(key(DEFAULT_ALIAS))
            }
            None => Err(format!(
                "secret `{r}`: no [secrets.providers.{alias}] is configured"
            )),
        };
    }
    let same: Vec<&String> = providers
        .iter()
        .filter(|(_, p)| source_of(p) == r.source)
        .map(|(alias, _)| alias)
        .collect();
    match same.as_slice() {
        [] if r.source == SecretSource::Vault => Err(format!(
            "secret `{r}`: no Vault back end is configured (add [secrets.providers.<alias>] with source = \"vault\")"
        )),
        [] => Ok(key(DEFAULT_ALIAS)),
        [only] => Ok(key(only)),
        many if many.iter().any(|a| *a == DEFAULT_ALIAS) => Ok(key(DEFAULT_ALIAS)),
        many => Err(format!(
            "secret `{r}`: {} `{}` back ends are configured ({}); name one with `provider`",
            many.len(),
            r.source.name(),
            many.iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The `source` of a configured back end.
pub fn source_of(provider: &SecretProvider) -> SecretSource {
    match provider {
        SecretProvider::Env { .. } => SecretSource::Env,
        SecretProvider::File { .. } => SecretSource::File,
        SecretProvider::Vault { .. } => SecretSource::Vault,
        SecretProvider::Aws { .. } => SecretSource::Aws,
    }
}

/// The back end an alias stands for, built-in defaults included.
pub fn provider(config: &Config, key: &Key) -> Option<SecretProvider> {
    if let Some(p) = config.secrets.providers.get(&key.alias) {
        return Some(p.clone());
    }
    (key.alias == DEFAULT_ALIAS).then(|| match key.source {
        SecretSource::Env => Some(SecretProvider::Env {
            allowlist: Vec::new(),
        }),
        SecretSource::File => Some(SecretProvider::File {
            path: None,
            mode: FileMode::Json,
        }),
        SecretSource::Aws => Some(SecretProvider::Aws {
            region: None,
            endpoint: None,
            poll_interval: Duration::from_secs(30),
        }),
        SecretSource::Vault => None,
    })?
}

/// The file a file back end reads (`$PINCER_HOME/secrets.json` by default).
pub fn file_path(home: &std::path::Path, path: Option<&PathBuf>) -> PathBuf {
    path.cloned().unwrap_or_else(|| home.join("secrets.json"))
}

/// What each owner may read: the settled keys of the refs in its config.
pub fn scopes(config: &Config) -> BTreeMap<String, BTreeSet<Key>> {
    let mut scopes: BTreeMap<String, BTreeSet<Key>> = BTreeMap::new();
    for u in uses(config) {
        if let SecretValue::Ref(r) = &u.value
            && let Ok(key) = settle(r, config)
        {
            scopes.entry(u.owner).or_default().insert(key);
        }
    }
    scopes
}
