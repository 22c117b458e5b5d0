//! The OpenAI-compatible API as the official `openai` Python SDK uses it, against the real
//! binary on the OpenAI fake (tests/sdk/openai_sdk.py is the client; scripts/test installs
//! the SDK): a stateless request's history and system message reach the model after the
//! agent's prompt, `max_tokens` and `temperature` reach it, `n=2` is a 400 naming `n`, a
//! client tool makes a round trip, `/v1/responses` answers streamed and not, and `usage`
//! carries the provider's own counts, and a reply cut by `max_tokens` ends with `length`.

mod common;

use std::collections::HashMap;
use std::process::Command;

use common::{Gw, TempDir, model};
use pincer_fakes::openai::{OpenAiFake, Script, input_tokens};
use serde_json::{Value, json};

const CONFIG: &str = "[providers.openai]\nbaseUrl = \"{base}\"\napiKey = \"sk-test\"\n\n[response]\ntransport = \"sse\"\n\n[agents.main]\nsystemPrompt = \"You are Pincer.\"\n\n[agents.main.model]\nprovider = \"openai\"\nname = \"gpt-4.1\"\n";

/// The SDK's checks by name; fails loudly when Python or the SDK is missing.
fn run_sdk(gw: &Gw) -> HashMap<String, Value> {
    let output = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/sdk/openai_sdk.py"
        ))
        .arg(gw.url(""))
        .arg(gw.token())
        .output()
        .expect("python3 runs (scripts/test installs the openai SDK)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the SDK script failed:\n{stdout}\n{}\ngateway log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        gw.log()
    );
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| Some((v["check"].as_str()?.to_string(), v)))
        .collect()
}

/// The fake's output-token count of a reply: one per word.
fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

#[tokio::test(flavor = "multi_thread")]
async fn the_official_sdk_gets_what_it_asks_for() {
    let fake = OpenAiFake::start().await;
    // The first turn answers by its default; the client tool's turn is scripted.
    fake.script(Script::for_model(
        "gpt-4.1",
        Script::text("Tu t'appelles Ada."),
    ));
    fake.script(Script::for_model(
        "gpt-4.1",
        Script::tool_call("get_weather", r#"{"city":"Paris"}"#),
    ));
    let home = TempDir::new();
    let config = CONFIG.replace("{base}", &fake.base_url());
    let gw = Gw::start(home.path(), Some(&config)).await;
    let checks = run_sdk(&gw);
    let requests = model::requests(&fake);

    // 1. Stateless: the whole history, the system message after the agent's prompt,
    // the options, and usage as the fake counted it.
    let first = &requests[0];
    assert_eq!(
        first["instructions"],
        json!("You are Pincer.\n\nAnswer in French.")
    );
    let input: Vec<(&str, &str)> = first["input"]
        .as_array()
        .expect("input items")
        .iter()
        .map(|i| {
            (
                i["role"].as_str().unwrap_or(""),
                i["content"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        input,
        [
            ("user", "my name is Ada"),
            ("assistant", "hello Ada"),
            ("user", "what is my name?")
        ]
    );
    assert_eq!(first["max_output_tokens"], json!(50));
    assert_eq!(first["temperature"], json!(0.3));
    let stateless = &checks["stateless"];
    assert_eq!(stateless["content"], json!("Tu t'appelles Ada."));
    assert_eq!(
        stateless["usage"]["prompt_tokens"],
        json!(input_tokens(first))
    );
    assert_eq!(
        stateless["usage"]["completion_tokens"],
        json!(words("Tu t'appelles Ada."))
    );

    // 2. n=2.
    assert_eq!(checks["n2"]["status"], json!(400), "{:?}", checks["n2"]);
    assert_eq!(checks["n2"]["param"], json!("n"));

    // 3. The client tool: offered next to the agent's, called, its result sent back.
    let offered = requests[1]["tools"].as_array().expect("tools offered");
    assert!(
        offered.iter().any(|t| t["name"] == "get_weather"),
        "{offered:?}"
    );
    assert_eq!(checks["tool_call"]["finish"], json!("tool_calls"));
    assert_eq!(checks["tool_call"]["name"], json!("get_weather"));
    assert_eq!(
        checks["tool_call"]["arguments"],
        json!(r#"{"city":"Paris"}"#)
    );
    assert_eq!(model::outputs(&requests[2]), ["sunny and 21 C"]);
    assert_eq!(checks["tool_result"]["finish"], json!("stop"));
    assert_eq!(
        checks["tool_result"]["content"],
        json!("tool said: sunny and 21 C")
    );

    // 4. Streamed chat, with the provider's counts in the usage chunk.
    assert_eq!(checks["stream"]["content"], json!("openai: stream me"));
    assert_eq!(
        checks["stream"]["usage"]["prompt_tokens"],
        json!(input_tokens(&requests[3]))
    );
    assert_eq!(checks["stream"]["usage"]["completion_tokens"], json!(3));

    // 5. Responses, not streamed and streamed.
    assert_eq!(
        checks["responses"]["text"],
        json!("openai: hello responses")
    );
    assert_eq!(checks["responses"]["status"], json!("completed"));
    assert_eq!(requests[4]["max_output_tokens"], json!(40));
    assert_eq!(
        requests[4]["instructions"],
        json!("You are Pincer.\n\nBe brief.")
    );
    assert_eq!(
        checks["responses"]["usage"]["input_tokens"],
        json!(input_tokens(&requests[4]))
    );
    let types = &checks["responses_stream"]["types"];
    assert_eq!(types[0], json!("response.created"));
    assert_eq!(
        types.as_array().and_then(|t| t.last()),
        Some(&json!("response.completed"))
    );
    assert_eq!(
        checks["responses_stream"]["text"],
        json!("openai: stream responses")
    );

    // 6. Models.
    assert_eq!(checks["model"]["id"], json!("pincer:main"));
    assert_eq!(checks["model"]["missing"], json!(404));
    // 7. Cut by the output cap (the fake ends `response.incomplete`, as the API does).
    assert_eq!(
        checks["cut"]["finish"],
        json!("length"),
        "{:?}",
        checks["cut"]
    );
    assert_eq!(checks["cut"]["content"], json!("openai: say "));
    assert_eq!(requests[6]["max_output_tokens"], json!(2));
    assert_eq!(checks["cut_responses"]["status"], json!("incomplete"));
    assert_eq!(
        checks["cut_responses"]["reason"],
        json!("max_output_tokens")
    );
    assert_eq!(checks["cut_responses"]["text"], json!("openai: say "));
    assert_eq!(requests.len(), 8, "one model request per turn");
}

/// The options Anthropic's Messages API has reach it under its names; what it lacks is a
/// 400 naming the field before any call; a reply cut at `max_tokens` ends with `length`.
#[tokio::test(flavor = "multi_thread")]
async fn anthropic_gets_the_options_its_api_has() {
    let fake = pincer_fakes::anthropic::AnthropicFake::start();
    let home = TempDir::new();
    let config = format!(
        "[providers.anthropic]\nbaseUrl = \"{}\"\napiKey = \"sk-ant-test\"\n\n[agents.main.model]\nprovider = \"anthropic\"\nname = \"claude-sonnet-4-6\"\n",
        fake.base_url()
    );
    let gw = Gw::start(home.path(), Some(&config)).await;
    let ask = |extra: Value| {
        let mut body = json!({
            "model": "pincer:main",
            "messages": [{"role": "user", "content": "tell me about the weather today"}],
        });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        body
    };
    let (status, reply) = gw
        .post(
            "/v1/chat/completions",
            ask(json!({"max_tokens": 3, "temperature": 0.2, "top_p": 0.9, "stop": ["END"]})),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    let sent = fake.message_requests();
    assert_eq!(sent.len(), 1);
    let body = &sent[0].body;
    assert_eq!(body["max_tokens"], json!(3));
    assert_eq!(body["temperature"], json!(0.2));
    assert_eq!(body["top_p"], json!(0.9));
    assert_eq!(body["stop_sequences"], json!(["END"]));
    assert_eq!(reply["choices"][0]["finish_reason"], json!("length"));
    assert_eq!(
        reply["choices"][0]["message"]["content"],
        json!("anthropic: tell me ")
    );
    // Messages has no seed and no output format: refused by name, nothing sent.
    for (field, value) in [
        ("seed", json!(7)),
        ("response_format", json!({"type": "json_object"})),
    ] {
        let (status, reply) = gw
            .post("/v1/chat/completions", ask(json!({ field: value })))
            .await;
        assert_eq!(status, 400, "{field}: {reply}");
        assert_eq!(reply["error"]["param"], json!(field), "{reply}");
    }
    assert_eq!(fake.message_requests().len(), 1);
}

/// A retry with the same Idempotency-Key gets the whole first answer again (its calls of
/// the caller's tools, `finish_reason` and usage), never a second model call.
#[tokio::test(flavor = "multi_thread")]
async fn a_retry_gets_the_calls_and_usage_of_the_first_answer() {
    let fake = OpenAiFake::start().await;
    fake.script(Script::tool_call("get_weather", r#"{"city":"Oslo"}"#));
    let home = TempDir::new();
    let gw = Gw::start(
        home.path(),
        Some(&CONFIG.replace("{base}", &fake.base_url())),
    )
    .await;
    let body = json!({
        "model": "pincer:main",
        "user": "ada",
        "messages": [{"role": "user", "content": "weather in Oslo?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
    });
    let ask = || async {
        let r = gw
            .http
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(gw.token())
            .header("Idempotency-Key", "weather-1")
            .json(&body)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.expect("json")
    };
    let first = ask().await;
    let again = ask().await;
    assert_eq!(first["choices"][0]["finish_reason"], json!("tool_calls"));
    let call = &first["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["arguments"], json!(r#"{"city":"Oslo"}"#));
    assert!(
        first["usage"]["prompt_tokens"]
            .as_u64()
            .is_some_and(|n| n > 0)
    );
    for field in ["finish_reason", "message"] {
        assert_eq!(
            again["choices"][0][field], first["choices"][0][field],
            "{field}"
        );
    }
    assert_eq!(again["usage"], first["usage"]);
    assert_eq!(model::requests(&fake).len(), 1, "one model call");
}
