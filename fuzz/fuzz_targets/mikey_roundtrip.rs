//! Whatever decodes re-encodes to the same octets.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mbms_keys::mikey::fuzzing::roundtrip(data));
