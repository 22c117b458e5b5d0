//! A typed address: an actor named by its path in the [`Registry`], whatever incarnation
//! runs there now.
//!
//! A supervised actor is replaced when it restarts, so holding its `ActorRef` keeps a
//! dead actor. An [`Addr`] looks the path up at each use: while the actor runs it gives
//! its current ref; while it restarts it gives `None`, and the caller decides (retry
//! later, answer "unavailable").
//!
//! ```
//! use pincer_actors::{Addr, Registry};
//!
//! let registry = Registry::new();
//! let router: Addr<u32> = Addr::new(&registry, "pincer/router");
//! assert!(router.get().is_none()); // nothing runs there yet
//! assert_eq!(router.path(), "pincer/router");
//! ```

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use ractor::{ActorRef, Message};

use crate::registry::Registry;

/// The actor at one registry path, taking messages of type `M`; see the
/// [module docs](self). Cheap to clone.
pub struct Addr<M> {
    registry: Registry,
    path: Arc<str>,
    _messages: PhantomData<fn(M)>,
}

impl<M: Message> Addr<M> {
    /// The actor at `path` of `registry`.
    pub fn new(registry: &Registry, path: impl Into<Arc<str>>) -> Self {
        Self {
            registry: registry.clone(),
            path: path.into(),
            _messages: PhantomData,
        }
    }

    /// The running actor, if one runs at the path now.
    pub fn get(&self) -> Option<ActorRef<M>> {
        self.registry.cell(&self.path).map(ActorRef::from)
    }

    /// The path.
    pub fn path(&self) -> &str {
        &self.path
    }
}

impl<M> Clone for Addr<M> {
    fn clone(&self) -> Self {
        Self {
            registry: self.registry.clone(),
            path: self.path.clone(),
            _messages: PhantomData,
        }
    }
}

impl<M> fmt::Debug for Addr<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Addr").field(&self.path).finish()
    }
}
