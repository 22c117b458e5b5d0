//! `GET /metrics`: Prometheus text. Besides the counters kept on the message path, it
//! reads restarts per actor kind from the registry and the inbox depth from the store when
//! scraped.

use std::collections::BTreeMap;
use std::fmt::Write;

use warp::{Filter, Reply};

use super::local_or_authenticated;
use crate::gateway::Gateway;

/// The metrics route.
pub fn routes(gw: Gateway) -> warp::filters::BoxedFilter<(warp::reply::Response,)> {
    warp::path("metrics")
        .and(warp::path::end())
        .and(warp::get())
        .and(local_or_authenticated(gw.clone()))
        .then(move || render(gw.clone()))
        .boxed()
}

async fn render(gw: Gateway) -> warp::reply::Response {
    let mut text = gw.metrics().render();
    let snapshot = gw.registry().snapshot();
    let mut restarts: BTreeMap<&str, u64> = BTreeMap::new();
    let mut actors: BTreeMap<&str, u64> = BTreeMap::new();
    for record in &snapshot.actors {
        let kind = pincer_core::paths::kind(&record.path);
        *restarts.entry(kind).or_default() += record.restarts_total;
        *actors.entry(kind).or_default() += 1;
    }
    let _ = writeln!(
        text,
        "# HELP pincer_actor_restarts_total Restarts, per actor kind."
    );
    let _ = writeln!(text, "# TYPE pincer_actor_restarts_total counter");
    for (kind, n) in &restarts {
        let _ = writeln!(text, "pincer_actor_restarts_total{{kind=\"{kind}\"}} {n}");
    }
    let _ = writeln!(
        text,
        "# HELP pincer_actors Actors in the registry, per kind."
    );
    let _ = writeln!(text, "# TYPE pincer_actors gauge");
    for (kind, n) in &actors {
        let _ = writeln!(text, "pincer_actors{{kind=\"{kind}\"}} {n}");
    }
    if let Ok((pending, undelivered)) = gw.store().inbox_depth().await {
        let _ = writeln!(
            text,
            "# HELP pincer_inbox_pending Inbox entries waiting for a reply."
        );
        let _ = writeln!(text, "# TYPE pincer_inbox_pending gauge");
        let _ = writeln!(text, "pincer_inbox_pending {pending}");
        let _ = writeln!(
            text,
            "# HELP pincer_inbox_undelivered Replies not yet handed to their channel."
        );
        let _ = writeln!(text, "# TYPE pincer_inbox_undelivered gauge");
        let _ = writeln!(text, "pincer_inbox_undelivered {undelivered}");
    }
    warp::reply::with_header(text, "content-type", "text/plain; version=0.0.4").into_response()
}
