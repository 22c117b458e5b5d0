//! The socket task of one `conn:openai:<n>`: connect, warm up, serve calls one at a
//! time, and reconnect (protocols.md, WebSocket mode).
//!
//! - A call goes out as `response.create`, with `previous_response_id` and only the new
//!   items when it continues this socket's last response; `previous_response_not_found`
//!   resends the whole context once, `websocket_connection_limit_reached` does so once on
//!   a new socket. Other refusals follow the retry rules; a 429 rests the key, and a new
//!   socket takes the next key.
//! - A socket that breaks mid-reply is not replayed here: the call's stream closes and
//!   the session tries the turn again (one reply reaches the user).
//! - A send that fails before dispatch goes over SSE under `auto`.
//! - Reconnects back off 1, 2, 4, 8, 16 s; an idle socket is replaced at `socketMaxAge`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use pincer_actors::{Backoff, Scope};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use pincer_config::Transport;
use pincer_core::metrics::catalog::{self, ProviderMetrics};

use super::http::{self, Flow};
use super::wire::{self, Decoder, Failure};
use super::{Job, NAME, Settings};
use crate::Pool;
use crate::call::{pick_key, rest_key};
use crate::emit::Gone;
use crate::keys::Pick;
use crate::pool::Chain;
use crate::retry::{self, MAX_ATTEMPTS, Verdict};
use crate::{ErrorKind, ProviderError};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a warm-up may take before the socket carries on without it.
const WARMUP_WAIT: Duration = Duration::from_secs(8);
/// How long a connect (TCP, TLS, upgrade) may take.
const CONNECT_WAIT: Duration = Duration::from_secs(10);
/// Pauses between reconnects: 1 s doubling to 16 s. No jitter: one socket per slot, and
/// a refused upgrade waits [`REFUSED_BACKOFF`] anyway.
fn reconnect_backoff() -> Backoff {
    Backoff::exponential(Duration::from_secs(1), Duration::from_secs(16), 2.0).with_jitter(0.0)
}
/// Pause after an upgrade refused for good (a 4xx other than auth and rate limits).
const REFUSED_BACKOFF: Duration = Duration::from_secs(60);
/// Largest frame accepted from the upstream.
const MAX_FRAME: usize = 16 * 1024 * 1024;

/// Where a socket task reads its settings: the config in force, with the provider's keys
/// resolved, when it (re)connects; `None` once `[providers.openai]` is gone.
pub type SettingsSource = Arc<dyn Fn() -> Option<Settings> + Send + Sync>;

/// What a socket task works with.
#[derive(Clone)]
pub struct Slot {
    /// The slot's index in its pool.
    pub index: usize,
    /// The provider's pool: keys, HTTP client, chains.
    pub pool: Arc<Pool>,
    /// The provider's metrics.
    pub metrics: Arc<ProviderMetrics>,
    /// Its settings.
    pub settings: SettingsSource,
    /// Where calls that go over SSE run (the connection actor's scope: they end with it).
    pub scope: Scope,
    /// Tells the connection actor when calls may use the socket.
    pub up: Arc<AtomicBool>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").field("index", &self.index).finish()
    }
}

/// The socket task's state.
#[derive(Debug)]
pub struct Task {
    slot: Slot,
    /// The last response this socket produced: its id and where it left the conversation.
    latest: Option<(String, Chain)>,
    /// The key this socket opened with.
    key: Option<Pick>,
}

/// How a call on the socket ended.
enum End {
    /// Finished (done or failed); the socket is fine.
    Served,
    /// The socket must be replaced; the call, if any, is to be sent again on the new one.
    Reconnect(Option<Box<Job>>),
}

/// Where a refused call goes next.
enum Retry {
    /// Again on this socket, after the wait.
    Here,
    /// On a new socket (with the next key).
    NewSocket,
    /// Nowhere: it fails.
    No,
}

/// Why connecting failed.
struct ConnectError {
    message: String,
    status: Option<u16>,
}

impl Task {
    /// The task of `slot`.
    pub fn new(slot: Slot) -> Self {
        Self {
            slot,
            latest: None,
            key: None,
        }
    }

    /// Runs until the actor stops (its job sender drops).
    pub async fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        let mut failures: u32 = 0;
        let mut carry: Option<Job> = None;
        loop {
            let Some(settings) = (self.slot.settings)() else {
                return;
            };
            match self.connect(&settings).await {
                Ok(socket) => {
                    failures = 0;
                    match self.serve(socket, &settings, &mut jobs, carry.take()).await {
                        Some(next) => carry = next,
                        None => return,
                    }
                }
                Err(error) => {
                    failures += 1;
                    let mut backoff = reconnect_backoff().delay(failures);
                    // A proxy that refuses upgrades will not change its mind soon; SSE
                    // carries the calls meanwhile.
                    if error
                        .status
                        .is_some_and(|s| !matches!(s, 401 | 403 | 408 | 429) && s < 500)
                    {
                        backoff = REFUSED_BACKOFF;
                    }
                    tracing::warn!(
                        provider = NAME,
                        conn = self.slot.index,
                        "socket connect failed (retry in {} s): {}",
                        backoff.as_secs(),
                        error.message
                    );
                    if let Some(job) = carry.take() {
                        self.without_socket(&settings, job, &error.message);
                    }
                    // Calls that come meanwhile go over SSE (auto) or fail (websocket).
                    let pause = tokio::time::sleep(backoff);
                    tokio::pin!(pause);
                    loop {
                        tokio::select! {
                            () = &mut pause => break,
                            job = jobs.recv() => match job {
                                Some(job) => self.without_socket(&settings, job, &error.message),
                                None => return,
                            },
                        }
                    }
                }
            }
        }
    }

    /// Marks the socket ready for calls (or not), in the actor and in
    /// `pincer_provider_sockets_ready`.
    fn set_up(&self, up: bool) {
        if self.slot.up.swap(up, Ordering::AcqRel) != up {
            let ready = &self.slot.metrics.sockets_ready;
            if up { ready.inc() } else { ready.dec() }
        }
    }

    /// A call that cannot use the socket: SSE under `auto`, an error under `websocket`.
    fn without_socket(&self, settings: &Settings, job: Job, why: &str) {
        if settings.transport == Transport::Auto {
            let metrics = self.slot.metrics.clone();
            self.slot
                .scope
                .spawn(http::run(metrics, settings.clone(), job));
        } else {
            let error = ProviderError::new(
                ErrorKind::Exhausted,
                format!("the OpenAI socket is unavailable: {why}"),
            );
            job.emitter.fail_in(&self.slot.scope, error);
        }
    }

    async fn connect(&mut self, settings: &Settings) -> Result<Socket, ConnectError> {
        self.set_up(false);
        self.latest = None;
        let pool = self.slot.pool.clone();
        pool.set_chain(self.slot.index, None);
        pool.keys.lock().set(settings.keys.clone());
        let key = pick_key(&pool, NAME).await.map_err(|e| ConnectError {
            message: e.message,
            status: None,
        })?;
        let mut request = settings
            .socket_url
            .as_str()
            .into_client_request()
            .map_err(|e| ConnectError {
                message: format!("bad socket URL {}: {e}", settings.socket_url),
                status: None,
            })?;
        let headers = request.headers_mut();
        let bearer = format!("Bearer {}", key.value);
        self.key = Some(key.clone());
        if let Ok(value) = bearer.parse() {
            headers.insert("authorization", value);
        }
        headers.insert("openai-beta", http_value("responses-websocket=v1"));
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_FRAME))
            .max_frame_size(Some(MAX_FRAME));
        let connecting = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
        let (mut socket, _) = match tokio::time::timeout(CONNECT_WAIT, connecting).await {
            Err(_) => {
                return Err(ConnectError {
                    message: format!("no answer within {} s", CONNECT_WAIT.as_secs()),
                    status: None,
                });
            }
            Ok(Err(tungstenite::Error::Http(response))) => {
                let status = response.status().as_u16();
                // Only these say something about the key; a 403 or 426 may come from a
                // proxy that refuses upgrades.
                let body = response
                    .body()
                    .as_deref()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                let parsed = serde_json::from_str::<Value>(&body).ok();
                let detail = parsed
                    .as_ref()
                    .and_then(crate::call::error_message)
                    .unwrap_or_default();
                if matches!(status, 401 | 429) {
                    let code = parsed
                        .as_ref()
                        .and_then(|b| (super::http::SHAPE.code)(b))
                        .map(|c| format!("{c}: "))
                        .unwrap_or_default();
                    let why = format!("{status} {code}{detail}");
                    let hint = retry::hint(response.headers());
                    rest_key(&pool, &key, status, hint, &why);
                }
                return Err(ConnectError {
                    message: format!("upgrade refused with {status} {detail}"),
                    status: Some(status),
                });
            }
            Ok(Err(e)) => {
                return Err(ConnectError {
                    message: e.to_string(),
                    status: None,
                });
            }
            Ok(Ok(connected)) => connected,
        };
        self.slot.metrics.sockets_opened.inc();
        pool.keys.lock().accepted(key.index);
        for model in &settings.warmups {
            if let Err(why) = self.warm_up(&mut socket, model).await {
                tracing::warn!(provider = NAME, conn = self.slot.index, model = %model, "warm-up skipped: {why}");
            }
        }
        self.set_up(true);
        tracing::debug!(provider = NAME, conn = self.slot.index, "socket ready");
        Ok(socket)
    }

    /// Sends a `generate:false` create for `model` and waits (bounded) for its end.
    async fn warm_up(&mut self, socket: &mut Socket, model: &str) -> Result<(), String> {
        let frame = wire::warmup(model).to_string();
        socket
            .send(Message::text(frame))
            .await
            .map_err(|e| e.to_string())?;
        let mut decoder = Decoder::default();
        let deadline = tokio::time::Instant::now() + WARMUP_WAIT;
        loop {
            let frame = tokio::time::timeout_at(deadline, socket.next())
                .await
                .map_err(|_| format!("no answer within {} s", WARMUP_WAIT.as_secs()))?;
            let Some(Ok(Message::Text(text))) = frame else {
                match frame {
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                        return Err("the socket closed".into());
                    }
                    _ => continue,
                }
            };
            let Ok(value) = serde_json::from_str::<Value>(text.as_str()) else {
                continue;
            };
            match decoder.step(&value) {
                wire::Step::Completed { .. } => {
                    self.slot.metrics.warmups.inc();
                    return Ok(());
                }
                wire::Step::Failed(f) => return Err(f.message),
                _ => {}
            }
        }
    }

    /// Serves calls on `socket` until it must be replaced (`Some(call to resend)`) or the
    /// actor stops (`None`).
    async fn serve(
        &mut self,
        mut socket: Socket,
        settings: &Settings,
        jobs: &mut mpsc::Receiver<Job>,
        mut carry: Option<Job>,
    ) -> Option<Option<Job>> {
        let retire_at = tokio::time::Instant::now() + settings.socket_max_age;
        loop {
            let job = match carry.take() {
                Some(job) => job,
                None => tokio::select! {
                    job = jobs.recv() => job?,
                    frame = socket.next() => match frame {
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                            tracing::info!(provider = NAME, conn = self.slot.index, "socket closed while idle; reconnecting");
                            return Some(None);
                        }
                        // Pings are answered by the library; stray frames are not ours.
                        Some(Ok(_)) => continue,
                    },
                    () = tokio::time::sleep_until(retire_at) => {
                        tracing::info!(provider = NAME, conn = self.slot.index, "replacing the socket before the 60-minute limit");
                        let _ = socket.close(None).await;
                        return Some(None);
                    }
                },
            };
            // A key rotated out since this socket opened: the next call goes on a new
            // socket with the new key (a call in flight finished on the old one).
            let rotated = self
                .key
                .as_ref()
                .is_some_and(|k| !job.lease.pool().keys.lock().contains(&k.value));
            if rotated {
                tracing::info!(
                    provider = NAME,
                    conn = self.slot.index,
                    "API key rotated; reopening the socket with the new key"
                );
                let _ = socket.close(None).await;
                return Some(Some(job));
            }
            match self.call(&mut socket, settings, job).await {
                End::Served => {}
                End::Reconnect(job) => {
                    let _ = socket.close(None).await;
                    return Some(job.map(|j| *j));
                }
            }
        }
    }

    /// Runs one call on the socket.
    async fn call(&mut self, socket: &mut Socket, settings: &Settings, mut job: Job) -> End {
        let pool = Arc::clone(job.lease.pool());
        job.emitter.transport(catalog::Transport::Websocket);
        loop {
            job.attempt += 1;
            let continued = self
                .latest
                .as_ref()
                .filter(|(_, chain)| !job.full && job.lease.continues() == Some(*chain))
                .map(|(id, chain)| (id.clone(), chain.len));
            let (from, previous) = match &continued {
                Some((id, len)) => (*len, Some(id.as_str())),
                None => (0, None),
            };
            let mut frame = wire::body(&job.request, from, previous);
            frame.insert("type".into(), json!("response.create"));
            if let Err(error) = socket
                .send(Message::text(Value::Object(frame).to_string()))
                .await
            {
                // Not dispatched: safe to send another way.
                tracing::info!(
                    provider = NAME,
                    conn = self.slot.index,
                    "socket send failed: {error}"
                );
                self.set_up(false);
                self.without_socket(settings, job, &error.to_string());
                return End::Reconnect(None);
            }
            if continued.is_some() {
                self.slot.metrics.continuations.inc();
            }
            let mut decoder = Decoder::default();
            let mut listening = true;
            let failure = loop {
                let frame = match tokio::time::timeout(settings.read_timeout, socket.next()).await {
                    Ok(Some(Ok(frame))) => frame,
                    Ok(Some(Err(_)) | None) => {
                        tracing::warn!(provider = NAME, conn = self.slot.index, request_id = %job.request.request_id, "socket broke mid-reply");
                        return End::Reconnect(None);
                    }
                    Err(_) => {
                        // A stalled upstream fails the call (the fallback chain may take it,
                        // or the user hears why) and the socket is replaced.
                        let limit = settings.read_timeout.as_secs();
                        tracing::warn!(provider = NAME, conn = self.slot.index, request_id = %job.request.request_id, "no data on the socket for {limit} s");
                        let kind = if job.emitter.started() {
                            ErrorKind::Broken
                        } else {
                            ErrorKind::Exhausted
                        };
                        let why = format!(
                            "{NAME} sent no data for {limit} s (providers.{NAME}.readTimeout)"
                        );
                        let _ = job.emitter.fail(ProviderError::new(kind, why)).await;
                        return End::Reconnect(None);
                    }
                };
                let text = match frame {
                    Message::Text(text) => text,
                    Message::Close(close) => {
                        let code = close.map(|c| u16::from(c.code));
                        tracing::warn!(
                            provider = NAME,
                            conn = self.slot.index,
                            ?code,
                            "socket closed mid-reply"
                        );
                        return End::Reconnect(None);
                    }
                    _ => continue,
                };
                let Ok(value) = serde_json::from_str::<Value>(text.as_str()) else {
                    let why = format!(
                        "upstream sent a frame that is not JSON: {:.80}",
                        text.as_str()
                    );
                    let _ = job
                        .emitter
                        .fail(ProviderError::new(ErrorKind::Broken, why))
                        .await;
                    return End::Reconnect(None);
                };
                let step = decoder.step(&value);
                if !listening {
                    // The turn is gone; read to the end so the socket stays in step.
                    match step {
                        wire::Step::Completed { .. } | wire::Step::Failed(_) => return End::Served,
                        _ => continue,
                    }
                }
                match http::forward(&mut job.emitter, step).await {
                    Ok(Flow::More) => {}
                    Ok(Flow::Completed) => {
                        self.completed(&job, &decoder, &pool);
                        let _ = job.emitter.done().await;
                        return End::Served;
                    }
                    Ok(Flow::Failed(failure)) => break failure,
                    Err(Gone) => listening = false,
                }
            };
            // A failure ends this socket's chain.
            self.latest = None;
            pool.set_chain(self.slot.index, None);
            match failure.code.as_deref() {
                Some("previous_response_not_found") if !job.full => {
                    job.full = true;
                    continue;
                }
                Some("websocket_connection_limit_reached") if !job.full => {
                    job.full = true;
                    return End::Reconnect(Some(Box::new(job)));
                }
                _ => {}
            }
            match self.plan_retry(&job, &failure, &pool).await {
                Retry::Here => continue,
                Retry::NewSocket => return End::Reconnect(Some(Box::new(job))),
                Retry::No => {
                    let error = http::failed(&failure, job.emitter.started());
                    let _ = job.emitter.fail(error).await;
                    return End::Served;
                }
            }
        }
    }

    /// Whether and where a refused call is tried again. A rate-limited key rests, and
    /// with another key to use the call moves to a new socket (a socket is bound to the
    /// key it opened with); other retryable refusals wait and go again here.
    async fn plan_retry(&self, job: &Job, failure: &Failure, pool: &Pool) -> Retry {
        // A context too long fails the same way on any socket.
        let too_long = super::is_context_length(failure.code.as_deref());
        if !failure.refused || too_long || job.attempt >= MAX_ATTEMPTS {
            return Retry::No;
        }
        let Verdict::Retry(hint) = retry::verdict_for_code(failure.status, failure.code.as_deref())
        else {
            return Retry::No;
        };
        if failure.status == Some(429) && pool.keys.lock().len() > 1 {
            if let Some(key) = &self.key {
                rest_key(pool, key, 429, hint, "429 rate limited");
            }
            return Retry::NewSocket;
        }
        match retry::delay(job.attempt, hint) {
            Some(wait) => {
                tokio::time::sleep(wait).await;
                Retry::Here
            }
            None => Retry::No,
        }
    }

    /// Records where the socket's conversation now ends.
    fn completed(&mut self, job: &Job, decoder: &Decoder, pool: &Pool) {
        let Some(id) = decoder.response_id() else {
            return;
        };
        let chain = decoder
            .output_items()
            .iter()
            .fold(job.lease.request(), |chain, item| chain.then(item));
        self.latest = Some((id.to_string(), chain));
        pool.set_chain(self.slot.index, Some(chain));
    }
}

impl Drop for Task {
    // The actor was stopped or killed: its socket is gone with it.
    fn drop(&mut self) {
        self.set_up(false);
    }
}

fn http_value(text: &'static str) -> tungstenite::http::HeaderValue {
    tungstenite::http::HeaderValue::from_static(text)
}
