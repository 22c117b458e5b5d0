//! The gateway token's rule: at least [`MIN_TOKEN_CHARS`] characters once trimmed.
//!
//! An empty token is the common accident (`PINCER_GATEWAY_TOKEN=${TOKEN}` with `TOKEN`
//! unset in a compose or systemd file, `token = ""` left in a template); a short one is
//! guessable. Neither may ever be in force: the gateway refuses to start with one, a live
//! edit to one is rejected, and a ref that resolves to one leaves the token in use.
//! Wherever the value came from, the check is [`token_problem`].

/// The fewest characters a gateway token may have, once surrounding whitespace is
/// trimmed. The generated token has 68.
pub const MIN_TOKEN_CHARS: usize = 16;

/// What is wrong with `token` as the gateway token, if anything: `is empty; a gateway
/// token needs at least 16 characters once trimmed`. Never quotes the value.
pub fn token_problem(token: &str) -> Option<String> {
    let trimmed = token.trim();
    let count = trimmed.chars().count();
    let what = if token.is_empty() {
        "is empty".to_string()
    } else if trimmed.is_empty() {
        "is blank (whitespace only)".to_string()
    } else if count < MIN_TOKEN_CHARS {
        format!("has {count} characters")
    } else {
        return None;
    };
    Some(format!(
        "{what}; a gateway token needs at least {MIN_TOKEN_CHARS} characters once trimmed"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_blank_and_short_tokens_are_named_never_quoted() {
        assert_eq!(
            token_problem("").as_deref(),
            Some("is empty; a gateway token needs at least 16 characters once trimmed")
        );
        assert!(token_problem(" \t\n ").is_some_and(|p| p.starts_with("is blank")));
        let short = token_problem("  secret-token  ").expect("short");
        assert!(short.starts_with("has 12 characters"), "{short}");
        assert!(!short.contains("secret"), "{short}");
        assert_eq!(token_problem("0123456789abcdef"), None);
        assert_eq!(token_problem(" 0123456789abcdef\n"), None);
    }
}
