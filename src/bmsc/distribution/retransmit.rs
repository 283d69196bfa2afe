//! What happens to an MSK push after it left (docs/profile.md §2.2; RFC 3830 §5.2): the UE's
//! acknowledgement, or retransmission and in the end giving up.
//!
//! An acknowledgement is found by its counter (one allocator for every message, so a counter
//! names one push), then checked against the push's CSB ID and IDr (or the sender's address
//! when it carries no IDr) and verified with the keys of the acknowledged message, derived
//! again from the cached MUK and the push's RAND. Retransmissions rebuild the same bytes (same
//! counter, RAND and keys) rather than keeping the messages alive; they back off from
//! `initial_backoff` doubling to `max_backoff`, `retries` times, then the push counts as failed.
//! A UE acknowledges only a message it accepts and discards a repeat of one it already accepted
//! as a replay (docs/profile.md §3), so a retransmission recovers a lost push, not a lost
//! acknowledgement.

use std::cmp::Reverse;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::mbms::profile::csb_id_for;
use crate::mbms::{AckContext, UnverifiedAck};

use super::push::{PushKind, build_one, counter_at};
use super::{Datagram, DistributionError, Distributor, par_map};

impl Distributor {
    /// Wait before retransmission `attempts + 1`: initial_backoff doubled per attempt, at most
    /// max_backoff (and at least a millisecond).
    pub(super) fn backoff(&self, attempts: u32) -> Duration {
        let factor = 1u32.checked_shl(attempts.min(31)).unwrap_or(u32::MAX);
        self.push
            .initial_backoff
            .saturating_mul(factor)
            .min(self.push.max_backoff)
            .max(Duration::from_millis(1))
    }

    /// An acknowledgement: matched by counter, then CSB ID and IDr (or the sender's address
    /// when it carries no IDr), then verified with the keys of the acknowledged message.
    pub(super) fn handle_ack(&mut self, from: SocketAddr, bytes: &[u8]) {
        if self.match_ack(from, bytes).is_none() {
            self.metrics.acks_rejected.inc();
        }
    }

    fn match_ack(&mut self, from: SocketAddr, bytes: &[u8]) -> Option<()> {
        let ack = UnverifiedAck::parse(bytes).ok()?;
        if self.own_push(ack.counter()).is_none() {
            // Another node's push, perhaps (docs/cluster.md "Acknowledgements at another node").
            return self
                .note_foreign_ack(from, bytes, ack.counter())
                .then_some(());
        }
        self.verify_ack(from, ack)
    }

    /// The push (batch, index) of this node with `counter`, open or closed.
    fn own_push(&self, counter: u32) -> Option<(u32, usize)> {
        let (&first, batch) = self.pushes.batches.range(..=counter).next_back()?;
        let index = usize::try_from(counter.wrapping_sub(first)).ok()?;
        batch.targets.get(index).map(|_| (first, index))
    }

    /// An acknowledgement received at another node and recorded for this one, verified and
    /// matched as a direct one; whether it closed a push.
    pub(super) fn verify_own_ack(&mut self, from: SocketAddr, bytes: &[u8]) -> Option<()> {
        let ack = UnverifiedAck::parse(bytes).ok()?;
        self.verify_ack(from, ack)
    }

    /// Checks `ack` against the push of its counter (CSB ID, IDr or the sender's address,
    /// MAC with the push's keys) and closes the push.
    fn verify_ack(&mut self, from: SocketAddr, ack: UnverifiedAck<'_>) -> Option<()> {
        let counter = ack.counter();
        let (first, index) = self.own_push(counter)?;
        let pushes = &self.pushes;
        let t = pushes.batches.get(&first)?.targets.get(index)?;
        let csb_id = csb_id_for(t.msk_id);
        if t.done || ack.csb_id() != csb_id {
            return None;
        }
        match ack.idr() {
            Some(idr) if idr != t.btid.as_bytes() => return None,
            None if from.ip() != t.ip => return None,
            _ => {}
        }
        let keys = pushes.muks.get(&*t.btid)?.muk.keys(csb_id, &t.rand);
        let ctx = AckContext::new(
            keys,
            csb_id,
            counter,
            self.fqdn.as_bytes(),
            t.btid.as_bytes(),
        );
        ack.verify(&ctx).ok()?;
        let (key_domain, msk_id, kind) = (t.key_domain, t.msk_id, t.kind);
        let btid = t.btid.clone();
        self.pushes.close(first, index);
        self.metrics.pushes_acked.inc();
        if kind == PushKind::NewKey {
            self.note_ack(key_domain, msk_id, &btid);
        }
        Some(())
    }

    /// Retransmits the batches due at `now` (at most a few batches' worth of messages per call;
    /// the rest stays due), and gives up those past the retry limit.
    pub(super) fn retransmit_due(&mut self, now: Instant) -> Result<(), DistributionError> {
        if self.pushes.next_deadline().is_some_and(|t| t <= now) {
            self.close_acked_at_other_nodes(now);
        }
        let mut budget = self.tuning.batch_size.max(1).saturating_mul(4);
        while budget > 0 {
            let Some(&Reverse((at, first))) = self.pushes.timers.peek() else {
                break;
            };
            if at > now {
                break;
            }
            self.pushes.timers.pop();
            if self
                .pushes
                .batches
                .get(&first)
                .is_none_or(|b| b.next_at != at)
            {
                continue;
            }
            self.close_acked_elsewhere(first);
            let Some(batch) = self.pushes.batches.get(&first) else {
                continue;
            };
            if batch.attempts >= self.push.retries {
                self.give_up(first);
                continue;
            }
            let open: Vec<usize> = (0..batch.targets.len())
                .filter(|i| batch.targets.get(*i).is_some_and(|t| !t.done))
                .collect();
            let built = par_map(&open, self.tuning.build_threads, |_, i| {
                batch.targets.get(*i).and_then(|t| {
                    build_one(
                        &self.groups,
                        &self.pushes.muks,
                        &self.fqdn,
                        t,
                        counter_at(first, *i),
                    )
                })
            });
            let attempts = batch.attempts + 1;
            let next_at = now + self.backoff(attempts);
            let mut datagrams = Vec::with_capacity(open.len());
            let mut lost = Vec::new();
            for (i, bytes) in open.into_iter().zip(built) {
                match (bytes, batch.targets.get(i)) {
                    (Some(bytes), Some(t)) => datagrams.push(Datagram {
                        to: SocketAddr::new(t.ip, self.ue_port),
                        bytes: Bytes::from(bytes),
                    }),
                    _ => lost.push(i),
                }
            }
            budget = budget.saturating_sub(datagrams.len().max(1));
            self.metrics.pushes_retried.add(datagrams.len() as u64);
            for i in lost {
                self.fail_target(first, i);
            }
            if let Some(batch) = self.pushes.batches.get_mut(&first) {
                batch.attempts = attempts;
                batch.next_at = next_at;
                self.pushes.timers.push(Reverse((next_at, first)));
            }
            self.send(datagrams);
        }
        Ok(())
    }

    /// Counts every open push of a batch as failed and forgets the batch.
    fn give_up(&mut self, first: u32) {
        let Some(batch) = self.pushes.batches.remove(&first) else {
            return;
        };
        let mut failed = 0u64;
        for t in batch.targets.iter().filter(|t| !t.done) {
            failed += 1;
            if let Some(e) = self.pushes.muks.get_mut(&*t.btid) {
                e.pending = e.pending.saturating_sub(1);
            }
        }
        self.pushes.pending = self.pushes.pending.saturating_sub(batch.remaining);
        self.metrics.pushes_failed.add(failed);
        if failed > 0 {
            tracing::debug!(failed, "MSK pushes not acknowledged after the retries");
        }
    }

    /// Closes one push of a batch whose MUK or MSK is gone, as failed.
    fn fail_target(&mut self, first: u32, index: usize) {
        if self.pushes.close(first, index) {
            self.metrics.pushes_failed.inc();
        }
    }
}
