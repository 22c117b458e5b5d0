//! `GET /metrics`: Prometheus text. Besides the counters kept on the message path, it
//! reads restarts per actor kind from the registry and the inbox depth from the store when
//! scraped.

use std::collections::BTreeMap;
use std::fmt::Write;

use warp::{Filter, Reply};

use pincer_core::metrics::catalog::SCRAPED;

use super::local_or_authenticated;
use crate::topology::Topology;

/// The metrics route.
pub fn routes(gw: Topology) -> warp::filters::BoxedFilter<(warp::reply::Response,)> {
    warp::path("metrics")
        .and(warp::path::end())
        .and(warp::get())
        .and(local_or_authenticated(gw.clone()))
        .then(move || render(gw.clone()))
        .boxed()
}

async fn render(gw: Topology) -> warp::reply::Response {
    let mut text = gw.catalog().registry().render();
    let snapshot = gw.registry().snapshot();
    let mut restarts: BTreeMap<&str, u64> = BTreeMap::new();
    let mut actors: BTreeMap<&str, u64> = BTreeMap::new();
    for record in &snapshot.actors {
        let kind = pincer_core::paths::kind(&record.path);
        *restarts.entry(kind).or_default() += record.restarts_total;
        *actors.entry(kind).or_default() += 1;
    }
    let [
        restarts_family,
        actors_family,
        pending_family,
        undelivered_family,
    ] = SCRAPED;
    family(&mut text, restarts_family, &restarts);
    family(&mut text, actors_family, &actors);
    if let Ok((pending, undelivered)) = gw.store().inbox_depth().await {
        family(&mut text, pending_family, &BTreeMap::from([("", pending)]));
        family(
            &mut text,
            undelivered_family,
            &BTreeMap::from([("", undelivered)]),
        );
    }
    warp::reply::with_header(text, "content-type", "text/plain; version=0.0.4").into_response()
}

/// One scrape-time family: its help and type, and a line per kind (`""`: no label).
fn family(text: &mut String, (name, kind, help): (&str, &str, &str), values: &BTreeMap<&str, u64>) {
    let _ = writeln!(text, "# HELP {name} {help}");
    let _ = writeln!(text, "# TYPE {name} {kind}");
    for (label, n) in values {
        if label.is_empty() {
            let _ = writeln!(text, "{name} {n}");
        } else {
            let _ = writeln!(text, "{name}{{kind=\"{label}\"}} {n}");
        }
    }
}
