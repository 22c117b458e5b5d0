//! # pincer-actors: OTP supervision on ractor
//!
//! [ractor] gives actors, links and supervision events, but no restart strategies, no
//! restart intensity and no ordered shutdown. This crate adds those semantics, as Erlang/OTP
//! defines them, and nothing about what the actors do.
//!
//! - [`ChildSpec`]: an id, a re-callable start function, a [`Restart`] type (permanent,
//!   transient, temporary), a [`Shutdown`] (graceful with a timeout, then kill) and an
//!   optional [`Backoff`].
//! - [`SupervisorSpec`]: a [`Strategy`] (one_for_one, one_for_all, rest_for_one), an
//!   [`Intensity`] (at most N restarts in a window, then give up and escalate), the
//!   children in start order and an optional cap for children added at run time.
//! - [`Registry`]: a live record per actor (state, restarts, last error, uptime) at a path
//!   such as `pincer/channels/channel:telegram:main/link`, read as a [`Snapshot`] without
//!   any message, and [`Registry::kill`] / [`Registry::stop`] by path.
//! - [`Scope`]: the tasks, timers and children an actor owns; closed (and waited for)
//!   before a replacement starts, so two instances never overlap.
//! - [`Timer`]: arm, reset, extend and cancel for the price of a lock.
//! - [`Addr`]: a typed address of whatever incarnation runs at a path.
//!
//! ## A tree
//!
//! ```
//! use std::time::Duration;
//! use pincer_actors::{ChildSpec, Intensity, Registry, Restart, Strategy, SupervisorSpec};
//! use ractor::{Actor, ActorProcessingErr, ActorRef};
//!
//! struct Worker;
//! impl Actor for Worker {
//!     type Msg = ();
//!     type State = ();
//!     type Arguments = ();
//!     async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // sessions: children added at run time, at most 1000 of them.
//! let (sessions, sessions_handle) = SupervisorSpec::dynamic(1000).into_child_spec("sessions");
//! let (account, _) = SupervisorSpec::new(Strategy::OneForOne)
//!     .child(ChildSpec::new("link", |_| (Worker, ())))
//!     .child(sessions)
//!     .into_child_spec("channel:web:main");
//! let registry = Registry::new();
//! let root = SupervisorSpec::new(Strategy::OneForOne)
//!     .intensity(Intensity::new(10, Duration::from_secs(1)))
//!     .child(ChildSpec::new("store", |_| (Worker, ())))
//!     .child(account)
//!     .start_root("pincer", &registry)
//!     .await
//!     .expect("tree starts");
//!
//! sessions_handle
//!     .start_child(ChildSpec::new("session:42", |_| (Worker, ())).restart(Restart::Transient))
//!     .await
//!     .expect("session starts");
//! assert!(registry.get("pincer/channel:web:main/sessions/session:42").is_some());
//!
//! // A crash: the link is restarted, nothing else is touched.
//! registry.kill("pincer/channel:web:main/link").expect("known path");
//! root.stop().await;
//! # }
//! ```
//!
//! ## What a panic does
//!
//! ractor catches a panic in a handler and reports it as a failure; the supervisor treats it
//! like an error returned from a handler or a kill: an abnormal exit. A permanent or transient
//! child is restarted (after its backoff), and the restart counts against the intensity.
//!
//! ## Guarantees
//!
//! - **Start order.** Children start in declaration order; each start (including a nested
//!   supervisor's whole subtree) finishes before the next begins. A failed first start
//!   fails the supervisor's own start, after stopping the children already started.
//! - **Stop order.** Children stop in reverse order, each gracefully within its shutdown
//!   time (then killed). A supervisor that gives up stops its children the same way first.
//! - **No overlap.** A replacement starts only after the old instance's scope is closed:
//!   after a graceful stop `post_stop` ran; after a kill or panic (where ractor runs no
//!   `post_stop`) its task has ended, its state is dropped, and every task, timer and
//!   descendant in its scope is gone.
//! - **Normal and abnormal.** A graceful stop (any reason) is a normal exit; an error, a
//!   panic, a kill or a cancelled task is abnormal. Permanent children are restarted after
//!   both, transient ones after abnormal exits only, temporary ones never.
//! - **Intensity.** Each restart, and each failed attempt to restart, counts once per
//!   supervisor (one_for_all counts one per failure, not one per sibling). One more than
//!   allowed within the window and the supervisor stops all children in reverse order and
//!   fails with [`SupervisorError::IntensityExceeded`].
//!
//! [ractor]: https://docs.rs/ractor

pub mod addr;
pub mod backoff;
pub mod child_spec;
pub mod deadlines;
pub mod registry;
pub mod scope;
pub mod supervisor;
pub mod testkit;
pub mod timer;

pub use addr::Addr;
pub use backoff::Backoff;
pub use child_spec::{
    ChildKind, ChildSpec, Restart, Shutdown, StartCtx, StartError, StartFn, Started,
};
pub use deadlines::Deadlines;
pub use registry::{
    ActorRecord, ActorState, ControlError, Folded, Registry, Snapshot, Tally, TreeNode,
};
pub use scope::{Scope, TaskHandle};
pub use supervisor::{
    ChildInfo, Intensity, RootExit, RootHandle, Strategy, SupervisorError, SupervisorHandle,
    SupervisorMsg, SupervisorSpec,
};
pub use timer::Timer;
