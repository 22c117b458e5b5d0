//! # pincer-secrets: secret refs, their back ends, and the snapshot they resolve into
//!
//! A config value may be a secret ref (`env:NAME`, `file:/json/pointer`,
//! `vault:path#field`, `aws:name#key`, or a table `{ source, provider, id }`) instead of
//! plaintext. This crate knows how to settle a ref onto a back end ([`refs`]), ask each
//! back end ([`env`], [`file`], [`vault`], [`aws`] with [`sigv4`]) once per pass
//! ([`fetch`]), merge a pass into the [`Snapshot`] in force ([`pass`]), share it with
//! readers scoped to their own refs ([`Secrets`], [`Handle`]), keep the access trail, and
//! mask every known value from log output ([`redact`]).
//!
//! It knows no actors: the gateway's `secrets` actor decides when to run a pass (polls,
//! file events, SIGHUP, config edits), publishes its snapshot, and marks the owners of
//! unresolved refs not ready. [`Resolved`] resolves a whole config at once outside a
//! running gateway (the CLI's `doctor` and `secrets audit`).

pub mod aws;
mod backend;
pub mod env;
pub mod fetch;
pub mod file;
mod handle;
pub mod pass;
pub mod redact;
pub mod refs;
pub mod sigv4;
pub mod snapshot;
pub mod vault;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use serde::Serialize;

pub use backend::{BackendError, Fetched};
pub use handle::Handle;
pub use snapshot::{Held, Secrets, Snapshot};

use pincer_config::{Config, SecretRef, SecretValue};
use refs::Key;

/// Why a secret could not be had. Never carries the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The ref has no value (yet): its back end failed, or it names nothing.
    #[error("secret `{reference}` is unresolved: {why}")]
    Unresolved {
        /// The ref as written.
        reference: String,
        /// Why (never a value).
        why: String,
    },
    /// The ref is not in the asking actor's config.
    #[error("secret `{reference}` is outside the scope of {owner}")]
    OutOfScope {
        /// The actor that asked.
        owner: String,
        /// The ref it asked for.
        reference: String,
    },
}

/// A short digest that tells versions of a value apart (file and env back ends have no
/// versions of their own; links compare tokens by it). Keyed per process: it never
/// leaves the process.
pub fn digest(value: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    static KEYS: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    let mut hasher = KEYS.get_or_init(Default::default).build_hasher();
    hasher.write(value.as_bytes());
    format!("{:016x}", hasher.finish())
}

/// The error of ref `r` that did not resolve, given why.
fn unresolved(r: &SecretRef) -> impl Fn(String) -> SecretError + '_ {
    move |why| SecretError::Unresolved {
        reference: r.to_string(),
        why,
    }
}

/// Resolves `value` outside a running gateway (the CLI): plaintext, env and file refs;
/// Vault and AWS refs only through [`resolve_now`].
pub fn resolve(
    value: &SecretValue,
    config: &Config,
    home: &std::path::Path,
    env: &BTreeMap<String, String>,
) -> Result<String, SecretError> {
    match value {
        SecretValue::Plain(text) => Ok(text.clone()),
        SecretValue::Ref(r) => {
            let unresolved = unresolved(r);
            let key = refs::settle(r, config).map_err(&unresolved)?;
            fetch::sync_fetch(config, home, env, &key)
                .map(|f| f.value)
                .map_err(|e| unresolved(e.to_string()))
        }
    }
}

/// Resolves `value` outside a running gateway, asking Vault or AWS when it must.
pub async fn resolve_now(
    value: &SecretValue,
    config: &Config,
    home: &std::path::Path,
    env: &BTreeMap<String, String>,
) -> Result<String, SecretError> {
    let SecretValue::Ref(r) = value else {
        return resolve(value, config, home, env);
    };
    let unresolved = unresolved(r);
    let key = refs::settle(r, config).map_err(&unresolved)?;
    let http = pincer_core::net::http_client().map_err(|e| unresolved(e.to_string()))?;
    let ctx = fetch::Ctx {
        config,
        home,
        env,
        http: &http,
    };
    let mut outcomes = fetch::fetch(ctx, &BTreeSet::from([key.clone()])).await;
    match outcomes.remove(&key) {
        Some(Ok(f)) => Ok(f.value),
        Some(Err(e)) => Err(unresolved(e.to_string())),
        None => Err(unresolved("not asked".into())),
    }
}

/// What a reload did, for the admin API and `pincer secrets reload`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Refs with a value.
    pub resolved: usize,
    /// Refs whose last resolution failed: `(ref, reason)`.
    pub failing: Vec<(String, String)>,
    /// Back ends failing as a whole: `(alias, reason)`.
    pub degraded: Vec<(String, String)>,
    /// Refs whose value changed in this pass.
    pub changed: Vec<String>,
}

/// The settled keys of `config`'s refs, and the refs that cannot be settled:
/// `(owner, ref, why)`.
pub fn wanted(config: &Config) -> (BTreeSet<Key>, Vec<(String, String, String)>) {
    let mut keys = BTreeSet::new();
    let mut unsettled = Vec::new();
    for u in refs::uses(config) {
        if let SecretValue::Ref(r) = &u.value {
            match refs::settle(r, config) {
                Ok(key) => {
                    keys.insert(key);
                }
                Err(why) => unsettled.push((u.owner, r.to_string(), why)),
            }
        }
    }
    (keys, unsettled)
}

/// Every ref of a config resolved at once, outside a running gateway (doctor, audit, the
/// CLI's own token).
#[derive(Default)]
#[allow(missing_debug_implementations)] // holds secret values
pub struct Resolved {
    outcomes: fetch::Outcomes,
    unsettled: BTreeMap<String, String>,
    settled: BTreeMap<String, Key>,
}

impl Resolved {
    /// Resolves every ref of `config`.
    pub async fn all(
        config: &Config,
        home: &std::path::Path,
        env: &BTreeMap<String, String>,
    ) -> Self {
        let mut settled = BTreeMap::new();
        let mut unsettled = BTreeMap::new();
        for u in refs::uses(config) {
            if let SecretValue::Ref(r) = &u.value {
                match refs::settle(r, config) {
                    Ok(key) => drop(settled.insert(r.to_string(), key)),
                    Err(why) => drop(unsettled.insert(r.to_string(), why)),
                }
            }
        }
        let keys: BTreeSet<Key> = settled.values().cloned().collect();
        let outcomes = match pincer_core::net::http_client() {
            Ok(http) => {
                let ctx = fetch::Ctx {
                    config,
                    home,
                    env,
                    http: &http,
                };
                fetch::fetch(ctx, &keys).await
            }
            Err(error) => keys
                .into_iter()
                .map(|k| (k, Err(BackendError::Unavailable(error.to_string()))))
                .collect(),
        };
        Self {
            outcomes,
            unsettled,
            settled,
        }
    }

    /// The value of `value` (plaintext as is).
    pub fn get(&self, value: &SecretValue) -> Result<String, SecretError> {
        let r = match value {
            SecretValue::Plain(text) => return Ok(text.clone()),
            SecretValue::Ref(r) => r,
        };
        let reference = r.to_string();
        let unresolved = |why: String| SecretError::Unresolved {
            reference: reference.clone(),
            why,
        };
        if let Some(why) = self.unsettled.get(&reference) {
            return Err(unresolved(why.clone()));
        }
        match self
            .settled
            .get(&reference)
            .and_then(|k| self.outcomes.get(k))
        {
            Some(Ok(f)) => Ok(f.value.clone()),
            Some(Err(e)) => Err(unresolved(e.to_string())),
            None => Err(unresolved("not a ref of this config".into())),
        }
    }
}

/// `ms` (since the epoch) as `YYYY-MM-DDTHH:MM:SSZ`, for the access trail.
pub fn utc(ms: u64) -> String {
    let stamp = sigv4::amz_date(SystemTime::UNIX_EPOCH + Duration::from_millis(ms));
    // `20150830T123600Z` → `2015-08-30T12:36:00Z`.
    match (
        stamp.get(0..4),
        stamp.get(4..6),
        stamp.get(6..8),
        stamp.get(9..11),
        stamp.get(11..13),
        stamp.get(13..15),
    ) {
        (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(s)) => {
            format!("{y}-{mo}-{d}T{h}:{mi}:{s}Z")
        }
        _ => stamp,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use pincer_config::live::View;
    use pincer_config::{Format, parse_str};

    use super::*;

    /// The secrets of a gateway running `config`, and the config in force.
    fn gateway(config: &str) -> (Arc<Secrets>, View) {
        let config = parse_str(config, Format::Toml).expect("config");
        (Arc::default(), View::fixed(config))
    }

    fn handle(gw: &(Arc<Secrets>, View), owner: String) -> Handle {
        Handle::new(gw.0.clone(), gw.1.clone(), owner)
    }

    const TWO_AGENTS: &str = r#"
[secrets.providers.vault]
source = "vault"
address = "http://127.0.0.1:1"
token = "root"

[providers.openai]
apiKey = "vault:pincer/openai#key"

[agents.a.model]
name = "gpt-5"
apiKey = "vault:pincer/a#key"

[agents.b.model]
name = "gpt-5"
apiKey = "vault:pincer/b#key"
"#;

    fn held(value: &str) -> Held {
        Held {
            value: Arc::from(value),
            version: "1".into(),
            since: std::time::SystemTime::now(),
        }
    }

    #[test]
    fn handles_read_only_their_own_refs() {
        let gw = gateway(TWO_AGENTS);
        let config = gw.1.current();
        let (keys, unsettled) = wanted(&config);
        assert!(unsettled.is_empty(), "{unsettled:?}");
        let mut snapshot = Snapshot::default();
        for key in &keys {
            snapshot
                .values
                .insert(key.clone(), held(&format!("sk-{}", key.id)));
        }
        gw.0.publish(snapshot);
        let value = |id: &str| SecretValue::from_text(&format!("vault:{id}"));

        let a = handle(&gw, refs::agent_owner("a"));
        assert_eq!(
            a.get(&value("pincer/a#key")).as_deref(),
            Ok("sk-pincer/a#key")
        );
        assert!(matches!(
            a.get(&value("pincer/b#key")),
            Err(SecretError::OutOfScope { .. })
        ));
        // The provider's key is the provider's, not the agent's.
        assert!(matches!(
            a.get(&value("pincer/openai#key")),
            Err(SecretError::OutOfScope { .. })
        ));
        let provider = handle(&gw, refs::provider_owner("openai"));
        assert!(provider.get(&value("pincer/openai#key")).is_ok());
        // Tools hold no handle of their own; any path outside the config reads nothing.
        let tools = handle(&gw, pincer_core::paths::top("tools"));
        for id in ["pincer/a#key", "pincer/b#key", "pincer/openai#key"] {
            assert!(matches!(
                tools.get(&value(id)),
                Err(SecretError::OutOfScope { .. })
            ));
        }
        // Plaintext is nobody's secret to guard.
        assert_eq!(
            tools.get(&SecretValue::Plain("x".into())).as_deref(),
            Ok("x")
        );

        let rows = gw.0.take_pending();
        let denied = rows
            .iter()
            .filter(|r| r.outcome.starts_with("denied"))
            .count();
        assert_eq!(denied, 5, "{rows:?}");
        assert!(rows.iter().all(|r| !r.outcome.contains("sk-")));
        // Reads of the same version leave no second row.
        let _ = a.get(&value("pincer/a#key"));
        assert!(gw.0.take_pending().is_empty());
    }

    #[test]
    fn refs_settle_onto_their_back_end() {
        let gw = gateway(TWO_AGENTS);
        let config = gw.1.current();
        let r = |text: &str| SecretValue::from_text(text).as_ref().cloned().expect("ref");
        let key = refs::settle(&r("vault:x#y"), &config).expect("settles");
        assert_eq!(key.alias, "vault");
        assert_eq!(
            refs::settle(&r("env:HOME"), &config).map(|k| k.alias),
            Ok(refs::DEFAULT_ALIAS.to_string())
        );
        let none = gateway("");
        let err = refs::settle(&r("vault:x#y"), &none.1.current()).expect_err("no vault");
        assert!(err.contains("no Vault back end"), "{err}");
    }
}
