//! `pincer doctor`'s store checks: can other local users read the transcripts? The home,
//! the store's directory and the store's files should be the owner's only. Changes
//! nothing: a gateway started by the owner tightens them itself.

use std::path::Path;

use super::Finding;
use pincer_store::files::{self, DirAccess};

/// Who may read the home (`$PINCER_HOME`), the store's directory (when elsewhere) and the
/// store's files.
pub(super) fn privacy(home: &Path, store: &Path) -> Vec<Finding> {
    let mut out = vec![dir(home, "home")];
    if let Some(dir_of_store) = store.parent().filter(|d| *d != home && d.exists()) {
        out.push(dir(dir_of_store, "store directory"));
    }
    for (file, mode) in files::readable_files(store) {
        out.push(Finding {
            ok: false,
            text: format!(
                "store file {} is readable by other users ({mode:04o}): a gateway makes it \
                 0600 at its next start, or `chmod 600` it",
                file.display()
            ),
        });
    }
    out
}

fn dir(dir: &Path, what: &str) -> Finding {
    let shown = dir.display();
    match files::dir_access(dir) {
        Ok(DirAccess::Private | DirAccess::Tightened { .. }) => Finding {
            ok: true,
            text: format!("{what} {shown} is private: other users cannot read or write it"),
        },
        Ok(DirAccess::Open {
            mode, ours: true, ..
        }) if mode & 0o1000 == 0 => Finding {
            ok: false,
            text: format!(
                "{what} {shown} is open to other users ({mode:04o}): a gateway makes it 0700 \
                 at its next start, or `chmod 700` it"
            ),
        },
        Ok(DirAccess::Open { mode, owner, .. }) => Finding {
            ok: false,
            text: format!(
                "{what} {shown} is open to other users ({mode:04o}) and a gateway leaves it so \
                 (owner uid {owner}, or shared by design): move it, or `chmod 700` it"
            ),
        },
        Err(e) => Finding {
            ok: false,
            text: format!("{what} {shown}: cannot check who may read it: {e}"),
        },
    }
}
