//! UID format 2 of TS 33.180 F.2.1: the 32-octet identifier ECCSI and SAKKE keys are issued for,
//! UID = SHA-256(FC ‖ P0 ‖ L0 ‖ … ‖ P5 ‖ L5) with FC = 0x00, P0 = "MIKEY-SAKKE-UID", P1 the user
//! URI, P2 the KMS URI, P3 the user key period, P4 its offset, P5 the key period number, and each
//! Li the 2-octet big-endian length of Pi.

use thiserror::Error;

use crate::crypto::sha256;

/// Octets of a UID.
pub const UID_LEN: usize = 32;

/// A UID input that cannot be encoded.
#[non_exhaustive]
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum UidError {
    /// A URI longer than a 2-octet length can state.
    #[error("{what}: longer than 65535 octets")]
    TooLong {
        /// The field.
        what: &'static str,
    },
}

/// The integers P3, P4 and P5 in the fewest octets, big-endian, 0 as one octet `00`.
///
/// [CHOICE] docs/profile.md §6 "UID integer width": the minimal encoding, as the published
/// vectors use; a fixed width would give other UIDs for values below 2^16 / 2^24.
fn minimal_be(v: u64) -> Vec<u8> {
    let b = v.to_be_bytes();
    let skip = b.iter().take(7).take_while(|x| **x == 0).count();
    b.get(skip..).map(<[u8]>::to_vec).unwrap_or_default()
}

fn push_param(s: &mut Vec<u8>, p: &[u8], what: &'static str) -> Result<(), UidError> {
    let len = u16::try_from(p.len()).map_err(|_| UidError::TooLong { what })?;
    s.extend_from_slice(p);
    s.extend_from_slice(&len.to_be_bytes());
    Ok(())
}

/// UID format 2 of `user_uri` at `kms_uri` for key period `period_no` (TS 33.180 F.2.1).
///
/// # Errors
/// [`UidError::TooLong`] for a URI over 65535 octets.
pub fn uid_format2(
    user_uri: &str,
    kms_uri: &str,
    period: u64,
    offset: u64,
    period_no: u64,
) -> Result<[u8; UID_LEN], UidError> {
    let mut s = vec![0x00];
    push_param(&mut s, b"MIKEY-SAKKE-UID", "P0")?;
    push_param(&mut s, user_uri.as_bytes(), "user URI")?;
    push_param(&mut s, kms_uri.as_bytes(), "KMS URI")?;
    push_param(&mut s, &minimal_be(period), "period")?;
    push_param(&mut s, &minimal_be(offset), "offset")?;
    push_param(&mut s, &minimal_be(period_no), "period number")?;
    Ok(sha256(&[&s]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_minimal_and_zero_is_one_octet() {
        assert_eq!(minimal_be(0), vec![0]);
        assert_eq!(minimal_be(1), vec![1]);
        assert_eq!(minimal_be(2592000), vec![0x27, 0x8d, 0x00]);
        assert_eq!(minimal_be(u64::MAX), vec![0xff; 8]);
    }
}
