//! The web chat: the page at `/`, its style sheet and scripts under `/webchat/`
//! ([`assets`]), and its WebSocket at `/ws`, handed to the web link. Every file goes out
//! with a strict Content-Security-Policy ([`CSP`]: scripts, styles and connections of the
//! gateway's own only, nothing inline), gzipped when the browser takes it. The socket takes
//! loopback callers and the token (`?token=` too), and refuses pages of other origins than
//! the gateway's own and `gateway.allowedOrigins` ([`super::hosts`]).

mod assets;

use warp::http::{HeaderValue, StatusCode, header};
use warp::{Filter, Reply};

use super::{ApiError, Caller, hosts, socket_caller};
use crate::channel::web::{MAX_FRAME_BYTES, WebLinkMsg};
use crate::topology::Topology;

/// What the page may load and do. Nothing inline runs (a model's or a person's text that
/// slipped into the page as markup could not execute), nothing loads from elsewhere, the
/// socket goes to the gateway only (`'self'` covers `ws:`/`wss:` to the same host in
/// current browsers), and no other site may frame the page.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// Files named by their digest never change: a browser keeps them a year.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The web chat routes.
pub fn routes(gw: Topology) -> warp::filters::BoxedFilter<(warp::reply::Response,)> {
    let accept = warp::header::optional::<String>("accept-encoding");
    let page = warp::path::end()
        .and(warp::get())
        .and(accept)
        .and(warp::header::optional::<String>("if-none-match"))
        .map(|accept: Option<String>, seen: Option<String>| {
            let page = &assets::assets().page;
            // The page is asked for again each time (it names the current files).
            serve(page, accept.as_deref(), seen.as_deref(), "no-cache")
        });
    let files = warp::path("webchat")
        .and(warp::path::param::<String>())
        .and(warp::path::end())
        .and(warp::get())
        .and(accept)
        .and(warp::header::optional::<String>("if-none-match"))
        .map(
            |name: String, accept: Option<String>, seen: Option<String>| {
                let path = format!("/webchat/{name}");
                match assets::assets().files.iter().find(|a| a.path == path) {
                    Some(file) => serve(file, accept.as_deref(), seen.as_deref(), IMMUTABLE),
                    None => ApiError::new(
                        StatusCode::NOT_FOUND,
                        format!("no web chat file `{path}` (the page names its files; reload it)"),
                        "invalid_request_error",
                        "not_found",
                    )
                    .into_reply(),
                }
            },
        );
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
    page.or(files).unify().or(socket).unify().boxed()
}

/// One file, gzipped if the browser takes it, or 304 when it has this one already.
fn serve(
    asset: &assets::Asset,
    accept: Option<&str>,
    seen: Option<&str>,
    cache: &'static str,
) -> warp::reply::Response {
    let fresh = seen.is_some_and(|tags| tags.split(',').any(|t| t.trim() == asset.etag));
    let gzip = assets::accepts_gzip(accept);
    let mut response = if fresh {
        let mut r = warp::reply::Response::new(Vec::new().into());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else if gzip {
        let mut r = warp::reply::Response::new(asset.gzip.clone().into());
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        warp::reply::Response::new(asset.plain.clone().into())
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if let Ok(etag) = HeaderValue::from_str(&asset.etag) {
        headers.insert(header::ETAG, etag);
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}
