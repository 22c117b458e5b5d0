//! `pincer init` without a terminal: flags, a config with the key as a ref, the key
//! checked against the fake providers without spending tokens, and a gateway that runs
//! on what it wrote.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{Gw, TempDir, free_port, run_cli, run_cli_env};
use pincer_fakes::anthropic::AnthropicFake;
use pincer_fakes::openai::{OpenAiFake, Script};

#[tokio::test]
async fn init_writes_a_config_with_an_env_ref_checks_the_key_and_the_gateway_runs_on_it() {
    let fake = OpenAiFake::start().await;
    let home = TempDir::new();
    let base = fake.base_url();
    let args = [
        "init",
        "--provider",
        "openai",
        "--model",
        "gpt-4.1",
        "--key-env",
        "MY_OPENAI_KEY",
        "--base-url",
        &base,
    ];
    let (code, out, err) = run_cli_env(home.path(), &args, None, &[("MY_OPENAI_KEY", "sk-test")]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("[ok  ] provider openai key #1") && out.contains("key accepted"),
        "{out}"
    );
    assert!(
        out.contains("next:")
            && out.contains("  pincer gateway")
            && out.contains("  pincer doctor"),
        "{out}"
    );
    let c = fake.counters();
    assert_eq!(
        (c.models_calls, c.sse_requests, c.ws_requests),
        (1, 0, 0),
        "no tokens spent"
    );
    let file = home.path().join("pincer.toml");
    let text = std::fs::read_to_string(&file).expect("config");
    assert!(
        text.contains("apiKey = \"env:MY_OPENAI_KEY\"") && !text.contains("sk-test"),
        "{text}"
    );
    assert!(
        text.contains("model = \"openai/gpt-4.1\"") && text.starts_with("# "),
        "{text}"
    );

    // Not replaced without --force.
    let (code, _, err) = run_cli(home.path(), &["init", "--provider", "echo"], None);
    assert_eq!(code, 2);
    assert!(err.contains("already exists; pass --force"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).expect("config"), text);

    // The gateway runs on it and reaches the model.
    fake.script(Script::text("hello from the model"));
    let port = free_port();
    let gw = Gw::spawn_args(
        home.path(),
        &["gateway", "--port", &port.to_string()],
        port,
        &[("MY_OPENAI_KEY", "sk-test")],
    );
    gw.wait_ready(Duration::from_secs(20)).await;
    let (status, body) = gw.chat("first", "hi", None).await.expect("chat");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["content"], "hello from the model",
        "{body}"
    );
}

#[test]
fn init_keeps_a_key_file_in_the_secrets_file_and_says_when_the_key_is_refused() {
    let fake = AnthropicFake::start();
    let home = TempDir::new();
    let key_file = home.path().join("key.txt");
    std::fs::write(&key_file, "sk-ant-test\n").expect("key");
    let base = fake.base_url();
    let key_path = key_file.to_string_lossy().into_owned();
    let (code, out, err) = run_cli(
        home.path(),
        &[
            "init",
            "--provider",
            "anthropic",
            "--key-file",
            &key_path,
            "--base-url",
            &base,
        ],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("[ok  ] provider anthropic key #1"), "{out}");
    let text = std::fs::read_to_string(home.path().join("pincer.toml")).expect("config");
    assert!(
        text.contains("apiKey = \"file:/providers/anthropic/apiKey\"")
            && text.contains("model = \"anthropic/claude-sonnet-4-5\"")
            && !text.contains("sk-ant-test"),
        "{text}"
    );
    let secrets = home.path().join("secrets.json");
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&secrets).expect("secrets")).expect("json");
    assert_eq!(stored["providers"]["anthropic"]["apiKey"], "sk-ant-test");
    let mode = std::fs::metadata(&secrets)
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(fake.counters().requests, 0, "no tokens spent");

    // A refused key: the config is written, the command fails naming the check.
    std::fs::write(&key_file, "sk-ant-wrong\n").expect("key");
    let (code, out, err) = run_cli(
        home.path(),
        &[
            "init",
            "--force",
            "--provider",
            "anthropic",
            "--key-file",
            &key_path,
            "--base-url",
            &base,
        ],
        None,
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("[FAIL] provider anthropic key #1") && out.contains("key rejected"),
        "{out}"
    );
    assert!(err.contains("the key check failed"), "{err}");

    // Without a terminal, the flags must say; --no-check skips the provider.
    let (code, _, err) = run_cli(home.path(), &["init", "--force"], None);
    assert_eq!(code, 2);
    assert!(
        err.contains("stdin is not a terminal: pass --provider"),
        "{err}"
    );
    let (code, out, err) = run_cli(
        home.path(),
        &["init", "--force", "--provider", "openai", "--no-check"],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("[ok") && !out.contains("[FAIL"), "{out}");
    let text = std::fs::read_to_string(home.path().join("pincer.toml")).expect("config");
    assert!(
        text.contains("apiKey = \"env:OPENAI_API_KEY\""),
        "the usual variable: {text}"
    );
    let (code, _, err) = run_cli(
        home.path(),
        &[
            "init",
            "--force",
            "--provider",
            "openai",
            "--key-env",
            "NOT-A-NAME",
        ],
        None,
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("`NOT-A-NAME` is not an environment variable name"),
        "{err}"
    );
}
