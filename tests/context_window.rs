//! Long conversations on the real binary: a session's context stays within its agent's
//! budget for hundreds of 2 KB turns (summaries carry what is older), the store keeps every
//! turn, and a model that refuses a request as too long gets one compaction and a retry.

mod common;

use std::time::Duration;

use common::{Gw, TempDir, answers_per_inbox, http_session, model, until, web};
use pincer_fakes::anthropic::{self, AnthropicFake};
use pincer_fakes::openai::{Knobs, OpenAiFake, Script, input_tokens};
use serde_json::Value;

/// The budget of the agents below: 75 % of (8,000 − 1,000) tokens.
const BUDGET: u64 = 5_250;

fn config(fake: &OpenAiFake, transport: &str) -> String {
    format!(
        "[providers.openai]\nbaseUrl = \"{}\"\napiKey = \"sk-test\"\n\n[response]\ntransport = \"{transport}\"\n\n[agents.main.model]\nprovider = \"openai\"\nname = \"gpt-4.1\"\ncontextWindow = 8000\nmaxOutputTokens = 1000\n\n[agents.main.context]\nsummaryModel = \"openai/summarizer\"\n",
        fake.base_url()
    )
}

/// A message of about 2 KB: words, as the fake counts tokens by words.
fn message(n: usize) -> String {
    let mut text = format!("turn {n}:");
    while text.len() < 2_000 {
        text.push_str(" lorem ipsum dolor sit amet");
    }
    text
}

/// Drives `turns` turns of one session and checks every model request of the agent
/// against the budget; returns the agent's requests and the summarizer's.
async fn long_session(transport: &str, turns: usize) -> (Vec<Value>, usize, Gw, TempDir) {
    let fake = OpenAiFake::start().await;
    for k in 0..turns {
        fake.script(Script::for_model(
            "summarizer",
            Script::text(format!(
                "Summary {k}: the user sent long numbered lorem ipsum messages."
            )),
        ));
    }
    let home = TempDir::new();
    let gw = Gw::start(home.path(), Some(&config(&fake, transport))).await;
    for n in 0..turns {
        let (status, reply) = gw.ask("main", "long", &message(n)).await;
        assert_eq!(status, 200, "turn {n}: {reply}");
        assert!(
            reply.starts_with(&format!("openai: turn {n}:")),
            "turn {n}: {reply:.60}"
        );
    }
    let requests = model::requests(&fake);
    let summaries = requests
        .iter()
        .filter(|b| b["model"] == "summarizer")
        .count();
    let agent: Vec<Value> = requests
        .into_iter()
        .filter(|b| b["model"] == "gpt-4.1")
        .collect();
    (agent, summaries, gw, home)
}

#[tokio::test]
async fn four_hundred_long_turns_stay_within_the_budget_and_the_store_keeps_them_all() {
    let (requests, summaries, gw, _home) = long_session("sse", 400).await;
    assert_eq!(requests.len(), 400);
    let sizes: Vec<u64> = requests.iter().map(input_tokens).collect();
    let biggest = sizes.iter().max().copied().unwrap_or(0);
    assert!(
        biggest <= BUDGET,
        "a request of {biggest} tokens (budget {BUDGET})"
    );
    assert!(summaries >= 10, "compacted {summaries} times");
    // After the first compaction every request carries a summary.
    let first = requests
        .iter()
        .position(|b| {
            b["instructions"]
                .as_str()
                .is_some_and(|i| i.contains("Summary "))
        })
        .expect("a request with a summary");
    assert!(first < 20, "first summary at request {first}");
    for (n, body) in requests.iter().enumerate().skip(first) {
        let instructions = body["instructions"].as_str().unwrap_or_default();
        assert!(
            instructions.contains("Summary of the earlier conversation")
                && instructions.contains("Summary "),
            "request {n} lost the summary"
        );
    }
    // Late requests are as small as early ones: turn 400 costs what turn 20 costs.
    let late = sizes[380..].iter().max().copied().unwrap_or(0);
    assert!(late <= BUDGET, "{late}");
    // The store keeps every turn, once.
    let transcript = gw.transcript(&http_session("long")).await;
    let users = transcript.iter().filter(|e| e["role"] == "user").count();
    assert_eq!(users, 400);
    assert!(answers_per_inbox(&transcript).values().all(|n| *n == 1));
    let marked = transcript
        .iter()
        .filter(|e| e.get("summary_through").is_some())
        .count();
    assert_eq!(
        marked, summaries,
        "each summary is in the transcript, marked"
    );
    // The session says where it stands.
    let (_, status) = gw.ask("main", "long", "/session status").await;
    assert!(
        status.contains("context: about") && status.contains("of 5250 tokens"),
        "{status}"
    );
    assert!(status.contains("last compacted"), "{status}");
}

#[tokio::test]
async fn over_websocket_the_chain_continues_between_compactions() {
    let (requests, summaries, _gw, _home) = long_session("websocket", 120).await;
    assert_eq!(requests.len(), 120);
    assert!(summaries >= 3, "compacted {summaries} times");
    let continued = requests
        .iter()
        .filter(|b| b.get("previous_response_id").is_some_and(|p| !p.is_null()))
        .count();
    assert!(continued > 0, "no request continued a response");
    for (n, b) in requests.iter().enumerate() {
        let size = input_tokens(b);
        assert!(size <= BUDGET, "request {n}: {size} tokens");
    }
}

#[tokio::test]
async fn a_refusal_as_too_long_compacts_and_retries_once() {
    // The fake's window is smaller than the agent believes: the session learns it the
    // hard way, compacts, and the turn is answered.
    let fake = OpenAiFake::start_with(Knobs {
        context_limit: Some(3_000),
        ..Knobs::default()
    })
    .await;
    for k in 0..20 {
        fake.script(Script::for_model(
            "summarizer",
            Script::text(format!("Summary {k}.")),
        ));
    }
    let home = TempDir::new();
    let config = format!(
        "[providers.openai]\nbaseUrl = \"{}\"\napiKey = \"sk-test\"\n\n[response]\ntransport = \"sse\"\n\n[agents.main.model]\nprovider = \"openai\"\nname = \"gpt-4.1\"\ncontextWindow = 100000\nmaxOutputTokens = 1000\n\n[agents.main.context]\nsummaryModel = \"openai/summarizer\"\n",
        fake.base_url()
    );
    let gw = Gw::start(home.path(), Some(&config)).await;
    for n in 0..12 {
        let (status, reply) = gw.ask("main", "big", &message(n)).await;
        assert_eq!(status, 200, "turn {n}: {reply}");
        assert!(
            reply.starts_with(&format!("openai: turn {n}:")),
            "turn {n}: {reply:.80}"
        );
    }
    assert!(
        fake.counters().context_exceeded >= 1,
        "the fake refused at least once"
    );
    let transcript = gw.transcript(&http_session("big")).await;
    assert!(
        transcript
            .iter()
            .any(|e| e.get("summary_through").is_some())
    );
    assert!(answers_per_inbox(&transcript).values().all(|n| *n == 1));
}

#[tokio::test]
async fn anthropics_refusal_as_too_long_compacts_and_retries_too() {
    anthropic_refusals_compact_and_retry(Duration::ZERO).await;
}

/// With a slow summary model the refused turn waits for its compaction: the end of the
/// refused turn is not a lost turn to retry at once with the same, too long context.
#[tokio::test]
async fn a_refusal_waits_for_a_slow_summary_before_its_one_retry() {
    anthropic_refusals_compact_and_retry(Duration::from_millis(400)).await;
}

async fn anthropic_refusals_compact_and_retry(summary_delay: Duration) {
    let fake = AnthropicFake::start_with(anthropic::Knobs {
        context_limit: Some(3_000),
        ..anthropic::Knobs::default()
    });
    // Summaries from a model that writes short ones (the Anthropic fake echoes).
    let summarizer = OpenAiFake::start_with(pincer_fakes::openai::Knobs {
        first_token_delay: summary_delay,
        ..Default::default()
    })
    .await;
    for k in 0..20 {
        summarizer.script(Script::text(format!("Summary {k}.")));
    }
    let home = TempDir::new();
    let config = format!(
        "[providers.anthropic]\nbaseUrl = \"{}\"\napiKey = \"sk-ant-test\"\n\n[providers.openai]\nbaseUrl = \"{}\"\napiKey = \"sk-test\"\n\n[response]\ntransport = \"sse\"\n\n[agents.main.model]\nprovider = \"anthropic\"\nname = \"claude-sonnet-4-6\"\ncontextWindow = 100000\nmaxOutputTokens = 1000\n\n[agents.main.context]\nsummaryModel = \"openai/summarizer\"\n",
        fake.base_url(),
        summarizer.base_url()
    );
    let gw = Gw::start(home.path(), Some(&config)).await;
    for n in 0..10 {
        let (status, reply) = gw.ask("main", "claude", &message(n)).await;
        assert_eq!(status, 200, "turn {n}: {reply}");
        assert!(reply.starts_with("anthropic: "), "turn {n}: {reply:.80}");
    }
    assert!(
        fake.counters().context_exceeded >= 1,
        "the fake refused at least once"
    );
    let transcript = gw.transcript(&http_session("claude")).await;
    assert!(
        transcript
            .iter()
            .any(|e| e.get("summary_through").is_some())
    );
}

#[tokio::test]
async fn a_session_killed_while_it_compacts_loses_and_doubles_nothing() {
    let fake = OpenAiFake::start().await;
    // The summarizer hangs the first time: the session is killed meanwhile.
    fake.script(Script::for_model("summarizer", Script::Hang));
    for k in 0..40 {
        fake.script(Script::for_model(
            "summarizer",
            Script::text(format!("Summary {k}.")),
        ));
    }
    let home = TempDir::new();
    let gw = Gw::start(home.path(), Some(&config(&fake, "sse"))).await;
    let key = http_session("killed");
    let mut n = 0;
    // Until the hanging summary request arrives.
    until(
        "a compaction in flight",
        &gw,
        Duration::from_secs(30),
        async || {
            let (status, _) = gw.ask("main", "killed", &message(n)).await;
            assert_eq!(status, 200);
            n += 1;
            fake.requests()
                .iter()
                .any(|r| r.body["model"] == "summarizer")
                .then_some(())
        },
    )
    .await;
    let path = gw
        .running_paths()
        .await
        .into_iter()
        .find(|p| {
            p.ends_with(&format!("session:{key}"))
                || p.contains("session:agent:main:http:http:user:killed")
        })
        .expect("the session's actor");
    assert_eq!(gw.kill(&path).await, 200);
    for _ in 0..10 {
        let (status, reply) = gw.ask("main", "killed", &message(n)).await;
        assert_eq!(status, 200, "{reply}");
        n += 1;
    }
    let transcript = gw.transcript(&key).await;
    let users = transcript.iter().filter(|e| e["role"] == "user").count();
    assert_eq!(users, n, "every message is in the transcript once");
    assert!(answers_per_inbox(&transcript).values().all(|c| *c == 1));
    assert!(
        transcript
            .iter()
            .any(|e| e.get("summary_through").is_some()),
        "a later compaction got through"
    );
}

#[tokio::test]
async fn the_web_chat_is_told_where_the_summary_begins() {
    let fake = OpenAiFake::start().await;
    for k in 0..20 {
        fake.script(Script::for_model(
            "summarizer",
            Script::text(format!("Summary {k}.")),
        ));
    }
    let home = TempDir::new();
    let gw = Gw::start(home.path(), Some(&config(&fake, "sse"))).await;
    let mut ws = web::connect(&gw).await;
    let mut notice = None;
    for n in 0..20 {
        let id = format!("m{n}");
        web::say(&mut ws, "main", "web-1", &id, &message(n)).await;
        let mut seen = Vec::new();
        web::until(&mut ws, "done", &id, &mut seen).await;
        notice = seen
            .iter()
            .find(|f| f["type"] == "notice" && f["id"] == id.as_str())
            .and_then(|f| f["text"].as_str().map(str::to_string));
        if notice.is_some() {
            break;
        }
    }
    let notice = notice.expect("a notice within 20 turns");
    assert!(
        notice.contains("were summarized") && notice.contains("transcript keeps them all"),
        "{notice}"
    );
}

#[tokio::test]
async fn with_summaries_failing_the_context_in_memory_stays_bounded() {
    let fake = OpenAiFake::start().await;
    // The summary model refuses every request (400: not retried).
    for _ in 0..40 {
        fake.script(Script::for_model(
            "summarizer",
            Script::http_error(400, None),
        ));
    }
    let home = TempDir::new();
    let gw = Gw::start(home.path(), Some(&config(&fake, "sse"))).await;
    for n in 0..30 {
        let (status, reply) = gw.ask("main", "nosum", &message(n)).await;
        assert_eq!(status, 200, "turn {n}: {reply}");
    }
    let (_, status) = gw.ask("main", "nosum", "/session status").await;
    let used: u64 = status
        .split("context: about ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{status}"));
    // 30 turns of 2 KB are about 30,000 tokens; the bound is twice the budget.
    assert!(used <= 2 * BUDGET, "{used} tokens kept: {status}");
    assert!(status.contains("never compacted"), "{status}");
    assert!(gw.log().contains("left the context unsummarized"));
    let transcript = gw.transcript(&http_session("nosum")).await;
    assert_eq!(
        transcript.iter().filter(|e| e["role"] == "user").count(),
        31
    );
}
