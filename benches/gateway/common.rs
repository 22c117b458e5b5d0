//! Helpers shared by the gateway drivers (`benches/gateway/*.rs`): find the release
//! binary, run it in a fresh `PINCER_HOME` on a free port, probe it with raw HTTP, read
//! its RSS and CPU time, drive open-loop load, and print percentiles.
//!
//! The drivers run the real `pincer` binary: `$PINCER_BIN`, else
//! `target/release/pincer` (build it first with `cargo build --release --bin pincer`).

#![allow(dead_code)] // each driver uses a different part

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// `BENCH_QUICK=1`: a short run (CI smoke).
pub(crate) fn quick() -> bool {
    std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// A number from the environment, or `default`.
pub(crate) fn env_f64(name: &str, default: f64) -> f64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .trim_end_matches("/s")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// A duration from the environment (`20`, `20s`, `500ms`, `2m`), or `default`.
pub(crate) fn env_duration(name: &str, default: Duration) -> Duration {
    let Ok(v) = std::env::var(name) else {
        return default;
    };
    let v = v.trim();
    let (number, unit) = match v.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => v.split_at(i),
        None => (v, "s"),
    };
    let n: f64 = number
        .parse()
        .unwrap_or_else(|_| panic!("{name}={v:?} is not a duration"));
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => panic!("{name}={v:?}: unit must be ms, s or m"),
    };
    Duration::from_secs_f64(secs)
}

/// The `pincer` binary: `$PINCER_BIN`, else `target/release/pincer`. Exits with a clear
/// message when it is missing; warns when a source file is newer than it.
pub(crate) fn pincer_bin() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin = match std::env::var_os("PINCER_BIN") {
        Some(p) => PathBuf::from(p),
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| root.join("target"));
            target.join("release").join("pincer")
        }
    };
    if !bin.is_file() {
        eprintln!(
            "error: no pincer binary at {}\n\
             build it first:  cargo build --release --bin pincer\n\
             (or point PINCER_BIN at one)",
            bin.display()
        );
        std::process::exit(2);
    }
    let built = mtime(&bin);
    let newest = ["src", "actors/src", "config", "Cargo.toml", "Cargo.lock"]
        .iter()
        .map(|p| newest_mtime(&root.join(p)))
        .max()
        .flatten();
    if let (Some(built), Some(newest)) = (built, newest)
        && newest > built
    {
        eprintln!(
            "warning: {} is older than the sources; run `cargo build --release --bin pincer` to measure the current code",
            bin.display()
        );
    }
    bin
}

fn mtime(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn newest_mtime(path: &Path) -> Option<SystemTime> {
    let meta = fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    fs::read_dir(path)
        .ok()?
        .flatten()
        .filter_map(|e| newest_mtime(&e.path()))
        .max()
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// A fresh, empty directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub(crate) struct TempHome(pub(crate) PathBuf);

impl TempHome {
    pub(crate) fn new(tag: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "pincer-bench-{tag}-{}-{nanos}-{}",
            std::process::id(),
            fastrand::u32(..)
        ));
        fs::create_dir_all(&dir).expect("create temp PINCER_HOME");
        Self(dir)
    }

    /// Writes `$PINCER_HOME/pincer.toml`.
    pub(crate) fn write_config(&self, toml: &str) {
        fs::write(self.0.join("pincer.toml"), toml).expect("write pincer.toml");
    }
}

impl Drop for TempHome {
    fn drop(&mut self) {
        if std::env::var_os("BENCH_KEEP_HOME").is_none() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// A running `pincer gateway`; killed (SIGKILL) on drop if still running.
#[derive(Debug)]
pub(crate) struct Gateway {
    pub(crate) child: Child,
    pub(crate) home: PathBuf,
    pub(crate) port: u16,
    /// When `spawn` was called, just before the process was created.
    pub(crate) spawned_at: Instant,
}

impl Gateway {
    /// Starts `pincer gateway --port <free>` with `PINCER_HOME=home`; stdout and stderr go
    /// to `home/gateway.log`. Other `PINCER_*` variables of this environment are not
    /// passed on.
    pub(crate) fn spawn(bin: &Path, home: &Path) -> Self {
        Self::spawn_on(bin, home, free_port())
    }

    /// [`Gateway::spawn`] on a given port (a restart on the same home and port).
    pub(crate) fn spawn_on(bin: &Path, home: &Path, port: u16) -> Self {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(home.join("gateway.log"))
            .expect("open gateway.log");
        let mut cmd = Command::new(bin);
        cmd.args(["gateway", "--port", &port.to_string()]);
        clean_env(&mut cmd, home, port);
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        let spawned_at = Instant::now();
        let child = cmd.spawn().expect("spawn pincer gateway");
        Self {
            child,
            home: home.to_path_buf(),
            port,
            spawned_at,
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Polls `GET /readyz` every `every` until it answers 200: the time since spawn.
    /// Panics (with the log's tail) if the process exits or `limit` passes first.
    pub(crate) fn wait_ready(&mut self, every: Duration, limit: Duration) -> Duration {
        loop {
            if let Ok((200, _)) = raw_get(self.port, "/readyz") {
                return self.spawned_at.elapsed();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the gateway exited ({status}) before ready\n{}",
                    self.log_tail()
                );
            }
            if self.spawned_at.elapsed() > limit {
                panic!(
                    "the gateway was not ready within {limit:?}\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(every);
        }
    }

    /// The bearer token the gateway wrote to `$PINCER_HOME/gateway.token`.
    pub(crate) fn token(&self) -> String {
        fs::read_to_string(self.home.join("gateway.token"))
            .expect("read gateway.token")
            .trim()
            .to_string()
    }

    /// The last lines of `gateway.log`.
    pub(crate) fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.home.join("gateway.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let from = lines.len().saturating_sub(30);
        format!("--- gateway.log (tail) ---\n{}", lines[from..].join("\n"))
    }

    /// SIGTERM, then SIGKILL after `grace`. Returns whether it exited on SIGTERM.
    pub(crate) fn stop(&mut self, grace: Duration) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Clears inherited `PINCER_*` variables and sets `PINCER_HOME` and the port.
pub(crate) fn clean_env(cmd: &mut Command, home: &Path, port: u16) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PINCER_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("PINCER_HOME", home)
        .env("PINCER_GATEWAY_PORT", port.to_string());
}

/// A `GET` on a new connection, with `Connection: close`: (status, body).
pub(crate) fn raw_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.set_nodelay(true)?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    let status = buf
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status line"))?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok((status, body.to_string()))
}

/// A `/proc/<pid>/status` field in kB (`VmRSS`, `VmHWM`, ...).
pub(crate) fn proc_kb(pid: u32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Clock ticks per second (`getconf CLK_TCK`, else 100).
pub(crate) fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// `utime + stime` of a process, in clock ticks.
pub(crate) fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/pid/stat");
    // Fields after the command name (which may hold spaces): state is the first,
    // utime the 12th and stime the 13th.
    let rest = &stat[stat.rfind(')').expect("comm in stat") + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| fields[i].parse::<u64>().expect("a number in stat");
    field(11) + field(12)
}

/// CPU time a process's threads have run so far, to the nanosecond (the scheduler's
/// `/proc/<pid>/task/*/schedstat`): finer than [`cpu_ticks`], and, unlike a latency,
/// barely moved by other work on the machine. Threads that already ended are not counted.
pub(crate) fn cpu_time(pid: u32) -> Duration {
    cpu_by_thread(pid).values().sum()
}

/// Raises this process's soft limit on open files to its hard limit, which must leave
/// room for the cap and the probes.
pub(crate) fn raise_own_fd_limit(cap: usize) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if let Some(hard) = limit.maximum {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(hard),
                maximum: Some(hard),
            },
        );
    }
    let soft = getrlimit(Resource::Nofile).current;
    if soft.is_some_and(|soft| soft < cap as u64 + 1024) {
        eprintln!(
            "warning: this process may open {soft:?} files, not enough for a cap of {cap} plus probes"
        );
    }
}

/// An HTTP client with a keep-alive pool, for load.
pub(crate) fn load_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(usize::MAX)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .timeout(timeout)
        .build()
        .expect("build reqwest client")
}

/// The body of a non-streaming chat completion to the `main` agent.
pub(crate) fn chat_body(user: &str, content: &str) -> serde_json::Value {
    serde_json::json!({
        "model": "pincer:main",
        "messages": [{"role": "user", "content": content}],
        "user": user,
    })
}

/// One non-streamed completion from `user` with `text`, which must answer 200: how long
/// it took, body read.
pub(crate) async fn timed_chat(
    client: &reqwest::Client,
    gw: &Gateway,
    user: &str,
    text: &str,
) -> Duration {
    let started = Instant::now();
    let response = client
        .post(format!("{}/v1/chat/completions", gw.base()))
        .bearer_auth(gw.token())
        .json(&chat_body(user, text))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let _ = response.bytes().await.expect("body");
    started.elapsed()
}

/// The session key the HTTP channel gives `user`.
pub(crate) fn session_key(user: &str) -> String {
    format!("agent:main:http:http:user:{user}")
}

/// Percent-encodes everything but unreserved characters and `:`.
pub(crate) fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The open-loop schedule: event `i` is due at `start + i / rate`, whatever happened to
/// earlier events. Sleeps until each event is due and calls `fire(i, due)`, which must
/// not block (spawn the request). Returns when `n` events have fired.
pub(crate) async fn open_loop(
    start: tokio::time::Instant,
    rate: f64,
    n: usize,
    mut fire: impl FnMut(usize, Instant),
) {
    let period = Duration::from_secs_f64(1.0 / rate);
    for i in 0..n {
        let due = start + period.mul_f64(i as f64);
        if due > tokio::time::Instant::now() {
            tokio::time::sleep_until(due).await;
        }
        fire(i, due.into_std());
    }
}

/// Percentiles (nearest rank) of a sample.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Summary {
    pub(crate) n: usize,
    pub(crate) min: Duration,
    pub(crate) p50: Duration,
    pub(crate) p90: Duration,
    pub(crate) p99: Duration,
    pub(crate) p999: Duration,
    pub(crate) max: Duration,
}

impl Summary {
    pub(crate) fn of(samples: &mut [Duration]) -> Self {
        samples.sort_unstable();
        let n = samples.len();
        if n == 0 {
            return Self::default();
        }
        let at = |q: f64| samples[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
        Self {
            n,
            min: samples[0],
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: samples[n - 1],
        }
    }

    /// (label, value) pairs for printing: p50 p90 p99 p99.9 max.
    pub(crate) fn points(&self) -> [(&'static str, Duration); 5] {
        [
            ("p50", self.p50),
            ("p90", self.p90),
            ("p99", self.p99),
            ("p99.9", self.p999),
            ("max", self.max),
        ]
    }
}

/// A duration in milliseconds, 3 significant-ish digits.
pub(crate) fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1000.0;
    if v < 10.0 {
        format!("{v:.2} ms")
    } else if v < 100.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.0} ms")
    }
}

/// A signed difference in milliseconds.
pub(crate) fn ms_diff(a: Duration, b: Duration) -> String {
    let v = (a.as_secs_f64() - b.as_secs_f64()) * 1000.0;
    format!("{v:+.2} ms")
}

/// "ok"/"MISSED" for a goal.
pub(crate) fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}

/// The outcome of one `POST /v1/chat/completions` attempt.
#[derive(Debug, Clone)]
pub(crate) enum Attempt {
    /// 200: the reply's text and its inbox id (from `chatcmpl-pincer-<id>`).
    Ok { content: String, inbox: Option<i64> },
    /// Any other status, with the error code of the body if any.
    Status(u16, String),
    /// No HTTP answer: connect, reset, timeout, unreadable body.
    Transport(String),
}

/// One chat completion attempt with `Idempotency-Key: key`.
pub(crate) async fn chat_attempt(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    key: &str,
    body: &serde_json::Value,
) -> Attempt {
    let response = client
        .post(url)
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await;
    let response = match response {
        Ok(r) => r,
        Err(e) => return Attempt::Transport(transport_kind(&e)),
    };
    let status = response.status().as_u16();
    let value: serde_json::Value = match response.json().await {
        Ok(v) => v,
        Err(e) if status == 200 => return Attempt::Transport(transport_kind(&e)),
        Err(_) => serde_json::Value::Null,
    };
    if status != 200 {
        let code = value
            .pointer("/error/code")
            .and_then(|c| c.as_str())
            .unwrap_or("-")
            .to_string();
        return Attempt::Status(status, code);
    }
    let content = value
        .pointer("/choices/0/message/content")
        .and_then(|c| c.as_str())
        .unwrap_or("<no content>")
        .to_string();
    let inbox = value
        .get("id")
        .and_then(|i| i.as_str())
        .and_then(|i| i.strip_prefix("chatcmpl-pincer-"))
        .and_then(|i| i.parse().ok());
    Attempt::Ok { content, inbox }
}

/// A short name for a transport error, for counting.
pub(crate) fn transport_kind(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connect".into()
    } else if e.is_body() || e.is_decode() {
        "body".into()
    } else if e.is_request() {
        "request (reset/closed)".into()
    } else {
        "other".into()
    }
}

/// A `GET` returning (status, latency from `due`), for probe sampling.
pub(crate) async fn probe(
    client: &reqwest::Client,
    url: &str,
    due: Instant,
) -> (Result<u16, String>, Duration) {
    let result = match client.get(url).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            match r.bytes().await {
                Ok(_) => Ok(status),
                Err(e) => Err(transport_kind(&e)),
            }
        }
        Err(e) => Err(transport_kind(&e)),
    };
    (result, due.elapsed())
}

/// Sums `restarts_total` over every node of `GET /admin/tree`.
pub(crate) fn restarts_total(tree: &serde_json::Value) -> u64 {
    fn walk(node: &serde_json::Value) -> u64 {
        node["restarts_total"].as_u64().unwrap_or(0)
            + node["children"]
                .as_array()
                .map(|c| c.iter().map(walk).sum())
                .unwrap_or(0)
    }
    tree["tree"]
        .as_array()
        .map(|roots| roots.iter().map(walk).sum())
        .unwrap_or(0)
}

/// Counts of labelled events, printed sorted.
pub(crate) fn count_line(counts: &std::collections::BTreeMap<String, usize>) -> String {
    if counts.is_empty() {
        return "none".into();
    }
    counts
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// CPU time of `pid`'s threads by thread name, from `schedstat` (the runtime's workers,
/// which share a name, add up).
#[allow(dead_code)]
pub(crate) fn cpu_by_thread(pid: u32) -> std::collections::BTreeMap<String, Duration> {
    let mut by = std::collections::BTreeMap::new();
    let tasks = fs::read_dir(format!("/proc/{pid}/task")).expect("read /proc/pid/task");
    for task in tasks.flatten() {
        let (Ok(comm), Ok(sched)) = (
            fs::read_to_string(task.path().join("comm")),
            fs::read_to_string(task.path().join("schedstat")),
        ) else {
            continue; // a thread that ended meanwhile
        };
        let ns = sched
            .split_whitespace()
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        *by.entry(comm.trim().to_string()).or_insert(Duration::ZERO) += Duration::from_nanos(ns);
    }
    by
}
