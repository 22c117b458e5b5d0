//! The gateway's one HTTP client, and what every caller of an upstream needs: reading an
//! answer with a size cap, errors without URLs (which may carry tokens), and comparing
//! tokens in constant time.

use std::sync::OnceLock;
use std::time::Duration;

/// How long connecting to an upstream may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP client could not be built (its TLS set-up failed). Nothing can reach an
/// upstream without it, so callers report it and stop rather than fall back to a client
/// with other rules.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub struct ClientError(String);

/// The HTTP client of providers, channel links and secrets back ends: pooled connections,
/// rustls, a connect timeout, `TCP_NODELAY`, and no redirects (an API that redirects a POST
/// is misconfigured, and following it would send the key elsewhere).
///
/// One client for the process, made on first use: each client loads its own TLS roots and
/// pool, which cost ~150 kB per channel account when every link built its own.
pub fn http_client() -> Result<reqwest::Client, ClientError> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client.clone());
    }
    let built = client_builder()
        .build()
        .map_err(|e| ClientError(without_url(&e)))?;
    Ok(CLIENT.get_or_init(|| built).clone())
}

/// The rules of [`http_client`] (no redirects, the connect timeout, `TCP_NODELAY`, the
/// user agent) as a builder, for the one caller that cannot share the process's client:
/// the web fetch tool builds a client per hop, pinned to the addresses its SSRF guard
/// checked. Everything else uses [`http_client`].
pub fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .user_agent(concat!("pincer/", env!("CARGO_PKG_VERSION")))
}

/// Reads an upstream's answer, refusing one larger than `max` bytes.
pub async fn read_capped(mut response: reqwest::Response, max: usize) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|_| "answer cut short".to_string())?
    {
        if body.len() + chunk.len() > max {
            return Err(format!("answer larger than {max} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A reqwest error's text with its causes, without its URL (which may carry a token in a
/// path or query).
pub fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), "<url>");
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Compares without an early exit, so timing tells nothing about where bytes differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_by_content_only() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[tokio::test]
    async fn the_client_does_not_follow_redirects() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("address");
        let server = tokio::spawn(async move {
            let mut served = 0;
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = socket.read(&mut buf).await;
                let answer = format!(
                    "HTTP/1.1 302 Found\r\nLocation: http://{addr}/elsewhere\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = socket.write_all(answer.as_bytes()).await;
                served += 1;
                if served == 2 {
                    return served;
                }
            }
            served
        });
        let client = http_client().expect("client");
        let response = client
            .get(format!("http://{addr}/start"))
            .send()
            .await
            .expect("an answer");
        assert_eq!(response.status().as_u16(), 302);
        // The same client again: built once, same rules.
        let again = http_client().expect("client");
        let second = again
            .get(format!("http://{addr}/start"))
            .send()
            .await
            .expect("an answer");
        assert_eq!(second.status().as_u16(), 302);
        assert_eq!(
            server.await.expect("server"),
            2,
            "no request followed the redirect"
        );
    }
}
