//! Sessions on the real binary: `/session` commands, idle and max-age expiry with short
//! durations, and config edited while running (bindings, a bad edit).

mod common;

use std::time::{Duration, Instant};

use common::{Gw, TempDir, http_session, until};
use serde_json::Value;

async fn session(gw: &Gw, user: &str) -> Value {
    gw.get("/admin/sessions").await.1["sessions"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["key"] == http_session(user)).cloned())
        .unwrap_or(Value::Null)
}

/// Waits until `user`'s session is no longer running; its record.
async fn stopped(gw: &Gw, user: &str) -> Value {
    until(
        &format!("the session of {user} to stop"),
        gw,
        Duration::from_secs(10),
        async || {
            let s = session(gw, user).await;
            if s["running"] == false { Ok(s) } else { Err(s) }
        },
    )
    .await
}

#[tokio::test]
async fn session_commands_are_answered_by_the_session_itself() {
    let home = TempDir::new();
    let gw = Gw::start(home.path(), Some("[sessions]\nmaxAgeHours = \"2h\"\n")).await;
    gw.say("c", "first").await;
    gw.say("c", "second").await;
    let status = gw.say("c", "/session status").await;
    assert!(status.contains(&http_session("c")), "{status}");
    assert!(
        status.contains("agent: main") && status.contains("turns: 2"),
        "{status}"
    );
    // Times left are shown to the second, rounded down: a millisecond after the message
    // the idle time left is 23h 59m 59.999s, which reads "23h 59m".
    assert!(
        (status.contains("idle left: 1d") || status.contains("idle left: 23h 59m"))
            && status.contains("max age left: 1h 59m"),
        "{status}"
    );

    let extended = gw.say("c", "/session extend 1h").await;
    assert!(
        extended.starts_with("Extended by 1h.") && extended.contains("max age left: 2h 59m"),
        "{extended}"
    );
    let bad = gw.say("c", "/session extend soon").await;
    assert!(bad.contains("`soon` is not a duration"), "{bad}");
    let unknown = gw.say("c", "/session fly").await;
    assert!(
        unknown.contains("unknown session command `fly`"),
        "{unknown}"
    );

    let reset = gw.say("c", "/new").await;
    assert!(reset.starts_with("Started a new conversation"), "{reset}");
    let status = gw.say("c", "/session status").await;
    assert!(status.contains("turns: 0"), "{status}");
    gw.say("c", "/session reset").await;
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
    let sent = Instant::now();
    gw.say("idle", "remember me").await;
    assert_eq!(session(&gw, "idle").await["running"], true);
    let s = stopped(&gw, "idle").await;
    // Idle from its last activity, which came after `sent`: never sooner than 1 s.
    assert!(
        sent.elapsed() >= Duration::from_secs(1),
        "stopped before its idle time: {:?} after the message",
        sent.elapsed()
    );
    assert_eq!(s["expired"], true);
    let status = gw.say("idle", "/session status").await;
    assert!(status.contains("turns: 0"), "a fresh context: {status}");
    assert_eq!(gw.transcript(&http_session("idle")).await.len(), 4);
}

#[tokio::test]
async fn max_age_ends_a_busy_session_too() {
    let home = TempDir::new();
    let gw = Gw::start(home.path(), Some("[sessions]\nmaxAgeHours = \"2s\"\n")).await;
    let created = Instant::now();
    gw.say("old", "one").await;
    // Busy for its first 1.5 s, a message every 300 ms: activity does not reset max age.
    let mut last = created;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await; // the pace of the activity
        if created.elapsed() >= Duration::from_millis(1500) {
            break;
        }
        last = Instant::now();
        gw.say("old", "still here").await;
    }
    stopped(&gw, "old").await;
    let (lived, idle) = (created.elapsed(), last.elapsed());
    assert!(
        lived >= Duration::from_secs(2),
        "stopped before its max age: {lived:?} after the first message"
    );
    assert!(
        idle < Duration::from_secs(2),
        "ended {idle:?} after the last message, {lived:?} after the first: activity reset max age"
    );
    let status = gw.say("old", "/session status").await;
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
    // Noticed within a second, like a good edit.
    until(
        "the bad edit to be rejected",
        &gw,
        Duration::from_millis(1500),
        async || gw.log().contains("Config edit rejected").then_some(()),
    )
    .await;
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
    assert_eq!(gw.say("b", "still fine").await, "echo: still fine");

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
