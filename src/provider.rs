//! Providers: the `providers` supervisor with one `provider:<name>` child per configured
//! model provider. A turn sends a provider a [`ProviderMsg::Stream`] and reads
//! [`ProviderEvent`]s from the channel it gave; a stream that closes without
//! [`ProviderEvent::Done`] or [`ProviderEvent::Error`] means the provider (or its
//! connection) died, and the turn is tried again.
//!
//! This issue has the built-in [`echo`] provider; OpenAI and Anthropic plug in beside it.

pub mod echo;

use pincer_actors::{ChildSpec, Intensity, Strategy, SupervisorSpec};
use tokio::sync::mpsc;

use crate::gateway::Gateway;
use crate::store::Role;

/// Messages every provider actor takes.
#[derive(Debug)]
pub enum ProviderMsg {
    /// Generate a reply, streaming it into `events`.
    Stream {
        /// What to answer.
        request: Box<ProviderRequest>,
        /// Where the reply goes.
        events: mpsc::Sender<ProviderEvent>,
    },
}

/// One model call.
#[derive(Debug, Clone)]
pub struct ProviderRequest {
    /// Id carried in logs (and upstream request headers).
    pub request_id: String,
    /// Model name at the provider.
    pub model: String,
    /// The agent's system prompt.
    pub system_prompt: Option<String>,
    /// The conversation, oldest first, ending with the new user message.
    pub messages: Vec<ChatMessage>,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// Who said it.
    pub role: Role,
    /// What was said.
    pub content: String,
}

/// What a provider streams back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderEvent {
    /// Reply text.
    Delta(String),
    /// Thinking text (kept in the transcript, not sent to chat users).
    Thinking(String),
    /// The reply is complete.
    Done,
    /// The call failed for good (after the provider's own retries).
    Error(String),
}

/// The `providers` supervisor's child spec: one child per provider this build has.
pub fn providers_spec(gw: &Gateway) -> ChildSpec {
    let (spec, handle) = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(Intensity::default())
        .child(echo::spec(gw))
        .into_child_spec("providers");
    gw.set_supervisor("providers", handle);
    spec
}

/// The registry path of provider `name`.
pub fn provider_path(name: &str) -> String {
    format!("{}/providers/provider:{name}", crate::gateway::ROOT)
}

/// Whether this build has provider `name`.
pub fn is_built(name: &str) -> bool {
    name == echo::NAME
}
