//! The exec runner end to end: commands run under bubblewrap, what they may see and do,
//! and what is left when they end. Network tests use loopback only: a listener this test
//! opens on 127.0.0.1; nothing is sent anywhere else.
//!
//! These need `bwrap` (Debian's `bubblewrap`; `scripts/test` installs it). Where it is
//! installed but the kernel refuses it namespaces, each test prints a SKIPPED line and
//! passes; a missing `bwrap` fails them.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pincer_tools::exec::{
    ExecError, Exit, Limits, OUTPUT_CAP_BYTES, Outcome, Request, Runner, Sandbox,
};

// === helpers ===

/// A fresh `<home>` under Cargo's temp dir for tests (in `target/`, not `/tmp`, which the
/// sandbox replaces with its own), with the agent's workspace path in it (not
/// created: the runner creates it), removed on drop.
struct Home {
    root: PathBuf,
}

impl Home {
    fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "pincer-exec-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&root).unwrap();
        Self {
            root: root.canonicalize().unwrap(),
        }
    }

    fn workspace(&self) -> PathBuf {
        self.root.join("workspaces").join("main")
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The sandboxed runner, or `None` (after a SKIPPED line) where bwrap is installed but
/// cannot create namespaces. A missing bwrap fails the test: the test script installs it.
async fn sandbox(test: &str) -> Option<Runner> {
    let runner = Runner::new(Sandbox::Bwrap);
    match runner.probe().await {
        Ok(()) => Some(runner),
        Err(ExecError::SandboxFailed { reason }) => {
            println!("SKIPPED {test}: bwrap cannot create namespaces here: {reason}");
            None
        }
        Err(other) => panic!("{test}: the sandbox cannot run: {other}"),
    }
}

async fn run(runner: &Runner, home: &Home, request: Request) -> Outcome {
    runner
        .run(&home.workspace(), &request)
        .await
        .unwrap_or_else(|e| panic!("{:?}: {e}", request.command))
}

/// A tag unique to this test run, to find our own processes in the host's `/proc`:
/// `sleep <tag>` sleeps 100 s and names no one else's process.
fn sleep_tag() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "100.{}{:03}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Host pids whose command line is `sleep <tag>`.
fn sleepers(tag: &str) -> Vec<u32> {
    let want = format!("sleep\0{tag}\0");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline"))
            && cmdline.ends_with(want.as_bytes())
        {
            found.push(pid);
        }
    }
    found
}

/// Waits until `check` holds, up to `limit`; whether it did.
async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// === running ===

#[tokio::test]
async fn a_command_runs_and_reports_its_exit_code() {
    let Some(runner) = sandbox("a_command_runs").await else {
        return;
    };
    let home = Home::new();
    let out = run(&runner, &home, Request::new("echo hi")).await;
    assert_eq!(out.exit, Exit::Code(0));
    assert_eq!(out.output, "hi\n");
    assert!(out.sandboxed && !out.timed_out && !out.truncated);
    assert!(home.workspace().is_dir(), "the workspace is created");
    let report = out.report();
    assert!(report.starts_with("exit code 0 ("), "{report}");
    assert!(!report.contains("NOT sandboxed"), "{report}");
}

#[tokio::test]
async fn stderr_is_captured_interleaved_with_stdout() {
    let Some(runner) = sandbox("stderr").await else {
        return;
    };
    let home = Home::new();
    let out = run(
        &runner,
        &home,
        Request::new("echo one; echo two >&2; echo three; ls /no-such-file"),
    )
    .await;
    assert_eq!(out.exit, Exit::Code(2));
    assert!(
        out.output
            .starts_with("one\ntwo\nthree\nls: cannot access '/no-such-file'"),
        "{}",
        out.output
    );
}

#[tokio::test]
async fn a_non_zero_exit_is_reported() {
    let Some(runner) = sandbox("non_zero").await else {
        return;
    };
    let home = Home::new();
    let out = run(&runner, &home, Request::new("exit 3")).await;
    assert_eq!(out.exit, Exit::Code(3));
    assert!(out.report().starts_with("exit code 3"), "{}", out.report());
    let killed = run(&runner, &home, Request::new("kill -9 $$")).await;
    assert_eq!(killed.exit, Exit::Code(137), "a signal shows as 128 + n");
}

#[tokio::test]
async fn the_workdir_is_inside_the_workspace_and_may_not_leave_it() {
    let Some(runner) = sandbox("workdir").await else {
        return;
    };
    let home = Home::new();
    std::fs::create_dir_all(home.workspace().join("src/app")).unwrap();
    let out = run(
        &runner,
        &home,
        Request::new("pwd; echo $HOME").workdir("src/app"),
    )
    .await;
    let ws = home.workspace().display().to_string();
    assert_eq!(out.output, format!("{ws}/src/app\n{ws}\n"));

    for outside in ["..", "src/../../..", "/etc", "/tmp"] {
        let refused = runner
            .run(&home.workspace(), &Request::new("pwd").workdir(outside))
            .await;
        assert!(
            matches!(refused, Err(ExecError::WorkdirOutside { .. })),
            "{outside}: {refused:?}"
        );
    }
}

#[tokio::test]
async fn long_output_keeps_head_and_tail() {
    let Some(runner) = sandbox("output_cap").await else {
        return;
    };
    let home = Home::new();
    let out = run(
        &runner,
        &home,
        Request::new("printf START; head -c 1000000 /dev/zero | tr '\\0' x; printf END"),
    )
    .await;
    assert_eq!(out.exit, Exit::Code(0));
    assert!(out.truncated);
    assert_eq!(out.output_bytes, 1_000_008);
    assert!(out.output.starts_with("STARTxxx"));
    assert!(out.output.ends_with("xxxEND"));
    assert!(out.output.contains("[... 800008 bytes of output omitted"));
    assert!(
        out.output.len() < OUTPUT_CAP_BYTES + 200,
        "{}",
        out.output.len()
    );
}

#[tokio::test]
async fn the_limits_hold_inside() {
    let Some(runner) = sandbox("limits").await else {
        return;
    };
    let home = Home::new();
    let out = run(&runner, &home, Request::new("cat /proc/self/limits")).await;
    for line in [
        "Max cpu time              600                  600",
        "Max file size             1073741824           1073741824",
        "Max processes             512                  512",
        "Max address space         4294967296           4294967296",
    ] {
        assert!(out.output.contains(line), "{line:?} in\n{}", out.output);
    }
    let raise = run(
        &runner,
        &home,
        Request::new("ulimit -H -f unlimited && echo raised"),
    )
    .await;
    assert!(!raise.output.contains("raised"), "{}", raise.output);

    // A small file-size limit stops a write at it (SIGXFSZ: 128 + 25).
    let small = runner.clone().with_limits(Limits {
        file_size_bytes: 4096,
        ..Limits::default()
    });
    let big = run(
        &small,
        &home,
        Request::new("head -c 100000 /dev/zero > big; echo rc=$?; wc -c < big"),
    )
    .await;
    assert!(big.output.ends_with("rc=153\n4096\n"), "{}", big.output);
}

// === timeouts and cancellation ===

#[tokio::test]
async fn a_timeout_kills_every_process_of_the_command() {
    let Some(runner) = sandbox("timeout").await else {
        return;
    };
    let home = Home::new();
    let tag = sleep_tag();
    let started = Instant::now();
    let out = run(
        &runner,
        &home,
        Request::new(format!("sleep {tag} & sleep {tag}; wait")).timeout(Duration::from_secs(1)),
    )
    .await;
    assert!(out.timed_out);
    assert_eq!(out.exit, Exit::Signal(9));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        out.report().starts_with("timed out after 1s"),
        "{}",
        out.report()
    );
    assert!(
        eventually(Duration::from_secs(5), || sleepers(&tag).is_empty()).await,
        "survivors: {:?}",
        sleepers(&tag)
    );
}

#[tokio::test]
async fn dropping_a_call_kills_every_process_of_the_command() {
    let Some(runner) = sandbox("drop").await else {
        return;
    };
    let home = Home::new();
    let tag = sleep_tag();
    let ws = home.workspace();
    let command = format!("sleep {tag} & sleep {tag}; wait");
    let call = tokio::spawn(async move { runner.run(&ws, &Request::new(command)).await });
    assert!(
        eventually(Duration::from_secs(5), || sleepers(&tag).len() == 2).await,
        "the command did not start: {:?}",
        sleepers(&tag)
    );
    call.abort();
    assert!(
        eventually(Duration::from_secs(5), || sleepers(&tag).is_empty()).await,
        "survivors: {:?}",
        sleepers(&tag)
    );
}

#[tokio::test]
async fn background_processes_end_with_the_command() {
    let Some(runner) = sandbox("background").await else {
        return;
    };
    let home = Home::new();
    let tag = sleep_tag();
    let out = run(
        &runner,
        &home,
        Request::new(format!("sleep {tag} & echo left")),
    )
    .await;
    assert_eq!(out.output, "left\n");
    assert!(out.duration < Duration::from_secs(5));
    assert!(eventually(Duration::from_secs(5), || sleepers(&tag).is_empty()).await);
}

#[tokio::test]
async fn unsandboxed_timeouts_and_drops_kill_the_process_group() {
    let runner = Runner::new(Sandbox::None);
    let home = Home::new();
    let tag = sleep_tag();
    let out = run(
        &runner,
        &home,
        Request::new(format!("sleep {tag} & sleep {tag}; wait")).timeout(Duration::from_secs(1)),
    )
    .await;
    assert!(out.timed_out && !out.sandboxed);
    assert!(eventually(Duration::from_secs(5), || sleepers(&tag).is_empty()).await);

    let ws = home.workspace();
    let tag = sleep_tag();
    let command = format!("sleep {tag} & sleep {tag}; wait");
    let call = tokio::spawn(async move { runner.run(&ws, &Request::new(command)).await });
    assert!(eventually(Duration::from_secs(5), || sleepers(&tag).len() == 2).await);
    call.abort();
    assert!(
        eventually(Duration::from_secs(5), || sleepers(&tag).is_empty()).await,
        "survivors: {:?}",
        sleepers(&tag)
    );
}

// === escapes ===

#[tokio::test]
async fn files_outside_the_workspace_are_not_visible() {
    let Some(runner) = sandbox("read_outside").await else {
        return;
    };
    let home = Home::new();
    let secret = home.root.join("secret.txt");
    std::fs::write(&secret, "hunter2").unwrap();
    let out = run(
        &runner,
        &home,
        Request::new(format!(
            "cat {0}; ls {1}; cat ../../secret.txt; ls /; cat /etc/shadow",
            secret.display(),
            home.root.display()
        )),
    )
    .await;
    assert!(!out.output.contains("hunter2"), "{}", out.output);
    assert!(out.output.contains("No such file"), "{}", out.output);
    assert!(!out.output.contains("secret.txt\n"), "{}", out.output);
    assert!(!out.output.contains("root\n"), "no /root: {}", out.output);
}

#[tokio::test]
async fn writes_outside_the_workspace_fail() {
    let Some(runner) = sandbox("write_outside").await else {
        return;
    };
    let home = Home::new();
    let host_tmp = std::env::temp_dir().join(format!("pincer-exec-host-{}", sleep_tag()));
    std::fs::write(&host_tmp, "host").unwrap();
    let out = run(
        &runner,
        &home,
        Request::new(format!(
            "echo in > inside.txt; ls -A /tmp; \
             for f in {0}/pwned /usr/pwned /etc/pwned /pwned {1}; do echo x > $f && echo WROTE $f; done; \
             echo scratch > /tmp/scratch && echo tmp-ok",
            home.root.display(),
            host_tmp.display(),
        )),
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(home.workspace().join("inside.txt")).unwrap(),
        "in\n"
    );
    assert!(!home.root.join("pwned").exists());
    for path in ["/usr/pwned", "/etc/pwned", "/pwned"] {
        assert!(!Path::new(path).exists(), "{path}");
    }
    assert_eq!(std::fs::read_to_string(&host_tmp).unwrap(), "host");
    let _ = std::fs::remove_file(&host_tmp);
    let wrote: Vec<&str> = out
        .output
        .lines()
        .filter(|l| l.starts_with("WROTE"))
        .collect();
    // Paths under /tmp are writable in the sandbox only because /tmp is its own fresh
    // tmpfs: the write lands there, not on the host (checked above). That includes the
    // workspace's parent when the workspace lies under /tmp (a clone in /tmp: bwrap makes
    // the parents of a bind mount inside the tmpfs).
    assert!(
        wrote
            .iter()
            .all(|l| l.trim_start_matches("WROTE ").starts_with("/tmp/")),
        "{}",
        out.output
    );
    assert!(out.output.contains("tmp-ok"), "{}", out.output);
    let tmp_listing: Vec<&str> = out
        .output
        .lines()
        .take_while(|l| !l.contains("pwned"))
        .collect();
    assert!(
        !tmp_listing
            .iter()
            .any(|l| l.starts_with("pincer-exec-host-")),
        "host /tmp visible: {}",
        out.output
    );
}

#[tokio::test]
async fn no_network_without_the_option() {
    let Some(runner) = sandbox("network").await else {
        return;
    };
    let home = Home::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let connect = format!(
        "bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port} && echo CONNECTED'; ls /sys/class/net 2>/dev/null || cat /proc/net/dev"
    );
    let out = run(&runner, &home, Request::new(connect.clone())).await;
    assert!(!out.output.contains("CONNECTED"), "{}", out.output);
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the listener saw a connection"
    );

    // The same command with the network on reaches the listener: the test above fails
    // for the sandbox, not for the command.
    let out = run(&runner, &home, Request::new(connect).network(true)).await;
    assert!(out.output.contains("CONNECTED"), "{}", out.output);
    assert!(
        eventually(Duration::from_secs(2), || listener.accept().is_ok()).await,
        "the listener saw no connection with the network on"
    );
}

#[tokio::test]
async fn other_processes_are_not_visible() {
    let Some(runner) = sandbox("processes").await else {
        return;
    };
    let home = Home::new();
    let out = run(
        &runner,
        &home,
        Request::new("ls /proc | grep -E '^[0-9]+$' | tr '\\n' ' '"),
    )
    .await;
    let pids: Vec<u32> = out
        .output
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(!pids.is_empty() && pids.len() <= 6, "{pids:?}");
    assert!(pids.iter().all(|p| *p < 20), "{pids:?}");
    assert!(!pids.contains(&std::process::id()) || std::process::id() < 20);
}

/// The environment check runs in a child of this test binary started with `PINCER_*`,
/// an API key and `LD_*` set (setting variables in this process would need `unsafe`).
#[tokio::test]
async fn the_environment_is_scrubbed() {
    if sandbox("environment").await.is_none() {
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "env_child", "--ignored", "--nocapture"])
        .env("PINCER_CANARY", "pincer-canary-value")
        .env("OPENAI_API_KEY", "sk-canary")
        .env("LD_LIBRARY_PATH", "/nonexistent-canary")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ENV-CHECKED"), "{stdout}");
}

/// Run by [`the_environment_is_scrubbed`] with canaries in its environment.
#[tokio::test]
#[ignore = "run by the_environment_is_scrubbed, with canaries set"]
async fn env_child() {
    assert_eq!(
        std::env::var("PINCER_CANARY").as_deref(),
        Ok("pincer-canary-value")
    );
    let home = Home::new();
    for runner in [Runner::new(Sandbox::Bwrap), Runner::new(Sandbox::None)] {
        let out = run(&runner, &home, Request::new("env | sort")).await;
        let names: Vec<&str> = out
            .output
            .lines()
            .filter_map(|l| l.split('=').next())
            .collect();
        // `PWD`, `SHLVL` and `_` are the shell's own.
        let expected = ["HOME", "LANG", "PATH", "PWD", "SHLVL", "TERM"];
        let unexpected: Vec<&&str> = names
            .iter()
            .filter(|n| !expected.contains(n) && **n != "_")
            .collect();
        assert!(
            unexpected.is_empty(),
            "{:?}: {}",
            runner.sandbox(),
            out.output
        );
        assert!(!out.output.contains("canary"), "{}", out.output);
        assert!(out.output.contains("LANG=C.UTF-8") && out.output.contains("TERM=dumb"));
    }
    println!("ENV-CHECKED");
}

// === modes and errors ===

#[tokio::test]
async fn unsandboxed_mode_says_so_and_keeps_the_rules() {
    let runner = Runner::new(Sandbox::None);
    let home = Home::new();
    std::fs::create_dir_all(home.workspace().join("sub")).unwrap();
    let out = run(
        &runner,
        &home,
        Request::new("pwd; grep 'Max processes' /proc/self/limits").workdir("sub"),
    )
    .await;
    assert!(!out.sandboxed);
    assert!(out.report().contains("NOT sandboxed"), "{}", out.report());
    assert!(
        out.output
            .starts_with(&format!("{}/sub\n", home.workspace().display()))
    );
    assert!(out.output.contains("512"), "{}", out.output);
    assert!(matches!(
        runner
            .run(&home.workspace(), &Request::new("pwd").workdir("../.."))
            .await,
        Err(ExecError::WorkdirOutside { .. })
    ));
}

#[tokio::test]
async fn a_missing_bwrap_fails_the_call_and_never_runs_it_unsandboxed() {
    let home = Home::new();
    let marker = home.root.join("ran");
    let runner = Runner::new(Sandbox::Bwrap).with_bwrap("/nonexistent/bwrap");
    let err = runner
        .run(
            &home.workspace(),
            &Request::new(format!("touch {}", marker.display())),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ExecError::SandboxMissing { .. }), "{err:?}");
    assert!(err.to_string().contains("never run unsandboxed"), "{err}");
    assert!(!marker.exists());
    assert!(matches!(
        runner.probe().await,
        Err(ExecError::SandboxMissing { .. })
    ));
}

#[tokio::test]
async fn a_sandbox_that_cannot_start_is_an_error_not_an_outcome() {
    // A bwrap that fails the way a kernel refusing namespaces makes it fail.
    let home = Home::new();
    let fake = home.root.join("fake-bwrap");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let runner = Runner::new(Sandbox::Bwrap).with_bwrap(&fake);
    let err = runner
        .run(&home.workspace(), &Request::new("echo hi"))
        .await
        .unwrap_err();
    assert!(matches!(err, ExecError::SandboxFailed { .. }), "{err:?}");
    assert!(err.to_string().contains("new namespace"), "{err}");
    assert!(matches!(
        runner.probe().await,
        Err(ExecError::SandboxFailed { .. })
    ));
}
