//! Restart intensity: one restart more than allowed within the window makes a supervisor
//! stop its children in reverse order and fail; its parent restarts it, and exhausting the
//! parent escalates to the root. Failed restart attempts (a `pre_start` that fails) count,
//! are retried, and escalate; they never end in a silent stop.

mod common;

use std::time::Duration;

use common::{Cmd, Log, ProbeCfg, T, barrier, cell, ev, probe, send, wait_for_state, wait_running};
use pincer_actors::{
    ActorState, Backoff, ChildKind, Intensity, Registry, RootExit, Strategy, SupervisorError,
    SupervisorSpec, testkit,
};

const WINDOW: Duration = Duration::from_secs(30);

fn no_jitter(initial_ms: u64) -> Backoff {
    Backoff::exponential(
        Duration::from_millis(initial_ms),
        Duration::from_secs(10),
        2.0,
    )
    .with_jitter(0.0)
}

/// Kills the running instance at `path` and waits until a new one runs.
async fn crash_and_wait(registry: &Registry, path: &str) {
    let old = cell(registry, path);
    registry.kill(path).expect("running");
    testkit::wait_for_restart(registry, path, &old, T).await;
}

/// Two levels: `r` (1 restart allowed) → `r/mid` (2 allowed) → `x`, `y`, `w`; `y` keeps
/// failing. On tokio's paused clock, so mid's 300 ms backoff passes at once.
#[tokio::test(start_paused = true)]
async fn escalates_through_two_levels_to_the_root() {
    common::quiet_panics();
    let log = Log::new();
    let registry = Registry::new();
    let (mid, mid_handle) = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(Intensity::new(2, WINDOW))
        .child(probe("x", &log))
        .child(probe("y", &log))
        .child(probe("w", &log))
        .into_child_spec("mid");
    let root = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(Intensity::new(1, WINDOW))
        .child(probe("a", &log))
        // A backoff on `mid`, so that its `restarting` state can be seen.
        .child(mid.backoff(no_jitter(300)))
        .child(probe("z", &log))
        .start_root("r", &registry)
        .await
        .expect("starts");
    assert_eq!(mid_handle.path(), "r/mid");
    assert_eq!(
        log.take(),
        ev(&["start:a", "start:x", "start:y", "start:w", "start:z"])
    );

    // Two restarts of y are within mid's intensity, each in a different way.
    let old = cell(&registry, "r/mid/y");
    send(&registry, "r/mid/y", Cmd::Fail);
    testkit::wait_for_restart(&registry, "r/mid/y", &old, T).await;
    let old = cell(&registry, "r/mid/y");
    send(&registry, "r/mid/y", Cmd::Panic);
    let rec = testkit::wait_for_restart(&registry, "r/mid/y", &old, T).await;
    assert_eq!(rec.restarts_total, 2);
    assert_eq!(rec.restarts_in_window, 2);
    assert!(
        rec.last_error
            .as_deref()
            .unwrap_or("")
            .contains("test-panic")
    );
    assert_eq!(log.take(), ev(&["start:y", "start:y"]));
    let mid_cell = cell(&registry, "r/mid");

    // The third: mid gives up, stopping w then x (y is dead), and fails.
    registry.kill("r/mid/y").expect("running");
    let rec = wait_for_state(&registry, "r/mid", |s| {
        matches!(s, ActorState::Restarting { .. })
    })
    .await;
    assert_eq!(
        rec.state,
        ActorState::Restarting {
            attempt: 1,
            next_delay_ms: 300
        }
    );
    assert_eq!(rec.restarts_total, 1);
    assert_eq!(rec.restarts_in_window, 1);
    let error = rec.last_error.expect("mid's failure is recorded");
    assert!(
        error.starts_with("restart intensity exceeded (2 restarts in 30s)"),
        "{error}"
    );
    assert!(error.contains("r/mid/y: killed"), "{error}");
    // While mid waits for its restart: y failed, its siblings stopped, no cells.
    assert_eq!(common::state_of(&registry, "r/mid/y"), "failed");
    assert_eq!(common::state_of(&registry, "r/mid/x"), "stopped");
    assert_eq!(common::state_of(&registry, "r/mid/w"), "stopped");
    for path in ["r/mid", "r/mid/x", "r/mid/y", "r/mid/w"] {
        assert!(registry.cell(path).is_none(), "{path} has a cell");
    }
    assert!(!mid_handle.is_running());
    assert_eq!(
        mid_handle
            .start_child(probe("late", &log))
            .await
            .unwrap_err(),
        SupervisorError::Unavailable("r/mid".into())
    );
    assert_eq!(common::state_of(&registry, "r/a"), "running");
    assert_eq!(common::state_of(&registry, "r/z"), "running");
    assert_eq!(log.take(), ev(&["stop:w", "stop:x"]));

    // The root restarts mid after its backoff, with a fresh restart log.
    let rec = testkit::wait_for_restart(&registry, "r/mid", &mid_cell, T).await;
    assert_eq!(rec.restarts_total, 1);
    for path in ["r/mid/x", "r/mid/y", "r/mid/w"] {
        wait_running(&registry, path).await;
    }
    assert!(mid_handle.is_running());
    assert_eq!(mid_handle.len(), 3);
    assert_eq!(log.take(), ev(&["start:x", "start:y", "start:w"]));
    // y's record keeps its history across mid's restart.
    let y = registry.get("r/mid/y").expect("y");
    assert_eq!(y.restarts_total, 2);

    // Exhaust mid again: the root has no restart left and fails.
    crash_and_wait(&registry, "r/mid/y").await;
    crash_and_wait(&registry, "r/mid/y").await;
    assert_eq!(registry.get("r/mid/y").expect("y").restarts_total, 4);
    log.take();
    registry.kill("r/mid/y").expect("running");
    let exit = root.wait().await;
    let RootExit::Failed(error) = exit else {
        panic!("root should fail, got {exit:?}");
    };
    assert!(
        error.starts_with("restart intensity exceeded (1 restarts in 30s): r/mid: restart intensity exceeded (2 restarts in 30s)"),
        "{error}"
    );
    // mid stopped w, x; then the root stopped z, a (mid was already down).
    assert_eq!(log.take(), ev(&["stop:w", "stop:x", "stop:z", "stop:a"]));
    let expect = [
        ("r", "failed"),
        ("r/a", "stopped"),
        ("r/mid", "failed"),
        ("r/mid/x", "stopped"),
        ("r/mid/y", "failed"),
        ("r/mid/w", "stopped"),
        ("r/z", "stopped"),
    ];
    for (path, state) in expect {
        assert_eq!(common::state_of(&registry, path), state, "{path}");
        assert!(registry.cell(path).is_none(), "{path} has a cell");
    }
    let mid = registry.get("r/mid").expect("mid");
    assert!(
        mid.last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("restart intensity exceeded (2 restarts in 30s)")),
        "{:?}",
        mid.last_error
    );
    assert_eq!(mid.restarts_total, 1);
    assert_eq!(registry.get("r/a").expect("a").restarts_total, 0);
}

/// one_for_all counts one restart per failure, not one per sibling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_for_all_counts_one_restart_per_failure() {
    let log = Log::new();
    let registry = Registry::new();
    let root = SupervisorSpec::new(Strategy::OneForAll)
        .intensity(Intensity::new(1, WINDOW))
        .child(probe("a", &log))
        .child(probe("b", &log))
        .child(probe("c", &log))
        .start_root("r", &registry)
        .await
        .expect("starts");
    // One failure, three children restarted: one restart in the log.
    let old = cell(&registry, "r/a");
    registry.kill("r/b").expect("running");
    testkit::wait_for_restart(&registry, "r/a", &old, T).await;
    for path in ["r/b", "r/c"] {
        wait_running(&registry, path).await;
    }
    barrier(root.supervisor()).await;
    for path in ["r/a", "r/b", "r/c"] {
        let rec = registry.get(path).expect("record");
        assert_eq!(rec.restarts_total, 1, "{path}");
        assert_eq!(rec.state, ActorState::Running, "{path}");
    }
    // The second failure is one too many.
    registry.kill("r/c").expect("running");
    let exit = root.wait().await;
    assert!(
        matches!(&exit, RootExit::Failed(e) if e.contains("restart intensity exceeded (1 restarts")),
        "{exit:?}"
    );
    assert_eq!(common::state_of(&registry, "r/c"), "failed");
    assert_eq!(common::state_of(&registry, "r/a"), "stopped");
    assert_eq!(common::state_of(&registry, "r/b"), "stopped");
}

/// Intensity zero: the first failure escalates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_intensity_escalates_at_once() {
    let log = Log::new();
    let registry = Registry::new();
    let root = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(Intensity::new(0, WINDOW))
        .child(probe("a", &log))
        .child(probe("b", &log))
        .start_root("r", &registry)
        .await
        .expect("starts");
    registry.stop("r/b").expect("running");
    let exit = root.wait().await;
    assert!(
        matches!(&exit, RootExit::Failed(e) if e.contains("r/b stopped")),
        "{exit:?}"
    );
    assert_eq!(log.take(), ev(&["start:a", "start:b", "stop:b", "stop:a"]));
}

/// Restarts that slide out of the window no longer count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_outside_the_window_do_not_count() {
    let log = Log::new();
    let registry = Registry::new();
    let window = Duration::from_millis(300);
    let root = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(Intensity::new(1, window))
        .child(probe("a", &log))
        .start_root("r", &registry)
        .await
        .expect("starts");
    crash_and_wait(&registry, "r/a").await;
    assert_eq!(registry.get("r/a").expect("a").restarts_in_window, 1);
    // Wait until the restart has left the window as the registry sees it. The registry
    // counts a restart after the supervisor has logged it, so the supervisor's entry has
    // left its window by then too: no margin needed.
    let rec = testkit::wait_for_record(&registry, "r/a", T, |r| r.restarts_in_window == 0).await;
    assert_eq!(rec.restarts_total, 1);
    crash_and_wait(&registry, "r/a").await;
    let rec = registry.get("r/a").expect("a");
    assert_eq!(rec.restarts_total, 2);
    assert_eq!(rec.restarts_in_window, 1);
    assert_eq!(common::state_of(&registry, "r"), "running");
    root.stop().await;
}

/// A restarted child whose `pre_start` fails on its 2nd and 3rd calls: each failure counts
/// as a restart and is retried (after its backoff); the 4th start succeeds. On tokio's
/// paused clock, so the backoffs (100, 200 and 400 ms) pass at once.
#[tokio::test(start_paused = true)]
async fn failing_restart_is_retried_and_counted() {
    let log = Log::new();
    let registry = Registry::new();
    let flaky = ProbeCfg::new("f", &log).fail_start(|n| n == 2 || n == 3);
    let root = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(Intensity::new(5, WINDOW))
        .child(probe("a", &log))
        .child(flaky.spec("f").backoff(no_jitter(100)))
        .start_root("r", &registry)
        .await
        .expect("starts");
    let old = cell(&registry, "r/f");
    registry.kill("r/f").expect("running");
    let rec = wait_for_state(&registry, "r/f", |s| {
        matches!(s, ActorState::Restarting { .. })
    })
    .await;
    assert_eq!(
        rec.state,
        ActorState::Restarting {
            attempt: 1,
            next_delay_ms: 100
        }
    );
    assert_eq!(rec.restarts_total, 1);
    // The first attempt fails: counted, retried after a longer delay.
    let rec = wait_for_state(&registry, "r/f", |s| {
        matches!(s, ActorState::Restarting { attempt: 2, .. })
    })
    .await;
    assert_eq!(
        rec.state,
        ActorState::Restarting {
            attempt: 2,
            next_delay_ms: 200
        }
    );
    assert_eq!(rec.restarts_total, 2);
    assert!(
        rec.last_error
            .as_deref()
            .is_some_and(|e| e.contains("f refused start #2")),
        "{:?}",
        rec.last_error
    );
    let rec = testkit::wait_for_restart(&registry, "r/f", &old, T).await;
    assert_eq!(rec.restarts_total, 3);
    assert_eq!(rec.restarts_in_window, 3);
    assert_eq!(flaky.start_count(), 4);
    assert_eq!(
        log.take(),
        ev(&[
            "start:a",
            "start:f",
            "start:f",
            "start-failed:f",
            "start:f",
            "start-failed:f",
            "start:f"
        ])
    );
    assert_eq!(common::state_of(&registry, "r/a"), "running");
    root.stop().await;
}

/// A restarted child that can never start again exhausts its supervisor, whose restart
/// (first start of the child fails again) exhausts the root: never a silent stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_restarts_escalate() {
    let log = Log::new();
    let registry = Registry::new();
    let broken = ProbeCfg::new("y", &log).fail_start(|n| n >= 2);
    let (mid, _) = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(Intensity::new(2, WINDOW))
        .child(probe("x", &log))
        .child(broken.spec("y"))
        .into_child_spec("mid");
    let root = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(Intensity::new(1, WINDOW))
        .child(probe("a", &log))
        .child(mid)
        .start_root("r", &registry)
        .await
        .expect("starts");
    log.take();
    registry.kill("r/mid/y").expect("running");
    let exit = root.wait().await;
    let RootExit::Failed(error) = exit else {
        panic!("root should fail, got {exit:?}");
    };
    // The root counted mid's failure (1) and the failed restart of mid (2 > 1).
    assert!(
        error.starts_with("restart intensity exceeded (1 restarts in 30s)"),
        "{error}"
    );
    assert!(error.contains("mid"), "{error}");
    // y: killed, 2 failed restart attempts in mid (the second one too many); then mid's
    // restart tried y once more, which failed mid's start after stopping x.
    assert_eq!(broken.start_count(), 4);
    assert_eq!(
        log.take(),
        ev(&[
            "start:y",
            "start-failed:y",
            "start:y",
            "start-failed:y",
            "stop:x",
            "start:x",
            "start:y",
            "start-failed:y",
            "stop:x",
            "stop:a",
        ])
    );
    let y = registry.get("r/mid/y").expect("y");
    assert_eq!(y.state, ActorState::Failed);
    assert_eq!(y.restarts_total, 2);
    assert!(
        y.last_error
            .as_deref()
            .is_some_and(|e| e.contains("y refused start")),
        "{:?}",
        y.last_error
    );
    let mid = registry.get("r/mid").expect("mid");
    assert_eq!(mid.state, ActorState::Failed);
    assert_eq!(mid.kind, ChildKind::Supervisor);
    assert_eq!(mid.restarts_total, 1);
    assert_eq!(common::state_of(&registry, "r/mid/x"), "stopped");
    assert_eq!(common::state_of(&registry, "r/a"), "stopped");
    assert_eq!(common::state_of(&registry, "r"), "failed");
}
