//! A variable-base multiplication on P-256 for **public** values only: the \[s·r·HS\]PVT of the
//! ECCSI verification of a signer's first message (`eccsi.rs`), the one multiplication there
//! that no table serves.
//!
//! [CHOICE] (docs/profile.md §6): `p256` exposes only complete projective formulas; a pass of
//! 256 of its doublings made that verification 0.59× wolfSSL's rate. Here the field is a 4-limb
//! Montgomery multiplication for the fixed p (checked against `p256` in the tests), points are
//! Jacobian with the a = −3 doubling of Bernstein–Lange (dbl-2001-b: 3 multiplications and 5
//! squarings) and the addition add-2007-bl, and the scalar is read in width-5 wNAF. It runs in
//! **variable time** (branches on the values, the exceptional cases of the formulas tested and
//! handled): it must never see a secret, and nothing but verification calls it.

// The indices below are loop counters over fixed-size arrays, in bounds by construction.
#![allow(clippy::indexing_slicing)]

use p256::elliptic_curve::ff::PrimeField;
use p256::elliptic_curve::sec1::{FromSec1Point, ToSec1Point};
use p256::{AffinePoint, ProjectivePoint, Scalar};

use super::limbs::{adc, be_limbs4, mac, sbb};

/// p = 2^256 − 2^224 + 2^192 + 2^96 − 1, little-endian limbs.
const P: [u64; 4] = [
    0xffff_ffff_ffff_ffff,
    0x0000_0000_ffff_ffff,
    0x0000_0000_0000_0000,
    0xffff_ffff_0000_0001,
];
/// R² mod p with R = 2^256 (to enter Montgomery form).
const R2: [u64; 4] = [
    0x0000_0000_0000_0003,
    0xffff_fffb_ffff_ffff,
    0xffff_ffff_ffff_fffe,
    0x0000_0004_ffff_fffd,
];

/// An element of F_p in Montgomery form (a·2^256 mod p), below p.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Fe([u64; 4]);

impl Fe {
    const ZERO: Self = Self([0; 4]);

    /// `v − p` if `v` (with a carry limb `hi`) is at least p, else `v`.
    #[inline(always)]
    fn reduce(v: [u64; 4], hi: u64) -> Self {
        let mut d = [0u64; 4];
        let mut borrow = 0;
        for i in 0..4 {
            (d[i], borrow) = sbb(v[i], P[i], borrow);
        }
        // v ≥ p when the subtraction did not borrow past the carry limb.
        if hi == 1 || borrow == 0 {
            Self(d)
        } else {
            Self(v)
        }
    }

    /// The Montgomery product a·b·2^−256 mod p (CIOS; −p^−1 mod 2^64 = 1).
    #[inline]
    fn mul(&self, o: &Self) -> Self {
        let (a, b) = (self.0, o.0);
        let mut t = [0u64; 6];
        for bi in b {
            let mut c = 0;
            for j in 0..4 {
                (t[j], c) = mac(a[j], bi, t[j], c);
            }
            (t[4], c) = adc(t[4], c, 0);
            t[5] = c;
            let m = t[0];
            let (_, mut c) = mac(m, P[0], t[0], 0);
            for j in 1..4 {
                (t[j - 1], c) = mac(m, P[j], t[j], c);
            }
            (t[3], c) = adc(t[4], c, 0);
            t[4] = t[5] + c;
        }
        Self::reduce([t[0], t[1], t[2], t[3]], t[4])
    }

    #[inline]
    fn square(&self) -> Self {
        self.mul(self)
    }

    #[inline]
    fn add(&self, o: &Self) -> Self {
        let mut s = [0u64; 4];
        let mut c = 0;
        for (i, limb) in s.iter_mut().enumerate() {
            (*limb, c) = adc(self.0[i], o.0[i], c);
        }
        Self::reduce(s, c)
    }

    #[inline]
    fn sub(&self, o: &Self) -> Self {
        let mut d = [0u64; 4];
        let mut borrow = 0;
        for (i, limb) in d.iter_mut().enumerate() {
            (*limb, borrow) = sbb(self.0[i], o.0[i], borrow);
        }
        if borrow == 1 {
            let mut c = 0;
            for (limb, p) in d.iter_mut().zip(P) {
                (*limb, c) = adc(*limb, p, c);
            }
        }
        Self(d)
    }

    fn double(&self) -> Self {
        self.add(self)
    }

    fn neg(&self) -> Self {
        Self::ZERO.sub(self)
    }

    fn is_zero(&self) -> bool {
        self.0 == [0; 4]
    }

    /// From 32 big-endian octets of an integer below p.
    fn from_be(b: &[u8]) -> Option<Self> {
        if b.len() != 32 {
            return None;
        }
        let v = be_limbs4(b);
        // Below p: subtracting p borrows.
        let mut borrow = 0;
        for i in 0..4 {
            (_, borrow) = sbb(v[i], P[i], borrow);
        }
        (borrow == 1).then(|| Self(v).mul(&Self(R2)))
    }

    /// The 32 big-endian octets of the integer.
    fn to_be(self) -> [u8; 32] {
        let v = self.mul(&Self([1, 0, 0, 0])).0;
        let mut out = [0u8; 32];
        for (chunk, limb) in out.rchunks_exact_mut(8).zip(v) {
            chunk.copy_from_slice(&limb.to_be_bytes());
        }
        out
    }

    /// self^(p−2) (Fermat; the exponent is public).
    fn invert(&self) -> Self {
        let e = [P[0] - 2, P[1], P[2], P[3]];
        let mut r = Self(R2).mul(&Self([1, 0, 0, 0])); // 1 in Montgomery form
        for limb in e.iter().rev() {
            for bit in (0..64).rev() {
                r = r.square();
                if (limb >> bit) & 1 == 1 {
                    r = r.mul(self);
                }
            }
        }
        r
    }
}

/// A Jacobian point (X : Y : Z) = (X/Z², Y/Z³); Z = 0 is the identity.
#[derive(Clone, Copy, Debug)]
struct Jacobian {
    x: Fe,
    y: Fe,
    z: Fe,
}

impl Jacobian {
    const IDENTITY: Self = Self {
        x: Fe::ZERO,
        y: Fe::ZERO,
        z: Fe::ZERO,
    };

    fn is_identity(&self) -> bool {
        self.z.is_zero()
    }

    fn neg(&self) -> Self {
        Self {
            x: self.x,
            y: self.y.neg(),
            z: self.z,
        }
    }

    /// dbl-2001-b (a = −3).
    fn double(&self) -> Self {
        if self.is_identity() || self.y.is_zero() {
            return Self::IDENTITY;
        }
        let delta = self.z.square();
        let gamma = self.y.square();
        let beta = self.x.mul(&gamma);
        let t = self.x.sub(&delta).mul(&self.x.add(&delta));
        let alpha = t.double().add(&t);
        let beta4 = beta.double().double();
        let x3 = alpha.square().sub(&beta4.double());
        let z3 = self.y.add(&self.z).square().sub(&gamma).sub(&delta);
        let gamma2_8 = gamma.square().double().double().double();
        let y3 = alpha.mul(&beta4.sub(&x3)).sub(&gamma2_8);
        Self {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// add-2007-bl, with its exceptional cases (an identity, equal or opposite points).
    fn add(&self, o: &Self) -> Self {
        if self.is_identity() {
            return *o;
        }
        if o.is_identity() {
            return *self;
        }
        let z1z1 = self.z.square();
        let z2z2 = o.z.square();
        let u1 = self.x.mul(&z2z2);
        let u2 = o.x.mul(&z1z1);
        let s1 = self.y.mul(&o.z).mul(&z2z2);
        let s2 = o.y.mul(&self.z).mul(&z1z1);
        let h = u2.sub(&u1);
        let r = s2.sub(&s1).double();
        if h.is_zero() {
            return if r.is_zero() {
                self.double()
            } else {
                Self::IDENTITY
            };
        }
        let i = h.double().square();
        let j = h.mul(&i);
        let v = u1.mul(&i);
        let x3 = r.square().sub(&j).sub(&v.double());
        let y3 = r.mul(&v.sub(&x3)).sub(&s1.mul(&j).double());
        let z3 = self.z.add(&o.z).square().sub(&z1z1).sub(&z2z2).mul(&h);
        Self {
            x: x3,
            y: y3,
            z: z3,
        }
    }
}

/// The width-5 NAF of a 256-bit integer (little-endian limbs), least significant digit first:
/// each digit 0 or odd in \[−15, 15\], two nonzero digits at least 5 apart.
fn wnaf(k: [u64; 4]) -> [i8; 257] {
    let mut out = [0i8; 257];
    // k as 5 limbs, so that adding a borrowed digit back cannot overflow.
    let mut v = [k[0], k[1], k[2], k[3], 0];
    let mut i = 0;
    while v != [0; 5] && i < out.len() {
        if v[0] & 1 == 1 {
            let mut d = (v[0] & 31) as i64;
            if d >= 16 {
                d -= 32;
            }
            out[i] = d as i8;
            // v −= d
            if d > 0 {
                let mut borrow = 0;
                for (j, limb) in v.iter_mut().enumerate() {
                    (*limb, borrow) = sbb(*limb, if j == 0 { d as u64 } else { 0 }, borrow);
                }
            } else {
                let mut c = 0;
                for (j, limb) in v.iter_mut().enumerate() {
                    (*limb, c) = adc(*limb, if j == 0 { (-d) as u64 } else { 0 }, c);
                }
            }
        }
        // v >>= 1
        for j in 0..4 {
            v[j] = (v[j] >> 1) | (v[j + 1] << 63);
        }
        v[4] >>= 1;
        i += 1;
    }
    out
}

/// `[k]point` for a public point and a public scalar, in variable time.
pub(crate) fn mul_vartime(point: &AffinePoint, k: &Scalar) -> ProjectivePoint {
    let enc = point.to_sec1_point(false);
    let b = enc.as_bytes();
    let (Some(x), Some(y)) = (
        b.get(1..33).and_then(Fe::from_be),
        b.get(33..65).and_then(Fe::from_be),
    ) else {
        // The identity (no coordinates).
        return ProjectivePoint::IDENTITY;
    };
    let one = Fe::from_be(&{
        let mut o = [0u8; 32];
        o[31] = 1;
        o
    })
    .unwrap_or(Fe::ZERO);
    let base = Jacobian { x, y, z: one };
    // The odd multiples P, 3P, …, 15P.
    let twice = base.double();
    let mut odd = [base; 8];
    for i in 1..8 {
        odd[i] = odd[i - 1].add(&twice);
    }
    let digits = wnaf(be_limbs4(&k.to_repr()));
    let mut r = Jacobian::IDENTITY;
    for &d in digits.iter().rev() {
        r = r.double();
        if d > 0 {
            r = r.add(&odd[(d as usize) / 2]);
        } else if d < 0 {
            r = r.add(&odd[(d.unsigned_abs() as usize) / 2].neg());
        }
    }
    to_projective(&r)
}

/// Back to `p256`'s point (through the affine octets, which `p256` checks on the curve).
fn to_projective(r: &Jacobian) -> ProjectivePoint {
    if r.is_identity() {
        return ProjectivePoint::IDENTITY;
    }
    let zi = r.z.invert();
    let zi2 = zi.square();
    let x = r.x.mul(&zi2);
    let y = r.y.mul(&zi2).mul(&zi);
    let mut enc = [0u8; 65];
    enc[0] = 4;
    enc[1..33].copy_from_slice(&x.to_be());
    enc[33..].copy_from_slice(&y.to_be());
    AffinePoint::from_sec1_bytes(&enc)
        .map(ProjectivePoint::from)
        .unwrap_or(ProjectivePoint::IDENTITY)
}

#[cfg(test)]
mod tests {
    use p256::FieldBytes;
    use p256::elliptic_curve::ops::Reduce;

    use super::*;

    fn scalar(b: [u8; 32]) -> Scalar {
        <Scalar as Reduce<FieldBytes>>::reduce(&FieldBytes::from(b))
    }

    #[test]
    fn the_field_agrees_with_its_definition() {
        // (p − 1)² = 1, p − 1 = −1, and a·a^−1 = 1 for a few values.
        let mut pm1 = [0u8; 32];
        for (o, limb) in pm1.rchunks_exact_mut(8).zip(P) {
            o.copy_from_slice(&limb.to_be_bytes());
        }
        pm1[31] -= 1;
        let m1 = Fe::from_be(&pm1).unwrap();
        let mut one_b = [0u8; 32];
        one_b[31] = 1;
        let one = Fe::from_be(&one_b).unwrap();
        assert_eq!(m1.square(), one);
        assert_eq!(one.neg(), m1);
        assert_eq!(m1.add(&one), Fe::ZERO);
        assert_eq!(Fe::ZERO.sub(&one), m1);
        for v in [2u8, 3, 0xff] {
            let mut b = [0x5au8; 32];
            b[0] = 0x7f;
            b[31] = v;
            let a = Fe::from_be(&b).unwrap();
            assert_eq!(a.mul(&a.invert()), one);
            assert_eq!(a.to_be(), b);
        }
        // p itself is refused.
        let mut p_b = pm1;
        p_b[31] += 1;
        assert!(Fe::from_be(&p_b).is_none());
    }

    #[test]
    fn the_multiplication_agrees_with_p256() {
        let points = [
            AffinePoint::GENERATOR,
            (ProjectivePoint::GENERATOR * scalar([0x42; 32])).to_affine(),
            (ProjectivePoint::GENERATOR * -Scalar::ONE).to_affine(),
        ];
        let mut ks = vec![
            Scalar::ZERO,
            Scalar::ONE,
            Scalar::from(2u64),
            Scalar::from(15u64),
            Scalar::from(16u64),
            Scalar::from(31u64),
            -Scalar::ONE,
            -Scalar::from(2u64),
        ];
        let mut x = scalar([0x9e; 32]);
        for _ in 0..24 {
            x = x.square() + Scalar::from(3u64);
            ks.push(x);
        }
        for p in &points {
            for k in &ks {
                assert_eq!(mul_vartime(p, k), ProjectivePoint::from(*p) * k);
            }
        }
        // [n − 1]P + P and [1]P + [n − 1]P go through the opposite-points case.
        let g = AffinePoint::GENERATOR;
        assert_eq!(
            mul_vartime(&g, &-Scalar::ONE) + ProjectivePoint::GENERATOR,
            ProjectivePoint::IDENTITY
        );
        assert_eq!(
            mul_vartime(&AffinePoint::IDENTITY, &Scalar::ONE),
            ProjectivePoint::IDENTITY
        );
    }

    #[test]
    fn exceptional_additions_are_handled() {
        let g = Jacobian {
            x: Fe::from_be(&AffinePoint::GENERATOR.to_sec1_point(false).as_bytes()[1..33]).unwrap(),
            y: Fe::from_be(&AffinePoint::GENERATOR.to_sec1_point(false).as_bytes()[33..65])
                .unwrap(),
            z: Fe::from_be(&{
                let mut o = [0u8; 32];
                o[31] = 1;
                o
            })
            .unwrap(),
        };
        let two = to_projective(&g.add(&g));
        assert_eq!(two, ProjectivePoint::GENERATOR + ProjectivePoint::GENERATOR);
        assert!(g.add(&g.neg()).is_identity());
        assert_eq!(
            to_projective(&Jacobian::IDENTITY.add(&g)),
            ProjectivePoint::GENERATOR
        );
        assert_eq!(
            to_projective(&g.add(&Jacobian::IDENTITY)),
            ProjectivePoint::GENERATOR
        );
        assert!(Jacobian::IDENTITY.double().is_identity());
    }

    #[test]
    fn the_wnaf_recombines() {
        for k in [
            [0u64; 4],
            [1, 0, 0, 0],
            [u64::MAX; 4],
            [0x1234, 0xffff, 0, 1 << 63],
        ] {
            let d = wnaf(k);
            // Σ d_i·2^i mod 2^320 back to k, by Horner's rule.
            let mut acc = [0u64; 5];
            for &di in d.iter().rev() {
                let mut c = 0;
                for limb in acc.iter_mut() {
                    let n = (*limb << 1) | c;
                    c = *limb >> 63;
                    *limb = n;
                }
                if di > 0 {
                    let mut c = 0;
                    for (j, limb) in acc.iter_mut().enumerate() {
                        (*limb, c) = adc(*limb, if j == 0 { di as u64 } else { 0 }, c);
                    }
                } else if di < 0 {
                    let mut b = 0;
                    for (j, limb) in acc.iter_mut().enumerate() {
                        (*limb, b) = sbb(*limb, if j == 0 { (-di) as u64 } else { 0 }, b);
                    }
                }
            }
            assert_eq!(&acc[..4], &k[..], "k = {k:x?}");
            assert_eq!(acc[4], 0);
            assert!(
                d.iter()
                    .all(|&x| x == 0 || (x % 2 != 0 && (-15..=15).contains(&x)))
            );
        }
    }
}
