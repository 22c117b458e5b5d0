//! Splitting a long reply into messages an upstream accepts (Telegram: 4096 characters,
//! Discord: 2000).
//!
//! Lengths are counted in UTF-16 code units, which is what Telegram counts and never less
//! than the characters Discord counts, so a part never comes back "too long". A cut falls
//! on the last paragraph break in the window, else the last line break, else the last
//! sentence end, else the last space, and only then inside a word. A cut inside a fenced
//! code block closes the fence and opens it again in the next part, so both render.

/// Room kept in each part for a closing and a reopening fence.
const FENCE_ROOM: usize = 8;

/// Splits `text` into parts of at most `limit` UTF-16 units each. Empty text gives no part.
pub fn split(text: &str, limit: usize) -> Vec<String> {
    let limit = limit.max(FENCE_ROOM * 2 + 1);
    let mut parts = Vec::new();
    let mut rest = text.trim_end();
    let mut reopen = false;
    while !rest.is_empty() {
        let prefix = if reopen { "```\n" } else { "" };
        let room = limit - FENCE_ROOM;
        if units(prefix) + units(rest) <= limit {
            parts.push(format!("{prefix}{rest}"));
            break;
        }
        let window = prefix_within(rest, room - units(prefix));
        let cut = best_cut(window);
        let (head, tail) = rest.split_at(cut);
        let mut part = format!("{prefix}{}", head.trim_end());
        // An odd number of fences leaves a block open across the cut.
        let open = (reopen as usize + head.matches("```").count()) % 2 == 1;
        if open {
            part.push_str("\n```");
        }
        parts.push(part);
        reopen = open;
        rest = tail.trim_start_matches([' ', '\n']);
    }
    parts
}

/// UTF-16 length.
pub fn units(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// The longest prefix of `s` (on a char boundary) within `max` units.
fn prefix_within(s: &str, max: usize) -> &str {
    let mut used = 0;
    for (i, c) in s.char_indices() {
        used += c.len_utf16();
        if used > max {
            return &s[..i];
        }
    }
    s
}

/// Where to cut `window` (a byte index > 0).
fn best_cut(window: &str) -> usize {
    // A cut in the first quarter would make a tiny part; cut inside a word instead.
    let floor = window.len() / 4;
    let after = |pat: &str| {
        window
            .rfind(pat)
            .map(|i| i + pat.len())
            .filter(|&i| i > floor)
    };
    after("\n\n")
        .or_else(|| after("\n"))
        .or_else(|| after(". "))
        .or_else(|| after("! "))
        .or_else(|| after("? "))
        .or_else(|| after(" "))
        .unwrap_or(window.len().max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_one_part_and_empty_text_none() {
        assert_eq!(split("hello", 4096), vec!["hello"]);
        assert!(split("", 4096).is_empty());
    }

    #[test]
    fn cuts_fall_on_paragraphs_then_lines_then_sentences_then_spaces() {
        let text = format!("{}\n\n{}", "a".repeat(30), "b".repeat(30));
        assert_eq!(split(&text, 40), vec!["a".repeat(30), "b".repeat(30)]);
        let text = format!("{} {}. {}", "x".repeat(10), "y".repeat(10), "z".repeat(20));
        assert_eq!(
            split(&text, 40),
            vec![
                format!("{} {}.", "x".repeat(10), "y".repeat(10)),
                "z".repeat(20)
            ]
        );
        let words = "word ".repeat(100);
        for part in split(&words, 50) {
            assert!(units(&part) <= 50);
            assert!(!part.starts_with(' ') && !part.ends_with(' '));
            assert!(part.split(' ').all(|w| w == "word"), "{part}");
        }
    }

    #[test]
    fn every_part_fits_and_nothing_is_lost() {
        let text: String = (0..5000).map(|i| format!("line {i} 🦀\n")).collect();
        let parts = split(&text, 4096);
        assert!(parts.len() > 1);
        assert!(parts.iter().all(|p| units(p) <= 4096));
        let joined: String = parts.join("\n");
        assert_eq!(
            joined.split_whitespace().collect::<Vec<_>>(),
            text.split_whitespace().collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_word_longer_than_the_limit_is_cut_inside() {
        let parts = split(&"x".repeat(100), 40);
        assert!(parts.iter().all(|p| units(p) <= 40));
        assert_eq!(parts.concat(), "x".repeat(100));
    }

    #[test]
    fn a_code_block_cut_in_two_is_closed_and_reopened() {
        let code = (0..40)
            .map(|i| format!("let x{i} = {i};\n"))
            .collect::<String>();
        let text = format!("Here:\n```\n{code}```\nDone.");
        let parts = split(&text, 200);
        assert!(parts.len() > 2);
        for part in &parts {
            assert!(units(part) <= 200);
            assert_eq!(part.matches("```").count() % 2, 0, "unbalanced: {part}");
        }
    }
}
