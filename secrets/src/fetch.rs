//! One resolution pass: the values of a set of settled refs, each back end asked once per
//! file, Vault path or AWS secret however many refs point into it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::backend::{BackendError, Fetched};
use super::refs::{self, Key};
use super::{aws, env, file, vault};
use pincer_config::{Config, SecretProvider, SecretSource, SecretValue};

/// What a pass reads with.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// The config whose back ends are asked.
    pub config: &'a Config,
    /// `$PINCER_HOME` (the default secrets file is there).
    pub home: &'a Path,
    /// The `.env` layer, before the process environment.
    pub env: &'a BTreeMap<String, String>,
    /// The HTTP client for Vault and AWS.
    pub http: &'a reqwest::Client,
}

/// The outcome for each key, in key order.
pub type Outcomes = BTreeMap<Key, Result<Fetched, BackendError>>;

/// Resolves `keys`, grouped by back end alias.
pub async fn fetch(ctx: Ctx<'_>, keys: &BTreeSet<Key>) -> Outcomes {
    let mut by_alias: BTreeMap<&str, Vec<&Key>> = BTreeMap::new();
    for key in keys {
        by_alias.entry(key.alias.as_str()).or_default().push(key);
    }
    let mut out = Outcomes::new();
    for group in by_alias.into_values() {
        let Some(first) = group.first() else { continue };
        match refs::provider(ctx.config, first) {
            Some(provider) => fetch_alias(ctx, &provider, &group, &mut out).await,
            None => {
                for key in group {
                    let why = format!("no [secrets.providers.{}] is configured", key.alias);
                    out.insert(key.clone(), Err(BackendError::Invalid(why)));
                }
            }
        }
    }
    out
}

async fn fetch_alias(ctx: Ctx<'_>, provider: &SecretProvider, keys: &[&Key], out: &mut Outcomes) {
    let all = |result: Result<(), BackendError>, out: &mut Outcomes| {
        if let Err(error) = result {
            for key in keys {
                out.insert((*key).clone(), Err(error.clone()));
            }
        }
    };
    match provider {
        SecretProvider::Env { allowlist } => {
            for key in keys {
                out.insert((*key).clone(), env::fetch(&key.id, allowlist, ctx.env));
            }
        }
        SecretProvider::File { path, mode } => {
            let path = refs::file_path(ctx.home, path.as_ref());
            match file::read(&path, *mode) {
                Ok(contents) => {
                    for key in keys {
                        out.insert((*key).clone(), file::pick(&contents, &key.id));
                    }
                }
                Err(error) => all(Err(error), out),
            }
        }
        SecretProvider::Vault {
            address,
            token,
            mount,
            namespace,
            ..
        } => {
            let client = match vault_token(ctx, token.as_ref()) {
                Ok(token) => vault::Vault {
                    address: address.clone(),
                    mount: mount.clone(),
                    namespace: namespace.clone(),
                    token,
                },
                Err(error) => return all(Err(error), out),
            };
            let paths: BTreeSet<&str> = keys.iter().map(|k| vault::split_id(&k.id).0).collect();
            let mut read = BTreeMap::new();
            for path in paths {
                let result = client.read(ctx.http, path).await;
                // A back end that is down is down for every path: don't wait out each.
                let outage = matches!(&result, Err(e) if e.is_outage());
                read.insert(path, result);
                if outage {
                    break;
                }
            }
            let outage = read
                .values()
                .find_map(|r| r.as_ref().err().filter(|e| e.is_outage()).cloned());
            for key in keys {
                let (path, field) = vault::split_id(&key.id);
                let result = match (read.get(path), &outage) {
                    (Some(Ok(secret)), _) => {
                        vault::field(secret, path, field).map(|value| Fetched {
                            value,
                            version: secret.version.to_string(),
                        })
                    }
                    (Some(Err(error)), _) => Err(error.clone()),
                    (None, Some(error)) => Err(error.clone()),
                    (None, None) => Err(BackendError::Unavailable("not asked".into())),
                };
                out.insert((*key).clone(), result);
            }
        }
        SecretProvider::Aws {
            region, endpoint, ..
        } => {
            let client = match aws::Aws::new(region.as_deref(), endpoint.as_deref(), ctx.env) {
                Ok(client) => client,
                Err(error) => return all(Err(error), out),
            };
            let mut outage: Option<BackendError> = None;
            for key in keys {
                let result = match &outage {
                    Some(error) => Err(error.clone()),
                    None => client.get(ctx.http, &key.id).await,
                };
                if let Err(error) = &result
                    && error.is_outage()
                {
                    outage = Some(error.clone());
                }
                out.insert((*key).clone(), result);
            }
        }
    }
}

/// The Vault token: the provider's `token` (plaintext, `env:NAME`, `file:/path/to/token`
/// or a `file:` ref into a file back end), else `VAULT_TOKEN`, else `~/.vault-token`.
pub fn vault_token(ctx: Ctx<'_>, token: Option<&SecretValue>) -> Result<String, BackendError> {
    match token {
        Some(SecretValue::Plain(token)) => Ok(token.clone()),
        Some(SecretValue::Ref(r)) => match r.source {
            // `file:/run/secrets/vault-token`: a token file of its own (checked like the
            // secrets file) rather than a pointer into `secrets.json`.
            SecretSource::File if r.provider.is_none() && Path::new(&r.id).is_file() => {
                let contents = file::read(Path::new(&r.id), pincer_config::FileMode::Single)
                    .map_err(|e| BackendError::Denied(format!("Vault token `{r}`: {e}")))?;
                file::pick(&contents, &r.id).map(|f| f.value)
            }
            SecretSource::Env | SecretSource::File => {
                let key = refs::settle(r, ctx.config).map_err(BackendError::Invalid)?;
                sync_fetch(ctx.config, ctx.home, ctx.env, &key)
                    .map(|f| f.value)
                    .map_err(|e| BackendError::Denied(format!("Vault token `{r}`: {e}")))
            }
            other => Err(BackendError::Invalid(format!(
                "a Vault token cannot come from `{}` (use env: or file:)",
                other.name()
            ))),
        },
        None => {
            if let Ok(f) = env::fetch("VAULT_TOKEN", &[], ctx.env) {
                return Ok(f.value);
            }
            let home = ctx
                .env
                .get("HOME")
                .cloned()
                .or_else(|| std::env::var("HOME").ok())
                .unwrap_or_default();
            let path = Path::new(&home).join(".vault-token");
            std::fs::read_to_string(&path)
                .map(|t| t.trim().to_string())
                .ok()
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    BackendError::Denied(
                        "no Vault token: set `token`, VAULT_TOKEN or ~/.vault-token".into(),
                    )
                })
        }
    }
}

/// Resolves an env or file key without I/O beyond the file (no network).
pub fn sync_fetch(
    config: &Config,
    home: &Path,
    env: &BTreeMap<String, String>,
    key: &Key,
) -> Result<Fetched, BackendError> {
    match refs::provider(config, key) {
        Some(SecretProvider::Env { allowlist }) => env::fetch(&key.id, &allowlist, env),
        Some(SecretProvider::File { path, mode }) => {
            let path = refs::file_path(home, path.as_ref());
            file::pick(&file::read(&path, mode)?, &key.id)
        }
        Some(_) => Err(BackendError::Invalid(format!(
            "`{key}` needs the network; the running gateway resolves it"
        ))),
        None => Err(BackendError::Invalid(format!(
            "no [secrets.providers.{}] is configured",
            key.alias
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_vault_token_comes_from_env_a_token_file_or_is_refused() {
        let dir = std::env::temp_dir().join(format!("pincer-vt-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("vault-token");
        std::fs::write(&path, "hvs.from-file\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let config = Config::default();
        let env = BTreeMap::from([("MY_VAULT".to_string(), "hvs.from-env".to_string())]);
        let http = reqwest::Client::new();
        let ctx = Ctx {
            config: &config,
            home: &dir,
            env: &env,
            http: &http,
        };
        let value = |t: &str| SecretValue::from_text(t);
        assert_eq!(
            vault_token(ctx, Some(&value("env:MY_VAULT"))).as_deref(),
            Ok("hvs.from-env")
        );
        let file_form = format!("file:{}", path.display());
        assert_eq!(
            vault_token(ctx, Some(&value(&file_form))).as_deref(),
            Ok("hvs.from-file")
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            vault_token(ctx, Some(&value(&file_form))),
            Err(BackendError::Denied(_))
        ));
        assert!(matches!(
            vault_token(ctx, Some(&value("vault:x#y"))),
            Err(BackendError::Invalid(_))
        ));
    }
}
