//! Whether the store can write, read by `/readyz` without a message.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// The store's writability, updated by the writer after every commit and probe.
#[derive(Debug, Default)]
pub struct StoreHealth {
    writable: AtomicBool,
    status: Mutex<Status>,
}

#[derive(Debug, Default)]
enum Status {
    /// The writer has not opened the database yet.
    #[default]
    Opening,
    /// The last write or probe succeeded.
    Writable,
    /// The last write or probe failed, for this reason.
    Refusing(String),
}

impl StoreHealth {
    /// Whether the last write (or probe) succeeded.
    pub fn is_writable(&self) -> bool {
        self.writable.load(Ordering::Acquire)
    }

    /// Why the store cannot write, if it cannot (including "not opened yet").
    pub fn reason(&self) -> Option<String> {
        if self.is_writable() {
            return None;
        }
        match &*self.status.lock() {
            Status::Opening => Some("store not opened yet".to_string()),
            Status::Writable => None,
            Status::Refusing(reason) => Some(reason.clone()),
        }
    }

    /// Why the store refused its last write or probe; `None` while it is still opening
    /// or writes fine. Callers fail fast on this instead of queueing.
    pub fn refusal(&self) -> Option<String> {
        if self.is_writable() {
            return None;
        }
        match &*self.status.lock() {
            Status::Refusing(reason) => Some(reason.clone()),
            Status::Opening | Status::Writable => None,
        }
    }

    pub(crate) fn set_writable(&self) {
        if self.writable.swap(true, Ordering::AcqRel) {
            return;
        }
        let was = std::mem::replace(&mut *self.status.lock(), Status::Writable);
        if let Status::Refusing(reason) = was {
            tracing::info!(message = "Store can write again.", was = %reason);
        }
    }

    pub(crate) fn set_unwritable(&self, reason: String) {
        let was = self.writable.swap(false, Ordering::AcqRel);
        let mut status = self.status.lock();
        let same = matches!(&*status, Status::Refusing(r) if *r == reason);
        if was || !same {
            tracing::error!(message = "Store cannot write.", reason = %reason);
        }
        *status = Status::Refusing(reason);
    }
}
