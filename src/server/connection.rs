//! One connection, served by hyper on a task of its own: each request carries its peer's
//! address, the registry sees requests start and end (a response counts until its body
//! is sent, so a stream of server-sent events keeps its connection busy), and the
//! connection is closed when its deadline passes or it is asked to make room.
//!
//! A client that stops reading is reset by the kernel after `gateway.writeTimeout`
//! (`TCP_USER_TIMEOUT`, set at accept), which ends its HTTP stream; the turn it asked for
//! goes on and is committed. The connection counts it as a write stall. Without that,
//! such a connection held its response's buffers, and the kernel's, for as long as the
//! client kept it open.
//!
//! The registry keeps the time rather than hyper: hyper's `header_read_timeout` starts
//! again whenever a connection goes idle, so it would also be the idle timeout, and
//! `gateway.idleTimeout` is meant to be the longer of the two.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use pincer_core::metrics::catalog::Closed;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::registry::{InFlight, Slot};
use super::{Handler, Peer};

/// How long an evicted connection that answered before may take to send what it still
/// holds and close, before it is dropped (unless it is answering a request).
const EVICTION_GRACE: Duration = Duration::from_secs(1);

/// A socket holding its place in the registry, noting the first byte of each head and
/// whether its writes get through.
struct Tracked {
    stream: TcpStream,
    slot: Slot,
    /// A write found the socket full and nothing has gone out since.
    blocked: bool,
}

/// A response body that keeps its connection busy until it is sent (or dropped).
struct Counted<B> {
    body: B,
    _in_flight: InFlight,
}

/// The connection builder: HTTP/1.1 with upgrades, and HTTP/2 with prior knowledge, as
/// warp's own server did.
pub(super) fn builder() -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    // No timer of hyper's: the registry's deadlines apply (see the module docs).
    builder.http1().header_read_timeout(None);
    builder
}

/// Serves `stream` from `peer` until it closes, is cut off, or is asked to make room.
pub(super) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    slot: Slot,
    handler: Handler,
    builder: Arc<Builder<TokioExecutor>>,
) {
    let tracker = slot.tracker().clone();
    let limits = tracker.registry().limits();
    let io = TokioIo::new(Tracked {
        stream,
        slot,
        blocked: false,
    });
    let service = {
        let tracker = tracker.clone();
        hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(Peer(peer));
            let in_flight = tracker.start_request();
            let answer = handler(request);
            async move {
                let response = answer.await;
                if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                    in_flight.upgraded();
                }
                Ok::<_, Infallible>(response.map(|body| Counted {
                    body,
                    _in_flight: in_flight,
                }))
            }
        })
    };
    let served = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(served);
    // Set once the connection was asked to make room and is closing: by when it must be
    // gone.
    let mut closing: Option<Instant> = None;
    loop {
        let wake_at = match closing {
            Some(at) => Some(at),
            None => tracker.conn().deadline(&limits).map(|d| d.at),
        };
        tokio::select! {
            biased;
            result = served.as_mut() => {
                match result {
                    Ok(()) => tracing::trace!(%peer, "Connection closed."),
                    Err(error) if timed_out(error.as_ref()) => {
                        tracker.registry().metrics().closed(Closed::WriteStall).inc();
                        tracing::debug!(
                            %peer,
                            timeout = %pincer_config::duration::format_duration(limits.write_timeout),
                            "Connection closed: its client took nothing of what it was sent for gateway.writeTimeout."
                        );
                    }
                    // Resets, requests cut short, clients gone: theirs, not ours.
                    Err(error) => tracing::debug!(%peer, %error, "Connection ended with an error."),
                }
                return;
            }
            () = tracker.conn().woken() => {
                if closing.is_some() || !tracker.conn().take_eviction() {
                    continue;
                }
                // Asked to make room; a connection that took a request meanwhile stays
                // (the registry asks another).
                let Some(answered_before) = tracker.conn().waiting() else {
                    continue;
                };
                tracker.registry().metrics().closed(Closed::Evicted).inc();
                tracing::debug!(%peer, "Connection closed to make room: idle the longest at the cap.");
                if !answered_before {
                    return;
                }
                // A response may still be in its buffers: sent first, then closed.
                served.as_mut().graceful_shutdown();
                closing = Some(Instant::now() + EVICTION_GRACE);
            }
            () = tokio::time::sleep_until(wake_at.unwrap_or_else(Instant::now)), if wake_at.is_some() => {
                if closing.take().is_some() {
                    if tracker.conn().waiting().is_some() {
                        tracing::debug!(%peer, "Connection dropped: it did not close in time to make room.");
                        return;
                    }
                    // An HTTP/2 stream came in before it was told to go away: hyper
                    // closes the connection once that is answered.
                    continue;
                }
                if let Some(deadline) = tracker.conn().deadline(&limits)
                    && deadline.at <= Instant::now()
                {
                    tracker.registry().metrics().closed(deadline.reason).inc();
                    tracing::debug!(%peer, reason = deadline.reason.name(), "Connection closed: its time was up.");
                    return;
                }
            }
        }
    }
}

// === impl Tracked ===

/// Whether the connection ended because the kernel gave up on its client
/// (`TCP_USER_TIMEOUT`: nothing taken for `gateway.writeTimeout`).
fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            return io.kind() == io::ErrorKind::TimedOut;
        }
        source = cause.source();
    }
    false
}

impl Tracked {
    /// Notes whether the last write waited for the client (for [`Drop`]).
    fn note_write(&mut self, written: &Poll<io::Result<usize>>) {
        match written {
            Poll::Pending => self.blocked = true,
            Poll::Ready(Ok(n)) if *n > 0 => self.blocked = false,
            _ => {}
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        // Closed while its client takes nothing: reset, discarding what the kernel holds
        // for it, rather than close, which would keep the socket and its buffers for
        // minutes while the kernel probes a window the client never opens.
        if self.blocked {
            if let Err(error) = self.stream.set_zero_linger() {
                tracing::trace!(%error, "Cannot set a zero linger on a stalled connection.");
            }
            return;
        }
        linger(&self.stream);
    }
}

/// How long a connection closed with request bytes still unread (a body past
/// `gateway.maxBodyBytes`, answered 413) is drained before it is closed.
const LINGER: Duration = Duration::from_secs(2);

/// How much of it is drained at most.
const LINGER_BYTES: usize = 4 * 1024 * 1024;

/// Connections drained at once; past that, one is closed at once.
const MAX_LINGERING: usize = 64;

/// Connections being drained now.
static LINGERING: AtomicUsize = AtomicUsize::new(0);

/// Closing a socket with unread bytes resets it, and a client still sending its body
/// then loses the answer already sent (it reads a reset, not the 413). So such a socket
/// gets its write side shut (the answer, then end of stream) and is read and discarded
/// for up to [`LINGER`] and [`LINGER_BYTES`] before it is closed, as web servers do
/// ("lingering close"). The drain holds a copy of the socket, not its place in the
/// registry, so it is bounded on its own by [`MAX_LINGERING`].
fn linger(stream: &TcpStream) {
    let mut first = [0u8; 1];
    if !matches!(stream.try_read(&mut first), Ok(n) if n > 0) {
        return;
    }
    if LINGERING.fetch_add(1, Ordering::Relaxed) >= MAX_LINGERING {
        LINGERING.fetch_sub(1, Ordering::Relaxed);
        return;
    }
    let release = Release;
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let copy = socket2::SockRef::from(stream)
        .try_clone()
        .map(std::net::TcpStream::from)
        .and_then(|copy| {
            copy.shutdown(std::net::Shutdown::Write)?;
            copy.set_nonblocking(true)?;
            Ok(copy)
        });
    let copy = match copy.and_then(TcpStream::from_std) {
        Ok(copy) => copy,
        Err(error) => {
            tracing::trace!(%error, "Cannot drain a connection before closing it.");
            return;
        }
    };
    runtime.spawn(async move {
        let _release = release;
        let mut copy = copy;
        let mut buf = vec![0u8; 64 * 1024];
        let (deadline, mut drained) = (Instant::now() + LINGER, 0);
        while drained < LINGER_BYTES {
            match tokio::time::timeout_at(deadline, copy.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => drained += n,
                _ => break,
            }
        }
    });
}

/// Gives back a place among [`MAX_LINGERING`] when dropped.
struct Release;

impl Drop for Release {
    fn drop(&mut self) {
        LINGERING.fetch_sub(1, Ordering::Relaxed);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.slot.tracker().conn().on_bytes();
        }
        read
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.note_write(&written);
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.note_write(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

// === impl Counted ===

impl<B: Body + Unpin> Body for Counted<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
