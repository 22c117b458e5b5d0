//! ACL policies as Vault evaluates them: path rules with capabilities, matched against the
//! API path after `/v1/` (so a KV v2 rule names `secret/data/…`, not the secret's own path),
//! with `*` as a trailing prefix glob and `+` as a one-segment wildcard, and the most
//! specific matching rule deciding alone.

use std::cmp::Ordering;

/// What a policy rule grants on its paths (Vault's `capabilities`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    /// `create`: write a path that does not exist yet (a new KV secret).
    Create,
    /// `read`: `GET`.
    Read,
    /// `update`: write a path that exists (a new version of a KV secret).
    Update,
    /// `patch`: `PATCH`.
    Patch,
    /// `delete`: `DELETE`.
    Delete,
    /// `list`: `LIST`.
    List,
    /// `sudo`: root-protected paths.
    Sudo,
    /// `deny`: nothing, whatever else the rule lists.
    Deny,
}

/// A token's ACL policy. [`Policy::root`] allows everything; any other policy allows only
/// what its rules grant, the most specific rule matching a path deciding alone (Vault's
/// priority rules), so a narrower rule can take back what a broader one gave.
///
/// ```
/// use pincer_fakes::vault::{Capability, Policy};
///
/// let policy = Policy::read("secret/data/pincer/*")
///     .allow("secret/data/pincer/admin", &[Capability::Deny]);
/// assert!(policy.allows("secret/data/pincer/openai", Capability::Read));
/// assert!(!policy.allows("secret/data/pincer/admin", Capability::Read));
/// assert!(!policy.allows("secret/data/pincer/openai", Capability::Update));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    root: bool,
    rules: Vec<Rule>,
}

/// One `path "…" { capabilities = […] }` block.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    path: String,
    capabilities: Vec<Capability>,
}

// === impl Capability ===

impl Capability {
    /// The name in a policy (`"read"`, `"create"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Create => "create",
            Capability::Read => "read",
            Capability::Update => "update",
            Capability::Patch => "patch",
            Capability::Delete => "delete",
            Capability::List => "list",
            Capability::Sudo => "sudo",
            Capability::Deny => "deny",
        }
    }
}

// === impl Policy ===

impl Policy {
    /// The `root` policy: every capability on every path.
    pub fn root() -> Policy {
        Policy {
            root: true,
            rules: Vec::new(),
        }
    }

    /// A policy with no rules: every path is denied. Add rules with [`Policy::allow`].
    pub fn none() -> Policy {
        Policy::default()
    }

    /// `read` on `path` (a rule path: `"secret/data/app/*"`, `"secret/data/+/db"`).
    pub fn read(path: &str) -> Policy {
        Policy::none().allow(path, &[Capability::Read])
    }

    /// `create`, `read` and `update` on `path`: read and write KV v2 secrets there.
    pub fn read_write(path: &str) -> Policy {
        Policy::none().allow(
            path,
            &[Capability::Create, Capability::Read, Capability::Update],
        )
    }

    /// This policy plus a rule granting `capabilities` on `path` (leading `/` ignored).
    /// Rules for the same path add up, as in Vault.
    pub fn allow(mut self, path: &str, capabilities: &[Capability]) -> Policy {
        self.rules.push(Rule {
            path: path.trim_start_matches('/').to_owned(),
            capabilities: capabilities.to_vec(),
        });
        self
    }

    /// Whether this is the root policy.
    pub fn is_root(&self) -> bool {
        self.root
    }

    /// Whether the policy grants `capability` on `path` (the API path after `/v1/`, e.g.
    /// `secret/data/app/db`).
    pub fn allows(&self, path: &str, capability: Capability) -> bool {
        if self.root {
            return true;
        }
        let Some(best) = self
            .rules
            .iter()
            .filter(|r| r.matches(path))
            .max_by(|a, b| a.priority(b))
        else {
            return false;
        };
        let granted: Vec<Capability> = self
            .rules
            .iter()
            .filter(|r| r.path == best.path)
            .flat_map(|r| r.capabilities.iter().copied())
            .collect();
        !granted.contains(&Capability::Deny) && granted.contains(&capability)
    }
}

// === impl Rule ===

impl Rule {
    /// The rule's path without its trailing `*`, and whether it had one.
    fn glob(&self) -> (&str, bool) {
        match self.path.strip_suffix('*') {
            Some(prefix) => (prefix, true),
            None => (&self.path, false),
        }
    }

    fn matches(&self, path: &str) -> bool {
        let (pattern, glob) = self.glob();
        let pattern: Vec<&str> = pattern.split('/').collect();
        let path: Vec<&str> = path.split('/').collect();
        if glob {
            // Every segment but the last must match whole; the last is a prefix of the
            // path's segment there, and anything may follow.
            let Some((last, whole)) = pattern.split_last() else {
                return true;
            };
            if path.len() < pattern.len() {
                return false;
            }
            let whole_ok = whole.iter().zip(&path).all(|(p, s)| *p == "+" || p == s);
            let last_ok = *last == "+" || path[whole.len()].starts_with(last);
            whole_ok && last_ok
        } else {
            pattern.len() == path.len()
                && pattern.iter().zip(&path).all(|(p, s)| *p == "+" || p == s)
        }
    }

    /// Vault's priority between two matching rules (`Greater`: `self` wins): the later the
    /// first wildcard, the higher; without a trailing `*` beats with; fewer `+` beats
    /// more; longer beats shorter; then the lexicographically greater.
    fn priority(&self, other: &Rule) -> Ordering {
        let key = |r: &Rule| {
            let first_wildcard = r.path.find(['+', '*']).unwrap_or(usize::MAX);
            let (_, glob) = r.glob();
            let pluses = r.path.split('/').filter(|s| *s == "+").count();
            (
                first_wildcard,
                !glob,
                std::cmp::Reverse(pluses),
                r.path.len(),
            )
        };
        key(self)
            .cmp(&key(other))
            .then_with(|| self.path.cmp(&other.path))
    }
}

#[cfg(test)]
mod tests {
    use super::{Capability, Policy};

    #[test]
    fn exact_glob_and_segment_wildcards() {
        let p = Policy::read("secret/data/app/*")
            .allow("secret/data/+/db", &[Capability::Read])
            .allow("secret/data/exact", &[Capability::Read]);
        assert!(p.allows("secret/data/app/a", Capability::Read));
        assert!(p.allows("secret/data/app/a/b", Capability::Read));
        assert!(!p.allows("secret/data/app", Capability::Read));
        assert!(p.allows("secret/data/team/db", Capability::Read));
        assert!(!p.allows("secret/data/team/db/x", Capability::Read));
        assert!(p.allows("secret/data/exact", Capability::Read));
        assert!(!p.allows("secret/data/exact2", Capability::Read));
        assert!(!p.allows("secret/metadata/app/a", Capability::Read));
        assert!(Policy::read("secret/data/ap*").allows("secret/data/apple", Capability::Read));
    }

    #[test]
    fn most_specific_rule_decides_alone() {
        let p = Policy::read_write("secret/data/*")
            .allow("secret/data/locked/*", &[Capability::Read])
            .allow("secret/data/locked/hidden", &[Capability::Deny]);
        assert!(p.allows("secret/data/x", Capability::Update));
        assert!(!p.allows("secret/data/locked/x", Capability::Update));
        assert!(p.allows("secret/data/locked/x", Capability::Read));
        assert!(!p.allows("secret/data/locked/hidden", Capability::Read));
        // Same path twice: the capabilities add up.
        let p = Policy::read("kv/data/a").allow("kv/data/a", &[Capability::Create]);
        assert!(p.allows("kv/data/a", Capability::Create));
        assert!(p.allows("kv/data/a", Capability::Read));
    }

    #[test]
    fn root_and_none() {
        assert!(Policy::root().allows("anything/at/all", Capability::Sudo));
        assert!(!Policy::none().allows("secret/data/a", Capability::Read));
    }
}
