//! The check of an envelope (a MIKEY-SAKKE I_MESSAGE, RFC 6509) before the relay stores it:
//! its structure, that its responder names the transfer's target, and the source's ECCSI
//! signature. The relay cannot open the SAKKE payload and does not try.

use thiserror::Error;

use crate::ibe::{Kpak, SAKKE_ENCAP_LEN, eccsi, uid_format2};
use crate::kms::issue::NTP_UNIX_OFFSET;
use crate::mikey::{DataType, IdRole, MessageView, SignType};

/// Why an envelope was refused (never carries its octets).
#[non_exhaustive]
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum EnvelopeError {
    /// Not a MIKEY message, or not a SAKKE I_MESSAGE with IDRr, SAKKE and an ECCSI SIGN.
    #[error("malformed envelope: {0}")]
    Malformed(String),
    /// The IDRr (or responder UID) names another identity than the transfer's target.
    #[error("envelope is for another target")]
    WrongTarget,
    /// The signature does not verify as the source's.
    #[error("the source's signature does not verify")]
    BadSignature,
}

/// What the check needs from the transfer and the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// The source identity (the signer).
    pub source: &'a str,
    /// The target identity (the IDRr).
    pub target: &'a str,
    /// The KMS URI of both.
    pub kms_uri: &'a str,
    /// `UserKeyPeriod`, seconds.
    pub period: u64,
    /// `UserKeyOffset`, seconds.
    pub offset: u64,
    /// The KMS's KPAK.
    pub kpak: &'a Kpak,
}

/// The key period number of Unix time `now` (TS 33.180: from the NTP epoch, less the offset).
#[must_use]
pub fn period_no(now: u64, period: u64, offset: u64) -> u64 {
    now.saturating_add(NTP_UNIX_OFFSET).saturating_sub(offset) / period.max(1)
}

/// The UID format 2 of `uri` in the current key period.
///
/// # Errors
/// [`EnvelopeError::Malformed`] for an identity too long to encode.
pub fn current_uid(e: &Expect<'_>, uri: &str, now: u64) -> Result<[u8; 32], EnvelopeError> {
    uid_format2(
        uri,
        e.kms_uri,
        e.period,
        e.offset,
        period_no(now, e.period, e.offset),
    )
    .map_err(|err| EnvelopeError::Malformed(err.to_string()))
}

/// Checks `envelope` for a transfer at `now`: a MIKEY message of data type SAKKE with a SAKKE
/// payload of 273 octets, an IDRr whose URI is `target` (and, when present, a responder UID
/// that is the target's current UID), and a last SIGN payload of type ECCSI whose signature
/// over the octets before it verifies under the KPAK for the source's current UID.
///
/// \[CHOICE\] docs/relay.md §6 "signer UID": only the current key period's UID is accepted
/// for the signer and the responder; a message signed with the previous period's key at the
/// boundary is refused, and the source signs again.
///
/// # Errors
/// [`EnvelopeError`].
pub fn check(envelope: &[u8], e: &Expect<'_>, now: u64) -> Result<(), EnvelopeError> {
    let bad = |m: &str| EnvelopeError::Malformed(m.into());
    let view =
        MessageView::decode(envelope).map_err(|err| EnvelopeError::Malformed(err.to_string()))?;
    if view.hdr().data_type != DataType::SAKKE {
        return Err(bad("not a SAKKE I_MESSAGE"));
    }
    let sakke = view.sakke().ok_or_else(|| bad("no SAKKE payload"))?;
    if sakke.data.len() != SAKKE_ENCAP_LEN {
        return Err(bad("SAKKE data is not 273 octets"));
    }
    let idrr = view.idr(IdRole::IDRR).ok_or_else(|| bad("no IDRr"))?;
    if idrr.data != e.target.as_bytes() {
        return Err(EnvelopeError::WrongTarget);
    }
    if let Some(uid) = view.idr(IdRole::IDRUIDR)
        && uid.data != current_uid(e, e.target, now)?
    {
        return Err(EnvelopeError::WrongTarget);
    }
    let sign = view.sign().ok_or_else(|| bad("no SIGN payload"))?;
    if sign.sign_type != SignType::ECCSI {
        return Err(bad("SIGN is not ECCSI"));
    }
    let signed = view.mac_input().ok_or_else(|| bad("no signed octets"))?;
    let uid = current_uid(e, e.source, now)?;
    eccsi::verify(e.kpak, &uid, signed, sign.signature).map_err(|_| EnvelopeError::BadSignature)
}
