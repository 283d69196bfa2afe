//! Fixed-base tables for SAKKE encapsulation and its re-check in decapsulation
//! (RFC 6508 §6.2.1: R = \[r\](\[b\]P + Z_S) and g^r, with r secret), and for the KMS's
//! multiples of the generator (Z_S, each RSK).
//!
//! Since P and Z_S are both of order q, \[r\](\[b\]P + Z_S) = \[r·b mod q\]P + \[r\]Z_S: two
//! multiplications of fixed points — P (the generator's table, [`Point::mul_generator`]) and the
//! KMS's Z_S, whose table is built once per Z_S and cached ([`z_table`]) — instead of a
//! variable-base multiplication of \[b\]P + Z_S (1,024 doublings). Likewise g is a constant of
//! the parameter set, so g^r comes from a table of its powers ([`pow_g`]) instead of 1,024
//! squarings in F_p².
//!
//! A scalar is read as [`ROWS`] signed digits of 6 bits, each in \[−32, 31\]
//! ([`signed_digits`]), so a multiplication is 171 additions — one per digit, no doubling —
//! instead of 256 with unsigned 4-bit windows. A table row holds the multiples 1 to 32 of
//! its base, affine (added with the 11 multiplications of the mixed formula); a negative digit
//! takes the negation of its entry, which is free on the curve (y → −y) and in the group of
//! g (the conjugate).
//!
//! Constant time: every digit costs one addition (or multiplication), and its entry is picked
//! by a scan of the whole row and negated by a mask, whatever its value; for a zero digit the
//! sum is computed and discarded by a mask.

use std::sync::{Arc, Mutex, OnceLock};

use crypto_bigint::{Choice, CtEq, U1024};
use zeroize::Zeroizing;

use super::cache::{TableCache, cached, remember};
use super::field::{Affine, Fp, Fp2, Point};
use super::params::SAKKE_POINT_LEN;

/// Bits per signed digit.
pub(crate) const DIGIT_BITS: usize = 6;
/// Signed digits of a scalar below 2^1024: 171 (1,026 bits; the top digit is at most 16, so
/// the recoding never carries out of it).
pub(crate) const ROWS: usize = 1024usize.div_ceil(DIGIT_BITS);
/// Entries per row: the multiples 1 to 32 of the row's base.
pub(crate) const ENTRIES: usize = 1 << (DIGIT_BITS - 1);

/// `k` as 171 signed digits d_w ∈ \[−32, 31\] with k = Σ d_w·64^w, without a branch or an
/// index that depends on k.
pub(crate) fn signed_digits(k: &U1024) -> Zeroizing<[i8; ROWS]> {
    signed_digits_of(k.as_words())
}

/// The first `R` signed 6-bit digits of the integer of little-endian `words` (digits in
/// \[−32, 31\]; the caller chooses `R` so that the top digit cannot carry out: 171 for 1,024
/// bits, 43 for 256), in constant time.
pub(crate) fn signed_digits_of<const R: usize>(words: &[u64]) -> Zeroizing<[i8; R]> {
    let mut out = Zeroizing::new([0i8; R]);
    let mut carry = 0u64;
    for (w, digit) in out.iter_mut().enumerate() {
        // The 6 bits at 6w (positions depend on w only).
        let bit = DIGIT_BITS * w;
        let (i, off) = (bit / 64, bit % 64);
        let lo = words.get(i).copied().unwrap_or(0) >> off;
        let hi = match off {
            0 => 0,
            _ => words.get(i + 1).copied().unwrap_or(0) << (64 - off),
        };
        let v = ((lo | hi) & 0x3f) + carry;
        // v ∈ [0, 64]: v ≥ 32 becomes v − 64 and carries one into the next digit.
        carry = (v + 32) >> 6;
        *digit = (v as i64 - ((carry as i64) << 6)) as i8;
    }
    out
}

/// The magnitude of a digit and whether it is negative, without a branch.
pub(crate) fn magnitude(d: i8) -> (u32, Choice) {
    let sign = i32::from(d) >> 31; // 0 or −1
    let mag = ((i32::from(d) ^ sign) - sign) as u32;
    (mag, Choice::from_u32_lsb((sign & 1) as u32))
}

/// The multiples of one point of order q, one row per signed digit of a 1024-bit scalar:
/// `row[w][j] = [(j + 1)·64^w]B`, affine. 171 × 32 points (1.3 MiB), made with 5,643
/// additions and doublings and one batch inversion.
pub(crate) struct FixedBase(Vec<[Affine; ENTRIES]>);

impl FixedBase {
    /// The table of `base`; `None` when one of its entries is the identity, which never happens
    /// for a point of order q (q is a prime above 32).
    pub(crate) fn new(base: &Point) -> Option<Self> {
        let mut all = Vec::with_capacity(ROWS * ENTRIES);
        let mut base = *base;
        for _ in 0..ROWS {
            let mut acc = base;
            for _ in 0..ENTRIES {
                all.push(acc);
                acc = acc.add(&base);
            }
            // The last entry is [32]base: the next row's base is [64]base.
            base = all.last().map_or(base, Point::double);
        }
        let affine = Point::batch_affine(&all)?;
        let rows = affine
            .chunks_exact(ENTRIES)
            .map(|c| {
                let mut row = [Affine::ZERO; ENTRIES];
                row.copy_from_slice(c);
                row
            })
            .collect();
        Some(Self(rows))
    }

    /// `[k]B` for a secret k: 171 additions, each addend by a constant-time row scan.
    pub(crate) fn mul(&self, k: &U1024) -> Point {
        let digits = signed_digits(k);
        let mut r = Point::IDENTITY;
        for (row, &d) in self.0.iter().zip(digits.iter()) {
            let (mag, negative) = magnitude(d);
            let mut pick = row[0];
            for (j, entry) in (1u32..).zip(row.iter()) {
                pick.ct_assign(entry, j.ct_eq(&mag));
            }
            pick.ct_negate(negative);
            let sum = r.add_affine(&pick);
            r.ct_assign(&sum, mag.ct_eq(&0).not());
        }
        r
    }

    /// `[k]B` for a **public** k: the additions of the nonzero digits over k's significant
    /// bits only.
    pub(crate) fn mul_vartime(&self, k: &U1024) -> Point {
        let rows = (k.bit_width_vartime() as usize).div_ceil(DIGIT_BITS) + 1;
        let digits = signed_digits(k);
        let mut r = Point::IDENTITY;
        for (row, &d) in self.0.iter().zip(digits.iter()).take(rows) {
            let Some(entry) = row.get(usize::from(d.unsigned_abs()).wrapping_sub(1)) else {
                continue;
            };
            r = if d < 0 {
                r.add_affine(&entry.negated())
            } else {
                r.add_affine(entry)
            };
        }
        r
    }
}

/// How many KMS public keys keep a table: a client meets its home KMS and a few others
/// (1.3 MiB each).
const Z_CACHE: usize = 4;

/// The table of Z_S (given with its octets, the cache key): built on first use, kept for the
/// last [`Z_CACHE`] keys used. Z_S is public and of order q (checked where it is decoded);
/// `None` only if it were not.
pub(crate) fn z_table(z: &Point, octets: &[u8; SAKKE_POINT_LEN]) -> Option<Arc<FixedBase>> {
    static CACHE: OnceLock<TableCache<[u8; SAKKE_POINT_LEN], FixedBase>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(Vec::new()));
    if let Some(t) = cached(cache, octets) {
        return Some(t);
    }
    // Built outside the lock: two threads may build the same table once each.
    let table = Arc::new(FixedBase::new(z)?);
    remember(cache, *octets, &table, Z_CACHE);
    Some(table)
}

/// The powers of 1 + i·g (whose class in PF_p is g), one row per signed digit, each
/// normalised to 1 + i·t and kept as t: `row[w][j] = t` with the class of
/// (1 + i·g)^((j + 1)·64^w) equal to that of 1 + i·t. 171 × 32 elements of F_p (684 KiB), made
/// once. A power's real part is never 0 (the class of i has order 2, g has order q), so the
/// normalisation always exists; multiplying by 1 + i·t costs 2 multiplications in F_p and its
/// conjugate 1 − i·t is its inverse in PF_p.
fn g_table(g: &Fp) -> &'static [[Fp; ENTRIES]] {
    static TABLE: OnceLock<Vec<[Fp; ENTRIES]>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut powers = Vec::with_capacity(ROWS * ENTRIES);
        let mut base = Fp2 {
            re: Fp::ONE,
            im: *g,
        };
        for _ in 0..ROWS {
            let mut acc = base;
            for _ in 0..ENTRIES {
                powers.push(acc);
                acc = acc.mul(&base);
            }
            // The last power is base^32: the next row's base is base^64.
            base = powers.last().map_or(base, Fp2::square);
        }
        // t = im / re, all real parts inverted at once. None of them is 0 (above); if one
        // were, every t would be left 0 and the tests against the exponentiation would fail.
        let mut re: Vec<Fp> = powers.iter().map(|p| p.re).collect();
        let inverted = super::field::batch_invert(&mut re).is_some();
        let ts: Vec<Fp> = powers
            .iter()
            .zip(&re)
            .map(|(p, ri)| if inverted { p.im.mul(ri) } else { Fp::ZERO })
            .collect();
        ts.chunks_exact(ENTRIES)
            .map(|c| {
                let mut row = [Fp::ZERO; ENTRIES];
                row.copy_from_slice(c);
                row
            })
            .collect()
    })
}

/// An element of F_p² in the class of `(1 + i·g)^e` for a secret e below 2^1024, `g` the
/// parameter set's g (the table is made from the first `g` given; there is one): 171
/// multiplications by 1 ± i·t, each t by a constant-time row scan (t = 0 for a zero digit).
pub(crate) fn pow_g(g: &Fp, e: &U1024) -> Fp2 {
    let digits = signed_digits(e);
    let mut r = Fp2::ONE;
    for (row, &d) in g_table(g).iter().zip(digits.iter()) {
        let (mag, negative) = magnitude(d);
        let mut t = Fp::ZERO;
        for (j, entry) in (1u32..).zip(row.iter()) {
            t.ct_assign(entry, j.ct_eq(&mag));
        }
        let neg = t.neg();
        t.ct_assign(&neg, negative);
        r = r.mul_by_one_plus_i(&t);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ibe::field::Q;
    use crate::ibe::params::SAKKE_G_HEX;

    fn scalars() -> [U1024; 6] {
        [
            U1024::ZERO,
            U1024::ONE,
            U1024::from_u64(16),
            U1024::from_u64(0xfedc_ba98_7654_3211),
            Q.wrapping_sub(&U1024::ONE),
            U1024::MAX,
        ]
    }

    #[test]
    fn a_point_table_agrees_with_the_variable_base_multiplication() {
        let b = Point::generator().mul(&U1024::from_u64(0x1234_5678_9abc));
        let t = FixedBase::new(&b).unwrap();
        for k in scalars() {
            let want = b.mul(&k);
            for got in [t.mul(&k), t.mul_vartime(&k)] {
                assert!(
                    got.equals(&want) || (got.is_identity() && want.is_identity()),
                    "k = {k}"
                );
            }
        }
    }

    #[test]
    fn the_powers_of_g_agree_with_the_exponentiation() {
        let g = Fp::new(&U1024::from_be_hex(SAKKE_G_HEX));
        let base = Fp2 { re: Fp::ONE, im: g };
        for e in scalars() {
            let (a, b) = (pow_g(&g, &e), base.pow_ct(&e));
            // The same class in PF_p: a.re·b.im = a.im·b.re, neither element 0.
            assert!(
                bool::from(a.re.mul(&b.im).ct_eq(&a.im.mul(&b.re))),
                "e = {e}"
            );
            assert!(!bool::from(a.re.ct_eq(&Fp::ZERO) & a.im.ct_eq(&Fp::ZERO)));
            assert_eq!(
                a.representative().map(|t| t.retrieve()),
                b.representative().map(|t| t.retrieve()),
                "e = {e}"
            );
        }
    }

    /// Σ d_w·64^w, by Horner's rule from the top digit, as an integer mod 2^1024 (the recoding
    /// never needs more).
    fn recombine(digits: &[i8; ROWS]) -> U1024 {
        digits.iter().rev().fold(U1024::ZERO, |acc, &d| {
            let acc = acc.wrapping_shl(DIGIT_BITS as u32);
            let m = U1024::from_u64(u64::from(d.unsigned_abs()));
            if d < 0 {
                acc.wrapping_sub(&m)
            } else {
                acc.wrapping_add(&m)
            }
        })
    }

    #[test]
    fn signed_digits_are_in_range_and_recombine_to_the_scalar() {
        for k in scalars() {
            let d = signed_digits(&k);
            assert!(d.iter().all(|&d| (-32..32).contains(&d)), "k = {k}");
            assert_eq!(recombine(&d), k);
        }
        // Every bit pattern of a digit, with and without an incoming carry.
        for v in 0u64..64 {
            for below in [0u64, 0x20, 0x3f] {
                let k = U1024::from_u64(v << 6 | below).wrapping_shl(60);
                assert_eq!(recombine(&signed_digits(&k)), k, "v = {v}");
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(12))]
        /// Random scalars: the digits recombine, and both table multiplications agree with the
        /// reference one, for P's table and another point's.
        #[test]
        fn random_scalars_agree_with_the_reference(words in proptest::array::uniform16(proptest::prelude::any::<u64>())) {
            let k = U1024::from_words(words);
            proptest::prop_assert_eq!(recombine(&signed_digits(&k)), k);
            let b = Point::generator().mul(&U1024::from_u64(0xbeef));
            let t = FixedBase::new(&b).unwrap();
            let want = b.mul(&k);
            proptest::prop_assert!(t.mul(&k).equals(&want));
            proptest::prop_assert!(t.mul_vartime(&k).equals(&want));
        }
    }

    #[test]
    fn the_z_cache_keeps_the_last_keys_and_gives_the_same_products() {
        let points: Vec<Point> = (2u64..8)
            .map(|k| Point::generator().mul(&U1024::from_u64(k)))
            .collect();
        let k = U1024::from_u64(0xabcdef);
        for _ in 0..2 {
            for p in &points {
                let octets = p.to_octets().unwrap();
                assert!(z_table(p, &octets).unwrap().mul(&k).equals(&p.mul(&k)));
            }
        }
    }
}
