//! Actors and setup shared by the bench binaries.

// Each bench binary uses a subset.
#![allow(dead_code, clippy::mod_module_files)]

use std::time::Duration;

use pincer_actors::{Scope, Timer};
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};

/// An idle actor; given a scope, it holds one timer armed an hour ahead.
pub(crate) struct Idle;

impl Actor for Idle {
    type Msg = ();
    type State = Option<Timer>;
    type Arguments = Option<Scope>;

    async fn pre_start(
        &self,
        myself: ActorRef<()>,
        scope: Option<Scope>,
    ) -> Result<Option<Timer>, ActorProcessingErr> {
        Ok(scope.map(|scope| {
            let timer = Timer::new(&scope, myself, || ());
            timer.arm(Duration::from_secs(3600));
            timer
        }))
    }
}

/// A parent for `spawn_linked` that ignores its children's exits (ractor's default
/// handler would stop the parent).
pub(crate) struct Parent;

impl Actor for Parent {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<()>, (): ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<()>,
        _: SupervisionEvent,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

/// The runtime every bench uses: two workers, like the machine.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}
