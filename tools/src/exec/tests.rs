//! The pure parts: the output cap, the workdir rules, the argv. Running commands is in
//! `tools/tests/exec_sandbox.rs`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::output::Capped;
use super::request::{prepare_workspace, resolve_workdir};
use super::sandbox::{bwrap_args, limited_shell, scrubbed_env};
use super::*;

// === output ===

#[test]
fn output_under_the_cap_is_kept_whole() {
    let mut out = Capped::new(10);
    out.push(b"hello");
    out.push(b"!");
    assert!(!out.truncated());
    assert_eq!(out.into_text(), "hello!");
}

#[test]
fn output_over_the_cap_keeps_head_and_tail_with_a_marker() {
    let mut out = Capped::new(10);
    for chunk in [&b"abc"[..], b"defgh", b"ijklmnop", b"qrstuvwxyz"] {
        out.push(chunk);
    }
    assert!(out.truncated());
    assert_eq!(out.total(), 26);
    let text = out.into_text();
    assert!(
        text.starts_with("abcde\n[... 16 bytes of output omitted"),
        "{text}"
    );
    assert!(text.ends_with("...]\nvwxyz"), "{text}");
}

#[test]
fn output_exactly_at_the_cap_is_not_cut() {
    let mut out = Capped::new(10);
    out.push(b"0123456789");
    assert!(!out.truncated());
    assert_eq!(out.into_text(), "0123456789");
}

#[test]
fn output_cut_in_one_big_push_keeps_its_last_bytes() {
    let mut out = Capped::new(4);
    out.push(b"ab");
    out.push(&[b'x'; 100]);
    out.push(b"yz");
    let text = out.into_text();
    assert!(text.starts_with("ab\n"), "{text}");
    assert!(text.ends_with("...]\nyz"), "{text}");
}

// === workdir ===

fn workspace() -> (PathBuf, PathBuf) {
    let base = std::env::temp_dir().join(format!(
        "pincer-exec-unit-{}-{}",
        std::process::id(),
        unique()
    ));
    let ws = prepare_workspace(&base.join("workspaces/main")).unwrap();
    std::fs::create_dir_all(ws.join("src/deep")).unwrap();
    std::fs::write(ws.join("file.txt"), "x").unwrap();
    (base, ws)
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[test]
fn workdir_inside_the_workspace_resolves() {
    let (base, ws) = workspace();
    assert_eq!(resolve_workdir(&ws, None).unwrap(), ws);
    assert_eq!(resolve_workdir(&ws, Some("")).unwrap(), ws);
    assert_eq!(resolve_workdir(&ws, Some(".")).unwrap(), ws);
    assert_eq!(resolve_workdir(&ws, Some("src")).unwrap(), ws.join("src"));
    assert_eq!(
        resolve_workdir(&ws, Some("src/deep/../deep/./")).unwrap(),
        ws.join("src/deep")
    );
    assert_eq!(resolve_workdir(&ws, Some("src/..")).unwrap(), ws);
    let absolute = ws.join("src").display().to_string();
    assert_eq!(
        resolve_workdir(&ws, Some(&absolute)).unwrap(),
        ws.join("src")
    );
    std::fs::remove_dir_all(base).unwrap();
}

#[test]
fn workdir_leaving_the_workspace_is_refused() {
    let (base, ws) = workspace();
    std::os::unix::fs::symlink("/etc", ws.join("etc-link")).unwrap();
    let escapes = [
        "..".to_string(),
        "../..".to_string(),
        "src/../../main".to_string(),
        "/etc".to_string(),
        "/".to_string(),
        format!("{}/../other", ws.display()),
        "etc-link".to_string(),
    ];
    for given in escapes {
        match resolve_workdir(&ws, Some(&given)) {
            Err(ExecError::WorkdirOutside { workdir }) => assert_eq!(workdir, given),
            other => panic!("{given}: {other:?}"),
        }
    }
    std::fs::remove_dir_all(base).unwrap();
}

#[test]
fn workdir_missing_or_a_file_is_refused_with_its_reason() {
    let (base, ws) = workspace();
    assert!(matches!(
        resolve_workdir(&ws, Some("nope")),
        Err(ExecError::WorkdirMissing { .. })
    ));
    assert!(matches!(
        resolve_workdir(&ws, Some("file.txt")),
        Err(ExecError::WorkdirNotADirectory { .. })
    ));
    let text = resolve_workdir(&ws, Some("../x")).unwrap_err().to_string();
    assert!(text.contains("outside the workspace"), "{text}");
    std::fs::remove_dir_all(base).unwrap();
}

// === request ===

#[test]
fn timeout_defaults_and_is_capped() {
    let req = Request::new("true");
    assert_eq!(req.effective_timeout(), DEFAULT_TIMEOUT);
    let long = req.clone().timeout(MAX_TIMEOUT * 3);
    assert_eq!(long.effective_timeout(), MAX_TIMEOUT);
    let short = req.timeout(std::time::Duration::from_secs(2));
    assert_eq!(short.effective_timeout().as_secs(), 2);
}

#[test]
fn empty_or_nul_commands_are_refused() {
    assert!(matches!(
        Request::new("  \n").check_command(),
        Err(ExecError::EmptyCommand)
    ));
    assert!(matches!(
        Request::new("echo a\0b").check_command(),
        Err(ExecError::NulInCommand)
    ));
}

// === argv ===

fn strings(args: &[OsString]) -> Vec<String> {
    args.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

fn has_pair(args: &[String], flag: &str, value: &str) -> bool {
    args.windows(2).any(|w| w[0] == flag && w[1] == value)
}

#[test]
fn bwrap_argv_isolates_and_runs_the_limited_shell_last() {
    let inner = limited_shell(&Limits::default(), "echo hi");
    let args = strings(&bwrap_args(
        Some(Path::new("/h/workspaces/a")),
        Some(Path::new("/h/workspaces/a/src")),
        false,
        inner.clone(),
    ));
    for flag in ["--unshare-all", "--die-with-parent", "--new-session"] {
        assert!(args.contains(&flag.to_string()), "{flag} missing: {args:?}");
    }
    assert!(!args.contains(&"--share-net".to_string()));
    assert!(has_pair(&args, "--cap-drop", "ALL"));
    assert!(has_pair(&args, "--chdir", "/h/workspaces/a/src"));
    assert!(
        args.windows(3)
            .any(|w| w == ["--bind", "/h/workspaces/a", "/h/workspaces/a"])
    );
    assert!(args.windows(3).any(|w| w == ["--ro-bind", "/usr", "/usr"]));
    assert!(
        !args
            .iter()
            .any(|a| a == "/etc/shadow" || a == "/etc/resolv.conf")
    );
    let position = |flag: &str| args.iter().position(|a| a == flag).unwrap();
    assert!(
        position("--remount-ro") > position("--bind"),
        "the root is made read-only after every mount: {args:?}"
    );
    let sep = position("--");
    assert_eq!(args[sep + 1..], strings(&inner)[..]);
    assert_eq!(args.last().unwrap(), "echo hi");

    let net = strings(&bwrap_args(None, None, true, inner));
    assert!(net.contains(&"--share-net".to_string()));
    assert!(net.contains(&"/etc/resolv.conf".to_string()));
}

#[test]
fn the_limits_are_set_by_prlimit_before_the_shell() {
    let limits = Limits {
        cpu: std::time::Duration::from_secs(7),
        address_space_bytes: 1 << 20,
        processes: 9,
        file_size_bytes: 4096,
    };
    let args = strings(&limited_shell(&limits, "x"));
    assert_eq!(
        args[..7],
        [
            PRLIMIT,
            "--cpu=7",
            "--as=1048576",
            "--nproc=9",
            "--fsize=4096",
            "--core=0",
            "--"
        ]
    );
    assert_eq!(args[7..9], ["/bin/sh", "-c"]);
}

#[test]
fn the_environment_is_four_variables() {
    let env = scrubbed_env(Path::new("/w"));
    let names: Vec<&str> = env.iter().map(|(k, _)| *k).collect();
    assert_eq!(names, ["PATH", "HOME", "LANG", "TERM"]);
    assert_eq!(env[1].1, "/w");
}
