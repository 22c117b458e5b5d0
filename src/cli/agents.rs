//! `pincer agents bindings|bind|unbind`: bindings read from the config, activity from a
//! running gateway, edits written to the config file keeping its comments (a running
//! gateway picks them up within a second).

use std::path::PathBuf;

use anyhow::anyhow;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::client::Client;
use super::gateway::load_config;
use super::{Failure, usage};
use pincer_config::edit::BindTarget;
use pincer_config::{Binding, Config, load};

/// `pincer agents`.
#[derive(Debug, Args)]
pub struct AgentsArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: AgentsAction,
}

/// Subcommands of `pincer agents`.
#[derive(Debug, Subcommand)]
pub enum AgentsAction {
    /// List bindings: `agent → target (active)`.
    Bindings {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Bind an agent to an account (or a whole channel).
    Bind(TargetArgs),
    /// Remove bindings.
    Unbind {
        /// What to unbind.
        #[command(flatten)]
        target: TargetArgs,
        /// Every binding of the agent (or every binding, without --agent).
        #[arg(long)]
        all: bool,
    },
}

/// Who and where.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// The agent id.
    #[arg(long)]
    pub agent: Option<String>,
    /// An account id.
    #[arg(long, conflicts_with = "bind")]
    pub account: Option<String>,
    /// `CHANNEL[:ACCOUNT]`, e.g. `telegram` or `telegram:telegram-main`.
    #[arg(long)]
    pub bind: Option<String>,
}

impl TargetArgs {
    fn target(&self) -> Result<Option<BindTarget>, Failure> {
        match (&self.account, &self.bind) {
            (Some(account), _) => Ok(Some(BindTarget::account(account.clone()))),
            (None, Some(bind)) => Ok(Some(BindTarget::parse_bind(bind).map_err(usage)?)),
            (None, None) => Ok(None),
        }
    }
}

/// Runs `pincer agents ...`.
pub async fn run(config: Option<PathBuf>, args: AgentsArgs) -> Result<(), Failure> {
    match args.action {
        AgentsAction::Bindings { json } => bindings(config, json).await,
        AgentsAction::Bind(t) => {
            let agent = t
                .agent
                .clone()
                .ok_or_else(|| usage(anyhow!("--agent is required")))?;
            let target = t
                .target()?
                .ok_or_else(|| usage(anyhow!("give --account ACC or --bind CHANNEL[:ACCOUNT]")))?;
            edit(
                config,
                |text| pincer_config::edit::bind(text, &agent, &target),
                |added: bool, file| {
                    if added {
                        out!("bound {agent} → {} in {}", describe_target(&target), file);
                    } else {
                        out!(
                            "{agent} → {} is already bound in {}",
                            describe_target(&target),
                            file
                        );
                    }
                },
                Some(agent.clone()),
            )
        }
        AgentsAction::Unbind { target, all } => {
            let what = target.target()?;
            if what.is_none() && !all {
                return Err(usage(anyhow!("give --account, --bind or --all")));
            }
            let agent = target.agent.clone();
            edit(
                config,
                |text| pincer_config::edit::unbind(text, agent.as_deref(), what.as_ref(), all),
                |removed: usize, file| {
                    out!(
                        "removed {removed} binding{} from {file}",
                        if removed == 1 { "" } else { "s" }
                    );
                },
                None,
            )
        }
    }
}

fn describe_target(t: &BindTarget) -> String {
    match (&t.channel, &t.account) {
        (Some(c), Some(a)) => format!("{c}:{a}"),
        (None, Some(a)) => a.clone(),
        (Some(c), None) => format!("channel {c}"),
        (None, None) => "nothing".into(),
    }
}

/// Applies `change` to the config file; a result that does not load is rolled back.
/// `must_exist` names an agent the edit refers to.
pub(super) fn edit<T>(
    config: Option<PathBuf>,
    change: impl FnOnce(&str) -> Result<(String, T), pincer_config::edit::EditError>,
    report: impl FnOnce(T, &str),
    must_exist: Option<String>,
) -> Result<(), Failure> {
    let (mut sources, loaded) = load_config(config)?;
    if let Some(agent) = must_exist
        && !loaded.config.agents.contains_key(&agent)
    {
        return Err(usage(anyhow!(
            "no agent `{agent}` in the config (agents: {})",
            loaded
                .config
                .agents
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let file = sources
        .file
        .clone()
        .unwrap_or_else(|| sources.home.join("pincer.toml"));
    let before = std::fs::read_to_string(&file).ok();
    let result = pincer_config::edit::edit_file(&file, change).map_err(usage)?;
    sources.file = Some(file.clone());
    let after = match load(&sources) {
        Ok(after) => after,
        Err(e) => {
            // Put the file back as it was: the CLI never leaves a config that does not load.
            match &before {
                Some(text) => std::fs::write(&file, text)?,
                None => std::fs::remove_file(&file)?,
            }
            return Err(usage(anyhow!(
                "the edit would make the config invalid, nothing changed: {e}"
            )));
        }
    };
    report(result, &file.display().to_string());
    // What the edit made questionable (a binding to an account no channel has).
    for warning in after
        .warnings
        .iter()
        .filter(|w| !loaded.warnings.contains(w))
    {
        eprintln!("warning: {warning}");
    }
    Ok(())
}

async fn bindings(config: Option<PathBuf>, json: bool) -> Result<(), Failure> {
    let (_, loaded) = load_config(config.clone())?;
    // Activity needs a running gateway; without one, bindings are still listed.
    let tree = match Client::from_config(config).await {
        Ok(client) => client.get_json("/admin/tree").await.ok(),
        Err(_) => None,
    };
    let rows = rows(&loaded.config, tree.as_ref());
    if json {
        out!(
            "{}",
            serde_json::to_string_pretty(&json!({"bindings": rows}))?
        );
        return Ok(());
    }
    if rows.is_empty() {
        out!("no bindings; every message goes to the default agent");
    }
    for row in &rows {
        out!(
            "{} → {} ({})",
            row["agent"].as_str().unwrap_or("?"),
            row["target"].as_str().unwrap_or("?"),
            row["status"].as_str().unwrap_or("?")
        );
    }
    if let Some(default) = loaded.config.default_agent() {
        out!("{default} → everything else (default agent)");
    }
    Ok(())
}

fn rows(config: &Config, tree: Option<&Value>) -> Vec<Value> {
    config
        .bindings
        .iter()
        .map(|b| {
            let target = target_text(b);
            let status = match (tree, account_of(config, b)) {
                (None, _) => "gateway not running".to_string(),
                (Some(_), None) => "channel-wide".to_string(),
                (Some(tree), Some((kind, account))) => if link_running(tree, kind, &account) {
                    "active"
                } else {
                    "inactive"
                }
                .to_string(),
            };
            json!({"agent": b.agent, "target": target, "status": status, "match": b.matches})
        })
        .collect()
}

fn target_text(b: &Binding) -> String {
    let m = &b.matches;
    let mut parts = Vec::new();
    if let Some(a) = &m.account {
        parts.push(a.clone());
    } else if let Some(c) = &m.channel {
        parts.push(format!("channel {c}"));
    }
    if let Some(p) = &m.peer {
        parts.push(format!("{} {}", p.kind, p.id));
    }
    if let Some(g) = &m.guild {
        parts.push(format!("guild {g}"));
    }
    if let Some(t) = &m.team {
        parts.push(format!("team {t}"));
    }
    parts.join(", ")
}

fn account_of(config: &Config, b: &Binding) -> Option<(&'static str, String)> {
    let account = b.matches.account.as_deref()?;
    config
        .accounts()
        .into_iter()
        .find(|(_, id)| *id == account)
        .map(|(kind, id)| (kind, id.to_string()))
}

fn link_running(tree: &Value, kind: &str, account: &str) -> bool {
    let want = pincer_core::paths::link(kind, account);
    fn find(node: &Value, want: &str) -> Option<bool> {
        if node["path"].as_str() == Some(want) {
            return Some(node["state"].as_str() == Some("running"));
        }
        node["children"]
            .as_array()?
            .iter()
            .find_map(|c| find(c, want))
    }
    tree["tree"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|n| find(n, &want))
        .unwrap_or(false)
}
