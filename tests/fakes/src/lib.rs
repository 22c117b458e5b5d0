//! Fake upstreams that speak the real wire protocols (`../shared/protocols.md`), for tests
//! and benchmarks that run with no network. Each fake binds `127.0.0.1:0`, records every
//! request, counts what it saw, and takes knobs that inject latency and failures.
//!
//! Written from the protocol notes, never from Pincer's clients: a fake and a client must
//! not agree by sharing a bug.

pub mod anthropic;
pub mod brave;
pub mod discord;
pub mod openai;
pub mod searxng;
mod serve;
pub mod telegram;
pub mod vault;
