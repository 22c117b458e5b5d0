//! Resolution: which agent answers a message, and which session holds it.
//!
//! Bindings are matched in tiers, most specific first: peer, parent peer (a thread's
//! channel, a topic's group), guild, team, account, channel, and finally the default
//! agent. Within a tier the first binding in config order wins. Every field a binding
//! gives must match; its most specific field decides its tier.

use pincer_config::{Binding, BindingMatch, Config};
use pincer_core::Inbound;
use pincer_core::session_key::session_key;

/// The tier a binding matched at, most specific first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// The agent was named in the request (the HTTP API's `model`).
    Explicit,
    /// The message's own peer (or its thread / topic).
    Peer,
    /// The peer a thread or topic belongs to.
    ParentPeer,
    /// The Discord guild.
    Guild,
    /// The team.
    Team,
    /// The account.
    Account,
    /// The channel kind.
    Channel,
    /// No binding matched.
    Default,
}

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The agent.
    pub agent: String,
    /// How it was chosen.
    pub tier: Tier,
    /// The binding that matched, by index in config order.
    pub binding: Option<usize>,
    /// The session key.
    pub session_key: String,
}

/// Why no route exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The request named an agent that does not exist.
    #[error("no agent `{0}`")]
    UnknownAgent(String),
    /// No binding matched and no default agent is configured.
    #[error("no binding matches and there is no default agent")]
    NoAgent,
}

/// Resolves the agent and session for `inbound` under `config`.
pub fn resolve(config: &Config, inbound: &Inbound) -> Result<Route, RouteError> {
    let (agent, tier, binding) = match &inbound.agent {
        Some(agent) if config.agents.contains_key(agent) => (agent.clone(), Tier::Explicit, None),
        Some(agent) => return Err(RouteError::UnknownAgent(agent.clone())),
        None => match best_binding(&config.bindings, inbound) {
            Some((i, tier)) => (config.bindings[i].agent.clone(), tier, Some(i)),
            None => (
                config
                    .default_agent()
                    .ok_or(RouteError::NoAgent)?
                    .to_string(),
                Tier::Default,
                None,
            ),
        },
    };
    let session_key = session_key(&agent, inbound);
    Ok(Route {
        agent,
        tier,
        binding,
        session_key,
    })
}

/// The first binding of the most specific tier that matches.
fn best_binding(bindings: &[Binding], inbound: &Inbound) -> Option<(usize, Tier)> {
    bindings
        .iter()
        .enumerate()
        .filter_map(|(i, b)| tier_of(&b.matches, inbound).map(|t| (t, i)))
        .min()
        .map(|(t, i)| (i, t))
}

/// The tier at which `m` matches `inbound`, if it does.
fn tier_of(m: &BindingMatch, inbound: &Inbound) -> Option<Tier> {
    let eq =
        |want: &Option<String>, have: Option<&str>| want.as_deref().is_none_or(|w| Some(w) == have);
    if !eq(&m.channel, Some(&inbound.channel))
        || !eq(&m.account, Some(&inbound.account))
        || !eq(&m.guild, inbound.guild.as_deref())
        || !eq(&m.team, inbound.team.as_deref())
    {
        return None;
    }
    if let Some(peer) = &m.peer {
        let own = match &inbound.thread {
            Some(thread) => (matches!(peer.kind.as_str(), "thread" | "topic")
                && &peer.id == thread)
                .then_some(Tier::Peer),
            None => None,
        };
        let direct = (peer.kind == inbound.peer.kind && peer.id == inbound.peer.id).then_some(
            if inbound.thread.is_some() {
                Tier::ParentPeer
            } else {
                Tier::Peer
            },
        );
        return own.or(direct);
    }
    Some(if m.guild.is_some() {
        Tier::Guild
    } else if m.team.is_some() {
        Tier::Team
    } else if m.account.is_some() {
        Tier::Account
    } else if m.channel.is_some() {
        Tier::Channel
    } else {
        // An empty match matches everything, at the weakest binding tier.
        Tier::Channel
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pincer_config::{Format, parse_str};
    use pincer_core::PeerRef;

    fn config() -> Config {
        parse_str(
            r#"
[agents.general]
default = true
model = "echo"
[agents.by-channel]
model = "echo"
[agents.by-account]
model = "echo"
[agents.by-guild]
model = "echo"
[agents.by-parent]
model = "echo"
[agents.by-thread]
model = "echo"
[agents.by-account-too]
model = "echo"

[[bindings]]
agent = "by-channel"
match = { channel = "discord" }
[[bindings]]
agent = "by-account"
match = { account = "acct" }
[[bindings]]
agent = "by-account-too"
match = { account = "acct" }
[[bindings]]
agent = "by-guild"
match = { guild = "g1" }
[[bindings]]
agent = "by-parent"
match = { peer = { kind = "channel", id = "c1" } }
[[bindings]]
agent = "by-thread"
match = { channel = "discord", peer = { kind = "thread", id = "t9" } }
"#,
            Format::Toml,
        )
        .expect("config")
    }

    fn msg(
        channel: &str,
        account: &str,
        peer: (&str, &str),
        thread: Option<&str>,
        guild: Option<&str>,
    ) -> Inbound {
        Inbound {
            channel: channel.into(),
            account: account.into(),
            upstream_id: "1".into(),
            peer: PeerRef {
                kind: peer.0.into(),
                id: peer.1.into(),
            },
            thread: thread.map(Into::into),
            guild: guild.map(Into::into),
            team: None,
            agent: None,
            topic: None,
            text: "hi".into(),
            received_at_ms: 0,
            sender: None,
            fingerprint: None,
            api: None,
        }
    }

    fn agent(inbound: &Inbound) -> (String, Tier) {
        let r = resolve(&config(), inbound).expect("route");
        (r.agent, r.tier)
    }

    #[test]
    fn tiers_in_order() {
        let c = ("channel", "c1");
        assert_eq!(
            agent(&msg("discord", "acct", c, Some("t9"), Some("g1"))),
            ("by-thread".into(), Tier::Peer)
        );
        assert_eq!(
            agent(&msg("discord", "acct", c, Some("t2"), Some("g1"))),
            ("by-parent".into(), Tier::ParentPeer)
        );
        assert_eq!(
            agent(&msg("discord", "acct", ("channel", "c2"), None, Some("g1"))),
            ("by-guild".into(), Tier::Guild)
        );
        // First in config order within a tier.
        assert_eq!(
            agent(&msg("discord", "acct", ("channel", "c2"), None, None)),
            ("by-account".into(), Tier::Account)
        );
        assert_eq!(
            agent(&msg("discord", "other", ("channel", "c2"), None, None)),
            ("by-channel".into(), Tier::Channel)
        );
        assert_eq!(
            agent(&msg("telegram", "other", ("dm", "42"), None, None)),
            ("general".into(), Tier::Default)
        );
    }

    #[test]
    fn all_given_fields_must_match() {
        // by-thread names channel = discord: the same thread id on telegram does not match.
        assert_eq!(
            agent(&msg("telegram", "x", ("group", "g"), Some("t9"), None)),
            ("general".into(), Tier::Default)
        );
    }

    #[test]
    fn explicit_agent_wins_and_unknown_is_an_error() {
        let mut m = msg("http", "http", ("user", "u"), None, None);
        m.agent = Some("by-guild".into());
        assert_eq!(agent(&m), ("by-guild".into(), Tier::Explicit));
        m.agent = Some("nobody".into());
        assert_eq!(
            resolve(&config(), &m),
            Err(RouteError::UnknownAgent("nobody".into()))
        );
    }

    #[test]
    fn session_keys_follow_the_design() {
        let m = msg("discord", "acct", ("channel", "c1"), Some("t9"), None);
        assert_eq!(
            session_key("a", &m),
            "agent:a:discord:acct:channel:c1:thread:t9"
        );
        let m = msg("telegram", "tg", ("dm", "42"), None, None);
        assert_eq!(session_key("a", &m), "agent:a:telegram:tg:dm:42");
    }
}
