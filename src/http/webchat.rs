//! The web chat: the page at `/` and its WebSocket at `/ws`, handed to the web link. The
//! socket takes loopback callers and the token (`?token=` too), and refuses pages of
//! other origins than the gateway's own and `gateway.allowedOrigins` ([`super::hosts`]).

use warp::http::StatusCode;
use warp::{Filter, Reply};

use super::{ApiError, Caller, hosts, socket_caller};
use crate::channel::web::{MAX_FRAME_BYTES, WebLinkMsg};
use crate::topology::Topology;

/// The page, compiled in.
const PAGE: &str = include_str!("webchat.html");

/// The web chat routes.
pub fn routes(gw: Topology) -> warp::filters::BoxedFilter<(warp::reply::Response,)> {
    let page = warp::path::end().and(warp::get()).map(|| {
        let reply = warp::reply::html(PAGE);
        warp::reply::with_header(reply, "cache-control", "no-cache").into_response()
    });
    let socket = warp::path("ws")
        .and(warp::path::end())
        .and(socket_caller(gw.clone()))
        .and(warp::host::optional())
        .and(warp::header::optional::<String>("origin"))
        .and(warp::ws())
        .map(move |who: Caller, host: Option<warp::host::Authority>, origin: Option<String>, ws: warp::ws::Ws| {
            // A page of another site must not chat as the browser's user: the token does
            // not change that (it may be the page that put it there).
            if let Some(origin) = origin
                && !hosts::origin_allowed(&origin, host.as_ref(), &gw.config().gateway.allowed_origins)
            {
                return ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!(
                        "a page of origin `{origin}` may not open the web chat's socket: only the gateway's own origin ({}) and those in gateway.allowedOrigins may",
                        hosts::own_origin(host.as_ref())
                    ),
                    "permission_error",
                    "origin_not_allowed",
                )
                .into_reply();
            }
            if !(who.local || who.authenticated) {
                return ApiError::unauthorized().into_reply();
            }
            let path = pincer_core::paths::link("web", "web");
            let Some(link) = gw.link::<WebLinkMsg>("web", "web").get() else {
                return ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("channel link `{path}` is restarting"),
                    "server_error",
                    "unavailable",
                )
                .into_reply();
            };
            ws.max_message_size(MAX_FRAME_BYTES)
                .max_frame_size(MAX_FRAME_BYTES)
                .on_upgrade(move |socket| async move {
                    // A link that died meanwhile drops the socket; the page reconnects.
                    let _ = link.cast(WebLinkMsg::Connected(Box::new(socket)));
                })
                .into_response()
        });
    page.or(socket).unify().boxed()
}
