//! The command line. `pincer gateway` runs the gateway; the other commands talk to a
//! running gateway over its admin API ([`client`]) or edit the config file, keeping its
//! comments ([`config_edit`]).
//!
//! Exit codes: 0 success, 1 failure, 2 bad usage or config (and a port already in use).

/// `println!` for the CLI's output: a reader that went away (`pincer ... | head -3`) ends
/// the command quietly, exit 0, instead of a panic (Rust ignores SIGPIPE, so the write
/// fails with `BrokenPipe` and `println!` would panic with exit 101).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::write_out(format_args!($($arg)*))
    };
}

pub mod agents;
pub mod approvals;
pub mod channels;
pub mod chaos;
pub mod client;
pub mod discovery;
pub mod doctor;
pub mod gateway;
pub mod health;
pub mod init;
pub mod logging;
pub mod secrets;
pub mod sessions;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `pincer --version`: the package version, the commit and the build date (`build.rs`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("PINCER_COMMIT"),
    ", built ",
    env!("PINCER_BUILD_DATE"),
    ")"
);

/// Pincer: a self-hosted AI-agent gateway on a supervision tree.
#[derive(Debug, Parser)]
#[command(name = "pincer", version = VERSION, about, propagate_version = true)]
pub struct Cli {
    /// Config file (default: $PINCER_HOME/pincer.toml, or PINCER_CONFIG).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// The running gateway's URL, for commands that talk to one (default: from
    /// $PINCER_HOME/gateway.json, then the config's gateway.bind and gateway.port).
    #[arg(long, global = true, value_name = "URL", env = "PINCER_URL")]
    pub url: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a first config (provider, model, where the key is) and check the key.
    Init(init::InitArgs),
    /// Run the gateway (or `gateway status`).
    Gateway(gateway::GatewayArgs),
    /// Agents and their bindings.
    Agents(agents::AgentsArgs),
    /// Channel accounts: list them, add one.
    Channels(channels::ChannelsArgs),
    /// DM pairings: list them, approve a code.
    Pairing(channels::PairingArgs),
    /// Standing approvals of tools (`/approve … always`): list them, revoke one.
    Approvals(approvals::ApprovalsArgs),
    /// Sessions of a running gateway.
    Sessions(sessions::SessionsArgs),
    /// Ask a gateway's probe (`/healthz`, or `/readyz` with `--ready`): exit 0 or 1.
    Health(health::HealthArgs),
    /// Kill actors of a running gateway, once or at a rate.
    Chaos(chaos::ChaosArgs),
    /// Check the config and what it needs.
    Doctor(doctor::DoctorArgs),
    /// External secrets: audit, configure a back end, apply, reload.
    Secrets(secrets::SecretsArgs),
    /// Print a shell completion script: `pincer completions bash > ~/.local/share/bash-completion/completions/pincer`.
    Completions {
        /// bash, zsh, fish, powershell or elvish.
        shell: clap_complete::Shell,
    },
}

/// A Unix-ms time as "N s/min/h/d ago".
pub(crate) fn ago(ms: u64) -> String {
    let secs = pincer_core::now_ms().saturating_sub(ms) / 1000;
    match secs {
        0..120 => format!("{secs} s ago"),
        120..7200 => format!("{} min ago", secs / 60),
        7200..172_800 => format!("{} h ago", secs / 3600),
        _ => format!("{} d ago", secs / 86_400),
    }
}

/// Writes the completion script for `shell` to stdout.
fn completions(shell: clap_complete::Shell) {
    use clap::CommandFactory;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "pincer", &mut script);
    out!("{}", String::from_utf8_lossy(&script).trim_end());
}

/// Writes one line to stdout; see [`out!`].
pub fn write_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_fmt(args)
        .and_then(|()| stdout.write_all(b"\n"));
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("pincer: cannot write the output: {e}");
            std::process::exit(1);
        }
    }
}

/// A failure with its exit code.
#[derive(Debug)]
pub struct Failure {
    /// 1 or 2.
    pub code: u8,
    /// What to print.
    pub error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(error: E) -> Self {
        Self {
            code: 1,
            error: error.into(),
        }
    }
}

/// A usage or config failure (exit 2).
pub fn usage(error: impl Into<anyhow::Error>) -> Failure {
    Failure {
        code: 2,
        error: error.into(),
    }
}

/// Runs `cli` and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pincer: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = cli.config;
    client::set_url(cli.url);
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Init(args) => init::run(config, args).await,
            Command::Gateway(args) => gateway::run(config, args).await,
            Command::Agents(args) => agents::run(config, args).await,
            Command::Sessions(args) => sessions::run(config, args).await,
            Command::Channels(args) => channels::run(config, args).await,
            Command::Pairing(args) => channels::run_pairing(config, args).await,
            Command::Approvals(args) => approvals::run(config, args).await,
            Command::Health(args) => health::run(config, args).await,
            Command::Chaos(args) => chaos::run(config, args).await,
            Command::Doctor(args) => doctor::run(config, args).await,
            Command::Secrets(args) => secrets::run(config, args).await,
            Command::Completions { shell } => {
                completions(shell);
                Ok(())
            }
        }
    });
    // Tasks still running (a server's connections) end with the runtime, without waiting.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("pincer: {:#}", failure.error);
            ExitCode::from(failure.code)
        }
    }
}
