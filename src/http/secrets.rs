//! Admin views of secrets (bearer token): `GET /admin/secrets` (every ref with its state,
//! never a value), `POST /admin/secrets/reload`, `GET /admin/secrets/access?since=MS`
//! (the access trail).

use std::collections::HashMap;

use serde_json::{Value, json};
use warp::{Filter, Reply};

use super::{ApiError, authenticated};
use crate::topology::Topology;
use pincer_config::SecretValue;
use pincer_secrets::refs;

/// Most trail rows one call returns.
const MAX_ROWS: usize = 10_000;

/// The secrets routes.
pub fn routes(gw: Topology) -> warp::filters::BoxedFilter<(warp::reply::Response,)> {
    let with_gw = {
        let gw = gw.clone();
        warp::any().map(move || gw.clone())
    };
    let admin = warp::path("admin")
        .and(warp::path("secrets"))
        .and(authenticated(gw));
    let status = admin
        .clone()
        .and(warp::path::end())
        .and(warp::get())
        .and(with_gw.clone())
        .map(|gw: Topology| warp::reply::json(&status_json(&gw)).into_response());
    let reload = admin
        .clone()
        .and(warp::path("reload"))
        .and(warp::path::end())
        .and(warp::post())
        .and(with_gw.clone())
        .then(|gw: Topology| async move {
            match crate::secrets::reload(&gw.secrets_watcher()).await {
                Ok(report) => {
                    warp::reply::json(&json!({"ok": true, "report": report})).into_response()
                }
                Err(why) => ApiError::unavailable(why).into_reply(),
            }
        });
    let access = admin
        .and(warp::path("access"))
        .and(warp::path::end())
        .and(warp::get())
        .and(warp::query::<HashMap<String, String>>())
        .and(with_gw)
        .then(|query: HashMap<String, String>, gw: Topology| async move {
            let since = match query.get("since").map(|s| s.parse::<u64>()) {
                None => 0,
                Some(Ok(ms)) => ms,
                Some(Err(_)) => {
                    return ApiError::bad_request("`since` must be milliseconds since the epoch")
                        .into_reply();
                }
            };
            match gw.store().access_since(since, MAX_ROWS).await {
                Ok(rows) => warp::reply::json(&json!({"access": rows})).into_response(),
                Err(e) => ApiError::unavailable(e.to_string()).into_reply(),
            }
        });
    status.or(reload).unify().or(access).unify().boxed()
}

/// Every secret-bearing config value: where, whose, which ref, its state.
pub fn status_json(gw: &Topology) -> Value {
    let config = gw.config();
    let snapshot = gw.secrets().snapshot();
    let uses: Vec<Value> = refs::uses(&config)
        .into_iter()
        .map(|u| {
            let (reference, state) = match &u.value {
                SecretValue::Plain(_) => (Value::Null, json!("plaintext")),
                SecretValue::Ref(r) => match refs::settle(r, &config) {
                    Err(why) => (json!(r.to_string()), json!({"unresolved": why})),
                    Ok(key) => {
                        let state = match (snapshot.values.get(&key), snapshot.failures.get(&key)) {
                            (Some(_), Some(why)) => json!({"stale": why}),
                            (Some(_), None) => json!("resolved"),
                            (None, Some(why)) => json!({"unresolved": why}),
                            (None, None) => json!("pending"),
                        };
                        (json!(key.to_string()), state)
                    }
                },
            };
            json!({"key": u.key, "owner": u.owner, "ref": reference, "state": state})
        })
        .collect();
    json!({
        "generation": snapshot.generation,
        "secrets": uses,
        "degraded": degraded_json(gw),
    })
}

/// Back ends failing as a whole (their last good values in use), for `/readyz?verbose`.
pub fn degraded_json(gw: &Topology) -> Value {
    let snapshot = gw.secrets().snapshot();
    Value::Array(
        snapshot
            .degraded
            .iter()
            .map(|(alias, why)| json!({"backend": alias, "reason": why}))
            .collect(),
    )
}
