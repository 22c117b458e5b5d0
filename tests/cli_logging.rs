//! The gateway's log: a bad `PINCER_LOG` is reported and `info` used; JSON lines carry
//! a turn's request id; no Rust debug text.

mod common;

use std::time::Duration;

use common::{Gw, TempDir, free_port, until};
use pincer_fakes::openai::{OpenAiFake, Script};

#[tokio::test]
async fn a_bad_level_is_reported_and_info_used() {
    let home = TempDir::new();
    let gw = Gw::spawn_env(home.path(), None, free_port(), &[("PINCER_LOG", "warning")]);
    gw.wait_ready(Duration::from_secs(20)).await;
    let log = until(
        "the start-up line",
        &gw,
        Duration::from_secs(5),
        async || {
            let log = gw.log();
            log.contains("Pincer is running").then_some(log)
        },
    )
    .await;
    assert!(
        log.contains("PINCER_LOG=\"warning\" is not a log filter (`warning` is not a level"),
        "{log}"
    );
    assert!(!log.contains("config=None"), "no debug text: {log}");
    assert!(log.contains("config=none (built-in defaults)"), "{log}");
}

#[tokio::test]
async fn json_logs_are_one_object_a_line_with_the_request_id_of_the_turn() {
    let home = TempDir::new();
    let (_gw, log, lines) = one_turn_in_json_logs(&home, None, "logs", "hello logs").await;
    assert!(
        lines
            .iter()
            .all(|l| l["level"].is_string() && l["timestamp"].is_string())
    );
    assert!(lines.iter().any(|l| l["message"] == "Pincer is running: web chat at the address, API at /v1, probes at /healthz and /readyz."), "{log}");
    let turn: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Turn "))
        })
        .collect();
    assert_eq!(turn.len(), 2, "{log}");
    let ids: Vec<&str> = turn
        .iter()
        .map(|l| {
            turn_span(l)["request_id"]
                .as_str()
                .unwrap_or_else(|| panic!("request id in the span: {l}"))
        })
        .collect();
    assert_eq!(ids[0], ids[1], "one id for the turn");
    assert_eq!(turn_span(turn[0])["session"], common::http_session("logs"));
    assert_eq!(turn_span(turn[0])["agent"], "main");
}

/// A gateway logging JSON at debug for `pincer`, after one chat of `user` has ended its
/// turn: the gateway, its log, and the log's lines parsed (each must be one object).
async fn one_turn_in_json_logs(
    home: &TempDir,
    config: Option<&str>,
    user: &str,
    text: &str,
) -> (Gw, String, Vec<serde_json::Value>) {
    let gw = Gw::spawn_env(
        home.path(),
        config,
        free_port(),
        &[
            ("PINCER_LOG_FORMAT", "json"),
            ("PINCER_LOG", "info,pincer=debug"),
        ],
    );
    gw.wait_ready(Duration::from_secs(20)).await;
    gw.chat(user, text, None).await.expect("chat");
    let log = until("the turn's end", &gw, Duration::from_secs(10), async || {
        let log = gw.log();
        log.contains("Turn ended.").then_some(log)
    })
    .await;
    let lines = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    (gw, log, lines)
}

/// The `turn` span of a JSON log line (outer spans, such as ractor's, come first).
fn turn_span(line: &serde_json::Value) -> &serde_json::Value {
    line["spans"]
        .as_array()
        .and_then(|spans| spans.iter().find(|s| s["name"] == "turn"))
        .unwrap_or_else(|| panic!("no turn span: {line}"))
}

#[tokio::test]
async fn model_calls_and_their_retries_log_the_request_id_of_their_turn() {
    let fake = OpenAiFake::start().await;
    // A 500 first: the provider logs the failed attempt, then retries.
    fake.script(Script::http_error(500, None));
    fake.script(Script::tool_call("echo", r#"{"text":"hi"}"#));
    fake.script(Script::text("done"));
    let config = format!(
        "[providers.openai]\nbaseUrl = \"{}\"\napiKey = \"sk-test\"\n\n[response]\ntransport = \"sse\"\n\n[agents.main]\nmodel = \"openai/gpt-4.1\"\nskills = [\"echo\"]\n",
        fake.base_url()
    );
    let home = TempDir::new();
    let (_gw, log, lines) = one_turn_in_json_logs(&home, Some(&config), "ids", "use echo").await;
    let started = lines
        .iter()
        .find(|l| l["message"] == "Turn started.")
        .unwrap_or_else(|| panic!("no start line: {log}"));
    let id = turn_span(started)["request_id"].as_str().expect("an id");
    // Lines the provider logs outside the turn's task name the turn's id as a field.
    let failed: Vec<_> = lines
        .iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("model call failed: 500"))
        })
        .collect();
    assert_eq!(failed.len(), 1, "{log}");
    assert_eq!(failed[0]["request_id"], id, "{log}");
    // One call line per model request of the turn (the tool round makes two), each with it.
    let calls: Vec<_> = lines.iter().filter(|l| l["message"] == "call").collect();
    assert_eq!(calls.len(), 2, "{log}");
    assert!(calls.iter().all(|l| l["request_id"] == id), "{log}");
}
