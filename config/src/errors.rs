//! Config errors that name the key, where it was written, and what was probably meant.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_path_to_error::Segment;

/// Why a config could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: String,
    },
    /// The config path names something other than a regular file: a FIFO, a device, a
    /// directory (it is not opened for reading: a FIFO would block, a device never end).
    #[error("config file {} is not a regular file but {kind}", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is: `a FIFO`, `a device`, `a directory`, `a socket`.
        kind: String,
    },
    /// The config file is larger than any config.
    #[error(
        "config file {} has {size} bytes, more than the {max} bytes (4 MB) a config file may have",
        path.display()
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// The cap, [`MAX_CONFIG_BYTES`](crate::MAX_CONFIG_BYTES).
        max: u64,
    },
    /// The config path is a symbolic link to nothing (a config moved or deleted).
    #[error(
        "config file {} is a symbolic link to {}, which does not exist",
        path.display(),
        target.display()
    )]
    DanglingLink {
        /// The link.
        path: PathBuf,
        /// Where it points.
        target: PathBuf,
    },
    /// The file is not valid TOML / JSON.
    #[error("cannot parse config file {}: {error}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        error: String,
    },
    /// An environment override could not be applied.
    #[error("environment variable {var}: {error}")]
    Env {
        /// The variable.
        var: String,
        /// What went wrong.
        error: String,
    },
    /// A key that is not part of the config.
    #[error("unknown config key `{key}`{}{}", Location(.location), Suggestion(.suggestion))]
    UnknownKey {
        /// Dotted path of the key.
        key: String,
        /// `file:line` or the environment variable it came from.
        location: Option<String>,
        /// The closest valid key at that place.
        suggestion: Option<String>,
    },
    /// A key with a value of the wrong kind or out of range.
    #[error("config key `{key}`{}: {reason}", Location(.location))]
    InvalidValue {
        /// Dotted path of the key.
        key: String,
        /// `file:line` or the environment variable it came from.
        location: Option<String>,
        /// What is wrong.
        reason: String,
    },
    /// Checks across keys failed; every problem is listed.
    #[error("invalid config:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<String>),
}

struct Location<'a>(&'a Option<String>);
impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(at) => write!(f, " at {at}"),
            None => Ok(()),
        }
    }
}

struct Suggestion<'a>(&'a Option<String>);
impl fmt::Display for Suggestion<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(s) => write!(f, "; did you mean `{s}`?"),
            None => Ok(()),
        }
    }
}

/// Turns a typed-deserialization error into a [`ConfigError`] with the key's location.
pub(super) fn explain(
    error: serde_path_to_error::Error<serde_json::Error>,
    file: Option<(&Path, &str)>,
    env: &BTreeMap<String, String>,
) -> ConfigError {
    let mut segments: Vec<String> = error
        .path()
        .iter()
        .filter_map(|s| match s {
            Segment::Map { key } => Some(key.clone()),
            Segment::Seq { index } => Some(format!("[{index}]")),
            Segment::Enum { variant } => Some(variant.clone()),
            Segment::Unknown => None,
        })
        .collect();
    let message = error.inner().to_string();
    if let Some((unknown, expected)) = parse_unknown_field(&message) {
        if segments.last() != Some(&unknown) {
            segments.push(unknown.clone());
        }
        let suggestion = closest(&unknown, &expected);
        return ConfigError::UnknownKey {
            key: dotted(&segments),
            location: locate(&segments, file, env),
            suggestion,
        };
    }
    let mut reason = strip_position(&message);
    // An enum value with a typo: say which value was probably meant, as for keys.
    if let Some((unknown, expected)) = parse_unknown_variant(&message)
        && let Some(near) = closest(&unknown, &expected)
    {
        reason.push_str(&format!("; did you mean `{near}`?"));
    }
    ConfigError::InvalidValue {
        key: dotted(&segments),
        location: locate(&segments, file, env),
        reason,
    }
}

/// serde's "unknown variant `x`, expected one of `a`, `b`" (or "expected `a` or `b`").
fn parse_unknown_variant(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown variant `")?;
    parse_unknown_field(&format!("unknown field `{rest}"))
}

/// serde's "unknown field `x`, expected one of `a`, `b`" (or "expected `a`").
pub(super) fn parse_unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (name, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    Some((name.to_string(), expected))
}

/// The candidate closest to `name`, if it is close enough to be a likely typo.
pub(super) fn closest(name: &str, candidates: &[String]) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (strsim::levenshtein(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.clone())
}

fn dotted(segments: &[String]) -> String {
    let mut out = String::new();
    for s in segments {
        if !s.starts_with('[') && !out.is_empty() {
            out.push('.');
        }
        out.push_str(s);
    }
    out
}

/// serde_json appends " at line L column C" of the JSON we built, which means nothing to
/// the user.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// Where the key at `segments` was written: the file (with line), an environment
/// variable, or nowhere we can tell.
pub(super) fn locate(
    segments: &[String],
    file: Option<(&Path, &str)>,
    env: &BTreeMap<String, String>,
) -> Option<String> {
    if let Some((path, text)) = file {
        let mut candidates = vec![segments.to_vec()];
        // Agents inherit from `default` (and the `agent` shorthand): the key may be there.
        if segments.len() > 2 && segments[0] == "agents" {
            let mut via_default = segments.to_vec();
            via_default[1] = "default".to_string();
            candidates.push(via_default);
            candidates.push(
                std::iter::once("agent".to_string())
                    .chain(segments[2..].iter().cloned())
                    .collect(),
            );
        }
        for candidate in candidates {
            if let Some(line) = line_of(&candidate, path, text) {
                return Some(format!("{}:{line}", path.display()));
            }
        }
    }
    let var = format!(
        "PINCER__{}",
        segments
            .iter()
            .map(|s| to_screaming_snake(s))
            .collect::<Vec<_>>()
            .join("__")
    );
    // The documented form (each key uppercased) or the older one (`_` between words).
    let upper = format!(
        "PINCER__{}",
        segments
            .iter()
            .map(|s| s.to_ascii_uppercase().replace('-', "_"))
            .collect::<Vec<_>>()
            .join("__")
    );
    [upper, var]
        .into_iter()
        .find(|v| env.contains_key(v))
        .map(|v| format!("environment variable {v}"))
}

fn to_screaming_snake(key: &str) -> String {
    let mut out = String::new();
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out.replace('-', "_")
}

/// The 1-based line of the key at `segments` in `text`.
fn line_of(segments: &[String], path: &Path, text: &str) -> Option<usize> {
    let offset = match super::load::Format::of(path) {
        super::load::Format::Toml => toml_offset(segments, text)?,
        _ => json_offset(segments, text)?,
    };
    Some(text[..offset.min(text.len())].matches('\n').count() + 1)
}

fn toml_offset(segments: &[String], text: &str) -> Option<usize> {
    let doc = toml_edit::Document::parse(text).ok()?;
    let mut found = None;
    walk_item(doc.as_item(), segments, &mut found);
    found
}

/// Follows `segments` down from `item`, keeping the start of the deepest key found.
fn walk_item(item: &toml_edit::Item, segments: &[String], found: &mut Option<usize>) {
    let Some((segment, rest)) = segments.split_first() else {
        return;
    };
    if let Some(index) = segment
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .and_then(|s| s.parse::<usize>().ok())
    {
        match item {
            toml_edit::Item::ArrayOfTables(tables) => {
                if let Some(table) = tables.get(index) {
                    *found = table.span().map(|s| s.start).or(*found);
                    walk_table(table, rest, found);
                }
            }
            toml_edit::Item::Value(toml_edit::Value::Array(values)) => {
                if let Some(value) = values.get(index) {
                    *found = value.span().map(|s| s.start).or(*found);
                }
            }
            _ => {}
        }
        return;
    }
    if let Some(table) = item.as_table_like() {
        walk_table(table, segments, found);
    }
}

fn walk_table(table: &dyn toml_edit::TableLike, segments: &[String], found: &mut Option<usize>) {
    let Some((segment, rest)) = segments.split_first() else {
        return;
    };
    if let Some((key, next)) = table.get_key_value(segment) {
        *found = key.span().map(|s| s.start).or(*found);
        walk_item(next, rest, found);
    }
}

/// JSON has no spans here: find each key's quoted name after the previous one.
fn json_offset(segments: &[String], text: &str) -> Option<usize> {
    let mut from = 0;
    let mut found = None;
    for segment in segments.iter().filter(|s| !s.starts_with('[')) {
        let quoted = format!("\"{segment}\"");
        let at = text[from..]
            .find(&quoted)
            .or_else(|| text[from..].find(segment.as_str()))?;
        from += at;
        found = Some(from);
        from += segment.len();
    }
    found
}
