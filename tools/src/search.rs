//! The back ends of the `web_search` tool: the Brave Search API and SearXNG's JSON API
//! (`../shared/protocols.md`, "Tool back ends"), one call each, their answers turned into
//! [`Hit`]s and their failures into errors a model (and an operator) can act on.
//!
//! The base URL is the operator's (a self-hosted SearXNG lives on a private network), so
//! it is not put through the SSRF guard; the model chooses only the query.

use std::time::Duration;

use serde::Deserialize;

/// Results asked for when the model says nothing.
pub const DEFAULT_COUNT: u8 = 5;

/// Results asked for at most.
pub const MAX_COUNT: u8 = 10;

/// How long one search may take.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// The largest answer read from a back end.
const MAX_ANSWER_BYTES: usize = 2 * 1024 * 1024;

/// Where searches go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// The Brave Search API at `base_url` (`https://api.search.brave.com`), with its key.
    Brave {
        /// The API's root.
        base_url: String,
        /// The subscription token.
        api_key: String,
    },
    /// A SearXNG instance at `base_url`, with the JSON format enabled.
    Searxng {
        /// The instance's root.
        base_url: String,
    },
}

/// How recent results must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// The last day.
    Day,
    /// The last week.
    Week,
    /// The last month.
    Month,
    /// The last year.
    Year,
}

/// What the model asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The search terms.
    pub text: String,
    /// Results wanted, 1 to [`MAX_COUNT`].
    pub count: u8,
    /// How recent, if it matters.
    pub freshness: Option<Freshness>,
    /// A country code (`us`, `de`), if any.
    pub country: Option<String>,
    /// A language code (`en`, `fr`), if any.
    pub language: Option<String>,
}

/// One result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// Its title.
    pub title: String,
    /// Its address.
    pub url: String,
    /// What the back end says of it.
    pub snippet: String,
    /// How old it is, when the back end says (`2 days ago`, a date).
    pub age: Option<String>,
}

/// Why a search gave nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SearchError {
    /// The back end refused the key.
    #[error("the search provider refused the API key ({status}): check tools.webSearch.apiKey")]
    Key {
        /// Its status.
        status: u16,
    },
    /// Too many searches.
    #[error("the search provider is rate limiting{}", .retry_after.map(|s| format!("; try again in {s} s")).unwrap_or_default())]
    RateLimited {
        /// Seconds until the limit resets, if it said.
        retry_after: Option<u64>,
    },
    /// The back end did not accept the query.
    #[error("the search provider did not accept the query: {0}")]
    Rejected(String),
    /// A SearXNG instance without its JSON format.
    #[error(
        "the SearXNG instance does not serve JSON (403): enable `json` in its settings.yml `search.formats`"
    )]
    NoJson,
    /// Any other answer.
    #[error("the search provider answered {status}: {detail}")]
    Upstream {
        /// Its status.
        status: u16,
        /// The start of its body.
        detail: String,
    },
    /// No answer in time.
    #[error("the search provider did not answer within {} s", TIMEOUT.as_secs())]
    Timeout,
    /// The call failed (connection, TLS).
    #[error("the search provider could not be reached: {0}")]
    Unreachable(String),
    /// An answer that is not what the API sends.
    #[error("the search provider's answer could not be read: {0}")]
    Garbled(String),
}

/// Searches `backend` for `query` with `client`.
pub async fn search(
    client: &reqwest::Client,
    backend: &Backend,
    query: &Query,
) -> Result<Vec<Hit>, SearchError> {
    let count = query.count.clamp(1, MAX_COUNT);
    let request = match backend {
        Backend::Brave { base_url, api_key } => {
            let mut params = vec![("q", query.text.clone()), ("count", count.to_string())];
            if let Some(f) = query.freshness {
                params.push(("freshness", brave_freshness(f).to_string()));
            }
            if let Some(country) = &query.country {
                params.push(("country", country.to_ascii_lowercase()));
            }
            if let Some(language) = &query.language {
                params.push(("search_lang", language.to_ascii_lowercase()));
            }
            client
                .get(format!(
                    "{}/res/v1/web/search",
                    base_url.trim_end_matches('/')
                ))
                .header("X-Subscription-Token", api_key)
                .header("Accept", "application/json")
                .query(&params)
        }
        Backend::Searxng { base_url } => {
            let mut params = vec![("q", query.text.clone()), ("format", "json".to_string())];
            if let Some(f) = query.freshness {
                params.push(("time_range", searxng_range(f).to_string()));
            }
            if let Some(language) = &query.language {
                params.push(("language", language.to_ascii_lowercase()));
            }
            client
                .get(format!("{}/search", base_url.trim_end_matches('/')))
                .header("Accept", "application/json")
                .query(&params)
        }
    };
    let response = request.timeout(TIMEOUT).send().await.map_err(|e| {
        if e.is_timeout() {
            SearchError::Timeout
        } else {
            SearchError::Unreachable(e.without_url().to_string())
        }
    })?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("x-ratelimit-reset")
        .and_then(|v| v.to_str().ok())
        .and_then(first_number);
    let body = pincer_core::net::read_capped(response, MAX_ANSWER_BYTES)
        .await
        .map_err(SearchError::Garbled)?;
    let brave = matches!(backend, Backend::Brave { .. });
    match status {
        200 => {}
        401 if brave => return Err(SearchError::Key { status }),
        403 if brave => return Err(SearchError::Key { status }),
        403 => return Err(SearchError::NoJson),
        429 => return Err(SearchError::RateLimited { retry_after }),
        400 | 422 => return Err(SearchError::Rejected(detail(&body))),
        _ => {
            return Err(SearchError::Upstream {
                status,
                detail: detail(&body),
            });
        }
    }
    let mut hits = if brave {
        brave_hits(&body)?
    } else {
        searxng_hits(&body)?
    };
    // SearXNG has no count parameter; Brave's is an upper bound.
    hits.truncate(usize::from(count));
    Ok(hits)
}

fn brave_freshness(f: Freshness) -> &'static str {
    match f {
        Freshness::Day => "pd",
        Freshness::Week => "pw",
        Freshness::Month => "pm",
        Freshness::Year => "py",
    }
}

fn searxng_range(f: Freshness) -> &'static str {
    match f {
        Freshness::Day => "day",
        Freshness::Week => "week",
        Freshness::Month => "month",
        Freshness::Year => "year",
    }
}

/// The first number of `X-RateLimit-Reset` (`1, 1419704`: the shortest window first).
fn first_number(value: &str) -> Option<u64> {
    value.split(',').next()?.trim().parse().ok()
}

/// What an error body says, briefly: Brave's `error.detail`, SearXNG's `error`, or the
/// start of the text.
fn detail(body: &[u8]) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let said = parsed.as_ref().and_then(|v| {
        v.pointer("/error/detail")
            .or_else(|| v.get("error"))
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
    });
    said.unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect())
}

fn brave_hits(body: &[u8]) -> Result<Vec<Hit>, SearchError> {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(default)]
        web: Option<Web>,
    }
    #[derive(Deserialize)]
    struct Web {
        #[serde(default)]
        results: Vec<Item>,
    }
    #[derive(Deserialize)]
    struct Item {
        title: String,
        url: String,
        #[serde(default)]
        description: String,
        #[serde(default)]
        age: Option<String>,
        #[serde(default)]
        page_age: Option<String>,
    }
    let answer: Answer =
        serde_json::from_slice(body).map_err(|e| SearchError::Garbled(e.to_string()))?;
    Ok(answer
        .web
        .map(|w| w.results)
        .unwrap_or_default()
        .into_iter()
        .map(|i| Hit {
            title: i.title,
            url: i.url,
            snippet: i.description,
            age: i.age.or(i.page_age),
        })
        .collect())
}

fn searxng_hits(body: &[u8]) -> Result<Vec<Hit>, SearchError> {
    #[derive(Deserialize)]
    struct Answer {
        results: Vec<Item>,
    }
    #[derive(Deserialize)]
    struct Item {
        url: String,
        #[serde(default)]
        title: String,
        #[serde(default)]
        content: String,
        #[serde(default, rename = "publishedDate")]
        published: Option<String>,
    }
    let answer: Answer =
        serde_json::from_slice(body).map_err(|e| SearchError::Garbled(e.to_string()))?;
    Ok(answer
        .results
        .into_iter()
        .map(|i| Hit {
            title: i.title,
            url: i.url,
            snippet: i.content,
            age: i.published,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_reset_reads_the_shortest_window() {
        assert_eq!(first_number("1, 1419704"), Some(1));
        assert_eq!(first_number("30"), Some(30));
        assert_eq!(first_number("soon"), None);
    }

    #[test]
    fn error_details_come_from_either_shape() {
        assert_eq!(
            detail(br#"{"type":"ErrorResponse","error":{"detail":"Unable to validate"}}"#),
            "Unable to validate"
        );
        assert_eq!(detail(br#"{"error":"No query"}"#), "No query");
        assert_eq!(detail(b"<html>oops"), "<html>oops");
    }
}
