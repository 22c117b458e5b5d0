//! Client commands find the running gateway through `$PINCER_HOME/gateway.json`, `--url`
//! or `PINCER_URL`, and say where they looked when none answers.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{Gw, TempDir, free_port, run_cli, run_cli_env};

#[tokio::test]
async fn a_gateway_on_any_port_is_found_through_gateway_json_and_the_file_goes_with_it() {
    let home = TempDir::new();
    let mut gw = Gw::start(home.path(), None).await;
    let file = home.path().join("gateway.json");
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("gateway.json")).expect("json");
    assert_eq!(written["pid"], gw.pid(), "{written}");
    assert_eq!(written["url"], format!("http://127.0.0.1:{}", gw.port));
    assert_eq!(written["address"], format!("127.0.0.1:{}", gw.port));
    assert!(
        written["started"]
            .as_str()
            .is_some_and(|s| s.ends_with('Z'))
    );
    let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "private, as the token file");

    // The config says another port (where nothing listens): the file wins.
    let elsewhere = Some(free_port());
    let (code, out, err) = run_cli(home.path(), &["gateway", "status"], elsewhere);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("gateway http://127.0.0.1:{}: ready", gw.port)),
        "{out}"
    );
    let (_, out, err) = run_cli(home.path(), &["doctor"], elsewhere);
    assert!(
        out.contains(&format!(
            "[ok  ] gateway at http://127.0.0.1:{}: ready",
            gw.port
        )),
        "{out}{err}"
    );

    // Without the file, only --url or PINCER_URL finds it.
    let aside = home.path().join("gateway.json.aside");
    std::fs::rename(&file, &aside).expect("move aside");
    let (code, _, err) = run_cli(home.path(), &["sessions", "list"], elsewhere);
    assert_eq!(code, 1);
    assert!(
        err.contains("gateway.json: no such file")
            && err.contains("the config's gateway.bind/gateway.port")
            && err.contains("--url/PINCER_URL: not set"),
        "the error says where it looked: {err}"
    );
    let url = format!("http://127.0.0.1:{}", gw.port);
    let (code, out, err) = run_cli(
        home.path(),
        &["gateway", "status", "--url", &url],
        elsewhere,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(": ready"), "{out}");
    let (code, _, err) = run_cli_env(
        home.path(),
        &["sessions", "list"],
        elsewhere,
        &[("PINCER_URL", &url)],
    );
    assert_eq!(code, 0, "{err}");
    let dead = format!("http://127.0.0.1:{}", free_port());
    let (code, _, err) = run_cli(home.path(), &["gateway", "status", "--url", &dead], None);
    assert_eq!(code, 1);
    assert!(
        err.contains(&dead) && err.contains("--url/PINCER_URL"),
        "{err}"
    );
    std::fs::rename(&aside, &file).expect("move back");

    // A clean stop removes the file.
    gw.signal("TERM");
    assert!(
        gw.wait_exit(Duration::from_secs(20))
            .is_some_and(|s| s.success())
    );
    assert!(!file.exists(), "gateway.json is removed on exit");

    // A file a killed gateway left names a pid that is gone: not trusted, and said.
    std::fs::write(
        &file,
        r#"{"pid":99999999,"address":"127.0.0.1:1","url":"http://127.0.0.1:1","started":"2026-01-01T00:00:00Z"}"#,
    )
    .expect("stale file");
    let (code, _, err) = run_cli(home.path(), &["gateway", "status"], elsewhere);
    assert_eq!(code, 1);
    assert!(err.contains("stale (pid 99999999 is not running"), "{err}");
}
