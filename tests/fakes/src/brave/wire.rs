//! Brave's JSON shapes and parameter rules: the search answer, the `ErrorResponse` body,
//! the validation of `q`, `count` and `freshness` (with pydantic's error entries, which
//! Brave returns in `meta.errors`), and the default result set.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use super::{MAX_COUNT, WebResult};

/// The longest query Brave accepts, in characters.
const MAX_QUERY_CHARS: usize = 400;

/// The most words Brave accepts in a query.
const MAX_QUERY_WORDS: usize = 50;

/// A 200 body cut off mid-results: what a proxy that drops the connection halfway, or a
/// broken upstream, leaves a client with.
pub(super) const GARBAGE: &str = r#"{"type":"search","query":{"original":"#;

/// A request whose parameters passed validation.
#[derive(Debug)]
pub(super) struct Search {
    pub(super) q: String,
    pub(super) count: usize,
    pub(super) country: Option<String>,
}

/// Checks the parameters as Brave does, collecting every problem (pydantic reports them
/// all at once). Of repeated parameters the last counts, as in FastAPI (unconfirmed for
/// Brave).
pub(super) fn validate(params: &[(String, String)]) -> Result<Search, Vec<Value>> {
    let last = |name: &str| {
        params
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let mut errors = Vec::new();
    let q = match last("q") {
        None => {
            errors.push(field_error(
                "missing",
                "q",
                "Field required",
                Value::Null,
                None,
            ));
            String::new()
        }
        Some(q) => {
            if q.is_empty() {
                errors.push(field_error(
                    "string_too_short",
                    "q",
                    "String should have at least 1 character",
                    json!(q),
                    Some(json!({"min_length": 1})),
                ));
            } else if q.chars().count() > MAX_QUERY_CHARS {
                errors.push(field_error(
                    "string_too_long",
                    "q",
                    &format!("String should have at most {MAX_QUERY_CHARS} characters"),
                    json!(q),
                    Some(json!({"max_length": MAX_QUERY_CHARS})),
                ));
            } else if q.split_whitespace().count() > MAX_QUERY_WORDS {
                errors.push(field_error(
                    "value_error",
                    "q",
                    &format!("Value error, query must have at most {MAX_QUERY_WORDS} words"),
                    json!(q),
                    None,
                ));
            }
            q.to_owned()
        }
    };
    let count = match last("count") {
        None => MAX_COUNT,
        Some(raw) => match raw.trim().parse::<i64>() {
            Err(_) => {
                errors.push(field_error(
                    "int_parsing",
                    "count",
                    "Input should be a valid integer, unable to parse string as an integer",
                    json!(raw),
                    None,
                ));
                MAX_COUNT
            }
            Ok(n) if n < 1 => {
                errors.push(field_error(
                    "greater_than_equal",
                    "count",
                    "Input should be greater than or equal to 1",
                    json!(raw),
                    Some(json!({"ge": 1})),
                ));
                MAX_COUNT
            }
            Ok(n) => match usize::try_from(n) {
                Ok(n) if n <= MAX_COUNT => n,
                _ => {
                    errors.push(field_error(
                        "less_than_equal",
                        "count",
                        &format!("Input should be less than or equal to {MAX_COUNT}"),
                        json!(raw),
                        Some(json!({"le": MAX_COUNT})),
                    ));
                    MAX_COUNT
                }
            },
        },
    };
    if let Some(freshness) = last("freshness")
        && !freshness_ok(freshness)
    {
        errors.push(field_error(
            "value_error",
            "freshness",
            "Value error, freshness must be one of pd, pw, pm, py or a range \
             YYYY-MM-DDtoYYYY-MM-DD",
            json!(freshness),
            None,
        ));
    }
    if errors.is_empty() {
        Ok(Search {
            q,
            count,
            country: last("country").map(str::to_owned),
        })
    } else {
        Err(errors)
    }
}

/// `pd` `pw` `pm` `py`, or `YYYY-MM-DDtoYYYY-MM-DD` with real months and days.
fn freshness_ok(value: &str) -> bool {
    match value {
        "pd" | "pw" | "pm" | "py" => true,
        range => range
            .split_once("to")
            .is_some_and(|(from, to)| date_ok(from) && date_ok(to)),
    }
}

/// `YYYY-MM-DD`, month 01–12, day 01–31.
fn date_ok(date: &str) -> bool {
    let b = date.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    if !(digits(0..4) && digits(5..7) && digits(8..10)) {
        return false;
    }
    let month: u8 = date[5..7].parse().unwrap_or(0);
    let day: u8 = date[8..10].parse().unwrap_or(0);
    (1..=12).contains(&month) && (1..=31).contains(&day)
}

/// One entry of `meta.errors`, as pydantic reports a bad query parameter.
fn field_error(kind: &str, field: &str, msg: &str, input: Value, ctx: Option<Value>) -> Value {
    let mut entry = json!({
        "type": kind,
        "loc": ["query", field],
        "msg": msg,
        "input": input,
    });
    if let (Some(ctx), Some(map)) = (ctx, entry.as_object_mut()) {
        map.insert("ctx".to_owned(), ctx);
    }
    entry
}

/// Brave's error body: `{"type":"ErrorResponse","error":{"id","status","code","detail",
/// "meta"},"time"}`.
pub(super) fn error_body(id: &str, status: u16, code: &str, detail: &str, meta: Value) -> Value {
    json!({
        "type": "ErrorResponse",
        "error": {
            "id": id,
            "status": status,
            "code": code,
            "detail": detail,
            "meta": meta,
        },
        "time": SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs(),
    })
}

/// The 200 body for `search` over `results` (already trimmed to `count`), with the extra
/// fields Brave sends beside the ones clients read, so a client is tested ignoring them.
pub(super) fn search_body(search: &Search, results: &[WebResult], more: bool) -> Value {
    let country = search
        .country
        .as_deref()
        .unwrap_or("us")
        .to_ascii_lowercase();
    json!({
        "type": "search",
        "query": {
            "original": search.q,
            "show_strict_warning": false,
            "is_navigational": false,
            "is_news_breaking": false,
            "spellcheck_off": true,
            "country": country,
            "bad_results": false,
            "should_fallback": false,
            "postal_code": "",
            "city": "",
            "header_country": "",
            "more_results_available": more,
            "state": "",
        },
        "mixed": {
            "type": "mixed",
            "main": (0..results.len())
                .map(|i| json!({"type": "web", "index": i, "all": false}))
                .collect::<Vec<_>>(),
            "top": [],
            "side": [],
        },
        "web": {
            "type": "search",
            "results": results.iter().map(result_json).collect::<Vec<_>>(),
            "family_friendly": true,
        },
    })
}

fn result_json(result: &WebResult) -> Value {
    let mut out = Map::new();
    out.insert("title".to_owned(), json!(result.title));
    out.insert("url".to_owned(), json!(result.url));
    out.insert("is_source_local".to_owned(), json!(false));
    out.insert("is_source_both".to_owned(), json!(false));
    out.insert("description".to_owned(), json!(result.description));
    if let Some(page_age) = &result.page_age {
        out.insert("page_age".to_owned(), json!(page_age));
    }
    out.insert("language".to_owned(), json!("en"));
    out.insert("family_friendly".to_owned(), json!(true));
    out.insert("type".to_owned(), json!("search_result"));
    out.insert("subtype".to_owned(), json!("generic"));
    out.insert("is_live".to_owned(), json!(false));
    out.insert("meta_url".to_owned(), meta_url(&result.url));
    if let Some(age) = &result.age {
        out.insert("age".to_owned(), json!(age));
    }
    Value::Object(out)
}

/// `meta_url` as Brave derives it from a result's URL.
fn meta_url(url: &str) -> Value {
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let (netloc, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let hostname = netloc.split(':').next().unwrap_or(netloc);
    let crumbs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    json!({
        "scheme": scheme,
        "netloc": netloc,
        "hostname": hostname,
        "favicon": format!("https://imgs.search.brave.com/favicon/{hostname}"),
        "path": if crumbs.is_empty() { String::new() } else { format!("› {}", crumbs.join(" › ")) },
    })
}

/// Five results about `q` on reserved example domains: the first two dated (`age` and
/// `page_age`), the others not.
pub(super) fn default_results(q: &str) -> Vec<WebResult> {
    let slug: String = q
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    vec![
        WebResult::new(
            &format!("{q} - Overview"),
            &format!("https://example.com/wiki/{slug}"),
            &format!("<strong>{q}</strong>: an overview, its history and current use."),
        )
        .dated("2 days ago", "2026-12-04T09:30:00"),
        WebResult::new(
            &format!("Getting started with {q}"),
            &format!("https://docs.example.org/{slug}/start"),
            &format!("A step-by-step guide to <strong>{q}</strong>."),
        )
        .dated("March 3, 2026", "2026-03-03T10:00:00"),
        WebResult::new(
            &format!("{q} news"),
            &format!("https://news.example.net/topics/{slug}"),
            &format!("The latest on <strong>{q}</strong>."),
        ),
        WebResult::new(
            &format!("Questions about {q}"),
            &format!("https://forum.example.com/t/{slug}"),
            &format!("People ask about <strong>{q}</strong> and get answers."),
        ),
        WebResult::new(
            &format!("{q} (reference)"),
            &format!("https://reference.example.org/{slug}"),
            &format!("Reference material for <strong>{q}</strong>."),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::{date_ok, freshness_ok, meta_url};

    #[test]
    fn freshness_values() {
        for ok in ["pd", "pw", "pm", "py", "2026-01-01to2026-12-31"] {
            assert!(freshness_ok(ok), "{ok}");
        }
        for bad in [
            "",
            "pt",
            "PD",
            "week",
            "2026-01-01",
            "2026-1-01to2026-12-31",
            "2026-13-01to2026-12-31",
            "2026-01-00to2026-12-31",
            "2026-01-01 to 2026-12-31",
            "2026-01-01to",
        ] {
            assert!(!freshness_ok(bad), "{bad}");
        }
        assert!(date_ok("2000-02-29"));
        assert!(!date_ok("20000229"));
    }

    #[test]
    fn meta_url_from_a_url() {
        let m = meta_url("https://docs.example.org:8443/a/b");
        assert_eq!(m["hostname"], "docs.example.org");
        assert_eq!(m["netloc"], "docs.example.org:8443");
        assert_eq!(m["path"], "› a › b");
    }
}
