//! `conn:openai:<n>`: one connection slot of the OpenAI provider.
//!
//! The actor owns a socket task (unless `transport = "sse"`) and hands it the calls its
//! pool slot receives; calls that cannot go by the socket (`auto` with the socket down,
//! or an overflow lease) run as SSE requests in the actor's scope. Killing the actor ends
//! the socket and every call on it: their streams close, and the sessions try again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use pincer_actors::{ChildSpec, Scope};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::mpsc;

use super::{NAME, Settings, http, socket};
use crate::gateway::Gateway;
use crate::provider::emit::Emitter;
use crate::provider::{ErrorKind, Lease, ProviderError, ProviderMsg, ProviderRequest};
use pincer_config::Transport;

/// One call on its way to the socket.
#[derive(Debug)]
pub struct Job {
    /// The call.
    pub request: Box<ProviderRequest>,
    /// Its stream.
    pub emitter: Emitter,
    /// Its pool slot.
    pub lease: Lease,
    /// Send the whole context (a continuation was refused, or the socket is new).
    pub full: bool,
    /// Tries so far on sockets.
    pub attempt: u32,
}

/// The connection actor.
#[derive(Debug, Clone, Copy)]
pub struct Conn;

/// What it starts with.
#[derive(Debug)]
pub struct ConnArgs {
    gw: Gateway,
    scope: Scope,
    index: usize,
}

/// Its state.
#[derive(Debug)]
pub struct ConnState {
    gw: Gateway,
    scope: Scope,
    socket: Option<mpsc::Sender<Job>>,
    /// Whether the socket is open and ready (warm-ups done).
    up: Arc<AtomicBool>,
}

/// The child spec of `conn:openai:<index>`.
pub fn spec(gw: &Gateway, index: usize) -> ChildSpec {
    let gw = gw.clone();
    ChildSpec::new(format!("conn:{NAME}:{index}"), move |ctx| {
        let args = ConnArgs {
            gw: gw.clone(),
            scope: ctx.scope().clone(),
            index,
        };
        (Conn, args)
    })
}

impl Actor for Conn {
    type Msg = ProviderMsg;
    type State = ConnState;
    type Arguments = ConnArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<ProviderMsg>,
        ConnArgs { gw, scope, index }: ConnArgs,
    ) -> Result<ConnState, ActorProcessingErr> {
        let up = Arc::new(AtomicBool::new(false));
        let pool = gw.pool(NAME).ok_or("the openai pool is not registered")?;
        pool.set_chain(index, None);
        let transport = gw.config().response.transport;
        let socket = (transport != Transport::Sse).then(|| {
            // Room for the one call a slot holds, plus one racing a reconnect.
            let (jobs, rx) = mpsc::channel(2);
            let task = socket::Task::new(gw.clone(), scope.clone(), index, Arc::clone(&up));
            scope.spawn(task.run(rx));
            jobs
        });
        Ok(ConnState {
            gw,
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
        let emitter = Emitter::new(&state.gw, events, NAME, &request.request_id);
        let Some(settings) = Settings::current(&state.gw) else {
            let why = "[providers.openai] is not configured";
            let error = ProviderError::new(ErrorKind::Rejected, why);
            state
                .scope
                .spawn(async move { emitter.fail(error).await.map_or((), |_| ()) });
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
            state
                .scope
                .spawn(async move { job.emitter.fail(error).await.map_or((), |_| ()) });
            return Ok(());
        }
        let gw = state.gw.clone();
        state.scope.spawn(http::run(gw, settings, job));
        Ok(())
    }
}
