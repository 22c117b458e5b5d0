//! Strategy × restart type × exit kind: which children are stopped (in reverse start order),
//! which are started again (in start order), and which are dropped, exactly as OTP does.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Cmd, Log, T, barrier, cell, ev, probe, send, wait_absent, wait_for_state};
use pincer_actors::{
    ActorState, Intensity, Registry, Restart, RootHandle, Strategy, SupervisorSpec, testkit,
};
use ractor::{ActorId, ActorRef};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExitKind {
    /// `registry.stop(path)`: a graceful stop.
    Normal,
    /// The handler returns an error.
    Error,
    /// The handler panics.
    Panic,
    /// `registry.kill(path)`.
    Kill,
}

const EXITS: [ExitKind; 4] = [
    ExitKind::Normal,
    ExitKind::Error,
    ExitKind::Panic,
    ExitKind::Kill,
];
const RESTARTS: [Restart; 3] = [Restart::Permanent, Restart::Transient, Restart::Temporary];

/// Children in start order: `b` is the subject, `t1` and `t2` are temporary siblings.
const ORDER: [&str; 5] = ["a", "t1", "b", "c", "t2"];

fn is_temporary(id: &str) -> bool {
    id.starts_with('t')
}

async fn start_tree(strategy: Strategy, restart: Restart, log: &Log) -> (Registry, RootHandle) {
    let registry = Registry::new();
    let root = SupervisorSpec::new(strategy)
        .intensity(Intensity::new(10, Duration::from_secs(10)))
        .child(probe("a", log))
        .child(probe("t1", log).restart(Restart::Temporary))
        .child(probe("b", log).restart(restart))
        .child(probe("c", log))
        .child(probe("t2", log).restart(Restart::Temporary))
        .start_root("r", &registry)
        .await
        .expect("tree starts");
    (registry, root)
}

fn cells(registry: &Registry) -> HashMap<&'static str, ActorId> {
    ORDER
        .iter()
        .map(|id| (*id, cell(registry, &format!("r/{id}")).get_id()))
        .collect()
}

/// The children a restart of `b` takes down with it under `strategy`, in start order.
fn group(strategy: Strategy) -> Vec<&'static str> {
    match strategy {
        Strategy::OneForOne => vec!["b"],
        Strategy::OneForAll => ORDER.to_vec(),
        Strategy::RestForOne => vec!["b", "c", "t2"],
    }
}

async fn run_case(strategy: Strategy, restart: Restart, exit: ExitKind) {
    let case = format!("{strategy:?} / {restart:?} / {exit:?}");
    let log = Log::new();
    let (registry, root) = start_tree(strategy, restart, &log).await;
    assert_eq!(
        log.take(),
        ev(&["start:a", "start:t1", "start:b", "start:c", "start:t2"]),
        "{case}: start order"
    );
    let before = cells(&registry);

    match exit {
        ExitKind::Normal => registry.stop("r/b").expect("r/b is running"),
        ExitKind::Error => send(&registry, "r/b", Cmd::Fail),
        ExitKind::Panic => send(&registry, "r/b", Cmd::Panic),
        ExitKind::Kill => registry.kill("r/b").expect("r/b is running"),
    }

    let abnormal = exit != ExitKind::Normal;
    let restarted = match restart {
        Restart::Permanent => true,
        Restart::Transient => abnormal,
        Restart::Temporary => false,
    };
    let mut expected_log = Vec::new();
    if exit == ExitKind::Normal {
        expected_log.push("stop:b".to_string());
    }
    let group = if restarted { group(strategy) } else { vec![] };

    if restarted {
        // Wait for the end state: group members replaced (temporary ones dropped).
        for id in &group {
            let path = format!("r/{id}");
            if is_temporary(id) {
                wait_absent(&registry, &path).await;
            } else {
                let old = before[id];
                let ok = testkit::wait_until(T, || {
                    registry.cell(&path).is_some_and(|c| c.get_id() != old)
                })
                .await;
                assert!(ok, "{case}: {id} was not restarted");
            }
        }
        for id in group.iter().rev().filter(|id| **id != "b") {
            expected_log.push(format!("stop:{id}"));
        }
        for id in group.iter().filter(|id| !is_temporary(id)) {
            expected_log.push(format!("start:{id}"));
        }
    } else if restart == Restart::Temporary {
        wait_absent(&registry, "r/b").await;
    } else {
        let end = if abnormal {
            ActorState::Failed
        } else {
            ActorState::Stopped
        };
        wait_for_state(&registry, "r/b", |s| *s == end).await;
    }
    barrier(root.supervisor()).await;

    assert_eq!(log.take(), expected_log, "{case}: stop/start events");
    for id in ORDER {
        let path = format!("r/{id}");
        let record = registry.get(&path);
        let in_group = group.contains(&id);
        if id == "b" && !restarted {
            if restart == Restart::Temporary {
                assert!(record.is_none(), "{case}: temporary b still registered");
            } else {
                let record = record.expect("held child stays registered");
                assert_eq!(record.state, ActorState::Stopped, "{case}: b");
                assert_eq!(record.restarts_total, 0, "{case}: b");
                assert!(registry.cell(&path).is_none(), "{case}: b has a cell");
            }
            continue;
        }
        if in_group && is_temporary(id) {
            assert!(record.is_none(), "{case}: temporary {id} not dropped");
            continue;
        }
        let record = record.unwrap_or_else(|| panic!("{case}: {id} missing"));
        assert_eq!(record.state, ActorState::Running, "{case}: {id}");
        let now = cell(&registry, &path).get_id();
        if in_group {
            assert_ne!(now, before[id], "{case}: {id} should be a new instance");
            assert_eq!(record.restarts_total, 1, "{case}: {id} restarts_total");
            assert_eq!(record.restarts_in_window, 1, "{case}: {id} in window");
        } else {
            assert_eq!(now, before[id], "{case}: {id} should be untouched");
            assert_eq!(record.restarts_total, 0, "{case}: {id} restarts_total");
        }
    }
    // What the supervisor says agrees with the registry.
    let children = root.supervisor().which_children().await.expect("answers");
    let ids: Vec<&str> = children.iter().map(|c| c.id.as_str()).collect();
    let expected_ids: Vec<&str> = ORDER
        .iter()
        .copied()
        .filter(|id| registry.get(&format!("r/{id}")).is_some())
        .collect();
    assert_eq!(ids, expected_ids, "{case}: which_children");

    // The last error says what happened.
    if restarted {
        let last = registry.get("r/b").and_then(|r| r.last_error);
        match exit {
            ExitKind::Normal => assert_eq!(last, None, "{case}"),
            ExitKind::Error => assert_eq!(last.as_deref(), Some("b failed on request"), "{case}"),
            ExitKind::Panic => assert!(
                last.as_deref().is_some_and(|e| e.contains("test-panic")),
                "{case}: {last:?}"
            ),
            ExitKind::Kill => assert_eq!(last.as_deref(), Some("killed"), "{case}"),
        }
    }
    assert_eq!(root.stop().await, pincer_actors::RootExit::Normal, "{case}");
}

async fn table(strategy: Strategy) {
    common::quiet_panics();
    for restart in RESTARTS {
        for exit in EXITS {
            run_case(strategy, restart, exit).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_for_one_table() {
    table(Strategy::OneForOne).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_for_all_table() {
    table(Strategy::OneForAll).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_for_one_table() {
    table(Strategy::RestForOne).await;
}

/// A child that stops itself (`myself.stop`) or is stopped through its cell exits
/// normally: permanent is restarted, transient is not. `cell.kill()` is abnormal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_stop_and_cell_stop_are_normal_cell_kill_is_not() {
    let log = Log::new();
    let registry = Registry::new();
    let root = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(Intensity::new(10, Duration::from_secs(10)))
        .child(probe("p", &log))
        .child(probe("tr1", &log).restart(Restart::Transient))
        .child(probe("tr2", &log).restart(Restart::Transient))
        .child(probe("tr3", &log).restart(Restart::Transient))
        .start_root("r", &registry)
        .await
        .expect("starts");

    // Permanent, stopping itself: restarted, no error recorded.
    let old = cell(&registry, "r/p");
    send(&registry, "r/p", Cmd::Stop);
    let rec = testkit::wait_for_restart(&registry, "r/p", &old, T).await;
    assert_eq!(rec.restarts_total, 1);
    assert_eq!(rec.last_error, None);

    // Permanent, stopped through its cell: restarted.
    let old = cell(&registry, "r/p");
    old.stop(None);
    let rec = testkit::wait_for_restart(&registry, "r/p", &old, T).await;
    assert_eq!(rec.restarts_total, 2);

    // Transient, stopping itself: not restarted.
    send(&registry, "r/tr1", Cmd::Stop);
    wait_for_state(&registry, "r/tr1", |s| *s == ActorState::Stopped).await;

    // Transient, stopped through its cell with a reason: not restarted.
    cell(&registry, "r/tr2").stop(Some("bye".into()));
    wait_for_state(&registry, "r/tr2", |s| *s == ActorState::Stopped).await;

    // Transient, killed through its cell: restarted.
    let old = cell(&registry, "r/tr3");
    old.kill();
    let rec = testkit::wait_for_restart(&registry, "r/tr3", &old, T).await;
    assert_eq!(rec.last_error.as_deref(), Some("killed"));
    barrier(root.supervisor()).await;
    assert_eq!(registry.get("r/tr1").expect("kept").restarts_total, 0);
    assert_eq!(registry.get("r/tr2").expect("kept").restarts_total, 0);
    assert_eq!(log.count("start:tr1"), 1);
    assert_eq!(log.count("start:tr2"), 1);
    assert_eq!(log.count("start:tr3"), 2);
    root.stop().await;
}

/// A held (ended for good) declared child is not restarted by a sibling's one_for_all
/// restart, and `restart_child` brings it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_child_stays_down_through_sibling_restarts() {
    let log = Log::new();
    let registry = Registry::new();
    let root = SupervisorSpec::new(Strategy::OneForAll)
        .intensity(Intensity::new(10, Duration::from_secs(10)))
        .child(probe("a", &log).restart(Restart::Transient))
        .child(probe("b", &log))
        .start_root("r", &registry)
        .await
        .expect("starts");
    registry.stop("r/a").expect("running");
    wait_for_state(&registry, "r/a", |s| *s == ActorState::Stopped).await;
    let old = cell(&registry, "r/b");
    registry.kill("r/b").expect("running");
    testkit::wait_for_restart(&registry, "r/b", &old, T).await;
    barrier(root.supervisor()).await;
    assert_eq!(common::state_of(&registry, "r/a"), "stopped");
    assert_eq!(log.count("start:a"), 1);

    let a = root
        .supervisor()
        .restart_child("a")
        .await
        .expect("restarts");
    assert_eq!(registry.cell("r/a").map(|c| c.get_id()), Some(a.get_id()));
    assert_eq!(common::state_of(&registry, "r/a"), "running");
    assert_eq!(
        root.supervisor().restart_child("a").await.unwrap_err(),
        pincer_actors::SupervisorError::AlreadyStarted("a".into())
    );
    // And it is typed as a probe.
    ActorRef::<Cmd>::from(a).cast(Cmd::Noop).expect("cast");
    root.stop().await;
}
