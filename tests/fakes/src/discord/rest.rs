//! The REST API under `/api/v10` (and `/api/v9`): auth, routing, message posts with their
//! validation and rate limits, and Discord's error shapes. Gateway upgrades are handed to
//! [`super::gateway`]; the server itself (thread, runtime, shutdown) is [`crate::serve`]'s.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use serde_json::{Value, json};
use warp::Filter;
use warp::http::{HeaderMap, HeaderValue, Method};
use warp::reply::Response;

use super::Recorded;
use super::gateway;
use super::limits::{Bucket, Refusal};
use super::state::{Shared, epoch_secs_in};
use crate::serve::{Routes, json_body, json_response, raw_query, status_code};

/// Every route: gateway upgrades of `/gateway`, then the REST API.
pub(super) fn routes(shared: Arc<Shared>) -> impl Routes {
    let upgrade_shared = Arc::clone(&shared);
    let upgrade = warp::path::full()
        .and_then(|path: warp::path::FullPath| async move {
            if matches!(path.as_str(), "/gateway" | "/gateway/") {
                Ok(())
            } else {
                Err(warp::reject::not_found())
            }
        })
        .untuple_one()
        .and(warp::ws())
        .and(raw_query())
        .map(move |socket, query: String| {
            gateway::upgrade(socket, &query, Arc::clone(&upgrade_shared))
        });
    let plain = warp::method()
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .and(warp::body::bytes())
        .map(move |method, path: warp::path::FullPath, headers, body| {
            handle(&shared, &method, path.as_str(), &headers, &body)
        });
    upgrade.or(plain).unify()
}

/// One answer, before it becomes a response.
struct Answer {
    status: u16,
    body: Option<Value>,
    headers: Vec<(&'static str, String)>,
}

impl Answer {
    fn json(status: u16, body: Value) -> Answer {
        Answer {
            status,
            body: Some(body),
            headers: Vec::new(),
        }
    }

    /// `{"message": "<status>: <reason>", "code": 0}`, Discord's bare HTTP errors.
    fn http_error(status: u16, reason: &str) -> Answer {
        Answer::json(
            status,
            json!({"message": format!("{status}: {reason}"), "code": 0}),
        )
    }

    fn with_headers(mut self, headers: Vec<(&'static str, String)>) -> Answer {
        self.headers.extend(headers);
        self
    }

    fn into_response(self) -> Response {
        let mut response = match &self.body {
            Some(body) => json_response(self.status, body),
            None => {
                let mut r = Response::new(Vec::new().into());
                *r.status_mut() = status_code(self.status);
                r
            }
        };
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}

fn handle(
    shared: &Shared,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let at = Instant::now();
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = json_body(body);
    let answer = route(shared, method, path, authorization.as_deref(), &body);
    shared.record(Recorded {
        method: method.as_str().to_owned(),
        path: path.to_owned(),
        authorization,
        body: body.unwrap_or_else(Value::String),
        status: answer.status,
        at,
    });
    answer.into_response()
}

fn route(
    shared: &Shared,
    method: &Method,
    path: &str,
    authorization: Option<&str>,
    body: &Result<Value, String>,
) -> Answer {
    let Some(rest) = path
        .strip_prefix("/api/v10/")
        .or_else(|| path.strip_prefix("/api/v9/"))
    else {
        return Answer::http_error(404, "Not Found");
    };
    let segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    // Which routes exist, and whether this method is one of theirs.
    let allowed = match segments.as_slice() {
        ["gateway"] | ["gateway", "bot"] | ["users", "@me"] => *method == Method::GET,
        ["channels", id, "messages" | "typing"] if !id.is_empty() => *method == Method::POST,
        _ => return Answer::http_error(404, "Not Found"),
    };
    if !allowed {
        return Answer::http_error(405, "Method Not Allowed");
    }
    // `GET /gateway` needs no authentication.
    if segments.as_slice() == ["gateway"] {
        return Answer::json(200, json!({"url": shared.gateway_url}));
    }
    let knobs = shared.knobs();
    let token = authorization
        .and_then(|a| a.strip_prefix("Bot "))
        .filter(|t| knobs.tokens.iter().any(|k| k == t));
    let Some(token) = token else {
        return Answer::http_error(401, "Unauthorized");
    };
    let channel_post = matches!(segments.as_slice(), ["channels", _, "messages"]);
    let now = Instant::now();
    {
        let mut limits = shared.limits.lock();
        let injected = if channel_post {
            limits.take_injected(knobs.route_limit)
        } else {
            None
        };
        let refusal = match injected {
            Some(r) => Err(r),
            None => limits.global(token, knobs.global_limit, now),
        };
        if let Err(refusal) = refusal {
            drop(limits);
            return too_many_requests(shared, &refusal);
        }
    }
    match segments.as_slice() {
        ["gateway", "bot"] => {
            let (total, remaining, reset_after) = shared.session_start_limit();
            Answer::json(
                200,
                json!({
                    "url": shared.gateway_url,
                    "shards": 1,
                    "session_start_limit": {
                        "total": total,
                        "remaining": remaining,
                        "reset_after": reset_after,
                        "max_concurrency": 1,
                    },
                }),
            )
        }
        ["users", "@me"] => Answer::json(200, shared.bot_user()),
        ["channels", _, "typing"] => Answer {
            status: 204,
            body: None,
            headers: Vec::new(),
        },
        ["channels", channel_id, "messages"] => {
            let bucket = shared
                .limits
                .lock()
                .route(channel_id, knobs.route_limit, now);
            match bucket {
                Err(refusal) => too_many_requests(shared, &refusal),
                Ok(bucket) => create_message(shared, channel_id, body)
                    .with_headers(bucket.map(bucket_headers).unwrap_or_default()),
            }
        }
        _ => Answer::http_error(404, "Not Found"),
    }
}

/// `POST /channels/{id}/messages` after auth and rate limits.
fn create_message(shared: &Shared, channel_id: &str, body: &Result<Value, String>) -> Answer {
    let body = match body {
        Ok(Value::Object(map)) => map,
        Ok(_) => {
            return invalid_form(json!({"_errors": [{
                "code": "DICT_TYPE_CONVERT",
                "message": "Only dictionaries may be used in a DictType",
            }]}));
        }
        Err(_) => {
            return Answer::json(
                400,
                json!({"message": "The request body contains invalid JSON.", "code": 50109}),
            );
        }
    };
    let content = match body.get("content") {
        None | Some(Value::Null) => "",
        Some(Value::String(s)) => s.as_str(),
        Some(other) => {
            return invalid_form(json!({"content": {"_errors": [{
                "code": "STRING_TYPE_CONVERT",
                "message": format!("Could not interpret \"{other}\" as string."),
            }]}}));
        }
    };
    if content.chars().count() > 2000 {
        return invalid_form(json!({"content": {"_errors": [{
            "code": "BASE_TYPE_MAX_LENGTH",
            "message": "Must be 2000 or fewer in length.",
        }]}}));
    }
    let has_other_content = ["embeds", "sticker_ids", "components", "attachments", "poll"]
        .iter()
        .any(|k| match body.get(*k) {
            Some(Value::Array(a)) => !a.is_empty(),
            Some(Value::Object(_)) => true,
            _ => false,
        });
    if content.is_empty() && !has_other_content {
        return Answer::json(
            400,
            json!({"message": "Cannot send an empty message", "code": 50006}),
        );
    }
    let mut reply_to = None;
    if let Some(reference) = body.get("message_reference").filter(|r| !r.is_null()) {
        let id = match reference.get("message_id") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let must_exist = reference
            .get("fail_if_not_exists")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        match id {
            Some(id) if shared.message_exists(&id) => reply_to = Some(id),
            Some(_) if !must_exist => {}
            _ => {
                return invalid_form(json!({"message_reference": {"_errors": [{
                    "code": "MESSAGE_REFERENCE_UNKNOWN_MESSAGE",
                    "message": "Unknown message",
                }]}}));
            }
        }
    }
    Answer::json(
        200,
        shared.bot_message(channel_id, content, reply_to.as_deref()),
    )
}

fn invalid_form(errors: Value) -> Answer {
    Answer::json(
        400,
        json!({"message": "Invalid Form Body", "code": 50035, "errors": errors}),
    )
}

/// A stable bucket hash for `POST /channels/{channel_id}/messages` (FNV-1a of the route).
fn bucket_hash() -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in b"POST /channels/{channel_id}/messages" {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn bucket_headers(bucket: Bucket) -> Vec<(&'static str, String)> {
    vec![
        ("x-ratelimit-limit", bucket.limit.to_string()),
        ("x-ratelimit-remaining", bucket.remaining.to_string()),
        (
            "x-ratelimit-reset",
            format!("{:.3}", epoch_secs_in(bucket.reset_after)),
        ),
        (
            "x-ratelimit-reset-after",
            format!("{:.3}", bucket.reset_after.as_secs_f64()),
        ),
        ("x-ratelimit-bucket", bucket_hash()),
    ]
}

/// A 429 shaped like Discord's, counted.
fn too_many_requests(shared: &Shared, refusal: &Refusal) -> Answer {
    shared.count(|c| {
        c.rate_limited += 1;
        if refusal.global {
            c.global_rate_limited += 1;
        }
    });
    let secs = refusal.retry_after.as_secs_f64();
    let mut headers = vec![("retry-after", format!("{}", secs.ceil() as u64))];
    if refusal.global {
        headers.push(("x-ratelimit-global", "true".to_owned()));
        headers.push(("x-ratelimit-scope", "global".to_owned()));
    } else {
        headers.push(("x-ratelimit-scope", "user".to_owned()));
    }
    if let Some(bucket) = refusal.bucket {
        headers.extend(bucket_headers(bucket));
    }
    let retry_after = (secs * 1000.0).ceil() / 1000.0;
    Answer::json(
        429,
        json!({
            "message": "You are being rate limited.",
            "retry_after": retry_after,
            "global": refusal.global,
        }),
    )
    .with_headers(headers)
}
