//! Where a Key Request runs (docs/architecture.md §4, the `bmsc::http` row): on the runtime
//! when [`KeyRequestHandler::runs_inline`] says nothing in it blocks, else with one hand-off to
//! the blocking pool. A registration's durable write is queued to the store's writer and
//! awaited by a task of its own, not by a parked thread; that task forwards the events and
//! releases the 200 only after the write committed. It runs to its end even when the client
//! leaves or the request times out, so a registration made durable always gets its push.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::runtime::Handle;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, timeout_at};
use tracing::{error, warn};

use super::Ctx;
use crate::bmsc::events::KeyRequestEvent;
use crate::bmsc::keyreq::{Begun, KeyRequestHandler, PendingRegister, Request, Response};
use crate::bmsc::store::StoreError;

/// The answer of a hand-off to the blocking pool: now, or once a registration committed.
enum Answer {
    Now(Response),
    Later(oneshot::Receiver<Response>),
}

/// The 503 of a request whose push could not be queued.
fn not_queued() -> Response {
    Response::text(503, "key distribution not running")
}

/// Runs the handler for `request` and answers within `deadline`: the response and whether the
/// connection must close.
pub(super) async fn run(request: Request, ctx: &Ctx, deadline: Instant) -> (Response, bool) {
    let peer = request.peer;
    let later = if ctx.handler.runs_inline(&request) {
        match ctx.handler.begin(request, SystemTime::now()) {
            Begun::Done(resp, evs) => {
                return (forward_inline(resp, evs, ctx, deadline).await, false);
            }
            Begun::Registering(p) => complete(
                &Handle::current(),
                Arc::clone(&ctx.handler),
                ctx.events.clone(),
                p,
            ),
        }
    } else {
        let handler = Arc::clone(&ctx.handler);
        let events = ctx.events.clone();
        let rt = Handle::current();
        // One hand-off to the blocking pool, which also forwards the events: a blocking task
        // runs to its end even when its handle is dropped, so once the handler has changed the
        // store its events are forwarded even if the client is gone or the request timed out.
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
                Begun::Registering(p) => Answer::Later(complete(&rt, handler, events, p)),
            }
        });
        match timeout_at(deadline, ran).await {
            Ok(Ok(Answer::Now(resp))) => return (resp, false),
            Ok(Ok(Answer::Later(rx))) => rx,
            Ok(Err(e)) => {
                error!(error = %e, "Key Request handler failed");
                return (Response::text(500, "internal error"), true);
            }
            Err(_) => return unanswered(ctx, peer),
        }
    };
    match timeout_at(deadline, later).await {
        Ok(Ok(resp)) => (resp, false),
        Ok(Err(_)) => {
            error!("Key Request registration task failed");
            (Response::text(500, "internal error"), true)
        }
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

/// Spawns on `rt` the task that awaits the registration's writes, answers it and forwards its
/// events; the answer comes on the receiver.
fn complete(
    rt: &Handle,
    handler: Arc<KeyRequestHandler>,
    events: mpsc::Sender<KeyRequestEvent>,
    mut pending: Box<PendingRegister>,
) -> oneshot::Receiver<Response> {
    let (tx, rx) = oneshot::channel();
    rt.spawn(async move {
        let commits = pending.take_commits();
        let mut results = Vec::with_capacity(commits.len());
        for c in commits {
            results.push(c.await.unwrap_or_else(|_| {
                Err(StoreError::Backend(
                    "the store's writer stopped before the registration was written".to_owned(),
                ))
            }));
        }
        let (mut resp, evs) = handler.finish_register(*pending, results);
        for ev in evs {
            if events.send(ev).await.is_err() {
                warn!("Key Distribution channel closed: event dropped, answering 503");
                resp = not_queued();
                break;
            }
        }
        let _ = tx.send(resp);
    });
    rx
}

/// Forwards the events of a request answered on the runtime. Such a request changes nothing
/// in the store (registrations complete in [`complete`]), so an event not queued because the
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
