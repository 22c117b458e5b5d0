//! The tools an agent may call: a registry of built-in tools, one module each behind the
//! [`Tool`] trait (name, description, JSON schema, risk class, run), offered to the model
//! as function definitions and run when it calls them.
//!
//! Which tools an agent has is the config's business (`pincer_config::tools`: profile,
//! allow and skills, deny; a Telegram topic narrows it); this module only knows what each
//! tool is and does. Adding a tool is one module here and its name in the config's
//! catalogue.

pub mod approval;
pub mod call;
mod echo;
mod exec;
mod untrusted;
mod web_fetch;
mod web_search;

use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;

use pincer_config::tools::{SearchProvider, agent_set, narrow};
use pincer_config::{AgentConfig, Config};
use pincer_providers::{ToolCall, ToolSpec};
use pincer_secrets::Handle;
use pincer_tools::fetch::Fetcher;
use pincer_tools::search::Backend;
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
    /// What a chat shows while a call runs for a while, e.g. "Searching the web…".
    fn status(&self) -> &'static str {
        "Working…"
    }
    /// A short detail of a call with `args` for a person (a host, a query), at most a line.
    fn summary(&self, _args: &Value) -> String {
        String::new()
    }
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
/// policy in force, made again when `tools.webFetch.allowPrivate` changes; and the secrets
/// handle of `tool:web_search`, through which the runtime, never the tool, reads
/// `tools.webSearch.apiKey`. (`web_search` needs no client of its own: the process's one
/// HTTP client keeps its connections between calls.)
#[derive(Debug, Clone, Default)]
pub struct Toolbox {
    fetcher: Arc<Mutex<Option<Kept>>>,
    search_key: Option<Handle>,
}

/// A fetcher and the `allowPrivate` list it was made for.
type Kept = (Vec<String>, Arc<Fetcher>);

impl Toolbox {
    /// A toolbox whose `web_search` reads its key through `search_key` (the handle of
    /// `pincer_secrets::refs::tool_owner("web_search")`). Without one (`default`), a
    /// Brave search fails saying the key cannot be read.
    pub fn new(search_key: Handle) -> Self {
        Self {
            search_key: Some(search_key),
            ..Self::default()
        }
    }

    /// Where `web_search` sends a query under `config`, with the key resolved: the
    /// back end gets the value alone. Errors name the key to set.
    pub fn search_backend(&self, config: &Config) -> Result<Backend, String> {
        let search = &config.tools.web_search;
        match search.provider {
            SearchProvider::Brave => {
                let value = search.api_key.as_ref().ok_or(
                    "web search with Brave needs an API key: set tools.webSearch.apiKey (a secret ref such as \"env:BRAVE_API_KEY\"), or use provider = \"searxng\" with its baseUrl",
                )?;
                let handle = self
                    .search_key
                    .as_ref()
                    .ok_or("tools.webSearch.apiKey cannot be read here (no secrets)")?;
                let api_key = handle
                    .get(value)
                    .map_err(|e| format!("tools.webSearch.apiKey: {e}"))?;
                Ok(Backend::Brave {
                    base_url: search
                        .base_url()
                        .unwrap_or(pincer_config::tools::BRAVE_BASE_URL)
                        .to_string(),
                    api_key,
                })
            }
            SearchProvider::Searxng => {
                let base_url = search.base_url().ok_or(
                    "web search with SearXNG needs the instance's address: set tools.webSearch.baseUrl",
                )?;
                Ok(Backend::Searxng {
                    base_url: base_url.to_string(),
                })
            }
        }
    }

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
static BUILTIN: [&dyn Tool; 4] = [
    &echo::Echo,
    &exec::Exec,
    &web_fetch::WebFetch,
    &web_search::WebSearch,
];

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

/// The tool `call` names and its arguments, if the tool is in `set` and the arguments
/// are JSON; otherwise why not (the model reads it as the call's error).
pub fn prepare(
    call: &ToolCall,
    set: &BTreeSet<&'static str>,
) -> Result<(&'static dyn Tool, Value), String> {
    let Some(tool) = get(&call.name).filter(|t| set.contains(t.name())) else {
        return Err(format!("no tool named `{}` is available", call.name));
    };
    let args = serde_json::from_str(&call.arguments)
        .map_err(|e| format!("arguments are not JSON: {e}"))?;
    Ok((tool, args))
}

/// What a person sees of `call` while it runs: the status a chat shows ("Searching the
/// web…") and a short detail ("rust actors", "example.org").
pub fn describe(call: &ToolCall) -> (&'static str, String) {
    let args = serde_json::from_str::<Value>(&call.arguments).unwrap_or(Value::Null);
    match get(&call.name) {
        Some(tool) => (tool.status(), tool.summary(&args)),
        None => ("Working…", String::new()),
    }
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

    #[test]
    fn the_search_key_is_resolved_by_the_runtime_and_its_absence_named() {
        use pincer_config::SecretValue;
        let mut config = Config::default();
        let (_publisher, view) = pincer_config::live::channel(config.clone());
        let toolbox = Toolbox::new(Handle::new(
            Arc::default(),
            view,
            pincer_secrets::refs::tool_owner("web_search"),
        ));
        let missing = toolbox.search_backend(&config).unwrap_err();
        assert!(missing.contains("set tools.webSearch.apiKey"), "{missing}");
        config.tools.web_search.api_key = Some(SecretValue::from_text("env:PINCER_NO_SUCH"));
        let unresolved = toolbox.search_backend(&config).unwrap_err();
        assert!(
            unresolved.starts_with("tools.webSearch.apiKey: secret `env:PINCER_NO_SUCH`"),
            "{unresolved}"
        );
        config.tools.web_search.api_key = Some(SecretValue::Plain("k".into()));
        assert_eq!(
            toolbox.search_backend(&config),
            Ok(Backend::Brave {
                base_url: pincer_config::tools::BRAVE_BASE_URL.into(),
                api_key: "k".into()
            })
        );
        assert!(Toolbox::default().search_backend(&config).is_err());
        config.tools.web_search.provider = SearchProvider::Searxng;
        assert!(
            toolbox
                .search_backend(&config)
                .unwrap_err()
                .contains("baseUrl")
        );
        config.tools.web_search.base_url = Some("http://127.0.0.1:8888".into());
        assert_eq!(
            toolbox.search_backend(&config),
            Ok(Backend::Searxng {
                base_url: "http://127.0.0.1:8888".into()
            })
        );
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

    #[test]
    fn calls_outside_the_set_and_bad_arguments_are_refused() {
        let set = BTreeSet::from(["echo"]);
        assert_eq!(specs(&set).len(), 1);
        let (tool, args) = prepare(&call("echo", r#"{"text":"hi"}"#), &set).expect("ready");
        assert_eq!((tool.name(), args["text"].as_str()), ("echo", Some("hi")));
        let refused = |c: &ToolCall, set: &BTreeSet<&'static str>| prepare(c, set).err();
        assert!(refused(&call("echo", "{"), &set).is_some_and(|e| e.starts_with("arguments")));
        assert!(
            refused(&call("echo", "{}"), &BTreeSet::new()).is_some_and(|e| e.contains("no tool"))
        );
        assert!(refused(&call("exec", "{}"), &set).is_some_and(|e| e.contains("no tool")));
    }

    #[test]
    fn a_long_result_is_cut_with_a_marker() {
        assert_eq!(
            cap("héllo wörld".into(), 5),
            "héllo\n[truncated: 6 more characters not shown (tools.maxResultChars = 5)]"
        );
        assert_eq!(cap("short".into(), 5), "short");
    }

    #[test]
    fn a_call_is_described_for_a_person() {
        let (status, detail) = describe(&call("web_fetch", r#"{"url":"https://example.org/a?b"}"#));
        assert_eq!(
            (status, detail.as_str()),
            ("Reading a web page…", "example.org")
        );
        assert_eq!(describe(&call("nope", "{")).0, "Working…");
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
