//! The store's safety on the real binary: every session gets its own actor and transcript
//! whatever its key holds, the store's files are private, one store serves one gateway,
//! and old answered rows are pruned.

mod common;

use common::{Gw, TempDir, http_session};

async fn say(gw: &Gw, user: &str, text: &str) -> String {
    let (status, body) = gw.chat(user, text, None).await.expect("chat");
    assert_eq!(status, 200, "{body}");
    body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Users whose ids differ only in a control character are two sessions: two actors, two
/// transcripts (once, the second user's messages went to the first one's actor, which
/// wrote them into the first one's transcript).
#[tokio::test]
async fn users_differing_in_a_control_character_get_their_own_sessions() {
    let home = TempDir::new();
    let gw = Gw::start(home.path(), None).await;
    let (one, two) = ("victim\u{1}", "victim\u{2}");
    say(&gw, one, "one: first").await;
    say(&gw, two, "two: first").await;
    say(&gw, one, "one: second").await;

    let (_, body) = gw.get("/admin/sessions").await;
    let mut keys: Vec<String> = body["sessions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["key"].as_str().map(str::to_string))
        .collect();
    keys.sort();
    assert_eq!(keys, vec![http_session(one), http_session(two)], "{body}");

    for (user, own, turns) in [(one, "one: ", 2), (two, "two: ", 1)] {
        let transcript = gw.transcript(&http_session(user)).await;
        let users: Vec<&str> = transcript
            .iter()
            .filter(|e| e["role"] == "user")
            .filter_map(|e| e["content"].as_str())
            .collect();
        assert_eq!(users.len(), turns, "{user:?}: {transcript:?}");
        assert!(
            users.iter().all(|t| t.starts_with(own)),
            "{user:?} holds another user's messages: {users:?}"
        );
        let status = say(&gw, user, "/session status").await;
        assert!(
            status.starts_with(&format!("Session {}\n", http_session(user))),
            "{user:?}: {status}"
        );
        assert!(status.contains(&format!("turns: {turns}")), "{status}");
    }
    // Both actors run, each under its own id.
    let running = gw.running_paths().await;
    let sessions = running.iter().filter(|p| p.contains("/session:")).count();
    assert_eq!(sessions, 2, "{running:?}");
}
