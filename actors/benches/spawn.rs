//! Spawn of a supervised child vs a bare ractor actor.
//!
//! Measures one start + stop of a trivial actor (no state, no messages):
//!
//! - `bare_ractor`: `ractor::Actor::spawn`, then `stop` and await its join handle.
//! - `bare_ractor_linked`: the same with `Actor::spawn_linked` under a parent that ignores
//!   supervision events (what linking alone costs in ractor).
//! - `supervised`: `SupervisorHandle::start_child` under a dynamic supervisor
//!   (`SupervisorSpec::dynamic(..)` as the root of a tree), then `terminate_child`, which
//!   returns once the child has stopped and its scope is closed.
//!
//! The `*_start` and `*_stop` entries time only one half of the same round trip (the
//! other half runs untimed in the same iteration).
//!
//! Run: `cargo bench -p pincer-actors --bench spawn`

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_main};
use pincer_actors::{ChildSpec, Registry, SupervisorHandle, SupervisorSpec};
use ractor::{Actor, ActorCell, ActorRef};

mod common;
use common::{Idle, Parent, runtime};

fn spec() -> ChildSpec {
    ChildSpec::new("w", |_| (Idle, None))
}

async fn bare(parent: Option<&ActorCell>) -> (ActorRef<()>, tokio::task::JoinHandle<()>) {
    match parent {
        None => Actor::spawn(None, Idle, None).await,
        Some(parent) => Actor::spawn_linked(None, Idle, None, parent.clone()).await,
    }
    .expect("spawn")
}

async fn supervised_round(handle: &SupervisorHandle) -> (Duration, Duration) {
    let t0 = Instant::now();
    handle.start_child(spec()).await.expect("start_child");
    let t1 = Instant::now();
    handle.terminate_child("w").await.expect("terminate_child");
    (t1 - t0, t1.elapsed())
}

async fn bare_round(parent: Option<&ActorCell>) -> (Duration, Duration) {
    let t0 = Instant::now();
    let (actor, join) = bare(parent).await;
    let t1 = Instant::now();
    actor.stop(None);
    join.await.expect("join");
    (t1 - t0, t1.elapsed())
}

fn spawn_stop(c: &mut Criterion) {
    let rt = runtime();
    let registry = Registry::new();
    let root = rt
        .block_on(SupervisorSpec::dynamic(16).start_root("bench", &registry))
        .expect("root starts");
    let handle = root.supervisor().clone();
    let (parent, _) = rt
        .block_on(Actor::spawn(None, Parent, ()))
        .expect("parent starts");
    let parent = parent.get_cell();

    let mut group = c.benchmark_group("spawn_stop");
    group.bench_function("bare_ractor", |b| {
        b.to_async(&rt).iter(|| bare_round(None));
    });
    group.bench_function("bare_ractor_linked", |b| {
        b.to_async(&rt).iter(|| bare_round(Some(&parent)));
    });
    group.bench_function("supervised", |b| {
        b.to_async(&rt).iter(|| supervised_round(&handle));
    });
    group.finish();

    // The two halves of the same round trips, timed separately.
    let mut group = c.benchmark_group("spawn_stop_halves");
    for (name, start) in [("start", true), ("stop", false)] {
        let pick = move |(s, t): (Duration, Duration)| if start { s } else { t };
        group.bench_function(format!("bare_ractor_{name}"), |b| {
            b.to_async(&rt).iter_custom(|iters| async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += pick(bare_round(None).await);
                }
                total
            });
        });
        group.bench_function(format!("supervised_{name}"), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let handle = handle.clone();
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += pick(supervised_round(&handle).await);
                    }
                    total
                }
            });
        });
    }
    group.finish();

    rt.block_on(root.stop());
    parent.stop(None);
}

/// Criterion's entry points (the macro generates an undocumented `pub fn`).
#[allow(missing_docs, unreachable_pub)]
mod entry {
    criterion::criterion_group!(benches, super::spawn_stop);
}

criterion_main!(entry::benches);
