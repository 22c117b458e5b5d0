//! Replies to Discord: parts of at most 2000 characters posted in the channel (or thread)
//! the message came from, the first one as a reply to it. Discord has no cheap preview of
//! a message in progress, so a streaming reply shows "typing…" and goes out whole. A tool
//! call that runs for a while is the exception: its status ("Searching the web…") is
//! posted once per reply, so a long wait is not a silent one.

use std::sync::Arc;
use std::time::Duration;

use super::rest::Rest;
use crate::push::{Draft, SendError, Upstream};
use crate::split;
use pincer_core::Inbound;

/// Discord's limit on a message's content.
pub const MAX_CONTENT: usize = 2000;

/// The sending side of one bot.
#[derive(Debug, Clone)]
pub struct Sender {
    /// The REST client.
    pub rest: Arc<Rest>,
}

/// `(channel, message)` of a message from its upstream id `<channel>:<message>`.
pub fn target(inbound: &Inbound) -> Option<(&str, &str)> {
    inbound.upstream_id.split_once(':')
}

impl Upstream for Sender {
    fn lane(&self, inbound: &Inbound) -> String {
        target(inbound).map_or_else(|| inbound.peer.id.clone(), |(c, _)| c.to_string())
    }

    fn preview_interval(&self, _inbound: &Inbound) -> Option<Duration> {
        // Only a status is ever shown (see `preview`): as soon as it is there.
        Some(Duration::ZERO)
    }

    async fn typing(&self, inbound: &Inbound) {
        if let Some((channel, _)) = target(inbound) {
            self.rest.typing(channel).await;
        }
    }

    async fn notice(&self, inbound: &Inbound, text: &str) -> Result<(), SendError> {
        let Some((channel, message)) = target(inbound) else {
            return Err(SendError::Permanent(format!(
                "cannot tell the channel of `{}`",
                inbound.upstream_id
            )));
        };
        for part in split::split(text, MAX_CONTENT) {
            self.rest
                .post_message(channel, &part, Some(message))
                .await?;
        }
        Ok(())
    }

    async fn preview(&self, inbound: &Inbound, draft: &mut Draft) -> Result<(), SendError> {
        // Text is not previewed; the first status of a reply is posted, once.
        draft.shown = draft.shown_text();
        let (Some(status), None) = (&draft.status, &draft.message_id) else {
            return Ok(());
        };
        let Some((channel, message)) = target(inbound) else {
            return Ok(());
        };
        self.rest
            .post_message(channel, status, Some(message))
            .await?;
        draft.message_id = Some(String::new()); // posted: not again for this reply
        Ok(())
    }

    async fn finish(
        &self,
        inbound: &Inbound,
        _draft: &mut Draft,
        reply: &str,
    ) -> Result<(), SendError> {
        let Some((channel, message)) = target(inbound) else {
            return Err(SendError::Permanent(format!(
                "cannot tell the channel of `{}`",
                inbound.upstream_id
            )));
        };
        let mut parts = split::split(reply, MAX_CONTENT);
        if parts.is_empty() {
            parts.push("(empty reply)".into());
        }
        for (i, part) in parts.iter().enumerate() {
            let reply_to = (i == 0).then_some(message);
            self.rest.post_message(channel, part, reply_to).await?;
        }
        Ok(())
    }
}
