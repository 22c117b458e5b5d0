//! Loading: `config/default.toml` < the config file < environment, then typed and checked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::{Config, ConfigError, SecretValue, validate};

/// The base layer, compiled in.
pub const DEFAULT_TOML: &str = include_str!("../default.toml");

/// The largest config file read: 4 MiB. A config is a few kilobytes; anything near this
/// is a mistake (`--config /dev/zero` once grew the gateway to 4 GB before failing).
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// The agent created when no agent is configured at all.
pub const FALLBACK_AGENT: &str = "main";

/// Where to load from. Built from the process environment by [`Sources::from_env`];
/// tests build it by hand.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `$PINCER_HOME` (default `~/.pincer`).
    pub home: PathBuf,
    /// The config file: given explicitly (must exist) or the default path (may be absent).
    pub file: Option<PathBuf>,
    /// Whether `file` was asked for explicitly (`--config`, `PINCER_CONFIG`).
    pub file_required: bool,
    /// Environment variables (`PINCER__SECTION__KEY`, `PINCER_GATEWAY_PORT`,
    /// `PINCER_GATEWAY_TOKEN`).
    pub env: BTreeMap<String, String>,
}

/// A loaded config with where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The typed config.
    pub config: Config,
    /// The file that was read, if any.
    pub file: Option<PathBuf>,
    /// Things worth a log line that do not stop the gateway.
    pub warnings: Vec<String>,
    /// Where `gateway.auth.token` was written (`file:line`, an environment variable),
    /// for [`Loaded::check_gateway_token`].
    token_origin: Option<String>,
}

/// The variable that sets the gateway token.
const TOKEN_ENV: &str = "PINCER_GATEWAY_TOKEN";

/// The variable naming a file that holds only the gateway token: a Docker or Kubernetes
/// secret such as `/run/secrets/pincer_token`, as the `_FILE` variables of common images.
pub const TOKEN_FILE_ENV: &str = "PINCER_GATEWAY_TOKEN_FILE";

/// The `file` secrets back end that [`TOKEN_FILE_ENV`] adds to `[secrets.providers]`.
pub const TOKEN_FILE_PROVIDER: &str = "gatewayTokenFile";

impl Loaded {
    /// Checks a gateway token written in the config as plaintext against
    /// [`token_problem`](crate::token_problem), naming where it was written. A ref is
    /// checked once resolved, by whoever resolves it.
    ///
    /// Not part of [`load`]: commands other than the gateway read configs with any token
    /// (the CLI only sends it).
    pub fn check_gateway_token(&self) -> Result<(), ConfigError> {
        let Some(SecretValue::Plain(token)) = &self.config.gateway.auth.token else {
            return Ok(());
        };
        match crate::token_problem(token) {
            None => Ok(()),
            Some(problem) => Err(ConfigError::InvalidValue {
                key: "gateway.auth.token".to_string(),
                location: self.token_origin.clone(),
                reason: format!(
                    "{problem} (without a token set, the gateway generates one into $PINCER_HOME/gateway.token)"
                ),
            }),
        }
    }
}

/// Config file formats, by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.toml` (and anything unknown).
    Toml,
    /// `.json`.
    Json,
    /// `.json5` (JSON with comments, as the product docs write it).
    Json5,
}

impl Format {
    /// The format a path's extension names.
    pub fn of(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => Self::Json,
            Some("json5") => Self::Json5,
            _ => Self::Toml,
        }
    }

    fn file_format(self) -> config::FileFormat {
        match self {
            Self::Toml => config::FileFormat::Toml,
            // JSON is parsed as JSON5 too: the product docs' JSON snippets carry comments.
            Self::Json | Self::Json5 => config::FileFormat::Json5,
        }
    }
}

impl Sources {
    /// Sources from the process environment, with an optional `--config` path.
    pub fn from_env(cli_config: Option<PathBuf>) -> Self {
        let env: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("PINCER"))
            .collect();
        let home = env
            .get("PINCER_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(default_home);
        let explicit = cli_config.or_else(|| env.get("PINCER_CONFIG").map(PathBuf::from));
        let file_required = explicit.is_some();
        let file = explicit.or_else(|| {
            ["pincer.toml", "pincer.json5", "pincer.json"]
                .iter()
                .map(|name| home.join(name))
                // A dangling link counts as there (and fails to load, naming its target):
                // silently running on the defaults would hide it.
                .find(|p| p.symlink_metadata().is_ok())
        });
        Self {
            home,
            file,
            file_required,
            env,
        }
    }
}

fn default_home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".pincer")
}

/// Loads, types and validates the config.
pub fn load(sources: &Sources) -> Result<Loaded, ConfigError> {
    let file = match &sources.file {
        Some(path) => read_file(path, sources.file_required)?.map(|text| (path.clone(), text)),
        None => None,
    };
    load_from(sources, file)
}

/// [`load`] with the file already read ([`read_file`]): `(path, text)`, or `None` for no
/// file. The config watcher looks at the text first (an emptied file is an edit in
/// progress, not a config).
pub fn load_from(
    sources: &Sources,
    file: Option<(PathBuf, String)>,
) -> Result<Loaded, ConfigError> {
    let (config, warnings) = build(
        file.as_ref().map(|(p, t)| (p.as_path(), t.as_str())),
        &sources.env,
    )?;
    let token_origin = match &config.gateway.auth.token {
        Some(_) if sources.env.contains_key(TOKEN_ENV) => {
            Some(format!("environment variable {TOKEN_ENV}"))
        }
        Some(_) => super::errors::locate(
            &["gateway".into(), "auth".into(), "token".into()],
            file.as_ref().map(|(p, t)| (p.as_path(), t.as_str())),
            &sources.env,
        ),
        None => None,
    };
    Ok(Loaded {
        config,
        file: file.map(|(p, _)| p),
        warnings,
        token_origin,
    })
}

/// Reads the config file at `path`: `None` when nothing is there and the file was not
/// `required`. Only a regular file of at most [`MAX_CONFIG_BYTES`] is read: anything else
/// (a FIFO, a device, a directory) is refused by its metadata, never opened for reading;
/// a dangling symbolic link is refused naming its target.
pub fn read_file(path: &Path, required: bool) -> Result<Option<String>, ConfigError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;

    let io = |e: std::io::Error| ConfigError::Io {
        path: path.to_path_buf(),
        error: e.to_string(),
    };
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Is the name there, pointing nowhere?
            if let Ok(target) = std::fs::read_link(path) {
                return Err(ConfigError::DanglingLink {
                    path: path.to_path_buf(),
                    target: path
                        .parent()
                        .map_or(target.clone(), |dir| dir.join(&target)),
                });
            }
            return if required { Err(io(e)) } else { Ok(None) };
        }
        Err(e) => return Err(io(e)),
    };
    let not_a_file = |kind: std::fs::FileType| ConfigError::NotAFile {
        path: path.to_path_buf(),
        kind: describe(kind).to_string(),
    };
    if !meta.is_file() {
        return Err(not_a_file(meta.file_type()));
    }
    let too_large = |size: u64| ConfigError::TooLarge {
        path: path.to_path_buf(),
        size,
        max: MAX_CONFIG_BYTES,
    };
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(too_large(meta.len()));
    }
    // Swapped for a FIFO since the look above? Non-blocking, the open cannot hang, and
    // the handle's own metadata tells.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(not_a_file(meta.file_type()));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|e| ConfigError::Io {
            path: path.to_path_buf(),
            error: format!("not UTF-8 text ({e})"),
        })
}

/// What a file that is not a regular file is, for messages.
fn describe(kind: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

/// Parses config text alone (no environment), as `load` would with that file.
pub fn parse_str(text: &str, format: Format) -> Result<Config, ConfigError> {
    let name = match format {
        Format::Toml => "pincer.toml",
        Format::Json => "pincer.json",
        Format::Json5 => "pincer.json5",
    };
    build(Some((Path::new(name), text)), &BTreeMap::new()).map(|(c, _)| c)
}

fn build(
    file: Option<(&Path, &str)>,
    env: &BTreeMap<String, String>,
) -> Result<(Config, Vec<String>), ConfigError> {
    let mut builder = config::Config::builder().add_source(config::File::from_str(
        DEFAULT_TOML,
        config::FileFormat::Toml,
    ));
    let cleaned;
    let file = match file {
        Some((path, text)) if Format::of(path) != Format::Toml => {
            cleaned = blank_hash_comments(text);
            Some((path, cleaned.as_str()))
        }
        other => other,
    };
    if let Some((path, text)) = file {
        // Parse the file alone first, so that a syntax error names the file.
        let format = Format::of(path).file_format();
        config::Config::builder()
            .add_source(config::File::from_str(text, format))
            .build()
            .map_err(|e| ConfigError::Parse {
                path: path.to_path_buf(),
                error: e.to_string(),
            })?;
        builder = builder.add_source(config::File::from_str(text, format));
    }
    let generic: config::Map<String, String> = env
        .iter()
        .filter(|(k, _)| k.starts_with("PINCER__"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    builder = builder.add_source(
        config::Environment::with_prefix("PINCER")
            .prefix_separator("__")
            .separator("__")
            .convert_case(config::Case::Camel)
            .try_parsing(true)
            .source(Some(generic)),
    );
    if let Some(port) = env.get("PINCER_GATEWAY_PORT") {
        let port: u16 = port.trim().parse().map_err(|_| ConfigError::Env {
            var: "PINCER_GATEWAY_PORT".to_string(),
            error: format!("`{port}` is not a port number (1-65535)"),
        })?;
        builder = builder
            .set_override("gateway.port", i64::from(port))
            .map_err(|e| env_error("PINCER_GATEWAY_PORT", e))?;
    }
    if let Some(token) = env.get(TOKEN_ENV) {
        builder = builder
            .set_override("gateway.auth.token", token.clone())
            .map_err(|e| env_error(TOKEN_ENV, e))?;
    }
    let layered = builder.build().map_err(|e| ConfigError::Env {
        var: "PINCER__*".to_string(),
        error: e.to_string(),
    })?;
    let mut value: Value = layered
        .try_deserialize()
        .map_err(|e: config::ConfigError| ConfigError::Env {
            var: "PINCER__*".to_string(),
            error: e.to_string(),
        })?;
    apply_agent_shorthand(&mut value);
    token_file(&mut value, env)?;
    expand_model_strings(&mut value);
    inherit_default_agent(&mut value);

    let mut config: Config = super::env_keys::deserialize(&mut value, env)
        .map_err(|e| super::errors::explain(e, file, env))?;
    super::env_keys::default_key_refs(&mut config);
    let mut warnings = validate::validate(&config, file, env).map_err(ConfigError::Invalid)?;
    warnings.extend(super::env_keys::deprecations(env));
    Ok((config, warnings))
}

fn env_error(var: &str, error: config::ConfigError) -> ConfigError {
    ConfigError::Env {
        var: var.to_string(),
        error: error.to_string(),
    }
}

/// JSON has no `#` comments, but the product docs start JSON snippets with one; whole
/// lines starting with `#` are blanked (keeping line numbers for error messages).
fn blank_hash_comments(text: &str) -> String {
    text.lines()
        .map(|line| {
            if line.trim_start().starts_with('#') {
                ""
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The seed's top-level `agent` block configures the default agent.
fn apply_agent_shorthand(value: &mut Value) {
    let Some(root) = value.as_object_mut() else {
        return;
    };
    let Some(agent) = root.remove("agent") else {
        return;
    };
    let agents = root
        .entry("agents")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(agents) = agents.as_object_mut() {
        let target = agents
            .entry("default")
            .or_insert_with(|| Value::Object(Map::new()));
        merge(target, agent);
    }
}

/// `PINCER_GATEWAY_TOKEN_FILE=PATH` becomes a `file` secrets back end in single mode and a
/// ref to it as `gateway.auth.token`: the file is checked (private to the gateway's user),
/// watched and rotated as every secrets file is, and read nowhere else.
fn token_file(value: &mut Value, env: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    let Some(path) = env.get(TOKEN_FILE_ENV) else {
        return Ok(());
    };
    let refuse = |why: String| ConfigError::Env {
        var: TOKEN_FILE_ENV.to_string(),
        error: why,
    };
    if path.trim().is_empty() {
        return Err(refuse(
            "is empty; it names the file that holds the gateway token".to_string(),
        ));
    }
    if !Path::new(path).is_absolute() {
        return Err(refuse(format!(
            "`{path}` is not an absolute path (e.g. /run/secrets/pincer_token)"
        )));
    }
    if let Some(other) = [TOKEN_ENV, "PINCER__GATEWAY__AUTH__TOKEN"]
        .into_iter()
        .find(|v| env.contains_key(*v))
    {
        return Err(refuse(format!(
            "and {other} both set the gateway token; keep one"
        )));
    }
    let Some(root) = value.as_object_mut() else {
        return Ok(());
    };
    fn table(parent: &mut Map<String, Value>, key: &str) -> Map<String, Value> {
        match parent.remove(key) {
            Some(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }
    let mut secrets = table(root, "secrets");
    let mut providers = table(&mut secrets, "providers");
    providers.insert(
        TOKEN_FILE_PROVIDER.to_string(),
        serde_json::json!({"source": "file", "path": path, "mode": "single"}),
    );
    secrets.insert("providers".to_string(), Value::Object(providers));
    root.insert("secrets".to_string(), Value::Object(secrets));
    let mut gateway = table(root, "gateway");
    let mut auth = table(&mut gateway, "auth");
    auth.insert(
        "token".to_string(),
        serde_json::json!({"source": "file", "provider": TOKEN_FILE_PROVIDER, "id": "token"}),
    );
    gateway.insert("auth".to_string(), Value::Object(auth));
    root.insert("gateway".to_string(), Value::Object(gateway));
    Ok(())
}

/// `model = "anthropic/claude-4.6-sonnet"` becomes `{ provider, name }`, so that an agent
/// that sets only `model.thinking` still inherits the default agent's model name.
fn expand_model_strings(value: &mut Value) {
    let Some(agents) = value.get_mut("agents").and_then(Value::as_object_mut) else {
        return;
    };
    for agent in agents.values_mut() {
        if let Some(model) = agent.get_mut("model")
            && let Some(text) = model.as_str()
        {
            let parsed = super::agents::ModelConfig::from_text(text);
            let mut table = Map::new();
            if let Some(p) = parsed.provider {
                table.insert("provider".into(), Value::from(p));
            }
            if let Some(n) = parsed.name {
                table.insert("name".into(), Value::from(n));
            }
            *model = Value::Object(table);
        }
    }
}

/// Every agent inherits the keys it does not set from the agent named `default`
/// (except `default` itself). With no agent at all, one agent `main` runs on echo.
fn inherit_default_agent(value: &mut Value) {
    let Some(root) = value.as_object_mut() else {
        return;
    };
    let agents = root
        .entry("agents")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(agents) = agents.as_object_mut() else {
        return;
    };
    if agents.is_empty() {
        agents.insert(
            FALLBACK_AGENT.to_string(),
            serde_json::json!({ "model": { "provider": "echo", "name": "echo" } }),
        );
        return;
    }
    let Some(mut base) = agents.get("default").cloned() else {
        return;
    };
    if let Some(base) = base.as_object_mut() {
        base.remove("default");
    }
    for (id, agent) in agents.iter_mut() {
        if id != "default" {
            let own = std::mem::take(agent);
            let own_model = own.get("model").cloned();
            let mut merged = base.clone();
            merge(&mut merged, own);
            drop_window_of_another_model(&mut merged, base.get("model"), own_model.as_ref());
            *agent = merged;
        }
    }
}

/// The window keys describe a model, not an agent: an agent that names a model of its
/// own does not take `default`'s `contextWindow` and `maxOutputTokens` with it (a
/// gpt-4.1 window on a Claude agent would send requests Claude refuses).
fn drop_window_of_another_model(merged: &mut Value, base: Option<&Value>, own: Option<&Value>) {
    let Some(own) = own else {
        return;
    };
    let differs = ["provider", "name"].iter().any(|key| {
        own.get(*key)
            .is_some_and(|v| base.and_then(|b| b.get(*key)) != Some(v))
    });
    if !differs {
        return;
    }
    if let Some(model) = merged.get_mut("model").and_then(Value::as_object_mut) {
        for key in ["contextWindow", "maxOutputTokens"] {
            if own.get(key).is_none() {
                model.remove(key);
            }
        }
    }
}

/// Deep-merges `top` over `base`: tables merge key by key, anything else replaces.
pub(crate) fn merge(base: &mut Value, top: Value) {
    match (base, top) {
        (Value::Object(base), Value::Object(top)) => {
            for (k, v) in top {
                match base.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        base.insert(k, v);
                    }
                }
            }
        }
        (base, top) => *base = top,
    }
}
