//! State shared between the test (through `AnthropicFake`) and the server thread.

use std::collections::VecDeque;

use parking_lot::{Mutex, MutexGuard};

use super::{Counters, Knobs, Recorded, Script};

/// Everything mutable, behind one lock: requests are few and short, so a single mutex
/// keeps snapshots (counters vs records) consistent with each other.
#[derive(Debug)]
pub(super) struct State {
    pub(super) knobs: Knobs,
    pub(super) scripts: VecDeque<Script>,
    pub(super) counters: Counters,
    pub(super) records: Vec<Recorded>,
    next_id: u64,
}

/// The lock around [`State`].
#[derive(Debug)]
pub(super) struct Shared(Mutex<State>);

impl Shared {
    pub(super) fn new(knobs: Knobs) -> Shared {
        Shared(Mutex::new(State {
            knobs,
            scripts: VecDeque::new(),
            counters: Counters::default(),
            records: Vec::new(),
            next_id: 1,
        }))
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock()
    }

    /// A fresh id in the real API's style (`req_01…`, `msg_01…`, `toolu_01…`), made
    /// deterministic from a counter so test failures are reproducible.
    pub(super) fn next_id(&self, prefix: &str) -> String {
        let mut state = self.lock();
        let n = state.next_id;
        state.next_id += 1;
        format!("{prefix}_01Fake{n:018}")
    }
}
