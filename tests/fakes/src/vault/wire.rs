//! Vault's JSON shapes and the small encodings they need: the response envelope, the error
//! body, RFC 3339 timestamps as Go prints them, UUID-shaped request ids.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use warp::http::HeaderValue;
use warp::reply::Response;

use crate::serve::{json_response, status_code};

/// An answer before it becomes a response.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Answer {
    pub(super) status: u16,
    /// `None`: no body (`HEAD`).
    pub(super) body: Option<Value>,
    /// `text/plain` instead of JSON (Go's mux 404 outside `/v1/`).
    pub(super) plain: bool,
}

impl Answer {
    pub(super) fn json(status: u16, body: Value) -> Answer {
        Answer {
            status,
            body: Some(body),
            plain: false,
        }
    }

    /// `{"errors":[...]}`, Vault's error body.
    pub(super) fn errors(status: u16, errors: &[&str]) -> Answer {
        Answer::json(status, json!({ "errors": errors }))
    }

    /// A logical response with `data` and `warnings` in Vault's envelope; `mount_type` is
    /// the engine that answered (`kv`, `token`).
    pub(super) fn logical(
        status: u16,
        request_id: &str,
        mount_type: &str,
        data: Value,
        warnings: &[&str],
    ) -> Answer {
        Answer::json(status, envelope(request_id, mount_type, data, warnings))
    }

    pub(super) fn permission_denied() -> Answer {
        Answer::errors(403, &["permission denied"])
    }

    pub(super) fn sealed() -> Answer {
        Answer::errors(503, &["Vault is sealed"])
    }

    /// An endpoint real Vault serves and the fake does not.
    pub(super) fn not_implemented(what: &str) -> Answer {
        Answer::errors(501, &[&format!("vault fake: {what} is not implemented")])
    }

    /// What Go's `http.ServeMux` answers for a path outside `/v1/`.
    pub(super) fn page_not_found() -> Answer {
        Answer {
            status: 404,
            body: Some(Value::String("404 page not found\n".to_owned())),
            plain: true,
        }
    }

    pub(super) fn without_body(mut self) -> Answer {
        self.body = None;
        self
    }

    pub(super) fn into_response(self) -> Response {
        let mut response = match (&self.body, self.plain) {
            (Some(Value::String(text)), true) => {
                let mut r = Response::new(text.clone().into());
                r.headers_mut().insert(
                    "content-type",
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                r
            }
            (Some(body), _) => json_response(self.status, body),
            (None, _) => {
                let mut r = Response::new(Vec::new().into());
                r.headers_mut()
                    .insert("content-type", HeaderValue::from_static("application/json"));
                r
            }
        };
        *response.status_mut() = status_code(self.status);
        // Vault sets it on every response.
        response
            .headers_mut()
            .insert("cache-control", HeaderValue::from_static("no-store"));
        response
    }
}

/// Vault's response envelope around a logical response's `data` (`mount_type` since Vault
/// 1.15).
fn envelope(request_id: &str, mount_type: &str, data: Value, warnings: &[&str]) -> Value {
    json!({
        "request_id": request_id,
        "lease_id": "",
        "renewable": false,
        "lease_duration": 0,
        "data": data,
        "wrap_info": null,
        "warnings": if warnings.is_empty() { Value::Null } else { json!(warnings) },
        "auth": null,
        "mount_type": mount_type,
    })
}

/// A version's metadata as KV v2 reports it (read: `data.metadata`; write: `data`).
pub(super) fn version_metadata(version: u64, created: SystemTime) -> Value {
    json!({
        "version": version,
        "created_time": rfc3339_nano(created),
        "deletion_time": "",
        "destroyed": false,
        "custom_metadata": null,
    })
}

/// A UUID-shaped request id (version 4 layout), counted so failures are reproducible.
pub(super) fn request_id(n: u64) -> String {
    format!("fa4e0000-0000-4000-8000-{:012x}", n & 0xffff_ffff_ffff)
}

/// Seconds since the Unix epoch.
pub(super) fn unix_secs(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// `at` in UTC as Go's `time.RFC3339Nano` prints it (what KV v2 returns): nanoseconds with
/// trailing zeros trimmed, no fraction at all on a whole second, `Z`.
pub(super) fn rfc3339_nano(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let nanos = since.subsec_nanos();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let in_day = secs % 86_400;
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60
    );
    if nanos != 0 {
        out.push('.');
        out.push_str(format!("{nanos:09}").trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// (year, month, day) of the `days`-th day after 1970-01-01 (Howard Hinnant's algorithm,
/// restricted to dates after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Percent-decodes a path (as Go's `URL.Path` is); invalid escapes stay as they are.
pub(super) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            // Two hex digits: at most 255.
            out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of query parameter `name` (the first one, as Go's `Query().Get`), decoded.
pub(super) fn query_param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .filter(|(k, _)| percent_decode(k) == name)
        .map(|(_, v)| percent_decode(&v.replace('+', " ")))
        .next()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::{percent_decode, query_param, request_id, rfc3339_nano};

    #[test]
    fn timestamps_print_like_go() {
        assert_eq!(rfc3339_nano(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let at = UNIX_EPOCH + Duration::new(1_521_685_446, 945_319_214);
        assert_eq!(rfc3339_nano(at), "2018-03-22T02:24:06.945319214Z");
        let at = UNIX_EPOCH + Duration::new(951_782_400, 500_000_000);
        assert_eq!(rfc3339_nano(at), "2000-02-29T00:00:00.5Z");
        let at = UNIX_EPOCH + Duration::from_secs(4_102_444_799);
        assert_eq!(rfc3339_nano(at), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn ids_and_queries() {
        assert_eq!(request_id(1), "fa4e0000-0000-4000-8000-000000000001");
        assert_eq!(percent_decode("a%2Fb%20c%zz%4"), "a/b c%zz%4");
        assert_eq!(query_param("version=2", "version").as_deref(), Some("2"));
        assert_eq!(
            query_param("a=1&version=3&version=4", "version").as_deref(),
            Some("3")
        );
        assert_eq!(query_param("list", "list").as_deref(), Some(""));
        assert_eq!(query_param("", "version"), None);
    }
}
