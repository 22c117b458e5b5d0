//! Why a command did not run. A command that ran and failed is not an error: its exit
//! status is in the [`Outcome`](super::Outcome).

use std::io;
use std::path::PathBuf;

/// Why an `exec` call did not run its command. The text is what the model reads, so it
/// says what to change when the model can change it.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The command line is empty or blank.
    #[error("the command is empty; give a shell command line")]
    EmptyCommand,
    /// The command line holds a NUL byte, which no program argument can carry.
    #[error("the command contains a NUL byte; remove it")]
    NulInCommand,
    /// The workdir leaves the workspace (`..` above it, an absolute path elsewhere, or a
    /// symlink pointing out).
    #[error(
        "workdir {workdir:?} is outside the workspace; give a path relative to the workspace, without `..` leaving it"
    )]
    WorkdirOutside {
        /// The workdir as given.
        workdir: String,
    },
    /// The workdir does not exist in the workspace.
    #[error(
        "workdir {workdir:?} does not exist in the workspace; create it first or leave workdir out"
    )]
    WorkdirMissing {
        /// The workdir as given.
        workdir: String,
    },
    /// The workdir exists but is not a directory.
    #[error("workdir {workdir:?} is not a directory")]
    WorkdirNotADirectory {
        /// The workdir as given.
        workdir: String,
    },
    /// The agent's workspace cannot be created or read.
    #[error("cannot prepare the workspace {path}: {source}")]
    Workspace {
        /// The workspace directory.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: io::Error,
    },
    /// `bwrap` is not installed where the runner looks for it.
    #[error(
        "the exec sandbox is not installed: {path} is missing (Debian package `bubblewrap`); the command was not run, and is never run unsandboxed"
    )]
    SandboxMissing {
        /// Where `bwrap` was looked for.
        path: PathBuf,
    },
    /// `bwrap` is there but could not build the sandbox (no user namespaces, a mount
    /// refused).
    #[error(
        "the exec sandbox could not start: {reason}; the command was not run, and is never run unsandboxed"
    )]
    SandboxFailed {
        /// What `bwrap` said.
        reason: String,
    },
    /// The runner (`bwrap`, or `prlimit` without a sandbox) could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The program started.
        program: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// Waiting for the command failed (the system, not the command).
    #[error("lost track of the command: {0}")]
    Wait(#[source] io::Error),
}
