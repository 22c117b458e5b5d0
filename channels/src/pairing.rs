//! DM pairing: under `dmPolicy = "pairing"` an unknown sender gets a one-time code and no
//! agent turn; the owner approves the code (`pincer pairing approve CODE`) and from then on
//! the sender is let in. Pairings live in the store, so they survive restarts.

use serde::{Deserialize, Serialize};

use pincer_core::now_ms;
use pincer_store::{Store, StoreError};

/// Letters of a code: no 0/O, 1/I/L, so a code read aloud or copied by hand is right.
const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";

/// Length of a code.
const CODE_LEN: usize = 8;

/// Store key prefix of pairings.
const PREFIX: &str = "pairing:";

/// One sender's pairing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pairing {
    /// Account the sender wrote to.
    #[serde(default)]
    pub account: String,
    /// The sender's upstream user id.
    pub user: String,
    /// A name to recognise them by (`@username` or first name).
    pub name: String,
    /// The one-time code.
    pub code: String,
    /// When the code was issued, ms since the Unix epoch.
    pub created_at_ms: u64,
    /// When it was approved.
    pub approved_at_ms: Option<u64>,
}

/// What to do with a DM from a sender under the pairing policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Approved: let the message in.
    Approved,
    /// Not yet: answer with this code (the same one for every message until approved).
    Pending(String),
}

/// Why an approval failed.
#[derive(Debug, thiserror::Error)]
pub enum PairingError {
    /// No pending pairing has that code.
    #[error("no pending pairing has code `{0}` (see `pincer pairing list`)")]
    UnknownCode(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The verdict for `user` of `account`, issuing a code on first contact.
pub async fn check(
    store: &Store,
    account: &str,
    user: &str,
    name: &str,
) -> Result<Verdict, StoreError> {
    let key = format!("{PREFIX}{user}");
    if let Some(found) = store.meta(account, &key).await?
        && let Ok(p) = serde_json::from_str::<Pairing>(&found)
    {
        return Ok(match p.approved_at_ms {
            Some(_) => Verdict::Approved,
            None => Verdict::Pending(p.code),
        });
    }
    let pairing = Pairing {
        account: account.to_string(),
        user: user.to_string(),
        name: name.to_string(),
        code: new_code(),
        created_at_ms: now_ms(),
        approved_at_ms: None,
    };
    let value = serde_json::to_string(&pairing).map_err(|e| StoreError::Decode(e.to_string()))?;
    store.put_meta(account, &key, Some(value)).await?;
    tracing::info!(account, user, "New DM sender; pairing code issued.");
    Ok(Verdict::Pending(pairing.code))
}

/// Every pairing, pending and approved, by account.
pub async fn list(store: &Store) -> Result<Vec<Pairing>, StoreError> {
    let rows = store.meta_with_prefix(None, PREFIX).await?;
    Ok(rows
        .into_iter()
        .filter_map(|(account, _, value)| {
            let mut p: Pairing = serde_json::from_str(&value).ok()?;
            p.account = account;
            Some(p)
        })
        .collect())
}

/// Approves the pending pairing with `code` (case-insensitive).
pub async fn approve(store: &Store, code: &str) -> Result<Pairing, PairingError> {
    let wanted = code.trim().to_ascii_uppercase();
    let found = list(store)
        .await?
        .into_iter()
        .find(|p| p.approved_at_ms.is_none() && p.code == wanted)
        .ok_or_else(|| PairingError::UnknownCode(code.trim().to_string()))?;
    let approved = Pairing {
        approved_at_ms: Some(now_ms()),
        ..found
    };
    let value = serde_json::to_string(&approved).map_err(|e| StoreError::Decode(e.to_string()))?;
    store
        .put_meta(
            &approved.account,
            &format!("{PREFIX}{}", approved.user),
            Some(value),
        )
        .await?;
    tracing::info!(account = %approved.account, user = %approved.user, "Pairing approved.");
    Ok(approved)
}

/// A code from the OS random source (a v4 UUID's bytes): it is a credential, so not from
/// a fast, predictable generator.
fn new_code() -> String {
    uuid::Uuid::new_v4()
        .as_bytes()
        .iter()
        .take(CODE_LEN)
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_use_only_unambiguous_letters() {
        for _ in 0..100 {
            let code = new_code();
            assert_eq!(code.len(), CODE_LEN);
            assert!(code.bytes().all(|b| ALPHABET.contains(&b)), "{code}");
        }
    }
}
