//! `$PINCER_HOME/gateway.json`: where a running gateway listens, so that client commands
//! find it whatever port it was started on. The gateway writes it (atomically, 0600) once
//! it serves and removes it when it stops; a file left by a killed gateway names a pid
//! that is gone, and clients say so instead of trusting it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file's name in `$PINCER_HOME`.
pub const FILE: &str = "gateway.json";

/// What `gateway.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayFile {
    /// The gateway's process id.
    pub pid: u32,
    /// The address it listens on (`127.0.0.1:18789`, `0.0.0.0:8080`).
    pub address: String,
    /// Where a client on this machine reaches it (`http://127.0.0.1:18789`).
    pub url: String,
    /// When it started serving (RFC 3339, UTC).
    pub started: String,
}

/// What a client learns from `gateway.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// No file: no gateway of this home is running (or it predates the file).
    Missing,
    /// A file whose process is alive.
    Live(GatewayFile),
    /// A file whose process is gone (a gateway that was killed).
    Stale(GatewayFile),
    /// A file that cannot be read or parsed.
    Unreadable(String),
}

/// Removes the file on drop if it still names this process (a later gateway of the same
/// home may have replaced it).
#[derive(Debug)]
pub struct Written {
    path: PathBuf,
}

// === impl GatewayFile ===

impl GatewayFile {
    /// This process, listening on `addr`, now.
    pub fn for_this_process(addr: SocketAddr) -> Self {
        let host = match addr.ip() {
            ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_string(),
            ip if ip.is_unspecified() => "[::1]".to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            std::net::IpAddr::V4(ip) => ip.to_string(),
        };
        Self {
            pid: std::process::id(),
            address: addr.to_string(),
            url: format!("http://{host}:{}", addr.port()),
            started: pincer_core::clock::rfc3339(pincer_core::clock::now_ms()),
        }
    }

    /// Writes it to `$PINCER_HOME/gateway.json` (atomically, private to this user).
    pub fn write(&self, home: &Path) -> anyhow::Result<Written> {
        let path = home.join(FILE);
        let mut text = serde_json::to_vec_pretty(self)?;
        text.push(b'\n');
        pincer_core::fs::write_atomic(&path, &text, pincer_core::fs::Access::Private)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        Ok(Written { path })
    }
}

// === impl Found ===

impl Found {
    /// Reads `$PINCER_HOME/gateway.json`.
    pub fn read(home: &Path) -> Self {
        let path = home.join(FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Self::Missing,
            Err(e) => return Self::Unreadable(e.to_string()),
        };
        match serde_json::from_str::<GatewayFile>(&text) {
            Ok(file) if pid_alive(file.pid) => Self::Live(file),
            Ok(file) => Self::Stale(file),
            Err(e) => Self::Unreadable(format!("not a gateway file: {e}")),
        }
    }
}

// === impl Written ===

impl Drop for Written {
    fn drop(&mut self) {
        let ours = std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|t| serde_json::from_str::<GatewayFile>(&t).ok())
            .is_some_and(|f| f.pid == std::process::id());
        if ours && let Err(error) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), %error, "Cannot remove the gateway file.");
        }
    }
}

/// Whether a process with this id exists (signal 0: nothing is sent). A process of
/// another user answers "not permitted", which still means it exists.
fn pid_alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        Err(e) => e == rustix::io::Errno::PERM,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_file_is_found_live_private_and_removed_on_drop() {
        let home = std::env::temp_dir().join(format!("pincer-disc-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&home).expect("home");
        assert_eq!(Found::read(&home), Found::Missing);
        let file = GatewayFile::for_this_process("0.0.0.0:18800".parse().expect("addr"));
        assert_eq!(file.url, "http://127.0.0.1:18800");
        let written = file.write(&home).expect("write");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(home.join(FILE))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(Found::read(&home), Found::Live(file.clone()));
        drop(written);
        assert_eq!(Found::read(&home), Found::Missing);

        // A pid that cannot exist (above pid_max) is stale.
        let stale = GatewayFile {
            pid: 99_999_999,
            ..file
        };
        let _kept = stale.write(&home).expect("write");
        assert_eq!(Found::read(&home), Found::Stale(stale));
        std::fs::write(home.join(FILE), "{").expect("write");
        assert!(matches!(Found::read(&home), Found::Unreadable(_)));
        let _ = std::fs::remove_dir_all(&home);
    }
}
