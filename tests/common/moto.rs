//! A real local AWS Secrets Manager: `python3 -m moto.server` on a free loopback port,
//! killed when dropped. `scripts/test` installs `moto[server]` when it is missing.
//!
//! Set-up calls go over a plain blocking HTTP/1.1 exchange. Moto does not check
//! signatures, but it picks the service from the `Authorization` header's credential
//! scope, so each call carries a well-formed SigV4 header with a fixed dummy signature.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A running moto server.
pub struct Moto {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    log: PathBuf,
}

/// Well-formed, never checked.
const DUMMY_AUTHORIZATION: &str = "AWS4-HMAC-SHA256 \
    Credential=AKIDEXAMPLE/20150830/us-east-1/secretsmanager/aws4_request, \
    SignedHeaders=content-type;host;x-amz-date;x-amz-target, \
    Signature=0000000000000000000000000000000000000000000000000000000000000000";

impl Moto {
    /// Starts moto and waits (up to 30 s) until it answers.
    pub fn start() -> Self {
        let port = super::free_port();
        let log =
            std::env::temp_dir().join(format!("pincer-moto-{}.log", uuid::Uuid::new_v4().simple()));
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-p", &port.to_string(), "-H", "127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("moto log file"))
            .spawn()
            .expect("spawn python3 -m moto.server (install with: python3 -m pip install 'moto[server]')");
        let mut moto = Self {
            child: Some(child),
            port,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(child) = moto.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                moto.child = None;
                panic!(
                    "moto exited at start ({status}); is `moto[server]` installed? log:\n{}",
                    moto.log()
                );
            }
            if moto.exchange("GET", "/moto-api/", None, &[]).is_ok() {
                return moto;
            }
            assert!(
                Instant::now() < deadline,
                "moto did not answer within 30 s; log:\n{}",
                moto.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What moto logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Creates secret `name` holding `value`; its `VersionId`.
    pub fn create_secret(&self, name: &str, value: &str) -> String {
        self.call(
            "CreateSecret",
            json!({ "Name": name, "SecretString": value }),
        )
    }

    /// Creates secret `name` holding binary `base64` only (no `SecretString`).
    pub fn create_binary_secret(&self, name: &str, base64: &str) -> String {
        self.call(
            "CreateSecret",
            json!({ "Name": name, "SecretBinary": base64 }),
        )
    }

    /// Stores `value` as the new current version of `name`; its `VersionId`.
    pub fn put_secret(&self, name: &str, value: &str) -> String {
        self.call(
            "PutSecretValue",
            json!({ "SecretId": name, "SecretString": value }),
        )
    }

    /// The current `SecretString` of `name` and its `VersionId`.
    pub fn get_secret(&self, name: &str) -> (String, String) {
        let answer = self.call_json("GetSecretValue", json!({ "SecretId": name }));
        (
            answer["SecretString"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            answer["VersionId"].as_str().unwrap_or_default().to_string(),
        )
    }

    /// Kills the server now (requests to it then fail to connect).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn call(&self, action: &str, body: Value) -> String {
        let answer = self.call_json(action, body);
        answer["VersionId"]
            .as_str()
            .unwrap_or_else(|| panic!("moto {action}: no VersionId in {answer}"))
            .to_string()
    }

    fn call_json(&self, action: &str, body: Value) -> Value {
        let target = format!("secretsmanager.{action}");
        let headers = [
            ("Content-Type", "application/x-amz-json-1.1"),
            ("X-Amz-Target", target.as_str()),
            ("X-Amz-Date", "20150830T123600Z"),
            ("Authorization", DUMMY_AUTHORIZATION),
        ];
        let (status, answer) = self
            .exchange("POST", "/", Some(&body.to_string()), &headers)
            .unwrap_or_else(|e| panic!("moto {action}: {e}; log:\n{}", self.log()));
        assert_eq!(status, 200, "moto {action}: {status} {answer}");
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("moto {action}: {e} in {answer}"))
    }

    /// One HTTP/1.1 exchange with `Connection: close`: (status, body).
    fn exchange(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> std::io::Result<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let body = body.unwrap_or("");
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\
             Content-Length: {}\r\n",
            self.port,
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        stream.write_all(request.as_bytes())?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer)?;
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let bad =
            |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
        let (head, rest) = answer
            .split_once("\r\n\r\n")
            .ok_or_else(|| bad("no end of headers"))?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("no status"))?;
        let chunked = head.lines().any(|l| {
            l.to_ascii_lowercase()
                .replace(' ', "")
                .starts_with("transfer-encoding:chunked")
        });
        let body = if chunked {
            dechunk(rest)
        } else {
            rest.to_string()
        };
        Ok((status, body))
    }
}

/// A chunked body, joined.
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size =
            usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        let (Some(chunk), Some(next)) = (after.get(..size), after.get(size..)) else {
            break;
        };
        if size == 0 {
            break;
        }
        out.push_str(chunk);
        rest = next.trim_start_matches("\r\n");
    }
    out
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(&self.log);
    }
}
