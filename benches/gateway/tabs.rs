//! Open web-chat tabs and what the supervision tree they are sent costs, on the real
//! `pincer` binary (issue 15, finding 5: the tree broadcast).
//!
//! ```sh
//! cargo build --release --bin pincer
//! cargo bench --bench gateway_tabs                              # 500 tabs, 100k sessions
//! TABS=200 ROUNDS=3 PINCER_BENCH_SESSIONS=20000 cargo bench --bench gateway_tabs
//! PINCER_BENCH_SESSIONS=0 cargo bench --bench gateway_tabs      # part 1 only
//! BENCH_QUICK=1 cargo bench --bench gateway_tabs                # 100 tabs, 2,000 sessions
//! ```
//!
//! **Part 1, chat latency with idle tabs.** On a fresh gateway (echo model), `TABS` tabs
//! open `GET /ws` (64 at a time), send `hello` and then read and discard everything, as
//! browsers do; the load starts once each has its first `tree` frame. The load: `CHATS`
//! non-streamed `/v1/chat/completions` from 8 clients, closed loop, each from a new
//! `user`, so each creates a session and the tree changes. Latency is send to reply. A
//! chat has `CHAT_TIMEOUT` (default 30 s) and the load `PHASE_DEADLINE` (default 60 s);
//! what did not finish is counted, and percentiles that fall among those print as
//! `unfinished`. Printed per phase: latency, total time, the bytes and frames the tabs
//! received during the load, the gateway's CPU time (`utime + stime`) over the load and
//! its RSS after it (and its peak, `VmHWM`), and this process's own CPU time (the tabs'
//! reading competes for the same 2 cores). The same phase with 0 tabs is the baseline;
//! `ROUNDS` repeats the pair, interleaved.
//!
//! **Part 2, the tree with many sessions.** On a fresh gateway, `PINCER_BENCH_SESSIONS`
//! (default 100,000, the per-account cap) chats from distinct users, 64 at a time, within
//! `SESSIONS_DEADLINE` (default 20 m); then one tab connects: the size of its first
//! `tree` frame and the time it took, then what it receives over `TREE_WINDOW` (5 s)
//! while 10 chats a second go to existing sessions (each turn is an actor: the tree
//! changes). Frames are read up to 256 MB (tungstenite's limits raised); a larger one
//! ends the tab and is reported. Exits non-zero if a reply is wrong or the gateway dies.

#[path = "common.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use futures::{SinkExt, StreamExt};
use parking_lot::Mutex;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Concurrent chat clients in part 1.
const CLIENTS: usize = 8;
/// Tabs opening at once (a burst of hundreds overflows the listen backlog).
const OPEN_CONCURRENCY: usize = 64;
/// Concurrent chats creating sessions in part 2.
const CREATE_CONCURRENCY: usize = 64;
/// Chats a second to existing sessions while part 2's tab listens.
const LIGHT_RATE: f64 = 10.0;
/// The largest frame a tab reads: today's tree frames with 100k sessions are tens of MB.
const MAX_FRAME: usize = 256 << 20;
/// Where the HTTP channel's sessions sit in the tree.
const SESSIONS_PREFIX: &str = "pincer/channels/channel:http:http/sessions/";

/// What the tabs of a phase received, summed over all of them.
#[derive(Debug, Default)]
struct TabCounts {
    bytes: AtomicU64,
    frames: AtomicU64,
    largest: AtomicU64,
    /// Tabs whose handshake succeeded.
    connected: AtomicUsize,
    /// Tabs that have received a `tree` frame.
    with_tree: AtomicUsize,
    /// Tabs that could not connect.
    failed: AtomicUsize,
    /// Tabs that ended before they were told to: closed by the gateway, or an error.
    ended: AtomicUsize,
    /// The first error that ended a tab.
    end_reason: Mutex<Option<String>>,
    /// The first `tree` frame of the first tab to get one: (bytes, time from connect).
    first_tree: Mutex<Option<(usize, Duration, Arc<str>)>>,
}

/// A reading of the counters, for deltas.
#[derive(Debug, Clone, Copy)]
struct Reading {
    bytes: u64,
    frames: u64,
    at: Instant,
}

/// The outcome of a fixed chat load.
#[derive(Debug, Default)]
struct Load {
    n: usize,
    ok: Vec<Duration>,
    errors: BTreeMap<String, usize>,
    /// Chats that timed out or were not done by the deadline.
    unfinished: usize,
    elapsed: Duration,
}

/// One run of part 1.
#[derive(Debug)]
struct ChatPhase {
    tabs: usize,
    round: usize,
    open_time: Duration,
    connected: usize,
    with_tree: usize,
    load: Load,
    bytes: u64,
    frames: u64,
    largest: u64,
    tabs_ended: usize,
    gw_cpu: Duration,
    own_cpu: Duration,
    rss_kb: u64,
    hwm_kb: u64,
}

/// Part 2.
#[derive(Debug, Default)]
struct TreePhase {
    wanted: usize,
    created: usize,
    create_errors: BTreeMap<String, usize>,
    create_time: Duration,
    rss_kb: u64,
    /// The first tree frame: bytes, time from connect, nodes, session nodes.
    first: Option<(usize, Duration, usize, usize)>,
    /// Why the tab got no tree frame, if it got none.
    first_missing: Option<String>,
    window: Duration,
    bytes: u64,
    frames: u64,
    largest: u64,
    tab_end: Option<String>,
    light: Load,
    gw_cpu: Duration,
    rss_end_kb: u64,
    hwm_kb: u64,
}

/// Settings from the environment.
#[derive(Debug, Clone)]
struct Settings {
    tabs: usize,
    chats: usize,
    rounds: usize,
    chat_timeout: Duration,
    phase_deadline: Duration,
    sessions: usize,
    sessions_deadline: Duration,
    window: Duration,
}

fn main() {
    let bin = pincer_bin();
    let quick = quick();
    let s = Settings {
        tabs: env_f64("TABS", if quick { 100.0 } else { 500.0 }) as usize,
        chats: env_f64("CHATS", if quick { 100.0 } else { 300.0 }) as usize,
        rounds: env_f64("ROUNDS", 1.0) as usize,
        chat_timeout: env_duration("CHAT_TIMEOUT", Duration::from_secs(30)),
        phase_deadline: env_duration(
            "PHASE_DEADLINE",
            Duration::from_secs(if quick { 20 } else { 60 }),
        ),
        sessions: env_f64(
            "PINCER_BENCH_SESSIONS",
            if quick { 2_000.0 } else { 100_000.0 },
        ) as usize,
        sessions_deadline: env_duration("SESSIONS_DEADLINE", Duration::from_secs(20 * 60)),
        window: env_duration("TREE_WINDOW", Duration::from_secs(5)),
    };
    raise_own_fd_limit(s.tabs + CREATE_CONCURRENCY);
    let started = Instant::now();

    let mut phases = Vec::new();
    for round in 1..=s.rounds {
        for tabs in [0, s.tabs] {
            eprintln!("part 1, round {round}: {tabs} tabs");
            let phase = chat_phase(&bin, tabs, round, &s);
            print_chat_phase(&phase, &s);
            phases.push(phase);
        }
    }
    let tree = (s.sessions > 0).then(|| tree_phase(&bin, &s));

    println!();
    println!(
        "gateway_tabs part 1  {} chats (non-streamed /v1, each from a new user) from {CLIENTS} clients, closed loop, echo model; per chat {:.0} s, phase deadline {:.0} s; tabs read and discard",
        s.chats,
        s.chat_timeout.as_secs_f64(),
        s.phase_deadline.as_secs_f64()
    );
    println!(
        "{:>5} {:>3} {:>6} {:>9} {:>5} {:>5} {:>6} {:>11} {:>11} {:>11} {:>9} {:>11} {:>9} {:>10} {:>8} {:>7} {:>9} {:>9}",
        "tabs",
        "rnd",
        "open",
        "ok",
        "err",
        "unfin",
        "p50",
        "p99",
        "max",
        "total",
        "chats/s",
        "tab bytes",
        "frames",
        "largest",
        "gw CPU",
        "own CPU",
        "RSS",
        "peak RSS"
    );
    let mut errors = BTreeMap::new();
    for p in &phases {
        println!("{}", chat_row(p));
        for (e, n) in &p.load.errors {
            *errors.entry(format!("{} tabs: {e}", p.tabs)).or_default() += n;
        }
    }
    println!(
        "open: time for all tabs to connect and get a tree frame; ok/err/unfin: chats answered, failed, not done (timeout or deadline); tab bytes and frames: received by all tabs during the load; CPU: the gateway's (utime + stime) and this process's over the load; RSS after the load"
    );
    if s.tabs > 0 {
        ratio_line(&phases, s.tabs);
    }
    println!("errors: {}", count_line(&errors));
    if let Some(t) = &tree {
        print_tree(t, &s);
    }
    println!("bench time {:.0} s", started.elapsed().as_secs_f64());

    let wrong = phases
        .iter()
        .map(|p| &p.load)
        .chain(tree.iter().map(|t| &t.light))
        .any(|l| {
            l.errors
                .keys()
                .any(|k| k.contains("WRONG") || k.contains("died"))
        });
    if wrong {
        std::process::exit(1);
    }
}

// === part 1 ===

fn chat_phase(bin: &std::path::Path, tabs: usize, round: usize, s: &Settings) -> ChatPhase {
    let home = TempHome::new("tabs");
    let mut gw = Gateway::spawn(bin, &home.0);
    gw.wait_ready(Duration::from_millis(1), Duration::from_secs(30));
    let (pid, port, token, base) = (gw.pid(), gw.port, gw.token(), gw.base());

    // The tabs read on their own runtime, so a busy tab never delays a chat client's task.
    let tab_rt = runtime(2);
    let counts = Arc::new(TabCounts::default());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let permits = Arc::new(tokio::sync::Semaphore::new(OPEN_CONCURRENCY));
    let opened = Instant::now();
    for _ in 0..tabs {
        tab_rt.spawn(tab(
            port,
            counts.clone(),
            stopped.clone(),
            Some(permits.clone()),
        ));
    }
    let open_deadline = opened + Duration::from_secs(60);
    loop {
        let with_tree = counts.with_tree.load(Ordering::Relaxed);
        let failed = counts.failed.load(Ordering::Relaxed) + counts.ended.load(Ordering::Relaxed);
        if with_tree + failed >= tabs || Instant::now() > open_deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let open_time = opened.elapsed();

    let load_rt = runtime(1);
    let before = reading(&counts);
    let (cpu0, own0) = (cpu_ticks(pid), cpu_ticks(std::process::id()));
    let users = format!("tabs{tabs}r{round}");
    let mut load = load_rt.block_on(chat_load(
        &base,
        &token,
        &users,
        s.chats,
        s.chat_timeout,
        s.phase_deadline,
    ));
    let (cpu1, own1) = (cpu_ticks(pid), cpu_ticks(std::process::id()));
    let after = reading(&counts);
    let rss_kb = proc_kb(pid, "VmRSS").unwrap_or(0);
    let hwm_kb = proc_kb(pid, "VmHWM").unwrap_or(0);
    if !matches!(gw.child.try_wait(), Ok(None)) {
        *load.errors.entry("the gateway died".into()).or_default() += 1;
        eprintln!("{}", gw.log_tail());
    }
    let tabs_ended = counts.ended.load(Ordering::Relaxed);
    if let Some(reason) = counts.end_reason.lock().as_ref() {
        eprintln!("{tabs_ended} tabs ended early; first: {reason}");
    }

    let _ = stop.send(true);
    gw.stop(Duration::from_secs(5));
    tab_rt.shutdown_timeout(Duration::from_secs(1));
    let ticks = clock_ticks() as f64;
    ChatPhase {
        tabs,
        round,
        open_time,
        connected: counts.connected.load(Ordering::Relaxed),
        with_tree: counts.with_tree.load(Ordering::Relaxed),
        load,
        bytes: after.bytes - before.bytes,
        frames: after.frames - before.frames,
        largest: counts.largest.load(Ordering::Relaxed),
        tabs_ended,
        gw_cpu: Duration::from_secs_f64((cpu1 - cpu0) as f64 / ticks),
        own_cpu: Duration::from_secs_f64((own1 - own0) as f64 / ticks),
        rss_kb,
        hwm_kb,
    }
}

/// `n` chats from `CLIENTS` clients, closed loop, each from the new user `{users}-{i}`;
/// what is not done by `deadline` counts as unfinished.
async fn chat_load(
    base: &str,
    token: &str,
    users: &str,
    n: usize,
    chat_timeout: Duration,
    deadline: Duration,
) -> Load {
    let client = load_client(chat_timeout);
    let url: Arc<str> = format!("{base}/v1/chat/completions").into();
    let token: Arc<str> = token.into();
    let next = Arc::new(AtomicUsize::new(0));
    let results = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let start = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (client, url, token) = (client.clone(), url.clone(), token.clone());
            let (next, results, users) = (next.clone(), results.clone(), users.to_string());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return;
                    }
                    let outcome = chat(&client, &url, &token, &format!("{users}-{i}"), i).await;
                    results.lock().push((outcome, Instant::now()));
                }
            })
        })
        .collect();
    let aborts: Vec<_> = clients.iter().map(|c| c.abort_handle()).collect();
    let all = futures::future::join_all(clients);
    let finished = tokio::time::timeout(deadline, all).await.is_ok();
    for a in aborts {
        a.abort();
    }
    let mut load = Load {
        n,
        elapsed: if finished {
            Duration::ZERO
        } else {
            start.elapsed()
        },
        ..Load::default()
    };
    for (outcome, done) in results.lock().drain(..) {
        if finished {
            load.elapsed = load.elapsed.max(done - start);
        }
        match outcome {
            Ok(latency) => load.ok.push(latency),
            // A chat that ran out of time is unfinished, not an error.
            Err(e) if e == "timeout" => {}
            Err(e) => *load.errors.entry(e).or_default() += 1,
        }
    }
    load.unfinished = n - load.ok.len() - load.errors.values().sum::<usize>();
    load
}

/// One checked chat from `user`: its latency, or what went wrong.
async fn chat(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    user: &str,
    i: usize,
) -> Result<Duration, String> {
    let content = format!("tab bench {i}");
    let body = chat_body(user, &content);
    let sent = Instant::now();
    let attempt = chat_attempt(client, url, token, &format!("{user}-{i}"), &body).await;
    let latency = sent.elapsed();
    match attempt {
        Attempt::Ok { content: got, .. } if got == format!("echo: {content}") => Ok(latency),
        Attempt::Ok { .. } => Err("WRONG reply".into()),
        Attempt::Status(s, code) => Err(format!("status {s} {code}")),
        Attempt::Transport(e) => Err(e),
    }
}

// === tabs ===

/// A browser tab: connects, says hello, reads and discards every frame until `stop`.
async fn tab(
    port: u16,
    counts: Arc<TabCounts>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    permits: Option<Arc<tokio::sync::Semaphore>>,
) {
    let permit = match permits {
        Some(p) => p.acquire_owned().await.ok(),
        None => None,
    };
    let url = format!("ws://127.0.0.1:{port}/ws");
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME))
        .max_frame_size(Some(MAX_FRAME));
    let connect_start = Instant::now();
    let connected =
        tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), true).await;
    drop(permit);
    let mut ws = match connected {
        Ok((ws, _)) => ws,
        Err(e) => {
            counts.failed.fetch_add(1, Ordering::Relaxed);
            counts
                .end_reason
                .lock()
                .get_or_insert(format!("connect: {e}"));
            return;
        }
    };
    counts.connected.fetch_add(1, Ordering::Relaxed);
    let hello = format!(
        r#"{{"type":"hello","client":"{:016x}{:016x}"}}"#,
        fastrand::u64(..),
        fastrand::u64(..)
    );
    if let Err(e) = ws.send(Message::text(hello)).await {
        counts.ended.fetch_add(1, Ordering::Relaxed);
        counts
            .end_reason
            .lock()
            .get_or_insert(format!("hello: {e}"));
        return;
    }
    let mut seen_tree = false;
    loop {
        let frame = tokio::select! {
            frame = ws.next() => frame,
            _ = stop.changed() => return,
        };
        let len = match &frame {
            Some(Ok(Message::Text(t))) => t.len(),
            Some(Ok(Message::Binary(b))) => b.len(),
            Some(Ok(Message::Close(_))) | None => {
                counts.ended.fetch_add(1, Ordering::Relaxed);
                counts
                    .end_reason
                    .lock()
                    .get_or_insert("closed by the gateway".into());
                return;
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                counts.ended.fetch_add(1, Ordering::Relaxed);
                counts.end_reason.lock().get_or_insert(e.to_string());
                return;
            }
        };
        counts.bytes.fetch_add(len as u64, Ordering::Relaxed);
        counts.frames.fetch_add(1, Ordering::Relaxed);
        counts.largest.fetch_max(len as u64, Ordering::Relaxed);
        if !seen_tree
            && let Some(Ok(Message::Text(t))) = &frame
            && is_tree(t.as_bytes())
        {
            seen_tree = true;
            counts.with_tree.fetch_add(1, Ordering::Relaxed);
            let mut first = counts.first_tree.lock();
            if first.is_none() {
                *first = Some((len, connect_start.elapsed(), Arc::from(t.as_str())));
            }
        }
    }
}

/// Whether a frame is a `tree` frame, looking only at its ends (where `type` sits with
/// sorted or ordered keys), so a reading tab does not scan megabytes.
fn is_tree(frame: &[u8]) -> bool {
    const NEEDLES: [&[u8]; 2] = [br#""type":"tree""#, br#""type": "tree""#];
    let head = &frame[..frame.len().min(128)];
    let tail = &frame[frame.len().saturating_sub(128)..];
    NEEDLES.iter().any(|n| {
        [head, tail]
            .iter()
            .any(|part| part.windows(n.len()).any(|w| w == *n))
    })
}

fn reading(counts: &TabCounts) -> Reading {
    Reading {
        bytes: counts.bytes.load(Ordering::Relaxed),
        frames: counts.frames.load(Ordering::Relaxed),
        at: Instant::now(),
    }
}

fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

// === part 2 ===

fn tree_phase(bin: &std::path::Path, s: &Settings) -> TreePhase {
    let home = TempHome::new("tabs-tree");
    let mut gw = Gateway::spawn(bin, &home.0);
    gw.wait_ready(Duration::from_millis(1), Duration::from_secs(30));
    let (pid, port, token, base) = (gw.pid(), gw.port, gw.token(), gw.base());
    let rt = runtime(2);
    let mut out = TreePhase {
        wanted: s.sessions,
        window: s.window,
        ..TreePhase::default()
    };

    // Sessions, one chat from each user.
    eprintln!("part 2: creating {} sessions", s.sessions);
    let started = Instant::now();
    let (created, errors) = rt.block_on(create_sessions(&base, &token, s));
    out.create_time = started.elapsed();
    out.created = created;
    out.create_errors = errors;
    out.rss_kb = proc_kb(pid, "VmRSS").unwrap_or(0);

    // One tab: its first tree frame, then what it receives over the window.
    eprintln!("part 2: one tab");
    let counts = Arc::new(TabCounts::default());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    rt.spawn(tab(port, counts.clone(), stopped, None));
    let first_deadline = Instant::now() + Duration::from_secs(120);
    while counts.first_tree.lock().is_none()
        && counts.ended.load(Ordering::Relaxed) + counts.failed.load(Ordering::Relaxed) == 0
        && Instant::now() < first_deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    match counts.first_tree.lock().take() {
        Some((bytes, took, text)) => {
            let (nodes, sessions) = count_nodes(&text);
            out.first = Some((bytes, took, nodes, sessions));
        }
        None => {
            out.first_missing = Some(
                counts
                    .end_reason
                    .lock()
                    .clone()
                    .unwrap_or_else(|| "none within 120 s".into()),
            );
        }
    }

    if out.first_missing.is_none() {
        let before = reading(&counts);
        let cpu0 = cpu_ticks(pid);
        out.light = rt.block_on(light_load(&base, &token, created.max(1), s.window));
        let cpu1 = cpu_ticks(pid);
        let after = reading(&counts);
        out.window = after.at - before.at;
        out.bytes = after.bytes - before.bytes;
        out.frames = after.frames - before.frames;
        out.largest = counts.largest.load(Ordering::Relaxed);
        out.gw_cpu = Duration::from_secs_f64((cpu1 - cpu0) as f64 / clock_ticks() as f64);
        out.tab_end = counts.end_reason.lock().clone();
    }
    out.rss_end_kb = proc_kb(pid, "VmRSS").unwrap_or(0);
    out.hwm_kb = proc_kb(pid, "VmHWM").unwrap_or(0);
    if !matches!(gw.child.try_wait(), Ok(None)) {
        *out.light
            .errors
            .entry("the gateway died".into())
            .or_default() += 1;
        eprintln!("{}", gw.log_tail());
    }
    let _ = stop.send(true);
    gw.stop(Duration::from_secs(5));
    rt.shutdown_timeout(Duration::from_secs(1));
    out
}

/// `s.sessions` chats from the users `s-0`, `s-1`, ..., `CREATE_CONCURRENCY` at a time,
/// until `s.sessions_deadline`: the sessions created, and the failures.
async fn create_sessions(
    base: &str,
    token: &str,
    s: &Settings,
) -> (usize, BTreeMap<String, usize>) {
    let client = load_client(s.chat_timeout);
    let url: Arc<str> = format!("{base}/v1/chat/completions").into();
    let token: Arc<str> = token.into();
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(Mutex::new(BTreeMap::new()));
    let deadline = Instant::now() + s.sessions_deadline;
    let n = s.sessions;
    let workers: Vec<_> = (0..CREATE_CONCURRENCY)
        .map(|_| {
            let (client, url, token) = (client.clone(), url.clone(), token.clone());
            let (next, done, errors) = (next.clone(), done.clone(), errors.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return;
                    }
                    match chat(&client, &url, &token, &format!("s-{i}"), i).await {
                        Ok(_) => {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => *errors.lock().entry(e).or_insert(0) += 1,
                    }
                }
            })
        })
        .collect();
    let progress = {
        let done = done.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            let mut every = tokio::time::interval(Duration::from_secs(10));
            every.tick().await;
            loop {
                every.tick().await;
                let d = done.load(Ordering::Relaxed);
                eprintln!(
                    "  {d} sessions after {:.0} s ({:.0}/s)",
                    start.elapsed().as_secs_f64(),
                    d as f64 / start.elapsed().as_secs_f64()
                );
            }
        })
    };
    futures::future::join_all(workers).await;
    progress.abort();
    let errors = errors.lock().clone();
    (done.load(Ordering::Relaxed), errors)
}

/// `LIGHT_RATE` chats a second to existing sessions for `window`, open loop.
async fn light_load(base: &str, token: &str, sessions: usize, window: Duration) -> Load {
    let client = load_client(Duration::from_secs(30));
    let url: Arc<str> = format!("{base}/v1/chat/completions").into();
    let token: Arc<str> = token.into();
    let n = (LIGHT_RATE * window.as_secs_f64()).round() as usize;
    let results = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let mut tasks = Vec::with_capacity(n);
    let start = tokio::time::Instant::now();
    open_loop(start, LIGHT_RATE, n, |i, _| {
        let (client, url, token, results) =
            (client.clone(), url.clone(), token.clone(), results.clone());
        let user = format!("s-{}", fastrand::usize(..sessions));
        tasks.push(tokio::spawn(async move {
            let outcome = chat(&client, &url, &token, &user, 1_000_000 + i).await;
            results.lock().push(outcome);
        }));
    })
    .await;
    // The window ends with the schedule; answers still on their way count as unfinished.
    let elapsed = start.elapsed();
    let _ =
        tokio::time::timeout(Duration::from_millis(500), futures::future::join_all(tasks)).await;
    let mut load = Load {
        n,
        elapsed,
        ..Load::default()
    };
    for outcome in results.lock().drain(..) {
        match outcome {
            Ok(latency) => load.ok.push(latency),
            Err(e) => *load.errors.entry(e).or_default() += 1,
        }
    }
    load.unfinished = n - load.ok.len() - load.errors.values().sum::<usize>();
    load
}

/// Nodes in a tree frame, and how many of them are HTTP sessions.
fn count_nodes(frame: &str) -> (usize, usize) {
    fn walk(node: &serde_json::Value, counts: &mut (usize, usize)) {
        counts.0 += 1;
        if node["path"]
            .as_str()
            .is_some_and(|p| p.starts_with(SESSIONS_PREFIX))
        {
            counts.1 += 1;
        }
        for child in node["children"].as_array().into_iter().flatten() {
            walk(child, counts);
        }
    }
    let mut counts = (0, 0);
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(frame) {
        for root in value["tree"].as_array().into_iter().flatten() {
            walk(root, &mut counts);
        }
    }
    counts
}

// === report ===

/// The latency at quantile `q` of all `n` chats, where chats not answered count as
/// slower than any answer: `None` when `q` falls among them.
fn rank(sorted_ok: &[Duration], n: usize, q: f64) -> Option<Duration> {
    let r = ((q * n as f64).ceil() as usize).clamp(1, n.max(1));
    sorted_ok.get(r - 1).copied()
}

fn lat(d: Option<Duration>) -> String {
    d.map(ms).unwrap_or_else(|| "unfinished".into())
}

fn mb(bytes: u64) -> String {
    let v = bytes as f64 / 1e6;
    if v >= 1000.0 {
        format!("{:.2} GB", v / 1000.0)
    } else if v >= 10.0 {
        format!("{v:.0} MB")
    } else if v >= 1.0 {
        format!("{v:.2} MB")
    } else {
        format!("{:.1} kB", v * 1000.0)
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn chat_row(p: &ChatPhase) -> String {
    let mut ok = p.load.ok.clone();
    ok.sort_unstable();
    let n = p.load.n;
    let max = if ok.len() == n {
        ok.last().copied()
    } else {
        None
    };
    format!(
        "{:>5} {:>3} {:>6} {:>9} {:>5} {:>5} {:>6} {:>11} {:>11} {:>11} {:>9.1} {:>11} {:>9} {:>10} {:>8} {:>7} {:>9} {:>9}",
        p.tabs,
        p.round,
        format!("{:.1} s", p.open_time.as_secs_f64()),
        format!("{}/{n}", ok.len()),
        p.load.errors.values().sum::<usize>(),
        p.load.unfinished,
        lat(rank(&ok, n, 0.5)),
        lat(rank(&ok, n, 0.99)),
        lat(max),
        secs(p.load.elapsed),
        ok.len() as f64 / p.load.elapsed.as_secs_f64().max(1e-9),
        mb(p.bytes),
        p.frames,
        mb(p.largest),
        secs(p.gw_cpu),
        secs(p.own_cpu),
        format!("{:.0} MB", p.rss_kb as f64 / 1024.0),
        format!("{:.0} MB", p.hwm_kb as f64 / 1024.0),
    )
}

fn print_chat_phase(p: &ChatPhase, s: &Settings) {
    if p.tabs > 0 && p.with_tree < p.tabs {
        eprintln!(
            "  only {} of {} tabs connected ({} with a tree frame) within 60 s",
            p.connected, p.tabs, p.with_tree
        );
    }
    let mut ok = p.load.ok.clone();
    ok.sort_unstable();
    eprintln!(
        "  {} tabs: {}/{} chats in {} (deadline {}), p50 {}, p99 {}; tabs got {} in {} frames ({} ended early)",
        p.tabs,
        ok.len(),
        p.load.n,
        secs(p.load.elapsed),
        secs(s.phase_deadline),
        lat(rank(&ok, p.load.n, 0.5)),
        lat(rank(&ok, p.load.n, 0.99)),
        mb(p.bytes),
        p.frames,
        p.tabs_ended
    );
}

/// p99 with tabs over p99 without, for each round and over all rounds.
fn ratio_line(phases: &[ChatPhase], tabs: usize) {
    let p99 = |p: &ChatPhase| {
        let mut ok = p.load.ok.clone();
        ok.sort_unstable();
        rank(&ok, p.load.n, 0.99)
    };
    let ratios: Vec<String> = phases
        .chunks(2)
        .map(|pair| match (p99(&pair[0]), pair.get(1).and_then(p99)) {
            (Some(base), Some(with)) => {
                format!("{:.1}x", with.as_secs_f64() / base.as_secs_f64())
            }
            (Some(_), None) => "unfinished".into(),
            _ => "-".into(),
        })
        .collect();
    let met = phases
        .chunks(2)
        .all(|pair| match (p99(&pair[0]), pair.get(1).and_then(p99)) {
            (Some(base), Some(with)) => with < base * 2,
            _ => false,
        });
    println!(
        "chat p99 with {tabs} tabs over p99 with none: {} (goal < 2x: {})",
        ratios.join(", "),
        verdict(met)
    );
}

fn print_tree(t: &TreePhase, s: &Settings) {
    println!();
    println!(
        "gateway_tabs part 2  {} sessions wanted (distinct users, {CREATE_CONCURRENCY} chats at a time), then one tab; {LIGHT_RATE:.0} chats/s to existing sessions over {:.0} s",
        t.wanted,
        s.window.as_secs_f64()
    );
    println!(
        "sessions created {} in {:.0} s ({:.0}/s){}; errors: {}; gateway RSS with them {:.0} MB",
        t.created,
        t.create_time.as_secs_f64(),
        t.created as f64 / t.create_time.as_secs_f64().max(1e-9),
        if t.created < t.wanted {
            format!(" (deadline {:.0} s)", s.sessions_deadline.as_secs_f64())
        } else {
            String::new()
        },
        count_line(&t.create_errors),
        t.rss_kb as f64 / 1024.0
    );
    match (&t.first, &t.first_missing) {
        (Some((bytes, took, nodes, sessions)), _) => println!(
            "first tree frame {bytes} bytes ({}; goal < 64 KB: {}), {} after connect; {nodes} nodes, {sessions} of them sessions",
            mb(*bytes as u64),
            verdict(*bytes < 64 * 1024),
            ms(*took)
        ),
        (None, Some(why)) => println!(
            "first tree frame: none ({why}; frames read up to {} MB)",
            MAX_FRAME >> 20
        ),
        (None, None) => println!("first tree frame: none"),
    }
    if t.first.is_some() {
        let secs = t.window.as_secs_f64().max(1e-9);
        println!(
            "over {:.1} s: {}/s in {:.1} frames/s, largest frame {}; gateway CPU {:.2} s ({:.0} % of a core){}",
            secs,
            mb((t.bytes as f64 / secs) as u64),
            t.frames as f64 / secs,
            mb(t.largest),
            t.gw_cpu.as_secs_f64(),
            t.gw_cpu.as_secs_f64() / secs * 100.0,
            t.tab_end
                .as_ref()
                .map(|e| format!("; the tab ended: {e}"))
                .unwrap_or_default()
        );
        let mut ok = t.light.ok.clone();
        ok.sort_unstable();
        println!(
            "light chats {}/{} answered within the window + 0.5 s, p50 {}, max {}; errors: {}",
            ok.len(),
            t.light.n,
            lat(rank(&ok, t.light.n, 0.5)),
            lat(if ok.len() == t.light.n {
                ok.last().copied()
            } else {
                None
            }),
            count_line(&t.light.errors)
        );
    }
    println!(
        "gateway RSS at the end {:.0} MB, peak {:.0} MB",
        t.rss_end_kb as f64 / 1024.0,
        t.hwm_kb as f64 / 1024.0
    );
}
