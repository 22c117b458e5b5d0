//! Long conversations: one session of 3,000 turns, and 64 sessions of 300, through the
//! OpenAI fake over a warm WebSocket, with a 32,000-token window (budget 20,928 tokens:
//! compaction keeps each session's context under 16,742), summaries from a scripted
//! model that writes short ones.
//!
//! ```sh
//! cargo build --release --bin pincer
//! cargo bench --bench gateway_context
//! BENCH_QUICK=1 cargo bench --bench gateway_context   # 600 turns, 16 × 100
//! ```
//!
//! Prints the latency of turns 1..=10 against the last 10, and the gateway's own part of
//! it, from the client's request to the model's (goal: late within 1.5× of early), the
//! gateway's CPU time a turn over the first 100 turns and the last 100 (what a loaded
//! machine moves least); the
//! largest upstream request in the last 100 turns; the compactions; the gateway's RSS
//! after the 64 sessions.

#[path = "common.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use pincer_fakes::openai::{OpenAiFake, Script, Transport};

fn main() {
    let bin = pincer_bin();
    let (turns, sessions, each) = if quick() {
        (600, 16, 100)
    } else {
        (3_000, 64, 300)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let fake = OpenAiFake::start().await;
        for k in 0..(turns + sessions * each) {
            fake.script(Script::for_model(
                "summarizer",
                Script::text(format!("Summary {k}: a long chat of numbered messages about the weather, trains and lunch.")),
            ));
        }
        let home = TempHome::new("context");
        home.write_config(&format!(
            "[providers.openai]\nbaseUrl = \"{}\"\napiKey = \"sk-test\"\n\n[agents.main.model]\nprovider = \"openai\"\nname = \"gpt-4.1\"\ncontextWindow = 32000\nmaxOutputTokens = 4096\n\n[agents.main.context]\nsummaryModel = \"openai/summarizer\"\n",
            fake.base_url()
        ));
        let mut gw = Gateway::spawn(&bin, &home.0);
        gw.wait_ready(Duration::from_millis(5), Duration::from_secs(20));
        let client = reqwest::Client::new();
        let idle_kb = proc_kb(gw.pid(), "VmRSS").unwrap_or(0);

        let mut times = Vec::with_capacity(turns);
        let mut inbound = Vec::with_capacity(turns);
        let mut sizes = Vec::with_capacity(turns);
        let block = 100.min(turns / 2);
        // CPU time by thread at turns 0, block, turns - block and the end.
        let mut cpu = vec![Default::default(); 4];
        let mut summaries = 0;
        for n in 0..turns {
            if n == 0 || n == block || n == turns - block {
                cpu[usize::from(n > 0) + usize::from(n > block)] = cpu_by_thread(gw.pid());
            }
            let sent = Instant::now();
            times.push(turn(&client, &gw, "long", n).await);
            // Only this turn's records: the fake keeps every request, and copying them all
            // each turn made the driver's own work grow with the session.
            let records = fake.take_requests();
            summaries += records
                .iter()
                .filter(|r| r.body["model"] == "summarizer")
                .count();
            let mine: Vec<_> = records
                .iter()
                .filter(|r| matches!(r.transport, Transport::Ws | Transport::Sse))
                .filter(|r| r.body["model"] == "gpt-4.1")
                .cloned()
                .collect();
            sizes.push(mine.iter().map(|r| r.body.to_string().len()).max().unwrap_or(0));
            // The gateway's own work before the model is asked: the session, the turn,
            // the context and the request (the fake's time is in the total only).
            if let Some(first) = mine.first() {
                inbound.push(first.at.saturating_duration_since(sent));
            }
        }
        cpu[3] = cpu_by_thread(gw.pid());
        let per_turn = |from: &BTreeMap<String, Duration>, to: &BTreeMap<String, Duration>| {
            let by: BTreeMap<String, Duration> = to
                .iter()
                .map(|(name, t)| (name.clone(), t.saturating_sub(from.get(name).copied().unwrap_or_default()) / block as u32))
                .collect();
            (by.values().sum::<Duration>(), by)
        };
        let (early_cpu, early_by) = per_turn(&cpu[0], &cpu[1]);
        let (late_cpu, late_by) = per_turn(&cpu[2], &cpu[3]);
        let early = Summary::of(&mut times[..10].to_vec());
        let late = Summary::of(&mut times[turns - 10..].to_vec());
        let late_size = sizes[turns - 100..].iter().max().copied().unwrap_or(0);
        let k = inbound.len();
        let early_in = Summary::of(&mut inbound[..20.min(k)].to_vec());
        let late_in = Summary::of(&mut inbound[k.saturating_sub(20)..].to_vec());
        let full = sizes.iter().max().copied().unwrap_or(0);
        println!("\ngateway_context  (OpenAI fake over a warm WebSocket, 32,000-token window, one session of {turns} turns)");
        println!(
            "turns 1..10   p50 {}  max {}\nturns {}..{}  p50 {}  max {}   ratio of p50 {:.2}   {}",
            ms(early.p50),
            ms(early.max),
            turns - 9,
            turns,
            ms(late.p50),
            ms(late.max),
            late.p50.as_secs_f64() / early.p50.as_secs_f64().max(1e-9),
            verdict(late.p50.as_secs_f64() <= 1.5 * early.p50.as_secs_f64())
        );
        println!(
            "request to the model sent after: turns 1..20 p50 {}, last 20 p50 {}   ratio {:.2}   {}",
            ms(early_in.p50),
            ms(late_in.p50),
            late_in.p50.as_secs_f64() / early_in.p50.as_secs_f64().max(1e-9),
            verdict(late_in.p50.as_secs_f64() <= 1.5 * early_in.p50.as_secs_f64())
        );
        println!(
            "gateway CPU a turn: turns 1..{block} {}, last {block} {}   ratio {:.2}   {}",
            ms(early_cpu),
            ms(late_cpu),
            late_cpu.as_secs_f64() / early_cpu.as_secs_f64().max(1e-9),
            verdict(late_cpu.as_secs_f64() <= 1.5 * early_cpu.as_secs_f64())
        );
        let threads: Vec<String> = late_by
            .iter()
            .filter(|(_, late)| !late.is_zero())
            .map(|(name, late)| {
                let early = early_by.get(name).copied().unwrap_or_default();
                format!("{name} {} → {}", ms(early), ms(*late))
            })
            .collect();
        println!("  by thread: {}", threads.join(", "));
        println!(
            "largest upstream request: last 100 turns {:.1} KB, whole run {:.1} KB; compactions {summaries}",
            late_size as f64 / 1024.0,
            full as f64 / 1024.0
        );

        let started = Instant::now();
        for n in 0..each {
            for s in 0..sessions {
                turn(&client, &gw, &format!("user-{s}"), n).await;
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss_kb = proc_kb(gw.pid(), "VmRSS").unwrap_or(0);
        println!(
            "{sessions} sessions × {each} turns in {:.1} s: RSS {:.1} MB (idle {:.1} MB)",
            started.elapsed().as_secs_f64(),
            rss_kb as f64 / 1024.0,
            idle_kb as f64 / 1024.0
        );
        gw.stop(Duration::from_secs(5));
    });
}

/// One turn of `user`'s session, message number `n`: how long it took.
async fn turn(client: &reqwest::Client, gw: &Gateway, user: &str, n: usize) -> Duration {
    let text = format!("message {n}: how is the weather, and which train do we take after lunch?");
    timed_chat(client, gw, user, &text).await
}
