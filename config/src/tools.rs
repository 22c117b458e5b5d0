//! Which tools an agent may call: `[agents.<id>.tools]` (`profile`, then `allow` and the
//! agent's `skills`, then `deny`; deny wins) and a Telegram topic's `skills`, which narrow
//! its agent's set. Names, groups (`group:web`) and `*` globs; an unknown name is a config
//! error with the closest name.
//!
//! The names live here, not beside the tools, so the config can be checked without the
//! gateway; the gateway's registry holds a test that it has a module for every name
//! [`BUILT`] says it has.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Deserialize;

/// Every tool name the config may use, including those of the next wave: a seed's
/// `skills = ["exec", "browser"]` loads, and the start and `doctor` say what this build
/// lacks.
pub const NAMES: [&str; 5] = ["browser", "echo", "exec", "web_fetch", "web_search"];

/// The tools this build has.
pub const BUILT: [&str; 3] = ["echo", "exec", "web_fetch"];

/// Groups and what they stand for.
pub const GROUPS: [(&str, &[&str]); 3] = [
    ("group:web", &["web_fetch", "web_search"]),
    ("group:runtime", &["exec"]),
    ("group:ui", &["browser"]),
];

/// `[tools]`: limits every call has, whatever the tool.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ToolsConfig {
    /// How long one call may run before it is stopped and the model told so. Default 2 min.
    #[serde(
        default = "two_minutes",
        deserialize_with = "crate::duration::seconds::deserialize"
    )]
    pub call_timeout: std::time::Duration,
    /// The longest result the model is given, in characters; past it the result is cut
    /// with a marker saying how much was left out. Default 100,000.
    #[serde(default = "hundred_thousand")]
    pub max_result_chars: usize,
    /// `[tools.webFetch]`.
    #[serde(default)]
    pub web_fetch: WebFetchConfig,
    /// `[tools.exec]`.
    #[serde(default)]
    pub exec: ExecConfig,
}

/// `[tools.webFetch]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WebFetchConfig {
    /// Private ranges `web_fetch` may reach after all (`"127.0.0.1/32"`,
    /// `"192.168.1.0/24"`): a home network, a test site. Cloud metadata addresses stay
    /// refused whatever it opens. Checked by the gateway at start and on reload.
    #[serde(default)]
    pub allow_private: Vec<String>,
}

/// `[tools.exec]`: how `exec` runs commands and which ones it runs without asking.
///
/// - `security = "deny"`: every call is refused.
/// - `security = "full"`: every command runs; with `ask = "always"` the person is asked
///   first.
/// - `security = "allowlist"` (the default): each simple command of the line (split on
///   `;`, `&&`, `||`, `|`, `&`, newlines) is resolved to the binary it runs, the way the
///   sandbox's `PATH` finds it, and must match a pattern of `allowlist`. Command
///   substitution (`$(…)`, backticks) and process substitution (`<(…)`, `>(…)`) are
///   refused outright: what they run cannot be known before they run. A binary off the
///   list is refused with `ask = "off"`, asked about with `ask = "on-miss"` (the
///   default); `ask = "always"` asks about every binary.
///
/// The sandbox, not the allowlist, is what keeps a command in its workspace: an
/// allowlisted program that runs others (a shell, `env`, `xargs`, `git` with hooks)
/// runs whatever it is told to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExecConfig {
    /// How commands are isolated. Default `bwrap`; `none` only when written here, and
    /// warned of at every start and by `doctor`.
    #[serde(default)]
    pub sandbox: ExecSandbox,
    /// Whether commands may use the network. Default false: the sandbox has a network of
    /// its own with only a loopback interface. On, it shares the host's (its loopback
    /// services and LAN included; the SSRF guard does not apply to commands).
    #[serde(default)]
    pub network: bool,
    /// Which commands run. Default `allowlist`: nothing runs that neither the operator
    /// listed nor the person in the chat approved.
    #[serde(default)]
    pub security: ExecSecurity,
    /// When the person in the chat is asked. Default `on-miss`.
    #[serde(default)]
    pub ask: ExecAsk,
    /// Binaries that run without asking under `security = "allowlist"`: absolute paths,
    /// `*` standing for any run of characters within one path segment (`/usr/bin/*`,
    /// `/usr/bin/git`). Matched against the binary's resolved path (its directory's
    /// symlinks followed: `/bin/ls` is `/usr/bin/ls` on a merged-`/usr` system). Default
    /// empty: every binary is asked about.
    #[serde(default)]
    pub allowlist: Vec<String>,
    /// How long a question waits for its answer; no answer is a denial. Default 5 min.
    #[serde(
        default = "five_minutes",
        deserialize_with = "crate::duration::seconds::deserialize"
    )]
    pub approval_timeout: Duration,
    /// A call's timeout when it names none. Default 60 s.
    #[serde(
        default = "sixty_seconds",
        deserialize_with = "crate::duration::seconds::deserialize"
    )]
    pub timeout: Duration,
    /// The longest timeout a call may ask for; more is cut to it. Default and most 10 min.
    #[serde(
        default = "ten_minutes",
        deserialize_with = "crate::duration::seconds::deserialize"
    )]
    pub max_timeout: Duration,
}

/// `tools.exec.sandbox`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecSandbox {
    /// Namespaces built by bubblewrap: the workspace read-write, the system read-only,
    /// no other process, no network unless `network`.
    #[default]
    Bwrap,
    /// No isolation: commands run as the gateway's user.
    None,
}

/// `tools.exec.security`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecSecurity {
    /// Every call is refused.
    Deny,
    /// Binaries on `allowlist` run; others are refused or asked about (`ask`).
    #[default]
    Allowlist,
    /// Every command runs (asked about first with `ask = "always"`).
    Full,
}

/// `tools.exec.ask`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExecAsk {
    /// Never ask: what the allowlist does not name is refused.
    Off,
    /// Ask about binaries the allowlist does not name.
    #[default]
    OnMiss,
    /// Ask before every call.
    Always,
}

/// The longest `tools.exec.maxTimeout`: the exec runner's own cap (ten minutes; a turn
/// waits on the call).
pub const EXEC_MAX_TIMEOUT: Duration = Duration::from_secs(600);

impl Default for ExecConfig {
    fn default() -> Self {
        Self {
            sandbox: ExecSandbox::default(),
            network: false,
            security: ExecSecurity::default(),
            ask: ExecAsk::default(),
            allowlist: Vec::new(),
            approval_timeout: five_minutes(),
            timeout: sixty_seconds(),
            max_timeout: ten_minutes(),
        }
    }
}

impl ExecConfig {
    /// Why allowlist `pattern` can match nothing, or `None` when it is fine.
    pub fn pattern_problem(pattern: &str) -> Option<&'static str> {
        if !pattern.starts_with('/') {
            return Some("a pattern is an absolute path (`/usr/bin/git`, `/usr/bin/*`)");
        }
        if pattern
            .split('/')
            .any(|segment| segment == ".." || segment == ".")
        {
            return Some("a pattern holds no `.` or `..` segment: resolved paths never do");
        }
        if pattern.len() > 1 && pattern.ends_with('/') {
            return Some("a pattern names a file, not a directory: write `/usr/bin/*`");
        }
        None
    }
}

fn five_minutes() -> Duration {
    Duration::from_secs(300)
}

fn sixty_seconds() -> Duration {
    Duration::from_secs(60)
}

fn ten_minutes() -> Duration {
    EXEC_MAX_TIMEOUT
}

impl Default for ToolsConfig {
    fn default() -> Self {
        Self {
            call_timeout: two_minutes(),
            max_result_chars: hundred_thousand(),
            web_fetch: WebFetchConfig::default(),
            exec: ExecConfig::default(),
        }
    }
}

fn two_minutes() -> std::time::Duration {
    std::time::Duration::from_secs(120)
}

fn hundred_thousand() -> usize {
    100_000
}

/// `[agents.<id>.tools]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AgentTools {
    /// The starting set. Default `minimal` (none): an agent calls only what its config
    /// names.
    #[serde(default)]
    pub profile: Profile,
    /// Added to the profile's set, as the agent's `skills` are.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Taken out of the set, whatever added it.
    #[serde(default)]
    pub deny: Vec<String>,
}

/// `tools.profile`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// No tools.
    #[default]
    Minimal,
    /// Looking things up for people: `group:web`.
    Messaging,
    /// Working in its workspace: `group:web` and `group:runtime`.
    Coding,
    /// Every tool.
    Full,
}

impl Profile {
    /// The patterns this profile stands for.
    pub fn patterns(self) -> &'static [&'static str] {
        match self {
            Self::Minimal => &[],
            Self::Messaging => &["group:web"],
            Self::Coding => &["group:web", "group:runtime"],
            Self::Full => &["*"],
        }
    }
}

/// The tool names `pattern` (a name, a group or a `*` glob) stands for; `Err` says why it
/// stands for none, with the closest name when it looks like a typo.
pub fn expand(pattern: &str) -> Result<BTreeSet<&'static str>, String> {
    if let Some((_, members)) = GROUPS.iter().find(|(g, _)| *g == pattern) {
        return Ok(members.iter().copied().collect());
    }
    if pattern.contains('*') {
        let matched: BTreeSet<&'static str> =
            NAMES.into_iter().filter(|n| glob(pattern, n)).collect();
        return if matched.is_empty() {
            Err(format!("`{pattern}` matches no tool"))
        } else {
            Ok(matched)
        };
    }
    if let Some(name) = NAMES.iter().find(|n| **n == pattern) {
        return Ok(BTreeSet::from([*name]));
    }
    let known: Vec<String> = NAMES
        .iter()
        .map(|n| n.to_string())
        .chain(GROUPS.iter().map(|(g, _)| g.to_string()))
        .collect();
    Err(match crate::errors::closest(pattern, &known) {
        Some(near) => format!("unknown tool `{pattern}`; did you mean `{near}`?"),
        None => format!("unknown tool `{pattern}` (tools: {})", known.join(", ")),
    })
}

/// The names every pattern stands for (unknown ones stand for none: the config check has
/// refused them already).
fn expand_all<'a>(patterns: impl IntoIterator<Item = &'a String>) -> BTreeSet<&'static str> {
    patterns
        .into_iter()
        .filter_map(|p| expand(p).ok())
        .flatten()
        .collect()
}

/// The set of an agent with `tools` and `skills`: profile, then allow and skills, then
/// deny.
pub fn agent_set(tools: &AgentTools, skills: &[String]) -> BTreeSet<&'static str> {
    let mut set: BTreeSet<&'static str> = tools
        .profile
        .patterns()
        .iter()
        .filter_map(|p| expand(p).ok())
        .flatten()
        .collect();
    set.extend(expand_all(&tools.allow));
    set.extend(expand_all(skills));
    for denied in expand_all(&tools.deny) {
        set.remove(denied);
    }
    set
}

/// `set` narrowed by a topic's `skills` (`None`: the topic leaves it as it is).
pub fn narrow(set: BTreeSet<&'static str>, topic: Option<&[String]>) -> BTreeSet<&'static str> {
    match topic {
        None => set,
        Some(skills) => {
            let wanted = expand_all(skills);
            set.into_iter().filter(|n| wanted.contains(n)).collect()
        }
    }
}

/// Whether `name` matches `pattern`, whose `*` stands for any run of characters.
fn glob(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_groups_and_globs() {
        assert_eq!(expand("exec").unwrap(), BTreeSet::from(["exec"]));
        assert_eq!(
            expand("group:web").unwrap(),
            BTreeSet::from(["web_fetch", "web_search"])
        );
        assert_eq!(
            expand("web_*").unwrap(),
            BTreeSet::from(["web_fetch", "web_search"])
        );
        assert_eq!(expand("*").unwrap().len(), NAMES.len());
        assert_eq!(expand("*_fetch").unwrap(), BTreeSet::from(["web_fetch"]));
        assert_eq!(
            expand("w*b*h").unwrap(),
            BTreeSet::from(["web_fetch", "web_search"])
        );
        assert_eq!(
            expand("web_serch").unwrap_err(),
            "unknown tool `web_serch`; did you mean `web_search`?"
        );
        assert_eq!(expand("nope*").unwrap_err(), "`nope*` matches no tool");
        assert!(expand("quantum_teleport").unwrap_err().contains("(tools: "));
    }

    #[test]
    fn profile_then_allow_and_skills_then_deny() {
        let none = AgentTools::default();
        assert!(agent_set(&none, &[]).is_empty(), "minimal by default");
        assert_eq!(
            agent_set(&none, &strings(&["echo"])),
            BTreeSet::from(["echo"])
        );
        let coding = AgentTools {
            profile: Profile::Coding,
            allow: strings(&["echo"]),
            deny: strings(&["web_fetch"]),
        };
        assert_eq!(
            agent_set(&coding, &strings(&["web_fetch"])),
            BTreeSet::from(["echo", "exec", "web_search"]),
            "deny wins over skills and allow"
        );
        let full = AgentTools {
            profile: Profile::Full,
            deny: strings(&["group:runtime"]),
            ..AgentTools::default()
        };
        assert!(!agent_set(&full, &[]).contains("exec"));
    }

    #[test]
    fn a_topic_narrows_and_never_widens() {
        let set = agent_set(
            &AgentTools {
                profile: Profile::Messaging,
                ..AgentTools::default()
            },
            &[],
        );
        let seed = strings(&["exec", "browser"]);
        assert!(narrow(set.clone(), Some(&seed)).is_empty());
        let research = strings(&["web_search", "web_fetch"]);
        assert_eq!(narrow(set.clone(), Some(&research)), set);
        assert_eq!(narrow(set.clone(), None), set);
    }

    #[test]
    fn every_built_tool_has_a_name_and_every_group_member_is_one() {
        for built in BUILT {
            assert!(NAMES.contains(&built), "{built}");
        }
        for (_, members) in GROUPS {
            for m in members {
                assert!(NAMES.contains(m), "{m}");
            }
        }
    }
}
