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
}
