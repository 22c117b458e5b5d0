//! The gateway's log: to stderr, at the level `PINCER_LOG` (else `RUST_LOG`) names, as
//! text or (`PINCER_LOG_FORMAT=json`) one JSON object a line with the fields of the spans
//! it happened in (a turn's `request_id`). Secret values are masked on the way out.

use tracing_subscriber::filter::Targets;

/// Levels a bare word of the filter may name.
const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Text,
    Json,
}

/// Starts logging; what was wrong with the environment's settings is logged first (and
/// the defaults used: `info`, text).
pub fn init() {
    use tracing_subscriber::prelude::*;
    let (source, wanted) = match std::env::var("PINCER_LOG") {
        Ok(v) => ("PINCER_LOG", Some(v)),
        Err(_) => ("RUST_LOG", std::env::var("RUST_LOG").ok()),
    };
    let parsed = wanted.as_deref().map(parse_filter);
    let filter = match &parsed {
        Some(Ok(targets)) => targets.clone(),
        _ => Targets::new().with_default(tracing::Level::INFO),
    };
    let format_var = std::env::var("PINCER_LOG_FORMAT").ok();
    let format = match format_var.as_deref().map(str::trim) {
        None | Some("" | "text") => Ok(Format::Text),
        Some("json") => Ok(Format::Json),
        Some(other) => Err(other.to_string()),
    };
    let writer = || pincer_secrets::redact::Redacting::new(std::io::stderr);
    let layer = match format {
        Ok(Format::Json) => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(false)
            .with_span_list(true)
            .flatten_event(true)
            .with_target(false)
            .with_writer(writer())
            .boxed(),
        _ => tracing_subscriber::fmt::layer()
            .with_writer(writer())
            .with_target(false)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .try_init();
    if let (Some(Err(error)), Some(value)) = (parsed, wanted) {
        tracing::warn!("{source}=\"{value}\" is not a log filter ({error}); logging at info.");
    }
    if let Err(value) = format {
        tracing::warn!(
            "PINCER_LOG_FORMAT=\"{value}\" is not a log format (text or json); logging as text."
        );
    }
}

/// A filter such as `info`, `warn,pincer=debug`. A bare word must be a level: `warning`
/// would otherwise be read as a target named "warning" and silence everything else.
fn parse_filter(text: &str) -> Result<Targets, String> {
    for directive in text.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let level = match directive.split_once('=') {
            Some((_, level)) => level.trim(),
            None => directive,
        };
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "`{level}` is not a level: use one of {}, or TARGET=LEVEL",
                LEVELS.join(", ")
            ));
        }
    }
    text.parse::<Targets>().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::parse_filter;

    #[test]
    fn bare_words_must_be_levels() {
        for good in ["info", "WARN", "warn,pincer=debug", "off", "pincer=trace"] {
            assert!(parse_filter(good).is_ok(), "{good}");
        }
        for bad in ["warning", "verbose", "pincer=loud", "info,quiet"] {
            let error = parse_filter(bad).expect_err(bad);
            assert!(error.contains("is not a level"), "{error}");
        }
    }
}
