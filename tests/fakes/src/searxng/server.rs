//! The HTTP side, in SearXNG's order: route, the limiter, merge form and query fields,
//! pick the format (403 when not enabled), require `q`, check the parameters, answer. The
//! server itself (thread, runtime, shutdown) is [`crate::serve`]'s.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use warp::Filter;
use warp::http::{HeaderMap, Method};
use warp::reply::Response;

use super::wire::{
    default_results, error_json, flask_error_html, index_html, results_html, search_json, validate,
};
use super::{Recorded, SEARCH_PATH, Shared};
use crate::serve::{Routes, form_pairs, header_map, json_response, raw_query, text_response};

/// Flask's HTML content type.
const HTML: &str = "text/html; charset=utf-8";

/// One filter that takes every request; routing is done in [`answer`].
pub(super) fn routes(shared: Arc<Shared>) -> impl Routes {
    warp::method()
        .and(warp::path::full())
        .and(raw_query())
        .and(warp::header::headers_cloned())
        .and(warp::body::bytes())
        .then(
            move |method: Method,
                  path: warp::path::FullPath,
                  query: String,
                  headers: HeaderMap,
                  body: Bytes| {
                let shared = Arc::clone(&shared);
                let path = path.as_str().to_owned();
                async move { handle(&shared, &method, path, query, &headers, &body).await }
            },
        )
}

/// An answer before it becomes a response.
#[derive(Debug)]
enum Answer {
    Json(u16, serde_json::Value),
    Html(u16, String),
    /// The limiter's plain "Too Many Requests".
    TooMany,
}

async fn handle(
    shared: &Shared,
    method: &Method,
    path: String,
    query: String,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let headers = header_map(headers);
    let is_form = headers
        .get("content-type")
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    let form = if *method == Method::POST && is_form {
        form_pairs(&String::from_utf8_lossy(body))
    } else {
        Vec::new()
    };
    let query_pairs = form_pairs(&query);
    // Flask's `form.items()` and `args.items()` give each name's first value; SearXNG adds
    // the query string's fields the form lacks.
    let mut params = BTreeMap::new();
    for (k, v) in form.iter().chain(&query_pairs) {
        params.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let record = Recorded {
        method: method.as_str().to_owned(),
        path,
        query,
        query_pairs,
        form,
        params,
        headers,
        status: None,
        at: Instant::now(),
    };
    let latency = shared.lock().knobs.latency;
    let index = shared.record(record.clone());
    if !latency.is_zero() {
        // A client that gives up meanwhile leaves the record without a status.
        tokio::time::sleep(latency).await;
    }
    let answer = answer(shared, method, &record);
    let response = match answer {
        Answer::Json(status, body) => json_response(status, &body),
        Answer::Html(status, page) => text_response(status, HTML, page),
        Answer::TooMany => text_response(429, HTML, "Too Many Requests".to_owned()),
    };
    shared.finish(index, response.status().as_u16());
    response
}

fn answer(shared: &Shared, method: &Method, request: &Recorded) -> Answer {
    if request.path != SEARCH_PATH {
        return Answer::Html(404, flask_error_html(404));
    }
    if *method != Method::GET && *method != Method::POST {
        return Answer::Html(405, flask_error_html(405));
    }
    let knobs = {
        let mut state = shared.lock();
        let knobs = state.knobs.clone();
        let k = &mut state.knobs;
        k.rate_limited_requests = k.rate_limited_requests.saturating_sub(1);
        knobs
    };
    if knobs.rate_limited_requests > 0 {
        return Answer::TooMany;
    }
    // SearXNG's output formats; anything else falls back to `html`.
    let format = request
        .param("format")
        .filter(|f| matches!(*f, "json" | "csv" | "rss"))
        .unwrap_or("html");
    let enabled = match format {
        "html" => true,
        "json" => !knobs.json_disabled,
        _ => false,
    };
    if !enabled {
        return Answer::Html(403, flask_error_html(403));
    }
    let json = format == "json";
    if request.param("q").is_none_or(str::is_empty) {
        return if json {
            Answer::Json(400, error_json("No query"))
        } else {
            Answer::Html(200, index_html())
        };
    }
    let search = match validate(&request.params) {
        Ok(search) => search,
        // The HTML format shows the start page with a "search error" note.
        Err(message) if json => return Answer::Json(400, error_json(&message)),
        Err(_) => return Answer::Html(400, index_html()),
    };
    let results = knobs
        .results
        .clone()
        .unwrap_or_else(|| default_results(&search));
    if json {
        Answer::Json(200, search_json(&search, &results, &knobs))
    } else {
        Answer::Html(200, results_html(&search.q, &results))
    }
}
