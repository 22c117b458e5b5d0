//! The HTTP side, in Vault's order: read the body (capped) and parse it for writes, check
//! the seal, the namespace, the token and its policy, then route to the KV v2 engine. The
//! server itself (thread, runtime, shutdown) is [`crate::serve`]'s.

use std::io;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::{Buf, Bytes};
use futures::{Stream, StreamExt};
use serde_json::{Map, Value, json};
use warp::http::{HeaderMap, Method};
use warp::reply::Response;
use warp::{Filter, Reply};

use super::policy::Capability;
use super::state::{Kind, Shared, State};
use super::wire::{Answer, percent_decode, query_param, rfc3339_nano, unix_secs, version_metadata};
use super::{Knobs, Policy, Recorded};
use crate::serve::{Routes, json_body, raw_query};

/// The Vault version `sys/health` reports.
const VERSION: &str = "1.17.6";

/// The cluster id `sys/health` reports.
const CLUSTER_ID: &str = "fa4e0000-c1a5-4e7e-8000-000000000000";

/// One filter that takes every request; routing is done in [`answer`] so that every
/// answer, unknown paths included, is Vault's.
pub(super) fn routes(shared: Arc<Shared>) -> impl Routes {
    warp::method()
        .and(warp::path::full())
        .and(raw_query())
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .then(
            move |method: Method,
                  path: warp::path::FullPath,
                  query: String,
                  headers: HeaderMap,
                  body| {
                let shared = Arc::clone(&shared);
                let path = path.as_str().to_owned();
                async move { handle(shared, method, path, query, headers, body).await }
            },
        )
}

/// The request body as read.
#[derive(Debug)]
enum Body {
    /// All of it.
    Read(Vec<u8>),
    /// More than `max_request_bytes`: read to the end but not kept.
    TooLarge,
}

/// What the answer depends on.
#[derive(Debug)]
struct Request {
    method: Method,
    /// As sent (percent-encoded), without the query.
    path: String,
    query: String,
    token: Option<String>,
    namespace: Option<String>,
    body: Body,
}

/// What a request asks of its path, as Vault maps HTTP methods to operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Read,
    /// Create or update, decided by whether the target exists.
    Write,
    Delete,
    Patch,
    List,
}

/// Where a path inside the namespace leads.
#[derive(Debug)]
enum Target<'p> {
    /// `{mount}/data/{key}` of a KV v2 mount.
    Data { mount: String, key: &'p str },
    /// Another path under a KV v2 mount (`rest` follows `{mount}/`).
    Kv { mount: String, rest: &'p str },
    /// `auth/token/lookup-self`.
    LookupSelf,
    /// Other `sys/` and `auth/` paths: real Vault serves them, the fake does not.
    Builtin,
    /// No mount.
    Nothing,
}

async fn handle<S, B>(
    shared: Arc<Shared>,
    method: Method,
    path: String,
    query: String,
    headers: HeaderMap,
    body: S,
) -> Response
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let at = Instant::now();
    let cap = shared.lock().knobs.max_request_bytes;
    let body = read_body(body, cap).await;
    let request = Request {
        method,
        path,
        query,
        token: token_of(&headers),
        namespace: header(&headers, "x-vault-namespace"),
        body,
    };
    let knobs = shared.lock().knobs.clone();
    let recorded_body = match &request.body {
        Body::Read(bytes) => json_body(bytes).unwrap_or_else(Value::String),
        Body::TooLarge => Value::String(String::new()),
    };
    let index = shared.record(
        Recorded {
            method: request.method.as_str().to_owned(),
            path: request.path.clone(),
            query: request.query.clone(),
            token: request.token.clone(),
            namespace: request.namespace.clone(),
            body: recorded_body,
            status: None,
            at,
        },
        kind_of(&shared, &knobs, &request),
    );
    if knobs.down {
        shared.finish(index, None);
        return dropped();
    }
    if !knobs.latency.is_zero() {
        // A client that gives up meanwhile leaves the record without a status.
        tokio::time::sleep(knobs.latency).await;
    }
    let answer = answer(&shared, &knobs, &request);
    shared.finish(index, Some(answer.status));
    answer.into_response()
}

/// Reads the body up to `cap` bytes; past it, reads on (discarding) so the client gets the
/// 413 rather than a reset while still sending. A body cut short by the client is what
/// arrived (the answer will not reach it anyway).
async fn read_body<S, B>(body: S, cap: usize) -> Body
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut body = std::pin::pin!(body);
    let mut out = Vec::new();
    let mut too_large = false;
    while let Some(Ok(mut chunk)) = body.next().await {
        if too_large {
            continue;
        }
        if out.len() + chunk.remaining() > cap {
            too_large = true;
            out = Vec::new();
            continue;
        }
        while chunk.has_remaining() {
            let piece = chunk.chunk();
            let len = piece.len();
            out.extend_from_slice(piece);
            chunk.advance(len);
        }
    }
    if too_large {
        Body::TooLarge
    } else {
        Body::Read(out)
    }
}

/// A response whose body fails before anything is written: hyper drops the connection with
/// the status line still unsent, so the client sees the connection close unanswered.
fn dropped() -> Response {
    let cut = io::Error::new(io::ErrorKind::ConnectionAborted, "vault fake is down");
    warp::reply::stream(futures::stream::iter([Err::<Bytes, io::Error>(cut)])).into_response()
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// `X-Vault-Token`, else `Authorization: Bearer <token>` (Vault accepts both); empty
/// counts as absent.
fn token_of(headers: &HeaderMap) -> Option<String> {
    header(headers, "x-vault-token")
        .filter(|t| !t.is_empty())
        .or_else(|| {
            let auth = header(headers, "authorization")?;
            let (scheme, token) = auth.split_once(' ')?;
            let token = token.trim();
            (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
        })
}

/// Vault's operation for an HTTP method; `None`: 405.
fn operation(method: &Method, query: &str) -> Option<Op> {
    match method.as_str() {
        "GET" if query_param(query, "list").is_some_and(|v| v == "true") => Some(Op::List),
        "GET" => Some(Op::Read),
        "POST" | "PUT" => Some(Op::Write),
        "DELETE" => Some(Op::Delete),
        "PATCH" => Some(Op::Patch),
        "LIST" => Some(Op::List),
        _ => None,
    }
}

/// The path inside the fake's namespace, or `None` when the request addresses another
/// one. The namespace comes from `X-Vault-Namespace`, from a path prefix, or from both
/// (header `org`, path `team/secret/…` is `org/team`), as in Vault Enterprise.
fn in_namespace<'p>(
    configured: Option<&str>,
    header: Option<&str>,
    path: &'p str,
) -> Option<&'p str> {
    let want = configured.unwrap_or("").trim_matches('/');
    let given = header.unwrap_or("").trim_matches('/');
    if given == want {
        return Some(path);
    }
    let rest = if given.is_empty() {
        want
    } else {
        want.strip_prefix(given)?.strip_prefix('/')?
    };
    path.strip_prefix(rest)?.strip_prefix('/')
}

/// Where `path` (inside the namespace, decoded) leads.
fn target<'p>(state: &State, path: &'p str) -> Target<'p> {
    if let Some((mount, rest)) = state.mount_of(path) {
        return match rest.strip_prefix("data/") {
            Some(key) if !key.is_empty() && !key.ends_with('/') => Target::Data { mount, key },
            _ => Target::Kv { mount, rest },
        };
    }
    if path == "auth/token/lookup-self" {
        Target::LookupSelf
    } else if path.starts_with("sys/") || path.starts_with("auth/") {
        Target::Builtin
    } else {
        Target::Nothing
    }
}

/// Which counter the request feeds: judged on the path inside the namespace when it is
/// in it, else on the whole path.
fn kind_of(shared: &Shared, knobs: &Knobs, request: &Request) -> Kind {
    let Some(api) = request.path.strip_prefix("/v1/") else {
        return Kind::Other;
    };
    let api = percent_decode(api);
    let inside = in_namespace(
        knobs.namespace.as_deref(),
        request.namespace.as_deref(),
        &api,
    )
    .unwrap_or(&api);
    let state = shared.lock();
    match (
        target(&state, inside),
        operation(&request.method, &request.query),
    ) {
        (Target::Data { .. }, Some(Op::Read)) => Kind::Read,
        (Target::Data { .. }, Some(Op::Write)) => Kind::Write,
        _ => Kind::Other,
    }
}

fn answer(shared: &Shared, knobs: &Knobs, request: &Request) -> Answer {
    let Some(api) = request.path.strip_prefix("/v1/") else {
        return Answer::page_not_found();
    };
    let api = percent_decode(api);
    // Its own handler: no token, no namespace, answers when sealed.
    if api == "sys/health" {
        return health(knobs, &request.method);
    }
    let Some(op) = operation(&request.method, &request.query) else {
        return Answer::errors(405, &[]);
    };
    // Vault builds the request, parsing a write's body, before the core sees it.
    let mut input = Map::new();
    if op == Op::Write {
        match &request.body {
            Body::TooLarge => return Answer::errors(413, &["error parsing JSON"]),
            Body::Read(bytes) if bytes.is_empty() => {}
            Body::Read(bytes) => match serde_json::from_slice(bytes) {
                Ok(Value::Object(map)) => input = map,
                _ => return Answer::errors(400, &["error parsing JSON"]),
            },
        }
    }
    if knobs.sealed {
        return Answer::sealed();
    }
    let Some(path) = in_namespace(
        knobs.namespace.as_deref(),
        request.namespace.as_deref(),
        &api,
    ) else {
        return Answer::permission_denied();
    };
    let Some((token, policy)) = request
        .token
        .as_deref()
        .and_then(|t| knobs.tokens.get_key_value(t))
    else {
        return Answer::permission_denied();
    };
    let mut state = shared.lock();
    let target = target(&state, path);
    let capability = match op {
        Op::Read => Capability::Read,
        Op::Write => match &target {
            Target::Data { mount, key } if state.current_version(mount, key).is_some() => {
                Capability::Update
            }
            _ => Capability::Create,
        },
        Op::Delete => Capability::Delete,
        Op::Patch => Capability::Patch,
        Op::List => Capability::List,
    };
    // The `default` policy every token carries lets it look itself up.
    let by_default = matches!(target, Target::LookupSelf) && op == Op::Read;
    if !by_default && !policy.allows(path, capability) {
        return Answer::permission_denied();
    }
    let request_id = state.next_request_id();
    match target {
        Target::Data { mount, key } => match op {
            Op::Read => read(&state, &request_id, &mount, key, &request.query),
            Op::Write => write(&mut state, knobs, &request_id, &mount, key, &input),
            Op::List => Answer::errors(405, &["unsupported operation"]),
            Op::Delete | Op::Patch => {
                Answer::not_implemented(&format!("{} {path}", request.method))
            }
        },
        Target::Kv { mount, rest } => kv_other(&request_id, op, &mount, rest),
        Target::LookupSelf if op == Op::Read => {
            lookup_self(&request_id, token, policy, state.started)
        }
        Target::LookupSelf | Target::Builtin => {
            Answer::not_implemented(&format!("{} {path}", request.method))
        }
        Target::Nothing => Answer::errors(
            404,
            &[&format!(
                "no handler for route {}. route entry not found.",
                json!(path)
            )],
        ),
    }
}

/// `GET {mount}/data/{key}[?version=N]`.
fn read(state: &State, request_id: &str, mount: &str, key: &str, query: &str) -> Answer {
    let asked = match query_param(query, "version").filter(|v| !v.is_empty()) {
        None => 0,
        Some(v) => match v.trim().parse::<i64>() {
            Ok(n) => n,
            Err(_) => {
                return Answer::errors(
                    400,
                    &[&format!(
                        "Field validation failed: error converting input {v} for field \
                         \"version\": cannot parse '{v}' as int"
                    )],
                );
            }
        },
    };
    let Some(current) = state.current_version(mount, key) else {
        return Answer::errors(404, &[]);
    };
    // Zero or negative: the latest, as KV v2 reads it.
    let number = u64::try_from(asked)
        .ok()
        .filter(|n| *n > 0)
        .unwrap_or(current);
    let Some(version) = state.version(mount, key, number) else {
        return Answer::errors(404, &[]);
    };
    Answer::logical(
        200,
        request_id,
        "kv",
        json!({
            "data": version.data,
            "metadata": version_metadata(number, version.created),
        }),
        &[],
    )
}

/// `POST`/`PUT {mount}/data/{key}` with `{"data":{…},"options":{"cas":N}}`.
fn write(
    state: &mut State,
    knobs: &Knobs,
    request_id: &str,
    mount: &str,
    key: &str,
    input: &Map<String, Value>,
) -> Answer {
    let data = match input.get("data") {
        None | Some(Value::Null) => return Answer::errors(400, &["no data provided"]),
        Some(Value::Object(data)) => data.clone(),
        Some(other) => return Answer::errors(400, &[&field_error(other, "data")]),
    };
    let cas = match input.get("options") {
        None | Some(Value::Null) => None,
        Some(Value::Object(options)) => options.get("cas"),
        Some(other) => return Answer::errors(400, &[&field_error(other, "options")]),
    };
    let current = state.current_version(mount, key).unwrap_or(0);
    match cas {
        None if knobs.cas_required => {
            return Answer::errors(400, &["check-and-set parameter required for this call"]);
        }
        None => {}
        Some(cas) => match weak_int(cas) {
            None => return Answer::errors(400, &["error parsing check-and-set parameter"]),
            Some(cas) if u64::try_from(cas).ok() != Some(current) => {
                return Answer::errors(
                    400,
                    &["check-and-set parameter did not match the current version"],
                );
            }
            Some(_) => {}
        },
    }
    let written = state.write(mount, key, data);
    Answer::logical(
        200,
        request_id,
        "kv",
        version_metadata(written.version, written.created),
        &[],
    )
}

/// The framework's complaint about a field of the wrong type.
fn field_error(value: &Value, field: &str) -> String {
    format!(
        "Field validation failed: error converting input {value} for field \"{field}\": expected a map"
    )
}

/// `cas` decoded as mapstructure's `WeakDecode` does: numbers, numeric strings (empty is
/// 0), booleans (1/0) and null (0).
fn weak_int(value: &Value) -> Option<i64> {
    match value {
        Value::Null => Some(0),
        Value::Bool(b) => Some(i64::from(*b)),
        Value::Number(n) => n.as_i64(),
        Value::String(s) if s.is_empty() => Some(0),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Another path under a KV v2 mount: the endpoints the fake leaves out, or the engine's
/// "invalid path" 404 (a KV v1-style path, without `data/`).
fn kv_other(request_id: &str, op: Op, mount: &str, rest: &str) -> Answer {
    let first = rest.split('/').next().unwrap_or("");
    let has_more = rest.len() > first.len();
    let served_elsewhere = matches!(first, "metadata" | "delete" | "undelete" | "destroy");
    if (served_elsewhere && (has_more || op == Op::List))
        || (first == "subkeys" && has_more)
        || rest == "config"
    {
        return Answer::not_implemented(&format!("{mount}/{rest}"));
    }
    let warning = if served_elsewhere || rest == "data" {
        "Non-listing operations on the root of a K/V v2 mount are not supported.".to_owned()
    } else {
        let command = match op {
            Op::Read => "get",
            Op::Write => "put",
            Op::Delete => "delete",
            Op::Patch => "patch",
            Op::List => "list",
        };
        format!(
            "Invalid path for a versioned K/V secrets engine. See the API docs for the \
             appropriate API endpoints to use. If using the Vault CLI, use 'vault kv \
             {command}' for this operation."
        )
    };
    Answer::logical(404, request_id, "kv", Value::Null, &[&warning])
}

/// `GET auth/token/lookup-self`.
fn lookup_self(request_id: &str, token: &str, policy: &Policy, created: SystemTime) -> Answer {
    // A stable stand-in for the accessor (FNV-1a of the token).
    let hash = token.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let policies = if policy.is_root() {
        ["root"]
    } else {
        ["default"]
    };
    Answer::logical(
        200,
        request_id,
        "token",
        json!({
            "accessor": format!("fake{hash:020x}"),
            "creation_time": unix_secs(created),
            "creation_ttl": 0,
            "display_name": "token",
            "entity_id": "",
            "expire_time": null,
            "explicit_max_ttl": 0,
            "id": token,
            "issue_time": rfc3339_nano(created),
            "meta": null,
            "num_uses": 0,
            "orphan": true,
            "path": "auth/token/create",
            "policies": policies,
            "renewable": false,
            "ttl": 0,
            "type": "service",
        }),
        &[],
    )
}

/// `GET`/`HEAD sys/health`: 200 active, 503 sealed (no body for `HEAD`).
fn health(knobs: &Knobs, method: &Method) -> Answer {
    if *method != Method::GET && *method != Method::HEAD {
        return Answer::errors(405, &[]);
    }
    let version = if knobs.namespace.is_some() {
        format!("{VERSION}+ent")
    } else {
        VERSION.to_owned()
    };
    let body = json!({
        "initialized": true,
        "sealed": knobs.sealed,
        "standby": knobs.sealed,
        "performance_standby": false,
        "replication_performance_mode": "disabled",
        "replication_dr_mode": "disabled",
        "server_time_utc": unix_secs(SystemTime::now()),
        "version": version,
        "enterprise": knobs.namespace.is_some(),
        "cluster_name": "vault-cluster-pincer-fake",
        "cluster_id": CLUSTER_ID,
    });
    let answer = Answer::json(if knobs.sealed { 503 } else { 200 }, body);
    if *method == Method::HEAD {
        answer.without_body()
    } else {
        answer
    }
}
