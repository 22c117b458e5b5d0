//! The `store` actor: owns the store's writer thread, so that the writer's life is
//! supervised like everything else. Every other part writes and reads through
//! [`pincer_store::Store`] directly; a restarted actor starts a new writer that waits for
//! the old one to finish its last group.

use pincer_store::Store;
use ractor::{Actor, ActorProcessingErr, ActorRef};

/// How often the store actor looks at its writer thread.
const WRITER_CHECK: std::time::Duration = std::time::Duration::from_millis(500);

/// Messages of the store actor. Other actors use [`Store`] directly; the actor exists so
/// that the writer's life is supervised like everything else.
#[derive(Debug)]
pub enum StoreMsg {
    /// Look whether the writer thread is still alive.
    Check,
}

/// Owns the writer thread; see the [module docs](self).
#[derive(Debug, Clone, Copy)]
pub struct StoreActor;

/// The store actor's state.
#[derive(Debug)]
pub struct StoreState {
    store: Store,
    writer: Option<std::thread::JoinHandle<()>>,
    check: pincer_actors::Timer,
}

impl Actor for StoreActor {
    type Msg = StoreMsg;
    type State = StoreState;
    type Arguments = (Store, pincer_actors::Scope);

    async fn pre_start(
        &self,
        myself: ActorRef<StoreMsg>,
        (store, scope): (Store, pincer_actors::Scope),
    ) -> Result<StoreState, ActorProcessingErr> {
        let writer = store.start_writer()?;
        let check = pincer_actors::Timer::new(&scope, myself, || StoreMsg::Check);
        check.arm(WRITER_CHECK);
        Ok(StoreState {
            store,
            writer: Some(writer),
            check,
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
                        .store
                        .health()
                        .reason()
                        .unwrap_or_else(|| "the writer thread ended".into());
                    return Err(format!("store writer stopped: {why}").into());
                }
                state.check.arm(WRITER_CHECK);
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<StoreMsg>,
        state: &mut StoreState,
    ) -> Result<(), ActorProcessingErr> {
        state.store.stop_writer();
        if let Some(writer) = state.writer.take() {
            // The writer finishes its queue; joining blocks, so not on a runtime worker.
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
        Ok(())
    }
}
