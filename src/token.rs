//! The gateway's bearer token, shared by the part that rotates it (the `secrets` actor,
//! when `gateway.auth.token` is a ref) and the routes that check it.

use std::sync::Arc;

use parking_lot::RwLock;

/// The token in force; see the [module docs](self).
#[derive(Debug, Default)]
pub struct GatewayToken(RwLock<Option<Arc<str>>>);

impl GatewayToken {
    /// A token holder starting with `token`.
    pub fn new(token: Option<String>) -> Self {
        Self(RwLock::new(token.map(Arc::from)))
    }

    /// The token in force, if one is set.
    pub fn get(&self) -> Option<Arc<str>> {
        self.0.read().clone()
    }

    /// Replaces the token (secret rotation).
    pub fn set(&self, token: Option<String>) {
        *self.0.write() = token.map(Arc::from);
    }
}
