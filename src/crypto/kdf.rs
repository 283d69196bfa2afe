//! The generic key derivation function of TS 33.220 Annex B.

use hmac::Mac;
use sha2::Sha256;
use thiserror::Error;

/// A KDF input parameter does not fit its 2-octet length field.
#[non_exhaustive]
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum KdfError {
    /// TS 33.220 B.1: each parameter is at most 65535 octets.
    #[error("KDF parameter P{index} is {len} octets; TS 33.220 B.1 allows at most 65535")]
    ParamTooLong {
        /// Index i of Pi.
        index: usize,
        /// Its length in octets.
        len: usize,
    },
}

/// TS 33.220 B.2.0: S = FC ‖ P0 ‖ L0 ‖ P1 ‖ L1 ‖ … ‖ Pn ‖ Ln, Li the 2-octet length of Pi.
///
/// Only a one-octet FC is supported; MBMS uses FC = 0x01 (B.3).
///
/// # Errors
/// [`KdfError::ParamTooLong`] when a parameter exceeds 65535 octets (B.1).
pub fn kdf_input(fc: u8, params: &[&[u8]]) -> Result<Vec<u8>, KdfError> {
    let mut s = Vec::with_capacity(1 + params.iter().map(|p| p.len() + 2).sum::<usize>());
    s.push(fc);
    for (index, p) in params.iter().enumerate() {
        let len = param_len(index, p)?;
        s.extend_from_slice(p);
        s.extend_from_slice(&len.to_be_bytes());
    }
    Ok(s)
}

/// TS 33.220 B.2.0: derived key = HMAC-SHA-256(Key, S), S as in [`kdf_input`].
///
/// # Errors
/// [`KdfError::ParamTooLong`] when a parameter exceeds 65535 octets (B.1).
pub fn kdf(key: &[u8], fc: u8, params: &[&[u8]]) -> Result<[u8; 32], KdfError> {
    let mut mac = super::keyed_hmac::<Sha256>(key);
    mac.update(&[fc]);
    for (index, p) in params.iter().enumerate() {
        let len = param_len(index, p)?;
        mac.update(p);
        mac.update(&len.to_be_bytes());
    }
    Ok(mac.finalize().into_bytes().into())
}

/// HMAC-SHA-256 (RFC 2104 with SHA-256), the PRF of TS 33.220 B.2.0.
#[must_use]
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = super::keyed_hmac::<Sha256>(key);
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn param_len(index: usize, p: &[u8]) -> Result<u16, KdfError> {
    u16::try_from(p.len()).map_err(|_| KdfError::ParamTooLong {
        index,
        len: p.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s_is_fc_then_each_param_and_its_length() {
        let s = kdf_input(0x01, &[b"mbms-mrk"]).expect("short");
        assert_eq!(hex::encode(&s), "016d626d732d6d726b0008");
        assert_eq!(kdf_input(0x42, &[]).expect("none"), vec![0x42]);
        assert_eq!(kdf_input(0x01, &[b""]).expect("empty"), vec![0x01, 0, 0]);
    }

    #[test]
    fn kdf_is_hmac_sha256_over_s() {
        let key = [0x0b; 32];
        let params: [&[u8]; 3] = [b"gba-me", &[0x20; 16], b"impi"];
        let s = kdf_input(0x01, &params).expect("short");
        assert_eq!(kdf(&key, 0x01, &params), Ok(hmac_sha256(&key, &s)));
    }

    #[test]
    fn rfc4231_case_2() {
        let out = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(out),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_param_of_65536_octets_is_rejected() {
        let big = vec![0u8; 65_536];
        let max = vec![0u8; 65_535];
        assert!(kdf(b"k", 1, &[b"x", &max]).is_ok());
        assert_eq!(
            kdf(b"k", 1, &[b"x", &big]),
            Err(KdfError::ParamTooLong {
                index: 1,
                len: 65_536
            })
        );
        assert!(kdf_input(1, &[&big]).is_err());
    }
}
