//! Which names the gateway answers to and which pages may open its socket: the rules
//! against DNS rebinding and cross-site WebSockets. The filters that apply them are
//! [`super::host_guard`] (every route) and the socket route in [`super::webchat`].
//!
//! **Hosts.** A page on `http://evil.example:18789` whose name is re-pointed at 127.0.0.1
//! (DNS rebinding) reaches the gateway with `Host: evil.example:18789`; the gateway's own
//! names never look like that. A `Host` is the gateway's own, at any port, when it is
//!
//! - `localhost` or a name under it (`app.localhost`): RFC 6761 reserves them for
//!   loopback and browsers resolve them to loopback themselves, so no one can point them
//!   elsewhere first;
//! - a loopback address (`127.0.0.0/8`, `[::1]`);
//! - the bind address; with a wildcard bind (`0.0.0.0`, `::`) any IP address, since the
//!   gateway then answers on all of them, and a page whose origin is an address is served
//!   by whoever listens there, which is no rebinding;
//! - the host of a Telegram account's `webhookUrl` (Telegram posts to that name);
//! - in `gateway.allowedHosts`: `name` (any port) or `name:port`.
//!
//! **Origins.** A browser sends `Origin` with every WebSocket handshake; the socket
//! accepts the gateway's own origin (`http://` and the request's `Host`, port included) and
//! those in `gateway.allowedOrigins`; none (a non-browser client) is accepted too.

use std::net::IpAddr;

use pincer_config::Config;
use warp::host::Authority;

/// A site as an origin names it: scheme, host and port (the scheme's default filled in).
#[derive(Debug, PartialEq, Eq)]
struct Site {
    scheme: String,
    host: String,
    port: Option<u16>,
}

/// Whether `host` (a request's `Host`) is a name of this gateway under `config`; see the
/// [module docs](self).
pub fn host_allowed(host: &Authority, config: &Config) -> bool {
    let name = normalize(host.host());
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    if let Some(ip) = ip_of(&name) {
        // `to_canonical`: `[::ffff:127.0.0.1]` is loopback too.
        if ip.to_canonical().is_loopback() {
            return true;
        }
        if let Ok(bind) = config.gateway.bind.parse::<IpAddr>()
            && (bind.is_unspecified() || bind == ip)
        {
            return true;
        }
    }
    let port = host.port_u16().unwrap_or(80);
    let mut webhooks = config.channels.telegram.iter().flat_map(|t| {
        t.accounts
            .values()
            .filter_map(|a| a.webhook_url.as_deref())
            .filter_map(|url| reqwest::Url::parse(url).ok()?.host_str().map(normalize))
    });
    if webhooks.any(|h| h == name) {
        return true;
    }
    config.gateway.allowed_hosts.iter().any(|entry| {
        entry
            .trim()
            .parse::<Authority>()
            .is_ok_and(|a| normalize(a.host()) == name && a.port_u16().is_none_or(|p| p == port))
    })
}

/// Whether a socket opened from page `origin` with `Host: host` is accepted under
/// `allowed` (`gateway.allowedOrigins`); see the [module docs](self).
pub fn origin_allowed(origin: &str, host: Option<&Authority>, allowed: &[String]) -> bool {
    let Some(site) = site_of(origin) else {
        return false; // `null` (sandboxed frames, files) and anything unreadable
    };
    let own = host.map(|h| Site {
        scheme: "http".to_string(),
        host: normalize(h.host()),
        port: Some(h.port_u16().unwrap_or(80)),
    });
    own.as_ref() == Some(&site) || allowed.iter().any(|a| site_of(a).as_ref() == Some(&site))
}

/// The gateway's own origin for `Host: host`, for messages.
pub fn own_origin(host: Option<&Authority>) -> String {
    host.map_or_else(|| "none: no Host".to_string(), |h| format!("http://{h}"))
}

/// `scheme://host[:port]` (a trailing `/` tolerated), compared without case.
fn site_of(text: &str) -> Option<Site> {
    let (scheme, rest) = text.trim().split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '@', '?', '#']) {
        return None;
    }
    let authority: Authority = rest.parse().ok()?;
    let default = match scheme.as_str() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    };
    Some(Site {
        host: normalize(authority.host()),
        port: authority.port_u16().or(default),
        scheme,
    })
}

/// Lower case, without the root's trailing dot (`LocalHost.` is `localhost`).
fn normalize(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// The address a host names literally (`127.0.0.1`, `[::1]`), if it is one.
fn ip_of(host: &str) -> Option<IpAddr> {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        pincer_config::parse_str(text, pincer_config::Format::Toml).expect("config")
    }

    fn allowed(host: &str, config: &Config) -> bool {
        host_allowed(&host.parse().expect("authority"), config)
    }

    #[test]
    fn loopback_names_and_addresses_the_bind_address_and_listed_hosts() {
        let c =
            config("[gateway]\nallowedHosts = [\"pincer.internal\", \"chat.example.org:8443\"]\n");
        for host in [
            "localhost",
            "LOCALHOST.:1",
            "app.localhost:18789",
            "127.0.0.1:18789",
            "127.9.9.9",
            "[::1]:18789",
            "[::ffff:127.0.0.1]",
            "pincer.internal",
            "Pincer.Internal:1234",
            "chat.example.org:8443",
        ] {
            assert!(allowed(host, &c), "{host}");
        }
        for host in [
            "evil.example.com",
            "localhost.evil.example",
            "evillocalhost",
            "10.0.0.5:18789",
            "chat.example.org",
            "chat.example.org:443",
            "internal",
        ] {
            assert!(!allowed(host, &c), "{host}");
        }
    }

    #[test]
    fn the_bind_address_and_webhook_hosts_are_own_names() {
        let c = config("[gateway]\nbind = \"10.0.0.5\"\n");
        assert!(allowed("10.0.0.5:18789", &c));
        assert!(!allowed("10.0.0.6:18789", &c));
        let c = config("[gateway]\nbind = \"0.0.0.0\"\n");
        assert!(allowed("10.0.0.6:18789", &c));
        assert!(allowed("[fe80::1]", &c));
        assert!(!allowed("evil.example", &c));
        let c = config(
            "[channels.telegram.accounts.bot]\ntoken = \"1:x\"\nmode = \"webhook\"\nwebhookUrl = \"https://Bot.Example.org/telegram/bot\"\n",
        );
        assert!(allowed("bot.example.org", &c));
        assert!(allowed("bot.example.org:8443", &c));
        assert!(!allowed("example.org", &c));
    }

    #[test]
    fn origins_match_by_scheme_host_and_port() {
        let host: Authority = "127.0.0.1:18789".parse().expect("host");
        let list = [
            "https://chat.example.org".to_string(),
            "http://app.test:81/".to_string(),
        ];
        let ok = |origin: &str| origin_allowed(origin, Some(&host), &list);
        assert!(ok("http://127.0.0.1:18789"));
        assert!(ok("https://chat.example.org"));
        assert!(ok("HTTPS://CHAT.example.org:443"));
        assert!(ok("http://app.test:81"));
        assert!(!ok("https://127.0.0.1:18789"));
        assert!(!ok("http://127.0.0.1:1"));
        assert!(!ok("http://localhost:18789"));
        assert!(!ok("https://chat.example.org.evil.example"));
        assert!(!ok("https://chat.example.org:8443"));
        assert!(!ok("http://app.test"));
        assert!(!ok("null"));
        assert!(!ok("https://user@chat.example.org"));
        let bare: Authority = "gateway".parse().expect("host");
        assert!(origin_allowed("http://gateway:80", Some(&bare), &[]));
        assert!(!origin_allowed("http://gateway", None, &[]));
    }
}
