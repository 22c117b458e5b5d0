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
//! errors, 503 and 504 until it gets a 200, until 60 s after the load ends. Then, from the
//! replies and each session's transcript (`GET /admin/sessions/{key}`):
//! - lost: requests never answered 200;
//! - wrong: a 200 whose content is not `echo: msg <n>`;
//! - duplicated: an inbox id with more than one assistant entry in its transcript, and
//!   sessions whose user-entry count differs from the number of their requests.
//!
//! Exits non-zero if anything was lost, wrong or duplicated.

#[path = "common.rs"]
mod common;

use std::collections::{BTreeMap, HashMap};
use std::process::{Command, Stdio};
use std::sync::Arc;
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

    // The monkey, as a subprocess of the real CLI.
    let monkey_log = home.0.join("monkey.log");
    let mut monkey_cmd = Command::new(&bin);
    monkey_cmd.args([
        "chaos",
        "monkey",
        "--rate",
        &format!("{kill_rate}/s"),
        "--duration",
        &format!("{}ms", duration.as_millis()),
        "--scope",
        "pincer/**",
    ]);
    clean_env(&mut monkey_cmd, &home.0, gw.port);
    let log = std::fs::File::create(&monkey_log).expect("monkey.log");
    monkey_cmd
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("dup"))
        .stderr(log);
    let mut monkey = monkey_cmd.spawn().expect("spawn pincer chaos monkey");

    let load_wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        + Duration::from_millis(20);
    let outcomes = rt.block_on(load(base.clone(), token.clone(), rate, duration));

    let monkey_status = monkey.wait().expect("wait for the monkey");
    let monkey_out = std::fs::read_to_string(&monkey_log).unwrap_or_default();
    let kills = monkey_out
        .lines()
        .rev()
        .find_map(|l| {
            l.strip_prefix("verdict: ")?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .or_else(|| {
            // No verdict line: the last progress line ("  12s  kills 1180  missed 3").
            monkey_out
                .lines()
                .rev()
                .find_map(|l| l.split("kills ").nth(1)?.split(' ').next()?.parse().ok())
        });
    let monkey_verdict = monkey_out
        .lines()
        .rev()
        .find(|l| l.starts_with("verdict: ") || l.starts_with("Error") || l.starts_with("error"))
        .unwrap_or("(no verdict line)")
        .to_string();

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
        text.lines()
            .find_map(|l| l.strip_prefix("pincer_inbox_undelivered ")?.trim().parse::<u64>().ok())
    });

    // Transcripts.
    let check = rt.block_on(check_transcripts(&admin, &base, &token, &outcomes));
    let alive = matches!(gw.child.try_wait(), Ok(None));
    gw.stop(Duration::from_secs(15));

    let lat = Summary::of(&mut latencies);
    let duplicated = check.duplicate_answers + shared_inbox.len();
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
        "kills done           {}  (monkey: {monkey_status}, {monkey_verdict:?})",
        kills.map_or("?".into(), |k| k.to_string()),
    );
    println!(
        "restarts seen        {}",
        restarts_after.saturating_sub(restarts_before)
    );
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
        "undelivered replies  {}  (pincer_inbox_undelivered after the run: answered in the store, never handed to the channel)",
        undelivered.map_or("?".into(), |u| u.to_string())
    );
    let bad = !lost.is_empty()
        || !wrong.is_empty()
        || duplicated > 0
        || !check.mismatched.is_empty()
        || !check.unreadable.is_empty()
        || check.missing_answers > 0
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
        println!("the gateway process died\n{}", gw.log_tail());
    }
    let warning = if stalls.is_empty() && undelivered.unwrap_or(0) == 0 {
        String::new()
    } else {
        format!(
            "; WARNING: {} attempts got no answer within 10 s and {} replies stay undelivered (recovered only by retrying the same key)",
            stalls.len(),
            undelivered.map_or("?".into(), |u| u.to_string())
        )
    };
    println!(
        "verdict              {}{warning}",
        if bad {
            "FAIL"
        } else {
            "PASS: nothing lost, wrong or duplicated"
        },
    );
    if bad {
        std::process::exit(1);
    }
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
        for _ in 0..20 {
            session = admin_get(client, base, token, &path).await;
            if session.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
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
