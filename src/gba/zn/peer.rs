//! One configured peer: its connection state machine (RFC 6733 §5.6, RFC 3539 watchdog).
//!
//! The task connects, sends a CER and checks the CEA, then serves requests handed to it
//! through a channel: each gets a hop-by-hop identifier, is written to the connection and
//! waits in the in-flight map until its answer (matched by hop-by-hop identifier) arrives.
//! After Tw without traffic it sends a DWR; when no answer comes within Tw the peer is
//! SUSPECT (its in-flight requests are handed back for failover, no new ones come), and after
//! another Tw the connection is closed and replaced. A lost connection is reopened after a
//! capped exponential back-off. On shutdown it sends a DPR and waits briefly for the DPA.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, sleep, timeout};
use tracing::{debug, info, warn};

use super::transport::{self, Stream};
use super::{PeerState, Shared};
use crate::diameter::{
    Avp, HEADER_LEN, Header, Message, ResultCode, app, cmd, code, flags, result,
};

/// Largest message accepted from a peer.
pub(super) const MAX_MESSAGE: usize = 1 << 16;
/// First reconnection delay; doubled after each failure up to the configured maximum.
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// How long a shutdown waits for the DPA.
const DPA_WAIT: Duration = Duration::from_secs(2);
/// Requests taken from the queue and written in one go.
const BATCH: usize = 256;

/// Why a request came back without an answer: its connection was lost or declared suspect.
#[derive(Debug)]
pub(super) struct Lost;

/// A request for the peer task.
pub(super) struct Job {
    pub(super) msg: Message,
    pub(super) reply: oneshot::Sender<Result<Message, Lost>>,
}

/// Why a connection ended.
enum End {
    Lost(String),
    Shutdown,
}

/// A peer task's handle on what it shares with the client.
pub(super) struct PeerCtx {
    pub(super) index: usize,
    pub(super) addr: String,
    pub(super) state: Arc<AtomicU8>,
    pub(super) shared: Arc<Shared>,
    pub(super) jobs: mpsc::Receiver<Job>,
    pub(super) shutdown: watch::Receiver<bool>,
    /// The reader task of the current connection, aborted when the connection ends (a
    /// silent peer would otherwise keep the socket open).
    pub(super) reader: Option<tokio::task::JoinHandle<()>>,
}

impl PeerCtx {
    fn set_state(&self, s: PeerState) {
        self.state.store(s as u8, Ordering::Release);
        self.shared.metrics.peer_state(self.index, s);
        self.shared.changed.notify_waiters();
    }

    fn base_avps(&self) -> Vec<Avp> {
        let c = &self.shared.config;
        vec![
            Avp::base(code::ORIGIN_HOST, c.origin_host.as_bytes()),
            Avp::base(code::ORIGIN_REALM, c.origin_realm.as_bytes()),
        ]
    }

    fn cer(&self, local: IpAddr) -> Message {
        let mut avps = self.base_avps();
        let mut addr = Vec::with_capacity(18);
        match local {
            IpAddr::V4(a) => {
                addr.extend_from_slice(&1u16.to_be_bytes());
                addr.extend_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                addr.extend_from_slice(&2u16.to_be_bytes());
                addr.extend_from_slice(&a.octets());
            }
        }
        avps.extend([
            Avp::base(code::HOST_IP_ADDRESS, addr),
            Avp::base_u32(code::VENDOR_ID, 0),
            Avp::octets(code::PRODUCT_NAME, None, false, &b"mbms-keys"[..]),
            Avp::base_u32(code::ORIGIN_STATE_ID, self.shared.origin_state_id),
            Avp::base_u32(code::SUPPORTED_VENDOR_ID, crate::diameter::VENDOR_3GPP),
            super::zn_vsai(),
        ]);
        Message::request(cmd::CAPABILITIES_EXCHANGE, app::COMMON, false, avps)
    }

    fn dwr(&self) -> Message {
        let mut avps = self.base_avps();
        avps.push(Avp::base_u32(
            code::ORIGIN_STATE_ID,
            self.shared.origin_state_id,
        ));
        Message::request(cmd::DEVICE_WATCHDOG, app::COMMON, false, avps)
    }

    fn answer(&self, req: &Header, result_code: u32) -> Message {
        let mut avps = vec![Avp::base_u32(code::RESULT_CODE, result_code)];
        avps.extend(self.base_avps());
        let mut m = Message::answer_to(req, avps);
        if (3000..4000).contains(&result_code) {
            m.header.flags |= flags::ERROR;
        }
        m
    }

    /// Runs the peer until shutdown.
    pub(super) async fn run(mut self) {
        let mut backoff = INITIAL_BACKOFF;
        loop {
            if *self.shutdown.borrow() {
                break;
            }
            self.set_state(PeerState::Connecting);
            let end = match self.connect().await {
                Ok((reader, writer)) => {
                    backoff = INITIAL_BACKOFF;
                    info!(peer = %self.addr, "Diameter peer open");
                    self.set_state(PeerState::Open);
                    self.serve(reader, writer).await
                }
                Err(why) => End::Lost(why),
            };
            if let Some(r) = self.reader.take() {
                r.abort();
            }
            self.set_state(PeerState::Down);
            self.drain_queue();
            match end {
                End::Shutdown => break,
                End::Lost(why) => warn!(peer = %self.addr, reason = %why, "Diameter peer down"),
            }
            let jitter = Duration::from_millis(u64::from(self.shared.next_e2e() % 50));
            tokio::select! {
                () = sleep(backoff + jitter) => {}
                _ = self.shutdown.changed() => {}
            }
            backoff = (backoff * 2).min(self.shared.config.reconnect_max.max(INITIAL_BACKOFF));
        }
        self.set_state(PeerState::Down);
        self.drain_queue();
    }

    /// Hands every queued request back for failover.
    fn drain_queue(&mut self) {
        while let Ok(job) = self.jobs.try_recv() {
            let _ = job.reply.send(Err(Lost));
        }
    }

    /// Connects and exchanges capabilities.
    async fn connect(
        &mut self,
    ) -> Result<(mpsc::Receiver<Frame>, WriteHalf<Box<dyn Stream>>), String> {
        let cfg = &self.shared.config;
        let (stream, local) = transport::connect(
            cfg.transport,
            &self.addr,
            cfg.watchdog.max(cfg.request_timeout),
        )
        .await
        .map_err(|e| format!("connect: {e}"))?;
        let (read, mut write) = tokio::io::split(stream);
        let (tx, mut frames) = mpsc::channel(1024);
        if let Some(old) = self.reader.replace(tokio::spawn(read_frames(read, tx))) {
            old.abort();
        }
        let mut cer = self.cer(local);
        cer.header.hop_by_hop = self.shared.next_e2e();
        cer.header.end_to_end = self.shared.next_e2e();
        let bytes = cer.encode().map_err(|e| e.to_string())?;
        write
            .write_all(&bytes)
            .await
            .map_err(|e| format!("send CER: {e}"))?;
        let cea = match timeout(cfg.watchdog, frames.recv()).await {
            Err(_) => return Err("no CEA within Tw".into()),
            Ok(None) => return Err("connection closed before the CEA".into()),
            Ok(Some(Err(e))) => return Err(format!("CEA: {e}")),
            Ok(Some(Ok(m))) => m,
        };
        check_cea(&cea, &cer.header)?;
        Ok((frames, write))
    }

    /// Serves one open connection until it is lost or the client shuts down.
    async fn serve(
        &mut self,
        mut frames: mpsc::Receiver<Frame>,
        mut write: WriteHalf<Box<dyn Stream>>,
    ) -> End {
        let tw = self.shared.config.watchdog;
        let mut pending: HashMap<u32, oneshot::Sender<Result<Message, Lost>>> = HashMap::new();
        let mut next_hbh: u32 = self.shared.next_e2e();
        let mut last_rx = Instant::now();
        let mut dwr_sent: Option<Instant> = None;
        let mut suspect_since: Option<Instant> = None;
        let mut tick = tokio::time::interval((tw / 4).max(Duration::from_millis(5)));
        let mut out = Vec::with_capacity(16 * 1024);
        let end = loop {
            tokio::select! {
                biased;
                _ = self.shutdown.changed() => {
                    self.disconnect(&mut frames, &mut write).await;
                    break End::Shutdown;
                }
                frame = frames.recv() => {
                    let m = match frame {
                        None => break End::Lost("connection closed".into()),
                        Some(Err(e)) => break End::Lost(format!("bad message: {e}")),
                        Some(Ok(m)) => m,
                    };
                    last_rx = Instant::now();
                    dwr_sent = None;
                    if suspect_since.take().is_some() {
                        info!(peer = %self.addr, "Diameter peer answers again");
                        self.set_state(PeerState::Open);
                    }
                    if m.header.is_request() {
                        match m.header.command {
                            cmd::DEVICE_WATCHDOG => {
                                let mut a = self.answer(&m.header, result::SUCCESS);
                                a.avps.push(Avp::base_u32(code::ORIGIN_STATE_ID, self.shared.origin_state_id));
                                if let Err(e) = send(&mut write, &a).await { break End::Lost(e); }
                            }
                            cmd::DISCONNECT_PEER => {
                                let a = self.answer(&m.header, result::SUCCESS);
                                let _ = send(&mut write, &a).await;
                                break End::Lost("peer sent a DPR".into());
                            }
                            _ => {
                                let a = self.answer(&m.header, result::COMMAND_UNSUPPORTED);
                                if let Err(e) = send(&mut write, &a).await { break End::Lost(e); }
                            }
                        }
                    } else if m.header.command != cmd::DEVICE_WATCHDOG {
                        match pending.remove(&m.header.hop_by_hop) {
                            Some(reply) => { let _ = reply.send(Ok(m)); }
                            None => debug!(peer = %self.addr, hop_by_hop = m.header.hop_by_hop, "answer to no pending request"),
                        }
                    }
                }
                job = self.jobs.recv(), if suspect_since.is_none() => {
                    let Some(job) = job else { break End::Shutdown };
                    out.clear();
                    let mut job = Some(job);
                    for _ in 0..BATCH {
                        let Some(Job { mut msg, reply }) = job.take().or_else(|| self.jobs.try_recv().ok()) else { break };
                        if reply.is_closed() { continue; }
                        next_hbh = next_hbh.wrapping_add(1);
                        msg.header.hop_by_hop = next_hbh;
                        match msg.encode() {
                            Ok(b) => {
                                out.extend_from_slice(&b);
                                pending.insert(next_hbh, reply);
                            }
                            Err(_) => { let _ = reply.send(Err(Lost)); }
                        }
                    }
                    if let Err(e) = write.write_all(&out).await {
                        break End::Lost(format!("write: {e}"));
                    }
                }
                _ = tick.tick() => {
                    let now = Instant::now();
                    pending.retain(|_, r| !r.is_closed());
                    if let Some(since) = suspect_since {
                        if now.duration_since(since) >= tw {
                            break End::Lost("no answer to the watchdog for 2 Tw".into());
                        }
                    } else if let Some(sent) = dwr_sent {
                        if now.duration_since(sent) >= tw {
                            warn!(peer = %self.addr, "Diameter peer suspect: no DWA within Tw");
                            suspect_since = Some(now);
                            self.set_state(PeerState::Suspect);
                            for (_, r) in pending.drain() { let _ = r.send(Err(Lost)); }
                            self.drain_queue();
                        }
                    } else if now.duration_since(last_rx) >= tw {
                        let mut dwr = self.dwr();
                        next_hbh = next_hbh.wrapping_add(1);
                        dwr.header.hop_by_hop = next_hbh;
                        dwr.header.end_to_end = self.shared.next_e2e();
                        if let Err(e) = send(&mut write, &dwr).await { break End::Lost(e); }
                        dwr_sent = Some(now);
                    }
                }
            }
        };
        for (_, r) in pending.drain() {
            let _ = r.send(Err(Lost));
        }
        let _ = write.shutdown().await;
        end
    }

    /// Sends a DPR (REBOOTING) and waits up to [`DPA_WAIT`] for the DPA.
    async fn disconnect(
        &self,
        frames: &mut mpsc::Receiver<Frame>,
        write: &mut WriteHalf<Box<dyn Stream>>,
    ) {
        let mut dpr = Message::request(cmd::DISCONNECT_PEER, app::COMMON, false, {
            let mut a = self.base_avps();
            a.push(Avp::base_u32(code::DISCONNECT_CAUSE, 0));
            a
        });
        dpr.header.hop_by_hop = self.shared.next_e2e();
        dpr.header.end_to_end = self.shared.next_e2e();
        if send(write, &dpr).await.is_err() {
            return;
        }
        let hbh = dpr.header.hop_by_hop;
        let _ = timeout(DPA_WAIT, async {
            while let Some(Ok(m)) = frames.recv().await {
                if !m.header.is_request()
                    && m.header.command == cmd::DISCONNECT_PEER
                    && m.header.hop_by_hop == hbh
                {
                    debug!(peer = %self.addr, "DPA received");
                    break;
                }
            }
        })
        .await;
    }
}

/// Checks a CEA: the answer to `cer`, Result-Code 2001, and Zn among the peer's applications
/// (in a Vendor-Specific-Application-Id or as a plain Auth-Application-Id; a relay's
/// 0xffffffff also covers it).
fn check_cea(cea: &Message, cer: &Header) -> Result<(), String> {
    if cea.header.is_request()
        || cea.header.command != cmd::CAPABILITIES_EXCHANGE
        || cea.header.hop_by_hop != cer.hop_by_hop
    {
        return Err("first message is not the CEA".into());
    }
    match cea.result() {
        Some(ResultCode::Base(result::SUCCESS)) => {}
        Some(r) => return Err(format!("CEA result {}", r.code())),
        None => return Err("CEA without Result-Code".into()),
    }
    let is_zn = |a: &Avp| {
        a.is(code::AUTH_APPLICATION_ID, None) && matches!(a.as_u32(), Some(app::ZN | 0xffff_ffff))
    };
    let supported = cea.avps.iter().any(|a| {
        is_zn(a)
            || (a.is(code::VENDOR_SPECIFIC_APPLICATION_ID, None)
                && a.members().is_some_and(|m| m.iter().any(is_zn)))
    });
    if supported {
        Ok(())
    } else {
        Err("peer does not support the Zn application (16777220)".into())
    }
}

/// A message read from the connection, or why reading stopped.
type Frame = Result<Message, String>;

/// Reads messages until the connection ends or one does not decode; each goes to `tx`.
async fn read_frames(read: ReadHalf<Box<dyn Stream>>, tx: mpsc::Sender<Frame>) {
    // Buffered: answers arrive back to back; two reads per message would be two system calls.
    let mut read = tokio::io::BufReader::with_capacity(64 * 1024, read);
    let mut head = [0u8; HEADER_LEN];
    loop {
        if read.read_exact(&mut head).await.is_err() {
            return;
        }
        let len = match Header::check_length(&head, MAX_MESSAGE) {
            Ok((_, len)) => len,
            Err(e) => {
                let _ = tx.send(Err(e.to_string())).await;
                return;
            }
        };
        let mut buf = vec![0u8; len];
        if let Some(dst) = buf.get_mut(..HEADER_LEN) {
            dst.copy_from_slice(&head);
        }
        if read
            .read_exact(buf.get_mut(HEADER_LEN..).unwrap_or_default())
            .await
            .is_err()
        {
            return;
        }
        let frame = Message::decode(&buf, MAX_MESSAGE).map_err(|e| e.to_string());
        let stop = frame.is_err();
        if tx.send(frame).await.is_err() || stop {
            return;
        }
    }
}

async fn send(write: &mut WriteHalf<Box<dyn Stream>>, m: &Message) -> Result<(), String> {
    let b = m.encode().map_err(|e| e.to_string())?;
    write.write_all(&b).await.map_err(|e| format!("write: {e}"))
}
