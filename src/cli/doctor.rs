//! `pincer doctor`: checks the config and what it needs without spending anything: the
//! config loads, each agent's provider is configured, each provider answers and accepts
//! each of its keys (a model listing, no tokens spent), secrets resolve, the home
//! directory is writable, the home and the store are private to their owner, each
//! Telegram and Discord token opens its bot (`getMe`, `GET /gateway/bot`), `web_search`
//! has what its back end needs, exec's sandbox works where an agent may run commands (and
//! a config without one is pointed out), and whether a gateway answers.

use std::path::PathBuf;

use clap::Args;

mod channels;
pub(crate) mod exec;
pub(super) mod providers;
mod store;
mod tools;

use super::Failure;
use super::client::Client;
use super::gateway::load_config;
use crate::provider;

/// One finding of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Whether it is fine.
    pub ok: bool,
    /// What was found (never a key).
    pub text: String,
}

/// `pincer doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {}

/// Runs `pincer doctor`.
pub async fn run(config: Option<PathBuf>, _args: DoctorArgs) -> Result<(), Failure> {
    let (sources, loaded) = load_config(config.clone())?;
    let mut problems = 0;
    let mut line = |ok: Option<bool>, text: String| {
        let mark = match ok {
            Some(true) => "ok  ",
            Some(false) => {
                problems += 1;
                "FAIL"
            }
            None => "note",
        };
        out!("[{mark}] {text}");
    };
    match &loaded.file {
        Some(f) => line(Some(true), format!("config {} loads", f.display())),
        None => line(
            Some(true),
            "no config file: built-in defaults (one agent `main` on echo)".into(),
        ),
    }
    for warning in &loaded.warnings {
        line(None, warning.clone());
    }
    let cfg = &loaded.config;
    let secrets = pincer_secrets::Resolved::all(cfg, &sources.home, &sources.env).await;
    let http = pincer_core::net::http_client()?;
    for (id, agent) in &cfg.agents {
        let provider = agent
            .model
            .as_ref()
            .and_then(|m| m.provider_name())
            .unwrap_or_else(|| pincer_providers::echo::NAME.to_string());
        if provider::is_configured(cfg, &provider) {
            line(
                Some(true),
                format!("agent `{id}`: {}", crate::agent::model_label(agent)),
            );
        } else {
            line(
                Some(false),
                format!(
                    "agent `{id}`: provider `{provider}` is not configured (add [providers.{provider}]); its turns answer with an error"
                ),
            );
        }
    }
    for finding in providers::all(cfg, &secrets, &http).await {
        line(Some(finding.ok), finding.text);
    }
    for (kind, _) in cfg.accounts() {
        if matches!(kind, "web" | "http") {
            line(
                Some(true),
                format!("channel {kind}: served on the gateway port"),
            );
        }
    }
    for finding in channels::all(cfg, &secrets, &http).await {
        line(Some(finding.ok), finding.text);
    }
    match tools::web_search(cfg, &secrets) {
        Some(Ok(finding)) => line(Some(finding.ok), finding.text),
        Some(Err(note)) => line(None, note),
        None => {}
    }
    for (ok, text) in exec::all(cfg).await {
        line(ok, text);
    }
    for u in pincer_secrets::refs::uses(cfg) {
        match secrets.get(&u.value) {
            Ok(_) => line(Some(true), format!("secret {} resolves", u.key)),
            Err(e) => line(Some(false), format!("secret {}: {e}", u.key)),
        }
    }
    let home = &sources.home;
    let probe = home.join(".doctor-probe");
    let made = pincer_store::files::create_private_dir(home);
    match made.and_then(|_| std::fs::write(&probe, b"ok")) {
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
            line(Some(true), format!("home {} is writable", home.display()));
        }
        Err(e) => line(
            Some(false),
            format!("home {} is not writable: {e}", home.display()),
        ),
    }
    let store = cfg
        .store
        .path
        .clone()
        .unwrap_or_else(|| home.join("pincer.db"));
    for finding in store::privacy(home, &store) {
        line(Some(finding.ok), finding.text);
    }
    match Client::locate(config).await {
        // No gateway running is a fact, not a problem of the config.
        Ok(Err(not_found)) => line(None, format!("{not_found:#}")),
        Ok(Ok(client)) => match client.get_json("/admin/tree").await {
            Ok(tree) => {
                let ready = tree["ready"].as_bool() == Some(true);
                let state = if ready { "ready" } else { "not ready" };
                line(
                    Some(ready),
                    format!("gateway at {}: {state}", client.base()),
                );
                // What the gateway says is wrong: an agent's key refused upstream, the
                // store, a part that gave up.
                for failing in tree["failing"].as_array().into_iter().flatten() {
                    line(
                        None,
                        format!(
                            "  {}: {}",
                            failing["path"].as_str().unwrap_or("?"),
                            failing["reason"].as_str().unwrap_or("?")
                        ),
                    );
                }
            }
            Err(_) => line(None, format!("no gateway running at {}", client.base())),
        },
        Err(e) => line(Some(false), format!("{:#}", e.error)),
    }
    if problems > 0 {
        return Err(anyhow::anyhow!("{problems} problem(s) found").into());
    }
    Ok(())
}
