//! A Responses call over HTTP + SSE: `POST …/responses` with `stream: true`, retried by
//! the shared rules before the stream starts; the events then go through the same
//! [`Decoder`] as the socket's.

use std::sync::Arc;

use pincer_core::metrics::catalog::{ProviderMetrics, Transport};
use serde_json::{Value, json};

use super::wire::{self, Decoder, Failure, Step};
use super::{Job, NAME, Settings};
use crate::call::{self, ErrorShape, Target};
use crate::emit::{Emitter, Gone};
use crate::retry::{self, Verdict};
use crate::sse;
use crate::{ErrorKind, ProviderError};

/// OpenAI error bodies carry their code at `error.code`; `context_length_exceeded` (a
/// 400) is a request too long for the model.
pub const SHAPE: ErrorShape = ErrorShape {
    code: |body| {
        body.pointer("/error/code")
            .and_then(Value::as_str)
            .map(str::to_string)
    },
    too_long: |_, body| {
        super::is_context_length(body.pointer("/error/code").and_then(Value::as_str))
    },
};

/// Runs `job` over SSE to the end of its stream (`metrics` counts its retries and pace).
pub async fn run(metrics: Arc<ProviderMetrics>, settings: Settings, job: Job) {
    let Job {
        request,
        mut emitter,
        lease,
        ..
    } = job;
    emitter.transport(Transport::Sse);
    let mut body = wire::body(&request, 0, None);
    body.insert("stream".into(), json!(true));
    let pool = lease.pool();
    let own_key = request.api_key.as_ref().map(|k| k.0.as_str());
    let target = Target {
        provider: NAME,
        shape: SHAPE,
        pool,
        metrics: &metrics,
        read_timeout: settings.read_timeout,
    };
    let sent = call::post(target, &request.request_id, own_key, |key| {
        pool.http
            .post(&settings.responses_url)
            .bearer_auth(key)
            .header("x-client-request-id", &request.request_id)
            .json(&body)
    })
    .await;
    let decoder = SseDecoder::default();
    sse::stream(
        sent,
        decoder,
        emitter,
        settings.read_timeout,
        NAME,
        &request.request_id,
    )
    .await;
}

/// The Responses events of an SSE body, through the socket's [`Decoder`].
#[derive(Debug, Default)]
struct SseDecoder(Decoder);

impl sse::Decode for SseDecoder {
    async fn event(&mut self, event: &Value, emitter: &mut Emitter) -> Result<sse::Flow, Gone> {
        Ok(match forward(emitter, self.0.step(event)).await? {
            Flow::More => sse::Flow::More,
            Flow::Completed => sse::Flow::Done,
            Flow::Failed(failure) => sse::Flow::Failed(failed(&failure, emitter.started())),
        })
    }

    fn ended(&mut self, _started: bool) -> Option<ProviderError> {
        // A body cut after `response.failed` still failed; cut anywhere else, the turn is
        // tried again.
        self.0
            .pending_failure()
            .map(|failure| failed(&failure, true))
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
        Step::Completed { usage, cut } => {
            if cut {
                emitter.cut().await?;
            }
            if let Some(usage) = usage {
                emitter.usage(usage).await?;
            }
            return Ok(Flow::Completed);
        }
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
    // Said before any output as a rule; were text out already, the session still has to
    // shorten the context before any other try.
    let kind = if super::is_context_length(code) {
        ErrorKind::ContextLength
    } else if started {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The body the API answers a request too long for the model with (HTTP 400).
    fn too_long_body() -> Value {
        json!({"error": {
            "message": "Your input exceeds the context window of this model. Please adjust your input and try again.",
            "type": "invalid_request_error",
            "param": "input",
            "code": "context_length_exceeded",
        }})
    }

    #[test]
    fn a_context_too_long_is_its_own_kind_wherever_it_is_said() {
        assert!((SHAPE.too_long)(400, &too_long_body()));
        let other = json!({"error": {"type": "invalid_request_error", "code": "model_not_found", "message": "no"}});
        assert!(!(SHAPE.too_long)(400, &other));
        // An error frame before the response (refused), an error event then
        // `response.failed` (not refused), even after output: never Broken, never retried.
        for (refused, started) in [(true, false), (false, false), (false, true)] {
            let failure = Failure {
                status: refused.then_some(400),
                code: Some("context_length_exceeded".into()),
                message: "Your input exceeds the context window of this model.".into(),
                refused,
            };
            let error = failed(&failure, started);
            assert_eq!(error.kind, ErrorKind::ContextLength, "{failure:?}");
            assert!(error.message.starts_with("context_length_exceeded: "));
        }
        let other = Failure {
            status: Some(400),
            code: Some("invalid_prompt".into()),
            message: "no".into(),
            refused: true,
        };
        assert_eq!(failed(&other, false).kind, ErrorKind::Rejected);
        assert_eq!(failed(&other, true).kind, ErrorKind::Broken);
    }
}
