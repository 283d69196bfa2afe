//! Step 4 of the client's checks (docs/mcx.md §3.3, §10): the KMS certificate and the key
//! material of every key set, against the certificate and the UID the client computes itself.
//! Sans-IO: the response has already passed structure, signature and decryption.

use super::KmsClientError;
use crate::ibe::{
    self, ECCSI_POINT_LEN, Kpak, Rsk, SAKKE_POINT_LEN, SakkePublic, Ssk, eccsi, sakke,
};
use crate::kms::Secret;
use crate::kms::messages::{KeyContent, KmsCertificate, KmsKeySet};

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// The key period number holding `unix_secs`:
/// ⌊(NTP seconds − UserKeyOffset) / UserKeyPeriod⌋, or `None` for a period of 0 or a time
/// before the offset.
///
/// \[CHOICE\] docs/mcx.md §10 (profile.md §6): time in NTP seconds since 1900-01-01, as the
/// reference implementation computes it from the MIKEY timestamp (one reference KMS example
/// counts from the Unix epoch instead).
#[must_use]
pub fn key_period_no(unix_secs: u64, period: u64, offset: u64) -> Option<u64> {
    let ntp = unix_secs.checked_add(NTP_UNIX_OFFSET)?;
    ntp.checked_sub(offset)?.checked_div(period)
}

/// How far a key set's period may be from the one asked for.
///
/// \[CHOICE\] docs/mcx.md §10 (profile.md §6): one period either side. A KMS may hand out the
/// next period's keys ahead, and near a boundary its clock and the client's may name
/// neighbouring periods; anything further is refused (a replayed old response, a wrong clock).
pub const KEY_PERIOD_WINDOW: u64 = 1;

/// A user's verified key material for one key period, with the KMS public keys and the
/// parameters of its UID: what MIKEY-SAKKE needs (sign and verify with ECCSI, decapsulate with
/// SAKKE). Secrets (SSK, RSK) zeroize on drop and print `[REDACTED]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMaterial {
    /// The user's URI (MC service ID).
    pub user_uri: String,
    /// The KMS URI (`KmsUri` of the certificate).
    pub kms_uri: String,
    /// `UserKeyPeriod`, seconds.
    pub user_key_period: u64,
    /// `UserKeyOffset`, seconds.
    pub user_key_offset: u64,
    /// `KeyPeriodNo`.
    pub key_period_no: u64,
    /// UID format 2 of (user, KMS, period, offset, period number), computed by the client.
    pub uid: [u8; 32],
    /// ECCSI Secret Signing Key.
    pub ssk: Ssk,
    /// ECCSI Public Validation Token, `04 ‖ x ‖ y`.
    pub pvt: [u8; ECCSI_POINT_LEN],
    /// SAKKE Receiver Secret Key, `04 ‖ x ‖ y`.
    pub rsk: Rsk,
    /// The KMS Public Authentication Key (ECCSI), `04 ‖ x ‖ y`.
    pub kpak: [u8; ECCSI_POINT_LEN],
    /// The KMS public key Z (SAKKE), `04 ‖ x ‖ y`.
    pub z: [u8; SAKKE_POINT_LEN],
}

fn cert_err(what: &str) -> KmsClientError {
    KmsClientError::Certificate(what.to_owned())
}

/// The public keys of a certificate this client can use: UID format 2, parameter set 1, not
/// revoked, a key period, KPAK on P-256 and Z on the SAKKE curve in the subgroup of order q.
///
/// # Errors
/// [`KmsClientError::Certificate`] naming what is wrong.
pub fn certificate(c: &KmsCertificate) -> Result<(Kpak, SakkePublic), KmsClientError> {
    if c.user_id_format.trim() != "2" {
        return Err(cert_err("UserIdFormat is not 2 (UID format 2)"));
    }
    if c.parameter_set.is_some_and(|p| p != 1) {
        return Err(cert_err("ParameterSet is not 1"));
    }
    if c.revoked == Some(true) {
        return Err(cert_err("the certificate is revoked"));
    }
    if c.user_key_period == 0 {
        return Err(cert_err("UserKeyPeriod is 0"));
    }
    if c.kms_uri.is_empty() {
        return Err(cert_err("empty KmsUri"));
    }
    let kpak = Kpak::from_octets(&c.pub_auth_key)
        .map_err(|e| KmsClientError::Certificate(format!("PubAuthKey: {e}")))?;
    let z = SakkePublic::from_octets(&c.pub_enc_key)
        .map_err(|e| KmsClientError::Certificate(format!("PubEncKey: {e}")))?;
    Ok((kpak, z))
}

fn plain(k: &KeyContent) -> Option<&Secret> {
    match k {
        KeyContent::Plain(s) => Some(s),
        KeyContent::Encrypted(_) => None,
    }
}

fn length(what: &'static str, expected: usize, got: usize) -> ibe::IbeError {
    ibe::IbeError::Length {
        what,
        expected,
        got,
    }
}

/// One key set against the certificate, whatever its key period: user, KMS, revocation, the
/// UID the client computes for (user, KMS URI, period, offset, `KeyPeriodNo`), then RFC 6507
/// §5.1.2 (SSK/PVT) and RFC 6508 §6.1.2 (RSK). [`key_sets`] adds the key period window.
///
/// # Errors
/// As [`key_sets`], but for [`KmsClientError::UnexpectedKeyPeriod`].
pub fn validate_key_set(
    cert: &KmsCertificate,
    user_uri: &str,
    set: &KmsKeySet,
) -> Result<KeyMaterial, KmsClientError> {
    let (kpak, z) = certificate(cert)?;
    key_set(cert, &kpak, &z, user_uri, set)
}

fn key_set(
    cert: &KmsCertificate,
    kpak: &Kpak,
    z: &SakkePublic,
    user_uri: &str,
    set: &KmsKeySet,
) -> Result<KeyMaterial, KmsClientError> {
    let period_no = set.key_period_no;
    if set.user_uri != user_uri {
        return Err(KmsClientError::WrongUser);
    }
    if set.kms_uri != cert.kms_uri {
        return Err(KmsClientError::WrongKms);
    }
    if set.revoked == Some(true) {
        return Err(KmsClientError::Revoked { period_no });
    }
    let uid = ibe::uid_format2(
        user_uri,
        &cert.kms_uri,
        cert.user_key_period,
        cert.user_key_offset,
        period_no,
    )
    .map_err(|e| KmsClientError::InvalidRequest(e.to_string()))?;
    if !crate::crypto::ct_eq(&uid, &set.user_id) {
        return Err(KmsClientError::UidMismatch { period_no });
    }
    let eccsi_err = |source| KmsClientError::InvalidSskPvt { period_no, source };
    let ssk = plain(&set.ssk).ok_or(KmsClientError::Response(crate::kms::KmsError::Structure(
        "UserSigningKeySSK still encrypted".into(),
    )))?;
    let pvt = plain(&set.pvt).ok_or(KmsClientError::Response(crate::kms::KmsError::Structure(
        "UserPubTokenPVT still encrypted".into(),
    )))?;
    let rsk = plain(&set.rsk).ok_or(KmsClientError::Response(crate::kms::KmsError::Structure(
        "UserDecryptKey still encrypted".into(),
    )))?;
    let ssk = Ssk::from_slice(ssk.expose())
        .map_err(|_| eccsi_err(length("SSK", 32, ssk.expose().len())))?;
    let pvt: [u8; ECCSI_POINT_LEN] = pvt
        .expose()
        .try_into()
        .map_err(|_| eccsi_err(length("PVT", ECCSI_POINT_LEN, pvt.expose().len())))?;
    eccsi::validate(kpak, &uid, &ssk, &pvt).map_err(eccsi_err)?;
    let rsk_err = |source| KmsClientError::InvalidRsk { period_no, source };
    let rsk = Rsk::from_slice(rsk.expose())
        .map_err(|_| rsk_err(length("RSK", SAKKE_POINT_LEN, rsk.expose().len())))?;
    sakke::validate_rsk(z, &uid, &rsk).map_err(rsk_err)?;
    Ok(KeyMaterial {
        user_uri: user_uri.to_owned(),
        kms_uri: cert.kms_uri.clone(),
        user_key_period: cert.user_key_period,
        user_key_offset: cert.user_key_offset,
        key_period_no: period_no,
        uid,
        ssk,
        pvt,
        rsk,
        kpak: kpak.to_octets(),
        z: z.to_octets(),
    })
}

/// Every key set of a KmsKeyProv for `user_uri`, asked for the period holding `at_unix_secs`,
/// against the (already trusted) certificate `cert`. All or nothing: the first refusal is
/// returned and no material.
///
/// # Errors
/// The first refusal: [`KmsClientError::Certificate`], [`KmsClientError::WrongUser`],
/// [`KmsClientError::WrongKms`], [`KmsClientError::Revoked`],
/// [`KmsClientError::UnexpectedKeyPeriod`], [`KmsClientError::UidMismatch`],
/// [`KmsClientError::InvalidSskPvt`], [`KmsClientError::InvalidRsk`].
pub fn key_sets(
    cert: &KmsCertificate,
    user_uri: &str,
    sets: &[KmsKeySet],
    at_unix_secs: u64,
) -> Result<Vec<KeyMaterial>, KmsClientError> {
    let (kpak, z) = certificate(cert)?;
    let expected = key_period_no(at_unix_secs, cert.user_key_period, cert.user_key_offset)
        .ok_or_else(|| cert_err("UserKeyOffset after the time asked for"))?;
    // The cheap checks of every key set first, then the key material.
    for s in sets {
        if s.key_period_no.abs_diff(expected) > KEY_PERIOD_WINDOW {
            return Err(KmsClientError::UnexpectedKeyPeriod {
                found: s.key_period_no,
                expected,
            });
        }
    }
    sets.iter()
        .map(|s| key_set(cert, &kpak, &z, user_uri, s))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_period_number_counts_from_the_ntp_epoch() {
        // The reference: NTP 3968437672 with period 16777215, offset 0 is period 236.
        let unix = 3_968_437_672 - NTP_UNIX_OFFSET;
        assert_eq!(key_period_no(unix, 16_777_215, 0), Some(236));
        assert_eq!(key_period_no(unix, 0, 0), None);
        assert_eq!(key_period_no(0, 10, NTP_UNIX_OFFSET + 1), None);
        assert_eq!(key_period_no(0, 10, NTP_UNIX_OFFSET), Some(0));
    }
}
