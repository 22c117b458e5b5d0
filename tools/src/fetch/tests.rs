//! The fetcher against a local test site on 127.0.0.1, reached through a policy that
//! opens `127.0.0.1/32` alone. No test sends a packet anywhere but loopback: the refused
//! destinations (10.0.0.1, 169.254.169.254) are refused by the guard before any connect,
//! and the tests check the refusal is the guard's.

mod guard;
mod pages;
mod parts;
mod site;
