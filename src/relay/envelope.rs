//! The check of an envelope (a MIKEY-SAKKE I_MESSAGE, RFC 6509) before the relay stores it:
//! its structure, that its responder names the transfer's target, and the source's ECCSI
//! signature. The relay cannot open the SAKKE payload and does not try.

use thiserror::Error;

use crate::ibe::{Kpak, SAKKE_ENCAP_LEN, uid_format2};
use crate::kms::issue::NTP_UNIX_OFFSET;
use crate::mcx::UnverifiedIMessage;

/// Why an envelope was refused (never carries its octets).
#[non_exhaustive]
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum EnvelopeError {
    /// Not a MIKEY message, or not a MIKEY-SAKKE I_MESSAGE of the key delivery's shape.
    #[error("malformed envelope: {0}")]
    Malformed(String),
    /// The responder UID (or the IDRr) names another identity than the transfer's target.
    #[error("envelope is for another target")]
    WrongTarget,
    /// Not signed by the source (another sender UID, or a signature that does not verify).
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

/// The Unix time at which the key period of Unix time `now` ends (the first second of the
/// next period).
#[must_use]
pub fn period_end(now: u64, period: u64, offset: u64) -> u64 {
    period_no(now, period, offset)
        .saturating_add(1)
        .saturating_mul(period.max(1))
        .saturating_add(offset)
        .saturating_sub(NTP_UNIX_OFFSET)
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

/// Checks `envelope` for a transfer at `now`: the shape of a MIKEY-SAKKE key delivery
/// ([`crate::mcx::UnverifiedIMessage`]: data type SAKKE, one T, one RAND, IDR roles 8 and 9,
/// one SAKKE payload of parameter set 1, an ECCSI SIGN) with SAKKE data of 273 octets; a
/// responder UID (role 9) that is the target's current UID, and an IDRr (role 2), when
/// present, that is the target's URI; and the source's current UID in role 8 with an ECCSI
/// signature that verifies under the KPAK — the verifier's own signature check
/// ([`crate::mcx::UnverifiedIMessage::verify_signature`]).
///
/// \[CHOICE\] docs/relay.md §6 "signer UID": only the current key period's UID is accepted
/// for the signer and the responder; a message signed with the previous period's key at the
/// boundary is refused, and the source signs again.
///
/// Returns the envelope's replay digest ([`UnverifiedIMessage::replay_digest`]: over the signed
/// octets, so that an envelope whose signature was altered without the key is the same one).
///
/// # Errors
/// [`EnvelopeError`].
pub fn check(envelope: &[u8], e: &Expect<'_>, now: u64) -> Result<[u8; 32], EnvelopeError> {
    let m = UnverifiedIMessage::parse(envelope)
        .map_err(|err| EnvelopeError::Malformed(err.to_string()))?;
    if m.sakke_data().len() != SAKKE_ENCAP_LEN {
        return Err(EnvelopeError::Malformed(
            "SAKKE data is not 273 octets".into(),
        ));
    }
    if m.receiver_uid() != current_uid(e, e.target, now)? {
        return Err(EnvelopeError::WrongTarget);
    }
    if m.responder_uri()
        .is_some_and(|uri| uri != e.target.as_bytes())
    {
        return Err(EnvelopeError::WrongTarget);
    }
    let uid = current_uid(e, e.source, now)?;
    m.verify_signature(e.kpak, &uid)
        .map_err(|_| EnvelopeError::BadSignature)?;
    Ok(m.replay_digest())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_period_ends_where_the_next_period_number_begins() {
        let (period, offset) = (2_592_000, 86_400);
        let now = 1_790_000_000;
        let end = period_end(now, period, offset);
        assert!(end > now && end - now <= period);
        assert_eq!(
            period_no(end - 1, period, offset),
            period_no(now, period, offset)
        );
        assert_eq!(
            period_no(end, period, offset),
            period_no(now, period, offset) + 1
        );
    }
}
