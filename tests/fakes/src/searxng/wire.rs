//! SearXNG's shapes and parameter rules: the JSON answer, the JSON error, the HTML pages
//! (results, start page, Flask's error pages), the web adapter's checks, and the default
//! result set.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Knobs, SearxResult};

/// A search whose parameters passed the checks.
#[derive(Debug)]
pub(super) struct Search {
    pub(super) q: String,
    /// `engines`, split on commas, empty names dropped.
    pub(super) engines: Vec<String>,
}

/// Checks the parameters in the order SearXNG's web adapter does (`pageno`, `language`,
/// `safesearch`, `time_range`); the first bad one is the error message. `q` is checked by
/// the caller (its answer depends on the format).
pub(super) fn validate(params: &BTreeMap<String, String>) -> Result<Search, String> {
    let get = |name: &str| params.get(name).map(String::as_str);
    let pageno = get("pageno").unwrap_or("1");
    if !is_digits(pageno) || pageno.parse::<u64>().map_or(true, |n| n < 1) {
        return Err(parameter_error("pageno", pageno));
    }
    if let Some(language) = get("language")
        && language != "auto"
        && !language_ok(language)
    {
        return Err(parameter_error("language", language));
    }
    if let Some(safesearch) = get("safesearch")
        && !(is_digits(safesearch) && safesearch.parse::<u8>().is_ok_and(|n| n <= 2))
    {
        return Err(parameter_error("safesearch", safesearch));
    }
    // `week` included: SearXNG's adapter accepts it (see the module docs).
    if let Some(time_range) = get("time_range")
        && !matches!(time_range, "" | "None" | "day" | "week" | "month" | "year")
    {
        return Err(parameter_error("time_range", time_range));
    }
    Ok(Search {
        q: get("q").unwrap_or("").to_owned(),
        engines: get("engines")
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// Python's `str.isdigit` for ASCII: non-empty, digits only.
fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// SearXNG's `VALID_LANGUAGE_CODE`: `^[a-z]{2,3}(-[a-zA-Z]{2})?$`.
fn language_ok(language: &str) -> bool {
    let (lang, region) = match language.split_once('-') {
        Some((lang, region)) => (lang, Some(region)),
        None => (language, None),
    };
    (2..=3).contains(&lang.len())
        && lang.bytes().all(|b| b.is_ascii_lowercase())
        && region.is_none_or(|r| r.len() == 2 && r.bytes().all(|b| b.is_ascii_alphabetic()))
}

/// `SearxParameterException`'s message.
fn parameter_error(name: &str, value: &str) -> String {
    if value.is_empty() {
        format!("Empty {name} parameter")
    } else {
        format!("Invalid value \"{value}\" for parameter {name}")
    }
}

/// The JSON error body of `index_error`.
pub(super) fn error_json(message: &str) -> Value {
    json!({ "error": message })
}

/// The 200 JSON body.
pub(super) fn search_json(search: &Search, results: &[SearxResult], knobs: &Knobs) -> Value {
    json!({
        "query": search.q,
        "number_of_results": knobs.number_of_results.unwrap_or(0),
        "results": results
            .iter()
            .enumerate()
            .map(|(i, r)| result_json(i + 1, r))
            .collect::<Vec<_>>(),
        "answers": [],
        "corrections": [],
        "infoboxes": [],
        "suggestions": knobs.suggestions,
        "unresponsive_engines": knobs
            .unresponsive_engines
            .iter()
            .map(|(engine, error)| json!([engine, error]))
            .collect::<Vec<_>>(),
    })
}

/// One result at `position` (from 1), with the fields SearXNG adds beside the ones
/// clients read.
fn result_json(position: usize, r: &SearxResult) -> Value {
    let (scheme, rest) = r.url.split_once("://").unwrap_or(("", &r.url));
    let (rest, fragment) = rest.split_once('#').unwrap_or((rest, ""));
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (netloc, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let score = 1.0 / f64::from(u32::try_from(position).unwrap_or(u32::MAX));
    json!({
        "url": r.url,
        "title": r.title,
        "content": r.content,
        "thumbnail": "",
        "engine": r.engine,
        "template": "default.html",
        "parsed_url": [scheme, netloc, path, "", query, fragment],
        "img_src": "",
        "priority": "",
        "engines": [r.engine],
        "positions": [position],
        "score": score,
        "category": "general",
        "publishedDate": r.published_date,
    })
}

/// Five results about `q` on reserved example domains, found by `engines` in turn
/// (`duckduckgo`, `wikipedia`, `brave` when none are named); the first two dated.
pub(super) fn default_results(search: &Search) -> Vec<SearxResult> {
    let q = &search.q;
    let fallback = ["duckduckgo", "wikipedia", "brave"].map(str::to_owned);
    let engines: &[String] = if search.engines.is_empty() {
        &fallback
    } else {
        &search.engines
    };
    let slug: String = q
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let results = [
        (
            format!("{q} - Overview"),
            format!("https://example.com/wiki/{slug}"),
            format!("{q}: an overview, its history and current use."),
            Some("2026-12-04T09:30:00"),
        ),
        (
            format!("Getting started with {q}"),
            format!("https://docs.example.org/{slug}/start"),
            format!("A step-by-step guide to {q}."),
            Some("2026-03-03T10:00:00"),
        ),
        (
            format!("{q} news"),
            format!("https://news.example.net/topics/{slug}"),
            format!("The latest on {q}."),
            None,
        ),
        (
            format!("Questions about {q}"),
            format!("https://forum.example.com/t/{slug}"),
            format!("People ask about {q} and get answers."),
            None,
        ),
        (
            format!("{q} (reference)"),
            format!("https://reference.example.org/{slug}"),
            format!("Reference material for {q}."),
            None,
        ),
    ];
    results
        .into_iter()
        .zip(engines.iter().cycle())
        .map(|((title, url, content, date), engine)| SearxResult {
            url,
            title,
            content,
            engine: engine.clone(),
            published_date: date.map(str::to_owned),
        })
        .collect()
}

/// The HTML results page (minimal: one `article.result` per result).
pub(super) fn results_html(q: &str, results: &[SearxResult]) -> String {
    let mut page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"UTF-8\"><title>{} - \
         SearXNG</title></head>\n<body class=\"results_endpoint\">\n<main id=\"results\">\n",
        escape(q)
    );
    for r in results {
        page.push_str(&format!(
            "<article class=\"result result-default category-general\">\n<a href=\"{}\" \
             class=\"url_header\">{}</a>\n<h3><a href=\"{}\">{}</a></h3>\n<p \
             class=\"content\">{}</p>\n</article>\n",
            escape(&r.url),
            escape(&r.url),
            escape(&r.url),
            escape(&r.title),
            escape(&r.content),
        ));
    }
    page.push_str("</main>\n</body>\n</html>\n");
    page
}

/// The start page, shown for the HTML format without a query.
pub(super) fn index_html() -> String {
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"UTF-8\"><title>SearXNG</title>\
     </head>\n<body class=\"index_endpoint\">\n<form id=\"search\" method=\"POST\" \
     action=\"/search\"><input type=\"text\" name=\"q\"></form>\n</body>\n</html>\n"
        .to_owned()
}

/// Flask's (Werkzeug's) HTML error page for `status`.
pub(super) fn flask_error_html(status: u16) -> String {
    let (title, text) = match status {
        403 => (
            "Forbidden",
            "You don&#39;t have the permission to access the requested resource. It is either \
             read-protected or not readable by the server.",
        ),
        404 => (
            "Not Found",
            "The requested URL was not found on the server. If you entered the URL manually \
             please check your spelling and try again.",
        ),
        _ => (
            "Method Not Allowed",
            "The method is not allowed for the requested URL.",
        ),
    };
    format!(
        "<!doctype html>\n<html lang=en>\n<title>{status} {title}</title>\n<h1>{title}</h1>\n\
         <p>{text}</p>\n"
    )
}

/// Escapes text for HTML.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::{language_ok, validate};

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn parameter_checks_in_searxng_order() {
        assert!(validate(&params(&[("q", "x")])).is_ok());
        let err = |pairs| validate(&params(pairs)).unwrap_err();
        assert_eq!(
            err(&[("pageno", "0")]),
            "Invalid value \"0\" for parameter pageno"
        );
        assert_eq!(err(&[("pageno", "")]), "Empty pageno parameter");
        assert_eq!(
            err(&[("pageno", "x"), ("safesearch", "9")]),
            "Invalid value \"x\" for parameter pageno"
        );
        assert_eq!(
            err(&[("safesearch", "3")]),
            "Invalid value \"3\" for parameter safesearch"
        );
        assert_eq!(
            err(&[("time_range", "decade")]),
            "Invalid value \"decade\" for parameter time_range"
        );
        for ok in ["", "None", "day", "week", "month", "year"] {
            assert!(validate(&params(&[("time_range", ok)])).is_ok(), "{ok}");
        }
    }

    #[test]
    fn language_codes() {
        for ok in ["en", "all", "de-DE", "zh-cn", "fil"] {
            assert!(language_ok(ok), "{ok}");
        }
        for bad in ["", "e", "EN", "english", "de-DEU", "de_DE", "de-"] {
            assert!(!language_ok(bad), "{bad}");
        }
    }
}
