//! The tool runtime on the real binary: every call a temporary actor `tool:<name>:<n>`
//! under its turn (killed or timed out mid-run, the model gets an error result, the turn
//! goes on, and nothing the call started is left), calls and results in the transcript
//! (admin API and `pincer sessions show`), and the steps a chat sees (web chat frames,
//! Telegram's typing and status).

mod common;

use std::time::Duration;

use common::site::Site;
use common::{Gw, TempDir, http_session, model, run_cli, until, web};
use pincer_fakes::openai::{OpenAiFake, Script};
use serde_json::{Value, json};

/// A gateway whose `main` agent is an OpenAI model over SSE with `echo` and `web_fetch`
/// (loopback allowed), and `extra`.
async fn gateway(home: &TempDir, fake: &OpenAiFake, extra: &str) -> Gw {
    Gw::start(home.path(), Some(&config(fake, extra))).await
}

fn config(fake: &OpenAiFake, extra: &str) -> String {
    format!(
        "[providers.openai]\nbaseUrl = \"{}\"\napiKey = \"sk-test\"\n\n[response]\ntransport = \"sse\"\n\n[agents.main]\nmodel = \"openai/gpt-4.1\"\nskills = [\"echo\", \"web_fetch\"]\n\n[tools.webFetch]\nallowPrivate = [\"127.0.0.1/32\"]\n\n{extra}",
        fake.base_url()
    )
}

/// The `function_call_output`s of the `n`th model request.
fn outputs(fake: &OpenAiFake, n: usize) -> Vec<String> {
    model::outputs(&model::requests(fake)[n])
}

fn fetch(site: &Site) -> Script {
    Script::tool_call("web_fetch", json!({ "url": site.url("/slow") }).to_string())
}

/// Waits for a running actor whose path ends with `tail`, and returns its path.
async fn running(gw: &Gw, tail: &str) -> String {
    until(
        &format!("an actor …{tail}"),
        gw,
        Duration::from_secs(10),
        async || {
            gw.running_paths()
                .await
                .into_iter()
                .find(|p| p.ends_with(tail))
        },
    )
    .await
}

#[tokio::test]
async fn a_call_killed_mid_run_is_an_error_for_the_model_and_the_turn_goes_on() {
    let site = Site::slow(Duration::from_secs(60)).await;
    let fake = OpenAiFake::start().await;
    let home = TempDir::new();
    let gw = gateway(&home, &fake, "").await;
    fake.script(fetch(&site));
    fake.script(Script::text("carried on"));
    let asking = gw.spawn_chat("u", "read it", None);
    let path = running(&gw, "/tool:web_fetch:1").await;
    assert!(
        path.starts_with("pincer/agents/agent:main/turn:"),
        "a call is a child of its turn: {path}"
    );
    until(
        "the request at the site",
        &gw,
        Duration::from_secs(5),
        async || (site.open() == 1).then_some(()),
    )
    .await;
    assert_eq!(gw.kill(&path).await, 200);
    let body = asking.await.expect("task").expect("a reply");
    assert_eq!(body["choices"][0]["message"]["content"], "carried on");
    let out = outputs(&fake, 1).concat();
    assert!(out.contains("was stopped before it finished"), "{out}");
    // The fetch it had in flight went with it.
    until(
        "the site's connection closed",
        &gw,
        Duration::from_secs(5),
        async || (site.open() == 0).then_some(()),
    )
    .await;
    assert!(
        !gw.running_paths()
            .await
            .iter()
            .any(|p| p.contains("/tool:"))
    );
    let transcript = gw.transcript(&http_session("u")).await;
    let tool = transcript
        .iter()
        .find(|e| e["role"] == "tool")
        .expect("the call is in the transcript");
    assert_eq!(tool["tool"]["name"], "web_fetch");
    assert_eq!(tool["tool"]["ok"], false);
}

#[tokio::test]
async fn a_call_past_tools_call_timeout_is_stopped_with_what_it_started() {
    let site = Site::slow(Duration::from_secs(60)).await;
    let fake = OpenAiFake::start().await;
    let home = TempDir::new();
    let gw = gateway(&home, &fake, "[tools]\ncallTimeout = \"1s\"\n").await;
    fake.script(fetch(&site));
    let (status, _) = gw.ask("main", "u", "read it").await;
    assert_eq!(status, 200);
    let out = outputs(&fake, 1).concat();
    assert!(
        out.contains("did not finish within 1s (tools.callTimeout)"),
        "{out}"
    );
    until(
        "the site's connection closed",
        &gw,
        Duration::from_secs(5),
        async || (site.open() == 0).then_some(()),
    )
    .await;
    assert!(
        !gw.running_paths()
            .await
            .iter()
            .any(|p| p.contains("/tool:"))
    );
}

#[tokio::test]
async fn calls_and_results_are_in_the_transcript_and_sessions_show() {
    let fake = OpenAiFake::start().await;
    let home = TempDir::new();
    let gw = gateway(&home, &fake, "").await;
    fake.script(Script::tool_call("echo", r#"{"text":"ping"}"#));
    fake.script(Script::text("it said ping"));
    let (status, reply) = gw.ask("main", "u", "echo ping").await;
    assert_eq!((status, reply.as_str()), (200, "it said ping"));
    let key = http_session("u");
    let transcript = gw.transcript(&key).await;
    let roles: Vec<&str> = transcript
        .iter()
        .filter_map(|e| e["role"].as_str())
        .collect();
    assert_eq!(roles, vec!["user", "tool", "assistant"]);
    let tool = &transcript[1];
    assert_eq!(tool["content"], "ping");
    assert_eq!(tool["tool"]["name"], "echo");
    assert_eq!(tool["tool"]["arguments"], r#"{"text":"ping"}"#);
    assert_eq!(tool["tool"]["ok"], true);
    assert!(
        tool["tool"]["call_id"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    );
    let (code, out, err) = run_cli(home.path(), &["sessions", "show", &key], Some(gw.port));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(r#"tool echo {"text":"ping"} -> ok in"#) && out.contains(": ping"),
        "{out}"
    );
    // The next turn's numbering follows all three entries.
    let (status, _) = gw.ask("main", "u", "again").await;
    assert_eq!(status, 200);
    let seqs: Vec<i64> = gw
        .transcript(&key)
        .await
        .iter()
        .filter_map(|e| e["seq"].as_i64())
        .collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn the_web_chat_gets_each_call_as_a_step_before_the_reply() {
    let fake = OpenAiFake::start().await;
    let home = TempDir::new();
    let gw = gateway(&home, &fake, "").await;
    fake.script(Script::tool_call("echo", r#"{"text":"ping"}"#));
    fake.script(Script::text("done with it"));
    let mut ws = web::connect(&gw).await;
    web::say(&mut ws, "main", "web-1", "m1", "go").await;
    let mut seen = Vec::new();
    let done = web::until(&mut ws, "done", "m1", &mut seen).await;
    assert_eq!(done["text"], "done with it");
    let steps: Vec<&Value> = seen
        .iter()
        .filter(|f| f["type"] == "step" && f["id"] == "m1")
        .collect();
    assert_eq!(steps.len(), 2, "started and ended: {steps:?}");
    assert_eq!(
        (&steps[0]["tool"], &steps[0]["n"], &steps[0]["arguments"]),
        (&json!("echo"), &json!(1), &json!(r#"{"text":"ping"}"#))
    );
    assert!(steps[0].get("ok").is_none(), "{}", steps[0]);
    assert_eq!(steps[1]["ok"], true);
    assert!(steps[1]["ms"].as_u64().is_some(), "{}", steps[1]);
}

#[tokio::test]
async fn telegram_keeps_typing_and_shows_what_a_long_call_does() {
    use pincer_fakes::telegram::{Chat, Incoming, TEST_TOKEN, TelegramFake, User};
    let site = Site::slow(Duration::from_secs(3)).await;
    let fake = OpenAiFake::start().await;
    let telegram = TelegramFake::start();
    let home = TempDir::new();
    let extra = format!(
        "[channels.telegram.dm]\ndmPolicy = \"open\"\n\n[channels.telegram.accounts.tg]\ntoken = \"{TEST_TOKEN}\"\napiBase = \"{}\"\n",
        telegram.base_url()
    );
    let gw = gateway(&home, &fake, &extra).await;
    fake.script(fetch(&site));
    fake.script(Script::text("Here is what it says."));
    let alice = User::new(42, "Alice");
    telegram.send_text(
        TEST_TOKEN,
        Incoming::new(&Chat::private(&alice), &alice, "read it"),
    );
    until("the reply", &gw, Duration::from_secs(20), async || {
        let m = telegram.messages(TEST_TOKEN, 42);
        (m.len() == 1 && m[0].text == "Here is what it says.").then_some(())
    })
    .await;
    let drafts = telegram.drafts(TEST_TOKEN, 42);
    assert!(
        drafts.iter().any(|d| d.text == "Reading a web page…"),
        "the call's status was previewed: {drafts:?}"
    );
    // Typing at intake, and again while the 3 s call ran.
    assert!(
        telegram.counters().send_chat_action >= 2,
        "{:?}",
        telegram.counters()
    );
}

#[tokio::test]
async fn discord_keeps_typing_and_posts_what_a_long_call_does_once() {
    use pincer_fakes::discord::{Author, DiscordFake, Incoming, TEST_TOKEN};
    let site = Site::slow(Duration::from_secs(3)).await;
    let fake = OpenAiFake::start().await;
    let discord = DiscordFake::start();
    let home = TempDir::new();
    let extra = format!(
        "[channels.discord.accounts.dc]\ntoken = \"{TEST_TOKEN}\"\napiBase = \"{}\"\n",
        discord.api_base()
    );
    let gw = gateway(&home, &fake, &extra).await;
    fake.script(fetch(&site));
    fake.script(Script::text("Here is what it says."));
    let channel = "800000000000000009";
    // The link is up once its gateway session is identified.
    until(
        "the Discord link",
        &gw,
        Duration::from_secs(10),
        async || (discord.counters().identifies >= 1).then_some(()),
    )
    .await;
    discord.post(Incoming::dm(
        channel,
        Author::new("300000000000000001", "bob"),
        "read it",
    ));
    let sent = until("the reply", &gw, Duration::from_secs(20), async || {
        let m = discord.messages(channel);
        m.iter()
            .any(|m| m.content == "Here is what it says.")
            .then_some(m)
    })
    .await;
    let texts: Vec<&str> = sent.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(texts, vec!["Reading a web page…", "Here is what it says."]);
    let typing = discord
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/typing"))
        .count();
    assert!(
        typing >= 2,
        "typing at intake and during the call: {typing}"
    );
}
