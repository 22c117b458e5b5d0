//! External secrets on the real binary: rotation in Vault (fake) and AWS Secrets Manager
//! (moto) reaching provider requests with no restart while a streamed turn finishes on
//! the old key; a secrets file edited; a back end down (last good kept, degraded shown)
//! and back; an unresolved ref marking only its dependants; bad file permissions;
//! `pincer secrets reload` and SIGHUP; a Telegram token rotated (the link reconnects);
//! and no secret value in any log line.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::moto::Moto;
use common::{Gw, TempDir, free_port, run_cli_env, until};
use pincer_fakes::anthropic::{self, AnthropicFake};
use pincer_fakes::openai::{self, OpenAiFake, Transport};
use pincer_fakes::telegram::{self, Chat, Incoming, TelegramFake, User};
use pincer_fakes::vault::{self, VaultFake};
use serde_json::{Value, json};

const POLL: &str = "300ms";

/// Restarts so far of every actor that is not a turn, by path.
async fn restarts(gw: &Gw) -> BTreeMap<String, u64> {
    fn walk(node: &Value, out: &mut BTreeMap<String, u64>) {
        if let Some(path) = node["path"].as_str()
            && !path.contains("/turn:")
        {
            out.insert(
                path.to_string(),
                node["restarts_total"].as_u64().unwrap_or(0),
            );
        }
        for child in node["children"].as_array().into_iter().flatten() {
            walk(child, out);
        }
    }
    let (_, tree) = gw.get("/admin/tree").await;
    let mut out = BTreeMap::new();
    for node in tree["tree"].as_array().into_iter().flatten() {
        walk(node, &mut out);
    }
    out
}

/// The bearer keys of OpenAI requests recorded after `from` (upgrades and SSE posts).
fn openai_keys(fake: &OpenAiFake, from: usize) -> Vec<String> {
    fake.requests()
        .into_iter()
        .skip(from)
        .filter(|r| matches!(r.transport, Transport::Upgrade | Transport::Sse))
        .filter_map(|r| r.headers.get("authorization").cloned())
        .map(|h| h.trim_start_matches("Bearer ").to_string())
        .collect()
}

/// Fails if an actor that ran at `before` has restarted since.
fn assert_no_restarts(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) {
    let changed: Vec<&String> = before
        .iter()
        .filter(|(path, n)| after.get(*path).is_some_and(|a| a != *n))
        .map(|(path, _)| path)
        .collect();
    assert!(changed.is_empty(), "restarted on rotation: {changed:?}");
}

/// Fails if any of `values` appears in the gateway's log.
fn assert_log_clean(gw: &Gw, values: &[&str]) {
    let log = gw.log();
    for value in values {
        assert!(
            !log.contains(value),
            "a secret value reached the log: {value}\n{log}"
        );
    }
}

/// A gateway whose OpenAI key is `vault:pincer/openai#key` in `vault` (polled every
/// `poll`), with `openai_extra` after the key and agent `main` on OpenAI; ready.
async fn vault_gateway(
    vault: &VaultFake,
    fake: &OpenAiFake,
    openai_extra: &str,
    poll: &str,
) -> (TempDir, Gw) {
    let config = format!(
        "{}\n[providers.openai]\nbaseUrl = \"{}\"\napiKey = \"vault:pincer/openai#key\"\n{openai_extra}\n\n[agents.main]\nmodel = \"openai/gpt-5\"\n",
        vault_provider(vault, poll),
        fake.base_url()
    );
    let home = TempDir::new();
    let gw = Gw::spawn_env(
        home.path(),
        Some(&config),
        free_port(),
        &[("VAULT_TOKEN", vault::TEST_TOKEN)],
    );
    gw.wait_ready(Duration::from_secs(20)).await;
    (home, gw)
}

/// Asks `main` (a request at a time, each a new session) until one of its upstream
/// requests carries key `want`; `count` is how many requests the fake has recorded and
/// `keys_since(n)` the keys of those after the first `n`.
async fn ask_until_key(
    gw: &Gw,
    what: &str,
    count: impl Fn() -> usize,
    keys_since: impl Fn(usize) -> Vec<String>,
    want: &str,
) {
    for n in 1..=100 {
        let mark = count();
        let (status, text) = gw.ask("main", &format!("{what}-{n}"), "again").await;
        assert_eq!(status, 200, "{text}");
        assert!(text.ends_with("again"), "{text}");
        if keys_since(mark).iter().any(|k| k == want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await; // between attempts
    }
    panic!(
        "{what}: the new key never reached a request; log:\n{}",
        gw.log()
    );
}

fn vault_provider(fake: &VaultFake, poll: &str) -> String {
    format!(
        "[secrets.providers.vault]\nsource = \"vault\"\naddress = \"{}\"\ntoken = \"env:VAULT_TOKEN\"\npollInterval = \"{poll}\"\n",
        fake.url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_rotation_reaches_the_socket_after_the_streamed_turn_ends_on_the_old_key() {
    let (one, two) = ("sk-vault-one-5f2a9c", "sk-vault-two-81d0e4");
    let vault = VaultFake::start();
    vault.put("secret/pincer/openai", json!({"key": one}));
    let fake = OpenAiFake::start_with(openai::Knobs {
        valid_keys: vec![one.into(), two.into()],
        token_delay: Duration::from_millis(25),
        ..openai::Knobs::default()
    })
    .await;
    let (_home, gw) = vault_gateway(&vault, &fake, "poolSize = 1", POLL).await;
    assert_eq!(
        gw.ask("main", "u1", "hello").await,
        (200, "openai: hello".into())
    );
    assert_eq!(openai_keys(&fake, 0), vec![one.to_string()]);
    let before = restarts(&gw).await;

    // A long streamed turn is in flight when the key rotates.
    let long = "word ".repeat(60);
    let in_flight = {
        let (http, url, token, text) = (
            gw.http.clone(),
            gw.url("/v1/chat/completions"),
            gw.token(),
            long.clone(),
        );
        tokio::spawn(async move {
            let body = json!({"model": "pincer:main", "user": "u2", "stream": true,
                "messages": [{"role": "user", "content": text}]});
            let r = http
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("send");
            (r.status().as_u16(), r.text().await.unwrap_or_default())
        })
    };
    let frames = fake.requests().len();
    until(
        "the long turn to reach the model",
        &gw,
        Duration::from_secs(10),
        async || (fake.requests().len() > frames).then_some(()),
    )
    .await;
    vault.put("secret/pincer/openai", json!({"key": two}));
    let rotated_at = Instant::now();
    let (status, body) = in_flight.await.expect("join");
    assert_eq!(status, 200);
    let long_turn = fake
        .requests()
        .into_iter()
        .skip(frames)
        .find(|r| r.transport == Transport::Ws);
    let long_turn = long_turn.expect("the long turn did not go over the socket");
    // A frame carries the headers of its socket's upgrade: the key it opened with.
    assert_eq!(
        long_turn.headers.get("authorization").cloned(),
        Some(format!("Bearer {one}")),
        "the turn in flight did not finish on the old key"
    );
    assert!(body.contains("[DONE]"), "stream cut short: {body}");
    assert!(
        rotated_at.elapsed() > Duration::from_millis(300),
        "the turn was not in flight long"
    );

    // The next call opens a socket with the new key, within one poll interval or so.
    ask_until_key(
        &gw,
        "after",
        || fake.requests().len(),
        |mark| openai_keys(&fake, mark),
        two,
    )
    .await;
    let seen_after = rotated_at.elapsed();
    assert!(seen_after < Duration::from_secs(3), "took {seen_after:?}");
    assert_no_restarts(&before, &restarts(&gw).await);
    assert!(gw.log().contains("Secret rotated"), "{}", gw.log());
    assert_log_clean(&gw, &[one, two, vault::TEST_TOKEN]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_rotation_reaches_anthropic_requests() {
    let (one, two) = ("sk-ant-aws-one-7c1e", "sk-ant-aws-two-3b9d");
    let moto = Moto::start();
    moto.create_secret("pincer/anthropic", &json!({"apiKey": one}).to_string());
    let fake = AnthropicFake::start_with(anthropic::Knobs {
        valid_keys: vec![one.into(), two.into()],
        ..anthropic::Knobs::default()
    });
    let config = format!(
        "[secrets.providers.aws]\nsource = \"aws\"\nregion = \"us-east-1\"\npollInterval = \"{POLL}\"\n\n[providers.anthropic]\nbaseUrl = \"{}\"\napiKey = {{ source = \"aws\", provider = \"aws\", id = \"pincer/anthropic#apiKey\" }}\n\n[agents.main]\nmodel = \"anthropic/claude-sonnet-4-6\"\n",
        fake.base_url()
    );
    let home = TempDir::new();
    let endpoint = moto.url();
    let gw = Gw::spawn_env(
        home.path(),
        Some(&config),
        free_port(),
        &[
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "AKIDPINCERTEST"),
            ("AWS_SECRET_ACCESS_KEY", "pincer-test-aws-secret-key"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
            ("AWS_CONFIG_FILE", "/nonexistent"),
        ],
    );
    gw.wait_ready(Duration::from_secs(20)).await;
    let keys = |from: usize| -> Vec<String> {
        fake.requests()
            .into_iter()
            .skip(from)
            .filter_map(|r| r.headers.get("x-api-key").cloned())
            .collect()
    };
    assert_eq!(gw.ask("main", "u1", "hi").await.0, 200);
    assert_eq!(keys(0), vec![one.to_string()]);
    let before = restarts(&gw).await;

    moto.put_secret("pincer/anthropic", &json!({"apiKey": two}).to_string());
    let rotated_at = Instant::now();
    ask_until_key(&gw, "aws", || fake.requests().len(), keys, two).await;
    assert!(
        rotated_at.elapsed() < Duration::from_secs(3),
        "took {:?}",
        rotated_at.elapsed()
    );
    assert_no_restarts(&before, &restarts(&gw).await);
    assert_log_clean(&gw, &[one, two, "pincer-test-aws-secret-key"]);
}

fn write_secrets(path: &std::path::Path, doc: &Value, mode: u32) {
    // Written beside and renamed over, as editors and config tools do.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, doc.to_string()).expect("write");
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).expect("chmod");
    std::fs::rename(&tmp, path).expect("rename");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secrets_file_edit_is_picked_up_and_a_loose_mode_is_refused() {
    let (one, two) = ("sk-file-one-a81b2c", "sk-file-two-c93d4e");
    let home = TempDir::new();
    let secrets = home.path().join("secrets.json");
    // Open to others at start: refused, and only the provider is not ready.
    write_secrets(&secrets, &json!({"openai": {"key": one}}), 0o644);
    let fake = OpenAiFake::start_with(openai::Knobs {
        valid_keys: vec![one.into(), two.into()],
        ..openai::Knobs::default()
    })
    .await;
    let config = format!(
        "[providers.openai]\nbaseUrl = \"{}\"\napiKey = \"file:/openai/key\"\n\n[response]\ntransport = \"sse\"\n\n[agents.main]\nmodel = \"openai/gpt-5\"\n\n[agents.local]\nmodel = \"echo\"\n",
        fake.base_url()
    );
    let gw = Gw::spawn_env(home.path(), Some(&config), free_port(), &[]);
    assert!(gw.wait_readyz(false, Duration::from_secs(10)).await);
    let (status, body) = until(
        "the provider to be reported",
        &gw,
        Duration::from_secs(10),
        async || {
            let body = try_get(&gw, "/readyz").await;
            // (The store's first seconds may show too; wait for the provider and the
            // agent that uses it alone.)
            body.filter(|(_, b)| {
                b["failing"].to_string().contains("chmod 600")
                    && b["failing"].as_array().map(Vec::len) == Some(2)
            })
        },
    )
    .await;
    assert_eq!(status, 503);
    let failing = body["failing"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        failing.len(),
        2,
        "only the provider and the agent that uses it depend on the file: {body}"
    );
    let text = failing[0].to_string();
    assert!(
        text.contains("provider:openai")
            && text.contains("file:/openai/key")
            && text.contains("mode 0644"),
        "{text}"
    );
    // The agent says why without claiming the key is missing from the config.
    let agent = failing[1].to_string();
    assert!(
        agent.contains("agent:main") && agent.contains("is unresolved (see provider:openai)"),
        "{agent}"
    );
    // The rest of the gateway runs.
    assert_eq!(
        gw.ask("local", "u0", "still here").await,
        (200, "echo: still here".into())
    );

    // Fixed: picked up without a restart (the watcher retries; the chmod is an event too).
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    gw.wait_ready(Duration::from_secs(10)).await;
    assert_eq!(
        gw.ask("main", "u1", "one").await,
        (200, "openai: one".into())
    );
    assert_eq!(openai_keys(&fake, 0), vec![one.to_string()]);

    // Edited: the next request uses the new key.
    write_secrets(&secrets, &json!({"openai": {"key": two}}), 0o600);
    let edited_at = Instant::now();
    ask_until_key(
        &gw,
        "edited",
        || fake.requests().len(),
        |mark| openai_keys(&fake, mark),
        two,
    )
    .await;
    assert!(
        edited_at.elapsed() < Duration::from_secs(2),
        "took {:?}",
        edited_at.elapsed()
    );
    assert_log_clean(&gw, &[one, two]);
}

/// `GET path` with the token; `None` when the gateway does not answer (yet).
async fn try_get(gw: &Gw, path: &str) -> Option<(u16, Value)> {
    let token = std::fs::read_to_string(gw.home.join("gateway.token")).ok()?;
    let r = gw
        .http
        .get(gw.url(path))
        .bearer_auth(token.trim())
        .send()
        .await
        .ok()?;
    let status = r.status().as_u16();
    Some((status, r.json().await.unwrap_or(Value::Null)))
}

/// `/readyz?verbose`: its status and the secrets it shows degraded.
async fn degraded(gw: &Gw) -> Option<(u16, Vec<Value>)> {
    try_get(gw, "/readyz?verbose").await.map(|(status, body)| {
        (
            status,
            body["secrets"]["degraded"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_down_keeps_the_last_good_key_and_shows_degraded_until_it_recovers() {
    let one = "sk-vault-kept-2e7f11";
    let vault = VaultFake::start();
    vault.put("secret/pincer/openai", json!({"key": one}));
    let fake = OpenAiFake::start_with(openai::Knobs {
        valid_keys: vec![one.into()],
        ..openai::Knobs::default()
    })
    .await;
    let (_home, gw) = vault_gateway(&vault, &fake, "\n[response]\ntransport = \"sse\"", POLL).await;
    assert_eq!(gw.ask("main", "u1", "a").await, (200, "openai: a".into()));

    for outage in ["down", "sealed"] {
        match outage {
            "down" => vault.set_down(true),
            _ => vault.seal(),
        }
        let shown = until(
            "degraded to show",
            &gw,
            Duration::from_secs(10),
            async || degraded(&gw).await.filter(|(_, d)| !d.is_empty()),
        )
        .await;
        // Degraded, not unready: the last good key serves.
        assert_eq!(shown.0, 200, "{shown:?}");
        assert_eq!(shown.1[0]["backend"], "vault", "{shown:?}");
        assert_eq!(gw.ask("main", "u2", "b").await, (200, "openai: b".into()));
        match outage {
            "down" => vault.set_down(false),
            _ => vault.unseal(),
        }
        until(
            "degraded to clear",
            &gw,
            Duration::from_secs(15),
            async || degraded(&gw).await.filter(|(_, d)| d.is_empty()),
        )
        .await;
    }
    let (_, status) = gw.get("/admin/secrets").await;
    assert_eq!(status["secrets"][0]["state"], "resolved", "{status}");
    assert_log_clean(&gw, &[one, vault::TEST_TOKEN]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_by_cli_and_by_sighup_without_waiting_for_a_poll() {
    let keys = [
        "sk-reload-one-91ab",
        "sk-reload-two-72cd",
        "sk-reload-three-5e",
    ];
    let vault = VaultFake::start();
    vault.put("secret/pincer/openai", json!({"key": keys[0]}));
    let fake = OpenAiFake::start_with(openai::Knobs {
        valid_keys: keys.iter().map(|k| k.to_string()).collect(),
        ..openai::Knobs::default()
    })
    .await;
    // Polls are an hour apart: only a reload can bring a new version in time.
    let (home, gw) = vault_gateway(&vault, &fake, "\n[response]\ntransport = \"sse\"", "1h").await;
    let port = gw.port;
    assert_eq!(gw.ask("main", "u1", "a").await.0, 200);

    vault.put("secret/pincer/openai", json!({"key": keys[1]}));
    let (code, out, err) = run_cli_env(home.path(), &["secrets", "reload"], Some(port), &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("1 changed"), "{out}");
    let mark = fake.requests().len();
    assert_eq!(gw.ask("main", "u2", "b").await.0, 200);
    assert_eq!(openai_keys(&fake, mark), vec![keys[1].to_string()]);

    vault.put("secret/pincer/openai", json!({"key": keys[2]}));
    gw.signal("HUP");
    ask_until_key(
        &gw,
        "sighup",
        || fake.requests().len(),
        |mark| openai_keys(&fake, mark),
        keys[2],
    )
    .await;
    assert!(gw.log().contains("SIGHUP: reloading secrets"));
    assert_log_clean(&gw, &keys);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unresolved_ref_at_start_marks_only_its_dependants_and_is_retried() {
    let token = "111222:ROTATE-first-token";
    let home = TempDir::new();
    let tg = TelegramFake::start_with(telegram::Knobs {
        bots: vec![telegram::Bot {
            token: token.into(),
            id: 111222,
            username: "rotating_bot".into(),
            first_name: "Rotating".into(),
        }],
        ..telegram::Knobs::default()
    });
    // The account's token is in a file that does not exist yet.
    let config = format!(
        "[secrets.providers.tokens]\nsource = \"file\"\npath = \"{}\"\n\n[channels.telegram.dm]\ndmPolicy = \"open\"\n\n[channels.telegram.accounts.tg]\ntoken = {{ source = \"file\", provider = \"tokens\", id = \"/telegram\" }}\napiBase = \"{}\"\n",
        home.path().join("tokens.json").display(),
        tg.base_url()
    );
    let gw = Gw::spawn_env(home.path(), Some(&config), free_port(), &[]);
    // Reported, and the tree started: `secrets` marks the account before the channels (and
    // the HTTP link the chat below goes through) are up.
    let (_, body) = until(
        "the account to be reported once the tree has started",
        &gw,
        Duration::from_secs(10),
        async || {
            try_get(&gw, "/readyz").await.filter(|(_, b)| {
                let failing = b["failing"].to_string();
                failing.contains("channel:telegram:tg") && !failing.contains("starting")
            })
        },
    )
    .await;
    let failing = body["failing"].to_string();
    assert!(failing.contains("channel:telegram:tg"), "{failing}");
    assert!(failing.contains("tokens.json does not exist"), "{failing}");
    assert!(
        failing.contains("file:tokens:/telegram") || failing.contains("/telegram"),
        "{failing}"
    );
    assert!(
        !failing.contains("agents") && !failing.contains("provider"),
        "{failing}"
    );
    // The web chat and the HTTP API work meanwhile.
    assert_eq!(gw.ask("main", "u1", "ok").await, (200, "echo: ok".into()));

    write_secrets(
        &home.path().join("tokens.json"),
        &json!({"telegram": token}),
        0o600,
    );
    gw.wait_ready(Duration::from_secs(15)).await;
    let alice = User::new(42, "Alice");
    tg.send_text(
        token,
        Incoming::new(&Chat::private(&alice), &alice, "hello bot"),
    );
    until("the reply", &gw, Duration::from_secs(10), async || {
        tg.messages(token, 42).first().map(|m| m.text.clone())
    })
    .await;

    // Revoked in BotFather and rotated in the file: the link reconnects with the new
    // token; the sessions are untouched.
    let before = restarts(&gw).await;
    let second = "111222:ROTATE-second-token";
    tg.revoke_token(token, second);
    write_secrets(
        &home.path().join("tokens.json"),
        &json!({"telegram": second}),
        0o600,
    );
    until(
        "polls with the new token",
        &gw,
        Duration::from_secs(10),
        async || {
            tg.requests()
                .iter()
                .any(|r| r.token == second && r.method_is("getUpdates"))
                .then_some(())
        },
    )
    .await;
    tg.send_text(
        second,
        Incoming::new(&Chat::private(&alice), &alice, "hello again"),
    );
    until(
        "the reply from the new bot",
        &gw,
        Duration::from_secs(10),
        async || tg.messages(second, 42).first().map(|m| m.text.clone()),
    )
    .await;
    let after = restarts(&gw).await;
    let changed: Vec<&String> = after
        .iter()
        .filter(|(path, n)| before.get(*path).is_some_and(|b| b != *n))
        .map(|(path, _)| path)
        .collect();
    assert_eq!(
        changed,
        vec!["pincer/channels/channel:telegram:tg/link"],
        "{after:?}"
    );
    // The old poller is gone: no poll with the first token after the switch settles. A
    // negative check, so time it is: requests already under way may still land during the
    // first half second, none may start in the next.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mark = tg.requests().len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !tg.requests().iter().skip(mark).any(|r| r.token == token),
        "the first token still polls"
    );
    assert_log_clean(&gw, &[token, second]);
}
