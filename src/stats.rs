//! The gateway's own metrics, named once: messages in and out per channel, turns, latency.
//!
//! Restarts per actor kind and inbox depth are read when `/metrics` is rendered (from the
//! registry and the store), so they are not here.

use std::time::Duration;

use pincer_core::metrics::{Counter, Histogram, LATENCY_BUCKETS, Metrics};

/// Handles on the message-path metrics.
#[derive(Clone, Debug)]
pub struct Stats {
    metrics: Metrics,
    turn_latency: Histogram,
    turns_failed: Counter,
    turns_retried: Counter,
}

impl Stats {
    /// Registers the families in `metrics`.
    pub fn new(metrics: &Metrics) -> Self {
        Self {
            metrics: metrics.clone(),
            turn_latency: metrics.histogram(
                "pincer_turn_seconds",
                "Time from a turn's start to its final reply.",
                &[],
                LATENCY_BUCKETS,
            ),
            turns_failed: metrics.counter(
                "pincer_turns_failed_total",
                "Turns that ended in an error reply.",
                &[],
            ),
            turns_retried: metrics.counter(
                "pincer_turns_retried_total",
                "Turns started again because the turn, its agent or its provider died.",
                &[],
            ),
        }
    }

    /// A message was accepted into the inbox.
    pub fn message_in(&self, channel: &str) {
        self.metrics
            .counter(
                "pincer_messages_in_total",
                "Messages accepted into the inbox, per channel.",
                &[("channel", channel)],
            )
            .inc();
    }

    /// A reply was handed to a channel.
    pub fn message_out(&self, channel: &str, latency: Duration) {
        self.metrics
            .counter(
                "pincer_messages_out_total",
                "Replies handed to the channel, per channel.",
                &[("channel", channel)],
            )
            .inc();
        self.metrics
            .histogram(
                "pincer_reply_seconds",
                "Time from a message's acceptance to its reply, per channel.",
                &[("channel", channel)],
                LATENCY_BUCKETS,
            )
            .observe_duration(latency);
    }

    /// A turn finished with a reply from the model.
    pub fn turn(&self, agent: &str, took: Duration) {
        self.metrics
            .counter(
                "pincer_turns_total",
                "Turns answered by a model, per agent.",
                &[("agent", agent)],
            )
            .inc();
        self.turn_latency.observe_duration(took);
    }

    /// A turn ended in an error reply.
    pub fn turn_failed(&self) {
        self.turns_failed.inc();
    }

    /// A turn was started again.
    pub fn turn_retried(&self) {
        self.turns_retried.inc();
    }
}
