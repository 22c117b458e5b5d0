//! `PINCER__SECTION__KEY` names for camelCase keys, and the default key refs of the
//! model providers.
//!
//! An environment variable's name has one case, so `PINCER__PROVIDERS__OPENAI__APIKEY`
//! reaches the layered config as `apikey`. The schema's own field names settle it: when
//! deserializing stops at an unknown key that an environment variable wrote and that
//! equals one of the expected keys once case and `_` are ignored, the key is renamed and
//! deserializing tried again. The older form with `_` between words (`API_KEY`) still
//! works, with a warning naming the documented one.

use std::collections::BTreeMap;

use serde_json::Value;
use serde_path_to_error::Segment;

use super::Config;
use super::errors::parse_unknown_field;
use super::load::merge;
use super::secret::{SecretRef, SecretSource, SecretValue};

/// Renames attempted before giving up (each fixes one key).
const MAX_RENAMES: usize = 64;

/// The environment variable a provider's key comes from when its config names none.
pub const DEFAULT_KEY_ENV: [(&str, &str); 2] = [
    ("openai", "OPENAI_API_KEY"),
    ("anthropic", "ANTHROPIC_API_KEY"),
];

/// Deserializes `value`, renaming keys environment variables wrote in one case to the
/// schema's camelCase as needed.
pub(super) fn deserialize(
    value: &mut Value,
    env: &BTreeMap<String, String>,
) -> Result<Config, serde_path_to_error::Error<serde_json::Error>> {
    let mut renames = 0;
    loop {
        let error = match serde_path_to_error::deserialize::<_, Config>(&*value) {
            Ok(config) => return Ok(config),
            Err(error) => error,
        };
        if renames >= MAX_RENAMES || !rename_env_key(&error, value, env) {
            return Err(error);
        }
        renames += 1;
    }
}

/// Warnings for variables written in the deprecated `_`-between-words form.
pub(super) fn deprecations(env: &BTreeMap<String, String>) -> Vec<String> {
    env.keys()
        .filter_map(|name| {
            let rest = name.strip_prefix("PINCER__")?;
            rest.split("__").any(|s| s.contains('_')).then(|| {
                let documented: Vec<String> =
                    rest.split("__").map(|s| s.replace('_', "")).collect();
                format!(
                    "environment variable {name}: `_` between the words of a key is deprecated; write PINCER__{} (each key's name uppercased)",
                    documented.join("__")
                )
            })
        })
        .collect()
}

/// A configured OpenAI or Anthropic provider that names no key reads the usual variable.
pub(super) fn default_key_refs(config: &mut Config) {
    let refs = |name: &str| {
        DEFAULT_KEY_ENV
            .iter()
            .find(|(provider, _)| *provider == name)
            .map(|(_, var)| {
                SecretValue::Ref(SecretRef {
                    source: SecretSource::Env,
                    provider: None,
                    id: (*var).to_string(),
                })
            })
    };
    if let Some(openai) = config.providers.openai.as_mut()
        && openai.api_key.is_none()
        && openai.api_keys.is_empty()
    {
        openai.api_key = refs("openai");
    }
    if let Some(anthropic) = config.providers.anthropic.as_mut()
        && anthropic.api_key.is_none()
        && anthropic.api_keys.is_empty()
    {
        anthropic.api_key = refs("anthropic");
    }
}

/// Renames the unknown key `error` stopped at, if an environment variable wrote it and
/// it matches an expected key; whether it did.
fn rename_env_key(
    error: &serde_path_to_error::Error<serde_json::Error>,
    value: &mut Value,
    env: &BTreeMap<String, String>,
) -> bool {
    let Some((unknown, expected)) = parse_unknown_field(&error.inner().to_string()) else {
        return false;
    };
    let mut path: Vec<String> = Vec::new();
    for segment in error.path().iter() {
        match segment {
            Segment::Map { key } => path.push(key.clone()),
            // Lists and enums are not reached by environment variables.
            _ => return false,
        }
    }
    if path.last() == Some(&unknown) {
        path.pop();
    }
    let Some(known) = expected.iter().find(|c| fold(c) == fold(&unknown)) else {
        return false;
    };
    let written: Vec<String> = path.iter().chain([&unknown]).map(|s| fold(s)).collect();
    let from_env = env
        .keys()
        .filter_map(|k| k.strip_prefix("PINCER__"))
        .any(|rest| {
            let segments: Vec<String> = rest.split("__").map(fold).collect();
            segments.starts_with(&written)
        });
    if !from_env {
        return false;
    }
    let mut table = &mut *value;
    for key in &path {
        match table.get_mut(key) {
            Some(next) => table = next,
            None => return false,
        }
    }
    let Some(object) = table.as_object_mut() else {
        return false;
    };
    let Some(moved) = object.remove(&unknown) else {
        return false;
    };
    match object.get_mut(known.as_str()) {
        // The file's table under the right name: the variable's keys go over it.
        Some(existing) => merge(existing, moved),
        None => {
            object.insert(known.clone(), moved);
        }
    }
    true
}

/// A key with case and `_` ignored: `apiKey`, `APIKEY` and `API_KEY` are one.
fn fold(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '_')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}
