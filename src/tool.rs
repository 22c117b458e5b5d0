//! The tools an agent may call: a registry of built-in tools, one module each behind the
//! [`Tool`] trait (name, description, JSON schema, risk class, run), offered to the model
//! as function definitions and run when it calls them.
//!
//! Which tools an agent has is the config's business (`pincer_config::tools`: profile,
//! allow and skills, deny; a Telegram topic narrows it); this module only knows what each
//! tool is and does. Adding a tool is one module here and its name in the config's
//! catalogue.

pub mod approval;
mod echo;
mod exec;
mod untrusted;
mod web_fetch;

use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;

use pincer_config::tools::{agent_set, narrow};
use pincer_config::{AgentConfig, Config};
use pincer_providers::{ToolCall, ToolSpec};
use pincer_tools::fetch::Fetcher;
use pincer_tools::ssrf::Policy;

pub use approval::{Approver, Ask, Decision};

/// How much a tool can do to the world, for approvals and for the reader of a config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Risk {
    /// Computes from its arguments alone.
    Pure,
    /// Reads the outside world (the web): its results are untrusted content.
    Reads,
    /// Acts on the host (commands, files).
    Acts,
}

/// What a tool's run gives back: its output for the model, or why it failed (the model
/// reads that too).
pub type Output = Result<String, String>;

/// A run in progress.
pub type Running = Pin<Box<dyn Future<Output = Output> + Send>>;

/// One built-in tool.
pub trait Tool: Send + Sync {
    /// The name the model calls it by (and the config names it by).
    fn name(&self) -> &'static str;
    /// What it does, for the model.
    fn description(&self) -> &'static str;
    /// The JSON schema of its arguments.
    fn schema(&self) -> Value;
    /// How much it can do.
    fn risk(&self) -> Risk;
    /// How long a call with `args` may take before it is stopped and the model told so:
    /// `tools.callTimeout`, unless the tool has limits of its own (`exec` waits for an
    /// approval and runs to its own timeout).
    fn time_limit(&self, args: &Value, config: &Config) -> Duration {
        let _ = args;
        config.tools.call_timeout
    }
    /// Runs it with `args` (already JSON; checked against nothing else: each tool reads
    /// what it needs and says what is missing).
    fn run(&self, args: Value, ctx: Context) -> Running;
}

/// What a call runs with: the config in force, the clients kept between calls, whose call
/// it is, and who approves what it does.
#[derive(Debug, Clone)]
pub struct Context {
    /// The config in force when the call began.
    pub config: Arc<Config>,
    /// Clients kept between calls.
    pub toolbox: Toolbox,
    /// The agent whose model made the call.
    pub agent: String,
    /// `$PINCER_HOME` (agents' workspaces are under it).
    pub home: PathBuf,
    /// Asks the person in the chat before the call acts.
    pub approver: Approver,
}

/// The clients tools keep between calls: `web_fetch`'s fetcher (its cache) under the
/// policy in force, made again when `tools.webFetch.allowPrivate` changes.
#[derive(Debug, Clone, Default)]
pub struct Toolbox {
    fetcher: Arc<Mutex<Option<Kept>>>,
}

/// A fetcher and the `allowPrivate` list it was made for.
type Kept = (Vec<String>, Arc<Fetcher>);

impl Toolbox {
    /// The fetcher for `config`'s policy.
    pub fn fetcher(&self, config: &Config) -> Result<Arc<Fetcher>, String> {
        let allow = &config.tools.web_fetch.allow_private;
        let mut slot = self.fetcher.lock();
        if let Some((for_allow, fetcher)) = slot.as_ref()
            && for_allow == allow
        {
            return Ok(fetcher.clone());
        }
        let policy = Policy::new(allow).map_err(|e| e.to_string())?;
        let fetcher = Arc::new(Fetcher::new(policy));
        *slot = Some((allow.clone(), fetcher.clone()));
        Ok(fetcher)
    }
}

/// Every built-in tool of this build.
static BUILTIN: [&dyn Tool; 3] = [&echo::Echo, &exec::Exec, &web_fetch::WebFetch];

/// The built-in tool named `name`.
pub fn get(name: &str) -> Option<&'static dyn Tool> {
    BUILTIN.iter().copied().find(|t| t.name() == name)
}

/// The tools `agent` may call, narrowed by a Telegram topic's `skills` when it has some;
/// names this build does not have are left out (the config warned of them).
pub fn set_of(agent: &AgentConfig, topic_skills: Option<&[String]>) -> BTreeSet<&'static str> {
    narrow(agent_set(&agent.tools, &agent.skills), topic_skills)
        .into_iter()
        .filter(|name| get(name).is_some())
        .collect()
}

/// The function definitions of `set`, for the model.
pub fn specs(set: &BTreeSet<&'static str>) -> Vec<ToolSpec> {
    set.iter()
        .filter_map(|name| get(name))
        .map(|tool| ToolSpec {
            name: tool.name().into(),
            description: tool.description().into(),
            parameters: tool.schema(),
        })
        .collect()
}

/// Runs `call` if its tool is in `set`, within the limits of `ctx`'s config
/// (`tools.callTimeout`, `tools.maxResultChars`), and returns the output for the model
/// (errors are outputs too, prefixed `error:`).
pub async fn run(call: &ToolCall, set: &BTreeSet<&'static str>, ctx: &Context) -> String {
    let limits = &ctx.config.tools;
    let Some(tool) = get(&call.name).filter(|t| set.contains(t.name())) else {
        return format!("error: no tool named `{}` is available", call.name);
    };
    let args: Value = match serde_json::from_str(&call.arguments) {
        Ok(args) => args,
        Err(e) => return format!("error: arguments are not JSON: {e}"),
    };
    let limit = tool.time_limit(&args, &ctx.config);
    let output = match tokio::time::timeout(limit, tool.run(args, ctx.clone())).await {
        Ok(Ok(output)) => output,
        Ok(Err(why)) => format!("error: {why}"),
        Err(_) if limit == limits.call_timeout => format!(
            "error: `{}` did not finish within {limit:?} (tools.callTimeout) and was stopped",
            call.name
        ),
        Err(_) => format!(
            "error: `{}` did not finish within {limit:?} and was stopped",
            call.name
        ),
    };
    cap(output, limits.max_result_chars)
}

/// `output` cut to `max` characters, with a marker saying how much was left out.
fn cap(mut output: String, max: usize) -> String {
    let Some((cut, _)) = output.char_indices().nth(max) else {
        return output;
    };
    let left_out = output[cut..].chars().count();
    output.truncate(cut);
    output.push_str(&format!(
        "\n[truncated: {left_out} more characters not shown (tools.maxResultChars = {max})]"
    ));
    output
}

/// The same call, for loop detection: its name and its arguments with keys in order.
pub fn fingerprint(call: &ToolCall) -> (String, String) {
    let args = serde_json::from_str::<Value>(&call.arguments)
        .map(|v| v.to_string())
        .unwrap_or_else(|_| call.arguments.clone());
    (call.name.clone(), args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fetcher_is_kept_until_its_policy_changes() {
        let toolbox = Toolbox::default();
        let mut config = Config::default();
        let first = toolbox.fetcher(&config).expect("default policy");
        assert!(Arc::ptr_eq(
            &first,
            &toolbox.fetcher(&config).expect("same")
        ));
        config.tools.web_fetch.allow_private = vec!["127.0.0.1/32".into()];
        let second = toolbox.fetcher(&config).expect("opened");
        assert!(!Arc::ptr_eq(&first, &second));
        config.tools.web_fetch.allow_private = vec!["10.0.0.1/8".into()];
        assert!(toolbox.fetcher(&config).unwrap_err().contains("10.0.0.0/8"));
    }

    fn call(name: &str, arguments: &str) -> ToolCall {
        ToolCall {
            call_id: "c".into(),
            name: name.into(),
            arguments: arguments.into(),
        }
    }

    #[test]
    fn every_built_tool_the_config_names_is_here_and_nothing_else() {
        let here: BTreeSet<&str> = BUILTIN.iter().map(|t| t.name()).collect();
        let built: BTreeSet<&str> = pincer_config::tools::BUILT.into_iter().collect();
        assert_eq!(here, built);
    }

    #[test]
    fn the_set_comes_from_the_config_and_a_topic_narrows_it() {
        let mut agent = AgentConfig::default();
        assert!(set_of(&agent, None).is_empty(), "nothing unless named");
        agent.skills = vec!["echo".into(), "browser".into()];
        assert_eq!(
            set_of(&agent, None),
            BTreeSet::from(["echo"]),
            "browser is not built"
        );
        assert!(set_of(&agent, Some(&[])).is_empty());
        assert_eq!(
            set_of(&agent, Some(&["echo".to_string()])),
            BTreeSet::from(["echo"])
        );
        agent.tools.deny = vec!["*".into()];
        assert!(set_of(&agent, None).is_empty(), "deny wins");
    }

    fn context(config: Config) -> Context {
        Context {
            config: Arc::new(config),
            toolbox: Toolbox::default(),
            agent: "main".into(),
            home: std::env::temp_dir(),
            approver: Approver::nobody(),
        }
    }

    #[tokio::test]
    async fn calls_outside_the_set_and_bad_arguments_are_errors_for_the_model() {
        let set = BTreeSet::from(["echo"]);
        let limits = context(Config::default());
        assert_eq!(specs(&set).len(), 1);
        assert_eq!(
            run(&call("echo", r#"{"text":"hi"}"#), &set, &limits).await,
            "hi"
        );
        assert!(
            run(&call("echo", "{"), &set, &limits)
                .await
                .starts_with("error: arguments")
        );
        assert!(
            run(&call("echo", "{}"), &set, &limits)
                .await
                .contains("`text`")
        );
        assert!(
            run(&call("echo", "{}"), &BTreeSet::new(), &limits)
                .await
                .contains("no tool")
        );
        assert!(
            run(&call("exec", "{}"), &set, &limits)
                .await
                .contains("no tool")
        );
    }

    #[tokio::test]
    async fn a_long_result_is_cut_with_a_marker() {
        let set = BTreeSet::from(["echo"]);
        let mut config = Config::default();
        config.tools.max_result_chars = 5;
        let limits = context(config);
        let out = run(&call("echo", r#"{"text":"héllo wörld"}"#), &set, &limits).await;
        assert_eq!(
            out,
            "héllo\n[truncated: 6 more characters not shown (tools.maxResultChars = 5)]"
        );
        assert_eq!(cap("short".into(), 5), "short");
    }

    #[test]
    fn the_same_call_has_the_same_fingerprint_whatever_the_key_order() {
        let a = call("echo", r#"{"text":"x","n":1}"#);
        let b = call("echo", r#"{ "n": 1, "text": "x" }"#);
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(
            fingerprint(&a),
            fingerprint(&call("echo", r#"{"text":"y"}"#))
        );
    }
}
