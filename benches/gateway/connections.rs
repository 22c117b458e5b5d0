//! `/healthz` while the gateway's connection cap is full, on the real `pincer` binary.
//!
//! ```sh
//! cargo build --release --bin pincer
//! cargo bench --bench gateway_connections                # cap 4096, 200 probes/s for 5 s a phase
//! CAP=1000 RATE=500 DURATION=10s cargo bench --bench gateway_connections
//! BENCH_QUICK=1 cargo bench --bench gateway_connections  # cap 1024, 2 s a phase
//! ```
//!
//! Three phases on one gateway with `gateway.maxConnections = CAP`: nothing held (the
//! baseline); the cap held full of idle keep-alive connections (each answered one
//! request); the cap held full of slowloris connections (each sent part of a request
//! head). Each held connection is reopened as soon as the gateway closes it, as an
//! attacker would, so the cap stays full. In each phase, `GET /healthz` is sent at `RATE`
//! per second, open loop, each on a new connection (what a load balancer's probe does):
//! at the cap, every probe needs the connection idle the longest to make room. Latency
//! counts from the schedule, connect included. The gateway's own gauge
//! (`pincer_connections_open`) is sampled every 100 ms (each sample is a connection too).
//! Exits non-zero if a probe fails or the gauge ever exceeds the cap.

#[path = "common.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Connections opened at once while filling the cap (a burst of thousands overflows the
/// listen backlog, and the dropped SYNs are retried a second later).
const FILL_CONCURRENCY: usize = 64;

/// How often the gauge is read during a phase.
const GAUGE_EVERY: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    Nothing,
    Idle,
    Slowloris,
}

#[derive(Debug, Default)]
struct Phase {
    name: &'static str,
    /// The gauge before the probes.
    held: i64,
    probes: usize,
    latencies: Vec<Duration>,
    errors: BTreeMap<String, usize>,
    /// The largest gauge reading during the probes.
    gauge_max: i64,
    /// Counter deltas over the probes: (evicted, refused, header timeouts, idle timeouts).
    closed: [u64; 4],
    /// Held connections the gateway closed during the probes (each reopened).
    reopened: usize,
    /// The gateway's RSS once the cap was filled, in kB.
    rss_kb: u64,
}

fn main() {
    let bin = pincer_bin();
    let quick = quick();
    let cap = env_f64("CAP", if quick { 1024.0 } else { 4096.0 }) as usize;
    let rate = env_f64("RATE", 200.0);
    let duration = env_duration("DURATION", Duration::from_secs(if quick { 2 } else { 5 }));
    raise_own_fd_limit(cap);

    let home = TempHome::new("connections");
    home.write_config(&format!("[gateway]\nmaxConnections = {cap}\n"));
    let mut gw = Gateway::spawn(&bin, &home.0);
    gw.wait_ready(Duration::from_millis(1), Duration::from_secs(30));
    let (port, pid) = (gw.port, gw.pid());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let phases = rt.block_on(async {
        let mut phases = Vec::new();
        for (name, hold) in [
            ("nothing held", Hold::Nothing),
            ("idle keep-alive at cap", Hold::Idle),
            ("slowloris at cap", Hold::Slowloris),
        ] {
            phases.push(phase(port, pid, cap, hold, name, rate, duration).await);
        }
        phases
    });
    let rss = proc_kb(gw.pid(), "VmRSS").unwrap_or(0);
    let alive = matches!(gw.child.try_wait(), Ok(None));
    let errors_in_log = std::fs::read_to_string(home.0.join("gateway.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(" ERROR "))
        .count();
    gw.stop(Duration::from_secs(15));
    if !alive {
        eprintln!("the gateway died during the run\n{}", gw.log_tail());
    }
    report(&phases, cap, rate, duration, rss, errors_in_log);
    let failed = phases
        .iter()
        .any(|p| !p.errors.is_empty() || p.gauge_max > cap as i64);
    if failed || !alive {
        std::process::exit(1);
    }
}

/// Fills the cap as `hold` says, probes for `duration`, lets go of everything.
async fn phase(
    port: u16,
    pid: u32,
    cap: usize,
    hold: Hold,
    name: &'static str,
    rate: f64,
    duration: Duration,
) -> Phase {
    // Start from an empty gateway: the last phase's connections gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    while gauge(port).await.0 > 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let count = if hold == Hold::Nothing { 0 } else { cap };
    let (stop_holding, holding) = tokio::sync::watch::channel(false);
    let connected = Arc::new(AtomicUsize::new(0));
    let reopened = Arc::new(AtomicUsize::new(0));
    let filling = Arc::new(tokio::sync::Semaphore::new(FILL_CONCURRENCY));
    let holders: Vec<_> = (0..count)
        .map(|_| {
            tokio::spawn(holder(
                port,
                hold,
                Counts {
                    stop: holding.clone(),
                    filling: filling.clone(),
                    connected: connected.clone(),
                    reopened: reopened.clone(),
                },
            ))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while connected.load(Ordering::Relaxed) < count {
        assert!(
            Instant::now() < deadline,
            "{} of {count} connections held after 30 s",
            connected.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (held_now, before) = gauge(port).await;
    let rss_kb = proc_kb(pid, "VmRSS").unwrap_or(0);
    let reopened_before = reopened.load(Ordering::Relaxed);

    let stop = Arc::new(AtomicBool::new(false));
    let gauge_max = Arc::new(Mutex::new(held_now));
    let sampler = {
        let (stop, gauge_max) = (stop.clone(), gauge_max.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (open, _) = gauge(port).await;
                {
                    let mut max = gauge_max.lock();
                    *max = (*max).max(open);
                }
                tokio::time::sleep(GAUGE_EVERY).await;
            }
        })
    };

    let n = (rate * duration.as_secs_f64()).round() as usize;
    let results = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let start = tokio::time::Instant::now() + Duration::from_millis(20);
    let mut tasks = Vec::with_capacity(n);
    open_loop(start, rate, n, |_, due| {
        let results = results.clone();
        tasks.push(tokio::spawn(async move {
            let outcome =
                tokio::time::timeout(Duration::from_secs(5), get_close(port, "/healthz")).await;
            let outcome = match outcome {
                Ok(Ok((200, _))) => Ok(due.elapsed()),
                Ok(Ok((status, _))) => Err(format!("status {status}")),
                Ok(Err(e)) => Err(format!("{:?}", e.kind())),
                Err(_) => Err("timeout (5 s)".to_string()),
            };
            results.lock().push(outcome);
        }));
    })
    .await;
    for task in tasks {
        let _ = task.await;
    }
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.await;
    let (_, after) = gauge(port).await;
    let reopened = reopened.load(Ordering::Relaxed) - reopened_before;
    let _ = stop_holding.send(true);
    for holder in holders {
        let _ = holder.await;
    }

    let mut out = Phase {
        name,
        held: held_now,
        probes: n,
        gauge_max: *gauge_max.lock(),
        reopened,
        rss_kb,
        ..Phase::default()
    };
    for (i, (b, a)) in before.iter().zip(after.iter()).enumerate() {
        out.closed[i] = a.saturating_sub(*b);
    }
    for outcome in results.lock().drain(..) {
        match outcome {
            Ok(latency) => out.latencies.push(latency),
            Err(e) => *out.errors.entry(e).or_default() += 1,
        }
    }
    out
}

/// Holds a connection as `hold` says, reopening it whenever the gateway closes it, until
/// `stop` turns true.
async fn holder(port: u16, hold: Hold, mut counts: Counts) {
    let mut first = true;
    while !*counts.stop.borrow() {
        let permit = match first {
            true => counts.filling.clone().acquire_owned().await.ok(),
            false => None,
        };
        let opened = open_held(port, hold).await;
        drop(permit);
        let Some(mut stream) = opened else {
            // Turned away or reset while the cap churns: again, shortly.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if !first {
            counts.reopened.fetch_add(1, Ordering::Relaxed);
        }
        first = false;
        counts.connected.fetch_add(1, Ordering::Relaxed);
        tokio::select! {
            () = wait_closed(&mut stream) => {}
            _ = counts.stop.changed() => {}
        }
        counts.connected.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What the holders of a phase share.
struct Counts {
    /// Turns true at the end of the phase.
    stop: tokio::sync::watch::Receiver<bool>,
    /// Bounds the first opens.
    filling: Arc<tokio::sync::Semaphore>,
    /// Held connections open now.
    connected: Arc<AtomicUsize>,
    /// Held connections opened again after the gateway closed them.
    reopened: Arc<AtomicUsize>,
}

/// A connection held open: one answered request (idle) or part of a head (slowloris).
async fn open_held(port: u16, hold: Hold) -> Option<TcpStream> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    match hold {
        Hold::Idle => {
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                .await
                .ok()?;
            read_response(&mut stream).await.ok()?;
        }
        Hold::Slowloris => {
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                .await
                .ok()?;
        }
        Hold::Nothing => {}
    }
    Some(stream)
}

/// `GET path` on a new connection with `Connection: close`: (status, body).
async fn get_close(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream.set_nodelay(true)?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    read_response(&mut stream).await
}

/// Reads one response with a `content-length` body: (status, body).
async fn read_response(stream: &mut TcpStream) -> std::io::Result<(u16, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
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
        .ok_or_else(|| std::io::Error::other("no status line"))?;
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
    Ok((
        status,
        String::from_utf8_lossy(&buf[head_end..head_end + length]).to_string(),
    ))
}

/// Until the gateway closes `stream`.
async fn wait_closed(stream: &mut TcpStream) {
    let mut chunk = [0u8; 1024];
    while let Ok(n) = stream.read(&mut chunk).await {
        if n == 0 {
            return;
        }
    }
}

/// `pincer_connections_open` (this reading's own connection included) and the closed
/// counters (evicted, refused, header timeouts, idle timeouts); zeros when unreadable.
async fn gauge(port: u16) -> (i64, [u64; 4]) {
    let Ok(Ok((200, text))) =
        tokio::time::timeout(Duration::from_secs(5), get_close(port, "/metrics")).await
    else {
        return (0, [0; 4]);
    };
    let value = |prefix: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|v| v.trim().parse().ok())
    };
    let closed = |reason: &str| {
        value(&format!(
            "pincer_connections_closed_total{{reason=\"{reason}\"}} "
        ))
        .unwrap_or(0.0) as u64
    };
    (
        value("pincer_connections_open ").unwrap_or(0.0) as i64,
        [
            closed("evicted"),
            closed("refused"),
            closed("header_timeout"),
            closed("idle_timeout"),
        ],
    )
}

fn report(
    phases: &[Phase],
    cap: usize,
    rate: f64,
    duration: Duration,
    rss_kb: u64,
    errors_in_log: usize,
) {
    println!();
    println!(
        "gateway_connections  cap {cap}; /healthz on a new connection each, {rate:.0}/s for {:.1} s a phase, open loop",
        duration.as_secs_f64()
    );
    println!(
        "{:<24} {:>6} {:>7} {:>7} {:>10} {:>10} {:>10} {:>10} {:>10} {:>9} {:>8} {:>8} {:>9} {:>8} {:>9}",
        "phase",
        "held",
        "probes",
        "errors",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "max",
        "gauge max",
        "evicted",
        "refused",
        "hdr t/o",
        "reopened",
        "RSS"
    );
    let mut errors = BTreeMap::new();
    for phase in phases {
        let mut latencies = phase.latencies.clone();
        let s = Summary::of(&mut latencies);
        let p = s.points();
        println!(
            "{:<24} {:>6} {:>7} {:>7} {:>10} {:>10} {:>10} {:>10} {:>10} {:>9} {:>8} {:>8} {:>9} {:>8} {:>9}",
            phase.name,
            phase.held,
            phase.probes,
            phase.probes - s.n,
            ms(p[0].1),
            ms(p[1].1),
            ms(p[2].1),
            ms(p[3].1),
            ms(p[4].1),
            phase.gauge_max,
            phase.closed[0],
            phase.closed[1],
            phase.closed[2],
            phase.reopened,
            format!("{:.1} MB", phase.rss_kb as f64 / 1024.0)
        );
        for (e, n) in &phase.errors {
            *errors.entry(format!("{}: {e}", phase.name)).or_default() += n;
        }
    }
    let over = phases.iter().map(|p| p.gauge_max).max().unwrap_or(0);
    println!(
        "held: the gateway's gauge once the cap was filled (its reading counts itself); gauge max: largest reading during the probes (goal <= {cap}: {}); evicted, refused, hdr t/o: the gateway's counts during the probes; reopened: held connections it closed, opened again; RSS: the gateway's once the cap was filled",
        verdict(over <= cap as i64)
    );
    println!(
        "gateway RSS after the run {:.1} MB; ERROR lines in its log: {errors_in_log}",
        rss_kb as f64 / 1024.0
    );
    println!("errors: {}", count_line(&errors));
}
