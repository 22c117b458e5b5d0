//! The Telegram Bot API fake, driven over real HTTP with a plain client.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pincer_fakes::telegram::{
    Chat, Incoming, Knobs, Limit, TEST_TOKEN, TelegramFake, User, WebhookInfo,
};
use serde_json::{Value, json};

const CONFLICT_POLL: &str = "Conflict: terminated by other getUpdates request; make sure that \
                             only one bot instance is running";
const CONFLICT_WEBHOOK: &str = "Conflict: can't use getUpdates method while webhook is active; \
                                use deleteWebhook to delete the webhook first";
const NOT_MODIFIED: &str = "Bad Request: message is not modified: specified new message content \
                            and reply markup are exactly the same as a current content and reply \
                            markup of the message";

fn url(fake: &TelegramFake, token: &str, method: &str) -> String {
    format!("{}/bot{token}/{method}", fake.base_url())
}

/// POSTs a JSON body as the test bot; returns (status, reply).
async fn call(fake: &TelegramFake, method: &str, body: Value) -> (u16, Value) {
    call_as(fake, TEST_TOKEN, method, body).await
}

async fn call_as(fake: &TelegramFake, token: &str, method: &str, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(url(fake, token, method))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// Asserts an error reply's envelope and returns its description.
fn error(reply: &(u16, Value), code: u16) -> String {
    assert_eq!(reply.0, code, "{}", reply.1);
    assert_eq!(reply.1["ok"], false);
    assert_eq!(reply.1["error_code"], code);
    reply.1["description"].as_str().unwrap().to_owned()
}

fn ok(reply: (u16, Value)) -> Value {
    assert_eq!(reply.0, 200, "{}", reply.1);
    assert_eq!(reply.1["ok"], true);
    reply.1["result"].clone()
}

fn alice() -> User {
    User::new(42, "Alice").with_username("alice")
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn get_me_and_auth_errors() {
    let fake = TelegramFake::start();
    let me = ok(call(&fake, "getMe", json!({})).await);
    assert_eq!(me["id"], 123_456);
    assert_eq!(me["is_bot"], true);
    assert_eq!(me["username"], "pincer_test_bot");
    assert_eq!(me["first_name"], "Pincer");

    // Method names are case-insensitive; GET works too.
    let resp = reqwest::get(url(&fake, TEST_TOKEN, "GETME")).await.unwrap();
    assert_eq!(resp.status(), 200);

    let unknown = call_as(&fake, "999:nope", "getMe", json!({})).await;
    assert_eq!(error(&unknown, 401), "Unauthorized");
    let malformed = call_as(&fake, "garbage", "getMe", json!({})).await;
    assert_eq!(
        error(&malformed, 401),
        "Unauthorized: invalid token specified"
    );
    let method = call(&fake, "getMeNow", json!({})).await;
    assert_eq!(error(&method, 404), "Not Found");
    let resp = reqwest::get(format!("{}/nope", fake.base_url()))
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    fake.set(|k| k.accept_any_token = true);
    let me = ok(call_as(&fake, "777:abc", "getMe", json!({})).await);
    assert_eq!(me["id"], 777);
    assert_eq!(me["username"], "bot777_bot");

    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 401, 401, 404, 404, 200]);
    assert!(fake.requests()[1].method_is("getme"));
}

#[tokio::test]
async fn updates_arrive_and_offset_confirms() {
    let fake = TelegramFake::start();
    let user = alice();
    let first = fake.send_text(
        TEST_TOKEN,
        Incoming::new(&Chat::private(&user), &user, "hi"),
    );
    let second = fake.send_text(
        TEST_TOKEN,
        Incoming::new(&Chat::private(&user), &user, "again"),
    );
    assert_eq!(second, first + 1);
    assert_eq!(fake.pending_updates(TEST_TOKEN), 2);

    let updates = ok(call(&fake, "getUpdates", json!({"limit": 1})).await);
    assert_eq!(updates.as_array().unwrap().len(), 1);
    let update = &updates[0];
    assert_eq!(update["update_id"], first);
    let msg = &update["message"];
    assert_eq!(msg["text"], "hi");
    assert_eq!(msg["message_id"], 1);
    assert_eq!(
        msg["from"],
        json!({"id": 42, "is_bot": false, "first_name": "Alice", "username": "alice"})
    );
    assert_eq!(
        msg["chat"],
        json!({"id": 42, "type": "private", "first_name": "Alice", "username": "alice"})
    );
    assert!(msg["date"].as_i64().unwrap() > 1_600_000_000);
    assert!(msg.get("message_thread_id").is_none());

    // Without an offset nothing is confirmed.
    assert_eq!(fake.pending_updates(TEST_TOKEN), 2);
    // A form body with the offset as a string confirms the first update.
    let resp = reqwest::Client::new()
        .post(url(&fake, TEST_TOKEN, "getUpdates"))
        .form(&[("offset", (first + 1).to_string())])
        .send()
        .await
        .unwrap();
    let updates: Value = resp.json().await.unwrap();
    assert_eq!(updates["result"][0]["message"]["text"], "again");
    assert_eq!(updates["result"][0]["message"]["message_id"], 2);
    assert_eq!(fake.pending_updates(TEST_TOKEN), 1);

    // Query-string parameters work as well.
    let resp = reqwest::get(format!(
        "{}?offset={}",
        url(&fake, TEST_TOKEN, "getUpdates"),
        second + 1
    ))
    .await
    .unwrap();
    let updates: Value = resp.json().await.unwrap();
    assert_eq!(updates["result"], json!([]));
    assert_eq!(fake.pending_updates(TEST_TOKEN), 0);
    assert_eq!(fake.counters().get_updates, 3);
    assert_eq!(fake.requests()[1].body["offset"], (first + 1).to_string());
}

#[tokio::test]
async fn raw_updates_and_allowed_updates() {
    let fake = TelegramFake::start();
    let raw = json!({"message": {
        "message_id": 50,
        "from": {"id": 7, "is_bot": false, "first_name": "Bob"},
        "chat": {"id": -100_777, "type": "supergroup", "title": "Ops"},
        "date": 1_700_000_000,
        "text": "/status",
    }});
    let id = fake.push_update(TEST_TOKEN, raw);
    let reaction = fake.push_update(
        TEST_TOKEN,
        json!({"message_reaction": {"chat": {"id": -100_777, "type": "supergroup"}}}),
    );
    assert_eq!(reaction, id + 1);

    // Reaction updates are opt-in: the default poll drops them.
    let updates = ok(call(&fake, "getUpdates", json!({})).await);
    assert_eq!(updates.as_array().unwrap().len(), 1);
    assert_eq!(updates[0]["update_id"], id);
    assert_eq!(updates[0]["message"]["text"], "/status");
    fake.push_update(TEST_TOKEN, json!({"message_reaction": {}}));
    let updates = ok(call(
        &fake,
        "getUpdates",
        json!({"offset": id + 1, "allowed_updates": ["message_reaction"]}),
    )
    .await);
    assert!(updates[0].get("message_reaction").is_some(), "{updates}");

    // The raw message is known: the bot can reply to it, and ids continue after it.
    let sent = ok(call(
        &fake,
        "sendMessage",
        json!({"chat_id": -100_777, "text": "all good", "reply_parameters": {"message_id": 50}}),
    )
    .await);
    assert_eq!(sent["message_id"], 51);
    assert_eq!(sent["reply_to_message"]["from"]["first_name"], "Bob");
    assert_eq!(sent["chat"]["type"], "supergroup");

    // A negative offset keeps only the last updates.
    for _ in 0..3 {
        fake.push_update(TEST_TOKEN, json!({"message_reaction": {}}));
    }
    let updates = ok(call(&fake, "getUpdates", json!({"offset": -1})).await);
    assert_eq!(updates.as_array().unwrap().len(), 1);
    assert_eq!(fake.pending_updates(TEST_TOKEN), 1);
}

#[tokio::test]
async fn long_poll_blocks_until_the_timeout() {
    let fake = TelegramFake::start();
    let start = Instant::now();
    let updates = ok(call(&fake, "getUpdates", json!({"timeout": 1})).await);
    let took = start.elapsed();
    assert_eq!(updates, json!([]));
    assert!(took >= Duration::from_millis(950), "{took:?}");
    assert!(took < Duration::from_millis(1500), "{took:?}");
}

#[tokio::test]
async fn long_poll_returns_as_soon_as_an_update_is_queued() {
    let fake = Arc::new(TelegramFake::start());
    let poller = {
        let fake = Arc::clone(&fake);
        tokio::spawn(async move {
            let reply = call(&fake, "getUpdates", json!({"timeout": 5})).await;
            (reply, Instant::now())
        })
    };
    wait_for("poll active", || fake.counters().get_updates_active == 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let user = alice();
    let queued_at = Instant::now();
    fake.send_text(
        TEST_TOKEN,
        Incoming::new(&Chat::private(&user), &user, "wake"),
    );
    let (reply, answered_at) = poller.await.unwrap();
    assert_eq!(ok(reply)[0]["message"]["text"], "wake");
    let delay = answered_at - queued_at;
    assert!(delay < Duration::from_millis(200), "{delay:?}");
    assert_eq!(fake.counters().get_updates_active, 0);
}

#[tokio::test]
async fn overlapping_polls_terminate_the_older_one() {
    let fake = Arc::new(TelegramFake::start());
    let older = {
        let fake = Arc::clone(&fake);
        tokio::spawn(async move { call(&fake, "getUpdates", json!({"timeout": 5})).await })
    };
    wait_for("first poll active", || {
        fake.counters().get_updates_active == 1
    })
    .await;
    let start = Instant::now();
    let newer = ok(call(&fake, "getUpdates", json!({"timeout": 0})).await);
    assert_eq!(newer, json!([]));
    let older = older.await.unwrap();
    assert_eq!(error(&older, 409), CONFLICT_POLL);
    assert!(start.elapsed() < Duration::from_secs(1));
    let counters = fake.counters();
    assert_eq!(counters.max_concurrent_get_updates, 2);
    assert_eq!(counters.conflicts, 1);
    assert_eq!(counters.get_updates_active, 0);
}

#[tokio::test]
async fn sequential_polls_never_overlap() {
    let fake = TelegramFake::start();
    for _ in 0..3 {
        ok(call(&fake, "getUpdates", json!({"timeout": 0})).await);
    }
    let counters = fake.counters();
    assert_eq!(counters.max_concurrent_get_updates, 1);
    assert_eq!(counters.conflicts, 0);
    assert_eq!(counters.get_updates, 3);
}

#[tokio::test]
async fn a_dropped_connection_ends_the_poll() {
    let fake = TelegramFake::start();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = client
        .post(url(&fake, TEST_TOKEN, "getUpdates"))
        .json(&json!({"timeout": 10}))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    drop(client);
    wait_for("poll ended", || fake.counters().get_updates_active == 0).await;
    assert_eq!(fake.requests()[0].status, 499);
    // The next poller is alone: no conflict.
    ok(call(&fake, "getUpdates", json!({})).await);
    assert_eq!(fake.counters().conflicts, 0);
    assert_eq!(fake.counters().max_concurrent_get_updates, 1);
}

#[tokio::test]
async fn topics_produce_service_messages() {
    let fake = TelegramFake::start();
    let user = alice();
    let forum = Chat::forum(-1_001_234, "Team");
    let thread = fake.create_topic(TEST_TOKEN, &forum, &user, "Ideas");
    let edited = fake.edit_topic(TEST_TOKEN, &forum, &user, thread, "Plans");
    fake.send_text(
        TEST_TOKEN,
        Incoming::new(&forum, &user, "in topic").in_thread(thread),
    );
    let updates = ok(call(&fake, "getUpdates", json!({})).await);
    let updates = updates.as_array().unwrap();
    assert_eq!(updates.len(), 3);

    let created = &updates[0]["message"];
    assert_eq!(created["message_id"], thread);
    assert_eq!(created["message_thread_id"], thread);
    assert_eq!(created["is_topic_message"], true);
    assert_eq!(created["forum_topic_created"]["name"], "Ideas");
    assert!(created["forum_topic_created"]["icon_color"].is_i64());
    assert_eq!(
        created["chat"],
        json!({"id": -1_001_234, "type": "supergroup", "title": "Team", "is_forum": true})
    );

    assert_eq!(updates[1]["update_id"], edited);
    let renamed = &updates[1]["message"];
    assert_eq!(renamed["forum_topic_edited"], json!({"name": "Plans"}));
    assert_eq!(renamed["message_thread_id"], thread);

    let text = &updates[2]["message"];
    assert_eq!(text["message_thread_id"], thread);
    assert_eq!(text["is_topic_message"], true);
    // In forums, a topic message that replies to nothing points at the topic's creation.
    assert_eq!(text["reply_to_message"]["message_id"], thread);

    // The bot answers in the topic; an unknown topic is refused.
    let sent = ok(call(
        &fake,
        "sendMessage",
        json!({"chat_id": -1_001_234, "text": "ok", "message_thread_id": thread}),
    )
    .await);
    assert_eq!(sent["message_thread_id"], thread);
    assert_eq!(sent["is_topic_message"], true);
    let bad = call(
        &fake,
        "sendMessage",
        json!({"chat_id": -1_001_234, "text": "x", "message_thread_id": 999}),
    )
    .await;
    assert_eq!(error(&bad, 400), "Bad Request: message thread not found");
    assert_eq!(
        fake.messages(TEST_TOKEN, -1_001_234)[0].thread_id,
        Some(thread)
    );

    // Private chats have topics too (Bot API 9.3).
    let dm = Chat::private(&user);
    let dm_thread = fake.create_topic(TEST_TOKEN, &dm, &user, "Chat 1");
    let sent = ok(call(
        &fake,
        "sendMessage",
        json!({"chat_id": 42, "text": "hey", "message_thread_id": dm_thread}),
    )
    .await);
    assert_eq!(sent["message_thread_id"], dm_thread);
}

#[tokio::test]
async fn send_message_shapes_and_errors() {
    let fake = TelegramFake::start();
    let user = alice();
    let group = Chat::group(-555, "Friends");
    fake.send_text(TEST_TOKEN, Incoming::new(&group, &user, "question"));

    let sent = ok(call(&fake, "sendMessage", json!({"chat_id": -555, "text": "answer", "parse_mode": "HTML", "reply_parameters": {"message_id": 1}})).await);
    assert_eq!(sent["message_id"], 2);
    assert_eq!(
        sent["from"],
        json!({"id": 123_456, "is_bot": true, "first_name": "Pincer", "username": "pincer_test_bot"})
    );
    assert_eq!(
        sent["chat"],
        json!({"id": -555, "type": "group", "title": "Friends"})
    );
    assert_eq!(sent["text"], "answer");
    assert_eq!(sent["reply_to_message"]["text"], "question");
    assert!(sent.get("message_thread_id").is_none());

    // A form body: ids as strings, legacy reply_to_message_id.
    let resp = reqwest::Client::new()
        .post(url(&fake, TEST_TOKEN, "sendMessage"))
        .form(&[
            ("chat_id", "-555"),
            ("text", "second"),
            ("reply_to_message_id", "2"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let long = "x".repeat(4097);
    let too_long = call(&fake, "sendMessage", json!({"chat_id": -555, "text": long})).await;
    assert_eq!(error(&too_long, 400), "Bad Request: message is too long");
    ok(call(
        &fake,
        "sendMessage",
        json!({"chat_id": -555, "text": "é".repeat(4096)}),
    )
    .await);
    let empty = call(&fake, "sendMessage", json!({"chat_id": -555, "text": "  "})).await;
    assert_eq!(error(&empty, 400), "Bad Request: message text is empty");
    let no_chat = call(&fake, "sendMessage", json!({"text": "hi"})).await;
    assert_eq!(error(&no_chat, 400), "Bad Request: chat_id is empty");
    let bad_reply = call(
        &fake,
        "sendMessage",
        json!({"chat_id": -555, "text": "hi", "reply_parameters": {"message_id": 77}}),
    )
    .await;
    assert_eq!(
        error(&bad_reply, 400),
        "Bad Request: message to be replied not found"
    );
    let bad_json = reqwest::Client::new()
        .post(url(&fake, TEST_TOKEN, "sendMessage"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_json.status(), 400);

    let messages = fake.messages(TEST_TOKEN, -555);
    let texts: Vec<&str> = messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["answer", "second", "é".repeat(4096).as_str()]);
    assert_eq!(messages[0].reply_to, Some(1));
    assert_eq!(messages[1].reply_to, Some(2));
    assert_eq!(fake.all_messages(TEST_TOKEN).len(), 3);
    assert_eq!(fake.counters().send_message, 8);

    fake.set(|k| k.auto_create_chats = false);
    let unknown = call(&fake, "sendMessage", json!({"chat_id": 9, "text": "hi"})).await;
    assert_eq!(error(&unknown, 400), "Bad Request: chat not found");
}

#[tokio::test]
async fn edit_message_text() {
    let fake = TelegramFake::start();
    let user = alice();
    fake.send_text(
        TEST_TOKEN,
        Incoming::new(&Chat::private(&user), &user, "hi"),
    );
    let sent = ok(call(
        &fake,
        "sendMessage",
        json!({"chat_id": 42, "text": "draft"}),
    )
    .await);
    let id = sent["message_id"].as_i64().unwrap();

    let edited = ok(call(
        &fake,
        "editMessageText",
        json!({"chat_id": 42, "message_id": id, "text": "final"}),
    )
    .await);
    assert_eq!(edited["text"], "final");
    assert_eq!(edited["message_id"], id);
    assert!(edited["edit_date"].is_i64());
    let same = call(
        &fake,
        "editMessageText",
        json!({"chat_id": 42, "message_id": id, "text": "final"}),
    )
    .await;
    assert_eq!(error(&same, 400), NOT_MODIFIED);
    let missing = call(
        &fake,
        "editMessageText",
        json!({"chat_id": 42, "message_id": 99, "text": "x"}),
    )
    .await;
    assert_eq!(
        error(&missing, 400),
        "Bad Request: message to edit not found"
    );
    let theirs = call(
        &fake,
        "editMessageText",
        json!({"chat_id": 42, "message_id": 1, "text": "x"}),
    )
    .await;
    assert_eq!(error(&theirs, 400), "Bad Request: message can't be edited");

    let messages = fake.messages(TEST_TOKEN, 42);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].text, "final");
    assert_eq!(messages[0].edits, 1);
    assert_eq!(fake.counters().edit_message_text, 4);
}

#[tokio::test]
async fn drafts_and_chat_actions() {
    let fake = TelegramFake::start();
    let draft = call(
        &fake,
        "sendMessageDraft",
        json!({"chat_id": 42, "draft_id": 7, "text": "thinking"}),
    )
    .await;
    assert_eq!(ok(draft), json!(true));
    let drafts = fake.drafts(TEST_TOKEN, 42);
    assert_eq!(drafts.len(), 1);
    assert_eq!(
        (drafts[0].draft_id, drafts[0].text.as_str()),
        (7, "thinking")
    );
    assert!(
        fake.messages(TEST_TOKEN, 42).is_empty(),
        "a draft is not a message"
    );

    let group = call(
        &fake,
        "sendMessageDraft",
        json!({"chat_id": -5, "draft_id": 7, "text": "x"}),
    )
    .await;
    assert_eq!(error(&group, 400), "Bad Request: TEXTDRAFT_PEER_INVALID");
    let zero = call(
        &fake,
        "sendMessageDraft",
        json!({"chat_id": 42, "draft_id": 0, "text": "x"}),
    )
    .await;
    assert_eq!(error(&zero, 400), "Bad Request: RANDOM_ID_INVALID");

    let typing = call(
        &fake,
        "sendChatAction",
        json!({"chat_id": 42, "action": "typing", "message_thread_id": 3}),
    )
    .await;
    assert_eq!(ok(typing), json!(true));
    let bad = call(
        &fake,
        "sendChatAction",
        json!({"chat_id": 42, "action": "dancing"}),
    )
    .await;
    assert_eq!(
        error(&bad, 400),
        "Bad Request: wrong parameter action in request"
    );

    fake.set(|k| k.drafts = false);
    let old_server = call(
        &fake,
        "sendMessageDraft",
        json!({"chat_id": 42, "draft_id": 7, "text": "x"}),
    )
    .await;
    assert_eq!(error(&old_server, 404), "Not Found");
    let counters = fake.counters();
    assert_eq!(counters.send_message_draft, 4);
    assert_eq!(counters.send_chat_action, 2);
}

#[tokio::test]
async fn injected_429s_then_success() {
    let fake = TelegramFake::start();
    fake.inject_429("sendmessage", 2, 7);
    for _ in 0..2 {
        let reply = call(&fake, "sendMessage", json!({"chat_id": 42, "text": "hi"})).await;
        assert_eq!(error(&reply, 429), "Too Many Requests: retry after 7");
        assert_eq!(reply.1["parameters"], json!({"retry_after": 7}));
    }
    ok(call(&fake, "sendMessage", json!({"chat_id": 42, "text": "hi"})).await);
    assert_eq!(fake.counters().rate_limited, 2);
    assert_eq!(fake.messages(TEST_TOKEN, 42).len(), 1);
}

#[tokio::test]
async fn chat_and_global_buckets() {
    let fake = TelegramFake::start_with(Knobs {
        chat_limit: Some(Limit {
            burst: 2,
            per: Duration::from_millis(300),
        }),
        ..Knobs::default()
    });
    let send = |chat: i64| call(&fake, "sendMessage", json!({"chat_id": chat, "text": "hi"}));
    ok(send(1).await);
    ok(send(1).await);
    let limited = send(1).await;
    assert_eq!(error(&limited, 429), "Too Many Requests: retry after 1");
    assert_eq!(limited.1["parameters"]["retry_after"], 1);
    // Another chat has its own bucket, and edits share the chat's.
    ok(send(2).await);
    let edit = call(
        &fake,
        "editMessageText",
        json!({"chat_id": 1, "message_id": 1, "text": "new"}),
    )
    .await;
    assert_eq!(error(&edit, 429), "Too Many Requests: retry after 1");
    tokio::time::sleep(Duration::from_millis(320)).await;
    ok(send(1).await);
    assert_eq!(fake.counters().rate_limited, 2);

    fake.set(|k| {
        k.chat_limit = None;
        k.global_limit = Some(Limit {
            burst: 1,
            per: Duration::from_secs(3),
        });
    });
    ok(send(3).await);
    let limited = send(4).await;
    assert_eq!(error(&limited, 429), "Too Many Requests: retry after 3");
}

/// What a webhook receiver got: (secret header, update), in arrival order.
type Deliveries = Arc<Mutex<Vec<(Option<String>, Value)>>>;

/// A webhook receiver: records (secret header, update) and fails the first `fail` POSTs.
struct Receiver {
    url: String,
    got: Deliveries,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn receiver(fail: usize) -> Receiver {
    use warp::Filter;
    let got: Deliveries = Arc::default();
    let seen = Arc::clone(&got);
    let route = warp::post()
        .and(warp::header::optional::<String>(
            "x-telegram-bot-api-secret-token",
        ))
        .and(warp::body::json())
        .map(move |secret: Option<String>, update: Value| {
            let mut seen = seen.lock();
            seen.push((secret, update));
            let status = if seen.len() <= fail {
                warp::http::StatusCode::INTERNAL_SERVER_ERROR
            } else {
                warp::http::StatusCode::OK
            };
            warp::reply::with_status("", status)
        });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = warp::serve(route)
        .incoming(listener)
        .graceful(async {
            let _ = stopped.await;
        })
        .run();
    tokio::spawn(server);
    Receiver {
        url: format!("http://{addr}/hook"),
        got,
        _stop: stop,
    }
}

#[tokio::test]
async fn webhook_delivers_in_order_with_retries() {
    let fake = TelegramFake::start();
    let hook = receiver(1).await;
    let user = alice();
    let chat = Chat::private(&user);
    let first = fake.send_text(TEST_TOKEN, Incoming::new(&chat, &user, "one"));
    fake.send_text(TEST_TOKEN, Incoming::new(&chat, &user, "two"));

    let bad = call(
        &fake,
        "setWebhook",
        json!({"url": hook.url, "secret_token": "no spaces"}),
    )
    .await;
    assert_eq!(
        error(&bad, 400),
        "Bad Request: secret token contains unallowed characters"
    );
    let set = call(
        &fake,
        "setWebhook",
        json!({"url": hook.url, "secret_token": "s3cr3t_-"}),
    )
    .await;
    assert_eq!(set.1["description"], "Webhook was set");
    assert_eq!(ok(set), json!(true));
    assert_eq!(
        fake.webhook(TEST_TOKEN),
        Some(WebhookInfo {
            url: hook.url.clone(),
            secret_token: Some("s3cr3t_-".to_owned())
        })
    );
    let poll = call(&fake, "getUpdates", json!({})).await;
    assert_eq!(error(&poll, 409), CONFLICT_WEBHOOK);

    fake.send_text(TEST_TOKEN, Incoming::new(&chat, &user, "three"));
    wait_for("three deliveries", || fake.pending_updates(TEST_TOKEN) == 0).await;
    let got = hook.got.lock().clone();
    let texts: Vec<&str> = got
        .iter()
        .map(|(_, u)| u["message"]["text"].as_str().unwrap())
        .collect();
    // The first POST failed and was retried before anything else.
    assert_eq!(texts, ["one", "one", "two", "three"]);
    assert_eq!(got[0].1["update_id"], first);
    assert!(got.iter().all(|(s, _)| s.as_deref() == Some("s3cr3t_-")));
    let counters = fake.counters();
    assert_eq!((counters.webhook_posts, counters.webhook_failures), (4, 1));

    let info = ok(call(&fake, "getWebhookInfo", json!({})).await);
    assert_eq!(info["url"], hook.url.as_str());
    assert_eq!(info["pending_update_count"], 0);
    assert!(info["last_error_message"].is_string());

    let deleted = call(&fake, "deleteWebhook", json!({})).await;
    assert_eq!(deleted.1["description"], "Webhook was deleted");
    assert_eq!(fake.webhook(TEST_TOKEN), None);
    fake.send_text(TEST_TOKEN, Incoming::new(&chat, &user, "four"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(hook.got.lock().len(), 4, "no delivery after deleteWebhook");
    let updates = ok(call(&fake, "getUpdates", json!({})).await);
    assert_eq!(updates[0]["message"]["text"], "four");
    let counters = fake.counters();
    assert_eq!((counters.set_webhook, counters.delete_webhook), (2, 1));
}

#[tokio::test]
async fn set_webhook_terminates_a_pending_poll() {
    let fake = Arc::new(TelegramFake::start());
    let poller = {
        let fake = Arc::clone(&fake);
        tokio::spawn(async move { call(&fake, "getUpdates", json!({"timeout": 5})).await })
    };
    wait_for("poll active", || fake.counters().get_updates_active == 1).await;
    ok(call(
        &fake,
        "setWebhook",
        json!({"url": "http://127.0.0.1:9/hook"}),
    )
    .await);
    let reply = poller.await.unwrap();
    assert_eq!(
        error(&reply, 409),
        "Conflict: terminated by setWebhook request"
    );
    // drop_pending_updates clears the queue on the way out.
    fake.send_text(
        TEST_TOKEN,
        Incoming::new(&Chat::private(&alice()), &alice(), "x"),
    );
    ok(call(
        &fake,
        "deleteWebhook",
        json!({"drop_pending_updates": true}),
    )
    .await);
    assert_eq!(fake.pending_updates(TEST_TOKEN), 0);
}

/// The fake also serves plain synchronous code (a test that spawns the real binary).
#[test]
fn serves_sync_callers() {
    let fake = TelegramFake::start();
    let addr = fake.base_url().trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        stream,
        "GET /bot{TEST_TOKEN}/getMe HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains(r#""username":"pincer_test_bot""#), "{reply}");
}
