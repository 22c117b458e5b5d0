//! Discord accounts: `channel:discord:<account>/link` holds the gateway socket (hello,
//! heartbeat with jitter, identify or resume, zombie detection) and sends replies over
//! REST (see `pincer_channels::discord::rest`) with per-route buckets and the global limit.
//!
//! The session (its id, resume URL and the last sequence number whose event is durable)
//! outlives the link in the gateway's [`Links`](pincer_channels::Links): a killed or crashed
//! link resumes and Discord replays what it missed; it identifies again only when Discord
//! says the session is invalid. A MESSAGE_CREATE is durable once in the inbox, and only
//! then does the sequence number move past it, so a resume replays every message that was
//! not yet taken in; a replayed one that was hits the inbox's unique key.
//!
//! Close codes 4004 and 4010–4014 (bad token, bad shard, sharding required, bad API
//! version, invalid or disallowed intents) are fatal: the link stops reconnecting, and
//! readiness names the reason until the account's config changes.

mod inbound;
mod link;

pub use link::{DiscordLink, link_spec};
pub use pincer_channels::discord::{INTENTS, rest};
