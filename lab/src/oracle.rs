//! Interop peers: programs we did not write, found on `PATH`. A test whose peer is missing
//! skips with a message, unless `MBMS_REQUIRE_ORACLES=1` (as CI sets after installing the
//! peers), where a missing peer is a failure.

use std::path::{Path, PathBuf};

/// `program` in a directory of `PATH`, if there.
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Whether `MBMS_REQUIRE_ORACLES=1`.
pub fn required() -> bool {
    std::env::var("MBMS_REQUIRE_ORACLES").is_ok_and(|v| v == "1")
}

/// Reports a peer that is not usable: panics when peers are [`required`], else says the test
/// skips.
pub fn missing(what: &str, install_hint: &str) {
    assert!(
        !required(),
        "MBMS_REQUIRE_ORACLES=1 and {what} is not usable ({install_hint})"
    );
    eprintln!(
        "SKIPPED: {what} not usable ({install_hint}); set MBMS_REQUIRE_ORACLES=1 to make this a failure"
    );
}

/// The peer `program` on `PATH` with its `extra_files` present, or `None` after [`missing`].
pub fn oracle(program: &str, extra_files: &[&str], install_hint: &str) -> Option<PathBuf> {
    let found =
        find_on_path(program).filter(|_| extra_files.iter().all(|f| Path::new(f).is_file()));
    if found.is_none() {
        missing(program, install_hint);
    }
    found
}
