//! [`Text`]: a message's text, shared rather than copied, with its fingerprint computed
//! once.
//!
//! A session's messages go into every turn's request, and each round of it. Copying them
//! (and hashing them again for the socket's continuation chain) made a turn's cost follow
//! the context's size: with `Text` a request holds references to the session's own
//! messages, and each message is hashed once in its life.

use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

/// Immutable, shared text. Equal when the text is equal; hashes as its fingerprint.
///
/// One allocation, as a `String`'s (the fingerprint sits beside the pointer), and the
/// same 24 bytes inline: a session keeps hundreds of these.
#[derive(Clone)]
pub struct Text {
    text: Arc<str>,
    fingerprint: u64,
}

// === impl Text ===

impl Text {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// A fingerprint of the text, computed once when the text was made.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
}

impl Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        &self.text
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl From<&str> for Text {
    fn from(text: &str) -> Self {
        let mut hasher = DefaultHasher::new();
        text.hash(&mut hasher);
        Self {
            text: Arc::from(text),
            fingerprint: hasher.finish(),
        }
    }
}

impl From<String> for Text {
    fn from(text: String) -> Self {
        Self::from(text.as_str())
    }
}

impl Default for Text {
    fn default() -> Self {
        Self::from(String::new())
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.text, &other.text)
            || (self.fingerprint == other.fingerprint && self.text == other.text)
    }
}

impl Eq for Text {}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        &*self.text == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        &*self.text == *other
    }
}

impl Hash for Text {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.fingerprint());
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.text, f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash_of(value: &impl Hash) -> u64 {
        let mut hasher = DefaultHasher::new();
        value.hash(&mut hasher);
        hasher.finish()
    }

    #[test]
    fn equal_texts_hash_alike_and_different_ones_do_not() {
        let a = Text::from("the weather");
        let b = Text::from(String::from("the weather"));
        assert_eq!(a, b);
        assert_eq!(hash_of(&a), hash_of(&b));
        assert_ne!(hash_of(&a), hash_of(&Text::from("the weathe")));
        assert_ne!(a, Text::from("the weathe"));
        assert_eq!(a.clone().fingerprint(), a.fingerprint());
        assert_eq!(&*a, "the weather");
        assert_eq!(format!("{a:?}"), "\"the weather\"");
    }
}
