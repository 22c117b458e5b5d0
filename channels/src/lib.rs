//! # pincer-channels: chat channels' APIs and reply sending, without actors
//!
//! - [`telegram`]: the Bot API and how replies are sent to it;
//! - [`discord`]: REST with rate-limit buckets, replies, and the gateway socket protocol;
//! - what both share: [`push`] (lanes per conversation, previews of streaming replies,
//!   redelivery of replies answered while no link could send them), [`pace`] (token
//!   buckets), [`split`] (long replies in parts);
//! - [`outbox`]: replies on their way out of the gateway (waiters of the web chat and the
//!   HTTP API, the sink of a push channel's link);
//! - [`links`]: what outlives one incarnation of a link (status, the Telegram poll slot, the
//!   Discord session to resume, sends under way);
//! - [`pairing`]: DM pairing codes, kept in the store.
//!
//! This crate knows no actors: the gateway's `channel:<kind>:<account>/link` actors run
//! these in their scopes, and take messages in through the inbox.

pub mod discord;
pub mod links;
pub mod outbox;
pub mod pace;
pub mod pairing;
pub mod push;
pub mod split;
pub mod telegram;

pub use links::{DiscordResume, LinkStatus, Links, PollSlot};
pub use outbox::{
    ApprovalPrompt, CallerCall, Delivery, HandedTo, Notice, Outbox, Push, ReplyExtra,
    STEP_ARGUMENTS_CHARS, Step, Waiter,
};
