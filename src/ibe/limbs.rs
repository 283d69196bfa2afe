//! The carry-chain steps of multi-limb arithmetic on 64-bit limbs, shared by the fields written
//! for a fixed prime (`fp.rs` for SAKKE's p, `p256_vartime.rs` for P-256's).

/// a·b + c + d as (low, high): never overflows 128 bits.
#[inline(always)]
pub(crate) const fn mac(a: u64, b: u64, c: u64, d: u64) -> (u64, u64) {
    let t = (a as u128) * (b as u128) + (c as u128) + (d as u128);
    (t as u64, (t >> 64) as u64)
}

/// a + b + carry as (sum, carry).
#[inline(always)]
pub(crate) const fn adc(a: u64, b: u64, carry: u64) -> (u64, u64) {
    let t = (a as u128) + (b as u128) + (carry as u128);
    (t as u64, (t >> 64) as u64)
}

/// a − b − borrow as (difference, borrow ∈ {0, 1}).
#[inline(always)]
pub(crate) const fn sbb(a: u64, b: u64, borrow: u64) -> (u64, u64) {
    let t = (a as u128).wrapping_sub((b as u128) + (borrow as u128));
    (t as u64, ((t >> 64) as u64) & 1)
}

/// The four little-endian limbs of 32 big-endian octets (a P-256 scalar or coordinate); octets
/// past the first 32 are ignored, missing ones read as 0.
pub(crate) fn be_limbs4(b: &[u8]) -> [u64; 4] {
    let mut v = [0u64; 4];
    for (limb, chunk) in v.iter_mut().zip(b.rchunks_exact(8)) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        *limb = u64::from_be_bytes(w);
    }
    v
}
