//! One browser's socket: frames in, frames out, each side bounded.
//!
//! In: `hello` (the page's secret, before anything else), `send`, `sessions`. Out: the
//! `agents` frame, the shared `tree` frame whenever it changes (only the latest: a page
//! that is behind skips the ones it missed), and per message `accepted`, `delta`, `done`,
//! `error`, `restart` through the socket's [`Outbound`] queue. A page that takes nothing
//! for `gateway.writeTimeout` (the HTTP connections' limit: an upgraded socket is out of
//! the server's hands), or falls behind past the queue's bounds, is closed with 1013;
//! what it asked is answered all the same and waits in the store for its resend.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use pincer_actors::Scope;
use pincer_core::{Inbound, PeerRef, now_ms};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;
use warp::ws::{Message, WebSocket};

use super::chats;
use super::outbound::Outbound;
use super::owner::{Owner, check_id};
use super::view::{self, Frame};
use super::{Delivery, IntakeError, LinkCtx, WebCtx};

/// Messages of one socket waiting for their replies at once.
pub(super) const MAX_IN_FLIGHT: usize = 32;

/// WebSocket close code: try again later.
const TRY_AGAIN_LATER: u16 = 1013;

/// What a browser sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientFrame {
    Hello {
        client: String,
    },
    Send {
        id: String,
        #[serde(default)]
        agent: Option<String>,
        session: String,
        text: String,
    },
    Sessions {
        #[serde(default)]
        offset: usize,
        #[serde(default)]
        limit: Option<usize>,
    },
    /// Stop the reply to message `id`.
    Stop {
        id: String,
        agent: String,
        session: String,
    },
    /// This page's chats with `agent`.
    Chats {
        agent: String,
        #[serde(default)]
        offset: usize,
        #[serde(default)]
        limit: Option<usize>,
    },
    /// The latest entries of chat `session`.
    Open {
        agent: String,
        session: String,
    },
    Rename {
        agent: String,
        session: String,
        title: String,
    },
    Delete {
        agent: String,
        session: String,
    },
}

/// The reading side's state.
struct Reader {
    ctx: WebCtx,
    out: Arc<Outbound>,
    owner: Option<Owner>,
    in_flight: Arc<AtomicUsize>,
    scope: Scope,
}

/// Serves `socket` until it or the page closes, the page falls behind, or `scope` ends.
pub(super) async fn serve(
    ctx: WebCtx,
    mut tree: watch::Receiver<Frame>,
    socket: WebSocket,
    scope: Scope,
) {
    let (sink, mut stream) = socket.split();
    let out = Arc::new(Outbound::default());
    let config = ctx.link.config.current();
    out.frame(&agents_frame(&config));
    let stall = config.gateway.write_timeout;
    drop(config);
    out.text(tree.borrow_and_update().to_string());
    let mut reader = Reader {
        ctx,
        out: out.clone(),
        owner: None,
        in_flight: Arc::new(AtomicUsize::new(0)),
        scope: scope.clone(),
    };
    let read = async {
        while let Some(Ok(msg)) = stream.next().await {
            if msg.is_close() {
                break;
            }
            if let Ok(text) = msg.to_str() {
                reader.on_frame(text);
            }
        }
    };
    tokio::select! {
        () = read => {}
        () = write(sink, out, tree, stall) => {}
    }
    // The socket is gone: stop streaming to it. Messages it sent stay in the inbox and
    // are answered; the page gets the reply when it resends the same id.
    drop(scope.close());
}

/// Sends the queue's frames, and the tree when it changed, until the socket fails or the
/// page falls behind or takes nothing for `stall`. Each socket sends a new tree at its own offset within
/// [`view::PUSH_INTERVAL`]: 500 tabs then write a few frames a millisecond, not 500 at
/// once in front of the chats.
async fn write(
    mut sink: SplitSink<WebSocket, Message>,
    out: Arc<Outbound>,
    mut tree: watch::Receiver<Frame>,
    stall: Duration,
) {
    let offset = stagger();
    let mut tree_at: Option<Instant> = None;
    loop {
        if let Some(why) = out.behind() {
            return close(sink, &why).await;
        }
        if tree_at.is_none() && tree.has_changed().unwrap_or(false) {
            tree_at = Some(Instant::now() + offset);
        }
        let text = if tree_at.is_some_and(|at| at <= Instant::now()) {
            tree_at = None;
            tree.borrow_and_update().to_string()
        } else if let Some(text) = out.take() {
            text
        } else {
            tokio::select! {
                () = out.ready() => {}
                changed = tree.changed() => match changed {
                    Ok(()) => {
                        tree_at.get_or_insert_with(|| Instant::now() + offset);
                    }
                    Err(_) => return,
                },
                () = tokio::time::sleep_until(tree_at.unwrap_or_else(Instant::now)), if tree_at.is_some() => {}
            }
            continue;
        };
        match tokio::time::timeout(stall, sink.send(Message::text(text))).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return,
            Err(_) => {
                let why = format!("the page took nothing for {stall:?}");
                return close(sink, &why).await;
            }
        }
    }
}

/// This socket's offset for tree frames: sockets in order of opening spread evenly over
/// the push interval.
fn stagger() -> Duration {
    static OPENED: AtomicUsize = AtomicUsize::new(0);
    let n = OPENED.fetch_add(1, Ordering::Relaxed);
    let slots = view::PUSH_INTERVAL.as_millis().max(1) as usize;
    // A step coprime with the slots visits every one before it repeats.
    Duration::from_millis(((n * 97) % slots) as u64)
}

/// Closes with 1013 and `why`, if the page still takes a frame.
async fn close(mut sink: SplitSink<WebSocket, Message>, why: &str) {
    tracing::debug!(why, "Web chat socket closed.");
    let frame = Message::close_with(TRY_AGAIN_LATER, why.to_string());
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(frame)).await;
}

// === impl Reader ===

impl Reader {
    fn on_frame(&mut self, text: &str) {
        let frame = match serde_json::from_str::<ClientFrame>(text) {
            Ok(frame) => frame,
            Err(e) => return self.error(None, format!("cannot read frame: {e}")),
        };
        match (frame, &self.owner) {
            (ClientFrame::Hello { client }, None) => match Owner::from_secret(&client) {
                Ok(owner) => self.owner = Some(owner),
                Err(why) => self.error(None, why),
            },
            (ClientFrame::Hello { .. }, Some(_)) => {
                self.error(None, "`hello` comes once per socket".into());
            }
            (ClientFrame::Send { id, .. }, None) => {
                self.error(Some(&id), HELLO_FIRST.into());
            }
            (ClientFrame::Stop { id, .. }, None) => self.error(Some(&id), HELLO_FIRST.into()),
            (
                ClientFrame::Sessions { .. }
                | ClientFrame::Chats { .. }
                | ClientFrame::Open { .. }
                | ClientFrame::Rename { .. }
                | ClientFrame::Delete { .. },
                None,
            ) => self.error(None, HELLO_FIRST.into()),
            (ClientFrame::Stop { id, agent, session }, Some(owner)) => {
                if let Err(why) = chats::stop(&self.ctx.link, owner, &agent, &session, &id) {
                    self.error(Some(&id), why);
                }
            }
            (
                ClientFrame::Chats {
                    agent,
                    offset,
                    limit,
                },
                Some(owner),
            ) => {
                let limit = limit.unwrap_or(chats::MAX_CHATS_PAGE);
                self.chat_frame(
                    owner,
                    "chats",
                    String::new(),
                    move |link, owner, _| async move {
                        chats::list(&link, &owner, &agent, offset, limit).await
                    },
                );
            }
            (ClientFrame::Open { agent, session }, Some(owner)) => {
                self.chat_frame(
                    owner,
                    "open",
                    session,
                    move |link, owner, session| async move {
                        chats::open(&link, &owner, &agent, &session).await
                    },
                );
            }
            (
                ClientFrame::Rename {
                    agent,
                    session,
                    title,
                },
                Some(owner),
            ) => {
                self.chat_frame(
                    owner,
                    "rename",
                    session,
                    move |link, owner, session| async move {
                        chats::rename(&link, &owner, &agent, &session, &title).await
                    },
                );
            }
            (ClientFrame::Delete { agent, session }, Some(owner)) => {
                self.chat_frame(
                    owner,
                    "delete",
                    session,
                    move |link, owner, session| async move {
                        chats::delete(&link, &owner, &agent, &session).await
                    },
                );
            }
            (
                ClientFrame::Send {
                    id,
                    agent,
                    session,
                    text,
                },
                Some(owner),
            ) => {
                let owner = owner.clone();
                self.send(owner, id, agent, session, text);
            }
            (ClientFrame::Sessions { offset, limit }, Some(owner)) => {
                let link = &self.ctx.link;
                let config = link.config.current();
                let frame = view::own_sessions(
                    &self.ctx.probe.registry,
                    &link.account,
                    config.agents.keys(),
                    owner,
                    offset,
                    limit.unwrap_or(50),
                );
                self.out.frame(&frame);
            }
        }
    }

    fn send(&self, owner: Owner, id: String, agent: Option<String>, session: String, text: String) {
        if let Err(why) = check_id("id", &id).and_then(|()| check_id("session", &session)) {
            return self.error(Some(&id), why);
        }
        let agent = agent.filter(|a| !a.is_empty());
        if let Some(agent) = &agent
            && !self.ctx.link.config.current().agents.contains_key(agent)
        {
            return self.error(Some(&id), format!("no agent `{agent}`"));
        }
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= MAX_IN_FLIGHT {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return self.error(
                Some(&id),
                format!(
                    "{MAX_IN_FLIGHT} messages of this page are waiting for replies: send this one once one is answered"
                ),
            );
        }
        let (link, out, in_flight) = (
            self.ctx.link.clone(),
            self.out.clone(),
            self.in_flight.clone(),
        );
        self.scope.spawn(async move {
            let peer = owner.peer(&session);
            answer(&link, &out, &id, agent, peer, text).await;
            in_flight.fetch_sub(1, Ordering::AcqRel);
        });
    }

    /// Answers a frame about `owner`'s chats (`what`, about `session`) from a task of the
    /// socket's scope: `run` reads or writes the store.
    fn chat_frame<F, Fut>(&self, owner: &Owner, what: &'static str, session: String, run: F)
    where
        F: FnOnce(LinkCtx, Owner, String) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Value, String>> + Send + 'static,
    {
        let (link, out, owner) = (self.ctx.link.clone(), self.out.clone(), owner.clone());
        self.scope.spawn(async move {
            let result = run(link, owner, session.clone()).await;
            chats::reply(&out, what, &session, result);
        });
    }

    fn error(&self, id: Option<&str>, message: String) {
        let frame = json!({"type": "error", "id": id, "message": message});
        match id {
            Some(id) => self.out.end(id, &frame),
            None => self.out.frame(&frame),
        }
    }
}

const HELLO_FIRST: &str =
    "say `hello` with the page's secret first: {\"type\": \"hello\", \"client\": \"...\"}";

/// Takes one message and streams its reply to the page.
async fn answer(
    link: &LinkCtx,
    out: &Outbound,
    id: &str,
    agent: Option<String>,
    peer: String,
    text: String,
) {
    let error = |message: String| json!({"type": "error", "id": id, "message": message});
    let inbound = Inbound {
        channel: "web".into(),
        account: link.account.clone(),
        // The peer carries the owner: a message id resent by another browser is another
        // message, and never gets this one's reply.
        upstream_id: upstream_id(&peer, id),
        peer: PeerRef {
            kind: "user".into(),
            id: peer,
        },
        thread: None,
        guild: None,
        team: None,
        agent,
        topic: None,
        text,
        received_at_ms: now_ms(),
        sender: None,
        fingerprint: None,
        api: None,
    };
    let mut waiter = link.outbox.wait(&inbound.upstream_id);
    let accepted = match link.intake.take(inbound).await {
        Ok(a) => a,
        Err(e) => return out.end(id, &error(intake_text(&e))),
    };
    out.about(
        id,
        &json!({"type": "accepted", "id": id, "inbox": accepted.id}),
    );
    if let Some(reply) = accepted.reply {
        // Answered before (a resend): the reply as kept, stopped or not.
        let extra = pincer_channels::ReplyExtra::decode(accepted.reply_extra.as_deref());
        let stopped = extra.is_some_and(|e| e.stopped);
        let frame = json!({"type": "done", "id": id, "text": reply, "stopped": stopped});
        return out.end(id, &frame);
    }
    let mut attempt = 0;
    loop {
        match waiter
            .next_or_stored(&link.store, "web", &link.account)
            .await
        {
            Delivery::Delta { attempt: a, text } => {
                if a != attempt {
                    attempt = a;
                    if a > 1 {
                        // A restarted turn streams from the start: the page clears it.
                        out.end(id, &json!({"type": "restart", "id": id}));
                    }
                }
                out.delta(id, &text);
            }
            Delivery::Step { attempt: a, step } => {
                if a != attempt {
                    attempt = a;
                    if a > 1 {
                        out.end(id, &json!({"type": "restart", "id": id}));
                    }
                }
                out.about(id, &step_frame(id, &step));
            }
            Delivery::Notice { notice, .. } => {
                let mut frame = json!({"type": "notice", "id": id, "text": notice.text});
                if let Some(a) = &notice.approval {
                    frame["approval"] = json!({"id": a.id, "tool": a.tool, "action": a.action});
                }
                out.about(id, &frame);
            }
            Delivery::Done {
                reply,
                failed,
                extra,
                ..
            } => {
                // A failed reply says why no model answered: the page shows it as an error.
                let stopped = extra.is_some_and(|e| e.stopped);
                let frame = json!({
                    "type": "done", "id": id, "text": reply, "failed": failed, "stopped": stopped,
                });
                return out.end(id, &frame);
            }
            Delivery::Refused { reason, .. } | Delivery::Unavailable { reason, .. } => {
                return out.end(id, &error(reason));
            }
        }
    }
}

/// The upstream id of message `id` of the page whose session has peer id `peer`.
pub(super) fn upstream_id(peer: &str, id: &str) -> String {
    format!("{peer}:{id}")
}

/// The `step` frame of a tool call: the page shows it as a collapsible line
/// ("web_fetch example.org — 1.2 s") under the reply in progress.
fn step_frame(id: &str, step: &pincer_channels::Step) -> Value {
    let mut frame = json!({
        "type": "step",
        "id": id,
        "n": step.n,
        "tool": step.tool,
        "status": step.status,
        "summary": step.summary,
        "arguments": step.arguments,
    });
    if let Some((ok, ms)) = step.end {
        frame["ok"] = json!(ok);
        frame["ms"] = json!(ms);
    }
    frame
}

fn intake_text(e: &IntakeError) -> String {
    format!("message not accepted: {e}")
}

/// The `agents` frame: each agent with its model, the default marked.
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
                // Readiness names an agent that cannot answer by this path.
                "path": pincer_core::paths::agent(id),
            })
        })
        .collect();
    json!({"type": "agents", "agents": agents})
}
