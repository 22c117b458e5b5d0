//! `pincer secrets audit|configure|apply` on the real binary: findings and exit codes,
//! plaintext moved into Vault (the fake) and the default secrets file with comments kept,
//! the gateway then calling OpenAI with the moved keys, and the access trail over the CLI.
//! No secret value may ever show in an output or the gateway's log.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::{Gw, TempDir, free_port, run_cli, run_cli_env, until};
use pincer_fakes::openai::{self, OpenAiFake};
use pincer_fakes::vault::{TEST_TOKEN, VaultFake};
use serde_json::{Value, json};
use toml_edit::DocumentMut;

fn write_config(home: &Path, text: &str) {
    std::fs::write(home.join("pincer.toml"), text).expect("write config");
}

fn read_config(home: &Path) -> String {
    std::fs::read_to_string(home.join("pincer.toml")).expect("read config")
}

/// Writes `$PINCER_HOME/secrets.json`, readable by its owner only.
fn write_secrets_file(home: &Path, doc: &Value) {
    let path = home.join("secrets.json");
    std::fs::write(&path, doc.to_string()).expect("write secrets file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// `pincer secrets <args>` in `home` with `env`; (exit code, stdout + stderr).
fn secrets(home: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut all = vec!["secrets"];
    all.extend_from_slice(args);
    let (code, out, err) = run_cli_env(home, &all, None, env);
    (code, format!("{out}{err}"))
}

/// `pincer secrets audit --json` (plus `extra`): (exit code, the JSON document, raw output).
fn audit_json(home: &Path, extra: &[&str], env: &[(&str, &str)]) -> (i32, Value, String) {
    let mut args = vec!["secrets", "audit", "--json"];
    args.extend_from_slice(extra);
    let (code, out, err) = run_cli_env(home, &args, None, env);
    let doc = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("audit --json is not JSON ({e}):\n{out}\n{err}"));
    (code, doc, format!("{out}{err}"))
}

fn kinds(doc: &Value) -> Vec<(String, String)> {
    doc["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            (
                f["kind"].as_str().unwrap_or_default().to_string(),
                f["at"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[track_caller]
fn assert_hidden(text: &str, values: &[&str]) {
    for value in values {
        assert!(
            !text.contains(value),
            "secret value {value} shows in:\n{text}"
        );
    }
}

/// A dotted path (`["agents", "research-bot", "model", "apiKey"]`) in a parsed config.
fn item<'a>(doc: &'a DocumentMut, path: &[&str]) -> &'a toml_edit::Item {
    let mut at = doc.as_item();
    for step in path {
        at = at
            .get(step)
            .unwrap_or_else(|| panic!("no `{}` in the config:\n{doc}", path.join(".")));
    }
    at
}

/// The `{ source, provider, id }` inline table at `path`, as strings.
fn ref_at(doc: &DocumentMut, path: &[&str]) -> (String, String, String) {
    let table = item(doc, path)
        .as_inline_table()
        .unwrap_or_else(|| panic!("`{}` is not an inline table:\n{doc}", path.join(".")));
    let field = |k: &str| {
        table
            .get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_else(|| panic!("no `{k}` in the ref at `{}`", path.join(".")))
            .to_string()
    };
    (field("source"), field("provider"), field("id"))
}

#[test]
fn audit_check_exit_codes() {
    let plain = "sk-plain-audit-7c1e52d9";
    let home = TempDir::new();
    let h = home.path();

    // (a) Plaintext in the file: a finding, exit 1 with --check, never the value.
    write_config(
        h,
        &format!(
            "[providers.openai]\napiKey = \"{plain}\"\n\n[agents.main]\nmodel = \"openai/gpt-5\"\n"
        ),
    );
    let (code, out) = secrets(h, &["audit", "--check"], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("providers.openai.apiKey") && out.contains("plaintext"),
        "{out}"
    );
    assert_hidden(&out, &[plain]);
    // Without --check the same findings exit 0.
    let (code, doc, raw) = audit_json(h, &[], &[]);
    assert_eq!(code, 0, "{raw}");
    assert_eq!(doc["summary"]["plaintext"], 1, "{raw}");
    assert_eq!(doc["summary"]["unresolved"], 0, "{raw}");
    assert_eq!(
        kinds(&doc),
        [("plaintext".into(), "providers.openai.apiKey".into())]
    );
    assert_hidden(&raw, &[plain]);
    // --json --check: still JSON, still exit 1.
    let (code, doc, raw) = audit_json(h, &["--check"], &[]);
    assert_eq!(
        (code, &doc["summary"]["plaintext"]),
        (1, &json!(1)),
        "{raw}"
    );

    // (b) A ref to an unset variable: unresolved, exit 2 (worse than a finding).
    write_config(
        h,
        "[providers.openai]\napiKey = \"env:PINCER_TEST_UNSET_KEY\"\n\n[agents.main]\nmodel = \"openai/gpt-5\"\n",
    );
    let (code, out) = secrets(h, &["audit", "--check"], &[]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("unresolved")
            && out.contains("providers.openai.apiKey")
            && out.contains("env:PINCER_TEST_UNSET_KEY"),
        "{out}"
    );
    let (_, doc, raw) = audit_json(h, &[], &[]);
    assert_eq!(doc["summary"]["unresolved"], 1, "{raw}");
    assert_eq!(
        doc["findings"][0]["reference"], "env:PINCER_TEST_UNSET_KEY",
        "{raw}"
    );

    // (c) A file ref that resolves: clean, exit 0.
    let from_file = "sk-from-file-0a9b8c7d";
    write_secrets_file(h, &json!({"openai": {"key": from_file}}));
    write_config(
        h,
        "# keys live in secrets.json\n[providers.openai]\napiKey = \"file:/openai/key\"\n\n[agents.main]\nmodel = \"openai/gpt-5\"\n",
    );
    let (code, out) = secrets(h, &["audit", "--check"], &[]);
    assert_eq!(code, 0, "{out}");
    assert_hidden(&out, &[from_file]);
    let (code, doc, raw) = audit_json(h, &["--check"], &[]);
    assert_eq!(code, 0, "{raw}");
    assert_eq!(
        doc["summary"],
        json!({"plaintext": 0, "unresolved": 0, "shadowed": 0, "refs_resolved": 1, "secrets": 1}),
        "{raw}"
    );
    assert_hidden(&raw, &[from_file]);

    // (d) The file's ref shadowed by a plaintext PINCER__ override. Words joined by `_`
    // become camelCase (`API_KEY` → `apiKey`); `APIKEY` would be the unknown `apikey`.
    let shadow = "sk-shadow-5e4d3c2b";
    let env = [("PINCER__PROVIDERS__OPENAI__API_KEY", shadow)];
    let (code, out) = secrets(h, &["audit", "--check"], &env);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("[shadowed] providers.openai.apiKey"), "{out}");
    assert_hidden(&out, &[shadow, from_file]);
    let (_, doc, raw) = audit_json(h, &[], &env);
    assert_eq!(
        kinds(&doc),
        [("shadowed".into(), "providers.openai.apiKey".into())]
    );
    assert_eq!(doc["summary"]["shadowed"], 1, "{raw}");
    assert_hidden(&raw, &[shadow, from_file]);

    // An env file with a secret-looking variable: named, its value never shown; comments
    // and harmless variables are not findings.
    let in_env_file = "sk-envfile-61f0e2a3";
    std::fs::write(
        h.join(".env"),
        format!("# OPENAI_API_KEY=sk-commented-out\nPORT=8080\nexport OPENAI_API_KEY=\"{in_env_file}\"\n"),
    )
    .expect("write .env");
    let (code, out) = secrets(h, &["audit", "--check"], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("[plaintext-env-file]") && out.contains(".env: OPENAI_API_KEY"),
        "{out}"
    );
    assert_hidden(&out, &[in_env_file, "sk-commented-out", from_file]);
    let (_, doc, raw) = audit_json(h, &[], &[]);
    let found = kinds(&doc);
    assert_eq!(found.len(), 1, "{raw}");
    assert_eq!(found[0].0, "plaintext-env-file");
    assert!(found[0].1.ends_with(".env: OPENAI_API_KEY"), "{raw}");
    assert_eq!(doc["summary"]["plaintext"], 1, "{raw}");
    assert_eq!(doc["summary"]["refs_resolved"], 1, "{raw}");
    assert_hidden(&raw, &[in_env_file]);
}

/// The round trip's config: plaintext provider and agent keys, a Vault back end.
fn round_trip_config(openai: &str, vault: &str, provider_key: &str, agent_key: &str) -> String {
    format!(
        r#"# Pincer config for the secrets round trip.

# The OpenAI account everyone shares.
[providers.openai]
baseUrl = "{openai}"
apiKey = "{provider_key}"   # the shared key

[response]
transport = "sse"

[agents.main]
default = true
model = "openai/gpt-5"

# Research runs on its own budget.
[agents.research-bot.model]
provider = "openai"
name = "gpt-5"
apiKey = "{agent_key}"   # research's own key

# Where secrets live.
[secrets.providers.vault]
source = "vault"
address = "{vault}"
token = "env:VAULT_TOKEN"
"#
    )
}

const ROUND_TRIP_COMMENTS: [&str; 5] = [
    "# Pincer config for the secrets round trip.",
    "# The OpenAI account everyone shares.",
    "# Research runs on its own budget.",
    "# research's own key",
    "# Where secrets live.",
];

/// The `authorization` headers of the fake's generating requests, in order.
fn authorizations(fake: &OpenAiFake) -> Vec<String> {
    fake.requests()
        .into_iter()
        .filter(|r| {
            matches!(r.transport, openai::Transport::Ws | openai::Transport::Sse) && !r.warmup
        })
        .map(|r| r.headers.get("authorization").cloned().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn apply_round_trip_to_vault() {
    let provider_key = "sk-provider-3f9a1b7e";
    let agent_key = "sk-agent-d41c8e02";
    let values = [provider_key, agent_key];
    let fake = OpenAiFake::start_with(openai::Knobs {
        valid_keys: vec![provider_key.into(), agent_key.into()],
        ..Default::default()
    })
    .await;
    let vault = VaultFake::start();
    let home = TempDir::new();
    let h = home.path();
    write_config(
        h,
        &round_trip_config(&fake.base_url(), &vault.url(), provider_key, agent_key),
    );
    let token = [("VAULT_TOKEN", TEST_TOKEN)];
    let mut outputs = String::new();

    // A dry run shows the plan and touches nothing: not the file, not Vault.
    let before = std::fs::read(h.join("pincer.toml")).expect("read");
    let (code, out) = secrets(
        h,
        &["apply", "--target", "agents/research-bot", "--dry-run"],
        &[],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("agents.research-bot.model.apiKey"), "{out}");
    assert!(out.contains("dry run"), "{out}");
    assert!(!out.contains("providers.openai.apiKey"), "{out}");
    outputs.push_str(&out);
    assert_eq!(std::fs::read(h.join("pincer.toml")).expect("read"), before);
    assert_eq!(vault.counters().requests, 0, "{:?}", vault.requests());

    // Without a Vault token nothing moves, and the config stays as it was.
    let (code, out) = secrets(
        h,
        &["apply", "--target", "agents/research-bot"],
        &[("VAULT_TOKEN", "")],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("VAULT_TOKEN"), "{out}");
    outputs.push_str(&out);
    assert_eq!(std::fs::read(h.join("pincer.toml")).expect("read"), before);
    assert_eq!(vault.counters().writes, 0, "{:?}", vault.requests());

    // The seed's spelling of the agent target moves the agent's key only.
    let (code, out) = secrets(
        h,
        &[
            "apply",
            "--target",
            "agents/research-bot/auth-profiles.json",
        ],
        &token,
    );
    assert_eq!(code, 0, "{out}");
    outputs.push_str(&out);
    assert_eq!(
        vault.secret("secret/pincer/agents/research-bot/model"),
        Some(json!({"apiKey": agent_key}))
    );
    assert_eq!(vault.secret("secret/pincer/providers/openai"), None);
    let text = read_config(h);
    let doc: DocumentMut = text.parse().expect("config parses");
    assert_eq!(
        ref_at(&doc, &["agents", "research-bot", "model", "apiKey"]),
        (
            "vault".into(),
            "vault".into(),
            "pincer/agents/research-bot/model#apiKey".into()
        )
    );
    assert_eq!(
        item(&doc, &["providers", "openai", "apiKey"]).as_str(),
        Some(provider_key)
    );
    for comment in ROUND_TRIP_COMMENTS {
        assert!(text.contains(comment), "lost `{comment}`:\n{text}");
    }
    assert!(!text.contains(agent_key), "{text}");

    // `all` moves the rest; the Vault token is a ref already. A field already at the
    // provider's path stays (a KV v2 write replaces the whole secret).
    vault.put("secret/pincer/providers/openai", json!({"orgId": "org-1"}));
    let (code, out) = secrets(h, &["apply", "--target", "all"], &token);
    assert_eq!(code, 0, "{out}");
    outputs.push_str(&out);
    assert_eq!(
        vault.secret("secret/pincer/providers/openai"),
        Some(json!({"orgId": "org-1", "apiKey": provider_key}))
    );
    assert_eq!(
        vault.secret("secret/pincer/agents/research-bot/model"),
        Some(json!({"apiKey": agent_key}))
    );
    let text = read_config(h);
    let doc: DocumentMut = text.parse().expect("config parses");
    assert_eq!(
        ref_at(&doc, &["providers", "openai", "apiKey"]),
        (
            "vault".into(),
            "vault".into(),
            "pincer/providers/openai#apiKey".into()
        )
    );
    assert_eq!(
        item(&doc, &["secrets", "providers", "vault", "token"]).as_str(),
        Some("env:VAULT_TOKEN")
    );
    for comment in ROUND_TRIP_COMMENTS.iter().chain(&["# the shared key"]) {
        assert!(text.contains(comment), "lost `{comment}`:\n{text}");
    }
    assert_hidden(&text, &values);

    // Nothing left to move; the audit is clean.
    let (code, out) = secrets(h, &["apply"], &token);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("nothing to apply"), "{out}");
    outputs.push_str(&out);
    let (code, out) = secrets(h, &["audit", "--check"], &token);
    assert_eq!(code, 0, "{out}");
    outputs.push_str(&out);
    let (code, doc, raw) = audit_json(h, &["--check"], &token);
    assert_eq!(code, 0, "{raw}");
    // The agent's key, the provider's key and the Vault token itself.
    assert_eq!(doc["summary"]["refs_resolved"], 3, "{raw}");
    assert_eq!(doc["summary"]["plaintext"], 0, "{raw}");
    outputs.push_str(&raw);

    // The gateway calls OpenAI with the agent's own key for research-bot and the
    // provider's key for everyone else.
    let gw = Gw::spawn_env(h, None, free_port(), &token);
    gw.wait_ready(Duration::from_secs(20)).await;
    assert_eq!(
        gw.ask("research-bot", "u", "dig into this").await,
        (200, "openai: dig into this".into()),
        "{}",
        gw.log()
    );
    assert_eq!(
        gw.ask("main", "u", "hello").await,
        (200, "openai: hello".into()),
        "{}",
        gw.log()
    );
    assert_eq!(
        authorizations(&fake),
        [
            format!("Bearer {agent_key}"),
            format!("Bearer {provider_key}")
        ],
        "{}",
        gw.log()
    );
    assert_hidden(&gw.log(), &values);
    assert_hidden(&outputs, &values);
}

#[test]
fn apply_to_the_default_file() {
    let openai_key = "sk-default-file-9d8c7b6a";
    let anthropic_key = "sk-ant-default-1a2b3c4d";
    let home = TempDir::new();
    let h = home.path();
    write_config(
        h,
        &format!(
            "# no secrets back end\n[providers.openai]\napiKey = \"{openai_key}\" # inline\n\n[agents.main]\nmodel = \"openai/gpt-5\"\n"
        ),
    );
    let secrets_json = h.join("secrets.json");
    assert!(!secrets_json.exists());
    let (code, out) = secrets(h, &["apply"], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("providers.openai.apiKey"), "{out}");
    assert_hidden(&out, &[openai_key]);
    let mode = std::fs::metadata(&secrets_json)
        .expect("secrets.json created")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "secrets.json mode {mode:o}");
    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(&secrets_json).expect("read")).expect("json");
    assert_eq!(
        stored,
        json!({"providers": {"openai": {"apiKey": openai_key}}})
    );
    let text = read_config(h);
    let doc: DocumentMut = text.parse().expect("config parses");
    assert_eq!(
        ref_at(&doc, &["providers", "openai", "apiKey"]),
        (
            "file".into(),
            "default".into(),
            "/providers/openai/apiKey".into()
        )
    );
    assert!(
        text.contains("# no secrets back end") && text.contains("# inline"),
        "{text}"
    );
    assert_hidden(&text, &[openai_key]);
    let (code, out) = secrets(h, &["audit", "--check"], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 ref(s) resolved"), "{out}");

    // A second apply adds to the file, keeping what it holds and its mode.
    let mut text = read_config(h);
    text.push_str(&format!(
        "\n[providers.anthropic]\napiKey = \"{anthropic_key}\"\n"
    ));
    write_config(h, &text);
    let (code, out) = secrets(h, &["apply", "--target", "providers/anthropic"], &[]);
    assert_eq!(code, 0, "{out}");
    assert_hidden(&out, &[openai_key, anthropic_key]);
    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(&secrets_json).expect("read")).expect("json");
    assert_eq!(
        stored,
        json!({"providers": {"openai": {"apiKey": openai_key}, "anthropic": {"apiKey": anthropic_key}}})
    );
    let mode = std::fs::metadata(&secrets_json)
        .expect("stat")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "secrets.json mode {mode:o}");
    let (code, doc, raw) = audit_json(h, &["--check"], &[]);
    assert_eq!(code, 0, "{raw}");
    assert_eq!(doc["summary"]["refs_resolved"], 2, "{raw}");
    assert_hidden(&raw, &[openai_key, anthropic_key]);
}

#[test]
fn configure_writes_an_alias_keeping_comments() {
    let home = TempDir::new();
    let h = home.path();
    let original = "# My gateway.\n[gateway]\nport = 18789 # the usual\n\n# The one agent.\n[agents.main]\nmodel = \"echo\"\n";
    write_config(h, original);

    let (code, out) = secrets(
        h,
        &[
            "configure",
            "--provider",
            "vault",
            "--endpoint",
            "https://vault.example.com",
            "--token",
            "env:VAULT_TOKEN",
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("added [secrets.providers.vault]"), "{out}");
    let text = read_config(h);
    for comment in ["# My gateway.", "# the usual", "# The one agent."] {
        assert!(text.contains(comment), "lost `{comment}`:\n{text}");
    }
    assert!(text.starts_with(original), "{text}");
    let doc: DocumentMut = text.parse().expect("config parses");
    let vault = item(&doc, &["secrets", "providers", "vault"]);
    assert!(vault.is_table(), "{text}");
    assert_eq!(vault["source"].as_str(), Some("vault"));
    assert_eq!(vault["address"].as_str(), Some("https://vault.example.com"));
    assert_eq!(vault["token"].as_str(), Some("env:VAULT_TOKEN"));
    // The config still loads: audit reads it (the token ref is unresolved here, a finding
    // only with --check).
    let (code, doc, raw) = audit_json(h, &[], &[]);
    assert_eq!(code, 0, "{raw}");
    assert_eq!(
        kinds(&doc),
        [("unresolved".into(), "secrets.providers.vault.token".into())]
    );

    let (code, out) = secrets(
        h,
        &[
            "configure",
            "--provider",
            "aws",
            "--alias",
            "prod",
            "--region",
            "eu-west-1",
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("added [secrets.providers.prod]"), "{out}");
    let text = read_config(h);
    let doc: DocumentMut = text.parse().expect("config parses");
    let prod = item(&doc, &["secrets", "providers", "prod"]);
    assert_eq!(prod["source"].as_str(), Some("aws"));
    assert_eq!(prod["region"].as_str(), Some("eu-west-1"));
    assert_eq!(
        item(&doc, &["secrets", "providers", "vault", "address"]).as_str(),
        Some("https://vault.example.com")
    );
    assert!(text.starts_with(original), "{text}");
    let (code, out) = secrets(h, &["audit"], &[]);
    assert_eq!(code, 0, "{out}");

    // Configuring an alias again replaces it.
    let (code, out) = secrets(
        h,
        &[
            "configure",
            "--provider",
            "vault",
            "--endpoint",
            "https://vault2.example.com",
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("replaced [secrets.providers.vault]"), "{out}");
    let doc: DocumentMut = read_config(h).parse().expect("config parses");
    let vault = item(&doc, &["secrets", "providers", "vault"]);
    assert_eq!(
        vault["address"].as_str(),
        Some("https://vault2.example.com")
    );
    assert!(vault.get("token").is_none(), "{doc}");

    // Vault without an address is a usage error; the file stays as it was.
    let before = read_config(h);
    let (code, out) = secrets(h, &["configure", "--provider", "vault"], &[]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("--endpoint") && out.contains("required"),
        "{out}"
    );
    assert_eq!(read_config(h), before);
}

#[tokio::test]
async fn access_trail_via_cli() {
    let key = "sk-trail-8e7f6a5b";
    let fake = OpenAiFake::start_with(openai::Knobs {
        valid_keys: vec![key.into()],
        ..Default::default()
    })
    .await;
    let home = TempDir::new();
    let h = home.path();
    write_secrets_file(h, &json!({"openai": {"key": key}}));
    let config = format!(
        "[providers.openai]\nbaseUrl = \"{}\"\napiKey = \"file:/openai/key\"\n\n[response]\ntransport = \"sse\"\n\n[agents.main]\nmodel = \"openai/gpt-5\"\n",
        fake.base_url()
    );
    let gw = Gw::start(h, Some(&config)).await;
    assert_eq!(gw.ask("main", "u", "hi").await, (200, "openai: hi".into()));
    assert_eq!(authorizations(&fake), [format!("Bearer {key}")]);

    let actor = "pincer/providers/provider:openai";
    let reference = "file:default:/openai/key";
    let args = ["secrets", "audit", "--access", "--since", "1h"];
    // Trail rows reach the store on the secrets actor's next tick.
    let out = until("the access row", &gw, Duration::from_secs(10), async || {
        let (code, out, err) = run_cli(h, &args, Some(gw.port));
        assert_eq!(code, 0, "{out}{err}");
        out.lines()
            .any(|l| l.contains(actor) && l.contains(reference) && l.ends_with("  ok"))
            .then_some(out)
    })
    .await;
    assert_hidden(&out, &[key]);

    let mut json_args = args.to_vec();
    json_args.push("--json");
    let (code, out, err) = run_cli(h, &json_args, Some(gw.port));
    assert_eq!(code, 0, "{out}{err}");
    let doc: Value = serde_json::from_str(&out).expect("JSON");
    let rows = doc["access"].as_array().expect("access rows");
    assert!(
        rows.iter().any(|r| r["actor"] == actor
            && r["reference"] == reference
            && r["outcome"] == "ok"
            && r["at"].as_u64().is_some()),
        "{out}"
    );
    assert_hidden(&out, &[key]);

    // `secrets reload` makes the gateway resolve again.
    let (code, out, err) = run_cli(h, &["secrets", "reload"], Some(gw.port));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("secrets reloaded: 1 resolved, 0 failing"),
        "{out}"
    );
    assert_hidden(&out, &[key]);

    // Without --since: the whole trail; a bad duration is a usage error.
    let (code, out, err) = run_cli(h, &args[..3], Some(gw.port));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(actor), "{out}");
    assert_hidden(&out, &[key]);
    let (code, out, err) = run_cli(
        h,
        &["secrets", "audit", "--access", "--since", "soon"],
        Some(gw.port),
    );
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("--since soon"), "{err}");
    assert_hidden(&gw.log(), &[key]);
}
