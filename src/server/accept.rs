//! The accept loop: each connection gets a place in the registry (made at the cap by
//! closing the connection idle the longest) and a task of its own; with every place in
//! use, it is turned away at once.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pincer_core::metrics::catalog::Closed;
use tokio::net::{TcpListener, TcpStream};

use super::Handler;
use super::connection;
use super::registry::{Admission, Registry};

/// The first pause after an accept failed for want of descriptors or memory; doubled on
/// each failure in a row up to [`MAX_PAUSE`]. Without it the loop would spin: the
/// connection stays in the backlog and `accept` fails again at once.
const FIRST_PAUSE: Duration = Duration::from_millis(5);

/// The longest pause between failed accepts.
const MAX_PAUSE: Duration = Duration::from_millis(500);

/// Bytes of a connection's responses the kernel may hold unsent (`TCP_NOTSENT_LOWAT`).
/// Left to itself, Linux grows a loopback socket's send buffer to `net.ipv4.tcp_wmem`'s
/// maximum (4 MB): a client that reads nothing had whole replies queued for it there,
/// kernel memory the gateway never saw. With the limit, a write waits once this much is
/// unsent and goes on when half has gone out: bytes in flight on the network are not
/// counted, so throughput is unchanged.
const UNSENT_BYTES: u32 = 64 * 1024;

/// Bounds what the kernel holds for a client that stops reading: [`UNSENT_BYTES`] unsent,
/// and for how long (`TCP_USER_TIMEOUT`): once the client's window has stayed shut, or
/// what was sent unacknowledged, for `gateway.writeTimeout`, the kernel resets the
/// connection. The kernel's clock starts again with every byte the client takes, so a
/// slow reader that keeps reading is never cut off, which a clock on our own writes
/// could not tell (they wait for the unsent bytes to halve, not for the client). It
/// covers WebSockets too, whose sockets are out of hyper's hands.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn limit_unsent(stream: &TcpStream, peer: SocketAddr, write_timeout: Duration) {
    let socket = socket2::SockRef::from(stream);
    if let Err(error) = socket.set_tcp_notsent_lowat(UNSENT_BYTES) {
        tracing::debug!(%peer, %error, "Cannot set TCP_NOTSENT_LOWAT on a connection.");
    }
    if let Err(error) = socket.set_tcp_user_timeout(Some(write_timeout)) {
        tracing::debug!(%peer, %error, "Cannot set TCP_USER_TIMEOUT on a connection.");
    }
}

/// What a connection turned away at the cap is sent before it is closed.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\n\
    retry-after: 1\r\ncontent-length: 0\r\n\r\n";

/// Accepts on `listener` until the task is dropped (with the actor).
pub(super) async fn run(listener: TcpListener, registry: Arc<Registry>, handler: Handler) {
    let builder = Arc::new(connection::builder());
    let mut pause: Option<Duration> = None;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => {
                pause = None;
                accepted
            }
            // The client gave up while in the backlog.
            Err(error) if gone(&error) => {
                tracing::debug!(%error, "A connection was gone before it was accepted.");
                continue;
            }
            Err(error) => {
                let wait = match pause {
                    None => {
                        tracing::warn!(%error, open = registry.open(), "Cannot accept connections; pausing.");
                        FIRST_PAUSE
                    }
                    Some(last) => {
                        tracing::debug!(%error, "Cannot accept connections yet.");
                        (last * 2).min(MAX_PAUSE)
                    }
                };
                pause = Some(wait);
                // Out of descriptors: an idle connection closed gives one back.
                registry.evict_one();
                tokio::time::sleep(wait).await;
                continue;
            }
        };
        // Accepted sockets inherit TCP_NODELAY from the listener on Linux, not everywhere.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%peer, %error, "Cannot set TCP_NODELAY on a connection.");
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        limit_unsent(&stream, peer, registry.limits().write_timeout);
        match registry.admit().await {
            Admission::Admitted(slot) => {
                // Not in the actor's scope: connections outlive a restart of the server,
                // and the registry counts them across it.
                tokio::spawn(connection::serve(
                    stream,
                    peer,
                    slot,
                    handler.clone(),
                    builder.clone(),
                ));
            }
            Admission::Full => refuse(stream, peer, &registry),
        }
    }
}

/// Turns a connection away: every place is held by a connection in use.
fn refuse(stream: TcpStream, peer: SocketAddr, registry: &Registry) {
    registry.metrics().closed(Closed::Refused).inc();
    tracing::debug!(
        %peer,
        open = registry.open(),
        "Connection refused: every place is held by a connection in use."
    );
    // A fresh socket's send buffer is empty: this never blocks, and may be cut short.
    let _ = stream.try_write(REFUSAL);
}

/// Whether an accept failed because of the connection (gone, reset), not the server.
fn gone(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}
