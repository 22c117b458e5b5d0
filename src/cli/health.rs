//! `pincer health [--ready] [--url URL]`: asks a gateway's probe, for container
//! healthchecks (a minimal image has no shell and no curl, so the binary checks itself).
//!
//! `GET /healthz` (alive), or `/readyz` with `--ready`, of the gateway at `--url`, else
//! `PINCER_URL`, else the address the config gives the gateway (an unspecified bind such
//! as `0.0.0.0` is asked on loopback). No token is sent: the probes need none. Exit 0 when
//! the probe answers 200, else 1, never 2 (Docker reserves it), with one line saying what
//! was found.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;
use clap::Args;
use serde_json::Value;

use super::Failure;
use super::client::local_base;
use super::gateway::load_config;

/// How long the probe may take. Both probes answer from a snapshot without asking any
/// actor, in well under a millisecond; a gateway that takes seconds is not healthy.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// `pincer health`.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Ask `/readyz` (ready to take traffic) instead of `/healthz` (alive). The gateway
    /// is the one the global `--url` (or `PINCER_URL`) names, else the configured bind
    /// address and port.
    #[arg(long)]
    pub ready: bool,
}

/// Runs `pincer health`.
pub async fn run(config: Option<PathBuf>, args: HealthArgs) -> Result<(), Failure> {
    let probe = if args.ready { "readyz" } else { "healthz" };
    // `--url` is the CLI's global flag (with `PINCER_URL`), as for every command.
    let (base, note) = match super::client::url() {
        Some(url) => (checked_base(&url)?, None),
        None => configured_base(config),
    };
    let url = format!("{}/{probe}", base.trim_end_matches('/'));
    let http = pincer_core::net::client_builder()
        // A probe of this host's gateway: never through a proxy from the environment.
        .no_proxy()
        .timeout(PROBE_TIMEOUT)
        .build()
        .map_err(|e| anyhow!("cannot build the HTTP client: {e}"))?;
    let note = note.map(|n| format!(" ({n})")).unwrap_or_default();
    let response = match http.get(&url).send().await {
        Ok(response) => response,
        Err(e) if e.is_timeout() => {
            return Err(anyhow!(
                "{url}: no answer within {} s{note}",
                PROBE_TIMEOUT.as_secs()
            )
            .into());
        }
        Err(e) => {
            return Err(anyhow!(
                "{url}: no gateway answers ({}){note}",
                pincer_core::net::without_url(&e)
            )
            .into());
        }
    };
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let word = body["status"].as_str().unwrap_or("no status");
    if status == reqwest::StatusCode::OK {
        println!("{url}: {} {word}{note}", status.as_u16());
        return Ok(());
    }
    Err(anyhow!("{url}: {} {word}{}{note}", status.as_u16(), failing(&body)).into())
}

/// `http://host:port[/prefix]` as given, once it is an http(s) URL with a host.
fn checked_base(url: &str) -> Result<String, Failure> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| anyhow!("--url `{url}` is not a URL ({e}); e.g. http://127.0.0.1:18789"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(anyhow!(
            "--url `{url}` is not an http(s) URL with a host; e.g. http://127.0.0.1:18789"
        )
        .into());
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(
            anyhow!("--url `{url}` has a query or fragment; give the gateway's base URL").into(),
        );
    }
    Ok(url.to_string())
}

/// Where the config says the gateway listens. A config that does not load (an edit gone
/// wrong while the gateway runs on its last good one) is no reason to call a gateway
/// unhealthy: the default address is asked, and the line says why.
fn configured_base(config: Option<PathBuf>) -> (String, Option<String>) {
    match load_config(config) {
        Ok((_, loaded)) => (local_base(&loaded.config.gateway), None),
        Err(failure) => {
            let defaults = pincer_config::GatewayConfig::default();
            (
                local_base(&defaults),
                Some(format!(
                    "the config did not load, so the default address was asked: {:#}",
                    failure.error
                )),
            )
        }
    }
}

/// `: pincer/agents/agent:main (why); ...` from a readiness body, when it names them
/// (it does for a caller on loopback).
fn failing(body: &Value) -> String {
    let parts: Vec<String> = body["failing"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            format!(
                "{} ({})",
                f["path"].as_str().unwrap_or("?"),
                f["reason"].as_str().unwrap_or("")
            )
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(": {}", parts.join("; "))
    }
}
