//! `tool:<name>:<n>`: one tool call, a temporary child of its turn (`turn:<uuid>`, a
//! dynamic supervisor).
//!
//! The call's run is a task in the call actor's own scope. Whatever ends the actor (the
//! run is done, the turn's timeout stops it, a chaos kill, its turn going away) closes that
//! scope: the run is dropped, and with it everything it started (`exec`'s process group, a
//! fetch in flight). The turn hears the end either way: the run's output, or a closed
//! channel, which becomes an error result for the model, and the turn goes on.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pincer_actors::{ChildSpec, Restart, Scope, Shutdown, SupervisorHandle};
use pincer_providers::ToolCall;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::oneshot;

use super::{Context, Output, Running, cap, prepare};

/// How a call ended, for the model and for the transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    /// What the model reads: the output, or `error: ...`; capped at
    /// `tools.maxResultChars`.
    pub output: String,
    /// Whether the tool succeeded.
    pub ok: bool,
    /// How long it took.
    pub elapsed: Duration,
}

/// Runs `call` as the child `tool:<name>:<n>` of `turn`, if its tool is in `set`, within
/// its time limit (`tools.callTimeout` unless the tool has its own; time waiting for a
/// person's approval not counted) and `tools.maxResultChars` of `ctx`'s config.
pub async fn run(
    turn: &SupervisorHandle,
    n: u32,
    call: &ToolCall,
    set: &BTreeSet<&'static str>,
    ctx: &Context,
) -> Ran {
    let started = Instant::now();
    let limits = &ctx.config.tools;
    let ended = |output: Output| {
        let (output, ok) = match output {
            Ok(output) => (output, true),
            Err(why) => (format!("error: {why}"), false),
        };
        Ran {
            output: cap(output, limits.max_result_chars),
            ok,
            elapsed: started.elapsed(),
        }
    };
    let (tool, args) = match prepare(call, set) {
        Ok(ready) => ready,
        Err(why) => return ended(Err(why)),
    };
    let limit = tool.time_limit(&args, &ctx.config);
    let id = format!("tool:{}:{n}", tool.name());
    let (tx, rx) = oneshot::channel();
    // The call runs in its own actor's task: it logs within the turn's span (its request id).
    let running: super::Running = Box::pin(tracing::Instrument::instrument(
        tool.run(args, ctx.clone()),
        tracing::Span::current(),
    ));
    let parts = Arc::new(Mutex::new(Some((running, tx))));
    let spec = ChildSpec::new(id.clone(), move |start| {
        let args = parts.lock().take().map(|(running, reply)| CallArgs {
            running,
            reply,
            scope: start.scope().clone(),
        });
        (CallActor, args)
    })
    .restart(Restart::Temporary)
    // A call holds nothing worth a graceful stop: its scope going is its cleanup.
    .shutdown(Shutdown::Brutal);
    if let Err(error) = turn.start_child(spec).await {
        return ended(Err(format!("`{}` could not start: {error}", tool.name())));
    }
    // Time waiting for a person's approval does not count against the call.
    match ctx.approver.within(limit, rx).await {
        Some(Ok(output)) => ended(output),
        Some(Err(_)) => ended(Err(format!(
            "the `{}` call was stopped before it finished",
            tool.name()
        ))),
        None => {
            // Stopping the child closes its scope: nothing it started outlives this.
            let _ = turn.terminate_child(&id).await;
            let key = if limit == limits.call_timeout {
                " (tools.callTimeout)"
            } else {
                ""
            };
            ended(Err(format!(
                "`{}` did not finish within {}{key} and was stopped",
                tool.name(),
                pincer_config::duration::format_duration(limit)
            )))
        }
    }
}

/// The call actor: its run is a task of its scope.
#[derive(Debug)]
struct CallActor;

/// What a call actor starts with (taken on its only start: calls are not restarted).
struct CallArgs {
    running: Running,
    reply: oneshot::Sender<Output>,
    scope: Scope,
}

impl std::fmt::Debug for CallArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallArgs")
    }
}

impl Actor for CallActor {
    type Msg = ();
    type State = ();
    type Arguments = Option<CallArgs>;

    async fn pre_start(
        &self,
        myself: ActorRef<()>,
        args: Option<CallArgs>,
    ) -> Result<(), ActorProcessingErr> {
        let Some(CallArgs {
            running,
            reply,
            scope,
        }) = args
        else {
            return Err("a tool call cannot be started twice".into());
        };
        scope.spawn(async move {
            let _ = reply.send(running.await);
            myself.stop(None);
        });
        Ok(())
    }
}
