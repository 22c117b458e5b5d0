//! What a caller of the OpenAI-compatible API brings to a turn besides its new message:
//! its own history (a stateless request), its system messages, its options and its own
//! tools. It travels with the message through the durable inbox as JSON
//! ([`Caller::to_json`]), so a turn started again after a crash gets it too.

use serde::{Deserialize, Serialize};

use crate::{ChatMessage, Item, Options, ToolCall, ToolSpec};
use pincer_core::Role;

/// A caller's part of a turn.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Caller {
    /// The request carries the whole context: the session's transcript is not read.
    #[serde(default)]
    pub stateless: bool,
    /// The request's system and developer messages, joined; added after the agent's
    /// system prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// What comes before the new message: the whole history of a stateless request, or
    /// the seed of a session that has none yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<CallerItem>,
    /// What comes after the new message: the assistant's calls of the caller's tools and
    /// their results (a stateless request continuing a turn).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<CallerItem>,
    /// Sampling, format and tool choice.
    #[serde(default)]
    pub options: Options,
    /// The caller's own tools: the model may call them next to the agent's; such a call
    /// ends the turn and goes back to the caller.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
}

/// One entry of a caller's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CallerItem {
    /// A user or assistant message.
    Message {
        /// Who said it.
        role: Role,
        /// What was said.
        content: String,
    },
    /// A call of a tool the assistant made.
    ToolCall {
        /// Its id.
        call_id: String,
        /// The tool.
        name: String,
        /// Its arguments, a JSON text.
        arguments: String,
    },
    /// A tool's result.
    ToolOutput {
        /// The call answered.
        call_id: String,
        /// The result.
        output: String,
    },
}

// === impl Caller ===

impl Caller {
    /// The JSON carried in the inbox.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Back from the inbox; `None` when the text is not a caller's JSON.
    pub fn from_json(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

// === impl CallerItem ===

impl From<CallerItem> for Item {
    fn from(item: CallerItem) -> Self {
        match item {
            CallerItem::Message { role, content } => Item::Message(ChatMessage {
                role,
                content: content.into(),
            }),
            CallerItem::ToolCall {
                call_id,
                name,
                arguments,
            } => Item::ToolCall(ToolCall {
                call_id,
                name,
                arguments,
            }),
            CallerItem::ToolOutput { call_id, output } => Item::ToolOutput { call_id, output },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_survives_the_inbox() {
        let caller = Caller {
            stateless: true,
            system: Some("be terse".into()),
            history: vec![CallerItem::Message {
                role: Role::User,
                content: "hi".into(),
            }],
            after: vec![CallerItem::ToolOutput {
                call_id: "c".into(),
                output: "42".into(),
            }],
            options: Options {
                max_tokens: Some(3),
                ..Options::default()
            },
            tools: Vec::new(),
        };
        assert_eq!(Caller::from_json(&caller.to_json()), Some(caller));
        assert_eq!(Caller::from_json("not json"), None);
    }
}
