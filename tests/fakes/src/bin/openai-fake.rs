//! The OpenAI fake as a program, for tests that are not written in Rust (the web chat's
//! browser test): it prints `listening <base url>` on stdout, then serves until its stdin
//! closes (the test that spawned it ended).
//!
//! Each argument queues one scripted answer, in order: `text:<reply>` or
//! `tool:<name>:<arguments as JSON>`. With the queue empty the fake answers as it always
//! does (see `pincer_fakes::openai`).

use std::io::{BufRead, Write};

use pincer_fakes::openai::{OpenAiFake, Script};

fn script(arg: &str) -> Result<Script, String> {
    if let Some(text) = arg.strip_prefix("text:") {
        return Ok(Script::text(text));
    }
    if let Some(rest) = arg.strip_prefix("tool:") {
        let (name, arguments) = rest
            .split_once(':')
            .ok_or_else(|| format!("`{arg}`: write tool:<name>:<arguments JSON>"))?;
        serde_json::from_str::<serde_json::Value>(arguments)
            .map_err(|e| format!("`{arg}`: the arguments are not JSON: {e}"))?;
        return Ok(Script::tool_call(name, arguments));
    }
    Err(format!(
        "`{arg}`: a script is text:<reply> or tool:<name>:<arguments JSON>"
    ))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let scripts: Result<Vec<Script>, String> =
        std::env::args().skip(1).map(|a| script(&a)).collect();
    let scripts = match scripts {
        Ok(s) => s,
        Err(e) => {
            eprintln!("openai-fake: {e}");
            std::process::exit(2);
        }
    };
    let fake = OpenAiFake::start().await;
    for s in scripts {
        fake.script(s);
    }
    println!("listening {}", fake.base_url());
    let _ = std::io::stdout().flush();
    // Serve until the parent closes our stdin.
    let _ = tokio::task::spawn_blocking(|| {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            if line.is_err() {
                break;
            }
        }
    })
    .await;
}
