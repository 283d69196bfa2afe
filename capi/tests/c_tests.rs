//! The C tests (`tests/c/`), built the way an application builds against the library: the
//! library is installed with `install.sh` into a temporary prefix, each program is compiled with
//! `cc` and the flags of `pkg-config --cflags --libs mbms-keys`, and run. `bad_input.c` is also
//! linked against the static library with `pkg-config --static`. The checks each program passed
//! are counted and asserted here.
//!
//! Needs `cc` and `pkg-config`: without them the test skips, unless `MBMS_REQUIRE_ORACLES=1`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The checks each C program makes; a change to a program updates its count here.
const SANS_IO_VECTORS_CHECKS: u32 = 135;
const BAD_INPUT_CHECKS: u32 = 125;

fn capi_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn pkg_config(prefix: &Path, args: &[&str]) -> Vec<String> {
    let out = run(Command::new("pkg-config")
        .args(args)
        .arg("mbms-keys")
        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig")));
    out.split_whitespace().map(str::to_owned).collect()
}

/// "NAME: N checks passed, 0 failed" → N.
fn passed(name: &str, stdout: &str) -> u32 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no summary line in {stdout:?}"));
    assert!(line.ends_with(", 0 failed"), "{line}");
    line.split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"))
}

#[test]
fn c_tests_pass_against_the_installed_library() {
    let hint = "apt-get install gcc pkg-config";
    let (Some(_), Some(_)) = (
        mbms_lab::oracle::oracle("cc", &[], hint),
        mbms_lab::oracle::oracle("pkg-config", &[], hint),
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let prefix = tmp.path().join("prefix");
    let stdout = run(Command::new("sh")
        .arg(capi_dir().join("install.sh"))
        .arg(&prefix));
    assert!(stdout.contains("installed mbms-keys"), "{stdout}");
    for f in [
        "include/mbms_keys.h",
        "lib/libmbms_keys.so",
        "lib/libmbms_keys.so.0",
        "lib/libmbms_keys.a",
        "lib/pkgconfig/mbms-keys.pc",
    ] {
        assert!(prefix.join(f).exists(), "{f} not installed");
    }
    let installed = std::fs::read_dir(prefix.join("lib"))
        .expect("lib/")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .any(|n| n.starts_with("libmbms_keys.so.0.") && n.split('.').count() == 5);
    assert!(installed, "no libmbms_keys.so.0.<minor>.<patch>");

    let cflags = pkg_config(&prefix, &["--cflags"]);
    let libs = pkg_config(&prefix, &["--libs"]);
    let rpath = format!("-Wl,-rpath,{}", prefix.join("lib").display());
    let build = |source: &str, exe: &Path, link: &[String]| {
        run(Command::new("cc")
            .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-o"])
            .arg(exe)
            .arg(capi_dir().join("tests/c").join(source))
            .args(&cflags)
            .args(link));
    };

    // The shared library, as pkg-config gives it.
    let mut shared = libs.clone();
    shared.push(rpath);
    let vectors = tmp.path().join("sans_io_vectors");
    build("sans_io_vectors.c", &vectors, &shared);
    let out = run(Command::new(&vectors).arg(capi_dir().join("../proto-vectors")));
    assert_eq!(
        passed("sans_io_vectors", &out),
        SANS_IO_VECTORS_CHECKS,
        "{out}"
    );
    let bad = tmp.path().join("bad_input");
    build("bad_input.c", &bad, &shared);
    let out = run(&mut Command::new(&bad));
    assert_eq!(passed("bad_input", &out), BAD_INPUT_CHECKS, "{out}");

    // The static library with its Libs.private: no shared mbms_keys at run time.
    let mut fixed = vec![prefix.join("lib/libmbms_keys.a").display().to_string()];
    fixed.extend(
        pkg_config(&prefix, &["--static", "--libs"])
            .into_iter()
            .filter(|f| !f.starts_with("-L") && f != "-lmbms_keys"),
    );
    let bad_static = tmp.path().join("bad_input_static");
    build("bad_input.c", &bad_static, &fixed);
    let ldd = Command::new("ldd").arg(&bad_static).output();
    if let Ok(ldd) = ldd {
        let text = String::from_utf8_lossy(&ldd.stdout);
        assert!(!text.contains("libmbms_keys"), "{text}");
    }
    let out = run(&mut Command::new(&bad_static));
    assert_eq!(passed("bad_input", &out), BAD_INPUT_CHECKS, "{out}");
}
