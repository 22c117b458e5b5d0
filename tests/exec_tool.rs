//! `exec` on the turn path, through the real binary and the OpenAI fake: what
//! `[tools.exec]` lets run, what it refuses, what the sandbox keeps in, and what `doctor`
//! says. What the model got back is read from the `function_call_output` of the next
//! request the fake received. Network use is loopback only: the fake, and a listener this
//! test owns that must see no connection.
//!
//! The tests that run commands need bubblewrap working (`bwrap` installed, user
//! namespaces allowed); where it does not, each prints a SKIPPED line with the reason and
//! returns.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Gw, TempDir, model};
use pincer_fakes::openai::{OpenAiFake, Script};
use pincer_tools::exec::{Runner, Sandbox};
use serde_json::{Value, json};

// === helpers ===

/// A gateway whose `main` agent is an OpenAI model over SSE with `exec`, and `exec` as
/// the body of `[tools.exec]`; `extra` after it.
async fn gateway(home: &TempDir, fake: &OpenAiFake, exec: &str, extra: &str) -> Gw {
    let config = format!(
        "[providers.openai]\nbaseUrl = \"{}\"\napiKey = \"sk-test\"\n\n[response]\ntransport = \"sse\"\n\n[agents.main]\nmodel = \"openai/gpt-4.1\"\nskills = [\"exec\"]\n\n[tools.exec]\n{exec}\n\n{extra}",
        fake.base_url()
    );
    Gw::start(home.path(), Some(&config)).await
}

/// Has the model call `exec` with `args` and returns what it got back.
async fn call(gw: &Gw, fake: &OpenAiFake, args: Value) -> String {
    fake.clear_requests();
    fake.script(Script::tool_call("exec", args.to_string()));
    let (status, reply) = gw.ask("main", "u", "run it").await;
    assert_eq!(status, 200, "{reply}");
    let sent = model::requests(fake);
    assert_eq!(sent.len(), 2, "a call and its result: {sent:?}");
    model::outputs(&sent[1]).concat()
}

/// Whether bubblewrap works here; prints why not (and the test returns) when it does not.
async fn sandbox_works(test: &str) -> bool {
    match Runner::new(Sandbox::Bwrap).probe().await {
        Ok(()) => true,
        Err(e) => {
            println!("SKIPPED {test}: the exec sandbox cannot run here: {e}");
            false
        }
    }
}

fn workspace(home: &TempDir) -> std::path::PathBuf {
    home.path().join("workspaces").join("main")
}

/// A `sleep` argument unique to this run (1000 s and a fraction naming this process),
/// to find our own sleepers among the host's processes.
fn sleep_tag() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "1000.{}{:03}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Host pids whose command line is `sleep <tag>`.
fn sleepers(tag: &str) -> Vec<u32> {
    let want = format!("sleep\0{tag}\0");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            cmdline.ends_with(want.as_bytes()).then_some(pid)
        })
        .collect()
}

// === what runs ===

#[tokio::test]
async fn an_allowed_command_runs_in_the_workspace() {
    if !sandbox_works("an_allowed_command_runs_in_the_workspace").await {
        return;
    }
    let fake = OpenAiFake::start().await;
    let home = TempDir::new();
    let gw = gateway(
        &home,
        &fake,
        "allowlist = [\"/usr/bin/*\", \"/bin/*\"]\nask = \"off\"",
        "",
    )
    .await;
    let sent_tools = {
        fake.script(Script::tool_call(
            "exec",
            json!({"command": "echo hi > f && cat f && pwd"}).to_string(),
        ));
        let (status, _) = gw.ask("main", "u", "run it").await;
        assert_eq!(status, 200);
        fake.requests()
    };
    let offered: Vec<&str> = sent_tools[0].body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(offered, ["exec"]);
    let output = sent_tools[1].body["input"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["type"] == "function_call_output")
        .filter_map(|i| i["output"].as_str())
        .collect::<String>();
    assert!(output.starts_with("exit code 0 ("), "{output}");
    assert!(
        !output.contains("sandbox"),
        "sandboxed, said nothing: {output}"
    );
    let ws = workspace(&home).canonicalize().expect("workspace made");
    assert!(
        output.contains(&format!("hi\n{}\n", ws.display())),
        "{output}"
    );
    assert_eq!(
        std::fs::read_to_string(ws.join("f")).expect("the file is in the workspace"),
        "hi\n"
    );

    // A workdir inside the workspace; one leaving it is refused.
    std::fs::create_dir_all(ws.join("src")).expect("mkdir");
    let output = call(&gw, &fake, json!({"command": "pwd", "workdir": "src"})).await;
    assert!(
        output.contains(&format!("{}/src\n", ws.display())),
        "{output}"
    );
    let output = call(&gw, &fake, json!({"command": "pwd", "workdir": "../.."})).await;
    assert!(
        output.starts_with("error: workdir \"../..\" is outside the workspace"),
        "{output}"
    );
}

#[tokio::test]
async fn security_deny_refuses_every_call() {
    let fake = OpenAiFake::start().await;
    let home = TempDir::new();
    let gw = gateway(&home, &fake, "security = \"deny\"", "").await;
    let output = call(&gw, &fake, json!({"command": "touch marker"})).await;
    assert_eq!(
        output,
        "error: exec is turned off here (tools.exec.security = \"deny\"); the command was not run"
    );
    assert!(!workspace(&home).join("marker").exists());
}

#[tokio::test]
async fn an_allowlist_miss_with_ask_off_is_refused_naming_the_binary() {
    let fake = OpenAiFake::start().await;
    let home = TempDir::new();
    let gw = gateway(
        &home,
        &fake,
        "allowlist = [\"/usr/bin/cat\", \"/bin/cat\"]\nask = \"off\"",
        "",
    )
    .await;
    let output = call(
        &gw,
        &fake,
        json!({"command": "cat /dev/null; touch marker"}),
    )
    .await;
    assert!(output.starts_with("error: `touch` (/"), "{output}");
    assert!(
        output.contains("/touch) is not on tools.exec.allowlist, and tools.exec.ask = \"off\": the command was not run"),
        "{output}"
    );
    assert!(!workspace(&home).join("marker").exists());
}

#[tokio::test]
async fn command_substitution_is_refused_in_allowlist_mode() {
    let fake = OpenAiFake::start().await;
    let home = TempDir::new();
    let gw = gateway(
        &home,
        &fake,
        "allowlist = [\"/usr/bin/*\", \"/bin/*\"]\nask = \"off\"",
        "",
    )
    .await;
    for command in [
        "echo $(touch marker)",
        "echo `touch marker`",
        "cat <(touch marker)",
    ] {
        let output = call(&gw, &fake, json!({ "command": command })).await;
        assert!(output.starts_with("error: "), "{command}: {output}");
        assert!(
            output.contains("substitution") && output.contains("cannot be checked"),
            "{command}: {output}"
        );
        assert!(
            output.contains("tools.exec.security = \"allowlist\""),
            "{output}"
        );
    }
    assert!(!workspace(&home).join("marker").exists());
}

#[tokio::test]
async fn a_miss_to_ask_about_with_no_one_to_ask_runs_nothing() {
    let fake = OpenAiFake::start().await;
    let home = TempDir::new();
    // The defaults: allowlist mode, an empty list, ask on a miss.
    let gw = gateway(&home, &fake, "", "").await;
    let output = call(&gw, &fake, json!({"command": "touch marker"})).await;
    assert!(
        output.starts_with("error: not approved: running `touch` (/"),
        "{output}"
    );
    assert!(
        output.ends_with("needs approval, and no one can be asked here; the command was not run"),
        "{output}"
    );
    assert!(!workspace(&home).join("marker").exists());
}

// === limits ===

#[tokio::test]
async fn a_timeout_kills_every_process_of_the_command() {
    if !sandbox_works("a_timeout_kills_every_process_of_the_command").await {
        return;
    }
    let fake = OpenAiFake::start().await;
    let home = TempDir::new();
    let gw = gateway(&home, &fake, "security = \"full\"", "").await;
    let tag = sleep_tag();
    let started = Instant::now();
    let output = call(
        &gw,
        &fake,
        json!({
            "command": format!("sleep {tag} & sleep {tag} & echo started; while :; do sleep 0.1; done"),
            "timeout": 1,
        }),
    )
    .await;
    assert!(
        output.starts_with("timed out after 1s; every process of the command was killed"),
        "{output}"
    );
    assert!(output.contains("started"), "{output}");
    assert!(started.elapsed() < Duration::from_secs(20));
    // The call has returned: its sleepers are gone, or go within moments.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !sleepers(&tag).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(sleepers(&tag).is_empty(), "survivors: {:?}", sleepers(&tag));
}

#[tokio::test]
async fn long_output_keeps_its_head_and_tail() {
    if !sandbox_works("long_output_keeps_its_head_and_tail").await {
        return;
    }
    let fake = OpenAiFake::start().await;
    let home = TempDir::new();
    // The gateway's own cut (tools.maxResultChars) opened past the runner's 200 kB.
    let gw = gateway(
        &home,
        &fake,
        "security = \"full\"",
        "[tools]\nmaxResultChars = 400000\n",
    )
    .await;
    let output = call(&gw, &fake, json!({"command": "seq 1 100000"})).await;
    // 1..100000, one a line: 588,895 bytes.
    assert!(
        output.starts_with("exit code 0 (")
            && output.contains("output cut to 200000 of 588895 bytes"),
        "{}",
        &output[..200.min(output.len())]
    );
    assert!(output.contains("\n1\n2\n3\n"), "the head is kept");
    assert!(output.ends_with("99999\n100000\n"), "the tail is kept");
    assert!(output.contains("bytes of output omitted"));
    assert!(output.len() < 201_000, "{}", output.len());
}

// === escapes ===

#[tokio::test]
async fn escapes_fail_under_the_sandbox() {
    if !sandbox_works("escapes_fail_under_the_sandbox").await {
        return;
    }
    let fake = OpenAiFake::start().await;
    let home = TempDir::new();
    let gw = gateway(&home, &fake, "security = \"full\"", "").await;
    let home_dir = home.path().display().to_string();
    let token = gw.token();

    // The gateway's token, beside the workspaces.
    let output = call(
        &gw,
        &fake,
        json!({"command": format!("cat {home_dir}/gateway.token; cat ../../gateway.token; ls {home_dir}")}),
    )
    .await;
    assert!(!output.contains(&token), "{output}");
    assert!(output.contains("No such file"), "{output}");
    assert!(!output.contains("pincer.toml"), "{output}");

    // Writes outside the workspace.
    let output = call(
        &gw,
        &fake,
        json!({"command": format!(
            "echo x > {home_dir}/pwned; echo x > ../../pwned2; echo x > /usr/pwned; echo x > /pwned; echo done"
        )}),
    )
    .await;
    assert!(output.contains("done"), "{output}");
    for path in [
        home.path().join("pwned"),
        home.path().join("pwned2"),
        "/usr/pwned".into(),
        "/pwned".into(),
    ] {
        assert!(!path.exists(), "{} was written: {output}", path.display());
    }

    // A connection to a loopback listener of the host's.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let output = call(
        &gw,
        &fake,
        json!({"command": format!(
            "bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port} && echo CONNECTED'; echo tried"
        )}),
    )
    .await;
    assert!(output.contains("tried"), "{output}");
    assert!(!output.contains("CONNECTED"), "{output}");
    assert!(
        output.contains(&format!("/dev/tcp/127.0.0.1/{port}: ")),
        "bash tried and failed: {output}"
    );
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the listener saw a connection: {other:?}; {output}"),
    }

    // Other processes, the gateway's first.
    let output = call(
        &gw,
        &fake,
        json!({"command": "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done; echo; ls /proc | grep -c '^[0-9]'"}),
    )
    .await;
    assert!(!output.contains("gateway --port"), "{output}");
    let count: usize = output
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no count: {output}"));
    assert!(count < 10, "the sandbox sees {count} processes: {output}");
    assert!(Path::new(&format!("/proc/{}", gw.pid())).exists());
}

// === without a sandbox ===

#[tokio::test]
async fn no_sandbox_is_said_at_start_in_doctor_and_in_every_result() {
    let home = TempDir::new();
    let config = "[agents.main]\nskills = [\"exec\"]\n\n[tools.exec]\nsandbox = \"none\"\nsecurity = \"full\"\n";
    std::fs::write(home.path().join("pincer.toml"), config).expect("write config");
    let (_, out, err) = common::run_cli(home.path(), &["doctor"], Some(common::free_port()));
    assert!(
        out.contains(
            "[note] warning: tools.exec.sandbox = \"none\": exec runs commands WITHOUT a sandbox"
        ) && out.contains("(agents with exec: main)"),
        "{out}{err}"
    );

    let fake = OpenAiFake::start().await;
    let gw = gateway(&home, &fake, "sandbox = \"none\"\nsecurity = \"full\"", "").await;
    assert_eq!(
        gw.log()
            .matches("Exec runs commands WITHOUT a sandbox")
            .count(),
        1,
        "{}",
        gw.log()
    );
    let output = call(&gw, &fake, json!({"command": "echo hi"})).await;
    assert!(
        output.starts_with("no sandbox (tools.exec.sandbox = \"none\")"),
        "{output}"
    );
    assert!(
        output.contains("NOT sandboxed") && output.ends_with("hi\n"),
        "{output}"
    );
}

#[tokio::test]
async fn doctor_says_whether_the_sandbox_works() {
    let home = TempDir::new();
    std::fs::write(
        home.path().join("pincer.toml"),
        "[agents.main]\nskills = [\"exec\"]\n",
    )
    .expect("write config");
    let (_, out, err) = common::run_cli(home.path(), &["doctor"], Some(common::free_port()));
    match Runner::new(Sandbox::Bwrap).probe().await {
        Ok(()) => assert!(
            out.contains("[ok  ] exec sandbox (bubblewrap) works (agents with exec: main)"),
            "{out}{err}"
        ),
        Err(e) => {
            println!("bubblewrap does not work here ({e}): doctor must say so");
            assert!(
                out.contains("[FAIL] exec sandbox (bubblewrap) does not work here"),
                "{out}{err}"
            );
        }
    }
    assert!(!out.contains("WITHOUT a sandbox"), "{out}");
}
