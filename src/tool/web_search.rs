//! `web_search`: a web search through `pincer_tools::search` (Brave Search or a SearXNG
//! instance, `[tools.webSearch]`), its hits returned numbered, as untrusted content.
//!
//! The key is the runtime's business: [`super::Toolbox::search_backend`] resolves
//! `tools.webSearch.apiKey` through its own handle and hands this tool a back end with the
//! value in it; the tool reads no secret and no environment.

use serde_json::{Value, json};

use pincer_tools::search::{self, DEFAULT_COUNT, Freshness, Hit, MAX_COUNT, Query};

use super::{Context, Risk, Running, Tool, untrusted};

/// The tool.
pub(super) struct WebSearch;

/// The longest query taken (Brave refuses more than 400 characters).
const MAX_QUERY_CHARS: usize = 400;

impl Tool for WebSearch {
    fn name(&self) -> &'static str {
        "web_search"
    }

    fn description(&self) -> &'static str {
        "Searches the web and returns numbered results (title, URL, snippet). Fetch a result with web_fetch to read it."
    }

    fn schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "query": { "type": "string", "description": "What to search for." },
                "count": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_COUNT,
                    "description": format!("How many results (default {DEFAULT_COUNT}, at most {MAX_COUNT}).")
                },
                "freshness": {
                    "type": "string",
                    "enum": ["day", "week", "month", "year"],
                    "description": "Only results from the last day, week, month or year."
                },
                "country": {
                    "type": "string",
                    "description": "A two-letter country code to search from (us, de)."
                },
                "language": {
                    "type": "string",
                    "description": "A language code for the results (en, fr)."
                }
            },
            "required": ["query"],
            "additionalProperties": false,
        })
    }

    fn risk(&self) -> Risk {
        Risk::Reads
    }

    fn status(&self) -> &'static str {
        "Searching the web…"
    }

    fn summary(&self, args: &Value) -> String {
        let query = args
            .get("query")
            .and_then(Value::as_str)
            .unwrap_or_default();
        query.chars().take(80).collect()
    }

    fn run(&self, args: Value, ctx: Context) -> Running {
        Box::pin(async move {
            let query = query_of(&args)?;
            let backend = ctx.toolbox.search_backend(&ctx.config)?;
            let client = pincer_core::net::http_client().map_err(|e| e.to_string())?;
            let hits = search::search(&client, &backend, &query)
                .await
                .map_err(|e| e.to_string())?;
            let provider = ctx.config.tools.web_search.provider.name();
            if hits.is_empty() {
                return Ok(format!("No results for \"{}\" ({provider}).", query.text));
            }
            Ok(untrusted::wrap(
                &format!("a web search ({provider}) for \"{}\"", query.text),
                &render(&hits),
            ))
        })
    }
}

/// The model's arguments as the back ends take them.
fn query_of(args: &Value) -> Result<Query, String> {
    let text = args
        .get("query")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .ok_or("`query` (a non-empty string) is required")?;
    if text.chars().count() > MAX_QUERY_CHARS {
        return Err(format!(
            "`query` is longer than {MAX_QUERY_CHARS} characters"
        ));
    }
    // Past the maximum is taken as the maximum: asking for more is not an error worth a
    // round trip.
    let count = match args.get("count") {
        None | Some(Value::Null) => DEFAULT_COUNT,
        Some(n) => n
            .as_u64()
            .filter(|&n| n >= 1)
            .map(|n| u8::try_from(n).unwrap_or(MAX_COUNT).min(MAX_COUNT))
            .ok_or(format!("`count` is an integer from 1 to {MAX_COUNT}"))?,
    };
    let freshness = match args.get("freshness") {
        None | Some(Value::Null) => None,
        Some(f) => Some(match f.as_str() {
            Some("day") => Freshness::Day,
            Some("week") => Freshness::Week,
            Some("month") => Freshness::Month,
            Some("year") => Freshness::Year,
            _ => return Err("`freshness` is \"day\", \"week\", \"month\" or \"year\"".into()),
        }),
    };
    Ok(Query {
        text: text.to_string(),
        count,
        freshness,
        country: code(args, "country", 2)?,
        language: code(args, "language", 8)?,
    })
}

/// Optional code argument `name`: letters (and `-` after the first), at most `max`
/// characters, so it goes into a query string as it is.
fn code(args: &Value, name: &str, max: usize) -> Result<Option<String>, String> {
    let Some(value) = args.get(name).filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let text = value.as_str().map(str::trim).unwrap_or_default();
    let valid = !text.is_empty()
        && text.len() <= max
        && text.starts_with(|c: char| c.is_ascii_alphabetic())
        && text.chars().all(|c| c.is_ascii_alphabetic() || c == '-');
    if valid {
        Ok(Some(text.to_string()))
    } else {
        Err(format!(
            "`{name}` is a code of at most {max} letters (such as {})",
            if max == 2 { "\"us\"" } else { "\"en\"" }
        ))
    }
}

/// The hits, numbered: title, address, snippet and age, one block each.
fn render(hits: &[Hit]) -> String {
    let mut out = String::new();
    for (n, hit) in hits.iter().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        let title = plain(&hit.title);
        let title = if title.is_empty() {
            "(untitled)"
        } else {
            &title
        };
        out.push_str(&format!("{}. {title}\n   {}\n", n + 1, hit.url));
        let snippet = plain(&hit.snippet);
        if !snippet.is_empty() {
            out.push_str(&format!("   {snippet}\n"));
        }
        if let Some(age) = hit.age.as_deref().filter(|a| !a.trim().is_empty()) {
            out.push_str(&format!("   Published: {}\n", age.trim()));
        }
    }
    out
}

/// `text` on one line, without the emphasis tags Brave puts around matched words.
fn plain(text: &str) -> String {
    let mut text = text.to_string();
    for tag in ["<strong>", "</strong>", "<b>", "</b>", "<em>", "</em>"] {
        text = text.replace(tag, "");
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_read_as_the_schema_says() {
        let q = query_of(&json!({"query": " rust actors "})).expect("query alone");
        assert_eq!(q.text, "rust actors");
        assert_eq!(q.count, DEFAULT_COUNT);
        assert_eq!(q.freshness, None);
        let q = query_of(&json!({
            "query": "q", "count": 3, "freshness": "week", "country": "DE", "language": "pt-br"
        }))
        .expect("all of them");
        assert_eq!(q.count, 3);
        assert_eq!(q.freshness, Some(Freshness::Week));
        assert_eq!(q.country.as_deref(), Some("DE"));
        assert_eq!(q.language.as_deref(), Some("pt-br"));
        assert_eq!(
            query_of(&json!({"query": "q", "count": 50}))
                .expect("clamped")
                .count,
            MAX_COUNT
        );
        assert!(query_of(&json!({})).unwrap_err().contains("`query`"));
        assert!(query_of(&json!({"query": "  "})).is_err());
        assert!(query_of(&json!({"query": "q", "count": 0})).is_err());
        assert!(query_of(&json!({"query": "q", "count": "5"})).is_err());
        assert!(
            query_of(&json!({"query": "q", "freshness": "hour"}))
                .unwrap_err()
                .contains("freshness")
        );
        assert!(query_of(&json!({"query": "q", "country": "usa"})).is_err());
        assert!(query_of(&json!({"query": "q", "language": "en&x=1"})).is_err());
        assert!(query_of(&json!({"query": "x".repeat(401)})).is_err());
    }

    #[test]
    fn hits_are_numbered_and_plain() {
        let hits = [
            Hit {
                title: "Ractor <strong>actors</strong>".into(),
                url: "https://example.org/a".into(),
                snippet: "An <strong>actor</strong>\nframework".into(),
                age: Some("2 days ago".into()),
            },
            Hit {
                title: String::new(),
                url: "https://example.org/b".into(),
                snippet: String::new(),
                age: None,
            },
        ];
        assert_eq!(
            render(&hits),
            "1. Ractor actors\n   https://example.org/a\n   An actor framework\n   Published: 2 days ago\n\n2. (untitled)\n   https://example.org/b\n"
        );
    }
}
