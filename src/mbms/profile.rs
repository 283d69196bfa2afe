//! Every \[CHOICE\] of `docs/profile.md` in one place, each a named constant with the
//! clause it settles, so that the profile can follow the full TS 33.246 text
//! or an operator's UE by a one-line change.
//!
//! Receivers are lenient where a choice concerns the sender only: they read
//! what the message carries (payload order, CSB ID, a RAND payload in an MTK
//! message). Senders always emit the canonical form.

use crate::mikey::{IdType, KeyDataType, MskId, MtkId, PayloadType};

/// docs/profile.md §2.1 \[CHOICE\]: canonical payload order of the MSK message after HDR.
pub const MSK_PAYLOAD_ORDER: [PayloadType; 6] = [
    PayloadType::GENERAL_EXT,
    PayloadType::T,
    PayloadType::RAND,
    PayloadType::ID,
    PayloadType::ID,
    PayloadType::KEMAC,
];

/// docs/profile.md §2.3 \[CHOICE\]: canonical payload order of the MTK message after
/// HDR; SP (streaming only) sits between T and KEMAC.
pub const MTK_PAYLOAD_ORDER: [PayloadType; 3] =
    [PayloadType::GENERAL_EXT, PayloadType::T, PayloadType::KEMAC];

/// docs/profile.md §2.1/§2.3 \[CHOICE\]: the HDR CSB ID a sender uses is the MSK ID
/// read as a u32. Receivers use whatever CSB ID the header carries.
pub fn csb_id_for(msk_id: MskId) -> u32 {
    msk_id.to_u32()
}

/// docs/profile.md §2.4 \[CHOICE\]: length of the SRTP MKI of a streaming service.
pub const SRTP_MKI_LEN: usize = 6;

/// docs/profile.md §2.4 \[CHOICE\]: the SRTP MKI (RFC 3711 §3.1) that names the MTK a packet is
/// protected under: MSK ID (4 octets) ‖ MTK ID (2 octets), our reading of TS 33.246 6.6.2 (the
/// clause text was not at hand), so that a receiver finds the key of every packet by its MKI
/// across MTK changes and MSK rotations.
pub fn srtp_mki(msk_id: MskId, mtk_id: MtkId) -> [u8; SRTP_MKI_LEN] {
    let [a, b, c, d] = msk_id.to_bytes();
    let [e, f] = mtk_id.0.to_be_bytes();
    [a, b, c, d, e, f]
}

/// docs/profile.md §2.1: octets of fresh RAND per MSK message (RFC 3830 §4.1.1: at least 128 bits).
pub const MSK_RAND_LEN: usize = 16;

/// docs/profile.md §2.3 \[CHOICE\]: an MTK message carries no RAND payload and its
/// keys are derived with this (empty) RAND; a receiver uses the RAND payload
/// if one is present.
pub const MTK_DERIVATION_RAND: &[u8] = &[];

/// docs/profile.md §2.1 \[CHOICE\]: IDi carries the BM-SC FQDN and IDr the B-TID,
/// both with this ID type.
pub const ID_TYPE: IdType = IdType::NAI;

/// docs/profile.md §1 \[CHOICE\]: MTK ID width in octets; SEQl and SEQu have the same width.
pub const SEQ_LEN: usize = 2;

/// docs/profile.md §2.1 \[SEED\]/\[CHOICE\]: the invalidation interval, SEQl > SEQu; this is its SEQl.
pub const INVALIDATION_SEQL: u16 = 0xffff;
/// The SEQu of the invalidation interval (see [`INVALIDATION_SEQL`]).
pub const INVALIDATION_SEQU: u16 = 0x0000;

/// docs/profile.md §2.1 \[CHOICE\]: the Key data type carrying the MSK.
pub const MSK_KEY_DATA_TYPE: KeyDataType = KeyDataType::TGK;

/// docs/profile.md §2.1, §2.3: receivers decrypt KEMAC Encr data into a stack
/// buffer of this many octets and reject longer Encr data as not of the
/// profile. Its key data is one Key data sub-payload of at most 42 octets
/// (a 16-octet key, a 14-octet salt, two 2-octet SEQs); the rest is margin
/// for key validity data the profile does not use.
pub const MAX_ENCR_DATA_LEN: usize = 256;

/// docs/profile.md §1: MSK length in octets.
pub const MSK_LEN: usize = 16;

/// docs/profile.md §1: MTK length in octets.
pub const MTK_LEN: usize = 16;
/// docs/profile.md §1: length in octets of the MTK's optional salt.
pub const MTK_SALT_LEN: usize = 14;

/// docs/profile.md §2.2 \[CHOICE\]: the acknowledgement carries IDr (the B-TID), and
/// its MAC input appends the T value as transported (4 octets for COUNTER).
pub const ACK_CARRIES_IDR: bool = true;

/// docs/profile.md §2.3 \[CHOICE\]: the MTK ID a freshly installed MSK allows first
/// is SEQl + 1 (SEQs starts at SEQl).
pub fn first_mtk_id(seql: u16) -> Option<u16> {
    seql.checked_add(1)
}

/// docs/profile.md §3 [SEED 6.3.2.1]: a UE keeps at most this many MSKs per (Key
/// Domain ID, Key Group); installing one more deletes the one installed
/// earlier (\[CHOICE\]: "the older" = installed earlier).
pub const MSKS_PER_KEY_GROUP: usize = 2;

/// docs/profile.md §3 \[CHOICE\]: a validity-only update of a stored MSK never moves
/// SEQs backwards, so MTK IDs already used stay closed.
pub fn seqs_after_validity_update(seqs: u16, seql: u16) -> u16 {
    seqs.max(seql)
}

/// docs/profile.md §3 \[CHOICE\]: a counter exactly 2^31 away from the stored one
/// (where RFC 1982 leaves the order undefined) is not newer.
pub const SERIAL_HALF_IS_NEWER: bool = false;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_srtp_mki_is_the_msk_id_then_the_mtk_id() {
        assert_eq!(
            srtp_mki(MskId::new(1, 0x00ab), MtkId(0x0102)),
            [0x00, 0x01, 0x00, 0xab, 0x01, 0x02]
        );
    }
}
