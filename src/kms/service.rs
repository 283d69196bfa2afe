//! One KMS request, answered without the HTTP (docs/mcx.md §9.4): route → token → request
//! document → identity → client (by the TrK-ID the request carries) → the answer, protected
//! under the client's TrK/InK ([`transport::protect`]).
//!
//! Every refusal is a `KmsResponse` carrying a `KmsError` whose `ErrorCode` is the HTTP status;
//! it is signed under the client's keys once the client is known, unsigned before (a KMS cannot
//! sign for a client it does not know), and carries no key material.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use super::issue::{IssueError, Issuer};
use super::messages::{ErrorInfo, KmsMessage, KmsRequest, KmsResponse, xml_datetime};
use super::rotation;
use super::routes::{self, RequestError, Route};
use super::store::{Client, KmsStore, Lookup};
use super::token::{AccessToken, Jwks, TokenPolicy};
use super::transport;
use crate::bmsc::config::parse_rfc3339;
use crate::bmsc::logthrottle::{LOG_INTERVAL, LogThrottle, Summary};
use crate::crypto::Random;

/// The content type of every answer.
pub const CONTENT_TYPE: &str = "application/xml; charset=utf-8";

/// An answer: HTTP status and the XML document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The document (a `SignedKmsResponse`, or an unsigned `KmsResponse` with a `KmsError`).
    pub body: String,
}

/// Requests answered and refused, by status (exact; the log lines are throttled).
#[derive(Debug, Default)]
pub struct Counters {
    /// 200.
    pub ok: AtomicU64,
    /// 400.
    pub bad_request: AtomicU64,
    /// 401.
    pub unauthorized: AtomicU64,
    /// 403.
    pub forbidden: AtomicU64,
    /// 404.
    pub not_found: AtomicU64,
    /// 405.
    pub method_not_allowed: AtomicU64,
    /// 408.
    pub timeout: AtomicU64,
    /// 413.
    pub too_large: AtomicU64,
    /// 500 and others.
    pub internal: AtomicU64,
}

impl Counters {
    fn count(&self, status: u16) {
        let c = match status {
            200 => &self.ok,
            400 => &self.bad_request,
            401 => &self.unauthorized,
            403 => &self.forbidden,
            404 => &self.not_found,
            405 => &self.method_not_allowed,
            408 => &self.timeout,
            413 => &self.too_large,
            _ => &self.internal,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the service needs to answer.
#[derive(Debug)]
pub struct KmsService {
    kms_uri: String,
    issuer: Issuer,
    store: KmsStore,
    jwks: Jwks,
    policy: TokenPolicy,
    /// Exact counts by status.
    pub counters: Counters,
    refusals: LogThrottle,
}

/// A refusal before the answer is protected.
struct Refusal {
    status: u16,
    reason: String,
}

fn refuse(status: u16, reason: impl Into<String>) -> Refusal {
    Refusal {
        status,
        reason: reason.into(),
    }
}

impl From<RequestError> for Refusal {
    fn from(e: RequestError) -> Self {
        refuse(e.status(), e.to_string())
    }
}

/// What the request said, as far as it was read (for the answer's header fields).
#[derive(Default)]
struct Seen {
    user_uri: String,
    client_req_url: String,
    client: Option<Client>,
}

impl KmsService {
    /// The service over its parts.
    #[must_use]
    pub fn new(
        kms_uri: &str,
        issuer: Issuer,
        store: KmsStore,
        jwks: Jwks,
        policy: TokenPolicy,
    ) -> Self {
        Self {
            kms_uri: kms_uri.to_owned(),
            issuer,
            store,
            jwks,
            policy,
            counters: Counters::default(),
            refusals: LogThrottle::new(LOG_INTERVAL),
        }
    }

    /// The KMS's issuer (its certificate).
    #[must_use]
    pub fn issuer(&self) -> &Issuer {
        &self.issuer
    }

    /// Answers one request at Unix time `now`. Never panics on any input.
    pub fn handle(
        &self,
        method: &str,
        path: &str,
        authorization: Option<&str>,
        body: &[u8],
        now: u64,
        rng: &mut dyn Random,
    ) -> Answer {
        let mut seen = Seen::default();
        let result = self.answer(method, path, authorization, body, now, rng, &mut seen);
        let answer = match result {
            Ok(body) => Answer { status: 200, body },
            Err(r) => {
                self.log_refusal(&r, &seen);
                self.error_answer(&r, &seen, now, rng)
            }
        };
        self.counters.count(answer.status);
        answer
    }

    /// Counts and logs (throttled) a refusal the HTTP layer makes itself (413, 408), and
    /// answers it as a `KmsError`.
    pub fn refused_early(&self, status: u16, reason: &str, now: u64) -> Answer {
        let r = refuse(status, reason);
        let seen = Seen::default();
        self.log_refusal(&r, &seen);
        self.counters.count(status);
        self.error_answer(&r, &seen, now, &mut crate::crypto::OsRandom)
    }

    fn log_refusal(&self, r: &Refusal, seen: &Seen) {
        let subject = seen.client.as_ref().map(|c| c.client_id.as_str());
        if let Some(s) = self.refusals.record(
            SystemTime::now(),
            subject,
            &format!("{} {}", r.status, r.reason),
        ) {
            log_summary(&s);
        }
    }

    /// The line of refusals not yet logged, interval or not, and the totals by status (at
    /// shutdown).
    pub fn flush_log_all(&self) {
        if let Some(s) = self.refusals.flush_all(SystemTime::now()) {
            log_summary(&s);
        }
        let c = &self.counters;
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        tracing::info!(
            ok = n(&c.ok),
            bad_request = n(&c.bad_request),
            unauthorized = n(&c.unauthorized),
            forbidden = n(&c.forbidden),
            not_found = n(&c.not_found),
            method_not_allowed = n(&c.method_not_allowed),
            timeout = n(&c.timeout),
            too_large = n(&c.too_large),
            internal = n(&c.internal),
            "KMS requests answered"
        );
    }

    /// The throttled line of refusals not yet logged, when due (called periodically).
    pub fn flush_log(&self) {
        if let Some(s) = self.refusals.flush(SystemTime::now()) {
            log_summary(&s);
        }
    }

    fn error_answer(&self, r: &Refusal, seen: &Seen, now: u64, rng: &mut dyn Random) -> Answer {
        let response = KmsResponse {
            id: None,
            user_uri: seen.user_uri.clone(),
            kms_uri: self.kms_uri.clone(),
            time: xml_datetime(now),
            kms_id: None,
            client_req_url: seen.client_req_url.clone(),
            message: None,
            error: Some(ErrorInfo {
                code: i64::from(r.status),
                message: r.reason.chars().take(200).collect(),
            }),
        };
        let body = seen
            .client
            .as_ref()
            .and_then(|c| transport::protect(&response, &c.keys, rng).ok())
            .unwrap_or_else(|| response.to_xml());
        Answer {
            status: r.status,
            body,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn answer(
        &self,
        method: &str,
        path: &str,
        authorization: Option<&str>,
        body: &[u8],
        now: u64,
        rng: &mut dyn Random,
        seen: &mut Seen,
    ) -> Result<String, Refusal> {
        let route = routes::route(method, path)?;
        // The token before the body is parsed: an unauthenticated peer reaches no XML parser.
        let token = routes::authenticate(authorization, &self.jwks, &self.policy, now)?;
        let request = KmsRequest::parse(body).map_err(|e| refuse(400, format!("request: {e}")))?;
        seen.user_uri.clone_from(&request.user_uri);
        seen.client_req_url.clone_from(&request.client_req_url);
        let user = match &route {
            Route::KeyProv { user: Some(u), .. } if *u != request.user_uri => {
                return Err(refuse(
                    400,
                    "the path's identity is not the request's UserUri",
                ));
            }
            _ => request.user_uri.clone(),
        };
        authorized(&token, &user)?;
        if request.kms_uri != self.kms_uri {
            return Err(refuse(400, "KmsUri is not this KMS"));
        }
        let trk_id = request
            .trk_id
            .ok_or_else(|| refuse(400, "the request carries no TrK-ID"))?;
        let store_err = |e| refuse(500, format!("store: {e}"));
        let (client, offer, switch) = match self.store.lookup(trk_id).map_err(store_err)? {
            None => return Err(refuse(403, format!("unknown TrK-ID {trk_id}"))),
            Some(Lookup::Current { client, offer }) => (client, offer, false),
            Some(Lookup::Staged(client)) => (client, None, true),
        };
        let keys = client.keys.clone();
        let users_ok = client.users.contains(&user);
        let ink_ok = match (request.ink_id, &keys.ink) {
            (None, _) => true,
            (Some(asked), Some((id, _))) => asked == *id,
            (Some(_), None) => false,
        };
        seen.client = Some(client);
        if !ink_ok {
            return Err(refuse(403, "InK-ID is not the client's"));
        }
        if !users_ok {
            return Err(refuse(403, "identity not registered for this client"));
        }
        // \[CHOICE\] docs/mcx.md §3.4: the old TrK/InK are retired at the first request that
        // names the staged TrK-ID and passes every check above (token, identity, InK-ID);
        // until then both are served, the old one with the new keys offered again.
        if switch && let Some(c) = &seen.client {
            self.store.complete_rotation(c).map_err(store_err)?;
        }
        let new_keys = offer
            .as_ref()
            .map(|staged| rotation::offer(&keys, staged))
            .unwrap_or_default();
        let message = match route {
            Route::Init => KmsMessage::Init {
                certificate: Box::new(self.issuer.certificate()),
                new_keys,
            },
            Route::CertCache => KmsMessage::CertCache {
                cache_num: Some(1),
                certificates: vec![self.issuer.certificate()],
            },
            Route::KeyProv { time, .. } => {
                let n = match time {
                    None => self.issuer.period_no(now),
                    Some(t) => {
                        let asked = parse_rfc3339(&t)
                            .ok()
                            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                            .ok_or_else(|| refuse(400, "the path's time is not an RFC 3339 time"))?
                            .as_secs();
                        self.issuer.allowed_period(now, asked)
                    }
                }
                .map_err(|e| refuse(400, e.to_string()))?;
                let set = self.issuer.key_set(&user, n, rng).map_err(|e| match e {
                    IssueError::Uid => refuse(400, e.to_string()),
                    e => refuse(500, e.to_string()),
                })?;
                KmsMessage::KeyProv {
                    key_sets: vec![set],
                    new_keys,
                }
            }
        };
        let response = KmsResponse {
            id: None,
            user_uri: user,
            kms_uri: self.kms_uri.clone(),
            time: xml_datetime(now),
            kms_id: None,
            client_req_url: request.client_req_url,
            message: Some(message),
            error: None,
        };
        transport::protect(&response, &keys, rng).map_err(|e| refuse(500, e.to_string()))
    }
}

fn authorized(token: &AccessToken, user: &str) -> Result<(), Refusal> {
    token
        .authorize(user)
        .map_err(|_| RequestError::Forbidden.into())
}

fn log_summary(s: &Summary) {
    tracing::warn!(
        count = s.count,
        total = s.total,
        reasons = %s.reasons,
        clients = %s.samples,
        "KMS requests refused"
    );
}
