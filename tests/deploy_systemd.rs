//! `deploy/systemd/pincer.service` and what it expects of the gateway: systemd accepts the
//! unit as written (`systemd-analyze verify`), its hardening stays at an exposure of 2.0
//! or less (`systemd-analyze security --offline`), and the real binary speaks the notify
//! protocol `Type=notify` relies on: `READY=1` once started, `STATUS=` with readiness,
//! `WATCHDOG=1` when a watchdog is asked of it, `STOPPING=1` on SIGTERM, to a path or an
//! abstract socket. The notify socket is one this test binds, as systemd would.
//!
//! `systemd-analyze` comes from Debian's `systemd` (the test command installs it); where
//! it is missing, the two unit tests print SKIPPED with the reason.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Gw, TempDir, free_port};
use reqwest::StatusCode;
use tokio::net::UnixDatagram;

// === helpers ===

fn unit_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/systemd/pincer.service")
}

/// Where the unit says `pincer` is installed.
const INSTALLED: &str = "/usr/local/bin/pincer";

/// The unit as shipped, with `ExecStart`'s binary pointed at the one under test and
/// nothing else changed: `verify` fails a unit whose binary does not exist, and this
/// machine has `pincer` where cargo built it, not where the README installs it.
fn unit_for_this_machine(dir: &Path) -> PathBuf {
    let unit = std::fs::read_to_string(unit_path()).expect("read the unit");
    let exec_start = format!("ExecStart={INSTALLED} ");
    assert_eq!(
        unit.lines().filter(|l| l.starts_with(&exec_start)).count(),
        1,
        "the unit's ExecStart runs {INSTALLED}"
    );
    let rewritten = unit.replace(&exec_start, &format!("ExecStart={} ", common::bin()));
    let path = dir.join("pincer.service");
    std::fs::write(&path, rewritten).expect("write the unit");
    path
}

/// `systemd-analyze ARGS <the unit for this machine>`; `None` (SKIPPED printed) where
/// systemd-analyze is not installed.
fn analyze(args: &[&str]) -> Option<std::process::Output> {
    let found = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!(
            "SKIPPED: systemd-analyze is not installed (Debian's `systemd`; scripts/test installs it)"
        );
        return None;
    }
    let dir = TempDir::new();
    let unit = unit_for_this_machine(dir.path());
    let out = Command::new("systemd-analyze")
        .args(args)
        .arg(&unit)
        .output()
        .expect("run systemd-analyze");
    Some(out)
}

/// Receives datagrams until one has `line` among its lines; every datagram seen.
async fn until(socket: &UnixDatagram, line: &str, limit: Duration, seen: &mut Vec<String>) {
    let deadline = Instant::now() + limit;
    let mut buf = vec![0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = match tokio::time::timeout(left, socket.recv(&mut buf)).await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => panic!("notify socket: {e}"),
            Err(_) => panic!("no `{line}` within {limit:?}; got {seen:#?}"),
        };
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        seen.push(text.clone());
        if text.lines().any(|l| l == line) {
            return;
        }
    }
}

fn count(seen: &[String], line: &str) -> usize {
    seen.iter()
        .flat_map(|d| d.lines())
        .filter(|l| *l == line)
        .count()
}

// === the unit ===

#[test]
fn systemd_accepts_the_unit_as_written() {
    let Some(out) = analyze(&["verify", "--man=no"]) else {
        return;
    };
    // An unknown or misspelt key is only a warning (exit 0): any output fails the test.
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {:?}\n{said}",
        out.status
    );
}

#[test]
fn the_units_hardening_keeps_exposure_at_2_or_less() {
    // `--threshold` counts tenths: 20 is an exposure of 2.0 ("OK" is below 5).
    let Some(out) = analyze(&["security", "--offline=true", "--threshold=20", "--no-pager"]) else {
        return;
    };
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exposure above 2.0:\n{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("Overall exposure level"), "{said}");
}

// === the notify protocol, on the real binary ===

#[tokio::test]
async fn ready_watchdog_and_stopping_reach_a_path_socket() {
    let home = TempDir::new();
    let path = home.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
    let port = free_port();
    let mut gw = Gw::spawn_args(
        home.path(),
        &["gateway", "--port", &port.to_string()],
        port,
        &[
            ("NOTIFY_SOCKET", path.to_str().expect("utf-8 path")),
            // 0.2 s: a ping every 0.1 s.
            ("WATCHDOG_USEC", "200000"),
        ],
    );
    let mut seen = Vec::new();
    until(&socket, "READY=1", Duration::from_secs(20), &mut seen).await;
    // READY=1 means started: what the startup probe says.
    let startup = gw
        .http
        .get(gw.url("/startupz"))
        .send()
        .await
        .expect("startupz");
    assert_eq!(startup.status(), StatusCode::OK, "{}", gw.log());
    let ready = seen.last().expect("the READY datagram").clone();
    assert!(
        ready.lines().any(|l| l.starts_with("STATUS=")),
        "READY=1 comes with a STATUS line: {ready:?}"
    );
    // The default config is ready soon after: the STATUS line follows.
    if !ready.lines().any(|l| l == "STATUS=Ready.") {
        until(&socket, "STATUS=Ready.", Duration::from_secs(10), &mut seen).await;
    }
    let from = seen.len();
    let deadline = Instant::now() + Duration::from_secs(5);
    while count(&seen[from..], "WATCHDOG=1") < 3 {
        assert!(Instant::now() < deadline, "no watchdog pings: {seen:#?}");
        until(&socket, "WATCHDOG=1", Duration::from_secs(5), &mut seen).await;
    }

    gw.signal("TERM");
    until(&socket, "STOPPING=1", Duration::from_secs(10), &mut seen).await;
    let stopping = seen.last().expect("the STOPPING datagram");
    assert!(
        stopping.contains("STATUS=Draining"),
        "STOPPING=1 says it drains: {stopping:?}"
    );
    let exit = gw.wait_exit(Duration::from_secs(30)).expect("exits");
    assert!(exit.success(), "exit {exit:?}; log:\n{}", gw.log());
    assert_eq!(count(&seen, "READY=1"), 1, "READY=1 once: {seen:#?}");
}

#[tokio::test]
async fn an_abstract_socket_is_told_and_another_processs_watchdog_is_not_pinged() {
    use std::os::linux::net::SocketAddrExt;
    let home = TempDir::new();
    let name = format!("pincer-test-notify-{}", uuid::Uuid::new_v4().simple());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("addr");
    let std_socket = std::os::unix::net::UnixDatagram::bind_addr(&addr).expect("bind");
    std_socket.set_nonblocking(true).expect("nonblocking");
    let socket = UnixDatagram::from_std(std_socket).expect("tokio socket");
    let port = free_port();
    let notify = format!("@{name}");
    let gw = Gw::spawn_args(
        home.path(),
        &["gateway", "--port", &port.to_string()],
        port,
        &[
            ("NOTIFY_SOCKET", notify.as_str()),
            ("WATCHDOG_USEC", "200000"),
            // The watchdog is asked of pid 1, not of the gateway.
            ("WATCHDOG_PID", "1"),
        ],
    );
    let mut seen = Vec::new();
    until(&socket, "READY=1", Duration::from_secs(20), &mut seen).await;
    gw.wait_ready(Duration::from_secs(10)).await;
    // Five watchdog periods, with the socket read throughout.
    let mut buf = vec![0u8; 4096];
    let quiet_until = Instant::now() + Duration::from_secs(1);
    while let Ok(Ok(n)) = tokio::time::timeout(
        quiet_until.saturating_duration_since(Instant::now()),
        socket.recv(&mut buf),
    )
    .await
    {
        seen.push(String::from_utf8_lossy(&buf[..n]).to_string());
    }
    assert_eq!(count(&seen, "WATCHDOG=1"), 0, "{seen:#?}");
}

#[tokio::test]
async fn a_notify_socket_that_is_not_one_is_named_and_the_gateway_serves() {
    let home = TempDir::new();
    let port = free_port();
    let gw = Gw::spawn_args(
        home.path(),
        &["gateway", "--port", &port.to_string()],
        port,
        &[("NOTIFY_SOCKET", "relative/notify.sock")],
    );
    gw.wait_ready(Duration::from_secs(20)).await;
    let log = gw.log();
    assert!(
        log.contains("NOTIFY_SOCKET=\\\"relative/notify.sock\\\" is not usable")
            || log.contains("NOTIFY_SOCKET=\"relative/notify.sock\" is not usable"),
        "the log names the value:\n{log}"
    );
}
