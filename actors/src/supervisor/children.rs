//! The child table: children in start order, found by id or by running actor.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use ractor::{ActorCell, ActorId};

use crate::child_spec::ChildSpec;
use crate::scope::Scope;

/// One child of a supervisor.
#[derive(Debug)]
pub(crate) struct Child {
    pub(crate) spec: ChildSpec,
    pub(crate) path: String,
    /// The running instance, if any.
    pub(crate) instance: Option<Instance>,
    /// Consecutive restarts, for backoff.
    pub(crate) attempt: u32,
    /// Stopped on request (terminate_child): not restarted until asked.
    pub(crate) held: bool,
    /// Added at run time: removed (not kept as stopped) when it ends for good.
    pub(crate) dynamic: bool,
}

/// A running instance of a child.
#[derive(Debug)]
pub(crate) struct Instance {
    pub(crate) cell: ActorCell,
    pub(crate) scope: Scope,
    pub(crate) started: Instant,
}

/// Children keyed by a start-order sequence number.
#[derive(Debug, Default)]
pub(crate) struct Children {
    by_seq: BTreeMap<u64, Child>,
    by_id: HashMap<String, u64>,
    by_actor: HashMap<ActorId, u64>,
    next_seq: u64,
}

impl Children {
    pub(crate) fn len(&self) -> usize {
        self.by_seq.len()
    }

    pub(crate) fn contains(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    pub(crate) fn push(&mut self, child: Child) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_id.insert(child.spec.id.clone(), seq);
        self.by_seq.insert(seq, child);
        seq
    }

    pub(crate) fn remove(&mut self, seq: u64) -> Option<Child> {
        let child = self.by_seq.remove(&seq)?;
        self.by_id.remove(&child.spec.id);
        if let Some(instance) = &child.instance {
            self.by_actor.remove(&instance.cell.get_id());
        }
        Some(child)
    }

    pub(crate) fn get(&self, seq: u64) -> Option<&Child> {
        self.by_seq.get(&seq)
    }

    pub(crate) fn get_mut(&mut self, seq: u64) -> Option<&mut Child> {
        self.by_seq.get_mut(&seq)
    }

    pub(crate) fn seq_of(&self, id: &str) -> Option<u64> {
        self.by_id.get(id).copied()
    }

    /// Sets the running instance of `seq`.
    pub(crate) fn set_instance(&mut self, seq: u64, instance: Instance) {
        if let Some(child) = self.by_seq.get_mut(&seq) {
            self.by_actor.insert(instance.cell.get_id(), seq);
            child.instance = Some(instance);
        }
    }

    /// Takes the instance of `seq` out of the table.
    pub(crate) fn take_instance(&mut self, seq: u64) -> Option<Instance> {
        let instance = self.by_seq.get_mut(&seq)?.instance.take()?;
        self.by_actor.remove(&instance.cell.get_id());
        Some(instance)
    }

    /// The child whose running instance is `actor`, if it is current.
    pub(crate) fn seq_of_actor(&self, actor: ActorId) -> Option<u64> {
        self.by_actor.get(&actor).copied()
    }

    /// Sequence numbers in start order.
    pub(crate) fn seqs(&self) -> Vec<u64> {
        self.by_seq.keys().copied().collect()
    }

    /// Sequence numbers after `seq`, in start order.
    pub(crate) fn seqs_after(&self, seq: u64) -> Vec<u64> {
        self.by_seq
            .range(seq.saturating_add(1)..)
            .map(|(s, _)| *s)
            .collect()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Child> {
        self.by_seq.values()
    }
}
