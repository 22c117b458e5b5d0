//! Retention: only what the rules allow goes, a batch at a time, and what stays still works.

use super::*;

const DAY: u64 = 86_400_000;
const DAYS_7: Option<Duration> = Some(Duration::from_secs(7 * 86_400));

/// A connection beside the writer, to age rows as if written long ago.
fn side(db: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(db).expect("open");
    conn.busy_timeout(Duration::from_secs(5)).expect("busy");
    conn
}

/// Accepts a message, then answers it and marks it delivered as `how` says, and dates it:
/// received `received_days` ago, answered `answered_days` ago.
async fn message(
    store: &Store,
    id: &str,
    how: InboxState,
    received_days: u64,
    answered_days: u64,
) -> i64 {
    let row = store.accept(inbound(id, "x")).await.expect("accept").id;
    if how != InboxState::Pending {
        store
            .commit_turn(CommitTurn {
                inbox_id: Some(row),
                session: None,
                entries: vec![],
                reply: Some("r".into()),
                reply_extra: None,
            })
            .await
            .expect("answer");
    }
    if how == InboxState::Delivered {
        store.mark_delivered(row).await.expect("delivered");
    }
    let now = now_ms();
    side(store.path())
        .execute(
            "UPDATE inbox SET received_at = ?1,
                 answered_at = CASE WHEN answered_at IS NULL THEN NULL ELSE ?2 END
             WHERE id = ?3",
            rusqlite::params![
                (now - received_days * DAY) as i64,
                (now - answered_days * DAY) as i64,
                row
            ],
        )
        .expect("age");
    row
}

fn inbox_ids(db: &Path) -> Vec<i64> {
    let conn = side(db);
    let mut stmt = conn
        .prepare("SELECT id FROM inbox ORDER BY id")
        .expect("prepare");
    stmt.query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

/// Runs `pass` to its end; what each batch removed.
async fn run(store: &Store, mut pass: PrunePass) -> (PrunePass, Vec<Pruned>) {
    let mut batches = Vec::new();
    while !pass.is_done() {
        let before = pass.totals();
        pass = store.prune(pass).await.expect("prune");
        let after = pass.totals();
        batches.push(Pruned {
            inbox: after.inbox - before.inbox,
            transcript: after.transcript - before.transcript,
            batches: 1,
        });
        assert!(batches.len() < 100, "a pass that never ends");
    }
    (pass, batches)
}

#[tokio::test]
async fn only_delivered_rows_answered_before_the_cutoff_go() {
    let tmp = TempDb::new();
    let store = Store::new(tmp.path());
    let _writer = store.start_writer().expect("writer");
    // In the order they came in, as ids are.
    let old_delivered = message(&store, "a", InboxState::Delivered, 10, 10).await;
    let old_answered = message(&store, "b", InboxState::Answered, 10, 10).await;
    let old_pending = message(&store, "c", InboxState::Pending, 10, 0).await;
    let answered_late = message(&store, "d", InboxState::Delivered, 9, 1).await;
    let old_delivered_too = message(&store, "e", InboxState::Delivered, 8, 8).await;
    let recent = message(&store, "f", InboxState::Delivered, 1, 1).await;

    let (pass, _) = run(&store, PrunePass::new(now_ms(), DAYS_7, None)).await;
    assert_eq!(pass.totals().inbox, 2);
    assert_eq!(
        inbox_ids(store.path()),
        vec![old_answered, old_pending, answered_late, recent]
    );
    let _ = (old_delivered, old_delivered_too);
    // What is kept still works: the pending one is resumed, the answered one sent.
    assert_eq!(store.open_inbox().await.expect("read").len(), 2);
    // Keeping for ever removes nothing and takes no batch.
    let (pass, batches) = run(&store, PrunePass::new(now_ms(), None, None)).await;
    assert_eq!((pass.totals(), batches.len()), (Pruned::default(), 0));
}

/// Writes `n` delivered rows answered 30 days ago, straight into the database.
fn insert_old_delivered(conn: &mut rusqlite::Connection, n: usize) {
    let long_ago = (now_ms() - 30 * DAY) as i64;
    let tx = conn.transaction().expect("tx");
    for n in 0..n {
        tx.execute(
            "INSERT INTO inbox (channel, account, upstream_id, payload, state, reply,
                                received_at, answered_at)
             VALUES ('http', 'http', ?1, x'80', 'delivered', 'r', ?2, ?2)",
            rusqlite::params![format!("old-{n}"), long_ago],
        )
        .expect("insert");
    }
    tx.commit().expect("commit");
}

#[tokio::test]
async fn a_pass_goes_in_batches_of_at_most_its_size() {
    let tmp = TempDb::new();
    let store = Store::new(tmp.path());
    let _writer = store.start_writer().expect("writer");
    store
        .save_session(session("s"))
        .await
        .expect("open the store");
    insert_old_delivered(&mut side(store.path()), 1200);
    store.accept(inbound("recent", "x")).await.expect("accept");
    let (pass, batches) = run(&store, PrunePass::new(now_ms(), DAYS_7, None).batch(500)).await;
    let removed: Vec<u64> = batches.iter().map(|b| b.inbox).collect();
    // The walk ends at the first row received after the cutoff.
    assert_eq!(removed, vec![500, 500, 200]);
    assert_eq!(pass.totals().batches, 3);
    assert_eq!(inbox_ids(store.path()).len(), 1);
}

/// A transcript entry `days` old.
fn old_entry(days: u64, n: i64) -> TranscriptEntry {
    TranscriptEntry {
        role: Role::User,
        content: format!("entry {n}"),
        at_ms: now_ms() - days * DAY,
        thinking: None,
        inbox_id: None,
        tool: None,
        summary_through: None,
        outcome: None,
    }
}

/// Writes session `key` with `entries` (seq 1..) and its row as `row` says.
async fn transcript_of(store: &Store, key: &str, entries: Vec<TranscriptEntry>, row: SessionRow) {
    store
        .commit_turn(CommitTurn {
            inbox_id: None,
            session: Some(SessionRow {
                key: key.into(),
                ..row
            }),
            entries,
            reply: None,
            reply_extra: None,
        })
        .await
        .expect("commit");
}

async fn seqs(store: &Store, key: &str) -> Vec<i64> {
    let t = store.transcript(key).await.expect("transcript");
    t.into_iter().map(|(seq, _)| seq).collect()
}

#[tokio::test]
async fn transcripts_lose_only_old_entries_no_context_uses() {
    let tmp = TempDb::new();
    let store = Store::new(tmp.path());
    let _writer = store.start_writer().expect("writer");
    let now = now_ms();
    let live = SessionRow {
        created_at_ms: now - DAY,
        last_active_ms: now,
        idle_ms: DAY,
        max_age_ms: 0,
        ..session("")
    };
    // A live session that was reset: entries 1..4 are an old context, 5..8 the current one.
    let reset = SessionRow {
        context_from: 5,
        ..live.clone()
    };
    transcript_of(
        &store,
        "a-reset",
        (1..=8).map(|n| old_entry(30, n)).collect(),
        reset,
    )
    .await;
    // A session idle for longer than its limit: its next message starts a new context.
    let ended = SessionRow {
        last_active_ms: now - 30 * DAY,
        context_from: 1,
        ..live.clone()
    };
    transcript_of(
        &store,
        "b-ended",
        (1..=4).map(|n| old_entry(30, n)).collect(),
        ended,
    )
    .await;
    // Reset just now (`/new`): every entry is before the context, the last one stays.
    let renewed = SessionRow {
        context_from: 7,
        ..live.clone()
    };
    transcript_of(
        &store,
        "c-new",
        (1..=6).map(|n| old_entry(30, n)).collect(),
        renewed,
    )
    .await;
    // Out of context but young.
    let young = SessionRow {
        context_from: 3,
        ..live.clone()
    };
    let entries = vec![old_entry(1, 1), old_entry(1, 2), old_entry(1, 3)];
    transcript_of(&store, "d-young", entries, young).await;
    // A live context, however old, is what the model is shown.
    let old_live = SessionRow {
        context_from: 1,
        ..live.clone()
    };
    transcript_of(
        &store,
        "e-live",
        (1..=3).map(|n| old_entry(30, n)).collect(),
        old_live,
    )
    .await;

    // Kept for ever by default.
    let (pass, _) = run(&store, PrunePass::new(now_ms(), DAYS_7, None)).await;
    assert_eq!(pass.totals().transcript, 0);

    let pass = PrunePass::new(now_ms(), None, DAYS_7).batch(3);
    let (pass, batches) = run(&store, pass).await;
    assert!(batches.iter().all(|b| b.transcript <= 3), "{batches:?}");
    assert_eq!(pass.totals().transcript, 4 + 3 + 5);
    assert_eq!(seqs(&store, "a-reset").await, vec![5, 6, 7, 8]);
    assert_eq!(seqs(&store, "b-ended").await, vec![4]);
    assert_eq!(seqs(&store, "c-new").await, vec![6]);
    assert_eq!(seqs(&store, "d-young").await, vec![1, 2, 3]);
    assert_eq!(seqs(&store, "e-live").await, vec![1, 2, 3]);
    // Session rows stay, and a session goes on after its last entry.
    assert_eq!(store.sessions().await.expect("sessions").len(), 5);
    let next = store
        .commit_turn(CommitTurn {
            inbox_id: None,
            session: Some(SessionRow {
                key: "c-new".into(),
                ..live.clone()
            }),
            entries: vec![old_entry(0, 7)],
            reply: None,
            reply_extra: None,
        })
        .await
        .expect("commit");
    assert_eq!(next.first_seq, Some(7));
}

/// Batches share the writer with live traffic: every write made while a pass runs lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_go_on_while_a_pass_runs() {
    let tmp = TempDb::new();
    let store = Store::new(tmp.path());
    let _writer = store.start_writer().expect("writer");
    for n in 0..300 {
        message(&store, &format!("old-{n}"), InboxState::Delivered, 30, 30).await;
    }
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for n in 0..100 {
                    store
                        .accept(inbound(&format!("new-{w}-{n}"), "x"))
                        .await
                        .expect("accept");
                }
            })
        })
        .collect();
    let (pass, _) = run(&store, PrunePass::new(now_ms(), DAYS_7, DAYS_7).batch(50)).await;
    for w in writers {
        w.await.expect("writer task");
    }
    assert_eq!(pass.totals().inbox, 300);
    assert_eq!(store.open_inbox().await.expect("read").len(), 400);
}

/// A write that comes while a batch runs ends it at its next look (every 32 rows removed):
/// what is done commits, and the pass goes on from there.
#[test]
fn a_batch_ends_early_for_a_waiting_write() {
    let tmp = TempDb::new();
    let mut conn = writer::open(tmp.path()).expect("open");
    insert_old_delivered(&mut conn, 100);
    let mut pass = PrunePass::new(now_ms(), DAYS_7, None);
    crate::prune::run_batch(&mut conn, &mut pass, &|| true).expect("batch");
    assert_eq!(pass.totals().inbox, 32);
    assert!(!pass.is_done());
    crate::prune::run_batch(&mut conn, &mut pass, &|| false).expect("batch");
    assert_eq!(pass.totals().inbox, 100);
    assert!(pass.is_done());
    assert!(inbox_ids(tmp.path()).is_empty());
}
