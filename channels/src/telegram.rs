//! The Telegram Bot API: calls ([`api`]) and replies ([`send`]): messages in parts of at
//! most 4096 characters, previews of a streaming reply, the typing action, each paced per
//! chat and per bot, `retry_after` honoured.

pub mod api;
pub mod send;

pub use api::{Api, ApiError, DEFAULT_API_BASE};
