//! The checked-in header is what cbindgen generates from the crate now: a change of the C API
//! without the header regenerated fails here (and so in CI).
//! `MBMS_UPDATE_HEADER=1 cargo test -p mbms-keys-capi --test header` rewrites it.

use std::path::PathBuf;

fn generate() -> String {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(&dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("UTF-8 header")
}

#[test]
fn header_is_current() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("include/mbms_keys.h");
    let now = generate();
    if std::env::var_os("MBMS_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &now).expect("write the header");
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == now,
        "{} is out of date: run MBMS_UPDATE_HEADER=1 cargo test -p mbms-keys-capi --test header",
        path.display()
    );
}

#[test]
fn every_extern_function_is_in_the_header_with_its_thread_safety() {
    let header = generate();
    let functions: Vec<&str> = header
        .lines()
        .filter(|l| {
            l.starts_with("mbms_result mbms_")
                || l.starts_with("const char *mbms_")
                || l.starts_with("void mbms_")
        })
        .collect();
    assert!(functions.len() >= 14, "{functions:?}");
    for name in [
        "mbms_result_name",
        "mbms_version",
        "mbms_discard_reason_name",
        "mbms_receiver_new",
        "mbms_receiver_restore",
        "mbms_receiver_save",
        "mbms_receiver_handle_datagram",
        "mbms_receiver_poll_event",
        "mbms_receiver_next_timeout",
        "mbms_receiver_handle_timeout",
        "mbms_receiver_msk_response",
        "mbms_receiver_key_by_mki",
        "mbms_receiver_key_by_ssrc",
        "mbms_receiver_free",
    ] {
        assert!(header.contains(&format!("{name}(")), "{name} missing");
    }
    // Each function's comment states its thread-safety.
    let blocks = header.split("*/").count();
    let stated = header.matches("Thread-safety:").count();
    assert!(
        stated >= functions.len(),
        "{stated} statements for {} functions ({blocks} comments)",
        functions.len()
    );
}
