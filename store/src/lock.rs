//! One store, one gateway: an exclusive advisory lock on a file beside the store.
//!
//! Two gateways writing one database each believe they own the inbox: both resume the same
//! pending messages, both answer them. [`lock`] takes a `flock` on `<store>.lock` (which
//! holds the holder's pid, for the message its rival prints) and keeps it for as long as
//! the [`StoreLock`] lives. The kernel drops the lock when the file is closed, including
//! when the process dies however it dies, so a SIGKILLed gateway never blocks the next one;
//! the file itself stays (removing it would let a rival lock a file nobody else sees).

use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Seek as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

/// The store's lock, held until dropped (or the process ends).
#[derive(Debug)]
pub struct StoreLock {
    /// Open for as long as the lock is held: closing it releases the lock.
    _file: File,
    path: PathBuf,
}

/// Why the store could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock.
    #[error(
        "store {} is in use by another gateway ({}): stop it first, or give this one another store.path",
        store.display(),
        pid.map_or_else(|| "its pid is not recorded yet".to_string(), |p| format!("pid {p}"))
    )]
    Held {
        /// The store.
        store: PathBuf,
        /// The holder's pid, as it wrote it in the lock file.
        pid: Option<u32>,
    },
    /// The lock file cannot be opened or locked (a read-only directory, say).
    #[error("cannot lock store {}: {source} ({})", store.display(), lock.display())]
    Io {
        /// The store.
        store: PathBuf,
        /// The lock file.
        lock: PathBuf,
        /// What the system said.
        source: io::Error,
    },
}

/// The lock file of the store at `store`: `pincer.db.lock` beside `pincer.db`.
pub fn lock_path(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the store's lock without waiting, and writes this process's pid in its file.
pub fn lock(store: &Path) -> Result<StoreLock, LockError> {
    let path = lock_path(store);
    let io_error = |source| LockError::Io {
        store: store.to_path_buf(),
        lock: path.clone(),
        source,
    };
    let mut file = open(&path).map_err(io_error)?;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
            return Err(LockError::Held {
                store: store.to_path_buf(),
                pid: read_pid(&mut file),
            });
        }
        Err(e) => return Err(io_error(e.into())),
    }
    // Best effort: the lock holds without it, only a rival's message would lack the pid.
    let _ = write_pid(&mut file);
    Ok(StoreLock { _file: file, path })
}

/// Opens (creating it 0600) the lock file; read-only if it exists and cannot be written
/// (`flock` needs no write access; the pid is then not recorded).
fn open(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        super::files::create_private_dir(dir)?;
    }
    let writable = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        // The holder's pid stays until this process holds the lock and writes its own.
        .truncate(false)
        .mode(0o600)
        .open(path);
    match writable {
        Ok(file) => Ok(file),
        Err(e) if path.exists() => OpenOptions::new().read(true).open(path).or(Err(e)),
        Err(e) => Err(e),
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

fn write_pid(file: &mut File) -> io::Result<()> {
    file.set_len(0)?;
    file.rewind()?;
    writeln!(file, "{}", std::process::id())
}

// === impl StoreLock ===

impl StoreLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
