//! The BM-SC Key Request function (TS 33.246 6.3.2.3, docs/profile.md §4), sans-IO: a
//! [`Request`] and `now` in, a [`Response`] and the [`KeyRequestEvent`]s for the Key
//! Distribution function out. No socket, clock or global RNG: the hyper driver
//! (`bmsc::http`) reads the request, calls [`KeyRequestHandler::begin`] from
//! `spawn_blocking` (the key source and the store are synchronous), or on the runtime when
//! [`KeyRequestHandler::runs_inline`] says nothing in it can block, and forwards the events.
//! A registration is split around its durable write: `begin` queues it to the store and
//! returns a [`PendingRegister`], which the driver answers with
//! [`KeyRequestHandler::finish_register`] once the writes completed.
//!
//! # Order of checks
//! 1. Route: an unknown path is 404 (before the method: an unknown resource has no `Allow`).
//! 2. Method: anything but POST is 405 with `Allow: POST`.
//! 3. Size: a body over `http.max_body` is 413. The driver answers this from
//!    `Content-Length` or while reading, without reading the rest, so it precedes
//!    authentication.
//! 4. Authentication (HTTP Digest, the `auth` submodule): 401 with a challenge (503 when the
//!    key source cannot answer). Everything below is only seen by an authenticated UE: an
//!    unauthenticated peer learns nothing about the parser and never reaches it, and with
//!    `auth-int` the body parsed is the body the UE signed.
//! 5. Content-Type for the path: 415.
//! 6. Body: 400 with a short text (5 and 6 carry `Authentication-Info` too).
//! 7. Per-item work: one status per service or MSK (TS 33.246 6.3.2.4), HTTP 200 with
//!    `Authentication-Info` (`rspauth` over the response body).
//!
//! HTTP statuses and latency are counted by the driver (it also answers some itself); this
//! handler counts Digest failures and per-item outcomes (`registrations_accepted`,
//! `deregistrations`, `msk_requests` each count items answered 200).

mod auth;
mod faillog;
mod nonces;
mod ops;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::SystemTime;

use bytes::Bytes;

pub use nonces::{Issued, NonceRefusal, NonceStore};
pub use ops::PendingRegister;

use super::config::{Authorized, Config, DigestAlgorithm, Qop as QopConfig, ServiceConfig};
use super::events::KeyRequestEvent;
use super::metrics::Metrics;
use super::store::{Store, StoreError};
use crate::crypto::Random;
use crate::gba::KeySource;
use crate::mbms::digest::{Algorithm, QopOffer, realm_for};
use crate::mbms::keyreq::{
    MIME_DEREGISTER, MIME_MSK, MIME_REGISTER, PATH_DEREGISTER, PATH_MSK, PATH_REGISTER,
    RegisterKind,
};

/// `Content-Type` of the short error bodies.
pub const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// An HTTP request as the handler needs it. Header values that are not UTF-8 are passed on
/// lossily: they then fail the checks that read them.
#[derive(Debug, Clone)]
pub struct Request {
    /// The method token, e.g. `POST`.
    pub method: String,
    /// The request target as received (origin form: path and query); the Digest `uri` must
    /// equal it.
    pub path: String,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `Authorization`.
    pub authorization: Option<String>,
    /// The whole body.
    pub body: Bytes,
    /// The UE's address: where MSK messages go (TS 33.246 6.3.2.2).
    pub peer: IpAddr,
}

/// An HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Bytes,
}

impl Response {
    /// A response with a short text body.
    #[must_use]
    pub fn text(status: u16, message: &str) -> Self {
        Self {
            status,
            headers: vec![("content-type", TEXT_PLAIN.to_owned())],
            body: Bytes::from(format!("{message}\n")),
        }
    }

    /// The first value of header `name` (any case).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
}

/// The three resources of docs/profile.md §4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Register,
    Deregister,
    Msk,
}

impl Route {
    /// The route of a request target (the query, if any, is ignored).
    fn of(target: &str) -> Option<Self> {
        let path = target.split('?').next().unwrap_or_default();
        match path {
            PATH_REGISTER => Some(Self::Register),
            PATH_DEREGISTER => Some(Self::Deregister),
            PATH_MSK => Some(Self::Msk),
            _ => None,
        }
    }

    fn mime(self) -> &'static str {
        match self {
            Self::Register => MIME_REGISTER,
            Self::Deregister => MIME_DEREGISTER,
            Self::Msk => MIME_MSK,
        }
    }
}

/// Whether `content_type` names `mime` (media type compared without case, parameters such as
/// `charset` ignored; RFC 9110 §8.3.1).
fn content_type_is(content_type: Option<&str>, mime: &str) -> bool {
    content_type
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(mime))
}

fn authorizations_of(config: &Config) -> HashMap<String, Authorized> {
    config
        .services
        .iter()
        .map(|s| (s.id.clone(), s.authorized.clone()))
        .collect()
}

/// The Key Request function: Digest authentication, registration, deregistration and MSK
/// requests. `Send + Sync`: one instance serves every connection.
pub struct KeyRequestHandler {
    realm: String,
    algorithm: Algorithm,
    qop: QopOffer,
    max_body: usize,
    services: HashMap<String, ServiceConfig>,
    /// Who may register to each service: the services' `authorized`, replaced as a whole by
    /// a configuration reload ([`KeyRequestHandler::set_authorizations`]).
    authorizations: RwLock<Arc<HashMap<String, Authorized>>>,
    key_source: Arc<dyn KeySource>,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    nonces: Mutex<NonceStore>,
    /// Failure lines, throttled per kind.
    failure_logs: faillog::FailureLogs,
}

impl std::fmt::Debug for KeyRequestHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRequestHandler")
            .field("realm", &self.realm)
            .field("algorithm", &self.algorithm)
            .field("qop", &self.qop)
            .field("max_body", &self.max_body)
            .field("services", &self.services.len())
            .finish_non_exhaustive()
    }
}

impl KeyRequestHandler {
    /// A handler for `config`: realm from `fqdn`, `[digest]`, `http.max_body` and the
    /// services; nonces drawn from `rng` ([`OsRandom`](crate::crypto::OsRandom) in production).
    #[must_use]
    pub fn new(
        config: &Config,
        key_source: Arc<dyn KeySource>,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        rng: Box<dyn Random>,
    ) -> Self {
        let d = &config.digest;
        Self {
            realm: realm_for(&config.fqdn),
            algorithm: match d.algorithm {
                DigestAlgorithm::Md5 => Algorithm::Md5,
                DigestAlgorithm::Sha256 => Algorithm::Sha256,
            },
            qop: match d.qop {
                QopConfig::AuthInt => QopOffer::AuthInt,
                QopConfig::Auth => QopOffer::Auth,
                QopConfig::Both => QopOffer::Both,
            },
            max_body: config.http.max_body,
            services: config
                .services
                .iter()
                .map(|s| (s.id.clone(), s.clone()))
                .collect(),
            authorizations: RwLock::new(Arc::new(authorizations_of(config))),
            key_source,
            store,
            metrics,
            nonces: Mutex::new(NonceStore::new(rng, d.nonce_lifetime, d.max_nonces)),
            failure_logs: faillog::FailureLogs::default(),
        }
    }

    /// The Digest realm, `3GPP-bootstrapping@<fqdn>`.
    #[must_use]
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// The largest body accepted.
    #[must_use]
    pub fn max_body(&self) -> usize {
        self.max_body
    }

    /// Replaces who may register to each service with the `authorized` of `config`'s services
    /// (a reload: services themselves are not added or removed here). Registrations already
    /// stored are kept.
    pub fn set_authorizations(&self, config: &Config) {
        let new = Arc::new(authorizations_of(config));
        *self
            .authorizations
            .write()
            .unwrap_or_else(PoisonError::into_inner) = new;
    }

    /// Whether `impi` may register to `service` under the current authorizations.
    fn authorizes(&self, service: &str, impi: &str) -> bool {
        let map = Arc::clone(
            &self
                .authorizations
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        );
        map.get(service).is_some_and(|a| a.allows(impi))
    }

    /// Nonces currently held (bounded by `digest.max_nonces`).
    #[must_use]
    pub fn nonces_held(&self) -> usize {
        self.lock_nonces().len()
    }

    /// Logs the failures not yet logged whose interval is over (the driver calls it every
    /// [`LOG_INTERVAL`](crate::bmsc::logthrottle::LOG_INTERVAL), so a burst's count is not
    /// held back until the next failure; the rest is logged when the handler is dropped).
    pub fn flush_logs(&self, now: SystemTime) {
        self.failure_logs.flush(now, false);
    }

    /// Counts and logs, throttled with the other failure lines, a request from `peer` whose
    /// head or body did not arrive in time (the connection is closed).
    pub fn log_request_late(&self, now: SystemTime, peer: &str) {
        self.failure_logs.request_late(now, peer);
    }

    /// Counts and logs, throttled with the other failure lines, a request from `peer` not
    /// answered within `request_timeout`.
    pub fn log_request_unanswered(&self, now: SystemTime, peer: &str) {
        self.failure_logs.request_unanswered(now, peer);
    }

    fn lock_nonces(&self) -> MutexGuard<'_, NonceStore> {
        // The store's invariants hold between calls, so a panic elsewhere leaves it usable.
        self.nonces.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Checks 1–3 of the module doc, which need no body: the 404, 405 or 413 answer, if any.
    /// The driver calls it before reading the body, with the declared length.
    #[must_use]
    pub fn early_response(
        &self,
        method: &str,
        path: &str,
        body_len: Option<u64>,
    ) -> Option<Response> {
        if Route::of(path).is_none() {
            return Some(Response::text(404, "no such resource"));
        }
        if method != "POST" {
            return Some(
                Response::text(405, "only POST is allowed").with_header("allow", "POST".into()),
            );
        }
        if body_len.is_some_and(|n| n > self.max_body as u64) {
            return Some(self.too_large());
        }
        None
    }

    /// The 413 answer.
    #[must_use]
    pub fn too_large(&self) -> Response {
        Response::text(413, &format!("request body over {} octets", self.max_body))
    }

    /// Whether [`KeyRequestHandler::begin`] of `req` waits on nothing but memory and store
    /// reads of microseconds, so the driver may run it on the runtime instead of the blocking
    /// pool: a request without `Authorization` (it is answered with a challenge), and, when
    /// the key source does not block ([`KeySource::may_block`]), an MSK request (when the
    /// store's reads do not block either, [`Store::reads_may_block`]) and a
    /// registration whose store queues its writes ([`Store::queues_registrations`]: the
    /// registration's commit is then awaited, not waited for on a thread). A deregistration
    /// writes, so it goes to the blocking pool, as does every lookup in a network key source.
    #[must_use]
    pub fn runs_inline(&self, req: &Request) -> bool {
        if req.authorization.is_none() {
            return true;
        }
        match Route::of(&req.path) {
            // An MSK request reads the registrations: inline only from an embedded store.
            Some(Route::Msk) => !self.key_source.may_block() && !self.store.reads_may_block(),
            Some(Route::Register) => {
                !self.key_source.may_block() && self.store.queues_registrations()
            }
            _ => false,
        }
    }

    /// Handles one request at `now`: the response, and the events to forward once it is
    /// decided (every change they report is already durable in the store). A registration
    /// waits here for its store writes: the driver uses [`KeyRequestHandler::begin`] instead.
    pub fn handle(&self, req: Request, now: SystemTime) -> (Response, Vec<KeyRequestEvent>) {
        match self.run(req, now, false) {
            Begun::Done(response, events) => (response, events),
            Begun::Registering(mut pending) => {
                // Written synchronously: every completion is already there.
                let results = pending
                    .take_commits()
                    .into_iter()
                    .map(|mut c| {
                        c.try_recv().unwrap_or_else(|_| {
                            Err(StoreError::Backend("registration not written".to_owned()))
                        })
                    })
                    .collect();
                self.finish_register(*pending, results)
            }
        }
    }

    /// Handles one request at `now` up to a registration's durable writes, which it queues
    /// ([`Store::register_queued`]) instead of waiting for them: the driver awaits
    /// [`PendingRegister::take_commits`] and answers with
    /// [`KeyRequestHandler::finish_register`]. Every other request is answered here.
    pub fn begin(&self, req: Request, now: SystemTime) -> Begun {
        self.run(req, now, true)
    }

    fn run(&self, req: Request, now: SystemTime, queue: bool) -> Begun {
        if let Some(early) =
            self.early_response(&req.method, &req.path, Some(req.body.len() as u64))
        {
            return Begun::Done(early, Vec::new());
        }
        let Some(route) = Route::of(&req.path) else {
            return Begun::Done(Response::text(404, "no such resource"), Vec::new());
        };
        let authed = match self.authenticate(&req, now) {
            Ok(a) => a,
            Err(refusal) => return Begun::Done(refusal, Vec::new()),
        };
        let (response, events) = if !content_type_is(req.content_type.as_deref(), route.mime()) {
            (
                Response::text(415, &format!("Content-Type must be {}", route.mime())),
                Vec::new(),
            )
        } else {
            match route {
                Route::Register => match self.parse_register(&req, RegisterKind::Register) {
                    Ok(parsed) => {
                        return Begun::Registering(Box::new(
                            self.register(parsed, authed, &req, now, queue),
                        ));
                    }
                    Err(refused) => refused,
                },
                Route::Deregister => self.deregister(&authed, &req),
                Route::Msk => self.msk_request(&authed, &req),
            }
        };
        let info = authed.authentication_info(&response.body);
        Begun::Done(response.with_header("authentication-info", info), events)
    }
}

/// What [`KeyRequestHandler::begin`] leaves to do.
#[derive(Debug)]
pub enum Begun {
    /// The answer, and the events to forward.
    Done(Response, Vec<KeyRequestEvent>),
    /// A registration whose store writes are under way.
    Registering(Box<PendingRegister>),
}
