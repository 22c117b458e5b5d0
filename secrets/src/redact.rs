//! Keeps secret values out of log output: the log writer replaces every known value
//! (resolved refs and plaintext secrets of the config) with `[redacted]` before a line
//! leaves the process, whatever field or message carried it.

use std::io::Write;
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;
use tracing_subscriber::fmt::MakeWriter;

/// Values shorter than this are not redacted: they would blank common words and cannot
/// be meaningful secrets anyway.
const MIN_LEN: usize = 6;

/// What replaces a secret in a log line.
pub const MASK: &str = "[redacted]";

fn known() -> &'static RwLock<Arc<Vec<String>>> {
    static KNOWN: OnceLock<RwLock<Arc<Vec<String>>>> = OnceLock::new();
    KNOWN.get_or_init(|| RwLock::new(Arc::new(Vec::new())))
}

/// Makes `values` the set redacted from logs (longest first, so a value containing
/// another is masked whole).
pub fn set_values<'a>(values: impl IntoIterator<Item = &'a str>) {
    let mut list: Vec<String> = values
        .into_iter()
        .map(str::trim)
        .filter(|v| v.len() >= MIN_LEN)
        .map(str::to_string)
        .collect();
    list.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    list.dedup();
    *known().write() = Arc::new(list);
}

/// `text` with every known value masked.
pub fn redact(text: &str) -> std::borrow::Cow<'_, str> {
    let values = known().read().clone();
    let mut out = std::borrow::Cow::Borrowed(text);
    for value in values.iter() {
        if out.contains(value.as_str()) {
            out = std::borrow::Cow::Owned(out.replace(value.as_str(), MASK));
        }
    }
    out
}

/// A [`MakeWriter`] that redacts each event before handing it to `inner`.
#[derive(Debug, Clone)]
pub struct Redacting<M> {
    inner: M,
}

impl<M> Redacting<M> {
    /// Wraps `inner`.
    pub fn new(inner: M) -> Self {
        Self { inner }
    }
}

/// Collects one event, writes it redacted when dropped.
#[allow(missing_debug_implementations)] // holds an unredacted log line
pub struct Line<W: Write> {
    inner: W,
    buf: Vec<u8>,
}

impl<W: Write> Write for Line<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&self.buf);
        let clean = redact(&text);
        self.inner.write_all(clean.as_bytes())?;
        self.buf.clear();
        self.inner.flush()
    }
}

impl<W: Write> Drop for Line<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Redacting<M> {
    type Writer = Line<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        Line {
            inner: self.inner.make_writer(),
            buf: Vec::with_capacity(256),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_are_masked_longest_first() {
        set_values(["sk-abcdef", "sk-abcdef-longer", "short"]);
        assert_eq!(
            redact("key sk-abcdef-longer and sk-abcdef, short stays"),
            "key [redacted] and [redacted], short stays"
        );
        let mut out = Vec::new();
        {
            let mut line = Line {
                inner: &mut out,
                buf: Vec::new(),
            };
            let _ = line.write_all(b"token=sk-abc");
            let _ = line.write_all(b"def end\n");
        }
        assert_eq!(String::from_utf8_lossy(&out), "token=[redacted] end\n");
        set_values([]);
    }
}
