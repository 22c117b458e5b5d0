//! `pincer doctor`'s provider checks: reachability and each API key, by listing models
//! (a free call), never by generating anything.

use serde_json::Value;

use pincer_config::{Config, SecretValue};
use pincer_providers::{anthropic, openai};

use super::Finding;

/// Checks every configured provider in `config` (with its refs resolved in `secrets`).
pub(crate) async fn all(
    config: &Config,
    secrets: &pincer_secrets::Resolved,
    client: &reqwest::Client,
) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(openai) = &config.providers.openai {
        let url = format!("{}/models", openai.base_url.trim_end_matches('/'));
        let keys = keys(
            openai.api_key.as_ref(),
            &openai.api_keys,
            secrets,
            openai::NAME,
            &mut out,
        );
        for (n, key) in keys.iter().enumerate() {
            let request = client.get(&url).bearer_auth(key);
            out.push(probe(openai::NAME, n, request, &url).await);
        }
    }
    if let Some(anthropic) = &config.providers.anthropic {
        let url = format!("{}/v1/models", anthropic.base_url.trim_end_matches('/'));
        let keys = keys(
            anthropic.api_key.as_ref(),
            &anthropic.api_keys,
            secrets,
            anthropic::NAME,
            &mut out,
        );
        for (n, key) in keys.iter().enumerate() {
            let request = client
                .get(&url)
                .header("x-api-key", key)
                .header("anthropic-version", &anthropic.version);
            out.push(probe(anthropic::NAME, n, request, &url).await);
        }
    }
    out
}

/// The keys that resolve. Unresolvable refs are reported by doctor's secret lines; here
/// only a provider left with no key at all is.
fn keys(
    first: Option<&SecretValue>,
    more: &[SecretValue],
    secrets: &pincer_secrets::Resolved,
    provider: &str,
    out: &mut Vec<Finding>,
) -> Vec<String> {
    let values: Vec<&SecretValue> = first.into_iter().chain(more).collect();
    let keys: Vec<String> = values
        .iter()
        .filter_map(|value| secrets.get(value).ok())
        .collect();
    if keys.is_empty() {
        let why = if values.is_empty() {
            "no API key configured (set apiKey or apiKeys)"
        } else {
            "none of its API keys resolves (see the secret lines)"
        };
        out.push(Finding {
            ok: false,
            text: format!("provider {provider}: {why}"),
        });
    }
    keys
}

async fn probe(provider: &str, n: usize, request: reqwest::RequestBuilder, url: &str) -> Finding {
    let which = format!("provider {provider} key #{} at {url}", n + 1);
    match request.send().await {
        Ok(response) if response.status().is_success() => {
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let models = body["data"].as_array().map_or(0, Vec::len);
            Finding {
                ok: true,
                text: format!("{which}: reachable, key accepted ({models} models)"),
            }
        }
        Ok(response) => {
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let detail = pincer_providers::call::error_message(&body).unwrap_or_default();
            let what = match status.as_u16() {
                401 | 403 => "key rejected",
                429 => "rate limited (the key works)",
                _ => "unexpected reply",
            };
            Finding {
                ok: status.as_u16() == 429,
                text: format!("{which}: {what}: {} {detail}", status.as_u16()),
            }
        }
        Err(e) => Finding {
            ok: false,
            text: format!(
                "{which}: unreachable: {}",
                pincer_core::net::without_url(&e)
            ),
        },
    }
}
