//! Plays a [`Plan`] on its own task, pacing events into a channel the transport drains.
//! Pauses end early when the transport goes away or when every socket is killed.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use super::plan::{Out, Plan, Step, event_type};
use super::state::Shared;

/// Starts playing `plan`; the receiver yields its output and ends with it.
pub(super) fn spawn(shared: Arc<Shared>, plan: Plan) -> mpsc::Receiver<Out> {
    let (tx, rx) = mpsc::channel(64);
    let kill = shared.kill_watch();
    tokio::spawn(play(shared, plan, tx, kill));
    rx
}

async fn play(
    shared: Arc<Shared>,
    plan: Plan,
    tx: mpsc::Sender<Out>,
    mut kill: watch::Receiver<u64>,
) {
    for step in plan.steps {
        match step {
            Step::Emit(out) => {
                // Stored before it is sent: a client that continues from this id right
                // after reading `response.completed` must find it.
                if plan.store
                    && let Out::Event(event) = &out
                    && event_type(event) == Some("response.completed")
                {
                    shared.store_response(&plan.response_id);
                }
                if tx.send(out).await.is_err() {
                    return abandoned(&shared);
                }
            }
            Step::Sleep(pause) => tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = tx.closed() => return abandoned(&shared),
                _ = kill.changed() => {
                    let _ = tx.send(Out::Cut(1006)).await;
                    return;
                }
            },
            Step::Hang => tokio::select! {
                () = tx.closed() => return abandoned(&shared),
                _ = kill.changed() => {
                    let _ = tx.send(Out::Cut(1006)).await;
                    return;
                }
            },
        }
    }
}

/// The client went away before the response ended.
fn abandoned(shared: &Shared) {
    super::state::bump(&shared.counters.abandoned);
}
