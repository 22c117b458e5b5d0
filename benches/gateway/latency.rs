//! Request latency of the real `pincer` binary under open-loop load.
//!
//! ```sh
//! cargo build --release --bin pincer
//! cargo bench --bench gateway_latency                  # 1,000 req/s for 20 s
//! RATE=500 DURATION=60s cargo bench --bench gateway_latency
//! BENCH_QUICK=1 cargo bench --bench gateway_latency    # 3 s
//! ```
//!
//! Non-streaming chat completions to the `echo` model (zero chunk delay) at `RATE` per
//! second, each with its own `Idempotency-Key` and a `user` from a pool of 200 sessions,
//! interleaved with `GET /healthz` at the same rate (the baseline: same client, same
//! connections, no turn), and `GET /readyz` sampled at 50/s. The load is open loop: each
//! request's send time is fixed by the schedule and its latency counts from that time,
//! so a stall delays the requests behind it and shows in the figures (no coordinated
//! omission). Before the measured window each session gets one request (not counted).
//! Exits non-zero if a reply is wrong.

#[path = "common.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use tokio::sync::mpsc;

const SESSIONS: usize = 200;
const READYZ_RATE: f64 = 50.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Chat,
    Healthz,
    Readyz,
}

#[derive(Debug)]
struct Sample {
    kind: Kind,
    latency: Duration,
    /// `None` when good; else what went wrong.
    error: Option<String>,
    done: Instant,
}

fn main() {
    let bin = pincer_bin();
    let rate = env_f64("RATE", 1000.0);
    let default_duration = Duration::from_secs(if quick() { 3 } else { 20 });
    let duration = env_duration("DURATION", default_duration);

    let home = TempHome::new("latency");
    home.write_config("[providers.echo]\nchunkSize = 16\nchunkDelayMs = 0\n");
    let mut gw = Gateway::spawn(&bin, &home.0);
    gw.wait_ready(Duration::from_millis(1), Duration::from_secs(30));
    let token: Arc<str> = gw.token().into();
    let base = gw.base();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (samples, lag) = rt.block_on(run(base, token, rate, duration));
    let rss = proc_kb(gw.pid(), "VmRSS").unwrap_or(0);
    let alive = matches!(gw.child.try_wait(), Ok(None));
    gw.stop(Duration::from_secs(15));
    if !alive {
        eprintln!("the gateway died during the run\n{}", gw.log_tail());
    }
    report(&samples, lag, rate, duration, rss);
}

async fn run(
    base: String,
    token: Arc<str>,
    rate: f64,
    duration: Duration,
) -> (Vec<Sample>, Duration) {
    let client = load_client(Duration::from_secs(30));
    let chat_url: Arc<str> = format!("{base}/v1/chat/completions").into();

    // Warm-up: one request per session, 20 at a time.
    let warm = futures::stream::iter(0..SESSIONS).for_each_concurrent(20, |s| {
        let (client, url, token) = (client.clone(), chat_url.clone(), token.clone());
        async move {
            let body = chat_body(&format!("bench-u{s}"), "warm-up");
            chat_attempt(&client, &url, &token, &format!("warm-{s}"), &body).await;
        }
    });
    warm.await;

    let (tx, mut rx) = mpsc::unbounded_channel::<Sample>();
    let n = (rate * duration.as_secs_f64()).round() as usize;
    let start = tokio::time::Instant::now() + Duration::from_millis(20);

    // Readiness sampler, its own schedule.
    let readyz = {
        let (client, tx) = (client.clone(), tx.clone());
        let url: Arc<str> = format!("{base}/readyz").into();
        let samples = (READYZ_RATE * duration.as_secs_f64()).round() as usize;
        tokio::spawn(open_loop(start, READYZ_RATE, samples, move |_, due| {
            let (client, tx, url) = (client.clone(), tx.clone(), url.clone());
            tokio::spawn(async move {
                let (result, latency) = probe(&client, &url, due).await;
                let error = match result {
                    Ok(200) => None,
                    Ok(s) => Some(format!("status {s}")),
                    Err(e) => Some(e),
                };
                let _ = tx.send(Sample {
                    kind: Kind::Readyz,
                    latency,
                    error,
                    done: Instant::now(),
                });
            });
        }))
    };

    // Chat and healthz, interleaved: event 2i is chat i, event 2i+1 is healthz i.
    let health_url: Arc<str> = format!("{base}/healthz").into();
    let mut max_lag = Duration::ZERO;
    let lag = &mut max_lag;
    open_loop(start, rate * 2.0, n * 2, |event, due| {
        *lag = (*lag).max(due.elapsed());
        let (client, tx) = (client.clone(), tx.clone());
        let i = event / 2;
        if event % 2 == 1 {
            let url = health_url.clone();
            tokio::spawn(async move {
                let (result, latency) = probe(&client, &url, due).await;
                let error = match result {
                    Ok(200) => None,
                    Ok(s) => Some(format!("status {s}")),
                    Err(e) => Some(e),
                };
                let _ = tx.send(Sample {
                    kind: Kind::Healthz,
                    latency,
                    error,
                    done: Instant::now(),
                });
            });
            return;
        }
        let (url, token) = (chat_url.clone(), token.clone());
        tokio::spawn(async move {
            let content = format!("msg {i}");
            let body = chat_body(&format!("bench-u{}", i % SESSIONS), &content);
            let attempt = chat_attempt(&client, &url, &token, &format!("lat-{i}"), &body).await;
            let latency = due.elapsed();
            let error = match attempt {
                Attempt::Ok { content: got, .. } if got == format!("echo: {content}") => None,
                Attempt::Ok { .. } => Some("WRONG reply".to_string()),
                Attempt::Status(s, code) => Some(format!("status {s} {code}")),
                Attempt::Transport(e) => Some(e),
            };
            let _ = tx.send(Sample {
                kind: Kind::Chat,
                latency,
                error,
                done: Instant::now(),
            });
        });
    })
    .await;
    let _ = readyz.await;
    drop(tx);
    let mut samples = Vec::with_capacity(n * 2);
    while let Some(s) = rx.recv().await {
        samples.push(s);
    }
    (samples, max_lag)
}

fn report(samples: &[Sample], lag: Duration, rate: f64, duration: Duration, rss_kb: u64) {
    let first_due = samples.iter().map(|s| s.done - s.latency).min();
    println!();
    println!(
        "gateway_latency  offered {rate:.0} chat/s + {rate:.0} healthz/s (interleaved) + {READYZ_RATE:.0} readyz/s for {:.1} s, {SESSIONS} sessions, echo model, open loop",
        duration.as_secs_f64()
    );
    println!(
        "{:<22} {:>7} {:>7} {:>10} {:>10} {:>10} {:>10} {:>10} {:>11}",
        "latency from schedule", "sent", "errors", "p50", "p90", "p99", "p99.9", "max", "done/s"
    );
    let mut summaries = BTreeMap::new();
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for kind in [Kind::Chat, Kind::Healthz, Kind::Readyz] {
        let of_kind: Vec<&Sample> = samples.iter().filter(|s| s.kind == kind).collect();
        let mut ok: Vec<Duration> = of_kind
            .iter()
            .filter(|s| s.error.is_none())
            .map(|s| s.latency)
            .collect();
        for s in of_kind.iter().filter_map(|s| s.error.as_ref()) {
            *errors.entry(format!("{kind:?} {s}")).or_default() += 1;
        }
        let last_done = of_kind.iter().map(|s| s.done).max();
        let throughput = match (first_due, last_done) {
            (Some(a), Some(b)) if b > a => ok.len() as f64 / (b - a).as_secs_f64(),
            _ => 0.0,
        };
        let s = Summary::of(&mut ok);
        let p = s.points();
        println!(
            "{:<22} {:>7} {:>7} {:>10} {:>10} {:>10} {:>10} {:>10} {:>11.1}",
            format!("{kind:?}").to_lowercase(),
            of_kind.len(),
            of_kind.len() - s.n,
            ms(p[0].1),
            ms(p[1].1),
            ms(p[2].1),
            ms(p[3].1),
            ms(p[4].1),
            throughput
        );
        summaries.insert(kind, s);
    }
    let (chat, health, ready) = (
        summaries[&Kind::Chat],
        summaries[&Kind::Healthz],
        summaries[&Kind::Readyz],
    );
    let added: Vec<String> = chat
        .points()
        .iter()
        .zip(health.points())
        .map(|((_, c), (_, h))| ms_diff(*c, h))
        .collect();
    println!(
        "{:<22} {:>7} {:>7} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "added (chat - healthz)", "", "", added[0], added[1], added[2], added[3], added[4]
    );
    println!(
        "readiness p99 {} (goal < 10 ms: {}); generator: latest send {} behind schedule; gateway RSS after load {:.1} MB",
        ms(ready.p99),
        verdict(ready.n > 0 && ready.p99 < Duration::from_millis(10)),
        ms(lag),
        rss_kb as f64 / 1024.0
    );
    println!("errors: {}", count_line(&errors));
    if errors.keys().any(|k| k.contains("WRONG")) {
        std::process::exit(1);
    }
}
