//! The README's quick start, as a new user runs it: `bmsc serve` with `examples/bmsc.toml` and
//! the README's `ue` command (Ks_NAF from `gba ks-naf`, `--join` of the example's multicast
//! group). The UE prints `MtkReady` for the news service within one MTK interval of its
//! registration. Only the ports, the multicast group and the directories differ from the
//! example, so that tests can run side by side.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{TempDir, free_port};

const FQDN: &str = "bmsc.mnc001.mcc001.pub.3gppnetwork.org";
const BTID: &str = "ICEiIyQlJicoKSorLC0uLw==@bsf.mnc001.mcc001.pub.3gppnetwork.org";
/// The news service's MTK interval in the example.
const MTK_INTERVAL: Duration = Duration::from_secs(10);

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn exe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mbms-keys"))
}

#[test]
fn the_readme_ue_prints_mtk_ready_within_one_mtk_interval() {
    let dir = TempDir::new("quickstart");
    let (http, admin, ue_port) = (free_port(), free_port(), free_port());
    let group = format!("239.255.{}.{}", 100 + ue_port % 100, 1 + ue_port % 250);
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/bmsc.toml"))
            .expect("examples/bmsc.toml");
    let data = dir.path().join("bmsc-data");
    let config = example
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{http}"))
        .replace("127.0.0.1:9090", &format!("127.0.0.1:{admin}"))
        .replace("ue_port = 2269", &format!("ue_port = {ue_port}"))
        .replace("239.255.10.1:2269", &format!("{group}:{ue_port}"))
        .replace("239.255.10.2", &group)
        .replace("./bmsc-data", &data.display().to_string())
        .replace(
            "./bmsc-secrets",
            &dir.path().join("bmsc-secrets").display().to_string(),
        );
    assert_ne!(config, example);
    let config_path = dir.path().join("bmsc.toml");
    std::fs::write(&config_path, config).expect("config written");

    let _bmsc = Killed(
        exe()
            .args(["bmsc", "serve", "--config"])
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("bmsc serve"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", http)).is_err() {
        assert!(Instant::now() < deadline, "bmsc serve did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }

    let ks_naf = exe()
        .args(["gba", "ks-naf", "--ks"])
        .arg("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
        .args(["--rand", "202122232425262728292a2b2c2d2e2f"])
        .args([
            "--impi",
            "001010123456789@ims.mnc001.mcc001.3gppnetwork.org",
        ])
        .args(["--naf-fqdn", FQDN])
        .output()
        .expect("gba ks-naf");
    assert!(ks_naf.status.success());
    let ks_naf = String::from_utf8(ks_naf.stdout).expect("hex");

    let mut ue = Killed(
        exe()
            .args(["ue", "--bmsc", &format!("http://127.0.0.1:{http}")])
            .args(["--idi", FQDN, "--btid", BTID, "--ks-naf", ks_naf.trim()])
            .args(["--service", "urn:example:mbms:news"])
            .args(["--listen", &format!("127.0.0.1:{ue_port}")])
            .args(["--join", &format!("{group}%127.0.0.1")])
            .arg("--state")
            .arg(dir.path().join("ue-state.bin"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("ue"),
    );
    let stdout = ue.0.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });

    let deadline = Instant::now() + MTK_INTERVAL + Duration::from_secs(20);
    let mut registered = None;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let Ok((at, line)) = rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_str(&line).expect("one JSON object per line");
        match v["event"].as_str() {
            Some("Registered") => registered = Some(at),
            Some("MtkReady") => {
                let since = at.duration_since(registered.expect("Registered comes first"));
                assert!(
                    since <= MTK_INTERVAL,
                    "MtkReady {since:?} after the registration"
                );
                assert_eq!(v["mtk"].as_str().map(str::len), Some(32), "{line}");
                assert_eq!(v["mki"].as_str().map(str::len), Some(12), "{line}");
                return;
            }
            _ => {}
        }
        seen.push(line);
    }
    panic!("no MtkReady; the UE printed:\n{}", seen.join("\n"));
}
