//! The command line against a real gateway and a real config file.

mod common;

use common::{Gw, TempDir, run_cli};

const CONFIG: &str = "# My agents\n[agents.main]\nsystemPrompt = \"hi\" # the default\n\n[agents.research-bot]\nsystemPrompt = \"research\"\n";

#[tokio::test]
async fn agents_bind_and_unbind_edit_the_file_keeping_comments_and_bindings_shows_activity() {
    let home = TempDir::new();
    let file = home.path().join("pincer.toml");
    std::fs::write(&file, CONFIG).expect("config");

    let (code, out, err) = run_cli(
        home.path(),
        &[
            "agents",
            "bind",
            "--agent",
            "research-bot",
            "--account",
            "http",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("bound research-bot → http"), "{out}");
    let (code, out, _) = run_cli(
        home.path(),
        &["agents", "bind", "--agent", "main", "--bind", "web"],
        None,
    );
    assert_eq!(code, 0);
    assert!(out.contains("bound main → channel web"), "{out}");
    let text = std::fs::read_to_string(&file).expect("read");
    assert!(
        text.starts_with(CONFIG),
        "the original text, comments included, is untouched:\n{text}"
    );
    assert!(
        text.contains("agent = \"research-bot\"\nmatch = { account = \"http\" }"),
        "{text}"
    );

    let (code, _, err) = run_cli(
        home.path(),
        &["agents", "bind", "--agent", "nobody", "--account", "http"],
        None,
    );
    assert_eq!(code, 2);
    assert!(err.contains("no agent `nobody`"), "{err}");

    let gw = Gw::start(home.path(), None).await;
    let (code, out, err) = run_cli(home.path(), &["agents", "bindings"], Some(gw.port));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("research-bot → http (active)"), "{out}");
    assert!(out.contains("main → channel web (channel-wide)"), "{out}");
    let (_, json_out, _) = run_cli(
        home.path(),
        &["agents", "bindings", "--json"],
        Some(gw.port),
    );
    let parsed: serde_json::Value = serde_json::from_str(&json_out).expect("json");
    assert_eq!(parsed["bindings"][0]["status"], "active");

    // Killing the link makes it inactive until it restarts; unbind removes the binding.
    let (code, out, _) = run_cli(
        home.path(),
        &[
            "agents",
            "unbind",
            "--agent",
            "research-bot",
            "--account",
            "http",
        ],
        Some(gw.port),
    );
    assert_eq!(code, 0);
    assert!(out.contains("removed 1 binding"), "{out}");
    let (code, out, _) = run_cli(home.path(), &["agents", "unbind", "--all"], Some(gw.port));
    assert_eq!(code, 0);
    assert!(out.contains("removed 1 binding"), "{out}");
    assert_eq!(
        std::fs::read_to_string(&file).expect("read").trim_end(),
        CONFIG.trim_end()
    );
    let (code, _, err) = run_cli(home.path(), &["agents", "unbind"], None);
    assert_eq!(code, 2, "{err}");
}

#[tokio::test]
async fn status_sessions_chaos_and_doctor_talk_to_the_running_gateway() {
    let home = TempDir::new();
    let gw = Gw::start(home.path(), None).await;
    gw.chat("cli", "hello cli", None).await.expect("chat");
    let port = Some(gw.port);

    let (code, out, err) = run_cli(home.path(), &["gateway", "status"], port);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(": ready") && out.contains("session"), "{out}");

    let (code, out, _) = run_cli(home.path(), &["sessions", "list"], port);
    assert_eq!(code, 0);
    assert!(
        out.contains("agent:main:http:http:user:cli  agent=main turns=1 live"),
        "{out}"
    );
    let (code, out, _) = run_cli(
        home.path(),
        &["sessions", "show", "agent:main:http:http:user:cli"],
        port,
    );
    assert_eq!(code, 0);
    assert!(
        out.contains("user: hello cli") && out.contains("assistant: echo: hello cli"),
        "{out}"
    );
    let (code, _, err) = run_cli(home.path(), &["sessions", "show", "agent:nobody"], port);
    assert_eq!(code, 1);
    assert!(err.contains("no session"), "{err}");

    let (code, out, _) = run_cli(home.path(), &["chaos", "kill", "pincer/router"], port);
    assert_eq!(code, 0);
    assert!(out.contains("killed pincer/router"));
    let (code, _, err) = run_cli(home.path(), &["chaos", "kill", "pincer/nothing"], port);
    assert_eq!(code, 1);
    assert!(err.contains("no actor at path `pincer/nothing`"), "{err}");

    let (code, out, err) = run_cli(
        home.path(),
        &[
            "chaos",
            "monkey",
            "--rate",
            "50/s",
            "--duration",
            "1s",
            "--scope",
            "pincer/channels/**/session:*",
        ],
        port,
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("verdict:") && out.contains("ready again"),
        "{out}"
    );
    assert!(
        out.contains("missed: at that moment no actor in the scope was running"),
        "the verdict says what missed means: {out}"
    );
    let (code, _, err) = run_cli(
        home.path(),
        &[
            "chaos",
            "monkey",
            "--duration",
            "1s",
            "--scope",
            "pincer/chanels/**",
        ],
        port,
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--scope `pincer/chanels/**` matches no actor of the gateway"),
        "{err}"
    );

    let (code, out, err) = run_cli(home.path(), &["doctor"], port);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("agent `main`: echo/echo") && out.contains(": ready"),
        "{out}"
    );

    let (code, out, _) = run_cli(home.path(), &["--version"], None);
    assert_eq!(code, 0);
    assert!(out.starts_with("pincer "), "{out}");
}

#[test]
fn doctor_reports_unresolved_keys_and_features_not_in_this_build() {
    let home = TempDir::new();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/config/examples/home.toml"),
        home.path().join("pincer.toml"),
    )
    .expect("copy");
    let (code, out, _) = run_cli(home.path(), &["doctor"], Some(common::free_port()));
    // The example's secrets come from environment variables this test does not set.
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("[ok  ] agent `research-bot`: anthropic/claude-sonnet-4-6"),
        "{out}"
    );
    assert!(
        out.contains("[FAIL] provider anthropic: none of its API keys resolves"),
        "{out}"
    );
    assert!(
        out.contains("[FAIL] channel telegram account `telegram-research`: secret `env:TELEGRAM_RESEARCH_TOKEN`"),
        "{out}"
    );
    assert!(
        out.contains("secret providers.anthropic.apiKey: secret `env:ANTHROPIC_API_KEY`"),
        "{out}"
    );
}

#[test]
fn a_binding_to_an_account_no_channel_has_is_a_warning_and_a_doctor_note() {
    let home = TempDir::new();
    std::fs::write(home.path().join("pincer.toml"), CONFIG).expect("config");
    let (code, out, err) = run_cli(
        home.path(),
        &["agents", "bind", "--agent", "main", "--account", "telegarm"],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("bound main → telegarm"), "{out}");
    assert!(
        err.contains(
            "warning: bindings[0] (agent `main`) names account `telegarm`, which no channel has"
        ),
        "{err}"
    );
    let (_, out, _) = run_cli(home.path(), &["doctor"], Some(common::free_port()));
    assert!(
        out.contains("[note] bindings[0] (agent `main`) names account `telegarm`"),
        "{out}"
    );
}
