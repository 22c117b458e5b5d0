//! The `file` back end: a JSON document whose ids are JSON pointers, or a file that is one
//! value. The file must be private to the user running the gateway (mode 0600 or
//! tighter, owned by that user): a secrets file others can read is refused, not used.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde_json::Value;

use super::backend::{BackendError, Fetched};
use pincer_config::FileMode;

/// Larger secrets files are refused: they are not secrets files.
const MAX_FILE: u64 = 1 << 20;

/// A secrets file as read.
#[derive(Clone)]
#[allow(missing_debug_implementations)] // holds secret values
pub enum Contents {
    /// A JSON document.
    Json(Value),
    /// One value (a trailing newline removed).
    Single(String),
}

/// Reads `path` after checking that only its owner, the running user, can read it.
pub fn read(path: &Path, mode: FileMode) -> Result<Contents, BackendError> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            BackendError::NotFound(format!("secrets file {shown} does not exist"))
        }
        std::io::ErrorKind::PermissionDenied => {
            BackendError::Denied(format!("secrets file {shown} cannot be read: {e}"))
        }
        _ => BackendError::Unavailable(format!("secrets file {shown}: {e}")),
    })?;
    check_private("secrets file", path, &meta)?;
    if meta.len() > MAX_FILE {
        return Err(BackendError::Invalid(format!(
            "secrets file {shown} is larger than {MAX_FILE} bytes"
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| BackendError::Unavailable(format!("secrets file {shown}: {e}")))?;
    match mode {
        FileMode::Single => Ok(Contents::Single(
            text.strip_suffix('\n')
                .map(|t| t.strip_suffix('\r').unwrap_or(t))
                .unwrap_or(&text)
                .to_string(),
        )),
        // serde_json's error names line and column, never the text around it.
        FileMode::Json => serde_json::from_str(&text)
            .map(Contents::Json)
            .map_err(|e| {
                BackendError::Invalid(format!("secrets file {shown} is not valid JSON: {e}"))
            }),
    }
}

/// Refuses a file of secrets (`what`: "secrets file", "gateway token file") that others
/// could read or that belongs to another user: mode 0600 or tighter, owned by the user
/// running pincer.
pub fn check_private(
    what: &str,
    path: &Path,
    meta: &std::fs::Metadata,
) -> Result<(), BackendError> {
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(BackendError::Denied(format!(
            "{what} {} is open to group or others (mode {mode:04o}); run `chmod 600 {}`",
            path.display(),
            path.display()
        )));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(BackendError::Denied(format!(
            "{what} {} is owned by uid {}, not by the user running pincer (uid {me})",
            path.display(),
            meta.uid()
        )));
    }
    Ok(())
}

/// The value at `id` (a JSON pointer; a bare name means a top-level key). A file in
/// single mode is one value whatever the id.
pub fn pick(contents: &Contents, id: &str) -> Result<Fetched, BackendError> {
    let value = match contents {
        Contents::Single(value) => value.clone(),
        Contents::Json(doc) => {
            let pointer = if id.starts_with('/') {
                id.to_string()
            } else {
                format!("/{id}")
            };
            match doc.pointer(&pointer) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => {
                    return Err(BackendError::NotFound(format!(
                        "no value at `{pointer}` in the secrets file"
                    )));
                }
                Some(other) => other.to_string(),
            }
        }
    };
    if value.is_empty() {
        return Err(BackendError::NotFound(format!("`{id}` is empty")));
    }
    Ok(Fetched {
        version: super::digest(&value),
        value,
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn write(dir: &Path, text: &str, mode: u32) -> std::path::PathBuf {
        let path = dir.join("secrets.json");
        std::fs::write(&path, text).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        path
    }

    fn tempdir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("pincer-file-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        dir
    }

    #[test]
    fn json_pointers_and_bare_names() {
        let dir = tempdir();
        let path = write(&dir, r#"{"openai":{"key":"sk-1"},"top":"t","n":5}"#, 0o600);
        let doc = read(&path, FileMode::Json).expect("read");
        assert_eq!(pick(&doc, "/openai/key").expect("ptr").value, "sk-1");
        assert_eq!(pick(&doc, "top").expect("bare").value, "t");
        assert_eq!(pick(&doc, "/n").expect("number").value, "5");
        assert!(matches!(
            pick(&doc, "/nope"),
            Err(BackendError::NotFound(_))
        ));
    }

    #[test]
    fn single_mode_is_the_whole_file() {
        let dir = tempdir();
        let path = write(&dir, "tok-123\n", 0o400);
        let doc = read(&path, FileMode::Single).expect("read");
        assert_eq!(pick(&doc, "anything").expect("value").value, "tok-123");
    }

    #[test]
    fn a_file_others_can_read_is_refused() {
        let dir = tempdir();
        let path = write(&dir, "{}", 0o644);
        let Err(BackendError::Denied(why)) = read(&path, FileMode::Json) else {
            panic!("a 0644 file was read");
        };
        assert!(
            why.contains("mode 0644") && why.contains("chmod 600"),
            "{why}"
        );
    }

    #[test]
    fn bad_json_names_the_position_not_the_text() {
        let dir = tempdir();
        let path = write(&dir, "{\"k\": \"sk-secret\",,}", 0o600);
        let Err(BackendError::Invalid(why)) = read(&path, FileMode::Json) else {
            panic!("bad JSON was accepted");
        };
        assert!(!why.contains("sk-secret"), "{why}");
    }
}
