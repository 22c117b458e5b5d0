//! `secrets`: the watcher that resolves every secret ref of the config in force into a
//! [`Snapshot`](shelf::Snapshot), swaps it whole when something changed, and keeps it
//! fresh: file change events, Vault and AWS polls (a swap only when a version moved),
//! SIGHUP, `POST /admin/secrets/reload`, `pincer secrets reload`, config edits.
//!
//! Users read through a [`Handle`] scoped to the refs their own config names: a
//! provider's keys, an agent's key, an account's token. Every read leaves a row in the
//! access trail (one per change of outcome or version, never the value), and every known
//! value is masked from log output ([`redact`]).
//!
//! A ref that cannot be resolved never stops the gateway: its owners show not ready with
//! the ref and the reason, and it is retried with backoff. A back end that fails keeps
//! its last good values and shows degraded in `/readyz?verbose`.

pub mod aws;
mod backend;
pub mod env;
pub mod fetch;
pub mod file;
pub mod redact;
pub mod refs;
pub mod shelf;
mod sigv4;
pub mod vault;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use pincer_actors::{ChildSpec, Scope};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;
use tokio::time::Instant;

pub use backend::{BackendError, Fetched};
use refs::Key;
use shelf::{Held, Snapshot};

use crate::gateway::Gateway;
use pincer_config::{Config, SecretProvider, SecretRef, SecretValue};

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
fn unresolved(r: &pincer_config::SecretRef) -> impl Fn(String) -> SecretError + '_ {
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
            let http = crate::provider::http_client();
            let ctx = fetch::Ctx {
                config,
                home,
                env,
                http: &http,
            };
            fetch::sync_fetch(ctx, &key)
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
    let http = crate::provider::http_client();
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

/// A reader of secrets limited to the refs in one actor's config.
#[derive(Debug, Clone)]
pub struct Handle {
    gw: Gateway,
    owner: String,
}

/// The handle of actor `owner` (see [`refs`] for the owners).
pub fn handle(gw: &Gateway, owner: impl Into<String>) -> Handle {
    Handle {
        gw: gw.clone(),
        owner: owner.into(),
    }
}

impl Handle {
    /// The value of `value`: itself when plaintext, else the snapshot's value of the ref,
    /// if the ref is this actor's.
    pub fn get(&self, value: &SecretValue) -> Result<String, SecretError> {
        match value {
            SecretValue::Plain(text) => Ok(text.clone()),
            SecretValue::Ref(r) => self.get_ref(r),
        }
    }

    fn get_ref(&self, r: &SecretRef) -> Result<String, SecretError> {
        let config = self.gw.config();
        let unresolved = |why: String| SecretError::Unresolved {
            reference: r.to_string(),
            why,
        };
        let key = refs::settle(r, &config).map_err(unresolved)?;
        let shelf = self.gw.secrets();
        let in_scope = shelf
            .scopes(&config)
            .get(&self.owner)
            .is_some_and(|keys| keys.contains(&key));
        if !in_scope {
            shelf.record(&self.owner, &key, "denied: not in this actor's config", "");
            return Err(SecretError::OutOfScope {
                owner: self.owner.clone(),
                reference: r.to_string(),
            });
        }
        let snapshot = shelf.snapshot();
        if let Some(held) = snapshot.values.get(&key) {
            shelf.record(&self.owner, &key, "ok", &held.version);
            return Ok(held.value.to_string());
        }
        let why = snapshot
            .failures
            .get(&key)
            .cloned()
            .unwrap_or_else(|| "not resolved yet".to_string());
        shelf.record(&self.owner, &key, &format!("unresolved: {why}"), "");
        Err(unresolved(why))
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

/// Messages of the `secrets` actor.
#[derive(Debug)]
pub enum SecretsMsg {
    /// Re-resolve every ref now (SIGHUP, admin API, CLI); answers with what happened.
    Reload(Option<RpcReplyPort<Report>>),
    /// The config in force changed.
    ConfigChanged,
    /// A watched secrets file changed.
    FileChanged,
    /// Look at what is due: polls, retries, a settled file change, trail rows to write.
    Tick,
}

/// The `secrets` actor.
#[derive(Debug, Clone, Copy)]
pub struct Watcher;

/// The watcher's schedule. What it resolved lives on the gateway's shelf.
#[allow(missing_debug_implementations)] // holds a notify watcher, which has no Debug
pub struct WatcherState {
    gw: Gateway,
    /// When each polled back end (alias) is next asked.
    polls: BTreeMap<String, Instant>,
    /// Failing back ends: attempts so far and when to try again.
    retries: BTreeMap<String, (u32, Instant)>,
    /// A file change waiting to settle (editors write in several steps).
    file_due: Option<Instant>,
    files: Option<notify::RecommendedWatcher>,
    watched: BTreeSet<PathBuf>,
}

/// The child spec of `secrets`.
pub fn spec(gw: &Gateway) -> ChildSpec {
    crate::gateway::child(gw, "secrets", Watcher)
}

/// How long start-up waits for the first resolution pass.
const FIRST_PASS: Duration = Duration::from_secs(2);
/// How often the watcher looks at its schedule.
const TICK: Duration = Duration::from_millis(100);
/// How long a file must be quiet before it is read again.
const FILE_SETTLE: Duration = Duration::from_millis(50);
/// Retry backoff bounds for failing refs.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// Asks the running watcher to reload (SIGHUP); `false` if it is not running.
pub fn request_reload(gw: &Gateway) -> bool {
    gw.actor::<SecretsMsg>(&pincer_core::paths::top("secrets"))
        .is_some_and(|a| a.cast(SecretsMsg::Reload(None)).is_ok())
}

/// Reloads through the running watcher and waits for its report.
pub async fn reload(gw: &Gateway) -> Result<Report, String> {
    let actor = gw
        .actor::<SecretsMsg>(&pincer_core::paths::top("secrets"))
        .ok_or("the secrets actor is not running")?;
    match actor
        .call(
            |reply| SecretsMsg::Reload(Some(reply)),
            Some(Duration::from_secs(30)),
        )
        .await
    {
        Ok(ractor::rpc::CallResult::Success(report)) => Ok(report),
        Ok(ractor::rpc::CallResult::Timeout) => {
            Err("the secrets actor did not answer in 30 s".into())
        }
        _ => Err("the secrets actor stopped before answering".into()),
    }
}

impl Actor for Watcher {
    type Msg = SecretsMsg;
    type State = WatcherState;
    type Arguments = (Gateway, Scope);

    async fn pre_start(
        &self,
        myself: ActorRef<SecretsMsg>,
        (gw, scope): (Gateway, Scope),
    ) -> Result<WatcherState, ActorProcessingErr> {
        let mut changes = gw.config_changes();
        let me = myself.clone();
        scope.spawn(async move {
            while changes.changed().await.is_ok() {
                let _ = me.cast(SecretsMsg::ConfigChanged);
            }
        });
        let me = myself.clone();
        scope.spawn(async move {
            let mut every = tokio::time::interval(TICK);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                if me.cast(SecretsMsg::Tick).is_err() {
                    return;
                }
            }
        });
        let mut state = WatcherState {
            gw,
            polls: BTreeMap::new(),
            retries: BTreeMap::new(),
            file_due: None,
            files: None,
            watched: BTreeSet::new(),
        };
        // The first pass gets a moment before the providers and channels start, so they
        // open with their keys; a slow back end finishes it in the background instead
        // (start-up never waits on one for long).
        if tokio::time::timeout(FIRST_PASS, state.refresh(None))
            .await
            .is_err()
        {
            tracing::warn!("Secrets back ends are slow to answer; resolving in the background.");
            myself.cast(SecretsMsg::Reload(None))?;
        }
        state.watch_files(&myself);
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<SecretsMsg>,
        msg: SecretsMsg,
        state: &mut WatcherState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SecretsMsg::Reload(reply) => {
                let report = state.refresh(None).await;
                state.watch_files(&myself);
                if let Some(reply) = reply {
                    let _ = reply.send(report);
                }
            }
            SecretsMsg::ConfigChanged => {
                state.refresh(None).await;
                state.watch_files(&myself);
            }
            SecretsMsg::FileChanged => state.file_due = Some(Instant::now() + FILE_SETTLE),
            SecretsMsg::Tick => state.tick().await,
        }
        Ok(())
    }
}

impl WatcherState {
    /// Polls and retries that are due, a settled file change, and the access trail.
    async fn tick(&mut self) {
        let now = Instant::now();
        let mut due: BTreeSet<String> = self
            .polls
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(alias, _)| alias.clone())
            .collect();
        due.extend(
            self.retries
                .iter()
                .filter(|(_, (_, at))| *at <= now)
                .map(|(alias, _)| alias.clone()),
        );
        if self.file_due.is_some_and(|at| at <= now) {
            self.file_due = None;
            let config = self.gw.config();
            due.extend(
                wanted(&config)
                    .0
                    .into_iter()
                    .filter(|k| k.source == pincer_config::SecretSource::File)
                    .map(|k| k.alias),
            );
        }
        if !due.is_empty() {
            self.refresh(Some(&due)).await;
        }
        self.write_trail().await;
    }

    async fn write_trail(&self) {
        let shelf = self.gw.secrets();
        let rows = shelf.take_pending();
        if rows.is_empty() {
            return;
        }
        if let Err(error) = self.gw.store().record_access(rows.clone()).await {
            tracing::debug!(%error, "access trail rows wait for the store");
            shelf.requeue(rows);
        }
    }

    /// One pass over every ref (`only: None`) or the refs of some back ends.
    async fn refresh(&mut self, only: Option<&BTreeSet<String>>) -> Report {
        let gw = self.gw.clone();
        let config = gw.config();
        let (wanted, unsettled) = wanted(&config);
        let asked: BTreeSet<Key> = wanted
            .iter()
            .filter(|k| only.is_none_or(|o| o.contains(&k.alias)))
            .cloned()
            .collect();
        let http = crate::provider::http_client();
        let ctx = fetch::Ctx {
            config: &config,
            home: gw.home(),
            env: &gw.sources().env,
            http: &http,
        };
        let outcomes = fetch::fetch(ctx, &asked).await;
        let previous = gw.secrets().snapshot();
        let mut next = Snapshot {
            generation: previous.generation,
            values: previous
                .values
                .iter()
                .filter(|(k, _)| wanted.contains(*k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            failures: previous
                .failures
                .iter()
                .filter(|(k, _)| wanted.contains(*k) && !asked.contains(*k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            degraded: previous
                .degraded
                .iter()
                .filter(|(alias, _)| {
                    wanted.iter().any(|k| &k.alias == *alias)
                        && only.is_some_and(|o| !o.contains(*alias))
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        let mut report = Report::default();
        let mut failing_aliases = BTreeSet::new();
        for (key, outcome) in outcomes {
            match outcome {
                Ok(fetched) => {
                    let same = next.values.get(&key).is_some_and(|h| {
                        h.version == fetched.version && *h.value == *fetched.value
                    });
                    if !same {
                        if next.values.contains_key(&key) {
                            report.changed.push(key.to_string());
                        }
                        next.values.insert(
                            key.clone(),
                            Held {
                                value: Arc::from(fetched.value),
                                version: fetched.version,
                                since: SystemTime::now(),
                            },
                        );
                    }
                    next.failures.remove(&key);
                }
                Err(error) => {
                    if error.is_outage() {
                        next.degraded.insert(key.alias.clone(), error.to_string());
                    }
                    failing_aliases.insert(key.alias.clone());
                    next.failures.insert(key, error.to_string());
                }
            }
        }
        self.schedule(&config, &asked, &failing_aliases);
        report.resolved = next.values.len();
        report.failing = next
            .failures
            .iter()
            .map(|(k, why)| (k.to_string(), why.clone()))
            .chain(unsettled.iter().map(|(_, r, why)| (r.clone(), why.clone())))
            .collect();
        report.degraded = next
            .degraded
            .iter()
            .map(|(a, why)| (a.clone(), why.clone()))
            .collect();
        mark_owners(&gw, &config, &next, &unsettled);
        redact::set_values(
            next.values
                .values()
                .map(|h| &*h.value)
                .chain(refs::uses(&config).iter().filter_map(|u| match &u.value {
                    SecretValue::Plain(p) => Some(p.as_str()),
                    SecretValue::Ref(_) => None,
                }))
                .collect::<Vec<_>>(),
        );
        let changed = gw.secrets().publish(next);
        for reference in &report.changed {
            tracing::info!(secret = %reference, "Secret rotated; its users take the new value from their next use.");
        }
        if changed || !report.failing.is_empty() && only.is_none() {
            tracing::info!(
                resolved = report.resolved,
                failing = report.failing.len(),
                degraded = report.degraded.len(),
                "Secrets resolved."
            );
        }
        for (reference, why) in &report.failing {
            tracing::debug!(secret = %reference, reason = %why, "Secret unresolved; retrying with backoff.");
        }
        // The gateway token follows its ref.
        if let Some(token) = &config.gateway.auth.token {
            match handle(&gw, refs::gateway_owner()).get(token) {
                Ok(token) => gw.set_token(Some(token)),
                Err(error) => tracing::warn!(%error, "The gateway token in use stays."),
            }
        }
        report
    }

    /// Next polls of the back ends just asked, and retries of failing ones.
    fn schedule(&mut self, config: &Config, asked: &BTreeSet<Key>, failing: &BTreeSet<String>) {
        let now = Instant::now();
        let aliases: BTreeSet<&String> = asked.iter().map(|k| &k.alias).collect();
        for key in asked {
            let poll = match refs::provider(config, key) {
                Some(SecretProvider::Vault { poll_interval, .. })
                | Some(SecretProvider::Aws { poll_interval, .. }) => Some(poll_interval),
                _ => None,
            };
            if let Some(every) = poll {
                self.polls.insert(key.alias.clone(), now + every.max(TICK));
            }
        }
        for alias in aliases {
            if failing.contains(alias) {
                let attempts = self.retries.get(alias).map_or(0, |(n, _)| *n) + 1;
                let wait = RETRY_FIRST
                    .saturating_mul(1 << (attempts - 1).min(8))
                    .min(RETRY_MAX);
                let jitter = Duration::from_millis(fastrand::u64(0..=wait.as_millis() as u64 / 10));
                self.retries
                    .insert(alias.clone(), (attempts, now + wait + jitter));
            } else {
                self.retries.remove(alias);
            }
        }
        // Back ends no longer configured are no longer asked.
        let live: BTreeSet<String> = wanted(config).0.into_iter().map(|k| k.alias).collect();
        self.polls.retain(|alias, _| live.contains(alias));
        self.retries.retain(|alias, _| live.contains(alias));
    }

    /// Watches the directories of the secrets files in use (a file replaced by rename is
    /// seen too).
    fn watch_files(&mut self, myself: &ActorRef<SecretsMsg>) {
        use notify::Watcher as _;
        let config = self.gw.config();
        let files: BTreeSet<PathBuf> = wanted(&config)
            .0
            .iter()
            .filter_map(|k| match refs::provider(&config, k) {
                Some(SecretProvider::File { path, .. }) => {
                    Some(refs::file_path(self.gw.home(), path.as_ref()))
                }
                _ => None,
            })
            .collect();
        if files == self.watched && (self.files.is_some() || files.is_empty()) {
            return;
        }
        self.files = None;
        self.watched = files.clone();
        if files.is_empty() {
            return;
        }
        let me = myself.clone();
        let names = files.clone();
        let made = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if let Ok(event) = event
                && event.paths.iter().any(|p| names.contains(p))
            {
                let _ = me.cast(SecretsMsg::FileChanged);
            }
        });
        let mut watcher = match made {
            Ok(w) => w,
            Err(error) => {
                tracing::warn!(%error, "Cannot watch secrets files; reload with SIGHUP or `pincer secrets reload`.");
                return;
            }
        };
        let dirs: BTreeSet<PathBuf> = files
            .iter()
            .filter_map(|f| f.parent().map(PathBuf::from))
            .collect();
        for dir in dirs {
            if let Err(error) = watcher.watch(&dir, notify::RecursiveMode::NonRecursive) {
                tracing::warn!(dir = %dir.display(), %error, "Cannot watch a secrets file's directory.");
            }
        }
        self.files = Some(watcher);
    }
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

/// Marks not ready exactly the owners with a ref that has no value, naming the ref and
/// the config key; clears the marks of owners that are fine again.
fn mark_owners(
    gw: &Gateway,
    config: &Config,
    snapshot: &Snapshot,
    unsettled: &[(String, String, String)],
) {
    let mut reasons: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for u in refs::uses(config) {
        let SecretValue::Ref(r) = &u.value else {
            continue;
        };
        let Ok(key) = refs::settle(r, config) else {
            continue;
        };
        if snapshot.values.contains_key(&key) {
            continue;
        }
        let why = snapshot
            .failures
            .get(&key)
            .map_or("not resolved yet", String::as_str);
        reasons
            .entry(u.owner.clone())
            .or_default()
            .push(format!("secret `{r}` ({}) unresolved: {why}", u.key));
    }
    for (owner, reference, why) in unsettled {
        reasons
            .entry(owner.clone())
            .or_default()
            .push(format!("secret `{reference}`: {why}"));
    }
    let shelf = gw.secrets();
    let mut marked = shelf.marked.lock();
    for owner in marked.iter() {
        if !reasons.contains_key(owner) {
            gw.set_problem(owner, None);
        }
    }
    for (owner, why) in &reasons {
        gw.set_problem(owner, Some(why.join("; ")));
    }
    *marked = reasons.into_keys().collect();
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
        let keys = settled.values().cloned().collect();
        let http = crate::provider::http_client();
        let ctx = fetch::Ctx {
            config,
            home,
            env,
            http: &http,
        };
        Self {
            outcomes: fetch::fetch(ctx, &keys).await,
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
    use super::*;
    use crate::gateway::GatewayParts;
    use pincer_config::{Format, Sources, parse_str};

    fn gateway(config: &str) -> Gateway {
        let home = std::env::temp_dir().join(format!("pincer-scope-{}", uuid::Uuid::new_v4()));
        let config = parse_str(config, Format::Toml).expect("config");
        Gateway::new(GatewayParts {
            home: home.clone(),
            sources: Sources {
                home: home.clone(),
                file: None,
                file_required: false,
                env: BTreeMap::new(),
            },
            config_file: None,
            config,
            store: pincer_store::Store::new(home.join("pincer.db")),
            listener: std::net::TcpListener::bind("127.0.0.1:0").expect("bind"),
            token: None,
        })
        .expect("gateway")
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
            since: SystemTime::now(),
        }
    }

    #[test]
    fn handles_read_only_their_own_refs() {
        let gw = gateway(TWO_AGENTS);
        let config = gw.config();
        let (keys, unsettled) = wanted(&config);
        assert!(unsettled.is_empty(), "{unsettled:?}");
        let mut snapshot = Snapshot::default();
        for key in &keys {
            snapshot
                .values
                .insert(key.clone(), held(&format!("sk-{}", key.id)));
        }
        gw.secrets().publish(snapshot);
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
        let tools = handle(&gw, format!("{}/tools", pincer_core::paths::ROOT));
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

        let rows = gw.secrets().take_pending();
        let denied = rows
            .iter()
            .filter(|r| r.outcome.starts_with("denied"))
            .count();
        assert_eq!(denied, 5, "{rows:?}");
        assert!(rows.iter().all(|r| !r.outcome.contains("sk-")));
        // Reads of the same version leave no second row.
        let _ = a.get(&value("pincer/a#key"));
        assert!(gw.secrets().take_pending().is_empty());
    }

    #[test]
    fn refs_settle_onto_their_back_end() {
        let gw = gateway(TWO_AGENTS);
        let config = gw.config();
        let r = |text: &str| SecretValue::from_text(text).as_ref().cloned().expect("ref");
        let key = refs::settle(&r("vault:x#y"), &config).expect("settles");
        assert_eq!(key.alias, "vault");
        assert_eq!(
            refs::settle(&r("env:HOME"), &config).map(|k| k.alias),
            Ok(refs::DEFAULT_ALIAS.to_string())
        );
        let none = gateway("");
        let err = refs::settle(&r("vault:x#y"), &none.config()).expect_err("no vault");
        assert!(err.contains("no Vault back end"), "{err}");
    }
}
