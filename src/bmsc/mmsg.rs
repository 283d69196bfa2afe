//! Batched UDP I/O for the BM-SC's drivers: on Linux one `sendmmsg(2)` call sends up to
//! [`SENDMMSG_CHUNK`] datagrams and one `recvmmsg(2)` call reads up to a [`RecvBatch`]'s
//! slots; elsewhere one `send_to` / `recv_from` per datagram. The Key Distribution driver
//! (`udp.rs`) sends its fan-outs with it; the media driver (`media/driver.rs`) reads its
//! `rtp_input` and sends the protected packets with it.
//!
//! The media driver also uses the kernel's UDP segmentation offloads where Linux has them:
//! [`send_batch_gso`] sends a run of equal-size datagrams to one destination as one
//! `sendmsg(2)` with `UDP_SEGMENT` (GSO), and a [`RecvBatch::with_gro`] turns `UDP_GRO` on so
//! that one read takes a coalesced run of datagrams, which [`RecvBatch::iter`] splits again.
//! Where the kernel refuses either, the per-datagram path is used and the refusal counted.

use std::io;
use std::net::SocketAddr;

use tokio::net::UdpSocket;

use crate::bmsc::distribution::Datagram;

/// Datagrams per `sendmmsg` call.
pub const SENDMMSG_CHUNK: usize = 256;

/// A datagram to send: where, and its octets.
pub trait Outgoing {
    /// The destination.
    fn to(&self) -> SocketAddr;
    /// The payload.
    fn bytes(&self) -> &[u8];
}

impl Outgoing for Datagram {
    fn to(&self) -> SocketAddr {
        self.to
    }
    fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// A datagram whose buffer its owner reuses from one batch to the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    /// The destination.
    pub to: SocketAddr,
    /// The payload.
    pub bytes: Vec<u8>,
}

impl Outgoing for Outbound {
    fn to(&self) -> SocketAddr {
        self.to
    }
    fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// What became of a batch: datagrams handed to the kernel, datagrams refused by it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendOutcome {
    /// Sent.
    pub sent: usize,
    /// Not sent (each logged at debug level with its destination).
    pub failed: usize,
    /// Segmentation offload sends the kernel refused (each run then sent per datagram).
    pub gso_refused: usize,
}

impl std::ops::AddAssign for SendOutcome {
    fn add_assign(&mut self, o: Self) {
        self.sent += o.sent;
        self.failed += o.failed;
        self.gso_refused += o.gso_refused;
    }
}

/// Largest number of segments in one `UDP_SEGMENT` send (the kernel's `UDP_MAX_SEGMENTS`).
pub const GSO_MAX_SEGMENTS: usize = 64;

/// Largest UDP payload in one send (IPv4: 65,535 − 20 − 8): the bound of a GSO run and the
/// size of a receive slot when GRO is on.
pub const MAX_UDP_PAYLOAD: usize = 65_507;

/// Whether a socket still sends runs with UDP segmentation offload: on until the kernel refuses
/// it once (then off for the rest of the socket's life).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gso {
    on: bool,
}

impl Gso {
    /// On where the system has `UDP_SEGMENT` (Linux), off elsewhere.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            on: cfg!(target_os = "linux"),
        }
    }

    /// Off: every datagram sent on its own (as [`send_batch`]).
    #[must_use]
    pub const fn off() -> Self {
        Self { on: false }
    }

    /// Whether runs are still sent with GSO.
    #[must_use]
    pub const fn is_on(&self) -> bool {
        self.on
    }
}

impl Default for Gso {
    fn default() -> Self {
        Self::new()
    }
}

/// How many datagrams from the start of `batch` can go as one GSO send: the same destination,
/// the same size (the last one may be shorter), at most [`GSO_MAX_SEGMENTS`] and
/// [`MAX_UDP_PAYLOAD`] octets in all. 0 for an empty batch.
#[must_use]
pub fn gso_run<D: Outgoing>(batch: &[D]) -> usize {
    let Some(first) = batch.first() else {
        return 0;
    };
    let (to, size) = (first.to(), first.bytes().len());
    if size == 0 {
        return 1;
    }
    let mut n = 1;
    let mut total = size;
    for d in batch.iter().skip(1) {
        let len = d.bytes().len();
        if n == GSO_MAX_SEGMENTS || d.to() != to || len > size || len == 0 {
            break;
        }
        if total + len > MAX_UDP_PAYLOAD {
            break;
        }
        n += 1;
        total += len;
        if len < size {
            break;
        }
    }
    n
}

/// Sends a batch of datagrams in order, each run of two or more that [`gso_run`] groups as one
/// `sendmsg(2)` with `UDP_SEGMENT` while `gso` is on, the others with [`send_batch`]. The
/// receiver gets the same datagrams either way (the kernel or the interface cuts the run).
///
/// If the kernel refuses a GSO send (`EINVAL`, `EIO`, `EOPNOTSUPP`, `ENOPROTOOPT`: no offload
/// for this route or size), that run is sent per datagram, `gso` is turned off for good and
/// the refusal is counted in [`SendOutcome::gso_refused`] and logged once.
pub async fn send_batch_gso<D: Outgoing>(
    socket: &UdpSocket,
    batch: &[D],
    gso: &mut Gso,
) -> SendOutcome {
    let mut outcome = SendOutcome::default();
    let mut i = 0;
    let mut plain_from = 0;
    while i < batch.len() {
        let rest = batch.get(i..).unwrap_or_default();
        let n = if gso.on { gso_run(rest) } else { 1 };
        if n < 2 {
            i += 1;
            continue;
        }
        if plain_from < i {
            outcome += send_batch(socket, batch.get(plain_from..i).unwrap_or_default()).await;
        }
        let run = rest.get(..n).unwrap_or(rest);
        outcome += send_run(socket, run, gso).await;
        i += n;
        plain_from = i;
    }
    if plain_from < batch.len() {
        outcome += send_batch(socket, batch.get(plain_from..).unwrap_or_default()).await;
    }
    outcome
}

/// One GSO send of `run` (two or more datagrams grouped by [`gso_run`]).
#[cfg(target_os = "linux")]
async fn send_run<D: Outgoing>(socket: &UdpSocket, run: &[D], gso: &mut Gso) -> SendOutcome {
    use nix::errno::Errno;

    let sent = socket
        .async_io(tokio::io::Interest::WRITABLE, || sendmsg_gso(socket, run))
        .await;
    match sent {
        Ok(_) => SendOutcome {
            sent: run.len(),
            ..SendOutcome::default()
        },
        Err(e)
            if [
                Errno::EINVAL,
                Errno::EIO,
                Errno::EOPNOTSUPP,
                Errno::ENOPROTOOPT,
            ]
            .iter()
            .any(|&c| e.raw_os_error() == Some(c as i32)) =>
        {
            gso.on = false;
            if let Some(dg) = run.first() {
                tracing::info!(to = %dg.to(), "UDP segmentation offload refused ({e}): sending one datagram per packet from now on");
            }
            let mut outcome = send_batch(socket, run).await;
            outcome.gso_refused += 1;
            outcome
        }
        Err(e) => {
            if let Some(dg) = run.first() {
                tracing::debug!(to = %dg.to(), "{} datagrams not sent: {e}", run.len());
            }
            SendOutcome {
                failed: run.len(),
                ..SendOutcome::default()
            }
        }
    }
}

/// No `UDP_SEGMENT` here: [`send_batch`].
#[cfg(not(target_os = "linux"))]
async fn send_run<D: Outgoing>(socket: &UdpSocket, run: &[D], gso: &mut Gso) -> SendOutcome {
    gso.on = false;
    send_batch(socket, run).await
}

/// One `sendmsg(2)` of `run` with `UDP_SEGMENT` = the first datagram's size: one iovec per
/// datagram, so nothing is copied.
#[cfg(target_os = "linux")]
fn sendmsg_gso<D: Outgoing>(socket: &UdpSocket, run: &[D]) -> io::Result<usize> {
    use std::io::IoSlice;
    use std::os::fd::AsRawFd;

    use nix::sys::socket::{ControlMessage, MsgFlags, SockaddrStorage};

    let Some(first) = run.first() else {
        return Ok(0);
    };
    let size = u16::try_from(first.bytes().len())
        .map_err(|_| io::Error::from_raw_os_error(nix::errno::Errno::EINVAL as i32))?;
    let slices: Vec<IoSlice<'_>> = run.iter().map(|d| IoSlice::new(d.bytes())).collect();
    let to = SockaddrStorage::from(first.to());
    let cmsgs = [ControlMessage::UdpGsoSegments(&size)];
    Ok(nix::sys::socket::sendmsg(
        socket.as_raw_fd(),
        &slices,
        &cmsgs,
        MsgFlags::empty(),
        Some(&to),
    )?)
}

/// Sends a batch of datagrams, in order: `sendmmsg(2)` in chunks of [`SENDMMSG_CHUNK`].
///
/// `sendmmsg` stops at the first datagram that fails: that one is logged and skipped, and the
/// rest of the batch goes on; a full socket buffer waits for writability.
#[cfg(target_os = "linux")]
pub async fn send_batch<D: Outgoing>(socket: &UdpSocket, batch: &[D]) -> SendOutcome {
    let mut outcome = SendOutcome::default();
    let mut rest = batch;
    while !rest.is_empty() {
        let chunk = rest.get(..rest.len().min(SENDMMSG_CHUNK)).unwrap_or(rest);
        let sent = socket
            .async_io(tokio::io::Interest::WRITABLE, || sendmmsg(socket, chunk))
            .await;
        let skip = match sent {
            Ok(n) if n > 0 => {
                outcome.sent += n;
                n
            }
            Ok(_) => {
                outcome.failed += 1;
                1
            }
            Err(e) => {
                if let Some(dg) = chunk.first() {
                    tracing::debug!(to = %dg.to(), "datagram not sent: {e}");
                }
                outcome.failed += 1;
                1
            }
        };
        rest = rest.get(skip..).unwrap_or_default();
    }
    outcome
}

/// One `sendmmsg(2)` call for `chunk`; how many datagrams left.
#[cfg(target_os = "linux")]
fn sendmmsg<D: Outgoing>(socket: &UdpSocket, chunk: &[D]) -> io::Result<usize> {
    use std::io::IoSlice;
    use std::os::fd::AsRawFd;

    use nix::sys::socket::{ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage};

    let slices: Vec<[IoSlice<'_>; 1]> = chunk.iter().map(|d| [IoSlice::new(d.bytes())]).collect();
    let addrs: Vec<Option<SockaddrStorage>> = chunk
        .iter()
        .map(|d| Some(SockaddrStorage::from(d.to())))
        .collect();
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(chunk.len(), None);
    let cmsgs: [ControlMessage<'_>; 0] = [];
    let results = nix::sys::socket::sendmmsg(
        socket.as_raw_fd(),
        &mut headers,
        &slices,
        &addrs,
        cmsgs,
        MsgFlags::empty(),
    )?;
    Ok(results.count())
}

/// Sends a batch of datagrams, one `send_to` each (no `sendmmsg` here).
#[cfg(not(target_os = "linux"))]
pub async fn send_batch<D: Outgoing>(socket: &UdpSocket, batch: &[D]) -> SendOutcome {
    let mut outcome = SendOutcome::default();
    for dg in batch {
        match socket.send_to(dg.bytes(), dg.to()).await {
            Ok(_) => outcome.sent += 1,
            Err(e) => {
                outcome.failed += 1;
                tracing::debug!(to = %dg.to(), "datagram not sent: {e}");
            }
        }
    }
    outcome
}

/// One datagram of a [`RecvBatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received<'a> {
    /// Its octets, at most the batch's limit.
    pub bytes: &'a [u8],
    /// It was longer than the limit: `bytes` holds its beginning only.
    pub truncated: bool,
}

/// Receive buffers for up to `slots` datagrams, read with one `recvmmsg(2)` call on Linux.
///
/// Made with [`new`](Self::new), a slot holds one datagram of up to `size` octets; a longer one
/// is cut to `size` and marked truncated. Made with [`with_gro`](Self::with_gro) on a socket
/// that accepts `UDP_GRO`, a slot holds a run of datagrams the kernel coalesced (up to
/// [`MAX_UDP_PAYLOAD`] octets, with the segment size in a control message), and
/// [`iter`](Self::iter) yields its datagrams one by one, each over the limit marked truncated.
#[derive(Debug)]
pub struct RecvBatch {
    bufs: Vec<Vec<u8>>,
    /// Per slot of the last call: its length, whether the kernel cut it, the GRO segment size
    /// (0: one datagram).
    got: Vec<(usize, bool, usize)>,
    /// The longest datagram taken whole.
    limit: usize,
    gro: bool,
}

impl RecvBatch {
    /// `slots` buffers (at least one) of `size` octets.
    #[must_use]
    pub fn new(slots: usize, size: usize) -> Self {
        let slots = slots.max(1);
        Self {
            bufs: vec![vec![0; size]; slots],
            got: Vec::with_capacity(slots),
            limit: size,
            gro: false,
        }
    }

    /// Turns `UDP_GRO` on for `socket` and makes `slots` buffers (at least one) for coalesced
    /// runs; datagrams over `limit` octets are marked truncated. Where the kernel refuses GRO
    /// (or off Linux), the same as [`new`](Self::new)`(slots, limit)`.
    ///
    /// The slots are zeroed allocations the size of a UDP payload; their pages are touched only
    /// as far as datagrams fill them.
    #[must_use]
    pub fn with_gro(socket: &UdpSocket, slots: usize, limit: usize) -> Self {
        if !enable_gro(socket) {
            tracing::debug!("UDP_GRO refused: one datagram per read slot");
            return Self::new(slots, limit);
        }
        let slots = slots.max(1);
        Self {
            bufs: (0..slots).map(|_| vec![0; MAX_UDP_PAYLOAD]).collect(),
            got: Vec::with_capacity(slots),
            limit,
            gro: true,
        }
    }

    /// Whether the socket coalesces runs into one slot (`UDP_GRO` accepted).
    #[must_use]
    pub const fn gro(&self) -> bool {
        self.gro
    }

    /// Waits for at least one datagram on `socket` and reads as many as are queued, up to the
    /// number of slots; returns how many slots were filled. The previous batch is gone.
    ///
    /// # Errors
    /// The socket's.
    #[cfg(target_os = "linux")]
    pub async fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        let Self { bufs, got, gro, .. } = self;
        got.clear();
        let gro = *gro;
        socket
            .async_io(tokio::io::Interest::READABLE, || {
                recvmmsg(socket, bufs, got, gro)
            })
            .await
    }

    /// Waits for at least one datagram on `socket` and reads as many as are queued, up to the
    /// number of slots; returns how many. The previous batch is gone.
    ///
    /// # Errors
    /// The socket's.
    #[cfg(not(target_os = "linux"))]
    pub async fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        let Self { bufs, got, .. } = self;
        got.clear();
        for (i, buf) in bufs.iter_mut().enumerate() {
            let read = if i == 0 {
                socket.recv_from(buf).await
            } else {
                socket.try_recv_from(buf)
            };
            match read {
                // Without MSG_TRUNC a full slot is taken as cut short.
                Ok((n, _)) => got.push((n, n >= buf.len(), 0)),
                Err(e) if i == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(got.len())
    }

    /// The datagrams of the last [`recv`](Self::recv), in arrival order (a coalesced slot
    /// split into its segments).
    pub fn iter(&self) -> impl Iterator<Item = Received<'_>> {
        let limit = self.limit;
        self.got
            .iter()
            .zip(&self.bufs)
            .flat_map(move |(&(len, cut, segment), buf)| {
                let bytes = buf.get(..len).unwrap_or(buf);
                let step = if segment == 0 { usize::MAX } else { segment };
                let count = if len == 0 { 1 } else { len.div_ceil(step) };
                (0..count).map(move |k| {
                    let from = k.saturating_mul(step);
                    let d = bytes
                        .get(from..from.saturating_add(step).min(len))
                        .unwrap_or_default();
                    Received {
                        bytes: d.get(..limit).unwrap_or(d),
                        // A slot the kernel cut: its last datagram is the one cut short.
                        truncated: d.len() > limit || (cut && k + 1 == count),
                    }
                })
            })
    }
}

/// Turns `UDP_GRO` on; whether the kernel accepted it.
#[cfg(target_os = "linux")]
fn enable_gro(socket: &UdpSocket) -> bool {
    nix::sys::socket::setsockopt(socket, nix::sys::socket::sockopt::UdpGroSegment, &true).is_ok()
}

/// No `UDP_GRO` here.
#[cfg(not(target_os = "linux"))]
fn enable_gro(_socket: &UdpSocket) -> bool {
    false
}

/// One `recvmmsg(2)` call into `bufs`; per slot its length, truncation flag and GRO segment
/// size go to `got`.
#[cfg(target_os = "linux")]
fn recvmmsg(
    socket: &UdpSocket,
    bufs: &mut [Vec<u8>],
    got: &mut Vec<(usize, bool, usize)>,
    gro: bool,
) -> io::Result<usize> {
    use std::io::IoSliceMut;
    use std::os::fd::AsRawFd;

    use nix::sys::socket::{ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage};

    let mut slices: Vec<[IoSliceMut<'_>; 1]> = bufs
        .iter_mut()
        .map(|b| [IoSliceMut::new(b.as_mut_slice())])
        .collect();
    let cmsg = gro.then(|| nix::cmsg_space!(i32));
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(slices.len(), cmsg);
    let results = nix::sys::socket::recvmmsg(
        socket.as_raw_fd(),
        &mut headers,
        slices.iter_mut(),
        MsgFlags::empty(),
        None,
    )?;
    for r in results {
        let segment = if gro {
            r.cmsgs()
                .ok()
                .and_then(|mut c| {
                    c.find_map(|m| match m {
                        ControlMessageOwned::UdpGroSegments(s) => usize::try_from(s).ok(),
                        _ => None,
                    })
                })
                .filter(|&s| s > 0 && s < r.bytes)
                .unwrap_or(0)
        } else {
            0
        };
        got.push((r.bytes, r.flags.contains(MsgFlags::MSG_TRUNC), segment));
    }
    Ok(got.len())
}
