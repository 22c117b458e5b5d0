//! `channel:web:web/link`: the web chat's WebSocket connections.
//!
//! warp upgrades `GET /ws` and hands the socket to this link, which serves it in a task of
//! its scope: a killed link drops its sockets (browsers reconnect and resend unanswered
//! messages by the same id, which the inbox dedupes) and nothing else.
//!
//! Frames (JSON text): the browser sends `send`; the link sends `agents` and `tree` on
//! connect, `tree` again when the supervision tree changes, and `accepted`, `delta`,
//! `done`, `error` for each message.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use pincer_actors::{ChildSpec, Scope};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use warp::ws::{Message, WebSocket};

use super::{Delivery, IntakeError, LinkCtx};
use crate::readiness::Probe;
use pincer_core::{Inbound, PeerRef, now_ms};

/// Largest frame a browser may send.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// Tree pushes at most this often: a chaos run changes the tree thousands of times a
/// second, and a browser needs ten frames a second at most.
const TREE_PUSH_INTERVAL: Duration = Duration::from_millis(100);

/// Messages of the web link.
#[derive(Debug)]
pub enum WebLinkMsg {
    /// A browser connected.
    Connected(Box<WebSocket>),
}

/// What the web link works with: its account's link context, and readiness for the
/// tree frames.
#[derive(Debug, Clone)]
pub struct WebCtx {
    /// The `web` account.
    pub link: LinkCtx,
    /// Readiness and the tree.
    pub probe: Probe,
}

/// The web link actor.
#[derive(Debug, Clone, Copy)]
pub struct WebLink;

/// Its state.
#[derive(Debug)]
pub struct WebLinkState {
    ctx: WebCtx,
    scope: Scope,
}

/// The link's child spec.
pub fn link_spec(link: LinkCtx, probe: Probe) -> ChildSpec {
    let ctx = WebCtx { link, probe };
    ChildSpec::scoped("link", WebLink, ctx)
}

impl Actor for WebLink {
    type Msg = WebLinkMsg;
    type State = WebLinkState;
    type Arguments = (WebCtx, Scope);

    async fn pre_start(
        &self,
        _myself: ActorRef<WebLinkMsg>,
        (ctx, scope): (WebCtx, Scope),
    ) -> Result<WebLinkState, ActorProcessingErr> {
        Ok(WebLinkState { ctx, scope })
    }

    async fn handle(
        &self,
        _myself: ActorRef<WebLinkMsg>,
        msg: WebLinkMsg,
        state: &mut WebLinkState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            WebLinkMsg::Connected(socket) => {
                let ctx = state.ctx.clone();
                let conn_scope = state.scope.child();
                let inner = conn_scope.clone();
                state
                    .scope
                    .spawn(async move { serve(ctx, *socket, inner).await });
            }
        }
        Ok(())
    }
}

/// What a browser sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientFrame {
    Send {
        id: String,
        #[serde(default)]
        agent: Option<String>,
        session: String,
        text: String,
    },
}

async fn serve(ctx: WebCtx, socket: WebSocket, scope: Scope) {
    let (mut sink, mut stream) = socket.split();
    let (out, mut out_rx) = mpsc::unbounded_channel::<Value>();
    let _ = out.send(agents_frame(&ctx.link.config.current()));
    let _ = out.send(tree_frame(&ctx.probe));
    let mut changes = ctx.probe.registry.changes();
    let mut tree_due = false;
    let mut tick = tokio::time::interval(TREE_PUSH_INTERVAL);
    loop {
        tokio::select! {
            frame = stream.next() => match frame {
                Some(Ok(msg)) if msg.is_text() => {
                    let text = msg.to_str().unwrap_or_default();
                    match serde_json::from_str::<ClientFrame>(text) {
                        Ok(ClientFrame::Send { id, agent, session, text }) => {
                            let (link, out) = (ctx.link.clone(), out.clone());
                            scope.spawn(async move {
                                send_message(link, out, id, agent, session, text).await;
                            });
                        }
                        Err(e) => {
                            let _ = out.send(json!({
                                "type": "error", "id": null,
                                "message": format!("cannot read frame: {e}"),
                            }));
                        }
                    }
                }
                Some(Ok(msg)) if msg.is_close() => break,
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            },
            Some(frame) = out_rx.recv() => {
                if sink.send(Message::text(frame.to_string())).await.is_err() {
                    break;
                }
            }
            changed = changes.changed() => {
                if changed.is_err() { break; }
                tree_due = true;
            }
            _ = tick.tick(), if tree_due => {
                tree_due = false;
                let _ = out.send(tree_frame(&ctx.probe));
            }
        }
    }
    // The socket is gone: stop streaming to it. Messages it sent stay in the inbox and
    // are answered; the browser gets the reply when it resends the same id.
    drop(scope.close());
}

async fn send_message(
    link: LinkCtx,
    out: mpsc::UnboundedSender<Value>,
    id: String,
    agent: Option<String>,
    session: String,
    text: String,
) {
    let error = |message: String| json!({"type": "error", "id": id, "message": message});
    if id.is_empty() || id.len() > 128 || session.is_empty() || session.len() > 128 {
        let _ = out.send(error(
            "`id` and `session` must be 1 to 128 characters".into(),
        ));
        return;
    }
    if let Some(agent) = &agent
        && !link.config.current().agents.contains_key(agent)
    {
        let _ = out.send(error(format!("no agent `{agent}`")));
        return;
    }
    let inbound = Inbound {
        channel: "web".into(),
        account: "web".into(),
        upstream_id: format!("{session}:{id}"),
        peer: PeerRef {
            kind: "user".into(),
            id: session,
        },
        thread: None,
        guild: None,
        team: None,
        agent,
        topic: None,
        text,
        received_at_ms: now_ms(),
        fingerprint: None,
    };
    let mut waiter = link.outbox.wait(&inbound.upstream_id);
    let accepted = match link.intake.take(inbound).await {
        Ok(a) => a,
        Err(e) => {
            let _ = out.send(error(intake_text(&e)));
            return;
        }
    };
    let _ = out.send(json!({"type": "accepted", "id": id, "inbox": accepted.id}));
    if let Some(reply) = accepted.reply {
        let _ = out.send(json!({"type": "done", "id": id, "text": reply}));
        return;
    }
    let mut attempt = 0;
    loop {
        match waiter.next_or_stored(&link.store, "web", "web").await {
            Delivery::Delta { attempt: a, text } => {
                if a != attempt {
                    attempt = a;
                    if a > 1 {
                        // A restarted turn streams from the start: the browser clears it.
                        let _ = out.send(json!({"type": "restart", "id": id}));
                    }
                }
                let _ = out.send(json!({"type": "delta", "id": id, "text": text}));
            }
            Delivery::Done { reply, .. } => {
                let _ = out.send(json!({"type": "done", "id": id, "text": reply}));
                return;
            }
            Delivery::Refused { reason, .. } | Delivery::Unavailable { reason, .. } => {
                let _ = out.send(error(reason));
                return;
            }
        }
    }
}

fn intake_text(e: &IntakeError) -> String {
    format!("message not accepted: {e}")
}

fn agents_frame(config: &pincer_config::Config) -> Value {
    let default = config.default_agent().map(str::to_string);
    let agents: Vec<Value> = config
        .agents
        .iter()
        .map(|(id, a)| {
            json!({
                "id": id,
                "default": Some(id) == default.as_ref(),
                "model": crate::agent::model_label(a),
            })
        })
        .collect();
    json!({"type": "agents", "agents": agents})
}

/// The `tree` frame: readiness and the live tree.
pub fn tree_frame(probe: &Probe) -> Value {
    let snapshot = probe.registry.snapshot();
    let readiness = probe.readiness_of(&snapshot);
    json!({
        "type": "tree",
        "ready": readiness.ready,
        "failing": readiness.failing_json(),
        "tree": snapshot.tree(),
    })
}
