//! A tiny HTTP/1.1 site on 127.0.0.1 that counts requests: raw tokio TCP, one request
//! per connection, so a test controls every byte, delay and header.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::fetch::{Fetcher, Limits};
use crate::ssrf::Policy;

/// One answer.
pub(super) struct Reply {
    pub(super) status: &'static str,
    pub(super) headers: Vec<(&'static str, String)>,
    pub(super) body: Vec<u8>,
    /// Whether to send `Content-Length` (else the body ends when the connection closes).
    pub(super) length: bool,
    /// How long to wait before answering.
    pub(super) delay: Duration,
}

type Handler = dyn Fn(&str, SocketAddr) -> Reply + Send + Sync;

/// The running site.
pub(super) struct Site {
    pub(super) addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Reply {
    pub(super) fn ok(content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status: "200 OK",
            headers: vec![("Content-Type", content_type.to_string())],
            body: body.into(),
            length: true,
            delay: Duration::ZERO,
        }
    }

    pub(super) fn redirect(location: impl Into<String>) -> Reply {
        Reply {
            status: "302 Found",
            headers: vec![("Location", location.into())],
            body: Vec::new(),
            length: true,
            delay: Duration::ZERO,
        }
    }

    pub(super) fn status(mut self, status: &'static str) -> Reply {
        self.status = status;
        self
    }
}

impl Site {
    /// Serves `handler(path, own address)` until dropped.
    pub(super) async fn start(
        handler: impl Fn(&str, SocketAddr) -> Reply + Send + Sync + 'static,
    ) -> Site {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("address");
        let requests = Arc::new(AtomicUsize::new(0));
        let handler: Arc<Handler> = Arc::new(handler);
        let counter = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let handler = handler.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let Some(path) = read_head(&mut socket).await else {
                        return;
                    };
                    counter.fetch_add(1, Ordering::SeqCst);
                    let reply = handler(&path, addr);
                    tokio::time::sleep(reply.delay).await;
                    let mut head = format!("HTTP/1.1 {}\r\nConnection: close\r\n", reply.status);
                    for (name, value) in &reply.headers {
                        head.push_str(&format!("{name}: {value}\r\n"));
                    }
                    if reply.length {
                        head.push_str(&format!("Content-Length: {}\r\n", reply.body.len()));
                    }
                    head.push_str("\r\n");
                    let _ = socket.write_all(head.as_bytes()).await;
                    let _ = socket.write_all(&reply.body).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Site {
            addr,
            requests,
            task,
        }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub(super) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Requests answered so far.
    pub(super) fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The request's path, once its head is read.
async fn read_head(socket: &mut tokio::net::TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 || head.len() > 64 * 1024 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    line.split_whitespace().nth(1).map(str::to_string)
}

/// The policy that opens 127.0.0.1 alone: the test site and nothing else.
pub(super) fn loopback_policy() -> Policy {
    Policy::new(&["127.0.0.1/32"]).expect("a range")
}

/// A fetcher that may reach the test site, with `limits`.
pub(super) fn fetcher_with(limits: Limits) -> Fetcher {
    Fetcher::with_limits(loopback_policy(), limits)
}

/// A fetcher that may reach the test site.
pub(super) fn fetcher() -> Fetcher {
    fetcher_with(Limits::default())
}
