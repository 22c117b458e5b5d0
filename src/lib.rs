//! # Pincer
//!
//! A self-hosted AI-agent gateway on a supervision tree (see the README and
//! `../shared/design.md` in the project). This crate is the gateway; the supervision runtime
//! is the `pincer-actors` crate.
//!
//! The tree is declared in [`tree`]; each actor kind has its module with its messages:
//! [`health`], [`store`], [`config::watcher`], [`secrets`], [`provider`], [`agent`],
//! [`router`], [`channel`], [`session`]. [`gateway`] is what they share, [`http`] the routes
//! on the gateway port, [`cli`] the command line.

pub mod agent;
pub mod channel;
pub mod cli;
pub mod config_watcher;
pub mod gateway;
pub mod health;
pub mod http;
pub mod provider;
pub mod router;
pub mod secrets;
pub mod session;
pub mod stats;
pub mod status;
pub mod store;
pub mod token;
pub mod tool;
pub mod tree;
