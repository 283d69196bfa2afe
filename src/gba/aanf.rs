//! The AAnF client (TS 29.535 Naanf_AKMA_ApplicationKey_Get): the BM-SC, as an AKMA AF, asks
//! the AAnF for KAF with `POST {apiRoot}/naanf-akma/v1/retrieve-applicationkey` and serves 5G
//! MBS with MUK = KAF (TS 33.501 Annex W; docs/key-sources-5g.md §2, §3).
//!
//! The A-KID is the Digest username and the MIKEY IDr where GBA has the B-TID, so it travels in
//! [`SubscriberKeys::btid`].

use std::time::SystemTime;

use hyper::StatusCode;
use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;
use tracing::debug;
use zeroize::Zeroize as _;

use super::akma::{akma_keys, parse_akid};
use super::nbsp::{expiry, map_error};
use super::sbi::{SbiClient, SbiSettings, hex_key, parse_body};
use super::{KeySource, KeySourceError, SubscriberKeys};
use crate::crypto::Kaf;

/// The resource of the operation, below `{apiRoot}`.
pub const PATH: &str = "/naanf-akma/v1/retrieve-applicationkey";

/// `AkmaAfKeyRequest` (TS 29.522 §5.x, used by TS 29.535).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AkmaAfKeyRequest<'a> {
    af_id: &'a str,
    #[serde(rename = "aKId")]
    a_kid: &'a str,
}

/// `AkmaAfKeyData`: `kaf` and `expiry` are required; `supi` and `gpsi` optional.
#[derive(Deserialize)]
struct AkmaAfKeyData {
    kaf: String,
    expiry: Option<String>,
    supi: Option<String>,
    gpsi: Option<String>,
}

impl Drop for AkmaAfKeyData {
    fn drop(&mut self) {
        self.kaf.zeroize();
    }
}

/// A [`KeySource`] asking an AAnF for KAF by A-KID.
#[derive(Debug)]
pub struct AanfKeySource {
    client: SbiClient,
    af_id: String,
}

impl AanfKeySource {
    /// A source for the AF identifier `af_id`, whose requests run on `handle`'s runtime.
    #[must_use]
    pub fn new(af_id: &str, settings: &SbiSettings, handle: Handle) -> Self {
        Self {
            client: SbiClient::new(settings, handle, "aanf"),
            af_id: af_id.to_owned(),
        }
    }

    /// The client's counters (requests, outcomes, latency), for the BM-SC's `/metrics`.
    #[must_use]
    pub fn metrics(&self) -> std::sync::Arc<super::sbi::SbiMetrics> {
        self.client.metrics()
    }
}

impl KeySource for AanfKeySource {
    fn lookup(&self, akid: &str, now: SystemTime) -> Result<SubscriberKeys, KeySourceError> {
        let parsed = parse_akid(akid).map_err(|_| KeySourceError::UnknownBtid)?;
        let body = serde_json::to_vec(&AkmaAfKeyRequest {
            af_id: &self.af_id,
            a_kid: akid,
        })
        .map_err(|e| KeySourceError::Unavailable(format!("request: {e}")))?;
        let answer = self.client.post_json(PATH, body)?;
        if answer.status != StatusCode::OK {
            // 204: "the requested AKMA Application material does not exist" → unknown A-KID.
            let err = map_error(&answer);
            debug!(akid, answer = %answer.describe(), "Naanf_AKMA: no KAF");
            return Err(err);
        }
        let data: AkmaAfKeyData = parse_body("AkmaAfKeyData", &answer)?;
        let expires = expiry("expiry", data.expiry.as_deref(), now)?;
        // [CHOICE] docs/key-sources-5g.md §2: `kaf` as 64 hex digits (the schema says "string").
        let kaf = hex_key("kaf", &data.kaf, Kaf::from_hex)?;
        let identity = data
            .supi
            .clone()
            .or_else(|| data.gpsi.clone())
            .unwrap_or_else(|| akid.to_owned());
        Ok(SubscriberKeys {
            btid: parsed,
            // docs/key-sources-5g.md §2: SUPI, else GPSI, else the A-KID is the identity the
            // services' `authorized` patterns match.
            impi: super::nbsp::checked_identity(identity, akid)?,
            keys: akma_keys(&kaf),
            expires,
        })
    }
}
