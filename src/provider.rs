//! Providers: the `providers` supervisor with one `provider:<name>` child per model
//! provider. `echo` is a single actor; `openai` and `anthropic` are supervisors of their
//! connection actors (`conn:<name>:<n>`), picked per call by a [`Pool`].
//!
//! A turn calls [`dispatch`] and reads [`ProviderEvent`]s from the receiver it gets back.
//! A stream that closes without [`ProviderEvent::Done`] or [`ProviderEvent::Error`] means
//! the connection (or provider) died, and the session tries the turn again.

pub mod anthropic;
pub mod call;
pub mod check;
pub mod echo;
pub mod emit;
pub mod keys;
pub mod openai;
pub mod pool;
pub mod retry;
pub mod sse;
pub mod thinking;

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use pincer_actors::{ChildSpec, Intensity, Strategy, SupervisorSpec};
use tokio::sync::mpsc;

use crate::gateway::Gateway;
use pincer_config::{Config, ThinkingMode, Transport};
use pincer_core::Role;

pub use pool::{Lease, Pool};

/// Messages every provider (or connection) actor takes.
#[derive(Debug)]
pub enum ProviderMsg {
    /// Generate a reply, streaming it into `events`.
    Stream {
        /// What to answer.
        request: Box<ProviderRequest>,
        /// Where the reply goes.
        events: mpsc::Sender<ProviderEvent>,
        /// The pool slot this call holds (none for `echo`); released when dropped.
        lease: Option<Lease>,
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
    /// The conversation, oldest first: messages, then this turn's tool calls and outputs.
    pub items: Vec<Item>,
    /// Tools the model may call.
    pub tools: Vec<ToolSpec>,
    /// The agent's thinking mode; `None` means the model family's default.
    pub thinking: Option<ThinkingMode>,
    /// The agent's own key, used instead of the provider's keys.
    pub api_key: Option<ApiKey>,
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
    /// What was said.
    pub content: String,
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
#[derive(Debug, Clone, PartialEq)]
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
    /// The reply (or this tool round) is complete.
    Done,
    /// The call failed for good (after the provider's own retries).
    Error(ProviderError),
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

/// Why [`dispatch`] could not hand a call to a provider.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    /// Not in this build or not configured.
    #[error("provider `{0}` is not configured")]
    Unknown(String),
    /// Restarting, or every connection busy past the wait: the turn tries again later.
    #[error("provider `{0}` has no connection available")]
    Unavailable(String),
}

/// Calls one HTTP (SSE) connection actor carries at once: far more than any home server
/// needs, but a bound.
pub const HTTP_CAPACITY: usize = 256;

/// How long a call waits for a free connection before the turn gives up this attempt.
const ACQUIRE_WAIT: Duration = Duration::from_secs(30);

/// The `providers` supervisor's child spec: `echo` always, the others when configured.
/// Adding or removing `[providers.openai]` or `[providers.anthropic]` needs a restart.
pub fn providers_spec(gw: &Gateway) -> ChildSpec {
    let config = gw.config();
    let mut spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(Intensity::default())
        .child(echo::spec(gw));
    if config.providers.openai.is_some() {
        spec = spec.child(openai::spec(gw));
    }
    if config.providers.anthropic.is_some() {
        spec = spec.child(anthropic::spec(gw));
    }
    let (spec, handle) = spec.into_child_spec("providers");
    gw.set_supervisor("providers", handle);
    spec
}

/// Whether `config` has provider `name` (echo is always there).
pub fn is_configured(config: &Config, name: &str) -> bool {
    match name {
        echo::NAME => true,
        openai::NAME => config.providers.openai.is_some(),
        anthropic::NAME => config.providers.anthropic.is_some(),
        _ => false,
    }
}

/// Hands `request` to provider `name` and returns the stream of its reply.
pub async fn dispatch(
    gw: &Gateway,
    name: &str,
    request: ProviderRequest,
) -> Result<mpsc::Receiver<ProviderEvent>, DispatchError> {
    let (events, rx) = mpsc::channel(64);
    let unavailable = || DispatchError::Unavailable(name.to_string());
    if name == echo::NAME {
        let provider = gw
            .actor::<ProviderMsg>(&pincer_core::paths::provider(name))
            .ok_or_else(unavailable)?;
        let msg = ProviderMsg::Stream {
            request: Box::new(request),
            events,
            lease: None,
        };
        provider.cast(msg).map_err(|_| unavailable())?;
        return Ok(rx);
    }
    if !is_configured(&gw.config(), name) {
        return Err(DispatchError::Unknown(name.to_string()));
    }
    let pool = gw.pool(name).ok_or_else(unavailable)?;
    let prefixes = prefix_hashes(&request);
    let running = |path: &str| gw.actor::<ProviderMsg>(path).is_some();
    // Under `auto`, an OpenAI call finding every socket busy goes over SSE at once
    // rather than waiting for a socket.
    let overflow = name == openai::NAME && gw.config().response.transport == Transport::Auto;
    let lease = pool
        .acquire(&prefixes, &running, ACQUIRE_WAIT, overflow)
        .await
        .ok_or_else(unavailable)?;
    let conn = gw
        .actor::<ProviderMsg>(lease.path())
        .ok_or_else(unavailable)?;
    let msg = ProviderMsg::Stream {
        request: Box::new(request),
        events,
        lease: Some(lease),
    };
    conn.cast(msg).map_err(|_| unavailable())?;
    Ok(rx)
}

/// `hashes[i]` fingerprints the request's model, instructions, tools and first `i`
/// items: a connection whose last response ended at a fingerprint in this list can
/// continue from it (see [`pool::Chain`]).
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
    hashes.push(hasher.finish());
    for item in &request.items {
        item.hash(&mut hasher);
        hashes.push(hasher.finish());
    }
    hashes
}

/// The HTTP client of providers and channel links (pooled connections, rustls). Redirects are not
/// followed: an API that redirects a POST is misconfigured, and following it would
/// re-send the key elsewhere.
pub fn http_client() -> reqwest::Client {
    // One client for the process: each client loads its own TLS root store and pool, which
    // cost ~150 kB per channel account when every link built its own.
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(Duration::from_secs(10))
                .tcp_nodelay(true)
                .user_agent(concat!("pincer/", env!("CARGO_PKG_VERSION")))
                .build()
                .unwrap_or_default()
        })
        .clone()
}

/// The resolved API keys of provider `name`: `apiKey` first, then `apiKeys`. A key that
/// cannot be resolved is left out (with a warning that names the ref, never a value).
pub fn resolve_keys(
    gw: &Gateway,
    name: &str,
    first: Option<&pincer_config::SecretValue>,
    more: &[pincer_config::SecretValue],
) -> Vec<String> {
    let secrets = gw.secret_handle(pincer_secrets::refs::provider_owner(name));
    first
        .into_iter()
        .chain(more)
        .filter_map(|value| match secrets.get(value) {
            Ok(key) => Some(key),
            Err(error) => {
                tracing::warn!(provider = name, "API key left out: {error}");
                None
            }
        })
        .collect()
}

/// The text of the last user message of `items`.
pub fn last_user_text(items: &[Item]) -> &str {
    items
        .iter()
        .rev()
        .find_map(|item| match item {
            Item::Message(m) if m.role == Role::User => Some(m.content.as_str()),
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
    fn a_different_model_changes_every_prefix() {
        let a = prefix_hashes(&request(vec![user("a")]));
        let mut r = request(vec![user("a")]);
        r.model = "n".into();
        let b = prefix_hashes(&r);
        assert!(a.iter().zip(&b).all(|(x, y)| x != y));
    }
}
