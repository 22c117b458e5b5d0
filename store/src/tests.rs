//! Store: nothing accepted is lost or answered twice; a store that cannot write says why.

use std::time::Duration;

use pincer_core::{PeerRef, Role, now_ms};

use super::*;

/// A database path in a directory of its own, removed with the value: the log of a busy
/// test can be hundreds of megabytes.
struct TempDb(PathBuf);

/// A fresh directory name of this test run (not created).
fn unique_dir() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("pincer-store-test-{}-{n}", std::process::id(),));
    // A crashed earlier run of the same pid may have left one behind.
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

impl TempDb {
    fn new() -> Self {
        Self(unique_dir().join("pincer.db"))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn inbound(upstream_id: &str, text: &str) -> Inbound {
    Inbound {
        channel: "http".into(),
        account: "http".into(),
        upstream_id: upstream_id.into(),
        peer: PeerRef {
            kind: "user".into(),
            id: "alice".into(),
        },
        thread: None,
        guild: None,
        team: None,
        agent: None,
        topic: None,
        text: text.into(),
        received_at_ms: now_ms(),
        sender: None,
        fingerprint: None,
        api: None,
    }
}

fn session(key: &str) -> SessionRow {
    SessionRow {
        key: key.into(),
        agent: "main".into(),
        channel: "http".into(),
        account: "http".into(),
        created_at_ms: 1,
        last_active_ms: 2,
        idle_ms: 3,
        max_age_ms: 0,
        context_from: 1,
        turns: 1,
        summary_seq: 0,
        bytes_per_1k_tokens: 0,
    }
}

fn entry(role: Role, text: &str, inbox: i64) -> TranscriptEntry {
    TranscriptEntry {
        role,
        content: text.into(),
        at_ms: now_ms(),
        thinking: None,
        inbox_id: Some(inbox),
        tool: None,
        summary_through: None,
        outcome: None,
    }
}

#[tokio::test]
async fn accept_is_unique_per_upstream_id() {
    let tmp = TempDb::new();
    let store = Store::new(tmp.path());
    let _writer = store.start_writer().expect("writer");
    let first = store.accept(inbound("u1", "hello")).await.expect("accept");
    assert!(!first.duplicate);
    assert_eq!(first.state, InboxState::Pending);
    let again = store
        .accept(inbound("u1", "hello again"))
        .await
        .expect("accept");
    assert!(again.duplicate);
    assert_eq!(again.id, first.id);
    let other = store.accept(inbound("u2", "x")).await.expect("accept");
    assert_ne!(other.id, first.id);
    assert!(store.health().is_writable());
}

#[tokio::test]
async fn a_turn_commits_once() {
    let tmp = TempDb::new();
    let store = Store::new(tmp.path());
    let _writer = store.start_writer().expect("writer");
    let a = store.accept(inbound("u1", "hi")).await.expect("accept");
    let turn = CommitTurn {
        inbox_id: Some(a.id),
        session: Some(session("s1")),
        entries: vec![
            entry(Role::User, "hi", a.id),
            entry(Role::Assistant, "hello!", a.id),
        ],
        reply: Some("hello!".into()),
        reply_extra: None,
    };
    let done = store.commit_turn(turn.clone()).await.expect("commit");
    assert_eq!(
        done,
        Committed {
            first_seq: Some(1),
            already_answered: None
        }
    );
    // A resumed turn that finishes later must not answer again.
    let mut late = turn.clone();
    late.reply = Some("second answer".into());
    let again = store.commit_turn(late).await.expect("commit");
    assert_eq!(again.already_answered.as_deref(), Some("hello!"));
    let transcript = store.transcript("s1").await.expect("transcript");
    assert_eq!(transcript.len(), 2);
    assert_eq!(transcript[1].1.content, "hello!");
    let dup = store.accept(inbound("u1", "hi")).await.expect("accept");
    assert_eq!(
        (dup.state, dup.reply.as_deref()),
        (InboxState::Answered, Some("hello!"))
    );
}

#[tokio::test]
async fn open_inbox_holds_everything_not_delivered() {
    let tmp = TempDb::new();
    let store = Store::new(tmp.path());
    let _writer = store.start_writer().expect("writer");
    let pending = store.accept(inbound("p", "1")).await.expect("accept");
    let answered = store.accept(inbound("a", "2")).await.expect("accept");
    let delivered = store.accept(inbound("d", "3")).await.expect("accept");
    for id in [answered.id, delivered.id] {
        store
            .commit_turn(CommitTurn {
                inbox_id: Some(id),
                session: Some(session("s")),
                entries: vec![],
                reply: Some("r".into()),
                reply_extra: None,
            })
            .await
            .expect("commit");
    }
    store.mark_delivered(delivered.id).await.expect("delivered");
    store.route(pending.id, "s").await.expect("route");
    let open = store.open_inbox().await.expect("read");
    let states: Vec<(i64, InboxState)> = open.iter().map(|e| (e.id, e.state)).collect();
    assert_eq!(
        states,
        vec![
            (pending.id, InboxState::Pending),
            (answered.id, InboxState::Answered)
        ]
    );
    assert_eq!(open[0].session_key.as_deref(), Some("s"));
    assert_eq!(open[0].inbound.text, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_accepts_are_all_written() {
    let tmp = TempDb::new();
    let store = Store::new(tmp.path());
    let _writer = store.start_writer().expect("writer");
    let mut tasks = Vec::new();
    for i in 0..2000 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.accept(inbound(&format!("m{i}"), "x")).await
        }));
    }
    for t in tasks {
        let accepted = t.await.expect("join").expect("accept");
        assert!(!accepted.duplicate);
    }
    assert_eq!(store.open_inbox().await.expect("read").len(), 2000);
}

#[tokio::test]
async fn a_new_writer_sees_what_the_old_one_wrote() {
    let tmp = TempDb::new();
    let path = tmp.path().to_path_buf();
    let store = Store::new(&path);
    let old = store.start_writer().expect("writer");
    store.accept(inbound("keep", "x")).await.expect("accept");
    store.save_session(session("s1")).await.expect("session");
    // Replace the writer, as a restarted store actor does.
    let _new = store.start_writer().expect("writer");
    tokio::task::spawn_blocking(move || old.join())
        .await
        .expect("join")
        .expect("old writer ended");
    let again = store.accept(inbound("keep", "x")).await.expect("accept");
    assert!(again.duplicate);
    assert_eq!(
        store.session("s1").await.expect("read"),
        Some(session("s1"))
    );
    // And a fresh handle on the same file (a process restart) too.
    let reopened = Store::new(&path);
    assert_eq!(reopened.sessions().await.expect("read").len(), 1);
}

#[tokio::test]
async fn a_store_that_cannot_write_says_why() {
    // /proc refuses new files even to root.
    let store = Store::new("/proc/pincer-no-such-dir/pincer.db");
    let _writer = store.start_writer().expect("writer");
    let reason = async {
        loop {
            if let Some(r) = store.health().refusal() {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let reason = tokio::time::timeout(Duration::from_secs(5), reason)
        .await
        .expect("reason");
    assert!(
        reason.contains("/proc/pincer-no-such-dir/pincer.db"),
        "{reason}"
    );
    let err = store.accept(inbound("x", "y")).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}

#[test]
fn old_inbox_payloads_still_decode() {
    // A payload written before `thread`, `guild`, `team` and `agent` existed.
    #[derive(serde::Serialize)]
    struct V1 {
        channel: String,
        account: String,
        upstream_id: String,
        peer: PeerRef,
        text: String,
        received_at_ms: u64,
    }
    let blob = rmp_serde::to_vec_named(&V1 {
        channel: "web".into(),
        account: "web".into(),
        upstream_id: "1".into(),
        peer: PeerRef {
            kind: "session".into(),
            id: "x".into(),
        },
        text: "hi".into(),
        received_at_ms: 5,
    })
    .expect("encode");
    let inbound: Inbound = rmp_serde::from_slice(&blob).expect("decode");
    assert_eq!((inbound.thread, inbound.agent), (None, None));
}

#[test]
fn health_tells_opening_from_refusing() {
    let health = StoreHealth::default();
    assert_eq!(health.reason().as_deref(), Some("store not opened yet"));
    assert_eq!(
        health.refusal(),
        None,
        "opening is not a refusal: callers should queue"
    );
    health.set_unwritable("disk full".into());
    assert_eq!(health.refusal().as_deref(), Some("disk full"));
    health.set_writable();
    assert_eq!((health.reason(), health.refusal()), (None, None));
}

/// The WAL header's checkpoint sequence number: SQLite adds one each time the log starts
/// over from its first frame.
fn wal_restarts(db: &Path) -> u32 {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    match std::fs::read(PathBuf::from(wal)) {
        Ok(bytes) if bytes.len() >= 16 => {
            u32::from_be_bytes([bytes[12], bytes[13], bytes[14], bytes[15]])
        }
        _ => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_steady_writes_the_log_still_starts_over() {
    let tmp = TempDb::new();
    let db = tmp.path().to_path_buf();
    let policy = writer::WalPolicy {
        every: Duration::from_millis(20),
        fold_frames: 16,
    };
    let store = Store::with_wal_policy(&db, policy);
    let _writer = store.start_writer().expect("writer");
    store.accept(inbound("first", "x")).await.expect("accept");
    let before = wal_restarts(&db);
    // Writers that never pause: the checkpointer alone never finds every frame copied
    // when a write begins.
    let until = std::time::Instant::now() + Duration::from_millis(1500);
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut n = 0;
                while std::time::Instant::now() < until {
                    store
                        .accept(inbound(&format!("w{w}-{n}"), "x"))
                        .await
                        .expect("accept");
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut written = 0;
    for w in writers {
        written += w.await.expect("writer task");
    }
    let restarts = wal_restarts(&db) - before;
    assert!(
        restarts >= 3,
        "{written} writes over 1.5 s, yet the log started over {restarts} times"
    );
}

#[tokio::test]
async fn one_failing_request_of_a_group_fails_alone() {
    let tmp = TempDb::new();
    let db = tmp.path().to_path_buf();
    let mut conn = writer::open(&db).expect("open");
    let (a, a_rx) = tokio::sync::oneshot::channel();
    let (bad, bad_rx) = tokio::sync::oneshot::channel();
    let (b, b_rx) = tokio::sync::oneshot::channel();
    let no_such_entry = CommitTurn {
        inbox_id: Some(4242),
        session: None,
        entries: vec![],
        reply: Some("x".into()),
        reply_extra: None,
    };
    let batch = vec![
        writer::Request::Accept(Box::new(inbound("a", "x")), a),
        writer::Request::CommitTurn(Box::new(no_such_entry), bad),
        writer::Request::Accept(Box::new(inbound("b", "x")), b),
    ];
    writer::commit_batch(&mut conn, batch, &db, &StoreHealth::default());
    assert!(matches!(
        bad_rx.await.expect("answered"),
        Err(StoreError::NotFound(_))
    ));
    for rx in [a_rx, b_rx] {
        let accepted = rx.await.expect("answered").expect("accepted");
        assert!(!accepted.duplicate);
    }
    drop(conn);
    // Both accepts committed: a redelivery is a duplicate.
    let store = Store::new(&db);
    let _writer = store.start_writer().expect("writer");
    for id in ["a", "b"] {
        assert!(
            store
                .accept(inbound(id, "x"))
                .await
                .expect("accept")
                .duplicate
        );
    }
}

/// A file's permission bits, in octal: `"600"`.
fn mode(path: &Path) -> String {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .map(|m| format!("{:o}", m.permissions().mode() & 0o7777))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn beside(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The store's files hold every transcript: only their owner may read them, whatever the
/// process's umask (here the usual 022) or the directory allows.
#[tokio::test]
async fn the_store_files_are_private() {
    let tmp = TempDb::new();
    let db = tmp.path().to_path_buf();
    let store = Store::new(&db);
    let _writer = store.start_writer().expect("writer");
    store.accept(inbound("u1", "secret")).await.expect("accept");
    // A reader beside the writer: the shared-memory file exists while both are open.
    assert_eq!(store.open_inbox().await.expect("read").len(), 1);
    for file in [db.clone(), beside(&db, "-wal"), beside(&db, "-shm")] {
        assert_eq!(mode(&file), "600", "{}", file.display());
    }
}

/// Files an earlier version left world-readable are made private when the store opens.
#[tokio::test]
async fn files_left_readable_are_made_private_at_open() {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = TempDb::new();
    let db = tmp.path().to_path_buf();
    {
        let conn = writer::open(&db).expect("open");
        conn.execute_batch("INSERT INTO probe (id, at) VALUES (1, 1)")
            .expect("write");
        // Leave the log and the shared-memory file behind, as a killed process does.
        std::mem::forget(conn);
    }
    let files = [db.clone(), beside(&db, "-wal"), beside(&db, "-shm")];
    for file in &files {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    let store = Store::new(&db);
    let _writer = store.start_writer().expect("writer");
    store.accept(inbound("u1", "x")).await.expect("accept");
    for file in &files {
        assert_eq!(mode(file), "600", "{}", file.display());
    }
}

/// A directory of its own under the temp dir, removed with the value.
struct TempDir(PathBuf);

impl TempDir {
    fn new(mode: u32) -> Self {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = unique_dir();
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).expect("chmod");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_directory_others_can_read_is_tightened_when_ours() {
    use files::DirAccess;
    let open = TempDir::new(0o755);
    assert!(matches!(
        files::dir_access(&open.0).expect("access"),
        DirAccess::Open {
            mode: 0o755,
            ours: true,
            ..
        }
    ));
    assert_eq!(
        files::tighten_dir(&open.0).expect("tighten"),
        DirAccess::Tightened { was: 0o755 }
    );
    assert_eq!(mode(&open.0), "700");
    assert_eq!(
        files::tighten_dir(&open.0).expect("again"),
        DirAccess::Private
    );
    // Execute-only for others lets them reach a name they know, not list or read: the
    // files are 0600, so it is left as the admin set it.
    let traversable = TempDir::new(0o711);
    assert_eq!(
        files::tighten_dir(&traversable.0).expect("tighten"),
        DirAccess::Private
    );
    assert_eq!(mode(&traversable.0), "711");
    // Shared by design, like /tmp: never tightened.
    let sticky = TempDir::new(0o1777);
    assert!(matches!(
        files::tighten_dir(&sticky.0).expect("tighten"),
        DirAccess::Open { mode: 0o1777, .. }
    ));
    assert_eq!(mode(&sticky.0), "1777");
}

#[test]
fn a_directory_of_another_user_is_left_as_it_is() {
    use files::DirAccess;
    let theirs = TempDir::new(0o755);
    // Only root can give a directory away; as anyone else there is nothing to test.
    if std::os::unix::fs::chown(&theirs.0, Some(65534), None).is_err() {
        return;
    }
    assert_eq!(
        files::tighten_dir(&theirs.0).expect("tighten"),
        DirAccess::Open {
            mode: 0o755,
            owner: 65534,
            ours: false
        }
    );
    assert_eq!(mode(&theirs.0), "755");
}

#[test]
fn one_store_one_lock_until_it_is_dropped() {
    let tmp = TempDb::new();
    let held = lock(tmp.path()).expect("first lock");
    assert_eq!(held.path(), lock_path(tmp.path()));
    assert_eq!(mode(held.path()), "600");
    // flock conflicts between two opens of the file, even in one process.
    let err = lock(tmp.path()).expect_err("second lock");
    let pid = std::process::id();
    assert!(
        matches!(&err, LockError::Held { store, pid: Some(p) } if store == tmp.path() && *p == pid),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&tmp.path().display().to_string()) && text.contains(&format!("pid {pid}")),
        "{text}"
    );
    drop(held);
    let again = lock(tmp.path()).expect("free again once dropped");
    assert_eq!(
        std::fs::read_to_string(again.path()).expect("pid file"),
        format!("{pid}\n")
    );
}

mod prune;

#[tokio::test]
async fn standing_approvals_are_listed_and_revoked() {
    let tmp = TempDb::new();
    let store = Store::new(tmp.path());
    let _writer = store.start_writer().expect("writer");
    for (agent, key) in [
        ("main", "/usr/bin/git"),
        ("main", "/bin/date"),
        ("ops", "/usr/bin/git"),
    ] {
        store.approve(agent, "exec", key).await.expect("write");
    }
    let all = store.approvals(None, 10).await.expect("list");
    let keys: Vec<(&str, &str)> = all
        .iter()
        .map(|a| (a.agent.as_str(), a.key.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("main", "/bin/date"),
            ("main", "/usr/bin/git"),
            ("ops", "/usr/bin/git")
        ]
    );
    assert!(all.iter().all(|a| a.tool == "exec" && a.at_ms > 0));
    assert_eq!(
        store
            .approvals(Some("ops".into()), 10)
            .await
            .expect("list")
            .len(),
        1
    );
    assert_eq!(store.approvals(None, 2).await.expect("list").len(), 2);
    assert!(
        store
            .revoke("main", "exec", "/usr/bin/git")
            .await
            .expect("revoke")
    );
    assert!(
        !store
            .revoke("main", "exec", "/usr/bin/git")
            .await
            .expect("again")
    );
    assert!(
        !store
            .approved("main", "exec", "/usr/bin/git")
            .await
            .expect("read")
    );
    assert!(
        store
            .approved("ops", "exec", "/usr/bin/git")
            .await
            .expect("read")
    );
}

#[tokio::test]
async fn a_standing_approval_is_kept_per_agent_tool_and_key() {
    let tmp = TempDb::new();
    let store = Store::new(tmp.path());
    let _writer = store.start_writer().expect("writer");
    store
        .approve("main", "exec", "/usr/bin/git")
        .await
        .expect("write");
    store
        .approve("main", "exec", "/usr/bin/git")
        .await
        .expect("again");
    assert!(
        store
            .approved("main", "exec", "/usr/bin/git")
            .await
            .expect("read")
    );
    assert!(
        !store
            .approved("other", "exec", "/usr/bin/git")
            .await
            .expect("read")
    );
    assert!(
        !store
            .approved("main", "exec", "/usr/bin/rm")
            .await
            .expect("read")
    );
}

#[tokio::test]
async fn a_summary_entry_becomes_the_sessions_summary_and_keeps_what_it_covers() {
    let tmp = TempDb::new();
    let store = Store::new(tmp.path());
    let _writer = store.start_writer().expect("writer");
    let row = session("s");
    let turn = |n: i64| CommitTurn {
        inbox_id: None,
        session: Some(row.clone()),
        entries: vec![
            entry(Role::User, &format!("q{n}"), n),
            entry(Role::Assistant, &format!("a{n}"), n),
        ],
        reply: None,
        reply_extra: None,
    };
    for n in 1..=3 {
        store.commit_turn(turn(n)).await.expect("commit");
    }
    let mut summary = entry(Role::System, "they asked q1 and q2", 0);
    summary.inbox_id = None;
    summary.summary_through = Some(4);
    let committed = store
        .commit_turn(CommitTurn {
            inbox_id: None,
            session: Some(row.clone()),
            entries: vec![summary.clone()],
            reply: None,
            reply_extra: None,
        })
        .await
        .expect("commit");
    assert_eq!(committed.first_seq, Some(7));
    let saved = store.session("s").await.expect("read").expect("row");
    assert_eq!(saved.summary_seq, 7);
    assert_eq!(
        store.transcript_entry("s", 7).await.expect("read"),
        Some(summary)
    );
    assert_eq!(
        store.transcript("s").await.expect("read").len(),
        7,
        "nothing covered is gone"
    );
    // Later commits save the row as given: a session carries its summary_seq in its row.
    store.commit_turn(turn(4)).await.expect("commit");
    assert_eq!(
        store
            .session("s")
            .await
            .expect("read")
            .expect("row")
            .summary_seq,
        0
    );
}

/// Hibernated rows: moved between states only from the state expected, ended in the store
/// past their time (a bounded batch, the earliest left reported), counted, and listed a
/// page at a time with filters.
#[tokio::test]
async fn sessions_rest_expire_and_page() {
    let tmp = TempDb::new();
    let store = Store::new(tmp.path());
    let _writer = store.start_writer().expect("writer");
    let now = 1_000_000;
    for i in 0..5u64 {
        let row = SessionRow {
            last_active_ms: now,
            idle_ms: 100 * (i + 1),
            account: if i == 4 {
                "other".into()
            } else {
                "http".into()
            },
            ..session(&format!("agent:main:http:http:user:{i}"))
        };
        store
            .save_session_as(row, Rest::Hibernated)
            .await
            .expect("save");
    }
    let side = SessionRow {
        agent: "side".into(),
        ..session("agent:side:http:http:user:x")
    };
    store.save_session(side).await.expect("live");
    assert_eq!(
        store.hibernated_of("http").await.expect("count"),
        (4, Some(now + 100))
    );
    // Only from the state expected.
    assert!(
        !store
            .set_rest("agent:side:http:http:user:x", Rest::Hibernated, Rest::Live)
            .await
            .expect("set")
    );
    assert_eq!(
        store.live_keys("http").await.expect("live"),
        vec!["agent:side:http:http:user:x".to_string()]
    );
    // Past the time of two of them, in batches of one: the other account is untouched.
    let (ended, next) = store
        .expire_hibernated("http", now + 250, 1)
        .await
        .expect("expire");
    assert_eq!((ended, next), (1, Some(now + 200)));
    let (ended, next) = store
        .expire_hibernated("http", now + 250, 10)
        .await
        .expect("expire");
    assert_eq!((ended, next), (1, Some(now + 300)));
    assert_eq!(store.hibernated_of("other").await.expect("count").0, 1);
    let rest = |key: &str| {
        let store = store.clone();
        let key = key.to_string();
        async move {
            store
                .session_at_rest(&key)
                .await
                .expect("row")
                .map(|(_, r)| r)
        }
    };
    assert_eq!(rest("agent:main:http:http:user:0").await, Some(Rest::Ended));
    assert_eq!(
        rest("agent:main:http:http:user:2").await,
        Some(Rest::Hibernated)
    );

    // Pages of two in key order, each after the last one's key; filters.
    let page = |filter: SessionFilter, after: Option<String>| {
        let store = store.clone();
        async move {
            store
                .sessions_page(filter, after, 2)
                .await
                .expect("page")
                .into_iter()
                .map(|(r, _)| r.key)
                .collect::<Vec<_>>()
        }
    };
    let first = page(SessionFilter::default(), None).await;
    assert_eq!(
        first,
        ["agent:main:http:http:user:0", "agent:main:http:http:user:1"]
    );
    let second = page(SessionFilter::default(), first.last().cloned()).await;
    assert_eq!(
        second,
        ["agent:main:http:http:user:2", "agent:main:http:http:user:3"]
    );
    let side = SessionFilter {
        agent: Some("side".into()),
        ..SessionFilter::default()
    };
    assert_eq!(page(side, None).await, ["agent:side:http:http:user:x"]);
    let hibernated = SessionFilter {
        state: Some(Rest::Hibernated),
        account: Some("http".into()),
        ..SessionFilter::default()
    };
    assert_eq!(
        page(hibernated, None).await,
        ["agent:main:http:http:user:2", "agent:main:http:http:user:3"]
    );
    let prefix = SessionFilter {
        prefix: Some("agent:main:http:http:user:4".into()),
        ..SessionFilter::default()
    };
    assert_eq!(page(prefix, None).await, ["agent:main:http:http:user:4"]);
}

/// The queries that run on a timer or per scrape find open inbox entries through their
/// index, never by reading every entry a long-lived inbox keeps.
#[test]
fn periodic_inbox_queries_use_the_open_index() {
    let db = TempDb::new();
    let conn = writer::open(db.path()).expect("open");
    for (name, query) in [("pending", PENDING_INBOX), ("count", COUNT_OPEN_INBOX)] {
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {query}"))
            .and_then(|mut s| {
                let unbound = vec![rusqlite::types::Null; s.parameter_count()];
                s.query_map(rusqlite::params_from_iter(unbound), |r| {
                    r.get::<_, String>(3)
                })
                .and_then(|rows| rows.collect())
            })
            .expect("plan");
        assert!(
            plan.iter().any(|step| step.contains("INDEX inbox_open")),
            "{name}: {plan:?}"
        );
    }
}
