//! The tool runtime on the turn path, through the real binary and the OpenAI fake: the
//! limits every call has (`[tools]`) and loop detection.

mod common;

use common::site::Site;
use common::{Gw, TempDir, model};
use pincer_fakes::openai::{OpenAiFake, Script};

/// A gateway whose `main` agent is an OpenAI model over SSE with `echo`, and `extra`.
async fn gateway(home: &TempDir, fake: &OpenAiFake, extra: &str) -> Gw {
    let config = format!(
        "[providers.openai]\nbaseUrl = \"{}\"\napiKey = \"sk-test\"\n\n[response]\ntransport = \"sse\"\n\n[agents.main]\nmodel = \"openai/gpt-4.1\"\nskills = [\"echo\"]\n\n{extra}",
        fake.base_url()
    );
    Gw::start(home.path(), Some(&config)).await
}

#[tokio::test]
async fn the_same_call_three_times_ends_the_turn_with_a_reason() {
    let fake = OpenAiFake::start().await;
    let home = TempDir::new();
    let gw = gateway(&home, &fake, "").await;
    for _ in 0..6 {
        fake.script(Script::tool_call("echo", r#"{"text":"again"}"#));
    }
    let (status, reply) = gw.ask("main", "u", "loop please").await;
    assert_eq!(status, 200);
    assert!(
        reply.contains("the same `echo` call came 3 times"),
        "{reply}"
    );
    // Two calls ran; the third was not, and no fourth request was made (the round cap
    // is 8).
    let sent = model::requests(&fake);
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert_eq!(model::outputs(&sent[2]), vec!["again", "again"]);
}

#[tokio::test]
async fn a_long_result_reaches_the_model_cut_with_a_marker() {
    let fake = OpenAiFake::start().await;
    let home = TempDir::new();
    let gw = gateway(&home, &fake, "[tools]\nmaxResultChars = 4\n").await;
    fake.script(Script::tool_call("echo", r#"{"text":"pingpong"}"#));
    let (status, _) = gw.ask("main", "u", "use the tool").await;
    assert_eq!(status, 200);
    let sent = model::requests(&fake);
    assert_eq!(
        model::outputs(&sent[1]),
        vec!["ping\n[truncated: 4 more characters not shown (tools.maxResultChars = 4)]"]
    );
}

#[tokio::test]
async fn web_fetch_brings_a_page_as_untrusted_markdown() {
    let site = Site::start().await;
    let fake = OpenAiFake::start().await;
    let home = TempDir::new();
    let gw = gateway(
        &home,
        &fake,
        "[agents.main.tools]\nallow = [\"web_fetch\"]\n\n[tools.webFetch]\nallowPrivate = [\"127.0.0.1/32\"]\n",
    )
    .await;
    let url = format!("http://127.0.0.1:{}/notes", site.port);
    fake.script(Script::tool_call(
        "web_fetch",
        serde_json::json!({ "url": url }).to_string(),
    ));
    let (status, _) = gw.ask("main", "u", "what is new?").await;
    assert_eq!(status, 200);
    let sent = model::requests(&fake);
    let offered: Vec<&str> = sent[0]["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(offered, vec!["echo", "web_fetch"]);
    let output = model::outputs(&sent[1]).concat();
    assert!(output.contains("Title: Pincer notes"), "{output}");
    assert!(output.contains("# Release"), "{output}");
    assert!(output.contains("**gateway**"), "{output}");
    assert!(output.contains("untrusted external data"), "{output}");
    // The page's marker look-alike is defused: one block, opened and closed once.
    assert_eq!(output.matches("<<<").count(), 2, "{output}");
    assert_eq!(site.hits(), 1);
}

#[tokio::test]
async fn without_the_opt_in_loopback_is_refused_before_any_request() {
    let site = Site::start().await;
    let fake = OpenAiFake::start().await;
    let home = TempDir::new();
    let gw = gateway(
        &home,
        &fake,
        "[agents.main.tools]\nallow = [\"web_fetch\"]\n",
    )
    .await;
    let port = site.port;
    let urls = [
        format!("http://127.0.0.1:{port}/"),
        format!("http://127.0.0.2:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://[::1]:{port}/"),
        format!("http://0x7f000001:{port}/"),
    ];
    for url in &urls {
        fake.script(Script::tool_call(
            "web_fetch",
            serde_json::json!({ "url": url }).to_string(),
        ));
        let (status, _) = gw.ask("main", "u", &format!("fetch {url}")).await;
        assert_eq!(status, 200);
        let sent = model::requests(&fake);
        let output = model::outputs(sent.last().expect("a request")).concat();
        assert!(output.starts_with("error: refused"), "{url}: {output}");
        fake.clear_requests();
    }
    assert_eq!(site.hits(), 0, "no request reached the site");
}

#[tokio::test]
async fn an_allow_private_entry_that_is_not_a_range_stops_the_start() {
    let home = TempDir::new();
    std::fs::write(
        home.path().join("pincer.toml"),
        "[tools.webFetch]\nallowPrivate = [\"10.0.0.1/8\"]\n",
    )
    .expect("write config");
    let port = common::free_port().to_string();
    let (code, err) = common::start::refused(home.path(), &["--port", &port], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("allowPrivate") && err.contains("10.0.0.0/8"),
        "{err}"
    );
}
