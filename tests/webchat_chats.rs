//! The web chat's past chats and stop, on the real binary: chats listed from the store,
//! opened, renamed and deleted by their owner only; a stop drops the turn in flight and
//! keeps its partial reply; a failed reply says so; the page's files carry the CSP and
//! weigh what the README says.

mod common;

use std::time::{Duration, Instant};

use common::web::{CLIENT, connect, connect_as, next_frame, next_of, say, send, until};
use common::{Gw, TempDir};
use pincer_fakes::openai::{self, OpenAiFake, Script};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Another browser's secret.
const OTHER: &str = "fedcba9876543210fedcba9876543210";

fn key(client: &str, agent: &str, session: &str) -> String {
    format!(
        "agent:{agent}:web:web:user:{}",
        common::web_peer(client, session)
    )
}

async fn chats(ws: &mut common::web::Socket, agent: &str, limit: usize) -> Value {
    send(ws, json!({"type": "chats", "agent": agent, "limit": limit})).await;
    next_of(ws, "chats").await
}

async fn error_about(ws: &mut common::web::Socket, about: &str) -> String {
    loop {
        let frame = next_frame(ws).await;
        if frame["type"] == "error" && frame["about"] == about {
            return frame["message"].as_str().unwrap_or_default().to_string();
        }
    }
}

#[tokio::test]
async fn past_chats_are_listed_opened_renamed_and_deleted_by_their_owner_only() {
    let home = TempDir::new();
    let gw = Gw::start(home.path(), None).await;
    let mut ws = connect(&gw).await;
    say(&mut ws, "main", "web-1", "a", "  first\n question  ").await;
    until(&mut ws, "done", "a", &mut Vec::new()).await;
    say(&mut ws, "main", "web-1", "b", "and again").await;
    until(&mut ws, "done", "b", &mut Vec::new()).await;
    say(&mut ws, "main", "web-2", "c", "second chat").await;
    until(&mut ws, "done", "c", &mut Vec::new()).await;

    // Most recent first; the title is the first message, spaces folded.
    let list = chats(&mut ws, "main", 10).await;
    assert_eq!(list["total"], 2, "{list}");
    assert_eq!(list["items"][0]["session"], "web-2");
    assert_eq!(list["items"][1]["session"], "web-1");
    assert_eq!(list["items"][1]["title"], "first question");
    assert_eq!(list["items"][1]["turns"], 2);
    assert_eq!(list["items"][1]["renamed"], false);
    let page = chats(&mut ws, "main", 1).await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["total"], 2);

    send(
        &mut ws,
        json!({"type": "open", "agent": "main", "session": "web-1"}),
    )
    .await;
    let opened = next_of(&mut ws, "transcript").await;
    let roles: Vec<&str> = opened["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["role"].as_str())
        .collect();
    assert_eq!(
        roles,
        ["user", "assistant", "user", "assistant"],
        "{opened}"
    );
    assert_eq!(opened["items"][1]["text"], "echo:   first\n question  ");

    send(&mut ws, json!({"type": "rename", "agent": "main", "session": "web-1", "title": "Named <b>chat</b>"})).await;
    let renamed = next_of(&mut ws, "renamed").await;
    assert_eq!(renamed["title"], "Named <b>chat</b>");
    let list = chats(&mut ws, "main", 10).await;
    assert_eq!(list["items"][1]["title"], "Named <b>chat</b>");
    assert_eq!(list["items"][1]["renamed"], true);
    let long = "x".repeat(121);
    send(
        &mut ws,
        json!({"type": "rename", "agent": "main", "session": "web-1", "title": long}),
    )
    .await;
    let why = error_about(&mut ws, "rename").await;
    assert!(why.contains("at most 120 characters"), "{why}");

    // Another browser naming the same session ids reaches nothing of this one's.
    let mut other = connect_as(&gw, OTHER).await;
    let theirs = chats(&mut other, "main", 10).await;
    assert_eq!(theirs["total"], 0, "{theirs}");
    send(
        &mut other,
        json!({"type": "open", "agent": "main", "session": "web-1"}),
    )
    .await;
    let nothing = next_of(&mut other, "transcript").await;
    assert_eq!(nothing["items"], json!([]), "{nothing}");
    send(
        &mut other,
        json!({"type": "rename", "agent": "main", "session": "web-1", "title": "mine now"}),
    )
    .await;
    let why = error_about(&mut other, "rename").await;
    assert!(why.contains("you have no chat `web-1`"), "{why}");
    send(
        &mut other,
        json!({"type": "delete", "agent": "main", "session": "web-1"}),
    )
    .await;
    let why = error_about(&mut other, "delete").await;
    assert!(why.contains("you have no chat `web-1`"), "{why}");
    let list = chats(&mut ws, "main", 10).await;
    assert_eq!(
        list["total"], 2,
        "the other browser changed nothing: {list}"
    );
    assert_eq!(list["items"][1]["title"], "Named <b>chat</b>");

    // The owner deletes: the session stops, its rows go.
    send(
        &mut ws,
        json!({"type": "delete", "agent": "main", "session": "web-1"}),
    )
    .await;
    next_of(&mut ws, "deleted").await;
    let list = chats(&mut ws, "main", 10).await;
    assert_eq!(list["total"], 1, "{list}");
    assert_eq!(list["items"][0]["session"], "web-2");
    let (status, _) = gw
        .get(&format!(
            "/admin/sessions/{}",
            key(CLIENT, "main", "web-1").replace(':', "%3A")
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the deleted session is gone");
    // A message to the deleted chat's id starts a new one.
    say(&mut ws, "main", "web-1", "d", "fresh start").await;
    until(&mut ws, "done", "d", &mut Vec::new()).await;
    assert_eq!(gw.transcript(&key(CLIENT, "main", "web-1")).await.len(), 2);

    send(&mut ws, json!({"type": "chats", "agent": "nobody"})).await;
    let why = error_about(&mut ws, "chats").await;
    assert!(why.contains("no agent `nobody`"), "{why}");
    send(
        &mut ws,
        json!({"type": "open", "agent": "main", "session": "../x"}),
    )
    .await;
    let why = error_about(&mut ws, "open").await;
    assert!(why.contains("`session` must be"), "{why}");
}

/// Stop pressed while a second message waits behind a reply: the page stops its last
/// message, the waiting one. It is answered as stopped, empty, once the reply before it
/// ends, and never reaches the model; the reply in flight goes on.
#[tokio::test]
async fn a_stopped_message_that_waits_is_answered_stopped_and_never_runs() {
    let home = TempDir::new();
    let config = "[providers.echo]\nchunkSize = 2\nchunkDelayMs = 20\n";
    let gw = Gw::start(home.path(), Some(config)).await;
    let mut ws = connect(&gw).await;
    let long = "keep going ".repeat(10);
    say(&mut ws, "main", "s", "m1", &long).await;
    expect_delta(&mut ws, "m1").await;
    say(&mut ws, "main", "s", "m2", "never run").await;
    send(
        &mut ws,
        json!({"type": "stop", "id": "m2", "agent": "main", "session": "s"}),
    )
    .await;
    let mut seen = Vec::new();
    let first = until(&mut ws, "done", "m1", &mut seen).await;
    assert_eq!(first["text"], format!("echo: {long}"), "{first}");
    assert_ne!(first["stopped"], true, "{first}");
    let second = until(&mut ws, "done", "m2", &mut seen).await;
    assert_eq!(second["stopped"], true, "{second}");
    assert_eq!(second["text"], "", "{second}");
    assert!(
        !seen.iter().any(|f| f["type"] == "delta" && f["id"] == "m2"),
        "the stopped message ran: {seen:?}"
    );
    // The transcript keeps both, in the order they were sent.
    let transcript = gw.transcript(&key(CLIENT, "main", "s")).await;
    let kept: Vec<(&str, &str)> = transcript
        .iter()
        .map(|e| {
            (
                e["content"].as_str().unwrap_or_default(),
                e["outcome"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    let echoed = format!("echo: {long}");
    assert_eq!(
        kept,
        vec![
            (long.as_str(), "-"),
            (echoed.as_str(), "-"),
            ("never run", "-"),
            ("", "stopped")
        ]
    );
    // The next message runs as usual.
    say(&mut ws, "main", "s", "m3", "next").await;
    let next = until(&mut ws, "done", "m3", &mut Vec::new()).await;
    assert_eq!(next["text"], "echo: next");
}

#[tokio::test]
async fn stop_drops_the_turn_keeps_the_partial_reply_and_the_next_message_goes_at_once() {
    let home = TempDir::new();
    let config = "[providers.echo]\nchunkSize = 2\nchunkDelayMs = 40\n\n\
                  [agents.main]\nmodel = \"echo/echo\"\ndefault = true\n\n\
                  [agents.broken]\nmodel = \"anthropic/claude-sonnet-4-5\"\n";
    let gw = Gw::spawn(home.path(), Some(config), common::free_port());
    // The broken agent keeps /readyz at 503 on purpose: wait for /healthz instead.
    common::until(
        "the gateway alive",
        &gw,
        Duration::from_secs(20),
        async || {
            let r = gw.http.get(gw.url("/healthz")).send().await.ok()?;
            (r.status() == StatusCode::OK).then_some(())
        },
    )
    .await;
    let mut ws = connect(&gw).await;
    let long = "stop here ".repeat(30);
    let full = format!("echo: {long}");
    say(&mut ws, "main", "s", "m1", &long).await;
    let mut streamed = String::new();
    while streamed.len() < 12 {
        let frame = next_frame(&mut ws).await;
        if frame["type"] == "delta" && frame["id"] == "m1" {
            streamed.push_str(frame["text"].as_str().unwrap_or_default());
        }
    }
    send(
        &mut ws,
        json!({"type": "stop", "id": "m1", "agent": "main", "session": "s"}),
    )
    .await;
    let stopped_at = Instant::now();
    let done = loop {
        let frame = next_frame(&mut ws).await;
        if frame["id"] != "m1" {
            continue;
        }
        match frame["type"].as_str() {
            Some("delta") => streamed.push_str(frame["text"].as_str().unwrap_or_default()),
            Some("done") => break frame,
            _ => panic!("{frame}"),
        }
    };
    assert_eq!(done["stopped"], true, "{done}");
    assert_eq!(done["failed"], false, "{done}");
    let kept = done["text"].as_str().unwrap_or_default();
    assert!(kept.len() >= 12 && kept.len() < full.len(), "kept {kept:?}");
    assert!(full.starts_with(kept), "kept {kept:?}");
    assert!(
        stopped_at.elapsed() < Duration::from_secs(2),
        "stopped in {:?}",
        stopped_at.elapsed()
    );

    // The next message is answered at once, and nothing of the stopped reply comes after.
    say(&mut ws, "main", "s", "m2", "next").await;
    let mut seen = Vec::new();
    let next = until(&mut ws, "done", "m2", &mut seen).await;
    assert_eq!(next["text"], "echo: next");
    assert!(
        stopped_at.elapsed() < Duration::from_secs(3),
        "the next reply took {:?}",
        stopped_at.elapsed()
    );
    let quiet = Instant::now() + Duration::from_millis(800);
    while let Ok(frame) = tokio::time::timeout_at(quiet.into(), next_frame(&mut ws)).await {
        seen.push(frame);
    }
    let late: Vec<&Value> = seen.iter().filter(|f| f["id"] == "m1").collect();
    assert!(late.is_empty(), "frames of the stopped reply: {late:?}");
    // No turn runs on: the stopped one's actor (and its provider stream) is gone.
    no_turn_running(&gw).await;

    // The transcript keeps the partial reply, marked stopped, and the next turn.
    let transcript = gw.transcript(&key(CLIENT, "main", "s")).await;
    assert_eq!(transcript.len(), 4, "{transcript:?}");
    assert_eq!(transcript[1]["content"], kept);
    assert_eq!(transcript[1]["outcome"], "stopped");
    assert_eq!(transcript[3]["content"], "echo: next");
    assert!(transcript[3].get("outcome").is_none());
    // A page that resends the stopped message (after a reconnect) gets it as it was kept.
    let mut again = connect(&gw).await;
    say(&mut again, "main", "s", "m1", &long).await;
    let replay = until(&mut again, "done", "m1", &mut Vec::new()).await;
    assert_eq!(replay["text"], kept);
    assert_eq!(replay["stopped"], true, "{replay}");

    // A stop of a message that is not in flight does nothing.
    send(
        &mut ws,
        json!({"type": "stop", "id": "m2", "agent": "main", "session": "s"}),
    )
    .await;
    // A reply no model could give says so: the page shows it as an error.
    say(&mut ws, "broken", "s", "m3", "hello?").await;
    let failed = until(&mut ws, "done", "m3", &mut Vec::new()).await;
    assert_eq!(failed["failed"], true, "{failed}");
    assert!(
        failed["text"]
            .as_str()
            .unwrap_or_default()
            .contains("anthropic"),
        "{failed}"
    );
    let transcript = gw.transcript(&key(CLIENT, "broken", "s")).await;
    assert_eq!(transcript[1]["outcome"], "failed", "{transcript:?}");

    // A chat deleted mid-reply: its turn stops with its session, and the router's sweep
    // (every second, for entries pending 1.5 s) does not bring it back.
    say(&mut ws, "main", "d", "m4", &long).await;
    expect_delta(&mut ws, "m4").await;
    send(
        &mut ws,
        json!({"type": "delete", "agent": "main", "session": "d"}),
    )
    .await;
    next_of(&mut ws, "deleted").await;
    no_turn_running(&gw).await;
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let (status, body) = gw
        .get(&format!(
            "/admin/sessions/{}",
            key(CLIENT, "main", "d").replace(':', "%3A")
        ))
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the deleted chat came back: {body}"
    );
    let list = chats(&mut ws, "main", 10).await;
    assert_eq!(list["total"], 1, "{list}");
}

#[tokio::test]
async fn a_stop_drops_the_provider_stream_and_the_reply_is_not_retried() {
    let fake = OpenAiFake::start_with(openai::Knobs {
        token_delay: Duration::from_millis(50),
        ..openai::Knobs::default()
    })
    .await;
    fake.script(Script::text("word ".repeat(100)));
    let home = TempDir::new();
    let config = format!(
        "[providers.openai]\nbaseUrl = \"{}\"\napiKey = \"sk-test\"\n\n[response]\ntransport = \"sse\"\n\n\
         [agents.main]\nmodel = \"openai/gpt-4.1\"\n",
        fake.base_url()
    );
    let gw = Gw::start(home.path(), Some(&config)).await;
    let mut ws = connect(&gw).await;
    say(&mut ws, "main", "s", "m1", "talk slowly").await;
    expect_delta(&mut ws, "m1").await;
    send(
        &mut ws,
        json!({"type": "stop", "id": "m1", "agent": "main", "session": "s"}),
    )
    .await;
    let done = until(&mut ws, "done", "m1", &mut Vec::new()).await;
    assert_eq!(done["stopped"], true, "{done}");
    // The fake sees its response's client go away while it still had words to send.
    common::until(
        "the fake to see the stream dropped",
        &gw,
        Duration::from_secs(3),
        async || {
            let c = fake.counters();
            (c.abandoned == 1).then_some(()).ok_or(format!("{c:?}"))
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        fake.counters().sse_requests,
        1,
        "a stopped turn is not tried again"
    );
}

/// Waits (3 s at most) until no turn actor runs: a stopped turn's actor is gone, and its
/// task with the provider stream it held.
async fn no_turn_running(gw: &Gw) {
    common::until("no turn running", gw, Duration::from_secs(3), async || {
        let paths = gw.running_paths().await;
        (!paths.iter().any(|p| p.contains("/turn:"))).then_some(())
    })
    .await;
}

async fn expect_delta(ws: &mut common::web::Socket, id: &str) {
    loop {
        let frame = next_frame(ws).await;
        if frame["type"] == "delta" && frame["id"] == id {
            return;
        }
        assert!(frame["type"] != "done" || frame["id"] != id, "{frame}");
    }
}

#[tokio::test]
async fn the_page_and_its_files_carry_the_csp_gzip_and_weigh_under_150_kb() {
    let home = TempDir::new();
    let gw = Gw::start(home.path(), None).await;
    let http = reqwest::Client::new();
    let get = |path: String, gzip: bool| {
        let mut request = http.get(gw.url(&path));
        if gzip {
            request = request.header("accept-encoding", "gzip");
        }
        request.send()
    };
    let page = get("/".into(), false).await.expect("GET /");
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        csp,
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
         img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    );
    assert!(page.headers().get("content-encoding").is_none());
    let etag = page.headers()["etag"].clone();
    let html = page.text().await.expect("page");
    let files: Vec<String> = html
        .split('"')
        .filter(|s| s.starts_with("/webchat/"))
        .map(str::to_string)
        .collect();
    assert_eq!(files.len(), 4, "{files:?}");

    let mut total = 0;
    let mut rows = Vec::new();
    for path in std::iter::once("/".to_string()).chain(files.iter().cloned()) {
        let r = get(path.clone(), true).await.expect("GET");
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(r.headers()["content-encoding"], "gzip", "{path}");
        assert!(
            r.headers().contains_key("content-security-policy"),
            "{path}"
        );
        if path != "/" {
            assert_eq!(
                r.headers()["cache-control"],
                "public, max-age=31536000, immutable"
            );
        }
        let bytes = r.bytes().await.expect("body").len();
        rows.push(format!("{path} {bytes} B"));
        total += bytes;
    }
    println!(
        "web chat page weight, gzipped: {total} B ({})",
        rows.join(", ")
    );
    assert!(total < 150_000, "{total} B gzipped: {rows:?}");

    let again = http
        .get(gw.url("/"))
        .header("if-none-match", etag)
        .send()
        .await
        .expect("GET /");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let missing = get("/webchat/app.0000.js".into(), false)
        .await
        .expect("GET");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}
