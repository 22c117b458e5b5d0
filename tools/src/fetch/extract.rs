//! HTML to text, the page's title, and cutting text to a length.

use html2text::render::{PlainDecorator, TextDecorator, TrivialDecorator};

use super::ExtractMode;

/// The width text is wrapped at. Wide enough that prose is rarely wrapped (a model reads
/// long lines as well as short ones, and a wrapped line costs a token), narrow enough that
/// a table's columns stay readable.
const WRAP_WIDTH: usize = 400;

/// The longest title kept, in characters.
const MAX_TITLE_CHARS: usize = 300;

/// `html` as text in `mode`: markdown-flavoured (headings, lists, emphasis, links as
/// numbered references listed at the end) or plain.
pub(super) fn html_to_text(html: &str, mode: ExtractMode) -> Result<String, String> {
    match mode {
        ExtractMode::Markdown => render(
            html2text::config::with_decorator(PlainDecorator::new())
                .do_decorate()
                .link_footnotes(true),
            html,
        ),
        ExtractMode::Text => render(
            html2text::config::with_decorator(TrivialDecorator::new()),
            html,
        ),
    }
}

fn render<D: TextDecorator>(
    config: html2text::config::Config<D>,
    html: &str,
) -> Result<String, String> {
    config
        .allow_width_overflow()
        .no_link_wrapping()
        .string_from_read(html.as_bytes(), WRAP_WIDTH)
        .map(|text| tidy(&text))
        .map_err(|error| error.to_string())
}

/// Trailing spaces off every line, runs of blank lines down to one, no blank start or end.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank_run += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank_run > 0 { "\n\n" } else { "\n" });
        }
        blank_run = 0;
        out.push_str(line);
    }
    out
}

/// The text of the first `<title>` element, whitespace collapsed and the common character
/// references decoded, or `None` if there is none or it is empty.
///
/// A scan rather than the parsed document: html2text does not expose the text nodes of
/// its DOM. A title's content is text only (RCDATA: no tags inside), which is what makes
/// the scan sound; a `<title>` inside a script before the real one would fool it.
pub(super) fn title(html: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    let mut from = 0;
    let open = loop {
        let at = from + lower[from..].find("<title")?;
        let next = lower.as_bytes().get(at + "<title".len()).copied();
        if matches!(next, Some(b'>' | b' ' | b'\t' | b'\n' | b'\r' | b'/')) {
            break at;
        }
        from = at + 1;
    };
    let start = open + lower[open..].find('>')? + 1;
    let end = start
        + lower[start..]
            .find("</title")
            .unwrap_or(lower.len() - start);
    let text = decode_references(&html[start..end]);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return None;
    }
    Some(match text.char_indices().nth(MAX_TITLE_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    })
}

/// `&amp;`, `&lt;`, `&gt;`, `&quot;`, `&apos;`, `&nbsp;` and numeric references; any other
/// `&` is kept as it is.
fn decode_references(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let reference = rest[1..]
            .find(';')
            .filter(|&end| end <= 10)
            .map(|end| (&rest[1..=end], end + 2));
        let decoded = reference.and_then(|(name, len)| {
            let c = match name {
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "quot" => '"',
                "apos" => '\'',
                "nbsp" => ' ',
                _ => {
                    let number = name.strip_prefix('#')?;
                    let code = match number.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => number.parse().ok()?,
                    };
                    char::from_u32(code)?
                }
            };
            Some((c, len))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `text` cut to `max_chars` characters, with a marker saying how much was left out;
/// `true` if it was cut.
pub(super) fn cut(mut text: String, max_chars: usize) -> (String, bool) {
    let Some((at, _)) = text.char_indices().nth(max_chars) else {
        return (text, false);
    };
    let total = max_chars + text[at..].chars().count();
    text.truncate(at);
    text.push_str(&format!(
        "\n\n[cut: the first {} of {} characters shown]",
        super::body::thousands(max_chars as u64),
        super::body::thousands(total as u64),
    ));
    (text, true)
}
