//! Retention beside live traffic: rows per batch, time per batch, and whether the writes a
//! message waits on slow down while a pass runs.
//!
//! ```sh
//! cargo bench -p pincer-store --bench prune
//! BENCH_QUICK=1 cargo bench -p pincer-store --bench prune   # 2 s phases, fewer rows
//! ```
//!
//! A store seeded with old records (delivered inbox rows answered 30 days ago, with
//! payloads of a real message's size, and the transcripts of sessions that ended 30 days
//! ago) takes live traffic at `RATE` messages a second (default 1,000), open loop: each
//! message is accepted, then its turn committed (session row and two entries), then marked
//! delivered, as the gateway does; its latency runs from its scheduled time to the end of
//! its commit. Three phases of equal length: no pruning; a retention pass running (7-day
//! retention for both, batches of 500 paced as the `store` actor paces them), which then
//! finishes alone; no pruning again. Live latency with and without the pass is the figure
//! that matters; the pass's batches (rows, the writer's time) are printed beside it, those
//! that ran beside live traffic apart from those that ran alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pincer_core::{Inbound, PeerRef, Role, TranscriptEntry, now_ms};
use pincer_store::{CommitTurn, PrunePass, SessionRow, Store, prune_pause};
use rusqlite::params;
use tokio::sync::Mutex;

const DAY_MS: u64 = 86_400_000;
const WEEK: Option<Duration> = Some(Duration::from_secs(7 * 86_400));

fn quick() -> bool {
    std::env::var_os("BENCH_QUICK").is_some()
}

fn main() {
    let rate: f64 = std::env::var("RATE")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1000.0);
    let phase = Duration::from_secs(if quick() { 2 } else { 5 });
    // Enough for the pass to outlast the middle phase (about 2,500 rows a second).
    let (inbox_rows, sessions, entries) = if quick() {
        (10_000, 100, 50)
    } else {
        (30_000, 200, 50)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let dir = std::env::temp_dir().join(format!("pincer-prune-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let db = dir.join("pincer.db");
        let store = Store::new(&db);
        let _writer = store.start_writer().expect("writer");
        let started = Instant::now();
        seed(&store, inbox_rows, sessions, entries).await;
        println!(
            "store_prune  seeded {inbox_rows} delivered inbox rows and {sessions} ended sessions \
             x {entries} entries, all 30 days old, in {:.1} s; live load {rate} msg/s open loop, \
             phases of {} s",
            started.elapsed().as_secs_f64(),
            phase.as_secs()
        );
        println!(
            "{:<22} {:>7} {:>9} {:>9} {:>9} {:>9}",
            "phase", "msgs", "p50", "p99", "p99.9", "max"
        );
        let before = live(&store, rate, phase, "a").await;
        print_live("no pruning", &before);

        let batches = Arc::new(Mutex::new(Vec::new()));
        let pass = tokio::spawn(run_pass(store.clone(), batches.clone()));
        let during = live(&store, rate, phase, "b").await;
        print_live("pass running", &during);
        let live_ended = Instant::now();
        let (totals, elapsed) = pass.await.expect("pass");
        let after = live(&store, rate, phase, "c").await;
        print_live("no pruning (again)", &after);

        let batches = batches.lock().await.clone();
        println!(
            "pass: {} batches in {:.1} s, removed {} inbox rows and {} transcript entries",
            batches.len(),
            elapsed.as_secs_f64(),
            totals.inbox,
            totals.transcript,
        );
        let (beside, alone): (Vec<_>, Vec<_>) =
            batches.iter().partition(|(at, _, _)| *at < live_ended);
        print_batches("beside live traffic", &beside);
        print_batches("alone", &alone);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// Old records, written straight into the database (as an earlier version would have).
async fn seed(store: &Store, inbox_rows: usize, sessions: usize, entries: usize) {
    // Opens the store (and its schema) through the writer.
    store
        .save_session(session_row("live-0", now_ms(), 1))
        .await
        .expect("open");
    let long_ago = now_ms() - 30 * DAY_MS;
    let payload = rmp_serde::to_vec_named(&inbound("old", long_ago)).expect("payload");
    let entry = rmp_serde::to_vec_named(&TranscriptEntry {
        role: Role::User,
        content: "x".repeat(200),
        at_ms: long_ago,
        thinking: None,
        inbox_id: None,
        tool: None,
        summary_through: None,
        outcome: None,
    })
    .expect("entry");
    let mut conn = rusqlite::Connection::open(store.path()).expect("open");
    conn.busy_timeout(Duration::from_secs(10)).expect("busy");
    let tx = conn.transaction().expect("tx");
    for n in 0..inbox_rows {
        tx.execute(
            "INSERT INTO inbox (channel, account, upstream_id, payload, state, reply,
                                received_at, answered_at)
             VALUES ('http', 'http', ?1, ?2, 'delivered', ?3, ?4, ?4)",
            params![
                format!("old-{n}"),
                payload,
                "y".repeat(200),
                long_ago as i64
            ],
        )
        .expect("inbox row");
    }
    for s in 0..sessions {
        let key = format!("old-{s:05}");
        tx.execute(
            "INSERT INTO sessions (key, agent, channel, account, created_at, last_active,
                                   idle_ms, max_age_ms, context_from, turns)
             VALUES (?1, 'main', 'http', 'http', ?2, ?2, ?3, 0, 1, 0)",
            params![key, long_ago as i64, DAY_MS as i64],
        )
        .expect("session");
        for seq in 1..=entries {
            tx.execute(
                "INSERT INTO transcript (session_key, seq, entry) VALUES (?1, ?2, ?3)",
                params![key, seq as i64, entry],
            )
            .expect("entry");
        }
    }
    tx.commit().expect("commit");
}

fn inbound(id: &str, at: u64) -> Inbound {
    Inbound {
        channel: "http".into(),
        account: "http".into(),
        upstream_id: id.into(),
        peer: PeerRef {
            kind: "user".into(),
            id: "someone".into(),
        },
        thread: None,
        guild: None,
        team: None,
        agent: None,
        topic: None,
        text: "a message of an ordinary length, a sentence or two, as people type them".into(),
        received_at_ms: at,
        sender: None,
        fingerprint: None,
        api: None,
    }
}

fn session_row(key: &str, now: u64, turns: u64) -> SessionRow {
    SessionRow {
        key: key.into(),
        agent: "main".into(),
        channel: "http".into(),
        account: "http".into(),
        created_at_ms: now,
        last_active_ms: now,
        idle_ms: DAY_MS,
        max_age_ms: 0,
        context_from: 1,
        turns,
        summary_seq: 0,
        bytes_per_1k_tokens: 0,
    }
}

/// One retention pass, paced as the `store` actor paces it: (the writer's time, rows) of
/// each batch.
async fn run_pass(
    store: Store,
    batches: Arc<Mutex<Vec<(Instant, Duration, u64)>>>,
) -> (pincer_store::Pruned, Duration) {
    let started = Instant::now();
    let mut pass = PrunePass::new(now_ms(), WEEK, WEEK);
    while !pass.is_done() {
        let before = pass.totals();
        pass = store.prune(pass).await.expect("prune");
        let took = pass.last_batch_time();
        let after = pass.totals();
        let rows = after.inbox + after.transcript - before.inbox - before.transcript;
        batches.lock().await.push((Instant::now(), took, rows));
        if !pass.is_done() {
            tokio::time::sleep(prune_pause(took)).await;
        }
    }
    (pass.totals(), started.elapsed())
}

/// Live messages at `rate` for `length`: each one's latency from its scheduled time to its
/// turn committed.
async fn live(store: &Store, rate: f64, length: Duration, tag: &str) -> Vec<Duration> {
    let start = tokio::time::Instant::now();
    let count = (rate * length.as_secs_f64()) as usize;
    let mut tasks = Vec::with_capacity(count);
    for n in 0..count {
        let at = start + Duration::from_secs_f64(n as f64 / rate);
        tokio::time::sleep_until(at).await;
        let store = store.clone();
        let id = format!("{tag}-{n}");
        tasks.push(tokio::spawn(async move {
            let now = now_ms();
            let accepted = store.accept(inbound(&id, now)).await.expect("accept");
            let key = format!("live-{}", n % 200);
            let entry = |role, text: &str| TranscriptEntry {
                role,
                content: text.into(),
                at_ms: now,
                thinking: None,
                inbox_id: Some(accepted.id),
                tool: None,
                summary_through: None,
                outcome: None,
            };
            store
                .commit_turn(CommitTurn {
                    inbox_id: Some(accepted.id),
                    session: Some(session_row(&key, now, 1)),
                    entries: vec![entry(Role::User, "hello"), entry(Role::Assistant, "echo")],
                    reply: Some("echo".into()),
                    reply_extra: None,
                })
                .await
                .expect("commit");
            let latency = at.elapsed();
            store.mark_delivered(accepted.id).await.expect("delivered");
            latency
        }));
    }
    let mut out = Vec::with_capacity(count);
    for t in tasks {
        out.push(t.await.expect("message"));
    }
    out.sort();
    out
}

fn print_batches(name: &str, batches: &[&(Instant, Duration, u64)]) {
    let mut times: Vec<Duration> = batches.iter().map(|(_, t, _)| *t).collect();
    times.sort();
    let rows: Vec<u64> = batches.iter().map(|(_, _, r)| *r).collect();
    println!(
        "  {name:<20} {:>4} batches: rows per batch mean {:.0}, max {}; writer time per batch \
         p50 {}, p99 {}, max {}",
        batches.len(),
        rows.iter().sum::<u64>() as f64 / rows.len().max(1) as f64,
        rows.iter().max().copied().unwrap_or(0),
        ms(pct(&times, 0.5)),
        ms(pct(&times, 0.99)),
        ms(times.last().copied().unwrap_or_default()),
    );
}

fn print_live(name: &str, sorted: &[Duration]) {
    println!(
        "{:<22} {:>7} {:>9} {:>9} {:>9} {:>9}",
        name,
        sorted.len(),
        ms(pct(sorted, 0.5)),
        ms(pct(sorted, 0.99)),
        ms(pct(sorted, 0.999)),
        ms(sorted.last().copied().unwrap_or_default()),
    );
}

fn pct(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}
