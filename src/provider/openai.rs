//! `provider:openai` and its connection actors `conn:openai:<n>` (the protocol is
//! `pincer_providers::openai`).
//!
//! A connection actor owns a socket task (unless `transport = "sse"`) and hands it the
//! calls its pool slot receives; calls that cannot go by the socket (`auto` with the
//! socket down, or an overflow lease) run as SSE requests in the actor's scope. Killing
//! the actor ends the socket and every call on it: their streams close, and the sessions
//! try again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use pincer_actors::{ChildSpec, Intensity, Scope, Strategy, SupervisorSpec};
use pincer_config::live::View;
use pincer_config::{Config, Transport};
use pincer_core::metrics::catalog::ProviderMetrics;
use pincer_core::paths;
use pincer_providers::emit::Emitter;
use pincer_providers::openai::socket::{self, SettingsSource, Slot};
use pincer_providers::openai::{Job, Settings, http};
use pincer_providers::{ErrorKind, Pool, ProviderError};
use pincer_secrets::Handle;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::mpsc;

pub use pincer_providers::openai::NAME;

use super::{ProviderMsg, ProvidersCtx, keep_keys_fresh, keys_handle, resolve_keys};

/// What a connection actor works with.
#[derive(Debug, Clone)]
pub struct ConnCtx {
    /// Its slot in the pool.
    pub index: usize,
    /// The provider's pool.
    pub pool: Arc<Pool>,
    /// The provider's metrics.
    pub metrics: Arc<ProviderMetrics>,
    /// The config in force (settings are read at each call and each connect).
    pub config: View,
    /// The provider's keys.
    pub keys: Handle,
}

/// The connection actor.
#[derive(Debug, Clone, Copy)]
pub struct Conn;

/// Its state.
#[derive(Debug)]
pub struct ConnState {
    ctx: ConnCtx,
    scope: Scope,
    socket: Option<mpsc::Sender<Job>>,
    /// Whether the socket is open and ready (warm-ups done).
    up: Arc<AtomicBool>,
}

/// The child spec of `provider:openai` with `config`'s pool size, its connections in
/// `pool`.
pub fn spec(ctx: &ProvidersCtx, pool: Arc<Pool>, config: &Config) -> ChildSpec {
    let size = config
        .providers
        .openai
        .as_ref()
        .map_or(1, |o| o.pool_size.get());
    let metrics = ctx
        .catalog
        .provider(NAME)
        .unwrap_or_else(|| Arc::new(ProviderMetrics::detached()));
    let mut spec = SupervisorSpec::new(Strategy::OneForOne).intensity(Intensity::default());
    for index in 0..size {
        let conn = ConnCtx {
            index,
            pool: pool.clone(),
            metrics: metrics.clone(),
            config: ctx.config.clone(),
            keys: keys_handle(ctx, NAME),
        };
        spec = spec.child(ChildSpec::scoped(paths::conn_id(NAME, index), Conn, conn));
    }
    spec.into_child_spec(paths::provider_id(NAME)).0
}

impl ConnCtx {
    /// The settings in force, with the keys resolved now.
    fn settings(&self) -> Option<Settings> {
        settings_now(&self.config, &self.keys)
    }
}

fn settings_now(config: &View, keys: &Handle) -> Option<Settings> {
    let config = config.current();
    let openai = config.providers.openai.as_ref()?;
    let keys = resolve_keys(NAME, keys, openai.api_key.as_ref(), &openai.api_keys);
    Settings::from_config(&config, keys)
}

impl Actor for Conn {
    type Msg = ProviderMsg;
    type State = ConnState;
    type Arguments = (ConnCtx, Scope);

    async fn pre_start(
        &self,
        _myself: ActorRef<ProviderMsg>,
        (ctx, scope): (ConnCtx, Scope),
    ) -> Result<ConnState, ActorProcessingErr> {
        let up = Arc::new(AtomicBool::new(false));
        ctx.pool.set_chain(ctx.index, None);
        keep_keys_fresh(
            &scope,
            ctx.pool.clone(),
            ctx.config.clone(),
            ctx.keys.clone(),
            NAME,
        );
        let transport = ctx.config.current().response.transport;
        let socket = (transport != Transport::Sse).then(|| {
            // Room for the one call a slot holds, plus one racing a reconnect.
            let (jobs, rx) = mpsc::channel(2);
            let (config, keys) = (ctx.config.clone(), ctx.keys.clone());
            let settings: SettingsSource = Arc::new(move || settings_now(&config, &keys));
            let task = socket::Task::new(Slot {
                index: ctx.index,
                pool: ctx.pool.clone(),
                metrics: ctx.metrics.clone(),
                settings,
                scope: scope.clone(),
                up: Arc::clone(&up),
            });
            scope.spawn(task.run(rx));
            jobs
        });
        Ok(ConnState {
            ctx,
            scope,
            socket,
            up,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<ProviderMsg>,
        msg: ProviderMsg,
        state: &mut ConnState,
    ) -> Result<(), ActorProcessingErr> {
        let ProviderMsg::Stream {
            request,
            events,
            lease,
        } = msg;
        let metrics = state.ctx.metrics.clone();
        let emitter = Emitter::new(metrics.clone(), events, NAME, &request.request_id);
        let Some(settings) = state.ctx.settings() else {
            let why = "[providers.openai] is not configured";
            let error = ProviderError::new(ErrorKind::Rejected, why);
            emitter.fail_in(&state.scope, error);
            return Ok(());
        };
        let Some(lease) = lease else {
            return Err("an openai call arrived without a pool lease".into());
        };
        lease.pool().keys.lock().set(settings.keys.clone());
        let emitter = emitter.pacing(settings.chunk_size, settings.latency_threshold);
        // Pooled sockets are opened with the provider's keys; a call with an agent's own
        // key streams over HTTP instead of reopening a shared socket for it.
        let own_key = request.api_key.is_some();
        let by_socket = !own_key
            && match settings.transport {
                Transport::Sse => false,
                Transport::Websocket => !lease.overflow(),
                Transport::Auto => !lease.overflow() && state.up.load(Ordering::Acquire),
            };
        tracing::debug!(
            provider = NAME,
            request_id = %request.request_id,
            by_socket,
            overflow = lease.overflow(),
            "call"
        );
        let job = Job {
            request,
            emitter,
            lease,
            full: false,
            attempt: 0,
        };
        let job = match (by_socket, &state.socket) {
            (true, Some(socket)) => match socket.try_send(job) {
                Ok(()) => return Ok(()),
                Err(e) => e.into_inner(),
            },
            _ => job,
        };
        if settings.transport == Transport::Websocket && !own_key {
            let error = ProviderError::new(
                ErrorKind::Exhausted,
                "the OpenAI socket cannot take the call (transport = \"websocket\")",
            );
            job.emitter.fail_in(&state.scope, error);
            return Ok(());
        }
        state.scope.spawn(http::run(metrics, settings, job));
        Ok(())
    }
}
