//! KEMAC protection shared by the MSK and MTK messages: seal on the sending
//! side, check-then-decrypt on the receiving side (RFC 3830 §5.2, §5.3).

use crate::crypto::{MAC_LEN, ProtectionKeys};
use crate::mikey::view::{EncrDataBuf, KemacView, KeyDataChain};
use crate::mikey::{
    CsIdMap, DataType, EncrAlg, Hdr, Kemac, KeyData, MIKEY_VERSION, MacAlg, Message, MessageView,
    Payload, PrfFunc,
};

use super::error::{BuildError, MessageError};
use super::profile::MAX_ENCR_DATA_LEN;
use super::shape::ENCR_DATA_TOO_LONG;

/// The stack buffer a receiver decrypts Encr data into.
pub(crate) type PlainBuf = EncrDataBuf<MAX_ENCR_DATA_LEN>;

/// A PSK-init HDR of the profile (data type 0, MIKEY-1 PRF).
pub(crate) fn psk_hdr(v: bool, csb_id: u32, cs_count: u8, cs_id_map: CsIdMap) -> Hdr {
    Hdr {
        version: MIKEY_VERSION,
        data_type: DataType::PSK_INIT,
        v,
        prf_func: PrfFunc::MIKEY_1,
        csb_id,
        cs_count,
        cs_id_map,
    }
}

/// Appends a KEMAC carrying `key_data` encrypted under `keys`, encodes the
/// message and writes the MAC over every octet before the MAC field.
pub(crate) fn seal(
    hdr: Hdr,
    mut payloads: Vec<Payload>,
    key_data: &[KeyData],
    keys: &ProtectionKeys,
    counter: u32,
) -> Result<Vec<u8>, BuildError> {
    let csb_id = hdr.csb_id;
    let mut encr_data = KeyData::encode_chain(key_data)?;
    keys.apply_keystream(csb_id, u64::from(counter), &mut encr_data);
    payloads.push(Payload::Kemac(Kemac {
        encr_alg: EncrAlg::AES_CM_128,
        encr_data,
        mac_alg: MacAlg::HMAC_SHA1_160,
        mac: vec![0; MAC_LEN],
    }));
    let (mut bytes, mac) = Message { hdr, payloads }.encode_with_mac_field()?;
    let offset = mac
        .map(|m| m.offset)
        .ok_or(BuildError::Invalid("no MAC field"))?;
    let (covered, field) = bytes.split_at_mut(offset);
    field.copy_from_slice(&keys.mac(&[covered]));
    Ok(bytes)
}

/// Verifies the KEMAC MAC over the octets as received, in constant time,
/// then decrypts Encr data into `plain` and reads its Key data chain.
pub(crate) fn open<'p>(
    view: &MessageView<'_>,
    kemac: &KemacView<'_>,
    keys: &ProtectionKeys,
    counter: u32,
    plain: &'p mut PlainBuf,
) -> Result<KeyDataChain<'p>, MessageError> {
    let (input, tag) = final_mac(view)?;
    if !keys.verify_mac(&[input], tag) {
        return Err(MessageError::BadMac);
    }
    let data = plain
        .fill(kemac.encr_data)
        .map_err(|_| ENCR_DATA_TOO_LONG)?;
    keys.apply_keystream(view.hdr().csb_id, u64::from(counter), data);
    plain.key_data().map_err(MessageError::KeyData)
}

/// The MAC-covered octets and the MAC, requiring the MAC field to end the
/// message (RFC 3830 §5.2): nothing after it would be authenticated.
pub(crate) fn final_mac<'a>(view: &MessageView<'a>) -> Result<(&'a [u8], &'a [u8]), MessageError> {
    let mac = view
        .mac_field()
        .ok_or(MessageError::Structure("no MAC field"))?;
    if mac.offset.checked_add(mac.len) != Some(view.bytes().len()) {
        return Err(MessageError::Structure(
            "the MAC field does not end the message",
        ));
    }
    match (view.mac_input(), view.mac_value()) {
        (Some(input), Some(tag)) => Ok((input, tag)),
        _ => Err(MessageError::Structure("no MAC field")),
    }
}
