//! ECCSI and SAKKE against Debian's wolfSSL (`libwolfssl-dev`, built with ECCSI and SAKKE),
//! through our harness `tools/mcx-wolf` (C, built here with make): wolfSSL validates the SSK/PVT
//! and RSK our KMS side issues, verifies our signatures and decapsulates what we encapsulate;
//! we verify its signatures and decapsulate what it encapsulates to our UID.
//!
//! Oracle rule: without make, a C compiler or the wolfSSL headers the tests skip, or fail under
//! `MBMS_REQUIRE_ORACLES=1`.
#![cfg(feature = "mcx")]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use mbms_keys::crypto::OsRandom;
use mbms_keys::ibe::{Ksak, SakkeMaster, Ssv, eccsi, sakke, uid_format2};

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

/// The harness, built once per process; `None` (after the oracle rule) when it cannot be.
fn harness() -> Option<PathBuf> {
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
fn wolf(bin: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(bin).args(args).output().expect("run mcx-wolf");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
    )
}

fn uid(n: u64) -> [u8; 32] {
    uid_format2("sip:alice@example.org", "kms.example.org", 2_592_000, 0, n).unwrap()
}

fn flip(h: &str, at: usize) -> String {
    let mut b = hex::decode(h).unwrap();
    b[at] ^= 1;
    hex::encode(b)
}

#[test]
fn wolfssl_validates_the_eccsi_keys_we_issue_and_our_signatures() {
    let Some(bin) = harness() else { return };
    let ksak = Ksak::generate(&mut OsRandom).unwrap();
    let kpak = ksak.kpak().unwrap();
    let kpak_h = hex::encode(kpak.to_octets());
    for n in 1..=3 {
        let id = uid(n);
        let id_h = hex::encode(id);
        let pair = ksak.issue(&id, &mut OsRandom).unwrap();
        let ssk_h = hex::encode(pair.ssk.as_bytes());
        let pvt_h = hex::encode(pair.pvt);
        let (code, _) = wolf(&bin, &["eccsi-validate", &kpak_h, &id_h, &ssk_h, &pvt_h]);
        assert_eq!(code, 0, "wolfSSL refused our SSK/PVT");
        // The harness can say no: a changed SSK.
        let bad = flip(&ssk_h, 31);
        let (code, _) = wolf(&bin, &["eccsi-validate", &kpak_h, &id_h, &bad, &pvt_h]);
        assert_eq!(code, 1);
        let msg = format!("message {n}");
        let msg_h = hex::encode(&msg);
        let sig = eccsi::sign(
            &kpak,
            &id,
            &pair.ssk,
            &pair.pvt,
            msg.as_bytes(),
            &mut OsRandom,
        )
        .unwrap();
        let sig_h = hex::encode(sig);
        let (code, _) = wolf(&bin, &["eccsi-verify", &kpak_h, &id_h, &msg_h, &sig_h]);
        assert_eq!(code, 0, "wolfSSL refused our signature");
        let (code, _) = wolf(&bin, &["eccsi-verify", &kpak_h, &id_h, "00", &sig_h]);
        assert_eq!(code, 1);
    }
}

#[test]
fn we_verify_wolfssl_signatures() {
    let Some(bin) = harness() else { return };
    let ksak = Ksak::generate(&mut OsRandom).unwrap();
    let kpak = ksak.kpak().unwrap();
    let id = uid(7);
    let pair = ksak.issue(&id, &mut OsRandom).unwrap();
    for msg in [&b""[..], b"a", &[0x5a; 1000][..]] {
        let (code, sig_h) = wolf(
            &bin,
            &[
                "eccsi-sign",
                &hex::encode(kpak.to_octets()),
                &hex::encode(id),
                &hex::encode(pair.ssk.as_bytes()),
                &hex::encode(pair.pvt),
                &hex::encode(msg),
            ],
        );
        assert_eq!(code, 0);
        let sig = hex::decode(&sig_h).unwrap();
        eccsi::verify(&kpak, &id, msg, &sig).unwrap();
        assert!(eccsi::verify(&kpak, &id, b"other", &sig).is_err());
    }
}

#[test]
fn wolfssl_validates_the_rsk_we_issue_and_sakke_works_both_ways() {
    let Some(bin) = harness() else { return };
    let z = SakkeMaster::generate(&mut OsRandom).unwrap();
    let zs = z.public().unwrap();
    let z_h = hex::encode(zs.to_octets());
    let id = uid(11);
    let id_h = hex::encode(id);
    let rsk = z.issue_rsk(&id).unwrap();
    let rsk_h = hex::encode(rsk.as_bytes());
    let (code, _) = wolf(&bin, &["sakke-validate", &z_h, &id_h, &rsk_h]);
    assert_eq!(code, 0, "wolfSSL refused our RSK");
    let (code, _) = wolf(
        &bin,
        &["sakke-validate", &z_h, &hex::encode(uid(12)), &rsk_h],
    );
    assert_eq!(code, 1);
    for _ in 0..2 {
        // wolfSSL encapsulates to our UID; we decapsulate.
        let ssv = Ssv::generate(&mut OsRandom).unwrap();
        let ssv_h = hex::encode(ssv.as_bytes());
        let (code, data_h) = wolf(&bin, &["sakke-encap", &z_h, &id_h, &ssv_h]);
        assert_eq!(code, 0);
        let data = hex::decode(&data_h).unwrap();
        assert_eq!(
            data.to_vec(),
            sakke::encapsulate(&zs, &id, &ssv).unwrap().to_vec()
        );
        let got = sakke::decapsulate(&zs, &id, &rsk, &data).unwrap();
        assert_eq!(got.as_bytes(), ssv.as_bytes());
        // We encapsulate; wolfSSL decapsulates.
        let ssv2 = Ssv::generate(&mut OsRandom).unwrap();
        let ours = hex::encode(sakke::encapsulate(&zs, &id, &ssv2).unwrap());
        let (code, out) = wolf(&bin, &["sakke-decap", &z_h, &id_h, &rsk_h, &ours]);
        assert_eq!(code, 0);
        assert_eq!(out, hex::encode(ssv2.as_bytes()));
    }
}
