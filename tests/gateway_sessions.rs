//! Sessions on the real binary: `/session` commands, idle and max-age expiry with short
//! durations, and config edited while running (bindings, a bad edit).

mod common;

use std::time::Duration;

use common::{Gw, TempDir, http_session};
use serde_json::Value;

async fn say(gw: &Gw, user: &str, text: &str) -> String {
    let (status, body) = gw.chat(user, text, None).await.expect("chat");
    assert_eq!(status, 200, "{body}");
    body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn session(gw: &Gw, user: &str) -> Value {
    gw.get("/admin/sessions").await.1["sessions"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["key"] == http_session(user)).cloned())
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn session_commands_are_answered_by_the_session_itself() {
    let home = TempDir::new();
    let gw = Gw::start(home.path(), Some("[sessions]\nmaxAgeHours = \"2h\"\n")).await;
    say(&gw, "c", "first").await;
    say(&gw, "c", "second").await;
    let status = say(&gw, "c", "/session status").await;
    assert!(status.contains(&http_session("c")), "{status}");
    assert!(
        status.contains("agent: main") && status.contains("turns: 2"),
        "{status}"
    );
    assert!(
        status.contains("idle left: 1d") && status.contains("max age left: 1h 59m"),
        "{status}"
    );

    let extended = say(&gw, "c", "/session extend 1h").await;
    assert!(
        extended.starts_with("Extended by 1h.") && extended.contains("max age left: 2h 59m"),
        "{extended}"
    );
    let bad = say(&gw, "c", "/session extend soon").await;
    assert!(bad.contains("`soon` is not a duration"), "{bad}");
    let unknown = say(&gw, "c", "/session fly").await;
    assert!(
        unknown.contains("unknown session command `fly`"),
        "{unknown}"
    );

    let reset = say(&gw, "c", "/new").await;
    assert!(reset.starts_with("Started a new conversation"), "{reset}");
    let status = say(&gw, "c", "/session status").await;
    assert!(status.contains("turns: 0"), "{status}");
    say(&gw, "c", "/session reset").await;
    // The transcript keeps everything; commands are answered by the gateway, not the model.
    let transcript = gw.transcript(&http_session("c")).await;
    assert_eq!(transcript.len(), 18);
    assert_eq!(
        transcript.iter().filter(|e| e["role"] == "system").count(),
        7
    );
}

#[tokio::test]
async fn an_idle_session_ends_its_context_but_keeps_its_transcript() {
    let home = TempDir::new();
    let gw = Gw::start(home.path(), Some("[channels.http]\nidleHours = \"1s\"\n")).await;
    say(&gw, "idle", "remember me").await;
    assert_eq!(session(&gw, "idle").await["running"], true);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let s = session(&gw, "idle").await;
    assert_eq!(s["running"], false, "stopped after its idle time: {s}");
    assert_eq!(s["expired"], true);
    let status = say(&gw, "idle", "/session status").await;
    assert!(status.contains("turns: 0"), "a fresh context: {status}");
    assert_eq!(gw.transcript(&http_session("idle")).await.len(), 4);
}

#[tokio::test]
async fn max_age_ends_a_busy_session_too() {
    let home = TempDir::new();
    let gw = Gw::start(home.path(), Some("[sessions]\nmaxAgeHours = \"2s\"\n")).await;
    say(&gw, "old", "one").await;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        say(&gw, "old", "still here").await; // activity does not reset max age
    }
    tokio::time::sleep(Duration::from_millis(900)).await;
    let s = session(&gw, "old").await;
    assert_eq!(s["running"], false, "{s}");
    let status = say(&gw, "old", "/session status").await;
    assert!(status.contains("turns: 0"), "{status}");
}

async fn model_ids(gw: &Gw) -> Vec<String> {
    let (_, models) = gw.get("/v1/models").await;
    models["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["id"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn a_config_edit_takes_effect_within_a_second_and_a_bad_edit_changes_nothing() {
    let home = TempDir::new();
    let base = "[agents.main]\nsystemPrompt = \"main\"\n";
    let gw = Gw::start(home.path(), Some(base)).await;
    let added = format!("{base}\n[agents.third]\nsystemPrompt = \"third\"\n");
    std::fs::write(home.path().join("pincer.toml"), &added).expect("edit");
    let start = std::time::Instant::now();
    while !model_ids(&gw).await.contains(&"pincer:third".to_string()) {
        assert!(
            start.elapsed() < Duration::from_millis(1500),
            "edit not in force after 1.5 s; log:\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        gw.running_paths()
            .await
            .contains(&"pincer/agents/agent:third".to_string())
    );
    let (status, body) = gw
        .post("/v1/chat/completions", serde_json::json!({"model": "pincer:third", "messages": [{"role": "user", "content": "hi third"}]}))
        .await;
    assert_eq!(status, 200, "{body}");

    // A bad edit: logged, and the config in force stays.
    std::fs::write(
        home.path().join("pincer.toml"),
        format!("{added}\n[agents.broken]\nmodle = 1\n"),
    )
    .expect("edit");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(gw.log().contains("Config edit rejected"), "{}", gw.log());
    assert_eq!(model_ids(&gw).await, ["pincer:main", "pincer:third"]);
    let (status, body) = gw.post("/admin/config/reload", serde_json::json!({})).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("agents.broken.modle"),
        "{body}"
    );
    assert_eq!(say(&gw, "b", "still fine").await, "echo: still fine");

    // Removing an agent stops it.
    std::fs::write(home.path().join("pincer.toml"), base).expect("edit");
    let start = std::time::Instant::now();
    while model_ids(&gw).await.contains(&"pincer:third".to_string()) {
        assert!(
            start.elapsed() < Duration::from_millis(1500),
            "removal not in force"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
