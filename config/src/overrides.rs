//! The top layer: command-line flags (`pincer gateway --port N --bind ADDR`). They are
//! kept by the running gateway and applied after every load, the reloads' included, so
//! that a reload neither forgets them nor reports the file's values as changes.

use super::Config;

/// Flags given on the command line; `None` where the config decides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--port`: `gateway.port`.
    pub port: Option<u16>,
    /// `--bind`: `gateway.bind`.
    pub bind: Option<String>,
}

impl Overrides {
    /// Sets the flags given onto `config`.
    pub fn apply(&self, config: &mut Config) {
        if let Some(port) = self.port {
            config.gateway.port = port;
        }
        if let Some(bind) = &self.bind {
            config.gateway.bind.clone_from(bind);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_flags_given_are_set() {
        let mut config = Config::default();
        config.gateway.bind = "10.0.0.5".into();
        Overrides {
            port: Some(1234),
            bind: None,
        }
        .apply(&mut config);
        assert_eq!(
            (config.gateway.port, config.gateway.bind.as_str()),
            (1234, "10.0.0.5")
        );
        Overrides {
            port: None,
            bind: Some("::1".into()),
        }
        .apply(&mut config);
        assert_eq!(
            (config.gateway.port, config.gateway.bind.as_str()),
            (1234, "::1")
        );
    }
}
