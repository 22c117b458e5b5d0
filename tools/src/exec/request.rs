//! One call's arguments, and the workdir resolved inside the workspace.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use super::{DEFAULT_TIMEOUT, ExecError, MAX_TIMEOUT};

/// One `exec` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The shell command line, run by `/bin/sh -c`.
    pub command: String,
    /// Where it runs: a path relative to the workspace (or absolute, inside it). `None`
    /// is the workspace itself.
    pub workdir: Option<String>,
    /// How long it may run; `None` is [`DEFAULT_TIMEOUT`], and more than [`MAX_TIMEOUT`]
    /// is cut to it.
    pub timeout: Option<Duration>,
    /// Whether the command may use the network. Set from the operator's config, never
    /// from the model's arguments; off, the sandbox has its own network namespace with
    /// only a loopback interface.
    pub network: bool,
}

// === impl Request ===

impl Request {
    /// A call running `command` in the workspace, with the default timeout and no
    /// network.
    pub fn new(command: impl Into<String>) -> Self {
        Self {
            command: command.into(),
            workdir: None,
            timeout: None,
            network: false,
        }
    }

    /// The same call in `workdir`.
    pub fn workdir(mut self, workdir: impl Into<String>) -> Self {
        self.workdir = Some(workdir.into());
        self
    }

    /// The same call with `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The same call with the network on or off.
    pub fn network(mut self, network: bool) -> Self {
        self.network = network;
        self
    }

    /// The timeout in force: the one asked for, or the default, at most [`MAX_TIMEOUT`].
    pub fn effective_timeout(&self) -> Duration {
        self.timeout.unwrap_or(DEFAULT_TIMEOUT).min(MAX_TIMEOUT)
    }

    pub(crate) fn check_command(&self) -> Result<(), ExecError> {
        if self.command.trim().is_empty() {
            return Err(ExecError::EmptyCommand);
        }
        if self.command.contains('\0') {
            return Err(ExecError::NulInCommand);
        }
        Ok(())
    }
}

/// The directory `workdir` names inside `workspace` (canonical, as
/// [`prepare_workspace`] returns it).
///
/// `..` may not climb above the workspace, an absolute path must lie inside it, and the
/// directory found, symlinks followed, must still be inside it: in the sandbox nothing
/// outside is mounted anyway, but without one a symlink would be a way out.
pub(crate) fn resolve_workdir(
    workspace: &Path,
    workdir: Option<&str>,
) -> Result<PathBuf, ExecError> {
    let Some(given) = workdir.filter(|w| !w.trim().is_empty()) else {
        return Ok(workspace.to_path_buf());
    };
    let outside = || ExecError::WorkdirOutside {
        workdir: given.to_string(),
    };
    let path = Path::new(given);
    let inside = if path.is_absolute() {
        let normal = lexical(path).ok_or_else(outside)?;
        normal
            .strip_prefix(workspace)
            .map_err(|_| outside())?
            .to_path_buf()
    } else {
        lexical(path).ok_or_else(outside)?
    };
    let joined = workspace.join(inside);
    let found = joined
        .canonicalize()
        .map_err(|_| ExecError::WorkdirMissing {
            workdir: given.to_string(),
        })?;
    if !found.starts_with(workspace) {
        return Err(outside());
    }
    if !found.is_dir() {
        return Err(ExecError::WorkdirNotADirectory {
            workdir: given.to_string(),
        });
    }
    Ok(found)
}

/// `path` with `.` dropped and `..` applied, or `None` when `..` climbs above its start.
/// For an absolute path the start is `/`.
fn lexical(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    let mut depth = 0usize;
    for part in path.components() {
        match part {
            Component::Prefix(_) | Component::RootDir => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                depth = depth.checked_sub(1)?;
                out.pop();
            }
            Component::Normal(name) => {
                depth += 1;
                out.push(name);
            }
        }
    }
    Some(out)
}

/// Creates the workspace when missing and returns its canonical path (the path the
/// sandbox mounts, and the prefix every workdir must have).
pub(crate) fn prepare_workspace(workspace: &Path) -> Result<PathBuf, ExecError> {
    let fail = |source| ExecError::Workspace {
        path: workspace.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(workspace).map_err(fail)?;
    workspace.canonicalize().map_err(fail)
}
