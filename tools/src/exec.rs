//! The runner behind the `exec` tool: a shell command line run in a sandbox that sees only
//! its agent's workspace, with a timeout that kills every process it started.
//!
//! # What a call gets
//!
//! [`Runner::run`] takes the workspace (`<home>/workspaces/<agent>`, created when missing)
//! and a [`Request`]: the command line (run by `/bin/sh -c`), a workdir inside the
//! workspace (`..` may not leave it, an absolute path must lie in it, a symlink may not
//! lead out), a timeout (default [`DEFAULT_TIMEOUT`], at most [`MAX_TIMEOUT`]) and whether
//! the network is on. It returns an [`Outcome`]: exit code or signal, whether the timeout
//! ended it, stdout and stderr interleaved in one pipe (the order written, as a terminal
//! shows them) cut to [`OUTPUT_CAP_BYTES`] keeping head and tail, and how long it took.
//! A command that fails is an outcome; an [`ExecError`] means it did not run.
//!
//! # Which commands run
//!
//! [`decide`] applies `[tools.exec]`'s `security` and `ask` to a command line before it
//! runs: refused, run, or asked about first ([`Verdict`]). In allowlist mode the line is
//! read for the binaries it runs ([`allowlist`]: what is read, what is refused outright,
//! and what such a check cannot see); the caller asks the person in the chat.
//!
//! # The sandbox
//!
//! Each call runs under Debian's `bubblewrap` (`bwrap`):
//!
//! ```text
//! bwrap --unshare-all [--share-net] --die-with-parent --new-session --cap-drop ALL
//!       --hostname sandbox --ro-bind /usr /usr --symlink usr/bin /bin (lib, lib64, sbin likewise)
//!       --ro-bind-try /etc/<passwd, group, hosts, nsswitch.conf, ld.so.cache, alternatives, ssl, ...>
//!       --proc /proc --dev /dev --tmpfs /tmp --bind <workspace> <workspace> --chdir <workdir>
//!       -- /usr/bin/prlimit --cpu=.. --as=.. --nproc=.. --fsize=.. --core=0
//!          -- /bin/sh -c 'exec /bin/sh -c "$1" 2>&1' sh <command>
//! ```
//!
//! - New user, pid, ipc, uts, cgroup and network namespaces: no other process is visible
//!   (`/proc` is the sandbox's own), and without `network` there is only a loopback
//!   interface of its own, so nothing is reachable, the host's loopback included.
//! - A fresh root: the system read-only, a few files of `/etc` (not `shadow`, not the
//!   host's service config), an empty `/tmp`, a minimal `/dev`, the workspace read-write
//!   at its own path. Nothing else of the host's file system exists in it.
//! - No capabilities, its own session (no terminal to inject input into), and rlimits on
//!   CPU time, address space, processes and file size ([`Limits`]) set by `prlimit`
//!   before the shell starts, hard and soft alike.
//! - The environment is `PATH`, `HOME` (the workspace), `LANG=C.UTF-8` and `TERM=dumb`:
//!   no `PINCER_*`, no keys, no `LD_*`.
//! - The runner is in its own process group and is killed with it, with SIGKILL, on
//!   timeout or when the call is dropped; `bwrap`'s init dies with it
//!   (`--die-with-parent`), and the kernel kills every process of a pid namespace whose
//!   init dies, so nothing the command started survives. When the command ends, what it
//!   left in the background ends too.
//!
//! If `bwrap` is missing or cannot create namespaces the call fails with
//! [`ExecError::SandboxMissing`] or [`ExecError::SandboxFailed`]; it never falls back to
//! running unsandboxed. [`Sandbox::None`] exists for an operator who says so in config
//! (`tools.exec.sandbox = "none"`): same environment, workdir rules, limits and
//! timeout, no isolation, and every outcome says so. [`Runner::probe`] tells whether the
//! sandbox works on this machine.
//!
//! # Why bubblewrap
//!
//! Namespaces give a command its own view of the file system, processes and network
//! without a daemon or root (unprivileged user namespaces), and `bwrap` is a small tool
//! (not setuid on Debian) that Flatpak relies on, run as a program: the gateway needs no
//! `unsafe` code and no privileges to use it. The alternatives restrict rather
//! than hide: Landlock limits which paths a process may open but it still sees the
//! process list and the network (network rules only for TCP bind/connect, from Linux
//! 6.7), and seccomp filters syscalls, not paths. Both are set up in the child between
//! fork and exec, which takes `unsafe` code this workspace forbids, and neither gives a
//! pid namespace whose death kills every descendant.
//!
//! # What it does not cover
//!
//! - The kernel is shared: a kernel bug reachable from an unprivileged user namespace is
//!   a way out. No seccomp filter narrows the syscalls.
//! - With `network` on, the sandbox shares the host's network namespace: it can reach the
//!   host's loopback services, the LAN and metadata addresses. The SSRF guard does not
//!   apply to commands.
//! - The workspace is writable in full: a command can change or delete anything in it,
//!   including what other calls of the same agent left there.
//! - Disk use in the workspace and in `/tmp` (a tmpfs, so memory) is bounded only per
//!   file (`RLIMIT_FSIZE`); memory is bounded per process (`RLIMIT_AS`), not per call;
//!   there is no cgroup, so no limit on the total of a call's processes.
//! - `RLIMIT_NPROC` counts the user's processes; when the gateway runs as root outside a
//!   user namespace (only with [`Sandbox::None`]) the kernel does not apply it.
//! - The system directories are readable: installed programs and `/etc`'s listed files.
//! - Without a sandbox ([`Sandbox::None`]) none of the isolation holds, and a process that
//!   leaves the process group (`setsid`) escapes the kill.
//!
//! ```no_run
//! use std::path::Path;
//! use pincer_tools::exec::{Request, Runner, Sandbox};
//!
//! # async fn demo() -> Result<(), pincer_tools::exec::ExecError> {
//! let runner = Runner::new(Sandbox::Bwrap);
//! let outcome = runner
//!     .run(Path::new("/var/lib/pincer/workspaces/main"), &Request::new("ls -la"))
//!     .await?;
//! println!("{}", outcome.report());
//! # Ok(())
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod allowlist;
mod error;
mod output;
mod policy;
mod request;
mod run;
mod sandbox;

#[cfg(test)]
mod tests;

pub use error::ExecError;
pub use policy::{Question, Verdict, decide};
pub use request::Request;
pub use run::{Exit, Outcome, Runner};
pub use sandbox::{BWRAP, Limits, PATH, PRLIMIT, Sandbox};

/// The timeout of a call that names none: long enough for a build step or a test run,
/// short enough that a stuck command does not hold a turn for long.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The longest timeout a call may ask for; more is cut to it. Ten minutes: a turn waits
/// on the call, and the tool-call timeout of the gateway bounds it in any case.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(600);

/// How much output a call returns, in bytes: the first and the last half of it when the
/// command wrote more (200 kB, about 50,000 tokens: more would crowd the model's context,
/// and the gateway cuts tool results further by `tools.maxResultChars`).
pub const OUTPUT_CAP_BYTES: usize = 200_000;

/// The directory `request` runs in: its workdir inside `workspace` (created when
/// missing), as [`Runner::run`] resolves it. What [`decide`] resolves relative command
/// paths in.
pub fn workdir(workspace: &Path, request: &Request) -> Result<PathBuf, ExecError> {
    let workspace = request::prepare_workspace(workspace)?;
    request::resolve_workdir(&workspace, request.workdir.as_deref())
}
