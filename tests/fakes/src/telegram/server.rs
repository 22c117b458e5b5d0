//! The HTTP side: a warp server on its own thread and runtime, path routing
//! (`/bot<TOKEN>/<METHOD>`), parameter parsing and request recording.
//!
//! A dedicated thread + runtime lets the fake serve a real binary spawned by a sync test
//! as well as a client inside `#[tokio::test]`; dropping the runtime on stop ends every
//! long poll, webhook delivery and connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::oneshot;
use warp::http::StatusCode;
use warp::http::header::{HeaderMap, HeaderValue};
use warp::{Filter, Reply};

use super::Recorded;
use super::methods::dispatch;
use super::state::Shared;
use super::wire::{Answer, parse_params, percent_decode};

/// Stops the server thread when asked.
#[derive(Debug)]
pub(super) struct Handle {
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Handle {
    /// Stops accepting, drops every connection and task, and waits for the thread.
    pub(super) fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            // The server may already be gone; nothing to tell then.
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            // A panic on the server thread was already reported; re-panicking in Drop
            // would abort.
            let _ = thread.join();
        }
    }
}

/// Binds `127.0.0.1:0` and serves on a new thread; returns once the listener is live.
pub(super) fn spawn(shared: Arc<Shared>) -> (SocketAddr, Handle) {
    let listener =
        std::net::TcpListener::bind(("127.0.0.1", 0)).expect("telegram fake: bind 127.0.0.1:0");
    // Accepted sockets inherit it: small replies go out at once (no Nagle delay).
    let _ = socket2::SockRef::from(&listener).set_tcp_nodelay(true);
    listener
        .set_nonblocking(true)
        .expect("telegram fake: set_nonblocking");
    let addr = listener.local_addr().expect("telegram fake: local_addr");
    let (shutdown, stop_rx) = oneshot::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let thread = std::thread::Builder::new()
        .name(format!("telegram-fake-{}", addr.port()))
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let server = warp::serve(routes(shared)).incoming(listener).run();
                tokio::select! {
                    () = server => {}
                    _ = stop_rx => {}
                }
            });
            // Dropping the runtime cancels connection and delivery tasks.
            rt.shutdown_timeout(Duration::from_secs(1));
        })
        .expect("telegram fake: spawn server thread");
    match ready_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("telegram fake: server failed to start: {e}"),
        Err(_) => panic!("telegram fake: server thread died during start"),
    }
    let handle = Handle {
        shutdown: Some(shutdown),
        thread: Some(thread),
    };
    (addr, handle)
}

/// One filter that takes every request; routing is done in [`handle`] so that every
/// answer, unknown paths included, is the API's JSON.
fn routes(
    shared: Arc<Shared>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection>
+ Clone
+ Send
+ Sync
+ 'static {
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::path::full()
        .and(query)
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
    let mut resp = answer.body.to_string().into_response();
    *resp.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    resp
}
