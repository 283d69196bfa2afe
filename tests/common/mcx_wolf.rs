//! The wolfSSL harness `tools/mcx-wolf` (C over Debian's libwolfssl-dev), built once per test
//! process with make. Oracle rule: without make, a C compiler or the wolfSSL headers, `None`
//! (the test skips), or a failure under `MBMS_REQUIRE_ORACLES=1`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

const INSTALL_HINT: &str = "apt-get install libwolfssl-dev gcc make";
const HEADERS: [&str; 2] = [
    "/usr/include/wolfssl/wolfcrypt/eccsi.h",
    "/usr/include/wolfssl/wolfcrypt/sakke.h",
];

fn build() -> Result<PathBuf, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/mcx-wolf");
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
        PathBuf::from,
    );
    let dir = target
        .join("mcx-wolf")
        .join(format!("build-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let out = Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(&src)
        .arg(format!("O={}", dir.display()))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running make: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "make -C tools/mcx-wolf failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(dir.join("mcx-wolf"))
}

/// The harness; `None` (after the oracle rule) when it cannot be built.
pub fn harness() -> Option<PathBuf> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let tools = mbms_lab::find_on_path("make").is_some()
                && mbms_lab::find_on_path("cc").is_some()
                && HEADERS.iter().all(|h| Path::new(h).is_file());
            if !tools {
                mbms_lab::oracle::missing("wolfSSL with ECCSI/SAKKE (mcx-wolf)", INSTALL_HINT);
                return None;
            }
            match build() {
                Ok(p) => Some(p),
                Err(e) => {
                    mbms_lab::oracle::missing(&format!("mcx-wolf ({e})"), INSTALL_HINT);
                    None
                }
            }
        })
        .clone()
}

/// Runs the harness: exit code and standard output (trimmed).
pub fn wolf(bin: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(bin).args(args).output().expect("run mcx-wolf");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
    )
}
