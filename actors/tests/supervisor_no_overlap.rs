//! A replacement never overlaps its predecessor: before a new instance's `pre_start` runs,
//! the old one's state, the tasks in its scope (a forgotten poller) and its timer are gone,
//! however it ended (kill, panic, error, graceful stop, its supervisor killed or stopped, a
//! sibling's one_for_all restart, terminate/restart, a dynamic child replaced).

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Cmd, HOLDS_PER_INSTANCE, HolderMsg, Log, Resource, T, cell, holder, probe};
use pincer_actors::{Intensity, Registry, RootExit, Shutdown, Strategy, SupervisorSpec, testkit};
use ractor::ActorRef;

const GENEROUS: Intensity = Intensity::new(10_000, Duration::from_secs(10));
const H: &str = "r/mid/h";

fn tell(registry: &Registry, cmd: Cmd) {
    ActorRef::<HolderMsg>::from(cell(registry, H))
        .cast(HolderMsg::Cmd(cmd))
        .expect("cast");
}

async fn hammer(shutdown: Shutdown, seed: u64) {
    common::quiet_panics();
    let resource = Resource::default();
    let log = Log::new();
    let registry = Registry::new();
    let (mid, mid_handle) = SupervisorSpec::new(Strategy::OneForAll)
        .intensity(GENEROUS)
        .child(holder("h", &resource).shutdown(shutdown))
        .child(probe("s", &log))
        .into_child_spec("mid");
    let root = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(GENEROUS)
        .child(mid)
        .start_root("r", &registry)
        .await
        .expect("starts");
    let mut rng = fastrand::Rng::with_seed(seed);
    let rounds = 40;
    for round in 0..rounds {
        let old = cell(&registry, H);
        let op = rng.u8(0..9);
        match op {
            0 => registry.kill(H).expect("running"),
            1 => old.kill(),
            2 => tell(&registry, Cmd::Fail),
            3 => tell(&registry, Cmd::Panic),
            4 => registry.stop(H).expect("running"),
            5 => registry.kill("r/mid").expect("running"),
            6 => registry.stop("r/mid").expect("running"),
            7 => registry.kill("r/mid/s").expect("running"),
            _ => {
                mid_handle.terminate_child("h").await.expect("terminates");
                assert_eq!(
                    resource.holders.load(Ordering::SeqCst),
                    0,
                    "round {round}: terminate_child returned with the resource held"
                );
                mid_handle.restart_child("h").await.expect("restarts");
            }
        }
        testkit::wait_for_restart(&registry, H, &old, T).await;
        assert_eq!(
            resource.violations.load(Ordering::SeqCst),
            0,
            "round {round} (op {op}): a new instance started while the old one held the resource"
        );
        assert_eq!(
            resource.holders.load(Ordering::SeqCst),
            HOLDS_PER_INSTANCE,
            "round {round} (op {op}): holders after the restart"
        );
    }
    assert_eq!(resource.starts.load(Ordering::SeqCst), rounds + 1);
    assert!(
        resource.ticked.load(Ordering::SeqCst),
        "the timer never fired"
    );
    assert_eq!(root.stop().await, RootExit::Normal);
    assert_eq!(
        resource.holders.load(Ordering::SeqCst),
        0,
        "the tree stopped with the resource still held"
    );
    assert_eq!(resource.violations.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_overlap_with_graceful_shutdown() {
    hammer(Shutdown::Timeout(Duration::from_secs(5)), 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_overlap_with_brutal_shutdown() {
    hammer(Shutdown::Brutal, 2).await;
}

/// The same with a backoff between death and restart, and a nested supervisor killed by
/// its grandparent's one_for_all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_overlap_across_nested_restarts() {
    common::quiet_panics();
    let resource = Resource::default();
    let log = Log::new();
    let registry = Registry::new();
    let (mid, _) = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(GENEROUS)
        .child(
            holder("h", &resource).backoff(
                pincer_actors::Backoff::exponential(
                    Duration::from_millis(5),
                    Duration::from_millis(20),
                    2.0,
                )
                .with_jitter(0.0),
            ),
        )
        .into_child_spec("mid");
    let root = SupervisorSpec::new(Strategy::OneForAll)
        .intensity(GENEROUS)
        .child(probe("a", &log))
        .child(mid)
        .start_root("r", &registry)
        .await
        .expect("starts");
    for round in 0..20 {
        let old = cell(&registry, H);
        match round % 4 {
            0 => registry.kill("r/a").expect("running"),
            1 => registry.kill(H).expect("running"),
            2 => registry.kill("r/mid").expect("running"),
            _ => tell(&registry, Cmd::Panic),
        }
        testkit::wait_for_restart(&registry, H, &old, T).await;
        assert_eq!(
            resource.violations.load(Ordering::SeqCst),
            0,
            "round {round}"
        );
        assert_eq!(
            resource.holders.load(Ordering::SeqCst),
            HOLDS_PER_INSTANCE,
            "round {round}"
        );
    }
    assert_eq!(root.kill().await, RootExit::Failed("killed".into()));
    assert_eq!(resource.holders.load(Ordering::SeqCst), 0);
}

/// A dynamic child terminated and started again under the same key, at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_overlap_for_a_dynamic_key() {
    let resource = Resource::default();
    let registry = Registry::new();
    let (sessions, handle) = SupervisorSpec::dynamic(4).into_child_spec("sessions");
    let root = SupervisorSpec::new(Strategy::OneForOne)
        .child(sessions)
        .start_root("r", &registry)
        .await
        .expect("starts");
    for round in 0..20 {
        handle
            .get_or_start("k", || holder("k", &resource))
            .await
            .expect("starts");
        assert_eq!(
            resource.holders.load(Ordering::SeqCst),
            HOLDS_PER_INSTANCE,
            "round {round}"
        );
        handle.terminate_child("k").await.expect("terminates");
        assert_eq!(resource.holders.load(Ordering::SeqCst), 0, "round {round}");
    }
    assert_eq!(resource.violations.load(Ordering::SeqCst), 0);
    assert_eq!(resource.starts.load(Ordering::SeqCst), 20);
    root.stop().await;
}
