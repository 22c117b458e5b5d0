//! Telegram accounts on the real binary against the Bot API fake of `tests/fakes`: long
//! polling with one poller per token through a hundred link kills, webhook mode, DM
//! policies and pairing, DM topics (by id and by learned name) reaching the provider
//! request, groups and forum topics, splitting, pacing and 429s, streaming previews,
//! `/session` commands, and `pincer channels add|list` on a running gateway.

mod common;

use std::time::{Duration, Instant};

use common::{Gw, TempDir, run_cli, until};
use pincer_fakes::telegram::{
    BotMessage, Chat, Incoming, Knobs, Limit, TEST_TOKEN, TelegramFake, User,
};
use serde_json::Value;

/// An echo-model gateway with one Telegram account `tg` at `fake`; `dm` goes into
/// `[channels.telegram.dm]`, `extra` at the end.
fn config(fake: &TelegramFake, dm: &str, extra: &str) -> String {
    format!(
        "[channels.telegram.dm]\n{dm}\n\n[channels.telegram.accounts.tg]\ntoken = \"{TEST_TOKEN}\"\napiBase = \"{}\"\n\n{extra}\n",
        fake.base_url()
    )
}

/// Waits for the bot's `n`th message in `chat` and returns all of them.
async fn replies(gw: &Gw, fake: &TelegramFake, chat: i64, n: usize) -> Vec<BotMessage> {
    until(
        &format!("{n} bot messages in chat {chat}"),
        gw,
        Duration::from_secs(20),
        async || {
            let m = fake.messages(TEST_TOKEN, chat);
            (m.len() >= n).then_some(m)
        },
    )
    .await
}

fn alice() -> User {
    User::new(42, "Alice").with_username("alice")
}

#[tokio::test]
async fn an_open_dm_is_answered_once_as_a_reply_and_its_update_confirmed() {
    let fake = TelegramFake::start();
    let home = TempDir::new();
    let gw = Gw::start(home.path(), Some(&config(&fake, "dmPolicy = \"open\"", ""))).await;
    let a = alice();
    fake.send_text(
        TEST_TOKEN,
        Incoming::new(&Chat::private(&a), &a, "hello there"),
    );
    let got = replies(&gw, &fake, 42, 1).await;
    assert_eq!(got[0].text, "echo: hello there");
    assert!(got[0].reply_to.is_some(), "the reply quotes the message");
    // Confirmed by the next poll's offset, once the message is in the inbox.
    until(
        "the update confirmed",
        &gw,
        Duration::from_secs(10),
        async || (fake.pending_updates(TEST_TOKEN) == 0).then_some(()),
    )
    .await;
    // No second answer within half a second (a negative check: only time can show it).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fake.messages(TEST_TOKEN, 42).len(), 1, "answered once");
    let typing = fake
        .requests()
        .iter()
        .filter(|r| r.method_is("sendChatAction"))
        .count();
    assert!(typing >= 1, "typing action sent");
    assert!(
        fake.drafts(TEST_TOKEN, 42).is_empty(),
        "a quick reply is not previewed"
    );
    assert!(fake.counters().max_concurrent_get_updates <= 1);
}

#[tokio::test]
async fn pairing_gives_a_code_and_no_turn_until_the_owner_approves_it() {
    let fake = TelegramFake::start();
    let home = TempDir::new();
    // Pairing is the default policy.
    let gw = Gw::start(home.path(), Some(&config(&fake, "", ""))).await;
    let a = alice();
    fake.send_text(
        TEST_TOKEN,
        Incoming::new(&Chat::private(&a), &a, "let me in"),
    );
    let got = replies(&gw, &fake, 42, 1).await;
    let code = got[0]
        .text
        .split("pairing approve ")
        .nth(1)
        .expect("a code in the answer")
        .trim()
        .to_string();
    assert_eq!(code.len(), 8);
    // The same code again for a second message, and still no turn.
    fake.send_text(TEST_TOKEN, Incoming::new(&Chat::private(&a), &a, "please"));
    let got = replies(&gw, &fake, 42, 2).await;
    assert!(got[1].text.contains(&code));
    let (_, sessions) = gw.get("/admin/sessions").await;
    assert_eq!(
        sessions["sessions"].as_array().map(Vec::len),
        Some(0),
        "no turn ran"
    );

    let (status, out, err) = run_cli(home.path(), &["pairing", "list"], Some(gw.port));
    assert_eq!(status, 0, "{err}");
    assert!(
        out.contains(&code) && out.contains("pending") && out.contains("@alice"),
        "{out}"
    );
    let (status, out, err) = run_cli(
        home.path(),
        &["pairing", "approve", &code.to_lowercase()],
        Some(gw.port),
    );
    assert_eq!(status, 0, "{err}");
    assert!(out.contains("approved @alice"), "{out}");
    let (status, _, err) = run_cli(
        home.path(),
        &["pairing", "approve", "NOPE2345"],
        Some(gw.port),
    );
    assert_eq!(status, 1);
    assert!(err.contains("no pending pairing has code"), "{err}");

    fake.send_text(TEST_TOKEN, Incoming::new(&Chat::private(&a), &a, "thanks"));
    let got = replies(&gw, &fake, 42, 3).await;
    assert_eq!(got[2].text, "echo: thanks");
}

#[tokio::test]
async fn allowlist_and_disabled_policies_let_only_who_they_say_in() {
    let fake = TelegramFake::start();
    let home = TempDir::new();
    let dm = "dmPolicy = \"allowlist\"\nallowFrom = [\"@alice\", \"77\"]";
    let gw = Gw::start(home.path(), Some(&config(&fake, dm, ""))).await;
    let (a, b, c) = (alice(), User::new(77, "Bob"), User::new(99, "Mallory"));
    for (u, text) in [
        (&c, "hi from mallory"),
        (&a, "hi from alice"),
        (&b, "hi from bob"),
    ] {
        fake.send_text(TEST_TOKEN, Incoming::new(&Chat::private(u), u, text));
    }
    assert_eq!(
        replies(&gw, &fake, 42, 1).await[0].text,
        "echo: hi from alice"
    );
    assert_eq!(
        replies(&gw, &fake, 77, 1).await[0].text,
        "echo: hi from bob"
    );
    // Mallory was first in line, and gets nothing within 800 ms (a negative check).
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        fake.messages(TEST_TOKEN, 99).is_empty(),
        "not on the list: no answer"
    );

    // Switched to disabled while running: nobody gets a turn any more.
    let reloads = gw.reloads();
    let text = config(&fake, "dmPolicy = \"disabled\"", "");
    std::fs::write(home.path().join("pincer.toml"), text).expect("edit config");
    until(
        "the edit in force",
        &gw,
        Duration::from_secs(10),
        async || (gw.reloads() > reloads).then_some(()),
    )
    .await;
    fake.send_text(
        TEST_TOKEN,
        Incoming::new(&Chat::private(&a), &a, "still there?"),
    );
    until(
        "the update confirmed",
        &gw,
        Duration::from_secs(10),
        async || (fake.pending_updates(TEST_TOKEN) == 0).then_some(()),
    )
    .await;
    // Taken in, and no answer within 1.5 s (a negative check).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(fake.messages(TEST_TOKEN, 42).len(), 1);
}

#[tokio::test]
async fn require_topic_explains_itself_and_each_topic_is_its_own_session() {
    let fake = TelegramFake::start();
    let home = TempDir::new();
    let dm = "dmPolicy = \"open\"\nrequireTopic = true";
    let gw = Gw::start(home.path(), Some(&config(&fake, dm, ""))).await;
    let a = alice();
    let chat = Chat::private(&a);
    fake.send_text(TEST_TOKEN, Incoming::new(&chat, &a, "no topic"));
    let got = replies(&gw, &fake, 42, 1).await;
    assert!(
        got[0].text.contains("only inside topics"),
        "{}",
        got[0].text
    );

    let t1 = fake.create_topic(TEST_TOKEN, &chat, &a, "Ideas");
    let t2 = fake.create_topic(TEST_TOKEN, &chat, &a, "Chores");
    fake.send_text(TEST_TOKEN, Incoming::new(&chat, &a, "one").in_thread(t1));
    fake.send_text(TEST_TOKEN, Incoming::new(&chat, &a, "two").in_thread(t2));
    let got = replies(&gw, &fake, 42, 3).await;
    let in_t1 = got
        .iter()
        .find(|m| m.thread_id == Some(t1))
        .expect("reply in topic 1");
    let in_t2 = got
        .iter()
        .find(|m| m.thread_id == Some(t2))
        .expect("reply in topic 2");
    assert_eq!(in_t1.text, "echo: one");
    assert_eq!(in_t2.text, "echo: two");
    let (_, sessions) = gw.get("/admin/sessions").await;
    let keys: Vec<&str> = sessions["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .filter_map(|s| s["key"].as_str())
        .collect();
    assert!(
        keys.contains(&format!("agent:main:telegram:tg:dm:42:topic:{t1}").as_str()),
        "{keys:?}"
    );
    assert!(
        keys.contains(&format!("agent:main:telegram:tg:dm:42:topic:{t2}").as_str()),
        "{keys:?}"
    );
}

#[tokio::test]
async fn session_commands_are_answered_by_the_session_in_a_dm() {
    let fake = TelegramFake::start();
    let home = TempDir::new();
    let gw = Gw::start(home.path(), Some(&config(&fake, "dmPolicy = \"open\"", ""))).await;
    let a = alice();
    let chat = Chat::private(&a);
    fake.send_text(TEST_TOKEN, Incoming::new(&chat, &a, "remember me"));
    replies(&gw, &fake, 42, 1).await;
    fake.send_text(TEST_TOKEN, Incoming::new(&chat, &a, "/session status"));
    let got = replies(&gw, &fake, 42, 2).await;
    assert!(
        got[1].text.contains("agent:main:telegram:tg:dm:42"),
        "{}",
        got[1].text
    );
    fake.send_text(
        TEST_TOKEN,
        Incoming::new(&chat, &a, "/session@pincer_test_bot reset"),
    );
    let got = replies(&gw, &fake, 42, 3).await;
    assert!(got[2].text.contains("new conversation"), "{}", got[2].text);
}

#[tokio::test]
async fn a_long_reply_is_split_and_paced_within_the_chat_limit_and_429_is_honoured() {
    let fake = TelegramFake::start_with(Knobs {
        chat_limit: Some(Limit {
            burst: 3,
            per: Duration::from_secs(1),
        }),
        ..Knobs::default()
    });
    let home = TempDir::new();
    let gw = Gw::start(home.path(), Some(&config(&fake, "dmPolicy = \"open\"", ""))).await;
    let a = alice();
    // Paragraphs of 1000 characters: the echo reply is about 14,000 characters.
    let text: String = (0..14)
        .map(|i| format!("{}\n\n", char::from(b'a' + i).to_string().repeat(998)))
        .collect();
    fake.inject_429("sendMessage", 1, 1);
    let started = Instant::now();
    fake.send_text(TEST_TOKEN, Incoming::new(&Chat::private(&a), &a, &text));
    let got = until("four parts", &gw, Duration::from_secs(30), async || {
        let m = fake.messages(TEST_TOKEN, 42);
        (m.len() >= 4).then_some(m)
    })
    .await;
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "retry_after waited"
    );
    assert!(got.iter().all(|m| m.text.chars().count() <= 4096));
    let joined: String = got
        .iter()
        .map(|m| m.text.as_str())
        .collect::<Vec<_>>()
        .join("\n\n");
    assert_eq!(
        joined.split_whitespace().collect::<Vec<_>>(),
        format!("echo: {text}")
            .split_whitespace()
            .collect::<Vec<_>>(),
        "nothing lost or reordered"
    );
    // Every paragraph whole: cuts fell on paragraph breaks.
    for m in &got {
        for para in m.text.trim_start_matches("echo: ").split("\n\n") {
            assert_eq!(
                para.len(),
                998,
                "a paragraph was cut: {}",
                &para[..20.min(para.len())]
            );
        }
    }
    // No further request is refused within 300 ms (a negative check).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        fake.counters().rate_limited,
        1,
        "only the injected 429: the pace kept under the limit"
    );
}

#[tokio::test]
async fn a_slow_reply_streams_a_preview_then_the_final_text() {
    let fake = TelegramFake::start();
    let home = TempDir::new();
    // 40 chunks of 4 characters, 60 ms apart: about 2.4 s of streaming.
    let extra = "[providers.echo]\nchunkSize = 4\nchunkDelayMs = 60\n";
    let gw = Gw::start(
        home.path(),
        Some(&config(&fake, "dmPolicy = \"open\"", extra)),
    )
    .await;
    let a = alice();
    let text = "stream ".repeat(22);
    fake.send_text(
        TEST_TOKEN,
        Incoming::new(&Chat::private(&a), &a, text.trim()),
    );
    let got = replies(&gw, &fake, 42, 1).await;
    let final_text = format!("echo: {}", text.trim());
    until("the final text", &gw, Duration::from_secs(20), async || {
        let m = fake.messages(TEST_TOKEN, 42);
        (m.len() == 1 && m[0].text == final_text).then_some(())
    })
    .await;
    let drafts = fake.drafts(TEST_TOKEN, 42);
    assert!(!drafts.is_empty(), "a DM previews with sendMessageDraft");
    assert!(
        drafts.iter().all(|d| final_text.starts_with(&d.text)),
        "previews are prefixes"
    );
    assert!(
        drafts.len() <= 4,
        "previews are throttled: {}",
        drafts.len()
    );
    let _ = got;
}

#[tokio::test]
async fn a_group_needs_a_mention_and_each_forum_topic_is_its_own_session() {
    let fake = TelegramFake::start();
    let home = TempDir::new();
    let extra = "[channels.telegram.groups]\nrequireMention = true\n";
    let gw = Gw::start(home.path(), Some(&config(&fake, "", extra))).await;
    let a = alice();
    let forum = Chat::forum(-1001234, "Team");
    let topic = fake.create_topic(TEST_TOKEN, &forum, &a, "Ops");
    fake.send_text(
        TEST_TOKEN,
        Incoming::new(&forum, &a, "chatter without mention").in_thread(topic),
    );
    fake.send_text(
        TEST_TOKEN,
        Incoming::new(&forum, &a, "@pincer_test_bot status please").in_thread(topic),
    );
    fake.send_text(
        TEST_TOKEN,
        Incoming::new(&forum, &a, "@pincer_test_bot in general"),
    );
    let got = replies(&gw, &fake, -1001234, 2).await;
    let in_topic = got
        .iter()
        .find(|m| m.thread_id == Some(topic))
        .expect("reply in the topic");
    assert_eq!(in_topic.text, "echo: status please");
    assert!(got.iter().any(|m| m.text == "echo: in general"));
    // The message without a mention came first, and gets nothing within 800 ms (a
    // negative check).
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        fake.messages(TEST_TOKEN, -1001234).len(),
        2,
        "no answer without a mention"
    );
    let (_, sessions) = gw.get("/admin/sessions").await;
    let keys: Vec<String> = sessions["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .filter_map(|s| s["key"].as_str().map(str::to_string))
        .collect();
    assert!(
        keys.contains(&format!(
            "agent:main:telegram:tg:group:-1001234:topic:{topic}"
        )),
        "{keys:?}"
    );
    assert!(
        keys.contains(&"agent:main:telegram:tg:group:-1001234".to_string()),
        "{keys:?}"
    );
}

#[tokio::test]
async fn webhook_mode_sets_the_webhook_with_a_secret_and_checks_it_on_every_post() {
    let fake = TelegramFake::start();
    let home = TempDir::new();
    let port = common::free_port();
    let cfg = format!(
        "[channels.telegram.dm]\ndmPolicy = \"open\"\n\n[channels.telegram.accounts.tg]\ntoken = \"{TEST_TOKEN}\"\napiBase = \"{}\"\nmode = \"webhook\"\nwebhookUrl = \"http://127.0.0.1:{port}/telegram/tg\"\nwebhookSecret = \"s3cret-hook\"\n",
        fake.base_url()
    );
    let gw = Gw::spawn(home.path(), Some(&cfg), port);
    gw.wait_ready(Duration::from_secs(20)).await;
    until(
        "the webhook set",
        &gw,
        Duration::from_secs(10),
        async || fake.webhook(TEST_TOKEN),
    )
    .await;
    let hook = fake.webhook(TEST_TOKEN).expect("webhook");
    assert_eq!(hook.secret_token.as_deref(), Some("s3cret-hook"));
    let a = alice();
    fake.send_text(
        TEST_TOKEN,
        Incoming::new(&Chat::private(&a), &a, "via webhook"),
    );
    let got = replies(&gw, &fake, 42, 1).await;
    assert_eq!(got[0].text, "echo: via webhook");
    assert_eq!(fake.counters().get_updates, 0, "no polling in webhook mode");

    let forged = gw
        .http
        .post(gw.url("/telegram/tg"))
        .header("X-Telegram-Bot-Api-Secret-Token", "wrong")
        .json(&serde_json::json!({"update_id": 1, "message": {"message_id": 9, "chat": {"id": 42, "type": "private"}, "from": {"id": 42, "is_bot": false, "first_name": "A"}, "date": 0, "text": "forged"}}))
        .send()
        .await
        .expect("post");
    assert_eq!(forged.status().as_u16(), 401);
    let garbage = gw
        .http
        .post(gw.url("/telegram/tg"))
        .header("X-Telegram-Bot-Api-Secret-Token", "s3cret-hook")
        .body("not json")
        .send()
        .await
        .expect("post");
    assert_eq!(garbage.status().as_u16(), 400);
    // No turn within half a second (a negative check).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        fake.messages(TEST_TOKEN, 42).len(),
        1,
        "the forged update got no turn"
    );
}

#[tokio::test]
async fn a_hundred_link_kills_under_load_never_make_two_pollers_nor_lose_or_repeat_a_reply() {
    let fake = TelegramFake::start();
    let home = TempDir::new();
    let gw = Gw::start(home.path(), Some(&config(&fake, "dmPolicy = \"open\"", ""))).await;
    let link = "pincer/channels/channel:telegram:tg/link";
    // Forty chats, two messages per kill: the pace of about one message a second per chat
    // keeps the replies within seconds of the last kill.
    let users: Vec<User> = (0..40).map(|i| User::new(1000 + i, "U")).collect();
    let mut sent = 0usize;
    let mut kills = 0;
    let started = Instant::now();
    while kills < 100 {
        for _ in 0..2 {
            let u = &users[sent % users.len()];
            fake.send_text(
                TEST_TOKEN,
                Incoming::new(&Chat::private(u), u, &format!("m{sent}")),
            );
            sent += 1;
        }
        // Kill it mid-poll, the hardest moment: wait until a getUpdates is in flight.
        let polling = Instant::now() + Duration::from_secs(5);
        while fake.counters().get_updates_active == 0 && Instant::now() < polling {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // A link that is restarting cannot be killed (409): wait for it, count real kills.
        loop {
            if gw.kill(link).await.is_success() {
                kills += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await; // the pace of the kills
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while fake.all_messages(TEST_TOKEN).len() < sent && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let total = fake.all_messages(TEST_TOKEN);
    if total.len() < sent {
        let mut answered: Vec<&str> = total.iter().map(|m| m.text.as_str()).collect();
        answered.sort();
        let missing: Vec<String> = (0..sent)
            .map(|i| format!("echo: m{i}"))
            .filter(|t| !answered.contains(&t.as_str()))
            .collect();
        let (_, metrics) = (0, gw.get_text("/metrics").await);
        let inbox: Vec<&str> = metrics.lines().filter(|l| l.contains("inbox")).collect();
        panic!(
            "{} of {sent} answered; missing {missing:?}; pending updates {}; {:?}; {inbox:?}",
            total.len(),
            fake.pending_updates(TEST_TOKEN),
            fake.counters()
        );
    }
    // Every message answered; no second answer within 2 s (a negative check).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = fake.all_messages(TEST_TOKEN);
    assert_eq!(
        all.len(),
        sent,
        "each message answered exactly once (got {} for {sent})",
        all.len()
    );
    let mut texts: Vec<&str> = all.iter().map(|m| m.text.as_str()).collect();
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), sent, "no reply twice");
    let counters = fake.counters();
    assert_eq!(
        counters.max_concurrent_get_updates, 1,
        "one poller per token, ever"
    );
    assert_eq!(counters.conflicts, 0);
    eprintln!(
        "{kills} kills, {sent} messages in {:?}, {} getUpdates",
        started.elapsed(),
        counters.get_updates
    );
    let _ = total;
    let _: Value = Value::Null;
}

#[tokio::test]
async fn channels_add_starts_an_account_on_a_running_gateway_and_list_shows_it() {
    let fake = TelegramFake::start();
    let home = TempDir::new();
    let gw = Gw::start(home.path(), Some("[agents.main]\n\n[agents.helper]\nsystemPrompt = \"Helpful.\"\n\n[channels.telegram.dm]\ndmPolicy = \"open\"\n")).await;
    let (status, out, err) = run_cli(
        home.path(),
        &[
            "channels",
            "add",
            "--type",
            "telegram",
            "--account",
            "tg-new",
            "--token-ref",
            TEST_TOKEN,
            "--api-base",
            &fake.base_url(),
            "--bind-agent",
            "helper",
        ],
        Some(gw.port),
    );
    assert_eq!(status, 0, "{err}");
    assert!(out.contains("started on the running gateway"), "{out}");
    let text = std::fs::read_to_string(home.path().join("pincer.toml")).expect("config");
    assert!(
        text.contains("[channels.telegram.accounts.tg-new]"),
        "{text}"
    );
    assert!(text.contains("agent = \"helper\""), "{text}");
    let a = alice();
    fake.send_text(
        TEST_TOKEN,
        Incoming::new(&Chat::private(&a), &a, "new bot?"),
    );
    let got = replies(&gw, &fake, 42, 1).await;
    assert_eq!(got[0].text, "echo: new bot?");
    let (_, sessions) = gw.get("/admin/sessions").await;
    assert!(
        sessions
            .to_string()
            .contains("agent:helper:telegram:tg-new:dm:42"),
        "bound agent answered: {sessions}"
    );

    let (status, out, err) = run_cli(home.path(), &["channels", "list"], Some(gw.port));
    assert_eq!(status, 0, "{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with("tg-new"))
        .expect("tg-new listed");
    assert!(
        line.contains("telegram") && line.contains("connected since") && line.contains("(poll)"),
        "{out}"
    );
    // The same id again is refused, naming where it is.
    let (status, _, err) = run_cli(
        home.path(),
        &[
            "channels",
            "add",
            "--type",
            "discord",
            "--account",
            "tg-new",
            "--token-ref",
            "env:X",
        ],
        Some(gw.port),
    );
    assert_eq!(status, 2);
    assert!(err.contains("already exists"), "{err}");
}

#[tokio::test]
async fn dm_topics_bring_their_prompt_and_skills_to_the_provider_by_id_and_by_learned_name() {
    use pincer_fakes::openai::{OpenAiFake, Transport};
    let openai = OpenAiFake::start().await;
    let fake = TelegramFake::start();
    let home = TempDir::new();
    let a = alice();
    let chat = Chat::private(&a);
    // One topic exists before the gateway starts: it is configured by its id.
    let by_id = fake.create_topic(TEST_TOKEN, &chat, &a, "Scratch");
    let dm = format!(
        "dmPolicy = \"open\"\nrequireTopic = true\n\n[channels.telegram.dm.topics.research]\nskills = [\"echo\"]\nsystemPrompt = \"You are a research assistant.\"\n\n[channels.telegram.dm.topics.\"{by_id}\"]\nskills = []\nsystemPrompt = \"You are a scratchpad.\"\n"
    );
    let extra = format!(
        "[providers.openai]\nbaseUrl = \"{}\"\napiKey = \"sk-test\"\n\n[response]\ntransport = \"sse\"\n\n[agents.main]\nmodel = \"openai/gpt-5\"\nsystemPrompt = \"You are the main agent.\"\nskills = [\"echo\"]\n",
        openai.base_url()
    );
    let gw = Gw::start(home.path(), Some(&config(&fake, &dm, &extra))).await;
    // The name is learned from the topic-created service message.
    let research = fake.create_topic(TEST_TOKEN, &chat, &a, "Research");
    fake.send_text(
        TEST_TOKEN,
        Incoming::new(&chat, &a, "find papers").in_thread(research),
    );
    replies(&gw, &fake, 42, 1).await;
    fake.send_text(
        TEST_TOKEN,
        Incoming::new(&chat, &a, "note this").in_thread(by_id),
    );
    replies(&gw, &fake, 42, 2).await;
    let bodies: Vec<Value> = openai
        .requests()
        .into_iter()
        .filter(|r| r.transport == Transport::Sse)
        .map(|r| r.body)
        .collect();
    let asked = |text: &str| {
        bodies
            .iter()
            .find(|b| b.to_string().contains(text))
            .cloned()
            .unwrap_or_else(|| panic!("no request with {text}: {bodies:?}"))
    };
    let research_req = asked("find papers");
    assert_eq!(
        research_req["instructions"],
        "You are a research assistant."
    );
    let tools: Vec<&str> = research_req["tools"]
        .as_array()
        .map(|t| t.iter().filter_map(|t| t["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(tools, vec!["echo"], "the topic keeps the agent's echo");
    let scratch_req = asked("note this");
    assert_eq!(scratch_req["instructions"], "You are a scratchpad.");
    assert!(
        scratch_req
            .get("tools")
            .is_none_or(|t| t.as_array().is_none_or(Vec::is_empty))
    );

    // Renamed topic: the new name is learned too (no config matches it: the agent's prompt).
    fake.edit_topic(TEST_TOKEN, &chat, &a, research, "Reading list");
    fake.send_text(
        TEST_TOKEN,
        Incoming::new(&chat, &a, "after rename").in_thread(research),
    );
    replies(&gw, &fake, 42, 3).await;
    let bodies: Vec<Value> = openai.requests().into_iter().map(|r| r.body).collect();
    let renamed = bodies
        .iter()
        .find(|b| b.to_string().contains("after rename"))
        .expect("request");
    assert_eq!(renamed["instructions"], "You are the main agent.");
}

#[tokio::test]
async fn another_poller_on_the_token_makes_the_link_back_off_not_fight() {
    let fake = TelegramFake::start();
    let home = TempDir::new();
    let gw = Gw::start(home.path(), Some(&config(&fake, "dmPolicy = \"open\"", ""))).await;
    until(
        "the link polling",
        &gw,
        Duration::from_secs(10),
        async || (fake.counters().get_updates_active == 1).then_some(()),
    )
    .await;
    // Someone else (an old deployment) polls the same token, again and again for 3 s.
    let url = format!("{}/bot{TEST_TOKEN}/getUpdates", fake.base_url());
    let rogue = tokio::spawn(async move {
        let http = reqwest::Client::new();
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            let _ = http
                .post(&url)
                .json(&serde_json::json!({"timeout": 1}))
                .send()
                .await;
        }
    });
    until(
        "the conflict to show in channels list",
        &gw,
        Duration::from_secs(10),
        async || {
            // Off the runtime, so the other poller keeps polling meanwhile.
            let (home, port) = (home.path().to_path_buf(), gw.port);
            let (status, out, err) = tokio::task::spawn_blocking(move || {
                run_cli(&home, &["channels", "list"], Some(port))
            })
            .await
            .expect("cli");
            assert_eq!(status, 0, "{err}");
            if out.contains("409") {
                Ok(())
            } else {
                Err(out)
            }
        },
    )
    .await;
    let _ = rogue.await;
    // Backing off, the link made few attempts while the other poller ran.
    let during: usize = fake
        .requests()
        .iter()
        .filter(|r| r.method_is("getUpdates") && r.status == 409)
        .count();
    assert!(during < 40, "{during} conflicts: the link must back off");
    let a = alice();
    fake.send_text(
        TEST_TOKEN,
        Incoming::new(&Chat::private(&a), &a, "are you back?"),
    );
    let got = until(
        "an answer after the other poller left",
        &gw,
        Duration::from_secs(40),
        async || {
            let m = fake.messages(TEST_TOKEN, 42);
            (!m.is_empty()).then_some(m)
        },
    )
    .await;
    assert_eq!(got[0].text, "echo: are you back?");
}

#[tokio::test]
async fn without_drafts_a_slow_reply_is_previewed_by_editing_one_message() {
    let fake = TelegramFake::start_with(Knobs {
        drafts: false,
        ..Knobs::default()
    });
    let home = TempDir::new();
    let extra = "[providers.echo]\nchunkSize = 4\nchunkDelayMs = 60\n";
    let gw = Gw::start(
        home.path(),
        Some(&config(&fake, "dmPolicy = \"open\"", extra)),
    )
    .await;
    let a = alice();
    let text = "edit ".repeat(30);
    fake.send_text(
        TEST_TOKEN,
        Incoming::new(&Chat::private(&a), &a, text.trim()),
    );
    let final_text = format!("echo: {}", text.trim());
    let got = until("the final text", &gw, Duration::from_secs(20), async || {
        let m = fake.messages(TEST_TOKEN, 42);
        (m.len() == 1 && m[0].text == final_text).then_some(m)
    })
    .await;
    assert!(
        got[0].edits >= 1,
        "the preview message was edited into the reply"
    );
    assert!(got[0].edits <= 5, "edits are throttled: {}", got[0].edits);
    assert!(fake.drafts(TEST_TOKEN, 42).is_empty());
    // No further message within 300 ms (a negative check).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        fake.messages(TEST_TOKEN, 42).len(),
        1,
        "one message, not one per preview"
    );
}
