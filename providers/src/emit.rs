//! The sending end of one call's stream: groups reply deltas into chunks of
//! `streamOptions.chunkSize` tokens (one upstream delta is one token) and watches the
//! pace: a time to first token, or a gap between tokens, longer than
//! `streamOptions.latencyThreshold` logs a warning and counts in
//! `pincer_provider_slow_total`.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use std::sync::Arc;

use pincer_core::metrics::catalog::{ProviderMetrics, Transport};

use super::{ProviderError, ProviderEvent, Reasoning, ToolCall, Usage};

/// Where a call's events go.
#[derive(Debug)]
pub struct Emitter {
    events: mpsc::Sender<ProviderEvent>,
    chunk_size: usize,
    threshold: Duration,
    pending: String,
    pending_tokens: usize,
    last: Instant,
    first_seen: bool,
    labels: Labels,
}

#[derive(Debug)]
struct Labels {
    metrics: Arc<ProviderMetrics>,
    provider: &'static str,
    transport: Transport,
    request_id: String,
}

/// The receiver went away (the turn ended): stop the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone;

impl Emitter {
    /// An emitter for call `request_id` of `provider` (counted in `metrics`), over SSE
    /// until told otherwise, timed from now.
    pub fn new(
        metrics: Arc<ProviderMetrics>,
        events: mpsc::Sender<ProviderEvent>,
        provider: &'static str,
        request_id: &str,
    ) -> Self {
        Self {
            events,
            chunk_size: 1,
            threshold: Duration::ZERO,
            pending: String::new(),
            pending_tokens: 0,
            last: Instant::now(),
            first_seen: false,
            labels: Labels {
                metrics,
                provider,
                transport: Transport::Sse,
                request_id: request_id.to_string(),
            },
        }
    }

    /// Chunk size (tokens per pushed delta) and latency threshold (zero: off).
    pub fn pacing(mut self, chunk_size: usize, threshold: Duration) -> Self {
        self.chunk_size = chunk_size.max(1);
        self.threshold = threshold;
        self
    }

    /// Names the transport in logs and metrics; restarts the clock (a call that moved
    /// from one transport to another is timed from the move).
    pub fn transport(&mut self, transport: Transport) {
        self.labels.transport = transport;
        self.last = Instant::now();
    }

    /// Whether any reply text or tool call went out (a failure after that is
    /// [`ErrorKind::Broken`](super::ErrorKind::Broken)).
    pub fn started(&self) -> bool {
        self.first_seen
    }

    /// One upstream token of reply text.
    pub async fn delta(&mut self, text: &str) -> Result<(), Gone> {
        self.pace();
        self.pending.push_str(text);
        self.pending_tokens += 1;
        if self.pending_tokens >= self.chunk_size {
            self.flush().await?;
        }
        Ok(())
    }

    /// Thinking text.
    pub async fn thinking(&mut self, text: &str) -> Result<(), Gone> {
        self.pace();
        self.send(ProviderEvent::Thinking(text.to_string())).await
    }

    /// A tool call.
    pub async fn tool_call(&mut self, call: ToolCall) -> Result<(), Gone> {
        self.first_seen = true;
        self.flush().await?;
        self.send(ProviderEvent::ToolCall(call)).await
    }

    /// A complete thinking block (its text went out as [`thinking`](Self::thinking)).
    pub async fn reasoning(&mut self, block: Reasoning) -> Result<(), Gone> {
        self.send(ProviderEvent::Reasoning(block)).await
    }

    /// The tokens the call used; after every delta (pending text goes out first).
    pub async fn usage(&mut self, usage: Usage) -> Result<(), Gone> {
        self.flush().await?;
        self.send(ProviderEvent::Usage(usage)).await
    }

    /// The reply stopped at the output cap; before [`usage`](Self::usage).
    pub async fn cut(&mut self) -> Result<(), Gone> {
        self.flush().await?;
        self.send(ProviderEvent::Cut).await
    }

    /// The end of the reply.
    pub async fn done(mut self) -> Result<(), Gone> {
        self.flush().await?;
        self.send(ProviderEvent::Done).await
    }

    /// The call failed.
    pub async fn fail(mut self, error: ProviderError) -> Result<(), Gone> {
        self.flush().await?;
        tracing::warn!(
            provider = self.labels.provider,
            request_id = %self.labels.request_id,
            "model call failed: {error}"
        );
        self.send(ProviderEvent::Error(error)).await
    }

    /// Fails the call from a task of `scope`, so that an actor's handler does not wait for
    /// the turn to read the error.
    pub fn fail_in(self, scope: &pincer_actors::Scope, error: ProviderError) {
        scope.spawn(async move {
            let _ = self.fail(error).await;
        });
    }

    /// Whether the turn is still listening.
    pub fn is_closed(&self) -> bool {
        self.events.is_closed()
    }

    async fn flush(&mut self) -> Result<(), Gone> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.pending_tokens = 0;
        let text = std::mem::take(&mut self.pending);
        self.send(ProviderEvent::Delta(text)).await
    }

    async fn send(&mut self, event: ProviderEvent) -> Result<(), Gone> {
        self.events.send(event).await.map_err(|_| Gone)
    }

    fn pace(&mut self) {
        let now = Instant::now();
        let waited = now - self.last;
        self.last = now;
        let kind = if self.first_seen {
            "gap"
        } else {
            "first_token"
        };
        if !self.first_seen {
            self.first_seen = true;
            let l = &self.labels;
            l.metrics.first_token(l.transport).observe_duration(waited);
        }
        if self.threshold.is_zero() || waited <= self.threshold {
            return;
        }
        let l = &self.labels;
        tracing::warn!(
            provider = l.provider,
            transport = l.transport.name(),
            request_id = %l.request_id,
            "slow stream: {kind} took {} ms (latencyThreshold {} ms)",
            waited.as_millis(),
            self.threshold.as_millis()
        );
        if kind == "first_token" {
            l.metrics.slow_first_token.inc();
        } else {
            l.metrics.slow_gap.inc();
        }
    }
}
