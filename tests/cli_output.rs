//! What the CLI prints: completions, the version, sessions with times and by prefix, and
//! a reader that goes away early.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{Gw, TempDir, bin, run_cli};

#[test]
fn completions_for_each_shell_and_a_version_with_commit_and_date() {
    let home = TempDir::new();
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef pincer"),
        ("fish", "complete -c pincer"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let (code, out, err) = run_cli(home.path(), &["completions", shell], None);
        assert_eq!(code, 0, "{shell}: {err}");
        assert!(out.contains(marker), "{shell}: {out}");
        assert!(
            out.contains("sessions") && out.contains("doctor"),
            "{shell}"
        );
    }
    let (code, _, err) = run_cli(home.path(), &["completions", "tcsh"], None);
    assert_eq!(code, 2);
    assert!(err.contains("invalid value 'tcsh'"), "{err}");

    let (code, out, _) = run_cli(home.path(), &["--version"], None);
    assert_eq!(code, 0);
    // pincer 0.1.0 (commit 0123456789ab, built 2026-12-06)
    let line = out.trim();
    let (_, rest) = line.split_once(" (commit ").expect("commit");
    let (commit, rest) = rest.split_once(", built ").expect("date");
    assert!(
        commit == "unknown" || commit.chars().all(|c| c.is_ascii_hexdigit()),
        "{line}"
    );
    let date = rest.strip_suffix(')').expect("closing");
    assert!(
        date.len() == 10 && date.as_bytes()[4] == b'-' && date.as_bytes()[7] == b'-',
        "{line}"
    );
}

#[tokio::test]
async fn sessions_show_takes_a_unique_prefix_and_a_closed_pipe_is_no_panic() {
    let home = TempDir::new();
    let gw = Gw::start(home.path(), None).await;
    // A reply larger than a pipe's buffer, so the reader is gone while it is written.
    let long = "pipe ".repeat(40_000);
    gw.chat("pipe-long", &long, None).await.expect("chat");
    gw.chat("pipe-short", "short", None).await.expect("chat");
    let port = Some(gw.port);

    let (code, out, err) = run_cli(home.path(), &["sessions", "list"], port);
    assert_eq!(code, 0, "{err}");
    let line = out
        .lines()
        .find(|l| l.contains("user:pipe-short"))
        .expect("listed");
    assert!(
        line.contains("  created 20") && line.contains("Z  last active 20"),
        "{line}"
    );

    let (code, out, err) = run_cli(
        home.path(),
        &["sessions", "show", "agent:main:http:http:user:pipe-short"],
        port,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("user: short"), "{out}");
    let (code, out, err) = run_cli(
        home.path(),
        &["sessions", "show", "agent:main:http:http:user:pipe-s"],
        port,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("user: short"), "a unique prefix: {out}");
    let (code, _, err) = run_cli(
        home.path(),
        &["sessions", "show", "agent:main:http:http:user:pipe"],
        port,
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("starts 2 session keys")
            && err.contains("agent:main:http:http:user:pipe-long")
            && err.contains("agent:main:http:http:user:pipe-short"),
        "{err}"
    );

    // `pincer sessions show KEY --json | head -3`
    let mut child = Command::new(bin())
        .args([
            "sessions",
            "show",
            "agent:main:http:http:user:pipe-long",
            "--json",
        ])
        .env("PINCER_HOME", home.path())
        .env("PINCER_GATEWAY_PORT", gw.port.to_string())
        .env_remove("PINCER_CONFIG")
        .env_remove("PINCER_GATEWAY_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    for _ in 0..3 {
        let mut line = String::new();
        reader.read_line(&mut line).expect("line");
    }
    drop(reader);
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
