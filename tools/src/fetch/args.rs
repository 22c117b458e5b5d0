//! The tool's arguments as the model sends them.

use serde::Deserialize;

/// `max_chars` when the model gives none.
pub const DEFAULT_MAX_CHARS: usize = 50_000;

/// The most `max_chars` may ask for: about 50,000 tokens, a large share of a context
/// window for one page.
pub const MAX_MAX_CHARS: usize = 200_000;

/// How a page's HTML is turned into text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
pub enum ExtractMode {
    /// Markdown-flavoured text: `#` headings, `*` lists, `*emphasis*`, `**strong**`,
    /// `` `code` ``, links as `[text][n]` with the URLs listed at the end.
    #[default]
    #[serde(alias = "markdown")]
    Markdown,
    /// Plain text: the words and line breaks only.
    #[serde(alias = "text")]
    Text,
}

/// What the `web_fetch` tool is called with.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchArgs {
    /// The page, `http://` or `https://`.
    pub url: String,
    /// How HTML is turned into text; `Markdown` by default.
    #[serde(default)]
    pub extract_mode: ExtractMode,
    /// The most characters of text returned; 50,000 by default, at most 200,000 (more is
    /// taken as 200,000; 0 as 1).
    #[serde(default = "default_max_chars")]
    pub max_chars: usize,
}

const fn default_max_chars() -> usize {
    DEFAULT_MAX_CHARS
}

// === impl FetchArgs ===

impl FetchArgs {
    /// `url` as markdown, with the default `max_chars`.
    pub fn new(url: impl Into<String>) -> FetchArgs {
        FetchArgs {
            url: url.into(),
            extract_mode: ExtractMode::Markdown,
            max_chars: DEFAULT_MAX_CHARS,
        }
    }

    /// The same arguments in another mode.
    pub fn mode(mut self, mode: ExtractMode) -> FetchArgs {
        self.extract_mode = mode;
        self
    }

    /// The same arguments with another `max_chars`.
    pub fn max_chars(mut self, max_chars: usize) -> FetchArgs {
        self.max_chars = max_chars;
        self
    }

    /// `max_chars` within 1 ..= [`MAX_MAX_CHARS`].
    pub fn effective_max_chars(&self) -> usize {
        self.max_chars.clamp(1, MAX_MAX_CHARS)
    }
}
