//! Channel routes: the Telegram webhook (`POST /telegram/<account>`, checked by its secret
//! header, not the gateway token), and the admin views of accounts and DM pairings
//! (`GET /admin/channels`, `GET /admin/pairing`, `POST /admin/pairing/approve`).

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use warp::http::StatusCode;
use warp::{Filter, Reply};

use super::{ApiError, authenticated};
use crate::channel::telegram::{TelegramLinkMsg, WebhookError};
use crate::topology::Topology;
use pincer_channels::pairing::{self, PairingError};

/// Largest update Telegram may post (real ones are a few kB).
const MAX_UPDATE_BYTES: u64 = 1024 * 1024;

/// How long a webhook POST waits for its update to be durable.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Deserialize)]
struct CodeBody {
    code: String,
}

/// The channel routes.
pub fn routes(gw: Topology) -> warp::filters::BoxedFilter<(warp::reply::Response,)> {
    let with_gw = {
        let gw = gw.clone();
        warp::any().map(move || gw.clone())
    };
    let webhook = warp::path!("telegram" / String)
        .and(warp::post())
        .and(warp::header::optional::<String>(
            "x-telegram-bot-api-secret-token",
        ))
        .and(warp::body::content_length_limit(MAX_UPDATE_BYTES))
        .and(warp::body::bytes())
        .and(with_gw.clone())
        .then(telegram_webhook);

    let admin = warp::path("admin").and(authenticated(gw));
    let channels = admin
        .clone()
        .and(warp::path("channels"))
        .and(warp::path::end())
        .and(warp::get())
        .and(with_gw.clone())
        .map(|gw: Topology| warp::reply::json(&channels_json(&gw)).into_response());
    let pairings = admin
        .clone()
        .and(warp::path("pairing"))
        .and(warp::path::end())
        .and(warp::get())
        .and(with_gw.clone())
        .then(list_pairings);
    let approve = admin
        .and(warp::path!("pairing" / "approve"))
        .and(warp::post())
        .and(warp::body::content_length_limit(4096))
        .and(warp::body::json::<CodeBody>())
        .and(with_gw)
        .then(approve_pairing);
    webhook
        .or(channels)
        .unify()
        .or(pairings)
        .unify()
        .or(approve)
        .unify()
        .boxed()
}

async fn telegram_webhook(
    account: String,
    secret: Option<String>,
    body: bytes::Bytes,
    gw: Topology,
) -> warp::reply::Response {
    let update: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return ApiError::bad_request("the body is not a Telegram update (a JSON object)")
                .into_reply();
        }
    };
    let Some(link) = gw.link::<TelegramLinkMsg>("telegram", &account).get() else {
        return ApiError::unavailable(format!("telegram account `{account}` is not running"))
            .into_reply();
    };
    let asked = link
        .call(
            |reply| TelegramLinkMsg::Webhook {
                secret,
                update: Box::new(update),
                reply,
            },
            Some(WEBHOOK_TIMEOUT),
        )
        .await;
    match asked {
        Ok(ractor::rpc::CallResult::Success(Ok(()))) => {
            warp::reply::json(&json!({"ok": true})).into_response()
        }
        Ok(ractor::rpc::CallResult::Success(Err(WebhookError::Unauthorized))) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "wrong or missing X-Telegram-Bot-Api-Secret-Token",
            "authentication_error",
            "bad_webhook_secret",
        )
        .into_reply(),
        Ok(ractor::rpc::CallResult::Success(Err(error))) => {
            ApiError::unavailable(error.to_string()).into_reply()
        }
        _ => ApiError::unavailable(format!("telegram account `{account}` did not answer"))
            .into_reply(),
    }
}

/// Every account with its link's status.
pub fn channels_json(gw: &Topology) -> Value {
    let config = gw.config();
    let statuses = gw.links().statuses();
    let accounts: Vec<Value> = config
        .accounts()
        .into_iter()
        .map(|(kind, id)| {
            let local = matches!(kind, "web" | "http");
            let path = pincer_core::paths::link(kind, id);
            let running = gw
                .registry()
                .get(&path)
                .is_some_and(|r| r.state == pincer_actors::ActorState::Running);
            let status = statuses.get(id).cloned().unwrap_or_default();
            json!({
                "account": id,
                "type": kind,
                // Local channels are served on the gateway port: up when their link is.
                "connected": if local { running } else { running && status.connected },
                "since": status.since_ms,
                "mode": status.mode,
                "last_error": status.last_error,
                "fatal": status.fatal,
                "link": path,
            })
        })
        .collect();
    json!({ "accounts": accounts })
}

async fn list_pairings(gw: Topology) -> warp::reply::Response {
    match pairing::list(gw.store()).await {
        Ok(all) => warp::reply::json(&json!({ "pairings": all })).into_response(),
        Err(e) => ApiError::unavailable(e.to_string()).into_reply(),
    }
}

async fn approve_pairing(body: CodeBody, gw: Topology) -> warp::reply::Response {
    match pairing::approve(gw.store(), &body.code).await {
        Ok(p) => warp::reply::json(&json!({ "ok": true, "pairing": p })).into_response(),
        Err(e @ PairingError::UnknownCode(_)) => {
            ApiError::not_found(e.to_string(), "unknown_code").into_reply()
        }
        Err(e) => ApiError::unavailable(e.to_string()).into_reply(),
    }
}
