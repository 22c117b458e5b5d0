//! What a command runs under: the sandbox mode, the limits, and the argv that builds them.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where `bwrap` is looked for: a fixed path, not `$PATH`, so the environment cannot swap
/// the sandbox for something else.
pub const BWRAP: &str = "/usr/bin/bwrap";

/// Where `prlimit` (util-linux, essential on Debian) is, inside the sandbox and out.
pub const PRLIMIT: &str = "/usr/bin/prlimit";

/// The `PATH` a command sees: the system's directories, not the gateway's own `PATH`
/// (whose other entries are not mounted in the sandbox, and could hold anything).
pub const PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";

/// How a command is isolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sandbox {
    /// Namespaces built by `bwrap`: only the workspace writable, the system read-only,
    /// no other process visible, no network unless asked. The default, and the only
    /// mode that isolates anything.
    #[default]
    Bwrap,
    /// No isolation: the command runs as the gateway's user, sees its files and its
    /// network. Only for explicit config (`tools.exec.sandbox = "none"`); the environment
    /// is still scrubbed, the workdir checked and the limits set, and every outcome says
    /// it was unsandboxed.
    None,
}

/// Resource limits of every process of a command (rlimits, hard and soft alike, set by
/// `prlimit` before the shell starts, so nothing inside can raise them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// CPU time of each process (`RLIMIT_CPU`). The wall-clock timeout usually ends a
    /// call first; this stops a spinning process the timeout would not (default 600 s,
    /// the longest timeout).
    pub cpu: Duration,
    /// Address space of each process, in bytes (`RLIMIT_AS`; default 4 GiB: runtimes
    /// such as the JVM and Go reserve far more address space than they touch, and fail
    /// at start under a tighter cap).
    pub address_space_bytes: u64,
    /// Processes of the sandbox's user (`RLIMIT_NPROC`; default 512), which stops a fork
    /// bomb. The kernel does not apply it to a user with `CAP_SYS_RESOURCE`, so it holds
    /// in the sandbox (capabilities dropped) but not for root without one.
    pub processes: u64,
    /// Size of any file a process writes, in bytes (`RLIMIT_FSIZE`; default 1 GiB).
    pub file_size_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            cpu: super::MAX_TIMEOUT,
            address_space_bytes: 4 << 30,
            processes: 512,
            file_size_bytes: 1 << 30,
        }
    }
}

/// Files of `/etc` the sandbox sees, read-only, when present: who users are, name
/// lookup's rules, time zone, the dynamic linker's cache, Debian's alternatives (the
/// targets of `awk`, `editor`...), CA certificates. Not `/etc` whole: it holds the host's
/// `shadow`, keys and service config.
const ETC: &[&str] = &[
    "passwd",
    "group",
    "hosts",
    "nsswitch.conf",
    "host.conf",
    "localtime",
    "timezone",
    "alternatives",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "ssl",
    "ca-certificates",
    "os-release",
];

/// Top-level system directories besides `/usr`: recreated as the same symlinks on a
/// merged-`/usr` system (Debian 12 and later), bound read-only otherwise.
const SYSTEM_DIRS: &[&str] = &["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// The hostname inside the sandbox (its own UTS namespace), so the host's is not shown.
const HOSTNAME: &str = "sandbox";

/// `prlimit` then the shell, as argv: the limits, then `/bin/sh -c` of a tiny script
/// that runs the command line in a second shell with its stderr on stdout. The command
/// so writes both to one pipe, interleaved in the order written; the first shell's and
/// `prlimit`'s own errors stay on stderr, apart from the command's.
pub(crate) fn limited_shell(limits: &Limits, command: &str) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec![
        PRLIMIT.into(),
        format!("--cpu={}", limits.cpu.as_secs().max(1)).into(),
        format!("--as={}", limits.address_space_bytes).into(),
        format!("--nproc={}", limits.processes).into(),
        format!("--fsize={}", limits.file_size_bytes).into(),
        "--core=0".into(),
        "--".into(),
    ];
    argv.extend(
        [
            "/bin/sh",
            "-c",
            r#"exec /bin/sh -c "$1" 2>&1"#,
            "sh",
            command,
        ]
        .map(OsString::from),
    );
    argv
}

/// The arguments of `bwrap` (after its own path) that build the sandbox and run `inner`:
/// `workspace` bound read-write at its own path (the paths a command prints are those
/// the gateway's user sees), `workdir` the current directory.
pub(crate) fn bwrap_args(
    workspace: Option<&Path>,
    workdir: Option<&Path>,
    network: bool,
    inner: Vec<OsString>,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::with_capacity(64 + inner.len());
    let mut push = |parts: &[&str]| args.extend(parts.iter().map(OsString::from));
    // Namespaces: user, ipc, pid, net, uts, cgroup. With the network on, the host's
    // network namespace is kept.
    push(&["--unshare-all"]);
    if network {
        push(&["--share-net"]);
    }
    push(&[
        // bwrap's init in the pid namespace gets SIGKILL when bwrap dies: killing bwrap
        // kills the namespace's init, and with it every process in the namespace.
        "--die-with-parent",
        // A new session: the command has no controlling terminal to inject input into
        // (TIOCSTI).
        "--new-session",
        "--cap-drop",
        "ALL",
        "--hostname",
        HOSTNAME,
        "--ro-bind",
        "/usr",
        "/usr",
    ]);
    for dir in SYSTEM_DIRS {
        let host = Path::new("/").join(dir);
        match std::fs::read_link(&host) {
            Ok(target) => {
                args.push("--symlink".into());
                args.push(target.into());
                args.push(host.into());
            }
            Err(_) if host.is_dir() => {
                args.extend(["--ro-bind".into(), host.clone().into(), host.into()]);
            }
            Err(_) => {}
        }
    }
    let mut etc: Vec<&str> = ETC.to_vec();
    if network {
        etc.push("resolv.conf");
        etc.push("gai.conf");
    }
    for name in etc {
        let path: OsString = Path::new("/etc").join(name).into();
        args.extend(["--ro-bind-try".into(), path.clone(), path]);
    }
    args.extend(
        ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
            .iter()
            .map(OsString::from),
    );
    if let Some(workspace) = workspace {
        let ws: OsString = workspace.into();
        args.extend(["--bind".into(), ws.clone(), ws]);
    }
    // The root (a tmpfs bwrap built, holding the mount points) read-only too, so `/etc`
    // or `/` take no new files; `/tmp` and the workspace are mounts of their own.
    push_strs(&mut args, &["--remount-ro", "/"]);
    if let Some(workdir) = workdir {
        args.extend(["--chdir".into(), workdir.into()]);
    }
    args.push("--".into());
    args.extend(inner);
    args
}

fn push_strs(args: &mut Vec<OsString>, parts: &[&str]) {
    args.extend(parts.iter().map(OsString::from));
}

/// The environment of a command, and of `bwrap` itself (which passes its own on): only
/// these four, so nothing of the gateway's (`PINCER_*`, API keys, `LD_PRELOAD`) gets in.
pub(crate) fn scrubbed_env(home: &Path) -> [(&'static str, OsString); 4] {
    [
        ("PATH", PATH.into()),
        ("HOME", home.into()),
        ("LANG", "C.UTF-8".into()),
        ("TERM", "dumb".into()),
    ]
}

/// The `bwrap` path as a `PathBuf`.
pub(crate) fn default_bwrap() -> PathBuf {
    PathBuf::from(BWRAP)
}
