//! The tokio driver of a service's [`Protector`]: the `rtp_input` socket, the output socket
//! (multicast TTL / hop limit, outgoing interface, loopback on), the key hand-over from the
//! distribution, the rollover counter reported back, the metrics.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use socket2::SockRef;
use tokio::net::UdpSocket;

use crate::bmsc::config::{MulticastConfig, MulticastInterface, SrtpSenderConfig};
use crate::bmsc::distribution::CurrentMtks;
use crate::bmsc::metrics::Metrics;
use crate::mbms::profile::SRTP_MKI_LEN;

use crate::bmsc::mmsg::{Gso, Outbound, Received, RecvBatch, SendOutcome, send_batch_gso};

use super::protector::{MediaError, Protector};
use super::rtp::MAX_RTP_PACKET;

/// How often the driver looks for a new MTK while no packet arrives.
const KEY_POLL: Duration = Duration::from_millis(20);

/// Datagrams read from `rtp_input` (and sent to `media_destination`) per system call.
pub const MEDIA_BATCH: usize = 32;

/// Room for a protected packet: the largest RTP packet accepted, the MKI and the longest tag.
const MAX_SRTP_PACKET: usize = MAX_RTP_PACKET + SRTP_MKI_LEN + 10;

/// Sets the multicast options of `socket` for datagrams to `to`: TTL / hop limit, outgoing
/// interface, loopback on (so receivers on this host get them too). Nothing for unicast.
///
/// # Errors
/// The operating system's, e.g. an interface that does not exist or an IPv4 interface for an
/// IPv6 group.
pub fn set_multicast(socket: &UdpSocket, to: IpAddr, m: &MulticastConfig) -> std::io::Result<()> {
    if !to.is_multicast() {
        return Ok(());
    }
    let sock = SockRef::from(socket);
    match to {
        IpAddr::V4(_) => {
            sock.set_multicast_ttl_v4(m.ttl)?;
            sock.set_multicast_loop_v4(true)?;
            match m.interface {
                Some(MulticastInterface::V4(a)) => sock.set_multicast_if_v4(&a)?,
                Some(MulticastInterface::V6(_)) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "an IPv4 group needs an IPv4 multicast_interface",
                    ));
                }
                None => {}
            }
        }
        IpAddr::V6(_) => {
            sock.set_multicast_hops_v6(m.ttl)?;
            sock.set_multicast_loop_v6(true)?;
            match m.interface {
                Some(MulticastInterface::V6(index)) => sock.set_multicast_if_v6(index)?,
                Some(MulticastInterface::V4(_)) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "an IPv6 group needs an interface name or index as multicast_interface",
                    ));
                }
                None => {}
            }
        }
    }
    Ok(())
}

/// The sockets of one service's SRTP sender, bound at start.
#[derive(Debug)]
pub struct MediaSockets {
    /// Bound to `rtp_input`.
    pub input: UdpSocket,
    /// Bound to an ephemeral port, multicast options set for `media_destination`.
    pub output: UdpSocket,
}

impl MediaSockets {
    /// Binds `rtp_input` and an output socket of `media_destination`'s family.
    ///
    /// # Errors
    /// Binding or a multicast option failed.
    pub async fn bind(cfg: &SrtpSenderConfig, m: &MulticastConfig) -> std::io::Result<Self> {
        let input = UdpSocket::bind(cfg.rtp_input).await?;
        let any = match cfg.media_destination {
            SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
        };
        let output = UdpSocket::bind(any).await?;
        set_multicast(&output, cfg.media_destination.ip(), m)?;
        Ok(Self { input, output })
    }
}

/// One streaming service's SRTP sender until `stop`: every datagram on `rtp_input` is protected
/// under the current MTK and sent to `media_destination`, or counted and dropped.
///
/// The datagrams are read in batches of up to [`MEDIA_BATCH`] (one `recvmmsg(2)` on Linux,
/// with `UDP_GRO` on where the kernel accepts it, so that a slot may hold a coalesced run),
/// protected in arrival order into buffers reused from batch to batch, and the protected ones
/// sent in the same order, up to [`MEDIA_BATCH`] at a time: runs of equal size as one
/// `UDP_SEGMENT` send each, the rest with one `sendmmsg(2)` (`bmsc::mmsg`). A key change
/// takes effect between batches, so still at a packet boundary; the rollover counter is
/// reported after each batch.
pub async fn run_media(
    service_id: String,
    mut protector: Protector,
    cfg: SrtpSenderConfig,
    sockets: MediaSockets,
    mtks: CurrentMtks,
    metrics: Arc<Metrics>,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    // A datagram over the largest packet accepted shows as truncated.
    let (mut input, mut gso) = if cfg.udp_offload {
        let input = RecvBatch::with_gro(&sockets.input, MEDIA_BATCH, MAX_RTP_PACKET);
        (input, Gso::new())
    } else {
        (RecvBatch::new(MEDIA_BATCH, MAX_RTP_PACKET), Gso::off())
    };
    let mut output: Vec<Outbound> = (0..MEDIA_BATCH)
        .map(|_| Outbound {
            to: cfg.media_destination,
            bytes: Vec::with_capacity(MAX_SRTP_PACKET),
        })
        .collect();
    let mut known = None;
    let mut reported = None;
    let mut poll = tokio::time::interval(KEY_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let received = tokio::select! {
            () = &mut stop => return,
            _ = poll.tick() => None,
            r = input.recv(&sockets.input) => Some(r),
        };
        // Keys change between packets only.
        if mtks.media_key_changed(&service_id, known)
            && let Some(key) = mtks.media_key(&service_id)
        {
            known = Some((key.msk_id, key.mtk_id, key.sent));
            match protector.offer_key(&key) {
                Ok(true) => {
                    metrics.media_key_switches.inc();
                    tracing::info!(service = %service_id, msk_id = %key.msk_id, mtk_id = %key.mtk_id, "media now under MTK");
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(service = %service_id, "MTK refused by SRTP: {e}"),
            }
        }
        match received {
            None => continue,
            Some(Ok(_)) => metrics.media_input_reads.inc(),
            Some(Err(e)) => {
                tracing::debug!(service = %service_id, "rtp_input: {e}");
                continue;
            }
        }
        let mut ready = 0;
        for packet in input.iter() {
            if ready == output.len() {
                send_protected(&sockets.output, &output, &mut gso, &metrics).await;
                ready = 0;
            }
            let Some(slot) = output.get_mut(ready) else {
                break;
            };
            if protect_one(
                &service_id,
                &mut protector,
                packet,
                &mut slot.bytes,
                &metrics,
            ) {
                ready += 1;
            }
        }
        if ready > 0 {
            let batch = output.get(..ready).unwrap_or_default();
            send_protected(&sockets.output, batch, &mut gso, &metrics).await;
        }
        let roc = protector.roc();
        if reported != Some(roc) {
            mtks.report_roc(&service_id, roc);
            reported = Some(roc);
        }
    }
}

/// Sends protected packets and counts what became of them.
async fn send_protected(socket: &UdpSocket, batch: &[Outbound], gso: &mut Gso, metrics: &Metrics) {
    let SendOutcome {
        sent,
        failed,
        gso_refused,
    } = send_batch_gso(socket, batch, gso).await;
    metrics.media_packets_sent.add(sent as u64);
    metrics.media_send_errors.add(failed as u64);
    metrics.media_gso_refused.add(gso_refused as u64);
}

/// Counts one datagram of `rtp_input` and protects it into `out`; whether it is to be sent.
fn protect_one(
    service_id: &str,
    protector: &mut Protector,
    packet: Received<'_>,
    out: &mut Vec<u8>,
    metrics: &Metrics,
) -> bool {
    metrics.media_packets_in.inc();
    if packet.truncated {
        metrics.media_rtp_invalid.inc();
        tracing::debug!(service = %service_id, "rtp_input: dropped: datagram over {MAX_RTP_PACKET} octets");
        return false;
    }
    match protector.protect(packet.bytes, out) {
        Ok(()) => true,
        Err(MediaError::Rtp(e)) => {
            metrics.media_rtp_invalid.inc();
            tracing::debug!(service = %service_id, "rtp_input: dropped: {e}");
            false
        }
        Err(MediaError::NoKey) => {
            metrics.media_no_key.inc();
            false
        }
        Err(e) => {
            metrics.media_rejected.inc();
            tracing::debug!(service = %service_id, "rtp_input: dropped: {e}");
            false
        }
    }
}
