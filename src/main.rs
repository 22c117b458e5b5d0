//! `pincer`: parse the command line, run the command, exit with its code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = pincer::cli::Cli::parse();
    pincer::server::raise_fd_limit();
    pincer::cli::run(cli)
}
