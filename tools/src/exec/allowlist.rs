//! What binaries a command line runs, for `tools.exec.security = "allowlist"`: the line
//! is read as POSIX `sh` (Debian's `dash`, the sandbox's `/bin/sh`) reads it, split into
//! simple commands, and the command word of each resolved to a path the way the shell
//! would find it. [`matches`] then holds each path against the operator's patterns.
//!
//! # What is read
//!
//! - Simple commands are split on `;`, `&&`, `||`, `|`, `&`, newlines and parentheses,
//!   outside quotes; `'…'`, `"…"` and backslashes quote as in `sh`; `#` starts a comment.
//! - In each, leading assignments (`X=1 cmd`) and redirections (`> f`, `2>&1`, `<<EOF`,
//!   with the here-document's body) are skipped; the first word left is the command.
//!   Reserved words that lead to one (`if`, `then`, `do`, `!`, `{`, …) are skipped too;
//!   a `for` header names no command.
//! - `env` runs a command: its own path and the command it runs are both checked; `exec`
//!   and `command` likewise check the command they run.
//! - A name is found in the sandbox's `PATH` ([`PATH`](super::PATH)); a path with a `/`
//!   is taken as written, relative to the workdir. Either way the directory's symlinks
//!   are followed and the file name kept: `/bin/ls` is `/usr/bin/ls` on a merged-`/usr`
//!   system, `/usr/bin/../bin/sh` is `/usr/bin/sh`.
//! - A few builtins that run nothing (`cd`, `echo`, `printf`, `test`, `true`, `export`,
//!   …) need no binary.
//!
//! # What is refused, whatever the allowlist says
//!
//! What runs cannot be known before the line runs: command substitution (`$(…)`,
//! backticks, `$((…))` arithmetic included, in double quotes and unquoted
//! here-documents too), process substitution (`<(…)`, `>(…)`: not `dash` syntax, but
//! `bash` runs it where `/bin/sh` is `bash`), a command name that is expanded
//! (`$X`, `*`, `~`, `{a,b}`), assigning `PATH`, `ENV`, `BASH_ENV`, `IFS` or an `LD_*`
//! variable (which change what a name finds or what a binary loads), the builtins that
//! run text as code (`eval`, `.`, `source`, `trap`, `alias`, …), `case`, `env -S`, a
//! command not found, and a relative path after the line changed directory (it would
//! name another file).
//!
//! # What it does not see
//!
//! An allowed program that runs others runs whatever it is told to: a shell (`sh -c`),
//! `xargs`, `find -exec`, `timeout`, `nice`, an interpreter, `git` with hooks or aliases
//! the workspace holds. A path in the workspace is resolved as it is when the call is
//! checked; the line can change it before it runs. Where `/bin/sh` is `bash` rather than
//! `dash`, `bash`'s own ways to run code from an expansion (an array subscript in `read`,
//! `printf -v` or `test -v`) are not looked for. The allowlist says what runs without
//! asking; the sandbox is what keeps it in its workspace.

use std::path::{Component, Path, PathBuf};

use super::PATH;

#[cfg(test)]
mod tests;

/// A binary a line runs: the word as written and the path it resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binary {
    /// The command word as written, quotes removed.
    pub written: String,
    /// Where it resolves.
    pub path: PathBuf,
}

/// Builtins of `sh` that run no other program and read no text as code: they need no
/// binary and no approval.
const PLAIN_BUILTINS: &[&str] = &[
    ":", "[", "break", "cd", "continue", "echo", "exit", "export", "false", "getopts", "jobs",
    "local", "popd", "printf", "pushd", "pwd", "read", "readonly", "return", "set", "shift",
    "test", "times", "true", "type", "ulimit", "umask", "unset", "wait",
];

/// Builtins that run text as code or rebind names: what they run cannot be checked.
const CODE_BUILTINS: &[&str] = &[
    ".", "alias", "builtin", "coproc", "declare", "enable", "eval", "fc", "hash", "let", "source",
    "trap", "typeset",
];

/// Builtins that run the command named by their next word.
const WRAPPER_BUILTINS: &[&str] = &["command", "exec"];

/// Reserved words after which a command starts, and those that end a compound command.
const LEADING_WORDS: &[&str] = &[
    "!", "{", "}", "do", "done", "elif", "else", "esac", "fi", "if", "then", "until", "while",
];

/// Variables whose value changes which binary a name finds or what a binary loads.
fn forbidden_variable(name: &str) -> bool {
    matches!(name, "PATH" | "ENV" | "BASH_ENV" | "IFS" | "CDPATH") || name.starts_with("LD_")
}

// === lexing ===

/// A word after quote removal, with what the shell would still expand in it.
#[derive(Debug, Clone, Default)]
struct Word {
    text: String,
    /// Whether any part was quoted or escaped.
    quoted: bool,
    /// Where in `text` quoting began first (an assignment's name must be unquoted).
    first_quote: Option<usize>,
    /// An unquoted or double-quoted `$`: a parameter expansion.
    dollar: bool,
    /// Unquoted `*`, `?`, `[…]`, `{`, or a leading `~`: a pattern or expansion.
    pattern: bool,
}

#[derive(Debug)]
enum Token {
    Word(Word),
    /// The next word is a redirection's target, not part of the command.
    Redirect,
    /// Between two simple commands.
    Separator,
}

/// A here-document waiting for the end of its line.
#[derive(Debug)]
struct HereDoc {
    delimiter: String,
    strip_tabs: bool,
    /// A quoted delimiter: the body is taken as is, nothing expanded.
    literal: bool,
}

/// Splits `line` into tokens, or says why it cannot be checked.
fn lex(line: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = line.chars().collect();
    let mut tokens = Vec::new();
    let mut word: Option<Word> = None;
    let mut heredoc_next: Option<bool> = None;
    let mut pending: Vec<HereDoc> = Vec::new();
    let mut i = 0;

    // Ends the word in progress, if any.
    fn finish(
        word: &mut Option<Word>,
        tokens: &mut Vec<Token>,
        heredoc_next: &mut Option<bool>,
        pending: &mut Vec<HereDoc>,
    ) {
        if let Some(w) = word.take() {
            if let Some(strip_tabs) = heredoc_next.take() {
                pending.push(HereDoc {
                    delimiter: w.text.clone(),
                    strip_tabs,
                    literal: w.quoted,
                });
            }
            tokens.push(Token::Word(w));
        }
    }
    fn mark_quoted(w: &mut Word) {
        w.quoted = true;
        if w.first_quote.is_none() {
            w.first_quote = Some(w.text.len());
        }
    }

    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            '\\' => {
                match next {
                    // A line continuation joins the lines.
                    Some('\n') => {}
                    Some(n) => {
                        let w = word.get_or_insert_with(Word::default);
                        mark_quoted(w);
                        w.text.push(n);
                    }
                    None => {}
                }
                i += 2;
                continue;
            }
            '\'' => {
                let w = word.get_or_insert_with(Word::default);
                mark_quoted(w);
                let end = chars[i + 1..]
                    .iter()
                    .position(|&c| c == '\'')
                    .ok_or("a single quote is not closed")?;
                w.text.extend(&chars[i + 1..i + 1 + end]);
                i += end + 2;
                continue;
            }
            '"' => {
                let w = word.get_or_insert_with(Word::default);
                mark_quoted(w);
                let mut j = i + 1;
                loop {
                    let Some(&d) = chars.get(j) else {
                        return Err("a double quote is not closed".into());
                    };
                    match d {
                        '"' => break,
                        '\\' => match chars.get(j + 1) {
                            Some('\n') => j += 1,
                            Some(&e @ ('$' | '`' | '"' | '\\')) => {
                                w.text.push(e);
                                j += 1;
                            }
                            _ => w.text.push('\\'),
                        },
                        '`' => return Err(substitution()),
                        '$' if chars.get(j + 1) == Some(&'(') => return Err(substitution()),
                        '$' => {
                            w.dollar = true;
                            w.text.push('$');
                        }
                        other => w.text.push(other),
                    }
                    j += 1;
                }
                i = j + 1;
                continue;
            }
            '`' => return Err(substitution()),
            '$' if next == Some('(') => return Err(substitution()),
            '$' => {
                let w = word.get_or_insert_with(Word::default);
                w.dollar = true;
                w.text.push('$');
            }
            '<' | '>' if next == Some('(') => {
                return Err(
                    "process substitution (`<(…)`, `>(…)`) is refused in allowlist mode: what it runs cannot be checked before it runs".into(),
                );
            }
            '<' | '>' => {
                // Digits right before the operator are the descriptor it redirects.
                if word
                    .as_ref()
                    .is_some_and(|w| !w.quoted && w.text.chars().all(|d| d.is_ascii_digit()))
                {
                    word = None;
                }
                finish(&mut word, &mut tokens, &mut heredoc_next, &mut pending);
                let mut op = String::from(c);
                while let Some(&n) = chars.get(i + op.chars().count()) {
                    let longer = format!("{op}{n}");
                    if matches!(
                        longer.as_str(),
                        "<<" | "<<-" | "<&" | "<>" | ">>" | ">&" | ">|"
                    ) {
                        op = longer;
                    } else {
                        break;
                    }
                }
                i += op.chars().count();
                if op == "<<" && chars.get(i) == Some(&'<') {
                    return Err("here-strings (`<<<`) are not `sh` and are refused in allowlist mode; use a pipe or a here-document".into());
                }
                if op.starts_with("<<") {
                    heredoc_next = Some(op == "<<-");
                }
                tokens.push(Token::Redirect);
                continue;
            }
            ';' | '&' | '|' | '(' | ')' => {
                finish(&mut word, &mut tokens, &mut heredoc_next, &mut pending);
                tokens.push(Token::Separator);
            }
            '\n' => {
                finish(&mut word, &mut tokens, &mut heredoc_next, &mut pending);
                tokens.push(Token::Separator);
                i += 1;
                for doc in pending.drain(..) {
                    i = skip_heredoc(&chars, i, &doc)?;
                }
                continue;
            }
            '#' if word.is_none() => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            ' ' | '\t' => finish(&mut word, &mut tokens, &mut heredoc_next, &mut pending),
            other => {
                let w = word.get_or_insert_with(Word::default);
                // `[` alone is `test`; `[` followed by more is a bracket pattern.
                if matches!(other, '*' | '?' | '{')
                    || (other == '[' && next.is_some_and(|n| !n.is_whitespace()))
                    || (other == '~' && w.text.is_empty())
                {
                    w.pattern = true;
                }
                w.text.push(other);
            }
        }
        i += 1;
    }
    finish(&mut word, &mut tokens, &mut heredoc_next, &mut pending);
    Ok(tokens)
}

fn substitution() -> String {
    "command substitution (`$(…)`, backticks) is refused in allowlist mode: what it runs cannot be checked before it runs; run the inner command on its own and use its output".into()
}

/// Skips a here-document's body from `start` (the line after its operator's) to past its
/// delimiter line; an unquoted delimiter's body is expanded, so a substitution in it is
/// refused.
fn skip_heredoc(chars: &[char], start: usize, doc: &HereDoc) -> Result<usize, String> {
    let mut i = start;
    while i < chars.len() {
        let end = chars[i..]
            .iter()
            .position(|&c| c == '\n')
            .map_or(chars.len(), |p| i + p);
        let line: String = chars[i..end].iter().collect();
        let shown = if doc.strip_tabs {
            line.trim_start_matches('\t')
        } else {
            line.as_str()
        };
        i = (end + 1).min(chars.len());
        if shown == doc.delimiter {
            return Ok(i);
        }
        if !doc.literal && (has_unescaped(&line, "$(") || has_unescaped(&line, "`")) {
            return Err(substitution());
        }
    }
    Ok(i)
}

/// Whether `needle` occurs in `line` not preceded by a backslash.
fn has_unescaped(line: &str, needle: &str) -> bool {
    line.match_indices(needle)
        .any(|(at, _)| !line[..at].ends_with('\\'))
}

// === commands ===

/// The binaries `line` runs, in order and each once, with relative paths resolved in
/// `workdir`; or why the line cannot be checked.
pub fn binaries(line: &str, workdir: &Path) -> Result<Vec<Binary>, String> {
    let tokens = lex(line)?;
    let mut found: Vec<Binary> = Vec::new();
    let mut dir_changed = false;
    let mut words: Vec<Word> = Vec::new();
    let mut skip_next = false;
    let mut flush = |words: &mut Vec<Word>, dir_changed: &mut bool| -> Result<(), String> {
        let taken = std::mem::take(words);
        for binary in simple_command(&taken, workdir, dir_changed)? {
            if !found.iter().any(|b| b.path == binary.path) {
                found.push(binary);
            }
        }
        Ok(())
    };
    for token in tokens {
        match token {
            Token::Redirect => skip_next = true,
            Token::Word(_) if skip_next => skip_next = false,
            Token::Word(w) => words.push(w),
            Token::Separator => {
                skip_next = false;
                flush(&mut words, &mut dir_changed)?;
            }
        }
    }
    flush(&mut words, &mut dir_changed)?;
    Ok(found)
}

/// The binaries of one simple command (its words, redirections left out).
fn simple_command(
    words: &[Word],
    workdir: &Path,
    dir_changed: &mut bool,
) -> Result<Vec<Binary>, String> {
    let mut out = Vec::new();
    let mut rest = words;
    loop {
        let Some((first, tail)) = rest.split_first() else {
            return Ok(out);
        };
        if first.quoted || first.dollar {
            break;
        }
        match first.text.as_str() {
            word if LEADING_WORDS.contains(&word) => rest = tail,
            // `for x in a b c`: no command until `do`.
            "for" | "select" => return Ok(out),
            "function" => rest = tail.get(1..).unwrap_or_default(),
            "case" => {
                return Err(
                    "`case` is not supported in allowlist mode; write it with `if` and `test`"
                        .into(),
                );
            }
            _ => break,
        }
    }
    // Assignments before the command.
    while let Some((first, tail)) = rest.split_first() {
        let Some(name) = assignment(first) else { break };
        check_variable(name)?;
        rest = tail;
    }
    loop {
        let Some((command, args)) = rest.split_first() else {
            return Ok(out);
        };
        if command.dollar || command.pattern {
            return Err(format!(
                "the command name `{}` is expanded by the shell, so what it runs cannot be checked in allowlist mode; write the command out",
                command.text
            ));
        }
        let name = command.text.as_str();
        if PLAIN_BUILTINS.contains(&name) {
            if matches!(name, "cd" | "pushd" | "popd") {
                *dir_changed = true;
            }
            if matches!(name, "export" | "readonly" | "local") {
                for arg in args {
                    if let Some(var) = assignment(arg).or_else(|| plain_name(arg)) {
                        check_variable(var)?;
                    }
                }
            }
            return Ok(out);
        }
        if CODE_BUILTINS.contains(&name) {
            return Err(format!(
                "`{name}` runs text as code or rebinds names, which cannot be checked in allowlist mode"
            ));
        }
        if WRAPPER_BUILTINS.contains(&name) {
            rest = skip_options(args);
            continue;
        }
        let path = resolve(name, workdir, *dir_changed)?;
        let is_env = path.file_name().is_some_and(|n| n == "env");
        out.push(Binary {
            written: name.to_string(),
            path,
        });
        if !is_env {
            return Ok(out);
        }
        rest = env_command(args, dir_changed)?;
    }
}

/// The arguments of `env` from the command it runs on (options and assignments skipped),
/// or why they cannot be read.
fn env_command<'a>(mut args: &'a [Word], dir_changed: &mut bool) -> Result<&'a [Word], String> {
    while let Some((arg, tail)) = args.split_first() {
        let text = arg.text.as_str();
        if text == "--" {
            return Ok(tail);
        }
        if let Some(name) = assignment(arg) {
            check_variable(name)?;
            args = tail;
            continue;
        }
        if !text.starts_with('-') || text == "-" {
            if text == "-" {
                args = tail;
                continue;
            }
            return Ok(args);
        }
        match text {
            "-i" | "--ignore-environment" | "-0" | "--null" | "-v" | "--debug" => args = tail,
            "-u" | "--unset" => args = tail.get(1..).unwrap_or_default(),
            "-C" | "--chdir" => {
                *dir_changed = true;
                args = tail.get(1..).unwrap_or_default();
            }
            t if t.starts_with("--unset=") || (t.starts_with("-u") && t.len() > 2) => {
                args = tail;
            }
            t if t.starts_with("--chdir=") || (t.starts_with("-C") && t.len() > 2) => {
                *dir_changed = true;
                args = tail;
            }
            t if t.starts_with("-S") || t.starts_with("--split-string") => {
                return Err("`env -S` splits a string into a command line, which cannot be checked in allowlist mode".into());
            }
            other => {
                return Err(format!(
                    "`env {other}` is not an option the allowlist check knows; write the command without it"
                ));
            }
        }
    }
    Ok(args)
}

/// Words from the first that is not an option (after `--` when there is one).
fn skip_options(mut args: &[Word]) -> &[Word] {
    while let Some((arg, tail)) = args.split_first() {
        if arg.quoted || !arg.text.starts_with('-') {
            break;
        }
        args = tail;
        if arg.text == "--" {
            break;
        }
    }
    args
}

/// The variable `word` assigns (`NAME=value`, the name unquoted), if it is an assignment.
fn assignment(word: &Word) -> Option<&str> {
    let eq = word.text.find('=')?;
    if word.first_quote.is_some_and(|q| q <= eq) {
        return None;
    }
    let name = &word.text[..eq];
    is_name(name).then_some(name)
}

/// `word` as a bare variable name (`export PATH`).
fn plain_name(word: &Word) -> Option<&str> {
    is_name(&word.text).then_some(word.text.as_str())
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn check_variable(name: &str) -> Result<(), String> {
    if forbidden_variable(name) {
        return Err(format!(
            "setting `{name}` is refused in allowlist mode: it changes which binary a name finds or what a binary loads"
        ));
    }
    Ok(())
}

// === resolving ===

/// Where the command word `name` leads: found in [`PATH`] when it has no `/`, else taken
/// relative to `workdir`; the directory's symlinks followed, the file name kept.
pub fn resolve(name: &str, workdir: &Path, dir_changed: bool) -> Result<PathBuf, String> {
    if !name.contains('/') {
        for dir in PATH.split(':') {
            let candidate = Path::new(dir).join(name);
            if candidate.is_file() {
                return Ok(settle(&candidate).unwrap_or(candidate));
            }
        }
        return Err(format!(
            "`{name}` is not found in the sandbox's PATH ({PATH}): it is not installed, or give its path"
        ));
    }
    let written = Path::new(name);
    if !written.is_absolute() && dir_changed {
        return Err(format!(
            "`{name}` is a relative path after the line changed directory: give its absolute path"
        ));
    }
    let path = workdir.join(written);
    if let Some(settled) = settle(&path) {
        return Ok(settled);
    }
    // The directory does not exist (yet): the path as written, when it says plainly
    // where it is.
    if written.components().any(|c| c == Component::ParentDir) {
        return Err(format!(
            "`{name}` goes through `..` in a directory that does not exist, so where it leads cannot be known"
        ));
    }
    Ok(path
        .components()
        .filter(|c| *c != Component::CurDir)
        .collect())
}

/// `path` with its directory made canonical and its file name kept, when the directory
/// exists and the name is a file name.
fn settle(path: &Path) -> Option<PathBuf> {
    let name = match path.components().next_back()? {
        Component::Normal(name) => name,
        _ => return None,
    };
    let dir = path.parent()?.canonicalize().ok()?;
    Some(dir.join(name))
}

// === matching ===

/// Whether `path` matches allowlist `pattern`: an absolute path whose `*` stands for any
/// run of characters within one segment (`/usr/bin/*` matches `/usr/bin/git`, not
/// `/usr/bin/x/y`).
pub fn matches(pattern: &str, path: &Path) -> bool {
    let Some(path) = path.to_str() else {
        return false;
    };
    let pattern: Vec<&str> = pattern.split('/').collect();
    let segments: Vec<&str> = path.split('/').collect();
    pattern.len() == segments.len()
        && pattern
            .iter()
            .zip(&segments)
            .all(|(p, s)| glob_segment(p, s))
}

/// Whether `text` matches `pattern`, whose `*` stands for any run of characters.
fn glob_segment(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}
