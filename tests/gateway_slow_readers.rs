//! Clients that stop reading a streamed reply (issue 15, finding 4): the gateway closes
//! them after `gateway.writeTimeout`, holds a bounded amount for each meanwhile, gives the
//! memory back once they are gone, and still commits every turn they asked for. A slow
//! client that keeps reading is not closed.

mod common;

use std::time::{Duration, Instant};

use common::{Gw, TempDir};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Streams opened by the attack of finding 4.
const CLIENTS: usize = 30;

/// The text each asks the echo model to repeat: its reply is "echo: " and this.
const TEXT_BYTES: usize = 100 * 1024;

/// The receive buffer of a client that never reads (the kernel doubles it and keeps a
/// floor): so little is in flight that what the gateway holds is what counts.
const CLIENT_RCVBUF: u32 = 4096;

/// A gateway closing stalled writers after 2 s; echo chunks of 256 bytes, 10 ms apart:
/// a reply of [`TEXT_BYTES`] takes 4 s, so the turns are still running when their
/// clients are closed.
const CONFIG: &str =
    "[gateway]\nwriteTimeout = \"2s\"\n\n[providers.echo]\nchunkSize = 256\nchunkDelayMs = 10\n";

/// The text of client `n`, `bytes` long: different for each, so a reply cannot be
/// mistaken for another.
fn text(n: usize, bytes: usize) -> String {
    let head = format!("client {n} ");
    format!("{head}{}", "x".repeat(bytes - head.len()))
}

/// The streamed request of client `n`, written by hand.
fn streamed_request(gw: &Gw, n: usize, text: &str) -> Vec<u8> {
    let body = json!({"model": "pincer:main", "user": format!("slow-{n}"), "stream": true,
        "messages": [{"role": "user", "content": text}]})
    .to_string();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nIdempotency-Key: slow-{n}\r\nContent-Length: {}\r\n\r\n",
        gw.token(),
        body.len()
    );
    [head.into_bytes(), body.into_bytes()].concat()
}

/// A connection to the gateway with a receive buffer of `rcvbuf` bytes if given.
async fn connect(gw: &Gw, rcvbuf: Option<u32>) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    if let Some(size) = rcvbuf {
        socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
    }
    let addr = ([127, 0, 0, 1], gw.port).into();
    socket.connect(addr).await.expect("connect")
}

/// A series of the gateway's metrics text (`name{labels} value`), 0 when absent.
async fn metric(gw: &Gw, series: &str) -> u64 {
    let text = gw.get_text("/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

const WRITE_STALLS: &str = "pincer_connections_closed_total{reason=\"write_stall\"}";

/// Whether `stream` is closed by the gateway within `limit`: EOF or reset, reading and
/// discarding whatever was in flight.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut chunk = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

#[tokio::test]
async fn clients_that_never_read_are_closed_and_their_turns_committed() {
    // Finding 4: 30 such streams took the gateway from 11 MB to 620 MB, kept after they
    // closed. Each must cost a bounded amount, be cut off, and still get its reply.
    let home = TempDir::new();
    let gw = Gw::start(home.path(), Some(CONFIG)).await;
    // The baseline is a gateway that already served as many clients that read, with
    // texts as long: their sessions keep their history in memory (until they hibernate)
    // and the store's caches have grown, so what is measured next is what the stalled
    // connections cost over clients that read.
    let readers = (0..CLIENTS).map(|n| {
        let gw = &gw;
        async move {
            gw.chat(&format!("reader-{n}"), &text(n, TEXT_BYTES), None)
                .await
                .expect("a reading client")
                .0
        }
    });
    for status in futures::future::join_all(readers).await {
        assert_eq!(status, 200);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = gw.rss_kb();

    let texts: Vec<String> = (0..CLIENTS).map(|n| text(n, TEXT_BYTES)).collect();
    let sent = Instant::now();
    let mut streams = Vec::new();
    for (n, text) in texts.iter().enumerate() {
        let mut stream = connect(&gw, Some(CLIENT_RCVBUF)).await;
        stream
            .write_all(&streamed_request(&gw, n, text))
            .await
            .expect("send request");
        streams.push(stream);
    }

    // Held until their writes have waited 2 s, then closed, every one; the gateway's
    // memory sampled meanwhile.
    let mut peak = idle;
    let closed_after = loop {
        peak = peak.max(gw.rss_kb());
        let stalls = metric(&gw, WRITE_STALLS).await;
        if stalls >= CLIENTS as u64 {
            break sent.elapsed();
        }
        assert!(
            sent.elapsed() < Duration::from_secs(30),
            "{stalls} of {CLIENTS} stalled clients closed after {:?}; log:\n{}",
            sent.elapsed(),
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        closed_after >= Duration::from_secs(2),
        "closed after {closed_after:?}, before their writes could have waited 2 s"
    );
    for (n, stream) in streams.iter_mut().enumerate() {
        assert!(
            closed_within(stream, Duration::from_secs(5)).await,
            "client {n}: still open though counted as closed"
        );
    }
    drop(streams);

    // Every turn went on without its client and was committed: the same key, not
    // streamed, gets the whole reply.
    for (n, text) in texts.iter().enumerate() {
        let key = format!("slow-{n}");
        let reply = gw
            .chat_until_answered(&format!("slow-{n}"), text, &key, Duration::from_secs(30))
            .await;
        assert!(
            reply == format!("echo: {text}"),
            "client {n}: reply of {} bytes is not its text echoed",
            reply.len()
        );
    }

    // Memory comes back once they are gone (the allocator may return pages a little
    // later): the lowest reading over a few seconds.
    let mut after = gw.rss_kb();
    let settle = Instant::now();
    while after > idle + AFTER_MARGIN_KB && settle.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = after.min(gw.rss_kb());
    }
    println!(
        "gateway RSS: after {CLIENTS} reading clients {:.1} MB, peak with {CLIENTS} stalled streams {:.1} MB, after {:.1} MB; closed {:.1} s after the requests",
        mb(idle),
        mb(peak),
        mb(after),
        closed_after.as_secs_f64()
    );
    assert!(
        peak <= idle + PEAK_MARGIN_KB,
        "peak {:.1} MB over idle {:.1} MB",
        mb(peak),
        mb(idle)
    );
    assert!(
        after <= idle + AFTER_MARGIN_KB,
        "{:.1} MB after, over idle {:.1} MB",
        mb(after),
        mb(idle)
    );
    assert_eq!(metric(&gw, WRITE_STALLS).await, CLIENTS as u64);
}

/// What the attack may add to the gateway's idle memory while it lasts.
const PEAK_MARGIN_KB: u64 = 40 * 1024;

/// What may stay of it once the clients are gone and their turns committed: 30 more
/// sessions holding 200 kB of history each, as the readers' did.
const AFTER_MARGIN_KB: u64 = 20 * 1024;

#[tokio::test]
async fn a_slow_reader_that_keeps_reading_is_not_closed() {
    // Slower than the gateway writes (the whole reply is ready at once), but it takes
    // up to 64 kB every 500 ms. The reply is past what the gateway holds of deltas for a
    // lagging stream (256 kB): the rest comes with the end, and must join up.
    //
    // Why 64 kB: the kernel's clock (TCP_USER_TIMEOUT) restarts when the client's window
    // opens wide enough for the next segment, and a loopback segment is 64 kB (a network
    // one 1.5 kB). A reader taking 32 kB every 500 ms reopened it only every other read
    // and, on a loaded machine, was cut off after 2 s: a loopback artefact, not a reader
    // a network would show.
    let home = TempDir::new();
    let gw = Gw::start(
        home.path(),
        Some("[gateway]\nwriteTimeout = \"3s\"\n\n[providers.echo]\nchunkSize = 256\n"),
    )
    .await;
    let text = text(0, 400 * 1024);
    let mut stream = connect(&gw, None).await;
    stream
        .write_all(&streamed_request(&gw, 0, &text))
        .await
        .expect("send request");
    let started = Instant::now();
    let mut received = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let n = match stream.read(&mut chunk).await {
            Ok(n) => n,
            Err(error) => panic!(
                "cut off after {:?} and {} bytes: {error}; log:\n{}",
                started.elapsed(),
                received.len(),
                gw.log()
            ),
        };
        assert!(
            n > 0,
            "closed after {:?} and {} bytes; log:\n{}",
            started.elapsed(),
            received.len(),
            gw.log()
        );
        received.extend_from_slice(&chunk[..n]);
        // The chunked body's last chunk (the connection stays open).
        if received.ends_with(b"\r\n0\r\n\r\n") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not done after 60 s"
        );
    }
    let took = started.elapsed();
    let reply = streamed_text(&received);
    assert!(
        reply == format!("echo: {text}"),
        "the stream carried {} bytes of text, not its text echoed",
        reply.len()
    );
    println!(
        "slow reader: {} bytes in {:.1} s, not closed",
        received.len(),
        took.as_secs_f64()
    );
    assert!(
        took > Duration::from_secs(4),
        "read in {took:?}: not slower than the gateway, so it tested nothing"
    );
    assert_eq!(metric(&gw, WRITE_STALLS).await, 0);
}

/// The text of the `content` deltas of a streamed response (chunked transfer encoding
/// and all): the JSON of each `data:` line, wherever the chunk boundaries fall.
fn streamed_text(raw: &[u8]) -> String {
    let body = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(&[][..], |i| &raw[i + 4..]);
    let body = String::from_utf8_lossy(&dechunk(body)).into_owned();
    let mut text = String::new();
    for line in body.lines() {
        let Some(data) = line.strip_prefix("data:") else {
            continue;
        };
        if let Ok(event) = serde_json::from_str::<Value>(data.trim())
            && let Some(content) = event["choices"][0]["delta"]["content"].as_str()
        {
            text.push_str(content);
        }
    }
    text
}

/// A chunked body's data.
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = body.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&body[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok());
        let rest = &body[eol + 2..];
        let Some(size) = size.filter(|&size| size > 0 && size <= rest.len()) else {
            break;
        };
        out.extend_from_slice(&rest[..size]);
        body = rest[size..].strip_prefix(b"\r\n").unwrap_or(&rest[size..]);
    }
    out
}
