//! The connections the port holds: how many, which are idle and since when, which one
//! makes room at the cap, and when each one's time is up.
//!
//! A connection is *waiting* (for a request head: just accepted, or between requests),
//! *busy* (a request is being handled or its response body is being sent: a stream of
//! server-sent events stays busy until it ends) or *upgraded* (a WebSocket, held until
//! it closes). Only waiting connections are idle: closing one loses no request and no
//! response. Each connection's state changes on its own task (hyper calls the service,
//! drops the response body and reads the socket there); the accept loop only reads the
//! idle set and asks a connection to close.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use pincer_core::metrics::catalog::{Closed, ConnectionMetrics};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::Limits;

/// Every connection held; see the [module docs](self). Shared by every incarnation of
/// the server.
pub struct Registry {
    limits: Limits,
    table: Mutex<Table>,
    /// Woken when a connection lets go of its place.
    released: Notify,
    metrics: ConnectionMetrics,
}

struct Table {
    /// Connections held.
    open: usize,
    /// Waiting connections by when they started waiting (lowest: idle the longest).
    idle: BTreeMap<u64, Arc<Conn>>,
    /// The next key of `idle`.
    next: u64,
}

/// One connection's state, shared by its task, its socket and its requests.
pub(super) struct Conn {
    state: Mutex<State>,
    /// Set by the accept loop to have the connection make room.
    evict: AtomicBool,
    /// Wakes the connection's task: its deadline moved, or it is asked to make room.
    wake: Notify,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Waiting for a request head since `since`: the first one (`first`), or the next
    /// one, of which the first byte came at `head_from`. `key` is its place in `idle`.
    Waiting {
        since: Instant,
        first: bool,
        head_from: Option<Instant>,
        key: u64,
    },
    /// Handling `requests` requests (HTTP/2 multiplexes) or sending their bodies.
    Busy { requests: u32 },
    /// Switched protocols: held until the socket closes, with no timeout.
    Upgraded,
    /// The socket closed (what is left of a request changes nothing).
    Closed,
}

/// When a waiting connection must be closed, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Deadline {
    pub(super) at: Instant,
    pub(super) reason: Closed,
}

/// What the accept loop may do with a new connection.
#[derive(Debug)]
pub(super) enum Admission {
    /// Room was made (or there was some): serve it.
    Admitted(Slot),
    /// Every place is taken by a connection in use: turn it away.
    Full,
}

/// A place in the registry, held by a connection's socket: it is let go when the
/// socket closes, which for an upgraded connection is when the WebSocket ends.
pub(super) struct Slot {
    tracker: Tracker,
}

/// A connection's state with its registry: what its task and its service work with.
#[derive(Clone)]
pub(super) struct Tracker {
    registry: Arc<Registry>,
    conn: Arc<Conn>,
}

/// One request being handled or answered: the connection is busy while this lives (it
/// travels from the service call into the response body).
pub(super) struct InFlight {
    tracker: Tracker,
}

/// How long the accept loop waits for an evicted connection to let go of its place
/// before it tries the next one or turns the newcomer away. An idle connection closes
/// within a poll; one that took a request meanwhile finishes it first.
const EVICTION_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// Evictions tried for one newcomer before it is turned away.
const EVICTION_TRIES: usize = 3;

// === impl Registry ===

impl Registry {
    /// An empty registry within `limits`.
    pub fn new(limits: Limits, metrics: ConnectionMetrics) -> Arc<Self> {
        Arc::new(Self {
            limits,
            table: Mutex::new(Table {
                open: 0,
                idle: BTreeMap::new(),
                next: 0,
            }),
            released: Notify::new(),
            metrics,
        })
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Connections held now.
    pub fn open(&self) -> usize {
        self.table.lock().open
    }

    pub(super) fn metrics(&self) -> &ConnectionMetrics {
        &self.metrics
    }

    /// A place for a new connection: a free one, else the one of the connection idle the
    /// longest, once it has closed.
    pub(super) async fn admit(self: &Arc<Self>) -> Admission {
        for _ in 0..EVICTION_TRIES {
            let released = self.released.notified();
            tokio::pin!(released);
            // Registered before looking, so a place let go after the look still wakes it.
            released.as_mut().enable();
            let victim = {
                let mut table = self.table.lock();
                if table.open < self.limits.max_connections.get() {
                    return Admission::Admitted(self.take_place(&mut table));
                }
                table.idle.pop_first()
            };
            let Some((_, victim)) = victim else {
                return Admission::Full;
            };
            victim.evict.store(true, Ordering::Release);
            victim.wake.notify_one();
            let _ = tokio::time::timeout(EVICTION_WAIT, released).await;
        }
        let mut table = self.table.lock();
        if table.open < self.limits.max_connections.get() {
            return Admission::Admitted(self.take_place(&mut table));
        }
        Admission::Full
    }

    /// Asks the connection idle the longest to close (the descriptor limit is reached);
    /// whether there was one.
    pub(super) fn evict_one(&self) -> bool {
        let victim = self.table.lock().idle.pop_first();
        match victim {
            Some((_, conn)) => {
                conn.evict.store(true, Ordering::Release);
                conn.wake.notify_one();
                true
            }
            None => false,
        }
    }

    fn take_place(self: &Arc<Self>, table: &mut Table) -> Slot {
        table.open += 1;
        self.metrics.open.inc();
        let key = table.next;
        table.next += 1;
        let conn = Arc::new(Conn {
            state: Mutex::new(State::Waiting {
                since: Instant::now(),
                first: true,
                head_from: None,
                key,
            }),
            evict: AtomicBool::new(false),
            wake: Notify::new(),
        });
        table.idle.insert(key, conn.clone());
        Slot {
            tracker: Tracker {
                registry: self.clone(),
                conn,
            },
        }
    }

    /// Puts `conn` back in the idle set; its new key.
    fn idle(&self, conn: &Arc<Conn>) -> u64 {
        let mut table = self.table.lock();
        let key = table.next;
        table.next += 1;
        table.idle.insert(key, conn.clone());
        key
    }

    /// Takes the entry `key` out of the idle set, if it is still there.
    fn not_idle(&self, key: u64) {
        self.table.lock().idle.remove(&key);
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let table = self.table.lock();
        f.debug_struct("Registry")
            .field("limits", &self.limits)
            .field("open", &table.open)
            .field("idle", &table.idle.len())
            .finish()
    }
}

// === impl Conn ===

impl Conn {
    /// When this connection must close if nothing changes, and why; `None` while busy
    /// or upgraded.
    pub(super) fn deadline(&self, limits: &Limits) -> Option<Deadline> {
        match *self.state.lock() {
            State::Waiting {
                since,
                first,
                head_from,
                ..
            } => Some(match (first, head_from) {
                (true, _) => Deadline {
                    at: since + limits.header_read_timeout,
                    reason: Closed::HeaderTimeout,
                },
                (false, Some(from)) => Deadline {
                    at: from + limits.header_read_timeout,
                    reason: Closed::HeaderTimeout,
                },
                (false, None) => Deadline {
                    at: since + limits.idle_timeout,
                    reason: Closed::IdleTimeout,
                },
            }),
            State::Busy { .. } | State::Upgraded | State::Closed => None,
        }
    }

    /// `Some` while the connection waits for a request head: whether it answered one
    /// before (if not, nothing can be left to send on it).
    pub(super) fn waiting(&self) -> Option<bool> {
        match *self.state.lock() {
            State::Waiting { first, .. } => Some(!first),
            _ => None,
        }
    }

    /// Takes the request to make room, if there is one.
    pub(super) fn take_eviction(&self) -> bool {
        self.evict.swap(false, Ordering::AcqRel)
    }

    /// Until the task should look again (a deadline moved, or it is asked to close).
    pub(super) async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Bytes came in: the first after a response starts the next head's clock.
    pub(super) fn on_bytes(&self) {
        let mut state = self.state.lock();
        if let State::Waiting {
            first: false,
            head_from: head_from @ None,
            ..
        } = &mut *state
        {
            *head_from = Some(Instant::now());
            drop(state);
            self.wake.notify_one();
        }
    }
}

// === impl Slot ===

impl Slot {
    /// The connection's state with its registry.
    pub(super) fn tracker(&self) -> &Tracker {
        &self.tracker
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Tracker { registry, conn } = &self.tracker;
        let key = match std::mem::replace(&mut *conn.state.lock(), State::Closed) {
            State::Waiting { key, .. } => Some(key),
            _ => None,
        };
        {
            let mut table = registry.table.lock();
            if let Some(key) = key {
                table.idle.remove(&key);
            }
            table.open -= 1;
        }
        registry.metrics.open.dec();
        registry.released.notify_waiters();
    }
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.tracker.fmt(f)
    }
}

// === impl Tracker ===

impl Tracker {
    /// The connection's state.
    pub(super) fn conn(&self) -> &Conn {
        &self.conn
    }

    /// The registry it is held in.
    pub(super) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// A request begins on this connection.
    pub(super) fn start_request(&self) -> InFlight {
        let mut state = self.conn.state.lock();
        match &mut *state {
            State::Waiting { key, .. } => {
                self.registry.not_idle(*key);
                *state = State::Busy { requests: 1 };
            }
            State::Busy { requests } => *requests += 1,
            State::Upgraded | State::Closed => {}
        }
        InFlight {
            tracker: self.clone(),
        }
    }
}

impl fmt::Debug for Tracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("state", &*self.conn.state.lock())
            .finish()
    }
}

// === impl InFlight ===

impl InFlight {
    /// The response switches protocols: the connection is held as it is until it closes.
    pub(super) fn upgraded(&self) {
        let mut state = self.tracker.conn.state.lock();
        if let State::Busy { .. } = *state {
            *state = State::Upgraded;
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let Tracker { registry, conn } = &self.tracker;
        let mut state = conn.state.lock();
        match &mut *state {
            State::Busy { requests: 1 } => {
                let key = registry.idle(conn);
                *state = State::Waiting {
                    since: Instant::now(),
                    first: false,
                    head_from: None,
                    key,
                };
                drop(state);
                // The idle clock starts: the task arms it.
                conn.wake.notify_one();
            }
            State::Busy { requests } => *requests -= 1,
            State::Waiting { .. } | State::Upgraded | State::Closed => {}
        }
    }
}

impl fmt::Debug for InFlight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InFlight").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;
    use std::time::Duration;

    use super::*;

    fn registry(max: usize) -> Arc<Registry> {
        Registry::new(
            Limits {
                max_connections: NonZeroUsize::new(max).expect("non-zero"),
                header_read_timeout: Duration::from_secs(10),
                idle_timeout: Duration::from_secs(75),
                write_timeout: Duration::from_secs(30),
            },
            ConnectionMetrics::detached(),
        )
    }

    fn admitted(admission: Admission) -> Slot {
        match admission {
            Admission::Admitted(slot) => slot,
            Admission::Full => panic!("turned away"),
        }
    }

    /// Runs `change` and asserts the deadline it sets is `after` from that moment.
    fn set_by(slot: &Slot, after: Duration, change: impl FnOnce()) -> Deadline {
        let limits = slot.tracker().registry().limits();
        let before = Instant::now();
        change();
        let done = Instant::now();
        let deadline = slot.tracker().conn().deadline(&limits).expect("waiting");
        assert!(
            before + after <= deadline.at && deadline.at <= done + after,
            "{deadline:?} is not {after:?} from the change"
        );
        deadline
    }

    #[tokio::test]
    async fn a_new_connection_has_the_header_timeout_then_idles_between_requests() {
        let registry = registry(4);
        let limits = registry.limits();
        let before = Instant::now();
        let slot = admitted(registry.admit().await);
        let first = slot.tracker().conn().deadline(&limits).expect("waiting");
        assert!(before + limits.header_read_timeout <= first.at);
        assert!(first.at <= Instant::now() + limits.header_read_timeout);
        assert_eq!(first.reason, Closed::HeaderTimeout);

        let request = slot.tracker().start_request();
        assert_eq!(
            slot.tracker().conn().deadline(&limits),
            None,
            "busy: no deadline"
        );
        let idle = set_by(&slot, limits.idle_timeout, || drop(request));
        assert_eq!(idle.reason, Closed::IdleTimeout);

        let head = set_by(&slot, limits.header_read_timeout, || {
            slot.tracker().conn().on_bytes()
        });
        assert_eq!(head.reason, Closed::HeaderTimeout);
        slot.tracker().conn().on_bytes();
        assert_eq!(
            slot.tracker().conn().deadline(&limits),
            Some(head),
            "the first byte counts"
        );
    }

    #[tokio::test]
    async fn at_the_cap_the_connection_idle_the_longest_is_asked_to_close() {
        let registry = registry(3);
        let a = admitted(registry.admit().await);
        let b = admitted(registry.admit().await);
        let c = admitted(registry.admit().await);
        // a answers a request after b and c were accepted: b has idled the longest.
        drop(a.tracker().start_request());
        let asked = registry.clone();
        let admission = tokio::spawn(async move { asked.admit().await });
        tokio::task::yield_now().await;
        assert!(b.tracker().conn().take_eviction(), "b asked to make room");
        assert!(!a.tracker().conn().take_eviction() && !c.tracker().conn().take_eviction());
        assert_eq!(registry.open(), 3, "b still holds its place");
        drop(b);
        let d = admitted(admission.await.expect("admit"));
        assert_eq!(registry.open(), 3);
        assert_eq!(registry.metrics().open.get(), 3);
        drop((a, c, d));
        assert_eq!(registry.open(), 0);
        assert_eq!(registry.metrics().open.get(), 0);
    }

    #[tokio::test]
    async fn busy_and_upgraded_connections_never_make_room() {
        let registry = registry(2);
        let a = admitted(registry.admit().await);
        let b = admitted(registry.admit().await);
        let _request = a.tracker().start_request();
        let socket = b.tracker().start_request();
        socket.upgraded();
        drop(socket);
        assert_eq!(
            b.tracker().conn().deadline(&registry.limits()),
            None,
            "a WebSocket has no timeout"
        );
        assert!(matches!(registry.admit().await, Admission::Full));
        assert!(!a.tracker().conn().take_eviction() && !b.tracker().conn().take_eviction());
    }

    #[tokio::test]
    async fn a_connection_that_takes_a_request_while_asked_to_close_is_skipped() {
        let registry = registry(2);
        let a = admitted(registry.admit().await);
        let b = admitted(registry.admit().await);
        let asked = registry.clone();
        let admission = tokio::spawn(async move { asked.admit().await });
        tokio::task::yield_now().await;
        // a was asked, but a request came first: it stays; b is asked next.
        let _request = a.tracker().start_request();
        tokio::time::sleep(EVICTION_WAIT + Duration::from_millis(50)).await;
        assert!(
            b.tracker().conn().take_eviction(),
            "the next idle one is asked"
        );
        drop(b);
        let _c = admitted(admission.await.expect("admit"));
        assert_eq!(registry.open(), 2);
    }
}
