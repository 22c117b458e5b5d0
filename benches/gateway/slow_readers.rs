//! What clients that stop reading cost the gateway, on the real `pincer` binary (issue 15,
//! finding 4: 30 streams that never read took it from 11 MB to 620 MB, kept after).
//!
//! ```sh
//! cargo build --release --bin pincer
//! cargo bench --bench gateway_slow_readers                  # 30 streams, 20 pages, 3,000 chats, writeTimeout 5s
//! STREAMS=100 PAGES=50 cargo bench --bench gateway_slow_readers
//! BENCH_QUICK=1 cargo bench --bench gateway_slow_readers    # 10 streams, 5 pages, 500 chats, 2s
//! ```
//!
//! Each phase on a fresh gateway (`gateway.writeTimeout = WRITE_TIMEOUT`; the echo model
//! streams 256-byte chunks 10 ms apart), its RSS sampled every 50 ms:
//! 1. `STREAMS` streamed `/v1/chat/completions` of 100 kB each whose clients read
//!    everything (the baseline of the next);
//! 2. as many again whose clients never read (4 kB receive buffer): the time until the
//!    gateway has closed them all (`pincer_connections_closed_total{reason="write_stall"}`),
//!    then each reply fetched again by its Idempotency-Key;
//! 3. `PAGES` web chat sockets that say hello, send four 60 kB messages and read every
//!    reply (the baseline of the next);
//! 4. as many that do the same and never read: the time until each is closed, then each
//!    message's answer looked up in the page's transcript;
//! 5. `CHATS` short chats from 8 clients, each from a new user (the tree changes all the
//!    time), alone;
//! 6. the same while `PAGES` pages that said hello never read (the tree is pushed to
//!    them: finding 4's 3 GB).
//!
//! Exits non-zero if a client is not closed within three times the write timeout, or a
//! turn is not committed.

#[path = "common.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use futures::{SinkExt, StreamExt};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;

/// The text each `/v1` client asks the echo model to repeat.
const TEXT_BYTES: usize = 100 * 1024;

/// The text of each web chat message (a frame is at most 64 kB).
const PAGE_TEXT_BYTES: usize = 60 * 1024;

/// Messages each page sends.
const PAGE_MESSAGES: usize = 4;

/// The receive buffer of a client that never reads (the kernel doubles it).
const CLIENT_RCVBUF: u32 = 4096;

/// How often the gateway's RSS is read.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);

struct Settings {
    streams: usize,
    pages: usize,
    chats: usize,
    write_timeout: Duration,
}

/// What one phase did to the gateway's memory and how long it took.
#[derive(Debug, Default)]
struct Phase {
    name: String,
    before_kb: u64,
    peak_kb: u64,
    after_kb: u64,
    took: Duration,
    /// Clients that did what the phase asks (a whole reply; closed by the gateway) /
    /// clients.
    closed: (usize, usize),
}

fn main() {
    let bin = pincer_bin();
    let quick = quick();
    let s = Settings {
        streams: env_f64("STREAMS", if quick { 10.0 } else { 30.0 }) as usize,
        pages: env_f64("PAGES", if quick { 5.0 } else { 20.0 }) as usize,
        chats: env_f64("CHATS", if quick { 500.0 } else { 3000.0 }) as usize,
        write_timeout: env_duration(
            "WRITE_TIMEOUT",
            Duration::from_secs(if quick { 2 } else { 5 }),
        ),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!(
        "gateway_slow_readers: {} streams of {} kB, {} pages of {}x{} kB, writeTimeout {:?}, a fresh gateway for each phase",
        s.streams,
        TEXT_BYTES / 1024,
        s.pages,
        PAGE_MESSAGES,
        PAGE_TEXT_BYTES / 1024,
        s.write_timeout,
    );
    let limit = s.write_timeout * 3 + Duration::from_secs(5);
    let mut failed = Vec::new();

    let reading = {
        let (_home, gw) = fresh(&bin, &s);
        let (port, token) = (gw.port, gw.token());
        rt.block_on(sampled(gw.pid(), "streams that read", async {
            let clients = (0..s.streams).map(|n| reading_stream(port, &token, n));
            let read = futures::future::join_all(clients).await;
            (read.iter().filter(|&&ok| ok).count(), s.streams)
        }))
    };
    if reading.closed.0 != s.streams {
        failed.push(format!(
            "{} of {} reading streams got their whole reply",
            reading.closed.0, s.streams
        ));
    }

    let (streams, committed_streams) = {
        let (_home, gw) = fresh(&bin, &s);
        let (port, token) = (gw.port, gw.token());
        let phase = rt.block_on(sampled(gw.pid(), "streams that never read", async {
            let mut held = Vec::new();
            for n in 0..s.streams {
                let mut stream = connect(port).await;
                let request =
                    streamed_request(&token, &format!("stalled-{n}"), &text(n, TEXT_BYTES));
                stream.write_all(&request).await.expect("send request");
                held.push(stream);
            }
            let started = Instant::now();
            while stalls(port).await < s.streams as u64 && started.elapsed() < limit {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let closed = stalls(port).await as usize;
            drop(held);
            (closed, s.streams)
        }));
        let committed = rt.block_on(async {
            let client = load_client(Duration::from_secs(30));
            let mut ok = 0;
            for n in 0..s.streams {
                let want = format!("echo: {}", text(n, TEXT_BYTES));
                if fetch_again(&client, port, &token, n).await.as_deref() == Some(want.as_str()) {
                    ok += 1;
                }
            }
            ok
        });
        (phase, committed)
    };
    if streams.closed.0 != s.streams {
        failed.push(format!(
            "{} of {} never-reading streams closed within {limit:?}",
            streams.closed.0, s.streams
        ));
    }
    if committed_streams != s.streams {
        failed.push(format!(
            "{committed_streams} of {} stalled streams' replies committed",
            s.streams
        ));
    }

    let reading_pages = {
        let (_home, gw) = fresh(&bin, &s);
        let port = gw.port;
        rt.block_on(sampled(gw.pid(), "pages that read", async {
            let owners: Vec<String> = (0..s.pages).map(|_| owner()).collect();
            let pages = owners.iter().map(|o| reading_page(port, o));
            let read = futures::future::join_all(pages).await;
            (read.iter().filter(|&&ok| ok).count(), s.pages)
        }))
    };
    if reading_pages.closed.0 != s.pages {
        failed.push(format!(
            "{} of {} reading pages got every reply",
            reading_pages.closed.0, s.pages
        ));
    }

    let (pages, committed_pages) = {
        let (_home, gw) = fresh(&bin, &s);
        let (port, token) = (gw.port, gw.token());
        let owners: Vec<String> = (0..s.pages).map(|_| owner()).collect();
        let phase = rt.block_on(sampled(gw.pid(), "pages that never read", async {
            let mut held = Vec::new();
            for owner in &owners {
                held.push(stalled_page(port, owner).await);
            }
            tokio::time::sleep(s.write_timeout * 2 + Duration::from_secs(1)).await;
            let ends = held.into_iter().map(|page| ended(page, limit));
            let closed = futures::future::join_all(ends)
                .await
                .into_iter()
                .filter(|&e| e)
                .count();
            (closed, s.pages)
        }));
        let committed = rt.block_on(async {
            let client = load_client(Duration::from_secs(30));
            let mut answered = 0;
            for owner in &owners {
                answered += page_replies(&client, port, &token, owner).await;
            }
            answered
        });
        (phase, committed)
    };
    if pages.closed.0 != s.pages {
        failed.push(format!(
            "{} of {} never-reading pages closed",
            pages.closed.0, s.pages
        ));
    }
    if committed_pages != s.pages * PAGE_MESSAGES {
        failed.push(format!(
            "{committed_pages} of {} stalled pages' messages answered",
            s.pages * PAGE_MESSAGES
        ));
    }
    let committed = (committed_streams, committed_pages);

    // The tree pushed to pages that never read while other users chat (each chat a new
    // session: the tree changes all the time).
    let chats_alone = {
        let (_home, gw) = fresh(&bin, &s);
        let (port, token) = (gw.port, gw.token());
        rt.block_on(sampled(gw.pid(), "chats, no pages", async {
            (chat_load(port, &token, s.chats).await, s.chats)
        }))
    };
    let chats_pages = {
        let (_home, gw) = fresh(&bin, &s);
        let (port, token) = (gw.port, gw.token());
        rt.block_on(sampled(gw.pid(), "chats, idle pages unread", async {
            let mut held = Vec::new();
            for _ in 0..s.pages {
                held.push(idle_page(port, &owner()).await);
            }
            let answered = chat_load(port, &token, s.chats).await;
            drop(held);
            (answered, s.chats)
        }))
    };
    for phase in [&chats_alone, &chats_pages] {
        if phase.closed.0 != s.chats {
            failed.push(format!(
                "{}: {} of {} chats answered",
                phase.name, phase.closed.0, s.chats
            ));
        }
    }

    println!();
    println!(
        "{:<26} {:>10} {:>10} {:>10} {:>9} {:>8}",
        "phase", "before MB", "peak MB", "after MB", "took s", "ok"
    );
    for p in [
        &reading,
        &streams,
        &reading_pages,
        &pages,
        &chats_alone,
        &chats_pages,
    ] {
        println!(
            "{:<26} {:>10.1} {:>10.1} {:>10.1} {:>9.1} {:>8}",
            p.name,
            mb(p.before_kb),
            mb(p.peak_kb),
            mb(p.after_kb),
            p.took.as_secs_f64(),
            format!("{}/{}", p.closed.0, p.closed.1)
        );
    }
    println!(
        "committed: {}/{} stalled streams' replies, {}/{} stalled pages' messages",
        committed.0,
        s.streams,
        committed.1,
        s.pages * PAGE_MESSAGES
    );
    println!(
        "{} idle pages that never read during {} chats: {:+.1} MB at peak against the chats alone",
        s.pages,
        s.chats,
        mb(chats_pages.peak_kb) - mb(chats_alone.peak_kb),
    );
    println!(
        "never reading against reading: streams {:+.1} MB at peak, {:+.1} MB after; pages {:+.1} MB at peak, {:+.1} MB after",
        mb(streams.peak_kb) - mb(reading.peak_kb),
        mb(streams.after_kb) - mb(reading.after_kb),
        mb(pages.peak_kb) - mb(reading_pages.peak_kb),
        mb(pages.after_kb) - mb(reading_pages.after_kb),
    );
    if !failed.is_empty() {
        for f in &failed {
            eprintln!("FAILED: {f}");
        }
        std::process::exit(1);
    }
}

/// A gateway on a fresh home with the bench's config, ready.
fn fresh(bin: &std::path::Path, s: &Settings) -> (TempHome, Gateway) {
    let home = TempHome::new("slow-readers");
    std::fs::write(
        home.0.join("pincer.toml"),
        format!(
            "[gateway]\nwriteTimeout = \"{}ms\"\n\n[providers.echo]\nchunkSize = 256\nchunkDelayMs = 10\n",
            s.write_timeout.as_millis()
        ),
    )
    .expect("write pincer.toml");
    let mut gw = Gateway::spawn(bin, &home.0);
    gw.wait_ready(Duration::from_millis(1), Duration::from_secs(30));
    // Its first allocations (the store's first writes) are idle, not the phase's.
    let _ = raw_get(gw.port, "/readyz");
    std::thread::sleep(Duration::from_millis(300));
    (home, gw)
}

/// Runs `work` while sampling the gateway's RSS; `after` is the lowest reading over the
/// second that follows (the allocator returns pages a little later).
async fn sampled(pid: u32, name: &str, work: impl Future<Output = (usize, usize)>) -> Phase {
    let before_kb = rss(pid);
    let peak = Arc::new(Mutex::new(before_kb));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(SAMPLE_EVERY).await;
                let now = rss(pid);
                let mut p = peak.lock();
                *p = (*p).max(now);
            }
        })
    };
    let started = Instant::now();
    let closed = work.await;
    let took = started.elapsed();
    let mut after_kb = rss(pid);
    for _ in 0..20 {
        tokio::time::sleep(SAMPLE_EVERY).await;
        after_kb = after_kb.min(rss(pid));
    }
    sampler.abort();
    let peak_kb = *peak.lock();
    Phase {
        name: name.to_string(),
        before_kb,
        peak_kb,
        after_kb,
        took,
        closed,
    }
}

fn rss(pid: u32) -> u64 {
    proc_kb(pid, "VmRSS").unwrap_or(0)
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// The text of client `n`, `bytes` long, different for each.
fn text(n: usize, bytes: usize) -> String {
    let head = format!("client {n} ");
    format!("{head}{}", "x".repeat(bytes.saturating_sub(head.len())))
}

/// A streamed completion request written by hand, with its Idempotency-Key.
fn streamed_request(token: &str, user: &str, text: &str) -> Vec<u8> {
    let body = serde_json::json!({"model": "pincer:main", "user": user, "stream": true,
        "messages": [{"role": "user", "content": text}]})
    .to_string();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nIdempotency-Key: {user}\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    [head.into_bytes(), body.into_bytes()].concat()
}

/// A connection whose receive buffer is [`CLIENT_RCVBUF`].
async fn connect(port: u16) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .set_recv_buffer_size(CLIENT_RCVBUF)
        .expect("SO_RCVBUF");
    socket
        .connect(([127, 0, 0, 1], port).into())
        .await
        .expect("connect")
}

/// A client that reads its whole streamed reply: whether the stream ended with `[DONE]`.
async fn reading_stream(port: u16, token: &str, n: usize) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let request = streamed_request(token, &format!("reader-{n}"), &text(n, TEXT_BYTES));
    if stream.write_all(&request).await.is_err() {
        return false;
    }
    let mut body = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut body));
    matches!(read.await, Ok(Ok(_))) && body.windows(6).any(|w| w == b"[DONE]")
}

/// The gateway's count of connections closed for taking nothing.
async fn stalls(port: u16) -> u64 {
    const SERIES: &str = "pincer_connections_closed_total{reason=\"write_stall\"} ";
    let text = tokio::task::spawn_blocking(move || raw_get(port, "/metrics"))
        .await
        .ok()
        .and_then(Result::ok)
        .map(|(_, body)| body)
        .unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(SERIES))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

type Page = tokio_tungstenite::WebSocketStream<TcpStream>;

/// A page's secret.
fn owner() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

/// A page that says hello, sends its messages and reads until each is done: whether all
/// were within a minute.
async fn reading_page(port: u16, owner: &str) -> bool {
    let Ok(stream) = TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let Ok((mut page, _)) =
        tokio_tungstenite::client_async(format!("ws://127.0.0.1:{port}/ws"), stream).await
    else {
        return false;
    };
    let hello = serde_json::json!({"type": "hello", "client": owner});
    if page.send(Message::text(hello.to_string())).await.is_err() {
        return false;
    }
    let text = "r".repeat(PAGE_TEXT_BYTES);
    for n in 0..PAGE_MESSAGES {
        let frame = serde_json::json!({"type": "send", "id": format!("m{n}"), "agent": "main",
            "session": "reading", "text": text});
        if page.send(Message::text(frame.to_string())).await.is_err() {
            return false;
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut done = 0;
    while done < PAGE_MESSAGES {
        match tokio::time::timeout_at(deadline, page.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let frame: serde_json::Value = serde_json::from_str(&t).unwrap_or_default();
                if frame["type"] == "done" {
                    done += 1;
                }
            }
            Ok(Some(Ok(_))) => {}
            _ => return false,
        }
    }
    true
}

/// A page that says hello and will never read: it is sent the tree as it changes.
async fn idle_page(port: u16, owner: &str) -> Page {
    let stream = connect(port).await;
    let (mut page, _) =
        tokio_tungstenite::client_async(format!("ws://127.0.0.1:{port}/ws"), stream)
            .await
            .expect("web socket");
    let hello = serde_json::json!({"type": "hello", "client": owner});
    page.send(Message::text(hello.to_string()))
        .await
        .expect("hello");
    page
}

/// `chats` short non-streamed chats from 8 clients, each from a new user: how many were
/// answered.
async fn chat_load(port: u16, token: &str, chats: usize) -> usize {
    let client = load_client(Duration::from_secs(30));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let clients = (0..8).map(|_| async {
        let mut answered = 0;
        loop {
            let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if n >= chats {
                return answered;
            }
            let response = client
                .post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
                .bearer_auth(token)
                .json(&chat_body(&format!("chatter-{n}"), "hello"))
                .send()
                .await;
            if response.is_ok_and(|r| r.status().is_success()) {
                answered += 1;
            }
        }
    });
    futures::future::join_all(clients).await.into_iter().sum()
}

/// A page that says hello, sends its messages and will never read.
async fn stalled_page(port: u16, owner: &str) -> Page {
    let stream = connect(port).await;
    let (mut page, _) =
        tokio_tungstenite::client_async(format!("ws://127.0.0.1:{port}/ws"), stream)
            .await
            .expect("web socket");
    let hello = serde_json::json!({"type": "hello", "client": owner});
    page.send(Message::text(hello.to_string()))
        .await
        .expect("hello");
    let text = "s".repeat(PAGE_TEXT_BYTES);
    for n in 0..PAGE_MESSAGES {
        let frame = serde_json::json!({"type": "send", "id": format!("m{n}"), "agent": "main",
            "session": "stalled", "text": text});
        page.send(Message::text(frame.to_string()))
            .await
            .expect("send");
    }
    page
}

/// Whether the gateway closed `page`: reading now, it ends (close frame, reset or EOF)
/// within `limit` before its replies are all through.
async fn ended(mut page: Page, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    let mut read = 0;
    loop {
        match tokio::time::timeout_at(deadline, page.next()).await {
            Ok(Some(Ok(Message::Close(_))) | Some(Err(_)) | None) => {
                return read < PAGE_MESSAGES * PAGE_TEXT_BYTES;
            }
            Ok(Some(Ok(msg))) => read += msg.len(),
            Err(_) => return false,
        }
    }
}

/// Stalled stream `n`'s reply, fetched again (not streamed) by its Idempotency-Key.
async fn fetch_again(client: &reqwest::Client, port: u16, token: &str, n: usize) -> Option<String> {
    let user = format!("stalled-{n}");
    let body = serde_json::json!({"model": "pincer:main", "user": user,
        "messages": [{"role": "user", "content": text(n, TEXT_BYTES)}]});
    for _ in 0..30 {
        let response = client
            .post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
            .bearer_auth(token)
            .header("Idempotency-Key", &user)
            .json(&body)
            .send()
            .await
            .ok()?;
        if response.status().is_success() {
            let value: serde_json::Value = response.json().await.ok()?;
            return value["choices"][0]["message"]["content"]
                .as_str()
                .map(str::to_string);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    None
}

/// How many of a stalled page's messages were answered, from its session's transcript.
async fn page_replies(client: &reqwest::Client, port: u16, token: &str, owner: &str) -> usize {
    let digest = ring::digest::digest(&ring::digest::SHA256, owner.as_bytes());
    let hex: String = digest.as_ref()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let key = format!("agent:main:web:web:user:{hex}.stalled");
    let url = format!(
        "http://127.0.0.1:{port}/admin/sessions/{}",
        percent_encode(&key)
    );
    let Ok(response) = client.get(url).bearer_auth(token).send().await else {
        return 0;
    };
    let value: serde_json::Value = response.json().await.unwrap_or_default();
    value["transcript"]
        .as_array()
        .map_or(0, |t| t.iter().filter(|e| e["role"] == "assistant").count())
}
