//! Config: shipped files parse; errors name key, place and the likely intent.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

fn load_file(path: &Path, env: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
    load(&Sources {
        home: std::env::temp_dir(),
        file: Some(path.to_path_buf()),
        file_required: true,
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    })
}

fn toml(text: &str) -> Result<Config, ConfigError> {
    parse_str(text, Format::Toml)
}

#[test]
fn every_example_and_seed_snippet_parses() {
    let mut seen = 0;
    for entry in std::fs::read_dir(examples_dir()).expect("examples dir") {
        let path = entry.expect("entry").path();
        let loaded = load_file(&path, &[]);
        assert!(
            loaded.is_ok(),
            "{}: {}",
            path.display(),
            loaded.unwrap_err()
        );
        seen += 1;
    }
    assert!(
        seen >= 10,
        "expected the seeds' snippets and examples, found {seen}"
    );
}

#[test]
fn default_toml_alone_gives_one_echo_agent() {
    let loaded = load(&Sources::default()).expect("defaults load");
    let c = loaded.config;
    assert_eq!(c.agents.len(), 1);
    let main = &c.agents[FALLBACK_AGENT];
    let model = main.model.as_ref().expect("model");
    assert_eq!(model.provider_name().as_deref(), Some("echo"));
    assert_eq!(c.default_agent(), Some(FALLBACK_AGENT));
    assert_eq!(c.gateway.port, DEFAULT_PORT);
    assert_eq!(c.gateway.bind, "127.0.0.1");
    assert_eq!(c.sessions.idle_hours, Duration::from_secs(24 * 3600));
    assert_eq!(c.response.transport, Transport::Auto);
}

#[test]
fn seed_json_with_comments_is_read() {
    let c = load_file(&examples_dir().join("seed-openai-streaming.json5"), &[])
        .expect("parses")
        .config;
    let openai = c.providers.openai.expect("openai");
    assert_eq!(openai.mode, Some(StreamMode::Streaming));
    assert_eq!(openai.stream_options.chunk_size.get(), 100);
    assert_eq!(
        openai.stream_options.latency_threshold,
        Duration::from_millis(200)
    );
}

#[test]
fn agent_shorthand_configures_the_default_agent() {
    let c = load_file(&examples_dir().join("seed-claude-adaptive.json"), &[])
        .expect("parses")
        .config;
    assert_eq!(c.default_agent(), Some("default"));
    let agent = &c.agents["default"];
    let model = agent.model.as_ref().expect("model");
    assert_eq!(model.name.as_deref(), Some("claude-opus-4-6"));
    assert_eq!(model.provider_name().as_deref(), Some("anthropic"));
    let steps = agent.adaptive_thinking.expect("adaptiveThinking");
    assert_eq!((steps.min_steps, steps.max_steps), (1, 15));
    // The release article's own name for it still loads (the examples use the real id).
    let article = r#"{"agent": {"model": "claude-opus-4-6-adaptive"}}"#;
    let c = parse_str(article, Format::Json).expect("parses");
    let model = c.agents["default"].model.clone().expect("model");
    assert_eq!(model.name.as_deref(), Some("claude-opus-4-6-adaptive"));
    assert_eq!(model.provider_name().as_deref(), Some("anthropic"));
}

#[test]
fn agents_inherit_from_the_default_agent() {
    let c = toml(
        r#"
[agents.default]
systemPrompt = "base"
default = true
[agents.default.model]
provider = "anthropic"
name = "claude-4.6-sonnet"
[agents.default.model.thinking]
mode = "adaptive"

[agents.notification-bot.model.thinking]
mode = "low"

[agents.writer]
systemPrompt = "own"
model = "openai/gpt-5"
"#,
    )
    .expect("parses");
    let bot = &c.agents["notification-bot"];
    let model = bot.model.as_ref().expect("model");
    assert_eq!(model.name.as_deref(), Some("claude-4.6-sonnet"));
    assert_eq!(model.thinking.map(|t| t.mode), Some(ThinkingMode::Low));
    assert_eq!(bot.system_prompt.as_deref(), Some("base"));
    assert!(!bot.default, "`default = true` is not inherited");
    let writer = &c.agents["writer"];
    let model = writer.model.as_ref().expect("model");
    assert_eq!(model.provider_name().as_deref(), Some("openai"));
    assert_eq!(model.name.as_deref(), Some("gpt-5"));
    // The string form replaces name and provider but keeps inherited thinking.
    assert_eq!(model.thinking.map(|t| t.mode), Some(ThinkingMode::Adaptive));
    assert_eq!(writer.system_prompt.as_deref(), Some("own"));
    assert_eq!(c.default_agent(), Some("default"));
}

#[test]
fn unknown_key_names_key_line_and_closest_key() {
    let err = toml("[agents.main]\nsystemPrompt = \"x\"\nmodle = \"echo\"\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown config key `agents.main.modle` at pincer.toml:3; did you mean `model`?"
    );
    let err = toml("[channels.discord.threads]\nidleHour = 3\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown config key `channels.discord.threads.idleHour` at pincer.toml:2; did you mean `idleHours`?"
    );
    let err = toml(
        "[agents.a]\nmodel = \"echo\"\n\n[[bindings]]\nagent = \"a\"\nmatch = { acount = \"x\" }\n",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown config key `bindings[0].match.acount` at pincer.toml:6; did you mean `account`?"
    );
    let err = toml("[gatewya]\nport = 1\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown config key `gatewya` at pincer.toml:1; did you mean `gateway`?"
    );
    // Nothing close: no suggestion.
    let err = toml("[zzzzzzzz]\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown config key `zzzzzzzz` at pincer.toml:1"
    );
}

#[test]
fn unknown_key_in_json_has_a_line() {
    let err = parse_str(
        "{\n  \"providers\": {\n    \"openai\": {\n      \"mdoe\": \"streaming\"\n    }\n  }\n}\n",
        Format::Json,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown config key `providers.openai.mdoe` at pincer.json:4; did you mean `mode`?"
    );
}

#[test]
fn wrong_value_names_key_and_reason() {
    let err = toml("[gateway]\nport = \"eighty\"\n").unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("config key `gateway.port` at pincer.toml:2: "),
        "{text}"
    );
    let err = toml("[sessions]\nidleHours = \"3 weeks\"\n").unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("`sessions.idleHours` at pincer.toml:2"),
        "{text}"
    );
    assert!(text.contains("unknown unit `weeks`"), "{text}");
    let err = toml("[response]\ntransport = \"carrier-pigeon\"\n").unwrap_err();
    assert!(
        err.to_string()
            .contains("`response.transport` at pincer.toml:2"),
        "{err}"
    );
}

#[test]
fn syntax_error_names_the_file() {
    let dir = tempdir();
    let path = dir.join("broken.toml");
    std::fs::write(&path, "[gateway\nport = 1\n").expect("write");
    let err = load_file(&path, &[]).unwrap_err();
    assert!(matches!(err, ConfigError::Parse { .. }), "{err:?}");
    assert!(err.to_string().contains("broken.toml"), "{err}");
}

#[test]
fn missing_explicit_file_is_an_error() {
    let err = load_file(Path::new("/nonexistent/pincer.toml"), &[]).unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot read config file /nonexistent/pincer.toml"),
        "{err}"
    );
}

#[test]
fn durations_accept_numbers_and_strings() {
    let c = toml("[sessions]\nidleHours = \"90s\"\nmaxAgeHours = 1.5\n").expect("parses");
    assert_eq!(c.sessions.idle_hours, Duration::from_secs(90));
    assert_eq!(c.sessions.max_age_hours, Duration::from_secs(5400));
    assert_eq!(c.sessions.hibernate_after, Duration::from_secs(300));
    let c = toml("[sessions]\nhibernateAfter = 30\n").expect("parses");
    assert_eq!(c.sessions.hibernate_after, Duration::from_secs(30));
    let c = toml("[sessions]\nhibernateAfter = \"250ms\"\n").expect("parses");
    assert_eq!(c.sessions.hibernate_after, Duration::from_millis(250));
    let err = toml("[sessions]\nhibernateAfter = 0\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("sessions.hibernateAfter"), "{err}");
    let c = toml("[channels.discord.threads]\nidleHours = \"15m\"\n").expect("parses");
    let threads = c.channels.discord.expect("discord").threads;
    assert_eq!(threads.idle_hours, Some(Duration::from_secs(900)));
    assert_eq!(c.sessions.with(threads).max_age_hours, Duration::ZERO);
}

#[test]
fn environment_overrides_the_file() {
    let dir = tempdir();
    let path = dir.join("pincer.toml");
    std::fs::write(
        &path,
        "[channels.discord.threads]\nidleHours = 24\n[gateway]\nport = 1000\n",
    )
    .expect("write");
    let c = load_file(
        &path,
        &[
            ("PINCER__CHANNELS__DISCORD__THREADS__IDLE_HOURS", "5"),
            ("PINCER__RESPONSE__TRANSPORT", "sse"),
            ("PINCER_GATEWAY_PORT", "2345"),
            ("PINCER_GATEWAY_TOKEN", "tok"),
        ],
    )
    .expect("loads")
    .config;
    let threads = c.channels.discord.expect("discord").threads;
    assert_eq!(threads.idle_hours, Some(Duration::from_secs(5 * 3600)));
    assert_eq!(c.response.transport, Transport::Sse);
    assert_eq!(c.gateway.port, 2345);
    assert_eq!(c.gateway.auth.token, Some(SecretValue::Plain("tok".into())));
}

#[test]
fn a_token_file_in_the_environment_is_a_file_ref_and_clashes_are_named() {
    let dir = tempdir();
    let path = dir.join("pincer.toml");
    std::fs::write(&path, "[gateway.auth]\ntoken = \"env:OVERRIDDEN\"\n").expect("write");
    let c = load_file(
        &path,
        &[("PINCER_GATEWAY_TOKEN_FILE", "/run/secrets/pincer_token")],
    )
    .expect("loads")
    .config;
    assert_eq!(
        c.gateway.auth.token,
        Some(SecretValue::Ref(SecretRef {
            source: SecretSource::File,
            provider: Some(TOKEN_FILE_PROVIDER.to_string()),
            id: "token".to_string(),
        }))
    );
    match c.secrets.providers.get(TOKEN_FILE_PROVIDER) {
        Some(SecretProvider::File { path, mode }) => {
            assert_eq!(
                path.as_deref(),
                Some(Path::new("/run/secrets/pincer_token"))
            );
            assert_eq!(*mode, FileMode::Single);
        }
        other => panic!("{other:?}"),
    }

    for (env, why) in [
        (
            vec![("PINCER_GATEWAY_TOKEN_FILE", " ")],
            "environment variable PINCER_GATEWAY_TOKEN_FILE: is empty",
        ),
        (
            vec![("PINCER_GATEWAY_TOKEN_FILE", "secrets/token")],
            "environment variable PINCER_GATEWAY_TOKEN_FILE: `secrets/token` is not an absolute path",
        ),
        (
            vec![
                ("PINCER_GATEWAY_TOKEN_FILE", "/run/secrets/t"),
                ("PINCER_GATEWAY_TOKEN", "0123456789abcdef"),
            ],
            "environment variable PINCER_GATEWAY_TOKEN_FILE: and PINCER_GATEWAY_TOKEN both set the gateway token; keep one",
        ),
        (
            vec![
                ("PINCER_GATEWAY_TOKEN_FILE", "/run/secrets/t"),
                ("PINCER__GATEWAY__AUTH__TOKEN", "0123456789abcdef"),
            ],
            "and PINCER__GATEWAY__AUTH__TOKEN both set",
        ),
    ] {
        let err = load_file(&path, &env).expect_err(why).to_string();
        assert!(err.contains(why), "{env:?}: {err}");
    }
}

#[test]
fn the_compose_configs_parse() {
    // docker/compose.yaml mounts docker/config/ as the gateway's config directory.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docker/config");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("docker/config") {
        let path = entry.expect("entry").path();
        load_file(&path, &[]).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        seen += 1;
    }
    assert_eq!(seen, 2, "pincer.toml and pincer.vault.toml");
}

#[test]
fn bad_port_in_the_environment_names_the_variable() {
    let err = load_file(
        &examples_dir().join("seed-sse-only.toml"),
        &[("PINCER_GATEWAY_PORT", "eighty")],
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "environment variable PINCER_GATEWAY_PORT: `eighty` is not a port number (1-65535)"
    );
}

#[test]
fn bad_environment_value_names_the_variable() {
    let err = load_file(
        &examples_dir().join("seed-sse-only.toml"),
        &[("PINCER__GATEWAY__PROT", "1")],
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown config key `gateway.prot` at environment variable PINCER__GATEWAY__PROT; did you mean `port`?"
    );
}

#[test]
fn cross_key_problems_are_all_listed() {
    let err = toml(
        r#"
[agents.a]
default = true
[agents.b]
default = true
model = "mystery-model"

[[bindings]]
agent = "ghost"

[channels.telegram.accounts.home]
token = "123:abc"
[channels.telegram.accounts.work]
token = "123:abc"
[channels.discord.accounts.home]
token = "x"
"#,
    )
    .unwrap_err();
    let ConfigError::Invalid(problems) = &err else {
        panic!("expected Invalid, got {err:?}");
    };
    let text = problems.join("\n");
    for needle in [
        "agents `a`, `b` are all marked `default = true`",
        "agents.b.model: cannot tell the provider of model `mystery-model`",
        "bindings[0].agent = \"ghost\" names no agent (agents: `a`, `b`)",
        "account id `home` is used by channels telegram and discord",
        "channels.telegram.accounts.home.token and channels.telegram.accounts.work.token hold the same bot token",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
    assert!(
        !err.to_string().contains("123:abc"),
        "a token leaked into the error: {err}"
    );
}

#[test]
fn secret_refs_in_examples_are_refs() {
    let c = load_file(&examples_dir().join("home.toml"), &[])
        .expect("loads")
        .config;
    let account = &c.channels.telegram.expect("telegram").accounts["telegram-research"];
    let token = account
        .token
        .as_ref()
        .and_then(SecretValue::as_ref)
        .expect("a ref");
    assert_eq!(
        (token.source, token.id.as_str()),
        (SecretSource::Env, "TELEGRAM_RESEARCH_TOKEN")
    );
    assert_eq!(c.bindings.len(), 3);
    assert_eq!(c.agents.len(), 4);
}

#[test]
fn hardening_keys_have_their_defaults_and_read_durations() {
    let c = toml("").expect("defaults");
    assert_eq!(c.gateway.max_connections.get(), 4096);
    assert_eq!(
        c.gateway.header_read_timeout,
        std::time::Duration::from_secs(10)
    );
    assert_eq!(c.gateway.idle_timeout, std::time::Duration::from_secs(75));
    assert_eq!(c.gateway.write_timeout, std::time::Duration::from_secs(30));
    assert!(c.gateway.allowed_origins.is_empty() && c.gateway.allowed_hosts.is_empty());
    assert_eq!(c.store.retention, crate::Retention::default());
    assert_eq!(
        c.agents["main"].turn_timeout,
        std::time::Duration::from_secs(600)
    );
    let c = toml(
        "[gateway]\nallowedOrigins = [\"https://chat.example.org\"]\nidleTimeout = 30\nwriteTimeout = \"2s\"\n\n[store.retention]\ninbox = \"keep\"\ntranscripts = \"365d\"\n\n[providers.openai]\nreadTimeout = \"45s\"\n\n[agents.main]\nturnTimeout = \"2m\"\n",
    )
    .expect("loads");
    assert_eq!(c.gateway.allowed_origins, vec!["https://chat.example.org"]);
    assert_eq!(c.gateway.idle_timeout, std::time::Duration::from_secs(30));
    assert_eq!(c.gateway.write_timeout, std::time::Duration::from_secs(2));
    assert_eq!(c.store.retention.inbox, crate::Keep::Forever);
    assert_eq!(
        c.store.retention.transcripts,
        crate::Keep::For(std::time::Duration::from_secs(365 * 86_400))
    );
    let openai = c.providers.openai.expect("openai");
    assert_eq!(openai.read_timeout, std::time::Duration::from_secs(45));
    assert_eq!(
        c.agents["main"].turn_timeout,
        std::time::Duration::from_secs(120)
    );
    let bad = toml("[store.retention]\ninbox = \"a week\"\n").expect_err("not a duration");
    assert!(bad.to_string().contains("store.retention.inbox"), "{bad}");
    assert!(bad.to_string().contains("\"keep\""), "{bad}");
}

#[test]
fn a_short_gateway_token_is_named_where_it_was_written() {
    let dir = tempdir();
    let path = dir.join("pincer.toml");
    std::fs::write(
        &path,
        "[gateway]\nport = 1000\n\n[gateway.auth]\ntoken = \"\"\n",
    )
    .expect("write");
    // Loading takes any token (the CLI only sends it); the gateway checks it.
    let loaded = load_file(&path, &[]).expect("loads");
    let err = loaded.check_gateway_token().expect_err("empty").to_string();
    assert!(
        err.starts_with("config key `gateway.auth.token`")
            && err.contains(&format!("{}:5", path.display()))
            && err.contains("is empty")
            && err.contains("16 characters"),
        "{err}"
    );

    let loaded = load_file(&path, &[("PINCER_GATEWAY_TOKEN", " \t ")]).expect("loads");
    let err = loaded.check_gateway_token().expect_err("blank").to_string();
    assert!(
        err.contains("environment variable PINCER_GATEWAY_TOKEN") && err.contains("is blank"),
        "{err}"
    );

    for token in ["0123456789abcdef", "env:SET_LATER"] {
        let loaded = load_file(&path, &[("PINCER_GATEWAY_TOKEN", token)]).expect("loads");
        assert_eq!(loaded.check_gateway_token(), Ok(()), "{token}");
    }
}

#[test]
fn only_a_regular_file_of_at_most_4_mb_is_read() {
    let dir = tempdir();
    let err = read_file(Path::new("/dev/null"), true).expect_err("a device");
    assert_eq!(
        err.to_string(),
        "config file /dev/null is not a regular file but a device"
    );
    let err = read_file(&dir, true).expect_err("a directory");
    assert!(
        err.to_string()
            .ends_with("is not a regular file but a directory"),
        "{err}"
    );

    let fifo = dir.join("fifo.toml");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if made.is_ok_and(|s| s.success()) {
        // Refused by its metadata: opening it for reading would block this test.
        let err = read_file(&fifo, true).expect_err("a FIFO");
        assert!(
            err.to_string()
                .ends_with("is not a regular file but a FIFO"),
            "{err}"
        );
    }

    let big = dir.join("big.toml");
    std::fs::write(&big, vec![b'#'; MAX_CONFIG_BYTES as usize + 1]).expect("write");
    assert_eq!(
        read_file(&big, true),
        Err(ConfigError::TooLarge {
            path: big.clone(),
            size: MAX_CONFIG_BYTES + 1,
            max: MAX_CONFIG_BYTES
        })
    );
    std::fs::write(&big, vec![b'#'; MAX_CONFIG_BYTES as usize]).expect("write");
    assert!(matches!(read_file(&big, true), Ok(Some(t)) if t.len() == MAX_CONFIG_BYTES as usize));

    let link = dir.join("pincer.toml");
    std::os::unix::fs::symlink("gone.toml", &link).expect("symlink");
    let err = read_file(&link, false).expect_err("dangling");
    assert_eq!(
        err.to_string(),
        format!(
            "config file {} is a symbolic link to {}, which does not exist",
            link.display(),
            dir.join("gone.toml").display()
        )
    );
    // Found at the default path, rather than silently skipped.
    let sources = Sources {
        home: dir.clone(),
        ..Sources::default()
    };
    assert_eq!(
        load(&Sources {
            file: Some(link.clone()),
            ..sources
        })
        .map(|l| l.file),
        Err(err)
    );

    assert_eq!(read_file(&dir.join("absent.toml"), false), Ok(None));
    assert!(read_file(&dir.join("absent.toml"), true).is_err());
}

#[test]
fn an_unknown_provider_is_an_error_with_the_closest_one() {
    for (text, wanted) in [
        (
            "[agents.main.model]\nprovider = \"opneai\"\nname = \"gpt-5\"\n",
            "agents.main.model.provider = \"opneai\" (at pincer.toml:2): is not a provider (echo, openai, anthropic); did you mean `openai`?",
        ),
        (
            "[agents.main]\nmodel = \"antropic/claude-sonnet-4-6\"\n",
            "agents.main.model.provider = \"antropic\" (at pincer.toml:2): is not a provider (echo, openai, anthropic); did you mean `anthropic`?",
        ),
        (
            "[agents.main.model]\nprovider = \"echo\"\nfallbacks = [\"openai/gpt-5\", \"ecko/echo\"]\n",
            "agents.main.model.fallbacks[1] = \"ecko/echo\" (at pincer.toml:3): `ecko` is not a provider (echo, openai, anthropic); did you mean `echo`?",
        ),
        (
            "[agents.main.model]\nprovider = \"mistral\"\n",
            "agents.main.model.provider = \"mistral\" (at pincer.toml:2): is not a provider (echo, openai, anthropic)",
        ),
        (
            "[agents.main.model]\nprovider = \"echo\"\nfallbacks = [\"llama3\"]\n",
            "agents.main.model.fallbacks[0] = \"llama3\" (at pincer.toml:3): cannot tell the provider of model `llama3`; write it as `provider/name` (echo, openai, anthropic)",
        ),
    ] {
        match toml(text) {
            Err(ConfigError::Invalid(problems)) => {
                assert_eq!(problems, vec![wanted.to_string()], "{text}")
            }
            other => panic!("{text}: {other:?}"),
        }
    }
    // Inherited from `default`: reported there, once.
    let inherited = "[agents.default.model]\nprovider = \"opneai\"\nfallbacks = [\"ecko/x\"]\n\n[agents.a]\nsystemPrompt = \"a\"\n";
    match toml(inherited) {
        Err(ConfigError::Invalid(problems)) => {
            assert_eq!(problems.len(), 2, "{problems:?}");
            assert!(
                problems.iter().all(|p| p.starts_with("agents.default.")),
                "{problems:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    let fine = "[agents.main.model]\nprovider = \"anthropic\"\nname = \"claude-opus-4-6\"\nfallbacks = [\"openai/gpt-5\", \"gpt-5-mini\", \"echo\"]\n";
    assert!(toml(fine).is_ok());
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "pincer-config-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn tool_names_are_checked_where_they_are_written_with_a_suggestion() {
    let dir = tempdir();
    let path = dir.join("pincer.toml");
    std::fs::write(
        &path,
        "[agents.main]\nskills = [\"web_serch\"]\n\n[agents.main.tools]\nprofile = \"coding\"\ndeny = [\"exce\"]\n\n[channels.telegram.dm.topics.coding]\nskills = [\"brwoser\"]\n",
    )
    .expect("write");
    let err = load_file(&path, &[]).unwrap_err().to_string();
    let file = path.display();
    for expected in [
        format!(
            "agents.main.skills[0] (at {file}:2): unknown tool `web_serch`; did you mean `web_search`?"
        ),
        format!(
            "agents.main.tools.deny[0] (at {file}:6): unknown tool `exce`; did you mean `exec`?"
        ),
        format!(
            "channels.telegram.dm.topics.coding.skills[0] (at {file}:9): unknown tool `brwoser`; did you mean `browser`?"
        ),
    ] {
        assert!(err.contains(&expected), "{expected}\nnot in: {err}");
    }
    let err = toml("[agents.main.tools]\nprofile = \"everything\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("agents.main.tools.profile") && err.contains("minimal"),
        "{err}"
    );
}

#[test]
fn tools_this_build_lacks_load_with_a_warning() {
    // The seed's topics, as written, and an agent that may use every tool.
    let dir = tempdir();
    let path = dir.join("pincer.toml");
    std::fs::write(
        &path,
        "[agents.main.tools]\nprofile = \"full\"\n\n[channels.telegram.dm.topics.research]\nskills = [\"web_search\", \"web_fetch\"]\nsystemPrompt = \"You are a research assistant.\"\n\n[channels.telegram.dm.topics.coding]\nskills = [\"exec\", \"browser\"]\nsystemPrompt = \"You are a coding assistant.\"\n",
    )
    .expect("write");
    let loaded = load_file(&path, &[]).expect("loads");
    let warning = loaded
        .warnings
        .iter()
        .find(|w| w.contains("agent `main`"))
        .unwrap_or_else(|| panic!("no warning about main: {:?}", loaded.warnings));
    assert!(
        warning.contains("`browser`") && warning.contains("does not have yet"),
        "{warning}"
    );
    for built in ["`exec`", "`web_search`", "`web_fetch`"] {
        assert!(!warning.contains(built), "{built} is built: {warning}");
    }
}

#[test]
fn exec_defaults_are_the_safe_ones() {
    use crate::tools::{ExecAsk, ExecSandbox, ExecSecurity};
    let exec = toml("").expect("empty").tools.exec;
    assert_eq!(exec.sandbox, ExecSandbox::Bwrap);
    assert!(!exec.network);
    assert_eq!(exec.security, ExecSecurity::Allowlist);
    assert_eq!(exec.ask, ExecAsk::OnMiss);
    assert!(exec.allowlist.is_empty());
    assert_eq!(exec.approval_timeout, Duration::from_secs(300));
    assert_eq!(exec.timeout, Duration::from_secs(60));
    assert_eq!(exec.max_timeout, Duration::from_secs(600));

    let exec = toml(
        "[tools.exec]\nsandbox = \"none\"\nnetwork = true\nsecurity = \"full\"\nask = \"always\"\nallowlist = [\"/usr/bin/*\"]\napprovalTimeout = \"30s\"\ntimeout = 5\nmaxTimeout = \"2m\"\n",
    )
    .expect("every key")
    .tools
    .exec;
    assert_eq!(exec.sandbox, ExecSandbox::None);
    assert_eq!(exec.security, ExecSecurity::Full);
    assert_eq!(exec.ask, ExecAsk::Always);
    assert_eq!(exec.approval_timeout, Duration::from_secs(30));
    assert_eq!(exec.timeout, Duration::from_secs(5));
    assert_eq!(exec.max_timeout, Duration::from_secs(120));
    assert_eq!(
        toml("[tools.exec]\nask = \"on-miss\"\n")
            .expect("kebab")
            .tools
            .exec
            .ask,
        ExecAsk::OnMiss
    );
}

#[test]
fn exec_enum_values_are_checked_where_written_with_a_suggestion() {
    for (line, key, near) in [
        ("sandbox = \"bwarp\"", "tools.exec.sandbox", "bwrap"),
        (
            "security = \"allowlst\"",
            "tools.exec.security",
            "allowlist",
        ),
        ("ask = \"on_miss\"", "tools.exec.ask", "on-miss"),
    ] {
        let text = toml(&format!("[tools.exec]\n{line}\n"))
            .unwrap_err()
            .to_string();
        assert!(
            text.contains(&format!("`{key}` at pincer.toml:2")),
            "{line}: {text}"
        );
        assert!(
            text.contains(&format!("did you mean `{near}`?")),
            "{line}: {text}"
        );
    }
}

#[test]
fn exec_allowlist_and_timeouts_are_checked() {
    let dir = tempdir();
    let path = dir.join("pincer.toml");
    std::fs::write(
        &path,
        "[tools.exec]\nallowlist = [\"/usr/bin/git\", \"git\", \"/usr/bin/../bin/*\", \"/usr/bin/\"]\ntimeout = \"20m\"\nmaxTimeout = \"15m\"\napprovalTimeout = 0\n",
    )
    .expect("write");
    let err = load_file(&path, &[]).unwrap_err().to_string();
    let file = path.display();
    for expected in [
        format!("tools.exec.allowlist[1] = \"git\" (at {file}:2): a pattern is an absolute path"),
        format!(
            "tools.exec.allowlist[2] = \"/usr/bin/../bin/*\" (at {file}:2): a pattern holds no"
        ),
        format!("tools.exec.allowlist[3] = \"/usr/bin/\" (at {file}:2): a pattern names a file"),
        format!("tools.exec.maxTimeout = \"15m\" (at {file}:4): at most \"10m\""),
        format!("tools.exec.timeout = \"20m\" (at {file}:3): longer than tools.exec.maxTimeout"),
        format!("tools.exec.approvalTimeout (at {file}:5): must be longer than 0s"),
    ] {
        assert!(err.contains(&expected), "{expected}\nnot in: {err}");
    }
    assert!(!err.contains("allowlist[0]"), "{err}");
}

#[test]
fn web_search_defaults_to_brave_and_takes_a_secret_ref() {
    let c = toml("").expect("parses");
    let search = &c.tools.web_search;
    assert_eq!(search.provider, tools::SearchProvider::Brave);
    assert_eq!(search.base_url(), Some(tools::BRAVE_BASE_URL));
    assert_eq!(search.api_key, None);
    let c = toml("[tools.webSearch]\nprovider = \"brave\"\napiKey = \"env:BRAVE_API_KEY\"\nbaseUrl = \"http://127.0.0.1:9\"\n")
        .expect("parses");
    let search = &c.tools.web_search;
    assert_eq!(search.base_url(), Some("http://127.0.0.1:9"));
    assert_eq!(
        search.api_key,
        Some(SecretValue::from_text("env:BRAVE_API_KEY"))
    );
    let c =
        toml("[tools.webSearch]\nprovider = \"searxng\"\nbaseUrl = \"http://searx.lan:8888/\"\n")
            .expect("parses");
    assert_eq!(c.tools.web_search.provider, tools::SearchProvider::Searxng);
    assert_eq!(
        c.tools.web_search.base_url(),
        Some("http://searx.lan:8888/")
    );
}

#[test]
fn web_search_problems_name_the_key_its_line_and_what_to_write() {
    let err = toml("[tools.webSearch]\nprovider = \"bing\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`tools.webSearch.provider` at pincer.toml:2")
            && err.contains("`brave`")
            && err.contains("`searxng`"),
        "{err}"
    );
    let err = toml("[tools.webSearch]\nprovider = \"searxng\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "tools.webSearch.baseUrl: provider `searxng` (at pincer.toml:2) has no default address"
        ) && err.contains("baseUrl = \"http://"),
        "{err}"
    );
    let err = toml("[tools.webSearch]\nbaseUrl = \"api.search.brave.com\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tools.webSearch.baseUrl = \"api.search.brave.com\" (at pincer.toml:2): not an http(s) URL"),
        "{err}"
    );
    let err = toml("[tools.webSearch]\napiKeys = [\"x\"]\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("did you mean `apiKey`?"), "{err}");
}

#[test]
fn a_key_searxng_does_not_take_is_a_warning() {
    let dir = tempdir();
    let path = dir.join("pincer.toml");
    std::fs::write(
        &path,
        "[tools.webSearch]\nprovider = \"searxng\"\nbaseUrl = \"http://127.0.0.1:8888\"\napiKey = \"env:X\"\n",
    )
    .expect("write");
    let loaded = load_file(&path, &[]).expect("loads");
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.contains("tools.webSearch.apiKey") && w.contains("SearXNG takes no key")),
        "{:?}",
        loaded.warnings
    );
}

mod context;

#[test]
fn environment_keys_are_the_config_keys_uppercased() {
    let dir = tempdir();
    let path = dir.join("pincer.toml");
    std::fs::write(
        &path,
        "[providers.openai]\nbaseUrl = \"http://127.0.0.1:1/v1\"\n[channels.discord.threads]\nidleHours = 24\n",
    )
    .expect("write");
    let loaded = load_file(
        &path,
        &[
            ("PINCER__PROVIDERS__OPENAI__APIKEY", "env:MY_KEY"),
            ("PINCER__CHANNELS__DISCORD__THREADS__IDLEHOURS", "5"),
        ],
    )
    .expect("loads");
    let openai = loaded.config.providers.openai.expect("openai");
    assert_eq!(openai.api_key, Some(SecretValue::from_text("env:MY_KEY")));
    assert_eq!(
        openai.base_url, "http://127.0.0.1:1/v1",
        "the file's keys stay"
    );
    let threads = loaded.config.channels.discord.expect("discord").threads;
    assert_eq!(threads.idle_hours, Some(Duration::from_secs(5 * 3600)));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);

    // The older form works and says which form to write.
    let loaded = load_file(
        &path,
        &[("PINCER__PROVIDERS__OPENAI__API_KEY", "env:MY_KEY")],
    )
    .expect("loads");
    assert_eq!(
        loaded.config.providers.openai.expect("openai").api_key,
        Some(SecretValue::from_text("env:MY_KEY"))
    );
    assert!(
        loaded.warnings.iter().any(|w| w.contains(
            "PINCER__PROVIDERS__OPENAI__API_KEY: `_` between the words of a key is deprecated; write PINCER__PROVIDERS__OPENAI__APIKEY"
        )),
        "{:?}",
        loaded.warnings
    );

    // A key the schema does not have is still an error, with the closest key.
    let err = load_file(&path, &[("PINCER__PROVIDERS__OPENAI__APIKEYZ", "x")]).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("unknown config key `providers.openai.apikeyz`")
            && text.contains("did you mean `apiKey`?"),
        "{text}"
    );
    // A file's wrongly cased key is not renamed: only the environment has one case.
    let err = toml("[providers.openai]\napikey = \"x\"\n").unwrap_err();
    assert!(
        err.to_string()
            .contains("unknown config key `providers.openai.apikey`"),
        "{err}"
    );
}

#[test]
fn a_provider_that_names_no_key_reads_the_usual_variable() {
    let c =
        toml("[providers.openai]\n[providers.anthropic]\napiKey = \"env:MINE\"\n").expect("loads");
    assert_eq!(
        c.providers.openai.expect("openai").api_key,
        Some(SecretValue::from_text("env:OPENAI_API_KEY"))
    );
    assert_eq!(
        c.providers.anthropic.expect("anthropic").api_key,
        Some(SecretValue::from_text("env:MINE")),
        "a key the config names wins"
    );
    let c = toml("[providers.anthropic]\n").expect("loads");
    assert_eq!(
        c.providers.anthropic.expect("anthropic").api_key,
        Some(SecretValue::from_text("env:ANTHROPIC_API_KEY"))
    );
    assert!(
        toml("").expect("loads").providers.openai.is_none(),
        "no provider, no key"
    );
}
