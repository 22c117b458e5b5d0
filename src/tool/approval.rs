//! Asking the person in the chat before a tool acts: what a tool asks ([`Ask`]), what it
//! hears back ([`Decision`]), and who it asks ([`Approver`]).
//!
//! A tool only sees the [`Approver`] of its call: how the question reaches the chat, how
//! `/approve <id> once | always | deny` comes back, and where `always` is remembered is the
//! turn's and the session's business.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::oneshot;

/// A question for the person in the chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    /// The tool asking.
    pub tool: &'static str,
    /// What it wants to do, as the person should see it (the command line).
    pub action: String,
    /// What an `always` answer lets through from now on (for `exec`, the resolved binary
    /// path): the agent is not asked again for calls with the same key.
    pub key: String,
}

/// The answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Do it this once.
    Once,
    /// Do it, and calls with the same key from now on.
    Always,
    /// Do not.
    Deny,
    /// No answer in time (`tools.exec.approvalTimeout`): counts as a denial.
    TimedOut,
    /// No one can be asked here (the channel has no person to answer): a denial too.
    Unavailable,
}

impl Decision {
    /// Whether the action may go ahead.
    pub fn allows(self) -> bool {
        matches!(self, Self::Once | Self::Always)
    }
}

/// A question on its way.
pub type Asking = Pin<Box<dyn Future<Output = Decision> + Send>>;

/// Asks the person in the chat a tool call came from, and keeps the time spent waiting
/// for them: a person's time does not count against the turn's or the call's deadline.
#[derive(Clone)]
pub struct Approver {
    ask: Arc<dyn Fn(Ask) -> Asking + Send + Sync>,
    waits: Arc<Mutex<Waits>>,
}

/// Time spent waiting for answers.
#[derive(Debug, Default)]
struct Waits {
    /// Finished waits.
    total: Duration,
    /// Questions open now, and since when at least one has been.
    open: u32,
    since: Option<Instant>,
}

impl Approver {
    /// An approver that answers with `ask`.
    pub fn new(ask: impl Fn(Ask) -> Asking + Send + Sync + 'static) -> Self {
        Self {
            ask: Arc::new(ask),
            waits: Arc::default(),
        }
    }

    /// An approver with no one to ask: every question is [`Decision::Unavailable`].
    pub fn nobody() -> Self {
        Self::new(|_| Box::pin(async { Decision::Unavailable }))
    }

    /// Asks, and waits for the answer (the approver bounds the wait).
    pub fn ask(&self, ask: Ask) -> Asking {
        let (asking, waits) = ((self.ask)(ask), self.waits.clone());
        Box::pin(async move {
            {
                let mut w = waits.lock();
                w.open += 1;
                w.since.get_or_insert_with(Instant::now);
            }
            // Counted down even if the caller drops the wait (a killed call).
            let _closed = Closed(waits);
            asking.await
        })
    }

    /// Runs `work` for at most `limit`, not counting the time questions are open meanwhile;
    /// `None` when the time ran out (`work` is dropped).
    pub async fn within<F: Future>(&self, limit: Duration, work: F) -> Option<F::Output> {
        let (start, before) = (Instant::now(), self.waited());
        let due = || start + limit + self.waited().saturating_sub(before);
        let mut work = std::pin::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return Some(out),
                _ = tokio::time::sleep_until(due().into()) => {
                    if Instant::now() >= due() {
                        return None;
                    }
                }
            }
        }
    }

    /// How long questions have been open so far, the open ones included.
    pub fn waited(&self) -> Duration {
        let w = self.waits.lock();
        w.total + w.since.map_or(Duration::ZERO, |s| s.elapsed())
    }
}

/// Closes one question's wait when dropped.
struct Closed(Arc<Mutex<Waits>>);

impl Drop for Closed {
    fn drop(&mut self) {
        let mut w = self.0.lock();
        w.open = w.open.saturating_sub(1);
        if w.open == 0
            && let Some(since) = w.since.take()
        {
            w.total += since.elapsed();
        }
    }
}

/// Where the answer to one question goes: the session that asked the person sends it.
#[derive(Clone)]
pub struct Answer(Arc<Mutex<Option<oneshot::Sender<Decision>>>>);

impl Answer {
    /// An answer slot and the receiver that waits on it.
    pub fn channel() -> (Self, oneshot::Receiver<Decision>) {
        let (tx, rx) = oneshot::channel();
        (Self(Arc::new(Mutex::new(Some(tx)))), rx)
    }

    /// Answers (the first answer counts).
    pub fn send(&self, decision: Decision) {
        if let Some(tx) = self.0.lock().take() {
            let _ = tx.send(decision);
        }
    }
}

impl PartialEq for Answer {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Answer {}

impl fmt::Debug for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Answer")
    }
}

impl fmt::Debug for Approver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Approver")
            .field("waited", &self.waited())
            .finish()
    }
}

impl Default for Approver {
    fn default() -> Self {
        Self::nobody()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn time_waiting_for_a_person_is_counted_while_open_and_after() {
        let (answer, rx) = Answer::channel();
        let rx = Arc::new(Mutex::new(Some(rx)));
        let approver = Approver::new(move |_| {
            let rx = rx.lock().take();
            Box::pin(async move {
                match rx {
                    Some(rx) => rx.await.unwrap_or(Decision::Unavailable),
                    None => Decision::Unavailable,
                }
            })
        });
        let ask = Ask {
            tool: "exec",
            action: "ls".into(),
            key: "/usr/bin/ls".into(),
        };
        let asking = tokio::spawn(approver.ask(ask));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            approver.waited() >= Duration::from_millis(40),
            "open waits count"
        );
        answer.send(Decision::Always);
        answer.send(Decision::Deny); // the first answer counts
        assert_eq!(asking.await.expect("task"), Decision::Always);
        let after = approver.waited();
        assert!(after >= Duration::from_millis(50));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(approver.waited(), after, "a closed wait stops counting");
        let slow = tokio::time::sleep(Duration::from_secs(5));
        assert_eq!(approver.within(Duration::from_millis(10), slow).await, None);
        assert_eq!(
            approver.within(Duration::from_secs(5), async { 7 }).await,
            Some(7)
        );
        assert_eq!(
            Approver::nobody()
                .ask(Ask {
                    tool: "exec",
                    action: String::new(),
                    key: String::new()
                })
                .await,
            Decision::Unavailable
        );
    }
}
