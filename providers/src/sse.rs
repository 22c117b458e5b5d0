//! Server-sent events, read from an HTTP response body, and the one streamed model call
//! both SSE providers make ([`stream`]).
//!
//! Our own small reader rather than `reqwest-eventsource`: a model call must never be
//! re-sent by a transport on its own (that would be a second turn), and the status and
//! headers of an error reply must be read before any streaming starts (retry hints).

use std::future::Future;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use futures::{Stream, StreamExt};
use serde_json::Value;

use crate::emit::{Emitter, Gone};
use crate::{ErrorKind, ProviderError};

/// The most one event may hold; an upstream sending more is broken, not chatty.
pub const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field (`message` when absent).
    pub name: String,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
}

/// Why the stream stopped early.
#[derive(Debug, thiserror::Error)]
pub enum SseError {
    /// The connection failed.
    #[error("stream broke: {0}")]
    Transport(#[from] reqwest::Error),
    /// An event was larger than [`MAX_EVENT_BYTES`].
    #[error("an event exceeded {MAX_EVENT_BYTES} bytes")]
    TooLarge,
    /// No byte came for this long.
    #[error("no data for {} s", .0.as_secs())]
    Stalled(Duration),
}

/// Reads events from a response body.
#[derive(Debug)]
pub struct Reader<S> {
    body: S,
    buf: BytesMut,
    name: Option<String>,
    data: Option<String>,
    done: bool,
    read_timeout: Option<Duration>,
}

impl<S> Reader<S>
where
    S: Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin,
{
    /// A reader of `body` (for example `response.bytes_stream()`).
    pub fn new(body: S) -> Self {
        Self {
            body,
            buf: BytesMut::new(),
            name: None,
            data: None,
            done: false,
            read_timeout: None,
        }
    }

    /// Gives up with [`SseError::Stalled`] when no byte comes for `limit`.
    pub fn read_timeout(mut self, limit: Duration) -> Self {
        self.read_timeout = Some(limit);
        self
    }

    /// The next event; `Ok(None)` when the body ended.
    pub async fn next(&mut self) -> Result<Option<Event>, SseError> {
        loop {
            while let Some(line) = self.take_line() {
                if let Some(event) = self.field(&line) {
                    return Ok(Some(event));
                }
            }
            if self.done {
                return Ok(None);
            }
            let chunk = match self.read_timeout {
                Some(limit) => tokio::time::timeout(limit, self.body.next())
                    .await
                    .map_err(|_| SseError::Stalled(limit))?,
                None => self.body.next().await,
            };
            match chunk {
                Some(chunk) => {
                    self.buf.extend_from_slice(&chunk?);
                    let pending = self.data.as_ref().map_or(0, String::len);
                    if self.buf.len() + pending > MAX_EVENT_BYTES {
                        return Err(SseError::TooLarge);
                    }
                }
                None => {
                    // A last line without its newline still counts; a half event does not.
                    self.done = true;
                    if !self.buf.is_empty() {
                        self.buf.extend_from_slice(b"\n");
                    }
                }
            }
        }
    }

    /// The next event's data as JSON, for a model call: `Ok(None)` when the body ended
    /// or broke (logged; the caller's stream then closes without a final event and the
    /// session tries the turn again), `Err` naming the problem when the data is not JSON.
    pub async fn next_json(
        &mut self,
        provider: &str,
        request_id: &str,
    ) -> Result<Option<Value>, ProviderError> {
        let event = match self.next().await {
            Ok(Some(event)) => event,
            Ok(None) => return Ok(None),
            // A stall is the upstream's failure, not the connection's: the caller says so
            // (and the fallback chain may take over) rather than trying the turn again.
            Err(SseError::Stalled(limit)) => {
                let why = format!(
                    "{provider} sent no data for {} s (providers.{provider}.readTimeout)",
                    limit.as_secs()
                );
                return Err(ProviderError::new(ErrorKind::Exhausted, why));
            }
            Err(error) => {
                tracing::warn!(provider, request_id, "SSE stream ended: {error}");
                return Ok(None);
            }
        };
        serde_json::from_str(&event.data).map(Some).map_err(|_| {
            let why = format!(
                "upstream sent an event that is not JSON: {:.80}",
                event.data
            );
            ProviderError::new(ErrorKind::Broken, why)
        })
    }

    /// Cuts one line (without its end: `\n`, `\r\n` or `\r`) off the buffer.
    fn take_line(&mut self) -> Option<String> {
        let end = self.buf.iter().position(|&b| b == b'\n' || b == b'\r')?;
        // A `\r` at the very end may be the first half of `\r\n`: wait for more.
        if self.buf[end] == b'\r' && end + 1 == self.buf.len() && !self.done {
            return None;
        }
        let line = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        let skip = if self.buf[end] == b'\r' && self.buf.get(end + 1) == Some(&b'\n') {
            2
        } else {
            1
        };
        self.buf.advance(end + skip);
        Some(line)
    }

    fn field(&mut self, line: &str) -> Option<Event> {
        if line.is_empty() {
            let data = self.data.take()?;
            let name = self.name.take().unwrap_or_else(|| "message".to_string());
            return Some(Event { name, data });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.name = Some(value.to_string()),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            _ => {}
        }
        None
    }
}

/// What one decoded event means for the call.
#[derive(Debug)]
pub enum Flow {
    /// Read on.
    More,
    /// The reply is complete.
    Done,
    /// The call failed.
    Failed(ProviderError),
}

/// A provider's reading of its events.
pub trait Decode: Send {
    /// Passes one event's output to `emitter` and says what it means for the call.
    fn event(
        &mut self,
        event: &Value,
        emitter: &mut Emitter,
    ) -> impl Future<Output = Result<Flow, Gone>> + Send;

    /// The failure to report when the body ends without a final event, if the events so
    /// far imply one; `None` ends the stream without a final event (the turn is tried
    /// again).
    fn ended(&mut self, started: bool) -> Option<ProviderError> {
        let _ = started;
        None
    }
}

/// Streams a model call: `sent` is the outcome of the POST (after its retries); its body's
/// events go through `decoder` to `emitter` until the reply is done, fails, goes
/// `read_timeout` without a byte, or the turn stops listening.
pub async fn stream(
    sent: Result<reqwest::Response, ProviderError>,
    mut decoder: impl Decode,
    mut emitter: Emitter,
    read_timeout: Duration,
    provider: &str,
    request_id: &str,
) {
    let response = match sent {
        Ok(response) => response,
        Err(error) => {
            let _ = emitter.fail(error).await;
            return;
        }
    };
    let mut reader = Reader::new(response.bytes_stream()).read_timeout(read_timeout);
    loop {
        let value = match reader.next_json(provider, request_id).await {
            Ok(Some(value)) => value,
            Ok(None) => {
                if let Some(error) = decoder.ended(emitter.started()) {
                    let _ = emitter.fail(error).await;
                }
                return;
            }
            Err(mut error) => {
                if emitter.started() {
                    // Text went out: another model would repeat it.
                    error.kind = ErrorKind::Broken;
                }
                let _ = emitter.fail(error).await;
                return;
            }
        };
        match decoder.event(&value, &mut emitter).await {
            Ok(Flow::More) => {}
            Ok(Flow::Done) => {
                let _ = emitter.done().await;
                return;
            }
            Ok(Flow::Failed(error)) => {
                let _ = emitter.fail(error).await;
                return;
            }
            Err(Gone) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn events(chunks: &[&'static str]) -> Vec<Event> {
        let body = futures::stream::iter(
            chunks
                .iter()
                .map(|c| Ok::<_, reqwest::Error>(bytes::Bytes::from_static(c.as_bytes())))
                .collect::<Vec<_>>(),
        );
        let mut reader = Reader::new(body);
        let mut out = Vec::new();
        while let Some(e) = reader.next().await.expect("no error") {
            out.push(e);
        }
        out
    }

    #[tokio::test]
    async fn frames_split_anywhere_comments_and_crlf() {
        let got = events(&[
            ": ping\n\nevent: a\nda",
            "ta: {\"x\":1}\r",
            "\n\r\ndata: one\ndata: two\n\n",
            "event: tail\ndata: last\n",
        ])
        .await;
        assert_eq!(
            got,
            vec![
                Event {
                    name: "a".into(),
                    data: "{\"x\":1}".into()
                },
                Event {
                    name: "message".into(),
                    data: "one\ntwo".into()
                },
            ]
        );
    }
}
