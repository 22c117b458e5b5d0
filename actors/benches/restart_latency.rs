//! Kill → running-again latency of a permanent worker, zero backoff: p50, p90, p99, max.
//!
//! A root supervisor (one_for_one, `Intensity::new(1_000_000, 1 s)`) runs one permanent
//! worker `bench/w`. Each sample notes the worker's cell, kills it with `Registry::kill`,
//! and stops the clock when `Registry::cell` returns a different (running) cell. Variants:
//!
//! - `pincer (watch)`: the waiter sleeps on `Registry::changes()` and re-checks on every
//!   registry change; it runs on the bench's main thread, outside the 2 runtime workers.
//! - `pincer (spin)`: the waiter is a task on the runtime that re-checks after every
//!   `tokio::task::yield_now`.
//! - `pincer + timer (watch)`: the worker holds an armed `Timer`, so the supervisor also
//!   aborts and awaits a task when it closes the old instance's scope.
//! - `bare ractor (watch)`: baseline without this crate: a hand-written ractor parent that
//!   `spawn_linked`s a new child when the old one ends and publishes it on a watch channel.
//!
//! Goal: p99 < 1 ms. 2000 samples after 200 warm-up ones; `BENCH_QUICK=1` takes 200
//! samples after 20 (a smoke run). Uses a multi-thread tokio runtime with 2 workers.
//!
//! Run: `cargo bench -p pincer-actors --bench restart_latency`
//! Quick: `BENCH_QUICK=1 cargo bench -p pincer-actors --bench restart_latency`

use std::time::{Duration, Instant};

use pincer_actors::{ChildSpec, Intensity, Registry, RootHandle, SupervisorSpec};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::watch;

mod common;
use common::{Idle, runtime};

const PATH: &str = "bench/w";

/// Baseline: a bare ractor parent that replaces its child whenever it ends.
struct Restarter;

impl Actor for Restarter {
    type Msg = ();
    type State = watch::Sender<Option<ActorCell>>;
    type Arguments = watch::Sender<Option<ActorCell>>;

    async fn pre_start(
        &self,
        myself: ActorRef<()>,
        tx: Self::State,
    ) -> Result<Self::State, ActorProcessingErr> {
        let (child, _) = Actor::spawn_linked(None, Idle, None, myself.get_cell()).await?;
        tx.send_replace(Some(child.get_cell()));
        Ok(tx)
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<()>,
        event: SupervisionEvent,
        tx: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ActorTerminated(..) | SupervisionEvent::ActorFailed(..) = event {
            let (child, _) = Actor::spawn_linked(None, Idle, None, myself.get_cell()).await?;
            tx.send_replace(Some(child.get_cell()));
        }
        Ok(())
    }
}

async fn start_tree(registry: &Registry, with_timer: bool) -> RootHandle {
    let worker = ChildSpec::new("w", move |ctx| {
        (Idle, with_timer.then(|| ctx.scope().clone()))
    });
    SupervisorSpec::default()
        .intensity(Intensity::new(1_000_000, Duration::from_secs(1)))
        .child(worker)
        .start_root("bench", registry)
        .await
        .expect("tree starts")
}

/// One kill → running-again sample, waking on registry changes.
async fn sample_watch(registry: &Registry, rx: &mut watch::Receiver<u64>) -> Duration {
    let old = registry.cell(PATH).expect("worker running").get_id();
    rx.borrow_and_update();
    let t0 = Instant::now();
    registry.kill(PATH).expect("kill");
    loop {
        if registry.cell(PATH).is_some_and(|c| c.get_id() != old) {
            return t0.elapsed();
        }
        rx.changed().await.expect("registry alive");
    }
}

/// One sample, re-checking after every yield.
async fn sample_spin(registry: &Registry) -> Duration {
    let old = registry.cell(PATH).expect("worker running").get_id();
    let t0 = Instant::now();
    registry.kill(PATH).expect("kill");
    loop {
        if registry.cell(PATH).is_some_and(|c| c.get_id() != old) {
            return t0.elapsed();
        }
        tokio::task::yield_now().await;
    }
}

/// One sample of the bare ractor baseline.
async fn sample_bare(rx: &mut watch::Receiver<Option<ActorCell>>) -> Duration {
    let old = rx.borrow_and_update().clone().expect("child running");
    let t0 = Instant::now();
    old.kill();
    loop {
        rx.changed().await.expect("restarter alive");
        if rx
            .borrow_and_update()
            .as_ref()
            .is_some_and(|c| c.get_id() != old.get_id())
        {
            return t0.elapsed();
        }
    }
}

struct Stats {
    name: &'static str,
    samples: Vec<Duration>,
}

impl Stats {
    fn new(name: &'static str, mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        Self { name, samples }
    }

    fn pct(&self, p: f64) -> Duration {
        // Nearest rank.
        let n = self.samples.len();
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        self.samples[rank.clamp(1, n) - 1]
    }

    fn mean(&self) -> Duration {
        self.samples.iter().sum::<Duration>() / self.samples.len() as u32
    }
}

fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

fn main() {
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let (warmup, samples) = if quick { (20, 200) } else { (200, 2000) };
    let rt = runtime();
    let mut results = Vec::new();
    let mut versions_per_restart = 0.0;

    for with_timer in [false, true] {
        let registry = Registry::new();
        let root = rt.block_on(start_tree(&registry, with_timer));
        let mut rx = registry.changes();
        let run = rt.block_on(async {
            for _ in 0..warmup {
                sample_watch(&registry, &mut rx).await;
            }
            let mut run = Vec::with_capacity(samples);
            for _ in 0..samples {
                run.push(sample_watch(&registry, &mut rx).await);
            }
            run
        });
        let name = if with_timer {
            "pincer + timer (watch)"
        } else {
            "pincer (watch)"
        };
        results.push(Stats::new(name, run));

        if !with_timer {
            let reg = registry.clone();
            let run = rt
                .block_on(rt.spawn(async move {
                    for _ in 0..warmup {
                        sample_spin(&reg).await;
                    }
                    let mut run = Vec::with_capacity(samples);
                    for _ in 0..samples {
                        run.push(sample_spin(&reg).await);
                    }
                    run
                }))
                .expect("spin task");
            results.push(Stats::new("pincer (spin)", run));
        }
        if !with_timer {
            let restarts = 2 * (warmup + samples);
            versions_per_restart = *rx.borrow() as f64 / restarts as f64;
        }
        let record = registry.get(PATH).expect("record");
        assert_eq!(
            record.restarts_total,
            u64::try_from(if with_timer { 1 } else { 2 } * (warmup + samples)).expect("fits"),
            "every kill restarted the worker once"
        );
        rt.block_on(root.stop());
    }

    let (tx, mut rx) = watch::channel(None);
    let (restarter, join) = rt
        .block_on(Actor::spawn(None, Restarter, tx))
        .expect("restarter starts");
    let run = rt.block_on(async {
        for _ in 0..warmup {
            sample_bare(&mut rx).await;
        }
        let mut run = Vec::with_capacity(samples);
        for _ in 0..samples {
            run.push(sample_bare(&mut rx).await);
        }
        run
    });
    results.push(Stats::new("bare ractor (watch)", run));
    restarter.stop(None);
    rt.block_on(join).expect("restarter ends");

    println!();
    println!(
        "kill -> running again, zero backoff ({samples} samples after {warmup} warm-up, \
         2 tokio workers; microseconds)"
    );
    println!();
    println!(
        "| {:<24} | {:>8} | {:>8} | {:>8} | {:>8} | {:>8} | {:>9} |",
        "variant", "p50", "p90", "p99", "p99.9", "max", "mean"
    );
    println!(
        "|{:-<26}|{:->10}|{:->10}|{:->10}|{:->10}|{:->10}|{:->11}|",
        "", "", "", "", "", "", ""
    );
    for s in &results {
        println!(
            "| {:<24} | {:>8} | {:>8} | {:>8} | {:>8} | {:>8} | {:>9} |",
            s.name,
            us(s.pct(50.0)),
            us(s.pct(90.0)),
            us(s.pct(99.0)),
            us(s.pct(99.9)),
            us(*s.samples.last().expect("samples")),
            us(s.mean()),
        );
    }
    println!();
    println!(
        "registry versions (watch wake-ups of a `Registry::changes` subscriber) per restart: \
         {versions_per_restart:.1}"
    );
    let main = &results[0];
    let p99 = main.pct(99.0);
    println!(
        "goal p99 < 1 ms: {} (pincer (watch) p99 = {} us)",
        if p99 < Duration::from_millis(1) {
            "met"
        } else {
            "NOT met"
        },
        us(p99)
    );
}
