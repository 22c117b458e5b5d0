//! What the gateway exposes cannot be abused (issue 15), on the real binary: no empty or
//! short token is ever in force, a token opens only what it should and only where it
//! should, cross-site sockets and foreign `Host` names are refused, and the root of the
//! tree cannot be killed by accident.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::start::refused;
use common::{Gw, TempDir, free_port, run_cli, until};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;
use tungstenite::client::IntoClientRequest;

/// A token long enough to be accepted.
const GOOD: &str = "a-good-gateway-token-0123456789";

/// `GET path` with `Authorization: <auth>` (if any) and `Host: <host>` (if any), over
/// loopback: (status, JSON body or Null).
async fn get_with(
    gw: &Gw,
    path: &str,
    auth: Option<&str>,
    host: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = gw.http.get(gw.url(path));
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    if let Some(host) = host {
        request = request.header("host", host);
    }
    let r = request.send().await.expect("request");
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

// === tokens ===

#[tokio::test]
async fn an_empty_blank_or_short_token_is_refused_at_start_naming_where_it_came_from() {
    let port = free_port().to_string();

    // The compose/systemd case: `PINCER_GATEWAY_TOKEN=${TOKEN}` with TOKEN unset.
    let home = TempDir::new();
    let (code, err) = refused(
        home.path(),
        &["--bind", "0.0.0.0", "--port", &port],
        &[("PINCER_GATEWAY_TOKEN", "")],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("PINCER_GATEWAY_TOKEN"), "{err}");
    assert!(err.contains("16 characters"), "{err}");

    // In the file: the key, the file and its line.
    for (value, why) in [("", "empty"), ("   \t  ", "blank"), ("short-token", "11")] {
        let home = TempDir::new();
        let file = home.path().join("pincer.toml");
        std::fs::write(&file, format!("[gateway.auth]\ntoken = \"{value}\"\n")).expect("config");
        let (code, err) = refused(home.path(), &["--port", &port], &[]);
        assert_eq!(code, 2, "token {value:?}: {err}");
        assert!(err.contains("gateway.auth.token"), "{err}");
        assert!(
            err.contains(&format!("{}:2", file.display())),
            "file and line: {err}"
        );
        assert!(err.contains(why), "{err}");
    }

    // A ref: named, its value never shown.
    let home = TempDir::new();
    std::fs::write(
        home.path().join("pincer.toml"),
        "[gateway.auth]\ntoken = \"env:PINCER_TEST_GW_TOKEN\"\n",
    )
    .expect("config");
    let (code, err) = refused(
        home.path(),
        &["--port", &port],
        &[("PINCER_TEST_GW_TOKEN", "tiny-tok")],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("env:PINCER_TEST_GW_TOKEN"), "{err}");
    assert!(!err.contains("tiny-tok"), "the value is not shown: {err}");

    // The token file.
    let home = TempDir::new();
    let token_file = home.path().join("gateway.token");
    std::fs::write(&token_file, "abc\n").expect("token file");
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let (code, err) = refused(home.path(), &["--port", &port], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&token_file.display().to_string()), "{err}");
    assert!(err.contains("16 characters"), "{err}");
}

#[tokio::test]
async fn a_token_file_others_can_read_is_refused() {
    let home = TempDir::new();
    let token_file = home.path().join("gateway.token");
    std::fs::write(&token_file, format!("{GOOD}\n")).expect("token file");
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (code, err) = refused(home.path(), &["--port", &free_port().to_string()], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&token_file.display().to_string())
            && err.contains("0644")
            && err.contains("chmod 600"),
        "{err}"
    );

    // A `file:` ref to a secrets file others can read is refused by its back end already:
    // the gateway starts on the generated token, and the file's value opens nothing.
    let home = TempDir::new();
    let secrets = home.path().join("secrets.json");
    std::fs::write(&secrets, json!({"gateway": GOOD}).to_string()).expect("secrets");
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let gw = Gw::spawn(
        home.path(),
        Some("[gateway.auth]\ntoken = \"file:/gateway\"\n"),
        free_port(),
    );
    // Not ready (readiness names the ref), but serving.
    assert!(
        gw.wait_readyz(false, Duration::from_secs(20)).await,
        "{}",
        gw.log()
    );
    let (status, _) = get_with(&gw, "/admin/tree", Some(&bearer(GOOD)), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(gw.log().contains("mode 0644"), "{}", gw.log());
}

#[tokio::test]
async fn a_non_loopback_bind_needs_a_given_token_and_a_token_file_is_one() {
    // A generated token guards loopback, where the CLI reads it; a client elsewhere could
    // not know it. The refusal says every way to give one.
    let home = TempDir::new();
    let unsafe_bind = [("PINCER__GATEWAY__BIND", "0.0.0.0")];
    let (code, err) = refused(
        home.path(),
        &["--port", &free_port().to_string()],
        &unsafe_bind,
    );
    assert_eq!(code, 2, "{err}");
    for way in [
        "PINCER_GATEWAY_TOKEN",
        "PINCER__GATEWAY__AUTH__TOKEN",
        "PINCER_GATEWAY_TOKEN_FILE=PATH",
        "/run/secrets/pincer_token",
        "mode 0600",
        "gateway.auth.token in the config",
        "secret ref",
    ] {
        assert!(err.contains(way), "{way}: {err}");
    }
    assert!(
        !home.path().join("gateway.token").exists(),
        "nothing generated"
    );

    // The Docker secret way: a file holding only the token, read as a `file` ref (private
    // to the user, watched: a rotated file is the new token).
    let secret = home.path().join("pincer_token");
    let write = |token: &str| {
        std::fs::write(&secret, format!("{token}\n")).expect("token file");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    };
    write(GOOD);
    let path = secret.display().to_string();
    let env = [unsafe_bind[0], ("PINCER_GATEWAY_TOKEN_FILE", path.as_str())];
    let gw = Gw::spawn_env(home.path(), None, free_port(), &env);
    assert!(
        gw.wait_readyz(true, Duration::from_secs(20)).await,
        "{}",
        gw.log()
    );
    let (status, _) = get_with(&gw, "/admin/tree", Some(&bearer(GOOD)), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = get_with(
        &gw,
        "/admin/tree",
        Some(&bearer("x".repeat(20).as_str())),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        !home.path().join("gateway.token").exists(),
        "nothing generated"
    );

    let rotated = "a-rotated-gateway-token-9876543210";
    write(rotated);
    until(
        "the rotated token to be in force",
        &gw,
        Duration::from_secs(10),
        async || {
            let (status, _) = get_with(&gw, "/admin/tree", Some(&bearer(rotated)), None).await;
            (status == StatusCode::OK).then_some(())
        },
    )
    .await;
    let (status, _) = get_with(&gw, "/admin/tree", Some(&bearer(GOOD)), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old token is gone");
    assert!(
        !gw.log().contains(rotated) && !gw.log().contains(GOOD),
        "never logged"
    );
}

#[tokio::test]
async fn a_live_edit_to_a_short_token_is_refused_and_the_old_token_stays() {
    let home = TempDir::new();
    let file = home.path().join("pincer.toml");
    let gw = Gw::start(
        home.path(),
        Some(&format!("[gateway.auth]\ntoken = \"{GOOD}\"\n")),
    )
    .await;
    let (status, _) = get_with(&gw, "/admin/tree", Some(&bearer(GOOD)), None).await;
    assert_eq!(status, StatusCode::OK);

    for value in ["", "    ", "too-short"] {
        std::fs::write(&file, format!("[gateway.auth]\ntoken = \"{value}\"\n")).expect("edit");
        let r = gw
            .http
            .post(gw.url("/admin/config/reload"))
            .bearer_auth(GOOD)
            .send()
            .await
            .expect("reload");
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(status, StatusCode::BAD_REQUEST, "token {value:?}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("gateway.auth.token") && message.contains("16 characters"),
            "{message}"
        );
        for (path, auth) in [
            ("/admin/tree?token=", None),
            ("/admin/tree", Some("Bearer ".to_string())),
            ("/v1/models?token=", None),
        ] {
            let (status, _) = get_with(&gw, path, auth.as_deref(), None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} {auth:?}");
        }
        let (status, _) = get_with(&gw, "/admin/tree", Some(&bearer(GOOD)), None).await;
        assert_eq!(status, StatusCode::OK, "the old token stays");
    }
    let log = gw.log();
    assert!(
        log.contains("rejected; the config in force stays") && log.contains("16 characters"),
        "the refused edit is logged with its reason: {log}"
    );
}

#[tokio::test]
async fn a_ref_that_turns_short_while_running_leaves_the_old_token_in_force() {
    let home = TempDir::new();
    let secrets = home.path().join("secrets.json");
    let write = |token: &str| {
        std::fs::write(&secrets, json!({"gateway": token}).to_string()).expect("secrets");
        std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    };
    write(GOOD);
    let gw = Gw::start(
        home.path(),
        Some("[gateway.auth]\ntoken = \"file:/gateway\"\n"),
    )
    .await;
    let (status, _) = get_with(&gw, "/admin/tree", Some(&bearer(GOOD)), None).await;
    assert_eq!(status, StatusCode::OK);

    write("tiny");
    until(
        "the secrets file to be read again",
        &gw,
        Duration::from_secs(10),
        async || gw.log().contains("Secret rotated").then_some(()),
    )
    .await;
    let (status, _) = get_with(&gw, "/admin/tree", Some(&bearer(GOOD)), None).await;
    assert_eq!(status, StatusCode::OK, "the old token stays in force");
    let (status, _) = get_with(&gw, "/admin/tree", Some(&bearer("tiny")), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let log = gw.log();
    assert!(
        log.contains("file:/gateway") && log.contains("16 characters"),
        "the log says why: {log}"
    );
}

#[tokio::test]
async fn the_query_token_opens_only_the_socket_and_the_bearer_scheme_has_any_case() {
    let home = TempDir::new();
    let gw = Gw::start(home.path(), None).await;
    let token = gw.token();
    for path in ["/admin/tree", "/v1/models", "/admin/secrets"] {
        let (status, body) = get_with(&gw, &format!("{path}?token={token}"), None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
        assert_eq!(body["error"]["type"], "authentication_error", "{body}");
    }
    for scheme in ["Bearer", "bearer", "BEARER", "BeArEr"] {
        let (status, body) =
            get_with(&gw, "/admin/tree", Some(&format!("{scheme} {token}")), None).await;
        assert_eq!(status, StatusCode::OK, "scheme {scheme}: {body}");
    }
    let (status, _) = get_with(&gw, "/admin/tree", Some(&format!("Basic {token}")), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The socket still takes it in the query (a browser cannot set headers on one).
    let (socket, response) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/ws?token={token}", gw.port))
            .await
            .expect("the socket opens with ?token=");
    assert_eq!(response.status(), 101);
    drop(socket);
}

// === cross-site sockets and foreign hosts ===

/// Opens `/ws` with these headers: `Ok` when upgraded, `Err((status, JSON body))`.
async fn open_socket(gw: &Gw, path: &str, headers: &[(&str, &str)]) -> Result<(), (u16, Value)> {
    let mut request = format!("ws://127.0.0.1:{}{path}", gw.port)
        .into_client_request()
        .expect("request");
    for (name, value) in headers {
        request.headers_mut().insert(
            tungstenite::http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
            value.parse().expect("value"),
        );
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => Ok(()),
        Err(tungstenite::Error::Http(response)) => {
            let body = response
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            Err((response.status().as_u16(), body))
        }
        Err(e) => panic!("socket {path} {headers:?}: {e}"),
    }
}

#[tokio::test]
async fn a_socket_from_another_origin_is_refused() {
    let home = TempDir::new();
    let gw = Gw::start(
        home.path(),
        Some("[gateway]\nallowedOrigins = [\"https://chat.example.org\"]\n"),
    )
    .await;
    let own = format!("http://127.0.0.1:{}", gw.port);
    let token = gw.token();
    for origin in [
        "https://evil.example",
        "null",
        "http://127.0.0.1:1",
        "https://chat.example.org.evil.example",
    ] {
        match open_socket(&gw, "/ws", &[("origin", origin)]).await {
            Ok(()) => panic!("a socket from {origin} was opened"),
            Err((status, body)) => {
                assert_eq!(status, 403, "{origin}: {body}");
                let message = body["error"]["message"].as_str().unwrap_or_default();
                assert!(
                    message.contains(origin) && message.contains("gateway.allowedOrigins"),
                    "{message}"
                );
            }
        }
        // The token does not make a cross-site page trusted.
        let with_token = format!("/ws?token={token}");
        assert!(
            open_socket(&gw, &with_token, &[("origin", origin)])
                .await
                .is_err(),
            "{origin} with the token"
        );
    }
    for origin in [
        own.as_str(),
        "https://chat.example.org",
        "HTTPS://Chat.Example.org",
    ] {
        let opened = open_socket(&gw, "/ws", &[("origin", origin)]).await;
        assert_eq!(opened, Ok(()), "{origin}");
    }
    // Non-browser clients send no Origin.
    assert_eq!(open_socket(&gw, "/ws", &[]).await, Ok(()));
    // The page's own origin under another loopback name.
    let opened = open_socket(
        &gw,
        "/ws",
        &[
            ("origin", &format!("http://localhost:{}", gw.port)),
            ("host", &format!("localhost:{}", gw.port)),
        ],
    )
    .await;
    assert_eq!(opened, Ok(()));
}

#[tokio::test]
async fn a_foreign_host_is_refused_without_the_token_except_on_plain_probes() {
    let home = TempDir::new();
    let gw = Gw::start(
        home.path(),
        Some("[gateway]\nallowedHosts = [\"pincer.internal\", \"chat.example.org:8443\"]\n"),
    )
    .await;
    let token = gw.token();
    let evil = "evil.example.com";
    for path in [
        "/metrics",
        "/readyz?verbose",
        "/ready?verbose=1",
        "/admin/tree",
        "/",
    ] {
        let (status, body) = get_with(&gw, path, None, Some(evil)).await;
        assert_eq!(status, StatusCode::MISDIRECTED_REQUEST, "{path}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(evil) && message.contains("gateway.allowedHosts"),
            "{path}: {message}"
        );
    }
    // The socket too.
    let refused = open_socket(&gw, "/ws", &[("host", evil)]).await;
    assert_eq!(refused.map_err(|(s, _)| s), Err(421));

    // A kubelet probes by the pod's address, whatever it is.
    for path in [
        "/healthz",
        "/health",
        "/readyz",
        "/ready",
        "/startupz",
        "/startup",
    ] {
        let (status, body) = get_with(&gw, path, None, Some("10.1.2.3:18789")).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        let (status, _) = get_with(&gw, path, None, Some(evil)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    // The token is enough.
    let (status, _) = get_with(&gw, "/metrics", Some(&bearer(&token)), Some(evil)).await;
    assert_eq!(status, StatusCode::OK);

    // Loopback names and addresses, the configured hosts.
    let port = gw.port;
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "localhost".to_string(),
        format!("LOCALHOST.:{port}"),
        format!("app.localhost:{port}"),
        format!("127.3.2.1:{port}"),
        format!("[::1]:{port}"),
        "pincer.internal".to_string(),
        "pincer.internal:9999".to_string(),
        "chat.example.org:8443".to_string(),
    ] {
        let (status, body) = get_with(&gw, "/readyz?verbose", None, Some(&host)).await;
        assert_eq!(status, StatusCode::OK, "{host}: {body}");
        assert!(body["tree"].is_array(), "{host}: {body}");
    }
    // A configured host with a port matches that port only; a name that merely ends
    // like a loopback name is not one.
    for host in [
        "chat.example.org",
        "chat.example.org:443",
        "localhost.evil.example.com",
    ] {
        let (status, _) = get_with(&gw, "/metrics", None, Some(host)).await;
        assert_eq!(status, StatusCode::MISDIRECTED_REQUEST, "{host}");
    }
}

// === the root ===

#[tokio::test]
async fn the_root_and_the_port_survive_kill_and_stop_unless_forced() {
    let home = TempDir::new();
    let gw = Gw::start(home.path(), None).await;
    for action in ["kill", "stop"] {
        for path in ["pincer", "pincer/health"] {
            let (status, body) = gw
                .post(&format!("/admin/actors/{action}"), json!({"path": path}))
                .await;
            assert_eq!(status, StatusCode::CONFLICT, "{action} {path}: {body}");
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(
                message.contains(path) && message.contains("\"force\": true"),
                "{message}"
            );
            assert!(
                gw.wait_readyz(true, Duration::from_secs(2)).await,
                "{action} {path}"
            );
        }
    }

    // The CLI says why and fails.
    let port = Some(gw.port);
    let (code, out, err) = run_cli(home.path(), &["chaos", "kill", "pincer"], port);
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("409") && err.contains("--force"), "{err}");
    assert!(!out.contains("killed"), "{out}");
    assert!(gw.wait_readyz(true, Duration::from_secs(2)).await);

    // The monkey never picks them.
    let (code, out, err) = run_cli(
        home.path(),
        &[
            "chaos",
            "monkey",
            "--rate",
            "50/s",
            "--duration",
            "1s",
            "--scope",
            "pincer/health",
        ],
        port,
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("verdict: 0 kills"), "{out}");
    let (_, tree) = gw.get("/admin/tree").await;
    let health = tree["tree"][0]["children"]
        .as_array()
        .and_then(|c| c.iter().find(|n| n["path"] == "pincer/health"))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(health["restarts_total"], 0, "{tree}");

    // Forced: the port's actor restarts; the root ends the process.
    let (code, out, err) = run_cli(
        home.path(),
        &["chaos", "kill", "--force", "pincer/health"],
        port,
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("killed pincer/health"), "{out}");
    gw.wait_ready(Duration::from_secs(10)).await;
    let mut gw = gw;
    let (status, body) = gw
        .post(
            "/admin/actors/kill",
            json!({"path": "pincer", "force": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(gw.wait_exit(Duration::from_secs(10)).is_some());
}
