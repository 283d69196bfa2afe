//! Where a Key Request runs (docs/architecture.md §4, the `bmsc::http` row): on the runtime
//! when [`KeyRequestHandler::runs_inline`] says nothing in it blocks, else with one hand-off to
//! the blocking pool. A registration's durable write is queued to the store's writer and
//! awaited by the request, not by a parked thread ([`Finish`]); the events are forwarded and the
//! 200 released only after the write committed. When the client leaves or the request times out
//! first, the rest goes on in a task of its own, so a registration made durable always gets its
//! push.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::time::{Instant, timeout_at};
use tracing::{error, warn};

use super::Ctx;
use crate::bmsc::events::KeyRequestEvent;
use crate::bmsc::keyreq::{Begun, KeyRequestHandler, PendingRegister, Request, Response};
use crate::bmsc::store::{Committed, StoreError};

/// The answer of a hand-off to the blocking pool: now, or once a registration committed.
enum Answer {
    Now(Response),
    Later(Finish),
}

/// The 503 of a request whose push could not be queued.
fn not_queued() -> Response {
    Response::text(503, "key distribution not running")
}

/// Runs the handler for `request` and answers within `deadline`: the response and whether the
/// connection must close.
pub(super) async fn run(request: Request, ctx: &Ctx, deadline: Instant) -> (Response, bool) {
    let peer = request.peer;
    let mut finish = if ctx.handler.runs_inline(&request) {
        match ctx.handler.begin(request, SystemTime::now()) {
            Begun::Done(resp, evs) => {
                return (forward_inline(resp, evs, ctx, deadline).await, false);
            }
            Begun::Registering(p) => Finish::new(Arc::clone(&ctx.handler), ctx.events.clone(), p),
        }
    } else {
        let handler = Arc::clone(&ctx.handler);
        let events = ctx.events.clone();
        // One hand-off to the blocking pool, which also forwards the events: a blocking task
        // runs to its end even when its handle is dropped, so once the handler has changed the
        // store its events are forwarded even if the client is gone or the request timed out
        // (a registration's `Finish` goes on by itself when dropped).
        let ran = tokio::task::spawn_blocking(move || {
            match handler.begin(request, SystemTime::now()) {
                Begun::Done(mut resp, evs) => {
                    for ev in evs {
                        if events.blocking_send(ev).is_err() {
                            // No 200 without its push queued: the change stays durable.
                            warn!("Key Distribution channel closed: event dropped, answering 503");
                            resp = not_queued();
                            break;
                        }
                    }
                    Answer::Now(resp)
                }
                Begun::Registering(p) => Answer::Later(Finish::new(handler, events, p)),
            }
        });
        match timeout_at(deadline, ran).await {
            Ok(Ok(Answer::Now(resp))) => return (resp, false),
            Ok(Ok(Answer::Later(f))) => f,
            Ok(Err(e)) => {
                error!(error = %e, "Key Request handler failed");
                return (Response::text(500, "internal error"), true);
            }
            Err(_) => return unanswered(ctx, peer),
        }
    };
    match timeout_at(deadline, finish.run()).await {
        Ok(resp) => (resp, false),
        Err(_) => unanswered(ctx, peer),
    }
}

fn unanswered(ctx: &Ctx, peer: std::net::IpAddr) -> (Response, bool) {
    ctx.handler
        .log_request_unanswered(SystemTime::now(), &peer.to_string());
    (
        Response::text(503, "request could not be completed in time"),
        true,
    )
}

/// Where a registration is after [`KeyRequestHandler::begin`].
enum Stage {
    /// Awaiting its writes' completions, with the results so far.
    Writing {
        pending: Box<PendingRegister>,
        commits: VecDeque<Committed>,
        results: Vec<Result<(), StoreError>>,
    },
    /// Answered; its events not yet all queued for the Key Distribution function.
    Forwarding {
        resp: Response,
        evs: VecDeque<KeyRequestEvent>,
    },
    Done,
}

/// The rest of a registration: await its writes, answer it, queue its events, then release
/// the answer. Awaited by the request itself (no task, no extra hand-off); dropped unfinished
/// (the client left, the request timed out) it goes on in a task of its own from where it
/// stopped, so a registration made durable always gets its push.
struct Finish {
    handler: Arc<KeyRequestHandler>,
    events: mpsc::Sender<KeyRequestEvent>,
    stage: Stage,
}

impl Finish {
    fn new(
        handler: Arc<KeyRequestHandler>,
        events: mpsc::Sender<KeyRequestEvent>,
        mut pending: Box<PendingRegister>,
    ) -> Self {
        let commits: VecDeque<Committed> = pending.take_commits().into();
        let results = Vec::with_capacity(commits.len());
        Self {
            handler,
            events,
            stage: Stage::Writing {
                pending,
                commits,
                results,
            },
        }
    }

    /// Runs to the answer. Each step leaves `stage` consistent at every await, so a drop at
    /// any of them loses nothing.
    async fn run(&mut self) -> Response {
        loop {
            match &mut self.stage {
                Stage::Writing {
                    commits, results, ..
                } => {
                    if let Some(c) = commits.front_mut() {
                        let r = c.await.unwrap_or_else(|_| {
                            Err(StoreError::Backend(
                                "the store's writer stopped before the registration was written"
                                    .to_owned(),
                            ))
                        });
                        commits.pop_front();
                        results.push(r);
                        continue;
                    }
                    let Stage::Writing {
                        pending, results, ..
                    } = std::mem::replace(&mut self.stage, Stage::Done)
                    else {
                        continue;
                    };
                    let (resp, evs) = self.handler.finish_register(*pending, results);
                    self.stage = Stage::Forwarding {
                        resp,
                        evs: evs.into(),
                    };
                }
                Stage::Forwarding { resp, evs } => {
                    if !evs.is_empty() {
                        // Reserved first: a drop while waiting for room keeps the event.
                        match self.events.reserve().await {
                            Ok(permit) => {
                                if let Some(ev) = evs.pop_front() {
                                    permit.send(ev);
                                }
                            }
                            Err(_) => {
                                warn!(
                                    "Key Distribution channel closed: event dropped, answering 503"
                                );
                                evs.clear();
                                *resp = not_queued();
                            }
                        }
                        continue;
                    }
                    let Stage::Forwarding { resp, .. } =
                        std::mem::replace(&mut self.stage, Stage::Done)
                    else {
                        continue;
                    };
                    return resp;
                }
                Stage::Done => return Response::text(500, "internal error"),
            }
        }
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        if matches!(self.stage, Stage::Done) {
            return;
        }
        let Ok(rt) = Handle::try_current() else {
            error!("a registration was dropped outside the runtime: its events are lost");
            return;
        };
        let mut rest = Self {
            handler: Arc::clone(&self.handler),
            events: self.events.clone(),
            stage: std::mem::replace(&mut self.stage, Stage::Done),
        };
        rt.spawn(async move {
            rest.run().await;
        });
    }
}

/// Forwards the events of a request answered on the runtime. Such a request changes nothing
/// in the store (registrations complete in [`Finish`]), so an event not queued because the
/// client left meanwhile loses nothing durable: the UE asks again.
async fn forward_inline(
    mut resp: Response,
    evs: Vec<KeyRequestEvent>,
    ctx: &Ctx,
    deadline: Instant,
) -> Response {
    for ev in evs {
        let queued = match ctx.events.try_send(ev) {
            Ok(()) => true,
            Err(TrySendError::Full(ev)) => {
                matches!(timeout_at(deadline, ctx.events.send(ev)).await, Ok(Ok(())))
            }
            Err(TrySendError::Closed(_)) => false,
        };
        if !queued {
            warn!("Key Distribution channel closed or full past the deadline: answering 503");
            resp = not_queued();
            break;
        }
    }
    resp
}
