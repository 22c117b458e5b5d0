//! Running one command: spawn, read, time out, kill the whole tree, report.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::sync::oneshot;

use super::output::Capped;
use super::request::{prepare_workspace, resolve_workdir};
use super::sandbox::{PRLIMIT, bwrap_args, default_bwrap, limited_shell, scrubbed_env};
use super::{ExecError, Limits, OUTPUT_CAP_BYTES, Request, Sandbox};

/// How much of the runner's own stderr (`bwrap`'s and `prlimit`'s messages) is kept.
const RUNNER_STDERR_CAP: usize = 4 * 1024;

/// How long output is still read after the command has ended. In the sandbox every
/// process is gone by then and the pipes close at once; without one, a process that left
/// the process group may hold them open, and the call does not wait on it.
const DRAIN_GRACE: Duration = Duration::from_millis(500);

/// How long [`Runner::probe`] waits for a sandbox running `true`: ample for a start that
/// takes milliseconds, short enough for `doctor`.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs commands for one configuration: the sandbox mode, the limits, and where `bwrap`
/// is. Cheap to clone; holds no process between calls.
#[derive(Debug, Clone)]
pub struct Runner {
    sandbox: Sandbox,
    limits: Limits,
    bwrap: PathBuf,
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code. A process of the command killed by signal `n` shows as
    /// `128 + n`, as the shell reports it.
    Code(i32),
    /// The runner itself was killed by this signal: `9` when the call timed out.
    Signal(i32),
}

/// What one call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// How the command ended.
    pub exit: Exit,
    /// Whether the timeout ended it (every process of the command was killed).
    pub timed_out: bool,
    /// stdout and stderr interleaved in the order written (one pipe for both), at most
    /// [`OUTPUT_CAP_BYTES`]: head and tail with a marker between them when longer.
    /// Invalid UTF-8 reads as U+FFFD.
    pub output: String,
    /// Whether output was left out in the middle.
    pub truncated: bool,
    /// How many bytes of output the command wrote, kept or not.
    pub output_bytes: u64,
    /// From start to end, sandbox set-up included.
    pub duration: Duration,
    /// The timeout that was in force.
    pub timeout: Duration,
    /// Whether it ran in the sandbox; `false` only with [`Sandbox::None`].
    pub sandboxed: bool,
}

/// Kills a process group on drop unless disarmed: a call dropped mid-run (the turn
/// cancelled, the actor stopped) takes every process of its command with it.
#[derive(Debug)]
struct GroupKill {
    pgid: Option<Pid>,
}

// === impl Runner ===

impl Runner {
    /// A runner in `sandbox` mode with the default [`Limits`] and `bwrap` at
    /// [`BWRAP`](super::BWRAP).
    pub fn new(sandbox: Sandbox) -> Self {
        Self {
            sandbox,
            limits: Limits::default(),
            bwrap: default_bwrap(),
        }
    }

    /// The same runner with `limits`.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The same runner taking `bwrap` from `path`.
    pub fn with_bwrap(mut self, path: impl Into<PathBuf>) -> Self {
        self.bwrap = path.into();
        self
    }

    /// The sandbox mode.
    pub fn sandbox(&self) -> Sandbox {
        self.sandbox
    }

    /// Runs `request` with `workspace` (`<home>/workspaces/<agent>`, created when
    /// missing) as its writable directory and home.
    ///
    /// When the timeout passes, or when this future is dropped, every process of the
    /// command is killed with SIGKILL: in the sandbox by killing `bwrap`, which takes its
    /// pid namespace down; without one by killing the process group. Processes the
    /// command left running in the background are killed when it ends, likewise.
    pub async fn run(&self, workspace: &Path, request: &Request) -> Result<Outcome, ExecError> {
        request.check_command()?;
        let workspace = prepare_workspace(workspace)?;
        let workdir = resolve_workdir(&workspace, request.workdir.as_deref())?;
        let timeout = request.effective_timeout();
        let inner = limited_shell(&self.limits, &request.command);
        let (program, mut cmd) = match self.sandbox {
            Sandbox::Bwrap => {
                let mut cmd = Command::new(&self.bwrap);
                cmd.args(bwrap_args(
                    Some(&workspace),
                    Some(&workdir),
                    request.network,
                    inner,
                ));
                (self.bwrap.clone(), cmd)
            }
            Sandbox::None => {
                let mut cmd = Command::new(&inner[0]);
                cmd.args(&inner[1..]).current_dir(&workdir);
                (PathBuf::from(PRLIMIT), cmd)
            }
        };
        cmd.env_clear()
            .envs(scrubbed_env(&workspace))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);

        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|source| spawn_error(self.sandbox, program, source))?;
        let mut group = GroupKill {
            pgid: child.id().and_then(|id| Pid::from_raw(id as i32)),
        };
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let mut output = Capped::new(OUTPUT_CAP_BYTES);
        let mut runner_err = Capped::new(RUNNER_STDERR_CAP);

        let (ended_tx, ended_rx) = oneshot::channel::<()>();
        let waiting = async {
            let ended = tokio::select! {
                status = child.wait() => status.map(|s| (s, false)),
                () = tokio::time::sleep(timeout) => {
                    group.kill();
                    child.wait().await.map(|s| (s, true))
                }
            };
            let duration = started.elapsed();
            // Whatever the command left in the background goes with it.
            group.kill();
            group.disarm();
            let _ = ended_tx.send(());
            ended.map(|(status, timed_out)| (status, timed_out, duration))
        };
        let reading = async {
            let pumps =
                async { tokio::join!(pump(stdout, &mut output), pump(stderr, &mut runner_err)) };
            tokio::select! {
                _ = pumps => {}
                () = async {
                    let _ = ended_rx.await;
                    tokio::time::sleep(DRAIN_GRACE).await;
                } => {}
            }
        };
        let (ended, ()) = tokio::join!(waiting, reading);
        let (status, timed_out, duration) = ended.map_err(ExecError::Wait)?;

        let runner_err = runner_err.into_text();
        let exit = exit_of(status);
        if self.sandbox == Sandbox::Bwrap
            && !timed_out
            && exit != Exit::Code(0)
            && output.total() == 0
            && runner_err.starts_with("bwrap:")
        {
            return Err(ExecError::SandboxFailed {
                reason: runner_err.trim().to_string(),
            });
        }
        let truncated = output.truncated();
        let output_bytes = output.total();
        let mut text = output.into_text();
        if !runner_err.trim().is_empty() {
            text.push_str(&format!("\n[runner: {}]", runner_err.trim()));
        }
        Ok(Outcome {
            exit,
            timed_out,
            output: text,
            truncated,
            output_bytes,
            duration,
            timeout,
            sandboxed: self.sandbox == Sandbox::Bwrap,
        })
    }

    /// Whether the sandbox works here: runs `true` in a sandbox like a call's (no
    /// workspace), and says why not when it cannot. For `doctor`, and for tests to skip
    /// where the kernel refuses namespaces. With [`Sandbox::None`] there is nothing to
    /// probe.
    pub async fn probe(&self) -> Result<(), ExecError> {
        if self.sandbox == Sandbox::None {
            return Ok(());
        }
        let mut cmd = Command::new(&self.bwrap);
        cmd.args(bwrap_args(
            None,
            Some(Path::new("/")),
            false,
            vec!["/usr/bin/true".into()],
        ))
        .env_clear()
        .envs(scrubbed_env(Path::new("/")))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
        let child = cmd
            .spawn()
            .map_err(|source| spawn_error(self.sandbox, self.bwrap.clone(), source))?;
        let out = tokio::time::timeout(PROBE_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| ExecError::SandboxFailed {
                reason: format!(
                    "bwrap running `true` did not finish in {}s",
                    PROBE_TIMEOUT.as_secs()
                ),
            })?
            .map_err(ExecError::Wait)?;
        if out.status.success() {
            return Ok(());
        }
        let said = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(ExecError::SandboxFailed {
            reason: if said.is_empty() {
                format!("bwrap running `true` ended with {}", out.status)
            } else {
                said
            },
        })
    }
}

impl Default for Runner {
    fn default() -> Self {
        Self::new(Sandbox::Bwrap)
    }
}

// === impl Outcome ===

impl Outcome {
    /// The outcome as the model reads it: one line of status, then the output.
    pub fn report(&self) -> String {
        let mut head = match (self.timed_out, self.exit) {
            (true, _) => format!(
                "timed out after {}s; every process of the command was killed",
                self.timeout.as_secs()
            ),
            (false, Exit::Code(code)) => format!("exit code {code}"),
            (false, Exit::Signal(signal)) => format!("killed by signal {signal}"),
        };
        head.push_str(&format!(" ({} ms", self.duration.as_millis()));
        if !self.sandboxed {
            head.push_str(", NOT sandboxed");
        }
        if self.truncated {
            head.push_str(&format!(
                ", output cut to {OUTPUT_CAP_BYTES} of {} bytes",
                self.output_bytes
            ));
        }
        head.push(')');
        if self.output.is_empty() {
            head.push_str("\n(no output)");
        } else {
            head.push('\n');
            head.push_str(&self.output);
        }
        head
    }
}

// === impl GroupKill ===

impl GroupKill {
    /// SIGKILL to the group. Never to pid 1 or below: `kill(-1)` would signal every
    /// process we may signal. "No such process" (the group is empty) is the goal.
    fn kill(&self) {
        if let Some(pgid) = self.pgid.filter(|p| p.as_raw_nonzero().get() > 1) {
            let _ = kill_process_group(pgid, Signal::KILL);
        }
    }

    /// Done with the group: the leader has been reaped, so its id may be reused and must
    /// not be signalled again.
    fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for GroupKill {
    fn drop(&mut self) {
        self.kill();
    }
}

// === helpers ===

/// Reads `from` to its end into `into`.
async fn pump(from: Option<impl AsyncRead + Unpin>, into: &mut Capped) {
    let Some(mut from) = from else { return };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => into.push(&buf[..n]),
        }
    }
}

fn exit_of(status: ExitStatus) -> Exit {
    match (status.code(), status.signal()) {
        (Some(code), _) => Exit::Code(code),
        (None, Some(signal)) => Exit::Signal(signal),
        (None, None) => Exit::Code(-1),
    }
}

fn spawn_error(sandbox: Sandbox, program: PathBuf, source: std::io::Error) -> ExecError {
    if sandbox == Sandbox::Bwrap && source.kind() == std::io::ErrorKind::NotFound {
        ExecError::SandboxMissing { path: program }
    } else {
        ExecError::Spawn { program, source }
    }
}
