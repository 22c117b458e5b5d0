//! Lifecycle order: children start in declaration order, each start (a nested supervisor's
//! whole subtree included) finishing before the next; they stop in reverse order, subtrees
//! first, `post_stop` running, a child that hangs in `post_stop` killed after its shutdown
//! timeout; a failed first start fails the whole start after stopping what had started.

mod common;

use std::time::{Duration, Instant};

use common::{Log, PostStop, ProbeCfg, T, barrier, cell, ev, probe, wait_for_state};
use pincer_actors::{
    ActorState, Intensity, Registry, RootExit, Shutdown, Strategy, SupervisorError, SupervisorSpec,
    testkit,
};

const DELAY: Duration = Duration::from_millis(15);

fn slow(id: &str, log: &Log) -> ProbeCfg {
    ProbeCfg::new(id, log).start_delay(DELAY)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_in_order_each_finishing_first_and_stops_in_reverse() {
    let log = Log::new();
    let registry = Registry::new();
    let (sub, _) = SupervisorSpec::new(Strategy::OneForOne)
        .child(slow("x", &log).spec("x"))
        .child(slow("y", &log).spec("y"))
        .into_child_spec("sub");
    let root = SupervisorSpec::new(Strategy::OneForOne)
        .child(slow("a", &log).spec("a"))
        .child(sub)
        .child(slow("b", &log).spec("b"))
        .start_root("r", &registry)
        .await
        .expect("starts");
    // start_root returns once everything has started.
    assert_eq!(
        log.take(),
        ev(&[
            "start:a",
            "started:a",
            "start:x",
            "started:x",
            "start:y",
            "started:y",
            "start:b",
            "started:b",
        ])
    );
    for path in ["r", "r/a", "r/sub", "r/sub/x", "r/sub/y", "r/b"] {
        assert_eq!(common::state_of(&registry, path), "running", "{path}");
    }

    assert_eq!(root.stop().await, RootExit::Normal);
    assert_eq!(log.take(), ev(&["stop:b", "stop:y", "stop:x", "stop:a"]));
    for path in ["r", "r/a", "r/sub", "r/sub/x", "r/sub/y", "r/b"] {
        assert_eq!(common::state_of(&registry, path), "stopped", "{path}");
        assert!(registry.cell(path).is_none(), "{path} has a cell");
    }
    // wait() after the end returns at once, with the same answer.
    assert_eq!(root.wait().await, RootExit::Normal);
}

/// Each stop finishes (its `post_stop` returns) before the previous sibling is stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_stop_finishes_before_the_next() {
    let log = Log::new();
    let registry = Registry::new();
    let slow_stop = |id: &str| {
        ProbeCfg::new(id, &log)
            .post_stop(PostStop::Sleep(DELAY))
            .spec(id)
    };
    let (sub, _) = SupervisorSpec::new(Strategy::OneForOne)
        .child(slow_stop("x"))
        .child(slow_stop("y"))
        .into_child_spec("sub");
    let root = SupervisorSpec::new(Strategy::OneForOne)
        .child(slow_stop("a"))
        .child(sub)
        // Infinity waits however long post_stop takes.
        .child(slow_stop("b").shutdown(Shutdown::Infinity))
        .start_root("r", &registry)
        .await
        .expect("starts");
    log.take();
    assert_eq!(root.stop().await, RootExit::Normal);
    assert_eq!(
        log.take(),
        ev(&[
            "stop:b",
            "stopped:b",
            "stop:y",
            "stopped:y",
            "stop:x",
            "stopped:x",
            "stop:a",
            "stopped:a",
        ])
    );
}

/// A child whose `post_stop` never returns is killed after its shutdown timeout, and the
/// stop goes on with its elder siblings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_post_stop_is_killed_after_the_shutdown_timeout() {
    let log = Log::new();
    let registry = Registry::new();
    let limit = Duration::from_millis(200);
    let root = SupervisorSpec::new(Strategy::OneForOne)
        .child(probe("a", &log))
        .child(
            ProbeCfg::new("h", &log)
                .post_stop(PostStop::Hang)
                .spec("h")
                .shutdown(Shutdown::Timeout(limit)),
        )
        .child(probe("b", &log))
        .start_root("r", &registry)
        .await
        .expect("starts");
    log.take();
    let started = Instant::now();
    assert_eq!(root.stop().await, RootExit::Normal);
    let took = started.elapsed();
    assert!(took >= limit, "stopped after {took:?}, before the timeout");
    assert!(took < limit + Duration::from_secs(3), "took {took:?}");
    assert_eq!(log.take(), ev(&["stop:b", "stop:h", "stop:a"]));
    assert_eq!(common::state_of(&registry, "r/h"), "stopped");
}

/// A brutal shutdown kills at once: no `post_stop`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brutal_shutdown_skips_post_stop() {
    let log = Log::new();
    let registry = Registry::new();
    let root = SupervisorSpec::new(Strategy::OneForOne)
        .child(probe("a", &log))
        .child(
            ProbeCfg::new("k", &log)
                .post_stop(PostStop::Hang)
                .spec("k")
                .shutdown(Shutdown::Brutal),
        )
        .start_root("r", &registry)
        .await
        .expect("starts");
    log.take();
    let started = Instant::now();
    assert_eq!(root.stop().await, RootExit::Normal);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(log.take(), ev(&["stop:a"]));
}

/// A sibling stopped by one_for_all that hangs in `post_stop` is killed after its timeout,
/// then the group starts again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_sibling_does_not_block_a_restart() {
    let log = Log::new();
    let registry = Registry::new();
    let hang = ProbeCfg::new("h", &log).post_stop(PostStop::Hang);
    let root = SupervisorSpec::new(Strategy::OneForAll)
        .intensity(Intensity::new(5, Duration::from_secs(30)))
        .child(
            hang.spec("h")
                .shutdown(Shutdown::Timeout(Duration::from_millis(100))),
        )
        .child(probe("a", &log))
        .start_root("r", &registry)
        .await
        .expect("starts");
    log.take();
    let old = cell(&registry, "r/h");
    registry.kill("r/a").expect("running");
    testkit::wait_for_restart(&registry, "r/h", &old, T).await;
    common::wait_running(&registry, "r/a").await;
    assert_eq!(log.take(), ev(&["stop:h", "start:h", "start:a"]));
    assert_eq!(hang.start_count(), 2);
    root.kill().await;
}

/// `terminate_child` stops a declared child per its shutdown spec and keeps it, stopped,
/// until `restart_child`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_and_restart_a_declared_child() {
    let log = Log::new();
    let registry = Registry::new();
    let root = SupervisorSpec::new(Strategy::OneForOne)
        .child(probe("a", &log))
        .child(probe("b", &log))
        .start_root("r", &registry)
        .await
        .expect("starts");
    log.take();
    let sup = root.supervisor();
    sup.terminate_child("a").await.expect("terminates");
    assert_eq!(log.take(), ev(&["stop:a"]));
    assert_eq!(common::state_of(&registry, "r/a"), "stopped");
    assert!(sup.get("a").is_none());
    assert_eq!(sup.len(), 1);
    assert_eq!(
        sup.terminate_child("nope").await.unwrap_err(),
        SupervisorError::UnknownChild("nope".into())
    );
    sup.restart_child("a").await.expect("restarts");
    assert_eq!(log.take(), ev(&["start:a"]));
    assert_eq!(common::state_of(&registry, "r/a"), "running");
    assert_eq!(sup.len(), 2);
    // Started on request: not a restart.
    assert_eq!(registry.get("r/a").expect("a").restarts_total, 0);
    root.stop().await;
    assert_eq!(log.take(), ev(&["stop:b", "stop:a"]));
}

/// A failed first start fails `start_root`, after the children already started have been
/// stopped in reverse order; later children are never started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_first_start_fails_the_start() {
    let log = Log::new();
    let registry = Registry::new();
    let result = SupervisorSpec::new(Strategy::OneForOne)
        .child(probe("a", &log))
        .child(probe("b", &log))
        .child(ProbeCfg::new("bad", &log).fail_start(|_| true).spec("bad"))
        .child(probe("c", &log))
        .start_root("r", &registry)
        .await;
    let Err(SupervisorError::StartFailed { id, error }) = result else {
        panic!("start_root should fail: {result:?}");
    };
    assert_eq!(id, "r");
    assert!(error.contains("bad refused start #1"), "{error}");
    assert_eq!(
        log.take(),
        ev(&[
            "start:a",
            "start:b",
            "start:bad",
            "start-failed:bad",
            "stop:b",
            "stop:a"
        ])
    );
    assert_eq!(common::state_of(&registry, "r"), "failed");
    assert_eq!(common::state_of(&registry, "r/a"), "stopped");
    assert_eq!(common::state_of(&registry, "r/b"), "stopped");
    assert_eq!(common::state_of(&registry, "r/bad"), "failed");
    assert!(
        registry
            .get("r/bad")
            .and_then(|r| r.last_error)
            .is_some_and(|e| e.contains("bad refused start #1"))
    );
    assert_eq!(common::state_of(&registry, "r/c"), "absent");
}

/// The same through a nested supervisor: its failed start fails its parent's start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_first_start_in_a_subtree_fails_the_start() {
    let log = Log::new();
    let registry = Registry::new();
    let (sub, _) = SupervisorSpec::new(Strategy::OneForOne)
        .child(probe("x", &log))
        .child(ProbeCfg::new("bad", &log).fail_start(|_| true).spec("bad"))
        .into_child_spec("sub");
    let result = SupervisorSpec::new(Strategy::OneForOne)
        .child(probe("a", &log))
        .child(sub)
        .child(probe("c", &log))
        .start_root("r", &registry)
        .await;
    assert!(
        matches!(&result, Err(SupervisorError::StartFailed { error, .. }) if error.contains("bad refused start")),
        "{result:?}"
    );
    assert_eq!(
        log.take(),
        ev(&[
            "start:a",
            "start:x",
            "start:bad",
            "start-failed:bad",
            "stop:x",
            "stop:a"
        ])
    );
    let expect = [
        ("r", "failed"),
        ("r/a", "stopped"),
        ("r/sub", "failed"),
        ("r/sub/x", "stopped"),
        ("r/sub/bad", "failed"),
        ("r/c", "absent"),
    ];
    for (path, state) in expect {
        assert_eq!(common::state_of(&registry, path), state, "{path}");
    }
}

/// Invalid specs are refused before anything starts.
#[tokio::test]
async fn invalid_specs_are_refused() {
    let log = Log::new();
    let registry = Registry::new();
    let dup = SupervisorSpec::new(Strategy::OneForOne)
        .child(probe("a", &log))
        .child(probe("a", &log))
        .start_root("r", &registry)
        .await;
    assert!(
        matches!(&dup, Err(SupervisorError::StartFailed { error, .. }) if error.contains("already exists")),
        "{dup:?}"
    );
    let slash = SupervisorSpec::new(Strategy::OneForOne)
        .child(probe("a/b", &log))
        .start_root("r2", &registry)
        .await;
    assert!(
        matches!(&slash, Err(SupervisorError::StartFailed { error, .. }) if error.contains("invalid spec")),
        "{slash:?}"
    );
    let root = SupervisorSpec::new(Strategy::OneForOne)
        .start_root("bad/name", &registry)
        .await;
    assert!(
        matches!(root, Err(SupervisorError::InvalidSpec(_))),
        "{root:?}"
    );
    assert!(log.events().is_empty());
}

/// A root stopped through the registry ends normally; one killed through the registry
/// or its handle ends abnormally, without `post_stop`s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_exit_tells_a_stop_from_a_kill() {
    let log = Log::new();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(probe("a", &log))
        .child(probe("b", &log));

    let registry = Registry::new();
    let root = spec
        .clone()
        .start_root("r", &registry)
        .await
        .expect("starts");
    registry.stop("r").expect("running");
    assert_eq!(root.wait().await, RootExit::Normal);
    assert_eq!(common::state_of(&registry, "r"), "stopped");
    assert_eq!(log.take(), ev(&["start:a", "start:b", "stop:b", "stop:a"]));

    let registry = Registry::new();
    let root = spec
        .clone()
        .start_root("r", &registry)
        .await
        .expect("starts");
    registry.kill("r").expect("running");
    let exit = root.wait().await;
    assert!(
        matches!(&exit, RootExit::Failed(e) if e == "killed"),
        "{exit:?}"
    );
    assert_eq!(common::state_of(&registry, "r"), "failed");
    for path in ["r/a", "r/b"] {
        assert_eq!(common::state_of(&registry, path), "stopped", "{path}");
        assert!(registry.cell(path).is_none());
    }
    assert_eq!(log.take(), ev(&["start:a", "start:b"]));

    let registry = Registry::new();
    let root = spec.start_root("r", &registry).await.expect("starts");
    assert_eq!(root.kill().await, RootExit::Failed("killed".into()));
    assert_eq!(common::state_of(&registry, "r"), "failed");
    assert_eq!(log.take(), ev(&["start:a", "start:b"]));
}

/// A nested supervisor stopped through the registry is a normal exit: permanent, so
/// its parent restarts it with its subtree, after stopping the subtree in reverse order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_nested_supervisor_stops_its_subtree_first() {
    let log = Log::new();
    let registry = Registry::new();
    let (sub, handle) = SupervisorSpec::new(Strategy::OneForOne)
        .child(probe("x", &log))
        .child(probe("y", &log))
        .into_child_spec("sub");
    let root = SupervisorSpec::new(Strategy::OneForOne)
        .child(sub)
        .child(probe("b", &log))
        .start_root("r", &registry)
        .await
        .expect("starts");
    log.take();
    let old = cell(&registry, "r/sub");
    registry.stop("r/sub").expect("running");
    testkit::wait_for_restart(&registry, "r/sub", &old, T).await;
    wait_for_state(&registry, "r/sub/y", |s| *s == ActorState::Running).await;
    barrier(root.supervisor()).await;
    assert_eq!(log.take(), ev(&["stop:y", "stop:x", "start:x", "start:y"]));
    assert_eq!(handle.len(), 2);
    assert_eq!(registry.get("r/sub").expect("sub").last_error, None);
    root.stop().await;
}
