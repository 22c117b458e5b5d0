//! Discord accounts on the real binary against the gateway + REST fake of `tests/fakes`:
//! identify, heartbeats, resume after a link kill (with replay, sessions untouched), op 7
//! and op 9, zombie detection, fatal close codes on readiness, threads with their own
//! sessions and timers, parent-channel bindings, `/session` commands, splitting at 2000
//! characters under the route bucket, and 429s.

mod common;

use std::time::{Duration, Instant};

use common::{Gw, TempDir, until};
use pincer_fakes::discord::{Author, BotMessage, DiscordFake, Incoming, Knobs, TEST_TOKEN};
use serde_json::Value;

const GUILD: &str = "500000000000000001";
const GENERAL: &str = "600000000000000001";

fn fast_fake() -> DiscordFake {
    DiscordFake::start_with(Knobs {
        heartbeat_interval: Duration::from_millis(500),
        ..Knobs::default()
    })
}

/// An echo-model gateway with Discord account `dc` at `fake`, `extra` appended.
fn config(fake: &DiscordFake, extra: &str) -> String {
    format!(
        "[channels.discord.accounts.dc]\ntoken = \"{TEST_TOKEN}\"\napiBase = \"{}\"\n\n{extra}\n",
        fake.api_base()
    )
}

async fn replies(gw: &Gw, fake: &DiscordFake, channel: &str, n: usize) -> Vec<BotMessage> {
    until(
        &format!("{n} bot messages in {channel}"),
        gw,
        Duration::from_secs(20),
        async || {
            let m = fake.messages(channel);
            (m.len() >= n).then_some(m)
        },
    )
    .await
}

/// Opens a thread under `GENERAL` and waits until the link has taken its THREAD_CREATE in:
/// a heartbeat it sends when asked carries that event's sequence number or a later one.
async fn open_thread(gw: &Gw, fake: &DiscordFake, name: &str) -> String {
    let thread = fake.create_thread(GENERAL, GUILD, name);
    // One gateway session so far: its sequence numbers are the dispatches counted.
    let seq = fake.counters().dispatched;
    fake.request_heartbeat();
    until(
        &format!("the link to learn thread {name}"),
        gw,
        Duration::from_secs(10),
        async || {
            let acked = fake
                .frames()
                .iter()
                .filter(|f| f.op == 1)
                .filter_map(|f| f.d.as_u64())
                .max();
            if acked >= Some(seq) {
                Ok(())
            } else {
                Err(format!("heartbeat seq {acked:?}, THREAD_CREATE is {seq}"))
            }
        },
    )
    .await;
    thread
}

async fn connected(gw: &Gw, fake: &DiscordFake) {
    until(
        "a live gateway session",
        gw,
        Duration::from_secs(10),
        async || {
            let c = fake.counters();
            (c.live_connections == 1 && (c.identifies > 0)).then_some(())
        },
    )
    .await;
}

fn bob() -> Author {
    Author::new("700000000000000001", "bob")
}

async fn session_keys(gw: &Gw) -> Vec<String> {
    let (_, sessions) = gw.get("/admin/sessions").await;
    sessions["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .filter_map(|s| s["key"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn a_guild_message_is_answered_in_its_channel_with_heartbeats_acknowledged() {
    let fake = fast_fake();
    let home = TempDir::new();
    let gw = Gw::start(home.path(), Some(&config(&fake, ""))).await;
    connected(&gw, &fake).await;
    let id = fake.post(Incoming::guild(GENERAL, GUILD, bob(), "hello discord"));
    let got = replies(&gw, &fake, GENERAL, 1).await;
    assert_eq!(got[0].content, "echo: hello discord");
    assert_eq!(got[0].reply_to.as_deref(), Some(id.as_str()));
    let identify = fake
        .frames()
        .into_iter()
        .find(|f| f.op == 2)
        .expect("identify");
    let intents = identify.d["intents"].as_u64().expect("intents");
    assert_eq!(
        intents & (1 | 512 | 4096 | 32768),
        1 | 512 | 4096 | 32768,
        "intents {intents}"
    );
    until(
        "two acknowledged heartbeats",
        &gw,
        Duration::from_secs(5),
        async || (fake.counters().acks >= 2).then_some(()),
    )
    .await;
    let (status, _) = gw.get("/readyz").await;
    assert_eq!(status.as_u16(), 200);
    // The bot's own message came back as MESSAGE_CREATE and was not answered: nothing
    // more within half a second (a negative check: only time can show it).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fake.messages(GENERAL).len(), 1);
    assert_eq!(
        session_keys(&gw).await,
        vec![format!("agent:main:discord:dc:channel:{GENERAL}")]
    );
}

#[tokio::test]
async fn a_killed_link_resumes_gets_the_missed_messages_replayed_and_leaves_sessions_alone() {
    let fake = fast_fake();
    let home = TempDir::new();
    let gw = Gw::start(home.path(), Some(&config(&fake, ""))).await;
    connected(&gw, &fake).await;
    fake.post(Incoming::guild(GENERAL, GUILD, bob(), "before"));
    replies(&gw, &fake, GENERAL, 1).await;
    let session = format!(
        "pincer/channels/channel:discord:dc/sessions/session:agent:main:discord:dc:channel:{GENERAL}"
    );
    let before = record(&gw, &session).await.expect("session running");
    // The link is back within milliseconds: a message posted after a kill is replayed on
    // resume when the link was still down, and delivered live when it was already back
    // (on a loaded machine, now and then). Either way it is answered once.
    for round in 0..5 {
        let link = "pincer/channels/channel:discord:dc/link";
        assert!(gw.kill(link).await.is_success(), "kill {round}");
        // Posted while the link is down: buffered by Discord, replayed on resume.
        fake.post(Incoming::guild(
            GENERAL,
            GUILD,
            bob(),
            &format!("while down {round}"),
        ));
        until(
            "a resumed session",
            &gw,
            Duration::from_secs(10),
            async || (fake.counters().successful_resumes > round).then_some(()),
        )
        .await;
    }
    let got = replies(&gw, &fake, GENERAL, 6).await;
    // No second answer to any of them within 800 ms (a negative check).
    tokio::time::sleep(Duration::from_millis(800)).await;
    let got_now = fake.messages(GENERAL);
    assert_eq!(got_now.len(), 6, "each message answered once: {got_now:?}");
    for round in 0..5 {
        assert!(
            got.iter()
                .any(|m| m.content == format!("echo: while down {round}"))
        );
    }
    let c = fake.counters();
    assert_eq!(c.identifies, 1, "resumed, never identified again");
    assert!(c.replayed >= 1, "nothing was replayed on resume");
    assert!(c.max_live_connections <= 1, "one socket per session");
    let after = record(&gw, &session).await.expect("session still running");
    assert_eq!(
        before["started_at_ms"], after["started_at_ms"],
        "the session was not restarted"
    );
    assert_eq!(after["restarts_total"], 0);
}

async fn record(gw: &Gw, path: &str) -> Option<Value> {
    let (_, tree) = gw.get("/admin/tree").await;
    find(&tree["tree"], path)
}

fn find(nodes: &Value, path: &str) -> Option<Value> {
    for node in nodes.as_array()? {
        if node["path"].as_str() == Some(path) {
            return Some(node.clone());
        }
        if let Some(found) = find(&node["children"], path) {
            return Some(found);
        }
    }
    None
}

#[tokio::test]
async fn reconnect_and_invalid_session_ops_and_a_zombie_link_are_handled() {
    let fake = fast_fake();
    let home = TempDir::new();
    let gw = Gw::start(home.path(), Some(&config(&fake, ""))).await;
    connected(&gw, &fake).await;
    fake.send_reconnect();
    until(
        "resume after op 7",
        &gw,
        Duration::from_secs(10),
        async || (fake.counters().successful_resumes >= 1).then_some(()),
    )
    .await;
    fake.invalidate_session(false);
    until(
        "identify after op 9 false",
        &gw,
        Duration::from_secs(15),
        async || {
            (fake.counters().identifies >= 2 && fake.counters().live_connections == 1).then_some(())
        },
    )
    .await;
    // A server that stops acknowledging: the link sees a zombie and resumes elsewhere.
    fake.set(|k| k.ack_heartbeats = false);
    let resumes = fake.counters().resumes;
    until(
        "a resume after missed ACKs",
        &gw,
        Duration::from_secs(10),
        async || (fake.counters().resumes > resumes).then_some(()),
    )
    .await;
    fake.set(|k| k.ack_heartbeats = true);
    let id = fake.post(Incoming::guild(GENERAL, GUILD, bob(), "still here"));
    let got = replies(&gw, &fake, GENERAL, 1).await;
    assert_eq!(got[0].reply_to.as_deref(), Some(id.as_str()));
    assert_eq!(fake.counters().identifies, 2);
}

#[tokio::test]
async fn fatal_close_codes_and_a_refused_token_show_on_readiness_and_stop_reconnecting() {
    let fake = fast_fake();
    let home = TempDir::new();
    let gw = Gw::start(home.path(), Some(&config(&fake, ""))).await;
    connected(&gw, &fake).await;
    fake.close_all(4014);
    let link = "pincer/channels/channel:discord:dc/link";
    assert!(
        gw.wait_readyz(false, Duration::from_secs(10)).await,
        "not ready after 4014"
    );
    let (_, ready) = gw.get("/readyz").await;
    let failing = ready["failing"].to_string();
    assert!(
        failing.contains(link) && failing.contains("4014"),
        "{failing}"
    );
    let connections = fake.counters().connections;
    // No reconnect within 2 s, past the link's backoff (a negative check).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        fake.counters().connections,
        connections,
        "no reconnect after a fatal close"
    );
    // The rest of the gateway is untouched: the HTTP API still answers.
    let (status, _) = gw.get("/v1/models").await;
    assert_eq!(status.as_u16(), 200);

    // A token the upstream refuses: a clear reason, no crash loop.
    let bad = config(&fake, "").replace(TEST_TOKEN, "wrong-token");
    std::fs::write(home.path().join("pincer.toml"), bad).expect("edit");
    until(
        "the refusal on /readyz",
        &gw,
        Duration::from_secs(10),
        async || {
            let (_, ready) = gw.get("/readyz").await;
            if ready["failing"].to_string().contains("token refused") {
                Ok(())
            } else {
                Err(ready)
            }
        },
    )
    .await;
    // Fixed in config: ready again without a restart.
    std::fs::write(home.path().join("pincer.toml"), config(&fake, "")).expect("edit");
    assert!(
        gw.wait_readyz(true, Duration::from_secs(10)).await,
        "ready again; log:\n{}",
        gw.log()
    );
}

#[tokio::test]
async fn threads_have_their_own_sessions_bindings_by_parent_and_session_commands() {
    let fake = fast_fake();
    let home = TempDir::new();
    let extra = format!(
        "[agents.main]\n\n[agents.ops]\nsystemPrompt = \"Ops.\"\n\n[[bindings]]\nagent = \"ops\"\nmatch = {{ peer = {{ kind = \"channel\", id = \"{GENERAL}\" }} }}\n"
    );
    let gw = Gw::start(home.path(), Some(&config(&fake, &extra))).await;
    connected(&gw, &fake).await;
    let thread = open_thread(&gw, &fake, "incident").await;
    fake.post(Incoming::guild(&thread, GUILD, bob(), "in the thread"));
    let got = replies(&gw, &fake, &thread, 1).await;
    assert_eq!(got[0].content, "echo: in the thread");
    assert!(
        fake.messages(GENERAL).is_empty(),
        "the reply stays in the thread"
    );
    let key = format!("agent:ops:discord:dc:channel:{GENERAL}:thread:{thread}");
    assert!(
        session_keys(&gw).await.contains(&key),
        "parent-channel binding, thread session"
    );
    fake.post(Incoming::guild(&thread, GUILD, bob(), "/session status"));
    let got = replies(&gw, &fake, &thread, 2).await;
    assert!(got[1].content.contains(&key), "{}", got[1].content);
    fake.post(Incoming::guild(&thread, GUILD, bob(), "/session extend 2h"));
    let got = replies(&gw, &fake, &thread, 3).await;
    assert!(
        got[2].content.to_lowercase().contains("extend"),
        "{}",
        got[2].content
    );
    fake.post(Incoming::guild(&thread, GUILD, bob(), "/session reset"));
    let got = replies(&gw, &fake, &thread, 4).await;
    assert!(
        got[3].content.contains("new conversation"),
        "{}",
        got[3].content
    );
}

#[tokio::test]
async fn thread_sessions_expire_when_idle_and_at_their_max_age() {
    let fake = fast_fake();
    let home = TempDir::new();
    let extra = "[channels.discord.threads]\nidleHours = \"2s\"\nmaxAgeHours = \"5s\"\n";
    let gw = Gw::start(home.path(), Some(&config(&fake, extra))).await;
    connected(&gw, &fake).await;
    let thread = open_thread(&gw, &fake, "short").await;
    let key = format!("agent:main:discord:dc:channel:{GENERAL}:thread:{thread}");
    let session = |gw: &Gw| {
        let key = key.clone();
        let gw_url = gw.url(&format!("/admin/sessions/{}", key.replace(':', "%3A")));
        let (http, token) = (gw.http.clone(), gw.token());
        async move {
            let r = http
                .get(gw_url)
                .bearer_auth(token)
                .send()
                .await
                .expect("get");
            r.json::<Value>().await.expect("json")
        }
    };
    // Idle: one message, then silence past idleHours.
    let sent = Instant::now();
    fake.post(Incoming::guild(&thread, GUILD, bob(), "first"));
    replies(&gw, &fake, &thread, 1).await;
    let s = until(
        "the idle thread session to stop",
        &gw,
        Duration::from_secs(10),
        async || {
            let s = session(&gw).await;
            if s["running"] == false { Ok(s) } else { Err(s) }
        },
    )
    .await;
    // Idle from its last activity, which came after `sent`: never sooner than 2 s.
    assert!(
        sent.elapsed() >= Duration::from_secs(2),
        "stopped before its idle time: {:?} after the message",
        sent.elapsed()
    );
    assert_eq!(s["expired"], true, "idle expiry: {s}");
    // Max age: a message every 700 ms keeps it from idling, but the cap ends it.
    let started = Instant::now();
    let mut n = 1;
    while started.elapsed() < Duration::from_millis(6500) {
        fake.post(Incoming::guild(
            &thread,
            GUILD,
            bob(),
            &format!("keepalive {n}"),
        ));
        n += 1;
        tokio::time::sleep(Duration::from_millis(700)).await; // the pace of the activity
    }
    replies(&gw, &fake, &thread, n).await;
    let transcript = session(&gw).await["transcript"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let s = session(&gw).await;
    // The context restarted at the cap: context_from moved past the first messages.
    assert!(
        s["context_from"].as_i64().unwrap_or(0) > 3,
        "max-age expiry while active: {s}"
    );
    assert!(
        transcript.len() >= 2 * n,
        "the transcript keeps every entry"
    );
    // Top-level channel sessions keep the default timers.
    fake.post(Incoming::guild(GENERAL, GUILD, bob(), "top level"));
    replies(&gw, &fake, GENERAL, 1).await;
    let (_, all) = gw.get("/admin/sessions").await;
    let top = all["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .find(|s| s["key"] == format!("agent:main:discord:dc:channel:{GENERAL}"))
        .cloned()
        .expect("top-level session");
    assert_eq!(top["idle_ms"], 24 * 3600 * 1000);
}

#[tokio::test]
async fn a_long_reply_is_split_at_2000_within_the_route_bucket_and_429s_are_honoured() {
    let fake = fast_fake();
    let home = TempDir::new();
    let gw = Gw::start(home.path(), Some(&config(&fake, ""))).await;
    connected(&gw, &fake).await;
    // Seven parts: more than the bucket's 5 per 5 s.
    let text: String = (0..13)
        .map(|i| format!("{}\n\n", char::from(b'a' + i).to_string().repeat(998)))
        .collect();
    let started = Instant::now();
    fake.post(Incoming::guild(GENERAL, GUILD, bob(), &text));
    let got = until("seven parts", &gw, Duration::from_secs(30), async || {
        let m = fake.messages(GENERAL);
        (m.len() >= 7).then_some(m)
    })
    .await;
    assert!(got.iter().all(|m| m.content.chars().count() <= 2000));
    assert!(got[0].reply_to.is_some() && got[1..].iter().all(|m| m.reply_to.is_none()));
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "the bucket's reset was waited for"
    );
    assert_eq!(
        fake.counters().rate_limited,
        0,
        "the route bucket was never exceeded"
    );

    fake.inject_429(2, Duration::from_millis(700), true);
    let started = Instant::now();
    fake.post(Incoming::dm(
        "800000000000000001",
        bob(),
        "after a global limit",
    ));
    let got = replies(&gw, &fake, "800000000000000001", 1).await;
    assert_eq!(got[0].content, "echo: after a global limit");
    assert_eq!(fake.counters().global_rate_limited, 2);
    // Honoured: the reply went out only after a global retry_after. Which requests meet
    // the two 429s (the reply, the "typing…" sent at intake, both) depends on the
    // machine's timing, so the wait is at least one retry_after, not always two.
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "answered after {:?}",
        started.elapsed()
    );
}
