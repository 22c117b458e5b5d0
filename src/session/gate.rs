//! The gate of an account's sessions: where messages wait for a session on its way out.
//!
//! A session that hibernates or expires *closes* its gate entry before it stops, and from
//! then on every message for it waits here instead of going into a mailbox that is about
//! to be dropped. The router casts to a session only under the gate's lock, and the
//! session closes under it too, so each message is on one side: cast before the close (in
//! the mailbox ahead of the session's own `Close`, so the old instance sees it and moves it
//! here), or held here after it. The next instance takes what is held when it starts.
//! Nothing is answered by both instances, and nothing is lost if the process dies
//! meanwhile: a held entry is still pending in the durable inbox.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use pincer_store::InboxEntry;
use ractor::{ActorCell, ActorStatus};

/// Sessions on their way out, by key, with the messages that came for them meanwhile.
#[derive(Debug, Default)]
pub struct Gate {
    held: Mutex<HashMap<Arc<str>, Held>>,
}

#[derive(Debug)]
struct Held {
    /// The instance that is stopping.
    cell: ActorCell,
    /// Someone is starting the next instance (or waiting to).
    waking: bool,
    entries: Vec<InboxEntry>,
}

/// What became of a message offered to the gate.
#[derive(Debug)]
pub enum Offer {
    /// Its session is on its way out: the message waits for the next instance. `wake`:
    /// the old instance is gone and nobody is starting the next one, so the caller should.
    Held {
        /// Whether the caller should start the next instance.
        wake: bool,
    },
    /// Handed to the running instance.
    Sent,
    /// No instance runs (or it would not take the message): the caller starts one.
    NotRunning(Box<InboxEntry>),
}

impl Gate {
    /// Offers `entry` to session `key`: held if the session is on its way out, else given
    /// to `send` (which casts it to the running instance, or gives it back), all under the
    /// gate's lock so that a close cannot come in between.
    pub fn offer(
        &self,
        key: &str,
        entry: Box<InboxEntry>,
        send: impl FnOnce(Box<InboxEntry>) -> Result<(), Box<InboxEntry>>,
    ) -> Offer {
        let mut held = self.held.lock();
        if let Some(h) = held.get_mut(key) {
            if !h.entries.iter().any(|e| e.id == entry.id) {
                h.entries.push(*entry);
            }
            let gone = h.cell.get_status() >= ActorStatus::Stopping;
            let wake = gone && !h.waking;
            h.waking |= wake;
            return Offer::Held { wake };
        }
        match send(entry) {
            Ok(()) => Offer::Sent,
            Err(entry) => Offer::NotRunning(entry),
        }
    }

    /// Session `key` (instance `cell`) is on its way out: messages wait from now on.
    pub fn close(&self, key: Arc<str>, cell: ActorCell) {
        self.held.lock().insert(
            key,
            Held {
                cell,
                waking: false,
                entries: Vec::new(),
            },
        );
    }

    /// A message the closing instance found in its mailbox: it waits with the others.
    pub fn hold(&self, key: &str, entry: InboxEntry) {
        if let Some(h) = self.held.lock().get_mut(key)
            && !h.entries.iter().any(|e| e.id == entry.id)
        {
            h.entries.push(entry);
        }
    }

    /// Opens the gate of `key` again and returns what waited: a new instance takes it
    /// when it starts (or the old one, when it could not rest after all).
    pub fn reopen(&self, key: &str) -> Vec<InboxEntry> {
        self.held
            .lock()
            .remove(key)
            .map(|h| h.entries)
            .unwrap_or_default()
    }

    /// Claims the start of `key`'s next instance; false if someone has already.
    pub fn claim_wake(&self, key: &str) -> bool {
        match self.held.lock().get_mut(key) {
            Some(h) if !h.waking => {
                h.waking = true;
                true
            }
            _ => false,
        }
    }

    /// Once the old instance is gone: opens the gate if nothing waits (true), else leaves
    /// it for the next instance to open (false).
    pub fn release_if_empty(&self, key: &str) -> bool {
        let mut held = self.held.lock();
        match held.get(key) {
            Some(h) if h.entries.is_empty() => {
                held.remove(key);
                true
            }
            Some(_) => false,
            None => true,
        }
    }

    /// Forgets entries whose instance is gone and whom nobody wakes: after the account's
    /// sessions restart, what they held is still pending in the inbox, and the router's
    /// sweep brings it back.
    pub fn forget_dead(&self) {
        self.held
            .lock()
            .retain(|_, h| h.waking || h.cell.get_status() < ActorStatus::Stopping);
    }

    /// Sessions on their way out now.
    pub fn len(&self) -> usize {
        self.held.lock().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
