//! Wall-clock time as the store and the transcripts keep it: milliseconds since the Unix
//! epoch. Durations inside one process use `Instant`; this is for what is written down.

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

mod civil;

pub use civil::civil_from_days;

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC) for a time in milliseconds since the Unix epoch, as
/// logs and the CLI show times.
pub fn rfc3339(ms: u64) -> String {
    civil::rfc3339_secs(ms / 1000)
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_known_instants() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(super::rfc3339(1_796_592_900_123), "2026-12-06T21:35:00Z");
    }

    #[test]
    fn civil_from_days_walks_the_calendar() {
        // Day by day from 1970 to 2400 against a naive count of month lengths.
        let (mut y, mut m, mut d) = (1970u64, 1u64, 1u64);
        for days in 0..157_000 {
            assert_eq!(super::civil_from_days(days), (y, m, d), "day {days}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            d += 1;
            if d > len {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }
}
