//! Discord: the REST API with per-route buckets and the global limit ([`rest`]), replies
//! ([`send`]), and the gateway socket ([`socket`]: hello, heartbeat with jitter, identify
//! or resume, zombie detection, close codes).

pub mod rest;
pub mod send;
pub mod socket;

pub use socket::INTENTS;
