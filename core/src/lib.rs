//! # pincer-core: what every layer of Pincer shares
//!
//! The lowest layer of the gateway beside `pincer-actors`: plain records and helpers with
//! no actors, no config and no store. Everything above may use it; it uses nothing of
//! Pincer.
//!
//! - [`records`]: a message as a channel accepted it ([`Inbound`]), its peer, the roles
//!   and entries of a transcript.
//! - [`session_key`]: which conversation a message belongs to, and the session actor's id.
//! - [`paths`]: the ids and registry paths of the supervision tree's parts.
//! - [`clock`]: wall-clock milliseconds, as the store keeps them.
//! - [`net`]: the one HTTP client (no redirects, timeouts), capped reads, errors without
//!   URLs, constant-time token comparison.
//! - [`fs`]: atomic file writes that keep (or tighten) permissions.
//! - [`metrics`]: the metrics registry and the Prometheus text it renders.

pub mod clock;
pub mod fs;
pub mod metrics;
pub mod net;
pub mod paths;
pub mod records;
pub mod session_key;

pub use clock::now_ms;
pub use records::{Inbound, Outcome, PeerRef, Role, ToolRecord, TranscriptEntry};
