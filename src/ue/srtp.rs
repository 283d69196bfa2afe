//! The SRTP policy a media client needs, read from a streaming MTK message's SP payload
//! (docs/profile.md §2.3, §2.4; RFC 3830 §6.10.1).
// No panic in non-test code (clippy.toml allows these in tests):
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![deny(clippy::indexing_slicing, clippy::panic)]

use crate::mikey::{ProtType, SecurityPolicy, SrtpParam};

/// The SRTP policy of a streaming service: the SP payload's parameters with the RFC 3711 §8.2
/// defaults for those it leaves out (RFC 3830 §6.10.1). A parameter whose value is not one
/// octet is read as left out; the payload itself stays in [`Self::sp`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtpPolicy {
    /// The policy number the SRTP-ID map entries refer to.
    pub policy_no: u8,
    /// Encryption algorithm (type 0): 0 NULL, 1 AES-CM, 2 AES-F8.
    pub encryption: u8,
    /// Session encryption key length in octets (type 1).
    pub encryption_key_len: u8,
    /// Authentication algorithm (type 2): 0 NULL, 1 HMAC-SHA-1.
    pub authentication: u8,
    /// Session authentication key length in octets (type 3).
    pub auth_key_len: u8,
    /// Session salt key length in octets (type 4).
    pub salt_key_len: u8,
    /// Key derivation rate as a power of 2 (type 6); 0 = derive once.
    pub key_derivation_rate: u8,
    /// SRTP encryption on (type 7).
    pub srtp_encryption: bool,
    /// SRTCP encryption on (type 8).
    pub srtcp_encryption: bool,
    /// SRTP authentication on (type 10).
    pub srtp_authentication: bool,
    /// Authentication tag length in octets (type 11).
    pub auth_tag_len: u8,
    /// The SP payload as received.
    pub sp: SecurityPolicy,
}

impl SrtpPolicy {
    /// Reads an SP payload of protocol type SRTP; `None` for another protocol.
    #[must_use]
    pub fn from_sp(sp: SecurityPolicy) -> Option<Self> {
        if sp.prot_type != ProtType::SRTP {
            return None;
        }
        let octet = |t: SrtpParam, default: u8| {
            sp.params
                .iter()
                .rev()
                .find(|p| p.param_type == t.0)
                .and_then(|p| match p.value.as_slice() {
                    [v] => Some(*v),
                    _ => None,
                })
                .unwrap_or(default)
        };
        let on = |t: SrtpParam| octet(t, 1) != 0;
        Some(Self {
            policy_no: sp.policy_no,
            encryption: octet(SrtpParam::ENCR_ALG, 1),
            encryption_key_len: octet(SrtpParam::ENCR_KEY_LEN, 16),
            authentication: octet(SrtpParam::AUTH_ALG, 1),
            auth_key_len: octet(SrtpParam::AUTH_KEY_LEN, 20),
            salt_key_len: octet(SrtpParam::SALT_KEY_LEN, 14),
            key_derivation_rate: octet(SrtpParam::KEY_DERIVATION_RATE, 0),
            srtp_encryption: on(SrtpParam::SRTP_ENCRYPTION),
            srtcp_encryption: on(SrtpParam::SRTCP_ENCRYPTION),
            srtp_authentication: on(SrtpParam::SRTP_AUTHENTICATION),
            auth_tag_len: octet(SrtpParam::AUTH_TAG_LEN, 10),
            sp,
        })
    }

    /// The name of the encryption algorithm: `NULL`, `AES-CM`, `AES-F8`, or `None` for another
    /// value.
    #[must_use]
    pub fn cipher_name(&self) -> Option<&'static str> {
        match self.encryption {
            0 => Some("NULL"),
            1 => Some("AES-CM"),
            2 => Some("AES-F8"),
            _ => None,
        }
    }

    /// The name of the authentication algorithm: `NULL`, `HMAC-SHA-1`, or `None` for another
    /// value.
    #[must_use]
    pub fn auth_name(&self) -> Option<&'static str> {
        match self.authentication {
            0 => Some("NULL"),
            1 => Some("HMAC-SHA-1"),
            _ => None,
        }
    }

    /// The SRTP crypto suite name (RFC 4568 §6.2, RFC 6188) when the policy is one:
    /// `AES_CM_128_HMAC_SHA1_80`, `AES_CM_128_HMAC_SHA1_32`, `AES_256_CM_HMAC_SHA1_80`,
    /// `AES_256_CM_HMAC_SHA1_32`, or `None`.
    #[must_use]
    pub fn suite(&self) -> Option<&'static str> {
        let standard = self.encryption == 1
            && self.authentication == 1
            && self.auth_key_len == 20
            && self.salt_key_len == 14
            && self.srtp_encryption
            && self.srtcp_encryption
            && self.srtp_authentication;
        if !standard {
            return None;
        }
        match (self.encryption_key_len, self.auth_tag_len) {
            (16, 10) => Some("AES_CM_128_HMAC_SHA1_80"),
            (16, 4) => Some("AES_CM_128_HMAC_SHA1_32"),
            (32, 10) => Some("AES_256_CM_HMAC_SHA1_80"),
            (32, 4) => Some("AES_256_CM_HMAC_SHA1_32"),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mbms::Streaming;
    use crate::mikey::PolicyParam;

    #[test]
    fn the_profile_default_is_aes_cm_128_hmac_sha1_80() {
        let p = SrtpPolicy::from_sp(Streaming::srtp_default(1, 2).policy).unwrap();
        assert_eq!(p.suite(), Some("AES_CM_128_HMAC_SHA1_80"));
        assert_eq!(
            (p.cipher_name(), p.auth_name()),
            (Some("AES-CM"), Some("HMAC-SHA-1"))
        );
        assert_eq!((p.encryption_key_len, p.auth_tag_len), (16, 10));
    }

    #[test]
    fn left_out_parameters_take_the_srtp_defaults() {
        let sp = SecurityPolicy {
            policy_no: 3,
            prot_type: ProtType::SRTP,
            params: vec![
                PolicyParam {
                    param_type: SrtpParam::AUTH_TAG_LEN.0,
                    value: vec![4],
                },
                PolicyParam {
                    param_type: SrtpParam::ENCR_KEY_LEN.0,
                    value: vec![0, 16],
                },
            ],
        };
        let p = SrtpPolicy::from_sp(sp).unwrap();
        assert_eq!(p.policy_no, 3);
        assert_eq!(p.suite(), Some("AES_CM_128_HMAC_SHA1_32"));
        let other = SecurityPolicy {
            policy_no: 0,
            prot_type: ProtType(7),
            params: vec![],
        };
        assert_eq!(SrtpPolicy::from_sp(other), None);
    }
}
