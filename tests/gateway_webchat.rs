//! The web chat's WebSocket on the real binary: agents and the tree on connect, a
//! streamed reply, a resend answered from the inbox, bindings edited live routing the next
//! unaddressed message, and the tree pushed again after a kill.

mod common;

use std::time::Duration;

use common::web::{CLIENT, connect, next_frame, send, until};
use common::{Gw, TempDir};
use serde_json::{Value, json};

/// The key of the test's browser's session `session` with `agent`.
fn key(agent: &str, session: &str) -> String {
    format!(
        "agent:{agent}:web:web:user:{}",
        common::web_peer(CLIENT, session)
    )
}

#[tokio::test]
async fn a_web_chat_message_streams_its_reply_and_a_resend_is_not_a_second_turn() {
    let home = TempDir::new();
    let gw = Gw::start(
        home.path(),
        Some("[providers.echo]\nchunkSize = 3\nchunkDelayMs = 5\n"),
    )
    .await;
    let mut ws = connect(&gw).await;
    let agents = next_frame(&mut ws).await;
    assert_eq!(agents["type"], "agents");
    assert_eq!(agents["agents"][0]["id"], "main");
    assert_eq!(agents["agents"][0]["default"], true);
    assert_eq!(agents["agents"][0]["model"], "echo/echo");
    let mut tree = next_frame(&mut ws).await;
    assert_eq!(tree["type"], "tree");
    assert_eq!(tree["tree"][0]["path"], "pincer");
    // The shared frame follows readiness within a quarter second.
    let started = std::time::Instant::now();
    while tree["ready"] != true {
        assert!(started.elapsed() < Duration::from_secs(2), "{tree}");
        tree = next_frame(&mut ws).await;
    }

    send(&mut ws, json!({"type": "send", "id": "m1", "agent": "main", "session": "web-1", "text": "hello browser"})).await;
    let mut seen = Vec::new();
    let accepted = until(&mut ws, "accepted", "m1", &mut seen).await;
    let done = until(&mut ws, "done", "m1", &mut seen).await;
    assert_eq!(done["text"], "echo: hello browser");
    let deltas: Vec<&str> = seen
        .iter()
        .filter(|f| f["type"] == "delta" && f["id"] == "m1")
        .filter_map(|f| f["text"].as_str())
        .collect();
    assert!(deltas.len() >= 5, "streamed: {deltas:?}");
    // The deltas are the reply's start (an end frame drops the deltas still waiting to be
    // written: it carries the whole text, so a socket behind on a loaded machine skips them).
    assert!(
        "echo: hello browser".starts_with(&deltas.concat()),
        "{deltas:?}"
    );

    // A reconnecting browser resends: same inbox entry, the stored reply, no new turn.
    let mut again = connect(&gw).await;
    send(&mut again, json!({"type": "send", "id": "m1", "agent": "main", "session": "web-1", "text": "hello browser"})).await;
    let mut seen = Vec::new();
    let accepted_again = until(&mut again, "accepted", "m1", &mut seen).await;
    assert_eq!(accepted_again["inbox"], accepted["inbox"]);
    let done_again = until(&mut again, "done", "m1", &mut seen).await;
    assert_eq!(done_again["text"], "echo: hello browser");
    let transcript = gw.transcript(&key("main", "web-1")).await;
    assert_eq!(transcript.len(), 2, "{transcript:?}");

    send(
        &mut ws,
        json!({"type": "send", "id": "m2", "agent": "nobody", "session": "web-1", "text": "x"}),
    )
    .await;
    let error = until(&mut ws, "error", "m2", &mut Vec::new()).await;
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("nobody"),
        "{error}"
    );
    send(&mut ws, json!({"type": "dance"}).clone()).await;
    loop {
        let f = next_frame(&mut ws).await;
        if f["type"] == "error" {
            assert!(
                f["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("cannot read frame"),
                "{f}"
            );
            break;
        }
    }
}

#[tokio::test]
async fn bindings_edited_live_route_the_next_message_to_the_new_agent() {
    let home = TempDir::new();
    let base =
        "[agents.main]\nsystemPrompt = \"main\"\n\n[agents.helper]\nsystemPrompt = \"helper\"\n";
    let gw = Gw::start(home.path(), Some(base)).await;
    let mut ws = connect(&gw).await;
    // No agent named: the bindings decide (none yet: the default agent).
    send(
        &mut ws,
        json!({"type": "send", "id": "a", "session": "s", "text": "who answers"}),
    )
    .await;
    until(&mut ws, "done", "a", &mut Vec::new()).await;
    assert_eq!(gw.transcript(&key("main", "s")).await.len(), 2);

    let bound = format!(
        "{base}\n# web goes to the helper\n[[bindings]]\nagent = \"helper\"\nmatch = {{ channel = \"web\" }}\n"
    );
    let reloads = gw.reloads();
    std::fs::write(home.path().join("pincer.toml"), bound).expect("edit");
    common::until(
        "the edited bindings in force",
        &gw,
        Duration::from_secs(10),
        async || (gw.reloads() > reloads).then_some(()),
    )
    .await;
    send(
        &mut ws,
        json!({"type": "send", "id": "b", "session": "s", "text": "and now"}),
    )
    .await;
    until(&mut ws, "done", "b", &mut Vec::new()).await;
    assert_eq!(
        gw.transcript(&key("helper", "s")).await.len(),
        2,
        "routed to helper"
    );
    assert_eq!(
        gw.transcript(&key("main", "s")).await.len(),
        2,
        "main untouched"
    );
}

#[tokio::test]
async fn the_tree_frame_shows_a_restart_after_a_kill() {
    let home = TempDir::new();
    let gw = Gw::start(home.path(), None).await;
    let mut ws = connect(&gw).await;
    assert_eq!(gw.kill("pincer/router").await, 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no tree frame showed the restart; log:\n{}",
            gw.log()
        );
        let frame = next_frame(&mut ws).await;
        if frame["type"] != "tree" {
            continue;
        }
        let router = frame["tree"][0]["children"]
            .as_array()
            .and_then(|c| c.iter().find(|n| n["path"] == "pincer/router").cloned())
            .unwrap_or(Value::Null);
        if router["restarts_total"] == 1 && router["state"] == "running" {
            break;
        }
    }
}
