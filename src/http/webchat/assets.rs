//! The web chat's files, compiled in: the page, its style sheet and its scripts, each
//! kept as it is and gzipped once, named by a digest of its content so a browser may keep
//! it for good (a new build gives new names; only the page itself is asked for again).

use std::sync::OnceLock;

/// One file as served.
#[derive(Debug)]
pub(super) struct Asset {
    /// The path it is served at (`/` for the page).
    pub(super) path: String,
    /// Its media type.
    pub(super) content_type: &'static str,
    /// As written.
    pub(super) plain: Vec<u8>,
    /// Gzipped.
    pub(super) gzip: Vec<u8>,
    /// A strong validator of its content.
    pub(super) etag: String,
}

/// The page and the files it loads.
#[derive(Debug)]
pub(super) struct Assets {
    /// `/`.
    pub(super) page: Asset,
    /// `/webchat/<name>.<digest>.<ext>`, what the page links to.
    pub(super) files: Vec<Asset>,
}

/// The sources: (name, extension, media type, text). The page names each as `{{name.ext}}`.
const SOURCES: &[(&str, &str, &str, &str)] = &[
    (
        "style",
        "css",
        "text/css; charset=utf-8",
        include_str!("style.css"),
    ),
    (
        "markdown",
        "js",
        "text/javascript; charset=utf-8",
        include_str!("markdown.js"),
    ),
    (
        "highlight",
        "js",
        "text/javascript; charset=utf-8",
        include_str!("highlight.js"),
    ),
    (
        "app",
        "js",
        "text/javascript; charset=utf-8",
        include_str!("app.js"),
    ),
];

const PAGE: &str = include_str!("index.html");

/// The assets, built on first use.
pub(super) fn assets() -> &'static Assets {
    static ASSETS: OnceLock<Assets> = OnceLock::new();
    ASSETS.get_or_init(build)
}

fn build() -> Assets {
    let mut page = PAGE.to_string();
    let mut files = Vec::with_capacity(SOURCES.len());
    for (name, ext, content_type, text) in SOURCES {
        let digest = digest(text.as_bytes());
        let path = format!("/webchat/{name}.{}.{ext}", &digest[..12]);
        page = page.replace(&format!("{{{{{name}.{ext}}}}}"), &path);
        files.push(asset(path, content_type, text.as_bytes().to_vec()));
    }
    let page = asset(
        "/".to_string(),
        "text/html; charset=utf-8",
        page.into_bytes(),
    );
    Assets { page, files }
}

fn asset(path: String, content_type: &'static str, plain: Vec<u8>) -> Asset {
    let etag = format!("\"{}\"", &digest(&plain)[..20]);
    let gzip = gzip(&plain);
    Asset {
        path,
        content_type,
        plain,
        gzip,
        etag,
    }
}

fn digest(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// `data` in a gzip member (RFC 1952): header, raw deflate at the best level, CRC-32, size.
pub(super) fn gzip(data: &[u8]) -> Vec<u8> {
    // No name, no time (the same bytes every build), unknown OS.
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 255];
    out.extend(miniz_oxide::deflate::compress_to_vec(data, 10));
    out.extend(crc32(data).to_le_bytes());
    // ISIZE is the length modulo 2^32 by definition.
    out.extend((data.len() as u32).to_le_bytes());
    out
}

/// CRC-32 (IEEE 802.3, reflected), as gzip's trailer needs.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in data {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Whether an `Accept-Encoding` value takes gzip (and does not refuse it with `q=0`).
pub(super) fn accepts_gzip(header: Option<&str>) -> bool {
    header.is_some_and(|value| {
        value.split(',').any(|part| {
            let mut fields = part.split(';').map(str::trim);
            let coding = fields.next().unwrap_or("");
            let refused = fields.any(|f| {
                f.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn gzip_round_trips_through_inflate() {
        let text = "hello hello hello web chat".repeat(40);
        let packed = gzip(text.as_bytes());
        assert_eq!(&packed[..3], &[0x1f, 0x8b, 8]);
        let body = &packed[10..packed.len() - 8];
        let inflated = miniz_oxide::inflate::decompress_to_vec(body).expect("inflates");
        assert_eq!(inflated, text.as_bytes());
        assert!(packed.len() < text.len() / 4);
    }

    #[test]
    fn accept_encoding_is_read_with_its_weights() {
        assert!(accepts_gzip(Some("gzip, deflate, br")));
        assert!(accepts_gzip(Some("br;q=1.0, GZIP;q=0.5")));
        assert!(accepts_gzip(Some("*")));
        assert!(!accepts_gzip(Some("gzip;q=0")));
        assert!(!accepts_gzip(Some("br")));
        assert!(!accepts_gzip(None));
    }

    #[test]
    fn the_page_links_every_file_by_its_digest_and_nothing_else() {
        let assets = assets();
        let page = String::from_utf8_lossy(&assets.page.plain);
        assert!(!page.contains("{{"), "a placeholder was left in the page");
        for file in &assets.files {
            assert!(page.contains(&file.path), "{} not linked", file.path);
        }
        // Nothing inline: the CSP allows only files of the gateway's own.
        assert!(!page.contains("<style"));
        assert!(!page.contains("<script>"));
        assert!(!page.contains(" style=\""));
        let handler = page.split(" on").skip(1).any(|rest| {
            let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        });
        assert!(!handler, "no inline handler");
    }
}
