//! A client of a running gateway's admin API: address and token from the same config,
//! environment and `$PINCER_HOME/gateway.token` the gateway uses.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;
use serde_json::Value;

use super::Failure;
use super::gateway::load_config;

/// How long the gateway may take to answer a command.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// An admin API client.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    /// A client for the gateway the config describes.
    pub async fn from_config(config: Option<PathBuf>) -> Result<Self, Failure> {
        let (sources, loaded) = load_config(config)?;
        let gateway = &loaded.config.gateway;
        let token = match &gateway.auth.token {
            Some(value) => Some(
                pincer_secrets::resolve_now(value, &loaded.config, &sources.home, &sources.env)
                    .await
                    .map_err(super::usage)?,
            ),
            None => std::fs::read_to_string(sources.home.join("gateway.token"))
                .ok()
                .map(|t| t.trim().to_string()),
        };
        Ok(Self {
            base: local_base(gateway),
            token,
            http: pincer_core::net::http_client()?,
        })
    }

    /// `http://host:port`.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(ANSWER_TIMEOUT);
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// GET `path`, as JSON.
    pub async fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        let response = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        read(response).await
    }

    /// POST `body` to `path`, as JSON.
    pub async fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let response = self
            .request(reqwest::Method::POST, path)
            .json(body)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        read(response).await
    }

    fn unreachable(&self, e: reqwest::Error) -> anyhow::Error {
        anyhow!(
            "no gateway answers at {} ({e}); is `pincer gateway` running?",
            self.base
        )
    }
}

/// `http://host:port` of the gateway `gateway` describes, as a client on this host
/// reaches it: an unspecified bind (`0.0.0.0`, `::`) is asked on loopback.
pub fn local_base(gateway: &pincer_config::GatewayConfig) -> String {
    let host = match gateway.bind.as_str() {
        "0.0.0.0" | "::" => "127.0.0.1".to_string(),
        ip if ip.contains(':') => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    format!("http://{host}:{}", gateway.port)
}

async fn read(response: reqwest::Response) -> anyhow::Result<Value> {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        Ok(body)
    } else {
        let message = body
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or("no message");
        Err(anyhow!("gateway answered {status}: {message}"))
    }
}
