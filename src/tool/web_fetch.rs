//! `web_fetch`: a web page as markdown or text, through `pincer_tools::fetch` (every hop
//! through the SSRF guard, `tools.webFetch.allowPrivate` the only way into private
//! ranges), returned as untrusted content.

use serde_json::{Value, json};

use pincer_tools::fetch::{DEFAULT_MAX_CHARS, ExtractMode, FetchArgs, MAX_MAX_CHARS};

use super::{Context, Risk, Running, Tool, untrusted};

/// The tool.
pub(super) struct WebFetch;

impl Tool for WebFetch {
    fn name(&self) -> &'static str {
        "web_fetch"
    }

    fn description(&self) -> &'static str {
        "Fetches a web page (http or https) and returns its readable content as markdown or plain text."
    }

    fn schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "url": { "type": "string", "description": "The http or https URL to fetch." },
                "extractMode": {
                    "type": "string",
                    "enum": ["markdown", "text"],
                    "description": "markdown (default) keeps headings, lists and links; text is words only."
                },
                "maxChars": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_MAX_CHARS,
                    "description": format!("The longest text returned (default {DEFAULT_MAX_CHARS}).")
                }
            },
            "required": ["url"],
            "additionalProperties": false,
        })
    }

    fn risk(&self) -> Risk {
        Risk::Reads
    }

    fn status(&self) -> &'static str {
        "Reading a web page…"
    }

    fn summary(&self, args: &Value) -> String {
        let url = args.get("url").and_then(Value::as_str).unwrap_or_default();
        // The host is what a person recognizes; a URL that does not parse shows as given.
        match reqwest::Url::parse(url) {
            Ok(parsed) => parsed.host_str().unwrap_or(url).chars().take(80).collect(),
            Err(_) => url.chars().take(80).collect(),
        }
    }

    fn run(&self, args: Value, ctx: Context) -> Running {
        Box::pin(async move {
            let args = fetch_args(&args)?;
            let fetcher = ctx.toolbox.fetcher(&ctx.config)?;
            let page = fetcher.fetch(&args).await.map_err(|e| e.to_string())?;
            let mut head = format!("Status: {}\n", page.status_line());
            if let Some(title) = &page.title {
                head.push_str(&format!("Title: {title}\n"));
            }
            if let Some(kind) = &page.content_type {
                head.push_str(&format!("Content-Type: {kind}\n"));
            }
            Ok(untrusted::wrap(
                &page.url,
                &format!("{head}\n{}", page.text),
            ))
        })
    }
}

/// The model's arguments as the fetcher takes them.
fn fetch_args(args: &Value) -> Result<FetchArgs, String> {
    let url = args
        .get("url")
        .and_then(Value::as_str)
        .ok_or("`url` (a string) is required")?;
    let mut fetch = FetchArgs::new(url);
    match args.get("extractMode").map(|m| m.as_str()) {
        None | Some(Some("markdown")) => {}
        Some(Some("text")) => fetch = fetch.mode(ExtractMode::Text),
        Some(_) => return Err("`extractMode` is \"markdown\" or \"text\"".into()),
    }
    if let Some(max) = args.get("maxChars") {
        let max = max
            .as_u64()
            .filter(|&m| m >= 1)
            .ok_or("`maxChars` is a positive integer")?;
        fetch = fetch.max_chars(usize::try_from(max).unwrap_or(MAX_MAX_CHARS));
    }
    Ok(fetch)
}

#[cfg(test)]
mod tests {
    use super::fetch_args;
    use serde_json::json;

    #[test]
    fn arguments_are_read_as_the_schema_says() {
        assert!(fetch_args(&json!({"url": "https://example.org/"})).is_ok());
        assert!(
            fetch_args(&json!({"url": "https://e.org/", "extractMode": "text", "maxChars": 10}))
                .is_ok()
        );
        assert!(fetch_args(&json!({})).unwrap_err().contains("`url`"));
        assert!(fetch_args(&json!({"url": "u", "extractMode": "pdf"})).is_err());
        assert!(fetch_args(&json!({"url": "u", "maxChars": 0})).is_err());
    }
}
