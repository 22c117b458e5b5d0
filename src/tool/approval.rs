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

/// Asks the person in the chat a tool call came from.
#[derive(Clone)]
pub struct Approver(Arc<dyn Fn(Ask) -> Asking + Send + Sync>);

impl Approver {
    /// An approver that answers with `ask`.
    pub fn new(ask: impl Fn(Ask) -> Asking + Send + Sync + 'static) -> Self {
        Self(Arc::new(ask))
    }

    /// An approver with no one to ask: every question is [`Decision::Unavailable`].
    pub fn nobody() -> Self {
        Self::new(|_| Box::pin(async { Decision::Unavailable }))
    }

    /// Asks, and waits for the answer (the approver bounds the wait).
    pub fn ask(&self, ask: Ask) -> Asking {
        (self.0)(ask)
    }
}

impl fmt::Debug for Approver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Approver")
    }
}

impl Default for Approver {
    fn default() -> Self {
        Self::nobody()
    }
}
