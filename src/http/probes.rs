//! `/health[z]` (alive), `/startup[z]` (the tree has started once), `/ready[z]` (ready to
//! take traffic; `?verbose` adds the tree). GET and HEAD; other methods get 405. Each
//! answer is built from a registry snapshot and two atomics: no actor is asked anything.

use serde_json::json;
use warp::http::StatusCode;
use warp::{Filter, Reply};

use super::{Caller, caller, query_has};
use crate::topology::Topology;

/// The probe routes.
pub fn routes(gw: Topology) -> warp::filters::BoxedFilter<(warp::reply::Response,)> {
    let get_or_head = warp::get().or(warp::head()).unify();
    let raw_query = warp::query::raw().or(warp::any().map(String::new)).unify();

    let health = warp::path("health")
        .or(warp::path("healthz"))
        .unify()
        .and(warp::path::end())
        .and(get_or_head)
        .map(|| reply(StatusCode::OK, json!({"ok": true, "status": "live"})));

    let gw_startup = gw.clone();
    let startup = warp::path("startup")
        .or(warp::path("startupz"))
        .unify()
        .and(warp::path::end())
        .and(get_or_head)
        .map(move || {
            if gw_startup.status().is_started() {
                reply(StatusCode::OK, json!({"ok": true, "status": "started"}))
            } else {
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"ok": false, "status": "starting"}),
                )
            }
        });

    let gw_ready = gw.clone();
    let ready = warp::path("ready")
        .or(warp::path("readyz"))
        .unify()
        .and(warp::path::end())
        .and(get_or_head)
        .and(raw_query)
        .and(caller(gw))
        .map(move |query: String, who: Caller| ready(&gw_ready, &query, who));

    health.or(startup).unify().or(ready).unify().boxed()
}

fn ready(gw: &Topology, query: &str, who: Caller) -> warp::reply::Response {
    let readiness = gw.probe().readiness();
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = if readiness.ready {
        "ready"
    } else {
        "not ready"
    };
    // Remote callers without the token learn whether, not why.
    if !(who.local || who.authenticated) {
        return reply(status, json!({"ready": readiness.ready, "status": word}));
    }
    let mut body = json!({
        "ready": readiness.ready,
        "status": word,
        "failing": readiness.failing_json(),
        "uptime_ms": u64::try_from(gw.status().uptime().as_millis()).unwrap_or(u64::MAX),
        "actors": gw.registry().len(),
    });
    if query_has(query, "verbose") {
        body["tree"] = json!(gw.registry().snapshot().tree());
        // A secrets back end that fails keeps its last good values: not a readiness
        // failure, but worth seeing.
        body["secrets"] = json!({"degraded": super::secrets::degraded_json(gw)});
    }
    reply(status, body)
}

fn reply(status: StatusCode, body: serde_json::Value) -> warp::reply::Response {
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}
