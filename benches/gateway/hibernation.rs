//! A million conversations on a small box (issue 21): what sessions cost live, at rest in
//! the store, and to wake, on the real `pincer` binary.
//!
//! ```sh
//! cargo build --release --bin pincer
//! cargo bench --bench gateway_hibernation            # 1,000,000 rows, 10,000 live
//! BENCH_QUICK=1 cargo bench --bench gateway_hibernation   # 100,000 rows, 2,000 live
//! PHASES=live,wake cargo bench --bench gateway_hibernation  # some phases only
//! ```
//!
//! The store is seeded directly (one SQLite transaction of `ROWS` hibernated session rows
//! of the HTTP account, as a gateway leaves them), not by sending a million messages.
//!
//! 1. **Start**: spawn to `/readyz` 200 (polled every 1 ms), 5 runs each, on an empty
//!    store and on the seeded one (goal < 100 ms: nothing loads the rows at start).
//! 2. **Hibernated RSS**: `VmRSS` 2 s after ready (after the keeper counted the rows) on
//!    an empty store, with 100,000 seeded rows and with `ROWS` (goal: 100k < 10 MB above
//!    empty). Then 100,000 (quick: 20,000) sessions made by real chats with
//!    `hibernateAfter = "2s"`, all hibernated: RSS then, against the same gateway before;
//!    then as many new ones again: what a second round adds shows whether hibernated
//!    sessions leave anything behind (the first round's peak stays with the allocator).
//! 3. **Live RSS and idle CPU**: on the seeded store, `LIVE` sessions made live by one
//!    chat each (`hibernateAfter = "1h"`): RSS before and after, the difference per
//!    session (goal <= 8 KB), and the gateway's CPU time over 10 s idle with them (from
//!    10 s after the burst), against an empty gateway's over 10 s (goal: within noise).
//! 4. **Wake latency**: `WAKE` sessions (a chat each) left to hibernate
//!    (`hibernateAfter = "1s"`), then one chat each, one at a time: that chat wakes its
//!    session; a second chat right after goes to it live. p50/p99 of both and the
//!    difference (goal: waking adds < 5 ms p99). The machine is shared: latency figures
//!    are noisy, RSS ones are not.

#[path = "common.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

const GOAL_START: Duration = Duration::from_millis(100);
const GOAL_HIBERNATED_KB: u64 = 10 * 1024;
const GOAL_LIVE_BYTES: f64 = 8.0 * 1024.0;
const GOAL_WAKE_P99: Duration = Duration::from_millis(5);

fn main() {
    let bin = pincer_bin();
    let quick = quick();
    let rows: usize = if quick { 100_000 } else { 1_000_000 };
    let live: usize = if quick { 2_000 } else { 10_000 };
    let made: usize = if quick { 20_000 } else { 100_000 };
    let wake: usize = if quick { 300 } else { 2_000 };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let phases = std::env::var("PHASES").unwrap_or_default();
    let run = |phase: &str| phases.is_empty() || phases.split(',').any(|p| p == phase);
    println!(
        "gateway_hibernation: {rows} seeded rows, {live} live, {made} hibernated by chats, {wake} woken"
    );

    if !run("start") && !run("rest") {
        return later(&rt, &bin, &run, made, live, wake, rows);
    }
    // 1. Start.
    let empty = TempHome::new("hib-empty");
    let seeded = TempHome::new("hib-seeded");
    let hundred_k = TempHome::new("hib-100k");
    for home in [&empty, &seeded, &hundred_k] {
        first_start(&bin, &home.0);
    }
    let started = Instant::now();
    seed(&seeded.0, rows);
    println!(
        "seeded {rows} rows in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    seed(&hundred_k.0, 100_000);
    for (name, home) in [("empty store", &empty), ("seeded store", &seeded)] {
        let mut times = Vec::new();
        for _ in 0..5 {
            let mut gw = Gateway::spawn(&bin, &home.0);
            times.push(gw.wait_ready(Duration::from_millis(1), Duration::from_secs(30)));
            gw.stop(Duration::from_secs(15));
        }
        let s = Summary::of(&mut times);
        println!(
            "start to ready, {name}: min {} p50 {} max {} ({})",
            ms(s.min),
            ms(s.p50),
            ms(s.max),
            verdict(s.max < GOAL_START)
        );
    }

    // 2. Hibernated RSS.
    let idle_rss = |home: &Path, config: &str| {
        std::fs::write(home.join("pincer.toml"), config).expect("config");
        let mut gw = Gateway::spawn(&bin, home);
        gw.wait_ready(Duration::from_millis(5), Duration::from_secs(30));
        std::thread::sleep(Duration::from_secs(2));
        let kb = proc_kb(gw.pid(), "VmRSS").unwrap_or(0);
        gw.stop(Duration::from_secs(15));
        kb
    };
    let base = idle_rss(&empty.0, "");
    let at_100k = idle_rss(&hundred_k.0, "");
    let at_rows = idle_rss(&seeded.0, "");
    println!(
        "idle RSS: empty {:.1} MB; 100,000 hibernated {:.1} MB ({:+.1} MB, {}); {rows} hibernated {:.1} MB ({:+.1} MB)",
        mb(base),
        mb(at_100k),
        mb(at_100k) - mb(base),
        verdict(at_100k.saturating_sub(base) < GOAL_HIBERNATED_KB),
        mb(at_rows),
        mb(at_rows) - mb(base),
    );
    later(&rt, &bin, &run, made, live, wake, rows);
}

/// Phases 2b to 4, each on gateways of its own.
fn later(
    rt: &tokio::runtime::Runtime,
    bin: &Path,
    run: &dyn Fn(&str) -> bool,
    made: usize,
    live: usize,
    wake: usize,
    rows: usize,
) {
    if run("chats") {
        rt.block_on(hibernated_by_chats(bin, made));
    }
    // 3. Live RSS and idle CPU, on a store of `rows` hibernated sessions.
    if run("live") {
        let (empty, seeded) = (TempHome::new("hib-empty"), TempHome::new("hib-seeded"));
        first_start(bin, &empty.0);
        first_start(bin, &seeded.0);
        seed(&seeded.0, rows);
        rt.block_on(live_sessions(bin, &seeded.0, &empty.0, live, rows));
    }
    // 4. Wake latency.
    if run("wake") {
        rt.block_on(wake_latency(bin, wake));
    }
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// Starts and stops a gateway once, so the store exists with its schema.
fn first_start(bin: &Path, home: &Path) {
    let mut gw = Gateway::spawn(bin, home);
    gw.wait_ready(Duration::from_millis(5), Duration::from_secs(30));
    gw.stop(Duration::from_secs(15));
}

/// `n` hibernated sessions of the HTTP account, written as a gateway leaves them (one
/// transaction), ending in a week.
fn seed(home: &Path, n: usize) {
    let mut db = rusqlite::Connection::open(home.join("pincer.db")).expect("open store");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let idle = 7 * 24 * 3600 * 1000i64;
    let tx = db.transaction().expect("transaction");
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO sessions (key, agent, channel, account, created_at, last_active,
                     idle_ms, max_age_ms, context_from, turns, summary_seq, state, expires_at)
                 VALUES (?1, 'main', 'http', 'http', ?2, ?2, ?3, 0, 1, 1, 0, 'hibernated', ?4)",
            )
            .expect("prepare");
        for i in 0..n {
            // Spread over the last day, as real users are.
            let at = now - (i as i64 % 86_400_000);
            insert
                .execute(rusqlite::params![
                    session_key(&format!("seed{i:07}")),
                    at,
                    idle,
                    at + idle
                ])
                .expect("insert");
        }
    }
    tx.commit().expect("commit");
}

/// The gateway's count of hibernated sessions (`/admin/sessions`).
async fn hibernated(client: &reqwest::Client, gw: &Gateway) -> u64 {
    let page: serde_json::Value = client
        .get(format!("{}/admin/sessions?limit=1", gw.base()))
        .bearer_auth(gw.token())
        .send()
        .await
        .expect("sessions")
        .json()
        .await
        .expect("json");
    page["hibernated"].as_u64().unwrap_or(0)
}

/// One chat each from `users`, 64 at a time.
async fn chats(client: &reqwest::Client, gw: &Gateway, users: impl Iterator<Item = String>) {
    use futures::StreamExt;
    let token = gw.token();
    futures::stream::iter(users)
        .for_each_concurrent(64, |user| {
            let (client, token, base) = (client.clone(), token.clone(), gw.base());
            async move {
                let response = client
                    .post(format!("{base}/v1/chat/completions"))
                    .bearer_auth(token)
                    .json(&chat_body(&user, "hello"))
                    .send()
                    .await
                    .expect("chat");
                assert_eq!(response.status(), 200);
                let _ = response.bytes().await;
            }
        })
        .await;
}

/// Sessions made live by chats, then hibernated: RSS before, with them live, after.
async fn hibernated_by_chats(bin: &Path, n: usize) {
    let home = TempHome::new("hib-chats");
    home.write_config("[sessions]\nhibernateAfter = \"2s\"\n");
    let mut gw = Gateway::spawn(bin, &home.0);
    gw.wait_ready(Duration::from_millis(5), Duration::from_secs(30));
    let client = load_client(Duration::from_secs(60));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = proc_kb(gw.pid(), "VmRSS").unwrap_or(0);
    let started = Instant::now();
    chats(&client, &gw, (0..n).map(|i| format!("chat{i:06}"))).await;
    let took = started.elapsed();
    let peak = proc_kb(gw.pid(), "VmHWM").unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(120);
    while hibernated(&client, &gw).await < n as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let count = hibernated(&client, &gw).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = proc_kb(gw.pid(), "VmRSS").unwrap_or(0);
    println!(
        "{n} sessions by chats in {:.1} s, then {count} hibernated: RSS before {:.1} MB, peak {:.1} MB, all hibernated {:.1} MB ({:+.1} MB; the allocator keeps some of the peak)",
        took.as_secs_f64(),
        mb(before),
        mb(peak),
        mb(after),
        mb(after) - mb(before),
    );
    // A second round of as many new sessions: freed memory is reused if nothing stayed.
    chats(&client, &gw, (0..n).map(|i| format!("again{i:06}"))).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while hibernated(&client, &gw).await < 2 * n as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let again = proc_kb(gw.pid(), "VmRSS").unwrap_or(0);
    println!(
        "then {n} more, all hibernated ({} in all): RSS {:.1} MB ({:+.1} MB for the second round)",
        hibernated(&client, &gw).await,
        mb(again),
        mb(again) - mb(after),
    );
    gw.stop(Duration::from_secs(15));
}

/// `n` live sessions on the seeded store: RSS per session and idle CPU.
async fn live_sessions(bin: &Path, seeded: &Path, empty: &Path, n: usize, rows: usize) {
    let config = "[sessions]\nhibernateAfter = \"1h\"\n";
    std::fs::write(empty.join("pincer.toml"), config).expect("config");
    let mut quiet = Gateway::spawn(bin, empty);
    quiet.wait_ready(Duration::from_millis(5), Duration::from_secs(30));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu = cpu_time(quiet.pid());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let quiet_cpu = cpu_time(quiet.pid()) - cpu;
    quiet.stop(Duration::from_secs(15));

    std::fs::write(seeded.join("pincer.toml"), config).expect("config");
    let mut gw = Gateway::spawn(bin, seeded);
    gw.wait_ready(Duration::from_millis(5), Duration::from_secs(30));
    let client = load_client(Duration::from_secs(60));
    // Warm: the first chats build what every session shares (the account's context,
    // the agent's turn supervisor, connection buffers).
    chats(&client, &gw, (0..200).map(|i| format!("warm{i}"))).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = proc_kb(gw.pid(), "VmRSS").unwrap_or(0);
    chats(&client, &gw, (0..n).map(|i| format!("live{i:06}"))).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = proc_kb(gw.pid(), "VmRSS").unwrap_or(0);
    let per = (after.saturating_sub(before) * 1024) as f64 / n as f64;
    // Idle once the store has folded its log back after the burst (10 s).
    tokio::time::sleep(Duration::from_secs(10)).await;
    let cpu = cpu_time(gw.pid());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle_cpu = cpu_time(gw.pid()) - cpu;
    println!(
        "{n} live sessions with {rows} rows in the store: RSS {:.1} MB (before them {:.1} MB): {:.0} B a live session ({}); idle CPU over 10 s {} (empty gateway {})",
        mb(after),
        mb(before),
        per,
        verdict(per <= GOAL_LIVE_BYTES),
        ms(idle_cpu),
        ms(quiet_cpu),
    );
    gw.stop(Duration::from_secs(15));
}

/// Chats that wake a hibernated session against chats to a live one.
async fn wake_latency(bin: &Path, n: usize) {
    let home = TempHome::new("hib-wake");
    home.write_config("[sessions]\nhibernateAfter = \"1s\"\n");
    let mut gw = Gateway::spawn(bin, &home.0);
    gw.wait_ready(Duration::from_millis(5), Duration::from_secs(30));
    let client = load_client(Duration::from_secs(60));
    chats(&client, &gw, (0..n).map(|i| format!("wake{i:05}"))).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while hibernated(&client, &gw).await < n as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (mut woken, mut warm) = (Vec::new(), Vec::new());
    for i in 0..n {
        let user = format!("wake{i:05}");
        woken.push(timed_chat(&client, &gw, &user, "again").await);
        warm.push(timed_chat(&client, &gw, &user, "and again").await);
    }
    let slow = |s: &[Duration]| {
        s.iter()
            .filter(|d| **d > Duration::from_millis(100))
            .count()
    };
    let (slow_woken, slow_warm) = (slow(&woken), slow(&warm));
    let (w, l) = (Summary::of(&mut woken), Summary::of(&mut warm));
    println!(
        "wake: {n} chats to hibernated sessions p50 {} p99 {} max {} ({slow_woken} over 100 ms); to live ones p50 {} p99 {} max {} ({slow_warm} over 100 ms); waking adds {} at p50, {} at p99 ({}; latency on a shared machine is noisy)",
        ms(w.p50),
        ms(w.p99),
        ms(w.max),
        ms(l.p50),
        ms(l.p99),
        ms(l.max),
        ms_diff(w.p50, l.p50),
        ms_diff(w.p99, l.p99),
        verdict(w.p99.saturating_sub(l.p99) < GOAL_WAKE_P99),
    );
    gw.stop(Duration::from_secs(15));
}
