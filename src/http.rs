//! Every route on the gateway port, and the one place where failures become HTTP errors.
//!
//! | routes | module | auth |
//! |---|---|---|
//! | `/health[z]`, `/startup[z]`, `/ready[z]` | [`probes`] | none (remote callers without the token get status fields only) |
//! | `/admin/...` | [`admin`], [`approvals`], [`channels`], [`secrets`] | bearer token |
//! | `/telegram/<account>` | [`channels`] | the webhook's secret header |
//! | `/metrics` | [`prometheus`] | loopback or bearer token |
//! | `/v1/chat/completions`, `/v1/models` | [`openai`] | bearer token |
//! | `/`, `/ws` | [`webchat`] | page: none; socket: loopback or token (also `?token=`), and the page's own origin or one in `gateway.allowedOrigins` |
//!
//! Before any route, [`host_guard`] refuses a request whose `Host` is not one of the
//! gateway's names ([`hosts`]) unless it carries the token; plain probes answer any `Host`.
//! The token is read from `Authorization: Bearer <token>` (the scheme in any case), and
//! from `?token=` on the socket only.

pub mod admin;
pub mod approvals;
pub mod channels;
pub mod hosts;
pub mod openai;
pub mod probes;
pub mod prometheus;
pub mod secrets;
pub mod webchat;

use std::convert::Infallible;
use std::net::SocketAddr;

use serde_json::json;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use crate::topology::Topology;

/// All routes for `gw`, behind the [`host_guard`].
pub fn routes(gw: Topology) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let routes = probes::routes(gw.clone())
        .or(admin::routes(gw.clone()))
        .or(approvals::routes(gw.clone()))
        .or(channels::routes(gw.clone()))
        .or(secrets::routes(gw.clone()))
        .or(prometheus::routes(gw.clone()))
        .or(openai::routes(gw.clone()))
        .or(webchat::routes(gw.clone()));
    host_guard(gw).and(routes).recover(recover)
}

/// The probes a kubelet or load balancer sends by address (the pod's IP, whatever it is):
/// they answer any `Host`. With `verbose` they show the tree, and are guarded.
const PLAIN_PROBES: [&str; 6] = [
    "/healthz",
    "/health",
    "/readyz",
    "/ready",
    "/startupz",
    "/startup",
];

/// Refuses (421) a request whose `Host` is not one of the gateway's names (see [`hosts`])
/// and that does not carry the token: what a page reaches through DNS rebinding. Plain
/// probes pass whatever their `Host`; a request without one (HTTP/1.0) is no browser's.
pub fn host_guard(gw: Topology) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::host::optional()
        .and(warp::path::full())
        .and(raw_query())
        .and(warp::header::optional::<String>("authorization"))
        .and_then(
            move |host: Option<warp::host::Authority>,
                  path: warp::path::FullPath,
                  query: String,
                  auth: Option<String>| {
                let verdict = check_host(&gw, host.as_ref(), path.as_str(), &query, auth);
                async move { verdict.map_err(warp::reject::custom) }
            },
        )
        .untuple_one()
}

fn check_host(
    gw: &Topology,
    host: Option<&warp::host::Authority>,
    path: &str,
    query: &str,
    auth: Option<String>,
) -> Result<(), ApiError> {
    let Some(host) = host else {
        return Ok(());
    };
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    if PLAIN_PROBES.contains(&path) && !query_has(query, "verbose") {
        return Ok(());
    }
    if hosts::host_allowed(host, &gw.config()) {
        return Ok(());
    }
    // The socket's token may come in the query, as on the route itself.
    let in_query = if path == "/ws" {
        query_param(query, "token")
    } else {
        None
    };
    let given = auth.as_deref().and_then(bearer_token);
    if token_matches(gw, given) || token_matches(gw, in_query.as_deref()) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::MISDIRECTED_REQUEST,
        format!(
            "Host `{host}` is not a name of this gateway: add it to gateway.allowedHosts, or send the bearer token (loopback names and addresses and the bind address need neither)"
        ),
        "permission_error",
        "host_not_allowed",
    ))
}

/// The raw query string, empty when there is none.
fn raw_query() -> impl Filter<Extract = (String,), Error = Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

/// An error answered as `{"error": {"message", "type", "code"}}` (the OpenAI shape, which
/// the SDKs read; the admin API uses it too).
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong, for people.
    pub message: String,
    /// `invalid_request_error`, `authentication_error`, `not_found_error`, `server_error`.
    pub kind: &'static str,
    /// A stable code for programs.
    pub code: &'static str,
    /// The request field at fault, when one is (OpenAI's `param`).
    pub param: Option<String>,
}

impl warp::reject::Reject for ApiError {}

// === impl ApiError ===

impl ApiError {
    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            message,
            "invalid_request_error",
            "bad_request",
        )
    }

    /// 401.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (see gateway.auth.token, PINCER_GATEWAY_TOKEN or $PINCER_HOME/gateway.token)",
            "authentication_error",
            "invalid_api_key",
        )
    }

    /// 404.
    pub fn not_found(message: impl Into<String>, code: &'static str) -> Self {
        Self::new(StatusCode::NOT_FOUND, message, "not_found_error", code)
    }

    /// 503: try again.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            message,
            "server_error",
            "unavailable",
        )
    }

    /// Any status.
    pub fn new(
        status: StatusCode,
        message: impl Into<String>,
        kind: &'static str,
        code: &'static str,
    ) -> Self {
        Self {
            status,
            message: message.into(),
            kind,
            code,
            param: None,
        }
    }

    /// 400 naming the request field `param` at fault; `code` is `invalid_value` or
    /// `unsupported_parameter`, as OpenAI says.
    pub fn param(param: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            param: Some(param.into()),
            ..Self::new(
                StatusCode::BAD_REQUEST,
                message,
                "invalid_request_error",
                code,
            )
        }
    }

    /// As a response.
    pub fn into_reply(self) -> warp::reply::Response {
        let body = json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}});
        let mut response =
            warp::reply::with_status(warp::reply::json(&body), self.status).into_response();
        let headers = response.headers_mut();
        if matches!(
            self.status,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
        ) {
            headers.insert("retry-after", warp::http::HeaderValue::from_static("1"));
        }
        // The refused body is left unread on the socket: close it, so the client does not
        // send its next request down a connection that still carries the rest of this one.
        if matches!(
            self.status,
            StatusCode::PAYLOAD_TOO_LARGE | StatusCode::LENGTH_REQUIRED
        ) {
            headers.insert("connection", warp::http::HeaderValue::from_static("close"));
        }
        response
    }
}

async fn recover(rejection: Rejection) -> Result<warp::reply::Response, Infallible> {
    use warp::reject::{LengthRequired, MethodNotAllowed, PayloadTooLarge};
    let error = if let Some(e) = rejection.find::<ApiError>() {
        e.clone()
    } else if rejection.is_not_found() {
        ApiError::not_found("no such route", "not_found")
    } else if rejection.find::<MethodNotAllowed>().is_some() {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed on this route",
            "invalid_request_error",
            "method_not_allowed",
        )
    } else if rejection.find::<PayloadTooLarge>().is_some() {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body is larger than gateway.maxBodyBytes",
            "invalid_request_error",
            "payload_too_large",
        )
    } else if rejection.find::<LengthRequired>().is_some() {
        ApiError::new(
            StatusCode::LENGTH_REQUIRED,
            "a Content-Length header is required",
            "invalid_request_error",
            "length_required",
        )
    } else if let Some(e) = rejection.find::<warp::filters::body::BodyDeserializeError>() {
        ApiError::bad_request(format!("cannot read the JSON body: {e}"))
    } else if let Some(e) = rejection.find::<warp::reject::InvalidHeader>() {
        ApiError::bad_request(format!("invalid request header `{}`", e.name()))
    } else if let Some(e) = rejection.find::<warp::reject::MissingHeader>() {
        ApiError::bad_request(format!("missing request header `{}`", e.name()))
    } else if rejection.find::<warp::reject::InvalidQuery>().is_some() {
        ApiError::bad_request("invalid query string")
    } else if rejection
        .find::<warp::reject::UnsupportedMediaType>()
        .is_some()
    {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the request's content-type is not supported (send application/json)",
            "invalid_request_error",
            "unsupported_media_type",
        )
    } else {
        // Never Rust debug text in a response: what is left has no message worth showing.
        ApiError::bad_request("bad request")
    };
    Ok(error.into_reply())
}

// === auth ===

/// Who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// Connected from a loopback address.
    pub local: bool,
    /// Gave the right bearer token.
    pub authenticated: bool,
}

/// The caller of a request: its address and `Authorization` header checked. A token in
/// the query string counts on the web chat's socket only ([`socket_caller`]): elsewhere it
/// would end up in logs, browser history and `Referer` headers.
pub fn caller(gw: Topology) -> impl Filter<Extract = (Caller,), Error = Rejection> + Clone {
    crate::server::remote()
        .and(warp::header::optional::<String>("authorization"))
        .map(
            move |addr: Option<SocketAddr>, auth: Option<String>| Caller {
                local: addr.is_some_and(|a| a.ip().is_loopback()),
                authenticated: token_matches(&gw, auth.as_deref().and_then(bearer_token)),
            },
        )
}

/// [`caller`] for the web chat's socket, which also takes the token as `?token=`: a
/// browser cannot set headers on a WebSocket.
pub fn socket_caller(gw: Topology) -> impl Filter<Extract = (Caller,), Error = Rejection> + Clone {
    caller(gw.clone())
        .and(raw_query())
        .map(move |who: Caller, query: String| Caller {
            authenticated: who.authenticated
                || token_matches(&gw, query_param(&query, "token").as_deref()),
            ..who
        })
}

/// The token of an `Authorization` header in the `Bearer` scheme, its name in any case
/// (RFC 7235): `Bearer t`, `bearer t`, `BEARER t`.
pub fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once([' ', '\t'])?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Requires the bearer token.
pub fn authenticated(gw: Topology) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    caller(gw)
        .and_then(|c: Caller| async move {
            if c.authenticated {
                Ok(())
            } else {
                Err(warp::reject::custom(ApiError::unauthorized()))
            }
        })
        .untuple_one()
}

/// Requires a loopback caller or the bearer token.
pub fn local_or_authenticated(
    gw: Topology,
) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    caller(gw)
        .and_then(|c: Caller| async move {
            if c.local || c.authenticated {
                Ok(())
            } else {
                Err(warp::reject::custom(ApiError::unauthorized()))
            }
        })
        .untuple_one()
}

/// Whether `given` is the token in force. An empty token never matches, whatever is in
/// force (none can be: start-up, reloads and rotation refuse short tokens).
fn token_matches(gw: &Topology, given: Option<&str>) -> bool {
    match (gw.token().get(), given.filter(|g| !g.is_empty())) {
        (Some(token), Some(given)) if !token.is_empty() => {
            pincer_core::net::constant_time_eq(token.as_bytes(), given.as_bytes())
        }
        _ => false,
    }
}

/// The value of `name` in a raw query string, percent-decoded.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))
    })
}

/// Whether the raw query string has `name` (with or without a value).
pub fn query_has(query: &str, name: &str) -> bool {
    query
        .split('&')
        .any(|pair| pair.split_once('=').map_or(pair, |(k, _)| k) == name)
}

/// Decodes `%XX` escapes (and `+` as space); invalid escapes are kept as they are.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_decoded() {
        assert_eq!(
            query_param("a=1&token=x%2Fy", "token").as_deref(),
            Some("x/y")
        );
        assert_eq!(query_param("verbose", "token"), None);
        assert!(query_has("verbose", "verbose"));
        assert!(query_has("a=1&verbose=1", "verbose"));
        assert_eq!(percent_decode("a%3Ab%2"), "a:b%2");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn the_bearer_scheme_is_read_in_any_case() {
        for header in ["Bearer abc", "bearer abc", "BEARER abc", "  BeArEr \tabc  "] {
            assert_eq!(bearer_token(header), Some("abc"), "{header:?}");
        }
        for header in ["Basic abc", "Bearer", "Bearer   ", "Bearerabc", ""] {
            assert_eq!(bearer_token(header), None, "{header:?}");
        }
    }
}
