//! The media driver's batched path (docs/srtp.md): datagrams on `rtp_input` are read many per
//! system call, protected in order, and the protected ones sent many per system call. Bursts
//! queued before the driver reads are checked against the RFC 3711 reference decryptor of
//! `bmsc_srtp/reference.rs`, packet by packet and in order; bad datagrams inside a burst are
//! counted and dropped without disturbing the good ones around them. The batched socket calls
//! of `bmsc::mmsg` are checked on their own too, with the UDP segmentation offloads (a GSO
//! send reaches a plain receiver as the same datagrams; a GRO read is split into them again).

mod bmsc_srtp {
    pub mod reference;
}

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use bmsc_srtp::reference::{self, Keys};
use mbms_keys::bmsc::config::{MulticastConfig, SrtpSenderConfig, SrtpSuite};
use mbms_keys::bmsc::distribution::{CurrentMtks, MediaKey};
use mbms_keys::bmsc::media::Protector;
use mbms_keys::bmsc::media::driver::{MEDIA_BATCH, MediaSockets, run_media};
use mbms_keys::bmsc::metrics::Metrics;
use mbms_keys::bmsc::mmsg::{
    GSO_MAX_SEGMENTS, Gso, MAX_UDP_PAYLOAD, Outbound, RecvBatch, gso_run, send_batch,
    send_batch_gso,
};
use mbms_keys::crypto::{Mtk, Salt};
use mbms_keys::mbms::profile::srtp_mki;
use mbms_keys::mikey::{MskId, MtkId};

const SSRC: u32 = 0x5566_7788;
const TAG: usize = 10;

fn key() -> MediaKey {
    MediaKey {
        msk_id: MskId::new(4, 5),
        mtk_id: MtkId(6),
        mtk: Mtk::from_bytes([0x3c; 16]),
        salt: Salt::from_bytes([0x96; 14]),
        sent: 2,
    }
}

fn rtp(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 96];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&u32::from(seq).wrapping_mul(160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend((0..120u16).map(|i| (i ^ seq) as u8));
    p
}

fn free_udp() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A started driver: where to send RTP, where SRTP arrives, its metrics, how to stop it.
struct Driver {
    input: SocketAddr,
    rx: UdpSocket,
    metrics: Arc<Metrics>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// Binds the driver's sockets, queues `burst` on its `rtp_input` before it reads anything,
/// then starts it with its key already taken.
async fn driver_after(burst: &[Vec<u8>]) -> Driver {
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let cfg = SrtpSenderConfig {
        rtp_input: free_udp(),
        media_destination: rx.local_addr().unwrap(),
        suite: SrtpSuite::AesCm128HmacSha1_80,
        mki: true,
        key_lead: 1,
        udp_offload: true,
    };
    let sockets = MediaSockets::bind(&cfg, &MulticastConfig::default())
        .await
        .expect("binds");
    // Room for the whole burst (the system's limit permitting).
    let _ = socket2::SockRef::from(&sockets.input).set_recv_buffer_size(4 << 20);
    let _ = socket2::SockRef::from(&rx).set_recv_buffer_size(4 << 20);
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    for d in burst {
        tx.send_to(d, cfg.rtp_input).unwrap();
    }
    let mut protector = Protector::new(SSRC, 0, &cfg);
    assert_eq!(protector.offer_key(&key()), Ok(true));
    let metrics = Arc::new(Metrics::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run_media(
        "urn:lab:batch".to_owned(),
        protector,
        cfg.clone(),
        sockets,
        CurrentMtks::default(),
        Arc::clone(&metrics),
        async move {
            let _ = stopped.await;
        },
    ));
    Driver {
        input: cfg.rtp_input,
        rx,
        metrics,
        stop,
        task,
    }
}

/// Receives `n` SRTP packets (blocking, on the blocking pool) and checks each against the
/// reference decryptor: MKI, authentication, plain text equal to `expected` in order.
async fn receive_in_order(rx: UdpSocket, expected: Vec<Vec<u8>>) -> UdpSocket {
    tokio::task::spawn_blocking(move || {
        let k = key();
        let keys = Keys::new(k.mtk.as_bytes(), k.salt.as_bytes());
        let mut buf = [0u8; 2048];
        for (i, want) in expected.iter().enumerate() {
            let n = rx
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("packet {i} of {} not received: {e}", expected.len()));
            let (mki, rest) = reference::split_mki(&buf[..n], 6, TAG);
            assert_eq!(mki, srtp_mki(k.msk_id, k.mtk_id), "packet {i}: MKI");
            let plain = reference::unprotect(&keys, &rest, 0, TAG)
                .unwrap_or_else(|e| panic!("packet {i}: not authentic: {e}"));
            assert_eq!(&plain, want, "packet {i}: another packet, or out of order");
        }
        // Nothing more: every forwarded packet was expected.
        rx.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        if let Ok(n) = rx.recv(&mut buf) {
            panic!("an extra packet of {n} octets was forwarded");
        }
        rx
    })
    .await
    .expect("receiver")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_read_in_batches_protected_and_forwarded_in_order() {
    let n = 100u16;
    let burst: Vec<Vec<u8>> = (0..n).map(|i| rtp(1000 + i, SSRC)).collect();
    let d = driver_after(&burst).await;
    let rx = receive_in_order(d.rx, burst.clone()).await;
    assert_eq!(d.metrics.media_packets_in.get(), u64::from(n));
    assert_eq!(d.metrics.media_packets_sent.get(), u64::from(n));
    assert_eq!(d.metrics.media_send_errors.get(), 0);
    // All of it was queued before the first read: one read per MEDIA_BATCH (at least 32)
    // datagrams, so 4 reads at most.
    let reads = d.metrics.media_input_reads.get();
    assert_eq!(
        reads,
        usize::from(n).div_ceil(MEDIA_BATCH) as u64,
        "{n} queued datagrams took {reads} reads"
    );
    assert!(reads <= 4, "{n} queued datagrams took {reads} reads");
    // A later packet still goes through (the driver waits again, it did not stop).
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let late = rtp(1000 + n, SSRC);
    tx.send_to(&late, d.input).unwrap();
    let _rx = receive_in_order(rx, vec![late]).await;
    let _ = d.stop.send(());
    d.task.await.expect("driver stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_mixing_bad_datagrams_forwards_exactly_the_good_ones_and_counts_the_bad() {
    let mut version_1 = rtp(1, SSRC);
    version_1[0] = 0x40;
    // CSRC count 15: the header needs 72 octets, there are 20.
    let short_header = vec![0x8f; 20];
    let bad: Vec<Vec<u8>> = vec![
        b"not rtp".to_vec(),
        Vec::new(),
        version_1,
        short_header,
        // Over the 1500-octet limit: longer than a receive slot, and exactly one octet over.
        vec![0x80; 1600],
        vec![0x80; 1501],
        vec![0x80; 9000],
    ];
    let invalid = bad.len() as u64;
    const ROUNDS: u8 = 5;
    let mut burst = Vec::new();
    let mut good = Vec::new();
    let mut seq = 200u16;
    for round in 0..ROUNDS {
        for b in &bad {
            let p = rtp(seq, SSRC);
            seq += 1;
            good.push(p.clone());
            burst.push(p);
            burst.push(b.clone());
        }
        // Another stream's packet: refused, not forwarded.
        if round % 3 == 0 {
            burst.push(rtp(seq, 0x0bad_0bad));
        }
    }
    let rejected = burst
        .iter()
        .filter(|p| p.len() > 12 && p[8..12] == 0x0bad_0badu32.to_be_bytes())
        .count() as u64;
    let d = driver_after(&burst).await;
    let _rx = receive_in_order(d.rx, good.clone()).await;
    let m = &d.metrics;
    assert_eq!(m.media_packets_in.get(), burst.len() as u64);
    assert_eq!(m.media_packets_sent.get(), good.len() as u64);
    assert_eq!(m.media_rtp_invalid.get(), invalid * u64::from(ROUNDS));
    assert_eq!(m.media_rejected.get(), rejected);
    assert_eq!(m.media_no_key.get(), 0);
    assert!(
        m.media_input_reads.get() <= burst.len().div_ceil(MEDIA_BATCH.max(32)) as u64,
        "{} datagrams took {} reads",
        burst.len(),
        m.media_input_reads.get()
    );
    let _ = d.stop.send(());
    d.task.await.expect("driver stops cleanly");
}

// Elsewhere a datagram filling its slot exactly counts as cut short (no MSG_TRUNC).
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "current_thread")]
async fn one_read_takes_every_queued_datagram_up_to_the_slots_and_flags_long_ones() {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = socket.local_addr().unwrap();
    let sent: [&[u8]; 5] = [b"one", b"", b"exactly 10", b"eleven octs", b"five!"];
    for d in sent {
        tx.send_to(d, to).unwrap();
    }
    let mut batch = RecvBatch::new(4, 10);
    assert_eq!(batch.recv(&socket).await.unwrap(), 4);
    let got: Vec<(Vec<u8>, bool)> = batch
        .iter()
        .map(|r| (r.bytes.to_vec(), r.truncated))
        .collect();
    assert_eq!(
        got,
        vec![
            (b"one".to_vec(), false),
            (Vec::new(), false),
            (b"exactly 10".to_vec(), false),
            (b"eleven oct".to_vec(), true),
        ]
    );
    assert_eq!(batch.recv(&socket).await.unwrap(), 1);
    let got: Vec<&[u8]> = batch.iter().map(|r| r.bytes).collect();
    assert_eq!(got, vec![&b"five!"[..]]);
}

#[tokio::test(flavor = "current_thread")]
async fn a_batch_send_skips_a_datagram_the_kernel_refuses_and_sends_the_rest_in_order() {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let to = rx.local_addr().unwrap();
    // An IPv6 destination from an IPv4 socket: refused by the kernel.
    let refused: SocketAddr = "[::1]:9".parse().unwrap();
    let batch: Vec<Outbound> = [(to, "a"), (refused, "x"), (to, "b"), (to, "c")]
        .iter()
        .map(|&(to, s)| Outbound {
            to,
            bytes: s.as_bytes().to_vec(),
        })
        .collect();
    let outcome = send_batch(&socket, &batch).await;
    assert_eq!((outcome.sent, outcome.failed), (3, 1));
    let mut buf = [0u8; 16];
    for want in ["a", "b", "c"] {
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], want.as_bytes());
    }
}

fn dg(to: SocketAddr, len: usize, fill: u8) -> Outbound {
    Outbound {
        to,
        bytes: vec![fill; len],
    }
}

#[test]
fn a_gso_run_is_equal_sizes_to_one_destination_with_at_most_a_shorter_last() {
    let a: SocketAddr = "127.0.0.1:1000".parse().unwrap();
    let b: SocketAddr = "127.0.0.1:1001".parse().unwrap();
    assert_eq!(gso_run::<Outbound>(&[]), 0);
    assert_eq!(gso_run(&[dg(a, 100, 0)]), 1);
    // A shorter one ends the run, included.
    let run = [dg(a, 100, 0), dg(a, 100, 0), dg(a, 60, 0), dg(a, 100, 0)];
    assert_eq!(gso_run(&run), 3);
    // A longer one, another destination, an empty datagram: not included.
    assert_eq!(gso_run(&[dg(a, 100, 0), dg(a, 100, 0), dg(a, 101, 0)]), 2);
    assert_eq!(gso_run(&[dg(a, 100, 0), dg(b, 100, 0)]), 1);
    assert_eq!(gso_run(&[dg(a, 10, 0), dg(a, 0, 0)]), 1);
    assert_eq!(gso_run(&[dg(a, 0, 0), dg(a, 0, 0)]), 1);
    // The kernel's bounds: 64 segments, one UDP payload.
    assert_eq!(gso_run(&vec![dg(a, 10, 0); 100]), GSO_MAX_SEGMENTS);
    assert_eq!(gso_run(&vec![dg(a, 1400, 0); 60]), MAX_UDP_PAYLOAD / 1400);
}

/// A batch of runs and single datagrams: 40 of 1,228 octets, one of 700, 5 of 300, one of 1,228
/// (longer: a new run), each with its own fill octet.
fn mixed_batch(to: SocketAddr) -> Vec<Outbound> {
    let sizes = std::iter::repeat_n(1228, 40)
        .chain([700])
        .chain(std::iter::repeat_n(300, 5))
        .chain([1228]);
    sizes
        .enumerate()
        .map(|(i, len)| dg(to, len, i as u8))
        .collect()
}

#[tokio::test(flavor = "current_thread")]
async fn a_gso_send_reaches_a_plain_receiver_as_the_same_datagrams_in_order() {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let batch = mixed_batch(rx.local_addr().unwrap());
    let mut gso = Gso::new();
    let outcome = send_batch_gso(&socket, &batch, &mut gso).await;
    assert_eq!((outcome.sent, outcome.failed), (batch.len(), 0));
    // Either the kernel took the runs, or it refused the first once and GSO is off.
    assert_eq!(outcome.gso_refused, usize::from(!gso.is_on()));
    #[cfg(target_os = "linux")]
    assert!(gso.is_on(), "Linux on loopback takes UDP_SEGMENT");
    let mut buf = vec![0u8; 65_536];
    for (i, want) in batch.iter().enumerate() {
        let n = rx
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("datagram {i}: {e}"));
        assert_eq!(&buf[..n], &want.bytes[..], "datagram {i}");
    }
    rx.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(rx.recv(&mut buf).is_err(), "nothing more");
}

#[tokio::test(flavor = "current_thread")]
async fn gso_off_sends_one_datagram_per_packet() {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let batch = mixed_batch(rx.local_addr().unwrap());
    let mut gso = Gso::off();
    let outcome = send_batch_gso(&socket, &batch, &mut gso).await;
    assert_eq!(
        (outcome.sent, outcome.failed, outcome.gso_refused),
        (batch.len(), 0, 0)
    );
    let mut buf = vec![0u8; 65_536];
    for want in &batch {
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], &want.bytes[..]);
    }
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "current_thread")]
async fn a_gro_read_splits_a_coalesced_run_into_its_datagrams_and_flags_long_ones() {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let to = socket.local_addr().unwrap();
    let mut batch = RecvBatch::with_gro(&socket, 4, 150);
    assert!(batch.gro(), "Linux takes UDP_GRO");
    let tx = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // A run of ten 100-octet datagrams and a 40-octet one, then a 200-octet one on its own.
    let mut sent: Vec<Outbound> = (0..10).map(|i| dg(to, 100, i)).collect();
    sent.push(dg(to, 40, 10));
    let mut gso = Gso::new();
    let outcome = send_batch_gso(&tx, &sent, &mut gso).await;
    assert_eq!(outcome.sent, 11);
    assert!(gso.is_on());
    tx.send_to(&[0xee; 200], to).await.unwrap();
    let mut got: Vec<(Vec<u8>, bool)> = Vec::new();
    let mut reads = 0;
    while got.len() < 12 {
        tokio::time::timeout(Duration::from_secs(5), batch.recv(&socket))
            .await
            .expect("datagrams arrive")
            .unwrap();
        reads += 1;
        got.extend(batch.iter().map(|r| (r.bytes.to_vec(), r.truncated)));
    }
    let mut want: Vec<(Vec<u8>, bool)> = sent.iter().map(|d| (d.bytes.clone(), false)).collect();
    // Over the limit of 150: cut to it and flagged.
    want.push((vec![0xee; 150], true));
    assert_eq!(got, want);
    // The run arrived as one coalesced slot (at most two reads for both sends).
    assert!(reads <= 2, "{reads} reads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gso_run_into_the_driver_is_protected_and_forwarded_in_order() {
    let n = 100u16;
    let burst: Vec<Vec<u8>> = (0..n).map(|i| rtp(3000 + i, SSRC)).collect();
    let d = driver_after(&[]).await;
    let tx = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let out: Vec<Outbound> = burst
        .iter()
        .map(|p| Outbound {
            to: d.input,
            bytes: p.clone(),
        })
        .collect();
    let mut gso = Gso::new();
    let sent = send_batch_gso(&tx, &out, &mut gso).await;
    assert_eq!(sent.sent, usize::from(n));
    let _rx = receive_in_order(d.rx, burst).await;
    let m = &d.metrics;
    assert_eq!(m.media_packets_in.get(), u64::from(n));
    assert_eq!(m.media_packets_sent.get(), u64::from(n));
    assert_eq!(m.media_send_errors.get(), 0);
    assert_eq!(m.media_gso_refused.get(), 0);
    let _ = d.stop.send(());
    d.task.await.expect("driver stops cleanly");
}

/// A media client on this host that never asked for GRO (as GStreamer's `udpsrc`) gets a GSO
/// run sent to a multicast group as the separate datagrams (the driver's multicast settings:
/// TTL 1, interface 127.0.0.1, loopback on).
#[tokio::test(flavor = "current_thread")]
async fn a_gso_run_to_a_multicast_group_reaches_a_joined_plain_receiver_as_datagrams() {
    use mbms_keys::bmsc::config::MulticastInterface;
    use mbms_keys::bmsc::media::driver::set_multicast;

    let group = mbms_lab::multicast::free_group();
    let rx = mbms_lab::multicast::join_group(group);
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let socket = tokio::net::UdpSocket::bind("0.0.0.0:0").await.unwrap();
    let m = MulticastConfig {
        ttl: 1,
        interface: Some(MulticastInterface::V4(std::net::Ipv4Addr::LOCALHOST)),
    };
    set_multicast(&socket, (*group.ip()).into(), &m).unwrap();
    let batch = mixed_batch(SocketAddr::V4(group));
    let mut gso = Gso::new();
    let outcome = send_batch_gso(&socket, &batch, &mut gso).await;
    assert_eq!((outcome.sent, outcome.failed), (batch.len(), 0));
    assert_eq!(outcome.gso_refused, usize::from(!gso.is_on()));
    let mut buf = vec![0u8; 65_536];
    for (i, want) in batch.iter().enumerate() {
        let n = rx
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("datagram {i}: {e}"));
        assert_eq!(&buf[..n], &want.bytes[..], "datagram {i}");
    }
}
