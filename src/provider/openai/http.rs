//! A Responses call over HTTP + SSE: `POST …/responses` with `stream: true`, retried by
//! the shared rules before the stream starts; the events then go through the same
//! [`Decoder`] as the socket's.

use serde_json::{Value, json};

use super::conn::Job;
use super::wire::{self, Decoder, Failure, Step};
use super::{NAME, Settings};
use crate::gateway::Gateway;
use crate::provider::call::{self, ErrorShape};
use crate::provider::emit::{Emitter, Gone};
use crate::provider::retry::{self, Verdict};
use crate::provider::sse::Reader;
use crate::provider::{ErrorKind, ProviderError};

/// OpenAI error bodies carry their code at `error.code`.
pub const SHAPE: ErrorShape = ErrorShape {
    code: |body| {
        body.pointer("/error/code")
            .and_then(Value::as_str)
            .map(str::to_string)
    },
};

/// Runs `job` over SSE to the end of its stream.
pub async fn run(gw: Gateway, settings: Settings, job: Job) {
    let Job {
        request,
        mut emitter,
        lease,
        ..
    } = job;
    emitter.transport("sse");
    let mut body = wire::body(&request, 0, None);
    body.insert("stream".into(), json!(true));
    let pool = lease.pool();
    let own_key = request.api_key.as_ref().map(|k| k.0.as_str());
    let sent = call::post(
        &gw,
        pool,
        NAME,
        &request.request_id,
        SHAPE,
        own_key,
        |key| {
            pool.http
                .post(&settings.responses_url)
                .bearer_auth(key)
                .header("x-client-request-id", &request.request_id)
                .json(&body)
        },
    )
    .await;
    let response = match sent {
        Ok(response) => response,
        Err(error) => {
            let _ = emitter.fail(error).await;
            return;
        }
    };
    let mut reader = Reader::new(response.bytes_stream());
    let mut decoder = Decoder::default();
    loop {
        let value = match reader.next_json(NAME, &request.request_id).await {
            Ok(Some(value)) => value,
            Ok(None) => {
                if let Some(failure) = decoder.pending_failure() {
                    let _ = emitter.fail(failed(&failure, true)).await;
                }
                return;
            }
            Err(error) => {
                let _ = emitter.fail(error).await;
                return;
            }
        };
        match forward(&mut emitter, decoder.step(&value)).await {
            Ok(Flow::More) => {}
            Ok(Flow::Completed) => {
                let _ = emitter.done().await;
                return;
            }
            Ok(Flow::Failed(failure)) => {
                let started = emitter.started();
                let _ = emitter.fail(failed(&failure, started)).await;
                return;
            }
            Err(Gone) => return,
        }
    }
}

/// What the caller does after one decoded step.
#[derive(Debug)]
pub enum Flow {
    /// Read on.
    More,
    /// The response completed.
    Completed,
    /// The response failed.
    Failed(Failure),
}

/// Passes one step's output on to the turn.
pub async fn forward(emitter: &mut Emitter, step: Step) -> Result<Flow, Gone> {
    match step {
        Step::Nothing => {}
        Step::Delta(text) => emitter.delta(&text).await?,
        Step::Thinking(text) => emitter.thinking(&text).await?,
        Step::ToolCall(call) => emitter.tool_call(call).await?,
        Step::Completed => return Ok(Flow::Completed),
        Step::Failed(failure) => return Ok(Flow::Failed(failure)),
    }
    Ok(Flow::More)
}

/// The provider error for `failure`; `started` when output already went to the turn.
pub fn failed(failure: &Failure, started: bool) -> ProviderError {
    let code = failure.code.as_deref();
    let message = match code {
        Some(code) => format!("{code}: {}", failure.message),
        None => failure.message.clone(),
    };
    let kind = if started {
        ErrorKind::Broken
    } else {
        match retry::verdict_for_code(failure.status, code) {
            _ if code == Some("insufficient_quota") => ErrorKind::Exhausted,
            Verdict::Retry(_) => ErrorKind::Exhausted,
            Verdict::Stop if failure.status.is_none() => ErrorKind::Exhausted,
            Verdict::Stop => ErrorKind::Rejected,
        }
    };
    ProviderError::new(kind, message)
}
