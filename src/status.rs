//! What the running gateway says about itself beyond the registry: whether the tree has
//! started once, whether it is draining, and the problems of parts that run but cannot do
//! their job (a link whose token was revoked, a secret that is missing). Readiness reads it
//! with the registry snapshot; nothing here is an actor, so probes never wait on one.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::RwLock;

/// The gateway's own status; shared (`Arc`) by the parts that set it and readiness.
#[derive(Debug)]
pub struct Status {
    started: AtomicBool,
    draining: AtomicBool,
    born: Instant,
    problems: RwLock<BTreeMap<String, String>>,
}

impl Default for Status {
    fn default() -> Self {
        Self {
            started: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            born: Instant::now(),
            problems: RwLock::default(),
        }
    }
}

impl Status {
    /// Whether the tree has started once.
    pub fn is_started(&self) -> bool {
        self.started.load(Ordering::Acquire)
    }

    /// Marks the tree as started.
    pub fn mark_started(&self) {
        self.started.store(true, Ordering::Release);
    }

    /// Whether the gateway is shutting down (no new input).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Stops taking input.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Time since the gateway was made.
    pub fn uptime(&self) -> Duration {
        self.born.elapsed()
    }

    /// Marks `path` not ready for `reason`, or (with `None`) clears it.
    pub fn set_problem(&self, path: &str, reason: Option<String>) {
        let mut problems = self.problems.write();
        match reason {
            Some(r) => problems.insert(path.to_string(), r),
            None => problems.remove(path),
        };
    }

    /// Every problem, by path.
    pub fn problems(&self) -> Vec<(String, String)> {
        self.problems
            .read()
            .iter()
            .map(|(p, r)| (p.clone(), r.clone()))
            .collect()
    }
}
