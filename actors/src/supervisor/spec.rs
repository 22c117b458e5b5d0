//! What a supervisor is told: strategy, intensity, children, cap.

use serde::Serialize;

use crate::child_spec::ChildSpec;
use crate::supervisor::intensity::Intensity;

/// Which children a supervisor restarts when one ends and is to be restarted (OTP's
/// strategies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Only the child that ended.
    #[default]
    OneForOne,
    /// All children: the others are stopped in reverse start order, then all are started
    /// again in start order (temporary ones are stopped and dropped, not restarted).
    OneForAll,
    /// The child that ended and those started after it, in the same way.
    RestForOne,
}

/// The declaration of a supervisor: how it restarts, how much it tolerates, and its
/// children in start order.
#[derive(Debug, Clone, Default)]
pub struct SupervisorSpec {
    /// Restart strategy.
    pub strategy: Strategy,
    /// Restart intensity (default 3 in 5 s).
    pub intensity: Intensity,
    /// Children, started in this order and stopped in the reverse order.
    pub children: Vec<ChildSpec>,
    /// Upper bound on the number of children, counting those added at run time; `None`
    /// for no bound. Reaching it makes [`SupervisorHandle::start_child`] fail with
    /// [`SupervisorError::Full`].
    ///
    /// [`SupervisorHandle::start_child`]: crate::SupervisorHandle::start_child
    /// [`SupervisorError::Full`]: crate::SupervisorError::Full
    pub max_children: Option<usize>,
}

impl SupervisorSpec {
    /// A spec with `strategy`, the default intensity and no children.
    pub fn new(strategy: Strategy) -> Self {
        Self {
            strategy,
            ..Self::default()
        }
    }

    /// A dynamic supervisor: one_for_one, no children at start, at most `max_children`
    /// added at run time.
    pub fn dynamic(max_children: usize) -> Self {
        Self {
            max_children: Some(max_children),
            ..Self::default()
        }
    }

    /// Sets the restart intensity.
    pub fn intensity(mut self, intensity: Intensity) -> Self {
        self.intensity = intensity;
        self
    }

    /// Appends a child.
    pub fn child(mut self, child: ChildSpec) -> Self {
        self.children.push(child);
        self
    }

    /// Sets the child cap.
    pub fn max_children(mut self, max: Option<usize>) -> Self {
        self.max_children = max;
        self
    }
}
