//! Decoding arbitrary octets as a Diameter message never panics, and what decodes re-encodes
//! to a message that decodes to the same value and encodes to the same octets.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mbms_keys::diameter::Message;

const MAX: usize = 1 << 16;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::decode(data, MAX) {
        let bytes = m.encode().expect("a decoded message re-encodes");
        let again = Message::decode(&bytes, MAX).expect("re-encoded octets decode");
        assert_eq!(again, m);
        assert_eq!(again.encode().expect("re-encode"), bytes);
    }
});
