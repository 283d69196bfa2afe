//! The KMS HTTP server (docs/mcx.md §9): hyper HTTP/1.1 on tokio around [`KmsService`].
//!
//! Per connection: keep-alive; a request head must arrive within `request_timeout` (slowloris;
//! hyper closes the connection), heads over 16 KiB get 431; the body must arrive within
//! `request_timeout` of the head (else 408) and be at most `max_body` octets: a larger
//! `Content-Length` gets 413 before any of it is read, a larger chunked body 413 as soon as the
//! limit is crossed. At most `max_connections` connections at once; beyond, a connection is
//! closed at once. The key issuance runs on the blocking pool. Refusals are counted exactly
//! and logged at most once per interval per kind; the server keeps serving.

use std::convert::Infallible;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use thiserror::Error;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::config::KmsConfig;
use super::issue::{IssueError, Issuer};
use super::service::{Answer, CONTENT_TYPE as XML, KmsService};
use super::store::{KmsStore, KmsStoreError};
use super::token::{Jwks, TokenError, TokenPolicy};
use super::unix_now;
use crate::bmsc::logthrottle::LOG_INTERVAL;

/// Largest request head read; hyper answers 431 beyond.
const MAX_HEAD: usize = 16 * 1024;

/// Why the server did not start.
#[non_exhaustive]
#[derive(Debug, Error)]
pub enum StartError {
    /// The store.
    #[error(transparent)]
    Store(#[from] KmsStoreError),
    /// The JWKS file could not be read.
    #[error("{path}: {source}")]
    JwksFile {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The JWKS file is not a JWK set.
    #[error("{path}: {error}")]
    Jwks {
        /// The file.
        path: PathBuf,
        /// Why.
        error: TokenError,
    },
    /// The master secrets do not make a certificate.
    #[error("master secrets: {0}")]
    Issuer(#[from] IssueError),
    /// The listening socket.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// What the system said.
        source: std::io::Error,
    },
}

/// The HTTP limits of the server.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Longest body.
    pub max_body: usize,
    /// Time for the head, and then for the body.
    pub request_timeout: Duration,
    /// Connections at once.
    pub max_connections: usize,
}

impl HttpLimits {
    /// The limits of `config`.
    #[must_use]
    pub fn of(config: &KmsConfig) -> Self {
        Self {
            max_body: config.max_body,
            request_timeout: config.request_timeout,
            max_connections: config.max_connections,
        }
    }
}

/// Opens the store (making the master secrets on first start), reads the JWKS and builds the
/// service of `config`.
///
/// # Errors
/// [`StartError`].
pub fn build_service(config: &KmsConfig) -> Result<KmsService, StartError> {
    let t = &config.access_token;
    let json = std::fs::read(&t.jwks_file).map_err(|source| StartError::JwksFile {
        path: t.jwks_file.clone(),
        source,
    })?;
    let jwks = Jwks::from_json(&json).map_err(|error| StartError::Jwks {
        path: t.jwks_file.clone(),
        error,
    })?;
    let (store, masters) = KmsStore::open(&config.data_dir, &config.kek_file)?;
    let issuer = Issuer::new(
        &config.kms_uri,
        config.user_key_period,
        config.user_key_offset,
        config.max_periods_ahead,
        masters,
    )?;
    let policy = TokenPolicy {
        issuer: t.issuer.clone(),
        audience: t.audience.clone(),
        leeway_secs: t.leeway.as_secs(),
    };
    Ok(KmsService::new(
        &config.kms_uri,
        issuer,
        store,
        jwks,
        policy,
    ))
}

fn response(a: Answer) -> Response<Full<Bytes>> {
    http_response(a.status, a.body.into(), XML)
}

/// A response of `status` (500 when it is not a status) with `body` of `content_type`; shared by
/// the KMS and the key relay (`relay::server`).
pub(crate) fn http_response(
    status: u16,
    body: Bytes,
    content_type: &'static str,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

async fn handle(
    service: Arc<KmsService>,
    limits: HttpLimits,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body as u64) {
        let mut r = response(service.refused_early(413, "body over the limit", unix_now()));
        r.headers_mut()
            .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
        return r;
    }
    let (parts, body) = req.into_parts();
    let body = match tokio::time::timeout(
        limits.request_timeout,
        Limited::new(body, limits.max_body).collect(),
    )
    .await
    {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) => {
            let too_large = e
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            let (status, why) = if too_large {
                (413, "body over the limit")
            } else {
                (400, "body not read")
            };
            let mut r = response(service.refused_early(status, why, unix_now()));
            r.headers_mut()
                .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
            return r;
        }
        Err(_) => {
            let mut r =
                response(service.refused_early(408, "body not received in time", unix_now()));
            r.headers_mut()
                .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
            return r;
        }
    };
    let method = parts.method.as_str().to_owned();
    let path = parts.uri.path().to_owned();
    let authorization = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let svc = Arc::clone(&service);
    let answer = tokio::task::spawn_blocking(move || {
        svc.handle(
            &method,
            &path,
            authorization.as_deref(),
            &body,
            unix_now(),
            &mut crate::crypto::OsRandom,
        )
    })
    .await;
    match answer {
        Ok(a) => response(a),
        Err(_) => response(service.refused_early(500, "internal error", unix_now())),
    }
}

/// Serves one accepted connection in `conns` with HTTP/1.1 (keep-alive, a header timeout, a head
/// of at most 16 KiB) through `handle`, holding `permit` (a slot of the connection cap) until it
/// ends. Shared by the KMS and the key relay (`relay::server`).
pub(crate) fn spawn_connection<F, Fut>(
    conns: &mut JoinSet<()>,
    stream: TcpStream,
    permit: OwnedSemaphorePermit,
    header_timeout: Duration,
    what: &'static str,
    handle: F,
) where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let handle = Arc::new(handle);
    conns.spawn(async move {
        let _permit = permit;
        let svc = service_fn(move |req| {
            let answer = handle(req);
            async move { Ok::<_, Infallible>(answer.await) }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .max_buf_size(MAX_HEAD)
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), svc);
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "{what} connection ended");
        }
    });
}

/// Binds `config.http_listen`.
///
/// # Errors
/// [`StartError::Listen`].
pub async fn bind(config: &KmsConfig) -> Result<TcpListener, StartError> {
    TcpListener::bind(config.http_listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: config.http_listen,
            source,
        })
}

/// Serves `service` on `listener` until `shutdown` completes; then stops accepting and
/// returns, aborting the connections still open.
pub async fn serve(
    listener: TcpListener,
    service: Arc<KmsService>,
    limits: HttpLimits,
    shutdown: impl Future,
) {
    let slots = Arc::new(Semaphore::new(
        limits.max_connections.clamp(1, Semaphore::MAX_PERMITS),
    ));
    let mut conns = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut flush = tokio::time::interval(LOG_INTERVAL);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "KMS listening");
    }
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = flush.tick() => service.flush_log(),
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                        // At capacity: close at once.
                        drop(stream);
                        continue;
                    };
                    let service = Arc::clone(&service);
                    spawn_connection(&mut conns, stream, permit, limits.request_timeout, "KMS", move |req| {
                        handle(Arc::clone(&service), limits, req)
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    conns.abort_all();
    service.flush_log_all();
}
