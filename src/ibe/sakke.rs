//! SAKKE (RFC 6508) with parameter set 1 (RFC 6509 §7): the KMS side (master secret z, the
//! public Z_S, a user's RSK), the user side (RSK validation, RFC 6508 §6.1.2) and the
//! encapsulation of an SSV to an identifier (§6.2.1) and its decapsulation (§6.2.2).
//!
//! The identifier b is its octets read as a big-endian integer (RFC 6508 §2.1; in TS 33.180 the
//! 32-octet UID), at most 128 octets, reduced mod q where a scalar is needed.

use crypto_bigint::U1024;
use zeroize::{Zeroize, Zeroizing};

use std::sync::Arc;

use super::field::{self, Fq, Point, PointError, fq_from_octets_reduced};
use super::fixed;
use super::pairing::{MillerTable, rsk_table};
use super::params::{SAKKE_ENCAP_LEN, SAKKE_G_HEX, SAKKE_L, SAKKE_POINT_LEN, SAKKE_SSV_LEN};
use super::{IbeError, Rsk, SakkeMaster, Ssv, check_id};
use crate::crypto::{Random, sha256};

/// The KMS's public SAKKE key Z_S = \[z\]P (RFC 6508 §2.2), a point of E(F_p).
#[derive(Clone, Copy)]
pub struct SakkePublic {
    point: Point,
    /// `04 ‖ x ‖ y`: the encoding, and the key of Z_S's fixed-base table ([`fixed::z_table`]).
    octets: [u8; SAKKE_POINT_LEN],
}

impl core::fmt::Debug for SakkePublic {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SakkePublic(")?;
        for b in self.to_octets() {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

impl SakkePublic {
    /// Decodes Z_S from `04 ‖ x ‖ y` (257 octets), checking that it is on the curve and of
    /// order q (E(F_p) has cofactor 4: a point outside the subgroup is refused here, once, rather
    /// than giving keys and data that never validate).
    ///
    /// # Errors
    /// [`IbeError::Length`], [`IbeError::NotUncompressed`], [`IbeError::NotOnCurve`],
    /// [`IbeError::NotInSubgroup`].
    pub fn from_octets(b: &[u8]) -> Result<Self, IbeError> {
        let p = point_from(b, "Z")?;
        if !p.in_subgroup() {
            return Err(IbeError::NotInSubgroup { what: "Z" });
        }
        Self::of(p)
    }

    fn of(point: Point) -> Result<Self, IbeError> {
        // A decoded or derived Z is never the identity (z is in [1, q−1]).
        let octets = point
            .to_octets()
            .ok_or(IbeError::OutOfRange { what: "Z" })?;
        Ok(Self { point, octets })
    }

    /// `04 ‖ x ‖ y`.
    #[must_use]
    pub fn to_octets(self) -> [u8; SAKKE_POINT_LEN] {
        self.octets
    }

    /// \[r\](\[b\]P + Z_S) for a secret r, as \[r·b mod q\]P + \[r\]Z_S from the tables of P and
    /// of Z_S (both of order q; [`fixed`]).
    /// `None` only if a table could not be made (never for points of order q).
    fn mul_receiver(&self, b: &Fq, r: &Fq) -> Option<Point> {
        let mut rb = scalar_of(&r.mul(b));
        let mut rs = scalar_of(r);
        let out = Point::mul_generator(&rb)
            .zip(fixed::z_table(&self.point, &self.octets))
            .map(|(rbp, zt)| rbp.add(&zt.mul(&rs)));
        rb.zeroize();
        rs.zeroize();
        out
    }
}

fn point_from(b: &[u8], what: &'static str) -> Result<Point, IbeError> {
    Point::from_octets(b).map_err(|e| match e {
        PointError::Length(got) => IbeError::Length {
            what,
            expected: SAKKE_POINT_LEN,
            got,
        },
        PointError::NotUncompressed => IbeError::NotUncompressed { what },
        PointError::NotOnCurve => IbeError::NotOnCurve { what },
    })
}

fn scalar_of(f: &Fq) -> U1024 {
    f.retrieve()
}

impl SakkeMaster {
    /// A fresh z in \[1, q−1\], by rejection from 128 random octets.
    ///
    /// # Errors
    /// [`IbeError::Random`] when the generator fails or yields no acceptable value.
    pub fn generate(rng: &mut dyn Random) -> Result<Self, IbeError> {
        for _ in 0..64 {
            let mut b = Zeroizing::new([0u8; SAKKE_L]);
            rng.fill(&mut b[..]).map_err(|_| IbeError::Random)?;
            let v = U1024::from_be_slice(&b[..]);
            if v < field::Q && v != U1024::ZERO {
                return Ok(Self::from_bytes(*b));
            }
        }
        Err(IbeError::Random)
    }

    /// z as a scalar; `None` when the stored octets are 0 or not below q.
    fn scalar(&self) -> Option<U1024> {
        let v = U1024::from_be_slice(self.as_bytes());
        (v < field::Q && v != U1024::ZERO).then_some(v)
    }

    /// The public Z_S = \[z\]P.
    ///
    /// # Errors
    /// [`IbeError::OutOfRange`] when z is 0 or not below q.
    pub fn public(&self) -> Result<SakkePublic, IbeError> {
        let z = self.scalar().ok_or(IbeError::OutOfRange { what: "z" })?;
        let zp = Point::mul_generator(&z).ok_or(IbeError::OutOfRange { what: "Z" })?;
        SakkePublic::of(zp)
    }

    /// The RSK of identifier `id`: K_(b,S) = \[(b + z)^−1\]P (RFC 6508 §6.1.1).
    ///
    /// # Errors
    /// [`IbeError::OutOfRange`] for a bad z or when b + z ≡ 0 (mod q); identifier errors.
    pub fn issue_rsk(&self, id: &[u8]) -> Result<Rsk, IbeError> {
        check_id(id, SAKKE_L)?;
        let z = self.scalar().ok_or(IbeError::OutOfRange { what: "z" })?;
        let b = fq_from_octets_reduced(id).ok_or(IbeError::IdentifierTooLong)?;
        let t = b.add(&Fq::new(&z));
        let inv = t
            .invert()
            .into_option()
            .ok_or(IbeError::OutOfRange { what: "b + z" })?;
        let mut k = scalar_of(&inv);
        let rsk = Point::mul_generator(&k).and_then(Point::to_octets);
        k.zeroize();
        rsk.map(Rsk::from_bytes)
            .ok_or(IbeError::OutOfRange { what: "RSK" })
    }
}

/// The identifier as a scalar b mod q.
fn id_scalar(id: &[u8]) -> Result<Fq, IbeError> {
    check_id(id, SAKKE_L)?;
    fq_from_octets_reduced(id).ok_or(IbeError::IdentifierTooLong)
}

/// \[b\]P + Z_S, the receiver's point.
fn receiver_point(z: &SakkePublic, id: &[u8]) -> Result<Point, IbeError> {
    let b = id_scalar(id)?;
    // b is the identifier, public: variable time over its (at most 256) bits.
    Point::mul_generator_vartime(&scalar_of(&b))
        .map(|bp| bp.add(&z.point))
        .ok_or(IbeError::OutOfRange { what: "[b]P + Z" })
}

fn g() -> field::Fp {
    field::Fp::new(&U1024::from_be_hex(SAKKE_G_HEX))
}

/// The lines of the Miller loop on the RSK (`pairing.rs`), from the cache of the RSKs last
/// used or computed now; `invalid` when the RSK is the identity or not of order q.
fn rsk_lines(rsk: &Rsk, invalid: IbeError) -> Result<Arc<MillerTable>, IbeError> {
    rsk_table(rsk.as_bytes(), || {
        let k = point_from(rsk.as_bytes(), "RSK")?;
        MillerTable::new(&k).ok_or(invalid)
    })
}

/// RFC 6508 §6.1.2: ⟨\[b\]P + Z_S, RSK⟩ = g, with RSK on the curve, computed as
/// ⟨RSK, \[b\]P + Z_S⟩ (the pairing is symmetric) with the RSK's table, which decapsulation
/// then reuses.
///
/// # Errors
/// [`IbeError::InvalidRsk`] when the pairing differs from g; decoding errors of the RSK.
pub fn validate_rsk(z: &SakkePublic, id: &[u8], rsk: &Rsk) -> Result<(), IbeError> {
    let lines = rsk_lines(rsk, IbeError::InvalidRsk)?;
    let bpz = receiver_point(z, id)?;
    let w = lines.pairing(&bpz).ok_or(IbeError::InvalidRsk)?;
    if bool::from(w.ct_eq(&g())) {
        Ok(())
    } else {
        Err(IbeError::InvalidRsk)
    }
}

/// HashToIntegerRange(s, n, SHA-256) of RFC 6508 §5.1, as the 32·l octets v' = v_1 ‖ … ‖ v_l
/// before the reduction mod n (the caller reduces).
fn hash_blocks(s: &[&[u8]], l: usize) -> Zeroizing<Vec<u8>> {
    let a = Zeroizing::new(sha256(s));
    let mut h = [0u8; 32];
    let mut out = Zeroizing::new(Vec::with_capacity(32 * l));
    for _ in 0..l {
        h = sha256(&[&h]);
        out.extend_from_slice(&sha256(&[&h, &a[..]]));
    }
    out
}

/// r = HashToIntegerRange(SSV ‖ b, q): four blocks (q has 1022 bits), reduced mod q.
fn derive_r(ssv: &[u8], id: &[u8]) -> Option<Fq> {
    let v = hash_blocks(&[ssv, id], 4);
    let mut w = Zeroizing::new(U1024::from_be_slice(&v));
    let q = crypto_bigint::NonZero::new(field::Q).into_option()?;
    let r = Fq::new(&w.rem(&q));
    w.zeroize();
    Some(r)
}

/// The mask HashToIntegerRange(w, 2^n), n = 128: the low 16 octets of one block.
fn mask(w: &field::Fp) -> Zeroizing<[u8; SAKKE_SSV_LEN]> {
    let wb = Zeroizing::new(field::to_octets(&w.retrieve()));
    let v = hash_blocks(&[&wb[..]], 1);
    let mut out = Zeroizing::new([0u8; SAKKE_SSV_LEN]);
    if let Some(low) = v.get(32 - SAKKE_SSV_LEN..32) {
        out.copy_from_slice(low);
    }
    out
}

/// RFC 6508 §6.2.1: the Encapsulated Data `R_(b,S) ‖ H` (273 octets) carrying `ssv` to `id`.
///
/// Deterministic for a given SSV (r is derived from SSV ‖ b); the SSV itself is the random
/// input ([`Ssv::generate`]).
///
/// # Errors
/// Identifier errors; [`IbeError::OutOfRange`] in the negligible case that r ≡ 0.
pub fn encapsulate(
    z: &SakkePublic,
    id: &[u8],
    ssv: &Ssv,
) -> Result<[u8; SAKKE_ENCAP_LEN], IbeError> {
    let b = id_scalar(id)?;
    let r = derive_r(ssv.as_bytes(), id).ok_or(IbeError::OutOfRange { what: "r" })?;
    let big_r = z.mul_receiver(&b, &r).and_then(Point::to_octets);
    // g^r in PF_p: the class of (1 + i·g)^r.
    let mut rs = scalar_of(&r);
    let gr = fixed::pow_g(&g(), &rs).representative();
    rs.zeroize();
    let big_r = big_r.ok_or(IbeError::OutOfRange { what: "r" })?;
    let gr = gr.ok_or(IbeError::OutOfRange { what: "r" })?;
    let m = mask(&gr);
    let mut out = [0u8; SAKKE_ENCAP_LEN];
    let (ro, ho) = out.split_at_mut(SAKKE_POINT_LEN);
    ro.copy_from_slice(&big_r);
    for ((o, s), k) in ho.iter_mut().zip(ssv.as_bytes()).zip(m.iter()) {
        *o = s ^ k;
    }
    Ok(out)
}

/// RFC 6508 §6.2.2: the SSV from Encapsulated Data, checking that it re-encapsulates to the
/// same R_(b,S).
///
/// # Errors
/// [`IbeError::Length`] or a point error for malformed data or RSK;
/// [`IbeError::DecapsulationFailed`] when the check fails (wrong key, identifier or data).
pub fn decapsulate(z: &SakkePublic, id: &[u8], rsk: &Rsk, data: &[u8]) -> Result<Ssv, IbeError> {
    if data.len() != SAKKE_ENCAP_LEN {
        return Err(IbeError::Length {
            what: "encapsulated data",
            expected: SAKKE_ENCAP_LEN,
            got: data.len(),
        });
    }
    let (rb, hb) = data
        .split_at_checked(SAKKE_POINT_LEN)
        .ok_or(IbeError::DecapsulationFailed)?;
    let big_r = point_from(rb, "R")?;
    let b = id_scalar(id)?;
    // ⟨R, RSK⟩ = ⟨RSK, R⟩ (symmetric on E[q]; an R outside it fails the check below).
    let lines = rsk_lines(rsk, IbeError::DecapsulationFailed)?;
    let w = lines.pairing(&big_r).ok_or(IbeError::DecapsulationFailed)?;
    let m = mask(&w);
    let mut ssv = [0u8; SAKKE_SSV_LEN];
    for ((o, h), k) in ssv.iter_mut().zip(hb).zip(m.iter()) {
        *o = h ^ k;
    }
    let ssv = Ssv::from_bytes(ssv);
    let r = derive_r(ssv.as_bytes(), id).ok_or(IbeError::DecapsulationFailed)?;
    let test = z
        .mul_receiver(&b, &r)
        .ok_or(IbeError::DecapsulationFailed)?;
    if test.is_identity() || !test.equals(&big_r) {
        return Err(IbeError::DecapsulationFailed);
    }
    Ok(ssv)
}

impl Ssv {
    /// A fresh SSV of n = 128 bits.
    ///
    /// # Errors
    /// [`IbeError::Random`] when the generator fails.
    pub fn generate(rng: &mut dyn Random) -> Result<Self, IbeError> {
        let mut b = Zeroizing::new([0u8; SAKKE_SSV_LEN]);
        rng.fill(&mut b[..]).map_err(|_| IbeError::Random)?;
        Ok(Self::from_bytes(*b))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::ibe::pairing::pairing;

    fn rfc() -> Value {
        let v: Value =
            serde_json::from_str(include_str!("../../proto-vectors/eccsi-sakke-rfc.json"))
                .expect("vector file");
        v["SAKKE_RFC6508"].clone()
    }

    fn h(v: &Value, k: &str) -> Vec<u8> {
        hex::decode(v[k].as_str().expect(k)).expect(k)
    }

    fn fp_hex(f: &field::Fp) -> Vec<u8> {
        field::to_octets(&f.retrieve()).to_vec()
    }

    /// RFC 6508 Appendix A: a + z mod q, \[b\]P + Z, r, g^r, the mask, H and w = ⟨R, RSK⟩.
    #[test]
    fn appendix_a_intermediates() {
        let v = rfc();
        let id = h(&v, "ID");
        let ssv = h(&v, "SSV");
        let z = SakkeMaster::from_slice(&h(&v, "z")).unwrap();
        let zs = z.public().unwrap();
        let a = fq_from_octets_reduced(&id).unwrap();
        let zq = Fq::new(&U1024::from_be_slice(z.as_bytes()));
        assert_eq!(
            field::to_octets(&a.add(&zq).retrieve()).to_vec(),
            h(&v, "a_plus_z_mod_q")
        );
        let bpz = receiver_point(&zs, &id).unwrap();
        assert_eq!(bpz.to_octets().unwrap().to_vec(), h(&v, "bP_plus_Z"));
        let r = derive_r(&ssv, &id).unwrap();
        assert_eq!(field::to_octets(&r.retrieve()).to_vec(), h(&v, "r"));
        let gr = field::Fp2 {
            re: field::Fp::ONE,
            im: g(),
        }
        .pow_ct(&r.retrieve())
        .representative()
        .unwrap();
        assert_eq!(fp_hex(&gr), h(&v, "g_pow_r"));
        assert_eq!(mask(&gr).to_vec(), h(&v, "mask"));
        let big_r = Point::from_octets(&h(&v, "R_bS")).unwrap();
        let rsk = Point::from_octets(&h(&v, "RSK")).unwrap();
        let w = pairing(&big_r, &rsk).unwrap();
        assert_eq!(fp_hex(&w), h(&v, "w_receiver"));
        // The same from the RSK's table, with the arguments swapped.
        let w = MillerTable::new(&rsk).unwrap().pairing(&big_r).unwrap();
        assert_eq!(fp_hex(&w), h(&v, "w_receiver"));
    }

    #[test]
    fn generator_has_order_q_and_pairs_to_g() {
        let p = Point::generator();
        assert!(p.mul(&field::Q).is_identity());
        let w = pairing(&p, &p).expect("pairing");
        assert!(bool::from(w.ct_eq(&g())));
    }
}
