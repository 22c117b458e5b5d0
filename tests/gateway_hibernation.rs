//! Hibernating sessions on the real binary: a quiet session rests in the store and wakes
//! with its context, turns and timers; hibernated sessions expire without waking; messages
//! racing a session on its way out (hibernating, expiring, killed) are answered exactly
//! once; the account's `sessions` killed with 10,000 hibernated sessions loses none; a
//! SIGKILL with hibernated and waking sessions loses nothing; the admin list pages.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{Gw, TempDir, answers_per_inbox, encode, free_port, http_session, until, web};
use pincer_fakes::openai::{OpenAiFake, Script};
use serde_json::Value;

/// `user`'s session as the admin list shows it.
async fn row(gw: &Gw, user: &str) -> Value {
    let key = http_session(user);
    let (_, page) = gw
        .get(&format!("/admin/sessions?prefix={}", encode(&key)))
        .await;
    page["sessions"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["key"] == key.as_str()).cloned())
        .unwrap_or(Value::Null)
}

async fn in_state(gw: &Gw, user: &str, state: &str) -> Value {
    until(
        &format!("the session of {user} to be {state}"),
        gw,
        Duration::from_secs(20),
        async || {
            let s = row(gw, user).await;
            if s["state"] == state { Ok(s) } else { Err(s) }
        },
    )
    .await
}

/// The hibernated count the tree shows on the HTTP account's `sessions`.
async fn hibernated_in_tree(gw: &Gw) -> Option<u64> {
    let (_, tree) = gw.get("/admin/tree").await;
    hibernated_in(&tree["tree"])
}

/// The hibernated count on the HTTP account's `sessions` in a tree (the admin API's or the
/// web chat's frame).
fn hibernated_in(tree: &Value) -> Option<u64> {
    fn find(nodes: &Value) -> Option<u64> {
        for node in nodes.as_array()? {
            if node["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("channel:http:http/sessions"))
            {
                return node["counts"]["hibernated"].as_u64();
            }
            if let Some(n) = find(&node["children"]) {
                return Some(n);
            }
        }
        None
    }
    find(tree)
}

/// `context: about N of ...` in a status: N.
fn tokens(status: &str) -> u64 {
    line(status, "context: about ")
        .trim_start_matches("context: about ")
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn line(status: &str, what: &str) -> String {
    status
        .lines()
        .find(|l| l.starts_with(what))
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn a_quiet_session_hibernates_and_wakes_with_its_context_turns_and_timers() {
    let home = TempDir::new();
    let config = "[sessions]\nhibernateAfter = \"300ms\"\nmaxAgeHours = \"2h\"\n";
    let gw = Gw::start(home.path(), Some(config)).await;
    gw.say("h", "one").await;
    gw.say("h", "two").await;
    let before = gw.say("h", "/session status").await;
    let live = row(&gw, "h").await;
    assert_eq!(live["state"], "live", "{live}");

    let rested = in_state(&gw, "h", "hibernated").await;
    assert_eq!(rested["running"], false);
    assert_eq!(hibernated_in_tree(&gw).await, Some(1));
    // The web chat's tree says so too, on the account's sessions, with no session live
    // (its frame is rebuilt at most every 250 ms after a change).
    let mut socket = common::web::connect(&gw).await;
    loop {
        let frame = common::web::next_frame(&mut socket).await;
        if frame["type"] == "tree" && hibernated_in(&frame["tree"]) == Some(1) {
            let text = frame.to_string();
            assert!(!text.contains("user:h"), "a session listed: {text}");
            break;
        }
    }
    let running = gw.running_paths().await;
    assert!(
        !running.iter().any(|p| p.contains("user:h")),
        "no actor while hibernated: {running:?}"
    );
    let (_, shown) = gw
        .get(&format!("/admin/sessions/{}", encode(&http_session("h"))))
        .await;

    let after = gw.say("h", "/session status").await;
    assert_eq!(row(&gw, "h").await["state"], "live");
    // The same context (turns, start, summary), and the same timers: max age from the
    // context's creation, idle from the last message.
    assert_eq!(line(&after, "turns:"), "turns: 2", "{after}");
    // The context came back from the store: the two turns (the commands are not in it),
    // estimated with the bytes per token the row kept.
    let (was, is) = (tokens(&before), tokens(&after));
    assert!(is > 0 && is == was, "{before}\n{after}");
    assert!(
        line(&after, "max age left:").starts_with("max age left: 1h 59m"),
        "{after}"
    );
    assert!(
        ["idle left: 1d", "idle left: 23h 59m"]
            .iter()
            .any(|s| after.contains(s)),
        "{after}"
    );
    let (_, woken) = gw
        .get(&format!("/admin/sessions/{}", encode(&http_session("h"))))
        .await;
    for field in [
        "created_at",
        "context_from",
        "summary_seq",
        "max_age_ms",
        "idle_ms",
    ] {
        assert_eq!(woken[field], shown[field], "{field} changed by hibernation");
    }
    assert_eq!(hibernated_in_tree(&gw).await, Some(0));
    // A turn after waking continues the conversation: 3 turns.
    gw.say("h", "three").await;
    let status = gw.say("h", "/session status").await;
    assert_eq!(line(&status, "turns:"), "turns: 3", "{status}");
}

/// The web chat's one session, as the admin API shows it.
async fn web_row(gw: &Gw) -> Value {
    let (_, page) = gw.get("/admin/sessions?channel=web").await;
    let key = page["sessions"][0]["key"].as_str().unwrap_or_default();
    let (_, row) = gw.get(&format!("/admin/sessions/{}", encode(key))).await;
    row
}

/// What a session learnt of its model's tokens, and a summary it has not announced yet,
/// survive hibernation: the woken session estimates its context as before, and the web
/// chat's next reply still says where the summary begins.
#[tokio::test]
async fn a_woken_session_keeps_its_token_ratio_and_its_unsaid_summary_notice() {
    let fake = OpenAiFake::start().await;
    for k in 0..20 {
        fake.script(Script::for_model(
            "summarizer",
            Script::text(format!("Summary {k}.")),
        ));
    }
    // The fake counts a token a word: "lorem ipsum dolor sit amet" is 5.4 bytes a token,
    // where an unmeasured session assumes 4.
    let words = |n: usize| format!("turn {n}:{}", " lorem ipsum dolor sit amet".repeat(75));
    let config = format!(
        "[sessions]\nhibernateAfter = \"500ms\"\n\n[providers.openai]\nbaseUrl = \"{}\"\napiKey = \"sk-test\"\n\n[response]\ntransport = \"sse\"\n\n[agents.main.model]\nprovider = \"openai\"\nname = \"gpt-4.1\"\ncontextWindow = 8000\nmaxOutputTokens = 1000\n\n[agents.main.context]\nsummaryModel = \"openai/summarizer\"\n",
        fake.base_url()
    );
    let home = TempDir::new();
    let gw = Gw::start(home.path(), Some(&config)).await;

    gw.say("r", &words(0)).await;
    gw.say("r", &words(1)).await;
    let before = tokens(&gw.say("r", "/session status").await);
    in_state(&gw, "r", "hibernated").await;
    let after = tokens(&gw.say("r", "/session status").await);
    assert_eq!(after, before, "the estimate changed across hibernation");
    // Not the unmeasured estimate: about 2 × 2 KB of user text and 2 × 2 KB of replies.
    let unmeasured = 4 * words(0).len() as u64 / 4;
    assert!(before < unmeasured * 9 / 10, "{before} vs {unmeasured}");

    // The web chat: turns until a summary is committed, then rest before the next reply.
    let mut ws = web::connect(&gw).await;
    let mut n = 0;
    loop {
        assert!(n < 20, "no summary in 20 turns");
        let id = format!("m{n}");
        web::say(&mut ws, "main", "web-1", &id, &words(n)).await;
        web::until(&mut ws, "done", &id, &mut Vec::new()).await;
        n += 1;
        let summarized = until(
            "a summary or none",
            &gw,
            Duration::from_secs(5),
            async || {
                let r = web_row(&gw).await;
                match r["summary_seq"].as_i64() {
                    Some(seq) if seq > 0 => Ok(true),
                    _ if !fake
                        .requests()
                        .iter()
                        .any(|r| r.body["model"] == "summarizer") =>
                    {
                        Ok(false)
                    }
                    _ => Err(r),
                }
            },
        )
        .await;
        if summarized {
            break;
        }
    }
    until(
        "the web session to hibernate",
        &gw,
        Duration::from_secs(20),
        async || {
            let r = web_row(&gw).await;
            if r["state"] == "hibernated" {
                Ok(())
            } else {
                Err(r)
            }
        },
    )
    .await;
    let id = format!("m{n}");
    web::say(&mut ws, "main", "web-1", &id, "after the rest").await;
    let mut seen = Vec::new();
    web::until(&mut ws, "done", &id, &mut seen).await;
    let notice = seen
        .iter()
        .find(|f| f["type"] == "notice" && f["id"] == id.as_str())
        .and_then(|f| f["text"].as_str());
    assert!(
        notice.is_some_and(|t| t.contains("were summarized")),
        "no summary notice after waking: {seen:?}"
    );
    // Said once: the reply after it has none.
    let id = format!("m{}", n + 1);
    web::say(&mut ws, "main", "web-1", &id, "and once more").await;
    let mut seen = Vec::new();
    web::until(&mut ws, "done", &id, &mut seen).await;
    assert!(!seen.iter().any(|f| f["type"] == "notice"), "{seen:?}");
}

#[tokio::test]
async fn hibernated_sessions_expire_without_waking() {
    let home = TempDir::new();
    // Idle: the context ends 1.5 s after the last message; max age: 2 s after its start,
    // however busy. Both while hibernated.
    let config = "[sessions]\nhibernateAfter = \"200ms\"\n\
                  [channels.http]\nidleHours = \"1500ms\"\n";
    let gw = Gw::start(home.path(), Some(config)).await;
    let sent = Instant::now();
    gw.say("idle", "remember me").await;
    in_state(&gw, "idle", "hibernated").await;
    let ended = in_state(&gw, "idle", "ended").await;
    assert!(
        sent.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(ended["running"], false);
    // Ended in the store by the keeper: the log never shows it woken.
    assert!(
        !gw.log().contains("Waking a session"),
        "a hibernated session was woken to expire"
    );
    until(
        "the tree's hibernated count to drop",
        &gw,
        Duration::from_secs(5),
        async || (hibernated_in_tree(&gw).await == Some(0)).then_some(()),
    )
    .await;
    let status = gw.say("idle", "/session status").await;
    assert_eq!(
        line(&status, "turns:"),
        "turns: 0",
        "a fresh context: {status}"
    );
    drop(gw);

    let home = TempDir::new();
    let config = "[sessions]\nhibernateAfter = \"200ms\"\nmaxAgeHours = \"2s\"\n";
    let gw = Gw::start(home.path(), Some(config)).await;
    let created = Instant::now();
    gw.say("old", "one").await;
    in_state(&gw, "old", "hibernated").await;
    let ended = in_state(&gw, "old", "ended").await;
    assert!(created.elapsed() >= Duration::from_secs(2));
    assert_eq!(ended["expired"], true);
    let status = gw.say("old", "/session status").await;
    assert_eq!(line(&status, "turns:"), "turns: 0", "{status}");
}

/// Messages sent around the moment a session hibernates, expires or is killed: the
/// gaps straddle `hibernateAfter` (40 ms) and the idle time (90 ms), and one message in
/// eight is followed by a kill of the session. It goes on until the log shows each race
/// happened (a message held for a closing session, by the router and by the closing
/// session itself), then every message must have exactly one answer.
#[tokio::test]
async fn messages_racing_a_session_on_its_way_out_are_answered_exactly_once() {
    let home = TempDir::new();
    let config = "[sessions]\nhibernateAfter = \"40ms\"\n[channels.http]\nidleHours = \"90ms\"\n";
    let gw = Gw::start(home.path(), Some(config)).await;
    let races = [
        "A message waits for a session on its way out.",
        "A message came as the session closed",
        "Waking a session for the messages that waited.",
    ];
    let started = Instant::now();
    let mut sent = 0u64;
    let mut seed = 0x9e37_79b9_u64;
    let session_path = |paths: &[String]| paths.iter().find(|p| p.contains("user:race")).cloned();
    loop {
        let log = gw.log();
        let seen = races.iter().all(|r| log.contains(r));
        if (seen && sent >= 200) || started.elapsed() > Duration::from_secs(60) {
            assert!(
                seen,
                "after {sent} messages, not every race was seen: {races:?}"
            );
            break;
        }
        // xorshift: gaps from 20 to 120 ms, around both deadlines.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let gap = 20 + seed % 100;
        tokio::time::sleep(Duration::from_millis(gap)).await;
        let text = format!("m{sent}");
        if seed.is_multiple_of(8) {
            // Killed right as the message arrives.
            let chat = gw.spawn_chat("race", &text, None);
            if let Some(path) = session_path(&gw.running_paths().await) {
                gw.kill(&path).await;
            }
            let reply = chat.await.expect("joined").unwrap_or_default();
            assert_eq!(
                reply["choices"][0]["message"]["content"],
                format!("echo: {text}"),
                "{reply}"
            );
        } else {
            assert_eq!(gw.say("race", &text).await, format!("echo: {text}"));
        }
        sent += 1;
    }
    let transcript = gw.transcript(&http_session("race")).await;
    let answers = answers_per_inbox(&transcript);
    assert_eq!(answers.len() as u64, sent, "one answer per message");
    assert!(
        answers.values().all(|n| *n == 1),
        "a message answered twice: {answers:?}"
    );
    let users: usize = transcript.iter().filter(|e| e["role"] == "user").count();
    assert_eq!(users as u64, sent);
}

/// 10,000 sessions hibernate; the HTTP account's `sessions` supervisor is killed; every
/// one is still there (counted, listed page by page), and any of them wakes with its turn.
#[tokio::test]
async fn killing_sessions_with_ten_thousand_hibernated_loses_none_and_the_list_pages() {
    const N: usize = 10_000;
    let home = TempDir::new();
    let gw = Gw::start(home.path(), Some("[sessions]\nhibernateAfter = \"1s\"\n")).await;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let gw = std::sync::Arc::new(gw);
    for lane in 0..8 {
        let gw = gw.clone();
        tasks.spawn(async move {
            for i in (lane..N).step_by(8) {
                let (status, body) = gw
                    .chat(&format!("u{i:05}"), "hi", None)
                    .await
                    .expect("chat");
                assert_eq!(status, 200, "{body}");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("lane");
    }
    eprintln!("{N} sessions in {:?}", started.elapsed());
    until(
        "all to hibernate",
        &gw,
        Duration::from_secs(60),
        async || {
            let n = hibernated_in_tree(&gw).await;
            if n == Some(N as u64) {
                Ok(())
            } else {
                Err(format!("{n:?}"))
            }
        },
    )
    .await;

    let sessions = gw
        .running_paths()
        .await
        .into_iter()
        .find(|p| p.ends_with("channel:http:http/sessions"))
        .expect("the HTTP account's sessions");
    assert_eq!(gw.kill(&sessions).await, 200);
    until(
        "sessions to run again",
        &gw,
        Duration::from_secs(10),
        async || {
            let running = gw.running_paths().await;
            running
                .iter()
                .any(|p| p.ends_with("channel:http:http/sessions"))
                .then_some(())
        },
    )
    .await;
    assert_eq!(hibernated_in_tree(&gw).await, Some(N as u64));

    // Every one, page by page, in key order, none twice.
    let mut keys = BTreeSet::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = "/admin/sessions?state=hibernated&limit=1000&channel=http".to_string();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = gw.get(&path).await;
        assert_eq!(status, 200, "{page}");
        let rows = page["sessions"].as_array().cloned().unwrap_or_default();
        assert!(rows.len() <= 1000);
        for r in &rows {
            assert_eq!(r["state"], "hibernated", "{r}");
            assert!(
                keys.insert(r["key"].as_str().unwrap_or_default().to_string()),
                "{r}"
            );
        }
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(keys.len(), N);
    assert_eq!(pages, N / 1000);
    let (_, page) = gw.get("/admin/sessions?limit=3").await;
    assert_eq!(page["sessions"].as_array().map(Vec::len), Some(3));
    assert_eq!(page["hibernated"], N as u64);
    for bad in [
        "limit=0",
        "limit=1001",
        "limit=ten",
        "cursor=zz",
        "state=asleep",
        "colour=red",
    ] {
        let (status, body) = gw.get(&format!("/admin/sessions?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        let param = bad.split('=').next().unwrap_or_default();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains(param),
            "{bad}: {body}"
        );
    }

    for i in [0, 4_999, N - 1] {
        let user = format!("u{i:05}");
        let status = gw.say(&user, "/session status").await;
        assert_eq!(line(&status, "turns:"), "turns: 1", "{user}: {status}");
    }
}

/// SIGKILL with one session hibernated and one waking (its message taken in, its turn
/// not yet answered): after the restart both continue, and each message has one answer.
#[tokio::test]
async fn sigkill_with_hibernated_and_waking_sessions_loses_nothing() {
    let home = TempDir::new();
    // A slow model, so the waking session's turn is in flight at the kill.
    let config = "[sessions]\nhibernateAfter = \"200ms\"\n[providers.echo]\nchunkDelayMs = 300\n";
    let port = free_port();
    let mut gw = Gw::spawn(home.path(), Some(config), port);
    gw.wait_ready(Duration::from_secs(20)).await;
    gw.chat_until_answered("rest", "one", "rest-1", Duration::from_secs(20))
        .await;
    gw.chat_until_answered("wake", "one", "wake-1", Duration::from_secs(20))
        .await;
    in_state(&gw, "rest", "hibernated").await;
    in_state(&gw, "wake", "hibernated").await;
    let pending = gw.spawn_chat("wake", "two", Some("wake-2"));
    until(
        "the waking session's turn",
        &gw,
        Duration::from_secs(10),
        async || (row(&gw, "wake").await["state"] == "live").then_some(()),
    )
    .await;
    gw.signal("KILL");
    gw.wait_exit(Duration::from_secs(10)).expect("killed");
    let _ = pending.await;

    let gw = Gw::spawn(home.path(), None, port);
    gw.wait_ready(Duration::from_secs(20)).await;
    // The message taken in before the kill is answered after it, once.
    until(
        "the resumed message's answer",
        &gw,
        Duration::from_secs(20),
        async || {
            let t = gw.transcript(&http_session("wake")).await;
            let n = answers_per_inbox(&t).len();
            if n == 2 {
                Ok(())
            } else {
                Err(format!("{n} answered"))
            }
        },
    )
    .await;
    for user in ["rest", "wake"] {
        let status = gw.say(user, "/session status").await;
        let want = if user == "rest" {
            "turns: 1"
        } else {
            "turns: 2"
        };
        assert_eq!(line(&status, "turns:"), want, "{user}: {status}");
        let answers = answers_per_inbox(&gw.transcript(&http_session(user)).await);
        assert!(answers.values().all(|n| *n == 1), "{user}: {answers:?}");
    }
}
