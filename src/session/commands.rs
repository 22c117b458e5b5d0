//! `/session status|reset|extend [duration]`, `/new`, `/reset` and `/approve <id> once |
//! always | deny`: answered by the session itself, in any channel, without a model turn.
//! All but a reset are answered at once even while a turn runs (a turn may be waiting for
//! that very `/approve`); a reset waits for the turn.

use std::time::Duration;

use super::SessionState;
use crate::tool::Decision;
use pincer_config::duration::parse_duration;
use pincer_core::now_ms;

/// A session command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `/session status`.
    Status,
    /// `/session reset`, `/new`, `/reset`: a fresh context.
    Reset,
    /// `/session extend [duration]`: lengthen the idle time (and the max age, if set) by
    /// the duration, by default the session's idle time.
    Extend(Option<Duration>),
    /// `/session compact`: summarize the older part of the context now.
    Compact,
    /// `/session` alone, `/session help`, or something it does not know: usage, with the
    /// problem if there was one.
    Help(Option<String>),
    /// `/approve <id> once | always | deny`: answers a tool's question.
    Approve {
        /// The question's id.
        id: String,
        /// The answer.
        decision: Decision,
    },
}

impl Command {
    /// Whether it is answered at once while a turn runs.
    pub fn mid_turn(&self) -> bool {
        !matches!(self, Self::Reset | Self::Compact)
    }
}

const APPROVE_USAGE: &str = "Answer a tool's question with /approve <id> once, \
                             /approve <id> always or /approve <id> deny.";

const USAGE: &str = "Session commands: /session status, /session reset (or /new, /reset), \
                     /session extend [duration, e.g. 30m or 2h], /session compact.";

/// The command in `text`, if it is one. Anything else (other slash commands included) is
/// a message for the agent.
pub fn parse(text: &str) -> Option<Command> {
    let mut words = text.split_whitespace();
    let first = words.next()?;
    // Telegram appends the bot's name in groups: `/new@my_bot`.
    let first = first.split('@').next().unwrap_or(first);
    match first {
        "/new" | "/reset" => Some(Command::Reset),
        "/approve" => Some(match (words.next(), words.next(), words.next()) {
            (Some(id), Some(answer), None) => match answer.to_ascii_lowercase().as_str() {
                "once" => Command::Approve {
                    id: id.to_string(),
                    decision: Decision::Once,
                },
                "always" => Command::Approve {
                    id: id.to_string(),
                    decision: Decision::Always,
                },
                "deny" => Command::Approve {
                    id: id.to_string(),
                    decision: Decision::Deny,
                },
                other => {
                    Command::Help(Some(format!("`{other}` is not an answer. {APPROVE_USAGE}")))
                }
            },
            _ => Command::Help(Some(APPROVE_USAGE.to_string())),
        }),
        "/session" => Some(match (words.next(), words.next(), words.next()) {
            (None, ..) | (Some("help"), None, _) => Command::Help(None),
            (Some("status"), None, _) => Command::Status,
            (Some("reset"), None, _) => Command::Reset,
            (Some("compact"), None, _) => Command::Compact,
            (Some("extend"), None, _) => Command::Extend(None),
            (Some("extend"), Some(d), None) => match parse_duration(d) {
                Ok(d) if !d.is_zero() => Command::Extend(Some(d)),
                Ok(_) => Command::Help(Some("the extension must be longer than 0".into())),
                Err(e) => Command::Help(Some(format!("`{d}` is not a duration: {e}"))),
            },
            (Some(other), ..) => Command::Help(Some(format!("unknown session command `{other}`"))),
        }),
        _ => None,
    }
}

impl SessionState {
    /// Applies `command` to the session (its row is committed with the reply) and returns
    /// the reply.
    pub(super) async fn run_command(
        &mut self,
        command: Command,
        myself: &ractor::ActorRef<super::SessionMsg>,
    ) -> String {
        let now = now_ms();
        match command {
            Command::Compact => match self.maybe_compact(myself, super::compact::Why::Asked) {
                Some(tokens) => format!(
                    "Compacting: the older part of the context (about {tokens} tokens in all) is being summarized; the transcript keeps every message."
                ),
                None if self.compacting => "A compaction is already running.".to_string(),
                None => {
                    "Nothing to compact: the context holds only the most recent turns.".to_string()
                }
            },
            Command::Approve { id, decision } => self.answer(&id, decision).await,
            Command::Status => self.status_text(now),
            Command::Reset => {
                // The new context starts after this command and its reply.
                self.row.context_from = self.next_seq + 2;
                self.row.created_at_ms = now;
                self.row.turns = 0;
                self.row.summary_seq = 0;
                self.context.clear();
                "Started a new conversation: earlier messages are no longer in context.".to_string()
            }
            Command::Extend(by) => {
                let by = by.map_or(self.row.idle_ms, |d| {
                    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
                });
                self.row.idle_ms = self.row.idle_ms.saturating_add(by);
                if self.row.max_age_ms > 0 {
                    self.row.max_age_ms = self.row.max_age_ms.saturating_add(by);
                }
                self.row.last_active_ms = now;
                self.arm_timers();
                format!(
                    "Extended by {}. {}",
                    human(Duration::from_millis(by)),
                    self.limits_text(now)
                )
            }
            Command::Help(None) => USAGE.to_string(),
            Command::Help(Some(problem))
                if problem.starts_with(APPROVE_USAGE) || problem.ends_with(APPROVE_USAGE) =>
            {
                problem
            }
            Command::Help(Some(problem)) => format!("{problem}. {USAGE}"),
        }
    }

    fn status_text(&self, now: u64) -> String {
        let row = &self.row;
        format!(
            "Session {}\nagent: {}\nage: {}\n{}\nturns: {}\n{}",
            row.key,
            row.agent,
            human(Duration::from_millis(now.saturating_sub(row.created_at_ms))),
            self.limits_text(now).replace(", ", "\n"),
            row.turns,
            self.context_text(now),
        )
    }

    /// `context: about 1200 of 5250 tokens (compacts at 4200); last compacted 5m ago`.
    fn context_text(&self, now: u64) -> String {
        let config = self.ctx.config.current();
        let used = self.context.tokens();
        let mut text = match config.agents.get(&self.row.agent).map(|a| a.context()) {
            Some(limits) => format!(
                "context: about {used} of {} tokens (compacts at {})",
                limits.budget, limits.compact_at
            ),
            None => format!("context: about {used} tokens"),
        };
        match self.context.summary() {
            Some(summary) => text.push_str(&format!(
                "; last compacted {} ago",
                human(Duration::from_millis(now.saturating_sub(summary.at_ms)))
            )),
            None => text.push_str("; never compacted"),
        }
        if self.compacting {
            text.push_str("; compacting now");
        }
        text
    }

    fn limits_text(&self, now: u64) -> String {
        let row = &self.row;
        let idle_left = row
            .last_active_ms
            .saturating_add(row.idle_ms)
            .saturating_sub(now);
        let max_age_left = if row.max_age_ms == 0 {
            "off".to_string()
        } else {
            human(Duration::from_millis(
                row.created_at_ms
                    .saturating_add(row.max_age_ms)
                    .saturating_sub(now),
            ))
        };
        format!(
            "idle left: {}, max age left: {max_age_left}",
            human(Duration::from_millis(idle_left))
        )
    }
}

/// `1d 2h`, `5m 3s`, `42s`: the two largest units.
pub fn human(d: Duration) -> String {
    let secs = d.as_secs();
    let units = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let parts: Vec<String> = units
        .iter()
        .scan(secs, |left, (size, name)| {
            let n = *left / size;
            *left %= size;
            Some((n, *name))
        })
        .skip_while(|(n, _)| *n == 0)
        .take(2)
        .filter(|(n, _)| *n > 0)
        .map(|(n, name)| format!("{n}{name}"))
        .collect();
    if parts.is_empty() {
        "0s".to_string()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_and_everything_else_is_a_message() {
        assert_eq!(parse("/session status"), Some(Command::Status));
        assert_eq!(parse("/new"), Some(Command::Reset));
        assert_eq!(parse("/reset@my_bot"), Some(Command::Reset));
        assert_eq!(parse("  /session   reset "), Some(Command::Reset));
        assert_eq!(parse("/session extend"), Some(Command::Extend(None)));
        assert_eq!(
            parse("/session extend 90s"),
            Some(Command::Extend(Some(Duration::from_secs(90))))
        );
        assert!(
            matches!(parse("/session extend soon"), Some(Command::Help(Some(p))) if p.contains("`soon`"))
        );
        assert!(
            matches!(parse("/session fly"), Some(Command::Help(Some(p))) if p.contains("`fly`"))
        );
        assert_eq!(parse("/session"), Some(Command::Help(None)));
        assert_eq!(
            parse("/approve k3x9 ALWAYS"),
            Some(Command::Approve {
                id: "k3x9".into(),
                decision: Decision::Always
            })
        );
        assert!(
            matches!(parse("/approve k3x9 maybe"), Some(Command::Help(Some(p))) if p.contains("`maybe`"))
        );
        assert!(
            matches!(parse("/approve"), Some(Command::Help(Some(p))) if p.contains("/approve <id> once"))
        );
        assert!(parse("/approve a once").is_some_and(|c| c.mid_turn()));
        assert!(!Command::Reset.mid_turn());
        assert_eq!(parse("/help"), None);
        assert_eq!(parse("hello /new"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(human(Duration::from_secs(0)), "0s");
        assert_eq!(human(Duration::from_secs(42)), "42s");
        assert_eq!(human(Duration::from_secs(303)), "5m 3s");
        assert_eq!(human(Duration::from_secs(86_400 + 7_200 + 5)), "1d 2h");
        assert_eq!(human(Duration::from_secs(3_600)), "1h");
    }
}
