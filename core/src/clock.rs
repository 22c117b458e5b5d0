//! Wall-clock time as the store and the transcripts keep it: milliseconds since the Unix
//! epoch. Durations inside one process use `Instant`; this is for what is written down.

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
