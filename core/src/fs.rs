//! Writing a file so that readers see the old text or the new one, never a mix: the new
//! text goes to a temporary file beside the old one, is synced, and is renamed over it.
//! The config editor, the secrets file writer and the token file all write this way.

use std::ffi::OsStr;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// How many temporary names a write tries before giving up. Names carry the process id and
/// a counter, so only leftovers of a crashed earlier run can collide.
const TEMP_ATTEMPTS: usize = 16;

/// Who may read the new file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// As the file it replaces: its permissions and, where the process may set them, its
    /// owner and group. A file that did not exist gets the process's default permissions.
    Keep,
    /// The owner only (0600), whatever the file it replaces allowed: secrets, tokens.
    Private,
}

/// Writes `bytes` to `path` atomically (temporary file in the same directory, synced,
/// renamed over `path`, directory synced). The temporary file is private (0600) from its
/// creation until it gets its final permissions, so the text is never readable by more
/// users than it should be. On failure the original is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8], access: Access) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let Some(name) = path.file_name() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a file name",
        ));
    };
    let original = match access {
        Access::Keep => std::fs::metadata(path).ok(),
        Access::Private => None,
    };
    let private = access == Access::Private || original.is_some();
    let (tmp, file) = create_temp(dir, name, private)?;
    let written = fill(file, bytes, original.as_ref()).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        // Best effort: the original is untouched either way.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir);
    Ok(())
}

/// Creates `.NAME.PID-N.tmp` in `dir`, 0600 when `private`.
fn create_temp(dir: &Path, name: &OsStr, private: bool) -> io::Result<(PathBuf, File)> {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let mut last = None;
    for _ in 0..TEMP_ATTEMPTS {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(
            ".{}.{}-{n}.tmp",
            name.to_string_lossy(),
            std::process::id()
        ));
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        if private {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        match options.open(&tmp) {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AlreadyExists)))
}

/// Writes the bytes, gives the file the original's owner and permissions, and syncs it.
fn fill(mut file: File, bytes: &[u8], original: Option<&Metadata>) -> io::Result<()> {
    file.write_all(bytes)?;
    if let Some(original) = original {
        keep_owner(&file, original);
        file.set_permissions(original.permissions())?;
    }
    file.sync_all()
}

/// Gives the new file the original's owner and group where the process may (root may; a
/// user may set a group they are in). Otherwise the file stays the writing user's, as after
/// any editor's save-by-rename.
fn keep_owner(file: &File, original: &Metadata) {
    use std::os::unix::fs::MetadataExt as _;
    let owner = (original.uid(), original.gid());
    if let Ok(now) = file.metadata()
        && (now.uid(), now.gid()) != owner
    {
        let _ = std::os::unix::fs::fchown(file, Some(owner.0), Some(owner.1));
    }
}

/// Makes the rename durable. Best effort: some file systems refuse to sync a directory, and
/// the rename has already happened.
fn sync_dir(dir: &Path) {
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("pincer-core-fs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    }

    #[test]
    fn keep_gives_the_new_text_the_old_permissions() {
        let dir = temp_dir("keep");
        let path = dir.join("pincer.toml");
        std::fs::write(&path, "old").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        write_atomic(&path, b"new", Access::Keep).expect("written");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "new");
        assert_eq!(mode(&path), 0o640);
        // No temporary file is left behind.
        let left: Vec<_> = std::fs::read_dir(&dir).expect("dir").collect();
        assert_eq!(left.len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn private_is_owner_only_even_over_an_open_file() {
        let dir = temp_dir("private");
        let path = dir.join("secrets.json");
        std::fs::write(&path, "{}").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        write_atomic(&path, b"{\"k\":1}", Access::Private).expect("written");
        assert_eq!(mode(&path), 0o600);
        let fresh = dir.join("new.json");
        write_atomic(&fresh, b"{}", Access::Private).expect("written");
        assert_eq!(mode(&fresh), 0o600);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_failed_write_leaves_the_original() {
        let dir = temp_dir("fail");
        let missing = dir.join("no/such/dir/file");
        assert!(write_atomic(&missing, b"x", Access::Keep).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
