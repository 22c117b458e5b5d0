//! Whose web session is whose: a browser proves it is the one that started a session with
//! a secret only it keeps.
//!
//! The page makes a random secret once and keeps it (`localStorage`); it sends it in its
//! `hello` frame. The gateway never stores it: the session's peer id carries a digest of it
//! (`<owner>.<session id>`), so a session id seen elsewhere (a log, a shoulder) writes into
//! a session of its own, never into the one that browser started, and the socket lists only
//! the sessions of its owner.

use std::fmt;

/// Shortest secret a page may send: 128 bits in hex.
const MIN_SECRET: usize = 32;
/// Longest secret or session id.
const MAX_LEN: usize = 128;
/// Hex digits of the digest kept in the peer id: 96 bits.
const OWNER_HEX: usize = 24;

/// The digest of a browser's secret: the first part of its sessions' peer ids.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Owner(String);

impl Owner {
    /// The owner of `secret`, which must be 32 to 128 characters of `[A-Za-z0-9_-]`.
    pub(super) fn from_secret(secret: &str) -> Result<Owner, String> {
        if !(MIN_SECRET..=MAX_LEN).contains(&secret.len()) || !plain(secret) {
            return Err(format!(
                "`client` must be {MIN_SECRET} to {MAX_LEN} characters of A-Z, a-z, 0-9, `-` and `_` (a random secret the page keeps)"
            ));
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
        let mut hex = String::with_capacity(OWNER_HEX);
        for byte in digest.as_ref().iter().take(OWNER_HEX / 2) {
            hex.push_str(&format!("{byte:02x}"));
        }
        Ok(Owner(hex))
    }

    /// The peer id of this owner's session `session`.
    pub(super) fn peer(&self, session: &str) -> String {
        format!("{}.{session}", self.0)
    }

    /// The session id in `peer`, if `peer` is one of this owner's.
    pub(super) fn session_in<'a>(&self, peer: &'a str) -> Option<&'a str> {
        peer.strip_prefix(self.0.as_str())?.strip_prefix('.')
    }
}

impl fmt::Debug for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Owner(..)")
    }
}

/// Checks a session or message id from the page: 1 to 128 characters of `[A-Za-z0-9_-]`
/// (what the page makes; nothing that needs escaping in a key or a path).
pub(super) fn check_id(what: &str, id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_LEN || !plain(id) {
        return Err(format!(
            "`{what}` must be 1 to {MAX_LEN} characters of A-Z, a-z, 0-9, `-` and `_`"
        ));
    }
    Ok(())
}

fn plain(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_give_distinct_owners_and_peers_name_their_owner() {
        let a = Owner::from_secret(&"a".repeat(32)).expect("valid");
        let b = Owner::from_secret(&"b".repeat(32)).expect("valid");
        assert_ne!(a, b);
        assert_eq!(a, Owner::from_secret(&"a".repeat(32)).expect("valid"));
        let peer = a.peer("web-1");
        assert_eq!(peer.len(), OWNER_HEX + 1 + "web-1".len());
        assert_eq!(a.session_in(&peer), Some("web-1"));
        assert_eq!(b.session_in(&peer), None);
        assert!(!format!("{a:?}").contains(&a.0), "never printed");
    }

    #[test]
    fn short_or_odd_secrets_and_ids_are_refused() {
        assert!(Owner::from_secret("short").is_err());
        assert!(Owner::from_secret(&"a".repeat(129)).is_err());
        assert!(Owner::from_secret(&format!("{}/", "a".repeat(32))).is_err());
        assert!(check_id("session", "web-0123abcd").is_ok());
        for bad in ["", "a/b", "a.b", "a b", "ä"] {
            assert!(check_id("session", bad).is_err(), "{bad:?}");
        }
        assert!(check_id("id", &"x".repeat(129)).is_err());
    }
}
