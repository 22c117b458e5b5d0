//! The admin API (bearer token): the tree, killing and stopping actors by path (the root
//! and the port's actor only with `"force": true`), config reload, sessions and their
//! transcripts. The CLI is its main client.

use std::time::Duration;

use pincer_actors::ControlError;
use serde::Deserialize;
use serde_json::{Value, json};
use warp::http::StatusCode;
use warp::{Filter, Reply};

use super::{ApiError, authenticated, percent_decode, query_param};
use crate::config_watcher::ConfigMsg;
use crate::topology::Topology;
use pincer_store::{Rest, SessionFilter, SessionRow};

/// Sessions a page lists unless `limit` says otherwise.
const PAGE_DEFAULT: usize = 100;

/// Sessions a page lists at most: a page is built in memory and sent at once.
const PAGE_MAX: usize = 1000;

/// How long a config reload may take before the caller is told it timed out.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Deserialize)]
struct PathBody {
    path: String,
    /// Kill or stop a protected actor all the same.
    #[serde(default)]
    force: bool,
}

/// Why the actor at `path` is not killed or stopped without `"force": true`: the root
/// (its end is the process's) and the port's actor (its end drops every connection, this
/// request's too, and it is what a chaos run would need to come back).
pub fn protected(path: &str) -> Option<&'static str> {
    if path == pincer_core::paths::ROOT {
        Some("is the root of the tree: killing or stopping it ends the gateway process")
    } else if path == pincer_core::paths::top("health") {
        Some(
            "serves the gateway port: killing or stopping it drops every connection, this one included",
        )
    } else {
        None
    }
}

/// The admin routes.
pub fn routes(gw: Topology) -> warp::filters::BoxedFilter<(warp::reply::Response,)> {
    let admin = warp::path("admin").and(authenticated(gw.clone()));
    let with_gw = {
        let gw = gw.clone();
        warp::any().map(move || gw.clone())
    };
    let body = warp::body::content_length_limit(64 * 1024).and(warp::body::json::<PathBody>());

    let tree = admin
        .clone()
        .and(warp::path("tree"))
        .and(warp::path::end())
        .and(warp::get())
        .and(with_gw.clone())
        .map(|gw: Topology| {
            let snapshot = gw.registry().snapshot();
            let readiness = gw.probe().readiness_of(&snapshot);
            ok(json!({
                "ready": readiness.ready,
                "failing": readiness.failing_json(),
                "version": snapshot.version,
                "tree": snapshot.tree(),
            }))
        });

    let kill = admin
        .clone()
        .and(warp::path!("actors" / "kill"))
        .and(warp::post())
        .and(with_gw.clone())
        .and(body)
        .map(|gw: Topology, b: PathBody| {
            guarded(&b, "kill", "killed", || gw.registry().kill(&b.path))
        });

    let stop = admin
        .clone()
        .and(warp::path!("actors" / "stop"))
        .and(warp::post())
        .and(with_gw.clone())
        .and(body)
        .map(|gw: Topology, b: PathBody| {
            guarded(&b, "stop", "stopped", || gw.registry().stop(&b.path))
        });

    let reload = admin
        .clone()
        .and(warp::path!("config" / "reload"))
        .and(warp::post())
        .and(with_gw.clone())
        .then(reload_config);

    let sessions = admin
        .clone()
        .and(warp::path("sessions"))
        .and(warp::path::end())
        .and(warp::get())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(with_gw.clone())
        .then(list_sessions);

    let session = admin
        .clone()
        .and(warp::path("sessions"))
        .and(warp::path::param::<String>())
        .and(warp::path::end())
        .and(warp::get())
        .and(with_gw)
        .then(show_session);

    tree.or(kill)
        .unify()
        .or(stop)
        .unify()
        .or(reload)
        .unify()
        .or(sessions)
        .unify()
        .or(session)
        .unify()
        .boxed()
}

fn ok(body: Value) -> warp::reply::Response {
    warp::reply::json(&body).into_response()
}

/// Runs `act` on the actor `body` names, unless it is [`protected`] and not forced (409).
fn guarded(
    body: &PathBody,
    verb: &str,
    done: &str,
    act: impl FnOnce() -> Result<(), ControlError>,
) -> warp::reply::Response {
    match protected(&body.path) {
        Some(why) if !body.force => ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "refusing to {verb} `{}`: it {why}; send \"force\": true (`pincer chaos kill --force`) to do it anyway",
                body.path
            ),
            "invalid_request_error",
            "protected_actor",
        )
        .into_reply(),
        _ => control(&body.path, done, act()),
    }
}

fn control(path: &str, done: &str, result: Result<(), ControlError>) -> warp::reply::Response {
    match result {
        Ok(()) => ok(json!({"ok": true, "path": path, "action": done})),
        Err(e @ ControlError::UnknownPath(_)) => {
            ApiError::not_found(e.to_string(), "unknown_path").into_reply()
        }
        Err(e @ ControlError::NotRunning { .. }) => ApiError::new(
            StatusCode::CONFLICT,
            e.to_string(),
            "invalid_request_error",
            "not_running",
        )
        .into_reply(),
    }
}

async fn reload_config(gw: Topology) -> warp::reply::Response {
    let Some(config) = gw.config_watcher().get() else {
        return ApiError::unavailable("the config actor is restarting").into_reply();
    };
    let outcome = config
        .call(|reply| ConfigMsg::Reload(Some(reply)), Some(RELOAD_TIMEOUT))
        .await;
    match outcome {
        Ok(ractor::rpc::CallResult::Success(Ok(outcome))) => {
            ok(json!({"ok": true, "reload": outcome}))
        }
        Ok(ractor::rpc::CallResult::Success(Err(error))) => ApiError::bad_request(format!(
            "config rejected, the config in force stays: {error}"
        ))
        .into_reply(),
        _ => ApiError::unavailable("the config actor did not answer").into_reply(),
    }
}

fn session_json(gw: &Topology, row: &SessionRow, rest: Option<Rest>, now: u64) -> Value {
    let running = gw.accounts().get(&row.account).is_some_and(|a| {
        a.sessions
            .get(&pincer_core::session_key::child_id(&row.key))
            .is_some()
    });
    let expired = crate::session::expired(row, now);
    // What the store says, corrected by what runs: a row is written live a moment after
    // its actor starts, and one whose time passed is ended even before the keeper says so.
    let state = match rest {
        _ if running => "live",
        _ if expired => "ended",
        // Live in the store, no actor: its instance died; it rests until its next message.
        Some(Rest::Live) | None => "hibernated",
        Some(rest) => rest.as_str(),
    };
    json!({
        "key": row.key,
        "agent": row.agent,
        "channel": row.channel,
        "account": row.account,
        "created_at": row.created_at_ms,
        "last_active": row.last_active_ms,
        "idle_ms": row.idle_ms,
        "max_age_ms": row.max_age_ms,
        "turns": row.turns,
        "state": state,
        "running": running,
        "expired": expired,
    })
}

/// A page request of `/admin/sessions`: `limit`, `cursor`, and the filters `agent`,
/// `channel`, `account`, `prefix` and `state`.
fn page_request(query: &str) -> Result<(SessionFilter, Option<String>, usize), ApiError> {
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let name = pair.split_once('=').map_or(pair, |(k, _)| k);
        if ![
            "limit", "cursor", "agent", "channel", "account", "prefix", "state",
        ]
        .contains(&name)
        {
            return Err(ApiError::param(
                name,
                "unsupported_parameter",
                format!(
                    "unknown parameter `{name}`; /admin/sessions takes limit, cursor, agent, channel, account, prefix and state"
                ),
            ));
        }
    }
    let limit = match query_param(query, "limit") {
        None => PAGE_DEFAULT,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=PAGE_MAX).contains(&n) => n,
            _ => {
                return Err(ApiError::param(
                    "limit",
                    "invalid_value",
                    format!("limit `{text}` is not a number from 1 to {PAGE_MAX}"),
                ));
            }
        },
    };
    let cursor = match query_param(query, "cursor").filter(|c| !c.is_empty()) {
        None => None,
        Some(text) => Some(decode_cursor(&text).ok_or_else(|| {
            ApiError::param(
                "cursor",
                "invalid_value",
                format!("cursor `{text}` is not one this gateway gave (pass `next_cursor` of the previous page)"),
            )
        })?),
    };
    let state = match query_param(query, "state") {
        None => None,
        Some(text) => Some(Rest::parse(&text).ok_or_else(|| {
            ApiError::param(
                "state",
                "invalid_value",
                format!("state `{text}` is not one of live, hibernated, ended"),
            )
        })?),
    };
    let filter = SessionFilter {
        prefix: query_param(query, "prefix").filter(|p| !p.is_empty()),
        agent: query_param(query, "agent").filter(|a| !a.is_empty()),
        channel: query_param(query, "channel").filter(|c| !c.is_empty()),
        account: query_param(query, "account").filter(|a| !a.is_empty()),
        state,
    };
    Ok((filter, cursor, limit))
}

/// The cursor of a page that ends at `key`: opaque to clients (hex of the key).
fn encode_cursor(key: &str) -> String {
    key.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_cursor(text: &str) -> Option<String> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect();
    String::from_utf8(bytes?).ok()
}

/// `GET /admin/sessions`: one page of sessions in key order, with the cursor of the next
/// page (`null` at the end) and the counts of live and hibernated sessions.
async fn list_sessions(query: String, gw: Topology) -> warp::reply::Response {
    let (filter, cursor, limit) = match page_request(&query) {
        Ok(request) => request,
        Err(error) => return error.into_reply(),
    };
    // One more than the page, to know whether another follows.
    match gw.store().sessions_page(filter, cursor, limit + 1).await {
        Ok(mut rows) => {
            let now = pincer_core::now_ms();
            let more = rows.len() > limit;
            rows.truncate(limit);
            let next = more
                .then(|| rows.last().map(|(r, _)| encode_cursor(&r.key)))
                .flatten();
            let sessions: Vec<Value> = rows
                .iter()
                .map(|(r, rest)| session_json(&gw, r, Some(*rest), now))
                .collect();
            let accounts = gw.accounts().all();
            let live: usize = accounts.iter().map(|a| a.sessions.len()).sum();
            let hibernated: u64 = accounts.iter().map(|a| a.keeper.hibernated()).sum();
            ok(json!({
                "sessions": sessions,
                "next_cursor": next,
                "limit": limit,
                "live": live,
                "hibernated": hibernated,
            }))
        }
        Err(e) => ApiError::unavailable(e.to_string()).into_reply(),
    }
}

async fn show_session(key: String, gw: Topology) -> warp::reply::Response {
    let key = percent_decode(&key);
    let store = gw.store();
    let row = match store.session(&key).await {
        Ok(Some(row)) => row,
        Ok(None) => {
            return ApiError::not_found(format!("no session `{key}`"), "unknown_session")
                .into_reply();
        }
        Err(e) => return ApiError::unavailable(e.to_string()).into_reply(),
    };
    let transcript = match store.transcript(&key).await {
        Ok(t) => t,
        Err(e) => return ApiError::unavailable(e.to_string()).into_reply(),
    };
    let rest = store
        .session_at_rest(&key)
        .await
        .ok()
        .flatten()
        .map(|(_, r)| r);
    let mut body = session_json(&gw, &row, rest, pincer_core::now_ms());
    body["context_from"] = json!(row.context_from);
    body["summary_seq"] = json!(row.summary_seq);
    body["transcript"] = transcript
        .into_iter()
        .map(|(seq, e)| {
            let mut entry =
                json!({"seq": seq, "role": e.role, "content": e.content, "at": e.at_ms});
            if let Some(inbox) = e.inbox_id {
                entry["inbox_id"] = json!(inbox);
            }
            if let Some(thinking) = e.thinking {
                entry["thinking"] = json!(thinking);
            }
            if let Some(through) = e.summary_through {
                entry["summary_through"] = json!(through);
            }
            if let Some(outcome) = e.outcome {
                entry["outcome"] = json!(outcome);
            }
            if let Some(tool) = e.tool {
                entry["tool"] = json!({
                    "name": tool.name,
                    "call_id": tool.call_id,
                    "arguments": tool.arguments,
                    "ok": tool.ok,
                    "ms": tool.ms,
                });
            }
            entry
        })
        .collect();
    ok(body)
}
