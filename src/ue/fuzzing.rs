//! Fuzz oracle for the [`Receiver`], kept in the library so that the
//! `fuzz/` target is one call (docs/architecture.md principle 9).
//!
//! The input is a program: each step takes an op code and its operands from
//! the bytes and either feeds a raw datagram, builds a VALID message of the
//! profile from a compact description under fixed test keys (so the fuzzer
//! reaches past the MAC), replays or bit-flips an earlier datagram, advances
//! virtual time, fires timers, re-keys a MUK, or saves and restores. After
//! every step the receiver's invariants are asserted; a panic is the finding:
//! - no MUK or MSK counter goes back in serial order while its key stays;
//! - SEQs never goes back for a kept MSK;
//! - an `MtkReady` only for MTK ID in (SEQs before, SEQu before], and SEQs
//!   becomes that ID; the MTK is the one the message carried;
//! - an acknowledgement only for an accepted MSK message, never for an MTK;
//! - every `Discarded` event is counted; a restore holds exactly the saved state.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::crypto::{Msk, Mtk, Muk, Random, Salt, Seeded, StateKey};
use crate::mbms::{
    KeyDomainId, MskDelivery, MskId, MskUpdate, MtkDelivery, MtkId, MtkKeys, MukId, build_msk,
    build_mtk, profile,
};

use super::serial::is_newer;
use super::{Event, MskInfo, Receiver, ReceiverConfig};

const KD: KeyDomainId = KeyDomainId([0x00, 0xf1, 0x10]);
const IDI: &str = "bmsc.fuzz.example";
const IDR: [&str; 3] = ["btid-a@bsf", "btid-b@bsf", "btid-unknown@bsf"];
const STATE_KEY: [u8; 32] = [0x5a; 32];
/// Steps per input: keeps one execution short.
const MAX_STEPS: usize = 64;
const HISTORY: usize = 8;

/// Reads operands; an exhausted input reads as zeros.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }
}

fn muk_key(sel: u8) -> Muk {
    Muk::from_bytes([0x30 + sel % 2; 32])
}

fn muk_id(sel: u8) -> MukId {
    MukId::new(IDI.as_bytes(), IDR[usize::from(sel) % IDR.len()].as_bytes())
}

fn msk_key(sel: u8) -> Msk {
    Msk::from_bytes([0xb0 + sel % 3; 16])
}

/// Key Group 1 or 2, Key Number 1..=3: a third MSK in a group happens often.
fn msk_id(sel: u8) -> MskId {
    MskId::new(1 + u16::from(sel & 1), 1 + u16::from((sel >> 1) % 3))
}

/// Counters either continue from the last one used (mostly newer) or are raw.
fn counter(b: &mut Bytes<'_>, last: &mut u32) -> u32 {
    let c = match b.u8() {
        m if m & 0x80 == 0 => last.wrapping_add(u32::from(m)),
        _ => b.u32(),
    };
    *last = c;
    c
}

/// What one step is expected to hand out, when it is a built MTK message.
struct Sent {
    mtk: Mtk,
}

/// What a program reached, so tests can check that the seeds get past the
/// MAC and into every branch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reached {
    /// MSK messages the receiver accepted ([`Stats::msk_accepted`](super::Stats::msk_accepted)).
    pub msk_accepted: u64,
    /// [`Event::MtkReady`] events.
    pub mtk_ready: u64,
    /// Datagrams answered with an acknowledgement.
    pub acks: u64,
    /// [`Event::MskInstalled`] events.
    pub installed: u64,
    /// [`Event::MskInvalidated`] events.
    pub invalidated: u64,
    /// [`Event::MskRequestNeeded`] events.
    pub requests: u64,
    /// [`Event::Discarded`] events.
    pub discards: u64,
    /// Times the receiver state was saved and restored.
    pub restores: u64,
}

struct Run {
    reached: Reached,
    rx: Receiver,
    epoch: Instant,
    now: Instant,
    history: Vec<Vec<u8>>,
    last_counter: u32,
}

/// One fuzz input. Panics only when the receiver breaks an invariant.
pub fn run(data: &[u8]) {
    run_counting(data);
}

/// [`run`], returning what the program reached.
pub fn run_counting(data: &[u8]) -> Reached {
    let mut b = Bytes(data);
    let seed = u64::from(b.u32());
    let config = ReceiverConfig {
        backoff: Some((Duration::from_millis(100), Duration::from_millis(900))),
        missed_key_holdoff: Duration::from_secs(5),
        // The Key Groups of `msk_id`: MTKs under a missing MSK ask for it.
        key_groups: vec![(KD, 1), (KD, 2)],
        ..ReceiverConfig::default()
    };
    let epoch = Instant::now();
    let mut run = Run {
        reached: Reached::default(),
        rx: Receiver::new(config.clone(), rng(seed)),
        epoch,
        now: epoch,
        history: Vec::new(),
        last_counter: 0,
    };
    run.rx.set_muk(muk_id(0), muk_key(0));
    for _ in 0..MAX_STEPS {
        if b.0.is_empty() {
            break;
        }
        run.step(&mut b, &config, seed);
    }
    run.reached
}

/// Deterministic, reproducible runs.
fn rng(seed: u64) -> Box<dyn Random> {
    Box::new(Seeded::new(seed))
}

impl Run {
    fn step(&mut self, b: &mut Bytes<'_>, config: &ReceiverConfig, seed: u64) {
        let mut before = Snapshot::of(&self.rx);
        let mut rekeyed = None;
        let mut sent = None;
        let mut is_mtk = false;
        let mut ack = None;
        match b.u8() % 12 {
            0 => {
                let n = usize::from(b.u8());
                let d = b.take(n).to_vec();
                ack = self.feed(d);
            }
            1..=4 => ack = self.feed_msk(b),
            5 | 6 => {
                is_mtk = true;
                sent = self.feed_mtk(b);
            }
            7 => {
                let ms = u64::from(b.u16());
                self.now = self
                    .now
                    .checked_add(Duration::from_millis(ms))
                    .unwrap_or(self.now);
            }
            8 => {
                if let Some(t) = self.rx.poll_timeout() {
                    assert!(t >= self.epoch, "a timer before the epoch");
                }
                self.rx.handle_timeout(self.now);
            }
            9 => {
                self.save_restore(b, config, seed);
                // A restored receiver starts fresh statistics.
                before = Snapshot::of(&self.rx);
            }
            10 => {
                let (id, key) = (b.u8() % 2, b.u8());
                rekeyed = Some(muk_id(id));
                self.rx.set_muk(muk_id(id), muk_key(key));
            }
            _ => {
                // Replay an earlier datagram, optionally with one bit flipped.
                let (which, flip) = (usize::from(b.u8()), b.u16());
                if let Some(d) = self.history.get(which % HISTORY.max(1)).cloned() {
                    let mut d = d;
                    let bit = usize::from(flip >> 1);
                    let at = bit / 8 % d.len().max(1);
                    if flip & 1 == 1
                        && let Some(octet) = d.get_mut(at)
                    {
                        *octet ^= 1 << (bit % 8);
                    }
                    ack = self.feed(d);
                }
            }
        }
        let events: Vec<Event> = std::iter::from_fn(|| self.rx.poll_event()).collect();
        let after = Snapshot::of(&self.rx);
        self.reached.msk_accepted += after.msk_accepted.saturating_sub(before.msk_accepted);
        self.tally(&events, ack.is_some());
        check(&before, &after, &events, rekeyed.as_ref(), sent.as_ref());
        if is_mtk {
            assert!(ack.is_none(), "an answer to an MTK message");
        }
        if ack.is_some() {
            assert_eq!(
                after.msk_accepted,
                before.msk_accepted + 1,
                "an acknowledgement for a message that was not accepted"
            );
        }
    }

    fn feed(&mut self, d: Vec<u8>) -> Option<Vec<u8>> {
        let ack = self.rx.handle_datagram(self.now, &d);
        if self.history.len() >= HISTORY {
            self.history.remove(0);
        }
        self.history.push(d);
        ack
    }

    fn feed_msk(&mut self, b: &mut Bytes<'_>) -> Option<Vec<u8>> {
        let (kind, id, key, flags) = (b.u8() % 4, b.u8(), b.u8(), b.u8());
        let (seql, sequ) = (b.u16(), b.u16());
        let update = match kind {
            0 => MskUpdate::NewKey {
                msk: msk_key(key),
                seql,
                sequ,
            },
            1 => MskUpdate::ValidityOnly {
                seql: seql.min(sequ),
                sequ: seql.max(sequ),
            },
            2 => MskUpdate::Invalidate {
                seql: profile::INVALIDATION_SEQL,
                sequ: profile::INVALIDATION_SEQU,
            },
            _ => MskUpdate::SolicitedPull,
        };
        let mut msk_id = msk_id(id);
        if matches!(update, MskUpdate::SolicitedPull) {
            msk_id.key_number = 0;
        }
        let c = counter(b, &mut self.last_counter);
        let mut rand = [0u8; profile::MSK_RAND_LEN];
        rand[..4].copy_from_slice(&c.to_be_bytes());
        let idr = (flags >> 2) % 3;
        let mut d = MskDelivery::new(
            KD,
            msk_id,
            c,
            rand.to_vec(),
            IDI,
            IDR[usize::from(idr)],
            update,
        );
        d.v = flags & 1 == 1;
        // Mostly the MUK set for that ID; sometimes the other one (a MAC failure).
        let muk = muk_key((idr % 2) ^ u8::from(flags & 0x22 == 0x22));
        let msg = build_msk(&muk, &d).ok()?;
        self.feed(msg)
    }

    fn feed_mtk(&mut self, b: &mut Bytes<'_>) -> Option<Sent> {
        let (id, key, flags) = (b.u8(), b.u8(), b.u8());
        let mtk_id = MtkId(b.u16());
        let msk_id = msk_id(id);
        let c = counter(b, &mut self.last_counter);
        let mtk = Mtk::from_bytes([flags; 16]);
        let d = MtkDelivery {
            key_domain_id: KD,
            msk_id,
            csb_id: profile::csb_id_for(msk_id),
            mtk_id,
            counter: c,
            mtk: mtk.clone(),
            salt: (flags & 1 == 1).then(|| Salt::from_bytes([flags; 14])),
            streaming: None,
        };
        let keys = MtkKeys::new(&msk_key(key), d.csb_id);
        let msg = build_mtk(&keys, &d).ok()?;
        let ack = self.feed(msg);
        assert!(ack.is_none(), "an answer to an MTK message");
        Some(Sent { mtk })
    }

    fn save_restore(&mut self, b: &mut Bytes<'_>, config: &ReceiverConfig, seed: u64) {
        let key = StateKey::from_bytes(STATE_KEY);
        let blob = self.rx.save(&key);
        let flip = b.u16();
        if flip & 1 == 1 {
            let mut bad = blob.clone();
            let bit = usize::from(flip >> 1) % (bad.len() * 8);
            if let Some(octet) = bad.get_mut(bit / 8) {
                *octet ^= 1 << (bit % 8);
            }
            assert!(
                Receiver::restore(config.clone(), rng(seed), &key, &bad).is_err(),
                "a tampered state blob was restored"
            );
        }
        let restored = match Receiver::restore(config.clone(), rng(seed), &key, &blob) {
            Ok(r) => r,
            Err(e) => panic!("own state blob refused: {e}"),
        };
        let (old, new) = (Snapshot::of(&self.rx), Snapshot::of(&restored));
        assert_eq!(old.msks, new.msks, "restore changed the MSKs");
        assert_eq!(old.muks, new.muks, "restore changed the MUK counters");
        self.rx = restored;
        self.reached.restores += 1;
    }

    fn tally(&mut self, events: &[Event], acked: bool) {
        let r = &mut self.reached;
        r.acks += u64::from(acked);
        for e in events {
            match e {
                Event::MtkReady { .. } => r.mtk_ready += 1,
                Event::MskInstalled { .. } => r.installed += 1,
                Event::MskInvalidated { .. } => r.invalidated += 1,
                Event::MskRequestNeeded { .. } => r.requests += 1,
                Event::Discarded { .. } => r.discards += 1,
                Event::MskUpdated { .. } | Event::MskRequestFailed { .. } => {}
            }
        }
    }
}

/// What the invariants compare, read through the public API.
struct Snapshot {
    muks: Vec<(u8, Option<Option<u32>>)>,
    msks: BTreeMap<(KeyDomainId, MskId), MskInfo>,
    msk_accepted: u64,
    discards: u64,
}

impl Snapshot {
    fn of(rx: &Receiver) -> Self {
        Self {
            muks: (0..2u8).map(|i| (i, rx.muk_counter(&muk_id(i)))).collect(),
            msks: rx
                .msks()
                .map(|i| ((i.key_domain_id, i.msk_id), i))
                .collect(),
            msk_accepted: rx.stats().msk_accepted,
            discards: rx.stats().total_discards(),
        }
    }
}

fn not_back(before: Option<u32>, after: Option<u32>) -> bool {
    match (before, after) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(b), Some(a)) => a == b || is_newer(a, Some(b)),
    }
}

fn check(
    before: &Snapshot,
    after: &Snapshot,
    events: &[Event],
    rekeyed: Option<&MukId>,
    sent: Option<&Sent>,
) {
    for ((i, b), (_, a)) in before.muks.iter().zip(&after.muks) {
        if rekeyed == Some(&muk_id(*i)) {
            continue;
        }
        if let (Some(b), Some(a)) = (b, a) {
            assert!(
                not_back(*b, *a),
                "MUK {i} counter went back: {b:?} -> {a:?}"
            );
        }
    }
    let reinstalled = |key: &(KeyDomainId, MskId)| {
        events.iter().any(|e| {
            matches!(e, Event::MskInstalled { key_domain_id, msk_id, .. }
                | Event::MskInvalidated { key_domain_id, msk_id }
                if (*key_domain_id, *msk_id) == *key)
        })
    };
    for (key, b) in &before.msks {
        let Some(a) = after.msks.get(key) else {
            continue;
        };
        if reinstalled(key) {
            continue;
        }
        assert!(not_back(b.counter, a.counter), "MSK counter went back");
        assert!(a.seqs >= b.seqs, "SEQs went back: {} -> {}", b.seqs, a.seqs);
    }
    let mut discarded = 0;
    for e in events {
        match e {
            Event::MtkReady {
                key_domain_id,
                msk_id,
                mtk_id,
                mtk,
                ..
            } => {
                let key = (*key_domain_id, *msk_id);
                let (Some(b), Some(a)) = (before.msks.get(&key), after.msks.get(&key)) else {
                    panic!("MtkReady for an MSK not stored");
                };
                assert!(
                    mtk_id.0 > b.seqs && mtk_id.0 <= b.sequ,
                    "MtkReady outside (SEQs, SEQu]: {mtk_id:?} vs ({}, {}]",
                    b.seqs,
                    b.sequ
                );
                assert_eq!(a.seqs, mtk_id.0, "SEQs is not the accepted MTK ID");
                if let Some(s) = sent {
                    assert!(*mtk == s.mtk, "MtkReady with another MTK than sent");
                }
            }
            Event::Discarded { .. } => discarded += 1,
            _ => {}
        }
    }
    assert_eq!(
        after.discards - before.discards,
        discarded,
        "a discard was not counted"
    );
}
