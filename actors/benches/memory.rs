//! Memory per idle supervised actor (with and without an armed `Timer`), and where it goes.
//!
//! A counting global allocator (`stats_alloc` around `System`; the workspace forbids
//! `unsafe`, so the wrapper comes from a crate) gives the live heap bytes and blocks.
//! Each scenario runs in its own child process (this binary, re-executed), so the
//! steady-state RSS delta read from `/proc/self/status` (`VmRSS`) is a clean cross-check.
//! Live bytes are requested sizes (no allocator rounding or headers); RSS includes those
//! and page granularity, and tokio's task stacks are not involved (tasks are stackless).
//!
//! Scenarios, each with N = 10,000 idle actors (or parts), after a warm-up of one:
//!
//! - `bare`: `ractor::Actor::spawn` of a trivial actor.
//! - `bare_linked`: `Actor::spawn_linked` under one parent (ractor's link bookkeeping).
//! - `supervised`: `SupervisorHandle::start_child` under a dynamic root supervisor.
//! - `supervised_timer`: the same, each actor holding one armed `Timer` in its scope.
//! - `scope`: `Scope::child` of one root scope, alone.
//! - `timer`: `Timer::new` + `arm` in one scope, targeting one actor, alone.
//! - `tokio_sleep`: `tokio::spawn` of a task that sleeps an hour (the floor for a timer
//!   that owns a task).
//!
//! Every scenario is then torn down (`RootHandle::stop` for the supervised ones; the
//! `Registry` itself stays alive) and the bytes still live are printed as "leftover" (a
//! leak check; a few hundred bytes of lazily grown runtime state is normal), with the
//! number of registry records left.
//!
//! Run: `cargo bench -p pincer-actors --bench memory`
//! Quick (N = 1,000): `BENCH_QUICK=1 cargo bench -p pincer-actors --bench memory`

use std::alloc::System;
use std::process::Command;
use std::time::Duration;

use pincer_actors::{ChildSpec, Registry, Scope, SupervisorSpec, Timer};
use ractor::{Actor, ActorRef};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

mod common;
use common::{Idle, Parent, runtime};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const SCENARIO_ENV: &str = "PINCER_MEMORY_SCENARIO";
const SCENARIOS: [&str; 7] = [
    "bare",
    "bare_linked",
    "supervised",
    "supervised_timer",
    "scope",
    "timer",
    "tokio_sleep",
];

/// Live heap bytes and blocks.
fn live() -> (i64, i64) {
    let s = GLOBAL.stats();
    let bytes = i64::try_from(s.bytes_allocated).unwrap_or(i64::MAX)
        - i64::try_from(s.bytes_deallocated).unwrap_or(i64::MAX);
    let blocks = i64::try_from(s.allocations).unwrap_or(i64::MAX)
        - i64::try_from(s.deallocations).unwrap_or(i64::MAX);
    (bytes, blocks)
}

/// Resident set size in bytes, from `/proc/self/status`.
fn rss() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn quick() -> bool {
    std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// What one scenario measured.
struct Measured {
    bytes: i64,
    blocks: i64,
    rss: i64,
    leftover: i64,
    /// Registry records left after the teardown (the root's own included).
    records: usize,
}

/// Lets spawned tasks run and settle before a reading.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// Runs `scenario` with `n` items in this process.
async fn run(scenario: &str, n: usize) -> Measured {
    // Everything the scenario keeps, allocated before the first reading.
    let mut refs: Vec<ActorRef<()>> = Vec::with_capacity(n);
    let mut joins = Vec::with_capacity(n);
    let mut scopes: Vec<Scope> = Vec::with_capacity(n);
    let mut timers: Vec<Timer> = Vec::with_capacity(n);
    let registry = Registry::new();
    let ids: Vec<String> = (0..n).map(|i| format!("s{i:05}")).collect();
    let mut root = None;
    let mut parent = None;
    let root_scope = Scope::root();
    match scenario {
        "bare" => {
            let (a, j) = Actor::spawn(None, Idle, None).await.expect("spawn");
            a.stop(None);
            j.await.expect("join");
        }
        "bare_linked" => {
            let (p, _) = Actor::spawn(None, Parent, ()).await.expect("parent");
            let (a, j) = Actor::spawn_linked(None, Idle, None, p.get_cell())
                .await
                .expect("spawn");
            a.stop(None);
            j.await.expect("join");
            parent = Some(p);
        }
        "supervised" | "supervised_timer" => {
            let r = SupervisorSpec::dynamic(n + 1)
                .start_root("mem", &registry)
                .await
                .expect("root");
            let h = r.supervisor();
            h.start_child(ChildSpec::new("warm", |ctx| {
                (Idle, Some(ctx.scope().clone()))
            }))
            .await
            .expect("warm-up child");
            h.terminate_child("warm").await.expect("terminate warm-up");
            root = Some(r);
        }
        "scope" => drop(root_scope.child()),
        "timer" | "tokio_sleep" => {
            let (a, _) = Actor::spawn(None, Parent, ()).await.expect("target");
            drop(Timer::new(&root_scope, a.clone(), || ()));
            tokio::spawn(async {}).await.expect("warm-up task");
            parent = Some(a);
        }
        other => panic!("unknown scenario {other}"),
    }
    settle().await;

    let (bytes0, blocks0) = live();
    let rss0 = rss();
    match scenario {
        "bare" | "bare_linked" => {
            for _ in 0..n {
                let (a, j) = match &parent {
                    None => Actor::spawn(None, Idle, None).await,
                    Some(p) => Actor::spawn_linked(None, Idle, None, p.get_cell()).await,
                }
                .expect("spawn");
                refs.push(a);
                joins.push(j);
            }
        }
        "supervised" | "supervised_timer" => {
            let timer = scenario == "supervised_timer";
            let h = root.as_ref().expect("root").supervisor();
            for id in &ids {
                h.start_child(ChildSpec::new(id.as_str(), move |ctx| {
                    (Idle, timer.then(|| ctx.scope().clone()))
                }))
                .await
                .expect("start_child");
            }
        }
        "scope" => {
            for _ in 0..n {
                scopes.push(root_scope.child());
            }
        }
        "timer" => {
            let target = parent.as_ref().expect("target");
            for _ in 0..n {
                let t = Timer::new(&root_scope, target.clone(), || ());
                t.arm(Duration::from_secs(3600));
                timers.push(t);
            }
        }
        "tokio_sleep" => {
            for _ in 0..n {
                joins.push(tokio::spawn(tokio::time::sleep(Duration::from_secs(3600))));
            }
        }
        _ => unreachable!(),
    }
    settle().await;
    let (bytes1, blocks1) = live();
    let rss1 = rss();

    // Teardown, then the leak check.
    for a in refs.drain(..) {
        a.stop(None);
    }
    for j in joins.drain(..) {
        if scenario == "tokio_sleep" {
            j.abort();
        }
        let _ = j.await;
    }
    if let Some(r) = root.take() {
        r.stop().await;
    }
    timers.clear();
    scopes.clear();
    root_scope.close().await;
    settle().await;
    let (bytes2, _) = live();
    let records = registry.len();

    Measured {
        bytes: bytes1 - bytes0,
        blocks: blocks1 - blocks0,
        rss: rss1 - rss0,
        leftover: bytes2 - bytes0,
        records,
    }
}

fn per(total: i64, n: usize) -> f64 {
    total as f64 / n as f64
}

fn main() {
    let n = if quick() { 1_000 } else { 10_000 };
    if let Ok(scenario) = std::env::var(SCENARIO_ENV) {
        let m = runtime().block_on(run(&scenario, n));
        println!(
            "RESULT {scenario} {} {} {} {} {}",
            m.bytes, m.blocks, m.rss, m.leftover, m.records
        );
        return;
    }

    let exe = std::env::current_exe().expect("own path");
    let mut rows = Vec::new();
    for scenario in SCENARIOS {
        let out = Command::new(&exe)
            .env(SCENARIO_ENV, scenario)
            .output()
            .expect("scenario runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "scenario {scenario} failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("RESULT "))
            .expect("result line");
        let v: Vec<i64> = line
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse().expect("number"))
            .collect();
        rows.push((
            scenario,
            Measured {
                bytes: v[0],
                blocks: v[1],
                rss: v[2],
                leftover: v[3],
                records: usize::try_from(v[4]).expect("count"),
            },
        ));
    }

    println!();
    println!("memory per item, N = {n} (one process per scenario; bytes as requested)");
    println!();
    println!(
        "| {:<18} | {:>12} | {:>13} | {:>13} | {:>16} | {:>12} |",
        "scenario", "heap B/item", "blocks/item", "RSS B/item", "leftover (B)", "records left"
    );
    println!(
        "|{:-<20}|{:->14}|{:->15}|{:->15}|{:->18}|{:->14}|",
        "", "", "", "", "", ""
    );
    for (name, m) in &rows {
        println!(
            "| {:<18} | {:>12.0} | {:>13.1} | {:>13.0} | {:>16} | {:>12} |",
            name,
            per(m.bytes, n),
            per(m.blocks, n),
            per(m.rss, n),
            m.leftover,
            m.records
        );
    }

    let get = |name: &str| {
        rows.iter()
            .find(|(s, _)| *s == name)
            .map(|(_, m)| per(m.bytes, n))
            .expect("scenario measured")
    };
    let bare = get("bare");
    let linked = get("bare_linked");
    let supervised = get("supervised");
    let timed = get("supervised_timer");
    let scope = get("scope");
    println!();
    println!("where the bytes of one supervised actor with an armed timer go (heap B):");
    println!();
    println!("| {:<58} | {:>8} |", "part", "bytes");
    println!("|{:-<60}|{:->10}|", "", "");
    let parts = [
        ("ractor actor (bare spawn)", bare),
        (
            "ractor link to the parent (bare_linked - bare)",
            linked - bare,
        ),
        ("scope (Scope::child alone)", scope),
        (
            "supervisor bookkeeping (supervised - bare_linked - scope)",
            supervised - linked - scope,
        ),
        (
            "armed timer (supervised_timer - supervised)",
            timed - supervised,
        ),
        ("total (supervised_timer)", timed),
    ];
    for (what, bytes) in parts {
        println!("| {what:<58} | {bytes:>8.0} |");
    }
    println!();
    println!(
        "timer alone: {:.0} B; tokio task sleeping alone: {:.0} B",
        get("timer"),
        get("tokio_sleep")
    );
}
