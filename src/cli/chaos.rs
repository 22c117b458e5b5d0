//! `pincer chaos kill PATH` and `pincer chaos monkey --rate 100/s --duration 60s
//! [--scope GLOB]`: kill actors of a running gateway through its admin API.
//!
//! `kill` refuses the root and the port's actor (`pincer`, `pincer/health`) unless given
//! `--force`. The monkey picks among running actors whose path matches the glob (`*`
//! within a path segment, `**` across segments; default every actor), never those two,
//! kills at the given rate, prints progress each second, and ends with a verdict: kills
//! done, kills missed (no actor of the scope running at that moment, or the one picked
//! ended first), restarts seen, and whether the gateway was ready again within 10 s. A
//! scope that matches no actor at all is an error (exit 2).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::client::Client;
use super::{Failure, usage};
use crate::http::admin::protected;
use pincer_config::duration::parse_duration;

/// `pincer chaos`.
#[derive(Debug, Args)]
pub struct ChaosArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: ChaosAction,
}

/// Subcommands of `pincer chaos`.
#[derive(Debug, Subcommand)]
pub enum ChaosAction {
    /// Kill one actor by path.
    Kill {
        /// e.g. `pincer/channels/channel:web:web/link`.
        path: String,
        /// Kill it even if it is the root (`pincer`, which ends the gateway) or the
        /// port's actor (`pincer/health`), which the gateway otherwise refuses.
        #[arg(long)]
        force: bool,
    },
    /// Kill random actors at a rate for a while.
    Monkey {
        /// Kills per second, e.g. `100/s` or `100`.
        #[arg(long, default_value = "10/s")]
        rate: String,
        /// How long, e.g. `60s`.
        #[arg(long, default_value = "10s")]
        duration: String,
        /// Which paths, e.g. `pincer/channels/**/session:*`.
        #[arg(long, default_value = "pincer/**")]
        scope: String,
    },
}

/// Runs `pincer chaos ...`.
pub async fn run(config: Option<PathBuf>, args: ChaosArgs) -> Result<(), Failure> {
    let client = Client::from_config(config).await?;
    match args.action {
        ChaosAction::Kill { path, force } => {
            client
                .post_json("/admin/actors/kill", &json!({"path": path, "force": force}))
                .await?;
            out!("killed {path}");
            Ok(())
        }
        ChaosAction::Monkey {
            rate,
            duration,
            scope,
        } => {
            let rate = parse_rate(&rate).map_err(usage)?;
            let duration =
                parse_duration(&duration).map_err(|e| usage(anyhow!("--duration: {e}")))?;
            monkey(&client, rate, duration, &scope).await
        }
    }
}

fn parse_rate(text: &str) -> anyhow::Result<f64> {
    let number = text.strip_suffix("/s").unwrap_or(text);
    match number.parse::<f64>() {
        Ok(r) if r > 0.0 && r.is_finite() => Ok(r),
        _ => Err(anyhow!(
            "--rate `{text}` is not a positive rate such as `100/s`"
        )),
    }
}

async fn monkey(
    client: &Client,
    rate: f64,
    duration: Duration,
    scope: &str,
) -> Result<(), Failure> {
    let tree = client.get_json("/admin/tree").await?;
    // A scope that matches no actor (running or not, protected or not) is a typo, not a
    // quiet run of misses.
    let all: Vec<String> = nodes(&tree)
        .iter()
        .filter_map(|n| n["path"].as_str().map(str::to_string))
        .collect();
    if !all.iter().any(|p| glob_match(scope, p)) {
        let examples: Vec<&str> = all.iter().take(6).map(String::as_str).collect();
        return Err(usage(anyhow!(
            "--scope `{scope}` matches no actor of the gateway ({} actors, e.g. {}); `*` is any text within a segment, `**` any segments",
            all.len(),
            examples.join(", ")
        )));
    }
    let before = restarts(&tree);
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    let (mut kills, mut misses) = (0u64, 0u64);
    let mut targets: Vec<String> = Vec::new();
    let mut refreshed = Instant::now() - Duration::from_secs(1);
    let mut next_report = start + Duration::from_secs(1);
    let mut next_kill = start;
    while start.elapsed() < duration {
        if refreshed.elapsed() >= Duration::from_millis(200) {
            // A gateway that does not answer for a moment (its health actor restarting)
            // is what a chaos run expects: try again on the next round.
            if let Ok(tree) = client.get_json("/admin/tree").await {
                targets = running_paths(&tree)
                    .into_iter()
                    // Never the root or the port's actor: the admin API refuses them
                    // without `force`, and a run must not end the gateway it measures.
                    .filter(|p| protected(p).is_none() && glob_match(scope, p))
                    .collect();
            }
            refreshed = Instant::now();
        }
        if targets.is_empty() {
            misses += 1;
        } else {
            let path = targets.swap_remove(fastrand::usize(..targets.len()));
            match client
                .post_json("/admin/actors/kill", &json!({"path": path}))
                .await
            {
                Ok(_) => kills += 1,
                Err(_) => misses += 1, // it ended on its own meanwhile
            }
        }
        if Instant::now() >= next_report {
            out!(
                "{:>4}s  kills {kills}  missed {misses}",
                start.elapsed().as_secs()
            );
            next_report += Duration::from_secs(1);
        }
        next_kill += interval;
        let now = Instant::now();
        if next_kill > now {
            tokio::time::sleep(next_kill - now).await;
        } else {
            next_kill = now; // behind: do not burst to catch up
        }
    }
    let ready_again = wait_ready(client, Duration::from_secs(10)).await;
    let after = restarts(&client.get_json("/admin/tree").await?);
    let seen = after.saturating_sub(before);
    out!(
        "verdict: {kills} kills in {:.1}s ({misses} missed: at that moment no actor in the scope was running, or the one picked ended before the kill), {seen} restarts seen, tree {}",
        start.elapsed().as_secs_f64(),
        if ready_again {
            "ready again"
        } else {
            "NOT ready within 10s"
        }
    );
    if ready_again {
        Ok(())
    } else {
        Err(anyhow!("the gateway did not become ready again").into())
    }
}

async fn wait_ready(client: &Client, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(tree) = client.get_json("/admin/tree").await
            && tree["ready"].as_bool() == Some(true)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

fn walk<'a>(node: &'a Value, out: &mut Vec<&'a Value>) {
    out.push(node);
    for child in node["children"].as_array().into_iter().flatten() {
        walk(child, out);
    }
}

fn nodes(tree: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for node in tree["tree"].as_array().into_iter().flatten() {
        walk(node, &mut out);
    }
    out
}

fn running_paths(tree: &Value) -> Vec<String> {
    nodes(tree)
        .into_iter()
        .filter(|n| n["state"].as_str() == Some("running"))
        .filter_map(|n| n["path"].as_str().map(str::to_string))
        .collect()
}

fn restarts(tree: &Value) -> u64 {
    nodes(tree)
        .iter()
        .map(|n| n["restarts_total"].as_u64().unwrap_or(0))
        .sum()
}

/// Matches `path` against `pattern`: `*` is any text within one segment, `**` any number
/// of whole segments.
pub fn glob_match(pattern: &str, path: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('/').collect();
    let path: Vec<&str> = path.split('/').collect();
    match_segments(&pattern, &path)
}

fn match_segments(pattern: &[&str], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((&"**", rest)) => (0..=path.len()).any(|i| match_segments(rest, &path[i..])),
        Some((first, rest)) => path
            .split_first()
            .is_some_and(|(p, prest)| segment_match(first, p) && match_segments(rest, prest)),
    }
}

fn segment_match(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((prefix, rest)) => {
            let Some(after) = text.strip_prefix(prefix) else {
                return false;
            };
            (0..=after.len())
                .filter(|i| after.is_char_boundary(*i))
                .any(|i| segment_match(rest, &after[i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_segments_and_subtrees() {
        assert!(glob_match(
            "pincer/**",
            "pincer/channels/channel:web:web/link"
        ));
        assert!(glob_match("pincer/**", "pincer"));
        assert!(glob_match(
            "pincer/channels/*/sessions/session:*",
            "pincer/channels/channel:http:http/sessions/session:agent:main"
        ));
        assert!(!glob_match(
            "pincer/channels/*/link",
            "pincer/channels/a/b/link"
        ));
        assert!(glob_match(
            "**/link",
            "pincer/channels/channel:web:web/link"
        ));
        assert!(glob_match(
            "pincer/agents/agent:*/turn:*",
            "pincer/agents/agent:main/turn:1234"
        ));
        assert!(!glob_match("pincer/router", "pincer/routers"));
    }

    #[test]
    fn rates_read_with_or_without_unit() {
        assert_eq!(parse_rate("100/s").ok(), Some(100.0));
        assert_eq!(parse_rate("2.5").ok(), Some(2.5));
        assert!(parse_rate("0/s").is_err());
        assert!(parse_rate("fast").is_err());
    }
}
