//! `pincer sessions list|show KEY`: sessions of a running gateway (`show` takes a unique
//! prefix of a key).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::Value;

use super::Failure;
use super::client::Client;

/// `pincer sessions`.
#[derive(Debug, Args)]
pub struct SessionsArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: SessionsAction,
}

/// Subcommands of `pincer sessions`.
#[derive(Debug, Subcommand)]
pub enum SessionsAction {
    /// Every session: key, agent, turns, state, when it was created and last active (UTC).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One session with its transcript.
    Show {
        /// The session key, or the start of exactly one session's key.
        key: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `pincer sessions ...`.
pub async fn run(config: Option<PathBuf>, args: SessionsArgs) -> Result<(), Failure> {
    let client = Client::from_config(config).await?;
    match args.action {
        SessionsAction::List { json } => {
            let body = client.get_json("/admin/sessions").await?;
            if json {
                out!("{}", serde_json::to_string_pretty(&body)?);
                return Ok(());
            }
            let sessions = body["sessions"].as_array().cloned().unwrap_or_default();
            if sessions.is_empty() {
                out!("no sessions");
            }
            for s in sessions {
                let state = if s["running"].as_bool() == Some(true) {
                    "running"
                } else if s["expired"].as_bool() == Some(true) {
                    "expired"
                } else {
                    "stopped"
                };
                out!(
                    "{}  agent={} turns={} {}  created {}  last active {}",
                    s["key"].as_str().unwrap_or("?"),
                    s["agent"].as_str().unwrap_or("?"),
                    s["turns"],
                    state,
                    time(&s["created_at"]),
                    time(&s["last_active"]),
                );
            }
        }
        SessionsAction::Show { key, json } => {
            let key = unique_key(&client, &key).await?;
            let body = client
                .get_json(&format!("/admin/sessions/{}", encode(&key)))
                .await?;
            if json {
                out!("{}", serde_json::to_string_pretty(&body)?);
                return Ok(());
            }
            out!(
                "{}  agent={} turns={}  created {}  last active {}",
                body["key"].as_str().unwrap_or("?"),
                body["agent"].as_str().unwrap_or("?"),
                body["turns"],
                time(&body["created_at"]),
                time(&body["last_active"]),
            );
            for entry in body["transcript"].as_array().into_iter().flatten() {
                match entry.get("tool") {
                    Some(tool) => out!("[{}] {}", entry["seq"], tool_line(tool, entry)),
                    None if entry.get("summary_through").is_some() => out!(
                        "[{}] summary of the conversation through #{}: {}",
                        entry["seq"],
                        entry["summary_through"],
                        text(&entry["content"])
                    ),
                    None => out!(
                        "[{}] {}: {}",
                        entry["seq"],
                        entry["role"].as_str().unwrap_or("?"),
                        text(&entry["content"])
                    ),
                }
            }
        }
    }
    Ok(())
}

/// A tool call as one line: `tool web_fetch {"url":"…"} -> ok in 1.2 s: <result start>`.
fn tool_line(tool: &Value, entry: &Value) -> String {
    const SHOWN: usize = 160;
    let result: String = text(&entry["content"]).replace('\n', " ");
    let cut: String = result.chars().take(SHOWN).collect();
    let more = if cut.len() < result.len() { "…" } else { "" };
    let outcome = if tool["ok"].as_bool() == Some(true) {
        "ok"
    } else {
        "failed"
    };
    let secs = tool["ms"].as_u64().unwrap_or(0) as f64 / 1000.0;
    format!(
        "tool {} {} -> {outcome} in {secs:.1} s: {cut}{more}",
        text(&tool["name"]),
        text(&tool["arguments"]),
    )
}

/// The one session whose key is `key` or starts with it; several are an error listing
/// them, none leaves the gateway's "no session" answer to the caller.
async fn unique_key(client: &Client, key: &str) -> Result<String, Failure> {
    let body = client.get_json("/admin/sessions").await?;
    let keys: Vec<&str> = body["sessions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["key"].as_str())
        .collect();
    if keys.contains(&key) {
        return Ok(key.to_string());
    }
    let matching: Vec<&str> = keys.into_iter().filter(|k| k.starts_with(key)).collect();
    match matching.as_slice() {
        [one] => Ok((*one).to_string()),
        [] => Ok(key.to_string()),
        many => Err(anyhow::anyhow!(
            "`{key}` starts {} session keys; say which:\n  {}",
            many.len(),
            many.join("\n  ")
        )
        .into()),
    }
}

/// A time in ms since the epoch as `YYYY-MM-DDTHH:MM:SSZ`, or `-`.
fn time(ms: &Value) -> String {
    ms.as_u64()
        .map_or_else(|| "-".to_string(), pincer_core::clock::rfc3339)
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// Percent-encodes a path segment.
pub fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}
