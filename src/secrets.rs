//! `secrets`: the watcher that resolves every secret ref of the config in force into a
//! [`Snapshot`](pincer_secrets::Snapshot), swaps it whole when something changed, and keeps
//! it fresh: file change events, Vault and AWS polls (a swap only when a version moved),
//! SIGHUP, `POST /admin/secrets/reload`, `pincer secrets reload`, config edits.
//!
//! What a ref is, how each back end is asked and how a pass folds into the snapshot live in
//! `pincer_secrets`; this actor decides when, publishes, writes the access trail to the
//! store, and marks the owners of unresolved refs not ready.
//!
//! A ref that cannot be resolved never stops the gateway: its owners show not ready with
//! the ref and the reason, and it is retried with backoff. A back end that fails keeps its
//! last good values and shows degraded in `/readyz?verbose`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pincer_actors::{Addr, Backoff, ChildSpec, Scope};
use pincer_config::live::View;
use pincer_config::{Config, SecretProvider, SecretSource, SecretValue};
use pincer_secrets::refs::{self, Key};
use pincer_secrets::{Handle, Report, Secrets, Snapshot, fetch, pass, redact, wanted};
use pincer_store::Store;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::time::Instant;

use crate::status::Status;
use crate::token::GatewayToken;

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

/// What the watcher works with.
#[derive(Debug, Clone)]
pub struct SecretsCtx {
    /// The config in force (its refs and back ends).
    pub config: View,
    /// `$PINCER_HOME` (the default secrets file is there).
    pub home: PathBuf,
    /// The environment the gateway started with (`env:` refs).
    pub env: Arc<BTreeMap<String, String>>,
    /// Where resolved values are published.
    pub secrets: Arc<Secrets>,
    /// Where the access trail is written.
    pub store: Store,
    /// Where owners of unresolved refs are marked not ready.
    pub status: Arc<Status>,
    /// The gateway token, which follows its ref.
    pub token: Arc<GatewayToken>,
    /// The client for Vault and AWS.
    pub http: reqwest::Client,
}

/// The `secrets` actor.
#[derive(Debug, Clone, Copy)]
pub struct Watcher;

/// The watcher's schedule. What it resolved lives in [`Secrets`], not here.
#[allow(missing_debug_implementations)] // holds a notify watcher, which has no Debug
pub struct WatcherState {
    ctx: SecretsCtx,
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
pub fn spec(ctx: SecretsCtx) -> ChildSpec {
    ChildSpec::scoped("secrets", Watcher, ctx)
}

/// How long start-up waits for the first resolution pass.
const FIRST_PASS: Duration = Duration::from_secs(2);
/// How often the watcher looks at its schedule.
const TICK: Duration = Duration::from_millis(100);
/// How long a file must be quiet before it is read again.
const FILE_SETTLE: Duration = Duration::from_millis(50);

/// Retries of a failing back end: 0.5 s doubling to 60 s, jittered.
fn retry_backoff() -> Backoff {
    Backoff::exponential(Duration::from_millis(500), Duration::from_secs(60), 2.0).with_jitter(0.1)
}

/// Asks the running watcher to reload (SIGHUP); `false` if it is not running.
pub fn request_reload(watcher: &Addr<SecretsMsg>) -> bool {
    watcher
        .get()
        .is_some_and(|a| a.cast(SecretsMsg::Reload(None)).is_ok())
}

/// Reloads through the running watcher and waits for its report.
pub async fn reload(watcher: &Addr<SecretsMsg>) -> Result<Report, String> {
    let actor = watcher.get().ok_or("the secrets actor is not running")?;
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
    type Arguments = (SecretsCtx, Scope);

    async fn pre_start(
        &self,
        myself: ActorRef<SecretsMsg>,
        (ctx, scope): (SecretsCtx, Scope),
    ) -> Result<WatcherState, ActorProcessingErr> {
        let mut changes = ctx.config.changes();
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
            ctx,
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

// === impl WatcherState ===

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
            let config = self.ctx.config.current();
            due.extend(
                wanted(&config)
                    .0
                    .into_iter()
                    .filter(|k| k.source == SecretSource::File)
                    .map(|k| k.alias),
            );
        }
        if !due.is_empty() {
            self.refresh(Some(&due)).await;
        }
        self.write_trail().await;
    }

    async fn write_trail(&self) {
        let secrets = &self.ctx.secrets;
        let rows = secrets.take_pending();
        if rows.is_empty() {
            return;
        }
        if let Err(error) = self.ctx.store.record_access(rows.clone()).await {
            tracing::debug!(%error, "access trail rows wait for the store");
            secrets.requeue(rows);
        }
    }

    /// One pass over every ref (`only: None`) or the refs of some back ends.
    async fn refresh(&mut self, only: Option<&BTreeSet<String>>) -> Report {
        let ctx = self.ctx.clone();
        let config = ctx.config.current();
        let (wanted, unsettled) = wanted(&config);
        let asked: BTreeSet<Key> = wanted
            .iter()
            .filter(|k| only.is_none_or(|o| o.contains(&k.alias)))
            .cloned()
            .collect();
        let fetch_ctx = fetch::Ctx {
            config: &config,
            home: &ctx.home,
            env: &ctx.env,
            http: &ctx.http,
        };
        let outcomes = fetch::fetch(fetch_ctx, &asked).await;
        let previous = ctx.secrets.snapshot();
        let merged = pass::merge(&previous, &wanted, &asked, only, outcomes, &unsettled);
        self.schedule(&config, &asked, &merged.failing);
        let (next, report) = (merged.next, merged.report);
        mark_owners(&ctx, &config, &next, &unsettled);
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
        let changed = ctx.secrets.publish(next);
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
        // The gateway token follows its ref, but never to a value too short to guard
        // anything: then the token in use stays.
        if let Some(token) = &config.gateway.auth.token {
            let handle = Handle::new(
                ctx.secrets.clone(),
                ctx.config.clone(),
                refs::gateway_owner(),
            );
            match handle.get(token) {
                Ok(value) => match pincer_config::token_problem(&value) {
                    None => ctx.token.set(Some(value.trim().to_string())),
                    Some(problem) => {
                        let secret = token
                            .as_ref()
                            .map_or_else(|| "gateway.auth.token".to_string(), |r| r.to_string());
                        tracing::warn!(%secret, "The gateway token's new value {problem}; the token in use stays.");
                    }
                },
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
                let wait = retry_backoff().delay(attempts);
                self.retries.insert(alias.clone(), (attempts, now + wait));
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
        let config = self.ctx.config.current();
        let files: BTreeSet<PathBuf> = wanted(&config)
            .0
            .iter()
            .filter_map(|k| match refs::provider(&config, k) {
                Some(SecretProvider::File { path, .. }) => {
                    Some(refs::file_path(&self.ctx.home, path.as_ref()))
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

/// Marks not ready exactly the owners with a required ref that has no value, naming the
/// ref and the config key; clears the marks of owners that are fine again. A tool's key
/// is not required (`refs::Use::required`): its calls say what is missing instead.
fn mark_owners(
    ctx: &SecretsCtx,
    config: &Config,
    snapshot: &Snapshot,
    unsettled: &[(String, String, String)],
) {
    let uses = refs::uses(config);
    let optional: BTreeSet<&str> = uses
        .iter()
        .filter(|u| !u.required)
        .map(|u| u.owner.as_str())
        .collect();
    let mut reasons: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for u in uses.iter().filter(|u| u.required) {
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
        if optional.contains(owner.as_str()) {
            continue;
        }
        reasons
            .entry(owner.clone())
            .or_default()
            .push(format!("secret `{reference}`: {why}"));
    }
    let before = ctx
        .secrets
        .swap_marked(reasons.keys().cloned().collect::<BTreeSet<_>>());
    for owner in before.iter() {
        if !reasons.contains_key(owner) {
            ctx.status.set_problem(owner, None);
        }
    }
    for (owner, why) in &reasons {
        ctx.status.set_problem(owner, Some(why.join("; ")));
    }
}
