//! Durations in config: strings such as "90s", "15m", "24h", "1h30m", or bare numbers in
//! the unit the key's name gives (`idleHours = 24`, `latencyThreshold = 200` ms).

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};

/// Parses "250ms", "90s", "15m", "24h", "7d", or compounds such as "1h30m". A bare number
/// is not accepted here: its unit depends on the key (see [`deserialize_with_unit`]).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".to_string());
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return Err(format!(
                "`{text}` is not a duration (expected e.g. \"90s\", \"15m\", \"24h\")"
            ));
        }
        let number: f64 = rest[..number_len]
            .parse()
            .map_err(|_| format!("`{text}` has a malformed number"))?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match rest[..unit_len].trim() {
            "ms" => 0.001,
            "s" | "sec" | "secs" => 1.0,
            "m" | "min" | "mins" => 60.0,
            "h" | "hr" | "hrs" => 3600.0,
            "d" | "day" | "days" => 86_400.0,
            "" => return Err(format!("`{text}` lacks a unit (ms, s, m, h or d)")),
            unit => {
                return Err(format!(
                    "`{text}` has an unknown unit `{unit}` (ms, s, m, h or d)"
                ));
            }
        };
        total += number * seconds;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| format!("`{text}` is out of range"))
}

/// Formats a duration the way config accepts it back ("1h30m", "90s", "250ms", "0s").
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_string();
    }
    if d.subsec_millis() != 0 && d.as_secs() < 60 {
        return format!("{}ms", d.as_millis());
    }
    let mut secs = d.as_secs();
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

/// Deserializes a duration from a string ("90s") or a number in `unit` seconds (3600.0
/// for an `...Hours` key, 0.001 for a `...Ms` key).
pub fn deserialize_with_unit<'de, D: Deserializer<'de>>(
    deserializer: D,
    unit: f64,
) -> Result<Duration, D::Error> {
    struct V(f64);
    impl Visitor<'_> for V {
        type Value = Duration;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a number or a duration string such as \"90s\", \"15m\" or \"24h\"")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            parse_duration(v).map_err(E::custom)
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
            if v < 0.0 {
                return Err(E::custom(format!("negative duration {v}")));
            }
            Duration::try_from_secs_f64(v * self.0)
                .map_err(|_| E::custom(format!("{v} is out of range")))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
            self.visit_f64(v as f64)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
            self.visit_f64(v as f64)
        }
    }
    deserializer.deserialize_any(V(unit))
}

macro_rules! unit_module {
    ($(#[$doc:meta])* $name:ident, $unit:expr) => {
        $(#[$doc])*
        pub mod $name {
            use std::time::Duration;
            /// Serde `deserialize_with` entry point.
            pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
                super::deserialize_with_unit(d, $unit)
            }
        }
    };
}

unit_module!(
    /// Bare numbers are hours (`idleHours = 24`).
    hours, 3600.0
);
unit_module!(
    /// Bare numbers are seconds (`drainTimeout = 10`).
    seconds, 1.0
);
unit_module!(
    /// Bare numbers are milliseconds (`latencyThreshold = 200`).
    millis, 0.001
);

/// Like [`hours`], for optional keys.
pub mod opt_hours {
    use std::time::Duration;
    /// Serde `deserialize_with` entry point.
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        super::hours::deserialize(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_compounds() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
    }

    #[test]
    fn rejects_with_reason() {
        assert!(parse_duration("").unwrap_err().contains("empty"));
        assert!(parse_duration("12").unwrap_err().contains("lacks a unit"));
        assert!(
            parse_duration("3 weeks")
                .unwrap_err()
                .contains("unknown unit `weeks`")
        );
        assert!(parse_duration("h").unwrap_err().contains("not a duration"));
    }

    #[test]
    fn formats_back() {
        for text in ["0s", "90s", "1h30m", "250ms", "7d", "1d1h1m1s"] {
            let d = parse_duration(text).expect("valid");
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{text}");
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    }
}
