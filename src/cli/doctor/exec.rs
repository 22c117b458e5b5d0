//! `pincer doctor`'s exec checks: a config that runs commands without a sandbox is
//! pointed out, and where an agent may call `exec` under bubblewrap, the sandbox is
//! started once (running `true`) to see that it works on this machine.

use pincer_config::Config;
use pincer_config::tools::{ExecSandbox, ExecSecurity, agent_set};
use pincer_tools::exec::{Runner, Sandbox};

/// What was found: `Some(ok)` a check passed or failed, `None` a note.
pub(super) type Check = (Option<bool>, String);

/// The agents whose set holds `exec`.
pub(crate) fn agents_with_exec(cfg: &Config) -> Vec<&str> {
    cfg.agents
        .iter()
        .filter(|(_, a)| agent_set(&a.tools, &a.skills).contains("exec"))
        .map(|(id, _)| id.as_str())
        .collect()
}

/// The exec findings of `cfg`.
pub(super) async fn all(cfg: &Config) -> Vec<Check> {
    let exec = &cfg.tools.exec;
    let agents = agents_with_exec(cfg);
    let who = if agents.is_empty() {
        "no agent has exec now".to_string()
    } else {
        format!("agents with exec: {}", agents.join(", "))
    };
    let mut out = Vec::new();
    if exec.sandbox == ExecSandbox::None {
        out.push((None, format!("warning: {} ({who})", no_sandbox_warning())));
    }
    if agents.is_empty() {
        return out;
    }
    if exec.security == ExecSecurity::Deny {
        out.push((
            None,
            format!(
                "exec is offered to its agents but tools.exec.security = \"deny\" refuses every call ({who})"
            ),
        ));
    }
    if exec.network {
        out.push((
            None,
            "tools.exec.network = true: commands share the host's network, its loopback services and LAN included".into(),
        ));
    }
    if exec.sandbox == ExecSandbox::Bwrap {
        match Runner::new(Sandbox::Bwrap).probe().await {
            Ok(()) => out.push((Some(true), format!("exec sandbox (bubblewrap) works ({who})"))),
            Err(e) => out.push((
                Some(false),
                format!(
                    "exec sandbox (bubblewrap) does not work here: {e}. Every exec call fails until it does ({who}): install `bubblewrap` and allow unprivileged user namespaces, or set tools.exec.sandbox = \"none\" knowing what that gives up"
                ),
            )),
        }
    }
    out
}

/// What is said at start and by `doctor` when commands run unsandboxed.
pub(crate) fn no_sandbox_warning() -> &'static str {
    "tools.exec.sandbox = \"none\": exec runs commands WITHOUT a sandbox, as the gateway's user, with its files, processes and network"
}
