//! `pincer secrets audit|configure|apply|reload`: find plaintext secrets and broken refs,
//! add a back end, move plaintext into a back end (the config keeps a ref), and make a
//! running gateway resolve everything again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use super::client::Client;
use super::gateway::load_config;
use super::{Failure, usage};
use pincer_config::{Config, SecretProvider, SecretSource, SecretValue};
use pincer_secrets::refs::{self, Use};

/// `pincer secrets`.
#[derive(Debug, Args)]
pub struct SecretsArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: SecretsAction,
}

/// Subcommands of `pincer secrets`.
#[derive(Debug, Subcommand)]
pub enum SecretsAction {
    /// Plaintext secrets in the config and env files, unresolved refs, refs shadowed by
    /// plaintext; or (`--access`) the access trail of a running gateway.
    Audit {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Exit 1 on findings, 2 on unresolved refs.
        #[arg(long)]
        check: bool,
        /// Show which actor read which secret, when (from the running gateway).
        #[arg(long)]
        access: bool,
        /// With `--access`: only rows newer than this ("1h", "30m", "2d").
        #[arg(long, value_name = "DURATION")]
        since: Option<String>,
    },
    /// Add (or replace) a secrets back end in the config.
    Configure(ConfigureArgs),
    /// Move plaintext secrets into a back end and leave refs in the config.
    Apply {
        /// `agents/<id>`, `channels/<account>`, `providers/<name>`, `gateway` or `all`.
        #[arg(long, default_value = "all")]
        target: String,
        /// The back end alias to move them to (a file or vault one); default: the only
        /// such alias, else the built-in `$PINCER_HOME/secrets.json`.
        #[arg(long, value_name = "ALIAS")]
        to: Option<String>,
        /// Show the plan, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Make the running gateway resolve every secret again.
    Reload,
}

/// Kinds of back end `configure` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// HashiCorp Vault KV v2.
    Vault,
    /// AWS Secrets Manager.
    Aws,
    /// A JSON file.
    File,
    /// Environment variables.
    Env,
}

/// `pincer secrets configure`.
#[derive(Debug, Args)]
pub struct ConfigureArgs {
    /// The kind of back end.
    #[arg(long)]
    pub provider: Kind,
    /// Its alias (`[secrets.providers.<alias>]`); default: the kind's name.
    #[arg(long)]
    pub alias: Option<String>,
    /// Vault address, or AWS endpoint override.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Vault token source (`env:VAULT_TOKEN`, `file:/vault/token`).
    #[arg(long)]
    pub token: Option<String>,
    /// Vault KV mount.
    #[arg(long)]
    pub mount: Option<String>,
    /// Vault namespace.
    #[arg(long)]
    pub namespace: Option<String>,
    /// AWS region.
    #[arg(long)]
    pub region: Option<String>,
    /// File path (file back end).
    #[arg(long)]
    pub path: Option<PathBuf>,
    /// `json` or `single` (file back end).
    #[arg(long)]
    pub mode: Option<String>,
    /// Poll interval ("30s", "5m"; Vault and AWS).
    #[arg(long)]
    pub poll_interval: Option<String>,
    /// Variables the env back end may read (repeat).
    #[arg(long = "allow")]
    pub allowlist: Vec<String>,
}

/// Runs `pincer secrets ...`.
pub async fn run(config: Option<PathBuf>, args: SecretsArgs) -> Result<(), Failure> {
    match args.action {
        SecretsAction::Audit {
            access: true,
            since,
            json,
            ..
        } => access(config, since, json).await,
        SecretsAction::Audit { json, check, .. } => audit(config, json, check).await,
        SecretsAction::Configure(a) => configure(config, a).await,
        SecretsAction::Apply {
            target,
            to,
            dry_run,
        } => apply(config, &target, to.as_deref(), dry_run).await,
        SecretsAction::Reload => reload(config).await,
    }
}

// === audit ===

/// One audit finding. Never carries a value.
#[derive(Debug, Clone, serde::Serialize)]
struct Finding {
    /// `plaintext`, `plaintext-env-file`, `unresolved`, `shadowed`.
    kind: &'static str,
    /// Where (a config key, or `FILE: NAME`).
    at: String,
    /// The ref, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<String>,
    /// What is wrong.
    detail: String,
}

async fn audit(config: Option<PathBuf>, json_out: bool, check: bool) -> Result<(), Failure> {
    let (sources, loaded) = load_config(config)?;
    let cfg = &loaded.config;
    let text = loaded
        .file
        .as_deref()
        .and_then(|f| std::fs::read_to_string(f).ok())
        .unwrap_or_default();
    let resolved = pincer_secrets::Resolved::all(cfg, &sources.home, &sources.env).await;
    let mut findings = Vec::new();
    let uses = refs::uses(cfg);
    let mut refs_ok = 0;
    for u in &uses {
        match &u.value {
            SecretValue::Plain(_) => {
                let in_file = pincer_config::edit::string_at(&text, &u.key).is_some();
                let was_ref = pincer_config::edit::table_at(&text, &u.key)
                    || pincer_config::edit::string_at(&text, &u.key)
                        .is_some_and(|s| SecretValue::from_text(&s).as_ref().is_some());
                if was_ref {
                    findings.push(Finding {
                        kind: "shadowed",
                        at: u.key.clone(),
                        reference: None,
                        detail: "the file has a ref here, but a plaintext value from the environment overrides it".into(),
                    });
                } else {
                    let source = if in_file {
                        "the config file"
                    } else {
                        "the environment (PINCER__ override) or an inherited agent setting"
                    };
                    findings.push(Finding {
                        kind: "plaintext",
                        at: u.key.clone(),
                        reference: None,
                        detail: format!("plaintext secret in {source}; `pincer secrets apply` moves it into a back end"),
                    });
                }
            }
            SecretValue::Ref(r) => match resolved.get(&u.value) {
                Ok(_) => refs_ok += 1,
                Err(error) => findings.push(Finding {
                    kind: "unresolved",
                    at: u.key.clone(),
                    reference: Some(r.to_string()),
                    detail: error.to_string(),
                }),
            },
        }
    }
    for file in env_files(&sources.home, loaded.file.as_deref()) {
        for name in plaintext_in_env_file(&file) {
            findings.push(Finding {
                kind: "plaintext-env-file",
                at: format!("{}: {name}", file.display()),
                reference: None,
                detail: "a secret-looking variable in an env file; keep it in a back end (or at least chmod 600 the file)".into(),
            });
        }
    }
    let count = |k: &str| findings.iter().filter(|f| f.kind == k).count();
    let summary = json!({
        "plaintext": count("plaintext") + count("plaintext-env-file"),
        "unresolved": count("unresolved"),
        "shadowed": count("shadowed"),
        "refs_resolved": refs_ok,
        "secrets": uses.len(),
    });
    if json_out {
        out!(
            "{}",
            serde_json::to_string_pretty(&json!({"findings": findings, "summary": summary}))?
        );
    } else {
        for f in &findings {
            let reference = f
                .reference
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            out!("[{}] {}{reference}: {}", f.kind, f.at, f.detail);
        }
        out!(
            "{} secret value(s) in the config: {} ref(s) resolved, {} plaintext, {} unresolved, {} shadowed; {} plaintext in env files",
            uses.len(),
            refs_ok,
            count("plaintext"),
            summary["unresolved"],
            summary["shadowed"],
            count("plaintext-env-file")
        );
    }
    if check {
        if count("unresolved") > 0 {
            return Err(Failure {
                code: 2,
                error: anyhow!("{} unresolved secret ref(s)", count("unresolved")),
            });
        }
        if !findings.is_empty() {
            return Err(anyhow!("{} finding(s)", findings.len()).into());
        }
    }
    Ok(())
}

/// `.env` files where secrets tend to end up: in `$PINCER_HOME` and beside the config.
fn env_files(home: &Path, config: Option<&Path>) -> Vec<PathBuf> {
    let mut files = vec![home.join(".env")];
    if let Some(dir) = config.and_then(Path::parent) {
        let beside = dir.join(".env");
        if !files.contains(&beside) {
            files.push(beside);
        }
    }
    files.into_iter().filter(|f| f.is_file()).collect()
}

/// Names of variables in an env file that look like secrets and hold a value.
fn plaintext_in_env_file(path: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let line = line.trim().trim_start_matches("export ").trim();
            let (name, value) = line.split_once('=')?;
            let (name, value) = (name.trim(), value.trim().trim_matches(['"', '\'']));
            let upper = name.to_ascii_uppercase();
            let secretish = ["KEY", "TOKEN", "SECRET", "PASSWORD"]
                .iter()
                .any(|w| upper.contains(w));
            (!line.starts_with('#') && secretish && !value.is_empty()).then(|| name.to_string())
        })
        .collect()
}

async fn access(
    config: Option<PathBuf>,
    since: Option<String>,
    json_out: bool,
) -> Result<(), Failure> {
    let since_ms = match since {
        Some(text) => {
            let ago = pincer_config::duration::parse_duration(&text)
                .map_err(|e| usage(anyhow!("--since {text}: {e}")))?;
            pincer_core::now_ms().saturating_sub(ago.as_millis() as u64)
        }
        None => 0,
    };
    let client = Client::from_config(config).await?;
    let answer = client
        .get_json(&format!("/admin/secrets/access?since={since_ms}"))
        .await?;
    if json_out {
        out!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    let rows = answer["access"].as_array().cloned().unwrap_or_default();
    for row in &rows {
        out!(
            "{}  {}  {}  {}",
            row["at"]
                .as_u64()
                .map_or_else(String::new, pincer_secrets::utc),
            row["actor"].as_str().unwrap_or_default(),
            row["reference"].as_str().unwrap_or_default(),
            row["outcome"].as_str().unwrap_or_default()
        );
    }
    out!("{} access(es)", rows.len());
    Ok(())
}

// === configure ===

async fn configure(config: Option<PathBuf>, a: ConfigureArgs) -> Result<(), Failure> {
    use toml_edit::Value as V;
    let kind = match a.provider {
        Kind::Vault => "vault",
        Kind::Aws => "aws",
        Kind::File => "file",
        Kind::Env => "env",
    };
    let alias = a.alias.clone().unwrap_or_else(|| kind.to_string());
    let mut fields: Vec<(&str, V)> = vec![("source", V::from(kind))];
    let mut put = |key: &'static str, value: &Option<String>| {
        if let Some(v) = value {
            fields.push((key, V::from(v.as_str())));
        }
    };
    match a.provider {
        Kind::Vault => {
            let Some(address) = &a.endpoint else {
                return Err(usage(anyhow!(
                    "--endpoint URL (the Vault address) is required for --provider vault"
                )));
            };
            put("address", &Some(address.clone()));
            put("token", &a.token);
            put("mount", &a.mount);
            put("namespace", &a.namespace);
            put("pollInterval", &a.poll_interval);
        }
        Kind::Aws => {
            put("region", &a.region);
            put("endpoint", &a.endpoint);
            put("pollInterval", &a.poll_interval);
        }
        Kind::File => {
            put("path", &a.path.as_ref().map(|p| p.display().to_string()));
            put("mode", &a.mode);
        }
        Kind::Env => {
            if !a.allowlist.is_empty() {
                let list: toml_edit::Array = a.allowlist.iter().map(String::as_str).collect();
                fields.push(("allowlist", V::Array(list)));
            }
        }
    }
    let change = |text: &str| pincer_config::edit::set_secrets_provider(text, &alias, &fields);
    let report = |replaced: bool, file: &str| {
        let verb = if replaced { "replaced" } else { "added" };
        out!("{verb} [secrets.providers.{alias}] (source = \"{kind}\") in {file}");
    };
    super::agents::edit(config.clone(), change, report, None)?;
    ask_reload(config).await;
    Ok(())
}

// === apply ===

/// One plaintext value to move.
struct Move {
    key: String,
    value: String,
    /// The id in the back end.
    id: String,
}

async fn apply(
    config: Option<PathBuf>,
    target: &str,
    to: Option<&str>,
    dry_run: bool,
) -> Result<(), Failure> {
    let (sources, loaded) = load_config(config.clone())?;
    let cfg = &loaded.config;
    let file = loaded
        .file
        .clone()
        .ok_or_else(|| usage(anyhow!("there is no config file to apply to")))?;
    let text = std::fs::read_to_string(&file)?;
    let owner = target_owner(cfg, target)?;
    let (alias, backend) = destination(cfg, to)?;
    let moves: Vec<Move> = refs::uses(cfg)
        .into_iter()
        .filter(|u| owner.as_ref().is_none_or(|o| o.contains(&u.owner)))
        .filter_map(|u: Use| {
            // What the file itself holds at the key, when that is plaintext: a value the
            // environment overrides is still on disk, and an inherited one is not there.
            let written = pincer_config::edit::string_at(&text, &u.key)?;
            match SecretValue::from_text(&written) {
                SecretValue::Plain(value) => Some(Move {
                    id: backend_id(&backend, &u.key),
                    key: u.key,
                    value,
                }),
                SecretValue::Ref(_) => None,
            }
        })
        .collect();
    if moves.is_empty() {
        out!(
            "nothing to apply: no plaintext secret under `{target}` in {}",
            file.display()
        );
        return Ok(());
    }
    let source = refs::source_of(&backend).name();
    out!(
        "{} plaintext secret(s) move to `{alias}` ({source}):",
        moves.len()
    );
    for m in &moves {
        out!(
            "  {} → {{ source = \"{source}\", provider = \"{alias}\", id = \"{}\" }}",
            m.key,
            m.id
        );
    }
    if dry_run {
        out!("dry run: nothing changed");
        return Ok(());
    }
    store_values(&sources.home, &sources.env, cfg, &backend, &moves).await?;
    let change = |text: &str| {
        let mut text = text.to_string();
        let mut n = 0;
        for m in &moves {
            let fields = [
                ("source", source),
                ("provider", alias.as_str()),
                ("id", m.id.as_str()),
            ];
            let (next, done) = pincer_config::edit::replace_with_ref(&text, &m.key, &fields)?;
            text = next;
            n += usize::from(done);
        }
        Ok((text, n))
    };
    let report = |n: usize, file: &str| out!("{n} value(s) in {file} are refs now");
    super::agents::edit(config.clone(), change, report, None)?;
    ask_reload(config).await;
    Ok(())
}

/// The owners `target` stands for (`None`: all).
fn target_owner(cfg: &Config, target: &str) -> Result<Option<Vec<String>>, Failure> {
    let mut parts = target.trim_matches('/').split('/');
    let owners = match (parts.next(), parts.next()) {
        (Some("all"), None) => return Ok(None),
        (Some("gateway"), None) => vec![refs::gateway_owner()],
        // The seed's `agents/<id>/auth-profiles.json` names the same agent.
        (Some("agents"), Some(id)) if cfg.agents.contains_key(id) => vec![refs::agent_owner(id)],
        (Some("providers"), Some(name)) => vec![refs::provider_owner(name)],
        (Some("channels"), Some(account)) => {
            let kinds: Vec<String> = cfg
                .accounts()
                .into_iter()
                .filter(|(_, id)| *id == account)
                .map(|(kind, id)| refs::account_owner(kind, id))
                .collect();
            if kinds.is_empty() {
                return Err(usage(anyhow!(
                    "no channel account `{account}` in the config"
                )));
            }
            kinds
        }
        (Some("agents"), Some(id)) => {
            return Err(usage(anyhow!("no agent `{id}` in the config")));
        }
        _ => {
            return Err(usage(anyhow!(
                "--target `{target}`: use agents/<id>, channels/<account>, providers/<name>, gateway or all"
            )));
        }
    };
    Ok(Some(owners))
}

/// The back end to move values to.
fn destination(cfg: &Config, to: Option<&str>) -> Result<(String, SecretProvider), Failure> {
    let writable = |p: &SecretProvider| {
        matches!(
            p,
            SecretProvider::File { .. } | SecretProvider::Vault { .. } | SecretProvider::Aws { .. }
        )
    };
    if let Some(alias) = to {
        let key = refs::Key {
            source: SecretSource::File,
            alias: alias.to_string(),
            id: String::new(),
        };
        return match cfg
            .secrets
            .providers
            .get(alias)
            .cloned()
            .or_else(|| refs::provider(cfg, &key))
        {
            Some(p) if writable(&p) => Ok((alias.to_string(), p)),
            Some(_) => Err(usage(anyhow!(
                "[secrets.providers.{alias}] cannot be written to (use a file, vault or aws back end)"
            ))),
            None => Err(usage(anyhow!(
                "no [secrets.providers.{alias}]; add one with `pincer secrets configure`"
            ))),
        };
    }
    let candidates: Vec<(&String, &SecretProvider)> = cfg
        .secrets
        .providers
        .iter()
        .filter(|(_, p)| writable(p))
        .collect();
    match candidates.as_slice() {
        [] => Ok((
            refs::DEFAULT_ALIAS.to_string(),
            SecretProvider::File {
                path: None,
                mode: pincer_config::FileMode::Json,
            },
        )),
        [(alias, p)] => Ok(((*alias).clone(), (*p).clone())),
        many => Err(usage(anyhow!(
            "several back ends could take the values ({}); choose one with --to",
            many.iter()
                .map(|(a, _)| a.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Where a config key's value goes in a back end.
fn backend_id(backend: &SecretProvider, key: &str) -> String {
    let steps: Vec<String> = key
        .replace('[', ".")
        .replace(']', "")
        .split('.')
        .map(str::to_string)
        .collect();
    match backend {
        SecretProvider::Vault { .. } => {
            let (field, path) = steps
                .split_last()
                .map_or((String::new(), &[][..]), |(f, p)| (f.clone(), p));
            format!("pincer/{}#{field}", path.join("/"))
        }
        SecretProvider::Aws { .. } => format!("pincer/{}", steps.join("/")),
        _ => format!("/{}", steps.join("/")),
    }
}

async fn store_values(
    home: &Path,
    env: &BTreeMap<String, String>,
    cfg: &Config,
    backend: &SecretProvider,
    moves: &[Move],
) -> Result<(), Failure> {
    let http = pincer_core::net::http_client()?;
    match backend {
        SecretProvider::File { path, mode } => {
            if *mode != pincer_config::FileMode::Json {
                return Err(usage(anyhow!(
                    "a single-value file back end holds one secret; apply needs a json one"
                )));
            }
            let path = refs::file_path(home, path.as_ref());
            let mut doc: Value = match std::fs::read_to_string(&path) {
                Ok(text) => {
                    pincer_secrets::file::read(&path, *mode).map_err(|e| anyhow!("{e}"))?;
                    serde_json::from_str(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => json!({}),
                Err(e) => return Err(anyhow!("{}: {e}", path.display()).into()),
            };
            for m in moves {
                set_pointer(&mut doc, &m.id, Value::String(m.value.clone()));
            }
            write_private(&path, &serde_json::to_string_pretty(&doc)?)?;
            out!("wrote {} value(s) to {}", moves.len(), path.display());
        }
        SecretProvider::Vault {
            address,
            token,
            mount,
            namespace,
            ..
        } => {
            let ctx = pincer_secrets::fetch::Ctx {
                config: cfg,
                home,
                env,
                http: &http,
            };
            let token = pincer_secrets::fetch::vault_token(ctx, token.as_ref())
                .map_err(|e| anyhow!("{e}"))?;
            let vault = pincer_secrets::vault::Vault {
                address: address.clone(),
                mount: mount.clone(),
                namespace: namespace.clone(),
                token,
            };
            let mut by_path: BTreeMap<&str, serde_json::Map<String, Value>> = BTreeMap::new();
            for m in moves {
                let (path, field) = pincer_secrets::vault::split_id(&m.id);
                by_path
                    .entry(path)
                    .or_default()
                    .insert(field.to_string(), Value::String(m.value.clone()));
            }
            for (path, fields) in by_path {
                // Keep fields already there: a write replaces the whole secret.
                let mut all = match vault.read(&http, path).await {
                    Ok(secret) => secret.fields,
                    Err(pincer_secrets::BackendError::NotFound(_)) => serde_json::Map::new(),
                    Err(e) => return Err(anyhow!("{e}").into()),
                };
                all.extend(fields);
                let version = vault
                    .write(&http, path, all)
                    .await
                    .map_err(|e| anyhow!("{e}"))?;
                out!("wrote {mount}/{path} (version {version}) to Vault at {address}");
            }
        }
        SecretProvider::Aws {
            region, endpoint, ..
        } => {
            let aws = pincer_secrets::aws::Aws::new(region.as_deref(), endpoint.as_deref(), env)
                .map_err(|e| anyhow!("{e}"))?;
            for m in moves {
                aws.put(&http, &m.id, &m.value)
                    .await
                    .map_err(|e| anyhow!("{e}"))?;
                out!("wrote secret {} to AWS Secrets Manager", m.id);
            }
        }
        SecretProvider::Env { .. } => {
            return Err(usage(anyhow!("the env back end cannot be written to")));
        }
    }
    Ok(())
}

/// Sets `value` at JSON pointer `pointer`, making objects on the way.
pub(super) fn set_pointer(doc: &mut Value, pointer: &str, value: Value) {
    let mut at = doc;
    let steps: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    for (i, step) in steps.iter().enumerate() {
        if !at.is_object() {
            *at = json!({});
        }
        let Some(map) = at.as_object_mut() else {
            return;
        };
        if i + 1 == steps.len() {
            map.insert((*step).to_string(), value);
            return;
        }
        at = map.entry((*step).to_string()).or_insert_with(|| json!({}));
    }
}

/// Writes a secrets file readable by its owner only (atomically: readers never see half
/// of it).
pub(super) fn write_private(path: &Path, text: &str) -> Result<(), Failure> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    pincer_core::fs::write_atomic(path, text.as_bytes(), pincer_core::fs::Access::Private)?;
    Ok(())
}

// === reload ===

async fn reload(config: Option<PathBuf>) -> Result<(), Failure> {
    let client = Client::from_config(config).await?;
    let answer = client
        .post_json("/admin/secrets/reload", &json!({}))
        .await?;
    let report = &answer["report"];
    let failing = report["failing"].as_array().map_or(0, Vec::len);
    out!(
        "secrets reloaded: {} resolved, {} failing, {} changed",
        report["resolved"],
        failing,
        report["changed"].as_array().map_or(0, Vec::len)
    );
    for f in report["failing"].as_array().into_iter().flatten() {
        out!(
            "  unresolved {}: {}",
            f[0].as_str().unwrap_or_default(),
            f[1].as_str().unwrap_or_default()
        );
    }
    for d in report["degraded"].as_array().into_iter().flatten() {
        out!(
            "  degraded back end {}: {}",
            d[0].as_str().unwrap_or_default(),
            d[1].as_str().unwrap_or_default()
        );
    }
    Ok(())
}

/// Tells a running gateway the config changed (it notices by itself within a second).
async fn ask_reload(config: Option<PathBuf>) {
    if let Ok(client) = Client::from_config(config).await
        && client
            .post_json("/admin/config/reload", &json!({}))
            .await
            .is_ok()
    {
        out!("the running gateway at {} reloaded", client.base());
    }
}
