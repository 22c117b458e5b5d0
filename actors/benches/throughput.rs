//! Message throughput through a supervised actor vs a bare ractor actor.
//!
//! Each iteration casts N = 10,000 `Inc` messages to a counting actor, then calls it with
//! a `Flush` that carries a reply port; the iteration ends when the reply arrives, so all
//! N messages have been processed. Criterion reports elements (messages) per second.
//!
//! - `bare_ractor`: the counter spawned with `ractor::Actor::spawn`.
//! - `supervised`: the same counter started by `SupervisorHandle::start_child` under a
//!   dynamic supervisor; messages go to the `ActorRef` returned once.
//! - `supervised_lookup_each`: as `supervised`, but every cast first looks the child up
//!   with `SupervisorHandle::get_ref` (the lock-and-clone a caller pays when it does not
//!   keep the reference).
//! - `supervised_timer_reset`: a supervised counter that also re-arms an idle `Timer` on
//!   every message (the session pattern the timer is made for).
//!
//! Goal: `supervised` within 10 % of `bare_ractor`.
//!
//! Run: `cargo bench -p pincer-actors --bench throughput`

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_main};
use pincer_actors::{ChildSpec, Registry, Scope, SupervisorHandle, SupervisorSpec, Timer};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

mod common;
use common::runtime;

/// Messages per iteration.
const N: u64 = 10_000;

enum Msg {
    Inc,
    Flush(RpcReplyPort<u64>),
    Idle,
}

/// Counts `Inc`; with a timer, re-arms it on every message.
struct Counter;

struct CounterState {
    count: u64,
    idle: Option<Timer>,
}

impl Actor for Counter {
    type Msg = Msg;
    type State = CounterState;
    /// The scope to put an idle timer in, if any.
    type Arguments = Option<Scope>;

    async fn pre_start(
        &self,
        myself: ActorRef<Msg>,
        scope: Option<Scope>,
    ) -> Result<CounterState, ActorProcessingErr> {
        let idle = scope.map(|scope| {
            let timer = Timer::new(&scope, myself, || Msg::Idle);
            timer.arm(Duration::from_secs(3600));
            timer
        });
        Ok(CounterState { count: 0, idle })
    }

    async fn handle(
        &self,
        _: ActorRef<Msg>,
        msg: Msg,
        state: &mut CounterState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(timer) = &state.idle {
            timer.arm(Duration::from_secs(3600));
        }
        match msg {
            Msg::Inc => state.count += 1,
            Msg::Flush(reply) => {
                let _ = reply.send(state.count);
            }
            Msg::Idle => {}
        }
        Ok(())
    }
}

async fn flush(actor: &ActorRef<Msg>) -> u64 {
    ractor::call!(actor, Msg::Flush).expect("flush answered")
}

/// N casts to `actor`, then a flush.
async fn burst(actor: &ActorRef<Msg>) {
    let before = flush(actor).await;
    for _ in 0..N {
        actor.cast(Msg::Inc).expect("cast");
    }
    assert_eq!(flush(actor).await, before + N);
}

/// N casts, each to a reference looked up through the handle, then a flush.
async fn burst_lookup(handle: &SupervisorHandle, id: &str) {
    let lookup = || handle.get_ref::<Msg>(id).expect("child running");
    let before = flush(&lookup()).await;
    for _ in 0..N {
        lookup().cast(Msg::Inc).expect("cast");
    }
    assert_eq!(flush(&lookup()).await, before + N);
}

fn throughput(c: &mut Criterion) {
    let rt = runtime();
    let registry = Registry::new();
    let root = rt
        .block_on(SupervisorSpec::dynamic(16).start_root("bench", &registry))
        .expect("root starts");
    let handle = root.supervisor().clone();

    let (bare, bare_join) = rt
        .block_on(Actor::spawn(None, Counter, None))
        .expect("bare counter starts");
    let supervised: ActorRef<Msg> = rt
        .block_on(handle.start_child(ChildSpec::new("counter", |_| (Counter, None))))
        .expect("supervised counter starts")
        .into();
    let timed: ActorRef<Msg> = rt
        .block_on(handle.start_child(ChildSpec::new("timed", |ctx| {
            (Counter, Some(ctx.scope().clone()))
        })))
        .expect("timed counter starts")
        .into();

    let mut group = c.benchmark_group("throughput_10k_casts");
    group.throughput(Throughput::Elements(N));
    group.bench_function("bare_ractor", |b| b.to_async(&rt).iter(|| burst(&bare)));
    group.bench_function("supervised", |b| {
        b.to_async(&rt).iter(|| burst(&supervised));
    });
    group.bench_function("supervised_lookup_each", |b| {
        b.to_async(&rt).iter(|| burst_lookup(&handle, "counter"));
    });
    group.bench_function("supervised_timer_reset", |b| {
        b.to_async(&rt).iter(|| burst(&timed));
    });
    group.finish();

    bare.stop(None);
    rt.block_on(bare_join).expect("bare counter ends");
    rt.block_on(root.stop());
}

/// Criterion's entry points (the macro generates an undocumented `pub fn`).
#[allow(missing_docs, unreachable_pub)]
mod entry {
    criterion::criterion_group!(benches, super::throughput);
}

criterion_main!(entry::benches);
