//! Model-id parsing: which thinking API a model takes, and its display name.

/// A model id taken apart: `claude-opus-4-6`, `claude-4.6-sonnet`,
/// `claude-3-7-sonnet-latest`, `claude-sonnet-4-20250514` ...
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ModelId {
    pub(super) family: Option<String>,
    pub(super) major: u32,
    pub(super) minor: u32,
}

impl ModelId {
    /// `None` when the id has no version number (e.g. a made-up `claude-test`).
    pub(super) fn parse(id: &str) -> Option<ModelId> {
        let rest = id.strip_prefix("claude-").unwrap_or(id);
        let mut family = None;
        let mut numbers = Vec::new();
        for part in rest.split(['-', '.']) {
            match part {
                "opus" | "sonnet" | "haiku" => family = Some(part.to_owned()),
                // Date suffixes (20250514) are not versions; stop at the first one.
                _ if part.len() >= 8 && part.bytes().all(|b| b.is_ascii_digit()) => break,
                _ => {
                    if let Ok(n) = part.parse::<u32>() {
                        numbers.push(n);
                    }
                }
            }
        }
        let major = *numbers.first()?;
        let minor = numbers.get(1).copied().unwrap_or(0);
        Some(ModelId {
            family,
            major,
            minor,
        })
    }
}

/// Whether the model belongs to the 4.6+ generation, which takes
/// `thinking: {"type":"adaptive"}` + `output_config.effort` and rejects `enabled`.
/// Ids without a version are treated as new: a made-up test id should get the current
/// API, not a legacy one.
pub(super) fn is_adaptive_generation(id: &str) -> bool {
    match ModelId::parse(id) {
        Some(m) => (m.major, m.minor) >= (4, 6),
        None => true,
    }
}

/// `claude-opus-4-6` → `Claude Opus 4.6`, as `GET /v1/models` shows it.
pub(super) fn display_name(id: &str) -> String {
    let Some(m) = ModelId::parse(id) else {
        return id.to_owned();
    };
    let version = if m.minor == 0 {
        m.major.to_string()
    } else {
        format!("{}.{}", m.major, m.minor)
    };
    match m.family {
        Some(f) => {
            let mut chars = f.chars();
            let cap: String = chars
                .next()
                .map(|c| c.to_ascii_uppercase())
                .into_iter()
                .chain(chars)
                .collect();
            format!("Claude {cap} {version}")
        }
        None => format!("Claude {version}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations() {
        for new in [
            "claude-opus-4-6",
            "claude-sonnet-4-6",
            "claude-4.6-sonnet",
            "claude-opus-4-7-20260101",
            "claude-sonnet-5",
            "claude-test",
        ] {
            assert!(is_adaptive_generation(new), "{new}");
        }
        for old in [
            "claude-sonnet-4-5",
            "claude-3-7-sonnet-latest",
            "claude-opus-4-1",
            "claude-sonnet-4-20250514",
            "claude-haiku-4-5-20251001",
        ] {
            assert!(!is_adaptive_generation(old), "{old}");
        }
    }

    #[test]
    fn display_names() {
        assert_eq!(display_name("claude-opus-4-6"), "Claude Opus 4.6");
        assert_eq!(
            display_name("claude-3-7-sonnet-latest"),
            "Claude Sonnet 3.7"
        );
        assert_eq!(display_name("claude-sonnet-4-20250514"), "Claude Sonnet 4");
    }
}
