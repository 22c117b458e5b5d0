//! The config in force, shared by the running gateway: one [`Publisher`] (held by the
//! config watcher, which alone puts an edit in force) and any number of [`View`]s (every
//! part that reads settings). A view reads the current snapshot for the price of a lock
//! and an `Arc` clone, and can wait for the next change.

use std::sync::Arc;

use tokio::sync::watch;

use crate::Config;

/// A reader of the config in force. Cheap to clone.
#[derive(Debug, Clone)]
pub struct View {
    tx: Arc<watch::Sender<Arc<Config>>>,
}

/// The one writer of the config in force.
#[derive(Debug)]
pub struct Publisher {
    tx: Arc<watch::Sender<Arc<Config>>>,
}

/// A publisher with `initial` in force, and a view of it.
pub fn channel(initial: Config) -> (Publisher, View) {
    let tx = Arc::new(watch::channel(Arc::new(initial)).0);
    (Publisher { tx: tx.clone() }, View { tx })
}

impl View {
    /// A view of a config that never changes (tests, one-shot commands).
    pub fn fixed(config: Config) -> Self {
        channel(config).1
    }

    /// The config in force: a snapshot, which later changes do not alter.
    pub fn current(&self) -> Arc<Config> {
        self.tx.borrow().clone()
    }

    /// Changes of the config in force, from now on.
    pub fn changes(&self) -> watch::Receiver<Arc<Config>> {
        self.tx.subscribe()
    }
}

impl Publisher {
    /// Puts `config` in force; every view sees it from its next read.
    pub fn publish(&self, config: Config) {
        self.tx.send_replace(Arc::new(config));
    }

    /// A view of what this publisher puts in force.
    pub fn view(&self) -> View {
        View {
            tx: self.tx.clone(),
        }
    }
}
