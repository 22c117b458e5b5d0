//! `pincer doctor`'s tool checks: can the agents that may call `web_search` search? Brave
//! needs `tools.webSearch.apiKey`; whether the ref resolves is the secrets check's line.
//! No search is made (each one costs a query of the plan's quota).

use pincer_config::Config;
use pincer_config::tools::{SearchProvider, agent_set};
use pincer_secrets::Resolved;

use super::Finding;

/// What `web_search` needs, if any agent may call it: a finding, or a note (`Err`) when
/// the secrets check already reports the problem.
pub(super) fn web_search(cfg: &Config, secrets: &Resolved) -> Option<Result<Finding, String>> {
    let agents: Vec<String> = cfg
        .agents
        .iter()
        .filter(|(_, a)| agent_set(&a.tools, &a.skills).contains("web_search"))
        .map(|(id, _)| format!("`{id}`"))
        .collect();
    if agents.is_empty() {
        return None;
    }
    let who = format!("web_search (agents {})", agents.join(", "));
    let search = &cfg.tools.web_search;
    let at = search.base_url().unwrap_or("?");
    Some(match (search.provider, &search.api_key) {
        (SearchProvider::Searxng, _) => Ok(Finding {
            ok: true,
            text: format!("{who}: SearXNG at {at}"),
        }),
        (SearchProvider::Brave, None) => Ok(Finding {
            ok: false,
            text: format!(
                "{who}: Brave Search needs an API key; set tools.webSearch.apiKey (a secret ref such as \"env:BRAVE_API_KEY\") or use provider = \"searxng\" with baseUrl. Until then each search answers the model with an error"
            ),
        }),
        (SearchProvider::Brave, Some(key)) => match secrets.get(key) {
            Ok(_) => Ok(Finding {
                ok: true,
                text: format!("{who}: Brave Search at {at}, key from tools.webSearch.apiKey"),
            }),
            // The secrets check fails on it already; this note says what it costs, so the
            // problem is not counted twice.
            Err(_) => Err(format!(
                "{who}: Brave Search at {at}, but tools.webSearch.apiKey does not resolve (see below): searches fail until it does"
            )),
        },
    })
}
