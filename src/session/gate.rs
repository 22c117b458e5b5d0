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

use super::MAX_QUEUE;

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
    /// A new message, and [`MAX_QUEUE`] wait already: the caller refuses it, as the
    /// session would ("busy, try again").
    Full(Box<InboxEntry>),
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
                // The session's own bound holds here too: a client that sends faster than
                // the session comes back must not grow this without end. Entries resumed
                // from the inbox were taken long ago and always wait.
                if h.entries.len() >= MAX_QUEUE && super::is_fresh(&entry) {
                    return Offer::Full(entry);
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use pincer_core::{Inbound, PeerRef};
    use pincer_store::InboxState;
    use ractor::{Actor, ActorProcessingErr, ActorRef};

    struct Idle;
    impl Actor for Idle {
        type Msg = ();
        type State = ();
        type Arguments = ();
        async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
            Ok(())
        }
    }

    fn entry(id: i64) -> InboxEntry {
        InboxEntry {
            id,
            inbound: Inbound {
                channel: "http".into(),
                account: "http".into(),
                upstream_id: id.to_string(),
                peer: PeerRef {
                    kind: "user".into(),
                    id: "u".into(),
                },
                thread: None,
                guild: None,
                team: None,
                agent: None,
                topic: None,
                text: format!("m{id}"),
                received_at_ms: 0,
                sender: None,
                fingerprint: None,
                api: None,
            },
            state: InboxState::Pending,
            session_key: None,
            reply: None,
            reply_extra: None,
        }
    }

    fn ids(entries: &[InboxEntry]) -> Vec<i64> {
        entries.iter().map(|e| e.id).collect()
    }

    #[tokio::test]
    async fn a_message_goes_to_the_instance_or_waits_for_the_next_never_both() {
        let (actor, _) = Actor::spawn(None, Idle, ()).await.expect("spawn");
        let gate = Gate::default();
        let mut sent = Vec::new();
        // Open: handed to the instance.
        let offer = gate.offer("k", Box::new(entry(1)), |e| {
            sent.push(e.id);
            Ok(())
        });
        assert!(matches!(offer, Offer::Sent));
        // Closed: held, in order, without duplicates, and the instance is not asked.
        gate.close(Arc::from("k"), actor.get_cell());
        for id in [2, 3, 2] {
            let offer = gate.offer("k", Box::new(entry(id)), |_| {
                panic!("sent to a closing session")
            });
            assert!(matches!(offer, Offer::Held { wake: false }), "{offer:?}");
        }
        // What the closing instance found in its mailbox waits with the rest.
        gate.hold("k", entry(4));
        assert_eq!(sent, vec![1]);
        // Another session is not affected.
        let other = gate.offer("other", Box::new(entry(9)), Err);
        assert!(matches!(other, Offer::NotRunning(e) if e.id == 9));
        // Not empty: the gate stays closed for the next instance, which takes it all.
        assert!(!gate.release_if_empty("k"));
        assert_eq!(ids(&gate.reopen("k")), vec![2, 3, 4]);
        assert!(gate.is_empty());
        actor.stop(None);
    }

    #[tokio::test]
    async fn past_the_session_bound_a_new_message_is_given_back_and_a_resumed_one_waits() {
        let (actor, _) = Actor::spawn(None, Idle, ()).await.expect("spawn");
        let gate = Gate::default();
        gate.close(Arc::from("k"), actor.get_cell());
        for id in 0..MAX_QUEUE as i64 {
            let offer = gate.offer("k", Box::new(entry(id)), |_| panic!("sent"));
            assert!(matches!(offer, Offer::Held { .. }), "{id}: {offer:?}");
        }
        let offer = gate.offer("k", Box::new(entry(1000)), |_| panic!("sent"));
        assert!(
            matches!(offer, Offer::Full(ref e) if e.id == 1000),
            "{offer:?}"
        );
        // One already held is not refused for being offered again.
        let offer = gate.offer("k", Box::new(entry(3)), |_| panic!("sent"));
        assert!(matches!(offer, Offer::Held { .. }), "{offer:?}");
        // A message routed before (resumed from the inbox) was taken in long ago.
        let mut resumed = entry(1001);
        resumed.session_key = Some("k".into());
        let offer = gate.offer("k", Box::new(resumed), |_| panic!("sent"));
        assert!(matches!(offer, Offer::Held { .. }), "{offer:?}");
        let held = gate.reopen("k");
        assert_eq!(held.len(), MAX_QUEUE + 1);
        assert_eq!(held.last().map(|e| e.id), Some(1001));
        actor.stop(None);
    }

    #[tokio::test]
    async fn a_killed_closing_instance_is_woken_once() {
        let (actor, handle) = Actor::spawn(None, Idle, ()).await.expect("spawn");
        let gate = Gate::default();
        gate.close(Arc::from("k"), actor.get_cell());
        actor.kill();
        handle.await.expect("ended");
        let first = gate.offer("k", Box::new(entry(1)), |_| panic!("sent"));
        let second = gate.offer("k", Box::new(entry(2)), |_| panic!("sent"));
        assert!(matches!(first, Offer::Held { wake: true }), "{first:?}");
        assert!(matches!(second, Offer::Held { wake: false }), "{second:?}");
        // Its post_stop (had it run) would not claim the wake again.
        assert!(!gate.claim_wake("k"));
        assert_eq!(ids(&gate.reopen("k")), vec![1, 2]);
    }

    #[tokio::test]
    async fn an_empty_gate_opens_and_the_dead_are_forgotten() {
        let (live, _) = Actor::spawn(None, Idle, ()).await.expect("spawn");
        let (dead, handle) = Actor::spawn(None, Idle, ()).await.expect("spawn");
        let gate = Gate::default();
        gate.close(Arc::from("a"), live.get_cell());
        gate.close(Arc::from("b"), dead.get_cell());
        dead.kill();
        handle.await.expect("ended");
        gate.hold("b", entry(1));
        gate.forget_dead();
        assert_eq!(gate.len(), 1);
        assert!(gate.claim_wake("a"));
        assert!(gate.release_if_empty("a"));
        assert!(gate.is_empty());
        live.stop(None);
    }
}
