//! The UE receiver, driven by programs of datagrams, built messages, time
//! steps and restarts, keeps its invariants (`mbms_keys::ue::fuzzing`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mbms_keys::ue::fuzzing::run(data));
