//! `pincer approvals list|revoke`: the standing approvals people gave with `/approve <id>
//! always`, and taking one back (its tool asks again from then on).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use super::client::Client;
use super::{Failure, ago};

/// `pincer approvals`.
#[derive(Debug, Args)]
pub struct ApprovalsArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: ApprovalsAction,
}

/// Subcommands of `pincer approvals`.
#[derive(Debug, Subcommand)]
pub enum ApprovalsAction {
    /// What each agent's tools may do without asking.
    List {
        /// Only this agent's.
        #[arg(long)]
        agent: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Take back AGENT's approval of KEY (for exec, the binary's path as `list` shows it).
    Revoke {
        /// The agent.
        agent: String,
        /// What it was approved for.
        key: String,
        /// The tool.
        #[arg(long, default_value = "exec")]
        tool: String,
    },
}

/// Runs `pincer approvals ...`.
pub async fn run(config: Option<PathBuf>, args: ApprovalsArgs) -> Result<(), Failure> {
    let client = Client::from_config(config).await?;
    match args.action {
        ApprovalsAction::List { agent, json } => {
            let path = match &agent {
                Some(agent) => format!("/admin/approvals?agent={}", super::sessions::encode(agent)),
                None => "/admin/approvals".to_string(),
            };
            let answer = client.get_json(&path).await?;
            if json {
                out!("{}", serde_json::to_string_pretty(&answer)?);
                return Ok(());
            }
            let all = answer["approvals"].as_array().cloned().unwrap_or_default();
            if all.is_empty() {
                out!("no standing approvals");
            }
            for a in &all {
                out!(
                    "{}  {}  {}  (approved {})",
                    a["agent"].as_str().unwrap_or("?"),
                    a["tool"].as_str().unwrap_or("?"),
                    a["key"].as_str().unwrap_or("?"),
                    ago(a["at_ms"].as_u64().unwrap_or(0)),
                );
            }
            if answer["more"] == true {
                out!("(more not shown: narrow with --agent)");
            }
            Ok(())
        }
        ApprovalsAction::Revoke { agent, key, tool } => {
            client
                .post_json(
                    "/admin/approvals/revoke",
                    &json!({"agent": agent, "tool": tool, "key": key}),
                )
                .await?;
            out!("revoked: {agent} asks again before {tool} acts on {key}");
            Ok(())
        }
    }
}
