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
    /// Sessions, a page at a time in key order: key, agent, turns, state (live,
    /// hibernated, ended), when it was created and last active (UTC).
    List {
        /// Sessions per page (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Where to go on: the `next` cursor the previous page printed.
        #[arg(long)]
        cursor: Option<String>,
        /// Only this agent's sessions.
        #[arg(long)]
        agent: Option<String>,
        /// Only this channel's (web, http, telegram, discord).
        #[arg(long)]
        channel: Option<String>,
        /// Only this account's.
        #[arg(long)]
        account: Option<String>,
        /// Only sessions in this state.
        #[arg(long, value_parser = ["live", "hibernated", "ended"])]
        state: Option<String>,
        /// Print JSON (the page as the gateway gives it).
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
        SessionsAction::List {
            limit,
            cursor,
            agent,
            channel,
            account,
            state,
            json,
        } => {
            let mut query = vec![format!("limit={limit}")];
            for (name, value) in [
                ("cursor", cursor),
                ("agent", agent),
                ("channel", channel),
                ("account", account),
                ("state", state),
            ] {
                if let Some(value) = value {
                    query.push(format!("{name}={}", encode(&value)));
                }
            }
            let body = client
                .get_json(&format!("/admin/sessions?{}", query.join("&")))
                .await?;
            if json {
                out!("{}", serde_json::to_string_pretty(&body)?);
                return Ok(());
            }
            let sessions = body["sessions"].as_array().cloned().unwrap_or_default();
            if sessions.is_empty() {
                out!("no sessions");
            }
            for s in sessions {
                let state = s["state"].as_str().unwrap_or("?");
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
            out!(
                "{} live, {} hibernated in all",
                body["live"],
                body["hibernated"]
            );
            if let Some(next) = body["next_cursor"].as_str() {
                out!("more: pincer sessions list --cursor {next}");
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
    // The keys that start with it, by the store's key index (at most a page of them).
    let body = client
        .get_json(&format!("/admin/sessions?limit=50&prefix={}", encode(key)))
        .await?;
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
