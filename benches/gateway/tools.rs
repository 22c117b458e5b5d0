//! The gateway's overhead per tool round: the OpenAI fake (WebSocket, warm) scripts a call
//! of `echo`, a tool that does nothing but hand its argument back, then a short answer.
//!
//! ```sh
//! cargo build --release --bin pincer
//! cargo bench --bench gateway_tools
//! BENCH_QUICK=1 cargo bench --bench gateway_tools
//! ```
//!
//! Two figures per turn, p50 and p99 over the turns:
//! - **inside**: from the fake receiving the request that ends with the tool call to it
//!   receiving the next request: what the gateway spends on a round (read the call's
//!   events, start `tool:echo:<n>` under the turn, run it, tell the session, build and
//!   send the next request), plus the fake streaming the call's few events;
//! - **added**: a client's whole non-streamed turn with one tool round, minus a turn
//!   without one, interleaved: the round as a client sees it (the gap above plus the
//!   fake's second answer).

#[path = "common.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use pincer_fakes::openai::{OpenAiFake, Script, Transport};

fn main() {
    let bin = pincer_bin();
    let turns = if quick() { 50 } else { 400 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let fake = OpenAiFake::start().await;
        let home = TempHome::new("tools");
        home.write_config(&format!(
            "[providers.openai]\nbaseUrl = \"{}\"\napiKey = \"sk-test\"\npoolSize = 1\n\n[response]\ntransport = \"websocket\"\n\n[agents.main]\nmodel = \"openai/gpt-4.1\"\nskills = [\"echo\"]\n",
            fake.base_url()
        ));
        let mut gw = Gateway::spawn(&bin, &home.0);
        gw.wait_ready(Duration::from_millis(5), Duration::from_secs(20));
        let client = reqwest::Client::new();
        // Warm up: the socket, the session, the caches. A new user per turn: a session's
        // transcript would grow across turns and every request with it (issue 17).
        for n in 0..20 {
            fake.script(Script::tool_call("echo", r#"{"text":"warm"}"#));
            fake.script(Script::text("ok"));
            timed_chat(&client, &gw, &format!("warm-{n}"), "warm").await;
        }
        let (mut inside, mut with, mut without) = (Vec::new(), Vec::new(), Vec::new());
        for n in 0..turns {
            fake.script(Script::text("ok"));
            without.push(timed_chat(&client, &gw, &format!("plain-{n}"), "plain").await);
            // Only this turn's records (copying all of them each turn grows the driver's work).
            fake.take_requests();
            fake.script(Script::tool_call("echo", r#"{"text":"x"}"#));
            fake.script(Script::text("ok"));
            with.push(timed_chat(&client, &gw, &format!("tool-{n}"), "use echo").await);
            let sent: Vec<Instant> = fake
                .take_requests()
                .iter()
                .filter(|r| r.transport == Transport::Ws)
                .map(|r| r.at)
                .collect();
            assert_eq!(sent.len(), 2, "one tool round: two model requests");
            inside.push(sent[1] - sent[0]);
        }
        gw.stop(Duration::from_secs(5));
        let mut added: Vec<Duration> = with
            .iter()
            .zip(&without)
            .map(|(w, o)| w.saturating_sub(*o))
            .collect();
        let (inside, added) = (Summary::of(&mut inside), Summary::of(&mut added));
        let (with, without) = (Summary::of(&mut with), Summary::of(&mut without));
        println!("\ngateway_tools  (OpenAI fake over a warm WebSocket, echo as the no-op tool, {turns} turns each)");
        println!("{:<44}{:>10}{:>10}{:>10}", "", "p50", "p99", "max");
        let row = |name: &str, s: &Summary| {
            println!("{name:<44}{:>10}{:>10}{:>10}", ms(s.p50), ms(s.p99), ms(s.max));
        };
        row("tool round, model request to next request", &inside);
        row("turn with one tool round", &with);
        row("turn without", &without);
        row("added by the round (paired)", &added);
    });
}
