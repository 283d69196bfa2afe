//! The Nbsp_GBA client (TS 29.309): the 5G service-based replacement of Zn. The BM-SC, as a NAF,
//! asks the BSF for the NAF keys of a B-TID with `POST
//! {apiRoot}/nbsp-gba/v1/bootstrapping-info-retrieval` (operation BootstrappingInfoRetrieval)
//! and gets the same [`SubscriberKeys`] as from Zn (docs/key-sources-5g.md §1).

use std::time::SystemTime;

use hyper::StatusCode;
use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;
use tracing::debug;
use zeroize::Zeroize as _;

use super::sbi::{SbiClient, SbiSettings, hex_key, parse_body};
use super::{GbaKeys, KeySource, KeySourceError, NafId, SubscriberKeys, UA_ID_MBMS};
use crate::bmsc::config::parse_rfc3339;
use crate::crypto::{KsExtNaf, KsIntNaf, KsNaf};

/// The resource of the operation, below `{apiRoot}`.
pub const PATH: &str = "/nbsp-gba/v1/bootstrapping-info-retrieval";

/// `BootstrappingInfoRequest` (TS 29.309 §6.1.6.2.2).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BootstrappingInfoRequest<'a> {
    bt_id: &'a str,
    naf_id: NafIdJson<'a>,
    gba_u_aware: bool,
}

/// `NafId`: the FQDN and the Ua security protocol id as 10 hex digits.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NafIdJson<'a> {
    naf_fqdn: &'a str,
    ua_sec_prot_id: String,
}

/// `BootstrappingInfoResponse` (TS 29.309 §6.1.6.2.3): the fields the BM-SC uses. `ussList`,
/// `gbaType` and `bootstrappingInfoCreationTime` are accepted and not interpreted.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BootstrappingInfoResponse {
    me_key_material: String,
    uicc_key_material: Option<String>,
    key_expiry_time: Option<String>,
    impi: Option<String>,
}

impl Drop for BootstrappingInfoResponse {
    fn drop(&mut self) {
        self.me_key_material.zeroize();
        self.uicc_key_material.zeroize();
    }
}

/// A [`KeySource`] asking a BSF over Nbsp_GBA.
#[derive(Debug)]
pub struct NbspKeySource {
    client: SbiClient,
    naf_id: NafId,
}

impl NbspKeySource {
    /// A source for the BM-SC `fqdn` (NAF_Id = fqdn ‖ 0100000001) whose requests run on
    /// `handle`'s runtime.
    #[must_use]
    pub fn new(fqdn: &str, settings: &SbiSettings, handle: Handle) -> Self {
        Self {
            client: SbiClient::new(settings, handle, "nbsp"),
            naf_id: NafId::mbms(fqdn),
        }
    }

    /// The client's counters (requests, outcomes, latency), for the BM-SC's `/metrics`.
    #[must_use]
    pub fn metrics(&self) -> std::sync::Arc<super::sbi::SbiMetrics> {
        self.client.metrics()
    }
}

/// \[CHOICE\] docs/profile.md §6, docs/key-sources-5g.md §1: how an Nbsp_GBA or Naanf_AKMA
/// error answer maps to a [`KeySourceError`]. TS 29.309 and TS 29.535 define no cause for an
/// unknown or expired identifier in the files at hand, so the status decides: 404 (and 204 on
/// Naanf_AKMA) → unknown (the UE must bootstrap again: 401), 403 → not authorized (403),
/// anything else → unavailable (503 with Retry-After).
pub(crate) fn map_error(answer: &super::sbi::Answer) -> KeySourceError {
    match answer.status {
        StatusCode::NOT_FOUND | StatusCode::NO_CONTENT => KeySourceError::UnknownBtid,
        StatusCode::FORBIDDEN => KeySourceError::NotAuthorized,
        _ => KeySourceError::Unavailable(answer.describe()),
    }
}

/// `keyExpiryTime`: required here although optional in the schema (docs/key-sources-5g.md §1):
/// keys without a lifetime cannot be cached or expired.
pub(crate) fn expiry(
    field: &str,
    text: Option<&str>,
    now: SystemTime,
) -> Result<SystemTime, KeySourceError> {
    let text =
        text.ok_or_else(|| KeySourceError::Unavailable(format!("answer without {field}")))?;
    let at =
        parse_rfc3339(text).map_err(|e| KeySourceError::Unavailable(format!("{field}: {e}")))?;
    if at <= now {
        return Err(KeySourceError::Expired);
    }
    Ok(at)
}

/// The subscriber identity of an answer, bounded like a configured IMPI: 1 to 255 octets of
/// printable ASCII, else the answer is refused as broken.
pub(crate) fn checked_identity(identity: String, id: &str) -> Result<String, KeySourceError> {
    if identity.is_empty()
        || identity.len() > 255
        || !identity.bytes().all(|b| (0x21..=0x7e).contains(&b))
    {
        return Err(KeySourceError::Unavailable(format!(
            "answer for {id}: the subscriber identity is not 1 to 255 printable ASCII octets"
        )));
    }
    Ok(identity)
}

impl KeySource for NbspKeySource {
    fn lookup(&self, btid: &str, now: SystemTime) -> Result<SubscriberKeys, KeySourceError> {
        let parsed = btid.parse().map_err(|_| KeySourceError::UnknownBtid)?;
        let request = BootstrappingInfoRequest {
            bt_id: btid,
            naf_id: NafIdJson {
                naf_fqdn: self.naf_id.fqdn(),
                ua_sec_prot_id: hex::encode(UA_ID_MBMS),
            },
            gba_u_aware: true,
        };
        let body = serde_json::to_vec(&request)
            .map_err(|e| KeySourceError::Unavailable(format!("request: {e}")))?;
        let answer = self.client.post_json(PATH, body)?;
        if answer.status != StatusCode::OK {
            let err = map_error(&answer);
            debug!(btid, answer = %answer.describe(), "Nbsp_GBA: no keys");
            return Err(err);
        }
        let r: BootstrappingInfoResponse = parse_body("BootstrappingInfoResponse", &answer)?;
        let expires = expiry("keyExpiryTime", r.key_expiry_time.as_deref(), now)?;
        // TS 33.220 4.5.3: meKeyMaterial is Ks_NAF (GBA_ME) or Ks_ext_NAF (GBA_U, then with
        // uiccKeyMaterial = Ks_int_NAF).
        let keys = match r.uicc_key_material.as_deref() {
            None => GbaKeys::Me {
                ks_naf: hex_key("meKeyMaterial", &r.me_key_material, KsNaf::from_hex)?,
            },
            Some(uicc) => GbaKeys::U {
                ks_ext_naf: hex_key("meKeyMaterial", &r.me_key_material, KsExtNaf::from_hex)?,
                ks_int_naf: hex_key("uiccKeyMaterial", uicc, KsIntNaf::from_hex)?,
            },
        };
        Ok(SubscriberKeys {
            btid: parsed,
            // docs/key-sources-5g.md §1: without `impi`, the B-TID stands in for it.
            impi: checked_identity(r.impi.clone().unwrap_or_else(|| btid.to_owned()), btid)?,
            keys,
            expires,
        })
    }
}
