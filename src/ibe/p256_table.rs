//! Fixed-base tables on P-256 for ECCSI (RFC 6507), on `p256`'s point arithmetic: the multiples
//! of a point for each signed 6-bit digit of a 256-bit scalar (the recoding of `fixed.rs`), 43
//! rows of the multiples 1 to 32, affine, so that a multiplication is at most 43 mixed additions
//! and no doubling.
//!
//! Three kinds of base use them:
//! - the generator G ([`mul_generator`], [`mul_generator_vartime`]): the KMS's PVTs and KPAK,
//!   each signature's \[j\]G, and the \[s·HE\]G of each verification;
//! - a KMS's KPAK ([`kpak_table`]), public and fixed per KMS: the \[s·r\]KPAK of a verification;
//! - a signer's Y = \[HS\]PVT + KPAK ([`signer_table`]), public and fixed for one identity,
//!   KMS and key period: a receiver verifies many messages from the few signers it hears
//!   (its group management server, its MC servers, its peers), so from a signer's second
//!   message on, J = \[s·HE\]G + \[s·r\]Y is two table multiplications instead of a pass of 256
//!   doublings. [CHOICE] (docs/profile.md §6): the cache is keyed by HS alone — HS =
//!   hash(G ‖ KPAK ‖ ID ‖ PVT) names everything Y depends on — and holds the last
//!   [`SIGNER_TABLES`] signers; a signer gets a table only once a signature of its verified
//!   without one (among the last [`SEEN`] such signers), so forged messages under made-up
//!   identities never cost the making of a table.
//!
//! [`P256Table::mul`] is constant time (every digit one addition, its entry picked by a scan of
//! the whole row and negated by a mask); [`P256Table::mul_vartime`] is for public scalars.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use p256::elliptic_curve::BatchNormalize;
use p256::elliptic_curve::ff::PrimeField;
use p256::elliptic_curve::group::Group;
use p256::{AffinePoint, ProjectivePoint, Scalar};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroizing;

use super::cache::{TableCache, cached, remember};
use super::fixed::{DIGIT_BITS, ENTRIES, signed_digits_of};
use super::limbs::be_limbs4;

/// Signed 6-bit digits of a scalar below 2^256: 43 (the top one is at most 16, no carry out).
const ROWS: usize = 256usize.div_ceil(DIGIT_BITS);

/// `row[w][j] = [(j + 1)·64^w]B`, affine (the identity, should an entry be it, is an affine
/// point of `p256` too, so any base works). 43 × 32 points, made with 1,376 additions, 43
/// doublings and one batch inversion.
pub(crate) struct P256Table(Vec<[AffinePoint; ENTRIES]>);

/// The signed digits of a scalar (its canonical integer below n).
fn digits(k: &Scalar) -> Zeroizing<[i8; ROWS]> {
    let be = Zeroizing::new(k.to_repr());
    let words = Zeroizing::new(be_limbs4(&be));
    signed_digits_of::<ROWS>(&words[..])
}

impl P256Table {
    pub(crate) fn new(base: &ProjectivePoint) -> Self {
        let mut all = Vec::with_capacity(ROWS * ENTRIES);
        let mut b = *base;
        for _ in 0..ROWS {
            let mut acc = b;
            for _ in 0..ENTRIES {
                all.push(acc);
                acc += b;
            }
            // The last entry is [32]b: the next row's base is [64]b.
            b = all.last().map_or(b, ProjectivePoint::double);
        }
        let affine = ProjectivePoint::batch_normalize(all.as_slice());
        Self(
            affine
                .chunks_exact(ENTRIES)
                .map(|c| {
                    let mut row = [AffinePoint::IDENTITY; ENTRIES];
                    row.copy_from_slice(c);
                    row
                })
                .collect(),
        )
    }

    /// `[k]B` for a secret k: 43 mixed additions, each addend by a constant-time row scan.
    pub(crate) fn mul(&self, k: &Scalar) -> ProjectivePoint {
        let d = digits(k);
        let mut r = ProjectivePoint::IDENTITY;
        for (row, &di) in self.0.iter().zip(d.iter()) {
            let sign = i32::from(di) >> 31; // 0 or −1
            let mag = ((i32::from(di) ^ sign) - sign) as u32;
            // A zero digit matches no entry and adds the identity.
            let mut pick = AffinePoint::IDENTITY;
            for (j, entry) in (1u32..).zip(row.iter()) {
                pick.conditional_assign(entry, j.ct_eq(&mag));
            }
            let neg = -pick;
            pick.conditional_assign(&neg, Choice::from((sign & 1) as u8));
            r += pick;
        }
        r
    }

    /// `[k]B` for a **public** k: the additions of its nonzero digits.
    pub(crate) fn mul_vartime(&self, k: &Scalar) -> ProjectivePoint {
        let d = digits(k);
        let mut r = ProjectivePoint::IDENTITY;
        for (row, &di) in self.0.iter().zip(d.iter()) {
            let Some(entry) = row.get(usize::from(di.unsigned_abs()).wrapping_sub(1)) else {
                continue;
            };
            r += if di < 0 { -*entry } else { *entry };
        }
        r
    }
}

fn generator_table() -> &'static P256Table {
    static TABLE: OnceLock<P256Table> = OnceLock::new();
    TABLE.get_or_init(|| P256Table::new(&ProjectivePoint::GENERATOR))
}

/// `[k]G` for a secret k (constant time).
pub(crate) fn mul_generator(k: &Scalar) -> ProjectivePoint {
    generator_table().mul(k)
}

/// `[k]G` for a public k.
pub(crate) fn mul_generator_vartime(k: &Scalar) -> ProjectivePoint {
    generator_table().mul_vartime(k)
}

/// How many KMS public keys (KPAKs) keep a table (about 100 KiB each).
const KPAK_TABLES: usize = 4;

/// The table of a KPAK (given with its octets, the cache key), made on first use.
pub(crate) fn kpak_table(kpak: &AffinePoint, octets: &[u8; 65]) -> Arc<P256Table> {
    static CACHE: OnceLock<TableCache<[u8; 65], P256Table>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(Vec::new()));
    if let Some(t) = cached(cache, octets) {
        return t;
    }
    // Made outside the lock: two threads may make the same table once each.
    let table = Arc::new(P256Table::new(&ProjectivePoint::from(*kpak)));
    remember(cache, *octets, &table, KPAK_TABLES);
    table
}

/// How many signers keep a table (about 100 KiB each).
pub(crate) const SIGNER_TABLES: usize = 16;
/// How many signers whose signature verified without a table are remembered.
pub(crate) const SEEN: usize = 64;

/// The signers whose signature verified without a table (by HS), oldest first.
fn verified_once() -> &'static Mutex<VecDeque<[u8; 32]>> {
    static VERIFIED: OnceLock<Mutex<VecDeque<[u8; 32]>>> = OnceLock::new();
    VERIFIED.get_or_init(|| Mutex::new(VecDeque::new()))
}

/// Records that a signature of the signer named by `hs` verified without its table: its next
/// message gets one ([`signer_table`]). The last [`SEEN`] such signers are remembered.
pub(crate) fn signer_verified(hs: &[u8; 32]) {
    let mut s = verified_once()
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if s.contains(hs) {
        return;
    }
    while s.len() >= SEEN {
        s.pop_front();
    }
    s.push_back(*hs);
}

/// The table of the signer named by `hs` when it has one; else, if a signature of this signer
/// verified before ([`signer_verified`]), its table made now from `y` (Y = \[HS\]PVT + KPAK);
/// else `None`.
pub(crate) fn signer_table(
    hs: &[u8; 32],
    y: impl FnOnce() -> ProjectivePoint,
) -> Option<Arc<P256Table>> {
    static CACHE: OnceLock<TableCache<[u8; 32], P256Table>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(Vec::new()));
    if let Some(t) = cached(cache, hs) {
        return Some(t);
    }
    {
        let mut s = verified_once()
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let i = s.iter().position(|h| h == hs)?;
        s.remove(i);
    }
    let table = Arc::new(P256Table::new(&y()));
    remember(cache, *hs, &table, SIGNER_TABLES);
    Some(table)
}

#[cfg(test)]
mod tests {

    use super::*;

    fn scalars() -> Vec<Scalar> {
        let mut v = vec![
            Scalar::ZERO,
            Scalar::ONE,
            Scalar::from(31u64),
            Scalar::from(32u64),
            Scalar::from(63u64),
            Scalar::from(64u64),
            Scalar::from(0xffff_ffff_ffff_ffffu64),
            -Scalar::ONE,
            -Scalar::from(32u64),
        ];
        // Deterministic "random" scalars: powers of a fixed value.
        let mut x = Scalar::from(0x9e37_79b9_7f4a_7c15u64);
        for _ in 0..8 {
            x = x.square() + Scalar::from(7u64);
            v.push(x);
        }
        v
    }

    #[test]
    fn table_multiplications_agree_with_the_crate_for_g_and_another_point() {
        let other = ProjectivePoint::GENERATOR * Scalar::from(0xc0ffeeu64);
        let table = P256Table::new(&other);
        for k in scalars() {
            assert_eq!(mul_generator(&k), ProjectivePoint::GENERATOR * k);
            assert_eq!(mul_generator_vartime(&k), ProjectivePoint::GENERATOR * k);
            assert_eq!(table.mul(&k), other * k);
            assert_eq!(table.mul_vartime(&k), other * k);
        }
        assert!(bool::from(mul_generator(&Scalar::ZERO).is_identity()));
    }

    #[test]
    fn a_signer_gets_a_table_once_it_verified_and_keeps_it() {
        let hs = [0xa5u8; 32];
        let y = ProjectivePoint::GENERATOR * Scalar::from(12_345u64);
        // Not verified yet: no table, however often asked.
        assert!(signer_table(&hs, || y).is_none());
        assert!(signer_table(&hs, || y).is_none());
        signer_verified(&hs);
        let t = signer_table(&hs, || y).expect("verified before: a table");
        let k = Scalar::from(0xdead_beefu64);
        assert_eq!(t.mul_vartime(&k), y * k);
        // Kept: the next message does not call `y`.
        assert!(
            signer_table(&hs, || ProjectivePoint::IDENTITY)
                .is_some_and(|t| t.mul_vartime(&k) == y * k)
        );
        // Many other verified signers push an earlier one out of the list…
        let other = [0x11u8; 32];
        signer_verified(&other);
        for i in 0..SEEN {
            let mut h = [0u8; 32];
            h[..8].copy_from_slice(&(i as u64).to_be_bytes());
            signer_verified(&h);
        }
        // … so `other` gets no table, while the signer with a table keeps it.
        assert!(signer_table(&other, || y).is_none());
        assert!(signer_table(&hs, || ProjectivePoint::IDENTITY).is_some());
    }
}
