//! # Pincer
//!
//! A self-hosted AI-agent gateway on a supervision tree (see the README, `ARCHITECTURE.md`
//! and `../shared/design.md` in the project). This crate holds the gateway's actors and
//! the layers above them; what they use lives in lower crates: `pincer-actors` (the
//! supervision runtime), `pincer-core`, `pincer-config`, `pincer-store`, and the clients
//! without actors (`pincer-secrets`, `pincer-providers`, `pincer-channels`).
//!
//! Actors, each module with its messages and the context it is given: [`server`] (the
//! `health` actor serving the port), [`store`], [`config_watcher`], [`secrets`],
//! [`provider`], [`agent`], [`router`], [`session`], [`channel`]; what they share:
//! [`status`], [`token`], [`readiness`], [`tool`].
//!
//! Above them: [`topology`] (the running gateway, which builds every actor's context),
//! [`tree`] (the supervision tree, declared in one place), [`reconcile`] (a config edit
//! applied to the running tree), [`http`] (the routes on the gateway port) and [`cli`].

// Actors and what they share.
pub mod agent;
pub mod channel;
pub mod config_watcher;
pub mod provider;
pub mod readiness;
pub mod router;
pub mod secrets;
pub mod server;
pub mod session;
pub mod status;
pub mod store;
pub mod token;
pub mod tool;

// Topology and surfaces.
pub mod cli;
pub mod http;
pub mod reconcile;
pub mod topology;
pub mod tree;
