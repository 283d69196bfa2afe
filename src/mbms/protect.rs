//! KEMAC protection shared by the MSK and MTK messages: seal on the sending
//! side, check-then-decrypt on the receiving side (RFC 3830 §5.2, §5.3).

use zeroize::Zeroizing;

use crate::crypto::{MAC_LEN, ProtectionKeys};
use crate::mikey::{
    CsIdMap, DataType, EncrAlg, Hdr, Kemac, KeyData, MIKEY_VERSION, MacAlg, Message, Payload,
    PrfFunc, Received,
};

use super::error::{BuildError, MessageError};

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
/// then decrypts Encr data and decodes its Key data chain.
pub(crate) fn open(
    rx: &Received,
    kemac: &Kemac,
    keys: &ProtectionKeys,
    counter: u32,
) -> Result<Vec<KeyData>, MessageError> {
    let (input, tag) = final_mac(rx)?;
    if !keys.verify_mac(&[input], tag) {
        return Err(MessageError::BadMac);
    }
    let mut plain = Zeroizing::new(kemac.encr_data.clone());
    keys.apply_keystream(rx.message().hdr.csb_id, u64::from(counter), &mut plain);
    KeyData::decode_chain(&plain).map_err(MessageError::KeyData)
}

/// The MAC-covered octets and the MAC, requiring the MAC field to end the
/// message (RFC 3830 §5.2): nothing after it would be authenticated.
pub(crate) fn final_mac(rx: &Received) -> Result<(&[u8], &[u8]), MessageError> {
    let mac = rx
        .mac_field()
        .ok_or(MessageError::Structure("no MAC field"))?;
    if mac.offset.checked_add(mac.len) != Some(rx.bytes().len()) {
        return Err(MessageError::Structure(
            "the MAC field does not end the message",
        ));
    }
    match (rx.mac_input(), rx.mac_value()) {
        (Some(input), Some(tag)) => Ok((input, tag)),
        _ => Err(MessageError::Structure("no MAC field")),
    }
}
