//! The HTTP side: path routing (`/bot<TOKEN>/<METHOD>`), parameter parsing and request
//! recording. The server itself (thread, runtime, shutdown) is [`crate::serve`]'s: its
//! runtime runs the long polls and webhook deliveries too, so stopping it ends them all.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use serde_json::Value;
use warp::Filter;
use warp::http::header::HeaderMap;

use super::Recorded;
use super::methods::dispatch;
use super::state::Shared;
use super::wire::{Answer, parse_params, percent_decode};
use crate::serve::{Routes, json_response, raw_query};

/// One filter that takes every request; routing is done in [`handle`] so that every
/// answer, unknown paths included, is the API's JSON.
pub(super) fn routes(shared: Arc<Shared>) -> impl Routes {
    warp::path::full()
        .and(raw_query())
        .and(warp::header::headers_cloned())
        .and(warp::body::bytes())
        .then(
            move |path: warp::path::FullPath, query: String, headers: HeaderMap, body: Bytes| {
                let shared = Arc::clone(&shared);
                async move { handle(shared, path.as_str(), &query, &headers, &body).await }
            },
        )
}

/// Splits `/bot<TOKEN>/<METHOD>` (the token percent-decoded).
fn split_path(path: &str) -> Option<(String, String)> {
    let rest = path.strip_prefix("/bot")?;
    let (token, method) = rest.split_once('/')?;
    if token.is_empty() || method.is_empty() || method.contains('/') {
        return None;
    }
    Some((percent_decode(token), method.to_owned()))
}

/// Marks the request's record with its final status; a request whose client went away
/// before the answer (the future dropped) is marked 499.
struct RecordGuard {
    shared: Arc<Shared>,
    index: usize,
    done: bool,
}

impl RecordGuard {
    fn finish(mut self, status: u16) {
        self.done = true;
        let mut state = self.shared.lock();
        if let Some(record) = state.records.get_mut(self.index) {
            record.status = status;
        }
        match status {
            409 => state.counters.conflicts += 1,
            429 => state.counters.rate_limited += 1,
            _ => {}
        }
    }
}

impl Drop for RecordGuard {
    fn drop(&mut self) {
        if !self.done
            && let Some(record) = self.shared.lock().records.get_mut(self.index)
        {
            record.status = 499;
        }
    }
}

async fn handle(
    shared: Arc<Shared>,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> warp::reply::Response {
    let at = Instant::now();
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok());
    let params = parse_params(query, content_type, body);
    let route = split_path(path);
    let (token, method) = route.clone().unwrap_or_default();
    let recorded_body = match &params {
        Ok(p) => Value::Object(p.clone()),
        Err(_) => Value::String(String::from_utf8_lossy(body).into_owned()),
    };
    let index = {
        let mut state = shared.lock();
        state.records.push(Recorded {
            token: token.clone(),
            method: if route.is_some() {
                method.clone()
            } else {
                path.to_owned()
            },
            body: recorded_body,
            at,
            status: 0,
        });
        state.records.len() - 1
    };
    let guard = RecordGuard {
        shared: Arc::clone(&shared),
        index,
        done: false,
    };
    let answer = match (route, params) {
        (None, _) => Answer::error(404, "Not Found"),
        (Some(_), params) => dispatch(&shared, &token, &method, params).await,
    };
    guard.finish(answer.status);
    json_response(answer.status, &answer.body)
}
