//! Approvals on the real binary: an `exec` call whose binary is off the allowlist asks the
//! person in the chat the message came from, the turn waits, and `/approve <id> once |
//! always | deny` (or no answer in time) decides; `always` is kept in the store; the
//! session answers `/session` commands meanwhile. Through the web chat's socket and the
//! Telegram fake. The sandbox is off here (`sandbox = "none"`): what is tested is the
//! question and its answer, and the commands run (`date`, `/bin/echo`: binaries, which the allowlist asks about, unlike builtins) touch nothing.

mod common;

use std::time::Duration;

use common::model::all_outputs;
use common::web::{Socket, connect, expect, say};
use common::{Gw, TempDir, run_cli, until};
use pincer_fakes::openai::{OpenAiFake, Script};
use pincer_fakes::telegram::{Chat, Incoming, TEST_TOKEN, TelegramFake, User};
use serde_json::json;

/// A gateway whose `main` agent may call `exec` (nothing allowlisted, ask on a miss).
async fn gateway(home: &TempDir, fake: &OpenAiFake, extra: &str) -> Gw {
    let config = format!(
        "[providers.openai]\nbaseUrl = \"{}\"\napiKey = \"sk-test\"\n\n[response]\ntransport = \"sse\"\n\n[agents.main]\nmodel = \"openai/gpt-4.1\"\nskills = [\"exec\"]\n\n[tools.exec]\nsandbox = \"none\"\n{extra}",
        fake.base_url()
    );
    Gw::start(home.path(), Some(&config)).await
}

fn exec(command: &str) -> Script {
    Script::tool_call("exec", json!({ "command": command }).to_string())
}

/// The approval id the web chat's question for message `id` carries.
async fn asked(ws: &mut Socket, id: &str) -> String {
    let notice = expect(ws, "notice", id).await;
    notice["approval"]["id"]
        .as_str()
        .expect("an id")
        .to_string()
}

/// Answers approval `question` with `decision`, as web chat message `id`.
async fn answer(ws: &mut Socket, id: &str, question: &str, decision: &str) {
    say(
        ws,
        "main",
        "web-1",
        id,
        &format!("/approve {question} {decision}"),
    )
    .await;
}

/// The approval id in a question's text (as a chat app shows it).
fn question_id(text: &str) -> String {
    text.split("/approve ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("an id in the question")
        .to_string()
}

#[tokio::test]
async fn the_web_chat_asks_and_once_runs_it_while_the_session_answers_meanwhile() {
    let fake = OpenAiFake::start().await;
    let home = TempDir::new();
    let gw = gateway(&home, &fake, "").await;
    fake.script(exec("/bin/echo approved-run"));
    fake.script(Script::text("It ran."));
    let mut ws = connect(&gw).await;
    say(&mut ws, "main", "web-1", "m1", "run it").await;
    let notice = expect(&mut ws, "notice", "m1").await;
    let text = notice["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("exec wants to run") && text.contains("/bin/echo approved-run"),
        "{text}"
    );
    assert_eq!(notice["approval"]["tool"], "exec");
    assert_eq!(notice["approval"]["action"], "/bin/echo approved-run");
    let id = notice["approval"]["id"]
        .as_str()
        .expect("an id")
        .to_string();
    assert!(text.contains(&format!("/approve {id} once")), "{text}");
    // The turn waits; the session still answers.
    say(&mut ws, "main", "web-1", "m2", "/session status").await;
    let status = expect(&mut ws, "done", "m2").await;
    assert!(
        status["text"]
            .as_str()
            .unwrap_or_default()
            .contains("agent: main"),
        "{status}"
    );
    assert_eq!(all_outputs(&fake).len(), 0, "nothing ran before the answer");
    answer(&mut ws, "m3", &id, "once").await;
    let approved = expect(&mut ws, "done", "m3").await;
    assert_eq!(approved["text"], "Approved once: /bin/echo approved-run");
    let done = expect(&mut ws, "done", "m1").await;
    assert_eq!(done["text"], "It ran.");
    let out = all_outputs(&fake).concat();
    assert!(out.contains("approved-run"), "{out}");
    // A second answer to the same question finds nothing waiting.
    answer(&mut ws, "m4", &id, "once").await;
    let late = expect(&mut ws, "done", "m4").await;
    assert!(
        late["text"]
            .as_str()
            .unwrap_or_default()
            .contains("No approval"),
        "{late}"
    );
}

#[tokio::test]
async fn deny_and_no_answer_in_time_run_nothing() {
    let fake = OpenAiFake::start().await;
    let home = TempDir::new();
    let gw = gateway(&home, &fake, "approvalTimeout = \"1s\"\n").await;
    let mut ws = connect(&gw).await;
    fake.script(exec("/bin/echo denied-run"));
    fake.script(Script::text("Fine."));
    say(&mut ws, "main", "web-1", "m1", "run it").await;
    let id = asked(&mut ws, "m1").await;
    answer(&mut ws, "m2", &id, "deny").await;
    assert_eq!(
        expect(&mut ws, "done", "m2").await["text"],
        "Denied: /bin/echo denied-run will not run."
    );
    expect(&mut ws, "done", "m1").await;
    fake.script(exec("/bin/echo late-run"));
    fake.script(Script::text("Fine."));
    say(&mut ws, "main", "web-1", "m3", "run another").await;
    expect(&mut ws, "notice", "m3").await;
    let timed_out = expect(&mut ws, "notice", "m3").await;
    assert!(
        timed_out["text"]
            .as_str()
            .unwrap_or_default()
            .contains("No answer to approval"),
        "{timed_out}"
    );
    expect(&mut ws, "done", "m3").await;
    let out = all_outputs(&fake);
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(
        out.iter()
            .all(|o| !o.contains("denied-run\n") && !o.contains("late-run\n")),
        "{out:?}"
    );
    assert!(
        out.iter().all(|o| o.contains("not")),
        "the model is told it did not run: {out:?}"
    );
}

#[tokio::test]
async fn telegram_asks_in_the_chat_and_always_is_kept_for_the_next_call() {
    let fake = OpenAiFake::start().await;
    let telegram = TelegramFake::start();
    let home = TempDir::new();
    let extra = format!(
        "\n[channels.telegram.dm]\ndmPolicy = \"open\"\n\n[channels.telegram.accounts.tg]\ntoken = \"{TEST_TOKEN}\"\napiBase = \"{}\"\n",
        telegram.base_url()
    );
    let gw = gateway(&home, &fake, &extra).await;
    let alice = User::new(42, "Alice");
    let chat = Chat::private(&alice);
    fake.script(exec("date +%Y"));
    fake.script(Script::text("Done once."));
    telegram.send_text(TEST_TOKEN, Incoming::new(&chat, &alice, "what year?"));
    let question = until(
        "the question in the chat",
        &gw,
        Duration::from_secs(15),
        async || {
            telegram
                .messages(TEST_TOKEN, 42)
                .into_iter()
                .find(|m| m.text.contains("exec wants to run"))
        },
    )
    .await;
    let id = question_id(&question.text);
    assert!(question.text.contains("date +%Y"), "{}", question.text);
    telegram.send_text(
        TEST_TOKEN,
        Incoming::new(&chat, &alice, &format!("/approve {id} always")),
    );
    until(
        "the reply after the answer",
        &gw,
        Duration::from_secs(15),
        async || {
            telegram
                .messages(TEST_TOKEN, 42)
                .iter()
                .any(|m| m.text == "Done once.")
                .then_some(())
        },
    )
    .await;
    let texts: Vec<String> = telegram
        .messages(TEST_TOKEN, 42)
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("Approved: date +%Y runs now")),
        "{texts:?}"
    );
    // Kept: the next call of the same binary runs without a question.
    fake.script(exec("date +%d"));
    fake.script(Script::text("Done twice."));
    telegram.send_text(TEST_TOKEN, Incoming::new(&chat, &alice, "and the day?"));
    until(
        "the second reply",
        &gw,
        Duration::from_secs(15),
        async || {
            telegram
                .messages(TEST_TOKEN, 42)
                .iter()
                .any(|m| m.text == "Done twice.")
                .then_some(())
        },
    )
    .await;
    let questions = telegram
        .messages(TEST_TOKEN, 42)
        .iter()
        .filter(|m| m.text.contains("exec wants to run"))
        .count();
    assert_eq!(questions, 1, "the second call was not asked about");
    let out = all_outputs(&fake);
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(
        out.iter()
            .all(|o| o.contains("exit 0") || o.contains("exit code 0")),
        "{out:?}"
    );
}

/// In a group, the question belongs to the person whose message the tool acts for:
/// another member's `/approve` is refused and the question still waits; theirs runs it.
#[tokio::test]
async fn in_a_group_only_the_asker_answers() {
    let fake = OpenAiFake::start().await;
    let telegram = TelegramFake::start();
    let home = TempDir::new();
    let extra = format!(
        "\n[channels.telegram.accounts.tg]\ntoken = \"{TEST_TOKEN}\"\napiBase = \"{}\"\n",
        telegram.base_url()
    );
    let gw = gateway(&home, &fake, &extra).await;
    let (alice, mallory) = (User::new(42, "Alice"), User::new(66, "Mallory"));
    let group = Chat::group(-5005, "Friends");
    fake.script(exec("/bin/echo group-run"));
    fake.script(Script::text("Ran for Alice."));
    telegram.send_text(TEST_TOKEN, Incoming::new(&group, &alice, "run it please"));
    let said = |what: &'static str| {
        let telegram = &telegram;
        async move || {
            telegram
                .messages(TEST_TOKEN, -5005)
                .into_iter()
                .find(|m| m.text.contains(what))
        }
    };
    let question = until(
        "the question",
        &gw,
        Duration::from_secs(15),
        said("exec wants to run"),
    )
    .await;
    let id = question_id(&question.text);
    telegram.send_text(
        TEST_TOKEN,
        Incoming::new(&group, &mallory, &format!("/approve {id} always")),
    );
    let refused = until(
        "the refusal",
        &gw,
        Duration::from_secs(15),
        said("Only the person"),
    )
    .await;
    assert!(refused.text.contains(&id), "{}", refused.text);
    assert!(
        all_outputs(&fake).is_empty(),
        "ran on another member's word"
    );
    telegram.send_text(
        TEST_TOKEN,
        Incoming::new(&group, &alice, &format!("/approve {id} once")),
    );
    until(
        "the reply",
        &gw,
        Duration::from_secs(15),
        said("Ran for Alice."),
    )
    .await;
    let out = all_outputs(&fake);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].contains("group-run"), "{out:?}");
}

/// An `always` is listed by `pincer approvals list` and taken back by `pincer approvals
/// revoke`, after which the tool asks again.
#[tokio::test]
async fn an_always_is_listed_and_revoked_and_then_asked_again() {
    let fake = OpenAiFake::start().await;
    let home = TempDir::new();
    let gw = gateway(&home, &fake, "").await;
    let mut ws = connect(&gw).await;
    fake.script(exec("/bin/echo first"));
    fake.script(Script::text("Ran."));
    say(&mut ws, "main", "web-1", "m1", "run it").await;
    let question = asked(&mut ws, "m1").await;
    answer(&mut ws, "m2", &question, "always").await;
    expect(&mut ws, "done", "m1").await;

    let (code, out, err) = run_cli(home.path(), &["approvals", "list", "--json"], Some(gw.port));
    assert_eq!(code, 0, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let approvals = listed["approvals"].as_array().cloned().unwrap_or_default();
    assert_eq!(approvals.len(), 1, "{listed}");
    assert_eq!(approvals[0]["agent"], "main");
    assert_eq!(approvals[0]["tool"], "exec");
    let key = approvals[0]["key"].as_str().expect("a key").to_string();
    assert!(key.ends_with("/echo"), "{key}");
    let (code, out, _) = run_cli(home.path(), &["approvals", "list"], Some(gw.port));
    assert_eq!(code, 0);
    assert!(out.contains(&format!("main  exec  {key}")), "{out}");

    let (code, out, err) = run_cli(
        home.path(),
        &["approvals", "revoke", "main", &key],
        Some(gw.port),
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("revoked"), "{out}");
    let (code, _, err) = run_cli(
        home.path(),
        &["approvals", "revoke", "main", &key],
        Some(gw.port),
    );
    assert_ne!(code, 0);
    assert!(err.contains("no standing approval"), "{err}");
    let (_, out, _) = run_cli(home.path(), &["approvals", "list"], Some(gw.port));
    assert!(out.contains("no standing approvals"), "{out}");

    // Asked again.
    fake.script(exec("/bin/echo second"));
    fake.script(Script::text("Ran again."));
    say(&mut ws, "main", "web-1", "m3", "run it again").await;
    let again = asked(&mut ws, "m3").await;
    answer(&mut ws, "m4", &again, "deny").await;
    expect(&mut ws, "done", "m3").await;
    let out = all_outputs(&fake);
    assert!(
        !out.iter().any(|o| o.contains("second"))
            && out.last().is_some_and(|o| o.contains("denied")),
        "the revoked binary ran without asking: {out:?}"
    );
}
