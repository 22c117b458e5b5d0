//! Where the heap of an idle supervised actor with an armed `Timer` goes, by allocation site.
//!
//! The `memory` bench gives the totals; this one explains them. Under the `dhat` heap
//! profiler (its global allocator), a dynamic root supervisor starts N = 2,000 idle
//! children, each holding one armed `Timer` (after a warm-up child, started and
//! terminated before profiling begins). The profile is taken while they are all alive,
//! and the bytes still live at that moment are summed by the innermost frame in this
//! crate or in ractor (with the nearest caller in this crate for context), per child.
//! Backtraces make this bench slow; its numbers are not timings.
//!
//! Run: `cargo bench -p pincer-actors --bench memory_sites`
//! Quick (N = 200): `BENCH_QUICK=1 cargo bench -p pincer-actors --bench memory_sites`

use std::collections::BTreeMap;
use std::time::Duration;

use pincer_actors::{ChildSpec, Registry, SupervisorSpec};

mod common;
use common::Idle;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn spec(id: &str) -> ChildSpec {
    ChildSpec::new(id, |ctx| (Idle, Some(ctx.scope().clone())))
}

/// `0x55..: name (file:line:col)` → (`name`, `file:line`).
fn parse_frame(frame: &str) -> (&str, &str) {
    let rest = frame.split_once(": ").map_or(frame, |(_, r)| r);
    match rest.rsplit_once(" (") {
        Some((name, loc)) => {
            let loc = loc.trim_end_matches(')');
            let loc = loc.rsplit_once(':').map_or(loc, |(l, _col)| l);
            (name, loc)
        }
        None => (rest, ""),
    }
}

fn ours(name: &str) -> bool {
    let name = name.trim_start_matches('<');
    name.starts_with("pincer_actors::") || name.starts_with("ractor::")
}

fn short(name: &str) -> String {
    // Drop closure and generic noise to keep the table readable.
    let name = name.replace("::{{closure}}", "");
    let mut out = String::new();
    let mut depth = 0usize;
    for c in name.chars() {
        match c {
            '<' if !out.is_empty() => {
                depth += 1;
                if depth == 1 {
                    out.push_str("<..>");
                }
            }
            '>' if depth > 0 => depth -= 1,
            _ if depth > 0 => {}
            _ => out.push(c),
        }
    }
    out
}

fn main() {
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let n: usize = if quick { 200 } else { 2_000 };
    let file = std::env::temp_dir().join(format!("pincer-dhat-{}.json", std::process::id()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");

    let registry = Registry::new();
    let ids: Vec<String> = (0..n).map(|i| format!("s{i:05}")).collect();
    let root = rt.block_on(async {
        let root = SupervisorSpec::dynamic(n + 1)
            .start_root("mem", &registry)
            .await
            .expect("root");
        let h = root.supervisor();
        h.start_child(spec("warm")).await.expect("warm-up child");
        h.terminate_child("warm").await.expect("terminate warm-up");
        tokio::time::sleep(Duration::from_millis(200)).await;
        root
    });

    let profiler = dhat::Profiler::builder()
        .file_name(&file)
        .trim_backtraces(Some(64))
        .build();
    rt.block_on(async {
        let h = root.supervisor();
        for id in &ids {
            h.start_child(spec(id)).await.expect("start_child");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    });
    let stats = dhat::HeapStats::get();
    drop(profiler);
    rt.block_on(root.stop());

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("profile written"))
            .expect("profile parses");
    let _ = std::fs::remove_file(&file);
    let ftbl: Vec<&str> = json["ftbl"]
        .as_array()
        .expect("ftbl")
        .iter()
        .map(|f| f.as_str().unwrap_or(""))
        .collect();

    // (site, caller) -> (bytes, blocks) live at the end.
    let mut sites: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for pp in json["pps"].as_array().expect("pps") {
        let eb = pp["eb"].as_u64().unwrap_or(0);
        let ebk = pp["ebk"].as_u64().unwrap_or(0);
        if eb == 0 {
            continue;
        }
        let frames: Vec<(&str, &str)> = pp["fs"]
            .as_array()
            .expect("fs")
            .iter()
            .filter_map(|i| ftbl.get(usize::try_from(i.as_u64()?).ok()?).copied())
            .map(parse_frame)
            .collect();
        let site = frames.iter().position(|(name, _)| ours(name));
        let (site, caller) = match site {
            Some(i) => {
                let (name, loc) = frames[i];
                let caller = frames[i + 1..]
                    .iter()
                    .find(|(name, _)| {
                        name.trim_start_matches('<').starts_with("pincer_actors::")
                            && !frames[i].0.contains(&short(name))
                    })
                    .map(|(name, _)| short(name))
                    .unwrap_or_default();
                (format!("{} ({loc})", short(name)), caller)
            }
            None => (
                frames
                    .first()
                    .map(|(name, loc)| format!("{} ({loc})", short(name)))
                    .unwrap_or_else(|| "?".to_string()),
                String::new(),
            ),
        };
        let e = sites.entry((site, caller)).or_default();
        e.0 += eb;
        e.1 += ebk;
    }
    let mut rows: Vec<_> = sites.into_iter().collect();
    rows.sort_by_key(|row| std::cmp::Reverse(row.1.0));

    let per = |x: u64| x as f64 / n as f64;
    println!();
    println!(
        "live heap per supervised idle actor with an armed Timer, by allocation site \
         (N = {n}; total {:.0} B in {:.1} blocks per actor)",
        per(stats.curr_bytes as u64),
        per(stats.curr_blocks as u64)
    );
    println!();
    println!(
        "| {:>8} | {:>6} | {:<70} | {:<40} |",
        "B/actor", "blocks", "innermost pincer_actors/ractor frame", "called from (pincer_actors)"
    );
    println!("|{:->10}|{:->8}|{:-<72}|{:-<42}|", "", "", "", "");
    let mut shown = 0.0;
    for ((site, caller), (bytes, blocks)) in &rows {
        if per(*bytes) < 4.0 {
            continue;
        }
        shown += per(*bytes);
        println!(
            "| {:>8.0} | {:>6.2} | {:<70} | {:<40} |",
            per(*bytes),
            per(*blocks),
            site,
            caller
        );
    }
    println!();
    println!(
        "(sites under 4 B/actor left out: {:.0} B/actor)",
        per(stats.curr_bytes as u64) - shown
    );
}
