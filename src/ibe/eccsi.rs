//! ECCSI (RFC 6507) over NIST P-256 with SHA-256: the KMS side (KSAK → KPAK; a user's SSK and
//! PVT), the user side (SSK/PVT validation, §5.1.2), signing (§5.2.1) and verification (§5.2.2).
//!
//! Points are `04 ‖ x ‖ y` (65 octets), a signature is `r ‖ s ‖ PVT` (129 octets, RFC 6507 §3.3).

use p256::elliptic_curve::Field;
use p256::elliptic_curve::ff::PrimeField;
use p256::elliptic_curve::group::Group;
use p256::elliptic_curve::ops::Reduce;
use p256::elliptic_curve::point::AffineCoordinates;
use p256::elliptic_curve::sec1::{FromSec1Point, ToSec1Point};
use p256::{AffinePoint, FieldBytes, ProjectivePoint, Scalar};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::p256_table::{self, P256Table};
use super::p256_vartime;
use super::params::{ECCSI_N, ECCSI_POINT_LEN, ECCSI_SIG_LEN};
use super::{IbeError, Ksak, Ssk};
use crate::crypto::{Random, sha256};

/// The KMS Public Authentication Key KPAK = \[KSAK\]G (RFC 6507 §2.2).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Kpak(AffinePoint);

impl core::fmt::Debug for Kpak {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Kpak({})", hex::encode(self.to_octets()))
    }
}

impl Kpak {
    /// Decodes `04 ‖ x ‖ y` (65 octets), checking that it is on P-256 and not the identity.
    ///
    /// # Errors
    /// [`IbeError::Length`], [`IbeError::NotUncompressed`], [`IbeError::NotOnCurve`].
    pub fn from_octets(b: &[u8]) -> Result<Self, IbeError> {
        point_from(b, "KPAK").map(Self)
    }

    /// `04 ‖ x ‖ y`.
    #[must_use]
    pub fn to_octets(self) -> [u8; ECCSI_POINT_LEN] {
        point_octets(&self.0)
    }
}

fn point_from(b: &[u8], what: &'static str) -> Result<AffinePoint, IbeError> {
    if b.len() != ECCSI_POINT_LEN {
        return Err(IbeError::Length {
            what,
            expected: ECCSI_POINT_LEN,
            got: b.len(),
        });
    }
    if b.first() != Some(&0x04) {
        return Err(IbeError::NotUncompressed { what });
    }
    let p = AffinePoint::from_sec1_bytes(b).map_err(|_| IbeError::NotOnCurve { what })?;
    if bool::from(ProjectivePoint::from(p).is_identity()) {
        return Err(IbeError::NotOnCurve { what });
    }
    Ok(p)
}

fn point_octets(p: &AffinePoint) -> [u8; ECCSI_POINT_LEN] {
    let enc = p.to_sec1_point(false);
    let mut out = [0u8; ECCSI_POINT_LEN];
    if enc.as_bytes().len() == ECCSI_POINT_LEN {
        out.copy_from_slice(enc.as_bytes());
    }
    out
}

/// A scalar from exactly 32 octets in \[1, q−1\].
fn scalar_from(b: &[u8], what: &'static str) -> Result<Scalar, IbeError> {
    let arr: [u8; ECCSI_N] = b.try_into().map_err(|_| IbeError::Length {
        what,
        expected: ECCSI_N,
        got: b.len(),
    })?;
    let s: Option<Scalar> = Scalar::from_repr(FieldBytes::from(arr)).into();
    match s {
        Some(s) if !bool::from(s.is_zero()) => Ok(s),
        _ => Err(IbeError::OutOfRange { what }),
    }
}

/// A hash (or coordinate) of 32 octets reduced mod q.
fn reduce(b: &[u8; ECCSI_N]) -> Scalar {
    <Scalar as Reduce<FieldBytes>>::reduce(&FieldBytes::from(*b))
}

/// A fresh scalar in \[1, q−1\], by rejection from 32 random octets.
fn random_scalar(rng: &mut dyn Random) -> Result<Scalar, IbeError> {
    for _ in 0..64 {
        let mut b = Zeroizing::new([0u8; ECCSI_N]);
        rng.fill(&mut b[..]).map_err(|_| IbeError::Random)?;
        if let Ok(s) = scalar_from(&b[..], "random") {
            return Ok(s);
        }
    }
    Err(IbeError::Random)
}

/// HS = hash(G ‖ KPAK ‖ ID ‖ PVT) (RFC 6507 §5.1.1 step 3).
fn hs(kpak: &Kpak, id: &[u8], pvt: &AffinePoint) -> [u8; 32] {
    sha256(&[
        &point_octets(&AffinePoint::GENERATOR),
        &kpak.to_octets(),
        id,
        &point_octets(pvt),
    ])
}

impl Ksak {
    /// A fresh KSAK.
    ///
    /// # Errors
    /// [`IbeError::Random`] when the generator fails.
    pub fn generate(rng: &mut dyn Random) -> Result<Self, IbeError> {
        let s = random_scalar(rng)?;
        Ok(Self::from_bytes(s.to_repr().into()))
    }

    /// The public KPAK = \[KSAK\]G.
    ///
    /// # Errors
    /// [`IbeError::OutOfRange`] when the stored octets are 0 or not below q.
    pub fn kpak(&self) -> Result<Kpak, IbeError> {
        let k = scalar_from(self.as_bytes(), "KSAK")?;
        Ok(Kpak(p256_table::mul_generator(&k).to_affine()))
    }

    /// Issues the SSK and PVT of `id` (RFC 6507 §5.1.1): v random, PVT = \[v\]G,
    /// SSK = KSAK + HS·v mod q.
    ///
    /// # Errors
    /// [`IbeError::Random`], [`IbeError::OutOfRange`] for a bad KSAK.
    pub fn issue(&self, id: &[u8], rng: &mut dyn Random) -> Result<EccsiKeyPair, IbeError> {
        let ksak = scalar_from(self.as_bytes(), "KSAK")?;
        let kpak = self.kpak()?;
        for _ in 0..64 {
            let v = random_scalar(rng)?;
            let pvt = p256_table::mul_generator(&v).to_affine();
            let h = reduce(&hs(&kpak, id, &pvt));
            let ssk = ksak + h * v;
            // RFC 6507 §5.1.1 step 5: an SSK of 0 (or a PVT at infinity) is drawn again.
            if !bool::from(ssk.is_zero()) {
                return Ok(EccsiKeyPair {
                    ssk: Ssk::from_bytes(ssk.to_repr().into()),
                    pvt: point_octets(&pvt),
                });
            }
        }
        Err(IbeError::Random)
    }
}

/// A user's ECCSI key material: the SSK (secret) and the PVT `04 ‖ x ‖ y` (public).
#[derive(Debug, Clone)]
pub struct EccsiKeyPair {
    /// The Secret Signing Key.
    pub ssk: Ssk,
    /// The Public Validation Token.
    pub pvt: [u8; ECCSI_POINT_LEN],
}

/// RFC 6507 §5.1.2: PVT on the curve, and KPAK = \[SSK\]G − \[HS\]PVT.
///
/// # Errors
/// [`IbeError::InvalidKeyPair`] when the equation fails; decoding errors of SSK or PVT.
pub fn validate(kpak: &Kpak, id: &[u8], ssk: &Ssk, pvt: &[u8]) -> Result<(), IbeError> {
    let pvt = point_from(pvt, "PVT")?;
    let s = scalar_from(ssk.as_bytes(), "SSK")?;
    let h = reduce(&hs(kpak, id, &pvt));
    let lhs = p256_table::mul_generator(&s) - ProjectivePoint::from(pvt) * h;
    if lhs.to_affine().ct_eq(&kpak.0).into() {
        Ok(())
    } else {
        Err(IbeError::InvalidKeyPair)
    }
}

/// RFC 6507 §5.2.1: the signature `r ‖ s ‖ PVT` of `msg` with a fresh ephemeral j from `rng`.
///
/// # Errors
/// Decoding errors of SSK or PVT; [`IbeError::Random`].
pub fn sign(
    kpak: &Kpak,
    id: &[u8],
    ssk: &Ssk,
    pvt: &[u8],
    msg: &[u8],
    rng: &mut dyn Random,
) -> Result<[u8; ECCSI_SIG_LEN], IbeError> {
    for _ in 0..64 {
        let j = random_scalar(rng)?;
        if let Some(sig) = sign_scalar(kpak, id, ssk, pvt, msg, &j)? {
            return Ok(sig);
        }
    }
    Err(IbeError::Random)
}

/// Signs with the ephemeral j given as 32 octets (RFC 6507 Appendix A uses j = 0x34567); for
/// known-answer tests: j must be fresh and secret, which [`sign`] ensures. `None` when this j
/// must be drawn again (§5.2.1 step 4: HE + r·SSK ≡ 0).
///
/// # Errors
/// Decoding errors of SSK, PVT or j.
pub fn sign_with(
    kpak: &Kpak,
    id: &[u8],
    ssk: &Ssk,
    pvt: &[u8],
    msg: &[u8],
    j: &[u8],
) -> Result<Option<[u8; ECCSI_SIG_LEN]>, IbeError> {
    let j = &scalar_from(j, "j")?;
    sign_scalar(kpak, id, ssk, pvt, msg, j)
}

fn sign_scalar(
    kpak: &Kpak,
    id: &[u8],
    ssk: &Ssk,
    pvt: &[u8],
    msg: &[u8],
    j: &Scalar,
) -> Result<Option<[u8; ECCSI_SIG_LEN]>, IbeError> {
    let pvt_pt = point_from(pvt, "PVT")?;
    let ssk_s = scalar_from(ssk.as_bytes(), "SSK")?;
    let jp = p256_table::mul_generator(j).to_affine();
    let r_bytes: [u8; ECCSI_N] = jp.x().into();
    let r = reduce(&r_bytes);
    let hs_v = hs(kpak, id, &pvt_pt);
    let he = reduce(&he_of(&hs_v, &r_bytes, msg));
    let denom = he + r * ssk_s;
    let inv: Option<Scalar> = denom.invert().into();
    let Some(inv) = inv else {
        return Ok(None);
    };
    let s = inv * j;
    if bool::from(s.is_zero()) {
        return Ok(None);
    }
    let mut out = [0u8; ECCSI_SIG_LEN];
    let (rs, p) = out.split_at_mut(2 * ECCSI_N);
    let (ro, so) = rs.split_at_mut(ECCSI_N);
    ro.copy_from_slice(&r_bytes);
    so.copy_from_slice(&s.to_repr());
    p.copy_from_slice(&point_octets(&pvt_pt));
    Ok(Some(out))
}

/// The P-256 prime p, big-endian (an x coordinate is below it).
const P256_P: [u8; ECCSI_N] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
];

/// HE = hash(HS ‖ r ‖ M) (RFC 6507 §5.2.1 step 3).
fn he_of(hs: &[u8; 32], r: &[u8; ECCSI_N], msg: &[u8]) -> [u8; 32] {
    sha256(&[hs, r, msg])
}

/// RFC 6507 §5.2.2: verifies `sig` = `r ‖ s ‖ PVT` on `msg` by `id` under `kpak`.
///
/// # Errors
/// [`IbeError::Length`] for a signature that is not 129 octets, point errors of the PVT,
/// [`IbeError::BadSignature`] when it does not verify.
pub fn verify(kpak: &Kpak, id: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), IbeError> {
    verify_with(kpak, id, msg, sig, true)
}

/// [`verify`] without the table of the signer, as for a signer's first message (a benchmark
/// of that path).
///
/// # Errors
/// As [`verify`].
pub fn verify_first(kpak: &Kpak, id: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), IbeError> {
    verify_with(kpak, id, msg, sig, false)
}

fn verify_with(
    kpak: &Kpak,
    id: &[u8],
    msg: &[u8],
    sig: &[u8],
    signer_tables: bool,
) -> Result<(), IbeError> {
    if sig.len() != ECCSI_SIG_LEN {
        return Err(IbeError::Length {
            what: "signature",
            expected: ECCSI_SIG_LEN,
            got: sig.len(),
        });
    }
    let (rs, pvt) = sig
        .split_at_checked(2 * ECCSI_N)
        .ok_or(IbeError::BadSignature)?;
    let (rb, sb) = rs.split_at_checked(ECCSI_N).ok_or(IbeError::BadSignature)?;
    let pvt = point_from(pvt, "PVT")?;
    let r_bytes: [u8; ECCSI_N] = rb.try_into().map_err(|_| IbeError::BadSignature)?;
    // r is an x coordinate (below p, not 0); s is a scalar in [1, q−1].
    if r_bytes >= P256_P || r_bytes == [0u8; ECCSI_N] {
        return Err(IbeError::BadSignature);
    }
    let s = scalar_from(sb, "s").map_err(|_| IbeError::BadSignature)?;
    let hs_v = hs(kpak, id, &pvt);
    let he = reduce(&he_of(&hs_v, &r_bytes, msg));
    // Every value here is public: variable-time arithmetic. With Y = [HS]PVT + KPAK,
    // J = [s·HE]G + [s·r]Y. The generator's part from its table; [s·r]Y from the signer's
    // table once a signature of its verified (`p256_table.rs`); before that, as
    // [s·r·HS]PVT + [s·r]KPAK, the KPAK's part from the KMS's table and the PVT's by one
    // variable-base wNAF multiplication in Jacobian coordinates (`p256_vartime.rs`).
    let sr = s * reduce(&r_bytes);
    let y = || ProjectivePoint::from(pvt) * reduce(&hs_v) + kpak.0;
    let signer = if signer_tables {
        p256_table::signer_table(&hs_v, y)
    } else {
        None
    };
    let with_table = signer.is_some();
    let rest = match signer {
        Some(t) => t.mul_vartime(&sr),
        None => {
            kpak_table(kpak).mul_vartime(&sr)
                + p256_vartime::mul_vartime(&pvt, &(sr * reduce(&hs_v)))
        }
    };
    let j = p256_table::mul_generator_vartime(&(s * he)) + rest;
    if bool::from(j.is_identity()) {
        return Err(IbeError::BadSignature);
    }
    let jx: [u8; ECCSI_N] = j.to_affine().x().into();
    if !bool::from(jx.ct_eq(&r_bytes)) {
        return Err(IbeError::BadSignature);
    }
    if signer_tables && !with_table {
        // A genuine signer: its next message gets its table (never for a forged one).
        p256_table::signer_verified(&hs_v);
    }
    Ok(())
}

/// The KMS's table of its KPAK.
fn kpak_table(kpak: &Kpak) -> std::sync::Arc<P256Table> {
    p256_table::kpak_table(&kpak.0, &kpak.to_octets())
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn rfc() -> Value {
        let v: Value =
            serde_json::from_str(include_str!("../../proto-vectors/eccsi-sakke-rfc.json"))
                .expect("vector file");
        v["ECCSI_RFC6507"].clone()
    }

    fn h(v: &Value, k: &str) -> Vec<u8> {
        hex::decode(v[k].as_str().expect(k)).expect(k)
    }

    /// RFC 6507 Appendix A: HS, and HE and r of the signature with j = 0x34567.
    #[test]
    fn appendix_a_intermediates() {
        let v = rfc();
        let kpak = Kpak::from_octets(&h(&v, "KPAK")).unwrap();
        let pvt = point_from(&h(&v, "PVT"), "PVT").unwrap();
        let hs_v = hs(&kpak, &h(&v, "ID"), &pvt);
        assert_eq!(hs_v.to_vec(), h(&v, "HS"));
        let j = scalar_from(&h(&v, "j"), "j").unwrap();
        let jp = (ProjectivePoint::GENERATOR * j).to_affine();
        assert_eq!(point_octets(&jp).to_vec(), h(&v, "J"));
        let r: [u8; 32] = jp.x().into();
        assert_eq!(r.to_vec(), h(&v, "r"));
        assert_eq!(he_of(&hs_v, &r, &h(&v, "M")).to_vec(), h(&v, "HE"));
        assert_eq!(point_octets(&AffinePoint::GENERATOR).to_vec(), h(&v, "G"));
    }

    /// The RFC 6507 signature verifies on every path: the first message (no table of the
    /// signer), the second (its table made), later ones (the table kept), and the path that
    /// never uses one; an altered message or signature fails on each.
    #[test]
    fn every_verification_path_accepts_the_rfc_signature_and_refuses_alterations() {
        let v = rfc();
        let kpak = Kpak::from_octets(&h(&v, "KPAK")).unwrap();
        let (id, m, sig) = (h(&v, "ID"), h(&v, "M"), h(&v, "Signature"));
        let mut bad_sig = sig.clone();
        bad_sig[40] ^= 1;
        for round in 0..4 {
            assert_eq!(verify(&kpak, &id, &m, &sig), Ok(()), "round {round}");
            assert_eq!(verify_first(&kpak, &id, &m, &sig), Ok(()), "round {round}");
            assert_eq!(
                verify(&kpak, &id, b"another message", &sig),
                Err(IbeError::BadSignature),
                "round {round}"
            );
            assert_eq!(
                verify(&kpak, &id, &m, &bad_sig),
                Err(IbeError::BadSignature),
                "round {round}"
            );
            assert_eq!(
                verify_first(&kpak, &id, &m, &bad_sig),
                Err(IbeError::BadSignature)
            );
        }
    }

    /// Fresh keys: signatures made with the generator's table verify on both paths, many
    /// messages from one signer, under another identity they fail.
    #[test]
    fn signatures_from_fresh_keys_verify_on_both_paths() {
        let mut rng = crate::crypto::OsRandom;
        let ksak = Ksak::generate(&mut rng).unwrap();
        let kpak = ksak.kpak().unwrap();
        let id = b"tel:+15555550123 2026-12";
        let pair = ksak.issue(id, &mut rng).unwrap();
        validate(&kpak, id, &pair.ssk, &pair.pvt).unwrap();
        for i in 0u8..5 {
            let msg = [i; 40];
            let sig = sign(&kpak, id, &pair.ssk, &pair.pvt, &msg, &mut rng).unwrap();
            assert_eq!(verify(&kpak, id, &msg, &sig), Ok(()));
            assert_eq!(verify_first(&kpak, id, &msg, &sig), Ok(()));
            assert_eq!(
                verify(&kpak, b"someone else", &msg, &sig),
                Err(IbeError::BadSignature)
            );
        }
    }

    /// Messages under a made-up identity fail, however many, and leave no table behind; the
    /// genuine signer's table comes once its signature verified.
    #[test]
    fn a_forged_signature_never_makes_a_signer_table() {
        let v = rfc();
        let kpak = Kpak::from_octets(&h(&v, "KPAK")).unwrap();
        let (m, sig) = (h(&v, "M"), h(&v, "Signature"));
        let pvt = point_from(&h(&v, "PVT"), "PVT").unwrap();
        let forged_id = b"tel:+15555550999";
        for _ in 0..3 {
            assert_eq!(
                verify(&kpak, forged_id, &m, &sig),
                Err(IbeError::BadSignature)
            );
        }
        let forged_hs = hs(&kpak, forged_id, &pvt);
        assert!(p256_table::signer_table(&forged_hs, || ProjectivePoint::IDENTITY).is_none());
    }
}
