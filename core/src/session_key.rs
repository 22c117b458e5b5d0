//! Session keys: which conversation a message belongs to.
//!
//! `agent:<agent>:<channel>:<account>:<peer kind>:<peer id>`, then `:topic:<id>` for a
//! Telegram topic or `:thread:<id>` for another channel's thread. The key names the
//! session's transcript in the store and (escaped by [`child_id`]) its actor in the tree.

use crate::records::Inbound;

/// The session key of `inbound` when it is routed to `agent`.
pub fn session_key(agent: &str, inbound: &Inbound) -> String {
    let mut key = format!(
        "agent:{agent}:{}:{}:{}:{}",
        inbound.channel, inbound.account, inbound.peer.kind, inbound.peer.id
    );
    if let Some(thread) = &inbound.thread {
        // Telegram calls them topics (forum and DM topics), Discord threads.
        key.push_str(if inbound.channel == "telegram" {
            ":topic:"
        } else {
            ":thread:"
        });
        key.push_str(thread);
    }
    key
}

/// The peer kind of a one-off session: a stateless API request gets a key of its own
/// (`...:request:<uuid>`), never reused, whose session stops once it has answered.
pub const ONE_OFF_PEER: &str = "request";

/// Whether `key` is a one-off session's (see [`ONE_OFF_PEER`]).
pub fn is_one_off(key: &str) -> bool {
    key.split(':').nth(4) == Some(ONE_OFF_PEER)
}

/// The agent id in a session key.
pub fn agent_of(key: &str) -> Option<&str> {
    key.strip_prefix("agent:")?.split(':').next()
}

/// The child id of the session with `key` under its account's `sessions` supervisor.
///
/// Ids may not contain `/` (the path separator) or control characters, so those and `%`
/// are percent-encoded byte by byte (`/` is `%2F`, U+0001 is `%01`, U+0085 is `%C2%85`);
/// everything else stays as it is, so an ordinary key reads the same in the tree
/// (`session:agent:main:http:http:user:alice`). The encoding is injective: a `%` in an id
/// always starts an escape, so two keys never share an actor.
pub fn child_id(key: &str) -> String {
    use std::fmt::Write as _;
    let mut id = String::with_capacity("session:".len() + key.len());
    id.push_str("session:");
    for c in key.chars() {
        if c == '%' || c == '/' || c.is_control() {
            let mut utf8 = [0; 4];
            for byte in c.encode_utf8(&mut utf8).bytes() {
                let _ = write!(id, "%{byte:02X}");
            }
        } else {
            id.push(c);
        }
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn one_off_keys_are_told_by_their_peer_kind() {
        assert!(is_one_off("agent:main:http:http:request:0b5e"));
        assert!(!is_one_off("agent:main:http:http:user:request"));
        assert!(!is_one_off("agent:main:web:web:session:x"));
    }

    #[test]
    fn ordinary_keys_read_as_they_are() {
        assert_eq!(
            child_id("agent:main:http:http:user:alice"),
            "session:agent:main:http:http:user:alice"
        );
        assert_eq!(
            child_id("agent:main:telegram:tg:dm:42:topic:7"),
            "session:agent:main:telegram:tg:dm:42:topic:7"
        );
        // Spaces, dots, non-ASCII letters stay readable.
        assert_eq!(
            child_id("agent:main:http:http:user:Zoë O.x"),
            "session:agent:main:http:http:user:Zoë O.x"
        );
    }

    #[test]
    fn control_characters_do_not_collide() {
        // Two users whose ids differ only in a control character must get two actors.
        let a = child_id("agent:main:http:http:user:victim\u{1}");
        let b = child_id("agent:main:http:http:user:victim\u{2}");
        assert_ne!(a, b);
        // Nor may an escape collide with the text it stands for.
        assert_ne!(child_id("user:%2F"), child_id("user:/"));
        assert_ne!(child_id("user:%3F"), child_id("user:\u{7}"));
    }

    /// Characters that stress the escapes: those escaped, `%` and hex digits around them,
    /// C1 controls, and a few ordinary letters.
    fn tricky() -> impl Strategy<Value = char> {
        prop::sample::select(vec![
            'a', 'F', '2', '3', '5', '%', '/', ':', ' ', '?', '\u{0}', '\u{1}', '\u{2}', '\u{1f}',
            '\u{7f}', '\u{80}', '\u{9f}', 'é', '\u{2028}',
        ])
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::collection::vec(tricky(), 0..12).prop_map(|cs| cs.into_iter().collect()),
            any::<String>(),
        ]
    }

    /// Two keys that differ in one character: where collisions hide.
    fn neighbours() -> impl Strategy<Value = (String, String)> {
        (
            prop::collection::vec(tricky(), 1..10),
            any::<prop::sample::Index>(),
            tricky(),
        )
            .prop_map(|(a, at, c)| {
                let mut b = a.clone();
                b[at.index(a.len())] = c;
                (a.into_iter().collect(), b.into_iter().collect())
            })
    }

    proptest! {
        #[test]
        fn distinct_keys_give_distinct_ids(a in key(), b in key()) {
            prop_assume!(a != b);
            prop_assert_ne!(child_id(&a), child_id(&b));
        }

        #[test]
        fn keys_one_character_apart_give_distinct_ids((a, b) in neighbours()) {
            prop_assume!(a != b);
            prop_assert_ne!(child_id(&a), child_id(&b));
        }

        #[test]
        fn ids_are_valid_child_ids(k in key()) {
            let id = child_id(&k);
            prop_assert!(!id.contains('/'), "{id:?}");
            prop_assert!(!id.chars().any(char::is_control), "{id:?}");
        }
    }
}
