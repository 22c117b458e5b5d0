//! The OpenAI provider against the fake with a 50 ms handshake delay (the cost of a fresh
//! connection, which SSE pays on every call and a WebSocket once).
//!
//! ```sh
//! cargo build --release --bin pincer
//! cargo bench --bench gateway_providers            # 30 turns per transport
//! BENCH_QUICK=1 cargo bench --bench gateway_providers
//! ```
//!
//! - time to first token seen by a client streaming `/v1/chat/completions`, over a warm
//!   WebSocket and over SSE (cold: the handshake each time), turns 2.. of one session
//!   (goal: the WebSocket saves at least the handshake on every turn after the first);
//! - the gateway's own cost per streamed token: a 2,000-token reply read through the
//!   gateway, minus the same reply read straight from the fake, over the token count.

#[path = "common.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use pincer_fakes::openai::{Knobs, OpenAiFake, Script};
use serde_json::{Value, json};

const HANDSHAKE: Duration = Duration::from_millis(50);
const LONG_REPLY_TOKENS: usize = 2_000;

fn main() {
    let bin = pincer_bin();
    let turns = if quick() { 8 } else { 30 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        println!(
            "\ngateway_providers  (OpenAI fake, handshake delay {} ms, {turns} turns per transport)",
            HANDSHAKE.as_millis()
        );
        println!(
            "{:<34}{:>10}{:>10}{:>10}{:>10}",
            "time to first token", "first", "p50", "p90", "max"
        );
        let ws = ttft(&bin, "websocket", turns).await;
        let sse = ttft(&bin, "sse", turns).await;
        let row = |name: &str, s: &[Duration]| {
            let rest = Summary::of(&mut s[1..].to_vec());
            println!(
                "{name:<34}{:>10}{:>10}{:>10}{:>10}",
                ms(s[0]),
                ms(rest.p50),
                ms(rest.p90),
                ms(rest.max)
            );
        };
        row("websocket (warm, warm-up on)", &ws);
        row("sse (cold)", &sse);
        let mut saved: Vec<Duration> = ws[1..]
            .iter()
            .zip(&sse[1..])
            .map(|(w, s)| s.saturating_sub(*w))
            .collect();
        let every = ws[1..]
            .iter()
            .zip(&sse[1..])
            .filter(|(w, s)| **s >= **w + HANDSHAKE)
            .count();
        let saved = Summary::of(&mut saved);
        println!(
            "saved by the socket, turns 2..     p50 {}, min {}; turns saving >= the handshake: {every}/{}   {}",
            ms(saved.p50),
            ms(saved.min),
            turns - 1,
            verdict(saved.p50 >= HANDSHAKE && every * 10 >= (turns - 1) * 9)
        );
        overhead(&bin).await;
    });
}

/// Time to the first content delta of `turns` streamed turns of one session.
async fn ttft(bin: &std::path::Path, transport: &str, turns: usize) -> Vec<Duration> {
    let fake = OpenAiFake::start_with(Knobs {
        handshake_delay: HANDSHAKE,
        ..Knobs::default()
    })
    .await;
    let home = TempHome::new("providers");
    home.write_config(&format!(
        "[providers.openai]\nbaseUrl = \"{}\"\napiKey = \"sk-test\"\npoolSize = 1\n\n[response]\ntransport = \"{transport}\"\n[response.openaiWsWarmup]\n\"gpt-4.1\" = true\n\n[agents.main]\nmodel = \"openai/gpt-4.1\"\n",
        fake.base_url()
    ));
    let mut gw = Gateway::spawn(bin, &home.0);
    gw.wait_ready(Duration::from_millis(5), Duration::from_secs(20));
    let client = reqwest::Client::new();
    if transport == "websocket" {
        wait_metric(
            &client,
            &gw,
            "pincer_provider_sockets_ready{provider=\"openai\"} 1",
        )
        .await;
    }
    let mut out = Vec::with_capacity(turns);
    for n in 0..turns {
        let (first, _) = stream(&client, &gw, &format!("turn {n}")).await;
        out.push(first);
    }
    gw.stop(Duration::from_secs(5));
    out
}

/// Streams one completion: (time to first content, time to the end, content chunks).
async fn stream(client: &reqwest::Client, gw: &Gateway, text: &str) -> (Duration, Duration) {
    let body = json!({"model": "pincer:main", "user": "bench", "stream": true, "messages": [{"role": "user", "content": text}]});
    let started = Instant::now();
    let mut response = client
        .post(format!("{}/v1/chat/completions", gw.base()))
        .bearer_auth(gw.token())
        .json(&body)
        .send()
        .await
        .expect("request");
    let mut first = None;
    let mut buf = String::new();
    while let Some(chunk) = response.chunk().await.expect("body") {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        if first.is_none() && has_content(&buf) {
            first = Some(started.elapsed());
        }
    }
    let first = first.unwrap_or_else(|| panic!("no content in the stream: {buf}"));
    (first, started.elapsed())
}

fn has_content(sse: &str) -> bool {
    sse.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .any(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|c| !c.is_empty())
        })
}

/// The gateway's cost per streamed token, over SSE on both sides.
async fn overhead(bin: &std::path::Path) {
    let fake = OpenAiFake::start().await;
    let words: Vec<String> = (0..LONG_REPLY_TOKENS).map(|n| format!("w{n}")).collect();
    let reply = words.join(" ");
    let client = reqwest::Client::new();
    let runs = if quick() { 3 } else { 10 };
    // Straight from the fake.
    let mut direct = Vec::new();
    for _ in 0..runs {
        fake.script(Script::text(reply.clone()));
        let started = Instant::now();
        let mut response = client
            .post(format!("{}/responses", fake.base_url()))
            .bearer_auth("sk-test")
            .json(&json!({"model": "gpt-4.1", "input": "x", "stream": true}))
            .send()
            .await
            .expect("request");
        while response.chunk().await.expect("body").is_some() {}
        direct.push(started.elapsed());
    }
    let home = TempHome::new("providers-overhead");
    home.write_config(&format!(
        "[providers.openai]\nbaseUrl = \"{}\"\napiKey = \"sk-test\"\n\n[response]\ntransport = \"sse\"\n\n[agents.main]\nmodel = \"openai/gpt-4.1\"\n",
        fake.base_url()
    ));
    let mut gw = Gateway::spawn(bin, &home.0);
    gw.wait_ready(Duration::from_millis(5), Duration::from_secs(20));
    let mut through = Vec::new();
    for n in 0..runs {
        fake.script(Script::text(reply.clone()));
        let (_, all) = stream(&client, &gw, &format!("long {n}")).await;
        through.push(all);
    }
    gw.stop(Duration::from_secs(5));
    let (direct, through) = (Summary::of(&mut direct).p50, Summary::of(&mut through).p50);
    let per = |d: Duration| d.as_secs_f64() * 1e6 / LONG_REPLY_TOKENS as f64;
    let bound = if through > direct {
        per(through - direct)
    } else {
        per(through)
    };
    // Straight from the fake, each event is read by this process's one-thread runtime,
    // which can be slower than the gateway reading the same stream: the end-to-end
    // figure is then the honest upper bound of the gateway's own cost.
    println!(
        "per streamed token, {LONG_REPLY_TOKENS}-token reply  through the gateway {:.1} µs (fake + gateway + client; {} in all), straight from the fake {:.1} µs; the gateway's own cost <= {:.1} µs",
        per(through),
        ms(through),
        per(direct),
        bound,
    );
}

async fn wait_metric(client: &reqwest::Client, gw: &Gateway, line: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = client
            .get(format!("{}/metrics", gw.base()))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .unwrap_or_default();
        if text.contains(line) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no `{line}` in /metrics\n{}",
            gw.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
