//! When to call again after a failed call, shared by every HTTP provider (protocols.md):
//! `x-should-retry` decides when present; otherwise 408, 409, 429 and 5xx (529 included)
//! are retried and everything else is not, and `insufficient_quota` (or a spend limit)
//! never is. The delay is `retry-after-ms`, else `retry-after` (seconds or an HTTP date),
//! else exponential backoff with full jitter, always capped.

use std::time::{Duration, SystemTime};

use pincer_actors::Backoff;
use reqwest::header::HeaderMap;

/// Tries per call, the first included.
pub const MAX_ATTEMPTS: u32 = 4;

/// The longest a single wait may be; a server asking for more makes the model exhausted
/// for now (so the fallback chain takes over) rather than hanging a user's turn.
pub const MAX_DELAY: Duration = Duration::from_secs(30);

/// First backoff step.
const BASE_DELAY: Duration = Duration::from_millis(500);

/// What to do after a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Call again, after at least this long (the server's hint), if any.
    Retry(Option<Duration>),
    /// Do not call again.
    Stop,
}

/// Error codes that no retry fixes.
fn is_final_code(code: &str) -> bool {
    matches!(
        code,
        "insufficient_quota" | "billing_hard_limit_reached" | "spend_limit_reached"
    ) || code.contains("spend_limit")
}

/// The verdict on a reply with `status`, `headers` and error `code` (if the body had one).
pub fn verdict(status: u16, headers: &HeaderMap, code: Option<&str>) -> Verdict {
    if code.is_some_and(is_final_code) {
        return Verdict::Stop;
    }
    let hint = hint(headers);
    match header(headers, "x-should-retry").as_deref() {
        Some("true") => return Verdict::Retry(hint),
        Some("false") => return Verdict::Stop,
        _ => {}
    }
    if matches!(status, 408 | 409 | 429) || status >= 500 {
        Verdict::Retry(hint)
    } else {
        Verdict::Stop
    }
}

/// The verdict on an error status carried inside a stream or a WebSocket error frame,
/// where there are no headers.
pub fn verdict_for_code(status: Option<u16>, code: Option<&str>) -> Verdict {
    verdict(status.unwrap_or(0), &HeaderMap::new(), code)
}

/// The server's retry hint: `retry-after-ms`, else `retry-after` in seconds or as an
/// HTTP date.
pub fn hint(headers: &HeaderMap) -> Option<Duration> {
    if let Some(ms) = header(headers, "retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let after = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(secs) = after.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = httpdate::parse_http_date(after).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// The backoff between tries without a hint: `BASE · 2^(attempt-1)` up to [`MAX_DELAY`],
/// with full jitter (anywhere from zero to that), so clients that failed together do not
/// come back together.
fn backoff() -> Backoff {
    Backoff::exponential(BASE_DELAY, MAX_DELAY, 2.0).with_jitter(1.0)
}

/// How long to wait before try `attempt` (1 = the first retry): the server's hint, or the
/// [`backoff`]; `None` when the hint exceeds [`MAX_DELAY`].
pub fn delay(attempt: u32, hint: Option<Duration>) -> Option<Duration> {
    let wait = hint.unwrap_or_else(|| backoff().delay(attempt));
    (wait <= MAX_DELAY).then_some(wait)
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().expect("header value"));
        }
        map
    }

    #[test]
    fn statuses_and_codes() {
        let none = HeaderMap::new();
        for status in [408, 409, 429, 500, 502, 503, 529] {
            assert_eq!(
                verdict(status, &none, None),
                Verdict::Retry(None),
                "{status}"
            );
        }
        for status in [400, 401, 403, 404, 413, 422] {
            assert_eq!(verdict(status, &none, None), Verdict::Stop, "{status}");
        }
        assert_eq!(
            verdict(429, &none, Some("insufficient_quota")),
            Verdict::Stop
        );
        assert_eq!(
            verdict(429, &none, Some("rate_limit_exceeded")),
            Verdict::Retry(None)
        );
    }

    #[test]
    fn should_retry_header_overrides_the_status() {
        assert_eq!(
            verdict(400, &headers(&[("x-should-retry", "true")]), None),
            Verdict::Retry(None)
        );
        assert_eq!(
            verdict(503, &headers(&[("x-should-retry", "false")]), None),
            Verdict::Stop
        );
    }

    #[test]
    fn hints_in_every_form() {
        let ms = headers(&[("retry-after-ms", "250"), ("retry-after", "9")]);
        assert_eq!(hint(&ms), Some(Duration::from_millis(250)));
        assert_eq!(
            hint(&headers(&[("retry-after", "2")])),
            Some(Duration::from_secs(2))
        );
        let past = headers(&[("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT")]);
        assert_eq!(hint(&past), Some(Duration::ZERO));
        let future = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(20));
        let waited = hint(&headers(&[("retry-after", future.as_str())])).expect("a date");
        assert!(
            waited > Duration::from_secs(18) && waited <= Duration::from_secs(20),
            "{waited:?}"
        );
        assert_eq!(hint(&headers(&[("retry-after", "soon")])), None);
    }

    #[test]
    fn delays_are_jittered_and_capped() {
        for attempt in 1..8 {
            let d = delay(attempt, None).expect("within the cap");
            assert!(d <= MAX_DELAY);
        }
        assert_eq!(
            delay(1, Some(Duration::from_secs(3))),
            Some(Duration::from_secs(3))
        );
        assert_eq!(delay(1, Some(Duration::from_secs(3600))), None);
    }
}
