//! The MIKEY-SAKKE I_MESSAGE verifier (`mcx::verify_i_message`) on arbitrary octets and on a
//! valid message with octets flipped: a typed refusal, never a panic; an accepted message
//! carries the key sent and is refused the second time.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _accepted = mbms_keys::mcx::fuzzing::sakke_verify(data);
});
