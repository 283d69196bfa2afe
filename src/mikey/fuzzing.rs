//! Fuzz oracles for the codec, kept in the library so that the `fuzz/`
//! targets are one call each and property tests can reuse them.
//!
//! Both functions panic only when the codec breaks its own contract
//! (`mod.rs`: decoding is total, and `decode → encode` is byte-exact); a
//! panic is the finding.

use super::{KeyData, Message, Payload, describe};

/// Decodes arbitrary octets; on success also describes the message (JSON and
/// text, including the Key data of a NULL-encrypted KEMAC) and re-encodes it.
/// Only a panic inside the codec fails.
pub fn decode_never_panics(data: &[u8]) {
    let Ok(rx) = Message::decode(data) else {
        return;
    };
    let desc = describe::describe(&rx);
    let _ = describe::render_text(&desc);
    let _ = rx.message().encode();
    let _ = rx.mac_input();
    let _ = rx.mac_value();
}

/// The round-trip oracle: a datagram that decodes re-encodes to the same
/// octets, and so does any KEMAC Encr data that decodes as a Key data chain
/// (it is plaintext under NULL encryption, and random-looking otherwise).
pub fn roundtrip(data: &[u8]) {
    let Ok(rx) = Message::decode(data) else {
        return;
    };
    let message = rx.message();
    match message.encode() {
        Ok(encoded) => assert!(
            encoded == data,
            "re-encoding differs\n input: {}\noutput: {}",
            hex::encode(data),
            hex::encode(&encoded)
        ),
        Err(e) => panic!(
            "decoded message does not encode: {e}\ninput: {}",
            hex::encode(data)
        ),
    }
    for p in &message.payloads {
        let Payload::Kemac(k) = p else { continue };
        let Ok(items) = KeyData::decode_chain(&k.encr_data) else {
            continue;
        };
        match KeyData::encode_chain(&items) {
            Ok(encoded) => assert!(
                encoded == k.encr_data,
                "Key data chain re-encoding differs\n input: {}\noutput: {}",
                hex::encode(&k.encr_data),
                hex::encode(&encoded)
            ),
            Err(e) => panic!(
                "decoded Key data chain does not encode: {e}\ninput: {}",
                hex::encode(&k.encr_data)
            ),
        }
    }
}
