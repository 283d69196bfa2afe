//! The SRTP sender of a streaming service (docs/profile.md §2.4): the sans-IO `Protector`
//! checked against a second implementation written from RFC 3711 (`bmsc_srtp/reference.rs`)
//! and against GStreamer's `srtpdec` (libsrtp2) when installed; then the whole BM-SC, plain RTP
//! in and SRTP out, unicast and IPv4 multicast on loopback, across MTK changes.

mod bmsc_srtp {
    pub mod reference;
}

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bmsc_srtp::reference::{self, Keys};
use mbms_keys::bmsc::config::{Config, SrtpSenderConfig, SrtpSuite};
use mbms_keys::bmsc::distribution::{MediaKey, Tuning};
use mbms_keys::bmsc::media::protector::MAX_STREAM_KEYS;
use mbms_keys::bmsc::media::{MediaError, Protector, RtpError, estimate_index};
use mbms_keys::bmsc::server::Bmsc;
use mbms_keys::crypto::{Mtk, Salt};
use mbms_keys::mbms::profile::srtp_mki;
use mbms_keys::mikey::{MskId, MtkId};

const SSRC: u32 = 0x1122_3344;

fn sender(suite: SrtpSuite, mki: bool) -> SrtpSenderConfig {
    SrtpSenderConfig {
        rtp_input: "127.0.0.1:1".parse().unwrap(),
        media_destination: "127.0.0.1:2".parse().unwrap(),
        suite,
        mki,
        key_lead: 2,
        udp_offload: true,
    }
}

fn key(n: u8, msk: MskId, mtk: u16) -> MediaKey {
    MediaKey {
        msk_id: msk,
        mtk_id: MtkId(mtk),
        mtk: Mtk::from_bytes([n; 16]),
        salt: Salt::from_bytes([n ^ 0xa5; 14]),
        sent: 2,
    }
}

fn keys_of(k: &MediaKey) -> Keys {
    Keys::new(k.mtk.as_bytes(), k.salt.as_bytes())
}

fn rtp(seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 96];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&u32::from(seq).wrapping_mul(160).to_be_bytes());
    p.extend_from_slice(&SSRC.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn payload(seq: u16) -> Vec<u8> {
    (0..160u16).map(|i| (i ^ seq) as u8).collect()
}

/// Decrypts `srtp` with the key its MKI names among `keys`, at rollover counter `roc`.
fn open_by_mki(srtp: &[u8], keys: &[&MediaKey], roc: u32, tag_len: usize) -> (Vec<u8>, MtkId) {
    let (mki, rest) = reference::split_mki(srtp, 6, tag_len);
    let k = keys
        .iter()
        .find(|k| srtp_mki(k.msk_id, k.mtk_id).as_slice() == mki)
        .unwrap_or_else(|| panic!("MKI {} names no key", hex::encode(&mki)));
    let plain = reference::unprotect(&keys_of(k), &rest, roc, tag_len).expect("authentic");
    (plain, k.mtk_id)
}

#[test]
fn protected_packets_carry_the_mki_and_decrypt_with_a_second_implementation() {
    let k = key(1, MskId::new(1, 2), 3);
    let mut p = Protector::new(SSRC, 0, &sender(SrtpSuite::AesCm128HmacSha1_80, true));
    assert!(p.offer_key(&k).unwrap());
    let mut out = Vec::new();
    for seq in 1000..1010u16 {
        let plain = rtp(seq, &payload(seq));
        p.protect(&plain, &mut out).unwrap();
        assert_eq!(out.len(), plain.len() + 6 + 10);
        assert_eq!(&out[out.len() - 16..out.len() - 10], &[0, 1, 0, 2, 0, 3]);
        assert_ne!(out[12..plain.len()], plain[12..], "payload encrypted");
        let (opened, _) = open_by_mki(&out, &[&k], 0, 10);
        assert_eq!(opened, plain);
    }
}

#[test]
fn an_mtk_protects_media_only_after_its_message_went_out_key_lead_times() {
    let mut k = key(1, MskId::new(1, 2), 3);
    k.sent = 1;
    let mut p = Protector::new(SSRC, 0, &sender(SrtpSuite::AesCm128HmacSha1_80, true));
    assert!(!p.offer_key(&k).unwrap());
    let mut out = vec![1];
    assert_eq!(p.protect(&rtp(1, b"x"), &mut out), Err(MediaError::NoKey));
    assert!(out.is_empty(), "nothing to send");
    k.sent = 2;
    assert!(p.offer_key(&k).unwrap());
    assert!(!p.offer_key(&k).unwrap(), "the same key again is no change");
    p.protect(&rtp(1, b"x"), &mut out).unwrap();
}

#[test]
fn mtk_changes_and_an_msk_rotation_switch_at_a_packet_boundary_and_the_index_runs_on() {
    let k1 = key(1, MskId::new(1, 2), 3);
    let k2 = key(2, MskId::new(1, 2), 4);
    let k3 = key(3, MskId::new(1, 3), 0x10);
    let mut p = Protector::new(SSRC, 0, &sender(SrtpSuite::AesCm128HmacSha1_80, true));
    let mut out = Vec::new();
    let mut seq = 0xfff0u16;
    let mut roc = 0u32;
    for (k, n) in [(&k1, 10), (&k2, 10), (&k3, 10)] {
        assert!(p.offer_key(k).unwrap());
        for _ in 0..n {
            let plain = rtp(seq, &payload(seq));
            p.protect(&plain, &mut out).unwrap();
            let (opened, id) = open_by_mki(&out, &[&k1, &k2, &k3], roc, 10);
            assert_eq!((opened, id), (plain, k.mtk_id));
            seq = seq.wrapping_add(1);
            if seq == 0 {
                roc += 1;
            }
        }
    }
    assert_eq!(p.roc(), 1, "the sequence number wrapped once");
}

#[test]
fn the_configured_roc_is_the_rollover_counter_of_the_first_packet() {
    let k = key(7, MskId::new(9, 1), 2);
    let mut p = Protector::new(SSRC, 3, &sender(SrtpSuite::AesCm128HmacSha1_80, true));
    p.offer_key(&k).unwrap();
    let mut out = Vec::new();
    for seq in [5u16, 6, 7] {
        let plain = rtp(seq, &payload(seq));
        p.protect(&plain, &mut out).unwrap();
        assert_eq!(open_by_mki(&out, &[&k], 3, 10).0, plain);
    }
    assert_eq!(p.roc(), 3);
}

#[test]
fn without_mki_the_packets_are_plain_srtp_and_the_short_tag_suite_works() {
    let k = key(4, MskId::new(1, 1), 2);
    for (suite, mki) in [
        (SrtpSuite::AesCm128HmacSha1_80, false),
        (SrtpSuite::AesCm128HmacSha1_32, false),
        (SrtpSuite::AesCm128HmacSha1_32, true),
    ] {
        let mut p = Protector::new(SSRC, 0, &sender(suite, mki));
        p.offer_key(&k).unwrap();
        let mut out = Vec::new();
        let plain = rtp(42, &payload(42));
        p.protect(&plain, &mut out).unwrap();
        let tag = suite.tag_len();
        let mki_len = if mki { 6 } else { 0 };
        assert_eq!(
            out.len(),
            plain.len() + mki_len + tag,
            "{suite:?} mki={mki}"
        );
        let opened = if mki {
            open_by_mki(&out, &[&k], 0, tag).0
        } else {
            reference::unprotect(&keys_of(&k), &out, 0, tag).unwrap()
        };
        assert_eq!(opened, plain);
    }
}

#[test]
fn the_stream_is_rebuilt_after_its_key_limit_without_losing_the_index() {
    let mut p = Protector::new(SSRC, 2, &sender(SrtpSuite::AesCm128HmacSha1_80, true));
    let mut out = Vec::new();
    let mut last = None;
    for (seq, i) in (100u16..).zip(0..(MAX_STREAM_KEYS + 3)) {
        let k = key(
            (i % 250) as u8,
            MskId::new(1, 1 + (i / 1000) as u16),
            1 + i as u16,
        );
        assert!(p.offer_key(&k).unwrap());
        let plain = rtp(seq, &payload(seq));
        p.protect(&plain, &mut out).unwrap();
        assert_eq!(open_by_mki(&out, &[&k], 2, 10).0, plain, "key {i}");
        last = Some(k);
    }
    // And it goes on over a wrap.
    let k = last.unwrap();
    for s in [0x7000u16, 0xe000, 0x5000] {
        p.protect(&rtp(s, b"abc"), &mut out).unwrap();
    }
    assert_eq!(p.roc(), 3);
    assert_eq!(open_by_mki(&out, &[&k], 3, 10).0, rtp(0x5000, b"abc"));
}

#[test]
fn bad_input_and_reused_indexes_are_refused_never_protected() {
    let k = key(1, MskId::new(1, 2), 3);
    let mut p = Protector::new(SSRC, 0, &sender(SrtpSuite::AesCm128HmacSha1_80, true));
    p.offer_key(&k).unwrap();
    let mut out = Vec::new();
    assert!(matches!(
        p.protect(b"hello", &mut out),
        Err(MediaError::Rtp(RtpError::Truncated { .. }))
    ));
    let mut v1 = rtp(1, b"x");
    v1[0] = 0x40;
    assert_eq!(
        p.protect(&v1, &mut out),
        Err(MediaError::Rtp(RtpError::Version(1)))
    );
    assert_eq!(
        p.protect(&rtp(1, &[0; 1500]), &mut out),
        Err(MediaError::Rtp(RtpError::TooLong(1512)))
    );
    let mut other = rtp(1, b"x");
    other[8..12].copy_from_slice(&[9, 9, 9, 9]);
    assert_eq!(
        p.protect(&other, &mut out),
        Err(MediaError::OtherSsrc(0x0909_0909))
    );
    p.protect(&rtp(1, b"x"), &mut out).unwrap();
    assert_eq!(
        p.protect(&rtp(1, b"x"), &mut out),
        Err(MediaError::Replayed)
    );
    assert!(out.is_empty());
    for n in 0..40 {
        let _ = p.protect(&vec![0x9f; n], &mut out);
    }
}

/// GStreamer's `srtpdec` (libsrtp2) decrypts what the sender protected, MKI and all.
#[test]
fn gstreamer_srtpdec_decrypts_the_protected_stream() {
    let Some(gst) = mbms_lab::oracle::oracle(
        "gst-launch-1.0",
        &[],
        "apt-get install gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad",
    ) else {
        return;
    };
    let k = key(0x31, MskId::new(1, 0xab), 0x0102);
    let listen = UdpSocket::bind("127.0.0.1:0").unwrap();
    listen
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let out_port = listen.local_addr().unwrap().port();
    let in_port = mbms_lab::free_port();
    let keysalt = format!(
        "{}{}",
        hex::encode(k.mtk.as_bytes()),
        hex::encode(k.salt.as_bytes())
    );
    let mki = hex::encode(srtp_mki(k.msk_id, k.mtk_id));
    let caps = format!(
        "application/x-srtp,media=(string)audio,clock-rate=(int)8000,encoding-name=(string)PCMU,\
         payload=(int)96,ssrc=(uint){SSRC},srtp-key=(buffer){keysalt},\
         srtp-cipher=(string)aes-128-icm,srtp-auth=(string)hmac-sha1-80,\
         srtcp-cipher=(string)aes-128-icm,srtcp-auth=(string)hmac-sha1-80,mki=(buffer){mki}"
    );
    let mut child = Command::new(gst)
        .args([
            "-q",
            "udpsrc",
            "address=127.0.0.1",
            &format!("port={in_port}"),
            &format!("caps={caps}"),
            "!",
            "srtpdec",
            "!",
            "udpsink",
            "host=127.0.0.1",
            &format!("port={out_port}"),
            "sync=false",
            "async=false",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gst-launch-1.0 runs");
    let mut p = Protector::new(SSRC, 0, &sender(SrtpSuite::AesCm128HmacSha1_80, true));
    p.offer_key(&k).unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut out = Vec::new();
    let mut received = Vec::new();
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seq = 0xfff0u16; // across a wrap of the sequence number
    while received.len() < 20 && Instant::now() < deadline {
        let plain = rtp(seq, &payload(seq));
        p.protect(&plain, &mut out).unwrap();
        tx.send_to(&out, ("127.0.0.1", in_port)).unwrap();
        seq = seq.wrapping_add(1);
        if let Ok(n) = listen.recv(&mut buf) {
            received.push(buf[..n].to_vec());
        }
    }
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    assert!(
        received.len() >= 20,
        "srtpdec gave {} packets; stderr: {}",
        received.len(),
        String::from_utf8_lossy(&output.stderr)
    );
    for r in &received {
        let s = u16::from_be_bytes([r[2], r[3]]);
        assert_eq!(*r, rtp(s, &payload(s)), "packet {s} decrypted intact");
    }
}

// --- The whole BM-SC ---

fn free_udp(ip: &str) -> SocketAddr {
    let s = UdpSocket::bind((ip, 0)).unwrap();
    s.local_addr().unwrap()
}

fn streaming_config(dir: &std::path::Path, input: SocketAddr, dest: SocketAddr) -> String {
    let mtk_dest = free_udp("127.0.0.1");
    format!(
        "fqdn = \"bmsc.lab.example.org\"\n\
         http_listen = \"127.0.0.1:0\"\n\
         admin_listen = \"127.0.0.2:0\"\n\
         data_dir = \"{}\"\n\
         multicast_interface = \"127.0.0.1\"\n\
         \n[[services]]\n\
         id = \"urn:lab:tv\"\n\
         key_domain = \"00f110\"\n\
         key_group = 7\n\
         msk_lifetime = \"1h\"\n\
         mtk_interval = \"1500ms\"\n\
         mtk_resend = \"300ms\"\n\
         mtk_destination = \"{mtk_dest}\"\n\
         transport = \"streaming\"\n\
         authorized = \"*\"\n\
         [services.srtp]\n\
         ssrc = {SSRC}\n\
         rtp_input = \"{input}\"\n\
         media_destination = \"{dest}\"\n",
        dir.display()
    )
}

/// The sequence numbers sent so far and the highest index received.
struct Stream {
    next_seq: u16,
    highest: Option<u64>,
}

impl Stream {
    fn new() -> Self {
        Self {
            next_seq: 0xff00,
            highest: None,
        }
    }
}

/// Sends plain RTP into `input` for `secs` and decrypts what arrives on `rx` with the keys
/// the distribution made; returns the MTK IDs seen.
async fn stream_through(
    bmsc: &Bmsc,
    input: SocketAddr,
    rx: &UdpSocket,
    stream: &mut Stream,
    secs: u64,
) -> Vec<MtkId> {
    rx.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut keys: Vec<MediaKey> = Vec::new();
    let mut seen = Vec::new();
    let mut decrypted = 0;
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if let Some(k) = bmsc.current_mtks().media_key("urn:lab:tv")
            && !keys
                .iter()
                .any(|h| (h.msk_id, h.mtk_id) == (k.msk_id, k.mtk_id))
        {
            keys.push(k);
        }
        let seq = stream.next_seq;
        tx.send_to(&rtp(seq, &payload(seq)), input).unwrap();
        stream.next_seq = seq.wrapping_add(1);
        tokio::time::sleep(Duration::from_millis(4)).await;
        while let Ok(n) = rx.recv(&mut buf) {
            let srtp = &buf[..n];
            // The sender may have taken a key after our last look.
            if let Some(k) = bmsc.current_mtks().media_key("urn:lab:tv")
                && !keys
                    .iter()
                    .any(|h| (h.msk_id, h.mtk_id) == (k.msk_id, k.mtk_id))
            {
                keys.push(k);
            }
            let s = u16::from_be_bytes([srtp[2], srtp[3]]);
            let index = match stream.highest {
                Some(h) => estimate_index(h, s),
                None => u64::from(s),
            };
            stream.highest = Some(stream.highest.map_or(index, |h| h.max(index)));
            let refs: Vec<&MediaKey> = keys.iter().collect();
            let (plain, id) = open_by_mki(srtp, &refs, (index >> 16) as u32, 10);
            assert_eq!(plain, rtp(s, &payload(s)));
            decrypted += 1;
            if seen.last() != Some(&id) {
                seen.push(id);
            }
        }
    }
    assert!(decrypted >= 20, "only {decrypted} packets came out");
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bmsc_protects_rtp_to_a_unicast_destination_across_mtk_changes() {
    let dir = mbms_lab::TempDir::new("srtp-unicast");
    let input = free_udp("127.0.0.1");
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let text = streaming_config(dir.path(), input, rx.local_addr().unwrap());
    let config = Config::parse(&text).expect("config");
    let bmsc = Bmsc::start_with(config, Tuning::default())
        .await
        .expect("starts");
    let mut stream = Stream::new();
    let seen = stream_through(&bmsc, input, &rx, &mut stream, 5).await;
    assert!(
        seen.len() >= 2,
        "media went under at least two MTKs: {seen:?}"
    );
    assert!(
        seen.windows(2).all(|w| w[0].0 < w[1].0),
        "MTK IDs only go up: {seen:?}"
    );
    // Bad input on rtp_input is counted and dropped; the service keeps running.
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let before = bmsc.metrics().media_rtp_invalid.get();
    for bad in [
        &b"not rtp"[..],
        &[0x40; 40][..],
        &[0x8f; 20][..],
        &[0x80; 1600][..],
    ] {
        tx.send_to(bad, input).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while bmsc.metrics().media_rtp_invalid.get() < before + 4 {
        assert!(Instant::now() < deadline, "bad input not counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sent = bmsc.metrics().media_packets_sent.get();
    let seen = stream_through(&bmsc, input, &rx, &mut stream, 1).await;
    assert!(!seen.is_empty());
    assert!(bmsc.metrics().media_packets_sent.get() > sent);
    // The MTK message announces the stream's rollover counter.
    assert_eq!(bmsc.current_mtks().roc("urn:lab:tv"), Some(1));
    bmsc.shutdown().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bmsc_protects_rtp_to_an_ipv4_multicast_group_on_loopback() {
    let dir = mbms_lab::TempDir::new("srtp-multicast");
    let input = free_udp("127.0.0.1");
    let group = Ipv4Addr::new(239, 255, 77, 1);
    let port = free_udp("127.0.0.1").port();
    let rx = {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        s.set_reuse_address(true).unwrap();
        s.bind(&SocketAddr::from((group, port)).into()).unwrap();
        let s: UdpSocket = s.into();
        s.join_multicast_v4(&group, &Ipv4Addr::LOCALHOST).unwrap();
        s
    };
    let text = streaming_config(dir.path(), input, SocketAddr::from((group, port)));
    let config = Config::parse(&text).expect("config");
    let bmsc = Bmsc::start_with(config, Tuning::default())
        .await
        .expect("starts");
    let seen = stream_through(&bmsc, input, &rx, &mut Stream::new(), 4).await;
    assert!(
        seen.len() >= 2,
        "media went under at least two MTKs: {seen:?}"
    );
    bmsc.shutdown().await.expect("clean stop");
}
