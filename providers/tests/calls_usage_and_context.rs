//! Calls made by this crate's clients against the fake upstreams (no gateway): the tokens
//! a call used arrive as one `Usage` before `Done`, and a request larger than the model's
//! context window fails as `ErrorKind::ContextLength` after one request, never retried.
//! The fakes count tokens as their module docs say (OpenAI: words; Anthropic: body bytes
//! / 4), so the numbers here are worked out from the request.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use pincer_actors::Scope;
use pincer_config::Transport;
use pincer_core::Role;
use pincer_core::metrics::catalog::ProviderMetrics;
use pincer_fakes::anthropic::{self as anthropic_fake, AnthropicFake};
use pincer_fakes::openai::{self as openai_fake, OpenAiFake};
use pincer_providers::emit::Emitter;
use pincer_providers::openai::socket::{Slot, Task};
use pincer_providers::openai::{self, Job};
use pincer_providers::{
    ChatMessage, ErrorKind, Item, Lease, Pool, ProviderEvent, ProviderRequest, Usage, anthropic,
    prefix_hashes,
};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

fn message(role: Role, text: &str) -> Item {
    Item::Message(ChatMessage {
        role,
        content: text.into(),
    })
}

/// With `items` after the system prompt "be brief" (two words).
fn request(model: &str, items: Vec<Item>) -> ProviderRequest {
    ProviderRequest {
        request_id: "req-1".into(),
        model: model.into(),
        system_prompt: Some("be brief".into()),
        items,
        tools: Vec::new(),
        thinking: None,
        api_key: None,
        options: Default::default(),
    }
}

/// A one-slot pool holding `key` (the gateway's connection actors set the keys).
fn pool(key: &str) -> Arc<Pool> {
    let http = pincer_core::net::http_client().expect("an HTTP client");
    let pool = Pool::new(vec!["conn:0".into()], 1, http);
    pool.keys.lock().set(vec![key.to_string()]);
    pool
}

async fn lease(pool: &Arc<Pool>, request: &ProviderRequest) -> Lease {
    pool.acquire(&prefix_hashes(request), &|_| true, WAIT, false)
        .await
        .expect("a free slot")
}

fn emitter(provider: &'static str) -> (Emitter, mpsc::Receiver<ProviderEvent>) {
    let (tx, rx) = mpsc::channel(64);
    let metrics = Arc::new(ProviderMetrics::detached());
    let emitter = Emitter::new(metrics, tx, provider, "req-1").pacing(1, Duration::ZERO);
    (emitter, rx)
}

/// Every event of one call, to its end.
async fn drain(mut rx: mpsc::Receiver<ProviderEvent>) -> Vec<ProviderEvent> {
    let mut events = Vec::new();
    while let Some(event) = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("the call ended in time")
    {
        let last = matches!(event, ProviderEvent::Done | ProviderEvent::Error(_));
        events.push(event);
        if last {
            break;
        }
    }
    events
}

/// The last two events.
fn tail(events: &[ProviderEvent]) -> &[ProviderEvent] {
    &events[events.len().saturating_sub(2)..]
}

fn error_kind(events: &[ProviderEvent]) -> Option<ErrorKind> {
    match events.last() {
        Some(ProviderEvent::Error(error)) => Some(error.kind),
        _ => None,
    }
}

// === OpenAI ===

fn openai_settings(fake: &OpenAiFake, transport: Transport) -> openai::Settings {
    openai::Settings {
        responses_url: format!("{}/responses", fake.base_url()),
        socket_url: openai::socket_url(&fake.base_url()),
        transport,
        warmups: Vec::new(),
        chunk_size: 1,
        latency_threshold: Duration::ZERO,
        socket_max_age: Duration::from_secs(3600),
        read_timeout: WAIT,
        keys: vec!["sk-test".into()],
    }
}

/// One call over SSE.
async fn openai_sse(fake: &OpenAiFake, request: ProviderRequest) -> Vec<ProviderEvent> {
    let pool = pool("sk-test");
    let lease = lease(&pool, &request).await;
    let (emitter, rx) = emitter(openai::NAME);
    let job = Job {
        request: Box::new(request),
        emitter,
        lease,
        full: true,
        attempt: 0,
    };
    let metrics = Arc::new(ProviderMetrics::detached());
    let settings = openai_settings(fake, Transport::Sse);
    tokio::spawn(openai::http::run(metrics, settings, job));
    drain(rx).await
}

/// A socket task on `fake` (WebSocket only, so nothing falls back to SSE unseen).
struct OpenSocket {
    pool: Arc<Pool>,
    jobs: mpsc::Sender<Job>,
}

impl OpenSocket {
    fn start(fake: &OpenAiFake) -> Self {
        let pool = pool("sk-test");
        let settings = openai_settings(fake, Transport::Websocket);
        let slot = Slot {
            index: 0,
            pool: Arc::clone(&pool),
            metrics: Arc::new(ProviderMetrics::detached()),
            settings: Arc::new(move || Some(settings.clone())),
            scope: Scope::root(),
            up: Arc::new(AtomicBool::new(false)),
        };
        let (jobs, rx) = mpsc::channel(4);
        tokio::spawn(Task::new(slot).run(rx));
        Self { pool, jobs }
    }

    async fn call(&self, request: ProviderRequest) -> Vec<ProviderEvent> {
        let lease = lease(&self.pool, &request).await;
        let (emitter, rx) = emitter(openai::NAME);
        let job = Job {
            request: Box::new(request),
            emitter,
            lease,
            full: false,
            attempt: 0,
        };
        self.jobs.send(job).await.expect("the socket task runs");
        drain(rx).await
    }
}

#[tokio::test]
async fn openai_usage_over_sse_comes_before_done() {
    let fake = OpenAiFake::start().await;
    let items = vec![message(Role::User, "one two three")];
    let events = openai_sse(&fake, request("gpt-5", items)).await;
    // Five words in; "openai: one two three" is four deltas.
    let usage = Usage {
        input_tokens: 5,
        output_tokens: 4,
    };
    assert_eq!(
        tail(&events),
        [ProviderEvent::Usage(usage), ProviderEvent::Done]
    );
    let usages = events
        .iter()
        .filter(|e| matches!(e, ProviderEvent::Usage(_)));
    assert_eq!(usages.count(), 1);
}

#[tokio::test]
async fn openai_usage_over_a_socket_counts_the_context_a_continuation_continues() {
    let fake = OpenAiFake::start().await;
    let socket = OpenSocket::start(&fake);
    let first = vec![message(Role::User, "one two three")];
    let events = socket.call(request("gpt-5", first.clone())).await;
    let usage = Usage {
        input_tokens: 5,
        output_tokens: 4,
    };
    assert_eq!(
        tail(&events),
        [ProviderEvent::Usage(usage), ProviderEvent::Done]
    );

    // The next call sends only "four five" after previous_response_id; upstream counts
    // the whole context: 3 + 4 before (instructions are not carried over), then the
    // instructions again and 2 new words.
    let mut next = first;
    next.push(message(Role::Assistant, "openai: one two three"));
    next.push(message(Role::User, "four five"));
    let events = socket.call(request("gpt-5", next)).await;
    assert_eq!(fake.counters().continuations, 1);
    let usage = Usage {
        input_tokens: 11,
        output_tokens: 3,
    };
    assert_eq!(
        tail(&events),
        [ProviderEvent::Usage(usage), ProviderEvent::Done]
    );
}

#[tokio::test]
async fn openai_context_too_long_over_sse_in_either_shape_is_not_retried() {
    for before_stream in [false, true] {
        let fake = OpenAiFake::start_with(openai_fake::Knobs {
            context_limit: Some(4),
            context_limit_before_stream: before_stream,
            ..openai_fake::Knobs::default()
        })
        .await;
        let items = vec![message(Role::User, "one two three")];
        let events = openai_sse(&fake, request("gpt-5", items)).await;
        assert_eq!(
            error_kind(&events),
            Some(ErrorKind::ContextLength),
            "{events:?}"
        );
        assert_eq!(events.len(), 1, "nothing but the error: {events:?}");
        let counters = fake.counters();
        assert_eq!((counters.sse_requests, counters.context_exceeded), (1, 1));
    }
}

#[tokio::test]
async fn openai_context_too_long_over_a_socket_in_either_shape_is_not_retried() {
    for before_stream in [false, true] {
        let fake = OpenAiFake::start_with(openai_fake::Knobs {
            context_limit: Some(4),
            context_limit_before_stream: before_stream,
            ..openai_fake::Knobs::default()
        })
        .await;
        let socket = OpenSocket::start(&fake);
        let items = vec![message(Role::User, "one two three")];
        let events = socket.call(request("gpt-5", items)).await;
        assert_eq!(
            error_kind(&events),
            Some(ErrorKind::ContextLength),
            "{events:?}"
        );
        let counters = fake.counters();
        assert_eq!((counters.ws_requests, counters.sse_requests), (1, 0));
        assert_eq!(counters.context_exceeded, 1);
        // The socket stays usable: a shorter context is answered on it.
        let items = vec![message(Role::User, "hi")];
        let events = socket.call(request("gpt-5", items)).await;
        assert_eq!(events.last(), Some(&ProviderEvent::Done));
        assert_eq!(fake.counters().sockets_opened, 1);
    }
}

// === Anthropic ===

fn anthropic_settings(fake: &AnthropicFake) -> anthropic::Settings {
    anthropic::Settings {
        messages_url: format!("{}/v1/messages", fake.base_url()),
        version: "2023-06-01".into(),
        max_tokens: 1024,
        chunk_size: 1,
        latency_threshold: Duration::ZERO,
        read_timeout: WAIT,
        keys: vec![anthropic_fake::TEST_KEY.into()],
    }
}

async fn anthropic_call(fake: &AnthropicFake, request: ProviderRequest) -> Vec<ProviderEvent> {
    let pool = pool(anthropic_fake::TEST_KEY);
    let lease = lease(&pool, &request).await;
    let (emitter, rx) = emitter(anthropic::NAME);
    let metrics = Arc::new(ProviderMetrics::detached());
    let settings = anthropic_settings(fake);
    let call = anthropic::run(metrics, settings, Box::new(request), emitter, lease);
    tokio::spawn(call);
    drain(rx).await
}

/// The fake's input estimate for a body it received: compact JSON bytes / 4.
fn estimate(body: &serde_json::Value) -> u64 {
    (body.to_string().len() as u64 / 4).max(1)
}

#[tokio::test]
async fn anthropic_usage_comes_before_done() {
    let fake = AnthropicFake::start();
    let items = vec![message(Role::User, "one two three")];
    let events = anthropic_call(&fake, request("claude-haiku-4-5", items)).await;
    let sent = fake.message_requests();
    // One output token per streamed word, of the reply and of its thinking, if any.
    let words = events
        .iter()
        .filter(|e| matches!(e, ProviderEvent::Delta(_) | ProviderEvent::Thinking(_)));
    let usage = Usage {
        input_tokens: estimate(&sent[0].body),
        output_tokens: words.count() as u64,
    };
    assert!(
        usage.output_tokens >= 4,
        "\"anthropic: one two three\" at least"
    );
    assert_eq!(
        tail(&events),
        [ProviderEvent::Usage(usage), ProviderEvent::Done]
    );
}

#[tokio::test]
async fn anthropic_prompt_too_long_is_context_length_and_not_retried() {
    let fake = AnthropicFake::start_with(anthropic_fake::Knobs {
        context_limit: Some(10),
        ..anthropic_fake::Knobs::default()
    });
    let items = vec![message(Role::User, "one two three")];
    let events = anthropic_call(&fake, request("claude-haiku-4-5", items)).await;
    assert_eq!(
        error_kind(&events),
        Some(ErrorKind::ContextLength),
        "{events:?}"
    );
    if let Some(ProviderEvent::Error(error)) = events.last() {
        assert!(
            error.message.contains("prompt is too long"),
            "{}",
            error.message
        );
    }
    let counters = fake.counters();
    assert_eq!((counters.requests, counters.context_exceeded), (1, 1));
}
