//! F_p of SAKKE parameter set 1 (p of 1,024 bits, RFC 6509 §7) in Montgomery form with
//! R = 2^1024, on sixteen 64-bit limbs: the multiplication and squaring every SAKKE operation
//! spends its time in, written for this one fixed p.
//!
//! The representation is the one of `crypto-bigint`'s `ConstMontyForm` for p (a·R mod p, fully
//! reduced, little-endian limbs), so conversions, the inversion and the tests go through it;
//! the unit tests check every operation against it.
//!
//! Constant time: every operation runs the same instructions whatever the values (no branch or
//! index depends on them); the final conditional subtraction of p is a mask.

// The indices below are loop counters over fixed-size arrays, in bounds by construction (the
// compiler removes the checks); iterators would hide the carry chains.
#![allow(clippy::indexing_slicing)]

use crypto_bigint::modular::ConstMontyForm;
use crypto_bigint::{Choice, CtOption, U1024, const_monty_params};

use super::limbs::{adc, mac, sbb};
use super::params::SAKKE_P_HEX;

const_monty_params!(PMod, U1024, SAKKE_P_HEX, "The SAKKE prime p.");
/// `crypto-bigint`'s F_p, for conversions and the inversion.
type Reference = ConstMontyForm<PMod, { U1024::LIMBS }>;

const N: usize = 16;

/// p, little-endian limbs.
const P: [u64; N] = U1024::from_be_hex(SAKKE_P_HEX).to_words();

/// −p^−1 mod 2^64 (Newton's iteration: each step doubles the correct low bits).
const N0: u64 = {
    let p0 = P[0];
    let mut inv = 1u64;
    let mut i = 0;
    while i < 6 {
        inv = inv.wrapping_mul(2u64.wrapping_sub(p0.wrapping_mul(inv)));
        i += 1;
    }
    inv.wrapping_neg()
};

/// An element of F_p: a·2^1024 mod p, below p.
#[derive(Clone, Copy)]
pub(crate) struct Fp([u64; N]);

/// `hi·2^1024 + t` minus p when that is at least p (the input is below 2p).
#[inline(always)]
fn reduce_once(t: &[u64; N], hi: u64) -> [u64; N] {
    let mut d = [0u64; N];
    let mut borrow = 0;
    for i in 0..N {
        (d[i], borrow) = sbb(t[i], P[i], borrow);
    }
    let (_, borrow) = sbb(hi, 0, borrow);
    // borrow = 1: the value was below p; keep t.
    let keep = borrow.wrapping_neg();
    let mut out = [0u64; N];
    for i in 0..N {
        out[i] = (t[i] & keep) | (d[i] & !keep);
    }
    out
}

/// Montgomery reduction of a 2,048-bit t below p·2^1024: t·2^−1024 mod p.
#[inline(always)]
fn redc(mut t: [u64; 2 * N]) -> [u64; N] {
    let mut extra = 0u64;
    for i in 0..N {
        let m = t[i].wrapping_mul(N0);
        let mut c = 0;
        for j in 0..N {
            (t[i + j], c) = mac(m, P[j], t[i + j], c);
        }
        (t[i + N], extra) = adc(t[i + N], c, extra);
    }
    let mut hi = [0u64; N];
    hi.copy_from_slice(&t[N..]);
    reduce_once(&hi, extra)
}

impl Fp {
    pub(crate) const ZERO: Self = Self([0; N]);
    pub(crate) const ONE: Self = Self(Reference::ONE.as_montgomery().to_words());

    /// The element of an integer below p.
    pub(crate) fn new(v: &U1024) -> Self {
        Self(Reference::new(v).as_montgomery().to_words())
    }

    /// The integer (below p).
    pub(crate) fn retrieve(&self) -> U1024 {
        self.reference().retrieve()
    }

    fn reference(&self) -> Reference {
        Reference::from_montgomery(U1024::from_words(self.0))
    }

    /// The product (operand scanning, then one Montgomery reduction).
    pub(crate) fn mul(&self, o: &Self) -> Self {
        let (a, b) = (&self.0, &o.0);
        let mut t = [0u64; 2 * N];
        for i in 0..N {
            let mut c = 0;
            for j in 0..N {
                (t[i + j], c) = mac(a[j], b[i], t[i + j], c);
            }
            t[i + N] = c;
        }
        Self(redc(t))
    }

    /// The square: the products a_i·a_j (i < j) once, doubled, plus the squares a_i², then one
    /// Montgomery reduction (136 limb products before the reduction instead of 256).
    pub(crate) fn square(&self) -> Self {
        let a = &self.0;
        let mut t = [0u64; 2 * N];
        for i in 0..N - 1 {
            let mut c = 0;
            for j in i + 1..N {
                (t[i + j], c) = mac(a[i], a[j], t[i + j], c);
            }
            t[i + N] = c;
        }
        // Double: shift left by one bit.
        let mut top = 0;
        for limb in &mut t {
            let next = *limb >> 63;
            *limb = (*limb << 1) | top;
            top = next;
        }
        // Add the squares of the limbs on the diagonal.
        let mut c = 0;
        for i in 0..N {
            let (lo, hi) = mac(a[i], a[i], 0, 0);
            (t[2 * i], c) = adc(t[2 * i], lo, c);
            (t[2 * i + 1], c) = adc(t[2 * i + 1], hi, c);
        }
        Self(redc(t))
    }

    pub(crate) fn add(&self, o: &Self) -> Self {
        let mut s = [0u64; N];
        let mut c = 0;
        for (i, limb) in s.iter_mut().enumerate() {
            (*limb, c) = adc(self.0[i], o.0[i], c);
        }
        Self(reduce_once(&s, c))
    }

    pub(crate) fn sub(&self, o: &Self) -> Self {
        let mut d = [0u64; N];
        let mut borrow = 0;
        for (i, limb) in d.iter_mut().enumerate() {
            (*limb, borrow) = sbb(self.0[i], o.0[i], borrow);
        }
        // Below zero: add p back.
        let mask = borrow.wrapping_neg();
        let mut c = 0;
        for (limb, p) in d.iter_mut().zip(P) {
            (*limb, c) = adc(*limb, p & mask, c);
        }
        Self(d)
    }

    pub(crate) fn double(&self) -> Self {
        self.add(self)
    }

    pub(crate) fn neg(&self) -> Self {
        Self::ZERO.sub(self)
    }

    /// The inverse (`crypto-bigint`'s constant-time inversion); none for 0.
    pub(crate) fn invert(&self) -> CtOption<Self> {
        self.reference()
            .invert()
            .map(|r| Self(r.as_montgomery().to_words()))
    }

    pub(crate) fn ct_eq(&self, o: &Self) -> Choice {
        let diff = self
            .0
            .iter()
            .zip(o.0)
            .fold(0u64, |acc, (a, b)| acc | (a ^ b));
        Choice::from_u64_nz(diff).not()
    }

    /// `self = o` when `c` is true, in constant time.
    pub(crate) fn ct_assign(&mut self, o: &Self, c: Choice) {
        let mask = c.to_u64_mask();
        for (a, b) in self.0.iter_mut().zip(o.0) {
            *a ^= (*a ^ b) & mask;
        }
    }
}

impl zeroize::Zeroize for Fp {
    fn zeroize(&mut self) {
        self.0.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crypto_bigint::CtEq;
    use proptest::prelude::*;

    fn element(words: [u64; N]) -> (Fp, Reference) {
        // Any 1024-bit value reduced below p, through crypto-bigint.
        let v = U1024::from_words(words);
        let p = crypto_bigint::NonZero::new(U1024::from_words(P)).unwrap();
        let v = v.rem(&p);
        (Fp::new(&v), Reference::new(&v))
    }

    fn same(a: &Fp, r: &Reference) -> bool {
        a.0 == r.as_montgomery().to_words()
    }

    fn words() -> impl Strategy<Value = [u64; N]> {
        prop_oneof![
            proptest::array::uniform16(any::<u64>()),
            // Values near 0 and near p, where carries and the final subtraction matter.
            proptest::array::uniform16(prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()]),
            any::<u64>().prop_map(|d| {
                let mut w = P;
                w[0] = w[0].wrapping_sub(d % 4);
                w
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn every_operation_agrees_with_crypto_bigint(a in words(), b in words()) {
            let (x, rx) = element(a);
            let (y, ry) = element(b);
            prop_assert!(same(&x.mul(&y), &rx.mul(&ry)));
            prop_assert!(same(&x.square(), &rx.square()));
            prop_assert!(same(&x.add(&y), &rx.add(&ry)));
            prop_assert!(same(&x.sub(&y), &rx.sub(&ry)));
            prop_assert!(same(&x.double(), &rx.double()));
            prop_assert!(same(&x.neg(), &rx.neg()));
            prop_assert_eq!(bool::from(x.ct_eq(&y)), bool::from(rx.ct_eq(&ry)));
            prop_assert_eq!(x.retrieve(), rx.retrieve());
        }
    }

    #[test]
    fn edge_values_agree_with_crypto_bigint() {
        let p_minus_1 = U1024::from_words(P).wrapping_sub(&U1024::ONE);
        let vals = [U1024::ZERO, U1024::ONE, U1024::from_u64(2), p_minus_1];
        for a in &vals {
            for b in &vals {
                let (x, rx) = (Fp::new(a), Reference::new(a));
                let (y, ry) = (Fp::new(b), Reference::new(b));
                assert!(same(&x.mul(&y), &rx.mul(&ry)));
                assert!(same(&x.square(), &rx.square()));
                assert!(same(&x.add(&y), &rx.add(&ry)));
                assert!(same(&x.sub(&y), &rx.sub(&ry)));
            }
        }
        assert!(same(&Fp::ONE, &Reference::ONE));
        assert!(bool::from(Fp::ZERO.invert().is_none()));
        let x = Fp::new(&U1024::from_u64(12345));
        let inv = x.invert().unwrap();
        assert!(bool::from(x.mul(&inv).ct_eq(&Fp::ONE)));
        let mut z = Fp::ZERO;
        z.ct_assign(&x, Choice::FALSE);
        assert!(bool::from(z.ct_eq(&Fp::ZERO)));
        z.ct_assign(&x, Choice::TRUE);
        assert!(bool::from(z.ct_eq(&x)));
    }
}
