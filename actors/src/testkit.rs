//! Helpers for tests of supervised actors: wait for conditions, not for time.

use std::time::{Duration, Instant};

use crate::registry::{ActorRecord, ActorState, Registry};

/// How often [`wait_until`] re-checks its condition.
const POLL: Duration = Duration::from_millis(2);

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
pub async fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until the record at `path` satisfies `check`, and returns it.
///
/// # Panics
/// When it does not within `timeout`, with the record as last seen: a test helper.
pub async fn wait_for_record(
    registry: &Registry,
    path: &str,
    timeout: Duration,
    check: impl Fn(&ActorRecord) -> bool,
) -> ActorRecord {
    let mut last = None;
    let held = wait_until(timeout, || {
        last = registry.get(path);
        last.as_ref().is_some_and(&check)
    })
    .await;
    assert!(
        held,
        "record at `{path}` did not reach the expected condition in {timeout:?}; last seen: {last:#?}"
    );
    last.unwrap_or_else(|| unreachable!("checked above"))
}

/// Waits until the actor at `path` is running with a different instance than `previous`
/// (a restart happened), and returns its new record.
pub async fn wait_for_restart(
    registry: &Registry,
    path: &str,
    previous: &ractor::ActorCell,
    timeout: Duration,
) -> ActorRecord {
    let old = previous.get_id();
    wait_for_record(registry, path, timeout, |r| {
        r.state == ActorState::Running && registry.cell(path).is_some_and(|c| c.get_id() != old)
    })
    .await
}
