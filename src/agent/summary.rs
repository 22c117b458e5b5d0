//! Summaries for compaction: one call of the summary model (`agents.<id>.context.
//! summaryModel`, else the agent's own) that condenses the older part of a conversation.
//!
//! Not a turn: nothing streams to a chat, no tools are offered, and the result goes into
//! the transcript as a summary entry, never as a reply.

use std::time::Duration;

use pincer_core::Role;
use pincer_providers::{ChatMessage, Item, ProviderEvent, ProviderRequest};

use super::turn::TurnCtx;

/// How long a summary may take.
pub const SUMMARY_TIMEOUT: Duration = Duration::from_secs(120);

/// What the summary model is told.
const INSTRUCTIONS: &str = "You condense conversations so they can go on beyond the model's \
context window. Write a summary of the conversation below for the assistant who will \
continue it: the user's goals, requests and preferences, facts and decisions established, \
names, numbers and references that may come up again, tools that were used and what they \
found, and what was left open. Be concise but keep every detail that matters; write in the \
conversation's language; do not address the user; no preamble.";

/// Summarizes `input` (a conversation as text) with `model` = `(provider, name)`.
pub async fn summarize(
    ctx: &TurnCtx,
    model: &(String, String),
    input: String,
) -> Result<String, String> {
    let (provider, name) = model;
    let request = ProviderRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        model: name.clone(),
        system_prompt: Some(INSTRUCTIONS.to_string()),
        items: vec![Item::Message(ChatMessage {
            role: Role::User,
            content: input.into(),
        })],
        tools: Vec::new(),
        thinking: None,
        api_key: None,
        options: Default::default(),
    };
    let call = async {
        let mut rx = ctx
            .providers
            .dispatch(provider, request)
            .await
            .map_err(|e| e.to_string())?;
        let mut text = String::new();
        loop {
            match rx.recv().await {
                Some(ProviderEvent::Delta(delta)) => text.push_str(&delta),
                Some(ProviderEvent::Done) => break,
                Some(ProviderEvent::Error(error)) => return Err(error.message),
                Some(_) => {}
                None => return Err(format!("provider `{provider}` went away")),
            }
        }
        let text = text.trim().to_string();
        if text.is_empty() {
            return Err(format!("{provider}/{name} wrote an empty summary"));
        }
        Ok(text)
    };
    tokio::time::timeout(SUMMARY_TIMEOUT, call)
        .await
        .map_err(|_| {
            format!(
                "{provider}/{name} did not summarize within {}",
                pincer_config::duration::format_duration(SUMMARY_TIMEOUT)
            )
        })?
}
