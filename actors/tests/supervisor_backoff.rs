//! Restart backoff: the n-th consecutive restart waits `initial * factor^(n-1)` after the
//! death (never earlier, not much later), the registry shows `restarting` with the attempt
//! and the delay meanwhile, the supervisor stays responsive, and the attempt count resets
//! after `reset_after` of stable running.
//!
//! The delays are tokio sleeps, so these tests run on tokio's paused clock: a delay of
//! seconds passes at once, and the time from a death to the next start is exactly the
//! delay. The reset after a stable run is the exception: the supervisor measures the run
//! on the real clock, so that test waits in real time.

mod common;

use std::time::Duration;

use tokio::time::Instant;

use common::{Log, ProbeCfg, T, barrier, cell, probe, wait_for_state};
use pincer_actors::{
    ActorState, Backoff, Intensity, Registry, RootExit, Strategy, SupervisorSpec, testkit,
};

const WINDOW: Duration = Duration::from_secs(30);

fn backoff(initial_ms: u64) -> Backoff {
    Backoff::exponential(
        Duration::from_millis(initial_ms),
        Duration::from_secs(10),
        2.0,
    )
    .with_jitter(0.0)
}

fn restarting(attempt: u32, next_delay_ms: u64) -> ActorState {
    ActorState::Restarting {
        attempt,
        next_delay_ms,
    }
}

#[tokio::test(start_paused = true)]
async fn delays_grow_exponentially() {
    let log = Log::new();
    let registry = Registry::new();
    let b = ProbeCfg::new("b", &log);
    let root = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(Intensity::new(10, WINDOW))
        .child(b.spec("b").backoff(backoff(50)))
        .start_root("r", &registry)
        .await
        .expect("starts");
    for (i, delay_ms) in [50u64, 100, 200].into_iter().enumerate() {
        let attempt = u32::try_from(i + 1).expect("small");
        let old = cell(&registry, "r/b");
        let died = Instant::now();
        registry.kill("r/b").expect("running");
        let rec = wait_for_state(&registry, "r/b", |s| {
            matches!(s, ActorState::Restarting { .. })
        })
        .await;
        assert_eq!(rec.state, restarting(attempt, delay_ms));
        assert!(registry.cell("r/b").is_none());
        assert_eq!(rec.uptime_ms, None);
        testkit::wait_for_restart(&registry, "r/b", &old, T).await;
        let took = b.start_time(i + 2).duration_since(died);
        assert_eq!(took, Duration::from_millis(delay_ms), "restart {attempt}");
    }
    assert_eq!(registry.get("r/b").expect("b").restarts_total, 3);
    root.stop().await;
}

/// In real time: the supervisor times the stable run with std's clock, which a paused
/// tokio clock does not move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempt_resets_after_a_stable_run() {
    let log = Log::new();
    let registry = Registry::new();
    let reset_after = Duration::from_millis(250);
    let root = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(Intensity::new(10, WINDOW))
        .child(probe("b", &log).backoff(backoff(20).with_reset_after(reset_after)))
        .start_root("r", &registry)
        .await
        .expect("starts");
    for (attempt, delay_ms) in [(1, 20), (2, 40), (3, 80)] {
        let old = cell(&registry, "r/b");
        registry.kill("r/b").expect("running");
        let rec = wait_for_state(&registry, "r/b", |s| {
            matches!(s, ActorState::Restarting { .. })
        })
        .await;
        assert_eq!(rec.state, restarting(attempt, delay_ms));
        testkit::wait_for_restart(&registry, "r/b", &old, T).await;
    }
    // A stable run: the next restart is a first one again.
    let margin = u64::try_from(reset_after.as_millis()).expect("small") + 30;
    testkit::wait_for_record(&registry, "r/b", T, |r| {
        r.uptime_ms.is_some_and(|u| u >= margin)
    })
    .await;
    let old = cell(&registry, "r/b");
    registry.kill("r/b").expect("running");
    let rec = wait_for_state(&registry, "r/b", |s| {
        matches!(s, ActorState::Restarting { .. })
    })
    .await;
    assert_eq!(rec.state, restarting(1, 20));
    testkit::wait_for_restart(&registry, "r/b", &old, T).await;
    // And it grows again from there.
    let old = cell(&registry, "r/b");
    registry.kill("r/b").expect("running");
    let rec = wait_for_state(&registry, "r/b", |s| {
        matches!(s, ActorState::Restarting { .. })
    })
    .await;
    assert_eq!(rec.state, restarting(2, 40));
    testkit::wait_for_restart(&registry, "r/b", &old, T).await;
    root.stop().await;
}

/// Jitter shortens a delay by at most its fraction, and the registry shows the real delay.
#[tokio::test(start_paused = true)]
async fn jittered_delay_is_shown_and_kept() {
    let log = Log::new();
    let registry = Registry::new();
    let b = ProbeCfg::new("b", &log);
    let root = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(Intensity::new(10, WINDOW))
        .child(b.spec("b").backoff(backoff(200).with_jitter(0.5)))
        .start_root("r", &registry)
        .await
        .expect("starts");
    let old = cell(&registry, "r/b");
    let died = Instant::now();
    registry.kill("r/b").expect("running");
    let rec = wait_for_state(&registry, "r/b", |s| {
        matches!(s, ActorState::Restarting { .. })
    })
    .await;
    let ActorState::Restarting {
        attempt,
        next_delay_ms,
    } = rec.state
    else {
        unreachable!()
    };
    assert_eq!(attempt, 1);
    assert!((100..=200).contains(&next_delay_ms), "{next_delay_ms}");
    testkit::wait_for_restart(&registry, "r/b", &old, T).await;
    // The registry shows whole milliseconds; timers fire on the next millisecond.
    let took = b.start_time(2).duration_since(died);
    let shown = Duration::from_millis(next_delay_ms);
    assert!(
        took >= shown && took <= shown + Duration::from_millis(1),
        "restarted {took:?} after the death, the registry showed {shown:?}"
    );
    root.stop().await;
}

/// While one child waits for its restart, the supervisor answers calls and restarts
/// another child at once.
#[tokio::test(start_paused = true)]
async fn supervisor_stays_responsive_during_a_backoff() {
    let log = Log::new();
    let registry = Registry::new();
    let slow_probe = ProbeCfg::new("slow", &log);
    let root = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(Intensity::new(10, WINDOW))
        .child(slow_probe.spec("slow").backoff(backoff(1_000)))
        .child(probe("fast", &log))
        .start_root("r", &registry)
        .await
        .expect("starts");
    let slow = cell(&registry, "r/slow");
    let killed = Instant::now();
    registry.kill("r/slow").expect("running");
    wait_for_state(&registry, "r/slow", |s| {
        matches!(s, ActorState::Restarting { .. })
    })
    .await;
    let children = root.supervisor().which_children().await.expect("answers");
    assert!(children[0].cell.is_none());
    assert!(children[1].cell.is_some());
    let fast = cell(&registry, "r/fast");
    registry.kill("r/fast").expect("running");
    testkit::wait_for_restart(&registry, "r/fast", &fast, T).await;
    assert!(
        killed.elapsed() < Duration::from_secs(1),
        "the fast restart waited for the slow one ({:?})",
        killed.elapsed()
    );
    assert_eq!(
        common::state_of(&registry, "r/slow"),
        "restarting",
        "the slow child restarted early"
    );
    testkit::wait_for_restart(&registry, "r/slow", &slow, T).await;
    assert_eq!(
        slow_probe.start_time(2).duration_since(killed),
        Duration::from_secs(1)
    );
    root.stop().await;
}

/// Stopping the tree during a backoff cancels the pending restart at once.
#[tokio::test(start_paused = true)]
async fn stop_during_a_backoff_cancels_the_restart() {
    let log = Log::new();
    let registry = Registry::new();
    let b = ProbeCfg::new("b", &log);
    let root = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(Intensity::new(10, WINDOW))
        .child(b.spec("b").backoff(backoff(2_000)))
        .child(probe("c", &log))
        .start_root("r", &registry)
        .await
        .expect("starts");
    registry.kill("r/b").expect("running");
    wait_for_state(&registry, "r/b", |s| {
        matches!(s, ActorState::Restarting { .. })
    })
    .await;
    let started = Instant::now();
    assert_eq!(root.stop().await, RootExit::Normal);
    assert_eq!(started.elapsed(), Duration::ZERO, "the stop waited");
    assert_eq!(common::state_of(&registry, "r/b"), "stopped");
    // Past the whole backoff (at once, on the paused clock): no restart ever came.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(b.start_count(), 1);
}

/// one_for_all with a backoff: the whole group waits the delay of the child that failed.
#[tokio::test(start_paused = true)]
async fn group_restart_waits_for_the_cause_backoff() {
    let log = Log::new();
    let registry = Registry::new();
    let a = ProbeCfg::new("a", &log);
    let root = SupervisorSpec::new(Strategy::OneForAll)
        .intensity(Intensity::new(10, WINDOW))
        .child(a.spec("a"))
        .child(probe("b", &log).backoff(backoff(100)))
        .start_root("r", &registry)
        .await
        .expect("starts");
    let old = cell(&registry, "r/a");
    let died = Instant::now();
    registry.kill("r/b").expect("running");
    let rec = wait_for_state(&registry, "r/a", |s| {
        matches!(s, ActorState::Restarting { .. })
    })
    .await;
    assert_eq!(rec.state, restarting(1, 100));
    assert_eq!(registry.get("r/b").expect("b").state, restarting(1, 100));
    testkit::wait_for_restart(&registry, "r/a", &old, T).await;
    let took = a.start_time(2).duration_since(died);
    assert_eq!(took, Duration::from_millis(100));
    common::wait_running(&registry, "r/b").await;
    barrier(root.supervisor()).await;
    root.stop().await;
}
