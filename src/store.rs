//! The `store` actor: owns the store's writer thread, so that the writer's life is
//! supervised like everything else, and prunes what `store.retention` no longer keeps.
//! Every other part writes and reads through [`pincer_store::Store`] directly; a restarted
//! actor starts a new writer that waits for the old one to finish its last group.
//!
//! Retention runs as a pass shortly after start and then every [`PRUNE_EVERY`], reading
//! the retention in force at each pass (so a reload applies at the next one). A pass is a
//! task of the actor's scope that asks the writer for one batch at a time
//! ([`pincer_store::PrunePass`]: at most 500 rows in one short transaction, run when no
//! other write waits, ended early by one that comes) and pauses between batches
//! ([`pincer_store::prune_pause`]: at least 200 ms and ten times the batch), so live
//! writes keep the writer.

use std::time::{Duration, Instant};

use pincer_actors::{Scope, TaskHandle, Timer};
use pincer_config::Keep;
use pincer_config::live::View;
use pincer_store::{PrunePass, Store};
use ractor::{Actor, ActorProcessingErr, ActorRef};

/// How often the store actor looks at its writer thread.
const WRITER_CHECK: Duration = Duration::from_millis(500);

/// The first retention pass, after start: once the start-up work (resumed messages,
/// channels connecting) has had the writer first.
const PRUNE_FIRST: Duration = Duration::from_secs(1);

/// Retention passes after the first.
pub const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// What the store actor works with.
#[derive(Debug, Clone)]
pub struct StoreCtx {
    /// The store whose writer it owns.
    pub store: Store,
    /// The config in force: `store.retention`.
    pub config: View,
}

/// Messages of the store actor. Other actors use [`Store`] directly; the actor exists so
/// that the writer's life is supervised like everything else.
#[derive(Debug)]
pub enum StoreMsg {
    /// Look whether the writer thread is still alive.
    Check,
    /// Start a retention pass (unless one still runs).
    Prune,
}

/// Owns the writer thread; see the [module docs](self).
#[derive(Debug, Clone, Copy)]
pub struct StoreActor;

/// The store actor's state.
#[derive(Debug)]
pub struct StoreState {
    ctx: StoreCtx,
    scope: Scope,
    writer: Option<std::thread::JoinHandle<()>>,
    check: Timer,
    prune: Timer,
    /// The retention pass running, if any.
    pass: Option<TaskHandle>,
}

impl Actor for StoreActor {
    type Msg = StoreMsg;
    type State = StoreState;
    type Arguments = (StoreCtx, Scope);

    async fn pre_start(
        &self,
        myself: ActorRef<StoreMsg>,
        (ctx, scope): (StoreCtx, Scope),
    ) -> Result<StoreState, ActorProcessingErr> {
        let writer = ctx.store.start_writer()?;
        let check = Timer::new(&scope, myself.clone(), || StoreMsg::Check);
        check.arm(WRITER_CHECK);
        let prune = Timer::new(&scope, myself, || StoreMsg::Prune);
        prune.arm(PRUNE_FIRST);
        Ok(StoreState {
            ctx,
            scope,
            writer: Some(writer),
            check,
            prune,
            pass: None,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<StoreMsg>,
        msg: StoreMsg,
        state: &mut StoreState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            StoreMsg::Check => {
                // A writer that ended on its own (it crashed) fails this actor, so the
                // supervisor starts a new one.
                if state.writer.as_ref().is_none_or(|w| w.is_finished()) {
                    let why = state
                        .ctx
                        .store
                        .health()
                        .reason()
                        .unwrap_or_else(|| "the writer thread ended".into());
                    return Err(format!("store writer stopped: {why}").into());
                }
                state.check.arm(WRITER_CHECK);
            }
            StoreMsg::Prune => {
                state.prune.arm(PRUNE_EVERY);
                if state.pass.as_ref().is_some_and(|p| !p.is_finished()) {
                    return Ok(()); // a long pass is still going
                }
                let retention = state.ctx.config.current().store.retention;
                let pass = PrunePass::new(
                    pincer_core::now_ms(),
                    kept(retention.inbox),
                    kept(retention.transcripts),
                );
                if !pass.is_done() {
                    let store = state.ctx.store.clone();
                    state.pass = Some(state.scope.spawn(prune(store, pass)));
                }
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<StoreMsg>,
        state: &mut StoreState,
    ) -> Result<(), ActorProcessingErr> {
        state.ctx.store.stop_writer();
        if let Some(writer) = state.writer.take() {
            // The writer finishes its queue; joining blocks, so not on a runtime worker.
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
        Ok(())
    }
}

fn kept(keep: Keep) -> Option<Duration> {
    match keep {
        Keep::Forever => None,
        Keep::For(d) => Some(d),
    }
}

/// Runs `pass` to its end, a batch at a time, pausing between batches; logs what it
/// removed. A store that cannot write ends the pass: the next one tries again.
async fn prune(store: Store, mut pass: PrunePass) {
    let started = Instant::now();
    let mut longest = Duration::ZERO;
    while !pass.is_done() {
        pass = match store.prune(pass).await {
            Ok(pass) => pass,
            Err(error) => {
                tracing::warn!(%error, "Retention pass stopped; the next one starts over.");
                return;
            }
        };
        let took = pass.last_batch_time();
        longest = longest.max(took);
        if !pass.is_done() {
            tokio::time::sleep(pincer_store::prune_pause(took)).await;
        }
    }
    let totals = pass.totals();
    if totals.inbox + totals.transcript > 0 {
        tracing::info!(
            inbox_rows = totals.inbox,
            transcript_entries = totals.transcript,
            batches = totals.batches,
            longest_batch_us = longest.as_micros() as u64,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Retention: pruned old records."
        );
    }
}
