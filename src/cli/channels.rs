//! `pincer channels list|add` and `pincer pairing list|approve`.
//!
//! `add` writes the account (and, with `--bind-agent`, its binding) to the config file,
//! keeping its comments; a running gateway is asked to reload, which starts the account
//! without a restart. `list` shows each account's link as the running gateway sees it.

use std::path::PathBuf;

use anyhow::anyhow;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use super::client::Client;
use super::gateway::load_config;
use super::{Failure, ago, usage};
use pincer_config::edit::BindTarget;

/// `pincer channels`.
#[derive(Debug, Args)]
pub struct ChannelsArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: ChannelsAction,
}

/// Subcommands of `pincer channels`.
#[derive(Debug, Subcommand)]
pub enum ChannelsAction {
    /// Every account: connected or not, since when, last error.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add a Telegram or Discord account.
    Add(AddArgs),
}

/// `pincer channels add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// Channel type.
    #[arg(long = "type", value_enum)]
    pub kind: Kind,
    /// Account id (unique across channels).
    #[arg(long)]
    pub account: String,
    /// The bot token as a secret ref (`env:TELEGRAM_TOKEN`, `file:/telegram`, ...).
    #[arg(long)]
    pub token_ref: String,
    /// Upstream base URL (a local Bot API server, a proxy).
    #[arg(long)]
    pub api_base: Option<String>,
    /// Telegram only: `poll` (default) or `webhook`.
    #[arg(long)]
    pub mode: Option<String>,
    /// Telegram webhook mode: the public URL that reaches `/telegram/<account>`.
    #[arg(long)]
    pub webhook_url: Option<String>,
    /// Bind this agent to the new account.
    #[arg(long)]
    pub bind_agent: Option<String>,
}

/// Channel types `add` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// A Telegram bot.
    Telegram,
    /// A Discord bot.
    Discord,
}

/// `pincer pairing`.
#[derive(Debug, Args)]
pub struct PairingArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: PairingAction,
}

/// Subcommands of `pincer pairing`.
#[derive(Debug, Subcommand)]
pub enum PairingAction {
    /// Pending and approved DM pairings.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Let the sender who got CODE talk to the bot.
    Approve {
        /// The code the sender was given.
        code: String,
    },
}

/// Runs `pincer channels ...`.
pub async fn run(config: Option<PathBuf>, args: ChannelsArgs) -> Result<(), Failure> {
    match args.action {
        ChannelsAction::List { json } => list(config, json).await,
        ChannelsAction::Add(add_args) => add(config, add_args).await,
    }
}

/// Runs `pincer pairing ...`.
pub async fn run_pairing(config: Option<PathBuf>, args: PairingArgs) -> Result<(), Failure> {
    let client = Client::from_config(config).await?;
    match args.action {
        PairingAction::List { json } => {
            let answer = client.get_json("/admin/pairing").await?;
            if json {
                out!("{}", serde_json::to_string_pretty(&answer)?);
                return Ok(());
            }
            let all = answer["pairings"].as_array().cloned().unwrap_or_default();
            if all.is_empty() {
                out!("no pairings yet");
            }
            for p in all {
                let state = if p["approved_at_ms"].is_null() {
                    "pending"
                } else {
                    "approved"
                };
                out!(
                    "{}  {}  {} (user {}) on {}",
                    p["code"].as_str().unwrap_or("?"),
                    state,
                    p["name"].as_str().unwrap_or("?"),
                    p["user"].as_str().unwrap_or("?"),
                    p["account"].as_str().unwrap_or("?"),
                );
            }
            Ok(())
        }
        PairingAction::Approve { code } => {
            let answer = client
                .post_json("/admin/pairing/approve", &json!({ "code": code }))
                .await?;
            let p = &answer["pairing"];
            out!(
                "approved {} (user {}) on {}",
                p["name"].as_str().unwrap_or("?"),
                p["user"].as_str().unwrap_or("?"),
                p["account"].as_str().unwrap_or("?")
            );
            Ok(())
        }
    }
}

async fn list(config: Option<PathBuf>, json: bool) -> Result<(), Failure> {
    let (_, loaded) = load_config(config.clone())?;
    let running = match Client::from_config(config).await {
        Ok(client) => client.get_json("/admin/channels").await.ok(),
        Err(_) => None,
    };
    let accounts: Vec<Value> = match &running {
        Some(answer) => answer["accounts"].as_array().cloned().unwrap_or_default(),
        None => loaded
            .config
            .accounts()
            .into_iter()
            .map(|(kind, id)| json!({"account": id, "type": kind, "connected": false, "gateway": "not running"}))
            .collect(),
    };
    if json {
        out!(
            "{}",
            serde_json::to_string_pretty(&json!({ "accounts": accounts }))?
        );
        return Ok(());
    }
    for a in &accounts {
        let id = a["account"].as_str().unwrap_or("?");
        let kind = a["type"].as_str().unwrap_or("?");
        let state = if running.is_none() {
            "gateway not running".to_string()
        } else {
            let connected = a["connected"].as_bool() == Some(true);
            let mut s = if connected {
                "connected"
            } else {
                "not connected"
            }
            .to_string();
            if let Some(since) = a["since"].as_u64().filter(|s| *s > 0) {
                s.push_str(&format!(" since {}", ago(since)));
            }
            if let Some(mode) = a["mode"].as_str() {
                s.push_str(&format!(" ({mode})"));
            }
            if let Some(error) = a["fatal"].as_str().or(a["last_error"].as_str()) {
                s.push_str(&format!("; last error: {error}"));
            }
            s
        };
        out!("{id:<20} {kind:<9} {state}");
    }
    Ok(())
}

async fn add(config: Option<PathBuf>, args: AddArgs) -> Result<(), Failure> {
    let kind = match args.kind {
        Kind::Telegram => "telegram",
        Kind::Discord => "discord",
    };
    if kind == "discord" && (args.mode.is_some() || args.webhook_url.is_some()) {
        return Err(usage(anyhow!(
            "--mode and --webhook-url are Telegram settings"
        )));
    }
    let mut extra: Vec<(&str, &str)> = Vec::new();
    if let Some(base) = &args.api_base {
        extra.push(("apiBase", base));
    }
    if let Some(mode) = &args.mode {
        extra.push(("mode", mode));
    }
    if let Some(url) = &args.webhook_url {
        extra.push(("webhookUrl", url));
    }
    let change = |text: &str| {
        let (text, ()) =
            pincer_config::edit::add_account(text, kind, &args.account, &args.token_ref, &extra)?;
        match &args.bind_agent {
            Some(agent) => {
                let target = BindTarget::account(args.account.clone());
                let (text, _) = pincer_config::edit::bind(&text, agent, &target)?;
                Ok((text, ()))
            }
            None => Ok((text, ())),
        }
    };
    let report = |(), file: &str| {
        out!("added {kind} account {} to {file}", args.account);
        if let Some(agent) = &args.bind_agent {
            out!("bound {agent} → {}", args.account);
        }
    };
    super::agents::edit(config.clone(), change, report, args.bind_agent.clone())?;
    // A running gateway would notice within a second; asking makes it now, and says so.
    if let Ok(client) = Client::from_config(config).await
        && let Ok(answer) = client.post_json("/admin/config/reload", &json!({})).await
    {
        let started = answer
            .pointer("/reload/accounts_added")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(args.account.as_str())));
        if started {
            out!("started on the running gateway at {}", client.base());
        }
    }
    Ok(())
}
