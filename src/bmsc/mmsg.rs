//! Batched UDP I/O for the BM-SC's drivers: on Linux one `sendmmsg(2)` call sends up to
//! [`SENDMMSG_CHUNK`] datagrams and one `recvmmsg(2)` call reads up to a [`RecvBatch`]'s
//! slots; elsewhere one `send_to` / `recv_from` per datagram. The Key Distribution driver
//! (`udp.rs`) sends its fan-outs with it; the media driver (`media/driver.rs`) reads its
//! `rtp_input` and sends the protected packets with it.

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
    /// Its octets, at most the slot's size.
    pub bytes: &'a [u8],
    /// It was longer than the slot: `bytes` holds its beginning only.
    pub truncated: bool,
}

/// Receive buffers for up to `slots` datagrams of up to `size` octets each, read with one
/// `recvmmsg(2)` call on Linux. A longer datagram is cut to `size` and marked truncated.
#[derive(Debug)]
pub struct RecvBatch {
    bufs: Vec<Vec<u8>>,
    /// Per datagram of the last call: its length in its slot, and whether it was cut.
    got: Vec<(usize, bool)>,
}

impl RecvBatch {
    /// `slots` buffers (at least one) of `size` octets.
    #[must_use]
    pub fn new(slots: usize, size: usize) -> Self {
        let slots = slots.max(1);
        Self {
            bufs: vec![vec![0; size]; slots],
            got: Vec::with_capacity(slots),
        }
    }

    /// Waits for at least one datagram on `socket` and reads as many as are queued, up to the
    /// number of slots; returns how many. The previous batch is gone.
    ///
    /// # Errors
    /// The socket's.
    #[cfg(target_os = "linux")]
    pub async fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        let Self { bufs, got } = self;
        got.clear();
        socket
            .async_io(tokio::io::Interest::READABLE, || {
                recvmmsg(socket, bufs, got)
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
        let Self { bufs, got } = self;
        got.clear();
        for (i, buf) in bufs.iter_mut().enumerate() {
            let read = if i == 0 {
                socket.recv_from(buf).await
            } else {
                socket.try_recv_from(buf)
            };
            match read {
                // Without MSG_TRUNC a full slot is taken as cut short.
                Ok((n, _)) => got.push((n, n >= buf.len())),
                Err(e) if i == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(got.len())
    }

    /// The datagrams of the last [`recv`](Self::recv), in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = Received<'_>> {
        self.got
            .iter()
            .zip(&self.bufs)
            .map(|(&(len, truncated), buf)| Received {
                bytes: buf.get(..len).unwrap_or(buf),
                truncated,
            })
    }
}

/// One `recvmmsg(2)` call into `bufs`; the lengths and truncation flags go to `got`.
#[cfg(target_os = "linux")]
fn recvmmsg(
    socket: &UdpSocket,
    bufs: &mut [Vec<u8>],
    got: &mut Vec<(usize, bool)>,
) -> io::Result<usize> {
    use std::io::IoSliceMut;
    use std::os::fd::AsRawFd;

    use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage};

    let mut slices: Vec<[IoSliceMut<'_>; 1]> = bufs
        .iter_mut()
        .map(|b| [IoSliceMut::new(b.as_mut_slice())])
        .collect();
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(slices.len(), None);
    let results = nix::sys::socket::recvmmsg(
        socket.as_raw_fd(),
        &mut headers,
        slices.iter_mut(),
        MsgFlags::empty(),
        None,
    )?;
    for r in results {
        got.push((r.bytes, r.flags.contains(MsgFlags::MSG_TRUNC)));
    }
    Ok(got.len())
}
