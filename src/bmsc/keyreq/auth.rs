//! HTTP Digest authentication of a Key Request (RFC 7616, docs/profile.md §4): username = B-TID,
//! password = base64(MRK) of the B-TID's GBA keys from the key source.
//!
//! Every check that needs no key (syntax, repeated parameters, realm, uri, algorithm, qop, and
//! the nonce: known, fresh, its opaque, (nonce, nc) not seen) comes before the key source
//! lookup, which may be a Zn round trip to the BSF: a forged or replayed header costs none.
//! The nonce check there records nothing; nc is recorded after the response verified, so
//! only an authenticated request can advance a nonce's nc (a forged one cannot burn it).
//!
//! \[CHOICE\] docs/profile.md §6 "stale before verify": an unknown or expired nonce is
//! refused with `stale=true` before the response is verified (RFC 7616 §3.3: stale is set
//! when the nonce is invalid); a UE with wrong keys then fails on the fresh nonce, `stale`
//! absent.
//!
//! Every refusal but the first, header-less challenge counts in `digest_failures` and is
//! logged with the B-TID (when known) and the reason, never a response, hash or password;
//! the lines are throttled and escaped (`faillog`): a flood gives counts, not one line each.

use std::time::SystemTime;

use tracing::{debug, warn};
use zeroize::Zeroizing;

use super::{KeyRequestHandler, Request, Response};
use crate::bmsc::logthrottle::escape;
use crate::gba::{KeySourceError, SubscriberKeys, digest_password};
use crate::mbms::digest::{ChallengeParams, DigestResponse, Expectation, challenge};

/// A request whose Digest credentials verified.
pub(super) struct Authenticated {
    /// The subscriber: B-TID, IMPI, keys.
    pub(super) subscriber: SubscriberKeys,
    digest: DigestResponse,
    password: Zeroizing<String>,
}

impl Authenticated {
    /// The `Authentication-Info` value for a response with `body` (RFC 7616 §3.5).
    pub(super) fn authentication_info(&self, body: &[u8]) -> String {
        self.digest.authentication_info(&self.password, body)
    }
}

impl KeyRequestHandler {
    /// A 401 with a fresh challenge, or 503 when no nonce can be drawn.
    fn challenge_response(&self, now: SystemTime, stale: bool) -> Response {
        let issued = self.lock_nonces().issue(now);
        match issued {
            Ok(n) => {
                let value = challenge(&ChallengeParams {
                    realm: &self.realm,
                    nonce: &n.nonce,
                    opaque: Some(&n.opaque),
                    algorithm: self.algorithm,
                    qop: self.qop,
                    stale,
                });
                Response::text(401, "authentication required")
                    .with_header("www-authenticate", value)
            }
            Err(e) => {
                warn!(error = %e, "cannot issue a Digest nonce");
                Response::text(503, "temporarily unavailable")
                    .with_header("retry-after", "1".into())
            }
        }
    }

    /// Counts and logs a refusal, then challenges afresh.
    fn refuse(&self, now: SystemTime, btid: Option<&str>, reason: &str, stale: bool) -> Response {
        self.metrics.digest_failures.inc();
        self.failure_logs.digest(now, btid, reason);
        self.challenge_response(now, stale)
    }

    /// Authenticates `req`; the response to send instead when it does not.
    pub(super) fn authenticate(
        &self,
        req: &Request,
        now: SystemTime,
    ) -> Result<Authenticated, Response> {
        let Some(header) = req.authorization.as_deref() else {
            debug!(path = %escape(&req.path), "no Authorization: challenging");
            return Err(self.challenge_response(now, false));
        };
        let digest = match DigestResponse::parse(header) {
            Ok(d) => d,
            Err(e) => return Err(self.refuse(now, None, &e.to_string(), false)),
        };
        let btid = digest.username();
        // RFC 9110 §11.2 has each name occur once in a challenge; credentials are held to the
        // same, so a header cannot be read two ways.
        if let Some(name) = digest.repeated_parameter() {
            let reason = format!("Digest parameter {name} repeated");
            return Err(self.refuse(now, Some(btid), &reason, false));
        }
        let cheap = if digest.realm() != self.realm {
            Some("realm does not match")
        } else if digest.uri() != req.path {
            Some("uri is not the request target")
        } else if digest.algorithm() != self.algorithm {
            Some("algorithm is not the one challenged with")
        } else if !self.qop.allows(digest.qop()) {
            Some("qop was not offered")
        } else {
            None
        };
        if let Some(reason) = cheap {
            return Err(self.refuse(now, Some(btid), reason, false));
        }
        let fresh = self
            .lock_nonces()
            .check(digest.nonce(), digest.nc(), digest.opaque(), now);
        if let Err(refusal) = fresh {
            return Err(self.refuse(now, Some(btid), refusal.as_str(), refusal.is_stale()));
        }
        let subscriber = match self.key_source.lookup(btid, now) {
            Ok(s) => s,
            // docs/profile.md §4: the UE must bootstrap again; a fresh challenge, not stale.
            Err(KeySourceError::UnknownBtid) => {
                return Err(self.refuse(now, Some(btid), "unknown B-TID", false));
            }
            Err(KeySourceError::Expired) => {
                return Err(self.refuse(now, Some(btid), "GBA key lifetime over", false));
            }
            // [CHOICE] docs/profile.md §6 "Zn 5402": without keys the request cannot be
            // authenticated, so no per-item answer can be signed; the BSF's refusal covers
            // every item, so the whole request is 403.
            Err(KeySourceError::NotAuthorized) => {
                self.metrics.digest_failures.inc();
                self.failure_logs.bsf_refused(now, btid);
                return Err(Response::text(403, "not authorized for MBMS by the BSF"));
            }
            Err(KeySourceError::Unavailable(why)) => {
                self.failure_logs.unavailable(now, btid, &why.to_string());
                return Err(Response::text(503, "key source temporarily unavailable")
                    .with_header("retry-after", "5".into()));
            }
        };
        let password = digest_password(&subscriber.keys.mrk());
        let expect = Expectation {
            realm: &self.realm,
            method: &req.method,
            uri: &req.path,
            body: &req.body,
            algorithm: self.algorithm,
            qop: self.qop,
        };
        if let Err(e) = digest.verify(&expect, &password) {
            return Err(self.refuse(now, Some(btid), &e.to_string(), false));
        }
        let accepted = self
            .lock_nonces()
            .accept(digest.nonce(), digest.nc(), digest.opaque(), now);
        if let Err(refusal) = accepted {
            return Err(self.refuse(now, Some(btid), refusal.as_str(), refusal.is_stale()));
        }
        debug!(btid, impi = %subscriber.impi, qop = %digest.qop(), "Digest authenticated");
        Ok(Authenticated {
            subscriber,
            digest,
            password,
        })
    }
}
