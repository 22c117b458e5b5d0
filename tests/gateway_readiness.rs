//! `/readyz` tells whether the agents can answer, because Kubernetes routes traffic on it:
//! an agent whose model's provider is missing, or whose keys the upstream refused, makes
//! the gateway not ready, with the agent, the model and the upstream's reason.

mod common;

use std::time::Duration;

use common::{Gw, TempDir, until};
use pincer_fakes::openai::OpenAiFake;
use serde_json::Value;

/// The failing entries of `/readyz` (local callers see them), as text.
async fn failing(gw: &Gw) -> Option<String> {
    let r = gw.http.get(gw.url("/readyz")).send().await.ok()?;
    let status = r.status().as_u16();
    let body: Value = r.json().await.ok()?;
    (status == 503).then(|| body["failing"].to_string())
}

/// The seed article's Claude snippet, with no Anthropic provider configured: its agent
/// cannot answer, and the gateway is not ready.
#[tokio::test]
async fn an_agent_whose_provider_is_missing_is_not_ready() {
    let home = TempDir::new();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/examples/seed-claude-adaptive.json"
        ),
        home.path().join("pincer.json"),
    )
    .expect("copy the seed");
    let gw = Gw::spawn(home.path(), None, common::free_port());
    let why = until(
        "the agent to be named",
        &gw,
        Duration::from_secs(20),
        async || {
            failing(&gw)
                .await
                .filter(|f| f.contains("agents/agent:default") && !f.contains("starting"))
        },
    )
    .await;
    assert!(
        why.contains("agent `default` cannot answer")
            && why.contains("anthropic/claude-opus-4-6")
            && why.contains("provider `anthropic` is not configured"),
        "{why}"
    );
    // It stays so (not a start-up moment).
    tokio::time::sleep(Duration::from_millis(500)).await; // a later look, on purpose
    assert!(failing(&gw).await.is_some(), "still not ready");
}

/// A key the upstream refuses (401) makes its agent's model unable to answer: the chat
/// says the key was rejected, readiness names the upstream's reason, and a fixed key in
/// the config brings it back.
#[tokio::test]
async fn a_refused_key_is_not_ready_with_the_upstreams_reason_until_it_is_fixed() {
    let fake = OpenAiFake::start().await;
    let home = TempDir::new();
    let config = |key: &str| {
        format!(
            "[providers.openai]\nbaseUrl = \"{}\"\napiKey = \"{key}\"\n\n[agents.main]\nmodel = \"openai/gpt-4.1\"\n\n[response]\ntransport = \"sse\"\n",
            fake.base_url()
        )
    };
    let gw = Gw::start(home.path(), Some(&config("sk-revoked"))).await;
    let (status, text) = gw.ask("main", "u", "hello").await;
    assert_eq!(status, 502, "{text}");
    assert!(text.contains("rejected") && text.contains("401"), "{text}");
    assert!(!text.contains("resting"), "{text}");
    let why = until("not ready", &gw, Duration::from_secs(10), async || {
        failing(&gw).await
    })
    .await;
    assert!(
        why.contains("agents/agent:main")
            && why.contains("the API key of `openai` was rejected")
            && why.contains("401"),
        "{why}"
    );
    let (_, tree) = gw.get("/admin/tree").await;
    assert!(tree["failing"].to_string().contains("401"), "{tree}");
    // The operator's tools say it too.
    for args in [&["gateway", "status"][..], &["doctor"][..]] {
        let (_, out, err) = common::run_cli(home.path(), args, Some(gw.port));
        assert!(
            out.contains("was rejected") && out.contains("401"),
            "pincer {args:?}:\n{out}{err}"
        );
    }

    let reloads = gw.reloads();
    std::fs::write(home.path().join("pincer.toml"), config("sk-test")).expect("fix the key");
    until("the edit", &gw, Duration::from_secs(10), async || {
        (gw.reloads() > reloads).then_some(())
    })
    .await;
    gw.wait_ready(Duration::from_secs(10)).await;
    assert_eq!(
        gw.ask("main", "u", "again").await,
        (200, "openai: again".into())
    );
}
