//! Fixed-base tables for SAKKE encapsulation and its re-check in decapsulation
//! (RFC 6508 §6.2.1: R = \[r\](\[b\]P + Z_S) and g^r, with r secret).
//!
//! Since P and Z_S are both of order q, \[r\](\[b\]P + Z_S) = \[r·b mod q\]P + \[r\]Z_S: two
//! multiplications of fixed points — P (the generator's table, [`Point::mul_generator`]) and the
//! KMS's Z_S, whose table is built once per Z_S and cached ([`z_table`]) — instead of a
//! variable-base multiplication of \[b\]P + Z_S (1,024 doublings). Likewise g is a constant of
//! the parameter set, so g^r comes from a table of its powers ([`pow_g`]) instead of 1,024
//! squarings in F_p².
//!
//! Constant time: one addition (or multiplication) per 4-bit window of the secret scalar, each
//! entry picked by a scan of its whole 16-entry row, whatever the digit; a zero digit picks the
//! identity, which the complete formulas add like any point.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use crypto_bigint::{CtEq, U1024};

use super::field::{Fp, Fp2, Point, WINDOWS, window};
use super::params::SAKKE_POINT_LEN;

/// The multiples of one point, one row per 4-bit window of a 1024-bit scalar:
/// `row[w][d] = [d·16^w]B` (d = 0: the identity). 256 × 16 projective points (1.5 MiB), made
/// with 3,840 additions.
pub(crate) struct FixedBase(Vec<[Point; 16]>);

impl FixedBase {
    pub(crate) fn new(base: &Point) -> Self {
        let mut rows = Vec::with_capacity(WINDOWS);
        let mut base = *base;
        for _ in 0..WINDOWS {
            let mut row = [Point::IDENTITY; 16];
            let mut acc = Point::IDENTITY;
            for entry in &mut row {
                *entry = acc;
                acc = acc.add(&base);
            }
            // acc = [16]base: the next window's base.
            base = acc;
            rows.push(row);
        }
        Self(rows)
    }

    /// `[k]B` for a secret k: 256 additions, each addend by a constant-time row scan.
    pub(crate) fn mul(&self, k: &U1024) -> Point {
        let mut r = Point::IDENTITY;
        for (w, row) in self.0.iter().enumerate() {
            let digit = window(k, w);
            let mut pick = Point::IDENTITY;
            for (d, entry) in (0u32..).zip(row.iter()) {
                pick.ct_assign(entry, d.ct_eq(&digit));
            }
            r = r.add(&pick);
        }
        r
    }

    /// `[k]B` for a **public** k: the additions of the nonzero windows over k's significant
    /// bits only.
    pub(crate) fn mul_vartime(&self, k: &U1024) -> Point {
        let windows = k.bit_width_vartime().div_ceil(4) as usize;
        let mut r = Point::IDENTITY;
        for (w, row) in self.0.iter().enumerate().take(windows) {
            let digit = window(k, w) as usize;
            if let Some(entry) = row.get(digit).filter(|_| digit != 0) {
                r = r.add(entry);
            }
        }
        r
    }
}

/// How many KMS public keys keep a table: a client meets its home KMS and a few others
/// (1.5 MiB each).
const Z_CACHE: usize = 4;

/// The table of Z_S (given with its octets, the cache key): built on first use, kept for the
/// last [`Z_CACHE`] keys used. Z_S is public.
pub(crate) fn z_table(z: &Point, octets: &[u8; SAKKE_POINT_LEN]) -> Arc<FixedBase> {
    type Cache = Mutex<Vec<([u8; SAKKE_POINT_LEN], Arc<FixedBase>)>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(Vec::new()));
    {
        let mut c = cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = c.iter().position(|(k, _)| k == octets) {
            // Most recently used last.
            let hit = c.remove(i);
            let table = Arc::clone(&hit.1);
            c.push(hit);
            return table;
        }
    }
    // Built outside the lock: two threads may build the same table once each.
    let table = Arc::new(FixedBase::new(z));
    let mut c = cache.lock().unwrap_or_else(PoisonError::into_inner);
    if c.len() >= Z_CACHE {
        c.remove(0);
    }
    c.push((*octets, Arc::clone(&table)));
    table
}

/// The powers of 1 + i·g (whose class in PF_p is g), one row per 4-bit window:
/// `row[w][d] = (1 + i·g)^(d·16^w)`. 256 × 16 elements of F_p² (1 MiB), made once with 3,840
/// multiplications.
fn g_table(g: &Fp) -> &'static [[Fp2; 16]] {
    static TABLE: OnceLock<Vec<[Fp2; 16]>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut rows = Vec::with_capacity(WINDOWS);
        let mut base = Fp2 {
            re: Fp::ONE,
            im: *g,
        };
        for _ in 0..WINDOWS {
            let mut row = [Fp2::ONE; 16];
            let mut acc = Fp2::ONE;
            for entry in &mut row {
                *entry = acc;
                acc = acc.mul(&base);
            }
            base = acc;
            rows.push(row);
        }
        rows
    })
}

/// `(1 + i·g)^e` for a secret e below 2^1024, `g` the parameter set's g (the table is made
/// from the first `g` given; there is one): 256 multiplications, each factor by a
/// constant-time row scan.
pub(crate) fn pow_g(g: &Fp, e: &U1024) -> Fp2 {
    let mut r = Fp2::ONE;
    for (w, row) in g_table(g).iter().enumerate() {
        let digit = window(e, w);
        let mut pick = Fp2::ONE;
        for (d, entry) in (0u32..).zip(row.iter()) {
            pick.ct_assign(entry, d.ct_eq(&digit));
        }
        r = r.mul(&pick);
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
        let t = FixedBase::new(&b);
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
            assert!(bool::from(a.re.ct_eq(&b.re) & a.im.ct_eq(&b.im)), "e = {e}");
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
                assert!(z_table(p, &octets).mul(&k).equals(&p.mul(&k)));
            }
        }
    }
}
