//! The store's safety on the real binary: every session gets its own actor and transcript
//! whatever its key holds, the store's files are private, one store serves one gateway,
//! and old answered rows are pruned.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Gw, TempDir, free_port, http_session, run_cli, until};

/// A path's permission bits, in octal: `"600"`.
fn mode(path: &Path) -> String {
    std::fs::metadata(path)
        .map(|m| format!("{:o}", m.permissions().mode() & 0o7777))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// The database and the files SQLite keeps beside it while it runs.
fn store_files(home: &Path) -> [PathBuf; 3] {
    ["pincer.db", "pincer.db-wal", "pincer.db-shm"].map(|f| home.join(f))
}

/// Users whose ids differ only in a control character are two sessions: two actors, two
/// transcripts (once, the second user's messages went to the first one's actor, which
/// wrote them into the first one's transcript).
#[tokio::test]
async fn users_differing_in_a_control_character_get_their_own_sessions() {
    let home = TempDir::new();
    let gw = Gw::start(home.path(), None).await;
    let (one, two) = ("victim\u{1}", "victim\u{2}");
    gw.say(one, "one: first").await;
    gw.say(two, "two: first").await;
    gw.say(one, "one: second").await;

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
        let status = gw.say(user, "/session status").await;
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

/// A home that already existed open to other users (a container volume, a package's
/// directory) is made 0700 at start, and the store's files are created 0600 whatever the
/// umask (the tests run with the usual 022): another local user reads no transcript.
#[tokio::test]
async fn the_store_and_its_home_are_private() {
    let home = TempDir::new();
    chmod(home.path(), 0o755);
    let gw = Gw::start(home.path(), None).await;
    gw.say("alice", "something private").await;
    assert_eq!(mode(home.path()), "700");
    for file in store_files(home.path()) {
        assert_eq!(mode(&file), "600", "{}", file.display());
    }
}

/// Store files an earlier version left readable are made private at start.
#[tokio::test]
async fn store_files_left_readable_are_made_private_at_start() {
    let home = TempDir::new();
    let mut gw = Gw::start(home.path(), None).await;
    gw.say("alice", "hello").await;
    gw.signal("KILL");
    gw.wait_exit(Duration::from_secs(5)).expect("killed");
    let files = store_files(home.path());
    for file in &files {
        chmod(file, 0o644);
    }
    let gw = Gw::start(home.path(), None).await;
    gw.say("alice", "again").await;
    for file in &files {
        assert_eq!(mode(file), "600", "{}", file.display());
    }
}

/// `pincer doctor` names a home and store files other users can read.
#[test]
fn doctor_reports_a_home_and_store_files_others_can_read() {
    let home = TempDir::new();
    chmod(home.path(), 0o755);
    let db = home.path().join("pincer.db");
    std::fs::write(&db, b"").expect("db");
    chmod(&db, 0o644);
    let (code, out, _) = run_cli(home.path(), &["doctor"], Some(free_port()));
    assert_eq!(code, 1, "{out}");
    let home_line = format!("[FAIL] home {} ", home.path().display());
    assert!(out.contains(&home_line) && out.contains("0755"), "{out}");
    assert!(
        out.contains(&format!("[FAIL] store file {} ", db.display())) && out.contains("0644"),
        "{out}"
    );

    chmod(home.path(), 0o700);
    chmod(&db, 0o600);
    let (code, out, _) = run_cli(home.path(), &["doctor"], Some(free_port()));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("[ok  ] home {} is private", home.path().display())),
        "{out}"
    );
}

/// A home owned by another user is not ours to change: the gateway leaves it and warns.
#[tokio::test]
async fn a_home_of_another_user_is_warned_about() {
    let home = TempDir::new();
    chmod(home.path(), 0o777);
    // Only root can give a directory away (and still write in it); as anyone else there is
    // nothing to test.
    if std::os::unix::fs::chown(home.path(), Some(65534), None).is_err() {
        return;
    }
    let gw = Gw::start(home.path(), None).await;
    assert_eq!(mode(home.path()), "777");
    let log = gw.log();
    assert!(
        log.contains("other users can read or write")
            && log.contains(&home.path().display().to_string()),
        "{log}"
    );
}

/// One store, one gateway: a second gateway on the same store exits 2 before binding its
/// port, naming the store and the pid that holds it. The lock dies with its process, so a
/// SIGKILLed gateway does not block its successor.
#[tokio::test]
async fn a_second_gateway_on_the_same_store_exits_2_naming_the_holder() {
    let home = TempDir::new();
    let mut first = Gw::start(home.path(), None).await;
    let port = free_port();
    let mut second = Gw::spawn(home.path(), None, port);
    let status = second.wait_exit(Duration::from_secs(10));
    let log = second.log();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(2),
        "the second gateway must exit 2; log:\n{log}"
    );
    let db = home.path().join("pincer.db");
    assert!(
        log.contains(&db.display().to_string()) && log.contains(&format!("pid {}", first.pid())),
        "{log}"
    );
    // It never bound its port.
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
    // The first one is untouched.
    first.say("alice", "still here").await;

    first.signal("KILL");
    first.wait_exit(Duration::from_secs(5)).expect("killed");
    let next = Gw::start(home.path(), None).await;
    next.say("alice", "after the kill").await;
    let transcript = next.transcript(&http_session("alice")).await;
    assert_eq!(transcript.len(), 4, "{transcript:?}");
}

/// Writes into `db` (with the store's own writer) `delivered` answered and delivered
/// messages and one pending message, all received and answered an hour ago; the ids of
/// (delivered, pending).
async fn seed_old_inbox(db: &Path, delivered: usize) -> (Vec<i64>, i64) {
    use pincer_core::{Inbound, PeerRef, Role, TranscriptEntry};
    use pincer_store::{CommitTurn, SessionRow, Store};
    let hour_ago = pincer_core::now_ms() - 3_600_000;
    let inbound = |n: usize, text: &str| Inbound {
        channel: "http".into(),
        account: "http".into(),
        upstream_id: format!("old-{n}"),
        peer: PeerRef {
            kind: "user".into(),
            id: "old".into(),
        },
        thread: None,
        guild: None,
        team: None,
        agent: None,
        topic: None,
        text: text.into(),
        received_at_ms: hour_ago,
        sender: None,
        fingerprint: None,
        api: None,
    };
    let store = Store::new(db);
    let writer = store.start_writer().expect("writer");
    let mut ids = Vec::new();
    for n in 0..delivered {
        let id = store.accept(inbound(n, "hello")).await.expect("accept").id;
        let entry = |role, content: &str| TranscriptEntry {
            role,
            content: content.into(),
            at_ms: hour_ago,
            thinking: None,
            inbox_id: Some(id),
            tool: None,
            summary_through: None,
            outcome: None,
        };
        store
            .commit_turn(CommitTurn {
                inbox_id: Some(id),
                session: Some(SessionRow {
                    key: http_session("old"),
                    agent: "main".into(),
                    channel: "http".into(),
                    account: "http".into(),
                    created_at_ms: hour_ago,
                    last_active_ms: hour_ago,
                    idle_ms: 86_400_000,
                    max_age_ms: 0,
                    context_from: 1,
                    turns: n as u64 + 1,
                    summary_seq: 0,
                    bytes_per_1k_tokens: 0,
                }),
                entries: vec![
                    entry(Role::User, "hello"),
                    entry(Role::Assistant, "echo: hello"),
                ],
                reply: Some("echo: hello".into()),
                reply_extra: None,
            })
            .await
            .expect("commit");
        store.mark_delivered(id).await.expect("delivered");
        ids.push(id);
    }
    let pending = store
        .accept(inbound(delivered, "keep me"))
        .await
        .expect("accept")
        .id;
    store.stop_writer();
    tokio::task::spawn_blocking(move || writer.join())
        .await
        .expect("join")
        .expect("writer ended");
    let conn = rusqlite::Connection::open(db).expect("open");
    conn.execute(
        "UPDATE inbox SET answered_at = ?1 WHERE answered_at IS NOT NULL",
        [hour_ago as i64],
    )
    .expect("age the rows");
    (ids, pending)
}

/// The inbox as the store holds it: (id, state).
fn inbox_rows(db: &Path) -> Vec<(i64, String)> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open");
    let mut stmt = conn
        .prepare("SELECT id, state FROM inbox ORDER BY id")
        .expect("prepare");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

/// A gateway prunes answered and delivered inbox rows older than `store.retention.inbox`
/// soon after it starts, and never a message still waiting for its answer.
#[tokio::test]
async fn old_delivered_inbox_rows_are_pruned_and_pending_ones_kept() {
    let home = TempDir::new();
    let db = home.path().join("pincer.db");
    let (delivered, pending) = seed_old_inbox(&db, 3).await;
    assert_eq!(inbox_rows(&db).len(), delivered.len() + 1);
    // The pending message is resumed at start, and its turn takes minutes: it stays
    // pending while the gateway prunes.
    let config = "[store.retention]\ninbox = \"1s\"\n\n\
                  [providers.echo]\nchunkSize = 1\nchunkDelayMs = 60000\n";
    let gw = Gw::start(home.path(), Some(config)).await;
    let left = until(
        "the old delivered rows to be pruned",
        &gw,
        Duration::from_secs(20),
        async || {
            let rows = inbox_rows(&db);
            if rows.len() == 1 {
                Ok(rows)
            } else {
                Err(format!("{rows:?}"))
            }
        },
    )
    .await;
    assert_eq!(left, vec![(pending, "pending".to_string())]);
    // The transcript is kept by default.
    assert_eq!(gw.transcript(&http_session("old")).await.len(), 6);
}
