//! Provider checks for `pincer doctor`: reachability and each API key, by listing
//! models (a free call), never by generating anything.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::config::{Config, SecretValue};

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Whether it is fine.
    pub ok: bool,
    /// What was found (never a key).
    pub text: String,
}

/// Checks every configured provider in `config` (with `env` for key refs).
pub async fn all(config: &Config, env: &BTreeMap<String, String>) -> Vec<Finding> {
    let client = super::http_client();
    let mut out = Vec::new();
    if let Some(openai) = &config.providers.openai {
        let url = format!("{}/models", openai.base_url.trim_end_matches('/'));
        let keys = keys(
            openai.api_key.as_ref(),
            &openai.api_keys,
            env,
            super::openai::NAME,
            &mut out,
        );
        for (n, key) in keys.iter().enumerate() {
            let request = client.get(&url).bearer_auth(key);
            out.push(probe(super::openai::NAME, n, request, &url).await);
        }
    }
    if let Some(anthropic) = &config.providers.anthropic {
        let url = format!("{}/v1/models", anthropic.base_url.trim_end_matches('/'));
        let keys = keys(
            anthropic.api_key.as_ref(),
            &anthropic.api_keys,
            env,
            super::anthropic::NAME,
            &mut out,
        );
        for (n, key) in keys.iter().enumerate() {
            let request = client
                .get(&url)
                .header("x-api-key", key)
                .header("anthropic-version", &anthropic.version);
            out.push(probe(super::anthropic::NAME, n, request, &url).await);
        }
    }
    out
}

fn keys(
    first: Option<&SecretValue>,
    more: &[SecretValue],
    env: &BTreeMap<String, String>,
    provider: &str,
    out: &mut Vec<Finding>,
) -> Vec<String> {
    let mut keys = Vec::new();
    let values: Vec<&SecretValue> = first.into_iter().chain(more).collect();
    for (n, value) in values.iter().enumerate() {
        match crate::secrets::resolve(value, env) {
            Ok(key) => keys.push(key),
            Err(e) => out.push(Finding {
                ok: false,
                text: format!("provider {provider} key #{}: {e}", n + 1),
            }),
        }
    }
    if values.is_empty() {
        out.push(Finding {
            ok: false,
            text: format!("provider {provider}: no API key (set apiKey or apiKeys)"),
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
            let detail = super::call::error_message(&body).unwrap_or_default();
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
            text: format!("{which}: unreachable: {}", super::call::without_url(&e)),
        },
    }
}
