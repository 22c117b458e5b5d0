//! The `aws` back end: AWS Secrets Manager over its JSON protocol, signed with SigV4.
//!
//! A ref id is `secret-name` (the whole `SecretString`) or `secret-name#key` (one key of a
//! `SecretString` that is a JSON object; a value that is not a string comes as its JSON
//! text). The version is the `VersionId` of the `AWSCURRENT` version, so a rotation shows
//! as a new version.
//!
//! Credentials, region and endpoint are found the way the AWS CLI finds them, as far as
//! that goes without network metadata services (no EC2/ECS roles, SSO, `credential_process`
//! or assumed roles): see [`Credentials::resolve`] and [`Aws::new`]. Every lookup reads the
//! environment given, falling back to the process environment for a name it lacks; a name
//! given with an empty value counts as unset and does not fall back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::backend::{BackendError, Fetched};
use super::sigv4;

/// Secrets Manager answers larger than this are refused: a secret holds at most 64 KiB.
const MAX_ANSWER: usize = 1 << 20;
/// One request, connect to last byte.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The signing name of the service.
const SERVICE: &str = "secretsmanager";
/// The content type of the AWS JSON 1.1 protocol.
const JSON_1_1: &str = "application/x-amz-json-1.1";
/// How much of an error message from AWS is quoted.
const MAX_MESSAGE: usize = 300;

/// An AWS key pair, with the session token of temporary credentials. Its `Debug` shows
/// the key id only.
#[derive(Clone)]
pub struct Credentials {
    /// `AKIA…` (long-term) or `ASIA…` (temporary).
    pub access_key_id: String,
    /// The secret half.
    pub secret_access_key: String,
    /// The STS session token of temporary credentials.
    pub session_token: Option<String>,
}

/// A Secrets Manager client for one region and endpoint.
#[derive(Clone)]
pub struct Aws {
    credentials: Credentials,
    region: String,
    /// Where requests go.
    endpoint: reqwest::Url,
    /// The `Host` header sent and signed: the endpoint's host, with its port unless it is
    /// the scheme's default.
    host: String,
}

/// Where a setting was looked up: the environment given, then the process's.
struct Env<'a>(&'a BTreeMap<String, String>);

// === impl Credentials ===

impl Credentials {
    /// The credentials the AWS CLI would use, without metadata services:
    ///
    /// 1. `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (with `AWS_SESSION_TOKEN`);
    /// 2. the profile `AWS_PROFILE` (else `default`) of the shared credentials file,
    ///    `AWS_SHARED_CREDENTIALS_FILE` (else `~/.aws/credentials`);
    /// 3. the same profile in the config file, `AWS_CONFIG_FILE` (else `~/.aws/config`),
    ///    as `[profile NAME]` (or `[default]`).
    pub fn resolve(env: &BTreeMap<String, String>) -> Result<Self, BackendError> {
        resolve_credentials(&Env(env))
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

// === impl Aws ===

impl Aws {
    /// A client with credentials from [`Credentials::resolve`], in region `region` (else
    /// `AWS_REGION`, `AWS_DEFAULT_REGION`, or the `region` of the profile in the config
    /// file), talking to `endpoint` (else `AWS_ENDPOINT_URL_SECRETS_MANAGER`,
    /// `AWS_ENDPOINT_URL`, or `https://secretsmanager.REGION.amazonaws.com`).
    pub fn new(
        region: Option<&str>,
        endpoint: Option<&str>,
        env: &BTreeMap<String, String>,
    ) -> Result<Self, BackendError> {
        let env = Env(env);
        let region = match region.map(str::trim).filter(|r| !r.is_empty()) {
            Some(region) => region.to_string(),
            None => resolve_region(&env)?,
        };
        let endpoint = endpoint
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_string)
            .or_else(|| env.var("AWS_ENDPOINT_URL_SECRETS_MANAGER"))
            .or_else(|| env.var("AWS_ENDPOINT_URL"));
        Self::with_credentials(resolve_credentials(&env)?, &region, endpoint.as_deref())
    }

    /// A client with the credentials given, in `region`, talking to `endpoint` (else the
    /// region's public endpoint).
    pub fn with_credentials(
        credentials: Credentials,
        region: &str,
        endpoint: Option<&str>,
    ) -> Result<Self, BackendError> {
        let region = region.trim();
        if region.is_empty()
            || !region
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(BackendError::Invalid(format!(
                "AWS region `{region}` is not a region name"
            )));
        }
        let endpoint = match endpoint {
            Some(endpoint) => endpoint.to_string(),
            None => default_endpoint(region),
        };
        let url = reqwest::Url::parse(&endpoint).map_err(|e| {
            BackendError::Invalid(format!("Secrets Manager endpoint `{endpoint}`: {e}"))
        })?;
        let host = match url.host_str() {
            Some(host) if matches!(url.scheme(), "http" | "https") && url.query().is_none() => {
                match url.port() {
                    Some(port) => format!("{host}:{port}"),
                    None => host.to_string(),
                }
            }
            _ => {
                return Err(BackendError::Invalid(format!(
                    "Secrets Manager endpoint `{endpoint}` is not an http(s) URL without a query"
                )));
            }
        };
        Ok(Self {
            credentials,
            region: region.to_string(),
            endpoint: url,
            host,
        })
    }

    /// The region requests are signed for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The endpoint requests go to.
    pub fn endpoint(&self) -> &str {
        self.endpoint.as_str()
    }

    /// The current (`AWSCURRENT`) value of `id` (`name` or `name#key`) and its `VersionId`.
    pub async fn get(&self, http: &reqwest::Client, id: &str) -> Result<Fetched, BackendError> {
        let (name, key) = split_id(id)?;
        let answer = self
            .call(
                http,
                "GetSecretValue",
                &json!({ "SecretId": name, "VersionStage": "AWSCURRENT" }),
                name,
                None,
            )
            .await?;
        let version = version_id(&answer, name)?;
        let text = match answer.get("SecretString") {
            Some(Value::String(text)) => text,
            _ if answer.get("SecretBinary").is_some() => {
                return Err(BackendError::Invalid(format!(
                    "AWS secret `{name}` holds SecretBinary only; pincer reads SecretString"
                )));
            }
            _ => {
                return Err(BackendError::Invalid(format!(
                    "Secrets Manager answer for `{name}` has no SecretString"
                )));
            }
        };
        let value = match key {
            None => text.clone(),
            Some(key) => key_of(text, name, key)?,
        };
        Ok(Fetched { value, version })
    }

    /// Stores `value` as the new current version of secret `name`, creating the secret when
    /// there is none; the new `VersionId`.
    pub async fn put(
        &self,
        http: &reqwest::Client,
        name: &str,
        value: &str,
    ) -> Result<String, BackendError> {
        if name.is_empty() || name.contains('#') {
            return Err(BackendError::Invalid(format!(
                "`{name}` is not an AWS secret name (a put writes a whole secret, no `#key`)"
            )));
        }
        // The idempotency token becomes the VersionId; the SDKs make one up the same way.
        let token = uuid::Uuid::new_v4().to_string();
        let put = self
            .call(
                http,
                "PutSecretValue",
                &json!({ "SecretId": name, "SecretString": value, "ClientRequestToken": token }),
                name,
                Some(value),
            )
            .await;
        let answer = match put {
            Err(BackendError::NotFound(_)) => {
                self.call(
                    http,
                    "CreateSecret",
                    &json!({ "Name": name, "SecretString": value, "ClientRequestToken": token }),
                    name,
                    Some(value),
                )
                .await?
            }
            other => other?,
        };
        version_id(&answer, name)
    }

    /// One signed call of `action`; the JSON answer. `secret` names the secret in errors;
    /// `sent`, a value in the request, is blanked out of any error text AWS sends back.
    async fn call(
        &self,
        http: &reqwest::Client,
        action: &str,
        body: &Value,
        secret: &str,
        sent: Option<&str>,
    ) -> Result<Value, BackendError> {
        let body = body.to_string().into_bytes();
        let target = format!("secretsmanager.{action}");
        let headers = [
            ("content-type", JSON_1_1),
            ("host", self.host.as_str()),
            ("x-amz-target", target.as_str()),
        ];
        let signer = sigv4::Signer {
            access_key_id: &self.credentials.access_key_id,
            secret_access_key: &self.credentials.secret_access_key,
            session_token: self.credentials.session_token.as_deref(),
            region: &self.region,
            service: SERVICE,
        };
        let request = sigv4::Request {
            method: "POST",
            path: self.endpoint.path(),
            headers: &headers,
            body: &body,
        };
        let mut builder = http.post(self.endpoint.clone()).timeout(TIMEOUT);
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        for (name, value) in sigv4::sign(&signer, &request, SystemTime::now()) {
            builder = builder.header(name, value);
        }
        let response = builder
            .body(body)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = response.status().as_u16();
        let error_type = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = read_answer(response, secret).await?;
        if (200..300).contains(&status) {
            return match serde_json::from_slice::<Value>(&bytes) {
                Ok(answer) if answer.is_object() => Ok(answer),
                _ => Err(BackendError::Invalid(format!(
                    "Secrets Manager answer for `{secret}` is not a JSON object"
                ))),
            };
        }
        Err(failure(status, &bytes, error_type.as_deref(), secret, sent))
    }

    fn unreachable(&self, error: &reqwest::Error) -> BackendError {
        let what = if error.is_timeout() {
            format!("timed out after {} s", TIMEOUT.as_secs())
        } else if error.is_connect() {
            "cannot connect".to_string()
        } else {
            "request failed".to_string()
        };
        BackendError::Unavailable(format!("Secrets Manager at {}: {what}", self.endpoint))
    }
}

impl std::fmt::Debug for Aws {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aws")
            .field("region", &self.region)
            .field("endpoint", &self.endpoint.as_str())
            .field("credentials", &self.credentials)
            .finish()
    }
}

// === impl Env ===

impl Env<'_> {
    /// `name`, trimmed, if set and not empty.
    fn var(&self, name: &str) -> Option<String> {
        self.0
            .get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok())
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// A file named by `name`, else `~/.aws/{default}`; `~/` is the home directory.
    fn aws_file(&self, name: &str, default: &str) -> Option<PathBuf> {
        let home = || self.var("HOME").map(PathBuf::from);
        match self.var(name) {
            Some(path) => match path.strip_prefix("~/") {
                Some(rest) => home().map(|h| h.join(rest)),
                None => Some(PathBuf::from(path)),
            },
            None => home().map(|h| h.join(".aws").join(default)),
        }
    }

    fn profile(&self) -> String {
        self.var("AWS_PROFILE")
            .unwrap_or_else(|| "default".to_string())
    }
}

// === resolution ===

fn resolve_credentials(env: &Env<'_>) -> Result<Credentials, BackendError> {
    match (
        env.var("AWS_ACCESS_KEY_ID"),
        env.var("AWS_SECRET_ACCESS_KEY"),
    ) {
        (Some(access_key_id), Some(secret_access_key)) => {
            return Ok(Credentials {
                access_key_id,
                secret_access_key,
                session_token: env.var("AWS_SESSION_TOKEN"),
            });
        }
        (Some(_), None) => {
            return Err(BackendError::Invalid(
                "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not".into(),
            ));
        }
        (None, Some(_)) => {
            return Err(BackendError::Invalid(
                "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not".into(),
            ));
        }
        (None, None) => {}
    }
    let profile = env.profile();
    let credentials_file = env.aws_file("AWS_SHARED_CREDENTIALS_FILE", "credentials");
    let config_file = env.aws_file("AWS_CONFIG_FILE", "config");
    let from_credentials = match &credentials_file {
        Some(path) => read_ini(path)?.and_then(|ini| section(&ini, &profile)),
        None => None,
    };
    let from_config = match &config_file {
        Some(path) => read_ini(path)?.and_then(|ini| config_section(&ini, &profile)),
        None => None,
    };
    for (found, path) in [
        (&from_credentials, &credentials_file),
        (&from_config, &config_file),
    ] {
        let (Some(section), Some(path)) = (found, path) else {
            continue;
        };
        match (
            section.get("aws_access_key_id"),
            section.get("aws_secret_access_key"),
        ) {
            (Some(id), Some(secret)) => {
                return Ok(Credentials {
                    access_key_id: id.clone(),
                    secret_access_key: secret.clone(),
                    session_token: section.get("aws_session_token").cloned(),
                });
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(BackendError::Invalid(format!(
                    "AWS profile `{profile}` in {} has only one of aws_access_key_id and \
                     aws_secret_access_key",
                    path.display()
                )));
            }
            (None, None) => {}
        }
    }
    let unsupported = from_config.as_ref().and_then(|s| {
        [
            "credential_process",
            "role_arn",
            "sso_session",
            "sso_start_url",
            "web_identity_token_file",
        ]
        .into_iter()
        .find(|k| s.contains_key(*k))
    });
    if let Some(key) = unsupported {
        return Err(BackendError::Invalid(format!(
            "AWS profile `{profile}` gets its credentials through `{key}`, which pincer does \
             not support; give it aws_access_key_id and aws_secret_access_key, or set \
             AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )));
    }
    if from_credentials.is_none() && from_config.is_none() && profile != "default" {
        return Err(BackendError::Invalid(format!(
            "AWS profile `{profile}` (AWS_PROFILE) is in neither {} nor {}",
            shown(&credentials_file),
            shown(&config_file)
        )));
    }
    Err(BackendError::Invalid(format!(
        "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give profile \
         `{profile}` keys in {}",
        shown(&credentials_file)
    )))
}

fn resolve_region(env: &Env<'_>) -> Result<String, BackendError> {
    if let Some(region) = env
        .var("AWS_REGION")
        .or_else(|| env.var("AWS_DEFAULT_REGION"))
    {
        return Ok(region);
    }
    let profile = env.profile();
    let config_file = env.aws_file("AWS_CONFIG_FILE", "config");
    let from_config = match &config_file {
        Some(path) => read_ini(path)?
            .and_then(|ini| config_section(&ini, &profile))
            .and_then(|s| s.get("region").cloned()),
        None => None,
    };
    from_config.filter(|r| !r.is_empty()).ok_or_else(|| {
        BackendError::Invalid(format!(
            "no AWS region: set `region` on the provider, AWS_REGION, or `region` of profile \
             `{profile}` in {}",
            shown(&config_file)
        ))
    })
}

fn default_endpoint(region: &str) -> String {
    // The China partition has its own domain.
    let domain = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://{SERVICE}.{region}.{domain}")
}

fn shown(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "~/.aws (HOME is not set)".to_string())
}

/// Sections of an AWS INI file by name (whitespace inside names folded to one space), each
/// its `key = value` pairs; later sections and keys win. Lines starting with `#` or `;`
/// are comments; indented lines (nested settings such as `s3 =` blocks) are skipped.
type Ini = BTreeMap<String, BTreeMap<String, String>>;

fn parse_ini(text: &str) -> Ini {
    let mut ini = Ini::new();
    let mut current: Option<String> = None;
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
            ini.entry(name.clone()).or_default();
            current = Some(name);
            continue;
        }
        if raw.starts_with([' ', '\t']) {
            continue;
        }
        if let (Some(section), Some((key, value))) = (&current, line.split_once('=')) {
            ini.entry(section.clone())
                .or_default()
                .insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    ini
}

/// The file parsed, `None` when it does not exist.
fn read_ini(path: &Path) -> Result<Option<Ini>, BackendError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(parse_ini(&text))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(BackendError::Invalid(format!(
            "AWS file {} cannot be read: {e}",
            path.display()
        ))),
    }
}

/// A profile of the credentials file: `[NAME]`.
fn section(ini: &Ini, profile: &str) -> Option<BTreeMap<String, String>> {
    ini.get(profile).cloned()
}

/// A profile of the config file: `[profile NAME]`, or `[default]` for `default`.
fn config_section(ini: &Ini, profile: &str) -> Option<BTreeMap<String, String>> {
    let named = ini.get(&format!("profile {profile}"));
    let bare = (profile == "default").then(|| ini.get("default")).flatten();
    match (bare, named) {
        (None, None) => None,
        (bare, named) => {
            let mut merged = bare.cloned().unwrap_or_default();
            merged.extend(named.cloned().unwrap_or_default());
            Some(merged)
        }
    }
}

// === answers ===

/// Splits `name#key`.
fn split_id(id: &str) -> Result<(&str, Option<&str>), BackendError> {
    let (name, key) = match id.split_once('#') {
        Some((name, key)) => (name, Some(key)),
        None => (id, None),
    };
    if name.is_empty() || key == Some("") {
        return Err(BackendError::Invalid(format!(
            "`{id}` is not an AWS secret id (`name` or `name#key`)"
        )));
    }
    Ok((name, key))
}

fn version_id(answer: &Value, name: &str) -> Result<String, BackendError> {
    answer
        .get("VersionId")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            BackendError::Invalid(format!(
                "Secrets Manager answer for `{name}` has no VersionId"
            ))
        })
}

/// Key `key` of the JSON object `text`; strings as they are, other values as JSON.
fn key_of(text: &str, name: &str, key: &str) -> Result<String, BackendError> {
    let object = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => object,
        _ => {
            return Err(BackendError::Invalid(format!(
                "AWS secret `{name}` is not a JSON object, so it has no key `{key}`"
            )));
        }
    };
    match object.get(key) {
        Some(Value::String(value)) => Ok(value.clone()),
        Some(other) => Ok(other.to_string()),
        None => Err(BackendError::NotFound(format!(
            "AWS secret `{name}` has no key `{key}`"
        ))),
    }
}

/// The body, refusing more than [`MAX_ANSWER`] bytes.
async fn read_answer(
    mut response: reqwest::Response,
    secret: &str,
) -> Result<Vec<u8>, BackendError> {
    let too_large = || {
        BackendError::Invalid(format!(
            "Secrets Manager answer for `{secret}` is larger than {MAX_ANSWER} bytes"
        ))
    };
    if response
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) if body.len() + chunk.len() > MAX_ANSWER => return Err(too_large()),
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => return Ok(body),
            Err(e) => {
                let what = if e.is_timeout() {
                    "timed out"
                } else {
                    "cut short"
                };
                return Err(BackendError::Unavailable(format!(
                    "Secrets Manager answer for `{secret}` {what}"
                )));
            }
        }
    }
}

/// The error an AWS error answer stands for. The kind is the body's `__type` (else the
/// `x-amzn-errortype` header) without its namespace; AWS's message is quoted, shortened,
/// with `sent` blanked out of it.
fn failure(
    status: u16,
    body: &[u8],
    header_type: Option<&str>,
    secret: &str,
    sent: Option<&str>,
) -> BackendError {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let kind = json
        .get("__type")
        .and_then(Value::as_str)
        .or(header_type)
        .map(|t| {
            let t = t.split(':').next().unwrap_or(t);
            t.rsplit('#').next().unwrap_or(t).trim().to_string()
        })
        .filter(|t| !t.is_empty());
    let message = json
        .get("message")
        .or_else(|| json.get("Message"))
        .and_then(Value::as_str)
        .map(|m| {
            let m = match sent.filter(|s| !s.is_empty()) {
                Some(sent) => m.replace(sent, "<redacted>"),
                None => m.to_string(),
            };
            match m.char_indices().nth(MAX_MESSAGE) {
                Some((cut, _)) => format!("{}…", &m[..cut]),
                None => m,
            }
        });
    let said = match (&kind, &message) {
        (Some(kind), Some(message)) => format!("{status} {kind}: {message}"),
        (Some(kind), None) => format!("{status} {kind}"),
        (None, Some(message)) => format!("{status}: {message}"),
        (None, None) => status.to_string(),
    };
    let kind = kind.as_deref().unwrap_or("");
    if kind.ends_with("ResourceNotFoundException") {
        return BackendError::NotFound(format!("Secrets Manager has no secret `{secret}`"));
    }
    match kind {
        "AccessDeniedException"
        | "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "IncompleteSignature"
        | "MissingAuthenticationToken"
        | "InvalidClientTokenId"
        | "ExpiredTokenException"
        | "SignatureDoesNotMatch"
        // KMS would not decrypt the secret for us.
        | "DecryptionFailure" => {
            BackendError::Denied(format!("Secrets Manager refused `{secret}` ({said})"))
        }
        "ThrottlingException"
        | "TooManyRequestsException"
        | "RequestLimitExceeded"
        | "InternalServiceError"
        | "InternalFailure"
        | "ServiceUnavailable" => {
            BackendError::Unavailable(format!("Secrets Manager failed on `{secret}` ({said})"))
        }
        _ if status == 401 || status == 403 => {
            BackendError::Denied(format!("Secrets Manager refused `{secret}` ({said})"))
        }
        _ if status >= 500 => {
            BackendError::Unavailable(format!("Secrets Manager failed on `{secret}` ({said})"))
        }
        _ => BackendError::Invalid(format!("Secrets Manager refused `{secret}` ({said})")),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A directory removed on drop.
    struct Dir(PathBuf);

    impl Dir {
        fn new() -> Self {
            let dir = std::env::temp_dir().join(format!("pincer-aws-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(dir.join(".aws")).expect("temp dir");
            Self(dir)
        }
        fn write(&self, name: &str, text: &str) -> String {
            let path = self.0.join(name);
            std::fs::write(&path, text).expect("write");
            path.display().to_string()
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// An environment that hides every AWS variable of the process, with HOME at `home`.
    fn env(home: &Dir, set: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut env: BTreeMap<String, String> = [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_SHARED_CREDENTIALS_FILE",
            "AWS_CONFIG_FILE",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_SECRETS_MANAGER",
        ]
        .into_iter()
        .map(|k| (k.to_string(), String::new()))
        .collect();
        env.insert("HOME".into(), home.0.display().to_string());
        for (k, v) in set {
            env.insert(k.to_string(), v.to_string());
        }
        env
    }

    fn creds() -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: Some("TOKEN-SECRET".into()),
        }
    }

    const CREDENTIALS_FILE: &str = "\
# comment
[default]
aws_access_key_id = AKIDDEFAULT
aws_secret_access_key = default-secret

[work]
aws_access_key_id=AKIDWORK
aws_secret_access_key=work-secret
aws_session_token = work-token
";

    const CONFIG_FILE: &str = "\
[default]
region = eu-west-1
[profile work]
region = ap-south-1
s3 =
  region = not-this-one
[profile  sso]
sso_start_url = https://example.awsapps.com/start
[profile inline]
aws_access_key_id = AKIDINLINE
aws_secret_access_key = inline-secret
";

    #[test]
    fn environment_credentials_come_first() {
        let home = Dir::new();
        home.write(".aws/credentials", CREDENTIALS_FILE);
        let c = Credentials::resolve(&env(
            &home,
            &[
                ("AWS_ACCESS_KEY_ID", "AKIDENV"),
                ("AWS_SECRET_ACCESS_KEY", "env-secret"),
                ("AWS_SESSION_TOKEN", "env-token"),
            ],
        ))
        .expect("credentials");
        assert_eq!(c.access_key_id, "AKIDENV");
        assert_eq!(c.secret_access_key, "env-secret");
        assert_eq!(c.session_token.as_deref(), Some("env-token"));
        let half = Credentials::resolve(&env(&home, &[("AWS_ACCESS_KEY_ID", "AKIDENV")]));
        assert!(matches!(half, Err(BackendError::Invalid(_))), "{half:?}");
    }

    #[test]
    fn shared_files_give_the_profile_asked_for() {
        let home = Dir::new();
        home.write(".aws/credentials", CREDENTIALS_FILE);
        home.write(".aws/config", CONFIG_FILE);
        let default = Credentials::resolve(&env(&home, &[])).expect("default");
        assert_eq!(default.access_key_id, "AKIDDEFAULT");
        assert_eq!(default.session_token, None);
        let work = Credentials::resolve(&env(&home, &[("AWS_PROFILE", "work")])).expect("work");
        assert_eq!(
            (work.access_key_id.as_str(), work.session_token.as_deref()),
            ("AKIDWORK", Some("work-token"))
        );
        // Keys in the config file do as well.
        let inline =
            Credentials::resolve(&env(&home, &[("AWS_PROFILE", "inline")])).expect("inline");
        assert_eq!(inline.secret_access_key, "inline-secret");
        // Explicit file locations, `~/` included.
        let other = Dir::new();
        let path = other.write(
            "creds",
            "[default]\naws_access_key_id=A2\naws_secret_access_key=s2\n",
        );
        let c = Credentials::resolve(&env(&home, &[("AWS_SHARED_CREDENTIALS_FILE", &path)]))
            .expect("explicit file");
        assert_eq!(c.access_key_id, "A2");
        home.write(
            "elsewhere",
            "[default]\naws_access_key_id=A3\naws_secret_access_key=s3\n",
        );
        let c = Credentials::resolve(&env(
            &home,
            &[("AWS_SHARED_CREDENTIALS_FILE", "~/elsewhere")],
        ))
        .expect("file under ~");
        assert_eq!(c.access_key_id, "A3");
    }

    #[test]
    fn missing_or_unsupported_credentials_say_why() {
        let home = Dir::new();
        let none = Credentials::resolve(&env(&home, &[])).unwrap_err();
        assert!(none.to_string().contains("no AWS credentials"), "{none}");
        home.write(".aws/config", CONFIG_FILE);
        let sso = Credentials::resolve(&env(&home, &[("AWS_PROFILE", "sso")])).unwrap_err();
        assert!(sso.to_string().contains("sso_start_url"), "{sso}");
        let absent = Credentials::resolve(&env(&home, &[("AWS_PROFILE", "nope")])).unwrap_err();
        assert!(absent.to_string().contains("`nope`"), "{absent}");
    }

    #[test]
    fn region_and_endpoint_follow_the_cli_order() {
        let home = Dir::new();
        home.write(".aws/config", CONFIG_FILE);
        let keys = [
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
        ];
        let with = |extra: &[(&str, &str)]| {
            let mut set = keys.to_vec();
            set.extend_from_slice(extra);
            env(&home, &set)
        };
        let aws = Aws::new(None, None, &with(&[])).expect("default profile");
        assert_eq!(aws.region(), "eu-west-1");
        assert_eq!(
            aws.endpoint(),
            "https://secretsmanager.eu-west-1.amazonaws.com/"
        );
        let aws = Aws::new(None, None, &with(&[("AWS_PROFILE", "work")])).expect("work");
        assert_eq!(aws.region(), "ap-south-1");
        let aws = Aws::new(None, None, &with(&[("AWS_DEFAULT_REGION", "us-west-2")])).expect("");
        assert_eq!(aws.region(), "us-west-2");
        let aws = Aws::new(
            None,
            None,
            &with(&[
                ("AWS_DEFAULT_REGION", "us-west-2"),
                ("AWS_REGION", "us-east-2"),
            ]),
        )
        .expect("AWS_REGION");
        assert_eq!(aws.region(), "us-east-2");
        let aws = Aws::new(
            Some("cn-north-1"),
            None,
            &with(&[("AWS_REGION", "us-east-2")]),
        )
        .expect("configured");
        assert_eq!(
            aws.endpoint(),
            "https://secretsmanager.cn-north-1.amazonaws.com.cn/"
        );

        let urls = [
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
            ("AWS_ENDPOINT_URL_SECRETS_MANAGER", "http://localhost:5000"),
        ];
        let aws = Aws::new(None, None, &with(&urls[..1])).expect("generic");
        assert_eq!(
            (aws.endpoint(), aws.host.as_str()),
            ("http://127.0.0.1:4566/", "127.0.0.1:4566")
        );
        let aws = Aws::new(None, None, &with(&urls)).expect("service-specific");
        assert_eq!(aws.endpoint(), "http://localhost:5000/");
        let aws =
            Aws::new(None, Some("https://sm.example:443/"), &with(&urls)).expect("configured");
        assert_eq!(
            (aws.endpoint(), aws.host.as_str()),
            ("https://sm.example/", "sm.example")
        );

        let none = Dir::new();
        let err = Aws::new(None, None, &env(&none, &keys)).unwrap_err();
        assert!(err.to_string().contains("no AWS region"), "{err}");
        let err = Aws::new(Some("us-east-1"), Some("ftp://x"), &with(&[])).unwrap_err();
        assert!(matches!(err, BackendError::Invalid(_)), "{err}");
    }

    #[test]
    fn debug_shows_no_secret() {
        let aws = Aws::with_credentials(creds(), "us-east-1", None).expect("client");
        let shown = format!("{aws:?}");
        assert!(shown.contains("AKIDEXAMPLE"), "{shown}");
        assert!(
            !shown.contains("wJalr") && !shown.contains("TOKEN-SECRET"),
            "{shown}"
        );
    }

    #[test]
    fn ids_and_keys() {
        assert_eq!(split_id("app/db").unwrap(), ("app/db", None));
        assert_eq!(
            split_id("app/db#password").unwrap(),
            ("app/db", Some("password"))
        );
        assert!(split_id("#k").is_err() && split_id("app#").is_err() && split_id("").is_err());
        let text = r#"{"user":"u","port":5432,"tls":{"on":true},"none":null}"#;
        assert_eq!(key_of(text, "db", "user").unwrap(), "u");
        assert_eq!(key_of(text, "db", "port").unwrap(), "5432");
        assert_eq!(key_of(text, "db", "tls").unwrap(), r#"{"on":true}"#);
        assert_eq!(key_of(text, "db", "none").unwrap(), "null");
        let missing = key_of(text, "db", "password").unwrap_err();
        assert_eq!(
            missing,
            BackendError::NotFound("AWS secret `db` has no key `password`".into())
        );
        let not_object = key_of("hunter2", "db", "password").unwrap_err();
        assert!(matches!(not_object, BackendError::Invalid(_)));
        assert!(!not_object.to_string().contains("hunter2"));
    }

    #[test]
    fn errors_map_by_type_then_status() {
        let f = |status, body: &str, header| failure(status, body.as_bytes(), header, "app", None);
        let not_found = f(
            400,
            r#"{"__type":"com.amazonaws.secretsmanager#ResourceNotFoundException","message":"x"}"#,
            None,
        );
        assert_eq!(
            not_found,
            BackendError::NotFound("Secrets Manager has no secret `app`".into())
        );
        // moto answers 404 with the same type.
        assert!(matches!(
            f(404, r#"{"__type":"ResourceNotFoundException"}"#, None),
            BackendError::NotFound(_)
        ));
        for denied in [
            "AccessDeniedException",
            "UnrecognizedClientException",
            "InvalidSignatureException",
        ] {
            let e = f(
                400,
                &format!(r#"{{"__type":"{denied}","message":"no"}}"#),
                None,
            );
            assert!(matches!(e, BackendError::Denied(_)), "{denied}: {e:?}");
            assert!(e.to_string().contains(denied), "{e}");
        }
        assert!(matches!(f(403, "<html>", None), BackendError::Denied(_)));
        assert!(matches!(f(500, "", None), BackendError::Unavailable(_)));
        assert!(matches!(f(503, "{}", None), BackendError::Unavailable(_)));
        assert!(matches!(
            f(400, r#"{"__type":"ThrottlingException"}"#, None),
            BackendError::Unavailable(_)
        ));
        assert!(matches!(
            f(
                400,
                "",
                Some("ResourceNotFoundException:http://internal.amazon.com/")
            ),
            BackendError::NotFound(_)
        ));
        let other = f(
            400,
            r#"{"__type":"InvalidRequestException","Message":"marked for deletion"}"#,
            None,
        );
        assert_eq!(
            other,
            BackendError::Invalid(
                "Secrets Manager refused `app` (400 InvalidRequestException: marked for deletion)"
                    .into()
            )
        );
        // A value sent is never echoed back in an error.
        let echoed = failure(
            400,
            br#"{"__type":"InvalidParameterException","message":"bad value hunter2"}"#,
            None,
            "app",
            Some("hunter2"),
        );
        assert!(!echoed.to_string().contains("hunter2"), "{echoed}");
        let long = format!(r#"{{"__type":"X","message":"{}"}}"#, "é".repeat(1000));
        assert!(f(400, &long, None).to_string().chars().count() < 400);
    }

    /// Serves one HTTP answer on a fresh port; the task yields the request as received.
    async fn serve_once(answer: Vec<u8>) -> (String, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = socket.read(&mut buf).await.expect("read");
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0usize);
                    if request.len() >= end + 4 + length {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            let _ = socket.write_all(&answer).await;
            let _ = socket.shutdown().await;
            String::from_utf8_lossy(&request).to_string()
        });
        (url, task)
    }

    fn http_answer(status: &str, body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.1\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    #[tokio::test]
    async fn the_request_is_signed_as_sent() {
        let (url, task) = serve_once(http_answer(
            "200 OK",
            r#"{"Name":"app/db","VersionId":"v-1","SecretString":"{\"password\":\"pw\"}"}"#,
        ))
        .await;
        let aws = Aws::with_credentials(creds(), "us-east-1", Some(&url)).expect("client");
        let fetched = aws
            .get(&reqwest::Client::new(), "app/db#password")
            .await
            .expect("get");
        assert_eq!(
            (fetched.value.as_str(), fetched.version.as_str()),
            ("pw", "v-1")
        );

        let request = task.await.expect("server");
        let (head, body) = request.split_once("\r\n\r\n").expect("request");
        let mut lines = head.lines();
        assert_eq!(lines.next(), Some("POST / HTTP/1.1"));
        let headers: BTreeMap<String, String> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        assert_eq!(headers["content-type"], JSON_1_1);
        assert_eq!(headers["x-amz-target"], "secretsmanager.GetSecretValue");
        assert_eq!(headers["x-amz-security-token"], "TOKEN-SECRET");
        assert_eq!(
            serde_json::from_str::<Value>(body).expect("json"),
            json!({"SecretId": "app/db", "VersionStage": "AWSCURRENT"})
        );
        // Recompute the signature from what arrived.
        let authorization = &headers["authorization"];
        let date = &headers["x-amz-date"];
        let signed = "content-type;host;x-amz-date;x-amz-security-token;x-amz-target";
        let scope = sigv4::scope(&date[..8], "us-east-1", "secretsmanager");
        assert!(
            authorization.starts_with(&format!(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/{scope}, SignedHeaders={signed}, Signature="
            )),
            "{authorization}"
        );
        let pairs: Vec<(&str, &str)> = signed
            .split(';')
            .map(|n| (n, headers[n].as_str()))
            .collect();
        let (canonical, _) =
            sigv4::canonical_request("POST", "/", &pairs, &sigv4::hex_sha256(body.as_bytes()));
        let key = sigv4::signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            &date[..8],
            "us-east-1",
            "secretsmanager",
        );
        let to_sign = sigv4::string_to_sign(date, &scope, &canonical);
        let signature: String = ring::hmac::sign(&key, to_sign.as_bytes())
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(
            authorization.ends_with(&format!("Signature={signature}")),
            "{authorization}"
        );
    }

    #[tokio::test]
    async fn failing_answers_become_backend_errors() {
        let http = reqwest::Client::new();
        let client =
            |url: &str| Aws::with_credentials(creds(), "us-east-1", Some(url)).expect("client");

        let (url, _task) = serve_once(http_answer("500 Internal Server Error", "{}")).await;
        let e = client(&url).get(&http, "app").await.unwrap_err();
        assert!(e.is_outage(), "{e:?}");

        let (url, _task) = serve_once(http_answer(
            "400 Bad Request",
            r#"{"__type":"AccessDeniedException","message":"User: arn:aws:iam::1:user/x is not authorized"}"#,
        ))
        .await;
        let e = client(&url).get(&http, "app").await.unwrap_err();
        assert!(matches!(e, BackendError::Denied(_)), "{e:?}");

        let (url, _task) = serve_once(http_answer("200 OK", "not json")).await;
        let e = client(&url).get(&http, "app").await.unwrap_err();
        assert!(matches!(e, BackendError::Invalid(_)), "{e:?}");

        let (url, _task) = serve_once(http_answer(
            "200 OK",
            r#"{"Name":"app","VersionId":"v","SecretBinary":"AAEC"}"#,
        ))
        .await;
        let e = client(&url).get(&http, "app").await.unwrap_err();
        assert!(
            e.to_string().contains("SecretBinary") && e.to_string().contains("`app`"),
            "{e}"
        );

        let huge = format!(
            r#"{{"VersionId":"v","SecretString":"{}"}}"#,
            "x".repeat(MAX_ANSWER)
        );
        let (url, _task) = serve_once(http_answer("200 OK", &huge)).await;
        let e = client(&url).get(&http, "app").await.unwrap_err();
        assert!(e.to_string().contains("larger than"), "{e}");

        // Nobody listening.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let e = client(&format!("http://127.0.0.1:{port}"))
            .get(&http, "app")
            .await
            .unwrap_err();
        assert!(e.is_outage(), "{e:?}");
    }
}
