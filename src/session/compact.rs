//! Compaction: when a session's context passes `agents.<id>.context.compactAt` of its
//! budget, the older turns are summarized in the background and the summary is committed
//! as a transcript entry (the turns it covers stay in the store). A turn that comes
//! meanwhile uses the last good context; a session that dies meanwhile loses only the
//! work (the next compaction starts over), never a message or a reply.

use std::time::{Duration, Instant};

use pincer_core::{Role, TranscriptEntry, now_ms};
use pincer_store::CommitTurn;
use ractor::ActorRef;

use super::context::Summary;
use super::{SessionMsg, SessionState};
use crate::agent::summary::summarize;

/// After a failed compaction, the next waits this long (the summary model may be down).
const RETRY_AFTER: Duration = Duration::from_secs(60);

/// Why a compaction starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Why {
    /// The context passed `compactAt` after a turn.
    Grown,
    /// `/session compact`.
    Asked,
    /// The model refused a turn as too long: the estimate was wrong, so the context is
    /// halved and only the last turn kept whole.
    Refused,
}

impl SessionState {
    /// Starts a compaction if `why` calls for one and none runs; returns how many tokens
    /// the context holds.
    pub(super) fn maybe_compact(&mut self, myself: &ActorRef<SessionMsg>, why: Why) -> Option<u64> {
        let config = self.ctx.config.current();
        let limits = config.agents.get(&self.row.agent)?.context();
        // Memory stays bounded even when summaries keep failing.
        let dropped = self.context.forget_beyond(2 * u64::from(limits.budget));
        if dropped > 0 {
            tracing::warn!(session = %self.row.key, dropped, "No summary in time: the oldest messages left the context unsummarized (the transcript keeps them).");
        }
        if self.compacting {
            return None;
        }
        let tokens = self.context.tokens();
        if why == Why::Grown {
            let resting = self
                .compact_failed
                .is_some_and(|at| at.elapsed() < RETRY_AFTER);
            if resting || tokens <= u64::from(limits.compact_at) {
                return None;
            }
        }
        // What stays should leave room to grow: half the budget at most (half of what
        // the model refused, when it refused).
        let (target, keep) = match why {
            Why::Refused => (tokens / 2, 1),
            Why::Grown | Why::Asked => (u64::from(limits.budget) / 2, limits.keep_recent as usize),
        };
        let compaction = self.context.to_compact(target, keep)?;
        self.compacting = true;
        let through = compaction.through;
        tracing::debug!(session = %self.row.key, tokens, through, "Compacting the context.");
        let (turns, me) = (self.ctx.turns.clone(), myself.clone());
        let model = limits.summary_model;
        self.scope.spawn(async move {
            let summary = summarize(&turns, &model, compaction.input).await;
            let _ = me.cast(SessionMsg::Compacted { through, summary });
        });
        Some(tokens)
    }

    /// The model refused the current turn as larger than its window: compact (harder
    /// than usual: the estimate was wrong) and try the turn once more; a second refusal,
    /// or nothing to compact, is the turn's answer.
    pub(super) async fn too_long(&mut self, myself: &ActorRef<SessionMsg>, why: String) {
        let Some(current) = self.current.as_mut() else {
            return;
        };
        let first = current.too_long.is_none();
        current.too_long = Some(false);
        self.context.distrust();
        self.row.bytes_per_1k_tokens = self.context.per_1k_tokens();
        let started =
            first && (self.compacting || self.maybe_compact(myself, Why::Refused).is_some());
        if !started {
            let why =
                format!("the conversation does not fit in the model's context window ({why})");
            self.finish_turn(super::failure_text(&why), None, true)
                .await;
            self.next(myself).await;
        }
    }

    /// A compaction ended: its summary is committed and replaces what it covers; a turn
    /// waiting for it is tried again.
    pub(super) async fn compacted(
        &mut self,
        myself: &ActorRef<SessionMsg>,
        through: i64,
        summary: Result<String, String>,
    ) {
        self.compacting = false;
        self.save_summary(through, summary).await;
        let waiting = self.current.as_mut().filter(|c| c.too_long == Some(false));
        if let Some(current) = waiting {
            current.too_long = Some(true);
            let attempt = current.attempt + 1;
            self.start_turn(myself, attempt).await;
        }
    }

    async fn save_summary(&mut self, through: i64, summary: Result<String, String>) {
        let text = match summary {
            Ok(text) => text,
            Err(why) => {
                tracing::warn!(session = %self.row.key, "Compaction failed; the context stays as it is: {why}");
                self.compact_failed = Some(Instant::now());
                return;
            }
        };
        if through < self.row.context_from {
            return; // the context was reset meanwhile
        }
        // A summary that takes most of the budget defeats its purpose: its start is kept.
        let config = self.ctx.config.current();
        let most = config.agents.get(&self.row.agent).map_or(usize::MAX, |a| {
            (f64::from(a.context().budget / 4) * self.context.ratio()) as usize
        });
        let text = match text.char_indices().nth(most) {
            Some((cut, _)) => format!("{} […]", &text[..cut]),
            None => text,
        };
        let now = now_ms();
        let entry = TranscriptEntry {
            role: Role::System,
            content: text.clone(),
            at_ms: now,
            thinking: None,
            inbox_id: None,
            tool: None,
            summary_through: Some(through),
            outcome: None,
        };
        let committed = self
            .ctx
            .store
            .commit_turn(CommitTurn {
                inbox_id: None,
                session: Some(self.row.clone()),
                entries: vec![entry],
                reply: None,
                reply_extra: None,
            })
            .await;
        match committed {
            Ok(c) => {
                let Some(seq) = c.first_seq else { return };
                self.next_seq = seq + 1;
                self.row.summary_seq = seq;
                self.compact_failed = None;
                self.context.compacted(Summary {
                    seq,
                    through,
                    text,
                    at_ms: now,
                });
                // The web chat marks where the summary begins (a chat app would only
                // get noise from it).
                self.summary_notice = summary_notice(&self.row.channel, through);
            }
            Err(error) => {
                tracing::warn!(session = %self.row.key, %error, "Cannot save a summary; the context stays as it is.");
                self.compact_failed = Some(Instant::now());
            }
        }
    }
}

/// The note that the context was summarized, said with the next reply. Only the web chat
/// marks where the summary begins (a chat app would only get noise from it).
pub(super) fn summary_notice(channel: &str, through: i64) -> Option<String> {
    (channel == "web").then(|| format!(
        "Earlier messages (through #{through}) were summarized to keep this conversation within the model's context window; the transcript keeps them all."
    ))
}
