//! Acknowledgements that arrive at another node of a cluster (docs/cluster.md
//! "Acknowledgements at another node"; the choice is at `note_foreign_ack`).
//!
//! A node that receives a well-formed acknowledgement whose counter names no push of its own
//! cannot verify it (it lacks the push's RAND). On a shared store it records it unverified:
//! at most [`FOREIGN_ACKS_PER_SECOND`] a second, with the verified acknowledgements' flush
//! (one statement), and the store keeps only counters of the cluster's recent counter blocks
//! and rows younger than the push retransmission span. The node that sent the push (counters
//! are unique cluster-wide) reads, before retransmitting, the recorded acknowledgements of
//! every push due, verifies each with its own push context exactly as a direct one, and
//! closes the pushes whose acknowledgement verifies; any other is ignored and counted.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::Distributor;
use crate::bmsc::store::{FOREIGN_ACK_MAX_LEN, ForeignAck};

/// Foreign acknowledgements a node records per second at most; more are dropped (counted).
pub(super) const FOREIGN_ACKS_PER_SECOND: u32 = 2000;

/// Counters of due pushes looked up in one statement at most.
const LOOKUP_MAX: usize = 65_536;

/// This node's foreign acknowledgements waiting for the flush, and its rate cap.
#[derive(Default)]
pub(super) struct ForeignAcks {
    pub(super) pending: Vec<ForeignAck>,
    /// Start of the current one-second window and acknowledgements taken in it.
    window: Option<(Instant, u32)>,
}

impl Distributor {
    /// How long retransmissions of a push go on: every backoff of the retries summed.
    pub(super) fn retry_span(&self) -> Duration {
        (0..=self.push.retries).fold(Duration::ZERO, |sum, attempt| {
            sum.saturating_add(self.backoff(attempt))
        })
    }

    /// docs/profile.md §6 \[CHOICE\] "acknowledgements in a cluster": a well-formed
    /// acknowledgement with `counter`, which names no push of this node, is kept for the node
    /// that sent it (with the next flush), within the rate cap. Whether it was taken care of
    /// here (false: no shared store, rejected as before).
    pub(super) fn note_foreign_ack(
        &mut self,
        from: SocketAddr,
        bytes: &[u8],
        counter: u32,
    ) -> bool {
        if !self.work.shares() {
            return false;
        }
        let now = self.last_now.mono;
        let f = &mut self.work.foreign;
        let (start, taken) = f.window.get_or_insert((now, 0));
        if now >= *start + Duration::from_secs(1) {
            (*start, *taken) = (now, 0);
        }
        // Size checked before anything is kept (an acknowledgement is under 100 octets).
        if *taken >= FOREIGN_ACKS_PER_SECOND || bytes.len() > FOREIGN_ACK_MAX_LEN {
            self.metrics.fanout_foreign_acks_dropped.inc();
            return true;
        }
        *taken += 1;
        f.pending.push(ForeignAck {
            counter,
            from,
            bytes: bytes.to_vec(),
        });
        true
    }

    /// Writes the foreign acknowledgements waiting (one statement), pruning old rows.
    pub(super) fn flush_foreign_acks(&mut self, mono: Instant) {
        let acks = std::mem::take(&mut self.work.foreign.pending);
        if acks.is_empty() {
            return;
        }
        match self.store.record_foreign_acks(&acks, self.retry_span()) {
            Ok(()) => self
                .metrics
                .fanout_foreign_acks_recorded
                .add(acks.len() as u64),
            Err(e) => {
                self.metrics
                    .fanout_foreign_acks_dropped
                    .add(acks.len() as u64);
                self.log_shared(mono, "foreign acknowledgements not recorded", &e);
            }
        }
    }

    /// Before the retransmissions due at `now`: the acknowledgements other nodes recorded for
    /// the open pushes of every batch due (one statement), each verified as a direct one; a
    /// verified one closes its push.
    pub(super) fn close_acked_at_other_nodes(&mut self, now: Instant) {
        if !self.work.shares() {
            return;
        }
        let mut counters = Vec::new();
        for std::cmp::Reverse((at, first)) in self.pushes.timers.iter() {
            if *at > now || counters.len() >= LOOKUP_MAX {
                continue;
            }
            let Some(batch) = self.pushes.batches.get(first).filter(|b| b.next_at == *at) else {
                continue;
            };
            for (i, t) in batch.targets.iter().enumerate() {
                if !t.done && counters.len() < LOOKUP_MAX {
                    counters.push(super::push::counter_at(*first, i));
                }
            }
        }
        if counters.is_empty() {
            return;
        }
        let found = match self.store.foreign_acks(&counters) {
            Ok(found) => found,
            Err(e) => {
                // Retransmitted then: the UE discards a message it already accepted.
                self.log_shared(now, "foreign acknowledgements not read", &e);
                return;
            }
        };
        for a in found {
            if self.verify_own_ack(a.from, &a.bytes).is_some() {
                self.metrics.fanout_foreign_acks_verified.inc();
            } else {
                self.metrics.fanout_foreign_acks_dropped.inc();
            }
        }
    }
}
