//! `pincer gateway [--port N] [--bind ADDR]`: run; `pincer gateway status`: ask one.
//!
//! Start-up loads and checks the config before any port is bound (a bad config is exit
//! 2), binds the port (in use: exit 2), opens the store and starts the tree. SIGTERM or
//! SIGINT: stop taking input, let turns in flight finish within `gateway.drainTimeout`
//! (what is left stays pending in the inbox for the next start), stop the tree bottom to
//! top, exit 0. Under systemd (`Type=notify`) the service manager is told when the
//! gateway is up and when it drains ([`notify`]).

mod notify;

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use clap::{Args, Subcommand};

use super::client::Client;
use super::{Failure, usage};
use crate::topology::{Parts, Topology};
use pincer_config::{Loaded, Sources, load};
use pincer_store::Store;

/// `pincer gateway`.
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Port to listen on (default 18789, or gateway.port).
    #[arg(long)]
    pub port: Option<u16>,
    /// Address to bind (default 127.0.0.1). A non-loopback address needs a token.
    #[arg(long)]
    pub bind: Option<String>,
    /// `status`: ask a running gateway instead.
    #[command(subcommand)]
    pub action: Option<GatewayAction>,
}

/// Subcommands of `pincer gateway`.
#[derive(Debug, Subcommand)]
pub enum GatewayAction {
    /// Readiness and a tree summary of the running gateway.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `pincer gateway ...`.
pub async fn run(config: Option<PathBuf>, args: GatewayArgs) -> Result<(), Failure> {
    match args.action {
        Some(GatewayAction::Status { json }) => status(config, json).await,
        None => serve(config, args.port, args.bind).await,
    }
}

/// Loads the config as every command does, turning errors into exit 2.
pub fn load_config(config: Option<PathBuf>) -> Result<(Sources, Loaded), Failure> {
    let sources = Sources::from_env(config);
    let loaded = load(&sources).map_err(usage)?;
    Ok((sources, loaded))
}

async fn serve(
    config: Option<PathBuf>,
    port: Option<u16>,
    bind: Option<String>,
) -> Result<(), Failure> {
    super::logging::init();
    let (sources, mut loaded) = load_config(config)?;
    // No empty or short token is ever in force: written in the config, it stops the start.
    loaded.check_gateway_token().map_err(usage)?;
    // So is an `allowPrivate` entry that is not an address range.
    pincer_tools::ssrf::Policy::new(&loaded.config.tools.web_fetch.allow_private).map_err(usage)?;
    // Plaintext secrets of the config are masked from the first log line on; resolved
    // refs join them as `secrets` resolves them.
    let plaintext: Vec<String> = pincer_secrets::refs::uses(&loaded.config)
        .into_iter()
        .filter_map(|u| match u.value {
            pincer_config::SecretValue::Plain(p) => Some(p),
            pincer_config::SecretValue::Ref(_) => None,
        })
        .collect();
    pincer_secrets::redact::set_values(plaintext.iter().map(String::as_str));
    for warning in &loaded.warnings {
        tracing::warn!(message = %warning);
    }
    warn_of_exec(&loaded.config);
    // The flags sit over the config, at start and after every reload.
    let overrides = pincer_config::Overrides { port, bind };
    overrides.apply(&mut loaded.config);
    let gateway = &loaded.config.gateway;
    let ip: IpAddr = gateway.bind.parse().map_err(|_| {
        usage(anyhow!(
            "gateway.bind `{}` is not an IP address",
            gateway.bind
        ))
    })?;
    let home = sources.home.clone();
    create_home(&home).map_err(usage)?;
    let store_path = loaded
        .config
        .store
        .path
        .clone()
        .unwrap_or_else(|| home.join("pincer.db"));
    // One store, one gateway: held until the process ends (a kill releases it too).
    let _store_lock = claim_store(&home, &store_path)?;

    // A token ref that cannot be resolved yet does not stop the start: the generated token
    // guards the port meanwhile, `secrets` swaps the configured one in once it resolves,
    // and readiness names the ref.
    let configured_token = match &gateway.auth.token {
        Some(value) => {
            match pincer_secrets::resolve_now(value, &loaded.config, &home, &sources.env).await {
                Ok(token) => match pincer_config::token_problem(&token) {
                    None => Some(token.trim().to_string()),
                    // Plaintext was checked with the config; this is what a ref gave.
                    Some(problem) => {
                        let shown = value
                            .as_ref()
                            .map_or_else(|| "plaintext".to_string(), |r| format!("`{r}`"));
                        return Err(usage(anyhow!(
                            "gateway.auth.token: the value of secret {shown} {problem}"
                        )));
                    }
                },
                Err(error) => {
                    tracing::warn!(%error, "The gateway token is not resolved yet; the generated one guards the port meanwhile.");
                    None
                }
            }
        }
        None => None,
    };
    // A generated token guards loopback, where the CLI reads it from the file; clients
    // elsewhere could not know it, so a reachable port needs one given.
    if !ip.is_loopback() && gateway.auth.token.is_none() {
        return Err(usage(anyhow!(
            "refusing to bind {ip} without gateway.auth.token: a non-loopback address needs \
             a token its clients know. Give it as PINCER_GATEWAY_TOKEN (or \
             PINCER__GATEWAY__AUTH__TOKEN); as {file_env}=PATH, a file holding only the token \
             (a Docker secret such as /run/secrets/pincer_token; mode 0600, owned by uid {uid}); \
             or as gateway.auth.token in the config, plaintext or a secret ref \
             ({{ source = \"vault\", provider = \"vault\", id = \"pincer#gatewayToken\" }})",
            file_env = pincer_config::TOKEN_FILE_ENV,
            uid = rustix::process::geteuid().as_raw(),
        )));
    }
    let token = match configured_token {
        Some(t) => t,
        None => generated_token(&home)?,
    };

    // Every upstream call goes through this client; without it nothing works, so say so
    // before any port is bound.
    let http = pincer_core::net::http_client().map_err(|e| anyhow!("{e}"))?;
    let addr = SocketAddr::new(ip, gateway.port);
    let listener = TcpListener::bind(addr).map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            usage(anyhow!("port {} is already in use ({addr})", gateway.port))
        }
        _ => usage(anyhow!("cannot listen on {addr}: {e}")),
    })?;
    // Accepted connections inherit TCP_NODELAY from the listener (Linux, BSDs). Without
    // it, every streamed delta after the first waits for the client's delayed ACK
    // (~40 ms): Nagle holds a small write while an earlier one is unacknowledged.
    if let Err(e) = socket2::SockRef::from(&listener).set_tcp_nodelay(true) {
        tracing::warn!("cannot set TCP_NODELAY on the gateway port: {e}");
    }
    let drain = gateway.drain_timeout;
    let started_at = Instant::now();
    let gw = Topology::new(Parts {
        sources,
        overrides,
        config_file: loaded.file.clone(),
        config: loaded.config,
        store: Store::new(&store_path),
        listener,
        token: Some(token),
        http,
    });
    // A service manager that cannot be told is no reason not to serve: said, not fatal.
    let notifier = notify::Notifier::from_env().unwrap_or_else(|error| {
        tracing::warn!(%error, "Cannot notify the service manager.");
        None
    });
    let root = crate::tree::start(&gw)
        .await
        .map_err(|e| anyhow!("the supervision tree did not start: {e}"))?;
    // Clients find this gateway through the file, whatever port it was given; it goes
    // when this function returns (a kill leaves it, naming a pid that is gone).
    let _discovery = match super::discovery::GatewayFile::for_this_process(addr).write(&home) {
        Ok(written) => Some(written),
        Err(error) => {
            tracing::warn!(%error, "Client commands will look for this gateway at the config's address only.");
            None
        }
    };
    tracing::info!(
        address = %format!("http://{addr}/"),
        config = %gw
            .config_file()
            .map_or_else(|| "none (built-in defaults)".to_string(), |f| f.display().to_string()),
        store = %store_path.display(),
        started_in_ms = started_at.elapsed().as_millis() as u64,
        "Pincer is running: web chat at the address, API at /v1, probes at /healthz and /readyz."
    );
    let notifier = notifier.map(|n| notify::ready(&gw, n));

    let hangups = gw.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading secrets.");
            if !crate::secrets::request_reload(&hangups.secrets_watcher()) {
                tracing::warn!(
                    "SIGHUP: the secrets actor is not running; it resolves everything when it restarts."
                );
            }
        }
    });
    let exit = tokio::select! {
        exit = root.wait() => Some(exit),
        signal = shutdown_signal() => {
            tracing::info!(signal, "Shutting down: no new input, draining turns in flight.");
            if let Some(notifier) = &notifier {
                notify::stopping(notifier, drain);
            }
            None
        }
    };
    if let Some(exit) = exit {
        return Err(anyhow!("the supervision tree ended: {}", root_exit(&exit)).into());
    }
    gw.status().start_draining();
    drain_turns(&gw, drain).await;
    let exit = root.stop().await;
    tracing::info!(exit = %root_exit(&exit), "Stopped.");
    Ok(())
}

/// How the tree ended, in words.
fn root_exit(exit: &pincer_actors::RootExit) -> String {
    match exit {
        pincer_actors::RootExit::Normal => "normal".to_string(),
        pincer_actors::RootExit::Failed(why) => format!("failed: {why}"),
    }
}

/// Says at start what exec's config gives up: no sandbox at all, or (checked in the
/// background, so the start does not wait on it) a bubblewrap that cannot run here,
/// which fails every exec call. Neither stops the start.
fn warn_of_exec(config: &pincer_config::Config) {
    use pincer_config::tools::ExecSandbox;
    let agents = super::doctor::exec::agents_with_exec(config).join(", ");
    match config.tools.exec.sandbox {
        ExecSandbox::None => tracing::warn!(
            agents = %agents,
            "Exec runs commands WITHOUT a sandbox (tools.exec.sandbox = \"none\"): as the gateway's user, with its files, processes and network."
        ),
        ExecSandbox::Bwrap if !agents.is_empty() => {
            tokio::spawn(async move {
                let runner = pincer_tools::exec::Runner::new(pincer_tools::exec::Sandbox::Bwrap);
                if let Err(error) = runner.probe().await {
                    tracing::warn!(
                        agents = %agents,
                        %error,
                        "The exec sandbox does not work here: every exec call fails until it does (see `pincer doctor`)."
                    );
                }
            });
        }
        ExecSandbox::Bwrap => {}
    }
}

/// Waits until no turn runs, at most `limit`.
async fn drain_turns(gw: &Topology, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let running = gw
            .registry()
            .snapshot()
            .actors
            .iter()
            .filter(|r| {
                r.path
                    .rsplit('/')
                    .next()
                    .is_some_and(|id| id.starts_with("turn:"))
            })
            .filter(|r| r.state == pincer_actors::ActorState::Running)
            .count();
        if running == 0 {
            return;
        }
        if Instant::now() >= deadline {
            tracing::warn!(
                turns = running,
                "Drain timeout: unfinished turns stay pending for the next start."
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return "none";
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

/// Creates `$PINCER_HOME` (0700) if it does not exist; one that other users can read or
/// write is made 0700 if it is this user's, else warned about.
fn create_home(home: &Path) -> anyhow::Result<()> {
    pincer_store::files::create_private_dir(home)
        .with_context(|| format!("cannot create PINCER_HOME {}", home.display()))?;
    keep_private(home, "PINCER_HOME");
    Ok(())
}

/// Makes the store's directory ready (created 0700 if missing, kept private as the home is)
/// and takes the store's lock. A store another process holds is exit 2, naming its pid. A
/// lock file that cannot be made (a read-only directory) is a warning: the store cannot be
/// written there either, and readiness says why until it can.
fn claim_store(home: &Path, store: &Path) -> Result<Option<pincer_store::StoreLock>, Failure> {
    let dir = match store.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if dir != home {
        match pincer_store::files::create_private_dir(dir) {
            Ok(()) => keep_private(dir, "The store's directory"),
            Err(error) => {
                tracing::warn!(dir = %dir.display(), %error, "Cannot create the store's directory.")
            }
        }
    }
    match pincer_store::lock(store) {
        Ok(lock) => Ok(Some(lock)),
        Err(held @ pincer_store::LockError::Held { .. }) => Err(usage(held)),
        Err(error) => {
            tracing::warn!(%error, "Running without the store's lock.");
            Ok(None)
        }
    }
}

/// Tightens `dir` to 0700 if other users can read or write it and it is this user's; else
/// says so. The store's files are 0600 either way; the directory would still show their
/// names and let others drop files beside them.
fn keep_private(dir: &Path, what: &str) {
    use pincer_store::files::{DirAccess, tighten_dir};
    match tighten_dir(dir) {
        Ok(DirAccess::Private) => {}
        Ok(DirAccess::Tightened { was }) => tracing::info!(
            dir = %dir.display(),
            was = %format!("{was:04o}"),
            "{what} was open to other users; made it private (0700)."
        ),
        Ok(DirAccess::Open { mode, owner, .. }) => tracing::warn!(
            dir = %dir.display(),
            mode = %format!("{mode:04o}"),
            owner,
            "{what} is not this user's (or is shared by design) and other users can read or write it: left as it is. Move it, or chmod 700 it."
        ),
        Err(error) => {
            tracing::warn!(dir = %dir.display(), %error, "Cannot check who may read {what}.")
        }
    }
}

/// The token in `$PINCER_HOME/gateway.token`, made (mode 0600) if there is none. A file
/// others can read, or one holding a short token, is refused (exit 2).
fn generated_token(home: &Path) -> Result<String, Failure> {
    let path = home.join("gateway.token");
    if let Some(token) = read_token_file(&path).map_err(usage)? {
        tracing::info!(path = %path.display(), "Gateway token read from file.");
        return Ok(token);
    }
    let token = format!(
        "pcr_{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let text = format!("{token}\n");
    pincer_core::fs::write_atomic(&path, text.as_bytes(), pincer_core::fs::Access::Private)
        .with_context(|| format!("cannot write {}", path.display()))?;
    tracing::info!(path = %path.display(), "Generated a gateway token (mode 0600); the CLI and API clients read it from there.");
    Ok(token)
}

/// Larger token files are refused: they are not token files.
const MAX_TOKEN_FILE: u64 = 4096;

/// The token a token file holds: `None` when there is no file or it is empty (one is
/// generated). The file must be a regular file private to this user, as secrets files
/// are, and hold a token long enough.
fn read_token_file(path: &Path) -> anyhow::Result<Option<String>> {
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow!("cannot read gateway token file {shown}: {e}")),
    };
    if !meta.is_file() {
        return Err(anyhow!("gateway token file {shown} is not a regular file"));
    }
    pincer_secrets::file::check_private("gateway token file", path, &meta).map_err(
        |e| match e {
            pincer_secrets::BackendError::Denied(why) => anyhow!(why),
            other => anyhow!("{other}"),
        },
    )?;
    if meta.len() > MAX_TOKEN_FILE {
        return Err(anyhow!(
            "gateway token file {shown} has {} bytes, more than a token ({MAX_TOKEN_FILE} at most)",
            meta.len()
        ));
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read gateway token file {shown}"))?;
    let token = text.trim();
    if token.is_empty() {
        return Ok(None);
    }
    if let Some(problem) = pincer_config::token_problem(token) {
        return Err(anyhow!(
            "gateway token file {shown} {problem} (delete the file to have a new one generated)"
        ));
    }
    Ok(Some(token.to_string()))
}

async fn status(config: Option<PathBuf>, json: bool) -> Result<(), Failure> {
    let client = Client::from_config(config).await?;
    let body = client.get_json("/admin/tree").await?;
    if json {
        out!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    let ready = body["ready"].as_bool().unwrap_or(false);
    out!(
        "gateway {}: {}",
        client.base(),
        if ready { "ready" } else { "NOT READY" }
    );
    if let Some(failing) = body["failing"].as_array() {
        for f in failing {
            out!(
                "  failing: {} ({})",
                f["path"].as_str().unwrap_or("?"),
                f["reason"].as_str().unwrap_or("")
            );
        }
    }
    let mut counts = std::collections::BTreeMap::<String, (u64, u64)>::new();
    fn walk(node: &serde_json::Value, counts: &mut std::collections::BTreeMap<String, (u64, u64)>) {
        let path = node["path"].as_str().unwrap_or_default();
        let kind = pincer_core::paths::kind(path).to_string();
        let entry = counts.entry(kind).or_default();
        entry.0 += 1;
        entry.1 += node["restarts_total"].as_u64().unwrap_or(0);
        for child in node["children"].as_array().into_iter().flatten() {
            walk(child, counts);
        }
    }
    for node in body["tree"].as_array().into_iter().flatten() {
        walk(node, &mut counts);
    }
    out!("actors by kind (count, restarts):");
    for (kind, (n, restarts)) in counts {
        out!("  {kind:<12} {n:>6} {restarts:>6}");
    }
    if ready {
        Ok(())
    } else {
        Err(Failure {
            code: 1,
            error: anyhow!("the gateway is not ready"),
        })
    }
}
