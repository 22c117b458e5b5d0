//! Start-up time and idle memory of the real `pincer` binary.
//!
//! ```sh
//! cargo build --release --bin pincer
//! cargo bench --bench gateway_start            # 20 runs of each kind
//! BENCH_QUICK=1 cargo bench --bench gateway_start   # 5 runs of each kind
//! ```
//!
//! - start: time from spawning `pincer gateway` to the first `GET /readyz` 200 (polled
//!   every 1 ms on a new connection), min/p50/p99/max over the runs (goal < 50 ms); once
//!   with a new, empty `PINCER_HOME` each run (first start: creates the store), once
//!   restarting on the same home.
//! - idle RSS (`VmRSS` of `/proc/<pid>/status`) 2 s after ready with the default config,
//!   then 2 s after 100 chat completions (goal < 10 MB).

#[path = "common.rs"]
mod common;

use std::time::Duration;

use common::*;

const GOAL_START: Duration = Duration::from_millis(50);
const GOAL_RSS_KB: u64 = 10 * 1024;

/// "anon X MB, file Y MB, N threads" from `/proc/<pid>/status`.
fn rss_parts(pid: u32) -> String {
    let mb = |f| proc_kb(pid, f).unwrap_or(0) as f64 / 1024.0;
    format!(
        "anon {:.1} MB + file {:.1} MB, {} threads",
        mb("RssAnon"),
        mb("RssFile"),
        proc_kb(pid, "Threads").unwrap_or(0)
    )
}

fn main() {
    let bin = pincer_bin();
    let runs = if quick() { 5 } else { 20 };
    let poll = Duration::from_millis(1);
    let limit = Duration::from_secs(30);

    // First start: a new home each run.
    let mut cold = Vec::new();
    for _ in 0..runs {
        let home = TempHome::new("start");
        let mut gw = Gateway::spawn(&bin, &home.0);
        cold.push(gw.wait_ready(poll, limit));
        gw.stop(Duration::from_secs(15));
    }

    // Restart on one home (store exists).
    let home = TempHome::new("start");
    let mut warm = Vec::new();
    let mut clean_stops = 0;
    for _ in 0..runs {
        let mut gw = Gateway::spawn(&bin, &home.0);
        warm.push(gw.wait_ready(poll, limit));
        clean_stops += usize::from(gw.stop(Duration::from_secs(15)));
    }

    // Idle memory: default config, then after 100 chat completions.
    let mut gw = Gateway::spawn(&bin, &home.0);
    gw.wait_ready(poll, limit);
    std::thread::sleep(Duration::from_secs(2));
    let rss_idle = proc_kb(gw.pid(), "VmRSS").unwrap_or(0);
    let parts_idle = rss_parts(gw.pid());
    let token = gw.token();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let failed = rt.block_on(async {
        let client = load_client(Duration::from_secs(30));
        let mut failed = 0;
        for i in 0..100 {
            let user = format!("start-u{}", i % 10);
            let content = format!("msg {i}");
            let reply = client
                .post(format!("{}/v1/chat/completions", gw.base()))
                .bearer_auth(&token)
                .json(&chat_body(&user, &content))
                .send()
                .await;
            let ok = match reply {
                Ok(r) if r.status().is_success() => {
                    let v: serde_json::Value = r.json().await.unwrap_or_default();
                    v.pointer("/choices/0/message/content")
                        .and_then(|c| c.as_str())
                        == Some(&format!("echo: {content}"))
                }
                _ => false,
            };
            failed += usize::from(!ok);
        }
        failed
    });
    std::thread::sleep(Duration::from_secs(2));
    let rss_after = proc_kb(gw.pid(), "VmRSS").unwrap_or(0);
    let parts_after = rss_parts(gw.pid());
    let hwm = proc_kb(gw.pid(), "VmHWM").unwrap_or(0);
    gw.stop(Duration::from_secs(15));

    let c = Summary::of(&mut cold);
    let w = Summary::of(&mut warm);
    println!();
    println!("gateway_start  ({runs} runs each, /readyz polled every 1 ms)");
    println!(
        "{:<34} {:>9} {:>9} {:>9} {:>9}   goal < 50 ms",
        "spawn -> /readyz 200", "min", "p50", "p99", "max"
    );
    for (label, s) in [
        ("first start (new home)", c),
        ("restart (existing home)", w),
    ] {
        println!(
            "{label:<34} {:>9} {:>9} {:>9} {:>9}   {}",
            ms(s.min),
            ms(s.p50),
            ms(s.p99),
            ms(s.max),
            verdict(s.p99 < GOAL_START)
        );
    }
    println!("clean SIGTERM stops: {clean_stops}/{runs}");
    println!("{:<34} {:>9}   goal < 10 MB", "idle RSS (VmRSS)", "");
    println!(
        "{:<34} {:>7.1} MB   {}   ({parts_idle})",
        "  2 s after ready",
        rss_idle as f64 / 1024.0,
        verdict(rss_idle < GOAL_RSS_KB)
    );
    println!(
        "{:<34} {:>7.1} MB   {}   ({parts_after}; peak VmHWM {:.1} MB)",
        "  2 s after 100 chat completions",
        rss_after as f64 / 1024.0,
        verdict(rss_after < GOAL_RSS_KB),
        hwm as f64 / 1024.0
    );
    println!("chat completions: {failed} of 100 wrong or failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
