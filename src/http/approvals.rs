//! Standing approvals (`/approve <id> always`): `GET /admin/approvals[?agent=<id>]` lists
//! them, `POST /admin/approvals/revoke {"agent", "key", "tool"?}` withdraws one, after
//! which its tool asks again.

use serde::Deserialize;
use serde_json::json;
use warp::{Filter, Reply};

use super::{ApiError, authenticated, query_param};
use crate::topology::Topology;

/// The most approvals one list returns (a person approves a binary at a time: a real
/// gateway has dozens).
const MAX_LISTED: usize = 1000;

/// The body of a revoke.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    agent: String,
    key: String,
    /// Default `exec`, the one tool that asks today.
    #[serde(default = "default_tool")]
    tool: String,
}

fn default_tool() -> String {
    "exec".into()
}

/// The approval routes.
pub fn routes(gw: Topology) -> warp::filters::BoxedFilter<(warp::reply::Response,)> {
    let with_gw = {
        let gw = gw.clone();
        warp::any().map(move || gw.clone())
    };
    let admin = warp::path("admin").and(authenticated(gw));
    let list = admin
        .clone()
        .and(warp::path("approvals"))
        .and(warp::path::end())
        .and(warp::get())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(with_gw.clone())
        .then(list);
    let revoke = admin
        .and(warp::path!("approvals" / "revoke"))
        .and(warp::post())
        .and(warp::body::content_length_limit(4096))
        .and(warp::body::json::<RevokeBody>())
        .and(with_gw)
        .then(revoke);
    list.or(revoke).unify().boxed()
}

async fn list(query: String, gw: Topology) -> warp::reply::Response {
    let agent = query_param(&query, "agent").filter(|a| !a.is_empty());
    match gw.store().approvals(agent, MAX_LISTED + 1).await {
        Ok(mut all) => {
            let more = all.len() > MAX_LISTED;
            all.truncate(MAX_LISTED);
            warp::reply::json(&json!({ "approvals": all, "more": more })).into_response()
        }
        Err(e) => ApiError::unavailable(e.to_string()).into_reply(),
    }
}

async fn revoke(body: RevokeBody, gw: Topology) -> warp::reply::Response {
    match gw.store().revoke(&body.agent, &body.tool, &body.key).await {
        Ok(true) => {
            tracing::info!(agent = %body.agent, tool = %body.tool, key = %body.key, "Standing approval revoked.");
            warp::reply::json(&json!({
                "ok": true,
                "revoked": {"agent": body.agent, "tool": body.tool, "key": body.key},
            }))
            .into_response()
        }
        Ok(false) => ApiError::not_found(
            format!(
                "agent `{}` has no standing approval for {} `{}`",
                body.agent, body.tool, body.key
            ),
            "unknown_approval",
        )
        .into_reply(),
        Err(e) => ApiError::unavailable(e.to_string()).into_reply(),
    }
}
