//! Shared MSK fan-out on a store shared by several BM-SC nodes (docs/cluster.md "Shared
//! fan-out").
//!
//! The owner of an MSK group does not push a new MSK to every registered UE alone: it writes
//! the fan-out's work items (ranges of B-TIDs of one service,
//! [`Store::create_fanout_items`](crate::bmsc::store::Store::create_fanout_items)) and waits
//! until every item's first pushes went out. Every node, owner included, polls for items it
//! can claim (every quarter of the lease), holds each under a lease it renews while it works,
//! pushes the MSK to the UEs of the item a page at a time (counter blocks reserved as for
//! every batch), retransmits as for any push, and closes the item once each of its pushes was
//! acknowledged or given up. A node killed mid fan-out stops renewing: its leases run out
//! within one lease (one push retransmission interval by default) and the other nodes claim
//! its items, pushing again to the UEs of the item that did not acknowledge.
//!
//! Acknowledgements are recorded in the store, many per statement: a node about to
//! retransmit to a UE, or to push to it for an item taken over, skips it when its
//! acknowledgement is recorded, whatever node received it.

use std::time::{Duration, Instant};

use crate::bmsc::store::{AckedPush, FanoutItem, Lease};
use crate::gba::Btid;
use crate::mikey::{KeyDomainId, MskId};

use super::foreign_ack::ForeignAcks;
use super::push::PushKind;
use super::{DistributionError, Distributor, Now};

/// Items a node holds at once: one whose pushes are being sent, the others waiting for
/// acknowledgements or retransmissions (an item is held for its whole retry span when UEs do
/// not answer, so this bounds how far one node gets ahead: 1,024 items are 1,048,576 UEs at
/// the default `fanout_item_size`; with 64, a fan-out to 100,000 UEs that do not acknowledge
/// stalled after 65,536 pushes until the first items' retries ran out).
const MAX_HELD: usize = 1024;
/// Acknowledgements wait at most this long to be recorded together.
const ACK_FLUSH: Duration = Duration::from_millis(50);
/// Acknowledgements recorded in one statement at most; more are recorded at once.
const ACK_FLUSH_MAX: usize = 4096;
/// Wait before an item's next page after a store error.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);
/// At most one line per this interval for a repeated failure of the shared fan-out.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// An item this node holds.
struct Held {
    item: FanoutItem,
    group: usize,
    /// Last B-TID of the previous page.
    after: Option<Btid>,
    /// Pages remain to be pushed.
    sending: bool,
    /// The batches of its pushes (first counters): the item closes once none is left.
    batches: Vec<u32>,
    epoch: u32,
    not_before: Instant,
}

/// This node's part in the shared fan-outs.
#[derive(Default)]
pub(super) struct SharedWork {
    /// The node's name in the store's claims; empty on an unshared store (nothing runs).
    node: String,
    held: Vec<Held>,
    poll_at: Option<Instant>,
    renew_at: Option<Instant>,
    acks: Vec<AckedPush>,
    /// Acknowledgements of other nodes' pushes, flushed with `acks`.
    pub(super) foreign: ForeignAcks,
    flush_at: Option<Instant>,
    /// When a failure was last logged.
    logged_at: Option<Instant>,
}

impl SharedWork {
    /// Items held now.
    pub(super) fn held(&self) -> usize {
        self.held.len()
    }

    /// Whether this node works on a shared store.
    pub(super) fn shares(&self) -> bool {
        !self.node.is_empty()
    }
}

/// Whether a page of a work item's range is its last: a short page is; so is a full one
/// that reached the range's upper bound `until` (no query for an empty page then).
fn page_ends_range(len: usize, limit: usize, last: Option<&Btid>, until: Option<&Btid>) -> bool {
    len < limit || until.is_some_and(|u| last == Some(u))
}

impl Distributor {
    /// docs/profile.md §6 \[CHOICE\] "fan-out lease": `[cluster] fanout_lease`, by default
    /// `[push] initial_backoff` (one retransmission interval).
    pub(super) fn fanout_lease(&self) -> Duration {
        self.cluster
            .fanout_lease
            .unwrap_or(self.push.initial_backoff)
            .max(Duration::from_millis(20))
    }

    /// How often a node looks for items to claim: a quarter of the lease, 5 ms to 1 s.
    pub(super) fn fanout_poll(&self) -> Duration {
        (self.fanout_lease() / 4).clamp(Duration::from_millis(5), Duration::from_secs(1))
    }

    /// On a shared store, from the start: names this node in its claims (process id and a
    /// random suffix) and polls for items at once.
    pub(super) fn start_shared_fanout(&mut self, now: Now) {
        if !self.store.is_shared() {
            return;
        }
        let suffix: [u8; 4] = self.random();
        self.work.node = format!("{}-{}", std::process::id(), hex::encode(suffix));
        self.work.poll_at = Some(now.mono);
        tracing::info!(node = %self.work.node, "cluster: this node claims fan-out work items");
    }

    /// An acknowledgement matched and verified here: recorded in the store with the next
    /// flush, for the other nodes.
    pub(super) fn note_ack(&mut self, key_domain: KeyDomainId, msk_id: MskId, btid: &str) {
        if !self.work.node.is_empty() {
            self.work.acks.push((key_domain, msk_id, btid.to_owned()));
        }
    }

    /// The earliest deadline of the shared fan-out.
    pub(super) fn shared_deadline(&self) -> Option<Instant> {
        let w = &self.work;
        let sending = w.held.iter().filter(|h| h.sending).map(|h| h.not_before);
        let renew = w.renew_at.filter(|_| !w.held.is_empty());
        let flush = w
            .flush_at
            .filter(|_| !w.acks.is_empty() || !w.foreign.pending.is_empty());
        sending.chain(w.poll_at).chain(renew).chain(flush).min()
    }

    /// Logs a failure of the shared fan-out, at most once per [`LOG_EVERY`].
    pub(super) fn log_shared(&mut self, now: Instant, what: &str, e: &dyn std::fmt::Display) {
        if self.work.logged_at.is_none_or(|t| now >= t + LOG_EVERY) {
            self.work.logged_at = Some(now);
            tracing::warn!("shared MSK fan-out: {what}: {e}");
        }
    }

    /// Everything of the shared fan-out due at `now`: recording acknowledgements, renewing
    /// leases, closing finished items, claiming one, pushing one page.
    pub(super) fn shared_step(&mut self, now: Now) {
        if self.work.node.is_empty() {
            return;
        }
        let mono = now.mono;
        let waiting = self.work.acks.len() + self.work.foreign.pending.len();
        if waiting > 0 {
            let due = *self.work.flush_at.get_or_insert(mono + ACK_FLUSH);
            if mono >= due || waiting >= ACK_FLUSH_MAX {
                let acks = std::mem::take(&mut self.work.acks);
                self.work.flush_at = None;
                if let Err(e) = self.store.record_acks(&acks) {
                    // Recording is an optimisation: a UE not marked is pushed to again.
                    self.log_shared(mono, "acknowledgements not recorded", &e);
                }
                self.flush_foreign_acks(mono);
            }
        }
        if !self.work.held.is_empty() && self.work.renew_at.is_none_or(|t| mono >= t) {
            self.renew_leases(mono);
        }
        self.close_finished(mono);
        if self.work.poll_at.is_some_and(|t| mono >= t) {
            self.work.poll_at = Some(mono + self.fanout_poll());
            if !self.work.held.iter().any(|h| h.sending)
                && self.work.held.len() < MAX_HELD
                && self.claim_item(now)
            {
                // More may be waiting: the next claim once this item's pages are out.
                self.work.poll_at = Some(mono);
            }
        }
        if let Some(i) = self
            .work
            .held
            .iter()
            .position(|h| h.sending && mono >= h.not_before)
            && let Err(e) = self.item_step(i, now)
        {
            if let Some(h) = self.work.held.get_mut(i) {
                h.not_before = mono + RETRY_AFTER_ERROR;
            }
            self.log_shared(mono, "pushing a work item", &e);
        }
    }

    fn lease(&self) -> (String, Duration) {
        (self.work.node.clone(), self.fanout_lease())
    }

    fn renew_leases(&mut self, mono: Instant) {
        let (node, duration) = self.lease();
        self.work.renew_at = Some(mono + duration / 3);
        match self.store.renew_fanout_items(Lease {
            node: &node,
            duration,
        }) {
            Ok(still) => {
                let before = self.work.held.len();
                self.work
                    .held
                    .retain(|h| still.contains(&(h.item.key_domain, h.item.msk_id, h.item.item)));
                let lost = before - self.work.held.len();
                if lost > 0 {
                    // Its lease ran out (this node was too slow): another node has it now.
                    self.log_shared(
                        mono,
                        "work items taken by another node (a lease ran out)",
                        &lost,
                    );
                }
            }
            Err(e) => self.log_shared(mono, "leases not renewed", &e),
        }
    }

    /// Closes the items whose pages are all pushed and whose pushes are all acknowledged or
    /// given up.
    fn close_finished(&mut self, mono: Instant) {
        let mut i = 0;
        while i < self.work.held.len() {
            let h = &self.work.held[i];
            let finished = !h.sending
                && !h
                    .batches
                    .iter()
                    .any(|b| self.pushes.batches.contains_key(b));
            if !finished {
                i += 1;
                continue;
            }
            let item = h.item.clone();
            match self.store.mark_fanout_item(&self.work.node, &item, true) {
                Ok(()) => {
                    self.metrics.fanout_items_done.inc();
                    tracing::debug!(msk_id = %item.msk_id, item = item.item, "work item done");
                    self.work.held.remove(i);
                }
                Err(e) => {
                    self.log_shared(mono, "work item not closed", &e);
                    i += 1;
                }
            }
        }
    }

    /// Claims one item of a fan-out of an MSK this node holds: whether it got one.
    fn claim_item(&mut self, now: Now) -> bool {
        let msks: Vec<(KeyDomainId, MskId)> = self
            .groups
            .iter()
            .flat_map(|g| g.held().map(move |s| (g.key_domain, s.msk_id())))
            .collect();
        if msks.is_empty() {
            return false;
        }
        let (node, duration) = self.lease();
        let item = match self.store.claim_fanout_item(
            Lease {
                node: &node,
                duration,
            },
            &msks,
        ) {
            Ok(Some(item)) => item,
            Ok(None) => return false,
            Err(e) => {
                self.log_shared(now.mono, "no work item claimed", &e);
                return false;
            }
        };
        let Some(group) = self.group_of(item.key_domain, item.msk_id.key_group) else {
            return false;
        };
        self.metrics.fanout_items_claimed.inc();
        tracing::debug!(msk_id = %item.msk_id, item = item.item, claims = item.claims, "work item claimed");
        let epoch = self.next_epoch;
        self.next_epoch = self.next_epoch.wrapping_add(1).max(1);
        self.work.renew_at.get_or_insert(now.mono + duration / 3);
        self.work.held.push(Held {
            after: item.after.clone(),
            item,
            group,
            sending: true,
            batches: Vec::new(),
            epoch,
            not_before: now.mono,
        });
        true
    }

    /// One page of held item `i`: the MSK to each UE of the page that did not acknowledge it
    /// (looked up for an item taken over from another node).
    fn item_step(&mut self, i: usize, now: Now) -> Result<(), DistributionError> {
        let Some(h) = self.work.held.get(i) else {
            return Ok(());
        };
        let (g, item, epoch) = (h.group, h.item.clone(), h.epoch);
        let key_domain = item.key_domain;
        if self.groups[g].slot(item.msk_id).is_none() {
            // The MSK is gone (retired): nothing more to push.
            self.work.held[i].sending = false;
            return Ok(());
        }
        let limit = self.tuning.batch_size.max(1);
        let mut page = self.store.registrations_in_range(
            &item.service_id,
            h.after.as_ref(),
            item.until.as_ref(),
            limit,
        )?;
        let end = page_ends_range(
            page.len(),
            limit,
            page.last().map(|m| &m.btid),
            item.until.as_ref(),
        );
        if let Some(h) = self.work.held.get_mut(i) {
            h.after = page.last().map(|m| m.btid.clone()).or(h.after.take());
            h.sending = !end;
        }
        if item.claims > 1 && !page.is_empty() {
            let btids: Vec<&str> = page.iter().map(|m| m.btid.as_str()).collect();
            let acked = self.store.acked(key_domain, item.msk_id, &btids)?;
            page.retain(|m| !acked.iter().any(|a| a == m.btid.as_str()));
        }
        let (targets, pulls) = self.page_targets(page, key_domain, item.msk_id, epoch, now);
        if let Some((first, sent)) = self.send_pushes_batch(targets, now)? {
            self.metrics.fanout_messages.add(sent as u64);
            if let Some(h) = self.work.held.get_mut(i) {
                h.batches.push(first);
            }
        }
        self.send_pulls(pulls)?;
        if end {
            self.store.mark_fanout_item(&self.work.node, &item, false)?;
            tracing::debug!(msk_id = %item.msk_id, item = item.item, "work item sent");
        }
        Ok(())
    }

    /// Before retransmitting batch `first` of a work item: closes its pushes whose
    /// acknowledgement another node recorded (it pushed to the same UEs after it took the
    /// item over from this node, too slow to renew its lease). One query per retransmission
    /// of a work item's batch; other batches are not looked up.
    pub(super) fn close_acked_elsewhere(&mut self, first: u32) {
        if !self.work.held.iter().any(|h| h.batches.contains(&first)) {
            return;
        }
        let Some(batch) = self.pushes.batches.get(&first) else {
            return;
        };
        let mut by_msk: Vec<((KeyDomainId, MskId), Vec<usize>)> = Vec::new();
        for (i, t) in batch.targets.iter().enumerate() {
            if t.done || t.kind != PushKind::NewKey {
                continue;
            }
            let key = (t.key_domain, t.msk_id);
            match by_msk.iter_mut().find(|(k, _)| *k == key) {
                Some((_, v)) => v.push(i),
                None => by_msk.push((key, vec![i])),
            }
        }
        let mut closed = Vec::new();
        for ((key_domain, msk_id), indices) in by_msk {
            let btids: Vec<&str> = indices.iter().map(|i| &*batch.targets[*i].btid).collect();
            let Ok(acked) = self.store.acked(key_domain, msk_id, &btids) else {
                // Retransmitted then: the UE discards a message it already accepted.
                continue;
            };
            closed.extend(
                indices
                    .into_iter()
                    .filter(|i| acked.iter().any(|a| *a == *batch.targets[*i].btid)),
            );
        }
        for i in closed {
            self.pushes.close(first, i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::page_ends_range;
    use crate::gba::Btid;

    fn btid(i: u32) -> Btid {
        format!("btid{i:04}@bsf.example.org").parse().expect("btid")
    }

    #[test]
    fn a_page_ends_its_range_when_short_or_at_the_upper_bound() {
        let (b3, b9) = (btid(3), btid(9));
        // Short pages end the range, bound or not; an empty one too.
        assert!(page_ends_range(3, 4, Some(&b3), Some(&b9)));
        assert!(page_ends_range(3, 4, Some(&b3), None));
        assert!(page_ends_range(0, 4, None, Some(&b9)));
        // A full page ends it only when its last B-TID is the bound.
        assert!(page_ends_range(4, 4, Some(&b9), Some(&b9)));
        assert!(!page_ends_range(4, 4, Some(&b3), Some(&b9)));
        assert!(!page_ends_range(4, 4, Some(&b3), None));
    }
}
