//! The config file cannot take the gateway down or silently reset it (issue 15), on the
//! real binary: an emptied or deleted file is an edit in progress, anything but a regular
//! file of sane size is refused at start and on reload, command-line flags outlive
//! reloads, and a misspelt provider is an error with a suggestion.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::start::refused;
use common::{Gw, TempDir, free_port, until};
use reqwest::StatusCode;
use serde_json::Value;

/// One agent that is not the fallback `main`: a config reset to the defaults shows as
/// `main` running instead.
const CUSTOM: &str = "[agents.custom]\nmodel = \"echo\"\n";

const CUSTOM_AGENT: &str = "pincer/agents/agent:custom";
const MAIN_AGENT: &str = "pincer/agents/agent:main";

/// `POST /admin/config/reload`: (status, body).
async fn reload(gw: &Gw) -> (StatusCode, Value) {
    gw.post("/admin/config/reload", Value::Null).await
}

/// The config in force is still the one with agent `custom` only.
async fn assert_custom_in_force(gw: &Gw, after: &str) {
    let paths = gw.running_paths().await;
    assert!(
        paths.iter().any(|p| p == CUSTOM_AGENT) && !paths.iter().any(|p| p == MAIN_AGENT),
        "after {after} the config in force changed: {paths:?}"
    );
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// A valid TOML file (comments) of `bytes` bytes.
fn big_config(bytes: usize) -> String {
    let line = format!("# {}\n", "x".repeat(98));
    line.repeat(bytes / line.len() + 1)
}

// === emptied and deleted files ===

#[tokio::test]
async fn an_emptied_or_deleted_config_file_is_an_edit_in_progress() {
    let home = TempDir::new();
    let file = home.path().join("pincer.toml");
    let gw = Gw::start(home.path(), Some(CUSTOM)).await;
    assert_custom_in_force(&gw, "start").await;

    type Step = (&'static str, fn(&Path), &'static str);
    let steps: [Step; 3] = [
        (
            "emptied",
            |f| std::fs::write(f, "").expect("truncate"),
            "empty",
        ),
        (
            "blanked",
            |f| std::fs::write(f, " \n\t\n").expect("blank"),
            "empty",
        ),
        (
            "deleted",
            |f| std::fs::remove_file(f).expect("delete"),
            "no longer exists",
        ),
    ];
    for (what, edit, why) in steps {
        let (reloads, waits) = (gw.reloads(), gw.log().matches("edit in progress").count());
        edit(&file);
        until(
            &format!("the watcher to see the file {what}"),
            &gw,
            Duration::from_secs(5),
            async || {
                (gw.reloads() > reloads || gw.log().matches("edit in progress").count() > waits)
                    .then_some(())
            },
        )
        .await;
        assert_eq!(gw.reloads(), reloads, "the {what} file was put in force");
        assert_custom_in_force(&gw, what).await;

        let (status, body) = reload(&gw).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(&file.display().to_string()) && message.contains(why),
            "{what}: {message}"
        );
        assert_custom_in_force(&gw, &format!("reloading the {what} file")).await;
    }

    // Written again: in force.
    std::fs::write(&file, "[agents.other]\nmodel = \"echo\"\n").expect("write");
    until(
        "the new file in force",
        &gw,
        Duration::from_secs(5),
        async || {
            gw.running_paths()
                .await
                .iter()
                .any(|p| p == "pincer/agents/agent:other")
                .then_some(())
        },
    )
    .await;
}

// === what a config file may be ===

#[tokio::test]
async fn only_a_regular_file_of_at_most_4_mb_is_read_at_start() {
    let port = free_port().to_string();

    // A device: refused without reading it.
    let home = TempDir::new();
    let (code, err) = refused(
        home.path(),
        &["--config", "/dev/zero", "--port", &port],
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("/dev/zero") && err.contains("not a regular file"),
        "{err}"
    );

    // A FIFO, named or found at the default path: refused without blocking on it.
    let home = TempDir::new();
    let fifo = home.path().join("pincer.toml");
    mkfifo(&fifo);
    for args in [
        vec!["--port", port.as_str()],
        vec!["--config", fifo.to_str().expect("utf-8"), "--port", &port],
    ] {
        let (code, err) = refused(home.path(), &args, &[]);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(
            err.contains(&fifo.display().to_string()) && err.contains("not a regular file"),
            "{err}"
        );
    }

    // Too large.
    let home = TempDir::new();
    let big = home.path().join("pincer.toml");
    std::fs::write(&big, big_config(5 << 20)).expect("big file");
    let size = std::fs::metadata(&big).expect("size").len();
    let (code, err) = refused(home.path(), &["--port", &port], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&big.display().to_string())
            && err.contains(&size.to_string())
            && err.contains("4194304"),
        "{err}"
    );

    // A dangling link at the default path or given.
    let home = TempDir::new();
    let link = home.path().join("pincer.toml");
    let target = home.path().join("moved-away.toml");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    for args in [
        vec!["--port", port.as_str()],
        vec!["--config", link.to_str().expect("utf-8"), "--port", &port],
    ] {
        let (code, err) = refused(home.path(), &args, &[]);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(
            err.contains(&link.display().to_string())
                && err.contains(&target.display().to_string()),
            "{err}"
        );
    }
}

#[tokio::test]
async fn a_reload_refuses_what_a_start_refuses_and_keeps_the_config_in_force() {
    let home = TempDir::new();
    let file = home.path().join("pincer.toml");
    let gw = Gw::start(home.path(), Some(CUSTOM)).await;

    let target = home.path().join("moved-away.toml");
    let size = 5 << 20;
    type Step = (&'static str, Box<dyn Fn(&Path)>, Vec<String>);
    let steps: Vec<Step> = vec![
        (
            "too large",
            Box::new(move |f| std::fs::write(f, big_config(size)).expect("big file")),
            vec!["4194304".into()],
        ),
        (
            "a dangling link",
            Box::new({
                let target = target.clone();
                move |f| {
                    std::fs::remove_file(f).expect("remove");
                    std::os::unix::fs::symlink(&target, f).expect("symlink");
                }
            }),
            vec![target.display().to_string()],
        ),
        (
            "a FIFO",
            Box::new(|f| {
                std::fs::remove_file(f).expect("remove");
                mkfifo(f);
            }),
            vec!["not a regular file".into()],
        ),
    ];
    for (what, edit, wanted) in steps {
        edit(&file);
        let (status, body) = reload(&gw).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(&file.display().to_string()),
            "{what}: {message}"
        );
        for part in wanted {
            assert!(message.contains(&part), "{what}: {message}");
        }
        assert_custom_in_force(&gw, what).await;
    }
    // The watcher, which saw each of them too, still answers.
    std::fs::remove_file(&file).expect("remove fifo");
    std::fs::write(&file, "[agents.other]\nmodel = \"echo\"\n").expect("write");
    let (status, body) = reload(&gw).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

// === flags outlive reloads ===

/// A gateway started with extra flags, killed on drop.
struct Flagged(Child);

impl Drop for Flagged {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn port_and_bind_flags_stay_in_force_across_reloads() {
    let home = TempDir::new();
    let file = home.path().join("pincer.toml");
    std::fs::write(&file, CUSTOM).expect("config");
    let port = free_port();
    let log = home.path().join("gateway.log");
    let _gw = Flagged(
        Command::new(common::bin())
            .args(["gateway", "--port", &port.to_string(), "--bind", "::1"])
            .env("PINCER_HOME", home.path())
            .env_remove("PINCER_CONFIG")
            .env_remove("PINCER_GATEWAY_TOKEN")
            .env_remove("PINCER_GATEWAY_PORT")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("spawn"),
    );
    let base = format!("http://[::1]:{port}");
    let http = reqwest::Client::new();
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await
            && r.status() == StatusCode::OK
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not ready: {}",
            read_log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let token = std::fs::read_to_string(home.path().join("gateway.token")).expect("token");

    for edit in [
        CUSTOM,
        "[gateway]\nport = 18799\nbind = \"127.0.0.1\"\n\n[agents.custom]\nmodel = \"echo\"\n",
    ] {
        std::fs::write(&file, edit).expect("edit");
        let r = http
            .post(format!("{base}/admin/config/reload"))
            .bearer_auth(token.trim())
            .send()
            .await
            .expect("reload");
        assert_eq!(r.status(), StatusCode::OK);
        let body: Value = r.json().await.expect("json");
        let warnings = body["reload"]["warnings"].to_string();
        assert!(
            !warnings.contains("gateway.port") && !warnings.contains("gateway.bind"),
            "{edit:?}: {warnings}"
        );
    }
    let log = read_log();
    assert!(
        !log.contains("gateway.port changed") && !log.contains("gateway.bind changed"),
        "{log}"
    );
}

// === providers ===

#[tokio::test]
async fn a_misspelt_provider_is_refused_with_a_suggestion() {
    let port = free_port().to_string();
    for (config, key, wrong, meant) in [
        (
            "[agents.main.model]\nprovider = \"opneai\"\nname = \"gpt-5\"\n",
            "agents.main.model.provider",
            "opneai",
            "openai",
        ),
        (
            "[agents.main]\nmodel = \"antropic/claude-sonnet-4-6\"\n",
            "agents.main.model",
            "antropic",
            "anthropic",
        ),
        (
            "[agents.main.model]\nprovider = \"echo\"\nfallbacks = [\"openai/gpt-5\", \"ecko/echo\"]\n",
            "agents.main.model.fallbacks[1]",
            "ecko",
            "echo",
        ),
    ] {
        let home = TempDir::new();
        std::fs::write(home.path().join("pincer.toml"), config).expect("config");
        let (code, err) = refused(home.path(), &["--port", &port], &[]);
        assert_eq!(code, 2, "{config}: {err}");
        assert!(
            err.contains(key)
                && err.contains(wrong)
                && err.contains(&format!("did you mean `{meant}`")),
            "{config}: {err}"
        );
    }
}
