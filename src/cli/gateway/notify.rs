//! The service manager's notify protocol (`sd_notify(3)`): under systemd with
//! `Type=notify`, the unit counts as started only once the gateway sends `READY=1` to the
//! datagram socket `$NOTIFY_SOCKET` names, and `systemctl status` shows its `STATUS=`
//! line. Without `$NOTIFY_SOCKET` (not under systemd, or another `Type=`) nothing is sent.
//!
//! What is sent: `READY=1` once the tree has started (what `/startupz` says: the unit is
//! up; whether it can take traffic is readiness, shown as `STATUS=` and changing while it
//! runs), `STOPPING=1` when a signal starts the drain, and `WATCHDOG=1` every half of
//! `$WATCHDOG_USEC` while the runtime runs (with `WatchdogSec=`, a gateway whose runtime
//! hangs is restarted).

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::topology::Topology;

/// How often readiness is looked at for `STATUS=` (a registry snapshot: cheap).
const STATUS_EVERY: Duration = Duration::from_secs(1);

/// The socket systemd listens on.
#[derive(Debug)]
pub(super) struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
    /// `$NOTIFY_SOCKET` as given, for messages.
    shown: String,
    /// A failure was logged: the next ones (a watchdog pings often) are not.
    warned: AtomicBool,
}

impl Notifier {
    /// The socket `$NOTIFY_SOCKET` names: `None` when it is unset or empty, an error
    /// naming the value when it is neither a path nor an abstract name (`@name`).
    pub(super) fn from_env() -> io::Result<Option<Self>> {
        match std::env::var("NOTIFY_SOCKET") {
            Ok(value) if !value.is_empty() => Self::new(&value).map(Some),
            _ => Ok(None),
        }
    }

    /// The socket at `value`: `/path` or `@abstract-name`.
    pub(super) fn new(value: &str) -> io::Result<Self> {
        let addr = address(value).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("NOTIFY_SOCKET={value:?} is not usable: {e}"),
            )
        })?;
        Ok(Self {
            socket: UnixDatagram::unbound()?,
            addr,
            shown: value.to_string(),
            warned: AtomicBool::new(false),
        })
    }

    /// Sends `state`: newline-separated `KEY=value` assignments.
    pub(super) fn send(&self, state: &str) -> io::Result<()> {
        self.socket
            .send_to_addr(state.as_bytes(), &self.addr)
            .map(drop)
            .map_err(|e| io::Error::new(e.kind(), format!("NOTIFY_SOCKET={}: {e}", self.shown)))
    }

    /// Sends `state`, logging (never failing on) an error, the first one as a warning: the
    /// gateway serves whether or not its service manager hears it.
    pub(super) fn tell(&self, state: &str) {
        if let Err(error) = self.send(state) {
            if self.warned.swap(true, Ordering::Relaxed) {
                tracing::debug!(%error, "Cannot notify the service manager.");
            } else {
                tracing::warn!(%error, "Cannot notify the service manager (said once).");
            }
        }
    }
}

/// Tells the service manager the gateway is up (`READY=1`, once), then keeps its
/// `STATUS=` line in step with readiness and, when a watchdog is asked for, pings it.
/// Returns the notifier, to say `STOPPING=1` with later.
pub(super) fn ready(gw: &Topology, notifier: Notifier) -> Arc<Notifier> {
    let notifier = Arc::new(notifier);
    let mut shown = readiness_text(gw);
    notifier.tell(&format!("READY=1\n{}", status_line(&shown)));
    let watchdog = watchdog_interval();
    let every = watchdog.map_or(STATUS_EVERY, |w| w.min(STATUS_EVERY));
    let gw = gw.clone();
    let reporter = notifier.clone();
    tokio::spawn(async move {
        let notifier = reporter;
        let mut ticks = tokio::time::interval(every);
        loop {
            ticks.tick().await;
            if watchdog.is_some() {
                notifier.tell("WATCHDOG=1");
            }
            // Draining has its own line, sent by `stopping`.
            if gw.status().is_draining() {
                continue;
            }
            let text = readiness_text(&gw);
            if text != shown {
                notifier.tell(&status_line(&text));
                shown = text;
            }
        }
    });
    notifier
}

/// Tells the service manager the gateway is stopping and for how long at most it drains.
pub(super) fn stopping(notifier: &Notifier, drain: Duration) {
    notifier.tell(&format!(
        "STOPPING=1\n{}",
        status_line(&format!(
            "Draining: turns in flight get up to {} s.",
            drain.as_secs_f64()
        ))
    ));
}

/// "Ready." or "Not ready: <path> (<reason>); ...": the paths and reasons `/readyz` gives
/// its local callers (never a secret value: reasons name refs only).
fn readiness_text(gw: &Topology) -> String {
    let readiness = gw.probe().readiness();
    if readiness.ready {
        return "Ready.".to_string();
    }
    let failing: Vec<String> = readiness
        .failing
        .iter()
        .map(|(path, reason)| format!("{path} ({reason})"))
        .collect();
    format!("Not ready: {}", failing.join("; "))
}

/// `STATUS=<text>` on one line, as the protocol wants.
fn status_line(text: &str) -> String {
    format!("STATUS={}", text.replace(['\n', '\r'], " "))
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, as `sd_watchdog_enabled(3)`
/// advises; `None` when no watchdog is asked of this process (`$WATCHDOG_PID` names
/// another one, or the value is not a positive number of microseconds).
fn watchdog_interval() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.trim().parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

fn address(value: &str) -> io::Result<SocketAddr> {
    if let Some(name) = value.strip_prefix('@') {
        abstract_address(name)
    } else if value.starts_with('/') {
        SocketAddr::from_pathname(value)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "neither an absolute path nor an abstract name (@name)",
        ))
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_address(name: &str) -> io::Result<SocketAddr> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name.as_bytes())
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn abstract_address(_name: &str) -> io::Result<SocketAddr> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract socket names exist on Linux only",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_a_path_socket() {
        let dir = std::env::temp_dir().join(format!("pincer-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).expect("bind");
        let notifier = Notifier::new(path.to_str().expect("utf-8")).expect("notifier");
        notifier.send("READY=1\nSTATUS=Ready.").expect("send");
        let mut buf = [0u8; 256];
        let n = listener.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=Ready.");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("pincer-notify-test-{}", uuid::Uuid::new_v4().simple());
        let listener = UnixDatagram::bind_addr(
            &SocketAddr::from_abstract_name(name.as_bytes()).expect("addr"),
        )
        .expect("bind");
        Notifier::new(&format!("@{name}"))
            .expect("notifier")
            .send("STOPPING=1")
            .expect("send");
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"STOPPING=1");
    }

    #[test]
    fn refuses_a_relative_path_naming_it() {
        let error = Notifier::new("run/notify").expect_err("relative");
        assert!(
            error.to_string().contains("NOTIFY_SOCKET=\"run/notify\""),
            "{error}"
        );
    }

    #[test]
    fn a_status_is_one_line() {
        assert_eq!(status_line("a\nb\r\nc"), "STATUS=a b  c");
    }
}
