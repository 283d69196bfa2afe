//! Decoding, describing and re-encoding never panic on any input, and the
//! borrowed reading agrees with the owned decode.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mbms_keys::mikey::fuzzing::decode_never_panics(data);
    mbms_keys::mikey::fuzzing::view_matches_owned(data);
});
