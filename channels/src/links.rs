//! What outlives one incarnation of a channel link: its status (for `pincer channels
//! list` and readiness), the Telegram poll slot of each token, and the Discord session a
//! restarted link resumes.
//!
//! A link's state dies with it; these facts must not. A killed Discord link that forgot
//! its session would identify again (and lose the events in between), and a Telegram link
//! whose successor did not wait for the old poll would make two pollers on one token.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;

use pincer_core::now_ms;

/// How one account's link is doing.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct LinkStatus {
    /// Connected to its upstream now.
    pub connected: bool,
    /// Since when (ms since the Unix epoch) it is connected, or disconnected.
    pub since_ms: u64,
    /// The last error, if any.
    pub last_error: Option<String>,
    /// Set when the link gave up on purpose (a revoked token, a disallowed intent): it
    /// does not reconnect until its config changes, and readiness shows the reason.
    pub fatal: Option<String>,
    /// Transport detail: `poll`, `webhook`, `gateway`.
    pub mode: Option<&'static str>,
}

/// The poll slot of one Telegram bot: held by its only poller.
#[derive(Debug, Default)]
pub struct PollSlot {
    /// The next `getUpdates` offset (everything before it is in the inbox).
    pub offset: Option<i64>,
    /// A poll was in flight when its holder was cut off: the next holder waits a moment
    /// so the Bot API sees the old connection closed before the new poll arrives.
    pub cut_off: bool,
}

/// Where a Discord gateway session stands, kept across link restarts so a new link
/// resumes instead of identifying.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscordResume {
    /// The session to resume.
    pub session_id: String,
    /// Where to resume it.
    pub resume_url: String,
    /// The last sequence number whose event is durable (written to the inbox, or not
    /// needing it).
    pub seq: u64,
    /// The bot's own user id (its own messages are ignored).
    pub bot_id: String,
}

/// The link facts of every account; see the [module docs](self).
#[derive(Debug, Default)]
pub struct Links {
    status: Mutex<HashMap<String, LinkStatus>>,
    polls: Mutex<HashMap<String, Arc<tokio::sync::Mutex<PollSlot>>>>,
    resume: Mutex<HashMap<String, DiscordResume>>,
    sends: Mutex<Sends>,
}

/// Replies on their way out, and the ones sent lately, by (account, inbox id): across link
/// restarts, so a new link's redelivery never sends what an old one is sending or just sent.
#[derive(Debug, Default)]
struct Sends {
    busy: HashSet<(String, i64)>,
    done: HashSet<(String, i64)>,
    done_order: VecDeque<(String, i64)>,
}

/// Sent replies remembered (their store row says "delivered" long before this many more
/// are sent; this only covers the moment between the send and that write).
const RECENT_SENDS: usize = 4096;

// === impl Links ===

impl Links {
    /// The status of `account` (default when never reported).
    pub fn status(&self, account: &str) -> LinkStatus {
        self.status.lock().get(account).cloned().unwrap_or_default()
    }

    /// Every reported status, by account.
    pub fn statuses(&self) -> HashMap<String, LinkStatus> {
        self.status.lock().clone()
    }

    /// `account` is connected (in `mode`); clears its fatal error.
    pub fn connected(&self, account: &str, mode: &'static str) {
        let mut all = self.status.lock();
        let s = all.entry(account.to_string()).or_default();
        if !s.connected {
            s.since_ms = now_ms();
        }
        s.connected = true;
        s.fatal = None;
        s.mode = Some(mode);
    }

    /// `account` lost its upstream because of `error`.
    pub fn disconnected(&self, account: &str, error: &str) {
        let mut all = self.status.lock();
        let s = all.entry(account.to_string()).or_default();
        if s.connected || s.since_ms == 0 {
            s.since_ms = now_ms();
        }
        s.connected = false;
        s.last_error = Some(error.to_string());
    }

    /// Records an error that did not disconnect the link (a failed send).
    pub fn error(&self, account: &str, error: &str) {
        let mut all = self.status.lock();
        all.entry(account.to_string()).or_default().last_error = Some(error.to_string());
    }

    /// `account` gave up for `reason` and waits for a config change.
    pub fn fatal(&self, account: &str, reason: &str) {
        self.disconnected(account, reason);
        if let Some(s) = self.status.lock().get_mut(account) {
            s.fatal = Some(reason.to_string());
        }
    }

    /// Forgets `account` (removed from config).
    pub fn forget(&self, account: &str) {
        self.status.lock().remove(account);
        self.resume.lock().remove(account);
    }

    /// The poll slot of a Telegram bot: whoever holds it is the only poller of that token
    /// in this process.
    pub fn poll_slot(&self, bot: &str) -> Arc<tokio::sync::Mutex<PollSlot>> {
        self.polls
            .lock()
            .entry(bot.to_string())
            .or_default()
            .clone()
    }

    /// The Discord session `account` last had.
    pub fn resume(&self, account: &str) -> Option<DiscordResume> {
        self.resume.lock().get(account).cloned()
    }

    /// Remembers (or with `None` forgets) the Discord session of `account`.
    pub fn set_resume(&self, account: &str, resume: Option<DiscordResume>) {
        let mut all = self.resume.lock();
        match resume {
            Some(r) => all.insert(account.to_string(), r),
            None => all.remove(account),
        };
    }

    /// Claims the sending of reply `inbox_id` of `account`: false when it is on its way or
    /// was sent lately (by this link or an earlier one).
    pub fn begin_send(&self, account: &str, inbox_id: i64) -> bool {
        let key = (account.to_string(), inbox_id);
        let mut sends = self.sends.lock();
        !sends.done.contains(&key) && sends.busy.insert(key)
    }

    /// Ends the sending of a reply; `sent` remembers it as sent.
    pub fn end_send(&self, account: &str, inbox_id: i64, sent: bool) {
        let key = (account.to_string(), inbox_id);
        let mut sends = self.sends.lock();
        sends.busy.remove(&key);
        if sent && sends.done.insert(key.clone()) {
            sends.done_order.push_back(key);
            if sends.done_order.len() > RECENT_SENDS
                && let Some(old) = sends.done_order.pop_front()
            {
                sends.done.remove(&old);
            }
        }
    }

    /// Advances the durable sequence number of `account`'s Discord session.
    pub fn advance(&self, account: &str, seq: u64) {
        if let Some(r) = self.resume.lock().get_mut(account)
            && seq > r.seq
        {
            r.seq = seq;
        }
    }
}
