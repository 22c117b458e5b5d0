//! One resolution pass folded into the snapshot in force: values that came back replace
//! their old versions (the snapshot changes only where a version or value moved), a back end
//! that failed keeps its last good values and is reported degraded, and refs no longer in
//! the config are dropped.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::SystemTime;

use crate::Report;
use crate::fetch::Outcomes;
use crate::refs::Key;
use crate::snapshot::{Held, Snapshot};

/// What a pass gives: the next snapshot, the report, and the back end aliases that failed
/// (to be retried with backoff).
#[derive(Debug)]
pub struct Merged {
    /// The snapshot to publish.
    pub next: Snapshot,
    /// What changed and what fails.
    pub report: Report,
    /// Aliases with at least one failing key in this pass.
    pub failing: BTreeSet<String>,
}

/// Folds the `outcomes` of the keys `asked` into `previous`. `wanted` is every settled
/// key of the config in force; `only` names the back ends this pass was for (`None`: all);
/// `unsettled` are the refs of the config that name no usable back end
/// (`(owner, ref, why)`).
pub fn merge(
    previous: &Snapshot,
    wanted: &BTreeSet<Key>,
    asked: &BTreeSet<Key>,
    only: Option<&BTreeSet<String>>,
    outcomes: Outcomes,
    unsettled: &[(String, String, String)],
) -> Merged {
    let mut next = Snapshot {
        generation: previous.generation,
        values: previous
            .values
            .iter()
            .filter(|(k, _)| wanted.contains(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        failures: previous
            .failures
            .iter()
            .filter(|(k, _)| wanted.contains(*k) && !asked.contains(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        degraded: previous
            .degraded
            .iter()
            .filter(|(alias, _)| {
                wanted.iter().any(|k| &k.alias == *alias)
                    && only.is_some_and(|o| !o.contains(*alias))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    let mut report = Report::default();
    let mut failing = BTreeSet::new();
    for (key, outcome) in outcomes {
        match outcome {
            Ok(fetched) => {
                let same = next
                    .values
                    .get(&key)
                    .is_some_and(|h| h.version == fetched.version && *h.value == *fetched.value);
                if !same {
                    if next.values.contains_key(&key) {
                        report.changed.push(key.to_string());
                    }
                    next.values.insert(
                        key.clone(),
                        Held {
                            value: Arc::from(fetched.value),
                            version: fetched.version,
                            since: SystemTime::now(),
                        },
                    );
                }
                next.failures.remove(&key);
            }
            Err(error) => {
                if error.is_outage() {
                    next.degraded.insert(key.alias.clone(), error.to_string());
                }
                failing.insert(key.alias.clone());
                next.failures.insert(key, error.to_string());
            }
        }
    }
    report.resolved = next.values.len();
    report.failing = next
        .failures
        .iter()
        .map(|(k, why)| (k.to_string(), why.clone()))
        .chain(unsettled.iter().map(|(_, r, why)| (r.clone(), why.clone())))
        .collect();
    report.degraded = next
        .degraded
        .iter()
        .map(|(a, why)| (a.clone(), why.clone()))
        .collect();
    Merged {
        next,
        report,
        failing,
    }
}
