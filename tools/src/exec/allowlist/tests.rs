//! Reading command lines for the allowlist: what each simple command runs, what is
//! refused, how paths resolve and patterns match; then the verdicts of `decide`.

use std::path::{Path, PathBuf};

use pincer_config::tools::{ExecAsk, ExecConfig, ExecSecurity};

use super::*;
use crate::exec::{Question, Verdict, decide};

/// Where `name` is found in the sandbox's PATH on this machine, as `resolve` gives it.
fn found(name: &str) -> String {
    resolve(name, Path::new("/"), false)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .display()
        .to_string()
}

fn paths(line: &str) -> Vec<String> {
    binaries(line, Path::new("/work/ws"))
        .unwrap_or_else(|e| panic!("{line:?}: {e}"))
        .into_iter()
        .map(|b| b.path.display().to_string())
        .collect()
}

fn refused(line: &str) -> String {
    match binaries(line, Path::new("/work/ws")) {
        Err(why) => why,
        Ok(found) => panic!("{line:?} was not refused: {found:?}"),
    }
}

// === splitting ===

#[test]
fn every_simple_command_of_a_line_is_found() {
    let (ls, cat, sort) = (found("ls"), found("cat"), found("sort"));
    assert_eq!(paths("ls"), [ls.as_str()]);
    assert_eq!(paths("ls;cat"), [ls.as_str(), cat.as_str()]);
    assert_eq!(
        paths("ls && cat f || sort"),
        [ls.as_str(), cat.as_str(), sort.as_str()]
    );
    assert_eq!(
        paths("ls | sort\ncat f"),
        [ls.as_str(), sort.as_str(), cat.as_str()]
    );
    assert_eq!(paths("ls & cat"), [ls.as_str(), cat.as_str()]);
    assert_eq!(
        paths("(cd x && ls) ; { cat; }"),
        [ls.as_str(), cat.as_str()]
    );
    assert_eq!(paths("ls; ls; ls"), [ls.as_str()], "each binary once");
}

#[test]
fn separators_inside_quotes_or_escaped_split_nothing() {
    let grep = found("grep");
    assert!(paths("echo 'a;b && c | d'").is_empty());
    assert_eq!(paths("echo \"a;b\" && grep ';' f"), [grep.as_str()]);
    assert_eq!(paths(r"grep a\;rm f"), [grep.as_str()]);
    assert_eq!(
        paths("grep '$(rm)' f"),
        [grep.as_str()],
        "single quotes keep it literal"
    );
}

#[test]
fn assignments_redirections_and_builtins_are_not_commands() {
    let (cat, ls) = (found("cat"), found("ls"));
    assert_eq!(paths("X=1 cat f"), [cat.as_str()]);
    assert_eq!(paths("X=1 Y='a b' cat f"), [cat.as_str()]);
    assert_eq!(paths("echo hi > f && cat f"), [cat.as_str()]);
    assert_eq!(paths("> out 2>&1 cat < in"), [cat.as_str()]);
    assert_eq!(paths("cat f 2>/dev/null >>log"), [cat.as_str()]);
    assert_eq!(
        paths("cd src && pwd && true && [ -f x ] && test -d y"),
        Vec::<String>::new()
    );
    assert_eq!(
        paths("if [ -f x ]; then cat x; else ls; fi"),
        [cat.as_str(), ls.as_str()]
    );
    assert_eq!(paths("for f in a b; do cat \"$f\"; done"), [cat.as_str()]);
    assert_eq!(paths("while true; do ls; done"), [ls.as_str()]);
    assert_eq!(
        paths("! cat f # rm -rf /"),
        [cat.as_str()],
        "a comment runs nothing"
    );
    assert_eq!(paths("exec cat f"), [cat.as_str()]);
    assert_eq!(paths("command -p cat f"), [cat.as_str()]);
    assert_eq!(
        paths("'cat' f"),
        [cat.as_str()],
        "a quoted command name is still one"
    );
    let why = refused("\"X\"=1");
    assert!(
        why.contains("`X=1` is not found"),
        "a quoted name is no assignment but a command: {why}"
    );
}

#[test]
fn env_is_checked_and_so_is_what_it_runs() {
    let (env, cat) = (found("env"), found("cat"));
    assert_eq!(paths("env X=1 cat f"), [env.as_str(), cat.as_str()]);
    assert_eq!(
        paths("env -i -u HOME X=1 -- cat f"),
        [env.as_str(), cat.as_str()]
    );
    assert_eq!(paths("env"), [env.as_str()]);
    assert!(refused("env -S 'rm -rf .'").contains("env -S"));
    assert!(refused("env PATH=. cat").contains("`PATH`"));
}

#[test]
fn here_documents_are_bodies_not_commands() {
    let cat = found("cat");
    assert_eq!(paths("cat <<EOF\nrm -rf /\nEOF\n"), [cat.as_str()]);
    assert_eq!(
        paths("cat <<-'END' > f\n\trm x\n\tEND\ncat f"),
        [cat.as_str()]
    );
    assert_eq!(
        paths("cat <<'EOF'\n$(rm -rf /)\nEOF"),
        [cat.as_str()],
        "quoted: literal"
    );
    assert!(refused("cat <<EOF\n$(rm -rf /)\nEOF").contains("command substitution"));
    assert!(refused("cat <<< x").contains("here-strings"));
}

// === refusals ===

#[test]
fn substitutions_are_refused_with_a_reason() {
    for line in [
        "echo $(rm -rf .)",
        "echo \"$(id)\"",
        "echo `id`",
        "echo \"`id`\"",
        "X=$(id) ls",
        "echo $((1 + 2))",
    ] {
        let why = refused(line);
        assert!(why.contains("command substitution"), "{line}: {why}");
        assert!(why.contains("cannot be checked"), "{line}: {why}");
    }
    for line in ["diff <(ls a) <(ls b)", "tee >(cat)"] {
        assert!(refused(line).contains("process substitution"), "{line}");
    }
    assert!(paths(r"echo \`id\` \$HOME").is_empty(), "escaped: text");
}

#[test]
fn what_cannot_be_known_before_it_runs_is_refused() {
    for (line, says) in [
        ("$SHELL -c x", "is expanded"),
        ("\"$X\" f", "is expanded"),
        ("/usr/bin/l* f", "is expanded"),
        ("~/bin/tool", "is expanded"),
        ("{ls,-la}", "is expanded"),
        ("eval ls", "`eval` runs text as code"),
        (". ./env.sh", "`.` runs text as code"),
        ("source x", "runs text as code"),
        ("trap 'rm x' EXIT", "`trap`"),
        ("alias ls=rm", "`alias`"),
        ("PATH=/tmp ls", "`PATH`"),
        ("export PATH=.:$PATH", "`PATH`"),
        ("LD_PRELOAD=./x.so cat", "`LD_PRELOAD`"),
        ("case x in a) ls;; esac", "`case`"),
        ("no-such-binary-here-x", "not found"),
        (
            "cd sub && ./build.sh",
            "relative path after the line changed directory",
        ),
        ("echo 'open", "not closed"),
        ("echo \"open", "not closed"),
    ] {
        let why = refused(line);
        assert!(why.contains(says), "{line}: {why}");
    }
}

// === resolving ===

#[test]
fn paths_resolve_as_the_shell_finds_them() {
    let ws = std::env::temp_dir().join(format!("pincer-allowlist-{}", std::process::id()));
    std::fs::create_dir_all(ws.join("bin")).unwrap();
    let ws = ws.canonicalize().unwrap();
    let sh = PathBuf::from(found("sh"));
    assert_eq!(
        resolve("/usr/bin/../bin/sh", &ws, false).unwrap(),
        sh,
        "the directory made canonical, the name kept"
    );
    assert!(
        sh.starts_with("/usr/bin") || sh.starts_with("/bin"),
        "{sh:?}"
    );
    assert_eq!(
        resolve("./script.sh", &ws, false).unwrap(),
        ws.join("script.sh")
    );
    assert_eq!(
        resolve("bin/../bin/tool", &ws, false).unwrap(),
        ws.join("bin/tool")
    );
    assert_eq!(
        resolve("new/dir/tool", &ws, false).unwrap(),
        ws.join("new/dir/tool"),
        "a directory the line may make first: as written"
    );
    assert!(resolve("new/../../x", &ws, false).is_err());
    assert!(resolve("./script.sh", &ws, true).is_err());
    assert_eq!(
        resolve("/opt/nowhere/tool", &ws, true).unwrap(),
        PathBuf::from("/opt/nowhere/tool"),
        "an absolute path does not depend on the directory"
    );
    std::fs::remove_dir_all(&ws).unwrap();
}

// === matching ===

#[test]
fn patterns_match_whole_segments() {
    let m = |p: &str, path: &str| matches(p, Path::new(path));
    assert!(m("/usr/bin/git", "/usr/bin/git"));
    assert!(!m("/usr/bin/git", "/usr/bin/gitk"));
    assert!(m("/usr/bin/*", "/usr/bin/git"));
    assert!(!m("/usr/bin/*", "/usr/bin/x/y"), "`*` stays in its segment");
    assert!(!m("/usr/*", "/usr/bin/git"));
    assert!(m("/usr/*/git", "/usr/bin/git"));
    assert!(m("/usr/bin/python3*", "/usr/bin/python3.11"));
    assert!(m("/usr/bin/*-config", "/usr/bin/pkg-config"));
    assert!(!m("/usr/bin/*-config", "/usr/bin/config"));
    assert!(!m("/usr/bin/*", "/usr/local/bin/git"));
    assert!(!m("/work/ws/*", "/work/ws2/x"));
}

// === verdicts ===

fn config(security: ExecSecurity, ask: ExecAsk, allowlist: &[&str]) -> ExecConfig {
    ExecConfig {
        security,
        ask,
        allowlist: allowlist.iter().map(|s| s.to_string()).collect(),
        ..ExecConfig::default()
    }
}

fn keys(verdict: Verdict) -> Vec<String> {
    match verdict {
        Verdict::Ask(questions) => questions.into_iter().map(|q| q.key).collect(),
        other => panic!("not a question: {other:?}"),
    }
}

fn refusal(verdict: Verdict) -> String {
    match verdict {
        Verdict::Refuse(why) => why,
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn deny_refuses_everything_naming_the_key() {
    for ask in [ExecAsk::Off, ExecAsk::OnMiss, ExecAsk::Always] {
        let why = refusal(decide(
            &config(ExecSecurity::Deny, ask, &["/*"]),
            "true",
            Path::new("/"),
        ));
        assert!(why.contains("tools.exec.security = \"deny\""), "{why}");
    }
}

#[test]
fn full_runs_everything_and_asks_only_when_told_to() {
    let dir = Path::new("/");
    for ask in [ExecAsk::Off, ExecAsk::OnMiss] {
        let c = config(ExecSecurity::Full, ask, &[]);
        assert_eq!(decide(&c, "echo $(rm -rf .)", dir), Verdict::Run);
    }
    let c = config(ExecSecurity::Full, ExecAsk::Always, &[]);
    let cat = found("cat");
    assert_eq!(keys(decide(&c, "cat f | cat", dir)), [cat]);
    assert_eq!(
        keys(decide(&c, "echo $(id)", dir)),
        ["echo $(id)"],
        "what cannot be read is asked about as a whole line"
    );
}

#[test]
fn allowlist_runs_hits_and_asks_or_refuses_misses() {
    let dir = Path::new("/");
    let (cat, sort) = (found("cat"), found("sort"));
    let cat_only = [cat.as_str()];
    let on_miss = config(ExecSecurity::Allowlist, ExecAsk::OnMiss, &cat_only);
    assert_eq!(decide(&on_miss, "cat f && echo ok", dir), Verdict::Run);
    assert_eq!(
        decide(&on_miss, "cat f | sort", dir),
        Verdict::Ask(vec![Question {
            key: sort.clone(),
            written: "sort".into()
        }])
    );
    let off = config(ExecSecurity::Allowlist, ExecAsk::Off, &cat_only);
    let why = refusal(decide(&off, "cat f | sort", dir));
    assert!(
        why.contains(&format!("`sort` ({}) is not on tools.exec.allowlist", sort)),
        "{why}"
    );
    let why = refusal(decide(&on_miss, "cat $(ls)", dir));
    assert!(
        why.contains("command substitution") && why.contains("allowlist"),
        "{why}"
    );
    let always = config(ExecSecurity::Allowlist, ExecAsk::Always, &["/*/*/*"]);
    assert_eq!(
        keys(decide(&always, "cat f | sort", dir)),
        [cat.clone(), sort.clone()]
    );
    assert_eq!(keys(decide(&always, "echo hi", dir)), ["echo hi"]);
    let glob = config(ExecSecurity::Allowlist, ExecAsk::Off, &["/usr/bin/*"]);
    if cat.starts_with("/usr/bin/") {
        assert_eq!(
            decide(&glob, "/bin/cat f", dir),
            Verdict::Run,
            "/bin is /usr/bin"
        );
    }
}
