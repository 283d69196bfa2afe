//! The relay's HTTP server: hyper HTTP/1.1 on tokio around [`RelayService`], with the limits
//! of the KMS server (head timeout, body limit `max_envelope` with 413 before reading, a
//! connection cap), the inbox long-poll, and the expiry sweep once a second.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONNECTION, CONTENT_LENGTH, HeaderValue};
use hyper::{Request, Response};
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::config::RelayConfig;
use super::service::{Answer, BASE_PATH, RelayService};
use super::store::{RelayStore, RelayStoreError};
use crate::bmsc::logthrottle::LOG_INTERVAL;
use crate::kms::server::{http_response, spawn_connection};
use crate::kms::token::{Jwks, TokenError};
use crate::kms::unix_now;

/// Time a request gets for its head, and then for its body.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections at once (long-polls included).
const MAX_CONNECTIONS: usize = 512;
/// Longest inbox long-poll, seconds.
pub const MAX_WAIT: u64 = 60;
/// How often a long-poll looks again.
const POLL_STEP: Duration = Duration::from_millis(200);

/// Why the server did not start.
#[non_exhaustive]
#[derive(Debug, Error)]
pub enum StartError {
    /// The store.
    #[error(transparent)]
    Store(#[from] RelayStoreError),
    /// The JWKS file.
    #[error("{path}: {error}")]
    Jwks {
        /// The file.
        path: PathBuf,
        /// Why.
        error: String,
    },
    /// The listening socket.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// What the system said.
        source: std::io::Error,
    },
}

/// Opens the store and reads the JWKS of `config`.
///
/// # Errors
/// [`StartError`].
pub fn build_service(config: &RelayConfig) -> Result<RelayService, StartError> {
    let path = &config.access_token.jwks_file;
    let json = std::fs::read(path).map_err(|e| StartError::Jwks {
        path: path.clone(),
        error: e.to_string(),
    })?;
    let jwks = Jwks::from_json(&json).map_err(|e: TokenError| StartError::Jwks {
        path: path.clone(),
        error: e.to_string(),
    })?;
    let store = RelayStore::open(&config.data_dir, &config.kek_file)?;
    Ok(RelayService::new(config.clone(), store, jwks))
}

/// Binds `config.http_listen`.
///
/// # Errors
/// [`StartError::Listen`].
pub async fn bind(config: &RelayConfig) -> Result<TcpListener, StartError> {
    TcpListener::bind(config.http_listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: config.http_listen,
            source,
        })
}

fn response(a: Answer) -> Response<Full<Bytes>> {
    http_response(a.status, a.body.into(), a.content_type)
}

fn closing(a: Answer) -> Response<Full<Bytes>> {
    let mut r = response(a);
    r.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    r
}

/// `wait=SECONDS` of a query, capped at [`MAX_WAIT`]; 0 when absent or not a number.
fn wait_of(query: Option<&str>) -> u64 {
    query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix("wait="))
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(0, |w| w.min(MAX_WAIT))
}

async fn handle(service: Arc<RelayService>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let limit = service.config().max_envelope;
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return closing(service.refused_early(413, "body over the limit"));
    }
    let (parts, body) = req.into_parts();
    let body =
        match tokio::time::timeout(REQUEST_TIMEOUT, Limited::new(body, limit).collect()).await {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(e)) => {
                let too_large = e
                    .downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some();
                return closing(if too_large {
                    service.refused_early(413, "body over the limit")
                } else {
                    service.refused_early(400, "body not read")
                });
            }
            Err(_) => return closing(service.refused_early(408, "body not received in time")),
        };
    let method = parts.method.as_str().to_owned();
    let path = parts.uri.path().to_owned();
    let authorization = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // The inbox long-poll: look again until something waits or the time is over; the final
    // answer is the service's.
    let wait = wait_of(parts.uri.query());
    if method == "GET" && path == format!("{BASE_PATH}/inbox") && wait > 0 {
        let deadline = Instant::now() + Duration::from_secs(wait);
        loop {
            let svc = Arc::clone(&service);
            let auth = authorization.clone();
            let ids =
                tokio::task::spawn_blocking(move || svc.inbox_ids(auth.as_deref(), unix_now()))
                    .await;
            match ids {
                Ok(Ok(ids)) if ids.is_empty() && Instant::now() < deadline => {
                    tokio::time::sleep(POLL_STEP).await;
                }
                Ok(Err(refusal)) => return response(refusal),
                _ => break,
            }
        }
    }
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
        Err(_) => response(service.refused_early(500, "internal error")),
    }
}

/// Serves `service` on `listener` until `shutdown` completes.
pub async fn serve(listener: TcpListener, service: Arc<RelayService>, shutdown: impl Future) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut conns = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut flush = tokio::time::interval(LOG_INTERVAL);
    let mut sweep = tokio::time::interval(Duration::from_secs(1));
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "relay listening");
    }
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = flush.tick() => service.flush_log(),
            _ = sweep.tick() => {
                let svc = Arc::clone(&service);
                let _ = tokio::task::spawn_blocking(move || svc.sweep(unix_now())).await;
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                        drop(stream);
                        continue;
                    };
                    let service = Arc::clone(&service);
                    spawn_connection(&mut conns, stream, permit, REQUEST_TIMEOUT, "relay", move |req| {
                        handle(Arc::clone(&service), req)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_is_read_and_capped() {
        assert_eq!(wait_of(None), 0);
        assert_eq!(wait_of(Some("wait=5")), 5);
        assert_eq!(wait_of(Some("x=1&wait=7")), 7);
        assert_eq!(wait_of(Some("wait=999999")), MAX_WAIT);
        assert_eq!(wait_of(Some("wait=-1")), 0);
        assert_eq!(wait_of(Some("wait=abc")), 0);
    }
}
