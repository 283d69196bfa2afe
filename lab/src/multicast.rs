//! IPv4 multicast on loopback for the tests: both sides must name 127.0.0.1 (the receiver in
//! its membership, the sender as its multicast interface), see docs/oracles.md.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};

/// An IPv4 multicast group and port of its own for each call (the port from [`crate::free_port`],
/// the group's last two octets from the port).
pub fn free_group() -> SocketAddrV4 {
    let port = crate::free_port();
    let [hi, lo] = port.to_be_bytes();
    SocketAddrV4::new(Ipv4Addr::new(239, 255, hi, lo), port)
}

/// A socket bound to `group` (shared: SO_REUSEADDR) and joined with 127.0.0.1; panics if it
/// cannot be made.
pub fn join_group(group: SocketAddrV4) -> UdpSocket {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)
        .unwrap_or_else(|e| panic!("socket: {e}"));
    s.set_reuse_address(true)
        .unwrap_or_else(|e| panic!("SO_REUSEADDR: {e}"));
    s.bind(&SocketAddr::V4(group).into())
        .unwrap_or_else(|e| panic!("bind {group}: {e}"));
    let s: UdpSocket = s.into();
    s.join_multicast_v4(group.ip(), &Ipv4Addr::LOCALHOST)
        .unwrap_or_else(|e| panic!("join {group}: {e}"));
    s
}

/// Datagrams received on a socket, with their arrival, until stopped (a thread reads them).
pub struct Capture {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(std::time::Instant, Vec<u8>)>>,
}

impl Capture {
    /// Starts reading `socket`.
    pub fn start(socket: UdpSocket) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        socket
            .set_read_timeout(Some(std::time::Duration::from_millis(50)))
            .unwrap_or_else(|e| panic!("read timeout: {e}"));
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut buf = [0u8; 2048];
            while !flag.load(Ordering::Relaxed) {
                if let Ok(n) = socket.recv(&mut buf) {
                    got.push((
                        std::time::Instant::now(),
                        buf.get(..n).unwrap_or_default().to_vec(),
                    ));
                }
            }
            got
        });
        Self { stop, thread }
    }

    /// Stops reading; the datagrams in arrival order.
    pub fn finish(self) -> Vec<(std::time::Instant, Vec<u8>)> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread
            .join()
            .unwrap_or_else(|_| panic!("capture thread panicked"))
    }
}

/// The tests' plain RTP source: `gst` (gst-launch-1.0) sending `buffers` 20 ms packets of L16
/// white noise with SSRC `ssrc`, the sequence number starting at 65400 so that it wraps within
/// a few seconds, to `127.0.0.1:rtp_port` and, through a tee, the same packets to
/// `127.0.0.1:plain_port` (what was sent, to compare with what is decrypted).
pub fn l16_sender(
    gst: impl AsRef<std::ffi::OsStr>,
    buffers: usize,
    ssrc: u32,
    rtp_port: u16,
    plain_port: u16,
) -> std::process::Command {
    let mut c = std::process::Command::new(gst);
    c.args(["-q", "audiotestsrc", "is-live=true", "wave=white-noise"])
        .args(["samplesperbuffer=160", &format!("num-buffers={buffers}")])
        .args(["!", "audio/x-raw,format=S16BE,rate=8000,channels=1"])
        .args(["!", "rtpL16pay", "pt=96", &format!("ssrc={ssrc}")])
        .args([
            "seqnum-offset=65400",
            "min-ptime=20000000",
            "max-ptime=20000000",
        ])
        .args(["!", "tee", "name=t"])
        .args(["!", "queue", "!", "udpsink", "host=127.0.0.1"])
        .args([&format!("port={rtp_port}"), "sync=false"])
        .args(["t.", "!", "queue", "!", "udpsink", "host=127.0.0.1"])
        .args([&format!("port={plain_port}"), "sync=false"]);
    c
}
