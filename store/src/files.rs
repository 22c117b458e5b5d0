//! The store's files on disk: who may read them.
//!
//! The database and the two files SQLite keeps beside it (`-wal`, the log; `-shm`, the
//! log's index) hold every transcript, so they are the owner's only (0600), whatever the
//! process's umask. SQLite creates the main file with 0644 less the umask, but gives the
//! log and the index it creates later (on the first write, on the first reader) the main
//! file's own permissions. So creating the main file private before SQLite opens it makes
//! all three private, and an existing file an earlier version left readable is tightened
//! at open, with the log and index it left behind.
//!
//! The directory holding them is the other half: a home made by a package or a container
//! volume is often 0755. [`tighten_dir`] makes such a directory 0700 when this user owns
//! it, and [`dir_access`] says what it is without changing it (for `pincer doctor`).

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// The store's files: the owner reads and writes, nobody else.
const FILE_MODE: u32 = 0o600;

/// The store's directory (and a home the gateway creates).
pub const DIR_MODE: u32 = 0o700;

/// Permission bits that let group or others read or write.
const SHARED_BITS: u32 = 0o066;

/// What SQLite keeps beside the database file, by suffix.
const COMPANIONS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// Who may read and write a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirAccess {
    /// Only its owner.
    Private,
    /// Group or others could read or write it; it was this user's, and is now 0700.
    Tightened {
        /// Its permission bits before.
        was: u32,
    },
    /// Group or others may read or write it, and it was left so: another user owns it, or
    /// it is shared by design (sticky, like `/tmp`), or it is only being looked at.
    Open {
        /// Its permission bits.
        mode: u32,
        /// Its owner's uid.
        owner: u32,
        /// Whether this process's user owns it (and a gateway would tighten it).
        ours: bool,
    },
}

/// The store's files: the database and the files SQLite keeps beside it.
pub fn store_files(db: &Path) -> Vec<PathBuf> {
    let mut files = vec![db.to_path_buf()];
    files.extend(COMPANIONS.iter().map(|suffix| {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    }));
    files
}

/// The store's files that exist and group or others may read or write: `(path, mode)`.
pub fn readable_files(db: &Path) -> Vec<(PathBuf, u32)> {
    store_files(db)
        .into_iter()
        .filter_map(|file| {
            let mode = std::fs::metadata(&file).ok()?.permissions().mode() & 0o7777;
            (mode & SHARED_BITS != 0).then_some((file, mode))
        })
        .collect()
}

/// Creates the database file private if it does not exist, and makes the existing store
/// files private; before SQLite opens the database. Best effort: a file this user cannot
/// change is logged, and SQLite reports a file it cannot open.
pub(crate) fn make_private(db: &Path) {
    let created = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(db);
    match created {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        // SQLite says why it cannot open it, with the OS's reason.
        Err(_) => return,
    }
    for (file, mode) in readable_files(db) {
        let private = std::fs::Permissions::from_mode(FILE_MODE);
        match std::fs::set_permissions(&file, private) {
            Ok(()) => tracing::info!(
                message = "Store file made private (0600).",
                file = %file.display(),
                was = %format!("{mode:04o}"),
            ),
            Err(error) => tracing::warn!(
                message = "Store file is readable by other users and cannot be made private.",
                file = %file.display(),
                mode = %format!("{mode:04o}"),
                %error,
            ),
        }
    }
}

/// Creates `dir` (and its missing parents) 0700 if it does not exist.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
}

/// Who may read and write `dir`, changing nothing.
pub fn dir_access(dir: &Path) -> io::Result<DirAccess> {
    let meta = std::fs::metadata(dir)?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & SHARED_BITS == 0 {
        return Ok(DirAccess::Private);
    }
    let owner = meta.uid();
    Ok(DirAccess::Open {
        mode,
        owner,
        ours: owner == rustix::process::geteuid().as_raw(),
    })
}

/// Makes `dir` 0700 if group or others may read or write it and this user owns it. A
/// sticky directory (`/tmp`) is shared by design and left as it is.
pub fn tighten_dir(dir: &Path) -> io::Result<DirAccess> {
    match dir_access(dir)? {
        DirAccess::Open {
            mode, ours: true, ..
        } if mode & 0o1000 == 0 => {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))?;
            Ok(DirAccess::Tightened { was: mode })
        }
        other => Ok(other),
    }
}
