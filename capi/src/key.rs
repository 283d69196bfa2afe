//! `mbms_srtp_key`: an MTK with what SRTP needs, written straight into the caller's struct (no
//! Rust-side copy of the key is left behind).

use mbms_keys::mikey::SrtpIdEntry;
use mbms_keys::ue::{MtkEntry, SrtpPolicy};

use crate::result::{mbms_result, non_null};

/// SRTP policy AES_CM_128_HMAC_SHA1_80 (RFC 4568 §6.2.1).
pub const MBMS_SRTP_AES_CM_128_HMAC_SHA1_80: u32 = 1;
/// SRTP policy AES_CM_128_HMAC_SHA1_32 (RFC 4568 §6.2.1).
pub const MBMS_SRTP_AES_CM_128_HMAC_SHA1_32: u32 = 2;

/// An SRTP master key found by a key lookup, in caller-owned memory. The caller should wipe it
/// (`explicit_bzero`) once the key is handed to its SRTP library.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy)]
pub struct mbms_srtp_key {
    /// The SRTP master key (the MTK), in the first `master_key_len` octets.
    pub master_key: [u8; 32],
    /// Octets of `master_key` in use: 16 (AES-128).
    pub master_key_len: usize,
    /// The SRTP master salt, in the first `master_salt_len` octets.
    pub master_salt: [u8; 14],
    /// Octets of `master_salt` in use: 14, or 0 when the MTK message carried no salt.
    pub master_salt_len: usize,
    /// The SRTP MKI (MSK ID ‖ MTK ID), in the first `mki_len` octets.
    pub mki: [u8; 6],
    /// Octets of `mki` in use: 6.
    pub mki_len: usize,
    /// The SSRC of the crypto session from the SRTP-ID map: the one asked for by SSRC, the first
    /// of the map by MKI; 0 when the map is empty.
    pub ssrc: u32,
    /// The rollover counter of that crypto session (0 when the map is empty).
    pub roc: u32,
    /// The SRTP policy, one of the `MBMS_SRTP_*` values; 0 when unknown or none.
    pub policy: u32,
    /// The Key Domain ID (24-bit value) of the MSK that protected the MTK.
    pub key_domain_id: u32,
    /// The MSK ID of that MSK: Key Group (high 16 bits) ‖ Key Number (low 16 bits).
    pub msk_id: u32,
    /// The MTK ID.
    pub mtk_id: u16,
}

/// The `MBMS_SRTP_*` number of a policy.
pub fn policy_number(policy: Option<&SrtpPolicy>) -> u32 {
    match policy.and_then(SrtpPolicy::suite) {
        Some("AES_CM_128_HMAC_SHA1_80") => MBMS_SRTP_AES_CM_128_HMAC_SHA1_80,
        Some("AES_CM_128_HMAC_SHA1_32") => MBMS_SRTP_AES_CM_128_HMAC_SHA1_32,
        _ => 0,
    }
}

/// Writes `entry` into `*out`; `session` is the crypto session to report (the one looked up by
/// SSRC), else the first of the map.
///
/// # Errors
/// `MBMS_ERR_NULL` when `out` is NULL.
///
/// # Safety
/// `out` is NULL or points to writable, aligned memory for one `mbms_srtp_key`.
pub unsafe fn write_key(
    entry: &MtkEntry,
    session: Option<&SrtpIdEntry>,
    out: *mut mbms_srtp_key,
) -> Result<(), mbms_result> {
    non_null(out)?;
    // SAFETY: `out` is not NULL (checked above) and writable for one struct by the caller's
    // contract; all-zero octets are a valid `mbms_srtp_key` (integers and arrays only), so after
    // this write the memory is initialised and may be borrowed mutably.
    let k = unsafe {
        out.write_bytes(0, 1);
        &mut *out
    };
    let mtk = entry.mtk.as_bytes();
    if let Some(dst) = k.master_key.get_mut(..mtk.len()) {
        dst.copy_from_slice(mtk);
        k.master_key_len = mtk.len();
    }
    if let Some(salt) = &entry.salt {
        k.master_salt.copy_from_slice(salt.as_bytes());
        k.master_salt_len = salt.as_bytes().len();
    }
    k.mki = entry.mki;
    k.mki_len = entry.mki.len();
    if let Some(s) = session.or_else(|| entry.srtp_ids.first()) {
        k.ssrc = s.ssrc;
        k.roc = s.roc;
    }
    k.policy = policy_number(entry.policy.as_ref());
    let [a, b, c] = entry.key_domain_id.0;
    k.key_domain_id = u32::from_be_bytes([0, a, b, c]);
    k.msk_id = entry.msk_id.to_u32();
    k.mtk_id = entry.mtk_id.0;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::mem::MaybeUninit;

    use mbms_keys::crypto::{Mtk, Salt};
    use mbms_keys::mbms::profile::srtp_mki;
    use mbms_keys::mbms::{KeyDomainId, MskId, MtkId, Streaming};

    use super::*;

    #[test]
    fn an_entry_is_written_field_by_field() {
        let msk_id = MskId::new(1, 2);
        let entry = MtkEntry {
            key_domain_id: KeyDomainId([0, 1, 2]),
            msk_id,
            mtk_id: MtkId(5),
            mki: srtp_mki(msk_id, MtkId(5)),
            mtk: Mtk::from_bytes([7; 16]),
            salt: Some(Salt::from_bytes([8; 14])),
            policy: SrtpPolicy::from_sp(Streaming::srtp_default(1, 2).policy),
            srtp_ids: vec![
                SrtpIdEntry {
                    policy_no: 0,
                    ssrc: 11,
                    roc: 1,
                },
                SrtpIdEntry {
                    policy_no: 0,
                    ssrc: 12,
                    roc: 2,
                },
            ],
        };
        let mut out = MaybeUninit::<mbms_srtp_key>::uninit();
        // SAFETY: a writable struct.
        unsafe { write_key(&entry, entry.session(12), out.as_mut_ptr()) }.unwrap();
        // SAFETY: write_key initialised every field.
        let k = unsafe { out.assume_init() };
        assert_eq!(
            (&k.master_key[..16], k.master_key_len),
            (&[7u8; 16][..], 16)
        );
        assert_eq!((k.master_salt, k.master_salt_len), ([8; 14], 14));
        assert_eq!((k.mki, k.mki_len), ([0, 1, 0, 2, 0, 5], 6));
        assert_eq!((k.ssrc, k.roc), (12, 2));
        assert_eq!(k.policy, MBMS_SRTP_AES_CM_128_HMAC_SHA1_80);
        assert_eq!((k.key_domain_id, k.msk_id, k.mtk_id), (0x102, 0x10002, 5));
        // Without a session asked for, the first of the map.
        // SAFETY: a writable struct.
        unsafe { write_key(&entry, None, out.as_mut_ptr()) }.unwrap();
        // SAFETY: initialised above.
        let k = unsafe { out.assume_init() };
        assert_eq!((k.ssrc, k.roc), (11, 1));
        // SAFETY: NULL is refused before any write.
        let r = unsafe { write_key(&entry, None, std::ptr::null_mut()) };
        assert_eq!(r, Err(crate::result::MBMS_ERR_NULL));
    }
}
