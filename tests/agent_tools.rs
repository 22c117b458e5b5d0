//! The tool runtime on the turn path, through the real binary and the OpenAI fake: the
//! limits every call has (`[tools]`) and loop detection.

mod common;

use common::{Gw, TempDir};
use pincer_fakes::openai::{OpenAiFake, Script, Transport};
use serde_json::Value;

/// A gateway whose `main` agent is an OpenAI model over SSE with `echo`, and `extra`.
async fn gateway(home: &TempDir, fake: &OpenAiFake, extra: &str) -> Gw {
    let config = format!(
        "[providers.openai]\nbaseUrl = \"{}\"\napiKey = \"sk-test\"\n\n[response]\ntransport = \"sse\"\n\n[agents.main]\nmodel = \"openai/gpt-4.1\"\nskills = [\"echo\"]\n\n{extra}",
        fake.base_url()
    );
    Gw::start(home.path(), Some(&config)).await
}

/// The bodies of the model requests the fake got, in order.
fn bodies(fake: &OpenAiFake) -> Vec<Value> {
    fake.requests()
        .into_iter()
        .filter(|r| r.transport == Transport::Sse)
        .map(|r| r.body)
        .collect()
}

/// The `function_call_output` items of a request.
fn outputs(body: &Value) -> Vec<String> {
    body["input"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["type"] == "function_call_output")
        .filter_map(|i| i["output"].as_str().map(str::to_string))
        .collect()
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
    let sent = bodies(&fake);
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert_eq!(outputs(&sent[2]), vec!["again", "again"]);
}

#[tokio::test]
async fn a_long_result_reaches_the_model_cut_with_a_marker() {
    let fake = OpenAiFake::start().await;
    let home = TempDir::new();
    let gw = gateway(&home, &fake, "[tools]\nmaxResultChars = 4\n").await;
    fake.script(Script::tool_call("echo", r#"{"text":"pingpong"}"#));
    let (status, _) = gw.ask("main", "u", "use the tool").await;
    assert_eq!(status, 200);
    let sent = bodies(&fake);
    assert_eq!(
        outputs(&sent[1]),
        vec!["ping\n[truncated: 4 more characters not shown (tools.maxResultChars = 4)]"]
    );
}
