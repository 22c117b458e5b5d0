//! `pincer init`: a first config that reaches a real model. On a terminal it asks (the
//! provider, the model, where the key is); otherwise the flags say. It writes a commented
//! `pincer.toml` whose key is a secret ref (an environment variable, or
//! `$PINCER_HOME/secrets.json`, 0600) and never the key itself, checks the key the way
//! `pincer doctor` does (listing models: no tokens spent), and prints what to run next.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use super::doctor::providers;
use super::secrets::{set_pointer, write_private};
use super::{Failure, usage};
use pincer_config::Sources;

/// `pincer init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The model provider (asked on a terminal when not given).
    #[arg(long, value_enum)]
    pub provider: Option<Provider>,
    /// The model (default gpt-5 for openai, claude-sonnet-4-5 for anthropic).
    #[arg(long)]
    pub model: Option<String>,
    /// The environment variable holding the API key (default OPENAI_API_KEY or
    /// ANTHROPIC_API_KEY).
    #[arg(long, value_name = "NAME", conflicts_with = "key_file")]
    pub key_env: Option<String>,
    /// A file holding the API key: it is copied into $PINCER_HOME/secrets.json (0600) and
    /// the config refers to it there.
    #[arg(long, value_name = "PATH")]
    pub key_file: Option<PathBuf>,
    /// The provider's API base URL (a proxy, a compatible server).
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// Do not check the key with the provider.
    #[arg(long)]
    pub no_check: bool,
    /// Replace an existing config file.
    #[arg(long)]
    pub force: bool,
}

/// The providers `init` can set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Provider {
    /// The built-in offline model: answers with what it was sent.
    Echo,
    /// OpenAI (Responses API).
    Openai,
    /// Anthropic (Messages API).
    Anthropic,
}

/// Where the API key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeySource {
    /// An environment variable.
    Env(String),
    /// The key itself, to be kept in `$PINCER_HOME/secrets.json`.
    Stored(String),
}

/// What the config will say.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Choice {
    provider: Provider,
    model: String,
    key: Option<KeySource>,
    base_url: Option<String>,
}

// === impl Provider ===

impl Provider {
    fn name(self) -> &'static str {
        match self {
            Self::Echo => "echo",
            Self::Openai => "openai",
            Self::Anthropic => "anthropic",
        }
    }

    fn default_model(self) -> &'static str {
        match self {
            Self::Echo => "echo",
            Self::Openai => "gpt-5",
            Self::Anthropic => "claude-sonnet-4-5",
        }
    }

    fn default_key_env(self) -> Option<&'static str> {
        pincer_config::DEFAULT_KEY_ENV
            .iter()
            .find(|(p, _)| *p == self.name())
            .map(|(_, var)| *var)
    }
}

/// Runs `pincer init`.
pub async fn run(config: Option<PathBuf>, args: InitArgs) -> Result<(), Failure> {
    let sources = Sources::from_env(config);
    let home = sources.home.clone();
    let path = match (&sources.file, sources.file_required) {
        (Some(explicit), true) => explicit.clone(),
        _ => home.join("pincer.toml"),
    };
    if let Some(existing) = sources.file.as_ref().filter(|f| f.exists())
        && !args.force
    {
        return Err(usage(anyhow!(
            "{} already exists; pass --force to replace it (or edit it: `pincer doctor` checks it)",
            existing.display()
        )));
    }
    let choice = match args.provider {
        Some(provider) => from_flags(provider, &args)?,
        None if std::io::stdin().is_terminal() => ask(&args)?,
        None => {
            return Err(usage(anyhow!(
                "stdin is not a terminal: pass --provider echo|openai|anthropic (with --key-env NAME or --key-file PATH)"
            )));
        }
    };
    let (text, stored) = render(&choice);
    // What is written must load: a failure here is a bug of this command, said as such.
    pincer_config::parse_str(&text, pincer_config::Format::Toml)
        .map_err(|e| anyhow!("the config init composed does not load ({e}); please report it"))?;
    pincer_store::files::create_private_dir(&home)
        .map_err(|e| anyhow!("cannot create PINCER_HOME {}: {e}", home.display()))?;
    if let Some((pointer, key)) = stored {
        store_key(&home, &pointer, &key)?;
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    pincer_core::fs::write_atomic(&path, text.as_bytes(), pincer_core::fs::Access::Private)
        .map_err(|e| anyhow!("cannot write {}: {e}", path.display()))?;
    out!("wrote {}", path.display());

    let checked = if args.no_check || choice.provider == Provider::Echo {
        true
    } else {
        check(&path).await?
    };
    out!("");
    out!("next:");
    out!(
        "  pincer gateway      # serves the web chat at http://127.0.0.1:18789/ and the API at /v1"
    );
    out!("  pincer doctor       # in another terminal: checks the config, the key and the gateway");
    if checked {
        Ok(())
    } else {
        Err(anyhow!(
            "the config is written, but the key check failed (above); fix the key, then run `pincer doctor`"
        )
        .into())
    }
}

fn from_flags(provider: Provider, args: &InitArgs) -> Result<Choice, Failure> {
    let key = match (provider, &args.key_env, &args.key_file) {
        (Provider::Echo, None, None) => None,
        (Provider::Echo, _, _) => {
            return Err(usage(anyhow!(
                "the echo model takes no key: drop --key-env/--key-file"
            )));
        }
        (_, Some(var), _) => Some(KeySource::Env(env_name(var)?)),
        (_, None, Some(file)) => Some(KeySource::Stored(read_key_file(file)?)),
        (p, None, None) => p.default_key_env().map(|v| KeySource::Env(v.to_string())),
    };
    Ok(Choice {
        provider,
        model: args
            .model
            .clone()
            .unwrap_or_else(|| provider.default_model().to_string()),
        key,
        base_url: args.base_url.clone(),
    })
}

/// Asks on the terminal; flags given still count.
fn ask(args: &InitArgs) -> Result<Choice, Failure> {
    let mut input = std::io::stdin().lock();
    out!("Which model provider? [1] OpenAI  [2] Anthropic  [3] echo (offline, no key)");
    let provider = match prompt(&mut input, "provider", "1")?.as_str() {
        "1" | "openai" => Provider::Openai,
        "2" | "anthropic" => Provider::Anthropic,
        "3" | "echo" => Provider::Echo,
        other => return Err(usage(anyhow!("`{other}` is not 1, 2 or 3"))),
    };
    let model = match &args.model {
        Some(m) => m.clone(),
        None if provider == Provider::Echo => provider.default_model().to_string(),
        None => prompt(&mut input, "model", provider.default_model())?,
    };
    let key = match (provider.default_key_env(), &args.key_env, &args.key_file) {
        (None, _, _) => None,
        (_, Some(var), _) => Some(KeySource::Env(env_name(var)?)),
        (_, None, Some(file)) => Some(KeySource::Stored(read_key_file(file)?)),
        (Some(default), None, None) => {
            out!(
                "Where is the API key? [1] in an environment variable  [2] paste it now (kept in $PINCER_HOME/secrets.json, mode 0600)"
            );
            match prompt(&mut input, "key", "1")?.as_str() {
                "1" => Some(KeySource::Env(env_name(&prompt(
                    &mut input, "variable", default,
                )?)?)),
                "2" => {
                    let key = read_hidden(&mut input, "API key (not shown)")?;
                    if key.is_empty() {
                        return Err(usage(anyhow!("no key was entered")));
                    }
                    Some(KeySource::Stored(key))
                }
                other => return Err(usage(anyhow!("`{other}` is not 1 or 2"))),
            }
        }
    };
    Ok(Choice {
        provider,
        model,
        key,
        base_url: args.base_url.clone(),
    })
}

/// One answer; an empty line takes `default`.
fn prompt(input: &mut impl BufRead, what: &str, default: &str) -> Result<String, Failure> {
    print!("{what} [{default}]: ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    if input.read_line(&mut line)? == 0 {
        return Err(usage(anyhow!("no answer (end of input) for {what}")));
    }
    let answer = line.trim();
    Ok(if answer.is_empty() { default } else { answer }.to_string())
}

/// A line read with the terminal's echo off, so the key is not on the screen.
fn read_hidden(input: &mut impl BufRead, what: &str) -> Result<String, Failure> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).ok();
    if let Some(saved) = &saved {
        let mut quiet = saved.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        let _ = tcsetattr(&stdin, OptionalActions::Now, &quiet);
    }
    print!("{what}: ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    let read = input.read_line(&mut line);
    if let Some(saved) = &saved {
        let _ = tcsetattr(&stdin, OptionalActions::Now, saved);
    }
    out!("");
    read?;
    Ok(line.trim().to_string())
}

/// An environment variable's name as a ref can carry it.
fn env_name(var: &str) -> Result<String, Failure> {
    let var = var.trim();
    let ok = !var.is_empty()
        && !var.starts_with(|c: char| c.is_ascii_digit())
        && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(var.to_string())
    } else {
        Err(usage(anyhow!(
            "`{var}` is not an environment variable name (letters, digits and _)"
        )))
    }
}

fn read_key_file(path: &Path) -> Result<String, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage(anyhow!("cannot read the key file {}: {e}", path.display())))?;
    let key = text.trim();
    if key.is_empty() || key.lines().count() > 1 {
        return Err(usage(anyhow!(
            "the key file {} should hold one key on one line",
            path.display()
        )));
    }
    Ok(key.to_string())
}

/// The config's text, and the key to store in the secrets file (JSON pointer, value).
fn render(choice: &Choice) -> (String, Option<(String, String)>) {
    let p = choice.provider.name();
    let mut text = String::from(
        "# Pincer's config, written by `pincer init`. Layers: built-in defaults < this file\n\
         # < the environment (PINCER__SECTION__KEY, each key uppercased). Every key: the\n\
         # README's Config section. `pincer doctor` checks this file and what it needs.\n",
    );
    let mut stored = None;
    if choice.provider != Provider::Echo {
        let key_line = match &choice.key {
            Some(KeySource::Env(var)) => format!("apiKey = \"env:{var}\""),
            Some(KeySource::Stored(key)) => {
                let pointer = format!("/providers/{p}/apiKey");
                stored = Some((pointer.clone(), key.clone()));
                format!("apiKey = \"file:{pointer}\"")
            }
            None => String::new(),
        };
        text.push_str(&format!(
            "\n[providers.{p}]\n\
             # The key is a secret ref, never the key itself: \"env:NAME\" reads an environment\n\
             # variable, \"file:/pointer\" a value of $PINCER_HOME/secrets.json (mode 0600).\n\
             {key_line}\n"
        ));
        match &choice.base_url {
            Some(url) => text.push_str(&format!("baseUrl = \"{}\"\n", escape(url))),
            None => text.push_str(&format!(
                "# baseUrl = \"{}\"  # the default\n",
                match choice.provider {
                    Provider::Anthropic => "https://api.anthropic.com",
                    _ => "https://api.openai.com/v1",
                }
            )),
        }
    }
    text.push_str(&format!(
        "\n# The agent the web chat and the API (model `main`) talk to.\n\
         [agents.main]\n\
         model = \"{p}/{}\"\n\
         systemPrompt = \"You are a helpful assistant.\"\n",
        escape(&choice.model)
    ));
    (text, stored)
}

/// A TOML basic string's content.
fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Puts the key in `$PINCER_HOME/secrets.json` (kept private), keeping what is there.
fn store_key(home: &Path, pointer: &str, key: &str) -> Result<(), Failure> {
    let path = pincer_secrets::refs::file_path(home, None);
    let mut doc: Value = match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| usage(anyhow!("{} is not JSON: {e}", path.display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => json!({}),
        Err(e) => return Err(anyhow!("cannot read {}: {e}", path.display()).into()),
    };
    set_pointer(&mut doc, pointer, Value::String(key.to_string()));
    write_private(&path, &serde_json::to_string_pretty(&doc)?)?;
    out!("stored the key in {} (mode 0600)", path.display());
    Ok(())
}

/// Checks the written config's provider keys as `pincer doctor` does; whether all pass.
async fn check(path: &Path) -> Result<bool, Failure> {
    let (sources, loaded) = super::gateway::load_config(Some(path.to_path_buf()))?;
    let secrets = pincer_secrets::Resolved::all(&loaded.config, &sources.home, &sources.env).await;
    let http = pincer_core::net::http_client()?;
    let mut ok = true;
    for u in pincer_secrets::refs::uses(&loaded.config) {
        if let Err(e) = secrets.get(&u.value) {
            ok = false;
            out!("[FAIL] secret {}: {e}", u.key);
        }
    }
    for finding in providers::all(&loaded.config, &secrets, &http).await {
        ok &= finding.ok;
        let mark = if finding.ok { "ok  " } else { "FAIL" };
        out!("[{mark}] {}", finding.text);
    }
    Ok(ok)
}
