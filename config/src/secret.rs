//! Secret-bearing values: plaintext, or a reference resolved by the `secrets` actor.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

/// A config value that holds a secret (an API key, a bot token, the gateway token).
///
/// Written as plaintext, as a table `{ source = "env", provider = "default", id = "X" }`,
/// or as a short string `"env:OPENAI_API_KEY"` (`file:`, `vault:` and `aws:` likewise).
/// Its `Debug` never shows a plaintext value.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum SecretValue {
    /// The secret itself, written in the config (reported by `pincer secrets audit`).
    Plain(String),
    /// Where to find it.
    Ref(SecretRef),
}

/// A reference to a secret held outside the config.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// Which kind of back end holds it.
    pub source: SecretSource,
    /// The `[secrets.providers.<alias>]` to use; the source's default provider if unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The secret's id in that back end (an env var name, a JSON pointer, `path#field`,
    /// `secret-name#key`).
    pub id: String,
}

/// The kinds of secret back end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretSource {
    /// An environment variable.
    Env,
    /// A JSON (or single-value) file, by default `$PINCER_HOME/secrets.json`.
    File,
    /// HashiCorp Vault KV v2.
    Vault,
    /// AWS Secrets Manager.
    Aws,
}

impl SecretSource {
    /// The source's name as written in config.
    pub fn name(self) -> &'static str {
        match self {
            Self::Env => "env",
            Self::File => "file",
            Self::Vault => "vault",
            Self::Aws => "aws",
        }
    }

    fn from_prefix(prefix: &str) -> Option<Self> {
        match prefix {
            "env" => Some(Self::Env),
            "file" => Some(Self::File),
            "vault" => Some(Self::Vault),
            "aws" => Some(Self::Aws),
            _ => None,
        }
    }
}

impl SecretValue {
    /// Parses the short string form; anything else is plaintext.
    pub fn from_text(text: &str) -> Self {
        if let Some((prefix, id)) = text.split_once(':')
            && let Some(source) = SecretSource::from_prefix(prefix)
            && !id.is_empty()
            && !id.starts_with("//")
        {
            return Self::Ref(SecretRef {
                source,
                provider: None,
                id: id.to_string(),
            });
        }
        Self::Plain(text.to_string())
    }

    /// The reference, if this is one.
    pub fn as_ref(&self) -> Option<&SecretRef> {
        match self {
            Self::Ref(r) => Some(r),
            Self::Plain(_) => None,
        }
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Plain(_) => f.write_str("Plain(<redacted>)"),
            Self::Ref(r) => f.debug_tuple("Ref").field(r).finish(),
        }
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.provider {
            Some(p) => write!(f, "{}:{}:{}", self.source.name(), p, self.id),
            None => write!(f, "{}:{}", self.source.name(), self.id),
        }
    }
}

impl<'de> Deserialize<'de> for SecretValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SecretValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a table { source, provider, id }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SecretValue, E> {
                Ok(SecretValue::from_text(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<SecretValue, A::Error> {
                SecretRef::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(SecretValue::Ref)
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_forms_and_plaintext() {
        let r = SecretValue::from_text("env:OPENAI_API_KEY");
        assert_eq!(
            r.as_ref().map(|r| (r.source, r.id.as_str())),
            Some((SecretSource::Env, "OPENAI_API_KEY"))
        );
        assert!(matches!(
            SecretValue::from_text("sk-abc"),
            SecretValue::Plain(_)
        ));
        // URLs and unknown prefixes stay plaintext.
        assert!(matches!(
            SecretValue::from_text("https://x"),
            SecretValue::Plain(_)
        ));
        assert!(matches!(
            SecretValue::from_text("env:"),
            SecretValue::Plain(_)
        ));
    }

    #[test]
    fn debug_redacts_plaintext() {
        let s = format!("{:?}", SecretValue::from_text("sk-very-secret"));
        assert!(!s.contains("very-secret"), "{s}");
    }

    #[test]
    fn table_form_rejects_unknown_keys() {
        let v: Result<SecretValue, _> =
            serde_json::from_str(r#"{"source":"vault","id":"a/b#c","provdier":"x"}"#);
        assert!(
            v.unwrap_err()
                .to_string()
                .contains("unknown field `provdier`")
        );
        let v: SecretValue =
            serde_json::from_str(r#"{"source":"vault","id":"a/b#c"}"#).expect("valid");
        assert_eq!(v.as_ref().map(|r| r.source), Some(SecretSource::Vault));
    }
}
