//! Telegram accounts: `channel:telegram:<account>/link` takes updates in by long polling
//! (`getUpdates`) or by webhook (`setWebhook`, served on the gateway port at
//! `POST /telegram/<account>`), and sends replies (see `pincer_channels::telegram::send`).
//!
//! Exactly one poller per bot token, ever: the poll runs in the link's scope, which is
//! closed (the request dropped) before a replacement link starts, and the replacement also
//! takes the token's poll slot, waiting a moment after a predecessor that was cut off so
//! the Bot API has seen its connection close. A 409 means someone else polls the token;
//! the link backs off and never starts a second poller of its own.
//!
//! An update is confirmed (the next `getUpdates` offset moves past it) only once it is in
//! the inbox, so a crash anywhere loses nothing; a redelivered update hits the inbox's
//! unique key (`<chat>:<message id>`) and is answered once.

mod inbound;
mod link;

pub use inbound::{NEEDS_TOPIC, Outcome};
pub use link::{TelegramLink, TelegramLinkMsg, WebhookError, link_spec};
pub use pincer_channels::telegram::{Api, ApiError, DEFAULT_API_BASE};
