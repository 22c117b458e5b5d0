//! # Pincer
//!
//! A self-hosted AI-agent gateway on a supervision tree (see `../shared/design.md` in the
//! project and the README). This crate is the gateway; the supervision runtime is the
//! `pincer-actors` crate.

pub mod config;
pub mod router;
pub mod store;
