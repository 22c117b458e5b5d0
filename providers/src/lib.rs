//! # pincer-providers: model providers' wire formats and calls, without actors
//!
//! What a turn asks of a model ([`ProviderRequest`]: a conversation of [`Item`]s, tools,
//! a thinking mode) and what comes back ([`ProviderEvent`]s: text, thinking, tool calls,
//! the tokens the call used, the end or an error), and everything needed to make the call:
//!
//! - [`openai`]: the Responses API over WebSocket ([`openai::socket`]: warm-up,
//!   `previous_response_id` continuation, reconnects) and over SSE ([`openai::http`]);
//! - [`anthropic`]: the Messages API over SSE, with adaptive thinking;
//! - [`echo`]: the built-in offline model's reply;
//! - what both HTTP providers share: [`call`] (one call with retries and API keys),
//!   [`retry`] (when and how long), [`keys`] (auth profiles resting after 429/401),
//!   [`sse`] (the event reader and the one streamed call), [`emit`] (chunking and pace of
//!   the stream), [`pool`] (which connection takes a call), [`thinking`].
//!
//! This crate knows no actors: the gateway's `provider:*` and `conn:*` actors own the
//! connections' lives, read settings and keys from the config in force, and hand each call
//! here. Anything here can be built and driven in a test without a gateway.

pub mod anthropic;
pub mod call;
pub mod caller;
pub mod echo;
pub mod emit;
pub mod keys;
pub mod openai;
pub mod options;
pub mod pool;
pub mod retry;
pub mod sse;
mod text;
pub mod thinking;

use std::hash::{DefaultHasher, Hash, Hasher};

use pincer_config::ThinkingMode;
use pincer_core::Role;

pub use caller::{Caller, CallerItem};
pub use options::{Options, ResponseFormat, ToolChoice};
pub use pool::{Chain, Lease, Pool};
pub use text::Text;

/// One model call.
#[derive(Debug, Clone)]
pub struct ProviderRequest {
    /// Id carried in logs (and upstream request headers).
    pub request_id: String,
    /// Model name at the provider.
    pub model: String,
    /// The agent's system prompt.
    pub system_prompt: Option<String>,
    /// The conversation, oldest first: messages, then this turn's tool calls and outputs.
    pub items: Vec<Item>,
    /// Tools the model may call.
    pub tools: Vec<ToolSpec>,
    /// The agent's thinking mode; `None` means the model family's default.
    pub thinking: Option<ThinkingMode>,
    /// The agent's own key, used instead of the provider's keys.
    pub api_key: Option<ApiKey>,
    /// What the caller asked of this call (sampling, format, tool choice).
    pub options: Options,
}

/// An API key carried with a call; its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(pub String);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// One entry of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Item {
    /// A message.
    Message(ChatMessage),
    /// A tool call the model made.
    ToolCall(ToolCall),
    /// A thinking block the provider needs back (Anthropic, during tool rounds).
    Reasoning(Reasoning),
    /// What a tool answered.
    ToolOutput {
        /// The call answered.
        call_id: String,
        /// The tool's output.
        output: String,
    },
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChatMessage {
    /// Who said it.
    pub role: Role,
    /// What was said (shared, not copied: see [`Text`]).
    pub content: Text,
}

/// A tool call requested by the model.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ToolCall {
    /// The provider's id of the call, echoed with the output.
    pub call_id: String,
    /// The tool's name.
    pub name: String,
    /// Its arguments, a JSON text.
    pub arguments: String,
}

/// A thinking block as the provider sent it, signature included, so that it can be sent
/// back unchanged (Anthropic requires that of the assistant turn before a tool result).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reasoning {
    /// The thinking text (empty when redacted).
    pub text: String,
    /// The provider's signature, or the encrypted data of a redacted block.
    pub signature: String,
    /// A `redacted_thinking` block.
    pub redacted: bool,
}

/// A tool offered to the model.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ToolSpec {
    /// Name.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON schema of its arguments.
    pub parameters: serde_json::Value,
}

/// What a provider streams back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderEvent {
    /// Reply text.
    Delta(String),
    /// Thinking text (kept in the transcript, not sent to chat users).
    Thinking(String),
    /// The model asks for a tool; more may follow before [`ProviderEvent::Done`].
    ToolCall(ToolCall),
    /// A complete thinking block, to be sent back with the tool results.
    Reasoning(Reasoning),
    /// The tokens this model call used, as the upstream counted them (the echo model
    /// estimates). Comes at most once per call, just before [`ProviderEvent::Done`], and
    /// only when the upstream reported it.
    Usage(Usage),
    /// The reply stopped at the output cap (OpenAI's `max_output_tokens`, Anthropic's
    /// `max_tokens`): what came is all there is. Comes before [`ProviderEvent::Done`].
    Cut,
    /// The reply (or this tool round) is complete.
    Done,
    /// The call failed for good (after the provider's own retries).
    Error(ProviderError),
}

/// The tokens one model call used: what the session needs to learn how many tokens its
/// context really is (the bytes it sent against `input_tokens`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Tokens of the request: the whole context the model read (instructions, history,
    /// tools, this round's input), cached or not.
    pub input_tokens: u64,
    /// Tokens the model wrote (reasoning included where the upstream counts it there).
    pub output_tokens: u64,
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ProviderError {
    /// What happened, without secrets.
    pub message: String,
    /// Whether another model may do better (see [`ErrorKind`]).
    pub kind: ErrorKind,
}

/// Classes of failure, for the fallback chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// This model cannot answer now (retries spent, quota, every key cooling down, the
    /// upstream down): try the next model in the chain.
    Exhausted,
    /// The request itself was refused (bad request, model unknown): another model may
    /// still take it.
    Rejected,
    /// Failed mid-reply; trying another model would repeat what the user already saw.
    Broken,
    /// The request is larger than the model's context window. Not transient (never
    /// retried as is), and another model of the chain will not help unless its window is
    /// larger: the turn hands it to the session, which compacts the context and tries
    /// once more.
    ContextLength,
}

impl ProviderError {
    /// A failure of kind `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            kind,
        }
    }
}

/// `hashes[i]` fingerprints the request's model, instructions, tools and first `i`
/// items: a connection whose last response ended at a fingerprint in this list can
/// continue from it (see [`pool::Chain`]). Each fingerprint is made from the one before
/// and the next item ([`chain_step`]), so a chain is extended by the items it gains
/// without hashing the conversation again.
pub fn prefix_hashes(request: &ProviderRequest) -> Vec<u64> {
    let mut hasher = DefaultHasher::new();
    request.model.hash(&mut hasher);
    request.system_prompt.hash(&mut hasher);
    for tool in &request.tools {
        tool.name.hash(&mut hasher);
        tool.description.hash(&mut hasher);
        tool.parameters.to_string().hash(&mut hasher);
    }
    let mut hashes = Vec::with_capacity(request.items.len() + 1);
    let mut hash = hasher.finish();
    hashes.push(hash);
    for item in &request.items {
        hash = chain_step(hash, item);
        hashes.push(hash);
    }
    hashes
}

/// The fingerprint of a prefix ending at `previous` followed by `item`: one short hash of
/// `previous` and the item's own fingerprint, so that a message (whose text is hashed once
/// in its life, see [`Text`]) costs the same however long it is.
pub fn chain_step(previous: u64, item: &Item) -> u64 {
    let (kind, own) = match item {
        Item::Message(m) => (m.role as u8, m.content.fingerprint()),
        other => {
            let mut hasher = DefaultHasher::new();
            other.hash(&mut hasher);
            (u8::MAX, hasher.finish())
        }
    };
    let mut bytes = [0u8; 17];
    bytes[..8].copy_from_slice(&previous.to_le_bytes());
    bytes[8] = kind;
    bytes[9..].copy_from_slice(&own.to_le_bytes());
    let mut hasher = DefaultHasher::new();
    hasher.write(&bytes);
    hasher.finish()
}

/// The bytes of text `request` carries (system prompt, every item's text, tool
/// definitions): what a provider counts its input tokens of. Estimates of tokens and the
/// calibration of a bytes-per-token ratio both start from it.
pub fn text_bytes(request: &ProviderRequest) -> usize {
    let items: usize = request
        .items
        .iter()
        .map(|item| match item {
            Item::Message(m) => m.content.len(),
            Item::ToolCall(call) => call.name.len() + call.arguments.len(),
            Item::Reasoning(r) => r.text.len(),
            Item::ToolOutput { output, .. } => output.len(),
        })
        .sum();
    request.system_prompt.as_deref().map_or(0, str::len) + items + tool_bytes(&request.tools)
}

/// The bytes of text tool definitions carry (name, description, JSON schema).
pub fn tool_bytes(tools: &[ToolSpec]) -> usize {
    tools
        .iter()
        .map(|t| t.name.len() + t.description.len() + t.parameters.to_string().len())
        .sum()
}

/// The text of the last user message of `items`.
pub fn last_user_text(items: &[Item]) -> &str {
    items
        .iter()
        .rev()
        .find_map(|item| match item {
            Item::Message(m) if m.role == Role::User => Some(&*m.content),
            _ => None,
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(items: Vec<Item>) -> ProviderRequest {
        ProviderRequest {
            request_id: "r".into(),
            model: "m".into(),
            system_prompt: None,
            items,
            tools: Vec::new(),
            thinking: None,
            api_key: None,
            options: Options::default(),
        }
    }

    fn user(text: &str) -> Item {
        Item::Message(ChatMessage {
            role: Role::User,
            content: text.into(),
        })
    }

    #[test]
    fn prefixes_of_a_longer_conversation_match_the_shorter_one() {
        let short = prefix_hashes(&request(vec![user("a")]));
        let long = prefix_hashes(&request(vec![user("a"), user("b")]));
        assert_eq!(short.len(), 2);
        assert_eq!(long[..2], short[..]);
        let other = prefix_hashes(&request(vec![user("x"), user("b")]));
        assert_ne!(other[1], short[1]);
    }

    #[test]
    fn a_chain_extended_by_items_is_the_longer_request_s_prefix() {
        let short = request(vec![user("a")]);
        let long = request(vec![user("a"), user("b"), user("c")]);
        let start = pool::Chain {
            hash: *prefix_hashes(&short).last().expect("a prefix"),
            len: 1,
        };
        let extended = start.then(&user("b")).then(&user("c"));
        let hashes = prefix_hashes(&long);
        assert_eq!((extended.hash, extended.len), (hashes[3], 3));
        assert_ne!(start.then(&user("c")).hash, hashes[2]);
    }

    #[test]
    fn a_different_model_changes_every_prefix() {
        let a = prefix_hashes(&request(vec![user("a")]));
        let mut r = request(vec![user("a")]);
        r.model = "n".into();
        let b = prefix_hashes(&r);
        assert!(a.iter().zip(&b).all(|(x, y)| x != y));
    }
}
