//! Providers: the `providers` supervisor with one `provider:<name>` child per model
//! provider. `echo` is a single actor; `openai` and `anthropic` are supervisors of their
//! connection actors (`conn:<name>:<n>`), picked per call by a [`Pool`].
//!
//! The wire formats and calls live in `pincer_providers`; these actors own the
//! connections' lives (a killed connection ends its socket and its calls), read settings
//! and keys from the config in force at each call, and hand the call there.
//!
//! A turn calls [`Providers::dispatch`] and reads [`ProviderEvent`]s from the receiver it
//! gets back. A stream that closes without [`ProviderEvent::Done`] or
//! [`ProviderEvent::Error`] means the connection (or provider) died, and the session tries
//! the turn again.

pub mod anthropic;
pub mod echo;
pub mod openai;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use pincer_actors::{Addr, ChildSpec, Intensity, Registry, Scope, Strategy, SupervisorSpec};
use pincer_config::live::View;
use pincer_config::{Config, SecretValue, Transport};
use pincer_core::metrics::catalog::Catalog;
use pincer_core::paths;
use pincer_providers::{Lease, Pool, ProviderEvent, ProviderRequest, prefix_hashes};
use pincer_secrets::{Handle, Secrets, refs};
use tokio::sync::mpsc;

/// Messages every provider (or connection) actor takes.
#[derive(Debug)]
pub enum ProviderMsg {
    /// Generate a reply, streaming it into `events`.
    Stream {
        /// What to answer.
        request: Box<ProviderRequest>,
        /// Where the reply goes.
        events: mpsc::Sender<ProviderEvent>,
        /// The pool slot this call holds (none for `echo`); released when dropped.
        lease: Option<Lease>,
    },
}

/// Why [`Providers::dispatch`] could not hand a call to a provider.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    /// Not in this build or not configured.
    #[error("provider `{0}` is not configured")]
    Unknown(String),
    /// Restarting, or every connection busy past the wait: the turn tries again later.
    #[error("provider `{0}` has no connection available")]
    Unavailable(String),
}

/// Calls one HTTP (SSE) connection actor carries at once: far more than any home server
/// needs, but a bound.
pub const HTTP_CAPACITY: usize = 256;

/// How long a call waits for a free connection before the turn gives up this attempt.
const ACQUIRE_WAIT: Duration = Duration::from_secs(30);

/// What the provider actors are built from.
#[derive(Debug, Clone)]
pub struct ProvidersCtx {
    /// The config in force.
    pub config: View,
    /// Resolved secrets (each provider reads its own keys through its handle).
    pub secrets: Arc<Secrets>,
    /// Metrics.
    pub catalog: Catalog,
    /// The pools of the configured providers.
    pub pools: Pools,
}

/// The connection pools of the providers configured at start, by name. A pool outlives
/// its connection actors: a restarted connection finds its slot, and the provider's keys
/// keep their cooldowns. Adding or removing `[providers.openai]` or
/// `[providers.anthropic]` needs a restart.
#[derive(Debug, Clone, Default)]
pub struct Pools(Arc<HashMap<&'static str, Arc<Pool>>>);

impl Pools {
    /// The pools `config` needs, their connections using `http`.
    pub fn for_config(config: &Config, http: &reqwest::Client) -> Self {
        let mut pools = HashMap::new();
        if let Some(o) = &config.providers.openai {
            let size = o.pool_size.get();
            let paths = (0..size).map(|n| paths::conn(openai::NAME, n)).collect();
            // Over SSE only, a connection actor is a plain HTTP client and takes many calls.
            let capacity = match config.response.transport {
                Transport::Sse => HTTP_CAPACITY,
                _ => pincer_providers::openai::SOCKET_CAPACITY,
            };
            pools.insert(openai::NAME, Pool::new(paths, capacity, http.clone()));
        }
        if let Some(a) = &config.providers.anthropic {
            let size = a.pool_size.get();
            let paths = (0..size).map(|n| paths::conn(anthropic::NAME, n)).collect();
            pools.insert(
                anthropic::NAME,
                Pool::new(paths, HTTP_CAPACITY, http.clone()),
            );
        }
        Self(Arc::new(pools))
    }

    /// Provider `name`'s pool.
    pub fn get(&self, name: &str) -> Option<Arc<Pool>> {
        self.0.get(name).cloned()
    }
}

/// The `providers` supervisor's child spec: `echo` always, the others when configured.
pub fn providers_spec(ctx: &ProvidersCtx) -> ChildSpec {
    let config = ctx.config.current();
    let mut spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(Intensity::default())
        .child(echo::spec(ctx.config.clone()));
    if let Some(pool) = ctx.pools.get(openai::NAME) {
        spec = spec.child(openai::spec(ctx, pool, &config));
    }
    if let Some(pool) = ctx.pools.get(anthropic::NAME) {
        spec = spec.child(anthropic::spec(ctx, pool, &config));
    }
    spec.into_child_spec("providers").0
}

/// Whether `config` has provider `name` (echo is always there).
pub fn is_configured(config: &Config, name: &str) -> bool {
    match name {
        echo::NAME => true,
        openai::NAME => config.providers.openai.is_some(),
        anthropic::NAME => config.providers.anthropic.is_some(),
        _ => false,
    }
}

/// Where turns send their model calls; see [`Providers::dispatch`].
#[derive(Debug, Clone)]
pub struct Providers {
    registry: Registry,
    pools: Pools,
    config: View,
}

impl Providers {
    /// Calls to the providers under `registry`, with their `pools`.
    pub fn new(registry: &Registry, pools: Pools, config: View) -> Self {
        Self {
            registry: registry.clone(),
            pools,
            config,
        }
    }

    /// Hands `request` to provider `name` and returns the stream of its reply.
    pub async fn dispatch(
        &self,
        name: &str,
        request: ProviderRequest,
    ) -> Result<mpsc::Receiver<ProviderEvent>, DispatchError> {
        let (events, rx) = mpsc::channel(64);
        let unavailable = || DispatchError::Unavailable(name.to_string());
        let actor = |path: &str| Addr::<ProviderMsg>::new(&self.registry, path.to_string()).get();
        if name == echo::NAME {
            let provider = actor(&paths::provider(name)).ok_or_else(unavailable)?;
            let msg = ProviderMsg::Stream {
                request: Box::new(request),
                events,
                lease: None,
            };
            provider.cast(msg).map_err(|_| unavailable())?;
            return Ok(rx);
        }
        let config = self.config.current();
        if !is_configured(&config, name) {
            return Err(DispatchError::Unknown(name.to_string()));
        }
        let pool = self.pools.get(name).ok_or_else(unavailable)?;
        let prefixes = prefix_hashes(&request);
        let running = |path: &str| self.registry.cell(path).is_some();
        // Under `auto`, an OpenAI call finding every socket busy goes over SSE at once
        // rather than waiting for a socket.
        let overflow = name == openai::NAME && config.response.transport == Transport::Auto;
        let lease = pool
            .acquire(&prefixes, &running, ACQUIRE_WAIT, overflow)
            .await
            .ok_or_else(unavailable)?;
        let conn = actor(lease.path()).ok_or_else(unavailable)?;
        let msg = ProviderMsg::Stream {
            request: Box::new(request),
            events,
            lease: Some(lease),
        };
        conn.cast(msg).map_err(|_| unavailable())?;
        Ok(rx)
    }
}

/// The handle through which provider `name` reads its keys.
fn keys_handle(ctx: &ProvidersCtx, name: &str) -> Handle {
    Handle::new(
        ctx.secrets.clone(),
        ctx.config.clone(),
        refs::provider_owner(name),
    )
}

/// Whether provider `name` names any key in `config` (resolved or not).
pub fn names_a_key(config: &Config, name: &str) -> bool {
    let (first, more) = configured_keys(config, name);
    first.is_some() || !more.is_empty()
}

/// The configured keys of provider `name` in `config`: `apiKey`, then `apiKeys`.
fn configured_keys<'a>(
    config: &'a Config,
    name: &str,
) -> (Option<&'a SecretValue>, &'a [SecretValue]) {
    match name {
        openai::NAME => config
            .providers
            .openai
            .as_ref()
            .map_or((None, &[][..]), |o| (o.api_key.as_ref(), &o.api_keys[..])),
        anthropic::NAME => config
            .providers
            .anthropic
            .as_ref()
            .map_or((None, &[][..]), |a| (a.api_key.as_ref(), &a.api_keys[..])),
        _ => (None, &[]),
    }
}

/// Keeps `pool`'s keys in line with the config and the secrets in force, from now on, in
/// a task of `scope`: a rotated or fixed key replaces a refused one even when no call
/// comes (readiness reads the ring).
fn keep_keys_fresh(scope: &Scope, pool: Arc<Pool>, config: View, keys: Handle, name: &'static str) {
    let resolve = {
        let (config, keys) = (config.clone(), keys.clone());
        move || {
            let current = config.current();
            let (first, more) = configured_keys(&current, name);
            resolve_keys(name, &keys, first, more)
        }
    };
    pool.keys.lock().set(resolve());
    let mut secrets = keys.secrets().changes();
    let mut configs = config.changes();
    scope.spawn(async move {
        loop {
            tokio::select! {
                changed = secrets.changed() => if changed.is_err() { return },
                changed = configs.changed() => if changed.is_err() { return },
            }
            pool.keys.lock().set(resolve());
        }
    });
}

/// The resolved API keys of a provider: `apiKey` first, then `apiKeys`. A key that cannot
/// be resolved is left out (with a warning that names the ref, never a value).
fn resolve_keys(
    name: &str,
    secrets: &Handle,
    first: Option<&SecretValue>,
    more: &[SecretValue],
) -> Vec<String> {
    first
        .into_iter()
        .chain(more)
        .filter_map(|value| match secrets.get(value) {
            Ok(key) => Some(key),
            Err(error) => {
                tracing::warn!(provider = name, "API key left out: {error}");
                None
            }
        })
        .collect()
}
