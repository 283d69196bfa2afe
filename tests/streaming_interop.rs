//! The broadcast chain of a streaming service checked by media stacks we did not write
//! (docs/oracles.md §0, docs/srtp.md): a whole BM-SC protects an RTP stream to an IPv4
//! multicast group on loopback, sending its MTK messages to another group; the `mbms-keys ue`
//! command, registered over HTTP and joined to the MTK group, prints `MtkReady` lines; and a
//! decryptor we did not write takes the keys from those lines and recovers the RTP that entered
//! the BM-SC's `rtp_input`, bit-exact:
//! - GStreamer `srtpdec` (libsrtp2), given every MTK with its MKI in its caps, across MTK
//!   changes and an MSK rotation, the input coming from a GStreamer sender pipeline;
//! - ffmpeg, from an SDP `a=crypto` line, for a service without MKI, over one MTK period.
//!
//! The SRTP packets are captured from the media group and replayed to the decryptor afterwards.

mod bmsc_srtp {
    #[allow(dead_code)]
    pub mod reference;
}

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Write as _};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bmsc_srtp::reference::{self, Keys};
use mbms_keys::bmsc::config::Config;
use mbms_keys::bmsc::distribution::Tuning;
use mbms_keys::bmsc::server::Bmsc;
use mbms_lab::bmsc_config::{LabConfig, LabService, LabStreaming, LabSubscriber};
use mbms_lab::multicast::{Capture, free_group, join_group as join, l16_sender};
use serde_json::Value;

const FQDN: &str = "bmsc.stream.example.org";
const SERVICE: &str = "urn:stream:tv";
const SSRC: u32 = 0x1122_3344;
const BTID: &str = "VUUt01@bsf.stream.example.org";
const KS_NAF: [u8; 32] = [0x41; 32];
/// 20 ms of 8 kHz mono L16.
const PAYLOAD_LEN: usize = 320;
const GST_HINT: &str = "apt-get install gstreamer1.0-tools gstreamer1.0-plugins-base \
                        gstreamer1.0-plugins-good gstreamer1.0-plugins-bad";

fn seq_of(rtp: &[u8]) -> u16 {
    u16::from_be_bytes([rtp[2], rtp[3]])
}

/// One `MtkReady` line of the UE.
#[derive(Debug, Clone)]
struct MtkReady {
    at: Instant,
    msk_id: String,
    mki: Vec<u8>,
    mtk: Vec<u8>,
    salt: Vec<u8>,
    ssrc: u64,
    roc: u64,
}

/// A BM-SC with one streaming service, and the `mbms-keys ue` command registered to it.
struct Chain {
    bmsc: Bmsc,
    ue: Child,
    ue_lines: JoinHandle<()>,
    ready: Arc<Mutex<Vec<MtkReady>>>,
    rtp_input: SocketAddr,
    media: Capture,
    _dir: mbms_lab::TempDir,
}

impl Chain {
    async fn start(tag: &str, mki: bool) -> Self {
        let dir = mbms_lab::TempDir::new(tag);
        let ue_port = mbms_lab::free_port();
        let mtk_group = free_group();
        let media_group = free_group();
        let rtp_input = SocketAddr::from(([127, 0, 0, 1], mbms_lab::free_port()));
        // The next MSK is pushed max(lifetime / 4, mtk_interval) = 1 s before the switch at
        // about 4 s: one rotation within the run.
        let mut c = LabConfig::new(
            FQDN,
            dir.path().to_path_buf(),
            ue_port,
            LabService {
                id: SERVICE.to_owned(),
                msk_lifetime: "4s",
                mtk_interval: "1s",
                mtk_resend: "200ms",
                mtk_destination: SocketAddr::V4(mtk_group),
            },
        );
        c.subscribers.push(LabSubscriber {
            btid: BTID.to_owned(),
            impi: "001010000000001@ims.stream.example.org".to_owned(),
            ks_naf: KS_NAF,
        });
        let text = c.to_streaming_toml(&LabStreaming {
            ssrc: SSRC,
            rtp_input,
            media_destination: SocketAddr::V4(media_group),
            mki,
        });
        let config = Config::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let media = Capture::start(join(media_group));
        let bmsc = Bmsc::start_with(config, Tuning::default())
            .await
            .expect("BM-SC starts");
        let mut ue = Command::new(env!("CARGO_BIN_EXE_mbms-keys"))
            .args(["ue", "--bmsc", &format!("http://{}", bmsc.http_addr())])
            .args(["--idi", FQDN, "--btid", BTID, "--service", SERVICE])
            .args(["--ks-naf", &hex::encode(KS_NAF)])
            .args(["--listen", &format!("127.0.0.1:{ue_port}")])
            .args(["--join", &format!("{mtk_group}%127.0.0.1")])
            .args(["--key-group", "00f110:0001"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mbms-keys ue runs");
        let ready: Arc<Mutex<Vec<MtkReady>>> = Arc::default();
        let stdout = ue.stdout.take().unwrap();
        let r = ready.clone();
        let ue_lines = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let v: Value = serde_json::from_str(&line).expect("one JSON object per line");
                if v["event"] != "MtkReady" {
                    continue;
                }
                let hex_of = |k: &str| hex::decode(v[k].as_str().expect(k)).expect(k);
                let id = &v["srtp_ids"][0];
                r.lock().unwrap().push(MtkReady {
                    at: Instant::now(),
                    msk_id: v["msk_id"].as_str().expect("msk_id").to_owned(),
                    mki: hex_of("mki"),
                    mtk: hex_of("mtk"),
                    salt: hex_of("salt"),
                    ssrc: id["ssrc"].as_u64().expect("ssrc"),
                    roc: id["roc"].as_u64().expect("roc"),
                });
            }
        });
        Self {
            bmsc,
            ue,
            ue_lines,
            ready,
            rtp_input,
            media,
            _dir: dir,
        }
    }

    /// Waits up to `within` for the UE's first `MtkReady`.
    async fn first_key(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while self.ready.lock().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "no MtkReady within {within:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops everything; gives the UE's `MtkReady` lines and the SRTP packets captured.
    async fn finish(mut self) -> (Vec<MtkReady>, Vec<(Instant, Vec<u8>)>) {
        let srtp = self.media.finish();
        let _ = Command::new("kill")
            .args(["-TERM", &self.ue.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.ue.try_wait().unwrap().is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = self.ue.kill();
        let _ = self.ue.wait();
        let _ = self.ue_lines.join();
        self.bmsc.shutdown().await.expect("clean stop");
        let ready = self.ready.lock().unwrap().clone();
        for r in &ready {
            assert_eq!(r.ssrc, u64::from(SSRC), "SRTP-ID map SSRC");
        }
        (ready, srtp)
    }
}

/// Waits for a line containing `needle` on `child`'s standard output, then drains the rest.
fn wait_for_line(child: &mut Child, needle: &str, within: Duration) {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let wanted = needle.to_owned();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains(&wanted) {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(within)
        .unwrap_or_else(|_| panic!("no line with {needle:?} within {within:?}"));
}

/// Sends `packets` to 127.0.0.1:`port`, paced, and collects what comes back on `out` until it
/// has been quiet for a second.
fn replay(packets: &[&[u8]], port: u16, out: &UdpSocket) -> Vec<Vec<u8>> {
    out.set_read_timeout(Some(Duration::from_millis(1)))
        .unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    for p in packets {
        tx.send_to(p, ("127.0.0.1", port)).unwrap();
        std::thread::sleep(Duration::from_millis(1));
        while let Ok(n) = out.recv(&mut buf) {
            got.push(buf[..n].to_vec());
        }
    }
    out.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    while let Ok(n) = out.recv(&mut buf) {
        got.push(buf[..n].to_vec());
    }
    got
}

/// Whether some socket is bound to UDP `port` (IPv4), read from `/proc/net/udp` so as not to
/// race the owner for it.
fn udp_port_bound(port: u16) -> bool {
    let needle = format!(":{port:04X} ");
    ["/proc/net/udp", "/proc/net/udp6"].iter().any(|table| {
        std::fs::read_to_string(table).is_ok_and(|t| {
            t.lines().skip(1).any(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|a| format!("{a} ").ends_with(&needle))
            })
        })
    })
}

/// A GStreamer sender (`audiotestsrc ! rtpL16pay`) feeds the BM-SC; GStreamer's `srtpdec`,
/// keyed from the UE's `MtkReady` lines (every MTK with its MKI in the caps), decrypts the
/// multicast SRTP across MTK changes and an MSK rotation, bit-exact with the plain RTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_srtpdec_decrypts_the_broadcast_with_the_ues_keys() {
    let Some(gst) = mbms_lab::oracle::oracle("gst-launch-1.0", &[], GST_HINT) else {
        return;
    };
    let chain = Chain::start("stream-gst", true).await;
    // The plain stream, as GStreamer sends it to the BM-SC, captured too (a tee).
    let plain_rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let plain_port = plain_rx.local_addr().unwrap().port();
    let plain = Capture::start(plain_rx);
    chain.first_key(Duration::from_secs(15)).await;
    // 8 s of 20 ms packets, the sequence number wrapping after about 3 s.
    let buffers = 400;
    let mut sender = l16_sender(&gst, buffers, SSRC, chain.rtp_input.port(), plain_port)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gst-launch-1.0 runs");
    let deadline = Instant::now() + Duration::from_secs(25);
    while sender.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the sender pipeline did not end");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sent = sender.wait_with_output().unwrap();
    assert!(
        sent.status.success(),
        "sender: {}",
        String::from_utf8_lossy(&sent.stderr)
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let plain: HashMap<u16, Vec<u8>> = plain
        .finish()
        .into_iter()
        .map(|(_, p)| (seq_of(&p), p))
        .collect();
    let media_sent = chain.bmsc.metrics().media_packets_sent.get();
    let (ready, srtp) = chain.finish().await;
    assert!(plain.len() >= buffers * 9 / 10, "plain: {}", plain.len());

    // The keys, in the order the UE announced them.
    let msks: BTreeSet<&str> = ready.iter().map(|r| r.msk_id.as_str()).collect();
    assert!(msks.len() >= 2, "an MSK rotation within the run: {ready:?}");
    assert!(ready.len() <= 16, "srtpdec takes at most 16 keys");
    assert_eq!(ready[0].roc, 0, "the stream starts at ROC 0");
    assert!(
        ready.iter().any(|r| r.roc == 1),
        "MTK messages after the sequence number wrapped announce ROC 1: {ready:?}"
    );
    let first_key = ready[0].at;
    // Every packet protected after the UE had its first key must decrypt.
    let wanted: Vec<&[u8]> = srtp
        .iter()
        .filter(|(at, _)| *at >= first_key)
        .map(|(_, p)| p.as_slice())
        .collect();
    assert!(
        wanted.len() >= 200,
        "SRTP packets captured: {}",
        wanted.len()
    );
    let mut by_mki: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    for p in &wanted {
        let mki = p[p.len() - 16..p.len() - 10].to_vec();
        *by_mki.entry(mki).or_default() += 1;
    }
    for mki in by_mki.keys() {
        assert!(
            ready.iter().any(|r| &r.mki == mki),
            "MKI {} of the stream is in no MtkReady line",
            hex::encode(mki)
        );
    }

    let mut caps = format!(
        "application/x-srtp,media=(string)audio,clock-rate=(int)8000,encoding-name=(string)L16,\
         channels=(int)1,payload=(int)96,ssrc=(uint){SSRC},\
         srtp-cipher=(string)aes-128-icm,srtp-auth=(string)hmac-sha1-80,\
         srtcp-cipher=(string)aes-128-icm,srtcp-auth=(string)hmac-sha1-80"
    );
    for (i, r) in ready.iter().enumerate() {
        let n = if i == 0 {
            String::new()
        } else {
            (i + 1).to_string()
        };
        caps.push_str(&format!(
            ",srtp-key{n}=(buffer){}{},mki{n}=(buffer){}",
            hex::encode(&r.mtk),
            hex::encode(&r.salt),
            hex::encode(&r.mki)
        ));
    }
    let out = UdpSocket::bind("127.0.0.1:0").unwrap();
    let in_port = mbms_lab::free_port();
    let mut dec = Command::new(&gst)
        .args(["udpsrc", "address=127.0.0.1", &format!("port={in_port}")])
        .arg(format!("caps={caps}"))
        .args(["!", "srtpdec", "!", "udpsink", "host=127.0.0.1"])
        .args([
            &format!("port={}", out.local_addr().unwrap().port()),
            "sync=false",
            "async=false",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gst-launch-1.0 runs");
    wait_for_line(&mut dec, "PLAYING", Duration::from_secs(10));
    let decrypted = replay(&wanted, in_port, &out);
    let _ = dec.kill();
    let dec_out = dec.wait_with_output().unwrap();

    let mut mtks_crossed = BTreeSet::new();
    let mkis: HashMap<u16, Vec<u8>> = wanted
        .iter()
        .map(|p| (seq_of(p), p[p.len() - 16..p.len() - 10].to_vec()))
        .collect();
    for d in &decrypted {
        let s = seq_of(d);
        let sent = plain
            .get(&s)
            .unwrap_or_else(|| panic!("seq {s} was never sent"));
        assert_eq!(d, sent, "packet {s} decrypted bit-exact");
        assert_eq!(d.len(), 12 + PAYLOAD_LEN);
        mtks_crossed.insert(mkis[&s].clone());
    }
    let failed = wanted.len() - decrypted.len();
    eprintln!(
        "GStreamer srtpdec: plain sent {}, BM-SC protected {media_sent}, replayed {}, \
         decrypted {}, failed {failed}; {} MTKs ({} changes) under {} MSKs",
        plain.len(),
        wanted.len(),
        decrypted.len(),
        mtks_crossed.len(),
        mtks_crossed.len() - 1,
        msks.len()
    );
    assert_eq!(
        failed,
        0,
        "srtpdec refused packets; stderr: {}",
        String::from_utf8_lossy(&dec_out.stderr)
    );
    assert!(mtks_crossed.len() >= 3, "at least two MTK changes crossed");
    let msks_crossed: BTreeSet<&[u8]> = mtks_crossed.iter().map(|m| &m[..4]).collect();
    assert!(msks_crossed.len() >= 2, "an MSK rotation crossed");
}

/// A deterministic RTP packet of the ffmpeg run: L16 payload, 20 ms.
fn l16(seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 96];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&u32::from(seq).wrapping_mul(160).to_be_bytes());
    p.extend_from_slice(&SSRC.to_be_bytes());
    p.extend((0..PAYLOAD_LEN).map(|i| (i as u16).wrapping_mul(31).wrapping_add(seq) as u8));
    p
}

/// ffmpeg, given one of the UE's MTKs in an SDP `a=crypto` line, decrypts the packets of a
/// service without MKI protected under that MTK (a whole MTK period), bit-exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_decrypts_one_mtk_period_of_a_broadcast_without_mki() {
    let Some(ffmpeg) = mbms_lab::oracle::oracle("ffmpeg", &[], "apt-get install ffmpeg") else {
        return;
    };
    let chain = Chain::start("stream-ffmpeg", false).await;
    chain.first_key(Duration::from_secs(15)).await;
    // 4 s of packets every 10 ms.
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let first_seq = 1000u16;
    let mut seq = first_seq;
    let end = Instant::now() + Duration::from_secs(4);
    while Instant::now() < end {
        tx.send_to(&l16(seq), chain.rtp_input).unwrap();
        seq += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ready, srtp) = chain.finish().await;
    assert!(ready.len() >= 3, "MTKs: {ready:?}");

    // Which captured packets each MTK protects, by the in-tree RFC 3711 reference.
    let per_key: Vec<Vec<&[u8]>> = ready
        .iter()
        .map(|r| {
            let keys = Keys::new(&r.mtk, &r.salt);
            srtp.iter()
                .map(|(_, p)| p.as_slice())
                .filter(|p| reference::unprotect(&keys, p, 0, 10).is_ok())
                .collect()
        })
        .collect();
    let total: usize = per_key.iter().map(Vec::len).sum();
    assert_eq!(total, srtp.len(), "every packet under one of the UE's MTKs");
    // A middle MTK: a whole period.
    let (k, packets) = per_key
        .iter()
        .enumerate()
        .skip(1)
        .take(ready.len() - 2)
        .max_by_key(|(_, p)| p.len())
        .expect("a middle MTK");
    assert!(
        packets.len() >= 50,
        "{} packets under MTK {k}",
        packets.len()
    );
    let r = &ready[k];

    let dir = mbms_lab::TempDir::new("ffmpeg-sdp");
    let mut attempt = 0;
    let (port, raw, mut ff, stderr, reader) = loop {
        attempt += 1;
        let port = mbms_lab::free_port();
        let sdp = dir.path().join("in.sdp");
        let raw = dir.path().join("out.raw");
        let inline = base64::engine::general_purpose::STANDARD
            .encode([r.mtk.as_slice(), r.salt.as_slice()].concat());
        std::fs::write(
            &sdp,
            format!(
                "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=mbms\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {port} RTP/SAVP 96\r\na=rtpmap:96 L16/8000/1\r\n\
             a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{inline}\r\n"
            ),
        )
        .unwrap();
        let mut ff = Command::new(&ffmpeg)
            .args(["-hide_banner", "-nostats", "-loglevel", "info"])
            .args(["-protocol_whitelist", "file,udp,rtp,srtp"])
            .args(["-reorder_queue_size", "0"])
            .arg("-i")
            .arg(&sdp)
            .args(["-c:a", "copy", "-f", "s16be", "-y"])
            .arg(&raw)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ffmpeg runs");
        let stderr = Arc::new(Mutex::new(String::new()));
        let reader = {
            let pipe = ff.stderr.take().unwrap();
            let text = stderr.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    text.lock().unwrap().push_str(&line);
                    text.lock().unwrap().push('\n');
                }
            })
        };
        // ffmpeg reports nothing before its first packet: wait for its socket instead. If it
        // exits first (the port, or the RTCP port above it, was taken meanwhile), a fresh port.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut exited = false;
        while !udp_port_bound(port) {
            if ff.try_wait().unwrap().is_some() {
                exited = true;
                break;
            }
            if Instant::now() > deadline {
                let _ = ff.kill();
                let _ = ff.wait();
                let _ = reader.join();
                panic!(
                    "ffmpeg did not open port {port}: {}",
                    stderr.lock().unwrap()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if !exited {
            break (port, raw, ff, stderr, reader);
        }
        let _ = ff.wait();
        let _ = reader.join();
        assert!(
            attempt < 3,
            "ffmpeg exited before opening a port: {}",
            stderr.lock().unwrap()
        );
    };
    for p in packets {
        tx.send_to(p, ("127.0.0.1", port)).unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = ff.stdin.take().unwrap().write_all(b"q");
    let deadline = Instant::now() + Duration::from_secs(10);
    while ff.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = ff.kill();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = ff.wait();
    let _ = reader.join();
    let stderr = stderr.lock().unwrap().clone();
    let got = std::fs::read(&raw).unwrap_or_default();
    let expected: Vec<u8> = packets
        .iter()
        .flat_map(|p| l16(seq_of(p))[12..].to_vec())
        .collect();
    let decrypted = got.len() / PAYLOAD_LEN;
    eprintln!(
        "ffmpeg: {} packets under MTK {} replayed, {decrypted} decrypted, {} failed",
        packets.len(),
        hex::encode(&r.mki),
        packets.len() - decrypted
    );
    assert!(
        got == expected,
        "ffmpeg output ({} octets) is the sent payload ({} octets); stderr: {stderr}",
        got.len(),
        expected.len()
    );
    assert!(!stderr.contains("HMAC mismatch"), "{stderr}");
}
