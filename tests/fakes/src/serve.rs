//! What every fake's server has in common: a loopback listener bound on the caller's thread,
//! served by warp on a dedicated thread with its own tokio runtime, and stopped (every
//! connection dropped, the thread joined) when the [`Server`] is dropped; plus the few HTTP
//! and WebSocket helpers the fakes use identically.
//!
//! A dedicated thread + runtime lets one fake serve a real binary spawned by a sync test as
//! well as a client inside `#[tokio::test]` (either flavour), and dropping the runtime on stop
//! cancels every connection task, hanging ones included.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::time::Instant;
use warp::http::{HeaderMap, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::ws::{Message, WebSocket};
use warp::{Filter, Rejection};

/// What a fake serves: one warp filter answering every request with a response.
pub(crate) trait Routes:
    Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static
{
}

impl<F> Routes for F where
    F: Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static
{
}

/// The runtime a fake's server thread drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Runtime {
    /// A current-thread runtime: the server thread is the only one. Stopping gives blocking
    /// tasks (e.g. DNS lookups) 1 s.
    CurrentThread,
    /// A multi-thread runtime with two workers (`<name>-fake-worker`). Stopping gives the
    /// workers 2 s to drop their connection tasks.
    TwoWorkers,
}

impl Runtime {
    fn build(self, name: &str) -> std::io::Result<tokio::runtime::Runtime> {
        match self {
            Runtime::CurrentThread => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build(),
            Runtime::TwoWorkers => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name(format!("{name}-fake-worker"))
                .enable_all()
                .build(),
        }
    }

    fn shutdown_grace(self) -> Duration {
        match self {
            Runtime::CurrentThread => Duration::from_secs(1),
            Runtime::TwoWorkers => Duration::from_secs(2),
        }
    }
}

/// `127.0.0.1:0`, bound but not served yet: the address is known before the routes are
/// built, and early connections wait in the listen backlog until the server runs.
#[derive(Debug)]
pub(crate) struct Listener {
    name: &'static str,
    listener: std::net::TcpListener,
    addr: SocketAddr,
}

impl Listener {
    /// Binds `127.0.0.1:0` on the caller's thread; `name` (`"openai"`, ...) names the threads
    /// and the panic messages.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub(crate) fn bind(name: &'static str) -> Listener {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
            .unwrap_or_else(|e| panic!("{name} fake: bind 127.0.0.1:0: {e}"));
        // Accepted sockets inherit it: small writes (events, frames) go out at once, with no
        // Nagle delay, like the real services.
        let _ = socket2::SockRef::from(&listener).set_tcp_nodelay(true);
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("{name} fake: non-blocking listener: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("{name} fake: local address: {e}"));
        Listener {
            name,
            listener,
            addr,
        }
    }

    /// The bound address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `routes` on a new thread (`<name>-fake-<port>`) running `runtime`; returns once
    /// the listener is live.
    ///
    /// # Panics
    /// When the thread cannot be spawned or the runtime cannot start.
    pub(crate) fn serve(self, runtime: Runtime, routes: impl Routes) -> Server {
        let Listener {
            name,
            listener,
            addr,
        } = self;
        let (shutdown, stop) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let thread = std::thread::Builder::new()
            .name(format!("{name}-fake-{}", addr.port()))
            .spawn(move || {
                let rt = match runtime.build(name) {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("cannot build a runtime: {e}")));
                        return;
                    }
                };
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(format!("cannot adopt the listener: {e}")));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    let server = warp::serve(routes).incoming(listener).run();
                    // Stops on request, or when the sender is dropped.
                    tokio::select! {
                        () = server => {}
                        _ = stop => {}
                    }
                });
                // Dropping the runtime cancels every connection task, so each socket closes
                // now, hanging streams included.
                rt.shutdown_timeout(runtime.shutdown_grace());
            })
            .unwrap_or_else(|e| panic!("{name} fake: spawn server thread: {e}"));
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("{name} fake: server failed to start: {e}"),
            Err(_) => panic!("{name} fake: server thread died during start"),
        }
        Server {
            addr,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }
}

/// A running server. Dropping it stops accepting, drops every connection and waits for the
/// thread to end, so "the fake is gone" is true once the drop returns: the port is closed
/// and every connection dropped, which tests of an upstream going away rely on.
#[derive(Debug)]
pub(crate) struct Server {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// The bound address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            // The server may already be gone; nothing to tell then.
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            // A panic on the server thread was already reported by the test harness' panic
            // hook; re-panicking inside Drop would abort.
            let _ = thread.join();
        }
    }
}

/// The raw query string; empty when the request has none.
pub(crate) fn raw_query()
-> impl Filter<Extract = (String,), Error = std::convert::Infallible> + Clone + Send + Sync + 'static
{
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

/// Header names (already lowercase in `http`) to values; repeats joined with `", "`.
pub(crate) fn header_map(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        out.entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    out
}

/// A request body as JSON: `Null` when empty, `Err(raw text)` when it is not JSON.
pub(crate) fn json_body(body: &[u8]) -> Result<Value, String> {
    if body.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body).map_err(|_| String::from_utf8_lossy(body).into_owned())
}

/// `status` as a [`StatusCode`]; 500 when it is not a valid one.
pub(crate) fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A JSON answer: `status` (500 when invalid), `content-type: application/json`.
pub(crate) fn json_response(status: u16, body: &Value) -> Response {
    let mut response = Response::new(body.to_string().into());
    *response.status_mut() = status_code(status);
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    response
}

/// Sends a WebSocket close frame, then briefly waits for the peer's answer so the close
/// handshake completes instead of looking like a reset.
pub(crate) async fn close_ws(socket: &mut WebSocket, code: u16, reason: &'static str) {
    if socket
        .send(Message::close_with(code, reason))
        .await
        .is_err()
    {
        return;
    }
    let drain = async { while let Some(Ok(_)) = socket.next().await {} };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

/// Sleeps until `deadline`; forever when there is none (a `select!` arm that never fires).
pub(crate) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// `application/x-www-form-urlencoded` pairs, from a query string or a form body, in the
/// order sent: `+` is a space, `%XX` is decoded, an invalid escape stays as sent, a pair
/// without `=` has an empty value, empty pairs (`a=1&&b=2`) are skipped.
pub(crate) fn form_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decode(k), form_decode(v))
        })
        .collect()
}

/// One form-encoded component decoded (see [`form_pairs`]).
fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < bytes.len() => {
                if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    // Two hex digits: at most 255.
                    out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                    i += 3;
                } else {
                    out.push(b'%');
                    i += 1;
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A plain-text or HTML answer: `status` (500 when invalid) and `content_type`.
pub(crate) fn text_response(status: u16, content_type: &'static str, body: String) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status_code(status);
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use super::form_pairs;

    #[test]
    fn form_pairs_decode_like_a_browser_sends() {
        let pairs = |s| form_pairs(s);
        assert_eq!(
            pairs("q=rust+async%20io&count=5&&flag"),
            vec![
                ("q".to_owned(), "rust async io".to_owned()),
                ("count".to_owned(), "5".to_owned()),
                ("flag".to_owned(), String::new()),
            ]
        );
        assert_eq!(
            pairs("q=100%&x=%zz%4"),
            vec![
                ("q".to_owned(), "100%".to_owned()),
                ("x".to_owned(), "%zz%4".to_owned()),
            ]
        );
        assert_eq!(
            pairs("q=caf%C3%A9%2B"),
            vec![("q".to_owned(), "café+".to_owned())]
        );
        assert!(pairs("").is_empty());
    }
}
