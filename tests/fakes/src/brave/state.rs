//! State shared between the test (through `BraveFake`) and the server thread: the knobs
//! (whose countdowns the server uses up) and the request log.

use parking_lot::{Mutex, MutexGuard};

use super::{Knobs, Recorded};

/// Everything mutable, behind one lock: requests are few and short.
#[derive(Debug)]
pub(super) struct State {
    pub(super) knobs: Knobs,
    pub(super) records: Vec<Recorded>,
    /// Requests recorded since the start, cleared ones included: a record's index.
    pub(super) recorded: usize,
    /// Error ids handed out so far.
    pub(super) errors: u64,
}

/// The lock around [`State`].
#[derive(Debug)]
pub(super) struct Shared(Mutex<State>);

// === impl Shared ===

impl Shared {
    pub(super) fn new(knobs: Knobs) -> Shared {
        Shared(Mutex::new(State {
            knobs,
            records: Vec::new(),
            recorded: 0,
            errors: 0,
        }))
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock()
    }

    /// Logs a request as it arrives (no status yet); returns its index.
    pub(super) fn record(&self, record: Recorded) -> usize {
        let mut state = self.lock();
        state.records.push(record);
        state.recorded += 1;
        state.recorded - 1
    }

    /// Sets the status of record `index`; a no-op when the log was cleared since.
    pub(super) fn finish(&self, index: usize, status: u16) {
        let mut state = self.lock();
        let first_kept = state.recorded - state.records.len();
        if let Some(record) = index
            .checked_sub(first_kept)
            .and_then(|i| state.records.get_mut(i))
        {
            record.status = Some(status);
        }
    }

    /// Forgets the recorded requests.
    pub(super) fn clear(&self) {
        self.lock().records.clear();
    }

    /// A fresh error id, UUID-shaped (version 4 layout) and counted so failures are
    /// reproducible.
    pub(super) fn next_error_id(&self) -> String {
        let mut state = self.lock();
        state.errors += 1;
        format!(
            "b4a7e000-0000-4000-8000-{:012x}",
            state.errors & 0xffff_ffff_ffff
        )
    }
}
