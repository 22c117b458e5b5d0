//! The tools Pincer's agents call, as plain clients: what each does to the outside world
//! and the guards around it. No actors here: the gateway runs each call in its own
//! supervised actor under the turn (`src/tool`), which decides when, how long and with
//! which policy; this crate decides how.

/// The SSRF guard: hosts and addresses a tool may not reach, and the one checked lookup.
pub mod ssrf;

/// The exec sandbox: a shell command run under bubblewrap, seeing only its workspace, with
/// limits, a scrubbed environment and a timeout that kills every process it started.
pub mod exec;

/// Web pages fetched for the `web_fetch` tool, every hop through the SSRF guard.
pub mod fetch;

/// The `web_search` back ends: Brave Search and SearXNG.
pub mod search;
