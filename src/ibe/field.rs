//! The arithmetic of SAKKE parameter set 1: F_p (`fp.rs`) and F_q (`crypto-bigint`) in
//! Montgomery form, F_p² = F_p\[i\]/(i² + 1) and the points of E: y² = x³ − 3x over F_p (RFC
//! 6508 §2.1); the pairing is in `pairing.rs`.
//!
//! Points are projective (X : Y : Z) and use the complete addition and doubling of
//! Renes–Costello–Batina 2015 (Algorithms 4 and 6, a = −3, here b = 0), so a scalar
//! multiplication is a fixed sequence of the same operations whatever the scalar
//! (docs/architecture.md principle 6): multiples of a fixed point (the generator P, the KMS's
//! Z_S) come from a table of its precomputed multiples, one constant-time row scan and one
//! addition per signed 6-bit digit of the scalar ([`Point::mul_generator`], `fixed.rs`). The fixed
//! 4-bit window of `Point::mul` (1,024 doublings and 256 additions) remains as the reference
//! the tables are tested against. Scalars that are public (an identifier, the group order) use
//! variable-time methods over their significant bits.

#[cfg(test)]
use crypto_bigint::CtEq;
use crypto_bigint::modular::ConstMontyForm;
use crypto_bigint::{Choice, NonZero, U1024, const_monty_params};

use super::fixed::FixedBase;
use super::params::{
    SAKKE_L, SAKKE_P_HEX, SAKKE_POINT_LEN, SAKKE_PX_HEX, SAKKE_PY_HEX, SAKKE_Q_HEX,
};

const_monty_params!(QMod, U1024, SAKKE_Q_HEX, "The SAKKE group order q.");

pub(crate) use super::fp::Fp;
/// An element of F_q (scalars).
pub(crate) type Fq = ConstMontyForm<QMod, { U1024::LIMBS }>;

/// p as an integer.
pub(crate) const P: U1024 = U1024::from_be_hex(SAKKE_P_HEX);
/// q as an integer.
pub(crate) const Q: U1024 = U1024::from_be_hex(SAKKE_Q_HEX);

/// The 128 big-endian octets of an integer below 2^1024.
pub(crate) fn to_octets(v: &U1024) -> [u8; SAKKE_L] {
    let mut out = [0u8; SAKKE_L];
    out.copy_from_slice(v.to_be_bytes().as_ref());
    out
}

/// An F_p element from exactly 128 octets; `None` when the value is not below p.
pub(crate) fn fp_from_octets(b: &[u8]) -> Option<Fp> {
    if b.len() != SAKKE_L {
        return None;
    }
    let v = U1024::from_be_slice(b);
    (v < P).then(|| Fp::new(&v))
}

/// An integer of at most 128 octets, reduced mod q.
pub(crate) fn fq_from_octets_reduced(b: &[u8]) -> Option<Fq> {
    if b.len() > SAKKE_L {
        return None;
    }
    let mut wide = [0u8; SAKKE_L];
    wide.get_mut(SAKKE_L - b.len()..)?.copy_from_slice(b);
    let v = U1024::from_be_slice(&wide);
    let q = NonZero::new(Q).into_option()?;
    Some(Fq::new(&v.rem(&q)))
}

fn small(v: u64) -> Fp {
    Fp::new(&U1024::from_u64(v))
}

/// An element a + b·i of F_p² (i² = −1, since p ≡ 3 mod 4).
#[derive(Clone, Copy)]
pub(crate) struct Fp2 {
    pub(crate) re: Fp,
    pub(crate) im: Fp,
}

impl Fp2 {
    pub(crate) const ONE: Self = Self {
        re: Fp::ONE,
        im: Fp::ZERO,
    };

    pub(crate) fn mul(&self, o: &Self) -> Self {
        // Karatsuba: three multiplications.
        let ac = self.re.mul(&o.re);
        let bd = self.im.mul(&o.im);
        let cross = self.re.add(&self.im).mul(&o.re.add(&o.im));
        Self {
            re: ac.sub(&bd),
            im: cross.sub(&ac).sub(&bd),
        }
    }

    pub(crate) fn square(&self) -> Self {
        let ab = self.re.mul(&self.im);
        Self {
            re: self.re.add(&self.im).mul(&self.re.sub(&self.im)),
            im: ab.double(),
        }
    }

    /// `self · (a + i)`: two multiplications (a line of `pairing.rs`, scaled so its imaginary
    /// part is 1).
    pub(crate) fn mul_by_i_plus(&self, a: &Fp) -> Self {
        Self {
            re: self.re.mul(a).sub(&self.im),
            im: self.im.mul(a).add(&self.re),
        }
    }

    /// `self · (1 + i·t)`: two multiplications (an entry of the table of g, `fixed.rs`).
    pub(crate) fn mul_by_one_plus_i(&self, t: &Fp) -> Self {
        Self {
            re: self.re.sub(&self.im.mul(t)),
            im: self.re.mul(t).add(&self.im),
        }
    }

    #[cfg(test)]
    pub(crate) fn ct_assign(&mut self, o: &Self, c: Choice) {
        self.re.ct_assign(&o.re, c);
        self.im.ct_assign(&o.im, c);
    }

    /// `self^e` for a secret exponent below 2^1024: a fixed window of 4 bits over all 1024 bits
    /// (1,024 squarings and 256 multiplications), each of the 16 precomputed powers chosen by a
    /// constant-time scan of the whole table.
    #[cfg(test)]
    pub(crate) fn pow_ct(&self, e: &U1024) -> Self {
        let mut table = [Self::ONE; 16];
        let mut acc = Self::ONE;
        for t in &mut table {
            *t = acc;
            acc = acc.mul(self);
        }
        let mut r = Self::ONE;
        for w in (0..WINDOWS).rev() {
            for _ in 0..4 {
                r = r.square();
            }
            let digit = window(e, w);
            let mut pick = Self::ONE;
            for (d, entry) in (0u32..).zip(table.iter()) {
                pick.ct_assign(entry, d.ct_eq(&digit));
            }
            r = r.mul(&pick);
        }
        r
    }

    /// The F_p representative b / a of the PF_p class of a + b·i (RFC 6508 §2.1); `None` when
    /// a = 0.
    pub(crate) fn representative(&self) -> Option<Fp> {
        let inv = self.re.invert().into_option()?;
        Some(self.im.mul(&inv))
    }
}

/// Replaces each element of `v` by its inverse with one inversion (Montgomery's trick: 3
/// multiplications per element besides it); `None`, and `v` unchanged, when one of them is 0.
pub(crate) fn batch_invert(v: &mut [Fp]) -> Option<()> {
    // prefix[i] = v_0 · … · v_(i−1)
    let mut prefix = Vec::with_capacity(v.len());
    let mut acc = Fp::ONE;
    for x in v.iter() {
        prefix.push(acc);
        acc = acc.mul(x);
    }
    let mut inv = acc.invert().into_option()?;
    for (x, pre) in v.iter_mut().zip(&prefix).rev() {
        // inv = (v_0 · … · v_i)^−1 here.
        let xi = inv.mul(pre);
        inv = inv.mul(x);
        *x = xi;
    }
    Some(())
}

/// The products an addition starts from (RCB 2015 Algorithms 4 and 5): X1X2, Y1Y2, Z1Z2,
/// X1Y2 + X2Y1, Y1Z2 + Y2Z1, X1Z2 + X2Z1.
struct Products {
    xx: Fp,
    yy: Fp,
    zz: Fp,
    xy: Fp,
    yz: Fp,
    xz: Fp,
}

/// A point of E(F_p) other than the identity, affine (x, y): the entries of the fixed-base
/// tables (`fixed.rs`), added with [`Point::add_affine`].
#[derive(Clone, Copy)]
pub(crate) struct Affine {
    x: Fp,
    y: Fp,
}

impl Affine {
    /// A placeholder for table slots before they are filled (not a point).
    pub(crate) const ZERO: Self = Self {
        x: Fp::ZERO,
        y: Fp::ZERO,
    };

    pub(crate) fn ct_assign(&mut self, o: &Self, c: Choice) {
        self.x.ct_assign(&o.x, c);
        self.y.ct_assign(&o.y, c);
    }

    /// −self when `c` is true (y → −y), in constant time.
    pub(crate) fn ct_negate(&mut self, c: Choice) {
        let neg = self.y.neg();
        self.y.ct_assign(&neg, c);
    }

    /// −self.
    pub(crate) fn negated(&self) -> Self {
        Self {
            x: self.x,
            y: self.y.neg(),
        }
    }
}

impl zeroize::Zeroize for Affine {
    fn zeroize(&mut self) {
        self.x.zeroize();
        self.y.zeroize();
    }
}

/// A point of E(F_p), projective; the identity is (0 : 1 : 0).
#[derive(Clone, Copy)]
pub(crate) struct Point {
    x: Fp,
    y: Fp,
    z: Fp,
}

impl Point {
    pub(crate) const IDENTITY: Self = Self {
        x: Fp::ZERO,
        y: Fp::ONE,
        z: Fp::ZERO,
    };

    /// The point (x, y) (not checked to be on the curve).
    pub(crate) fn from_affine(x: Fp, y: Fp) -> Self {
        Self { x, y, z: Fp::ONE }
    }

    /// (X, Y, Z).
    pub(crate) fn coordinates(&self) -> (Fp, Fp, Fp) {
        (self.x, self.y, self.z)
    }

    /// The generator P of parameter set 1.
    pub(crate) fn generator() -> Self {
        Self {
            x: Fp::new(&U1024::from_be_hex(SAKKE_PX_HEX)),
            y: Fp::new(&U1024::from_be_hex(SAKKE_PY_HEX)),
            z: Fp::ONE,
        }
    }

    /// Whether the affine point (x, y) satisfies y² = x³ − 3x.
    fn on_curve(x: &Fp, y: &Fp) -> bool {
        let rhs = x.square().sub(&small(3)).mul(x);
        bool::from(y.square().ct_eq(&rhs))
    }

    /// Decodes `04 ‖ x ‖ y` (257 octets).
    pub(crate) fn from_octets(b: &[u8]) -> Result<Self, PointError> {
        if b.len() != SAKKE_POINT_LEN {
            return Err(PointError::Length(b.len()));
        }
        let (tag, xy) = b.split_first().ok_or(PointError::Length(0))?;
        if *tag != 0x04 {
            return Err(PointError::NotUncompressed);
        }
        let (xb, yb) = xy
            .split_at_checked(SAKKE_L)
            .ok_or(PointError::Length(b.len()))?;
        let x = fp_from_octets(xb).ok_or(PointError::NotOnCurve)?;
        let y = fp_from_octets(yb).ok_or(PointError::NotOnCurve)?;
        if !Self::on_curve(&x, &y) {
            return Err(PointError::NotOnCurve);
        }
        Ok(Self { x, y, z: Fp::ONE })
    }

    /// The affine coordinates; `None` for the identity.
    pub(crate) fn affine(&self) -> Option<(Fp, Fp)> {
        let zi = self.z.invert().into_option()?;
        Some((self.x.mul(&zi), self.y.mul(&zi)))
    }

    /// `04 ‖ x ‖ y`; `None` for the identity.
    pub(crate) fn to_octets(self) -> Option<[u8; SAKKE_POINT_LEN]> {
        let (x, y) = self.affine()?;
        let mut out = [0u8; SAKKE_POINT_LEN];
        let (tag, xy) = out.split_first_mut()?;
        *tag = 0x04;
        let (xo, yo) = xy.split_at_mut(SAKKE_L);
        xo.copy_from_slice(&to_octets(&x.retrieve()));
        yo.copy_from_slice(&to_octets(&y.retrieve()));
        Some(out)
    }

    /// Complete addition, RCB 2015 Algorithm 4 with b = 0.
    pub(crate) fn add(&self, o: &Self) -> Self {
        let xx = self.x.mul(&o.x);
        let yy = self.y.mul(&o.y);
        let zz = self.z.mul(&o.z);
        let xy = self.x.add(&self.y).mul(&o.x.add(&o.y)).sub(&xx.add(&yy));
        let yz = self.y.add(&self.z).mul(&o.y.add(&o.z)).sub(&yy.add(&zz));
        let xz = self.x.add(&self.z).mul(&o.x.add(&o.z)).sub(&xx.add(&zz));
        Self::sum_from(&Products {
            xx,
            yy,
            zz,
            xy,
            yz,
            xz,
        })
    }

    /// The end of RCB 2015 Algorithms 4 and 5 (b = 0), common to the addition and the mixed
    /// addition: the sum from X1X2, Y1Y2, Z1Z2, X1Y2 + X2Y1, Y1Z2 + Y2Z1 and X1Z2 + X2Z1.
    fn sum_from(p: &Products) -> Self {
        let Products {
            xx,
            yy,
            zz,
            xy,
            yz,
            xz,
        } = p;
        let bzz3 = xz.double().add(xz);
        let ym = yy.sub(&bzz3);
        let yp = yy.add(&bzz3);
        let zz3 = zz.double().add(zz);
        let bxz = zz3.add(xx).neg();
        let bxz3 = bxz.double().add(&bxz);
        let xx3m = xx.double().add(xx).sub(&zz3);
        Self {
            x: yp.mul(xy).sub(&yz.mul(&bxz3)),
            y: yp.mul(&ym).add(&xx3m.mul(&bxz3)),
            z: ym.mul(yz).add(&xy.mul(&xx3m)),
        }
    }

    /// `self + o` for an affine `o` (never the identity): RCB 2015 Algorithm 5 (mixed
    /// addition, a = −3) with b = 0, complete for every `self` — 11 multiplications instead of
    /// the 12 of [`Point::add`].
    pub(crate) fn add_affine(&self, o: &Affine) -> Self {
        let xx = self.x.mul(&o.x);
        let yy = self.y.mul(&o.y);
        let xy = self.x.add(&self.y).mul(&o.x.add(&o.y)).sub(&xx.add(&yy));
        let yz = o.y.mul(&self.z).add(&self.y);
        let xz = o.x.mul(&self.z).add(&self.x);
        Self::sum_from(&Products {
            xx,
            yy,
            zz: self.z,
            xy,
            yz,
            xz,
        })
    }

    /// The affine forms of `points` with one inversion ([`batch_invert`]); `None` when one of
    /// them is the identity or degenerate.
    pub(crate) fn batch_affine(points: &[Self]) -> Option<Vec<Affine>> {
        let mut z: Vec<Fp> = points.iter().map(|p| p.z).collect();
        batch_invert(&mut z)?;
        Some(
            points
                .iter()
                .zip(&z)
                .map(|(p, zi)| Affine {
                    x: p.x.mul(zi),
                    y: p.y.mul(zi),
                })
                .collect(),
        )
    }

    /// Complete doubling, RCB 2015 Algorithm 6 with b = 0.
    pub(crate) fn double(&self) -> Self {
        let xx = self.x.square();
        let yy = self.y.square();
        let zz = self.z.square();
        let xy2 = self.x.mul(&self.y).double();
        let xz2 = self.x.mul(&self.z).double();
        let bzz = xz2.neg();
        let bzz3 = bzz.double().add(&bzz);
        let ym = yy.sub(&bzz3);
        let yp = yy.add(&bzz3);
        let zz3 = zz.double().add(&zz);
        let bxz2 = zz3.add(&xx).neg();
        let bxz6 = bxz2.double().add(&bxz2);
        let xx3m = xx.double().add(&xx).sub(&zz3);
        let yz2 = self.y.mul(&self.z).double();
        Self {
            x: ym.mul(&xy2).sub(&bxz6.mul(&yz2)),
            y: yp.mul(&ym).add(&xx3m.mul(&bxz6)),
            z: yz2.mul(&yy).double().double(),
        }
    }

    pub(crate) fn ct_assign(&mut self, o: &Self, c: Choice) {
        self.x.ct_assign(&o.x, c);
        self.y.ct_assign(&o.y, c);
        self.z.ct_assign(&o.z, c);
    }

    /// `[k]self` for a secret k below 2^1024: a fixed window of 4 bits over all 1024 bits (1,024
    /// doublings and 256 additions), each of the 16 precomputed multiples chosen by a
    /// constant-time scan of the whole table; the complete formulas add the identity (a zero
    /// digit) like any point.
    #[cfg(test)]
    pub(crate) fn mul(&self, k: &U1024) -> Self {
        let mut table = [Self::IDENTITY; 16];
        let mut acc = Self::IDENTITY;
        for t in &mut table {
            *t = acc;
            acc = acc.add(self);
        }
        let mut r = Self::IDENTITY;
        for w in (0..WINDOWS).rev() {
            for _ in 0..4 {
                r = r.double();
            }
            let digit = window(k, w);
            let mut pick = Self::IDENTITY;
            for (d, entry) in (0u32..).zip(table.iter()) {
                pick.ct_assign(entry, d.ct_eq(&digit));
            }
            r = r.add(&pick);
        }
        r
    }

    /// `[k]self` for a **public** k (an identifier, the group order), in variable time: a
    /// left-to-right window of 4 bits over the significant bits of k only. The field arithmetic
    /// stays constant-time, so the point itself may be secret; only k's bits show in the timing.
    pub(crate) fn mul_vartime(&self, k: &U1024) -> Self {
        let mut table = [Self::IDENTITY; 16];
        let mut acc = Self::IDENTITY;
        for t in &mut table {
            *t = acc;
            acc = acc.add(self);
        }
        let windows = k.bit_width_vartime().div_ceil(4);
        let mut r = Self::IDENTITY;
        for w in (0..windows).rev() {
            for _ in 0..4 {
                r = r.double();
            }
            let digit = (0..4).rev().fold(0usize, |d, j| {
                (d << 1) | usize::from(k.bit_vartime(4 * w + j))
            });
            if let Some(t) = table.get(digit).filter(|_| digit != 0) {
                r = r.add(t);
            }
        }
        r
    }

    /// `[k]P` for the generator P and a secret k: one addition per signed 6-bit digit of k from
    /// the precomputed multiples of P ([`generator_table`], `fixed.rs`), each table entry chosen
    /// by a constant-time scan of its whole row. 171 additions and no doubling. `None` only if
    /// the table could not be made, which the constant P (of order q) rules out.
    pub(crate) fn mul_generator(k: &U1024) -> Option<Self> {
        generator_table().map(|t| t.mul(k))
    }

    /// `[k]P` for the generator P and a **public** k, in variable time: the additions of the
    /// nonzero digits over k's significant bits only.
    pub(crate) fn mul_generator_vartime(k: &U1024) -> Option<Self> {
        generator_table().map(|t| t.mul_vartime(k))
    }

    /// Projective equality: X1·Z2 = X2·Z1 and Y1·Z2 = Y2·Z1, and neither is the degenerate
    /// (0 : 0 : 0), which would equal anything.
    pub(crate) fn equals(&self, o: &Self) -> bool {
        let a = self.x.mul(&o.z).ct_eq(&o.x.mul(&self.z));
        let b = self.y.mul(&o.z).ct_eq(&o.y.mul(&self.z));
        bool::from(a.and(b)) && !self.is_degenerate() && !o.is_degenerate()
    }

    fn is_degenerate(&self) -> bool {
        bool::from(
            self.x
                .ct_eq(&Fp::ZERO)
                .and(self.y.ct_eq(&Fp::ZERO))
                .and(self.z.ct_eq(&Fp::ZERO)),
        )
    }

    /// (0 : Y : 0) with Y ≠ 0; the degenerate (0 : 0 : 0), which the complete formulas give
    /// only for inputs differing by a point of order 2, is not the identity.
    pub(crate) fn is_identity(&self) -> bool {
        bool::from(self.z.ct_eq(&Fp::ZERO).and(self.y.ct_eq(&Fp::ZERO).not()))
    }

    /// Whether the point is of order q: not of order 2 (y ≠ 0, where the formulas would
    /// be exceptional) and \[q\]P = O. E(F_p) has order 4q.
    pub(crate) fn in_subgroup(&self) -> bool {
        let Some((_, y)) = self.affine() else {
            return false;
        };
        !bool::from(y.ct_eq(&Fp::ZERO)) && self.mul_vartime(&Q).is_identity()
    }
}

impl zeroize::Zeroize for Point {
    fn zeroize(&mut self) {
        self.x.zeroize();
        self.y.zeroize();
        self.z.zeroize();
    }
}

/// The 4-bit windows of a 1024-bit scalar (the reference multiplications of the tests).
#[cfg(test)]
pub(crate) const WINDOWS: usize = 256;

/// The 4 bits of `k` at window `w` (bits 4w to 4w + 3).
#[cfg(test)]
pub(crate) fn window(k: &U1024, w: usize) -> u32 {
    let base = 4 * w as u32;
    (0..4)
        .rev()
        .fold(0u32, |d, j| (d << 1) | u32::from(k.bit(base + j).to_u8()))
}

/// The multiples of the generator, one row per signed digit of a 1024-bit scalar
/// ([`FixedBase`]: 1.3 MiB), computed once, on first use.
fn generator_table() -> Option<&'static FixedBase> {
    static TABLE: std::sync::OnceLock<Option<FixedBase>> = std::sync::OnceLock::new();
    TABLE
        .get_or_init(|| FixedBase::new(&Point::generator()))
        .as_ref()
}

/// Why octets are not a point of E(F_p).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PointError {
    Length(usize),
    NotUncompressed,
    NotOnCurve,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_torsion() -> Point {
        Point {
            x: Fp::ZERO,
            y: Fp::ZERO,
            z: Fp::ONE,
        }
    }

    #[test]
    fn subgroup_check_refuses_points_with_a_component_of_order_2() {
        let p = Point::generator();
        assert!(p.in_subgroup());
        let t = two_torsion();
        assert!(!t.in_subgroup());
        // P + T has order 2q: on the curve, decodes, not in the subgroup.
        let pt = p.add(&t).to_octets().unwrap();
        let decoded = Point::from_octets(&pt).unwrap();
        assert!(!decoded.in_subgroup());
        // [2](P + T) = [2]P is back in it.
        assert!(decoded.double().equals(&p.double()));
        assert!(decoded.double().in_subgroup());
    }

    #[test]
    fn the_variable_time_window_agrees_with_the_constant_time_one() {
        let p = Point::generator();
        for k in [
            U1024::ZERO,
            U1024::ONE,
            U1024::from_u64(15),
            U1024::from_u64(16),
            U1024::from_u64(0x1234_5678_9abc_def1),
            Q.wrapping_sub(&U1024::ONE),
            Q,
        ] {
            let (a, b) = (p.mul_vartime(&k), p.mul(&k));
            assert!(
                a.equals(&b) || (a.is_identity() && b.is_identity()),
                "k = {k}"
            );
        }
        assert!(p.mul_vartime(&Q).is_identity());
    }

    #[test]
    fn the_generator_table_agrees_with_the_variable_base_multiplication() {
        let p = Point::generator();
        for k in [
            U1024::ZERO,
            U1024::ONE,
            U1024::from_u64(16),
            U1024::from_u64(0xfedc_ba98_7654_3211),
            Q.wrapping_sub(&U1024::ONE),
            U1024::MAX,
        ] {
            let want = p.mul(&k);
            for got in [Point::mul_generator(&k), Point::mul_generator_vartime(&k)] {
                let got = got.unwrap();
                assert!(
                    got.equals(&want) || (got.is_identity() && want.is_identity()),
                    "k = {k}"
                );
            }
        }
    }

    #[test]
    fn mixed_addition_agrees_with_the_projective_one() {
        let p = Point::generator();
        let q = p.mul(&U1024::from_u64(77));
        let qa = Point::batch_affine(&[q]).unwrap()[0];
        // A generic sum, a doubling (p + p), the identity plus a point, and p + (−p).
        for a in [
            p,
            q,
            Point::IDENTITY,
            p.mul(&Q.wrapping_sub(&U1024::from_u64(77))),
        ] {
            let want = a.add(&q);
            let got = a.add_affine(&qa);
            assert!(
                got.equals(&want) || (got.is_identity() && want.is_identity()),
                "sum differs"
            );
        }
        assert!(
            p.add_affine(&Point::batch_affine(&[p]).unwrap()[0])
                .equals(&p.double())
        );
        let neg = qa.negated();
        assert!(q.add_affine(&neg).is_identity());
        let mut neg2 = qa;
        neg2.ct_negate(Choice::TRUE);
        assert!(q.add_affine(&neg2).is_identity());
    }

    #[test]
    fn batch_inversion_inverts_each_and_refuses_a_zero() {
        let mut v: Vec<Fp> = (1u64..9).map(small).collect();
        let orig = v.clone();
        batch_invert(&mut v).unwrap();
        for (a, b) in v.iter().zip(&orig) {
            assert!(bool::from(a.mul(b).ct_eq(&Fp::ONE)));
        }
        let mut z = vec![small(3), Fp::ZERO, small(5)];
        assert!(batch_invert(&mut z).is_none());
        assert!(bool::from(z[0].ct_eq(&small(3))));
        assert!(Point::batch_affine(&[Point::generator(), Point::IDENTITY]).is_none());
    }

    #[test]
    fn multiplication_agrees_with_repeated_addition() {
        let p = Point::generator();
        let mut acc = Point::IDENTITY;
        for k in 0u64..20 {
            assert!(p.mul(&U1024::from_u64(k)).equals(&acc), "k = {k}");
            acc = acc.add(&p);
        }
        assert!(p.mul(&U1024::ZERO).is_identity());
        // The degenerate triple equals nothing, not even itself.
        let zero = Point {
            x: Fp::ZERO,
            y: Fp::ZERO,
            z: Fp::ZERO,
        };
        assert!(!zero.equals(&p) && !p.equals(&zero) && !zero.equals(&zero));
        assert!(!zero.is_identity());
    }
}
