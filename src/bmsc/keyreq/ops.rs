//! The three Key Request operations after authentication (TS 33.246 6.3.2.3, 6.3.2.4): one
//! status per requested service or MSK, the change made durable in the store before it is
//! answered 200 or reported as an event.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::SystemTime;

use bytes::Bytes;
use tracing::{error, info};

use super::auth::Authenticated;
use super::{KeyRequestHandler, Request, Response};
use crate::bmsc::events::KeyRequestEvent;
use crate::bmsc::store::{Committed, MskState, Registration, StoreError, committed};
use crate::mbms::keyreq::{
    MIME_MSK_RESPONSE, MIME_REGISTER_RESPONSE, MskRef, MskRequest, MskResponse, MskStatus,
    RegisterKind, RegisterRequest, RegisterResponse, ServiceStatus, XmlError, check_service_id,
    code,
};
use crate::mikey::{KeyDomainId, MskId};

type Outcome = (Response, Vec<KeyRequestEvent>);

/// A requested service of a registration: its code, or the index of its store write.
#[derive(Debug)]
enum Item {
    Code(u16),
    Written(usize),
}

/// A registration authenticated and checked whose store writes are under way: the driver
/// awaits [`PendingRegister::take_commits`], then calls
/// [`KeyRequestHandler::finish_register`]. No 200 goes out before the writes are durable.
pub struct PendingRegister {
    who: Authenticated,
    peer: IpAddr,
    items: Vec<(String, Item)>,
    commits: Vec<Committed>,
}

impl std::fmt::Debug for PendingRegister {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingRegister")
            .field("btid", &self.who.subscriber.btid)
            .field("items", &self.items)
            .finish_non_exhaustive()
    }
}

impl PendingRegister {
    /// The completions of the registration's store writes, in order (taken once).
    pub fn take_commits(&mut self) -> Vec<Committed> {
        std::mem::take(&mut self.commits)
    }
}

fn xml_response(mime: &str, xml: String) -> Response {
    Response {
        status: 200,
        headers: vec![("content-type", mime.to_owned())],
        body: Bytes::from(xml),
    }
}

/// The answer to a body that does not parse: 413 past the parser's own bound, else 400.
fn bad_body(e: &XmlError) -> Outcome {
    let status = if matches!(e, XmlError::TooLarge { .. }) {
        413
    } else {
        400
    };
    (
        Response::text(status, &format!("malformed request body: {e}")),
        Vec::new(),
    )
}

/// Keeps the first occurrence of each value, in order.
fn unique(items: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut seen = HashSet::new();
    items
        .into_iter()
        .filter(|s| seen.insert(s.clone()))
        .collect()
}

impl KeyRequestHandler {
    pub(super) fn parse_register(
        &self,
        req: &Request,
        kind: RegisterKind,
    ) -> Result<RegisterRequest, Outcome> {
        let parsed = RegisterRequest::parse(&req.body).map_err(|e| bad_body(&e))?;
        if parsed.kind != kind {
            return Err((
                Response::text(
                    400,
                    &format!(
                        "malformed request body: <{}> does not belong at {}",
                        parsed.kind.root(),
                        kind.path()
                    ),
                ),
                Vec::new(),
            ));
        }
        Ok(parsed)
    }

    /// `<mbmsRegister>` (TS 33.246 6.3.2.3) once its body parsed, up to its durable writes: per service 400
    /// (malformed id), 404 (unknown) or 403 (IMPI not authorized) at once; the others are
    /// handed to the store, queued ([`Store::register_queued`](crate::bmsc::store::Store)) when
    /// `queue`, else written before this returns. [`KeyRequestHandler::finish_register`] answers
    /// once they completed.
    pub(super) fn register(
        &self,
        parsed: RegisterRequest,
        who: Authenticated,
        req: &Request,
        now: SystemTime,
        queue: bool,
    ) -> PendingRegister {
        let btid = &who.subscriber.btid;
        let mut commits = Vec::new();
        let items = parsed
            .service_ids
            .into_iter()
            .map(|id| {
                let item = if check_service_id(&id).is_err() {
                    Item::Code(code::MALFORMED)
                } else if !self.services.contains_key(&id) {
                    Item::Code(code::NOT_FOUND)
                } else if !self.authorizes(&id, &who.subscriber.impi) {
                    self.failure_logs
                        .registration_forbidden(now, btid.as_str(), &id);
                    Item::Code(code::FORBIDDEN)
                } else {
                    let reg = Registration {
                        btid: btid.clone(),
                        service_id: id.clone(),
                        ue_addr: req.peer,
                        registered_at: now,
                    };
                    commits.push(if queue {
                        self.store.register_queued(reg)
                    } else {
                        committed(self.store.register(&reg))
                    });
                    Item::Written(commits.len() - 1)
                };
                (id, item)
            })
            .collect();
        PendingRegister {
            who,
            peer: req.peer,
            items,
            commits,
        }
    }

    /// Answers a registration whose writes completed with `results` (one per
    /// [`PendingRegister::take_commits`] entry, in order): per service 500 when its write
    /// failed, else 200 (stored, upsert); the event names the services stored.
    #[must_use]
    pub fn finish_register(
        &self,
        pending: PendingRegister,
        results: Vec<Result<(), StoreError>>,
    ) -> (Response, Vec<KeyRequestEvent>) {
        let PendingRegister {
            who, peer, items, ..
        } = pending;
        let btid = &who.subscriber.btid;
        let mut results: Vec<Option<Result<(), StoreError>>> =
            results.into_iter().map(Some).collect();
        let mut registered = Vec::new();
        let mut store_failed = false;
        let statuses = items
            .into_iter()
            .map(|(id, item)| {
                let code = match item {
                    Item::Code(c) => c,
                    Item::Written(i) => match results.get_mut(i).and_then(Option::take) {
                        Some(Ok(())) => {
                            registered.push(id.clone());
                            code::OK
                        }
                        Some(Err(e)) => {
                            error!(btid = %btid, service = %id, error = %e, "storing registration failed");
                            store_failed |= matches!(e, StoreError::Unavailable(_));
                            code::INTERNAL
                        }
                        None => {
                            error!(btid = %btid, service = %id, "storing registration: no result");
                            code::INTERNAL
                        }
                    },
                };
                ServiceStatus {
                    service_id: id,
                    code,
                }
            })
            .collect();
        if store_failed && registered.is_empty() {
            // docs/profile.md §6 [CHOICE] "registration with the database unreachable".
            // The store's database is unreachable (a server down or restarting): nothing was
            // registered, and the UE is told to come back rather than given per-service
            // failures.
            return (unavailable(), Vec::new());
        }
        let xml = RegisterResponse { statuses }.to_xml();
        let mut events = Vec::new();
        if !registered.is_empty() {
            let service_ids = unique(registered);
            self.metrics
                .registrations_accepted
                .add(service_ids.len() as u64);
            info!(btid = %btid, ue = %peer, services = ?service_ids, "registered");
            events.push(KeyRequestEvent::Registered {
                btid: btid.clone(),
                ue_addr: peer,
                service_ids,
            });
        }
        let response = xml_response(MIME_REGISTER_RESPONSE, xml);
        let info = who.authentication_info(&response.body);
        (response.with_header("authentication-info", info), events)
    }

    /// `<mbmsDeregister>`: 503 when nothing could be removed because the database is
    /// unreachable; else per service 400 (malformed id), 404 (unknown), 500 (store failure)
    /// or 200, also when the UE was not registered (idempotent: the state asked for holds).
    /// Only services actually removed are reported, with the UE's remaining registrations.
    pub(super) fn deregister(&self, who: &Authenticated, req: &Request) -> Outcome {
        let parsed = match self.parse_register(req, RegisterKind::Deregister) {
            Ok(p) => p,
            Err(o) => return o,
        };
        let btid = &who.subscriber.btid;
        let mut removed = Vec::new();
        let mut answered = 0u64;
        let mut store_failed = false;
        let statuses = parsed
            .service_ids
            .iter()
            .map(|id| {
                let code = if check_service_id(id).is_err() {
                    code::MALFORMED
                } else if !self.services.contains_key(id) {
                    code::NOT_FOUND
                } else {
                    match self.store.deregister(btid, id) {
                        Ok(was) => {
                            if was {
                                removed.push(id.clone());
                            }
                            answered += 1;
                            code::OK
                        }
                        Err(e) => {
                            error!(btid = %btid, service = %id, error = %e, "removing registration failed");
                            store_failed |= matches!(e, StoreError::Unavailable(_));
                            code::INTERNAL
                        }
                    }
                };
                ServiceStatus {
                    service_id: id.clone(),
                    code,
                }
            })
            .collect();
        if store_failed && answered == 0 {
            // As for a registration: the database is unreachable, the UE comes back.
            return (unavailable(), Vec::new());
        }
        self.metrics.deregistrations.add(answered);
        let xml = RegisterResponse { statuses }.to_xml();
        let mut events = Vec::new();
        if !removed.is_empty() {
            match self.store.registrations_of_btid(btid) {
                Ok(regs) => {
                    let removed = unique(removed);
                    let remaining = unique(regs.into_iter().map(|r| r.service_id));
                    info!(btid = %btid, removed = ?removed, remaining = ?remaining, "deregistered");
                    events.push(KeyRequestEvent::Deregistered {
                        btid: btid.clone(),
                        ue_addr: req.peer,
                        removed,
                        remaining,
                    });
                }
                // Without the remaining services an invalidation could hit an MSK still in
                // use; the UE keeps its keys instead (it gets no new ones for these services).
                Err(e) => {
                    error!(btid = %btid, error = %e, "deregistered, but reading the remaining registrations failed: no invalidation")
                }
            }
        }
        (xml_response(MIME_REGISTER_RESPONSE, xml), events)
    }

    /// `<mbmsMskRequest>`: 503 when the registrations cannot be read because the database is
    /// unreachable; else per MSK 400 (malformed ids), 403 (the UE is registered to no
    /// service of that Key Domain ID and Key Group), 404 (no current MSK for Key Number 0, or
    /// no such MSK, or a retired one), 500 (store failure), else 200. The event keeps Key
    /// Number 0 as requested: the Key Distribution function resolves "current" when it pushes,
    /// so a rotation in between cannot make it push a superseded MSK.
    pub(super) fn msk_request(&self, who: &Authenticated, req: &Request) -> Outcome {
        let parsed = match MskRequest::parse(&req.body) {
            Ok(p) => p,
            Err(e) => return bad_body(&e),
        };
        let btid = &who.subscriber.btid;
        let groups: Result<HashSet<(KeyDomainId, u16)>, _> =
            self.store.registrations_of_btid(btid).map(|regs| {
                regs.iter()
                    .filter_map(|r| self.services.get(&r.service_id))
                    .map(|s| s.msk_group())
                    .collect()
            });
        if let Err(e) = &groups {
            error!(btid = %btid, error = %e, "reading registrations failed");
            if matches!(e, StoreError::Unavailable(_)) {
                // As for a registration: the database is unreachable, the UE comes back.
                return (unavailable(), Vec::new());
            }
        }
        let mut granted: Vec<(KeyDomainId, MskId)> = Vec::new();
        let statuses = parsed
            .msks
            .iter()
            .map(|m| {
                let code = match (m, &groups) {
                    (MskRef::Malformed { .. }, _) => code::MALFORMED,
                    (MskRef::Id(..), Err(_)) => code::INTERNAL,
                    (MskRef::Id(kd, id), Ok(groups)) => {
                        if !groups.contains(&(*kd, id.key_group)) {
                            code::FORBIDDEN
                        } else {
                            let c = self.msk_status(*kd, *id);
                            if c == code::OK && !granted.contains(&(*kd, *id)) {
                                granted.push((*kd, *id));
                            }
                            c
                        }
                    }
                };
                MskStatus {
                    msk: m.clone(),
                    code,
                }
            })
            .collect();
        let xml = MskResponse { statuses }.to_xml();
        let mut events = Vec::new();
        if !granted.is_empty() {
            self.metrics.msk_requests.add(granted.len() as u64);
            info!(btid = %btid, ue = %req.peer, msks = ?granted, "MSKs requested");
            events.push(KeyRequestEvent::MskRequested {
                btid: btid.clone(),
                ue_addr: req.peer,
                msks: granted,
            });
        }
        (xml_response(MIME_MSK_RESPONSE, xml), events)
    }

    /// Whether the store can serve MSK `id` of `kd`: Key Number 0 needs a current MSK of the
    /// Key Group; another needs that MSK, not retired. Only states are read: the keys stay
    /// sealed until the Key Distribution function pushes them.
    fn msk_status(&self, kd: KeyDomainId, id: MskId) -> u16 {
        let found = self
            .store
            .msk_states_of_group(kd, id.key_group)
            .map(|states| {
                states.iter().any(|(m, state)| {
                    if id.is_current() {
                        *state == MskState::Current
                    } else {
                        *m == id && *state != MskState::Retired
                    }
                })
            });
        match found {
            Ok(true) => code::OK,
            Ok(false) => code::NOT_FOUND,
            Err(e) => {
                error!(key_domain = %kd, msk_id = %id, error = %e, "reading MSKs failed");
                code::INTERNAL
            }
        }
    }
}

/// 503 with `Retry-After: 1`: the store's database cannot be reached now.
fn unavailable() -> Response {
    Response::text(503, "store temporarily unavailable").with_header("retry-after", "1".to_owned())
}
