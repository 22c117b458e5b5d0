//! The OpenAI and Anthropic providers on the real binary, against the faithful fakes of
//! `tests/fakes`: transports, warm-up, continuation, reconnects, retries, fallbacks, key
//! rotation, thinking payloads, chunking, a connection killed mid-stream, and `doctor`.

mod common;

use std::time::Duration;

use common::{Gw, TempDir, http_session, run_cli, until};
use pincer_fakes::anthropic::{self, AnthropicFake};
use pincer_fakes::openai::{self, OpenAiFake, Script};
use serde_json::{Value, json};

/// A config with agent `main` on `model`, OpenAI at `fake` and `extra` appended.
fn openai_config(fake: &OpenAiFake, model: &str, extra: &str) -> String {
    format!(
        "[providers.openai]\nbaseUrl = \"{}\"\napiKey = \"sk-test\"\n\n[agents.main]\nmodel = \"openai/{model}\"\n\n{extra}",
        fake.base_url()
    )
}

/// Waits until the gateway has `n` OpenAI sockets open and warmed up.
async fn sockets_ready(gw: &Gw, n: usize) {
    let want = format!("pincer_provider_sockets_ready{{provider=\"openai\"}} {n}");
    until(&want, gw, Duration::from_secs(10), async || {
        let metrics = gw.get_text("/metrics").await;
        let sockets: Vec<&str> = metrics
            .lines()
            .filter(|l| l.starts_with("pincer_provider_sockets"))
            .collect();
        if sockets.contains(&want.as_str()) {
            Ok(())
        } else {
            Err(sockets.join("; "))
        }
    })
    .await;
}

/// The OpenAI calls whose first token reached the gateway (the first-token histogram's
/// count, over its transports).
async fn first_tokens(gw: &Gw) -> u64 {
    gw.get_text("/metrics")
        .await
        .lines()
        .filter(|l| {
            l.starts_with("pincer_provider_first_token_seconds_count{")
                && l.contains("provider=\"openai\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn generating(fake: &OpenAiFake) -> Vec<openai::Recorded> {
    fake.requests()
        .into_iter()
        .filter(|r| {
            matches!(r.transport, openai::Transport::Ws | openai::Transport::Sse) && !r.warmup
        })
        .collect()
}

#[tokio::test]
async fn websocket_is_the_default_with_warm_up_and_continuation() {
    let fake = OpenAiFake::start().await;
    let home = TempDir::new();
    let extra = "[response.openaiWsWarmup]\n\"gpt-5\" = true\n\"gpt-4.1\" = false\n";
    let gw = Gw::start(home.path(), Some(&openai_config(&fake, "gpt-5", extra))).await;
    // Two sockets (the default pool), each warmed up for gpt-5 only.
    sockets_ready(&gw, 2).await;
    assert_eq!(fake.counters().warmups, 2);
    let warmups: Vec<_> = fake.requests().into_iter().filter(|r| r.warmup).collect();
    assert!(
        warmups
            .iter()
            .all(|r| r.body["model"] == "gpt-5" && r.body["generate"] == false)
    );
    assert_eq!(
        warmups[0].header("openai-beta"),
        Some("responses-websocket=v1")
    );
    assert_eq!(warmups[0].header("authorization"), Some("Bearer sk-test"));

    assert_eq!(
        gw.ask("main", "u", "hello there").await,
        (200, "openai: hello there".into())
    );
    assert_eq!(
        gw.ask("main", "u", "and again").await,
        (200, "openai: and again".into())
    );
    let c = fake.counters();
    assert_eq!(
        (c.ws_requests, c.sse_requests, c.continuations),
        (2, 0, 1),
        "{}",
        gw.log()
    );
    let sent = generating(&fake);
    assert_eq!(sent[0].body["input"].as_array().map(Vec::len), Some(1));
    assert_eq!(sent[0].body["reasoning"], json!({"effort": "low"}));
    // The second turn continues the first on the same socket with only the new message.
    assert_eq!(sent[1].connection, sent[0].connection);
    assert!(sent[1].body["previous_response_id"].is_string());
    assert_eq!(
        sent[1].body["input"],
        json!([{"role": "user", "content": "and again"}])
    );
}

#[tokio::test]
async fn auto_falls_back_to_sse_when_the_upgrade_is_refused() {
    let fake = OpenAiFake::start_with(openai::Knobs {
        refuse_websocket: Some(403),
        ..openai::Knobs::default()
    })
    .await;
    let home = TempDir::new();
    let gw = Gw::start(home.path(), Some(&openai_config(&fake, "gpt-4.1", ""))).await;
    assert_eq!(gw.ask("main", "u", "hi").await, (200, "openai: hi".into()));
    let c = fake.counters();
    assert!(c.upgrades_refused >= 1, "{c:?}");
    assert_eq!((c.sse_requests, c.ws_requests, c.sockets_opened), (1, 0, 0));
    let sent = generating(&fake);
    assert_eq!(sent[0].body["stream"], true);
    assert_eq!(
        sent[0].body.get("reasoning"),
        None,
        "gpt-4.1 is not a reasoning model"
    );
}

#[tokio::test]
async fn websocket_mode_surfaces_a_refused_upgrade_and_sse_mode_opens_no_socket() {
    let fake = OpenAiFake::start_with(openai::Knobs {
        refuse_websocket: Some(426),
        ..openai::Knobs::default()
    })
    .await;
    let home = TempDir::new();
    let config = openai_config(&fake, "gpt-4.1", "[response]\ntransport = \"websocket\"\n");
    let gw = Gw::start(home.path(), Some(&config)).await;
    let (status, text) = gw.ask("main", "u", "hi").await;
    assert_eq!(status, 502, "{text}");
    assert!(text.contains("socket") && text.contains("426"), "{text}");
    assert_eq!(fake.counters().sse_requests, 0);
    drop(gw);

    let sse = OpenAiFake::start().await;
    let home = TempDir::new();
    let config = openai_config(&sse, "gpt-4.1", "[response]\ntransport = \"sse\"\n");
    let gw = Gw::start(home.path(), Some(&config)).await;
    assert_eq!(gw.ask("main", "u", "hi").await, (200, "openai: hi".into()));
    assert_eq!(
        gw.ask("main", "u", "again").await,
        (200, "openai: again".into())
    );
    let c = sse.counters();
    assert_eq!(
        (c.sockets_opened, c.upgrades_refused, c.sse_requests),
        (0, 0, 2)
    );
    // Over SSE there is no continuation: the whole context goes every time.
    assert_eq!(
        generating(&sse)[1].body["input"].as_array().map(Vec::len),
        Some(3)
    );
}

#[tokio::test]
async fn a_pool_of_two_sockets_serves_four_turns_one_response_per_socket() {
    let fake = OpenAiFake::start_with(openai::Knobs {
        token_delay: Duration::from_millis(40),
        ..openai::Knobs::default()
    })
    .await;
    let home = TempDir::new();
    let config = openai_config(&fake, "gpt-4.1", "[response]\ntransport = \"websocket\"\n");
    let gw = Gw::start(home.path(), Some(&config)).await;
    sockets_ready(&gw, 2).await;
    let asks = (0..4).map(|n| {
        let gw = &gw;
        async move {
            gw.ask("main", &format!("user{n}"), &format!("message number {n}"))
                .await
        }
    });
    let replies = futures::future::join_all(asks).await;
    for (n, reply) in replies.iter().enumerate() {
        assert_eq!(reply, &(200, format!("openai: message number {n}")));
    }
    let c = fake.counters();
    assert_eq!(
        (c.sockets_opened, c.ws_requests, c.already_in_flight),
        (2, 4, 0),
        "{c:?}"
    );
}

#[tokio::test]
async fn sockets_come_back_after_1006_and_at_the_age_limit() {
    let fake = OpenAiFake::start().await;
    let home = TempDir::new();
    let config = openai_config(&fake, "gpt-4.1", "[response]\ntransport = \"websocket\"\n")
        .replace(
            "apiKey = \"sk-test\"",
            "apiKey = \"sk-test\"\npoolSize = 1\nsocketMaxAge = \"2s\"",
        );
    let gw = Gw::start(home.path(), Some(&config)).await;
    sockets_ready(&gw, 1).await;
    fake.drop_all_sockets();
    // Backoff starts at one second.
    until("a new socket", &gw, Duration::from_secs(10), async || {
        let c = fake.counters();
        if c.sockets_opened == 2 {
            Ok(())
        } else {
            Err(format!("{c:?}"))
        }
    })
    .await;
    sockets_ready(&gw, 1).await;
    assert_eq!(
        gw.ask("main", "u", "after the drop").await,
        (200, "openai: after the drop".into())
    );
    // socketMaxAge replaces the idle socket before the upstream's limit.
    until(
        "a replaced socket",
        &gw,
        Duration::from_secs(10),
        async || {
            let c = fake.counters();
            if c.sockets_opened >= 3 {
                Ok(())
            } else {
                Err(format!("{c:?}"))
            }
        },
    )
    .await;
    assert_eq!(fake.counters().sockets_open, 1);

    // The upstream's own limit: its error frame, then a new socket with the full context.
    fake.set(|k| k.max_connection_age = Some(Duration::from_millis(300)));
    assert_eq!(gw.ask("main", "u", "first").await.0, 200);
    // Time itself is the condition: the socket that answered is now past the upstream's
    // 300 ms, so the next call meets the limit (its error frame, or the idle expiry).
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        gw.ask("main", "u", "second").await,
        (200, "openai: second".into())
    );
    let log = gw.log();
    assert!(!log.contains("panicked"), "{log}");
}

#[tokio::test]
async fn a_lost_previous_response_is_resent_in_full_on_the_same_socket() {
    let fake = OpenAiFake::start().await;
    let home = TempDir::new();
    let config = openai_config(&fake, "gpt-4.1", "")
        .replace("apiKey = \"sk-test\"", "apiKey = \"sk-test\"\npoolSize = 1");
    let gw = Gw::start(home.path(), Some(&config)).await;
    sockets_ready(&gw, 1).await;
    assert_eq!(gw.ask("main", "u", "one").await.0, 200);
    fake.script(Script::HttpError {
        status: 400,
        code: Some("previous_response_not_found".into()),
        error_type: "invalid_request_error".into(),
        message: "Previous response with id 'x' not found.".into(),
        headers: Vec::new(),
    });
    assert_eq!(
        gw.ask("main", "u", "two").await,
        (200, "openai: two".into())
    );
    let sent = generating(&fake);
    assert_eq!(sent.len(), 3);
    assert!(sent[1].body["previous_response_id"].is_string());
    assert_eq!(sent[2].body.get("previous_response_id"), None);
    assert_eq!(sent[2].body["input"].as_array().map(Vec::len), Some(3));
    assert_eq!(sent[2].connection, sent[1].connection);
}

#[tokio::test]
async fn retry_rules_over_sse() {
    let fake = OpenAiFake::start().await;
    let home = TempDir::new();
    let config = openai_config(&fake, "gpt-4.1", "[response]\ntransport = \"sse\"\n");
    let gw = Gw::start(home.path(), Some(&config)).await;
    let cases: Vec<(Script, bool)> = vec![
        (
            Script::http_error(429, Some("rate_limit_exceeded"))
                .with_header("retry-after-ms", "50"),
            true,
        ),
        (
            Script::http_error(500, None).with_header("retry-after", "0"),
            true,
        ),
        (
            Script::http_error(529, None).with_header("retry-after", "0"),
            true,
        ),
        (
            Script::http_error(409, None).with_header("retry-after", "0"),
            true,
        ),
        (
            Script::http_error(408, None).with_header("retry-after", "0"),
            true,
        ),
        (
            Script::http_error(400, None)
                .with_header("x-should-retry", "true")
                .with_header("retry-after", "0"),
            true,
        ),
        (
            Script::http_error(503, None).with_header("x-should-retry", "false"),
            false,
        ),
        (Script::http_error(429, Some("insufficient_quota")), false),
        (Script::http_error(400, Some("invalid_value")), false),
        (Script::http_error(404, Some("model_not_found")), false),
    ];
    for (n, (script, retried)) in cases.into_iter().enumerate() {
        let label = format!("{script:?}");
        fake.script(script);
        let before = fake.counters().sse_requests;
        let (status, text) = gw.ask("main", &format!("u{n}"), "hi").await;
        let sent = fake.counters().sse_requests - before;
        if retried {
            assert_eq!((status, sent), (200, 2), "{label}: {text}");
        } else {
            assert_eq!((status, sent), (502, 1), "{label}: {text}");
        }
    }
}

#[tokio::test]
async fn an_exhausted_model_falls_back_along_the_chain() {
    let openai_fake = OpenAiFake::start().await;
    let anthropic_fake = AnthropicFake::start();
    let home = TempDir::new();
    let config = format!(
        "[providers.openai]\nbaseUrl = \"{}\"\napiKey = \"sk-test\"\n\n[providers.anthropic]\nbaseUrl = \"{}\"\napiKey = \"sk-ant-test\"\n\n[response]\ntransport = \"sse\"\n\n[agents.main.model]\nprovider = \"openai\"\nname = \"gpt-5\"\nfallbacks = [\"openai/gpt-5-mini\", \"anthropic/claude-sonnet-4-6\"]\n",
        openai_fake.base_url(),
        anthropic_fake.base_url()
    );
    let gw = Gw::start(home.path(), Some(&config)).await;
    // gpt-5: out of quota (no retry); gpt-5-mini: the server asks for an hour.
    openai_fake.script(Script::for_model(
        "gpt-5",
        Script::http_error(429, Some("insufficient_quota")),
    ));
    openai_fake.script(Script::for_model(
        "gpt-5-mini",
        Script::http_error(429, Some("rate_limit_exceeded")).with_header("retry-after", "3600"),
    ));
    assert_eq!(
        gw.ask("main", "u", "hi").await,
        (200, "anthropic: hi".into())
    );
    let models: Vec<Value> = generating(&openai_fake)
        .iter()
        .map(|r| r.body["model"].clone())
        .collect();
    assert_eq!(models, vec![json!("gpt-5"), json!("gpt-5-mini")]);
    let asked = anthropic_fake.message_requests();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].body["model"], "claude-sonnet-4-6");
    assert_eq!(asked[0].header("x-api-key"), Some("sk-ant-test"));
    assert_eq!(asked[0].header("anthropic-version"), Some("2023-06-01"));
}

#[tokio::test]
async fn keys_rotate_on_rate_limits_and_auth_errors() {
    let fake = OpenAiFake::start_with(openai::Knobs {
        valid_keys: vec!["sk-limited".into(), "sk-good".into()],
        rate_limited_keys: vec!["sk-limited".into()],
        ..openai::Knobs::default()
    })
    .await;
    let home = TempDir::new();
    let config = format!(
        "[providers.openai]\nbaseUrl = \"{}\"\napiKeys = [\"sk-revoked\", \"sk-limited\", \"sk-good\"]\n\n[response]\ntransport = \"sse\"\n\n[agents.main]\nmodel = \"openai/gpt-4.1\"\n",
        fake.base_url()
    );
    let gw = Gw::start(home.path(), Some(&config)).await;
    assert_eq!(gw.ask("main", "u", "hi").await, (200, "openai: hi".into()));
    let keys: Vec<String> = generating(&fake)
        .iter()
        .map(|r| r.header("authorization").unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        keys,
        ["Bearer sk-revoked", "Bearer sk-limited", "Bearer sk-good"]
    );
    // Both bad keys rest: the next call goes straight to the good one.
    assert_eq!(gw.ask("main", "u", "again").await.0, 200);
    let last = generating(&fake).pop().expect("a request");
    assert_eq!(last.header("authorization"), Some("Bearer sk-good"));
    assert_eq!(generating(&fake).len(), 4);
}

#[tokio::test]
async fn thinking_payloads_per_mode_and_model_family() {
    let openai_fake = OpenAiFake::start().await;
    let fake = AnthropicFake::start();
    let home = TempDir::new();
    let config = format!(
        r#"[providers.openai]
baseUrl = "{}"
apiKey = "sk-test"

[providers.anthropic]
baseUrl = "{}"
apiKey = "sk-ant-test"

[response]
transport = "sse"

[agents.main]
model = "anthropic/claude-opus-4-6"

[agents.opus-low.model]
name = "claude-opus-4-6"
thinking = {{ mode = "low" }}

[agents.opus-high.model]
name = "claude-opus-4-6"
thinking = {{ mode = "high" }}

[agents.sonnet45.model]
name = "claude-sonnet-4-5"

[agents.sonnet45-adaptive.model]
name = "claude-sonnet-4-5"
thinking = {{ mode = "adaptive" }}

[agents.shows]
model = "anthropic/claude-opus-4-6"
showThinking = true

[agents.gpt5-high.model]
name = "gpt-5"
thinking = {{ mode = "high" }}

[agents.gpt41.model]
name = "gpt-4.1"
"#,
        openai_fake.base_url(),
        fake.base_url()
    );
    let gw = Gw::start(home.path(), Some(&config)).await;
    let agents = [
        "main",
        "opus-low",
        "opus-high",
        "sonnet45",
        "sonnet45-adaptive",
    ];
    for agent in agents {
        let (status, text) = gw.ask(agent, agent, "think").await;
        assert_eq!(status, 200, "{agent}: {text}");
        assert_eq!(
            text, "anthropic: think",
            "{agent}: thinking never reaches the user"
        );
    }
    let bodies: Vec<Value> = fake
        .message_requests()
        .into_iter()
        .map(|r| r.body)
        .collect();
    let pick = |b: &Value| {
        (
            b["model"].clone(),
            b["thinking"].clone(),
            b["output_config"].clone(),
        )
    };
    assert_eq!(
        pick(&bodies[0]),
        (
            json!("claude-opus-4-6"),
            json!({"type": "adaptive"}),
            Value::Null
        )
    );
    assert_eq!(pick(&bodies[1]).2, json!({"effort": "low"}));
    assert_eq!(pick(&bodies[2]).2, json!({"effort": "high"}));
    assert_eq!(
        pick(&bodies[3]).1,
        json!({"type": "enabled", "budget_tokens": 2048})
    );
    assert_eq!(
        pick(&bodies[4]).1,
        json!({"type": "enabled", "budget_tokens": 8192})
    );
    assert!(bodies[4]["max_tokens"].as_u64() > Some(8192));

    // An agent that asks for it shows the thinking, quoted, before the answer.
    let (status, shown) = gw.ask("shows", "s", "think").await;
    assert_eq!(status, 200, "{shown}");
    assert!(
        shown.starts_with("> ") && shown.ends_with("\n\nanthropic: think"),
        "{shown}"
    );

    assert_eq!(gw.ask("gpt5-high", "g", "x").await.0, 200);
    assert_eq!(gw.ask("gpt41", "g", "x").await.0, 200);
    let sent = generating(&openai_fake);
    assert_eq!(sent[0].body["reasoning"], json!({"effort": "high"}));
    assert_eq!(sent[1].body.get("reasoning"), None);

    // The thinking is kept in the transcript of the adaptive turn.
    let transcript = gw.transcript(&http_session("main")).await;
    let reply = transcript
        .iter()
        .find(|e| e["role"] == "assistant")
        .cloned()
        .unwrap_or_default();
    assert!(
        reply["thinking"].as_str().is_some_and(|t| !t.is_empty()),
        "{transcript:?}"
    );
}

#[tokio::test]
async fn a_tool_call_round_trips_on_both_providers() {
    let openai_fake = OpenAiFake::start().await;
    let anthropic_fake = AnthropicFake::start();
    let home = TempDir::new();
    let config = format!(
        "[providers.openai]\nbaseUrl = \"{}\"\napiKey = \"sk-test\"\npoolSize = 1\n\n[providers.anthropic]\nbaseUrl = \"{}\"\napiKey = \"sk-ant-test\"\n\n[agents.main]\nmodel = \"openai/gpt-4.1\"\nskills = [\"echo\"]\n\n[agents.claude]\nmodel = \"anthropic/claude-opus-4-6\"\nskills = [\"echo\"]\n",
        openai_fake.base_url(),
        anthropic_fake.base_url()
    );
    let gw = Gw::start(home.path(), Some(&config)).await;
    sockets_ready(&gw, 1).await;
    openai_fake.script(Script::tool_call("echo", r#"{"text":"ping"}"#));
    assert_eq!(
        gw.ask("main", "u", "use the tool").await,
        (200, "tool said: ping".into())
    );
    let sent = generating(&openai_fake);
    assert_eq!(sent[0].body["tools"][0]["name"], "echo");
    assert_eq!(sent[0].body["tools"][0]["type"], "function");
    // The output goes back on the same socket as a continuation of the call.
    let items = sent[1].body["input"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["type"], "function_call_output");
    assert_eq!(items[0]["output"], "ping");

    anthropic_fake.script(anthropic::Script::tool_use("echo", json!({"text": "pong"})));
    assert_eq!(
        gw.ask("claude", "u", "use it").await,
        (200, "tool said: pong".into())
    );
    let bodies: Vec<Value> = anthropic_fake
        .message_requests()
        .into_iter()
        .map(|r| r.body)
        .collect();
    assert_eq!(bodies[0]["tools"][0]["input_schema"]["type"], "object");
    // The assistant turn goes back as given: the thinking block (with its signature)
    // before the tool call, as the API requires during tool rounds.
    let messages = bodies[1]["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let assistant = &messages[messages.len() - 2]["content"];
    assert_eq!(
        assistant[0]["type"], "thinking",
        "{assistant} {}",
        bodies[0]
    );
    assert!(
        assistant[0]["signature"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{assistant}"
    );
    assert_eq!(assistant[1]["type"], "tool_use", "{assistant}");
    let last = messages.last().cloned().unwrap_or_default();
    assert_eq!(last["content"][0]["type"], "tool_result");
    assert_eq!(last["content"][0]["content"], "pong");
}

#[tokio::test]
async fn chunks_of_n_tokens_and_the_latency_warning() {
    let fake = OpenAiFake::start_with(openai::Knobs {
        first_token_delay: Duration::from_millis(250),
        ..openai::Knobs::default()
    })
    .await;
    let home = TempDir::new();
    let config = openai_config(&fake, "gpt-4.1", "[response]\ntransport = \"sse\"\n").replace(
        "apiKey = \"sk-test\"",
        "apiKey = \"sk-test\"\nmode = \"streaming\"\nstreamOptions = { chunkSize = 3, latencyThreshold = 100 }",
    );
    let gw = Gw::start(home.path(), Some(&config)).await;
    // Seven tokens: "openai:", "one", ... "six" → chunks of 3, 3 and 1.
    let body = json!({"model": "pincer:main", "user": "s", "stream": true, "messages": [{"role": "user", "content": "one two three four five six"}]});
    let text = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(gw.token())
        .json(&body)
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    let deltas: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .filter(|d| !d.is_empty())
        .collect();
    assert_eq!(
        deltas,
        ["openai: one two ", "three four five ", "six"],
        "{text}"
    );
    let log = gw.log();
    assert!(log.contains("slow stream: first_token took"), "{log}");
    let metrics = gw.get_text("/metrics").await;
    assert!(
        metrics.contains("pincer_provider_slow_total{kind=\"first_token\",provider=\"openai\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_connection_killed_mid_stream_gives_exactly_one_reply() {
    let fake = OpenAiFake::start_with(openai::Knobs {
        token_delay: Duration::from_millis(60),
        ..openai::Knobs::default()
    })
    .await;
    let home = TempDir::new();
    let config = openai_config(&fake, "gpt-4.1", "[response]\ntransport = \"websocket\"\n");
    let gw = Gw::start(home.path(), Some(&config)).await;
    sockets_ready(&gw, 2).await;
    let words = "alpha beta gamma delta epsilon zeta eta theta iota kappa";
    let chat = {
        let gw_url = gw.url("/v1/chat/completions");
        let http = gw.http.clone();
        let token = gw.token();
        tokio::spawn(async move {
            let body = json!({"model": "pincer:main", "user": "k", "messages": [{"role": "user", "content": words}]});
            let r = http
                .post(gw_url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("request");
            let v: Value = r.json().await.unwrap_or(Value::Null);
            v["choices"][0]["message"]["content"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
    };
    until(
        "the call on the first socket",
        &gw,
        Duration::from_secs(10),
        async || {
            let c = fake.counters();
            if c.ws_requests == 1 {
                Ok(())
            } else {
                Err(format!("{c:?}"))
            }
        },
    )
    .await;
    // Mid-stream: its first token is in (ten words 60 ms apart, so most are still to come).
    until(
        "the first token",
        &gw,
        Duration::from_secs(10),
        async || {
            let n = first_tokens(&gw).await;
            if n >= 1 {
                Ok(())
            } else {
                Err(format!("{n} calls with a first token"))
            }
        },
    )
    .await;
    let path = "pincer/providers/provider:openai/conn:openai:0";
    assert_eq!(gw.kill(path).await, 200);
    let reply = chat.await.expect("chat task");
    assert_eq!(reply, format!("openai: {words}"));
    let sent = generating(&fake);
    assert_eq!(sent.len(), 2, "the turn ran again once");
    assert_ne!(
        sent[0].connection, sent[1].connection,
        "on the other socket"
    );
    let transcript = gw.transcript(&http_session("k")).await;
    let replies = transcript
        .iter()
        .filter(|e| e["role"] == "assistant")
        .count();
    assert_eq!(replies, 1, "{transcript:?}");
}

#[tokio::test]
async fn doctor_checks_each_provider_key_without_spending_tokens() {
    let openai_fake = OpenAiFake::start().await;
    let anthropic_fake = AnthropicFake::start();
    let home = TempDir::new();
    let config = format!(
        "[providers.openai]\nbaseUrl = \"{}\"\napiKeys = [\"sk-test\", \"sk-wrong\"]\n\n[providers.anthropic]\nbaseUrl = \"{}\"\napiKey = \"sk-ant-test\"\n\n[agents.main]\nmodel = \"openai/gpt-5\"\n",
        openai_fake.base_url(),
        anthropic_fake.base_url()
    );
    std::fs::write(home.path().join("pincer.toml"), config).expect("config");
    let (code, out, err) = run_cli(home.path(), &["doctor"], None);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("[ok  ] provider openai key #1") && out.contains("key accepted"),
        "{out}"
    );
    assert!(
        out.contains("[FAIL] provider openai key #2") && out.contains("key rejected: 401"),
        "{out}"
    );
    assert!(out.contains("[ok  ] provider anthropic key #1"), "{out}");
    assert!(
        !out.contains("sk-wrong") && !out.contains("sk-test"),
        "keys never printed: {out}"
    );
    let c = openai_fake.counters();
    assert_eq!((c.models_calls, c.sse_requests, c.ws_requests), (2, 0, 0));
    assert_eq!(anthropic_fake.counters().requests, 0);
    assert_eq!(anthropic_fake.counters().models_list, 1);
}

#[tokio::test]
async fn the_seed_articles_config_works_as_written() {
    let openai_fake = OpenAiFake::start().await;
    let anthropic_fake = AnthropicFake::start();
    let home = TempDir::new();
    // The two snippets of the release articles, comments included, plus where the
    // upstreams are.
    let config = format!(
        r#"{{
"providers": {{
"openai": {{
"mode": "streaming",
"streamOptions": {{
"chunkSize": 100, // 每 100 tokens 一個chunk
"latencyThreshold": 200 // 超過 200ms 延遲警告
}},
"baseUrl": "{}", "apiKey": "sk-test"
}},
"anthropic": {{ "baseUrl": "{}", "apiKey": "sk-ant-test" }}
}},
"agent": {{
"model": "claude-opus-4-6-adaptive",
"adaptiveThinking": {{
"enabled": true,
"minSteps": 1,
"maxSteps": 15,
"autoScale": true
}}
}}
}}
"#,
        openai_fake.base_url(),
        anthropic_fake.base_url()
    );
    std::fs::write(home.path().join("pincer.json5"), config).expect("config");
    let gw = Gw::spawn(home.path(), None, common::free_port());
    gw.wait_ready(Duration::from_secs(20)).await;
    let (status, text) = gw.ask("default", "seed", "adapt").await;
    assert_eq!((status, text.as_str()), (200, "anthropic: adapt"));
    let body = anthropic_fake
        .message_requests()
        .pop()
        .map(|r| r.body)
        .unwrap_or_default();
    assert_eq!(body["model"], "claude-opus-4-6");
    assert_eq!(body["thinking"], json!({"type": "adaptive"}));
}

#[tokio::test]
async fn anthropic_retries_and_stream_errors() {
    let fake = AnthropicFake::start();
    let home = TempDir::new();
    let config = format!(
        "[providers.anthropic]\nbaseUrl = \"{}\"\napiKey = \"sk-ant-test\"\n\n[agents.main]\nmodel = \"anthropic/claude-opus-4-6\"\n",
        fake.base_url()
    );
    let gw = Gw::start(home.path(), Some(&config)).await;
    fake.script(anthropic::Script::rate_limited(0));
    assert_eq!(
        gw.ask("main", "a", "one").await,
        (200, "anthropic: one".into())
    );
    assert_eq!(fake.counters().requests, 2);
    fake.script(anthropic::Script::overloaded().with_header("retry-after", "0"));
    assert_eq!(
        gw.ask("main", "b", "two").await,
        (200, "anthropic: two".into())
    );
    assert_eq!(fake.counters().requests, 4);
    fake.script(anthropic::Script::http_error(
        400,
        "invalid_request_error",
        "messages: bad",
    ));
    let (status, text) = gw.ask("main", "c", "three").await;
    assert_eq!(status, 502);
    assert!(
        text.contains("invalid_request_error: messages: bad"),
        "{text}"
    );
    assert_eq!(fake.counters().requests, 5, "a 400 is not retried");
    fake.script(anthropic::Script::StreamError {
        after_tokens: 1,
        error_type: "overloaded_error".into(),
        message: "Overloaded".into(),
    });
    let (status, text) = gw.ask("main", "d", "four").await;
    assert_eq!(status, 502);
    assert!(text.contains("overloaded_error: Overloaded"), "{text}");
}

#[tokio::test]
async fn openai_errors_mid_stream_in_both_shapes_fail_the_turn() {
    let fake = OpenAiFake::start().await;
    let home = TempDir::new();
    let config = openai_config(&fake, "gpt-4.1", "[response]\ntransport = \"sse\"\n");
    let gw = Gw::start(home.path(), Some(&config)).await;
    for nested in [true, false] {
        fake.script(Script::StreamError {
            after_tokens: 2,
            code: "server_error".into(),
            message: "The server had an error.".into(),
            nested,
        });
        let (status, text) = gw.ask("main", &format!("n{nested}"), "one two three").await;
        assert_eq!(status, 502, "nested {nested}: {text}");
        assert!(
            text.contains("server_error: The server had an error."),
            "nested {nested}: {text}"
        );
    }
    assert_eq!(
        fake.counters().sse_requests,
        2,
        "no retry after output went out"
    );
}

#[tokio::test]
async fn a_socket_closed_mid_reply_reconnects_and_the_turn_is_answered_once() {
    let fake = OpenAiFake::start().await;
    let home = TempDir::new();
    let config = openai_config(&fake, "gpt-4.1", "[response]\ntransport = \"websocket\"\n")
        .replace("apiKey = \"sk-test\"", "apiKey = \"sk-test\"\npoolSize = 1");
    let gw = Gw::start(home.path(), Some(&config)).await;
    sockets_ready(&gw, 1).await;
    for code in [1011, 1006] {
        fake.script(Script::close(2, code));
        let user = format!("c{code}");
        let (status, text) = gw.ask("main", &user, "one two three four").await;
        assert_eq!(
            (status, text.as_str()),
            (200, "openai: one two three four"),
            "close {code}"
        );
        let transcript = gw.transcript(&http_session(&user)).await;
        assert_eq!(
            transcript
                .iter()
                .filter(|e| e["role"] == "assistant")
                .count(),
            1
        );
    }
    let c = fake.counters();
    assert_eq!(
        (c.sockets_opened, c.ws_requests, c.sse_requests),
        (3, 4, 0),
        "{c:?}"
    );
}

#[tokio::test]
async fn under_auto_calls_beyond_the_sockets_go_over_sse_at_once() {
    let fake = OpenAiFake::start_with(openai::Knobs {
        token_delay: Duration::from_millis(40),
        ..openai::Knobs::default()
    })
    .await;
    let home = TempDir::new();
    let config = openai_config(&fake, "gpt-4.1", "")
        .replace("apiKey = \"sk-test\"", "apiKey = \"sk-test\"\npoolSize = 1");
    let gw = Gw::start(home.path(), Some(&config)).await;
    sockets_ready(&gw, 1).await;
    let asks = (0..3).map(|n| {
        let gw = &gw;
        async move {
            gw.ask("main", &format!("o{n}"), &format!("overflow {n}"))
                .await
        }
    });
    for (n, reply) in futures::future::join_all(asks)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(reply, (200, format!("openai: overflow {n}")));
    }
    let c = fake.counters();
    assert_eq!(
        (c.ws_requests, c.sse_requests, c.already_in_flight),
        (1, 2, 0),
        "{c:?}"
    );
}
