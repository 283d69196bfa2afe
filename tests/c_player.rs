//! The C player `examples/c/mbms-play` end to end, as a C application developer builds and runs
//! it, with real processes on loopback: the library is installed with `capi/install.sh` into a
//! temporary prefix, the player is built with `make` and the prefix's `mbms-keys.pc`; a
//! `mbms-keys bmsc serve` process runs a streaming service whose MTK changes every second and
//! whose MSK rotates within the run; a GStreamer sender feeds its `rtp_input`; the player
//! registers (HTTP Digest), receives the MSKs and MTKs through the driver level, answers
//! `srtpdec`'s `request-key` from the library's key lookups, and writes the decrypted RTP
//! payloads. They must equal the payloads the sender sent, bit-exact, across the MTK changes
//! and the MSK rotation the SRTP stream itself shows (counted from the MKIs on the wire).
//!
//! Needs gst-launch-1.0 with the good and bad plugins, cc, make, pkg-config and the GStreamer
//! development files: without them the test skips, unless `MBMS_REQUIRE_ORACLES=1`.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mbms_lab::bmsc_config::{LabConfig, LabService, LabStreaming, LabSubscriber};
use mbms_lab::multicast::{Capture, free_group, join_group, l16_sender};

const FQDN: &str = "bmsc.play.example.org";
const SERVICE: &str = "urn:stream:play";
const SSRC: u32 = 0x5566_7788;
const BTID: &str = "UGxheTAx@bsf.play.example.org";
const KS_NAF: [u8; 32] = [0x37; 32];
/// 20 ms of 8 kHz mono L16.
const PAYLOAD_LEN: usize = 320;
/// 9 s of packets.
const BUFFERS: usize = 450;
const HINT: &str = "apt-get install gcc make pkg-config gstreamer1.0-tools \
                    gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
                    libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `cmd` to success, giving its standard output.
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A child process killed when dropped (also on a failed assertion).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The lines a child writes on standard output, collected by a thread.
fn collect_lines(child: &mut Child) -> Arc<Mutex<Vec<String>>> {
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let stdout = child.stdout.take().expect("piped stdout");
    let l = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            l.lock().unwrap().push(line);
        }
    });
    lines
}

fn wait_until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "{what} not within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The installed library and the player built against it; `None` after the skip rule.
fn build_player(dir: &Path) -> Option<PathBuf> {
    let tools = ["gst-launch-1.0", "cc", "make", "pkg-config"];
    if tools
        .iter()
        .any(|t| mbms_lab::oracle::oracle(t, &[], HINT).is_none())
    {
        return None;
    }
    let dev = Command::new("pkg-config")
        .args([
            "--exists",
            "gstreamer-1.0",
            "gstreamer-app-1.0",
            "gio-unix-2.0",
        ])
        .status();
    if !dev.is_ok_and(|s| s.success()) {
        mbms_lab::oracle::missing("the GStreamer development files", HINT);
        return None;
    }
    let prefix = dir.join("prefix");
    let out = run(Command::new("sh")
        .arg(root().join("capi/install.sh"))
        .arg(&prefix)
        .env("CARGO", env!("CARGO")));
    assert!(out.contains("installed mbms-keys"), "{out}");
    let build = dir.join("build");
    std::fs::create_dir_all(&build).unwrap();
    run(Command::new("make")
        .arg("-f")
        .arg(root().join("examples/c/Makefile"))
        .arg("-C")
        .arg(&build)
        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig")));
    let player = build.join("mbms-play");
    assert!(player.is_file(), "make built no mbms-play");
    Some(player)
}

fn seq_of(rtp: &[u8]) -> u16 {
    u16::from_be_bytes([rtp[2], rtp[3]])
}

#[test]
fn the_c_player_decrypts_the_broadcast_bit_exact_across_mtk_changes_and_an_msk_rotation() {
    let dir = mbms_lab::TempDir::new("c-player");
    let Some(player) = build_player(dir.path()) else {
        return;
    };

    // Bad arguments: a usage error (exit 2), never a crash.
    let ks = hex::encode(KS_NAF);
    let out = dir.path().join("unused.raw");
    let out = out.to_str().unwrap();
    for args in [
        vec![
            "--fqdn",
            FQDN,
            "--btid",
            BTID,
            "--ks-naf",
            "00",
            "--media",
            "239.1.1.1:5000",
        ],
        vec![
            "--fqdn", FQDN, "--btid", BTID, "--ks-naf", &ks, "--media", "nonsense",
        ],
        vec![
            "--fqdn",
            FQDN,
            "--btid",
            BTID,
            "--ks-naf",
            &ks,
            "--media",
            "239.1.1.1:0",
        ],
        vec!["--fqdn", FQDN, "--btid", BTID, "--ks-naf", &ks],
        vec![
            "--bmsc",
            "http://127.0.0.1:1",
            "--btid",
            BTID,
            "--ks-naf",
            &ks,
            "--media",
            "239.1.1.1:5000",
        ],
        vec!["--count", "0"],
        vec!["--unknown"],
    ] {
        let status = Command::new(&player)
            .args(&args)
            .args(["--out", out])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("mbms-play runs");
        assert_eq!(status.code(), Some(2), "{args:?}");
    }
    // A B-TID the library refuses: MBMS_ERR_INVALID, reported, exit 1.
    let bad = Command::new(&player)
        .args(["--fqdn", FQDN, "--btid", "no at sign", "--ks-naf", &ks])
        .args(["--media", &format!("127.0.0.1:{}", mbms_lab::free_port())])
        .args(["--listen", "127.0.0.1:0", "--out", out])
        .output()
        .expect("mbms-play runs");
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("MBMS_ERR_INVALID"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );

    // The BM-SC: MTK every second, MSK lifetime 4 s (the next MSK pushed a second before the
    // switch), the SRTP stream to one multicast group and the MTK messages to another.
    let ue_port = mbms_lab::free_port();
    let http_port = mbms_lab::free_port();
    let mtk_group = free_group();
    let media_group = free_group();
    let rtp_input = SocketAddr::from(([127, 0, 0, 1], mbms_lab::free_port()));
    let mut c = LabConfig::new(
        FQDN,
        dir.path().join("bmsc"),
        ue_port,
        LabService {
            id: SERVICE.to_owned(),
            msk_lifetime: "4s",
            mtk_interval: "1s",
            mtk_resend: "200ms",
            mtk_destination: SocketAddr::V4(mtk_group),
        },
    );
    c.http_port = http_port;
    c.subscribers.push(LabSubscriber {
        btid: BTID.to_owned(),
        impi: "001010000000002@ims.play.example.org".to_owned(),
        ks_naf: KS_NAF,
    });
    let text = c.to_streaming_toml(&LabStreaming {
        ssrc: SSRC,
        rtp_input,
        media_destination: SocketAddr::V4(media_group),
        mki: true,
    });
    std::fs::create_dir_all(dir.path().join("bmsc")).unwrap();
    let config = dir.path().join("bmsc.toml");
    std::fs::write(&config, text).unwrap();
    // The SRTP stream as the BM-SC sends it, to count the MKIs on the wire.
    let media = Capture::start(join_group(media_group));
    let _bmsc = Killed(
        Command::new(env!("CARGO_BIN_EXE_mbms-keys"))
            .args(["bmsc", "serve", "--config"])
            .arg(&config)
            .env("MBMS_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("mbms-keys bmsc serve runs"),
    );
    wait_until("the BM-SC listening", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", http_port)).is_ok()
    });

    // The player.
    let out_file = dir.path().join("payloads.raw");
    let mut play = Command::new(&player)
        .args(["--bmsc", &format!("http://127.0.0.1:{http_port}")])
        .args(["--fqdn", FQDN, "--btid", BTID, "--service", SERVICE])
        .args(["--ks-naf", &hex::encode(KS_NAF)])
        .args(["--listen", &format!("127.0.0.1:{ue_port}")])
        .args(["--join", &format!("{mtk_group}%127.0.0.1")])
        .args(["--media", &format!("{media_group}%127.0.0.1")])
        .args(["--key-group", "00f110:0001"])
        .args([
            "--caps",
            "media=audio,clock-rate=8000,encoding-name=L16,payload=96",
        ])
        .arg("--out")
        .arg(&out_file)
        .args(["--duration", "60", "--verbose"])
        // The rendering branch too (a tee), into a fakesink: the output must not suffer.
        .args(["--play", "--play-sink", "fakesink sync=false"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mbms-play runs");
    let lines = collect_lines(&mut play);
    let stderr = play.stderr.take().expect("piped stderr");
    let err_text: Arc<Mutex<String>> = Arc::default();
    let e = err_text.clone();
    let err_reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let mut t = e.lock().unwrap();
            t.push_str(&line);
            t.push('\n');
        }
    });
    let mut play = Killed(play);
    let has = |needle: &str| lines.lock().unwrap().iter().any(|l| l.contains(needle));
    wait_until("the player's first MTK", Duration::from_secs(20), || {
        if let Ok(Some(status)) = play.0.try_wait() {
            panic!(
                "mbms-play ended ({status}): {:?}\n{}",
                lines.lock().unwrap(),
                err_text.lock().unwrap()
            );
        }
        has("event MTK_READY")
    });

    // The sender: GStreamer's L16 payloader, the sequence number wrapping after ~2.7 s; a tee
    // keeps the plain RTP as sent.
    let plain_rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let plain_port = plain_rx.local_addr().unwrap().port();
    let plain = Capture::start(plain_rx);
    let sent = l16_sender(
        "gst-launch-1.0",
        BUFFERS,
        SSRC,
        rtp_input.port(),
        plain_port,
    )
    .output()
    .expect("gst-launch-1.0 runs");
    assert!(
        sent.status.success(),
        "sender: {}",
        String::from_utf8_lossy(&sent.stderr)
    );
    std::thread::sleep(Duration::from_millis(500));
    let plain = plain.finish();
    let srtp = media.finish();

    // Stop the player (SIGTERM: it deregisters and prints its summary).
    let _ = Command::new("kill")
        .args(["-TERM", &play.0.id().to_string()])
        .status();
    wait_until("the player to stop", Duration::from_secs(15), || {
        matches!(play.0.try_wait(), Ok(Some(_)))
    });
    let status = play.0.try_wait().unwrap().expect("stopped");
    let _ = err_reader.join();
    let lines = lines.lock().unwrap().clone();
    let err_text = err_text.lock().unwrap().clone();
    assert!(
        status.success(),
        "mbms-play: {status}\n{lines:?}\n{err_text}"
    );

    // What the stream itself shows: the MTKs (MKIs) and MSKs (their first four octets) of the
    // SRTP packets carrying the sent RTP.
    let sent_seqs: BTreeSet<u16> = plain.iter().map(|(_, p)| seq_of(p)).collect();
    let mkis: Vec<[u8; 6]> = srtp
        .iter()
        .filter(|(_, p)| p.len() > 12 + 16 && sent_seqs.contains(&seq_of(p)))
        .map(|(_, p)| p[p.len() - 16..p.len() - 10].try_into().unwrap())
        .collect();
    let distinct: Vec<[u8; 6]> = mkis.iter().fold(Vec::new(), |mut v, m| {
        if v.last() != Some(m) {
            v.push(*m);
        }
        v
    });
    let msks: BTreeSet<[u8; 4]> = distinct
        .iter()
        .map(|m| m[..4].try_into().unwrap())
        .collect();

    let got = std::fs::read(&out_file).expect("the output file");
    let expected: Vec<u8> = plain.iter().flat_map(|(_, p)| p[12..].to_vec()).collect();
    let done = lines
        .iter()
        .find(|l| l.starts_with("done "))
        .cloned()
        .unwrap_or_default();
    eprintln!(
        "mbms-play: sent {} packets, BM-SC protected {} of them under {} MTKs ({} changes) and \
         {} MSKs; decrypted {} octets of {}; {done}; {}",
        plain.len(),
        mkis.len(),
        distinct.len(),
        distinct.len().saturating_sub(1),
        msks.len(),
        got.len(),
        expected.len(),
        err_text
            .lines()
            .filter(|l| l.starts_with("srtpdec"))
            .collect::<Vec<_>>()
            .join("; ")
    );
    assert!(
        plain.len() >= BUFFERS * 9 / 10,
        "plain packets: {}",
        plain.len()
    );
    assert!(plain.iter().all(|(_, p)| p.len() == 12 + PAYLOAD_LEN));
    assert_eq!(
        mkis.len(),
        plain.len(),
        "every sent packet went out protected"
    );
    assert!(
        got == expected,
        "the decrypted payloads ({} octets) are the sent ones ({} octets), bit-exact\n{}",
        got.len(),
        expected.len(),
        err_text
    );
    assert!(
        distinct.len() >= 3,
        "at least two MTK changes: {distinct:02x?}"
    );
    assert!(msks.len() >= 2, "an MSK rotation: {distinct:02x?}");
    assert!(
        lines
            .iter()
            .filter(|l| l.starts_with("event MTK_READY"))
            .count()
            >= distinct.len(),
        "{lines:?}"
    );
}
