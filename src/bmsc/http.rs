//! The hyper drivers of the BM-SC: the Key Request server around the sans-IO
//! [`KeyRequestHandler`], and the admin server (`/metrics`, `/health`).
//!
//! Key Request server, per connection: HTTP/1.1 with keep-alive; a request's header must
//! arrive within `request_timeout` of its first byte and the whole request be answered within
//! it (slowloris); idle connections close after `idle_timeout` (see `conn`). At most
//! `max_connections` connections: beyond, a connection gets an immediate `503` and is closed.
//! Bodies over `max_body` get `413` from `Content-Length` or as soon as the limit is crossed,
//! without reading the rest (and the connection closes). The handler runs on the runtime or on
//! the blocking pool (key source and store are synchronous), and a registration awaits its
//! durable write without holding a thread (`handoff`); its events go to the Key Distribution
//! channel before the response is released, so a UE answered 200 has its push queued (when the
//! channel stays full past `request_timeout` the UE gets 503, the change stays durable and its
//! event is still delivered). On shutdown the
//! server stops accepting, lets in-flight requests finish and closes idle connections,
//! waiting at most `request_timeout` (plus a grace) before aborting the rest.

mod conn;
mod handoff;

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{
    AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue, TRANSFER_ENCODING,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until, timeout, timeout_at};
use tracing::{debug, error, info, warn};

use self::conn::{ConnClock, Expiry, Watched, after};
use super::config::HttpConfig;
use super::events::KeyRequestEvent;
use super::health::HealthCheck;
use super::keyreq::{KeyRequestHandler, Request, Response};
use super::metrics::Metrics;

/// Largest request head (request line and headers) read; hyper answers 431 beyond.
const MAX_HEAD: usize = 16 * 1024;
/// Connections refused at capacity that are answered at the same time; beyond, the socket is
/// simply closed.
const MAX_REFUSALS: usize = 64;
/// Time a refused connection gets to take its 503.
const REFUSAL_TIME: Duration = Duration::from_secs(1);
/// Drain time added to `request_timeout` at shutdown.
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// The admin server's limits.
const ADMIN_MAX_CONNECTIONS: usize = 64;
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The Prometheus text exposition format version served on `/metrics`.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; \
charset=utf-8\r\ncontent-length: 12\r\nretry-after: 1\r\nconnection: close\r\n\r\nserver busy\n";

/// What every connection of the Key Request server shares.
struct Ctx {
    handler: Arc<KeyRequestHandler>,
    events: mpsc::Sender<KeyRequestEvent>,
    http: HttpConfig,
    metrics: Arc<Metrics>,
}

/// Serves the Key Request function on `listener` until `shutdown` completes, then drains
/// (module doc). Events of answered requests go to `events`.
pub async fn serve_key_requests(
    listener: TcpListener,
    handler: Arc<KeyRequestHandler>,
    events: mpsc::Sender<KeyRequestEvent>,
    http: HttpConfig,
    metrics: Arc<Metrics>,
    shutdown: impl Future,
) {
    let slots = Arc::new(Semaphore::new(
        http.max_connections.min(Semaphore::MAX_PERMITS),
    ));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
    let drain = http.request_timeout.saturating_add(DRAIN_GRACE);
    let ctx = Arc::new(Ctx {
        handler,
        events,
        http,
        metrics,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "Key Request server listening");
    }
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(done) = conns.join_next(), if !conns.is_empty() => {
                if let Err(e) = done && e.is_panic() {
                    error!("a Key Request connection task panicked");
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    let peer = addr.ip().to_canonical();
                    match Arc::clone(&slots).try_acquire_owned() {
                        Ok(permit) => {
                            let ctx = Arc::clone(&ctx);
                            let stop = stop_rx.clone();
                            conns.spawn(async move {
                                serve_connection(stream, peer, ctx, stop).await;
                                drop(permit);
                            });
                        }
                        Err(_) => {
                            ctx.metrics.http_status(503);
                            debug!(%peer, "at max_connections: refusing");
                            if let Ok(p) = Arc::clone(&refusals).try_acquire_owned() {
                                tokio::spawn(async move {
                                    refuse(stream).await;
                                    drop(p);
                                });
                            }
                        }
                    }
                }
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    info!(connections = conns.len(), "Key Request server draining");
    let drained = timeout(drain, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        warn!(
            connections = conns.len(),
            "drain time over: aborting connections"
        );
        conns.shutdown().await;
    }
    info!("Key Request server stopped");
}

/// The 503 of a connection over capacity: written, then the request is read away briefly so
/// the close does not reset the connection before the client reads the answer.
async fn refuse(mut stream: TcpStream) {
    let _ = timeout(REFUSAL_TIME, async {
        stream.write_all(REFUSAL).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}

/// One connection: hyper serving requests, and the watchdog of `conn`.
async fn serve_connection(
    stream: TcpStream,
    peer: IpAddr,
    ctx: Arc<Ctx>,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let clock = ConnClock::new();
    let io = TokioIo::new(Watched::new(stream, Arc::clone(&clock)));
    let svc_ctx = Arc::clone(&ctx);
    let svc_clock = Arc::clone(&clock);
    let service = service_fn(move |req| {
        let ctx = Arc::clone(&svc_ctx);
        let clock = Arc::clone(&svc_clock);
        async move { Ok::<_, Infallible>(serve_request(req, &ctx, peer, &clock).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(true)
        .max_buf_size(MAX_HEAD.max(8192))
        .header_read_timeout(None);
    let conn = builder.serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let (request_timeout, idle_timeout) = (ctx.http.request_timeout, ctx.http.idle_timeout);
    let mut closing = false;
    let mut hard_deadline: Option<Instant> = None;
    loop {
        let next = clock
            .deadline(request_timeout, idle_timeout, closing)
            .map(|(d, _)| d);
        let deadline = match (next, hard_deadline) {
            (Some(d), Some(h)) => d.min(h),
            (Some(d), None) | (None, Some(d)) => d,
            (None, None) => after(Instant::now(), idle_timeout),
        };
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stop.changed(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            () = clock.changed.notified() => {}
            () = sleep_until(deadline) => {
                // Act on what is overdue now: the phase may have moved on meanwhile.
                let now = Instant::now();
                let due = clock.deadline(request_timeout, idle_timeout, closing);
                if hard_deadline.is_some_and(|h| h <= now)
                    || due.is_some_and(|(d, e)| e == Expiry::Request && d <= now)
                {
                    ctx.handler
                        .log_request_late(SystemTime::now(), &peer.to_string());
                    return;
                }
                if due.is_some_and(|(d, e)| e == Expiry::Idle && d <= now) {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                    hard_deadline = Some(after(now, request_timeout));
                }
            }
        }
    }
}

/// One request: the handler's answer in hyper's form, counted and timed.
async fn serve_request(
    req: hyper::Request<Incoming>,
    ctx: &Ctx,
    peer: IpAddr,
    clock: &ConnClock,
) -> hyper::Response<Full<Bytes>> {
    let started = clock.request_started();
    let t0 = Instant::now();
    let (resp, close) = respond(req, ctx, peer, after(started, ctx.http.request_timeout)).await;
    ctx.metrics.http_status(resp.status);
    ctx.metrics.http_latency.observe(t0.elapsed());
    clock.request_finished();
    to_hyper(resp, close)
}

/// The first value of a header, lossily as text.
fn header_text(parts: &hyper::http::request::Parts, name: &HeaderName) -> Option<String> {
    parts
        .headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// The Digest `Authorization` among several (else the first).
fn authorization(parts: &hyper::http::request::Parts) -> Option<String> {
    let all = parts.headers.get_all(AUTHORIZATION);
    let digest = all.iter().find(|v| {
        v.as_bytes()
            .get(..6)
            .is_some_and(|s| s.eq_ignore_ascii_case(b"digest"))
    });
    digest
        .or_else(|| all.iter().next())
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// Reads the body within the limits and runs the handler; the response and whether the
/// connection must close (body left unread or broken).
async fn respond(
    req: hyper::Request<Incoming>,
    ctx: &Ctx,
    peer: IpAddr,
    deadline: Instant,
) -> (Response, bool) {
    let (parts, body) = req.into_parts();
    let target = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let may_have_body =
        declared.is_some_and(|n| n > 0) || parts.headers.contains_key(TRANSFER_ENCODING);
    let method = parts.method.as_str().to_owned();
    if let Some(early) = ctx.handler.early_response(&method, &target, declared) {
        return (early, may_have_body);
    }
    let read = timeout_at(
        deadline,
        Limited::new(body, ctx.handler.max_body()).collect(),
    )
    .await;
    let body = match read {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<LengthLimitError>() => return (ctx.handler.too_large(), true),
        Ok(Err(e)) => {
            debug!(%peer, error = %e, "reading the request body failed");
            return (Response::text(400, "could not read the request body"), true);
        }
        Err(_) => {
            return (
                Response::text(408, "request body not received in time"),
                true,
            );
        }
    };
    let request = Request {
        method,
        path: target,
        content_type: header_text(&parts, &CONTENT_TYPE),
        authorization: authorization(&parts),
        body,
        peer,
    };
    handoff::run(request, ctx, deadline).await
}

fn to_hyper(resp: Response, close: bool) -> hyper::Response<Full<Bytes>> {
    let mut out = hyper::Response::new(Full::new(resp.body));
    *out.status_mut() =
        StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = out.headers_mut();
    for (name, value) in resp.headers {
        match HeaderValue::try_from(value) {
            Ok(v) => {
                headers.append(HeaderName::from_static(name), v);
            }
            Err(_) => error!(header = name, "response header value is not valid: dropped"),
        }
    }
    if close {
        headers.insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
    }
    out
}

/// Serves on `listener` until `shutdown` completes: `GET /metrics` (Prometheus text,
/// [`METRICS_CONTENT_TYPE`]); `GET /health/live` (200 `live` while the process serves);
/// `GET /health/ready` and `GET /health` (200 when `health` holds, else 503; the body names
/// each check and the one that failed).
pub async fn serve_admin(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    health: impl HealthCheck,
    shutdown: impl Future,
) {
    let health = Arc::new(health);
    let slots = Arc::new(Semaphore::new(ADMIN_MAX_CONNECTIONS));
    let mut conns = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                        continue;
                    };
                    let metrics = Arc::clone(&metrics);
                    let health = Arc::clone(&health);
                    conns.spawn(async move {
                        let service = service_fn(move |req: hyper::Request<Incoming>| {
                            let resp = admin_response(req.method(), req.uri().path(), &metrics, &*health);
                            async move { Ok::<_, Infallible>(to_hyper(resp, false)) }
                        });
                        let mut builder = http1::Builder::new();
                        builder
                            .timer(TokioTimer::new())
                            .header_read_timeout(ADMIN_TIMEOUT)
                            .keep_alive(false);
                        let served = builder.serve_connection(TokioIo::new(stream), service);
                        let _ = timeout(ADMIN_TIMEOUT, served).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    warn!(error = %e, "admin accept failed");
                    sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    drop(listener);
    if timeout(ADMIN_TIMEOUT, async {
        while conns.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        conns.shutdown().await;
    }
}

fn admin_response(
    method: &Method,
    path: &str,
    metrics: &Metrics,
    health: &dyn HealthCheck,
) -> Response {
    let known = matches!(
        path,
        "/metrics" | "/health" | "/health/ready" | "/health/live"
    );
    if !known {
        return Response::text(404, "no such resource");
    }
    if method != Method::GET {
        let mut r = Response::text(405, "only GET is allowed");
        r.headers.push(("allow", "GET".to_owned()));
        return r;
    }
    if path == "/metrics" {
        return Response {
            status: 200,
            headers: vec![("content-type", METRICS_CONTENT_TYPE.to_owned())],
            body: Bytes::from(metrics.render()),
        };
    }
    if path == "/health/live" {
        return Response::text(200, "live");
    }
    let (ready, body) = health.check();
    let mut r = Response::text(if ready { 200 } else { 503 }, body.trim_end());
    r.headers.push(("cache-control", "no-store".to_owned()));
    r
}
