//! One relay request answered without the HTTP (docs/relay.md §2): route → bearer token →
//! identity and policy → store. Every answer is JSON, except the envelope itself
//! (`application/mikey`); every refusal is `{"error": "..."}` with its status, carries no key
//! material or envelope octets, is counted and logged rate-limited.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

use serde_json::{Value, json};

use super::Purpose;
use super::config::RelayConfig;
use super::envelope::{self, EnvelopeError, Expect};
use super::store::{Posted, RelayStore, RelayStoreError, State, Transfer};
use crate::bmsc::logthrottle::{LOG_INTERVAL, LogThrottle, Summary};
use crate::crypto::Random;
use crate::kms::routes::{RequestError, authenticate};
use crate::kms::token::{AccessToken, Jwks, TokenPolicy};

/// The path prefix of the API.
pub const BASE_PATH: &str = "/relay/v1";
/// The content type of an envelope.
pub const MIKEY_TYPE: &str = "application/mikey";
/// The content type of every other answer.
pub const JSON_TYPE: &str = "application/json";
/// Most transfer ids one inbox answer lists.
pub const MAX_INBOX: usize = 100;
/// Longest JSON body of `POST /transfers`.
const MAX_JSON: usize = 4096;

/// An answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// `application/json` or `application/mikey`.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

/// A request of the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `POST /transfers`.
    Open,
    /// `GET /transfers/{id}`.
    Status(String),
    /// `DELETE /transfers/{id}`.
    Revoke(String),
    /// `PUT /transfers/{id}/envelope`.
    Post(String),
    /// `GET /transfers/{id}/envelope`.
    Fetch(String),
    /// `POST /transfers/{id}/ack`.
    Ack(String),
    /// `GET /inbox`.
    Inbox,
}

fn valid_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Which request `method` and `path` (without query) are.
///
/// # Errors
/// [`RequestError::NotFound`] or [`RequestError::MethodNotAllowed`].
pub fn route(method: &str, path: &str) -> Result<Route, RequestError> {
    let rest = path
        .strip_prefix(BASE_PATH)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or(RequestError::NotFound)?;
    let segs: Vec<&str> = rest.splitn(4, '/').collect();
    let allow = |ok: bool, r: Route| {
        if ok {
            Ok(r)
        } else {
            Err(RequestError::MethodNotAllowed)
        }
    };
    match segs.as_slice() {
        ["inbox"] => allow(method == "GET", Route::Inbox),
        ["transfers"] => allow(method == "POST", Route::Open),
        ["transfers", id] if valid_id(id) => match method {
            "GET" => Ok(Route::Status((*id).to_owned())),
            "DELETE" => Ok(Route::Revoke((*id).to_owned())),
            _ => Err(RequestError::MethodNotAllowed),
        },
        ["transfers", id, "envelope"] if valid_id(id) => match method {
            "PUT" => Ok(Route::Post((*id).to_owned())),
            "GET" => Ok(Route::Fetch((*id).to_owned())),
            _ => Err(RequestError::MethodNotAllowed),
        },
        ["transfers", id, "ack"] if valid_id(id) => {
            allow(method == "POST", Route::Ack((*id).to_owned()))
        }
        _ => Err(RequestError::NotFound),
    }
}

/// The MC service identities a token carries.
fn identities(t: &AccessToken) -> Vec<&str> {
    let i = &t.identities;
    [&i.mcptt, &i.mcvideo, &i.mcdata]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect()
}

/// A refusal.
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

impl From<RelayStoreError> for Refusal {
    fn from(e: RelayStoreError) -> Self {
        tracing::error!(error = %e, "relay store");
        refuse(500, "internal error")
    }
}

/// The JSON of a transfer.
fn transfer_json(t: &Transfer) -> Value {
    json!({
        "id": t.id,
        "source": t.source,
        "target": t.target,
        "purpose": t.purpose.name(),
        "state": t.state.name(),
        "created": t.created,
        "expires": t.expires,
    })
}

/// Answers and refusals by status (exact; the log lines are throttled).
#[derive(Debug, Default)]
pub struct Counters(Mutex<BTreeMap<u16, u64>>);

impl Counters {
    fn count(&self, status: u16) {
        let mut m = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *m.entry(status).or_default() += 1;
    }

    /// The counts by status.
    #[must_use]
    pub fn snapshot(&self) -> BTreeMap<u16, u64> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// What the relay needs to answer.
#[derive(Debug)]
pub struct RelayService {
    config: RelayConfig,
    store: RelayStore,
    jwks: Jwks,
    policy: TokenPolicy,
    /// Exact counts by status.
    pub counters: Counters,
    refusals: LogThrottle,
}

fn log_summary(s: &Summary) {
    tracing::warn!(
        count = s.count,
        total = s.total,
        reasons = %s.reasons,
        callers = %s.samples,
        "relay requests refused"
    );
}

impl RelayService {
    /// The service over its parts.
    #[must_use]
    pub fn new(config: RelayConfig, store: RelayStore, jwks: Jwks) -> Self {
        let t = &config.access_token;
        let policy = TokenPolicy {
            issuer: t.issuer.clone(),
            audience: t.audience.clone(),
            leeway_secs: t.leeway.as_secs(),
        };
        Self {
            config,
            store,
            jwks,
            policy,
            counters: Counters::default(),
            refusals: LogThrottle::new(LOG_INTERVAL),
        }
    }

    /// The store (for the sweep and for inspection).
    #[must_use]
    pub fn store(&self) -> &RelayStore {
        &self.store
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    /// Answers one request at `now` (Unix seconds).
    pub fn handle(
        &self,
        method: &str,
        path: &str,
        authorization: Option<&str>,
        body: &[u8],
        now: u64,
        rng: &mut dyn Random,
    ) -> Answer {
        let mut who = None;
        let answer = self.answer(method, path, authorization, body, now, rng, &mut who);
        match answer {
            Ok(a) => {
                self.counters.count(a.status);
                a
            }
            Err(r) => self.refused(&r, who.as_deref()),
        }
    }

    /// A refusal decided before the service saw the request (body too large or late).
    pub fn refused_early(&self, status: u16, reason: &str) -> Answer {
        self.refused(&refuse(status, reason), None)
    }

    fn refused(&self, r: &Refusal, who: Option<&str>) -> Answer {
        self.counters.count(r.status);
        if let Some(s) = self.refusals.record(
            SystemTime::now(),
            who,
            &format!("{} {}", r.status, r.reason),
        ) {
            log_summary(&s);
        }
        Answer {
            status: r.status,
            content_type: JSON_TYPE,
            body: json!({ "error": r.reason }).to_string().into_bytes(),
        }
    }

    /// The throttled line of refusals not yet logged, when due.
    pub fn flush_log(&self) {
        if let Some(s) = self.refusals.flush(SystemTime::now()) {
            log_summary(&s);
        }
    }

    /// Everything not yet logged, and the totals by status (at shutdown).
    pub fn flush_log_all(&self) {
        if let Some(s) = self.refusals.flush_all(SystemTime::now()) {
            log_summary(&s);
        }
        tracing::info!(totals = ?self.counters.snapshot(), "relay answers by status");
    }

    /// Expires the transfers whose time is over and prunes the replay digests whose time is
    /// over (at most [`super::store::PRUNE_BATCH`] a call).
    pub fn sweep(&self, now: u64) {
        match self.store.sweep(now) {
            Ok(0) => {}
            Ok(n) => tracing::info!(expired = n, "relay transfers expired"),
            Err(e) => tracing::error!(error = %e, "relay sweep"),
        }
        match self.store.prune_seen(now, super::store::PRUNE_BATCH) {
            Ok(0) => {}
            Ok(n) => tracing::debug!(pruned = n, "relay replay digests pruned"),
            Err(e) => tracing::error!(error = %e, "relay prune"),
        }
    }

    /// The ids waiting for the caller: the token is checked; the long-poll wait is the
    /// server's.
    ///
    /// # Errors
    /// The refusal, as an answer.
    pub fn inbox_ids(&self, authorization: Option<&str>, now: u64) -> Result<Vec<String>, Answer> {
        let t = authenticate(authorization, &self.jwks, &self.policy, now)
            .map_err(|e| self.refused(&e.into(), None))?;
        self.store
            .inbox(&identities(&t), now, MAX_INBOX)
            .map_err(|e| self.refused(&e.into(), None))
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
        who: &mut Option<String>,
    ) -> Result<Answer, Refusal> {
        let route = route(method, path)?;
        let token = authenticate(authorization, &self.jwks, &self.policy, now)?;
        let ids = identities(&token);
        *who = ids.first().map(|s| (*s).to_owned());
        // Expired transfers are never served, sweep or not.
        self.store.sweep(now)?;
        let ok = |v: Value| Answer {
            status: 200,
            content_type: JSON_TYPE,
            body: v.to_string().into_bytes(),
        };
        match route {
            Route::Inbox => {
                let list = self.store.inbox(&ids, now, MAX_INBOX)?;
                Ok(ok(json!({ "transfers": list })))
            }
            Route::Open => self.open(&ids, body, now, rng).map(|v| Answer {
                status: 201,
                ..ok(v)
            }),
            Route::Status(id) => {
                let t = self.known(&id)?;
                if !ids.contains(&t.source.as_str()) && !ids.contains(&t.target.as_str()) {
                    return Err(refuse(403, "neither the source nor the target"));
                }
                Ok(ok(transfer_json(&t)))
            }
            Route::Revoke(id) => {
                let t = self.known(&id)?;
                let me = self.source_of(&t, &ids)?;
                if self.store.finish(
                    &id,
                    &[State::Open, State::Posted],
                    State::Revoked,
                    me,
                    "revoke",
                    now,
                )? {
                    Ok(ok(json!({ "id": id, "state": "revoked" })))
                } else {
                    Err(refuse(409, format!("transfer is {}", t.state.name())))
                }
            }
            Route::Post(id) => self.post(&id, &ids, body, now).map(ok),
            Route::Fetch(id) => {
                let t = self.known(&id)?;
                let me = self.target_of(&t, &ids)?;
                self.deliverable(&t)?;
                // The policy now, not as it was when the transfer was opened.
                if !self.config.allows(&t.source, &t.target, t.purpose) {
                    self.store.audit(me, now, &id, "refuse-fetch-policy")?;
                    return Err(refuse(403, "no policy allows this transfer now"));
                }
                let envelope = self
                    .store
                    .envelope(&id)?
                    .ok_or_else(|| refuse(410, "envelope gone"))?;
                self.store.audit(me, now, &id, "fetch")?;
                Ok(Answer {
                    status: 200,
                    content_type: MIKEY_TYPE,
                    body: envelope,
                })
            }
            Route::Ack(id) => {
                let t = self.known(&id)?;
                let me = self.target_of(&t, &ids)?;
                self.deliverable(&t)?;
                if self
                    .store
                    .finish(&id, &[State::Posted], State::Delivered, me, "ack", now)?
                {
                    Ok(ok(json!({ "id": id, "state": "delivered" })))
                } else {
                    Err(refuse(409, "transfer changed state"))
                }
            }
        }
    }

    fn known(&self, id: &str) -> Result<Transfer, Refusal> {
        self.store
            .get(id)?
            .ok_or_else(|| refuse(404, "no such transfer"))
    }

    fn source_of<'a>(&self, t: &Transfer, ids: &[&'a str]) -> Result<&'a str, Refusal> {
        ids.iter()
            .copied()
            .find(|i| *i == t.source)
            .ok_or_else(|| refuse(403, "not the source of the transfer"))
    }

    fn target_of<'a>(&self, t: &Transfer, ids: &[&'a str]) -> Result<&'a str, Refusal> {
        ids.iter()
            .copied()
            .find(|i| *i == t.target)
            .ok_or_else(|| refuse(403, "not the target of the transfer"))
    }

    /// \[CHOICE\] docs/relay.md §6 "statuses": a transfer revoked or expired is 410 Gone; one
    /// already delivered is 409 (the target itself acknowledged it); one not yet posted 409.
    fn deliverable(&self, t: &Transfer) -> Result<(), Refusal> {
        match t.state {
            State::Posted => Ok(()),
            State::Revoked | State::Expired => {
                Err(refuse(410, format!("transfer {}", t.state.name())))
            }
            State::Delivered => Err(refuse(409, "transfer already delivered")),
            State::Open => Err(refuse(409, "no envelope posted yet")),
        }
    }

    fn open(
        &self,
        ids: &[&str],
        body: &[u8],
        now: u64,
        rng: &mut dyn Random,
    ) -> Result<Value, Refusal> {
        if body.len() > MAX_JSON {
            return Err(refuse(413, "body over the limit"));
        }
        let v: Value = serde_json::from_slice(body).map_err(|_| refuse(400, "body is not JSON"))?;
        let field = |k: &str| v.get(k).and_then(Value::as_str);
        let target = field("target").ok_or_else(|| refuse(400, "target missing"))?;
        let purpose = field("purpose")
            .and_then(Purpose::parse)
            .ok_or_else(|| refuse(400, "purpose must be gmk, pck or csk"))?;
        if target.is_empty() || target.len() > 1024 || target.chars().any(char::is_control) {
            return Err(refuse(400, "target malformed"));
        }
        // [CHOICE] docs/relay.md §6 "source": the token's identity named by "source", else its
        // first (mcptt_id, mcvideo_id, mcdata_id).
        let source = match field("source") {
            Some(s) => *ids
                .iter()
                .find(|i| **i == s)
                .ok_or_else(|| refuse(403, "source not in the token"))?,
            None => *ids
                .first()
                .ok_or_else(|| refuse(403, "token carries no identity"))?,
        };
        if !self.config.allows(source, target, purpose) {
            return Err(refuse(403, "no policy allows this transfer"));
        }
        let expect = self.expect(source, target);
        let target_uid = envelope::current_uid(&expect, target, now)
            .map_err(|_| refuse(400, "target malformed"))?;
        let mut raw = [0u8; 16];
        rng.fill(&mut raw)
            .map_err(|_| refuse(500, "no randomness"))?;
        let t = Transfer {
            id: hex::encode(raw),
            source: source.to_owned(),
            target: target.to_owned(),
            purpose,
            state: State::Open,
            created: now,
            expires: now.saturating_add(self.config.transfer_ttl.as_secs()),
        };
        if !self.store.create(&t, self.config.max_open_per_source)? {
            return Err(refuse(429, "too many open transfers"));
        }
        Ok(json!({
            "id": t.id,
            "target": t.target,
            "target_uid": hex::encode(target_uid),
            "kms_uri": self.config.kms_uri,
            "expires": t.expires,
        }))
    }

    fn expect<'a>(&'a self, source: &'a str, target: &'a str) -> Expect<'a> {
        Expect {
            source,
            target,
            kms_uri: &self.config.kms_uri,
            period: self.config.user_key_period,
            offset: self.config.user_key_offset,
            kpak: &self.config.kpak,
        }
    }

    fn post(&self, id: &str, ids: &[&str], body: &[u8], now: u64) -> Result<Value, Refusal> {
        let t = self.known(id)?;
        let me = self.source_of(&t, ids)?;
        if body.len() > self.config.max_envelope {
            return Err(refuse(413, "envelope over the limit"));
        }
        match t.state {
            State::Open => {}
            State::Revoked | State::Expired => {
                return Err(refuse(410, format!("transfer {}", t.state.name())));
            }
            State::Posted | State::Delivered => return Err(refuse(409, "envelope already posted")),
        }
        // [CHOICE] docs/relay.md §6 "statuses": malformed 400; well-formed but for another
        // target or not signed by the source 422.
        let digest = match envelope::check(body, &self.expect(&t.source, &t.target), now) {
            Ok(d) => d,
            Err(e) => {
                self.store.audit(me, now, id, "refuse-envelope")?;
                return Err(match e {
                    EnvelopeError::Malformed(_) => refuse(400, e.to_string()),
                    _ => refuse(422, e.to_string()),
                });
            }
        };
        // [CHOICE] docs/relay.md §6 "replay": a digest is kept until the key period it was
        // accepted in ends; after that the envelope fails the signer check anyway.
        let c = &self.config;
        let seen_until = envelope::period_end(now, c.user_key_period, c.user_key_offset);
        match self.store.post(id, me, body, &digest, now, seen_until)? {
            Posted::Stored => Ok(json!({ "id": id, "state": "posted" })),
            Posted::Replay => {
                self.store.audit(me, now, id, "refuse-replay")?;
                Err(refuse(409, "envelope replayed"))
            }
            Posted::NotOpen => Err(refuse(409, "envelope already posted")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_route_and_others_get_404_or_405() {
        let id = "0123456789abcdef0123456789abcdef";
        let t = format!("/relay/v1/transfers/{id}");
        assert_eq!(route("POST", "/relay/v1/transfers"), Ok(Route::Open));
        assert_eq!(route("GET", "/relay/v1/inbox"), Ok(Route::Inbox));
        assert_eq!(route("GET", &t), Ok(Route::Status(id.into())));
        assert_eq!(route("DELETE", &t), Ok(Route::Revoke(id.into())));
        assert_eq!(
            route("PUT", &format!("{t}/envelope")),
            Ok(Route::Post(id.into()))
        );
        assert_eq!(
            route("GET", &format!("{t}/envelope")),
            Ok(Route::Fetch(id.into()))
        );
        assert_eq!(
            route("POST", &format!("{t}/ack")),
            Ok(Route::Ack(id.into()))
        );
        for p in [
            "/",
            "/relay/v1",
            "/relay/v2/inbox",
            "/relay/v1/transfers/XYZ",
            "/relay/v1/transfers/0123456789ABCDEF0123456789ABCDEF",
            &format!("{t}/other"),
            &format!("{t}/envelope/x"),
        ] {
            assert_eq!(route("GET", p), Err(RequestError::NotFound), "{p}");
        }
        for (m, p) in [
            ("GET", "/relay/v1/transfers".to_owned()),
            ("POST", "/relay/v1/inbox".to_owned()),
            ("PUT", t.clone()),
            ("POST", format!("{t}/envelope")),
            ("GET", format!("{t}/ack")),
        ] {
            assert_eq!(route(m, &p), Err(RequestError::MethodNotAllowed), "{m} {p}");
        }
    }
}
