//! A fake of HashiCorp Vault's HTTP API for the KV version 2 secrets engine, for offline
//! tests and benches.
//!
//! Written from the protocol notes and Vault's documented behaviour, not from Pincer's
//! client. It answers like a real server:
//!
//! - `GET /v1/{mount}/data/{path}[?version=N]` reads the latest (or the given) version:
//!   200 `{"request_id","lease_id":"","renewable":false,"lease_duration":0,"data":{"data":
//!   {...},"metadata":{"version","created_time","deletion_time":"","destroyed":false,
//!   "custom_metadata":null}},"wrap_info":null,"warnings":null,"auth":null,
//!   "mount_type":"kv"}`; a missing secret or version is 404 `{"errors":[]}`; `version` ≤ 0
//!   means the latest, as in Vault;
//! - `POST`/`PUT /v1/{mount}/data/{path}` with `{"data":{...},"options":{"cas":N}}` writes the
//!   next version (from 1 per path) and answers its metadata; a `cas` that is not the current
//!   version (0: "must not exist yet") is 400 "check-and-set parameter did not match the
//!   current version"; no `data` is 400 "no data provided"; a body that is not a JSON object
//!   is 400 "error parsing JSON"; one over [`Knobs::max_request_bytes`] is 413 "error parsing
//!   JSON" (Vault's `max_request_size`, 32 MiB by default); only the last
//!   [`Knobs::max_versions`] versions stay readable;
//! - the token comes in `X-Vault-Token` (or `Authorization: Bearer`); no token, an unknown
//!   one, or one whose [`Policy`] does not grant the operation on the path is 403
//!   `{"errors":["permission denied"]}`. As in Vault, the ACL is checked *before* routing:
//!   a path under a mount that does not exist is 403 for a token the policy does not cover
//!   there and 404 `no handler for route "<path>". route entry not found.` for one it does
//!   ([`TEST_TOKEN`] has the root policy, so it sees the 404);
//! - a path under a KV v2 mount that lacks the `data/` segment (a KV v1-style path) is 404
//!   with Vault's "Invalid path for a versioned K/V secrets engine" warning;
//! - sealed ([`VaultFake::seal`]): every request is 503 `{"errors":["Vault is sealed"]}`,
//!   except `GET /v1/sys/health`, which answers its own 503 body as in Vault;
//! - namespaces (Vault Enterprise): with [`Knobs::namespace`] set, the fake *is* that
//!   namespace; a request reaches it with `X-Vault-Namespace: <ns>`, or with the namespace as
//!   a path prefix (`/v1/<ns>/secret/data/…`), or split between the two, as Vault allows.
//!   Its tokens live in that namespace, so a request addressing any other namespace
//!   (the root one included: no header) is 403 permission denied;
//! - `GET /v1/auth/token/lookup-self` (any valid token: the `default` policy grants it) and
//!   `GET`/`HEAD /v1/sys/health` (no token), the usual cheap health checks.
//!
//! Back end trouble is simulated with [`VaultFake::seal`] (503s) and
//! [`VaultFake::set_down`] (every connection is closed without an answer, while the stored
//! secrets stay); rotation is [`VaultFake::put`] of a new version.
//!
//! Deliberate simplifications: the KV v2 `metadata/`, `delete/`, `undelete/`, `destroy/`,
//! `subkeys/` and `config` endpoints, `DELETE` and `PATCH` on `data/`, other `sys/` and
//! `auth/` endpoints are not served: they answer 501 `{"errors":["vault fake: … is not
//! implemented"]}` (after the seal and ACL checks) so a client relying on them fails loudly;
//! a bad token is "permission denied" (Vault 1.13+ adds "invalid token" in a multi-error);
//! `request_id`s are UUID-shaped but counted, not random; versions are never soft-deleted.
//!
//! ```no_run
//! use pincer_fakes::vault::{Policy, TEST_TOKEN, VaultFake};
//! use serde_json::json;
//!
//! let fake = VaultFake::start();
//! fake.put("secret/pincer/openai", json!({"api_key": "sk-one"}));
//! fake.add_token("app-token", Policy::read("secret/data/pincer/*"));
//! // point the gateway at fake.url() (VAULT_ADDR) with TEST_TOKEN or "app-token", then
//! // rotate:
//! assert_eq!(fake.put("secret/pincer/openai", json!({"api_key": "sk-two"})), 2);
//! # let _ = (TEST_TOKEN, fake.reads());
//! ```

mod policy;
mod server;
mod state;
mod wire;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub use self::policy::{Capability, Policy};
use self::state::Shared;
use crate::serve::{Listener, Runtime, Server};

/// A token with the `root` policy, known to every fake unless [`Knobs::tokens`] drops it.
pub const TEST_TOKEN: &str = "hvs.pincer-test-root-token";

/// The KV v2 mount a dev-mode Vault starts with, and the fake's only mount by default.
pub const DEFAULT_MOUNT: &str = "secret";

/// Vault's default `max_request_size` (32 MiB): larger bodies are refused with 413.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 32 * 1024 * 1024;

/// Versions kept per secret by default (KV v2's `max_versions` unset means 10).
pub const DEFAULT_MAX_VERSIONS: NonZeroU32 = NonZeroU32::new(10).unwrap();

/// Runtime-adjustable behaviour of the fake. Change it with [`VaultFake::set`]; a change
/// applies to requests that arrive afterwards.
#[derive(Debug, Clone)]
pub struct Knobs {
    /// The KV v2 mounts that exist, without slashes around (`"secret"`, `"kv/team"`).
    /// Default `["secret"]`.
    pub mounts: Vec<String>,
    /// The Enterprise namespace the fake serves (`"team"`, `"org/team"`), or `None` for the
    /// root namespace. Default `None`.
    pub namespace: Option<String>,
    /// Valid tokens and their policies. Default: [`TEST_TOKEN`] with [`Policy::root`].
    pub tokens: BTreeMap<String, Policy>,
    /// Sealed: every request but `sys/health` is 503 "Vault is sealed". Default false.
    pub sealed: bool,
    /// Down: every connection that sends a request is closed without an answer (no status
    /// line), as a crashed server or a broken proxy would. Default false.
    pub down: bool,
    /// Wait before answering each request (not applied to dropped ones). Default zero.
    pub latency: Duration,
    /// Request bodies larger than this are 413. Default [`DEFAULT_MAX_REQUEST_BYTES`].
    pub max_request_bytes: usize,
    /// Versions kept per secret (the mount's `max_versions`); older ones read as 404.
    /// Default [`DEFAULT_MAX_VERSIONS`].
    pub max_versions: NonZeroU32,
    /// The mount's `cas_required`: a write without `options.cas` is 400. Default false.
    pub cas_required: bool,
}

impl Default for Knobs {
    fn default() -> Self {
        let mut tokens = BTreeMap::new();
        tokens.insert(TEST_TOKEN.to_owned(), Policy::root());
        Knobs {
            mounts: vec![DEFAULT_MOUNT.to_owned()],
            namespace: None,
            tokens,
            sealed: false,
            down: false,
            latency: Duration::ZERO,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_versions: DEFAULT_MAX_VERSIONS,
            cas_required: false,
        }
    }
}

/// One HTTP request as the fake saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// The HTTP method (`GET`, `POST`, ...).
    pub method: String,
    /// The path as sent (still percent-encoded), without the query.
    pub path: String,
    /// The raw query string; empty when there is none.
    pub query: String,
    /// The token sent (`X-Vault-Token`, else `Authorization: Bearer`), if any.
    pub token: Option<String>,
    /// The `X-Vault-Namespace` header as sent, if any.
    pub namespace: Option<String>,
    /// The body as JSON: `Null` when empty, a `String` holding the raw text when it is not
    /// JSON (or was too large: then the text is empty).
    pub body: Value,
    /// The status answered; `None` when the connection was closed without an answer
    /// ([`Knobs::down`]) or the client went away first.
    pub status: Option<u16>,
    /// When it arrived.
    pub at: Instant,
}

impl Recorded {
    /// Whether a token came with the request.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }
}

/// A snapshot of what the fake has served.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Every request, any path, any outcome.
    pub requests: u64,
    /// `GET`s of a secret (`{mount}/data/{path}` of an existing mount), any outcome,
    /// dropped ones included.
    pub reads: u64,
    /// `POST`/`PUT`s of a secret, any outcome.
    pub writes: u64,
    /// 403 answers.
    pub denied: u64,
    /// 404 answers.
    pub not_found: u64,
    /// 503 answers (sealed).
    pub sealed: u64,
    /// Connections closed without an answer ([`Knobs::down`]).
    pub dropped: u64,
}

/// A running fake Vault on `127.0.0.1`. Dropping it stops the server and closes every
/// connection (the port is refused afterwards).
#[derive(Debug)]
pub struct VaultFake {
    server: Server,
    shared: Arc<Shared>,
}

// === impl VaultFake ===

impl VaultFake {
    /// Starts a fake with default [`Knobs`]; returns once the port is bound. Works from
    /// sync code and from either flavour of `#[tokio::test]`: the server runs on its own
    /// thread and runtime.
    ///
    /// # Panics
    /// When no loopback port can be bound or the runtime cannot start.
    pub fn start() -> VaultFake {
        VaultFake::start_with(Knobs::default())
    }

    /// Starts a fake with the given knobs; returns once the port is bound.
    ///
    /// # Panics
    /// When no loopback port can be bound or the runtime cannot start.
    pub fn start_with(knobs: Knobs) -> VaultFake {
        let shared = Arc::new(Shared::new(knobs));
        let routes = server::routes(Arc::clone(&shared));
        let server = Listener::bind("vault").serve(Runtime::CurrentThread, routes);
        VaultFake { server, shared }
    }

    /// The address clients use (`VAULT_ADDR`): `http://127.0.0.1:PORT`, no trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Changes the knobs; applies to requests that arrive afterwards.
    pub fn set<F: FnOnce(&mut Knobs)>(&self, f: F) {
        f(&mut self.shared.lock().knobs);
    }

    /// A copy of the current knobs.
    pub fn knobs(&self) -> Knobs {
        self.shared.lock().knobs.clone()
    }

    /// Writes a new version of the secret at `path`, given as `vault kv put` takes it:
    /// `<mount>/<path>` (`"secret/pincer/openai"`); returns the version written (1 for a
    /// new secret). Rotation in a test is a `put` of new fields. No CAS, no token.
    ///
    /// # Panics
    /// When `path` is under no configured mount, names no secret, or `fields` is not a
    /// JSON object (Vault stores a map).
    pub fn put(&self, path: &str, fields: Value) -> u64 {
        let Value::Object(fields) = fields else {
            panic!("vault fake: put {path:?}: fields must be a JSON object, got {fields}");
        };
        let mut state = self.shared.lock();
        let (mount, key) = state.split_mount_or_panic(path);
        state.write(&mount, &key, fields).version
    }

    /// The fields of the latest version of the secret at `<mount>/<path>`, if any.
    pub fn secret(&self, path: &str) -> Option<Value> {
        let state = self.shared.lock();
        let (mount, key) = state.split_mount(path)?;
        state
            .latest(&mount, &key)
            .map(|v| Value::Object(v.data.clone()))
    }

    /// The current version of the secret at `<mount>/<path>`, if it exists.
    pub fn version(&self, path: &str) -> Option<u64> {
        let state = self.shared.lock();
        let (mount, key) = state.split_mount(path)?;
        state.current_version(&mount, &key)
    }

    /// Adds (or replaces) a valid token with its policy.
    pub fn add_token(&self, token: &str, policy: Policy) {
        self.set(|k| {
            k.tokens.insert(token.to_owned(), policy);
        });
    }

    /// Revokes a token: it is 403 from now on.
    pub fn revoke_token(&self, token: &str) {
        self.set(|k| {
            k.tokens.remove(token);
        });
    }

    /// Seals the fake: every request is 503 "Vault is sealed" until [`VaultFake::unseal`].
    /// The secrets stay.
    pub fn seal(&self) {
        self.set(|k| k.sealed = true);
    }

    /// Unseals the fake.
    pub fn unseal(&self) {
        self.set(|k| k.sealed = false);
    }

    /// `true`: every request's connection is closed without an answer (the back end is
    /// unreachable), while the port stays bound and the secrets stay; `false` serves again.
    pub fn set_down(&self, down: bool) {
        self.set(|k| k.down = down);
    }

    /// Every HTTP request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().records.clone()
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> Counters {
        self.shared.lock().counters.clone()
    }

    /// Secret reads so far ([`Counters::reads`]).
    pub fn reads(&self) -> u64 {
        self.shared.lock().counters.reads
    }
}
