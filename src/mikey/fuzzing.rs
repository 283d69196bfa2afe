//! Fuzz oracles for the codec, kept in the library so that the `fuzz/`
//! targets are one call each and property tests can reuse them.
//!
//! They panic only when the codec breaks its own contract (`mod.rs`:
//! decoding is total, `decode → encode` is byte-exact, and the borrowed
//! reading of `view` agrees with the owned decode); a panic is the finding.
#![allow(
    clippy::panic,
    reason = "an oracle reports a broken contract by panicking: that is what a fuzz target detects"
)]

use super::view::{EncrDataBuf, KeyDataChain, PayloadView};
use super::{KeyData, Message, MessageView, Payload, describe};

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

/// The equivalence oracle of the borrowed reading: [`MessageView::decode`]
/// accepts exactly what [`Message::decode`] accepts, fails with the same
/// error otherwise, and on success agrees on every field, every payload
/// offset and the MAC field; the same for the Key data chain of every KEMAC
/// and for the input read as a Key data chain.
pub fn view_matches_owned(data: &[u8]) {
    match (MessageView::decode(data), Message::decode(data)) {
        (Ok(view), Ok(rx)) => {
            assert!(
                view.to_message() == *rx.message(),
                "view and owned decode disagree\ninput: {}",
                hex::encode(data)
            );
            let offsets: Vec<usize> = view.payloads().map(|(offset, _)| offset).collect();
            let owned: Vec<usize> = (0..).map_while(|i| rx.payload_offset(i)).collect();
            assert_eq!(
                offsets,
                owned,
                "payload offsets, input {}",
                hex::encode(data)
            );
            assert_eq!(view.payload_count(), rx.message().payloads.len());
            assert_eq!(view.mac_field(), rx.mac_field());
            assert_eq!(view.mac_input(), rx.mac_input());
            assert_eq!(view.mac_value(), rx.mac_value());
            assert_eq!(view.bytes(), rx.bytes());
            assert!(view.to_received() == rx);
            for (_, p) in view.payloads() {
                if let PayloadView::Kemac(k) = p {
                    key_data_view_matches_owned(k.encr_data);
                }
            }
        }
        (Err(v), Err(o)) => assert!(
            v == o,
            "view and owned decode fail differently\n view: {v:?}\nowned: {o:?}\ninput: {}",
            hex::encode(data)
        ),
        (v, o) => panic!(
            "view and owned decode disagree on acceptance\n view: {:?}\nowned: {:?}\ninput: {}",
            v.map(|_| ()),
            o.map(|_| ()),
            hex::encode(data)
        ),
    }
    key_data_view_matches_owned(data);
}

/// [`KeyDataChain::decode`] against [`KeyData::decode_chain`], directly and
/// through an [`EncrDataBuf`].
pub fn key_data_view_matches_owned(plain: &[u8]) {
    let owned = KeyData::decode_chain(plain);
    match (KeyDataChain::decode(plain), &owned) {
        (Ok(chain), Ok(items)) => assert!(
            chain.to_key_data() == *items,
            "Key data chains disagree\ninput: {}",
            hex::encode(plain)
        ),
        (Err(v), Err(o)) => assert!(
            v == *o,
            "Key data chains fail differently\n view: {v:?}\nowned: {o:?}\ninput: {}",
            hex::encode(plain)
        ),
        (v, o) => panic!(
            "Key data chains disagree on acceptance\n view: {:?}\nowned: {:?}\ninput: {}",
            v.map(|_| ()),
            o.as_ref().map(|_| ()),
            hex::encode(plain)
        ),
    }
    let mut buf = EncrDataBuf::<256>::new();
    match buf.fill(plain) {
        Ok(_) => assert_eq!(
            buf.key_data().map(|c| c.to_key_data()),
            owned,
            "Key data chain from the buffer, input {}",
            hex::encode(plain)
        ),
        Err(e) => assert!(plain.len() > 256, "{e}"),
    }
}
