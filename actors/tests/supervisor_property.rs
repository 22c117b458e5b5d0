//! Property: any sequence of kills among the permanent workers and nested supervisors of a
//! tree whose intensity is never exceeded leaves, once the tree settles, every permanent
//! child running with a live cell, each supervisor's index complete, and no stale records.

mod common;

use std::time::Duration;

use common::{Log, T, probe};
use pincer_actors::{
    ActorState, Intensity, Registry, RootExit, Strategy, SupervisorHandle, SupervisorSpec, testkit,
};
use proptest::prelude::{ProptestConfig, TestCaseError, prop_assert, prop_assert_eq, proptest};
use proptest::strategy::Strategy as _;

const GENEROUS: Intensity = Intensity::new(100_000, Duration::from_secs(10));

/// Every permanent actor of the tree built by [`start`], root first.
const PATHS: [&str; 10] = [
    "r",
    "r/w1",
    "r/sub1",
    "r/sub1/w2",
    "r/sub1/w3",
    "r/sub2",
    "r/sub2/w4",
    "r/sub2/sub3",
    "r/sub2/sub3/w5",
    "r/w6",
];

struct Tree {
    registry: Registry,
    root: pincer_actors::RootHandle,
    /// (handle, number of declared children)
    supervisors: Vec<(SupervisorHandle, usize)>,
}

async fn start(log: &Log) -> Tree {
    let registry = Registry::new();
    let (sub1, h1) = SupervisorSpec::new(Strategy::OneForAll)
        .intensity(GENEROUS)
        .child(probe("w2", log))
        .child(probe("w3", log))
        .into_child_spec("sub1");
    let (sub3, h3) = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(GENEROUS)
        .child(probe("w5", log))
        .into_child_spec("sub3");
    let (sub2, h2) = SupervisorSpec::new(Strategy::RestForOne)
        .intensity(GENEROUS)
        .child(probe("w4", log))
        .child(sub3)
        .into_child_spec("sub2");
    let root = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(GENEROUS)
        .child(probe("w1", log))
        .child(sub1)
        .child(sub2)
        .child(probe("w6", log))
        .start_root("r", &registry)
        .await
        .expect("starts");
    let supervisors = vec![(root.supervisor().clone(), 4), (h1, 2), (h2, 2), (h3, 1)];
    Tree {
        registry,
        root,
        supervisors,
    }
}

/// One step: kill the actor at `PATHS[1 + target]`, then let `pause` pass.
#[derive(Debug, Clone)]
struct Step {
    target: usize,
    pause: u8,
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    (0..PATHS.len() - 1, 0u8..3).prop_map(|(target, pause)| Step { target, pause })
}

fn settled(tree: &Tree) -> bool {
    PATHS.iter().all(|path| {
        tree.registry
            .get(path)
            .is_some_and(|r| r.state == ActorState::Running)
            && tree.registry.cell(path).is_some()
    }) && tree
        .supervisors
        .iter()
        .all(|(handle, n)| handle.is_running() && handle.len() == *n)
}

async fn run(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let log = Log::new();
    let tree = start(&log).await;
    for step in &steps {
        // A target that is restarting (or was taken down with its parent) is not running:
        // that kill simply does not happen.
        let _ = tree.registry.kill(PATHS[1 + step.target]);
        match step.pause {
            0 => {}
            1 => tokio::task::yield_now().await,
            _ => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    }
    let ok = testkit::wait_until(T, || settled(&tree)).await;
    let snapshot = tree.registry.snapshot();
    let states: Vec<(String, &'static str)> = snapshot
        .actors
        .iter()
        .map(|r| (r.path.clone(), r.state.name()))
        .collect();
    prop_assert!(ok, "tree did not settle after {steps:?}: {states:?}");
    let mut paths: Vec<&str> = snapshot.actors.iter().map(|r| r.path.as_str()).collect();
    let mut expected = PATHS.to_vec();
    paths.sort_unstable();
    expected.sort_unstable();
    prop_assert_eq!(paths, expected, "stale or missing records");
    prop_assert_eq!(tree.root.stop().await, RootExit::Normal);
    for path in PATHS {
        prop_assert_eq!(
            tree.registry.get(path).map(|r| r.state),
            Some(ActorState::Stopped)
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn permanent_children_always_come_back(steps in proptest::collection::vec(step(), 1..24)) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(run(steps))?;
    }
}
