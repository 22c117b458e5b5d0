//! `pincer health`: the container healthcheck. It asks the gateway the config describes
//! (its port included), exits 0 only on a 200, and says in one line what it found.

mod common;

use std::time::{Duration, Instant};

use common::{Gw, TempDir, free_port, run_cli, run_cli_env};

/// An agent whose model's provider is not configured: alive, never ready.
const NOT_READY: &str = "[agents.main]\nmodel = \"anthropic/claude-opus-4-6\"\n";

#[tokio::test]
async fn a_running_gateway_is_live_and_ready_and_each_answer_is_one_line() {
    let home = TempDir::new();
    let gw = Gw::start(home.path(), None).await;
    let (code, out, err) = run_cli(home.path(), &["health"], Some(gw.port));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!("http://127.0.0.1:{}/healthz: 200 live\n", gw.port)
    );
    let (code, out, err) = run_cli(home.path(), &["health", "--ready"], Some(gw.port));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!("http://127.0.0.1:{}/readyz: 200 ready\n", gw.port)
    );
}

#[tokio::test]
async fn the_port_comes_from_the_config_file_as_the_gateway_reads_it() {
    // A check that ignored a custom port was one of the incumbent's broken healthchecks.
    let home = TempDir::new();
    let port = free_port();
    let gw = Gw::spawn(
        home.path(),
        Some(&format!("[gateway]\nport = {port}\n")),
        port,
    );
    gw.wait_ready(Duration::from_secs(20)).await;
    let (code, out, err) = run_cli(home.path(), &["health", "--ready"], None);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("127.0.0.1:{port}/readyz: 200")),
        "{out}"
    );
}

#[tokio::test]
async fn a_gateway_that_is_alive_but_not_ready_fails_only_the_ready_check_naming_why() {
    let home = TempDir::new();
    let gw = Gw::spawn(home.path(), Some(NOT_READY), free_port());
    let deadline = Instant::now() + Duration::from_secs(20);
    let (code, _, err) = loop {
        let (code, out, err) = run_cli(home.path(), &["health", "--ready"], Some(gw.port));
        // Until the tree has started, the reason is "starting"; then the agent is named.
        if code == 1 && err.contains("agent:main") {
            break (code, out, err);
        }
        assert!(
            Instant::now() < deadline,
            "not named: {code} {out} {err}; log:\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(code, 1);
    assert!(err.contains("/readyz: 503 not ready"), "{err}");
    assert!(
        err.contains("provider `anthropic` is not configured"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let (code, out, err) = run_cli(home.path(), &["health"], Some(gw.port));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("200 live"), "{out}");
}

#[tokio::test]
async fn no_gateway_is_exit_1_and_so_is_one_that_never_answers() {
    let home = TempDir::new();
    let port = free_port();
    let (code, _, err) = run_cli(home.path(), &["health"], Some(port));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "http://127.0.0.1:{port}/healthz: no gateway answers"
        )),
        "{err}"
    );

    // A port that accepts and then says nothing (a wedged process): the probe gives up
    // after its own timeout, well before a healthcheck's.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let started = Instant::now();
    let (code, _, err) = run_cli(home.path(), &["health", "--ready"], Some(port));
    let took = started.elapsed();
    drop(listener);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("/readyz: no answer within 3 s"), "{err}");
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(6),
        "{took:?}"
    );
}

#[tokio::test]
async fn the_url_flag_and_pincer_url_win_over_the_config_and_bad_ones_are_named() {
    let home = TempDir::new();
    let gw = Gw::start(home.path(), None).await;
    let elsewhere = free_port().to_string();
    let base = format!("http://127.0.0.1:{}", gw.port);
    let (code, out, err) = run_cli_env(
        home.path(),
        &["health", "--url", &format!("{base}/")],
        None,
        &[("PINCER_GATEWAY_PORT", &elsewhere)],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("{base}/healthz: 200 live\n"));
    let (code, out, err) = run_cli_env(
        home.path(),
        &["health"],
        None,
        &[("PINCER_URL", &base), ("PINCER_GATEWAY_PORT", &elsewhere)],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with(&format!("{base}/healthz: 200")), "{out}");

    // Never 2, which Docker reserves: a bad URL is 1 too.
    for (url, why) in [
        ("ftp://127.0.0.1/", "is not an http(s) URL"),
        ("localhost:18789", "is not an http(s) URL"),
        ("127.0.0.1:18789", "is not a URL"),
        ("not a url", "is not a URL"),
        ("http://127.0.0.1:1/?verbose", "has a query or fragment"),
    ] {
        let (code, _, err) = run_cli(home.path(), &["health", "--url", url], None);
        assert_eq!(code, 1, "{url}: {err}");
        assert!(
            err.contains(&format!("--url `{url}` {why}")),
            "{url}: {err}"
        );
    }
}

#[tokio::test]
async fn a_config_that_does_not_load_is_said_and_the_default_address_asked() {
    // An edit gone wrong leaves the gateway on its last good config: the probe still asks
    // (at the default address) rather than calling the gateway broken for it.
    let home = TempDir::new();
    std::fs::write(home.path().join("pincer.toml"), "[gateway\n").expect("config");
    let (code, out, err) = run_cli(home.path(), &["health"], None);
    let line = format!("{out}{err}");
    assert!(code == 0 || code == 1, "{line}");
    assert!(line.contains("http://127.0.0.1:18789/healthz"), "{line}");
    assert!(
        line.contains("the config did not load, so the default address was asked"),
        "{line}"
    );
}
