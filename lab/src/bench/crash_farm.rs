//! The UE farm of `bench crash`: one UDP socket on the UE port receives the MSK messages of
//! every UE (UE `i` at 127.x.y.z, told apart by the B-TID in IDr; the destination address, from
//! `IP_PKTINFO`, must be that UE's) and keeps, per UE, a fixed-size log: the counters it saw,
//! judged as a receiver does (docs/profile.md §3: a counter must be newer, RFC 1982, than the last one
//! accepted under the same MUK), and the MSK IDs it got. Before the restart, the farm drains what
//! the killed process sent, then counts the rest as after the restart. A sample of messages is
//! kept for verification under the UE's MUK.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::IoSliceMut;
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mbms_keys::mbms::{MskUpdate, UnverifiedMsk};
use mbms_keys::ue::serial::is_newer;
use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt::Ipv4PacketInfo,
};

use crate::bench::farm::{ue_addr, ue_of_btid, verified};

/// Counters remembered per UE to tell a repeat (same counter, same bytes) from a reuse.
const RECENT: usize = 4;
/// MSK IDs remembered per UE.
const MSKS: usize = 3;
/// The first this many messages of each phase are kept for verification.
pub const SAMPLE_FIRST: u64 = 16;

/// A digest of a message or a key (not a cryptographic one: it tells two apart).
pub fn digest(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// What one UE received: a fixed-size record.
#[derive(Clone, Copy, Default)]
struct UeLog {
    messages: u32,
    /// Counter of the last message that was not a repeat.
    last: u32,
    /// The newest counter received before the kill, if any.
    before_kill: Option<u32>,
    /// The last [`RECENT`] (counter, digest of the message) pairs.
    recent: [(u32, u64); RECENT],
    recent_len: u8,
    /// MSK IDs received (`MskId::to_u32`), 0 for an empty slot.
    msks: [u32; MSKS],
    has_next: bool,
    /// Whether a message came after the restart.
    reached_after_restart: bool,
}

/// Progress read while the farm runs (phase 0: before the kill, 1: after the restart).
#[derive(Default)]
pub struct Progress {
    received: [AtomicU64; 2],
    /// Preloaded UEs holding the next MSK, and extra UEs holding it.
    preloaded_with_next: AtomicU64,
    extra_with_next: AtomicU64,
    /// Nanoseconds after the start: first datagram, last datagram, last UE getting the next MSK.
    first_ns: AtomicU64,
    last_ns: AtomicU64,
    last_next_ns: AtomicU64,
    phase: AtomicUsize,
    drain: AtomicBool,
    stop: AtomicBool,
}

impl Progress {
    pub fn received(&self, phase: usize) -> u64 {
        self.received
            .get(phase)
            .map_or(0, |r| r.load(Ordering::Relaxed))
    }

    pub fn preloaded_with_next(&self) -> u64 {
        self.preloaded_with_next.load(Ordering::Relaxed)
    }

    pub fn extra_with_next(&self) -> u64 {
        self.extra_with_next.load(Ordering::Relaxed)
    }

    pub fn first_at(&self) -> Duration {
        Duration::from_nanos(self.first_ns.load(Ordering::Relaxed))
    }

    pub fn last_at(&self) -> Duration {
        Duration::from_nanos(self.last_ns.load(Ordering::Relaxed))
    }

    pub fn last_next_at(&self) -> Duration {
        Duration::from_nanos(self.last_next_ns.load(Ordering::Relaxed))
    }

    /// Asks the farm to read what is queued, then count later datagrams as after the restart;
    /// returns once it has (the sender must be dead).
    pub fn switch_phase(&self, deadline: Instant) -> Result<(), String> {
        self.drain.store(true, Ordering::Relaxed);
        while self.phase.load(Ordering::Relaxed) == 0 {
            if Instant::now() > deadline {
                return Err("the UE farm did not drain its socket".to_owned());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The farm thread's state.
pub struct Farm {
    /// Preloaded UEs are `0..preloaded`, extra UEs follow.
    preloaded: u32,
    verify_every: u64,
    logs: Vec<UeLog>,
    /// The MSK ID of the fan-out: the first one a preloaded UE receives.
    next: Option<u32>,
    /// Every (counter, digest) received, for the check across UEs.
    all: Vec<(u32, u64)>,
    samples: Vec<(usize, Vec<u8>)>,
    counts: Counts,
}

/// What the farm counted.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    pub malformed: u64,
    pub unknown_ue: u64,
    /// Not received on the address of the UE its IDr names (or no `IP_PKTINFO`).
    pub misaddressed: u64,
    /// Same counter and same bytes as an earlier message to the UE (a retransmission).
    pub repeats: u64,
    /// Same counter as an earlier message to the UE, other bytes.
    pub reused_same_ue: u64,
    /// Counter not newer than the UE's previous one (not a repeat).
    pub not_newer: u64,
    /// After the restart, counter not newer than the newest the UE got before the kill.
    pub not_newer_after_restart: u64,
    /// A preloaded UE got an MSK other than the fan-out's.
    pub other_msk_to_preloaded: u64,
    /// Messages bringing a UE a fourth MSK ID (it should see at most current and next).
    pub msk_overflow: u64,
}

/// The farm's findings after it stopped.
pub struct Report {
    pub counts: Counts,
    /// The fan-out's MSK ID.
    pub next: Option<u32>,
    /// Distinct messages (any UEs) sharing a counter.
    pub reused_any_ue: u64,
    pub samples: Vec<(usize, Vec<u8>)>,
    logs: Vec<UeLog>,
}

impl Report {
    /// Whether UE `ue` received the fan-out's MSK.
    pub fn has_next(&self, ue: u32) -> bool {
        self.logs.get(ue as usize).is_some_and(|l| l.has_next)
    }

    /// Whether UE `ue` received an MSK other than the fan-out's (the current one).
    pub fn has_other(&self, ue: u32) -> bool {
        self.logs
            .get(ue as usize)
            .is_some_and(|l| l.msks.iter().any(|m| *m != 0 && Some(*m) != self.next))
    }

    /// Whether UE `ue` received a message from the restarted BM-SC.
    pub fn reached_after_restart(&self, ue: u32) -> bool {
        self.logs
            .get(ue as usize)
            .is_some_and(|l| l.reached_after_restart)
    }

    /// Preloaded UEs reached by the restarted BM-SC.
    pub fn preloaded_reached_after_restart(&self, preloaded: u32) -> u64 {
        self.logs
            .iter()
            .take(preloaded as usize)
            .filter(|l| l.reached_after_restart)
            .count() as u64
    }

    /// Preloaded UEs holding the next MSK.
    pub fn preloaded_with_next(&self, preloaded: u32) -> u64 {
        self.logs
            .iter()
            .take(preloaded as usize)
            .filter(|l| l.has_next)
            .count() as u64
    }
}

impl Farm {
    pub fn new(preloaded: u32, extra: u32, verify_every: u64) -> Self {
        Self {
            preloaded,
            verify_every: verify_every.max(1),
            logs: vec![UeLog::default(); (preloaded + extra) as usize],
            next: None,
            all: Vec::with_capacity(preloaded as usize * 2),
            samples: Vec::new(),
            counts: Counts::default(),
        }
    }

    /// Receives until [`Progress::stop`]; `socket` has a short read timeout.
    pub fn run(mut self, socket: &UdpSocket, p: &Progress, start: Instant) -> Report {
        if let Err(e) = setsockopt(socket, Ipv4PacketInfo, &true) {
            eprintln!("bench crash: IP_PKTINFO: {e}: destinations not checked");
        }
        let mut buf = vec![0u8; 2048];
        let mut cmsg = nix::cmsg_space!(nix::libc::in_pktinfo);
        loop {
            match receive(socket, &mut buf, &mut cmsg) {
                Ok((len, to)) => {
                    let at = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    let _ =
                        p.first_ns
                            .compare_exchange(0, at, Ordering::Relaxed, Ordering::Relaxed);
                    p.last_ns.store(at, Ordering::Relaxed);
                    self.on_datagram(buf.get(..len).unwrap_or_default(), to, p, at);
                }
                Err(_) => {
                    if p.drain.swap(false, Ordering::Relaxed) {
                        p.phase.store(1, Ordering::Relaxed);
                    }
                    if p.stop.load(Ordering::Relaxed) {
                        break;
                    }
                }
            }
        }
        self.report()
    }

    fn on_datagram(&mut self, bytes: &[u8], to: Option<Ipv4Addr>, p: &Progress, at: u64) {
        let phase = p.phase.load(Ordering::Relaxed).min(1);
        let n = p.received[phase].fetch_add(1, Ordering::Relaxed);
        let Ok(m) = UnverifiedMsk::parse(bytes) else {
            self.counts.malformed += 1;
            return;
        };
        let Some(ue) = ue_of_btid(m.idr()).filter(|u| (*u as usize) < self.logs.len()) else {
            self.counts.unknown_ue += 1;
            return;
        };
        if to.map(IpAddr::V4) != Some(ue_addr(ue)) {
            self.counts.misaddressed += 1;
        }
        let preloaded = ue < self.preloaded;
        if !preloaded || n < SAMPLE_FIRST || n.is_multiple_of(self.verify_every) {
            self.samples.push((phase, bytes.to_vec()));
        }
        let (counter, h, msk) = (m.counter(), digest(bytes), m.msk_id().to_u32());
        self.all.push((counter, h));
        if preloaded && self.next.is_none() {
            self.next = Some(msk);
            self.mark_next_holders(p, at);
        }
        if preloaded && self.next != Some(msk) {
            self.counts.other_msk_to_preloaded += 1;
        }
        let next = self.next;
        let Some(log) = self.logs.get_mut(ue as usize) else {
            return;
        };
        log.messages += 1;
        log.reached_after_restart |= phase == 1;
        let recent = log.recent.get(..usize::from(log.recent_len)).unwrap_or(&[]);
        if let Some((_, seen)) = recent.iter().find(|(c, _)| *c == counter) {
            if *seen == h {
                self.counts.repeats += 1;
            } else {
                self.counts.reused_same_ue += 1;
            }
            return;
        }
        if log.messages > 1 && !is_newer(counter, Some(log.last)) {
            self.counts.not_newer += 1;
        }
        if phase == 1
            && let Some(b) = log.before_kill
            && !is_newer(counter, Some(b))
        {
            self.counts.not_newer_after_restart += 1;
        }
        log.last = counter;
        if phase == 0 && is_newer(counter, log.before_kill) {
            log.before_kill = Some(counter);
        }
        if usize::from(log.recent_len) < RECENT {
            log.recent_len += 1;
        } else {
            log.recent.rotate_left(1);
        }
        if let Some(slot) = log.recent.get_mut(usize::from(log.recent_len) - 1) {
            *slot = (counter, h);
        }
        if !log.msks.contains(&msk) {
            match log.msks.iter_mut().find(|m| **m == 0) {
                Some(slot) => *slot = msk,
                None => self.counts.msk_overflow += 1,
            }
        }
        if next == Some(msk) && !log.has_next {
            log.has_next = true;
            let holders = if preloaded {
                &p.preloaded_with_next
            } else {
                &p.extra_with_next
            };
            holders.fetch_add(1, Ordering::Relaxed);
            p.last_next_ns.store(at, Ordering::Relaxed);
        }
    }

    /// Once the fan-out's MSK ID is known: the UEs that got it before.
    fn mark_next_holders(&mut self, p: &Progress, at: u64) {
        let Some(next) = self.next else {
            return;
        };
        for (i, log) in self.logs.iter_mut().enumerate() {
            if !log.has_next && log.msks.contains(&next) {
                log.has_next = true;
                let holders = if (i as u64) < u64::from(self.preloaded) {
                    &p.preloaded_with_next
                } else {
                    &p.extra_with_next
                };
                holders.fetch_add(1, Ordering::Relaxed);
                p.last_next_ns.store(at, Ordering::Relaxed);
            }
        }
    }

    fn report(mut self) -> Report {
        self.all.sort_unstable();
        self.all.dedup();
        let reused_any_ue = self.all.windows(2).filter(|w| w[0].0 == w[1].0).count() as u64;
        Report {
            counts: self.counts,
            next: self.next,
            reused_any_ue,
            samples: self.samples,
            logs: self.logs,
        }
    }
}

/// One datagram into `buf`: its length and, with `IP_PKTINFO` on, its destination address.
fn receive(
    socket: &UdpSocket,
    buf: &mut [u8],
    cmsg: &mut [u8],
) -> nix::Result<(usize, Option<Ipv4Addr>)> {
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(socket.as_raw_fd(), &mut iov, Some(cmsg), MsgFlags::empty())?;
    let to = msg.cmsgs()?.find_map(|c| match c {
        ControlMessageOwned::Ipv4PacketInfo(info) => {
            Some(Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr)))
        }
        _ => None,
    });
    Ok((msg.bytes, to))
}

/// The verified sample: how many verified, and the MSK each MSK ID carried (by a digest of
/// the key); `conflicts` counts MSK IDs seen with two different keys.
#[derive(Debug, Default)]
pub struct Verified {
    pub checked: u64,
    pub ok: u64,
    pub keys: HashMap<u32, u64>,
    pub conflicts: u64,
}

/// Verifies each sampled message under the MUK of the UE its IDr names.
pub fn verify_samples(samples: &[(usize, Vec<u8>)]) -> Verified {
    let mut v = Verified::default();
    for (_, bytes) in samples {
        v.checked += 1;
        let Some(msg) = verified(bytes) else {
            continue;
        };
        v.ok += 1;
        if let MskUpdate::NewKey { msk, .. } = &msg.update {
            let key = digest(msk.as_bytes());
            match v.keys.get(&msg.msk_id.to_u32()) {
                Some(k) if *k != key => v.conflicts += 1,
                Some(_) => {}
                None => {
                    v.keys.insert(msg.msk_id.to_u32(), key);
                }
            }
        }
    }
    v
}
