//! `mbms-lab bench srtp`: the BM-SC's SRTP sender (AES_CM_128_HMAC_SHA1_80, MKI on the wire,
//! 1,200-octet payloads by default), medians of several runs:
//!
//! 1. the bare protect rate of [`Protector::protect`] on one core;
//! 2. libsrtp2's rate through GStreamer's `srtpenc` on the same packets, same key and MKI, in
//!    the same run: `filesrc ! rtpstreamdepay ! srtpenc ! fakesink` over a file of RFC 4571
//!    framed packets (2-octet length ‖ packet), timed whole, minus the same pipeline with
//!    `identity` in place of `srtpenc` — what is left is `srtpenc`'s own cost;
//! 3. end to end through the BM-SC's media driver itself ([`run_media`], started standalone
//!    with its key already offered): plain RTP sent on loopback UDP to its `rtp_input`, SRTP
//!    received from its `media_destination`. At full offered load (a sender thread as fast as
//!    it can) the delivered rate; at a fixed offered rate the latency the path adds, from the
//!    RTP timestamp the sender stamps (microseconds since the start, in the header, which SRTP
//!    leaves in the clear) to the SRTP packet's arrival. A plain relay on the same runtime (the
//!    same receive/send loop without protection, batched the same way: up to
//!    [`MEDIA_BATCH`] datagrams per `recvmmsg` and per `sendmmsg`) is measured beside it.
//!
//! The load generator shares the two cores with the path it measures, so at full load its
//! sender thread sends `--io-batch` packets per `sendmmsg(2)` call and its receiver thread
//! reads up to as many per `recvmmsg(2)` call (default 32; `--io-batch 1` is one system call
//! per packet, as the bench did before the driver batched). The fixed-rate (latency) runs send
//! and receive one packet per call, whatever `--io-batch`, so each arrival has its own time.
//!
//! With `--offload true` (the default) the generator's full-load sender sends each batch as one
//! `UDP_SEGMENT` (GSO) send, its receiver reads with `UDP_GRO` on, and the driver
//! (`udp_offload = true`) and the plain relay use the GSO/GRO path of `bmsc::mmsg`;
//! `--offload false` measures all of them without (one datagram per slot and per send).

use std::hint::black_box;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use mbms_keys::bmsc::config::{MulticastConfig, SrtpSenderConfig, SrtpSuite};
use mbms_keys::bmsc::distribution::{CurrentMtks, MediaKey};
use mbms_keys::bmsc::media::driver::{MEDIA_BATCH, MediaSockets, run_media};
use mbms_keys::bmsc::media::{MAX_RTP_PACKET, Protector};
use mbms_keys::bmsc::metrics::Metrics;
use mbms_keys::bmsc::mmsg::{
    GSO_MAX_SEGMENTS, Gso, MAX_UDP_PAYLOAD, Outbound, RecvBatch, send_batch_gso,
};
use mbms_keys::crypto::{Mtk, Salt};
use mbms_keys::mbms::profile::srtp_mki;
use mbms_keys::mikey::{MskId, MtkId};
use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage, setsockopt,
    sockopt,
};

use crate::{TempDir, find_on_path};

const SSRC: u32 = 0x1122_3344;
const SOCKET_BUFFER: usize = 8 << 20;
const SERVICE: &str = "bench-srtp";

#[derive(Args)]
pub struct SrtpArgs {
    /// RTP payload octets per packet (the RTP header adds 12).
    #[arg(long, default_value_t = 1200)]
    payload: usize,
    /// Packets protected per run by the `Protector` alone.
    #[arg(long, default_value_t = 500_000)]
    packets: u32,
    /// Packets per run through GStreamer's `srtpenc` (and its `identity` baseline).
    #[arg(long, default_value_t = 200_000)]
    gst_packets: u32,
    /// Packets sent per run at full offered load through the media driver.
    #[arg(long, default_value_t = 500_000)]
    e2e_packets: u32,
    /// The fixed offered rate of the latency runs, packets per second.
    #[arg(long, default_value_t = 10_000)]
    rate: u32,
    /// Seconds of each latency run.
    #[arg(long, default_value_t = 5)]
    rate_seconds: u32,
    /// Runs; the median is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Packets per system call of the load generator at full load (its sender's `sendmmsg`,
    /// its receiver's `recvmmsg`) and of the plain relay; 1: one call per packet.
    #[arg(long, default_value_t = 32)]
    io_batch: usize,
    /// UDP segmentation offloads at full load: the generator's sender sends each batch as one
    /// `UDP_SEGMENT` send, its receiver, the driver and the plain relay read with `UDP_GRO`, the
    /// driver and the relay send with GSO; `false`: one datagram per slot and per send.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    offload: bool,
}

fn key() -> MediaKey {
    MediaKey {
        msk_id: MskId::new(1, 2),
        mtk_id: MtkId(3),
        mtk: Mtk::from_bytes([0x5a; 16]),
        salt: Salt::from_bytes([0xc3; 14]),
        sent: 2,
    }
}

fn sender_config(rtp_input: SocketAddr, media_destination: SocketAddr) -> SrtpSenderConfig {
    SrtpSenderConfig {
        rtp_input,
        media_destination,
        suite: SrtpSuite::AesCm128HmacSha1_80,
        mki: true,
        key_lead: 1,
        udp_offload: true,
    }
}

fn protector(cfg: &SrtpSenderConfig) -> Protector {
    let mut p = Protector::new(SSRC, 0, cfg);
    let taken = p.offer_key(&key());
    assert!(matches!(taken, Ok(true)), "the key is taken: {taken:?}");
    p
}

/// An RTP packet (version 2, PT 96, the bench's SSRC) with `payload` octets.
fn rtp_packet(payload: usize) -> Vec<u8> {
    let mut p = vec![0x80, 96, 0, 0, 0, 0, 0, 0];
    p.extend_from_slice(&SSRC.to_be_bytes());
    p.extend((0..payload).map(|i| (i * 7) as u8));
    p
}

fn set_header(p: &mut [u8], seq: u16, timestamp: u32) {
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&timestamp.to_be_bytes());
}

/// Packets per second of `Protector::protect` over `n` packets.
fn protect_loop(payload: usize, n: u32) -> f64 {
    let cfg = sender_config(
        "127.0.0.1:1".parse().expect("address"),
        "127.0.0.1:2".parse().expect("address"),
    );
    let mut p = protector(&cfg);
    let mut packet = rtp_packet(payload);
    let mut out = Vec::with_capacity(payload + 64);
    let start = Instant::now();
    for i in 0..n {
        set_header(&mut packet, i as u16, i.wrapping_mul(160));
        let r = p.protect(black_box(&packet), &mut out);
        debug_assert!(r.is_ok());
        black_box(&out);
    }
    f64::from(n) / start.elapsed().as_secs_f64()
}

/// The GStreamer pipeline over `file`, `element` between the depayloader and the sink; its wall
/// time, or why it failed.
fn gst_time(gst: &Path, file: &Path, element: &[String]) -> Result<Duration, String> {
    let start = Instant::now();
    let out = Command::new(gst)
        .arg("-q")
        .arg("filesrc")
        .arg(format!("location={}", file.display()))
        .args(["!", "application/x-rtp-stream", "!", "rtpstreamdepay", "!"])
        .arg("application/x-rtp,media=audio,clock-rate=8000,encoding-name=L16,payload=96")
        .arg("!")
        .args(element)
        .args(["!", "fakesink"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| e.to_string())?;
    let elapsed = start.elapsed();
    if out.status.success() {
        Ok(elapsed)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// `srtpenc`'s packets per second over runs (median of the per-run differences), or why it was
/// not measured.
fn gst_rate(payload: usize, n: u32, runs: usize) -> Result<f64, String> {
    let gst = find_on_path("gst-launch-1.0").ok_or("gst-launch-1.0 not on PATH")?;
    let dir = TempDir::try_new("bench-srtp").map_err(|e| e.to_string())?;
    let file = dir.path().join("rtp-4571.bin");
    let mut bytes = Vec::with_capacity((payload + 14) * n as usize);
    let mut packet = rtp_packet(payload);
    let len = u16::try_from(packet.len()).map_err(|_| "payload too large for RFC 4571")?;
    for i in 0..n {
        set_header(&mut packet, i as u16, i.wrapping_mul(160));
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.extend_from_slice(&packet);
    }
    std::fs::write(&file, &bytes).map_err(|e| e.to_string())?;
    drop(bytes);
    let k = key();
    let mut key_salt = k.mtk.as_bytes().to_vec();
    key_salt.extend_from_slice(k.salt.as_bytes());
    let srtpenc = vec![
        "srtpenc".to_owned(),
        format!("key={}", hex::encode(key_salt)),
        format!("mki={}", hex::encode(srtp_mki(k.msk_id, k.mtk_id))),
        "rtp-cipher=aes-128-icm".to_owned(),
        "rtp-auth=hmac-sha1-80".to_owned(),
    ];
    let identity = vec!["identity".to_owned()];
    // Warm-up (page cache, plugin registry).
    gst_time(&gst, &file, &identity)?;
    gst_time(&gst, &file, &srtpenc).map_err(|e| format!("srtpenc: {e}"))?;
    let mut diffs = Vec::with_capacity(runs);
    for _ in 0..runs {
        let base = gst_time(&gst, &file, &identity)?;
        let enc = gst_time(&gst, &file, &srtpenc)?;
        diffs.push(enc.as_secs_f64() - base.as_secs_f64());
    }
    let d = crate::median(diffs).unwrap_or_default();
    if d <= 0.0 {
        return Err("srtpenc's time is within the baseline's noise".to_owned());
    }
    Ok(f64::from(n) / d)
}

fn big_buffers<S: std::os::fd::AsFd>(s: &S) {
    if setsockopt(s, sockopt::RcvBufForce, &SOCKET_BUFFER).is_err() {
        let _ = setsockopt(s, sockopt::RcvBuf, &SOCKET_BUFFER);
    }
    if setsockopt(s, sockopt::SndBufForce, &SOCKET_BUFFER).is_err() {
        let _ = setsockopt(s, sockopt::SndBuf, &SOCKET_BUFFER);
    }
}

/// What came out of the path in one run.
struct Received {
    count: u64,
    /// Between the first and the last packet received.
    span: Duration,
    /// Per packet, microseconds from the sender's stamp to arrival.
    latency_us: Vec<u32>,
}

/// Receives until `idle` passes without a packet once `done` is set; `batch` packets per call
/// when no latency is kept.
fn receive(
    sock: &UdpSocket,
    base: Instant,
    done: &AtomicBool,
    keep_latency: bool,
    batch: usize,
    offload: bool,
) -> Received {
    let _ = sock.set_read_timeout(Some(Duration::from_millis(300)));
    if !keep_latency && batch > 1 {
        return receive_batched(sock, done, batch, offload);
    }
    let mut buf = [0u8; 2048];
    let (mut count, mut first, mut last) = (0u64, None, None);
    let mut latency_us = Vec::new();
    loop {
        match sock.recv(&mut buf) {
            Ok(n) => {
                let now = Instant::now();
                count += 1;
                first.get_or_insert(now);
                last = Some(now);
                if keep_latency && n >= 8 {
                    let sent = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
                    let at = now.duration_since(base).as_micros() as u32;
                    latency_us.push(at.wrapping_sub(sent));
                }
            }
            Err(_) if done.load(Ordering::Acquire) => break,
            Err(_) => {}
        }
    }
    let span = match (first, last) {
        (Some(a), Some(b)) => b.duration_since(a),
        _ => Duration::ZERO,
    };
    Received {
        count,
        span,
        latency_us,
    }
}

/// [`receive`] with up to `batch` packets per `recvmmsg(2)` call (`MSG_WAITFORONE`: it waits
/// for the first only); no latency kept. With `offload`, `UDP_GRO` on (if the kernel takes it)
/// and each slot counted as as many packets as its segments.
fn receive_batched(sock: &UdpSocket, done: &AtomicBool, batch: usize, offload: bool) -> Received {
    use std::io::IoSliceMut;
    use std::os::fd::AsRawFd;

    let gro = offload && setsockopt(sock, sockopt::UdpGroSegment, &true).is_ok();
    let size = if gro { MAX_UDP_PAYLOAD } else { 2048 };
    let mut bufs = vec![vec![0u8; size]; batch];
    let (mut count, mut first, mut last) = (0u64, None, None);
    loop {
        let mut slices: Vec<[IoSliceMut<'_>; 1]> =
            bufs.iter_mut().map(|b| [IoSliceMut::new(b)]).collect();
        let mut headers =
            MultiHeaders::<SockaddrStorage>::preallocate(batch, gro.then(|| nix::cmsg_space!(i32)));
        let got = nix::sys::socket::recvmmsg(
            sock.as_raw_fd(),
            &mut headers,
            slices.iter_mut(),
            MsgFlags::MSG_WAITFORONE,
            None,
        )
        .map(|msgs| {
            msgs.map(|m| {
                let segment = m
                    .cmsgs()
                    .ok()
                    .and_then(|mut c| {
                        c.find_map(|x| match x {
                            ControlMessageOwned::UdpGroSegments(s) => usize::try_from(s).ok(),
                            _ => None,
                        })
                    })
                    .filter(|&s| s > 0);
                segment.map_or(1, |s| m.bytes.div_ceil(s).max(1))
            })
            .sum::<usize>()
        });
        match got {
            Ok(n) if n > 0 => {
                let now = Instant::now();
                count += n as u64;
                first.get_or_insert(now);
                last = Some(now);
            }
            _ if done.load(Ordering::Acquire) => break,
            _ => {}
        }
    }
    let span = match (first, last) {
        (Some(a), Some(b)) => b.duration_since(a),
        _ => Duration::ZERO,
    };
    Received {
        count,
        span,
        latency_us: Vec::new(),
    }
}

/// Sends `n` packets to `to`, as fast as possible when `rate` is `None` (`batch` per
/// `sendmmsg(2)` call), else paced one per call; each stamped with microseconds since `base`
/// in its RTP timestamp. Returns the send duration.
fn send(
    to: SocketAddr,
    payload: usize,
    n: u64,
    rate: Option<u32>,
    base: Instant,
    batch: usize,
    offload: bool,
) -> Duration {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("sender socket");
    big_buffers(&sock);
    sock.connect(to).expect("connect");
    if rate.is_none() && batch > 1 {
        return send_batched(&sock, payload, n, base, batch, offload);
    }
    let mut packet = rtp_packet(payload);
    let start = Instant::now();
    for i in 0..n {
        if let Some(r) = rate {
            let due = start + Duration::from_secs_f64(i as f64 / f64::from(r));
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        let stamp = Instant::now().duration_since(base).as_micros() as u32;
        set_header(&mut packet, i as u16, stamp);
        let _ = sock.send(&packet);
    }
    start.elapsed()
}

/// [`send`] at full load, `batch` packets per `sendmmsg(2)` call on the connected `sock`; with
/// `offload`, per `UDP_SEGMENT` send (at most 64 segments, 65,507 octets), falling back to
/// `sendmmsg` if the kernel refuses.
fn send_batched(
    sock: &UdpSocket,
    payload: usize,
    n: u64,
    base: Instant,
    batch: usize,
    offload: bool,
) -> Duration {
    use std::io::IoSlice;
    use std::os::fd::AsRawFd;

    let size = rtp_packet(payload).len();
    let mut gso = offload && size <= MAX_UDP_PAYLOAD / 2;
    let batch = if gso {
        batch.min(GSO_MAX_SEGMENTS).min(MAX_UDP_PAYLOAD / size)
    } else {
        batch
    };
    let segment = u16::try_from(size).unwrap_or(u16::MAX);
    let mut packets = vec![rtp_packet(payload); batch];
    let to: Vec<Option<SockaddrStorage>> = vec![None; batch];
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(batch, None);
    let start = Instant::now();
    let mut i = 0u64;
    while i < n {
        let k = usize::try_from(n - i).map_or(batch, |left| left.min(batch));
        let stamp = Instant::now().duration_since(base).as_micros() as u32;
        for (j, p) in packets[..k].iter_mut().enumerate() {
            set_header(p, (i + j as u64) as u16, stamp);
        }
        if gso {
            let iov: Vec<IoSlice<'_>> = packets[..k].iter().map(|p| IoSlice::new(p)).collect();
            let cmsg = [ControlMessage::UdpGsoSegments(&segment)];
            match nix::sys::socket::sendmsg::<SockaddrStorage>(
                sock.as_raw_fd(),
                &iov,
                &cmsg,
                MsgFlags::empty(),
                None,
            ) {
                Ok(_) => {
                    i += k as u64;
                    continue;
                }
                Err(nix::errno::Errno::ENOBUFS | nix::errno::Errno::EAGAIN) => {
                    // As `sendmmsg` below: the batch counts as sent and lost.
                    i += k as u64;
                    continue;
                }
                Err(e) => {
                    eprintln!("note: UDP_SEGMENT refused ({e}), the sender goes on with sendmmsg");
                    gso = false;
                }
            }
        }
        let slices: Vec<[IoSlice<'_>; 1]> =
            packets[..k].iter().map(|p| [IoSlice::new(p)]).collect();
        let sent = nix::sys::socket::sendmmsg(
            sock.as_raw_fd(),
            &mut headers,
            &slices,
            &to[..k],
            [],
            MsgFlags::empty(),
        )
        .map(Iterator::count);
        // A datagram the kernel refused counts as sent and lost, as `send` does.
        i += match sent {
            Ok(c) if c > 0 => c as u64,
            _ => 1,
        };
    }
    start.elapsed()
}

/// Which loop sits between the two sockets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Loop {
    /// The BM-SC's media driver, protecting.
    Driver,
    /// The same receive/send loop, no protection.
    Relay,
}

/// One run: the path started on `rt`, `n` packets sent (paced at `rate` or at full speed).
/// Returns the offered packets/s and what the receiver got.
fn e2e_run(
    rt: &tokio::runtime::Runtime,
    path: Loop,
    payload: usize,
    n: u64,
    rate: Option<u32>,
    batch: usize,
    offload: bool,
) -> Result<(f64, Received), String> {
    let out = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    big_buffers(&out);
    let dest = out.local_addr().map_err(|e| e.to_string())?;
    let input: SocketAddr = SocketAddr::from(([127, 0, 0, 1], crate::free_port()));
    let mut cfg = sender_config(input, dest);
    cfg.udp_offload = offload;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = match path {
        Loop::Driver => {
            let sockets = rt
                .block_on(MediaSockets::bind(&cfg, &MulticastConfig::default()))
                .map_err(|e| format!("binding the media sockets: {e}"))?;
            big_buffers(&sockets.input);
            big_buffers(&sockets.output);
            rt.spawn(run_media(
                SERVICE.to_owned(),
                protector(&cfg),
                cfg.clone(),
                sockets,
                CurrentMtks::default(),
                Arc::new(Metrics::default()),
                async move {
                    let _ = stop_rx.await;
                },
            ))
        }
        Loop::Relay => {
            let (i, o) = rt
                .block_on(async {
                    let i = tokio::net::UdpSocket::bind(input).await?;
                    let o = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
                    Ok::<_, std::io::Error>((i, o))
                })
                .map_err(|e| e.to_string())?;
            big_buffers(&i);
            big_buffers(&o);
            // As the driver: a batch read, each datagram copied to a reused buffer, the batch
            // sent (only the protection left out).
            let slots = if batch > 1 { MEDIA_BATCH } else { 1 };
            rt.spawn(async move {
                let mut input = if offload {
                    RecvBatch::with_gro(&i, slots, MAX_RTP_PACKET)
                } else {
                    RecvBatch::new(slots, MAX_RTP_PACKET + 1)
                };
                let mut gso = if offload { Gso::new() } else { Gso::off() };
                let mut output: Vec<Outbound> = (0..slots)
                    .map(|_| Outbound {
                        to: dest,
                        bytes: Vec::with_capacity(1600),
                    })
                    .collect();
                let stop = async move {
                    let _ = stop_rx.await;
                };
                tokio::pin!(stop);
                loop {
                    let r = tokio::select! {
                        () = &mut stop => return,
                        r = input.recv(&i) => r,
                    };
                    if r.is_err() {
                        continue;
                    }
                    let mut ready = 0;
                    for packet in input.iter() {
                        if ready == output.len() {
                            let _ = send_batch_gso(&o, &output, &mut gso).await;
                            ready = 0;
                        }
                        let slot = &mut output[ready];
                        slot.bytes.clear();
                        slot.bytes.extend_from_slice(packet.bytes);
                        ready += 1;
                    }
                    let _ = send_batch_gso(&o, &output[..ready], &mut gso).await;
                }
            })
        }
    };
    let base = Instant::now();
    let done = AtomicBool::new(false);
    let (sent_for, received) = std::thread::scope(|s| {
        let rx = s.spawn(|| receive(&out, base, &done, rate.is_some(), batch, offload));
        let sent_for = send(input, payload, n, rate, base, batch, offload);
        done.store(true, Ordering::Release);
        (sent_for, rx.join().expect("receiver"))
    });
    let _ = stop_tx.send(());
    let _ = rt.block_on(task);
    Ok((n as f64 / sent_for.as_secs_f64(), received))
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[i])
}

/// One row of the end-to-end table: medians over runs.
struct E2e {
    offered: f64,
    delivered: f64,
    lost: f64,
    p50_us: f64,
    p99_us: f64,
}

fn e2e(
    rt: &tokio::runtime::Runtime,
    path: Loop,
    payload: usize,
    n: u64,
    rate: Option<u32>,
    runs: usize,
    (batch, offload): (usize, bool),
) -> Result<E2e, String> {
    let (mut offered, mut delivered, mut lost, mut p50, mut p99) =
        (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..runs {
        let (o, mut r) = e2e_run(rt, path, payload, n, rate, batch, offload)?;
        offered.push(o);
        let rate_in = if r.count > 1 {
            (r.count - 1) as f64 / r.span.as_secs_f64()
        } else {
            0.0
        };
        delivered.push(rate_in);
        lost.push(n.saturating_sub(r.count) as f64 / n as f64);
        r.latency_us.sort_unstable();
        p50.push(percentile(&r.latency_us, 0.50));
        p99.push(percentile(&r.latency_us, 0.99));
    }
    let m = |v: Vec<f64>| crate::median(v).unwrap_or(f64::NAN);
    Ok(E2e {
        offered: m(offered),
        delivered: m(delivered),
        lost: m(lost),
        p50_us: m(p50),
        p99_us: m(p99),
    })
}

fn thousands(x: f64) -> String {
    let s = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn run(args: SrtpArgs) -> ExitCode {
    let runs = args.runs.max(1);
    let payload = args.payload.min(65_000);
    let n = args.packets.max(1);

    // (1) The protect step alone.
    let _ = protect_loop(payload, n / 10 + 1);
    let ours = crate::median(
        (0..runs)
            .map(|_| protect_loop(payload, n))
            .collect::<Vec<_>>(),
    )
    .unwrap_or_default();
    // (2) libsrtp2 through srtpenc, in the same run.
    let theirs = gst_rate(payload, args.gst_packets.max(1), runs);

    let mb = |pps: f64| pps * payload as f64 / 1e6;
    println!(
        "| SRTP protect, AES_CM_128_HMAC_SHA1_80, MKI on, {payload}-octet payloads, one core | packets per run | packets/s | payload MB/s | µs/packet |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| mbms-keys `Protector::protect` (libsrtp crate) | {n} | {} | {:.1} | {:.2} |",
        thousands(ours),
        mb(ours),
        1e6 / ours
    );
    match &theirs {
        Ok(r) => println!(
            "| libsrtp2 via GStreamer `srtpenc` (pipeline − `identity` baseline) | {} | {} | {:.1} | {:.2} |",
            args.gst_packets.max(1),
            thousands(*r),
            mb(*r),
            1e6 / r
        ),
        Err(e) => println!(
            "| libsrtp2 via GStreamer `srtpenc` | not measured | not measured | not measured | not measured ({e}) |"
        ),
    }
    match &theirs {
        Ok(r) => println!("\nProtect rate, ours / libsrtp2: {:.2}", ours / r),
        Err(_) => println!("\nProtect rate, ours / libsrtp2: not measured"),
    }

    // (3) End to end through the media driver.
    let rt = match crate::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let e2e_n = u64::from(args.e2e_packets.max(1));
    let io_batch = args.io_batch.clamp(1, 1024);
    let rate = args.rate.max(1);
    let paced_n = u64::from(rate) * u64::from(args.rate_seconds.max(1));
    println!();
    println!(
        "| end to end on loopback UDP, RTP in → SRTP out | offered packets/s | delivered packets/s | lost | latency p50 µs | latency p99 µs |"
    );
    println!("|---|---|---|---|---|---|");
    for (path, name) in [
        (Loop::Driver, "BM-SC media driver (`run_media`)"),
        (Loop::Relay, "plain relay, same runtime, no protection"),
    ] {
        for (count, r, load) in [
            (e2e_n, None, "full load"),
            (paced_n, Some(rate), "fixed rate"),
        ] {
            match e2e(&rt, path, payload, count, r, runs, (io_batch, args.offload)) {
                Ok(m) => println!(
                    "| {name}, {load} | {} | {} | {:.2}% | {} | {} |",
                    thousands(m.offered),
                    thousands(m.delivered),
                    m.lost * 100.0,
                    if r.is_some() {
                        format!("{:.0}", m.p50_us)
                    } else {
                        "—".to_owned()
                    },
                    if r.is_some() {
                        format!("{:.0}", m.p99_us)
                    } else {
                        "—".to_owned()
                    },
                ),
                Err(e) => {
                    eprintln!("error: {name}: {e}");
                    return ExitCode::from(1);
                }
            }
        }
    }
    println!(
        "\n({runs} runs, medians; full load: {e2e_n} packets sent as fast as one thread can, {io_batch} per system call, UDP offloads in the generator and the relay {}; fixed rate: {paced_n} packets at {rate}/s, one per call; latency from the RTP timestamp the sender stamps to arrival, both on this host)",
        if args.offload { "on" } else { "off" }
    );
    ExitCode::SUCCESS
}
