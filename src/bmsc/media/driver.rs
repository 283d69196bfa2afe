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

use super::protector::{MediaError, Protector};

/// How often the driver looks for a new MTK while no packet arrives.
const KEY_POLL: Duration = Duration::from_millis(20);

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
    // One octet more than a UDP payload can hold, so no datagram is cut short unseen.
    let mut buf = vec![0u8; 65_536];
    let mut out = Vec::with_capacity(2048);
    let mut known = None;
    let mut reported = None;
    let mut poll = tokio::time::interval(KEY_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let received = tokio::select! {
            () = &mut stop => return,
            _ = poll.tick() => None,
            r = sockets.input.recv_from(&mut buf) => Some(r),
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
        let len = match received {
            None => continue,
            Some(Ok((len, _from))) => len,
            Some(Err(e)) => {
                tracing::debug!(service = %service_id, "rtp_input: {e}");
                continue;
            }
        };
        metrics.media_packets_in.inc();
        let packet = buf.get(..len).unwrap_or_default();
        match protector.protect(packet, &mut out) {
            Ok(()) => {}
            Err(MediaError::Rtp(e)) => {
                metrics.media_rtp_invalid.inc();
                tracing::debug!(service = %service_id, "rtp_input: dropped: {e}");
                continue;
            }
            Err(MediaError::NoKey) => {
                metrics.media_no_key.inc();
                continue;
            }
            Err(e) => {
                metrics.media_rejected.inc();
                tracing::debug!(service = %service_id, "rtp_input: dropped: {e}");
                continue;
            }
        }
        match sockets.output.send_to(&out, cfg.media_destination).await {
            Ok(_) => metrics.media_packets_sent.inc(),
            Err(e) => {
                metrics.media_send_errors.inc();
                tracing::debug!(service = %service_id, "media_destination: {e}");
            }
        }
        let roc = protector.roc();
        if reported != Some(roc) {
            mtks.report_roc(&service_id, roc);
            reported = Some(roc);
        }
    }
}
