//! Where things sit in the supervision tree: the ids the tree declares and the registry
//! paths built from them.
//!
//! The tree itself is declared in one place (the gateway's `tree` module); these functions
//! are the shared vocabulary for naming its parts, used wherever a part is looked up by
//! path (readiness problems, secret owners, chaos kills, tests).

/// The root's name: every path starts with it.
pub const ROOT: &str = "pincer";

/// The path of a direct child of the root (`health`, `store`, `router`, ...).
pub fn top(child: &str) -> String {
    format!("{ROOT}/{child}")
}

/// The id of provider `name` under `providers`.
pub fn provider_id(name: &str) -> String {
    format!("provider:{name}")
}

/// The path of provider `name`.
pub fn provider(name: &str) -> String {
    format!("{ROOT}/providers/provider:{name}")
}

/// The id of connection `n` of provider `name`.
pub fn conn_id(name: &str, n: usize) -> String {
    format!("conn:{name}:{n}")
}

/// The path of connection `n` of provider `name`.
pub fn conn(name: &str, n: usize) -> String {
    format!("{}/{}", provider(name), conn_id(name, n))
}

/// The id of agent `id` under `agents`.
pub fn agent_id(id: &str) -> String {
    format!("agent:{id}")
}

/// The path of agent `id`.
pub fn agent(id: &str) -> String {
    format!("{ROOT}/agents/agent:{id}")
}

/// The id of account `id` of channel `kind` under `channels`.
pub fn account_id(kind: &str, id: &str) -> String {
    format!("channel:{kind}:{id}")
}

/// The path of account `id` of channel `kind`.
pub fn account(kind: &str, id: &str) -> String {
    format!("{ROOT}/channels/channel:{kind}:{id}")
}

/// The path of an account's link.
pub fn link(kind: &str, id: &str) -> String {
    format!("{}/link", account(kind, id))
}

/// The kind of the actor at `path`: `session` for `.../session:agent:main:...`, `channel`
/// for `channel:web:web`, the id itself for fixed actors (`router`, `store`).
pub fn kind(path: &str) -> &str {
    let last = path.rsplit('/').next().unwrap_or(path);
    last.split(':').next().unwrap_or(last)
}
