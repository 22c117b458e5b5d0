//! Every metric the gateway keeps, defined here and registered once, when the gateway
//! starts: the hot paths (a message in, a reply out, a token streamed) only touch handles
//! made here, which costs an atomic add and never a lock or an allocation.
//!
//! | family | labels | kept by |
//! |---|---|---|
//! | `pincer_messages_in_total` | channel | channel intake |
//! | `pincer_messages_out_total`, `pincer_reply_seconds` | channel | sessions |
//! | `pincer_turns_total` | agent | sessions (a handle per session, made when it starts) |
//! | `pincer_turn_seconds`, `pincer_turns_failed_total`, `pincer_turns_retried_total` | | sessions |
//! | `pincer_provider_retries_total` | provider | HTTP model calls |
//! | `pincer_provider_first_token_seconds` | provider, transport | model streams |
//! | `pincer_provider_slow_total` | provider, kind | model streams |
//! | `pincer_provider_sockets_ready`, `pincer_provider_sockets_opened_total`, `pincer_provider_warmups_total`, `pincer_provider_continuations_total` | provider | OpenAI sockets |
//! | `pincer_connections_open` | | the gateway port |
//! | `pincer_connections_closed_total` | reason | the gateway port |
//!
//! Three more families are computed when `/metrics` is scraped, from the registry and the
//! store rather than kept: `pincer_actor_restarts_total` and `pincer_actors` per actor kind,
//! `pincer_inbox_pending` and `pincer_inbox_undelivered` (see [`SCRAPED`]).
//!
//! Channel kinds and providers are fixed sets, so their series exist from the start (at
//! zero). Agents come and go with the config: an agent's series is made the first time a
//! session of it starts, and kept.

use std::sync::Arc;

use super::{Counter, Gauge, Histogram, LATENCY_BUCKETS, Metrics};

/// The channel kinds, in label order.
pub const CHANNELS: [&str; 4] = ["web", "http", "telegram", "discord"];

/// The providers with metrics of their own (echo, being local, has none).
pub const PROVIDERS: [&str; 2] = ["openai", "anthropic"];

/// The families computed at scrape time: `(name, type, help)`.
pub const SCRAPED: [(&str, &str, &str); 4] = [
    (
        "pincer_actor_restarts_total",
        "counter",
        "Restarts, per actor kind.",
    ),
    (
        "pincer_actors",
        "gauge",
        "Actors in the registry, per kind.",
    ),
    (
        "pincer_inbox_pending",
        "gauge",
        "Inbox entries waiting for a reply.",
    ),
    (
        "pincer_inbox_undelivered",
        "gauge",
        "Replies not yet handed to their channel.",
    ),
];

/// Bucket bounds of a model's time to first token, in seconds.
const FIRST_TOKEN_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The gateway's metrics; see the [module docs](self). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Catalog {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Metrics,
    channels: [ChannelMetrics; 4],
    providers: [Arc<ProviderMetrics>; 2],
    turns: TurnMetrics,
    connections: ConnectionMetrics,
}

/// The metrics of one channel kind.
#[derive(Debug, Clone)]
pub struct ChannelMetrics {
    /// Messages accepted into the inbox.
    pub messages_in: Counter,
    /// Replies handed to the channel.
    pub messages_out: Counter,
    /// Time from a message's acceptance to its reply.
    pub reply_seconds: Histogram,
}

/// The metrics of turns, all agents together.
#[derive(Debug, Clone)]
pub struct TurnMetrics {
    /// Time from a turn's start to its final reply.
    pub seconds: Histogram,
    /// Turns that ended in an error reply.
    pub failed: Counter,
    /// Turns started again because the turn, its agent or its provider died.
    pub retried: Counter,
}

/// The metrics of the connections on the gateway port.
#[derive(Debug, Clone)]
pub struct ConnectionMetrics {
    /// Connections held: serving, idle, or upgraded to a WebSocket.
    pub open: Gauge,
    /// Connections the gateway closed or turned away, by [`Closed`].
    closed: [Counter; 5],
}

/// Why the gateway closed a connection, for `pincer_connections_closed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// No whole request head within `gateway.headerReadTimeout`.
    HeaderTimeout,
    /// Idle between requests for `gateway.idleTimeout`.
    IdleTimeout,
    /// Idle the longest when a new connection needed room under `gateway.maxConnections`.
    Evicted,
    /// Turned away at `gateway.maxConnections` with no idle connection to close.
    Refused,
    /// Had bytes to send and its client took none of them for `gateway.writeTimeout`.
    WriteStall,
}

/// The metrics of one model provider.
#[derive(Debug)]
pub struct ProviderMetrics {
    /// Calls sent again after a retryable failure.
    pub retries: Counter,
    /// Time to first token over SSE and over a WebSocket.
    first_token: [Histogram; 2],
    /// Times to first token above `streamOptions.latencyThreshold`.
    pub slow_first_token: Counter,
    /// Gaps between tokens above `streamOptions.latencyThreshold`.
    pub slow_gap: Counter,
    /// WebSockets open and warmed up.
    pub sockets_ready: Gauge,
    /// WebSockets opened.
    pub sockets_opened: Counter,
    /// Sockets warmed up for a model (`generate:false`).
    pub warmups: Counter,
    /// Calls sent as a continuation (`previous_response_id`) on a socket.
    pub continuations: Counter,
}

/// How a model call travels, for `pincer_provider_first_token_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// HTTP with server-sent events.
    Sse,
    /// A WebSocket.
    Websocket,
}

impl Transport {
    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sse => "sse",
            Self::Websocket => "websocket",
        }
    }
}

// === impl Catalog ===

impl Catalog {
    /// Registers every family in `registry`.
    pub fn new(registry: &Metrics) -> Self {
        let channels = CHANNELS.map(|channel| ChannelMetrics {
            messages_in: registry.counter(
                "pincer_messages_in_total",
                "Messages accepted into the inbox, per channel.",
                &[("channel", channel)],
            ),
            messages_out: registry.counter(
                "pincer_messages_out_total",
                "Replies handed to the channel, per channel.",
                &[("channel", channel)],
            ),
            reply_seconds: registry.histogram(
                "pincer_reply_seconds",
                "Time from a message's acceptance to its reply, per channel.",
                &[("channel", channel)],
                LATENCY_BUCKETS,
            ),
        });
        let providers =
            PROVIDERS.map(|provider| Arc::new(ProviderMetrics::new(registry, provider)));
        let turns = TurnMetrics {
            seconds: registry.histogram(
                "pincer_turn_seconds",
                "Time from a turn's start to its final reply.",
                &[],
                LATENCY_BUCKETS,
            ),
            failed: registry.counter(
                "pincer_turns_failed_total",
                "Turns that ended in an error reply.",
                &[],
            ),
            retried: registry.counter(
                "pincer_turns_retried_total",
                "Turns started again because the turn, its agent or its provider died.",
                &[],
            ),
        };
        Self {
            inner: Arc::new(Inner {
                registry: registry.clone(),
                channels,
                providers,
                turns,
                connections: ConnectionMetrics::new(registry),
            }),
        }
    }

    /// The registry, for rendering.
    pub fn registry(&self) -> &Metrics {
        &self.inner.registry
    }

    /// The metrics of channel kind `kind` (`None` for a kind that does not exist).
    pub fn channel(&self, kind: &str) -> Option<&ChannelMetrics> {
        let i = CHANNELS.iter().position(|c| *c == kind)?;
        self.inner.channels.get(i)
    }

    /// The metrics of provider `name` (`None` for echo and unknown names).
    pub fn provider(&self, name: &str) -> Option<Arc<ProviderMetrics>> {
        let i = PROVIDERS.iter().position(|p| *p == name)?;
        self.inner.providers.get(i).cloned()
    }

    /// The turn metrics of every agent.
    pub fn turns(&self) -> &TurnMetrics {
        &self.inner.turns
    }

    /// The metrics of the gateway port's connections.
    pub fn connections(&self) -> &ConnectionMetrics {
        &self.inner.connections
    }

    /// `pincer_turns_total` of agent `agent`: made on first use, so call it when a session
    /// starts and keep the handle, not per turn.
    pub fn turns_of(&self, agent: &str) -> Counter {
        self.inner.registry.counter(
            "pincer_turns_total",
            "Turns answered by a model, per agent.",
            &[("agent", agent)],
        )
    }
}

// === impl ConnectionMetrics ===

impl ConnectionMetrics {
    fn new(registry: &Metrics) -> Self {
        let closed = [
            Closed::HeaderTimeout,
            Closed::IdleTimeout,
            Closed::Evicted,
            Closed::Refused,
            Closed::WriteStall,
        ]
        .map(|reason| {
            registry.counter(
                "pincer_connections_closed_total",
                "Connections the gateway closed (timeouts, room made at the cap, clients that stopped reading) or turned away at the cap.",
                &[("reason", reason.name())],
            )
        });
        Self {
            open: registry.gauge(
                "pincer_connections_open",
                "Connections held on the gateway port: serving, idle, or upgraded to a WebSocket.",
                &[],
            ),
            closed,
        }
    }

    /// Handles detached from any registry (a server built without a gateway: tests).
    pub fn detached() -> Self {
        Self::new(&Metrics::new())
    }

    /// The count of connections closed for `reason`.
    pub fn closed(&self, reason: Closed) -> &Counter {
        &self.closed[reason as usize]
    }
}

// === impl Closed ===

impl Closed {
    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            Self::HeaderTimeout => "header_timeout",
            Self::IdleTimeout => "idle_timeout",
            Self::Evicted => "evicted",
            Self::Refused => "refused",
            Self::WriteStall => "write_stall",
        }
    }
}

// === impl ProviderMetrics ===

impl ProviderMetrics {
    fn new(registry: &Metrics, provider: &'static str) -> Self {
        let labels = [("provider", provider)];
        let first_token = [Transport::Sse, Transport::Websocket].map(|t| {
            registry.histogram(
                "pincer_provider_first_token_seconds",
                "Time from sending a model call to its first token.",
                &[("provider", provider), ("transport", t.name())],
                FIRST_TOKEN_BUCKETS,
            )
        });
        let slow = |kind| {
            registry.counter(
                "pincer_provider_slow_total",
                "Times to first token or gaps between tokens above streamOptions.latencyThreshold.",
                &[("provider", provider), ("kind", kind)],
            )
        };
        Self {
            retries: registry.counter(
                "pincer_provider_retries_total",
                "Model calls sent again after a retryable failure.",
                &labels,
            ),
            first_token,
            slow_first_token: slow("first_token"),
            slow_gap: slow("gap"),
            sockets_ready: registry.gauge(
                "pincer_provider_sockets_ready",
                "Provider WebSockets open and warmed up, ready for calls.",
                &labels,
            ),
            sockets_opened: registry.counter(
                "pincer_provider_sockets_opened_total",
                "Provider WebSockets opened.",
                &labels,
            ),
            warmups: registry.counter(
                "pincer_provider_warmups_total",
                "Sockets warmed up for a model (generate:false).",
                &labels,
            ),
            continuations: registry.counter(
                "pincer_provider_continuations_total",
                "Calls sent as a continuation (previous_response_id) on a socket.",
                &labels,
            ),
        }
    }

    /// Handles detached from any registry (a provider built without a gateway: tests).
    pub fn detached() -> Self {
        Self::new(&Metrics::new(), "detached")
    }

    /// Time to first token over `transport`.
    pub fn first_token(&self, transport: Transport) -> &Histogram {
        match transport {
            Transport::Sse => &self.first_token[0],
            Transport::Websocket => &self.first_token[1],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fixed_series_exists_from_the_start() {
        let registry = Metrics::new();
        let catalog = Catalog::new(&registry);
        let text = registry.render();
        for channel in CHANNELS {
            assert!(
                text.contains(&format!(
                    "pincer_messages_in_total{{channel=\"{channel}\"}} 0"
                )),
                "{text}"
            );
        }
        for provider in PROVIDERS {
            assert!(
                text.contains(&format!(
                    "pincer_provider_sockets_ready{{provider=\"{provider}\"}} 0"
                )),
                "{text}"
            );
        }
        assert!(text.contains("pincer_connections_open 0"), "{text}");
        assert!(
            text.contains("pincer_connections_closed_total{reason=\"refused\"} 0"),
            "{text}"
        );
        assert!(catalog.channel("smoke-signals").is_none());
        assert!(catalog.provider("echo").is_none());
    }

    #[test]
    fn handles_count_into_the_rendered_series() {
        let registry = Metrics::new();
        let catalog = Catalog::new(&registry);
        catalog
            .channel("telegram")
            .expect("telegram")
            .messages_in
            .inc();
        let openai = catalog.provider("openai").expect("openai");
        openai.retries.inc();
        openai.first_token(Transport::Websocket).observe(0.2);
        catalog.turns_of("main").inc();
        catalog.turns_of("main").inc();
        let text = registry.render();
        assert!(
            text.contains("pincer_messages_in_total{channel=\"telegram\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("pincer_provider_retries_total{provider=\"openai\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("pincer_provider_first_token_seconds_count{provider=\"openai\",transport=\"websocket\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("pincer_turns_total{agent=\"main\"} 2"),
            "{text}"
        );
    }
}
