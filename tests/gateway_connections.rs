//! Connections on the gateway port, on the real binary: stalled and idle clients are cut
//! off, the number of connections is capped (the longest idle make room, probes keep
//! answering), the fd limit is raised at start, and clients that go away are no ERROR.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Gw, TempDir, bin, free_port, until};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A new connection to the gateway.
async fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream
}

/// Sends `GET path` on `stream` (kept alive) and reads the response: its status.
async fn get_on(stream: &mut TcpStream, path: &str) -> std::io::Result<u16> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    read_response(stream).await.map(|(status, _)| status)
}

/// Reads one response with a `content-length` body: (status, body).
async fn read_response(stream: &mut TcpStream) -> std::io::Result<(u16, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {head:?}")))?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).to_string();
    Ok((status, body))
}

/// Whether the gateway closes `stream` within `limit` (EOF or reset), reading and
/// discarding whatever it sends meanwhile.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut chunk = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// `GET path` on a connection of its own (`Connection: close`): (status, body).
async fn get_once(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    read_response(&mut stream).await
}

/// The gateway's own count of open connections (`pincer_connections_open`), read on a
/// connection of its own (which counts itself).
async fn open_connections(port: u16) -> Option<i64> {
    let (status, text) = get_once(port, "/metrics").await.ok()?;
    if status != 200 {
        return None;
    }
    text.lines()
        .find_map(|l| l.strip_prefix("pincer_connections_open "))
        .and_then(|v| v.trim().parse().ok())
}

/// The log lines at ERROR.
fn errors(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains(" ERROR ")).collect()
}

#[tokio::test]
async fn stalled_request_heads_are_closed_after_the_header_read_timeout() {
    // A slowloris client holds a connection by never finishing its request head; with
    // nothing cutting it off, a few hundred of them exhaust the gateway's descriptors.
    let home = TempDir::new();
    let gw = Gw::start(home.path(), Some("[gateway]\nheaderReadTimeout = \"1s\"\n")).await;

    let started = Instant::now();
    let mut stalled = Vec::new();
    for i in 0..20 {
        let mut stream = connect(gw.port).await;
        if i % 2 == 0 {
            // Part of a head; the other half send nothing at all.
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                .await
                .expect("write");
        }
        stalled.push(stream);
    }
    // A slow client that finishes its head within the timeout is answered.
    let mut slow = connect(gw.port).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(300)).await;
    slow.write_all(b"Host: 127.0.0.1\r\n\r\n")
        .await
        .expect("write");
    let (status, _) = read_response(&mut slow).await.expect("slow but in time");
    assert_eq!(status, 200);

    let waits = stalled.iter_mut().map(|s| async move {
        let closed = closed_within(s, Duration::from_secs(4)).await;
        (closed, started.elapsed())
    });
    let outcomes = futures::future::join_all(waits).await;
    for (i, (closed, after)) in outcomes.iter().enumerate() {
        assert!(
            closed,
            "stalled connection {i} still open after {after:?}; log:\n{}",
            gw.log()
        );
        assert!(
            *after >= Duration::from_millis(900) && *after <= Duration::from_secs(4),
            "stalled connection {i} closed after {after:?}, not about 1 s"
        );
    }
    let log = gw.log();
    assert!(errors(&log).is_empty(), "{log}");
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed_after_the_idle_timeout() {
    // The idle time between requests is its own timeout, not the header read timeout:
    // here it is the longer one.
    let home = TempDir::new();
    let gw = Gw::start(
        home.path(),
        Some("[gateway]\nheaderReadTimeout = \"1s\"\nidleTimeout = \"2s\"\n"),
    )
    .await;

    // A connection that keeps asking stays open as long as it does.
    let busy_port = gw.port;
    let busy = tokio::spawn(async move {
        let mut stream = connect(busy_port).await;
        for _ in 0..8 {
            assert_eq!(get_on(&mut stream, "/healthz").await.expect("reused"), 200);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });

    let mut idle = connect(gw.port).await;
    assert_eq!(get_on(&mut idle, "/healthz").await.expect("answered"), 200);
    let answered = Instant::now();
    assert!(
        !closed_within(&mut idle, Duration::from_millis(1500)).await,
        "closed after {:?}, before the idle timeout (2 s)",
        answered.elapsed()
    );
    assert!(
        closed_within(&mut idle, Duration::from_secs(3)).await,
        "idle connection still open {:?} after its response; log:\n{}",
        answered.elapsed(),
        gw.log()
    );
    let after = answered.elapsed();
    assert!(
        after >= Duration::from_millis(1900) && after <= Duration::from_millis(4500),
        "closed {after:?} after its response, not about 2 s"
    );
    busy.await
        .expect("the busy connection was served throughout");
}

#[tokio::test]
async fn at_the_cap_the_longest_idle_connection_makes_room() {
    // The cap bounds what the gateway holds; a full cap of idle keep-alive connections
    // must not lock out the probes, so the connection idle the longest is closed for a
    // new one.
    let home = TempDir::new();
    let gw = Gw::start(home.path(), Some("[gateway]\nmaxConnections = 20\n")).await;
    // The test client's pooled connection, idle since the readiness probe, is the
    // longest idle: the first to make room.

    let mut conns = Vec::new();
    for _ in 0..20 {
        let mut stream = connect(gw.port).await;
        assert_eq!(
            get_on(&mut stream, "/healthz").await.expect("answered"),
            200
        );
        conns.push(stream);
    }
    // The cap is full of idle connections: a probe is still answered, at once.
    let asked = Instant::now();
    let (status, _) = get_once(gw.port, "/healthz").await.expect("probe answered");
    assert_eq!(status, 200);
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "probe took {:?}",
        asked.elapsed()
    );
    assert!(
        closed_within(&mut conns[0], Duration::from_secs(1)).await,
        "the connection idle the longest was not closed to make room; log:\n{}",
        gw.log()
    );

    // Twenty more: the gateway never holds more than twenty, and closes the oldest.
    for i in 0..20 {
        let mut stream = connect(gw.port).await;
        assert_eq!(
            get_on(&mut stream, "/healthz").await.expect("answered"),
            200
        );
        conns.push(stream);
        let open = open_connections(gw.port).await.expect("the gauge");
        assert!(open <= 20, "{open} connections open after {i} more, cap 20");
    }
    let mut still_open = Vec::new();
    for (i, stream) in conns.iter_mut().enumerate() {
        if !closed_within(stream, Duration::from_millis(20)).await {
            still_open.push(i);
        }
    }
    assert!(
        still_open.len() <= 20,
        "{} of our connections are open: {still_open:?}",
        still_open.len()
    );
    assert!(
        (30..40).all(|i| still_open.contains(&i)),
        "the newest connections were closed, not the oldest: open {still_open:?}"
    );
    let log = gw.log();
    assert!(errors(&log).is_empty(), "{log}");
}

#[tokio::test]
async fn at_the_cap_with_nothing_idle_a_new_connection_is_refused_at_once() {
    // A connection in use (here a WebSocket) is never closed to make room: with the cap
    // full of them, a newcomer is turned away quickly rather than left waiting.
    let home = TempDir::new();
    let gw = Gw::start(home.path(), Some("[gateway]\nmaxConnections = 5\n")).await;

    let mut sockets = Vec::new();
    for _ in 0..5 {
        let (socket, _) =
            tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/ws", gw.port))
                .await
                .expect("web chat socket");
        sockets.push(socket);
    }
    let asked = Instant::now();
    let refused = match get_once(gw.port, "/healthz").await {
        Ok((status, _)) => status == 503,
        Err(_) => true,
    };
    assert!(
        refused,
        "a sixth connection was served with the cap (5) full of WebSockets"
    );
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "refused after {:?}",
        asked.elapsed()
    );
    // The sockets were not touched.
    for socket in &mut sockets {
        socket
            .send(tokio_tungstenite::tungstenite::Message::Ping(
                b"still there".to_vec().into(),
            ))
            .await
            .expect("socket open");
        let pong = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(Ok(message)) = socket.next().await {
                if message.is_pong() {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(pong, Ok(true), "a WebSocket was closed to make room");
    }
    // One socket closes: its place is free again.
    let mut first = sockets.remove(0);
    first.close(None).await.expect("close");
    drop(first);
    until(
        "a probe answered again",
        &gw,
        Duration::from_secs(5),
        async || {
            get_once(gw.port, "/healthz")
                .await
                .ok()
                .filter(|(s, _)| *s == 200)
        },
    )
    .await;
}

/// A gateway started under `bash -c 'ulimit -Sn {soft}; exec pincer gateway ...'`.
struct Limited {
    child: Child,
    port: u16,
}

impl Limited {
    fn spawn(home: &Path, soft: u32) -> Self {
        let port = free_port();
        let child = Command::new("bash")
            .args([
                "-c",
                &format!("ulimit -Sn {soft} && exec \"$@\""),
                "pincer",
                bin(),
                "gateway",
                "--port",
                &port.to_string(),
            ])
            .env("PINCER_HOME", home)
            .env_remove("PINCER_CONFIG")
            .env_remove("PINCER_GATEWAY_TOKEN")
            .env_remove("PINCER_GATEWAY_PORT")
            .env("PINCER_LOG", "info,pincer=debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(home.join("gateway.log")).expect("log file"))
            .spawn()
            .expect("spawn pincer under bash");
        Self { child, port }
    }
}

impl Drop for Limited {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// (soft, hard) `Max open files` of process `pid`.
fn open_files_limit(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files");
    let mut fields = line["Max open files".len()..].split_whitespace();
    (
        fields.next().unwrap_or_default().to_string(),
        fields.next().unwrap_or_default().to_string(),
    )
}

#[tokio::test]
async fn the_fd_soft_limit_is_raised_to_the_hard_limit_at_start() {
    // Distributions start services with a soft limit of 1024 (here 64) under a much
    // higher hard one: a gateway that kept the soft limit would run out of descriptors
    // long before its connection cap.
    let home = TempDir::new();
    let gw = Limited::spawn(home.path(), 64);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !matches!(get_once(gw.port, "/readyz").await, Ok((200, _))) {
        assert!(
            Instant::now() < deadline,
            "not ready; log:\n{}",
            std::fs::read_to_string(home.path().join("gateway.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Three hundred connections at once, each answered and kept.
    let connects = (0..300).map(|_| {
        tokio::time::timeout(Duration::from_secs(10), async {
            let mut stream = TcpStream::connect(("127.0.0.1", gw.port)).await?;
            let status = get_on(&mut stream, "/healthz").await?;
            Ok::<_, std::io::Error>((stream, status))
        })
    });
    let outcomes = futures::future::join_all(connects).await;
    let mut held = Vec::new();
    let mut failed = Vec::new();
    for outcome in outcomes {
        match outcome {
            Ok(Ok((stream, 200))) => held.push(stream),
            Ok(Ok((_, status))) => failed.push(format!("status {status}")),
            Ok(Err(e)) => failed.push(e.to_string()),
            Err(_) => failed.push("no answer within 10 s".to_string()),
        }
    }
    assert!(
        failed.is_empty(),
        "{} of 300 connections not served: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    let mut closed = 0;
    for stream in &mut held {
        if closed_within(stream, Duration::from_millis(5)).await {
            closed += 1;
        }
    }
    assert_eq!(closed, 0, "connections were closed under the default cap");
    let (soft, hard) = open_files_limit(gw.child.id());
    assert_eq!(soft, hard, "the soft limit was not raised");
}

#[tokio::test]
async fn clients_that_go_away_mid_request_are_no_error() {
    // Resets and aborted requests are the network's weather, not the gateway's faults:
    // thousands of ERROR lines for them drown the ones that matter.
    let home = TempDir::new();
    let gw = Gw::start(home.path(), None).await;
    let token = gw.token();
    let before = open_connections(gw.port).await;
    for i in 0..50 {
        let mut stream = connect(gw.port).await;
        match i % 5 {
            // Part of a head.
            0 => stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half")
                .await
                .expect("write"),
            // A head and part of its body.
            1 | 2 => {
                let head = format!(
                    "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                     Authorization: Bearer {token}\r\ncontent-type: application/json\r\n\
                     content-length: 1000\r\n\r\n{{\"model\":"
                );
                stream.write_all(head.as_bytes()).await.expect("write");
            }
            // A whole request, gone before its answer.
            _ => stream
                .write_all(b"GET /readyz?verbose HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                .await
                .expect("write"),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        if i % 2 == 0 {
            // A reset rather than a close.
            stream.set_zero_linger().expect("linger");
        }
        drop(stream);
    }
    // Until the gateway has let go of all of them (or has logged an error about one).
    until(
        "the aborted connections gone",
        &gw,
        Duration::from_secs(10),
        async || {
            let now = open_connections(gw.port).await;
            let gone = matches!((now, before), (Some(now), Some(before)) if now <= before);
            (gone || !errors(&gw.log()).is_empty()).then_some(())
        },
    )
    .await;
    let log = gw.log();
    let errors = errors(&log);
    assert!(
        errors.is_empty(),
        "{} ERROR lines for aborted connections, first: {:?}",
        errors.len(),
        errors.first()
    );
    assert_eq!(get_once(gw.port, "/healthz").await.expect("probe").0, 200);
}
