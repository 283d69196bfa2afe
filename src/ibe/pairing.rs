//! The Tate–Lichtenbaum pairing of RFC 6508 §3.2, ⟨R, Q⟩ as the F_p representative of its PF_p
//! class: the Miller loop over the bits of n = q − 1 on R, its lines evaluated at the distortion
//! image (−Q_x, i·Q_y), and the final exponentiation by (p + 1) / q = 4 in PF_p.
//!
//! Two ways to compute it:
//! - `pairing`, for any two points (tests only, the reference): the loop's multiples of R in
//!   projective coordinates;
//! - [`MillerTable`], for a first argument that is fixed (a user's RSK): the slope λ and the
//!   offset μ = λ·x − y of every line of the loop on that point are computed once, so a pairing
//!   with it costs, per bit, one squaring in F_p² and, per line, two multiplications to evaluate
//!   the line and two to multiply it in (six multiplications in F_p for a doubling step instead
//!   of about twenty-five).
//!
//! The pairing of parameter set 1 is symmetric on E\[q\] (both arguments are multiples of P and
//! the pairing is bilinear): ⟨R, K⟩ = ⟨K, R⟩, so the decapsulation's ⟨R, RSK⟩ is computed as
//! ⟨RSK, R⟩ with the RSK's table. The loop depends only on q; the secret RSK enters only through
//! field operations, which are constant-time, and through the table, read in order.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use crypto_bigint::U1024;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use super::field::{Fp, Fp2, Point, Q};
use crate::crypto::sha256;

/// The bits of n = q − 1 below its top bit, most significant first: one Miller step each.
fn miller_bits() -> impl Iterator<Item = bool> {
    let n = Q.wrapping_sub(&U1024::ONE);
    (0..n.bit_width_vartime().saturating_sub(1))
        .rev()
        .map(move |i| n.bit_vartime(i))
}

fn small(v: u64) -> Fp {
    Fp::new(&U1024::from_u64(v))
}

/// ⟨R, Q⟩ for any R and Q; `None` when the Miller value degenerates (inputs outside E\[q\]).
/// The reference the tables are tested against (and the RFC's intermediate values).
///
/// The lines l_{C,C} and l_{C,R} are evaluated at the distortion image (−Q_x, i·Q_y) and
/// scaled by powers of C's Z, which PF_p ignores (its elements are classes modulo F_p*).
#[cfg(test)]
pub(crate) fn pairing(r: &Point, q: &Point) -> Option<Fp> {
    let (rx, ry) = r.affine()?;
    let (qx, qy) = q.affine()?;
    let r_aff = Point::from_affine(rx, ry);
    let three = small(3);
    let mut v = Fp2::ONE;
    let mut c = r_aff;
    for bit in miller_bits() {
        let (x, y, z) = c.coordinates();
        // Tangent at C: 3(X² − Z²)(Qx·Z + X) − 2Y²Z + i·2YZ²Qy (the RFC's line times Z³).
        let qxz_x = qx.mul(&z).add(&x);
        let re = three
            .mul(&x.square().sub(&z.square()))
            .mul(&qxz_x)
            .sub(&y.square().mul(&z).double());
        let im = y.mul(&z.square()).mul(&qy).double();
        v = v.square().mul(&Fp2 { re, im });
        c = c.double();
        if bit {
            let (x, y, z) = c.coordinates();
            // Chord through C and R: (Qx + Rx)Y − (Qx·Z + X)Ry + i(X − Rx·Z)Qy (times Z).
            let re = qx.add(&rx).mul(&y).sub(&qx.mul(&z).add(&x).mul(&ry));
            let im = x.sub(&rx.mul(&z)).mul(&qy);
            v = v.mul(&Fp2 { re, im });
            c = c.add(&r_aff);
        }
    }
    // Final exponentiation by c = (p + 1) / q = 4.
    v.square().square().representative()
}

/// One line of the Miller loop on a fixed point: y = λ·x − μ through the loop's point.
/// Evaluated at (−Q_x, i·Q_y) it is λ·Q_x + μ + i·Q_y, equal to the line of [`pairing`] up to
/// a factor in F_p*.
struct Line {
    lambda: Fp,
    mu: Fp,
}

/// The lines of the Miller loop on a fixed point K, in the loop's order (one per doubling, one
/// per addition of K): 1,533 lines for parameter set 1, 383 KiB. Secret when K is (an RSK):
/// zeroized when dropped, never printed.
pub(crate) struct MillerTable(Vec<Line>);

impl core::fmt::Debug for MillerTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("MillerTable([REDACTED])")
    }
}

impl Drop for MillerTable {
    fn drop(&mut self) {
        for line in &mut self.0 {
            line.lambda.zeroize();
            line.mu.zeroize();
        }
    }
}

/// The inverses of all of `v` with one inversion (Montgomery's trick); `None` when one is 0.
fn batch_invert(v: &[Fp]) -> Option<Zeroizing<Vec<Fp>>> {
    let mut prefix = Zeroizing::new(Vec::with_capacity(v.len()));
    let mut acc = Fp::ONE;
    for x in v {
        prefix.push(acc);
        acc = acc.mul(x);
    }
    let mut inv = acc.invert().into_option()?;
    let mut out = Zeroizing::new(vec![Fp::ZERO; v.len()]);
    for ((o, p), x) in out.iter_mut().zip(prefix.iter()).zip(v).rev() {
        *o = inv.mul(p);
        inv = inv.mul(x);
    }
    inv.zeroize();
    acc.zeroize();
    Some(out)
}

impl MillerTable {
    /// The lines of the loop on `k`: the loop's multiples of k in projective coordinates, then
    /// all of them made affine with one inversion, then all the slopes' denominators (2y for a
    /// tangent, x − k_x for a chord) inverted with another. `None` when k is the identity or a
    /// denominator is 0 (k not of order q).
    pub(crate) fn new(k: &Point) -> Option<Self> {
        let (mut kx, mut ky) = k.affine()?;
        let mut k_aff = Point::from_affine(kx, ky);
        let steps = miller_bits().map(|b| 1 + usize::from(b)).sum();
        // The point C before each line, projective, and whether the line is a chord.
        let mut xs = Zeroizing::new(Vec::with_capacity(steps));
        let mut ys = Zeroizing::new(Vec::with_capacity(steps));
        let mut zs = Zeroizing::new(Vec::with_capacity(steps));
        let mut chord = Vec::with_capacity(steps);
        let mut c = k_aff;
        let mut record = |c: &Point, is_chord: bool| {
            let (x, y, z) = c.coordinates();
            xs.push(x);
            ys.push(y);
            zs.push(z);
            chord.push(is_chord);
        };
        for bit in miller_bits() {
            record(&c, false);
            c = c.double();
            if bit {
                record(&c, true);
                c = c.add(&k_aff);
            }
        }
        c.zeroize();
        let zinv = batch_invert(&zs)?;
        let three = small(3);
        let mut num = Zeroizing::new(Vec::with_capacity(steps));
        let mut den = Zeroizing::new(Vec::with_capacity(steps));
        for (((x, y), zi), is_chord) in xs
            .iter_mut()
            .zip(ys.iter_mut())
            .zip(zinv.iter())
            .zip(&chord)
        {
            *x = x.mul(zi);
            *y = y.mul(zi);
            if *is_chord {
                num.push(y.sub(&ky));
                den.push(x.sub(&kx));
            } else {
                num.push(three.mul(&x.square().sub(&Fp::ONE)));
                den.push(y.double());
            }
        }
        k_aff.zeroize();
        let dinv = batch_invert(&den);
        kx.zeroize();
        ky.zeroize();
        let dinv = dinv?;
        let mut lines = Vec::with_capacity(steps);
        for (((x, y), n), di) in xs.iter().zip(ys.iter()).zip(num.iter()).zip(dinv.iter()) {
            let lambda = n.mul(di);
            let mu = lambda.mul(x).sub(y);
            lines.push(Line { lambda, mu });
        }
        Some(Self(lines))
    }

    /// ⟨K, R⟩ for this table's K; `None` when R is the identity, of order 2 or the value
    /// degenerates. Each line is divided by R_y (a factor in F_p*): λ·(R_x/R_y) + μ/R_y + i, so
    /// multiplying it in takes two multiplications.
    pub(crate) fn pairing(&self, r: &Point) -> Option<Fp> {
        let (rx, ry) = r.affine()?;
        let w = ry.invert().into_option()?;
        let u = rx.mul(&w);
        let mut lines = self.0.iter();
        let mut v = Fp2::ONE;
        for bit in miller_bits() {
            let l = lines.next()?;
            v = v
                .square()
                .mul_by_i_plus(&l.lambda.mul(&u).add(&l.mu.mul(&w)));
            if bit {
                let l = lines.next()?;
                v = v.mul_by_i_plus(&l.lambda.mul(&u).add(&l.mu.mul(&w)));
            }
        }
        v.square().square().representative()
    }
}

/// How many RSKs keep a table: a user holds the RSKs of a few key periods and identities.
const RSK_CACHE: usize = 4;

/// The table of the point whose octets are `octets` (an RSK), from a cache of the last
/// [`RSK_CACHE`] used, or built by `build` (which decodes the point and makes its table).
///
/// \[CHOICE\] (docs/mcx.md): the tables of RSKs in use are kept in the process, zeroized when
/// they leave the cache, keyed by the SHA-256 of the octets (the key itself is not kept; the
/// lookup compares digests in constant time).
pub(crate) fn rsk_table<E>(
    octets: &[u8],
    build: impl FnOnce() -> Result<MillerTable, E>,
) -> Result<Arc<MillerTable>, E> {
    type Cache = Mutex<Vec<([u8; 32], Arc<MillerTable>)>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(Vec::new()));
    let key = Zeroizing::new(sha256(&[&b"mbms-keys rsk table"[..], octets]));
    {
        let mut c = cache.lock().unwrap_or_else(PoisonError::into_inner);
        let mut found = None;
        for (i, (k, _)) in c.iter().enumerate() {
            if bool::from(k.ct_eq(&key[..])) {
                found = Some(i);
            }
        }
        if let Some(i) = found {
            // Most recently used last.
            let hit = c.remove(i);
            let table = Arc::clone(&hit.1);
            c.push(hit);
            return Ok(table);
        }
    }
    // Built outside the lock: two threads may build the same table once each.
    let table = Arc::new(build()?);
    let mut c = cache.lock().unwrap_or_else(PoisonError::into_inner);
    if c.len() >= RSK_CACHE {
        c.remove(0);
    }
    c.push((*key, Arc::clone(&table)));
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(a: Option<Fp>, b: Option<Fp>) -> bool {
        match (a, b) {
            (Some(a), Some(b)) => bool::from(a.ct_eq(&b)),
            _ => false,
        }
    }

    #[test]
    fn the_table_gives_the_pairing_and_the_pairing_is_symmetric() {
        let k = Point::generator().mul(&U1024::from_u64(0x0123_4567_89ab_cdef));
        let table = MillerTable::new(&k).unwrap();
        for s in [1u64, 2, 0xfeed_beef] {
            let r = Point::generator().mul(&U1024::from_u64(s));
            assert!(same(table.pairing(&r), pairing(&k, &r)), "s = {s}");
            assert!(same(table.pairing(&r), pairing(&r, &k)), "s = {s}");
        }
        // Bilinear: ⟨[2]K, R⟩ = ⟨K, R⟩², squared as the class of 1 + i·w in PF_p.
        let r = Point::generator();
        let k2 = MillerTable::new(&k.double()).unwrap();
        let w = table.pairing(&r).unwrap();
        let w2 = Fp2 { re: Fp::ONE, im: w }.square().representative();
        assert!(same(k2.pairing(&r), w2));
    }

    #[test]
    fn the_table_refuses_the_identity_and_points_of_order_2() {
        assert!(MillerTable::new(&Point::IDENTITY).is_none());
        let table = MillerTable::new(&Point::generator()).unwrap();
        assert!(table.pairing(&Point::IDENTITY).is_none());
        let t = Point::from_affine(Fp::ZERO, Fp::ZERO);
        assert!(table.pairing(&t).is_none());
        assert!(MillerTable::new(&t).is_none());
        assert_eq!(format!("{table:?}"), "MillerTable([REDACTED])");
    }

    #[test]
    fn the_cache_gives_the_table_of_each_key() {
        let points: Vec<Point> = (2u64..8)
            .map(|k| Point::generator().mul(&U1024::from_u64(k)))
            .collect();
        let r = Point::generator().mul(&U1024::from_u64(77));
        for _ in 0..2 {
            for p in &points {
                let octets = p.to_octets().unwrap();
                let t = rsk_table(&octets, || MillerTable::new(p).ok_or(())).unwrap();
                assert!(same(t.pairing(&r), pairing(p, &r)));
            }
        }
        assert!(rsk_table(&[1u8], || Err::<MillerTable, _>(7)).is_err());
    }
}
