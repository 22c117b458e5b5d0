//! What starting a sandbox costs: `exec` of `true` under bubblewrap and without a
//! sandbox, one after the other, on this machine.
//!
//! ```sh
//! cargo bench -p pincer-tools --bench exec_start            # 200 runs each
//! RUNS=1000 cargo bench -p pincer-tools --bench exec_start
//! ```
//!
//! Prints p50, p99 and max of each (README goal for the sandbox: p99 under 20 ms); exits
//! non-zero if the sandbox cannot run here.

use std::time::Duration;

use pincer_tools::exec::{Request, Runner, Sandbox};

fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(200);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let workspace = std::env::temp_dir().join(format!("pincer-exec-bench-{}", std::process::id()));
    let sandboxed = Runner::new(Sandbox::Bwrap);
    if let Err(e) = rt.block_on(sandboxed.probe()) {
        eprintln!("the sandbox cannot run here: {e}");
        std::process::exit(1);
    }
    println!("exec_start: `true`, {runs} runs each, after 10 to warm up");
    for (name, runner) in [
        ("bubblewrap", sandboxed),
        ("no sandbox", Runner::new(Sandbox::None)),
    ] {
        let mut times: Vec<Duration> = Vec::with_capacity(runs);
        for n in 0..runs + 10 {
            let outcome = rt
                .block_on(runner.run(&workspace, &Request::new("true")))
                .expect("exec true");
            if n >= 10 {
                times.push(outcome.duration);
            }
        }
        times.sort();
        let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
        println!(
            "  {name:<11} p50 {:>6.2} ms   p99 {:>6.2} ms   max {:>6.2} ms",
            at(0.50).as_secs_f64() * 1e3,
            at(0.99).as_secs_f64() * 1e3,
            times[times.len() - 1].as_secs_f64() * 1e3,
        );
    }
    let _ = std::fs::remove_dir_all(&workspace);
}
