//! A client of a running gateway's admin API: found through `--url`, `gateway.json` or
//! the config; token from the same config, environment and `$PINCER_HOME/gateway.token`
//! the gateway uses.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::anyhow;
use serde_json::Value;

use super::Failure;
use super::discovery;
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

/// `--url` / `PINCER_URL`, set once by [`super::run`] before any command runs.
static URL: OnceLock<Option<String>> = OnceLock::new();

/// How long a candidate address may take to answer `/healthz` before the next is tried.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Records `--url` / `PINCER_URL` for every client of this process.
pub fn set_url(url: Option<String>) {
    let _ = URL.set(url.filter(|u| !u.trim().is_empty()));
}

/// `--url` / `PINCER_URL`, if given.
pub fn url() -> Option<String> {
    URL.get().cloned().flatten()
}

impl Client {
    /// A client for the running gateway: at `--url` / `PINCER_URL` when given; else at
    /// the address `$PINCER_HOME/gateway.json` names, then at the config's address. The
    /// first that answers `/healthz` is used; when none does, the error says where it
    /// looked.
    pub async fn from_config(config: Option<PathBuf>) -> Result<Self, Failure> {
        Self::locate(config).await?.map_err(Failure::from)
    }

    /// [`Client::from_config`], telling a gateway that does not answer (the inner error,
    /// saying where it looked) from a config that cannot be used (the outer one).
    pub async fn locate(config: Option<PathBuf>) -> Result<anyhow::Result<Self>, Failure> {
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
        let http = pincer_core::net::http_client()?;
        let mut looked = Vec::new();
        let candidates = match url() {
            Some(url) => vec![(url.trim_end_matches('/').to_string(), "--url/PINCER_URL")],
            None => {
                let mut candidates = Vec::new();
                let file = sources.home.join(discovery::FILE);
                match discovery::Found::read(&sources.home) {
                    discovery::Found::Live(found) => candidates.push((found.url, "gateway.json")),
                    discovery::Found::Missing => {
                        looked.push(format!("{}: no such file", file.display()))
                    }
                    discovery::Found::Stale(found) => looked.push(format!(
                        "{}: stale (pid {} is not running; it named {})",
                        file.display(),
                        found.pid,
                        found.url
                    )),
                    discovery::Found::Unreadable(why) => {
                        looked.push(format!("{}: {why}", file.display()))
                    }
                }
                candidates.push((
                    local_base(gateway),
                    "the config's gateway.bind/gateway.port",
                ));
                candidates
            }
        };
        for (base, from) in candidates {
            let probe = http
                .get(format!("{base}/healthz"))
                .timeout(PROBE_TIMEOUT)
                .send()
                .await;
            match probe {
                Ok(_) => {
                    return Ok(Ok(Self { base, token, http }));
                }
                Err(e) => looked.push(format!("{base} ({from}): {}", short(&e))),
            }
        }
        if url().is_none() {
            looked.push("--url/PINCER_URL: not set".to_string());
        }
        Ok(Err(anyhow!(
            "no gateway answers; looked at: {}. Is `pincer gateway` running?",
            looked.join("; ")
        )))
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
            "no gateway answers at {} ({}); is `pincer gateway` running?",
            self.base,
            short(&e)
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

/// A reqwest error with its causes, in one line ("error sending request" alone says
/// nothing; "connection refused" does).
fn short(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
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
