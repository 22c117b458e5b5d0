//! Telegram and Discord channels of the real `pincer` binary against the fakes of
//! `tests/fakes`, on the `echo` model (the default with no providers configured).
//!
//! ```sh
//! cargo build --release --bin pincer
//! cargo bench --bench gateway_channels             # 200 messages per channel
//! BENCH_QUICK=1 cargo bench --bench gateway_channels   # 40 messages, shorter windows
//! ```
//!
//! - inbound → reply latency: one account, messages sent one at a time, each from a new
//!   private chat (Telegram, long polling, `dmPolicy = "open"`) or a new guild channel
//!   (Discord), so the gateway's per-conversation pacing (Telegram: a burst of 3, then
//!   about one a second per chat) never waits; sends start at least 100 ms apart, so the
//!   per-bot buckets never wait either (Telegram: 30 a second, taken by the reply and by
//!   its draft preview, two a message; at 50 ms apart the bucket runs dry after ~60
//!   messages and replies wait up to 34 ms for a token; Discord: 50 requests a second,
//!   the reply and the typing call). The fakes have no rate limits. Latency counts from just before the
//!   fake queues the message (`send_text` / `post`) to when the fake accepted the bot's
//!   reply (`BotMessage.sent_at` / `.at`); the fakes run in this process, so both are the
//!   same clock. A few warm-up messages are not counted.
//! - 50 accounts on one gateway (25 Telegram, 25 Discord, each its own token): once every
//!   link is up (25 long polls open, 25 live gateway sockets) and 5 s of settling, the
//!   gateway's `VmRSS` and its CPU time (`utime + stime` of `/proc/<pid>/stat`) over a
//!   10 s idle window, next to a gateway with no channel accounts in the same run.

#[path = "common.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use pincer_fakes::{discord, telegram};

/// Least time between the starts of two sends.
const GAP: Duration = Duration::from_millis(100);
/// Messages sent before measuring (not counted).
const WARM_UP: usize = 5;
/// How long one reply may take before the run fails.
const REPLY_LIMIT: Duration = Duration::from_secs(10);
/// Accounts of each kind in the many-accounts run.
const ACCOUNTS: usize = 25;
const GUILD: &str = "500000000000000001";

fn main() {
    let bin = pincer_bin();
    let n = if quick() { 40 } else { 200 };
    let (settle, idle) = if quick() {
        (Duration::from_secs(2), Duration::from_secs(5))
    } else {
        (Duration::from_secs(5), Duration::from_secs(10))
    };

    println!(
        "\ngateway_channels  (echo model; {n} messages per channel, one at a time, >= {} ms apart)",
        GAP.as_millis()
    );
    println!(
        "{:<34}{:>10}{:>10}{:>10}{:>10}",
        "inbound → reply", "min", "p50", "p99", "max"
    );
    let row = |name: &str, mut samples: Vec<Duration>| {
        let s = Summary::of(&mut samples);
        println!(
            "{name:<34}{:>10}{:>10}{:>10}{:>10}",
            ms(s.min),
            ms(s.p50),
            ms(s.p99),
            ms(s.max)
        );
    };
    let (tg, tg_note) = telegram_latency(&bin, n);
    let (dc, dc_note) = discord_latency(&bin, n);
    row("telegram (new private chat each)", tg);
    row("discord (new channel each)", dc);
    println!("  {tg_note}\n  {dc_note}");
    println!("  (Telegram paces each chat: burst 3, then ~1/s; one message per chat never waits)");

    let base = idle_figures(&bin, None, settle, idle);
    let many = idle_figures(&bin, Some(ACCOUNTS), settle, idle);
    let accounts = 2 * ACCOUNTS;
    let per_account = (many.rss_kb as f64 - base.rss_kb as f64) / accounts as f64;
    println!(
        "{accounts} accounts ({ACCOUNTS} tg + {ACCOUNTS} discord): RSS {:.1} MB (baseline {:.1} MB, {per_account:+.0} kB per account), \
         idle CPU {:.2} % of a core (baseline {:.2} %)",
        many.rss_kb as f64 / 1024.0,
        base.rss_kb as f64 / 1024.0,
        many.cpu_percent(),
        base.cpu_percent(),
    );
    println!(
        "  idle window {} s after {} s settling: CPU {} ms (baseline {} ms); per-thread schedstat {:.1} ms (baseline {:.1} ms)",
        idle.as_secs(),
        settle.as_secs(),
        many.cpu_ms,
        base.cpu_ms,
        many.sched_ms,
        base.sched_ms,
    );
    println!(
        "  at the end of the window: RSS {:.1} MB (baseline {:.1} MB); threads {} -> {} (baseline {} -> {})",
        many.rss_end_kb as f64 / 1024.0,
        base.rss_end_kb as f64 / 1024.0,
        many.threads,
        many.threads_end,
        base.threads,
        base.threads_end
    );
}

/// Waits for `probe` to give a value, sleeping 1 ms between tries; panics with the log's
/// tail after `limit`.
fn until<T>(what: &str, gw: &Gateway, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            gw.log_tail()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Sleeps until `GAP` after `last`.
fn pace(last: Option<Instant>) {
    if let Some(last) = last {
        let due = last + GAP;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
    }
}

/// Latencies of `n` Telegram messages, each from its own private chat.
fn telegram_latency(bin: &Path, n: usize) -> (Vec<Duration>, String) {
    use telegram::{Chat, Incoming, TEST_TOKEN, TelegramFake, User};

    let fake = TelegramFake::start();
    let home = TempHome::new("channels-tg");
    home.write_config(&format!(
        "[channels.telegram.dm]\ndmPolicy = \"open\"\n\n[channels.telegram.accounts.tg]\ntoken = \"{TEST_TOKEN}\"\napiBase = \"{}\"\n",
        fake.base_url()
    ));
    let mut gw = Gateway::spawn(bin, &home.0);
    gw.wait_ready(Duration::from_millis(5), Duration::from_secs(30));
    until("a long poll", &gw, Duration::from_secs(20), || {
        (fake.counters().get_updates_active >= 1).then_some(())
    });

    let mut out = Vec::with_capacity(n);
    let mut last = None;
    for i in 0..WARM_UP + n {
        pace(last);
        let id = 10_000 + i as i64;
        let user = User::new(id, "User");
        let text = format!("hello {i}");
        let sent = Instant::now();
        last = Some(sent);
        fake.send_text(
            TEST_TOKEN,
            Incoming::new(&Chat::private(&user), &user, &text),
        );
        let reply = until(&format!("the reply in chat {id}"), &gw, REPLY_LIMIT, || {
            fake.messages(TEST_TOKEN, id).into_iter().next()
        });
        assert_eq!(reply.text, format!("echo: {text}"), "reply in chat {id}");
        if i >= WARM_UP {
            out.push(reply.sent_at.saturating_duration_since(sent));
        }
    }
    let c = fake.counters();
    let note = format!(
        "telegram: {} sendMessage, {} sendMessageDraft, {} editMessageText, {} sendChatAction, {} 429s for {} messages",
        c.send_message,
        c.send_message_draft,
        c.edit_message_text,
        c.send_chat_action,
        c.rate_limited,
        WARM_UP + n
    );
    gw.stop(Duration::from_secs(5));
    (out, note)
}

/// Latencies of `n` Discord guild messages, each in its own channel.
fn discord_latency(bin: &Path, n: usize) -> (Vec<Duration>, String) {
    use discord::{Author, DiscordFake, Incoming, Knobs, TEST_TOKEN};

    let fake = DiscordFake::start_with(Knobs {
        route_limit: None,
        global_limit: 0,
        ..Knobs::default()
    });
    let home = TempHome::new("channels-dc");
    home.write_config(&format!(
        "[channels.discord.accounts.dc]\ntoken = \"{TEST_TOKEN}\"\napiBase = \"{}\"\n",
        fake.api_base()
    ));
    let mut gw = Gateway::spawn(bin, &home.0);
    gw.wait_ready(Duration::from_millis(5), Duration::from_secs(30));
    until(
        "a live gateway session",
        &gw,
        Duration::from_secs(20),
        || {
            let c = fake.counters();
            (c.live_connections == 1 && c.identifies > 0).then_some(())
        },
    );

    let author = Author::new("700000000000000001", "bob");
    let mut out = Vec::with_capacity(n);
    let mut last = None;
    for i in 0..WARM_UP + n {
        pace(last);
        let channel = format!("{}", 600_000_000_000_000_000_u64 + i as u64);
        let text = format!("hello {i}");
        let sent = Instant::now();
        last = Some(sent);
        fake.post(Incoming::guild(&channel, GUILD, author.clone(), &text));
        let reply = until(
            &format!("the reply in channel {channel}"),
            &gw,
            REPLY_LIMIT,
            || fake.messages(&channel).into_iter().next(),
        );
        assert_eq!(reply.content, format!("echo: {text}"), "reply in {channel}");
        if i >= WARM_UP {
            out.push(reply.at.saturating_duration_since(sent));
        }
    }
    let c = fake.counters();
    let typing = fake
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/typing"))
        .count();
    let note = format!(
        "discord: {} messages posted, {typing} typing, {} 429s for {} messages",
        c.messages_posted,
        c.rate_limited,
        WARM_UP + n
    );
    gw.stop(Duration::from_secs(5));
    (out, note)
}

/// Idle figures of one gateway.
#[derive(Debug, Clone, Copy)]
struct Idle {
    /// `VmRSS` at the start of the idle window.
    rss_kb: u64,
    /// `VmRSS` at its end.
    rss_end_kb: u64,
    /// `utime + stime` over the window.
    cpu_ms: u64,
    /// The same from the threads' `schedstat` (ns resolution; threads that exit during the
    /// window lose their share).
    sched_ms: f64,
    window: Duration,
    threads: u64,
    threads_end: u64,
}

impl Idle {
    fn cpu_percent(&self) -> f64 {
        self.cpu_ms as f64 / self.window.as_secs_f64() / 10.0
    }
}

/// Time on CPU of each thread of a process, in ns (`/proc/<pid>/task/*/schedstat`).
fn sched_ns(pid: u32) -> BTreeMap<String, u64> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return BTreeMap::new();
    };
    tasks
        .flatten()
        .filter_map(|t| {
            let stat = std::fs::read_to_string(t.path().join("schedstat")).ok()?;
            let ns = stat.split_whitespace().next()?.parse().ok()?;
            Some((t.file_name().to_string_lossy().into_owned(), ns))
        })
        .collect()
}

/// RSS and idle CPU of a gateway with `accounts` Telegram and as many Discord accounts
/// (none: the baseline), measured once every link is up and `settle` has passed.
fn idle_figures(bin: &Path, accounts: Option<usize>, settle: Duration, window: Duration) -> Idle {
    let tg = telegram::TelegramFake::start_with(telegram::Knobs {
        accept_any_token: true,
        ..telegram::Knobs::default()
    });
    let count = accounts.unwrap_or(0);
    let tg_tokens: Vec<String> = (1..=count).map(|i| format!("{}:a", 1000 + i)).collect();
    let dc_tokens: Vec<String> = (1..=count)
        .map(|i| format!("discord-bench-token-{i:02}"))
        .collect();
    let dc = discord::DiscordFake::start_with(discord::Knobs {
        tokens: dc_tokens.clone(),
        ..discord::Knobs::default()
    });
    let mut config = String::new();
    if count > 0 {
        config.push_str("[channels.telegram.dm]\ndmPolicy = \"open\"\n\n");
    }
    for (i, token) in tg_tokens.iter().enumerate() {
        config.push_str(&format!(
            "[channels.telegram.accounts.tg{i:02}]\ntoken = \"{token}\"\napiBase = \"{}\"\n\n",
            tg.base_url()
        ));
    }
    for (i, token) in dc_tokens.iter().enumerate() {
        config.push_str(&format!(
            "[channels.discord.accounts.dc{i:02}]\ntoken = \"{token}\"\napiBase = \"{}\"\n\n",
            dc.api_base()
        ));
    }
    let home = TempHome::new("channels-idle");
    home.write_config(&config);
    let mut gw = Gateway::spawn(bin, &home.0);
    gw.wait_ready(Duration::from_millis(5), Duration::from_secs(30));
    if count > 0 {
        until("every link up", &gw, Duration::from_secs(120), || {
            let polling: BTreeSet<String> = tg
                .requests()
                .into_iter()
                .filter(|r| r.method_is("getUpdates") && r.status == 0)
                .map(|r| r.token)
                .collect();
            let identified: BTreeSet<String> = dc
                .frames()
                .into_iter()
                .filter(|f| f.op == 2)
                .filter_map(|f| f.d["token"].as_str().map(str::to_string))
                .collect();
            let c = dc.counters();
            (polling.len() == count
                && tg.counters().get_updates_active == count as u64
                && identified.len() == count
                && c.live_connections == count as u64)
                .then_some(())
        });
    }
    std::thread::sleep(settle);
    let pid = gw.pid();
    let rss_kb = proc_kb(pid, "VmRSS").expect("VmRSS");
    let threads = proc_kb(pid, "Threads").unwrap_or(0);
    let ticks = clock_ticks();
    let before = cpu_ticks(pid);
    let sched_before = sched_ns(pid);
    let started = Instant::now();
    std::thread::sleep(window);
    let after = cpu_ticks(pid);
    let sched_after = sched_ns(pid);
    let window = started.elapsed();
    let rss_end_kb = proc_kb(pid, "VmRSS").expect("VmRSS");
    let threads_end = proc_kb(pid, "Threads").unwrap_or(0);
    let sched: u64 = sched_after
        .iter()
        .map(|(tid, ns)| ns.saturating_sub(sched_before.get(tid).copied().unwrap_or(0)))
        .sum();
    if count > 0 {
        let c = dc.counters();
        assert_eq!(
            c.live_connections,
            count as u64,
            "a Discord link dropped\n{}",
            gw.log_tail()
        );
    }
    gw.stop(Duration::from_secs(5));
    Idle {
        rss_kb,
        rss_end_kb,
        cpu_ms: (after - before) * 1000 / ticks,
        sched_ms: sched as f64 / 1e6,
        window,
        threads,
        threads_end,
    }
}
