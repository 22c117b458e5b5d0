//! The admin API (bearer token): the tree, killing and stopping actors by path (the root
//! and the port's actor only with `"force": true`), config reload, sessions and their
//! transcripts. The CLI is its main client.

use std::time::Duration;

use pincer_actors::ControlError;
use serde::Deserialize;
use serde_json::{Value, json};
use warp::http::StatusCode;
use warp::{Filter, Reply};

use super::{ApiError, authenticated, percent_decode};
use crate::config_watcher::ConfigMsg;
use crate::topology::Topology;
use pincer_store::SessionRow;

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

fn session_json(gw: &Topology, row: &SessionRow, now: u64) -> Value {
    let running = gw.accounts().get(&row.account).is_some_and(|a| {
        a.sessions
            .get(&pincer_core::session_key::child_id(&row.key))
            .is_some()
    });
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
        "running": running,
        "expired": crate::session::expired(row, now),
    })
}

async fn list_sessions(gw: Topology) -> warp::reply::Response {
    match gw.store().sessions().await {
        Ok(rows) => {
            let now = pincer_core::now_ms();
            let sessions: Vec<Value> = rows.iter().map(|r| session_json(&gw, r, now)).collect();
            ok(json!({"sessions": sessions}))
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
    let mut body = session_json(&gw, &row, pincer_core::now_ms());
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
