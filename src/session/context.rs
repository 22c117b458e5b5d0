//! What a session keeps of its conversation for the next turn: the latest summary, the
//! messages after the turns it covers, and how many bytes make a token for this session.
//!
//! The transcript in the store keeps everything; this is only the context. It is bounded
//! by compaction: once the messages pass `agents.<id>.context.compactAt` of the budget,
//! the older ones are summarized ([`Context::to_compact`]) and dropped from here when the
//! summary is committed ([`Context::compacted`]). The turn fits what it is given into the
//! budget (newest first), so a turn that comes while a compaction runs uses the last good
//! context.

use std::collections::VecDeque;

use pincer_core::{Role, TranscriptEntry};
use pincer_providers::ChatMessage;

/// Bytes per token before a reply has told us better: English text with a GPT or Claude
/// tokenizer is about 4.
pub const DEFAULT_BYTES_PER_TOKEN: f64 = 4.0;

/// The bounds of a calibrated ratio: past them a usage figure is more likely wrong
/// (cached prompts, a provider that counts differently) than the text that odd.
const RATIO_BOUNDS: (f64, f64) = (1.0, 8.0);

/// The most of one message a summary request carries: a pasted log is summarized by its
/// start and end, not sent whole.
const SUMMARY_MESSAGE_CHARS: usize = 4_000;

/// The most of a tool call a note keeps.
const NOTE_CHARS: usize = 200;

/// The summary of the turns before `through`, and where it is in the transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Its own sequence number.
    pub seq: i64,
    /// The last sequence number it covers.
    pub through: i64,
    /// The text.
    pub text: String,
    /// When it was written, ms since the epoch.
    pub at_ms: u64,
}

/// A session's context.
#[derive(Debug, Clone)]
pub struct Context {
    summary: Option<Summary>,
    /// Messages after the summary's turns, oldest first, with their sequence numbers; a
    /// tool call is kept as a short note (for summaries only: turns do not see notes).
    recent: VecDeque<(i64, Kept)>,
    /// Bytes per token, from the provider's own counts.
    ratio: f64,
}

/// One kept message.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kept {
    Message(ChatMessage),
    /// `tool <name> <arguments>`: what was called, not what it returned.
    Note(String),
}

/// What a compaction summarizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compaction {
    /// The last sequence number it covers.
    pub through: i64,
    /// The text to summarize: the previous summary, then the messages, as a transcript.
    pub input: String,
}

impl Default for Context {
    fn default() -> Self {
        Self {
            summary: None,
            recent: VecDeque::new(),
            ratio: DEFAULT_BYTES_PER_TOKEN,
        }
    }
}

impl Context {
    /// The context from a summary (if any) and the entries after what it covers.
    pub fn load(summary: Option<Summary>, entries: Vec<(i64, TranscriptEntry)>) -> Self {
        let mut context = Self {
            summary,
            ..Self::default()
        };
        let after = context.summary.as_ref().map_or(0, |s| s.through);
        // A command and its answer (a system entry) never entered the live context: a
        // context loaded again (after a restart, on waking) leaves them out as well.
        let commands: std::collections::HashSet<i64> = entries
            .iter()
            .filter(|(_, e)| e.role == Role::System)
            .filter_map(|(_, e)| e.inbox_id)
            .collect();
        for (seq, entry) in entries {
            let command = entry.inbox_id.is_some_and(|id| commands.contains(&id));
            if seq > after && entry.summary_through.is_none() && !command {
                context.push_entry(seq, entry);
            }
        }
        context
    }

    /// Adds a committed entry.
    pub fn push_entry(&mut self, seq: i64, entry: TranscriptEntry) {
        let kept = match (entry.role, &entry.tool) {
            (Role::User | Role::Assistant, _) => Kept::Message(ChatMessage {
                role: entry.role,
                content: entry.content.into(),
            }),
            // A note, not the call: its arguments may be a long command or document.
            (Role::Tool, Some(tool)) => Kept::Note(clip(
                &format!("tool {} {}", tool.name, tool.arguments),
                NOTE_CHARS,
            )),
            _ => return,
        };
        self.recent.push_back((seq, kept));
    }

    /// Forgets everything (a new context).
    pub fn clear(&mut self) {
        self.summary = None;
        self.recent.clear();
    }

    /// The summary, if any.
    pub fn summary(&self) -> Option<&Summary> {
        self.summary.as_ref()
    }

    /// The messages a turn may use, oldest first (it keeps as many of the newest as fit).
    pub fn messages(&self) -> Vec<ChatMessage> {
        self.recent
            .iter()
            .filter_map(|(_, kept)| match kept {
                Kept::Message(m) => Some(m.clone()),
                Kept::Note(_) => None,
            })
            .collect()
    }

    /// Bytes per token of this session so far.
    pub fn ratio(&self) -> f64 {
        self.ratio
    }

    /// The ratio as a session row keeps it: bytes per thousand tokens.
    pub fn per_1k_tokens(&self) -> u32 {
        (self.ratio * 1000.0).round() as u32
    }

    /// Takes up the ratio a session row kept (0: none learnt yet, the default stays).
    pub fn resume_ratio(&mut self, per_1k_tokens: u32) {
        if per_1k_tokens > 0 {
            self.ratio = (f64::from(per_1k_tokens) / 1000.0).clamp(RATIO_BOUNDS.0, RATIO_BOUNDS.1);
        }
    }

    /// Learns the ratio from a request of `bytes` that the provider counted as `tokens`.
    pub fn calibrate(&mut self, bytes: usize, tokens: u64) {
        if bytes == 0 || tokens == 0 {
            return;
        }
        let seen = (bytes as f64 / tokens as f64).clamp(RATIO_BOUNDS.0, RATIO_BOUNDS.1);
        // Smoothed: one odd reply (a cached prompt) does not swing it.
        self.ratio = 0.7 * self.ratio + 0.3 * seen;
    }

    /// The model counted more than estimated (it refused a request as too long): count
    /// every byte as more of a token from now on, until replies say otherwise.
    pub fn distrust(&mut self) {
        self.ratio = (self.ratio * 0.75).max(RATIO_BOUNDS.0);
    }

    /// Estimated tokens of the summary and every kept message.
    pub fn tokens(&self) -> u64 {
        let bytes: usize = self.summary.as_ref().map_or(0, |s| s.text.len())
            + self
                .recent
                .iter()
                .map(|(_, kept)| match kept {
                    Kept::Message(m) => m.content.len(),
                    Kept::Note(_) => 0,
                })
                .sum::<usize>();
        (bytes as f64 / self.ratio).ceil() as u64
    }

    /// What to summarize: everything before the last `keep` turns (a turn: a user message
    /// and what followed it), or before fewer of them when those pass `target` tokens, but
    /// never the last turn; `None` when there is nothing older.
    pub fn to_compact(&self, target: u64, keep: usize) -> Option<Compaction> {
        let starts: Vec<usize> = self
            .recent
            .iter()
            .enumerate()
            .filter(|(_, (_, kept))| matches!(kept, Kept::Message(m) if m.role == Role::User))
            .map(|(i, _)| i)
            .collect();
        let last = *starts.last()?;
        // The oldest turn start whose tail fits, no later than `keep` turns back.
        let bytes_from = |i: usize| -> usize {
            self.recent
                .iter()
                .skip(i)
                .map(|(_, k)| match k {
                    Kept::Message(m) => m.content.len(),
                    Kept::Note(_) => 0,
                })
                .sum()
        };
        let budget_bytes = (target as f64 * self.ratio) as usize;
        let earliest = starts.len().saturating_sub(keep.max(1));
        let cut = starts[earliest..]
            .iter()
            .copied()
            .find(|&i| bytes_from(i) <= budget_bytes)
            .unwrap_or(last);
        if cut == 0 {
            return None;
        }
        let through = self.recent.get(cut - 1).map(|(seq, _)| *seq)?;
        let mut input = String::new();
        if let Some(summary) = &self.summary {
            input.push_str("Summary so far:\n");
            input.push_str(&summary.text);
            input.push_str("\n\nWhat followed:\n");
        }
        for (_, kept) in self.recent.iter().take(cut) {
            match kept {
                Kept::Message(m) => {
                    let who = if m.role == Role::User {
                        "User"
                    } else {
                        "Assistant"
                    };
                    input.push_str(who);
                    input.push_str(": ");
                    input.push_str(&clip(&m.content, SUMMARY_MESSAGE_CHARS));
                }
                Kept::Note(note) => {
                    input.push('(');
                    input.push_str(note);
                    input.push(')');
                }
            }
            input.push('\n');
        }
        Some(Compaction { through, input })
    }

    /// Forgets the oldest turns while the context holds more than `max` tokens, keeping
    /// the last turn; returns how many messages went. The bound for when summaries fail
    /// (the summary model down for days): a turn never sends more than its budget, so
    /// what lies beyond twice that would only have fed a summary. It stays in the store.
    pub fn forget_beyond(&mut self, max: u64) -> usize {
        let mut dropped = 0;
        while self.tokens() > max {
            let users = self
                .recent
                .iter()
                .filter(|(_, k)| matches!(k, Kept::Message(m) if m.role == Role::User))
                .count();
            if users <= 1 {
                break;
            }
            // The oldest whole turn: its user message and all up to the next one.
            self.recent.pop_front();
            dropped += 1;
            while self
                .recent
                .front()
                .is_some_and(|(_, k)| !matches!(k, Kept::Message(m) if m.role == Role::User))
            {
                self.recent.pop_front();
                dropped += 1;
            }
        }
        dropped
    }

    /// A summary was committed at `seq`: what it covers leaves the context.
    pub fn compacted(&mut self, summary: Summary) {
        while self
            .recent
            .front()
            .is_some_and(|(seq, _)| *seq <= summary.through)
        {
            self.recent.pop_front();
        }
        self.summary = Some(summary);
    }
}

/// `text` cut to `max` characters, its start and end kept.
fn clip(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_string();
    }
    let head: String = text.chars().take(max / 2).collect();
    let tail: String = text.chars().skip(count - max / 2).collect();
    format!("{head} […] {tail}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use pincer_core::ToolRecord;

    fn entry(role: Role, text: &str) -> TranscriptEntry {
        TranscriptEntry {
            role,
            content: text.into(),
            at_ms: 0,
            thinking: None,
            inbox_id: None,
            tool: None,
            summary_through: None,
            outcome: None,
        }
    }

    fn turns(n: i64, size: usize) -> Vec<(i64, TranscriptEntry)> {
        (0..n)
            .flat_map(|t| {
                [
                    (
                        2 * t + 1,
                        entry(Role::User, &format!("{t}{}", "q".repeat(size))),
                    ),
                    (
                        2 * t + 2,
                        entry(Role::Assistant, &format!("{t}{}", "a".repeat(size))),
                    ),
                ]
            })
            .collect()
    }

    #[test]
    fn older_turns_are_summarized_until_the_rest_fits_and_the_last_ones_stay() {
        let context = Context::load(None, turns(10, 396));
        assert_eq!(context.messages().len(), 20);
        assert_eq!(context.tokens(), 10 * 2 * 397 / 4);
        // The last 2 turns (about 200 tokens each) fit in 600: the 8 before are summarized.
        let c = context.to_compact(600, 2).expect("something to compact");
        assert_eq!(c.through, 16);
        assert!(c.input.starts_with("User: 0q"), "{}", &c.input[..20]);
        assert!(c.input.contains("Assistant: 7a") && !c.input.contains("User: 8q"));
        let c = context.to_compact(1_000_000, 2).expect("older turns");
        assert_eq!(
            c.through, 16,
            "room for all: still down to the last 2 turns"
        );
        // Only one of the last 2 fits: fewer are kept.
        assert_eq!(context.to_compact(300, 2).expect("older").through, 18);
        // Not even the last turn fits: everything before it goes, the last one stays.
        assert_eq!(context.to_compact(1, 2).expect("older").through, 18);
        assert!(Context::load(None, turns(1, 10)).to_compact(1, 1).is_none());
    }

    #[test]
    fn a_committed_summary_replaces_what_it_covers_and_notes_go_to_summaries_only() {
        let mut entries = turns(3, 10);
        let mut tool = entry(Role::Tool, "a page of 100 kB");
        tool.tool = Some(ToolRecord {
            name: "web_fetch".into(),
            call_id: "c".into(),
            arguments: r#"{"url":"https://example.org"}"#.into(),
            ok: true,
            ms: 5,
        });
        entries.insert(1, (2, tool));
        let mut context = Context::load(None, entries);
        assert_eq!(context.messages().len(), 6, "notes are not messages");
        let c = context.to_compact(10, 1).expect("compactable");
        assert!(
            c.input
                .contains(r#"(tool web_fetch {"url":"https://example.org"})"#)
        );
        assert!(
            !c.input.contains("100 kB"),
            "results are not summarized: {}",
            c.input
        );
        context.compacted(Summary {
            seq: 7,
            through: c.through,
            text: "they talked".into(),
            at_ms: 1,
        });
        assert_eq!(context.messages().len(), 2);
        let again = context.to_compact(1, 1);
        assert!(again.is_none(), "one turn left: nothing older");
        // Loaded again: the summary, then only what follows what it covers.
        let summary = context.summary().cloned();
        let reloaded = Context::load(summary, turns(3, 10));
        assert_eq!(reloaded.messages(), context.messages());
    }

    #[test]
    fn without_summaries_the_oldest_turns_are_forgotten_past_the_bound() {
        let mut context = Context::load(None, turns(10, 396));
        assert_eq!(context.forget_beyond(10_000), 0, "under the bound");
        // About 199 tokens a turn: 3 turns fit in 600.
        assert_eq!(context.forget_beyond(600), 14);
        assert_eq!(context.messages().len(), 6);
        assert!(context.messages()[0].content.starts_with("7q"));
        // The last turn stays whatever its size.
        assert_eq!(context.forget_beyond(1), 4);
        assert_eq!(context.messages().len(), 2);
    }

    #[test]
    fn the_ratio_follows_the_providers_counts_within_bounds() {
        let mut context = Context::default();
        for _ in 0..30 {
            context.calibrate(6_000, 1_000);
        }
        assert!((context.ratio() - 6.0).abs() < 0.01, "{}", context.ratio());
        context.calibrate(1_000_000, 1);
        assert!(context.ratio() <= 8.0);
        context.calibrate(0, 5);
        context.calibrate(5, 0);
        assert!(context.ratio() > 1.0);
        assert_eq!(clip("abcdefghij", 4), "ab […] ij");
    }

    #[test]
    fn a_ratio_kept_in_the_row_is_taken_up_again() {
        let mut learnt = Context::default();
        for _ in 0..30 {
            learnt.calibrate(5_500, 1_000);
        }
        let kept = learnt.per_1k_tokens();
        assert!((5_490..=5_500).contains(&kept), "{kept}");
        let mut woken = Context::default();
        woken.resume_ratio(kept);
        assert!((woken.ratio() - learnt.ratio()).abs() < 0.001);
        // None learnt: the default stays; a corrupt figure stays within bounds.
        let mut fresh = Context::default();
        fresh.resume_ratio(0);
        assert_eq!(fresh.ratio(), DEFAULT_BYTES_PER_TOKEN);
        fresh.resume_ratio(u32::MAX);
        assert_eq!(fresh.ratio(), RATIO_BOUNDS.1);
    }
}
