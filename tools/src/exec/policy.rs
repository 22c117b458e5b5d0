//! Whether a call runs, is refused, or asks first: `tools.exec.security` and `ask` applied
//! to one command line.
//!
//! - `deny`: refused.
//! - `full`: runs; with `ask = "always"` asks first.
//! - `allowlist`: the line's binaries ([`allowlist::binaries`](super::allowlist::binaries))
//!   each matched against the patterns. A line that cannot be checked (a substitution, an
//!   expanded command name, …) is refused whatever `ask` says: a person asked about it
//!   could not know what it runs either. Otherwise, with every binary on the list it
//!   runs; a miss is refused with `ask = "off"` and asked about with `ask = "on-miss"`;
//!   `ask = "always"` asks about every binary.
//!
//! A question names one binary (its resolved path is the [`Verdict::Ask`] key, what an
//! `always` answer lets through from then on): a line with several binaries to ask about
//! asks about each in turn, and runs only when every answer allows it.

use std::path::Path;

use pincer_config::tools::{ExecAsk, ExecConfig, ExecSecurity};

use super::allowlist::{Binary, binaries, matches};

/// What to do with a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Run it without asking.
    Run,
    /// Do not run it; the reason is for the model.
    Refuse(String),
    /// Ask about each of these first, in order; run only if every answer allows it.
    Ask(Vec<Question>),
}

/// One question before a call runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// What an `always` answer lets through from then on: the binary's resolved path, or
    /// the whole command line when there is no binary to name.
    pub key: String,
    /// The command word as written, for what the model reads when it is denied.
    pub written: String,
}

/// What `config` says of running `command` with relative paths resolved in `workdir`.
pub fn decide(config: &ExecConfig, command: &str, workdir: &Path) -> Verdict {
    match config.security {
        ExecSecurity::Deny => Verdict::Refuse(
            "exec is turned off here (tools.exec.security = \"deny\"); the command was not run"
                .into(),
        ),
        ExecSecurity::Full => match config.ask {
            ExecAsk::Off | ExecAsk::OnMiss => Verdict::Run,
            ExecAsk::Always => Verdict::Ask(
                binaries(command, workdir)
                    .ok()
                    .map(questions)
                    .filter(|q| !q.is_empty())
                    .unwrap_or_else(|| whole_line(command)),
            ),
        },
        ExecSecurity::Allowlist => {
            let found = match binaries(command, workdir) {
                Ok(found) => found,
                Err(why) => {
                    return Verdict::Refuse(format!(
                        "{why} (tools.exec.security = \"allowlist\"); the command was not run"
                    ));
                }
            };
            if config.ask == ExecAsk::Always {
                let asked = questions(found);
                return Verdict::Ask(if asked.is_empty() {
                    whole_line(command)
                } else {
                    asked
                });
            }
            let misses: Vec<Binary> = found
                .into_iter()
                .filter(|b| !config.allowlist.iter().any(|p| matches(p, &b.path)))
                .collect();
            if misses.is_empty() {
                return Verdict::Run;
            }
            if config.ask == ExecAsk::Off {
                let named: Vec<String> = misses
                    .iter()
                    .map(|b| format!("`{}` ({})", b.written, b.path.display()))
                    .collect();
                return Verdict::Refuse(format!(
                    "{} not on tools.exec.allowlist, and tools.exec.ask = \"off\": the command was not run",
                    if named.len() == 1 {
                        format!("{} is", named[0])
                    } else {
                        format!("{} are", named.join(", "))
                    }
                ));
            }
            Verdict::Ask(questions(misses))
        }
    }
}

fn questions(found: Vec<Binary>) -> Vec<Question> {
    found
        .into_iter()
        .map(|b| Question {
            key: b.path.display().to_string(),
            written: b.written,
        })
        .collect()
}

fn whole_line(command: &str) -> Vec<Question> {
    vec![Question {
        key: command.to_string(),
        written: command.to_string(),
    }]
}
