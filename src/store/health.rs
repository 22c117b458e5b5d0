//! Whether the store can write, read by `/readyz` without a message.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// The store's writability, updated by the writer after every commit and probe.
#[derive(Debug)]
pub struct StoreHealth {
    writable: AtomicBool,
    reason: Mutex<Option<String>>,
}

impl Default for StoreHealth {
    fn default() -> Self {
        Self {
            writable: AtomicBool::new(false),
            reason: Mutex::new(Some("store not opened yet".to_string())),
        }
    }
}

impl StoreHealth {
    /// Whether the last write (or probe) succeeded.
    pub fn is_writable(&self) -> bool {
        self.writable.load(Ordering::Acquire)
    }

    /// Why the store cannot write, if it cannot.
    pub fn reason(&self) -> Option<String> {
        if self.is_writable() {
            None
        } else {
            self.reason.lock().clone()
        }
    }

    pub(crate) fn set_writable(&self) {
        if !self.writable.swap(true, Ordering::AcqRel)
            && let Some(reason) = self.reason.lock().take()
        {
            tracing::info!(message = "Store can write again.", was = %reason);
        }
    }

    pub(crate) fn set_unwritable(&self, reason: String) {
        let was = self.writable.swap(false, Ordering::AcqRel);
        let mut current = self.reason.lock();
        if was || current.as_deref() != Some(reason.as_str()) {
            tracing::error!(message = "Store cannot write.", reason = %reason);
        }
        *current = Some(reason);
    }
}
