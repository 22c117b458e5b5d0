//! Nothing lost, nothing answered twice, while actors are killed under load.
//!
//! ```sh
//! cargo build --release --bin pincer
//! cargo bench --bench gateway_chaos                    # 1,000 req/s for 30 s
//! RATE=200 DURATION=10s KILL_RATE=50 cargo bench --bench gateway_chaos
//! BENCH_QUICK=1 cargo bench --bench gateway_chaos      # 5 s
//! ```
//!
//! The real `pincer` binary takes open-loop chat completions (echo model, zero delay,
//! `RATE`/s for `DURATION`, 200 sessions, content `msg <n>` unique per request) while
//! `pincer chaos monkey --rate <KILL_RATE>/s --scope 'pincer/**'` (default 100/s; the
//! monkey never kills the root) kills random actors for the same time. Every request has
//! its own `Idempotency-Key` and is retried with the same key and body on transport
//! errors, 503 and 504 until it gets a 200, until 60 s after the load ends.
//!
//! If the gateway process exits (its root supervisor gives up when its restart intensity
//! is exceeded), the driver does what systemd or Kubernetes would: starts it again on the
//! same home and port, and starts the monkey again for the time left. Such exits are
//! reported and fail the run; the requests keep retrying, so the checks below still say
//! whether anything accepted was lost across the process restart.
//!
//! Then, from the replies and each session's transcript (`GET /admin/sessions/{key}`):
//! - lost: requests never answered 200;
//! - wrong: a 200 whose content is not `echo: msg <n>`;
//! - duplicated: an inbox id with more than one assistant entry in its transcript, or
//!   one inbox id answering two different requests; and sessions whose user-entry count
//!   differs from the number of their requests.
//!
//! Also reported, without failing the run: attempts that got no answer within the 10 s
//! client timeout, and replies left undelivered (`pincer_inbox_undelivered`).
//! Exits non-zero if anything was lost, wrong or duplicated, or the process exited.

#[path = "common.rs"]
mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use tokio::sync::mpsc;

const SESSIONS: usize = 200;
/// How long requests keep retrying after the load ends.
const GRACE: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Outcome {
    i: usize,
    /// Latency from the schedule to the 200, if one came.
    latency: Option<Duration>,
    /// The final attempt.
    last: Attempt,
    attempts: u32,
    /// What the retried attempts got.
    retried: Vec<String>,
    /// When attempts that timed out were sent, from the start of the load.
    stalls: Vec<Duration>,
}

fn main() {
    let bin = pincer_bin();
    let rate = env_f64("RATE", 1000.0);
    let kill_rate = env_f64("KILL_RATE", 100.0);
    let default_duration = Duration::from_secs(if quick() { 5 } else { 30 });
    let duration = env_duration("DURATION", default_duration);

    let home = TempHome::new("chaos");
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
    let admin = load_client(Duration::from_secs(30));
    let restarts_before = rt
        .block_on(admin_get(&admin, &base, &token, "/admin/tree"))
        .map(|t| restarts_total(&t))
        .unwrap_or(0);

    // The monkey and the gateway's restarts, on their own thread.
    let load_done = Arc::new(AtomicBool::new(false));
    let supervisor = {
        let (bin, home, done) = (bin.clone(), home.0.clone(), load_done.clone());
        std::thread::spawn(move || supervise(&bin, &home, gw, kill_rate, duration, &done))
    };
    let load_wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        + Duration::from_millis(20);
    let outcomes = rt.block_on(load(base.clone(), token.clone(), rate, duration));
    load_done.store(true, Ordering::SeqCst);
    let Supervised {
        mut gw,
        exits,
        monkeys,
    } = supervisor.join().expect("the supervisor thread panicked");

    // Ready again?
    let ready_wait = Instant::now();
    let mut ready_after = None;
    while ready_wait.elapsed() < Duration::from_secs(30) {
        if let Ok((200, _)) = raw_get(gw.port, "/readyz") {
            ready_after = Some(ready_wait.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let tree_after = rt.block_on(admin_get(&admin, &base, &token, "/admin/tree"));
    let restarts_after = tree_after.as_ref().map(restarts_total).unwrap_or(0);

    // Replies.
    let mut lost = Vec::new();
    let mut wrong = Vec::new();
    let mut latencies = Vec::new();
    let mut retried: BTreeMap<String, usize> = BTreeMap::new();
    let mut attempts = 0u64;
    let mut inbox_of: HashMap<i64, Vec<usize>> = HashMap::new();
    for o in &outcomes {
        attempts += u64::from(o.attempts);
        for r in &o.retried {
            *retried.entry(r.clone()).or_default() += 1;
        }
        match &o.last {
            Attempt::Ok { content, inbox } => {
                latencies.push(o.latency.unwrap_or_default());
                if *content != format!("echo: msg {}", o.i) {
                    wrong.push(format!("msg {} got {content:?}", o.i));
                }
                if let Some(id) = inbox {
                    inbox_of.entry(*id).or_default().push(o.i);
                }
            }
            other => lost.push(format!(
                "msg {}: {other:?} after {} attempts",
                o.i, o.attempts
            )),
        }
    }
    let stalls: Vec<String> = outcomes
        .iter()
        .flat_map(|o| o.stalls.iter().map(move |t| (t, o)))
        .map(|(t, o)| {
            format!(
                "msg {} (chaos-u{}) attempt sent at +{:.3} s got no answer within 10 s",
                o.i,
                o.i % SESSIONS,
                t.as_secs_f64()
            )
        })
        .collect();
    let shared_inbox: Vec<String> = inbox_of
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(id, v)| format!("inbox {id} answered msgs {v:?}"))
        .collect();

    // Replies committed but never handed to their channel (should be 0 once all is answered).
    let undelivered = rt.block_on(async {
        let text = admin
            .get(format!("{base}/metrics"))
            .bearer_auth(&*token)
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines().find_map(|l| {
            l.strip_prefix("pincer_inbox_undelivered ")?
                .trim()
                .parse::<u64>()
                .ok()
        })
    });

    // Transcripts.
    let check = rt.block_on(check_transcripts(&admin, &base, &token, &outcomes));
    let alive = matches!(gw.child.try_wait(), Ok(None));
    gw.stop(Duration::from_secs(15));
    let child_exits = std::fs::read_to_string(home.0.join("gateway.log"))
        .unwrap_or_default()
        .matches("Child ended abnormally")
        .count();

    let lat = Summary::of(&mut latencies);
    let duplicated = check.duplicate_answers + shared_inbox.len();
    let kills: u64 = monkeys.iter().map(|m| m.kills).sum();
    println!();
    println!(
        "gateway_chaos  {rate:.0} chat/s for {:.1} s, {SESSIONS} sessions, monkey {kill_rate:.0} kills/s on 'pincer/**'",
        duration.as_secs_f64()
    );
    println!(
        "requests             {}  (load started at unix {:.3} s)",
        outcomes.len(),
        load_wall.as_secs_f64()
    );
    println!(
        "attempts             {attempts}  (retried on: {})",
        count_line(&retried)
    );
    println!(
        "kills done           {kills}  ({} monkey runs)",
        monkeys.len()
    );
    for m in &monkeys {
        println!("  monkey: {}", m.verdict);
    }
    println!(
        "restarts seen        {}  (restarts_total of /admin/tree{}); {child_exits} abnormal child exits logged",
        restarts_after.saturating_sub(restarts_before),
        if exits.is_empty() {
            ""
        } else {
            ", last process only"
        }
    );
    println!("process exits        {}", exits.len());
    for e in &exits {
        println!("  exit: {e}");
    }
    println!(
        "ready after load     {}",
        ready_after.map_or("NOT within 30 s".into(), |d| format!(
            "{} after the monkey ended",
            ms(d)
        ))
    );
    println!(
        "latency (to the 200) p50 {}  p99 {}  max {}",
        ms(lat.p50),
        ms(lat.p99),
        ms(lat.max)
    );
    println!("lost                 {}", lost.len());
    println!("wrong                {}", wrong.len());
    println!(
        "duplicated           {duplicated}  ({} inbox ids with >1 assistant entry, {} inbox ids shared by different requests)",
        check.duplicate_answers,
        shared_inbox.len()
    );
    println!(
        "transcripts          {} sessions read ({} unreadable), user entries {} for {} requests, {} sessions with a count mismatch, {} answered requests missing from their transcript",
        check.sessions,
        check.unreadable.len(),
        check.user_entries,
        outcomes.len(),
        check.mismatched.len(),
        check.missing_answers
    );
    println!(
        "stalled attempts     {}  (no answer within the 10 s client timeout; the retry with the same key got the reply)",
        stalls.len()
    );
    println!(
        "undelivered replies  {}  (pincer_inbox_undelivered after the run: answered in the store, never handed to the channel)",
        undelivered.map_or("?".into(), |u| u.to_string())
    );
    let bad = !lost.is_empty()
        || !wrong.is_empty()
        || duplicated > 0
        || !check.mismatched.is_empty()
        || !check.unreadable.is_empty()
        || check.missing_answers > 0
        || !exits.is_empty()
        || !alive;
    for (label, list) in [
        ("lost", &lost),
        ("wrong", &wrong),
        ("shared", &shared_inbox),
        ("duplicate", &check.duplicates),
        ("mismatch", &check.mismatched),
        ("unreadable", &check.unreadable),
        ("stalled", &stalls),
    ] {
        for line in list.iter().take(5) {
            println!("  {label}: {line}");
        }
        if list.len() > 5 {
            println!("  {label}: ... {} more", list.len() - 5);
        }
    }
    if !alive {
        println!("the gateway process died after the load\n{}", gw.log_tail());
    }
    let verdict = if lost.is_empty() && wrong.is_empty() && duplicated == 0 && !bad {
        "PASS: nothing lost, wrong or duplicated".to_string()
    } else {
        format!(
            "FAIL: {} lost, {} wrong, {duplicated} duplicated, {} count mismatches, {} process exits",
            lost.len(),
            wrong.len(),
            check.mismatched.len(),
            exits.len()
        )
    };
    println!("verdict              {verdict}");
    if bad {
        std::process::exit(1);
    }
}

/// What the supervisor thread hands back.
#[derive(Debug)]
struct Supervised {
    /// The gateway running now.
    gw: Gateway,
    /// Each exit of the gateway process: when (from the start of chaos) and why.
    exits: Vec<String>,
    monkeys: Vec<MonkeyRun>,
}

#[derive(Debug)]
struct MonkeyRun {
    kills: u64,
    verdict: String,
}

/// Runs the monkey for `duration` and restarts the gateway whenever it exits, until the
/// load is done and the monkey has ended. A monkey that ends early (it stops when the
/// gateway does not answer) is started again for the time left once the gateway is ready.
fn supervise(
    bin: &Path,
    home: &Path,
    mut gw: Gateway,
    kill_rate: f64,
    duration: Duration,
    load_done: &AtomicBool,
) -> Supervised {
    let start = Instant::now();
    let end = start + duration;
    let mut exits = Vec::new();
    let mut runs = Vec::new();
    let mut monkey = Some(spawn_monkey(bin, home, gw.port, kill_rate, duration, 0));
    loop {
        if let Ok(Some(status)) = gw.child.try_wait() {
            let log = std::fs::read_to_string(home.join("gateway.log")).unwrap_or_default();
            let why = log
                .lines()
                .rev()
                .find(|l| l.starts_with("pincer: "))
                .unwrap_or("(no last word in gateway.log)")
                .to_string();
            exits.push(format!(
                "+{:.1} s, {status}: {why}",
                start.elapsed().as_secs_f64()
            ));
            gw = Gateway::spawn_on(bin, home, gw.port);
            gw.wait_ready(Duration::from_millis(1), Duration::from_secs(30));
        }
        if let Some((child, log)) = &mut monkey
            && let Ok(Some(_)) = child.try_wait()
        {
            runs.push(monkey_result(log));
            monkey = None;
        }
        let left = end.saturating_duration_since(Instant::now());
        if monkey.is_none()
            && left > Duration::from_millis(500)
            && let Ok((200, _)) = raw_get(gw.port, "/readyz")
        {
            monkey = Some(spawn_monkey(
                bin,
                home,
                gw.port,
                kill_rate,
                left,
                runs.len(),
            ));
        }
        if monkey.is_none() && load_done.load(Ordering::SeqCst) {
            return Supervised {
                gw,
                exits,
                monkeys: runs,
            };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `pincer chaos monkey --rate <r>/s --duration <d> --scope 'pincer/**'`, output to
/// `monkey-<n>.log` in the home.
fn spawn_monkey(
    bin: &Path,
    home: &Path,
    port: u16,
    rate: f64,
    duration: Duration,
    n: usize,
) -> (Child, PathBuf) {
    let log_path = home.join(format!("monkey-{n}.log"));
    let log = std::fs::File::create(&log_path).expect("monkey log");
    let mut cmd = Command::new(bin);
    cmd.args([
        "chaos",
        "monkey",
        "--rate",
        &format!("{rate}/s"),
        "--duration",
        &format!("{}ms", duration.as_millis()),
        "--scope",
        "pincer/**",
    ]);
    clean_env(&mut cmd, home, port);
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone().expect("dup"))
        .stderr(log);
    (cmd.spawn().expect("spawn pincer chaos monkey"), log_path)
}

/// Kills and last word of one monkey run: its verdict line, else its last progress line
/// (`  12s  kills 1180  missed 3`) and error.
fn monkey_result(log: &Path) -> MonkeyRun {
    let out = std::fs::read_to_string(log).unwrap_or_default();
    let kills = out
        .lines()
        .rev()
        .find_map(|l| {
            let n = match l.strip_prefix("verdict: ") {
                Some(v) => v.split(' ').next()?,
                None => l.split("kills ").nth(1)?.split(' ').next()?,
            };
            n.parse().ok()
        })
        .unwrap_or(0);
    let verdict = out
        .lines()
        .rev()
        .find(|l| !l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .unwrap_or("(no output)")
        .to_string();
    MonkeyRun { kills, verdict }
}

async fn admin_get(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    path: &str,
) -> Result<Value, String> {
    let r = client
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| transport_kind(&e))?;
    let status = r.status().as_u16();
    let body: Value = r.json().await.map_err(|e| transport_kind(&e))?;
    if status == 200 {
        Ok(body)
    } else {
        Err(format!("status {status}: {body}"))
    }
}

/// Open-loop load with retries; returns one outcome per request, in order.
async fn load(base: String, token: Arc<str>, rate: f64, duration: Duration) -> Vec<Outcome> {
    let client = load_client(Duration::from_secs(10));
    let url: Arc<str> = format!("{base}/v1/chat/completions").into();
    let n = (rate * duration.as_secs_f64()).round() as usize;
    let start = tokio::time::Instant::now() + Duration::from_millis(20);
    let t0 = start.into_std();
    let deadline = t0 + duration + GRACE;
    let (tx, mut rx) = mpsc::unbounded_channel::<Outcome>();
    open_loop(start, rate, n, |i, due| {
        let (client, url, token, tx) = (client.clone(), url.clone(), token.clone(), tx.clone());
        tokio::spawn(async move {
            let body = chat_body(&format!("chaos-u{}", i % SESSIONS), &format!("msg {i}"));
            let key = format!("chaos-{i}");
            let mut attempts = 0;
            let mut retried = Vec::new();
            let mut stalls = Vec::new();
            loop {
                attempts += 1;
                let sent = Instant::now();
                let attempt = chat_attempt(&client, &url, &token, &key, &body).await;
                if matches!(&attempt, Attempt::Transport(e) if e == "timeout") {
                    stalls.push(sent - t0);
                }
                let retry = match &attempt {
                    Attempt::Transport(e) => Some(e.clone()),
                    Attempt::Status(s @ (503 | 504), code) => Some(format!("{s} {code}")),
                    _ => None,
                };
                match retry {
                    Some(why) if Instant::now() < deadline => {
                        retried.push(why);
                        let backoff = 10u64 << attempts.min(5); // 20 ms .. 320 ms
                        tokio::time::sleep(Duration::from_millis(
                            backoff + fastrand::u64(..backoff),
                        ))
                        .await;
                    }
                    _ => {
                        let latency = matches!(attempt, Attempt::Ok { .. }).then(|| due.elapsed());
                        let _ = tx.send(Outcome {
                            i,
                            latency,
                            last: attempt,
                            attempts,
                            retried,
                            stalls,
                        });
                        return;
                    }
                }
            }
        });
    })
    .await;
    drop(tx);
    let mut outcomes = Vec::with_capacity(n);
    while let Some(o) = rx.recv().await {
        outcomes.push(o);
    }
    outcomes.sort_by_key(|o| o.i);
    outcomes
}

#[derive(Debug, Default)]
struct Check {
    sessions: usize,
    user_entries: usize,
    duplicate_answers: usize,
    missing_answers: usize,
    duplicates: Vec<String>,
    mismatched: Vec<String>,
    unreadable: Vec<String>,
}

/// Reads each session's transcript and counts duplicates and mismatches.
async fn check_transcripts(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    outcomes: &[Outcome],
) -> Check {
    let mut by_session: BTreeMap<usize, Vec<&Outcome>> = BTreeMap::new();
    for o in outcomes {
        by_session.entry(o.i % SESSIONS).or_default().push(o);
    }
    let mut check = Check::default();
    for (s, requests) in by_session {
        let key = session_key(&format!("chaos-u{s}"));
        let path = format!("/admin/sessions/{}", percent_encode(&key));
        let mut session = Err(String::new());
        for _ in 0..5 {
            session = admin_get(client, base, token, &path).await;
            if session.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let session = match session {
            Ok(v) => v,
            Err(e) => {
                check.unreadable.push(format!("{key}: {e}"));
                continue;
            }
        };
        check.sessions += 1;
        let transcript = session["transcript"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let role = |e: &Value, r: &str| e["role"].as_str() == Some(r);
        let users = transcript.iter().filter(|e| role(e, "user")).count();
        check.user_entries += users;
        if users != requests.len() {
            check.mismatched.push(format!(
                "{key}: {users} user entries for {} requests",
                requests.len()
            ));
        }
        let mut answers: HashMap<i64, Vec<&str>> = HashMap::new();
        for e in transcript.iter().filter(|e| role(e, "assistant")) {
            if let Some(id) = e["inbox_id"].as_i64() {
                answers
                    .entry(id)
                    .or_default()
                    .push(e["content"].as_str().unwrap_or(""));
            }
        }
        for (id, contents) in &answers {
            if contents.len() > 1 {
                check.duplicate_answers += 1;
                check.duplicates.push(format!(
                    "{key}: inbox {id} answered {} times: {contents:?}",
                    contents.len()
                ));
            }
        }
        for o in requests {
            if let Attempt::Ok {
                inbox: Some(id), ..
            } = &o.last
                && !answers.contains_key(id)
            {
                check.missing_answers += 1;
            }
        }
    }
    check
}
