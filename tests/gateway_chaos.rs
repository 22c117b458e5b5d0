//! Killing any actor in the middle of a turn loses nothing and answers nothing twice: the
//! client (retrying with its Idempotency-Key, as a careful client does) gets exactly one
//! reply, and the transcript holds exactly one answer for the message.

mod common;

use std::time::Duration;

use common::{Gw, TempDir, answers_per_inbox, http_session};
use serde_json::Value;

/// Slow enough that every kill lands mid-turn: 40 chunks, 25 ms apart.
const SLOW_ECHO: &str = "[providers.echo]\nchunkSize = 1\nchunkDelayMs = 25\n";

/// Starts a turn, kills what `target` names once the turn is running, and checks the
/// single reply.
async fn kill_mid_turn(gw: &Gw, user: &str, target: impl Fn(&[String]) -> Option<String>) {
    let text = format!("message for {user} that takes a while");
    let key = format!("key-{user}");
    let client = {
        let (gw_url, token, text, key, user) = (
            gw.url(""),
            gw.token(),
            text.clone(),
            key.clone(),
            user.to_string(),
        );
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            loop {
                let r = http
                    .post(format!("{gw_url}/v1/chat/completions"))
                    .bearer_auth(&token)
                    .header("Idempotency-Key", &key)
                    .json(&serde_json::json!({"model": "main", "user": user, "messages": [{"role": "user", "content": text}]}))
                    .send()
                    .await;
                if let Ok(r) = r
                    && r.status() == 200
                    && let Ok(body) = r.json::<Value>().await
                {
                    return body["choices"][0]["message"]["content"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    // Wait until the turn runs, then kill.
    let mut killed = None;
    for _ in 0..200 {
        let paths = gw.running_paths().await;
        if paths.iter().any(|p| p.contains("/turn:"))
            && let Some(path) = target(&paths)
        {
            assert_eq!(gw.kill(&path).await, 200, "kill {path}");
            killed = Some(path);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let killed = killed.expect("a turn was running and the target existed");
    let reply = tokio::time::timeout(Duration::from_secs(30), client)
        .await
        .unwrap_or_else(|_| panic!("no reply after killing {killed}; log:\n{}", gw.log()))
        .expect("client task");
    assert_eq!(reply, format!("echo: {text}"), "after killing {killed}");
    gw.wait_ready(Duration::from_secs(10)).await;
    let transcript = gw.transcript(&http_session(user)).await;
    let answers = answers_per_inbox(&transcript);
    assert_eq!(
        answers.len(),
        1,
        "one message answered after killing {killed}: {transcript:?}"
    );
    assert!(
        answers.values().all(|n| *n == 1),
        "answered twice after killing {killed}: {transcript:?}"
    );
}

fn exact(path: &'static str) -> impl Fn(&[String]) -> Option<String> {
    move |paths| paths.iter().any(|p| p == path).then(|| path.to_string())
}

fn containing(part: &'static str) -> impl Fn(&[String]) -> Option<String> {
    move |paths| paths.iter().find(|p| p.contains(part)).cloned()
}

#[tokio::test]
async fn killing_any_actor_kind_mid_turn_gives_exactly_one_reply() {
    let home = TempDir::new();
    let gw = Gw::start(home.path(), Some(SLOW_ECHO)).await;
    kill_mid_turn(&gw, "turn", containing("/turn:")).await;
    kill_mid_turn(&gw, "agent", exact("pincer/agents/agent:main")).await;
    kill_mid_turn(&gw, "agents", exact("pincer/agents")).await;
    kill_mid_turn(&gw, "provider", exact("pincer/providers/provider:echo")).await;
    kill_mid_turn(&gw, "providers", exact("pincer/providers")).await;
    kill_mid_turn(
        &gw,
        "session",
        containing("/session:agent:main:http:http:user:session"),
    )
    .await;
    kill_mid_turn(
        &gw,
        "sessions",
        exact("pincer/channels/channel:http:http/sessions"),
    )
    .await;
    kill_mid_turn(&gw, "link", exact("pincer/channels/channel:http:http/link")).await;
    kill_mid_turn(&gw, "account", exact("pincer/channels/channel:http:http")).await;
    kill_mid_turn(&gw, "channels", exact("pincer/channels")).await;
    kill_mid_turn(&gw, "router", exact("pincer/router")).await;
    kill_mid_turn(&gw, "store", exact("pincer/store")).await;
    kill_mid_turn(&gw, "config", exact("pincer/config")).await;
    kill_mid_turn(&gw, "secrets", exact("pincer/secrets")).await;
    kill_mid_turn(&gw, "health", exact("pincer/health")).await;
}

#[tokio::test]
async fn a_reply_committed_by_a_session_killed_before_handing_it_over_still_reaches_the_waiting_client()
 {
    // Sessions of new conversations are killed while they answer: some die between the
    // commit and the hand-over, leaving the reply only in the store.
    let home = TempDir::new();
    let gw = Gw::start(home.path(), None).await;
    for round in 0..3 {
        let clients: Vec<_> = (0..10)
            .map(|i| {
                gw.spawn_chat(
                    &format!("r{round}-{i}"),
                    &format!("round {round} message {i}"),
                    None,
                )
            })
            .collect();
        gw.kill("pincer/channels/channel:http:http/sessions").await;
        for (i, client) in clients.into_iter().enumerate() {
            let body = tokio::time::timeout(Duration::from_secs(15), client)
                .await
                .unwrap_or_else(|_| {
                    panic!("round {round} message {i}: no reply; log:\n{}", gw.log())
                })
                .expect("client task")
                .expect("a reply");
            assert_eq!(
                body["choices"][0]["message"]["content"],
                format!("echo: round {round} message {i}"),
                "{body}"
            );
        }
        gw.wait_ready(Duration::from_secs(10)).await;
    }
    // Marking a reply delivered is bookkeeping the store may hold a few milliseconds to
    // commit with other writes: it must reach zero, not at once.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        let metrics = gw.get_text("/metrics").await;
        if metrics.contains("pincer_inbox_undelivered 0") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
