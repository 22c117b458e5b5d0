//! The real `pincer` binary under test: started in a fresh `$PINCER_HOME` on a free port,
//! driven over HTTP like any client, killed when the test ends.

#![allow(dead_code, unreachable_pub)]

pub mod model;
pub mod moto;
pub mod site;
pub mod start;
pub mod web;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

/// A temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let dir =
            std::env::temp_dir().join(format!("pincer-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The peer id the web chat gives session `session` of the browser with secret `client`:
/// the first 96 bits of the secret's SHA-256 in hex, a dot, the session id.
pub fn web_peer(client: &str, session: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, client.as_bytes());
    let hex: String = digest.as_ref()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{hex}.{session}")
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The binary.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_pincer")
}

/// A running gateway.
pub struct Gw {
    pub child: Option<Child>,
    pub home: PathBuf,
    pub port: u16,
    pub token: String,
    pub http: reqwest::Client,
    log: PathBuf,
}

impl Gw {
    /// Starts a gateway in `home` (config written there first if given) and waits until
    /// it is ready.
    pub async fn start(home: &Path, config: Option<&str>) -> Self {
        let gw = Self::spawn(home, config, free_port());
        gw.wait_ready(Duration::from_secs(20)).await;
        gw
    }

    /// Starts a gateway and returns at once.
    pub fn spawn(home: &Path, config: Option<&str>, port: u16) -> Self {
        Self::spawn_env(home, config, port, &[])
    }

    /// Starts a gateway with extra environment variables and returns at once.
    pub fn spawn_env(home: &Path, config: Option<&str>, port: u16, env: &[(&str, &str)]) -> Self {
        if let Some(config) = config {
            std::fs::write(home.join("pincer.toml"), config).expect("write config");
        }
        Self::spawn_args(home, &["gateway", "--port", &port.to_string()], port, env)
    }

    /// Runs `pincer ARGS` in `home` with `env` and returns at once; `port` is where the
    /// test expects it to listen (the args or the config say so, not this).
    pub fn spawn_args(home: &Path, args: &[&str], port: u16, env: &[(&str, &str)]) -> Self {
        let log = home.join(format!("gateway-{}.log", uuid::Uuid::new_v4().simple()));
        let child = Command::new(bin())
            .args(args)
            .env("PINCER_HOME", home)
            .env_remove("PINCER_CONFIG")
            .env_remove("PINCER_GATEWAY_TOKEN")
            .env_remove("PINCER_GATEWAY_PORT")
            .env("PINCER_LOG", "info,pincer=debug")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn pincer");
        Self {
            child: Some(child),
            home: home.to_path_buf(),
            port,
            token: String::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// What the gateway logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How many times the gateway has put an edited config in force: an edit of the file
    /// is in force once this has grown.
    pub fn reloads(&self) -> usize {
        self.log().matches("Config reloaded.").count()
    }

    /// Waits for `/readyz` 200 and reads the token.
    pub async fn wait_ready(&self, limit: Duration) {
        let ready = self.wait_readyz(true, limit).await;
        assert!(
            ready,
            "gateway not ready within {limit:?}; log:\n{}",
            self.log()
        );
    }

    /// Waits until `/readyz` is (or is not) 200; returns whether it got there.
    pub async fn wait_readyz(&self, want: bool, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(r) = self.http.get(self.url("/readyz")).send().await
                && (r.status() == StatusCode::OK) == want
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.home.join("gateway.token"))
            .map(|t| t.trim().to_string())
            .expect("token file")
    }

    /// `GET path` without the token, as text.
    pub async fn get_text(&self, path: &str) -> String {
        let r = self.http.get(self.url(path)).send().await.expect("request");
        r.text().await.expect("text")
    }

    /// `GET path` without the token, as JSON.
    pub async fn get_public(&self, path: &str) -> Value {
        serde_json::from_str(&self.get_text(path).await).unwrap_or(Value::Null)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(self.token())
            .send()
            .await
            .expect("request");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(self.token())
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// One non-streaming completion; `Err` on a transport error.
    pub async fn chat(
        &self,
        user: &str,
        text: &str,
        key: Option<&str>,
    ) -> Result<(StatusCode, Value), String> {
        let mut request = self
            .http
            .post(self.url("/v1/chat/completions"))
            .bearer_auth(self.token())
            .json(&json!({"model": "pincer:main", "user": user, "messages": [{"role": "user", "content": text}]}));
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let r = request.send().await.map_err(|e| e.to_string())?;
        let status = r.status();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    /// The reply text of a completion, retrying with the same key on transport errors
    /// and 503 until `limit`: what a careful client does.
    pub async fn chat_until_answered(
        &self,
        user: &str,
        text: &str,
        key: &str,
        limit: Duration,
    ) -> String {
        let deadline = Instant::now() + limit;
        loop {
            match self.chat(user, text, Some(key)).await {
                Ok((StatusCode::OK, body)) => {
                    return body["choices"][0]["message"]["content"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                }
                other => {
                    assert!(
                        Instant::now() < deadline,
                        "no answer for {key}: last {other:?}; log:\n{}",
                        self.log()
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// `user` says `text` to the default agent over the HTTP API; the reply's text (a
    /// status other than 200 fails the test).
    pub async fn say(&self, user: &str, text: &str) -> String {
        let (status, body) = self.chat(user, text, None).await.expect("chat");
        assert_eq!(status, 200, "{body}");
        body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Posts one completion for agent `agent` as `user`: (status, the reply text or the
    /// error message of a failed turn).
    pub async fn ask(&self, agent: &str, user: &str, text: &str) -> (u16, String) {
        let body = serde_json::json!({"model": format!("pincer:{agent}"), "user": user,
            "messages": [{"role": "user", "content": text}]});
        let r = self
            .http
            .post(self.url("/v1/chat/completions"))
            .bearer_auth(self.token())
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        let text = body["choices"][0]["message"]["content"]
            .as_str()
            .or_else(|| body["error"]["message"].as_str())
            .unwrap_or_default()
            .to_string();
        (status, text)
    }

    /// Kills the actor at `path`, the protected ones (`pincer`, `pincer/health`) too:
    /// chaos tests kill whatever they pick.
    pub async fn kill(&self, path: &str) -> StatusCode {
        self.post("/admin/actors/kill", json!({"path": path, "force": true}))
            .await
            .0
    }

    /// Paths of running actors.
    pub async fn running_paths(&self) -> Vec<String> {
        let (_, tree) = self.get("/admin/tree").await;
        let mut out = Vec::new();
        fn walk(n: &Value, out: &mut Vec<String>) {
            if n["state"] == "running" {
                out.push(n["path"].as_str().unwrap_or_default().to_string());
            }
            for c in n["children"].as_array().into_iter().flatten() {
                walk(c, out);
            }
        }
        for n in tree["tree"].as_array().into_iter().flatten() {
            walk(n, &mut out);
        }
        out
    }

    /// A session's transcript.
    pub async fn transcript(&self, key: &str) -> Vec<Value> {
        let (status, body) = self.get(&format!("/admin/sessions/{}", encode(key))).await;
        assert_eq!(status, StatusCode::OK, "session {key}: {body}");
        body["transcript"].as_array().cloned().unwrap_or_default()
    }

    /// Waits (up to 2 s) until a turn is running.
    pub async fn wait_for_turn(&self) -> bool {
        for _ in 0..200 {
            if self
                .running_paths()
                .await
                .iter()
                .any(|p| p.contains("/turn:"))
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// Sends a completion from a task of its own; the task yields the reply body, if any.
    pub fn spawn_chat(
        &self,
        user: &str,
        text: &str,
        key: Option<&str>,
    ) -> tokio::task::JoinHandle<Option<Value>> {
        let (url, token) = (self.url("/v1/chat/completions"), self.token());
        let body =
            json!({"model": "main", "user": user, "messages": [{"role": "user", "content": text}]});
        let key = key.map(str::to_string);
        tokio::spawn(async move {
            let mut request = reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .json(&body);
            if let Some(key) = key {
                request = request.header("Idempotency-Key", key);
            }
            request.send().await.ok()?.json::<Value>().await.ok()
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The gateway's resident memory in kB (`VmRSS`).
    pub fn rss_kb(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("/proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("VmRSS")
    }

    pub fn signal(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status();
    }

    /// Waits for the process to exit; how it ended.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut()?;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Gw {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The session key of an HTTP user on agent `main`.
pub fn http_session(user: &str) -> String {
    format!("agent:main:http:http:user:{user}")
}

pub use pincer::cli::sessions::encode;

/// Assistant entries per inbox id in a transcript: every value must be 1.
pub fn answers_per_inbox(transcript: &[Value]) -> std::collections::BTreeMap<i64, usize> {
    let mut out = std::collections::BTreeMap::new();
    for e in transcript {
        if e["role"] == "assistant"
            && let Some(id) = e["inbox_id"].as_i64()
        {
            *out.entry(id).or_default() += 1;
        }
    }
    out
}

/// Runs `pincer` with `args` in `home` to completion: (exit code, stdout, stderr).
pub fn run_cli(home: &Path, args: &[&str], port: Option<u16>) -> (i32, String, String) {
    run_cli_env(home, args, port, &[])
}

/// [`run_cli`] with extra environment variables.
pub fn run_cli_env(
    home: &Path,
    args: &[&str],
    port: Option<u16>,
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let mut cmd = Command::new(bin());
    cmd.env_remove("PINCER_URL");
    cmd.envs(env.iter().copied());
    cmd.args(args)
        .env("PINCER_HOME", home)
        .env_remove("PINCER_CONFIG")
        .env_remove("PINCER_GATEWAY_TOKEN");
    match port {
        Some(p) => cmd.env("PINCER_GATEWAY_PORT", p.to_string()),
        None => cmd.env_remove("PINCER_GATEWAY_PORT"),
    };
    let out = cmd.output().expect("run pincer");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What a probe of [`until`] gives: `Some(v)` or `Ok(v)` ends the wait with `v`; `None`
/// or `Err(seen)` polls again, `seen` being what the probe found instead (shown when the
/// wait times out).
pub trait Probe {
    type Value;
    fn ready(self) -> Result<Self::Value, Option<String>>;
}

impl<T> Probe for Option<T> {
    type Value = T;
    fn ready(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T, E: std::fmt::Display> Probe for Result<T, E> {
    type Value = T;
    fn ready(self) -> Result<T, Option<String>> {
        self.map_err(|seen| Some(seen.to_string()))
    }
}

/// Polls `probe` (every 20 ms) until it gives a value, and returns it; fails after `limit`
/// naming `what`, what the probe saw last and the gateway's log. Tests wait with this
/// rather than sleeping: a passing run waits only as long as needed.
pub async fn until<P: Probe>(
    what: &str,
    gw: &Gw,
    limit: Duration,
    mut probe: impl AsyncFnMut() -> P,
) -> P::Value {
    let deadline = Instant::now() + limit;
    loop {
        let seen = match probe().await.ready() {
            Ok(v) => return v,
            Err(seen) => seen,
        };
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}; last seen: {}; log:\n{}",
            seen.as_deref().unwrap_or("(nothing)"),
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
