//! Dynamic supervisors: children started at run time under a key, found without a message,
//! capped (a clear `Full` error), duplicate keys refused, slots freed when a child ends for
//! good, transient children restarted after a crash and removed after a normal stop.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Cmd, Log, ProbeCfg, T, barrier, probe, wait_absent, wait_running};
use pincer_actors::{
    ActorState, Backoff, ChildKind, Intensity, Registry, Restart, RootExit, Strategy,
    SupervisorError, SupervisorSpec, testkit,
};
use ractor::ActorRef;

async fn tree(
    max: usize,
) -> (
    Registry,
    pincer_actors::RootHandle,
    pincer_actors::SupervisorHandle,
) {
    let registry = Registry::new();
    let (sessions, handle) = SupervisorSpec::dynamic(max)
        .intensity(Intensity::new(10, Duration::from_secs(30)))
        .into_child_spec("sessions");
    let root = SupervisorSpec::new(Strategy::OneForOne)
        .child(sessions)
        .start_root("r", &registry)
        .await
        .expect("starts");
    (registry, root, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_lookup_cap_and_terminate() {
    let log = Log::new();
    let (registry, root, sessions) = tree(2).await;
    assert_eq!(sessions.path(), "r/sessions");
    assert!(sessions.is_running());
    assert!(sessions.is_empty());
    let record = registry.get("r/sessions").expect("registered");
    assert_eq!(record.kind, ChildKind::Supervisor);
    assert_eq!(record.state, ActorState::Running);

    let s1 = sessions
        .start_child(probe("s1", &log).restart(Restart::Temporary))
        .await
        .expect("starts");
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions.get("s1").map(|c| c.get_id()), Some(s1.get_id()));
    let typed: ActorRef<Cmd> = sessions.get_ref("s1").expect("typed ref");
    typed.cast(Cmd::Noop).expect("cast");
    let rec = registry.get("r/sessions/s1").expect("registered");
    assert_eq!(rec.state, ActorState::Running);
    assert_eq!(rec.restart, Some(Restart::Temporary));
    assert_eq!(
        registry.cell("r/sessions/s1").map(|c| c.get_id()),
        Some(s1.get_id())
    );

    // A duplicate key.
    assert_eq!(
        sessions.start_child(probe("s1", &log)).await.unwrap_err(),
        SupervisorError::AlreadyStarted("s1".into())
    );
    // get_or_start finds the running one without calling the factory.
    let called = Arc::new(AtomicBool::new(false));
    let flag = called.clone();
    let again = sessions
        .get_or_start("s1", || {
            flag.store(true, Ordering::SeqCst);
            probe("s1", &log)
        })
        .await
        .expect("found");
    assert_eq!(again.get_id(), s1.get_id());
    assert!(!called.load(Ordering::SeqCst));

    sessions
        .get_or_start("s2", || probe("s2", &log))
        .await
        .expect("starts");
    assert_eq!(sessions.len(), 2);

    // The cap.
    let full = sessions.start_child(probe("s3", &log)).await.unwrap_err();
    assert_eq!(
        full,
        SupervisorError::Full {
            path: "r/sessions".into(),
            max: 2
        }
    );
    assert_eq!(
        full.to_string(),
        "supervisor `r/sessions` is full (2 children)"
    );
    assert!(registry.get("r/sessions/s3").is_none());
    assert_eq!(log.count("start:s3"), 0);

    // terminate_child frees the slot and removes the record.
    sessions.terminate_child("s1").await.expect("terminates");
    assert_eq!(log.count("stop:s1"), 1);
    assert!(registry.get("r/sessions/s1").is_none());
    assert!(sessions.get("s1").is_none());
    assert_eq!(sessions.len(), 1);
    assert_eq!(
        sessions.terminate_child("s1").await.unwrap_err(),
        SupervisorError::UnknownChild("s1".into())
    );
    sessions
        .start_child(probe("s3", &log))
        .await
        .expect("a slot is free");
    let ids: Vec<String> = sessions
        .which_children()
        .await
        .expect("answers")
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, ["s2", "s3"]);

    assert_eq!(root.stop().await, RootExit::Normal);
    assert!(!sessions.is_running());
    assert_eq!(
        sessions.start_child(probe("s4", &log)).await.unwrap_err(),
        SupervisorError::Unavailable("r/sessions".into())
    );
}

/// A child that ends for good (temporary after any exit, transient after a normal one)
/// leaves the table and the registry and frees its slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ended_children_free_their_slot() {
    common::quiet_panics();
    let log = Log::new();
    let (registry, root, sessions) = tree(1).await;

    sessions
        .start_child(probe("t", &log).restart(Restart::Temporary))
        .await
        .expect("starts");
    common::send(&registry, "r/sessions/t", Cmd::Panic);
    wait_absent(&registry, "r/sessions/t").await;
    barrier(&sessions).await;
    assert_eq!(sessions.len(), 0);

    sessions
        .start_child(probe("tr", &log).restart(Restart::Transient))
        .await
        .expect("the slot was freed");
    // A crash: restarted, under the same key, still one child.
    let old = sessions.get("tr").expect("running");
    common::send(&registry, "r/sessions/tr", Cmd::Fail);
    let rec = testkit::wait_for_restart(&registry, "r/sessions/tr", &old, T).await;
    assert_eq!(rec.restarts_total, 1);
    let new = sessions.get("tr").expect("running again");
    assert_ne!(new.get_id(), old.get_id());
    assert_eq!(
        registry.cell("r/sessions/tr").map(|c| c.get_id()),
        Some(new.get_id())
    );
    assert!(matches!(
        sessions.start_child(probe("x", &log)).await,
        Err(SupervisorError::Full { max: 1, .. })
    ));
    // A normal stop: removed.
    common::send(&registry, "r/sessions/tr", Cmd::Stop);
    wait_absent(&registry, "r/sessions/tr").await;
    barrier(&sessions).await;
    assert!(sessions.get("tr").is_none());
    assert_eq!(sessions.len(), 0);
    assert!(sessions.which_children().await.expect("answers").is_empty());

    // A permanent dynamic child is restarted after a normal stop, too.
    sessions
        .start_child(probe("p", &log))
        .await
        .expect("the slot was freed");
    let old = sessions.get("p").expect("running");
    registry.stop("r/sessions/p").expect("running");
    testkit::wait_for_restart(&registry, "r/sessions/p", &old, T).await;
    assert_eq!(sessions.len(), 1);
    root.stop().await;
}

/// A dynamic child that fails its start is not kept: StartFailed, no record, no slot used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_dynamic_start_leaves_nothing_behind() {
    let log = Log::new();
    let (registry, root, sessions) = tree(1).await;
    let err = sessions
        .start_child(ProbeCfg::new("bad", &log).fail_start(|_| true).spec("bad"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SupervisorError::StartFailed { id, error } if id == "bad" && error.contains("bad refused start #1")),
        "{err:?}"
    );
    assert!(registry.get("r/sessions/bad").is_none());
    assert_eq!(sessions.len(), 0);
    assert!(matches!(
        sessions.start_child(probe("bad/id", &log)).await,
        Err(SupervisorError::InvalidSpec(_))
    ));
    sessions
        .start_child(probe("ok", &log))
        .await
        .expect("the slot is free");
    // The supervisor itself is unharmed.
    assert_eq!(common::state_of(&registry, "r/sessions"), "running");
    assert_eq!(registry.get("r/sessions").expect("sup").restarts_total, 0);
    root.stop().await;
}

/// The handle survives a restart of its supervisor; children started at run time are gone
/// with the old instance. On tokio's paused clock, so the 200 ms backoff passes at once.
#[tokio::test(start_paused = true)]
async fn handle_follows_supervisor_restarts() {
    let log = Log::new();
    let registry = Registry::new();
    let (sessions, handle) = SupervisorSpec::dynamic(4).into_child_spec("sessions");
    let root = SupervisorSpec::new(Strategy::OneForOne)
        .child(
            sessions.backoff(
                Backoff::exponential(Duration::from_millis(200), Duration::from_secs(1), 2.0)
                    .with_jitter(0.0),
            ),
        )
        .start_root("r", &registry)
        .await
        .expect("starts");
    let sessions = handle;
    sessions
        .start_child(probe("a", &log))
        .await
        .expect("starts");
    sessions
        .start_child(probe("b", &log))
        .await
        .expect("starts");
    assert_eq!(sessions.len(), 2);
    let old = common::cell(&registry, "r/sessions");
    registry.kill("r/sessions").expect("running");
    // While it waits for its restart, the handle shows no supervisor and no children.
    common::wait_for_state(&registry, "r/sessions", |s| {
        matches!(s, ActorState::Restarting { .. })
    })
    .await;
    assert!(!sessions.is_running());
    assert!(sessions.get("a").is_none());
    assert_eq!(sessions.len(), 0);
    assert!(sessions.is_empty());
    assert!(matches!(
        sessions.start_child(probe("c", &log)).await,
        Err(SupervisorError::Unavailable(_))
    ));
    testkit::wait_for_restart(&registry, "r/sessions", &old, T).await;
    let ok = testkit::wait_until(T, || sessions.is_running()).await;
    assert!(ok);
    assert_eq!(sessions.len(), 0);
    assert!(sessions.get("a").is_none());
    // They died with the old instance and are not coming back: their records are gone.
    for path in ["r/sessions/a", "r/sessions/b"] {
        assert_eq!(common::state_of(&registry, path), "absent", "{path}");
    }
    sessions
        .start_child(probe("a", &log))
        .await
        .expect("starts again");
    wait_running(&registry, "r/sessions/a").await;
    assert_eq!(sessions.len(), 1);
    root.stop().await;
}

/// A dynamic supervisor started as a root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_root() {
    let log = Log::new();
    let registry = Registry::new();
    let root = SupervisorSpec::dynamic(3)
        .start_root("sessions", &registry)
        .await
        .expect("starts");
    let handle = root.supervisor().clone().with_call_timeout(T);
    assert_eq!(handle.path(), "sessions");
    for id in ["a", "b", "c"] {
        handle.start_child(probe(id, &log)).await.expect("starts");
    }
    assert_eq!(handle.len(), 3);
    assert!(matches!(
        handle.start_child(probe("d", &log)).await,
        Err(SupervisorError::Full { max: 3, .. })
    ));
    let paths: Vec<String> = registry
        .snapshot()
        .actors
        .into_iter()
        .map(|r| r.path)
        .collect();
    assert_eq!(
        paths,
        ["sessions", "sessions/a", "sessions/b", "sessions/c"]
    );
    assert_eq!(root.stop().await, RootExit::Normal);
    // Stopped in reverse start order.
    let stops: Vec<String> = log
        .events()
        .into_iter()
        .filter(|e| e.starts_with("stop:"))
        .collect();
    assert_eq!(stops, ["stop:c", "stop:b", "stop:a"]);
}

/// A dynamic supervisor that stops (or gives up) takes its children's records with it:
/// with churning session keys anything else grows without bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_leaves_no_records_of_run_time_children() {
    let log = Log::new();
    let (registry, root, sessions) = tree(100).await;
    for i in 0..50 {
        sessions
            .start_child(probe(&format!("s{i}"), &log).restart(Restart::Transient))
            .await
            .expect("starts");
    }
    assert_eq!(registry.len(), 52);
    // Restart the dynamic supervisor itself: its run-time children are gone for good.
    let before = registry.cell("r/sessions").expect("running");
    registry.kill("r/sessions").expect("known path");
    testkit::wait_for_restart(&registry, "r/sessions", &before, T).await;
    assert_eq!(registry.len(), 2, "{:#?}", registry.snapshot());
    for i in 0..50 {
        sessions
            .start_child(probe(&format!("t{i}"), &log))
            .await
            .expect("starts");
    }
    assert_eq!(root.stop().await, RootExit::Normal);
    let left: Vec<String> = registry
        .snapshot()
        .actors
        .into_iter()
        .map(|r| r.path)
        .collect();
    assert_eq!(left, vec!["r".to_string(), "r/sessions".to_string()]);
}

/// A folded view lists everything but the children of the folded supervisor, which it
/// counts by state; their own children are neither listed nor counted. A sibling whose
/// name extends the folded one's (`sessions-x` sorts inside `sessions/...` byte-wise) is
/// listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folded_view_counts_the_children_it_does_not_list() {
    let log = Log::new();
    let registry = Registry::new();
    let (sessions, handle) = SupervisorSpec::dynamic(100).into_child_spec("sessions");
    let root = SupervisorSpec::new(Strategy::OneForOne)
        .child(sessions)
        .child(probe("sessions-x", &log))
        .start_root("r", &registry)
        .await
        .expect("starts");
    for i in 0..5 {
        let (session, _) = SupervisorSpec::new(Strategy::OneForOne)
            .child(probe("turn", &log))
            .into_child_spec(format!("s{i}"));
        handle
            .start_child(session.restart(Restart::Transient))
            .await
            .expect("starts");
    }
    assert_eq!(registry.len(), 3 + 10);
    let folded = registry.folded(|path| path.ends_with("/sessions"));
    let paths: Vec<&str> = folded
        .snapshot
        .actors
        .iter()
        .map(|r| r.path.as_str())
        .collect();
    assert_eq!(paths, ["r", "r/sessions", "r/sessions-x"]);
    let tally = &folded.tallies["r/sessions"];
    assert_eq!((tally.total, tally.running, tally.failed), (5, 5, 0));
    assert_eq!(folded.tallies.len(), 1);
    // Folding nothing is the plain snapshot.
    assert_eq!(registry.folded(|_| false).snapshot.actors.len(), 13);
    assert_eq!(root.stop().await, RootExit::Normal);
}

/// `starting_with` finds the children whose ids share a beginning, and their subtrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_are_found_by_the_beginning_of_their_ids() {
    let log = Log::new();
    let (registry, root, sessions) = tree(10).await;
    for id in ["u:alice.1", "u:alice.2", "u:bob.1"] {
        sessions.start_child(probe(id, &log)).await.expect("starts");
    }
    let found: Vec<String> = registry
        .starting_with("r/sessions/u:alice.")
        .into_iter()
        .map(|r| r.path)
        .collect();
    assert_eq!(found, ["r/sessions/u:alice.1", "r/sessions/u:alice.2"]);
    assert!(registry.starting_with("r/sessions/u:carol").is_empty());
    assert_eq!(root.stop().await, RootExit::Normal);
}

/// A temporary supervisor whose work is a task (`ChildSpec::with_task`): the task starts
/// children, the supervisor stops itself when the task is done, and killing the
/// supervisor ends the task and its children at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_with_a_task_ends_with_it_and_takes_it_down_when_killed() {
    let (registry, root, jobs) = tree(4).await;
    let log = Log::new();
    let job = |id: &str, log: &Log, finish: Arc<parking_lot::Mutex<Option<_>>>| {
        let (spec, children) = SupervisorSpec::dynamic(2).into_child_spec(id);
        let log = log.clone();
        spec.restart(Restart::Temporary)
            .with_task(move |_ctx, started| {
                let (children, me, log, finish) = (
                    children.clone(),
                    started.cell().clone(),
                    log.clone(),
                    finish.clone(),
                );
                async move {
                    let _ = children
                        .start_child(probe("step", &log).restart(Restart::Temporary))
                        .await;
                    // Wait until told to finish (or forever, for the killed one).
                    let rx: Option<tokio::sync::oneshot::Receiver<()>> = finish.lock().take();
                    match rx {
                        Some(rx) => {
                            let _ = rx.await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                    me.stop(None);
                }
            })
    };
    let (finish_tx, finish_rx) = tokio::sync::oneshot::channel::<()>();
    jobs.start_child(job(
        "a",
        &log,
        Arc::new(parking_lot::Mutex::new(Some(finish_rx))),
    ))
    .await
    .expect("starts");
    wait_running(&registry, "r/sessions/a/step").await;
    let _ = finish_tx.send(());
    wait_absent(&registry, "r/sessions/a").await;
    assert!(registry.get("r/sessions/a/step").is_none());

    // Killed mid-task: the task and the child go with it.
    jobs.start_child(job("b", &log, Arc::new(parking_lot::Mutex::new(None))))
        .await
        .expect("starts");
    wait_running(&registry, "r/sessions/b/step").await;
    registry.kill("r/sessions/b").expect("kill");
    wait_absent(&registry, "r/sessions/b").await;
    assert!(registry.get("r/sessions/b/step").is_none());
    assert!(jobs.is_empty());
    let _ = root.stop().await;
}
