//! The registry: one record per actor with the documented JSON shape, snapshots sorted as a
//! tree, change notifications, and control by path (`kill`, `stop`) with clear errors for
//! unknown and non-running paths.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Log, T, barrier, cell, probe, wait_for_state};
use pincer_actors::{
    ActorState, Backoff, ChildKind, ControlError, Intensity, Registry, Restart, RootHandle,
    Strategy, SupervisorSpec, testkit,
};
use serde_json::{Value, json};

/// `r` → `a` (a supervisor of `x`), `a-b` (transient worker). `a-b` sorts between `a` and
/// `a/x` byte-wise, but after `a`'s subtree in a snapshot.
async fn tree(log: &Log) -> (Registry, RootHandle) {
    let registry = Registry::new();
    let (a, _) = SupervisorSpec::new(Strategy::OneForOne)
        .child(probe("x", log))
        .into_child_spec("a");
    let root = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(Intensity::new(10, Duration::from_secs(30)))
        .child(a)
        .child(probe("a-b", log).restart(Restart::Transient))
        .start_root("r", &registry)
        .await
        .expect("starts");
    (registry, root)
}

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect()
}

const RECORD_KEYS: [&str; 9] = [
    "path",
    "kind",
    "restart",
    "state",
    "restarts_total",
    "restarts_in_window",
    "last_error",
    "started_at_ms",
    "uptime_ms",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_shape_and_tree() {
    let log = Log::new();
    let (registry, root) = tree(&log).await;
    assert_eq!(registry.len(), 4);
    assert!(!registry.is_empty());

    let snapshot = registry.snapshot();
    let paths: Vec<&str> = snapshot.actors.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["r", "r/a", "r/a/x", "r/a-b"]);
    for path in paths {
        assert_eq!(snapshot.get(path).map(|r| r.path.as_str()), Some(path));
    }
    assert!(snapshot.get("r/nope").is_none());

    let json = snapshot.to_json();
    assert_eq!(
        keys(&json),
        BTreeSet::from(["version".into(), "actors".into()])
    );
    assert_eq!(json["version"], json!(snapshot.version));
    let actors = json["actors"].as_array().expect("array");
    assert_eq!(actors.len(), 4);
    let expected_keys: BTreeSet<String> = RECORD_KEYS.iter().map(|k| (*k).to_string()).collect();
    for record in actors {
        assert_eq!(keys(record), expected_keys, "{record}");
        assert_eq!(record["state"], "running");
        assert_eq!(record["restarts_total"], 0);
        assert_eq!(record["restarts_in_window"], 0);
        assert_eq!(record["last_error"], Value::Null);
        assert!(record["uptime_ms"].is_u64(), "{record}");
    }
    assert_eq!(actors[0]["path"], "r");
    assert_eq!(actors[0]["kind"], "supervisor");
    assert_eq!(actors[0]["restart"], Value::Null);
    assert_eq!(actors[1]["kind"], "supervisor");
    assert_eq!(actors[1]["restart"], "permanent");
    assert_eq!(actors[2]["kind"], "worker");
    assert_eq!(actors[3]["restart"], "transient");
    let now_ms = u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_millis(),
    )
    .expect("fits");
    let started = actors[2]["started_at_ms"].as_u64().expect("a number");
    assert!(
        started <= now_ms && now_ms - started < 60_000,
        "{started} vs {now_ms}"
    );

    // The tree nests children under their parents, in path order.
    let tree = snapshot.tree();
    assert_eq!(tree.len(), 1);
    let tree_json = serde_json::to_value(&tree).expect("serializes");
    let r = &tree_json[0];
    assert_eq!(r["path"], "r");
    let children: Vec<&Value> = r["children"].as_array().expect("children").iter().collect();
    assert_eq!(children.len(), 2);
    assert_eq!(children[0]["path"], "r/a");
    assert_eq!(children[0]["children"][0]["path"], "r/a/x");
    assert_eq!(children[0]["children"][0]["children"], json!([]));
    assert_eq!(children[1]["path"], "r/a-b");
    assert_eq!(children[1]["children"], json!([]));
    let mut node_keys = expected_keys.clone();
    node_keys.insert("children".into());
    assert_eq!(keys(r), node_keys);

    // A subtree is a path and what is below it, not its namesakes.
    let sub: Vec<String> = registry
        .subtree("r/a")
        .into_iter()
        .map(|r| r.path)
        .collect();
    assert_eq!(sub, ["r/a", "r/a/x"]);
    root.stop().await;
}

/// Records after a crash, while restarting, and after a stop, as JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_follow_the_lifecycle() {
    let log = Log::new();
    let registry = Registry::new();
    let root = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(Intensity::new(10, Duration::from_secs(30)))
        .child(
            probe("w", &log).backoff(
                Backoff::exponential(Duration::from_millis(300), Duration::from_secs(1), 2.0)
                    .with_jitter(0.0),
            ),
        )
        .child(probe("t", &log).restart(Restart::Transient))
        .start_root("r", &registry)
        .await
        .expect("starts");

    let old = cell(&registry, "r/w");
    registry.kill("r/w").expect("running");
    wait_for_state(&registry, "r/w", |s| {
        matches!(s, ActorState::Restarting { .. })
    })
    .await;
    let json = registry.snapshot().to_json();
    let w = &json["actors"][2];
    assert_eq!(w["path"], "r/w");
    assert_eq!(w["state"], "restarting");
    assert_eq!(w["attempt"], 1);
    assert_eq!(w["next_delay_ms"], 300);
    assert_eq!(w["restarts_total"], 1);
    assert_eq!(w["restarts_in_window"], 1);
    assert_eq!(w["last_error"], "killed");
    assert_eq!(w["uptime_ms"], Value::Null);
    assert_eq!(w["started_at_ms"], Value::Null);
    // Not running: no control.
    assert_eq!(
        registry.kill("r/w").unwrap_err(),
        ControlError::NotRunning {
            path: "r/w".into(),
            state: "restarting".into()
        }
    );
    assert!(registry.cell("r/w").is_none());

    let rec = testkit::wait_for_restart(&registry, "r/w", &old, T).await;
    assert_eq!(rec.state, ActorState::Running);
    assert_eq!(
        rec.last_error.as_deref(),
        Some("killed"),
        "the last error stays"
    );
    // Uptime grows while it runs.
    let first = rec.uptime_ms.expect("running");
    testkit::wait_for_record(&registry, "r/w", T, |r| {
        r.uptime_ms.is_some_and(|u| u >= first + 20)
    })
    .await;

    registry.stop("r/t").expect("running");
    wait_for_state(&registry, "r/t", |s| *s == ActorState::Stopped).await;
    barrier(root.supervisor()).await;
    let json = registry.snapshot().to_json();
    let t = &json["actors"][1];
    assert_eq!(t["path"], "r/t");
    assert_eq!(t["state"], "stopped");
    assert_eq!(t["last_error"], Value::Null);
    assert_eq!(t["restarts_total"], 0);
    assert_eq!(
        keys(t),
        RECORD_KEYS.iter().map(|k| (*k).to_string()).collect()
    );
    let err = registry.stop("r/t").unwrap_err();
    assert_eq!(
        err.to_string(),
        "actor at path `r/t` is not running (state: stopped)"
    );
    root.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_are_named_in_the_error() {
    let log = Log::new();
    let (registry, root) = tree(&log).await;
    for path in ["r/nope", "r/a/x/deeper", "", "r/a/"] {
        let kill = registry.kill(path).unwrap_err();
        assert_eq!(kill, ControlError::UnknownPath(path.into()));
        assert_eq!(kill.to_string(), format!("no actor at path `{path}`"));
        assert_eq!(
            registry.stop(path).unwrap_err(),
            ControlError::UnknownPath(path.into())
        );
        assert!(registry.cell(path).is_none());
        assert!(registry.get(path).is_none());
    }
    // Nothing was touched.
    barrier(root.supervisor()).await;
    for record in registry.snapshot().actors {
        assert_eq!(record.state, ActorState::Running, "{}", record.path);
        assert_eq!(record.restarts_total, 0, "{}", record.path);
    }
    root.stop().await;
}

/// Killing a supervisor by path restarts it with its whole subtree; stopping a worker by
/// path is a normal exit (a transient one stays down).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_and_stop_by_path() {
    let log = Log::new();
    let (registry, root) = tree(&log).await;
    let a = cell(&registry, "r/a");
    let x = cell(&registry, "r/a/x");
    let ab = cell(&registry, "r/a-b");
    registry.kill("r/a").expect("running");
    let rec = testkit::wait_for_restart(&registry, "r/a", &a, T).await;
    assert_eq!(rec.kind, ChildKind::Supervisor);
    assert_eq!(rec.restarts_total, 1);
    assert_eq!(rec.last_error.as_deref(), Some("killed"));
    let x_rec = testkit::wait_for_restart(&registry, "r/a/x", &x, T).await;
    // x was started by the new instance of a, not restarted by a.
    assert_eq!(x_rec.restarts_total, 0);
    assert_eq!(x_rec.last_error, None);
    barrier(root.supervisor()).await;
    assert_eq!(cell(&registry, "r/a-b").get_id(), ab.get_id());

    registry.stop("r/a-b").expect("running");
    wait_for_state(&registry, "r/a-b", |s| *s == ActorState::Stopped).await;
    barrier(root.supervisor()).await;
    assert_eq!(log.count("stop:a-b"), 1);
    assert_eq!(log.count("start:a-b"), 1);
    assert_eq!(registry.get("r/a-b").expect("kept").restarts_total, 0);
    root.stop().await;
}

/// `changes()` wakes a watcher on every transition, and snapshots carry the version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_notify_watchers() {
    let log = Log::new();
    let (registry, root) = tree(&log).await;
    let mut changes = registry.changes();
    changes.mark_unchanged();
    let before = registry.snapshot().version;
    assert_eq!(before, *changes.borrow());

    let old = cell(&registry, "r/a-b");
    registry.kill("r/a-b").expect("running");
    tokio::time::timeout(T, changes.changed())
        .await
        .expect("a change within the timeout")
        .expect("registry alive");
    // Follow the changes until the restart is visible, without polling.
    let restarted = tokio::time::timeout(T, async {
        loop {
            if registry
                .cell("r/a-b")
                .is_some_and(|c| c.get_id() != old.get_id())
            {
                return;
            }
            changes.changed().await.expect("registry alive");
        }
    })
    .await;
    assert!(restarted.is_ok(), "no restart seen through changes()");
    let after = registry.snapshot();
    assert!(after.version > before);
    assert_eq!(after.get("r/a-b").expect("record").restarts_total, 1);
    root.stop().await;
}
