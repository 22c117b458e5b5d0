//! `exec`: a shell command line run in the agent's workspace (`$PINCER_HOME/workspaces/
//! <agent>`) through `pincer_tools::exec`, under the rules of `[tools.exec]`.
//!
//! A call goes through three steps:
//!
//! 1. **Which commands run** (`security`, `ask`, `allowlist`; see
//!    `pincer_tools::exec::decide`): `deny` refuses every call; `full` runs every
//!    command, asking first with `ask = "always"`; `allowlist` (the default) resolves the
//!    binary of every simple command of the line (split on `;`, `&&`, `||`, `|`, `&`,
//!    newlines; the first word after assignments) through the sandbox's `PATH` (a path
//!    as written, relative ones in the workdir) and runs the line when each matches a
//!    pattern. `$(…)`, backticks, `<(…)` and `>(…)` are refused outright in that mode.
//!    A miss is refused with `ask = "off"`, asked about with `ask = "on-miss"`; `ask =
//!    "always"` asks about every binary.
//! 2. **Asking** through the call's [`Approver`](super::Approver): one question per
//!    binary (its resolved path is the key an `always` answer remembers; the approver
//!    side remembers it), in turn, all within `approvalTimeout`. Any answer but
//!    once/always (denied, no answer in time, no one to ask) and the command does not
//!    run; the model is told which.
//! 3. **Running** in the sandbox (`sandbox = "bwrap"`, the default) or without one
//!    (`"none"`, which the result says), with the call's `timeout` (default
//!    `tools.exec.timeout`, cut to `maxTimeout`), the network only with `network = true`.
//!
//! The call is bounded by its own limits, `approvalTimeout` plus its timeout, rather than
//! by `tools.callTimeout`: a question may wait five minutes and a build run ten.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use pincer_config::Config;
use pincer_config::tools::{ExecConfig, ExecSandbox, ExecSecurity};
use pincer_tools::exec::{Question, Request, Runner, Sandbox, Verdict, decide};

use super::{Approver, Ask, Context, Decision, Risk, Running, Tool};

/// The tool.
pub(super) struct Exec;

/// Time past a call's own limits before the gateway gives up on it: the runner kills the
/// command at its timeout, then reaps it and reads what is left of its output.
const GRACE: Duration = Duration::from_secs(10);

impl Tool for Exec {
    fn name(&self) -> &'static str {
        "exec"
    }

    fn description(&self) -> &'static str {
        "Runs a shell command line (/bin/sh -c) in your workspace directory and returns its exit status and output (stdout and stderr together; long output keeps its start and end). It runs in a sandbox: only the workspace is writable, other files are read-only or absent, no network unless the operator allows it. Some commands need approval from the person in the chat first; command substitution ($(...), backticks) may be refused."
    }

    fn schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "command": { "type": "string", "description": "The shell command line." },
                "workdir": {
                    "type": "string",
                    "description": "Directory to run in, relative to the workspace (default: the workspace)."
                },
                "timeout": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "Seconds before every process of the command is killed (default 60; the operator caps it)."
                }
            },
            "required": ["command"],
            "additionalProperties": false,
        })
    }

    fn risk(&self) -> Risk {
        Risk::Acts
    }

    fn status(&self) -> &'static str {
        "Running a command…"
    }

    fn summary(&self, args: &Value) -> String {
        let command = args
            .get("command")
            .and_then(Value::as_str)
            .unwrap_or_default();
        // One line: a person recognizes the command by its start.
        let line = command.lines().next().unwrap_or_default();
        let mut shown: String = line.chars().take(80).collect();
        if shown.len() < command.len() {
            shown.push('…');
        }
        shown
    }

    fn time_limit(&self, args: &Value, config: &Config) -> Duration {
        let exec = &config.tools.exec;
        let timeout =
            request_of(args, exec).map_or(exec.max_timeout, |r| r.timeout.unwrap_or(exec.timeout));
        exec.approval_timeout + timeout + GRACE
    }

    fn run(&self, args: Value, ctx: Context) -> Running {
        Box::pin(async move {
            let exec = &ctx.config.tools.exec;
            let request = request_of(&args, exec)?;
            let workspace = workspace_of(&ctx)?;
            if exec.security == ExecSecurity::Deny {
                return Err(refusal(decide(exec, &request.command, &workspace)));
            }
            let workdir =
                pincer_tools::exec::workdir(&workspace, &request).map_err(|e| e.to_string())?;
            match decide(exec, &request.command, &workdir) {
                Verdict::Run => {}
                Verdict::Refuse(why) => return Err(why),
                Verdict::Ask(questions) => {
                    approve(
                        &ctx.approver,
                        &request.command,
                        questions,
                        exec.approval_timeout,
                    )
                    .await?;
                }
            }
            let runner = Runner::new(sandbox_of(exec.sandbox));
            let outcome = runner
                .run(&workspace, &request)
                .await
                .map_err(|e| e.to_string())?;
            let report = outcome.report();
            Ok(if outcome.sandboxed {
                report
            } else {
                format!(
                    "no sandbox (tools.exec.sandbox = \"none\"): the command ran as the gateway's user, with its access\n{report}"
                )
            })
        })
    }
}

/// The model's arguments as a request, the timeout and network set by `exec`.
fn request_of(args: &Value, exec: &ExecConfig) -> Result<Request, String> {
    let command = args
        .get("command")
        .and_then(Value::as_str)
        .ok_or("`command` (a string) is required")?;
    let mut request = Request::new(command).network(exec.network);
    match args.get("workdir") {
        None | Some(Value::Null) => {}
        Some(Value::String(dir)) => request = request.workdir(dir.clone()),
        Some(_) => return Err("`workdir` is a string".into()),
    }
    let timeout = match args.get("timeout") {
        None | Some(Value::Null) => exec.timeout,
        Some(t) => Duration::from_secs(
            t.as_u64()
                .filter(|&s| s >= 1)
                .ok_or("`timeout` is a whole number of seconds, at least 1")?,
        ),
    };
    Ok(request.timeout(timeout.min(exec.max_timeout)))
}

/// `$PINCER_HOME/workspaces/<agent>`; an agent id that could name another directory is
/// refused (config keys are checked, but this is the one place a name becomes a path).
fn workspace_of(ctx: &Context) -> Result<PathBuf, String> {
    let agent = ctx.agent.as_str();
    if agent.is_empty() || agent.contains(['/', '\\', '\0']) || agent.contains("..") {
        return Err(format!(
            "agent id {agent:?} cannot name a workspace directory; the command was not run"
        ));
    }
    Ok(ctx.home.join("workspaces").join(agent))
}

fn sandbox_of(sandbox: ExecSandbox) -> Sandbox {
    match sandbox {
        ExecSandbox::Bwrap => Sandbox::Bwrap,
        ExecSandbox::None => Sandbox::None,
    }
}

fn refusal(verdict: Verdict) -> String {
    match verdict {
        Verdict::Refuse(why) => why,
        // `security = "deny"` refuses whatever the allowlist would say of the command.
        Verdict::Run | Verdict::Ask(_) => "refused: tools.exec.security is \"deny\"".into(),
    }
}

/// Asks each question in turn, all within `limit`; `Err` (for the model) at the first
/// answer that does not allow the command.
async fn approve(
    approver: &Approver,
    command: &str,
    questions: Vec<Question>,
    limit: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    for question in questions {
        let left = deadline.saturating_duration_since(Instant::now());
        let ask = approver.ask(Ask {
            tool: "exec",
            action: command.to_string(),
            key: question.key.clone(),
        });
        // The approver bounds the wait too; this holds whatever it does.
        let decision = tokio::time::timeout(left, ask)
            .await
            .unwrap_or(Decision::TimedOut);
        if !decision.allows() {
            return Err(not_approved(&question, decision, limit));
        }
    }
    Ok(())
}

/// What the model reads when a question was not answered yes.
fn not_approved(question: &Question, decision: Decision, limit: Duration) -> String {
    let what = if question.key == question.written {
        format!("`{}`", question.key)
    } else {
        format!("`{}` ({})", question.written, question.key)
    };
    let why = match decision {
        Decision::Deny => format!("the person in the chat denied running {what}"),
        Decision::TimedOut => format!(
            "no answer about running {what} within {} (tools.exec.approvalTimeout)",
            pincer_config::duration::format_duration(limit)
        ),
        Decision::Unavailable | Decision::Once | Decision::Always => {
            format!("running {what} needs approval, and no one can be asked here")
        }
    };
    format!("not approved: {why}; the command was not run")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parking_lot::Mutex;
    use pincer_config::tools::ExecAsk;

    use super::*;
    use crate::tool::Toolbox;

    fn context(exec: ExecConfig, approver: Approver) -> (Context, PathBuf) {
        let home = std::env::temp_dir().join(format!("pincer-exec-tool-{}", uuid::Uuid::new_v4()));
        let mut config = Config::default();
        config.tools.exec = exec;
        let ctx = Context {
            config: Arc::new(config),
            toolbox: Toolbox::default(),
            agent: "main".into(),
            home: home.clone(),
            approver,
        };
        (ctx, home)
    }

    /// An approver answering `answer`, keeping the questions it was asked.
    fn answering(answer: Decision) -> (Approver, Arc<Mutex<Vec<Ask>>>) {
        let asked = Arc::new(Mutex::new(Vec::new()));
        let log = asked.clone();
        let approver = Approver::new(move |ask| {
            log.lock().push(ask);
            Box::pin(async move { answer })
        });
        (approver, asked)
    }

    #[test]
    fn arguments_are_read_as_the_schema_says() {
        let exec = ExecConfig::default();
        let r = request_of(&json!({"command": "ls"}), &exec).unwrap();
        assert_eq!(r.timeout, Some(Duration::from_secs(60)));
        assert!(!r.network);
        let r = request_of(
            &json!({"command": "ls", "workdir": "src", "timeout": 5}),
            &exec,
        )
        .unwrap();
        assert_eq!(r.workdir.as_deref(), Some("src"));
        assert_eq!(r.timeout, Some(Duration::from_secs(5)));
        let r = request_of(&json!({"command": "ls", "timeout": 100_000}), &exec).unwrap();
        assert_eq!(r.timeout, Some(exec.max_timeout), "capped");
        assert!(
            request_of(&json!({}), &exec)
                .unwrap_err()
                .contains("`command`")
        );
        assert!(request_of(&json!({"command": "ls", "timeout": 0}), &exec).is_err());
        assert!(request_of(&json!({"command": "ls", "workdir": 3}), &exec).is_err());
    }

    #[test]
    fn the_config_cap_is_the_runner_cap() {
        assert_eq!(
            pincer_config::tools::EXEC_MAX_TIMEOUT,
            pincer_tools::exec::MAX_TIMEOUT
        );
    }

    #[test]
    fn the_call_is_bounded_by_its_own_limits() {
        let config = Config::default();
        let limit = Exec.time_limit(&json!({"command": "ls", "timeout": 30}), &config);
        assert_eq!(limit, Duration::from_secs(300 + 30) + GRACE);
    }

    #[tokio::test]
    async fn an_agent_id_that_leaves_the_workspaces_is_refused() {
        for agent in ["../x", "a/b", "..", ""] {
            let (mut ctx, _) = context(ExecConfig::default(), Approver::nobody());
            ctx.agent = agent.into();
            let err = Exec.run(json!({"command": "true"}), ctx).await.unwrap_err();
            assert!(err.contains("cannot name a workspace"), "{agent}: {err}");
        }
    }

    #[tokio::test]
    async fn each_missing_binary_is_asked_about_and_a_denial_stops_the_call() {
        let exec = ExecConfig {
            sandbox: ExecSandbox::None,
            ask: ExecAsk::OnMiss,
            ..ExecConfig::default()
        };
        let (approver, asked) = answering(Decision::Deny);
        let (ctx, home) = context(exec.clone(), approver);
        let err = Exec
            .run(json!({"command": "touch marker | cat"}), ctx)
            .await
            .unwrap_err();
        assert!(
            err.starts_with("not approved: the person in the chat denied running `touch` ("),
            "{err}"
        );
        let asked = asked.lock().clone();
        assert_eq!(asked.len(), 1, "stops at the first denial: {asked:?}");
        assert_eq!(asked[0].tool, "exec");
        assert_eq!(asked[0].action, "touch marker | cat");
        assert!(asked[0].key.ends_with("/touch"), "{:?}", asked[0].key);
        assert!(!home.join("workspaces/main/marker").exists());

        let (approver, asked) = answering(Decision::Once);
        let (ctx, home) = context(exec, approver);
        let out = Exec
            .run(json!({"command": "touch marker | cat"}), ctx)
            .await
            .expect("approved");
        assert_eq!(asked.lock().len(), 2, "one question per binary");
        assert!(out.starts_with("no sandbox"), "{out}");
        assert!(out.contains("exit code 0"), "{out}");
        assert!(home.join("workspaces/main/marker").exists());
        let _ = std::fs::remove_dir_all(home);
    }

    #[tokio::test]
    async fn no_answer_in_time_is_a_denial() {
        let exec = ExecConfig {
            approval_timeout: Duration::from_millis(50),
            ..ExecConfig::default()
        };
        let silent = Approver::new(|_| Box::pin(std::future::pending()));
        let (ctx, home) = context(exec, silent);
        let err = Exec
            .run(json!({"command": "touch x"}), ctx)
            .await
            .unwrap_err();
        assert!(err.contains("no answer about running `touch`"), "{err}");
        assert!(err.contains("tools.exec.approvalTimeout"), "{err}");
        let _ = std::fs::remove_dir_all(home);
    }
}
