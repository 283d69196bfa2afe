//! The distribution on a store shared by several BM-SC nodes (docs/cluster.md).
//!
//! Each MSK group (Key Domain ID, Key Group) has one owner at a time
//! ([`Store::claim_ownership`](crate::bmsc::store::Store::claim_ownership)): the owner rotates
//! its MSKs, makes and sends its MTKs and fans a new MSK out, as a lone BM-SC does. Every node
//! tries to take the groups it does not own once per `[cluster] takeover_after` (which also
//! checks that what it owns is still held); a node that takes a group over reloads it from the
//! store as a restart does: it finishes an interrupted switch-over and pushes a next MSK whose
//! fan-out may have been cut short again. A node that loses a group (its database connection
//! died) stops sending its MTK messages and follows it.
//!
//! The groups a node does not own are re-read from the store every `[cluster]
//! follow_interval`: the MSKs and the current MTK the owner made, which the node pushes to the
//! UEs that register with it and hands to its media side. On an unshared store every group is
//! owned and none of this runs.

use std::time::Instant;

use crate::bmsc::store::MskRecord;
use crate::mikey::MskId;

use super::lifecycle::Group;
use super::{DistributionError, Distributor, Now};

impl Distributor {
    /// The name of group `g` in the store's ownership (stable across nodes and restarts).
    fn group_name(&self, g: usize) -> String {
        let ((key_domain, key_group), _) = &self.group_keys[g];
        format!("{key_domain}/{key_group:04x}")
    }

    /// Logs, at start on a shared store, whether this node owns group `g` or follows it.
    pub(super) fn log_ownership(&self, g: usize, owned: bool) {
        if self.store.is_shared() {
            let name = self.group_name(g);
            if owned {
                tracing::info!(group = %name, "cluster: this node owns the MSK group");
            } else {
                tracing::info!(group = %name, "cluster: this node follows the MSK group");
            }
        }
    }

    /// docs/profile.md §6 \[CHOICE\] "takeover bound": one round at start and every
    /// `takeover_after`.
    /// Claims the ownership of every group: which this node owns now. On an unshared store,
    /// all; when the store fails, none (retried at the next round).
    pub(super) fn claim_round(&mut self, now: Now) -> Vec<bool> {
        let n = self.group_keys.len();
        if !self.store.is_shared() {
            return vec![true; n];
        }
        self.claim_at = Some(now.mono + self.cluster.takeover_after);
        self.follow_at
            .get_or_insert(now.mono + self.cluster.follow_interval);
        let names: Vec<String> = (0..n).map(|g| self.group_name(g)).collect();
        match self.store.claim_ownership(&names) {
            Ok(owned) if owned.len() == n => owned,
            Ok(_) => vec![false; n],
            Err(e) => {
                tracing::warn!("cluster: cannot claim MSK groups, owning none for now: {e}");
                vec![false; n]
            }
        }
    }

    /// Group `g` from `records`: loaded as its owner (with the MSK to push again, as at a
    /// restart), or followed.
    pub(super) fn build_group(
        &mut self,
        g: usize,
        owned: bool,
        records: &[MskRecord],
        now: Now,
    ) -> Result<(Group, Option<MskId>), DistributionError> {
        let members: Vec<usize> = (0..self.services.len())
            .filter(|s| self.services[*s].group == g)
            .collect();
        let (key, specs) = self.group_keys[g].clone();
        let specs: Vec<_> = specs.iter().collect();
        if owned {
            self.load_group(key, members, &specs, records, now)
        } else {
            let params = self.group_params(&specs);
            Ok((
                self.follow_group(key, members, &params, records, now)?,
                None,
            ))
        }
    }

    /// docs/profile.md §6 \[CHOICE\] "followers": re-read every `follow_interval`.
    /// What is due for the cluster at `now`: a claim round (takeovers and losses), the re-read
    /// of the groups followed.
    pub(super) fn cluster_step(&mut self, now: Now) -> Result<(), DistributionError> {
        let claim_due = self.claim_at.is_some_and(|t| now.mono >= t);
        let follow_due = self.follow_at.is_some_and(|t| now.mono >= t);
        if !claim_due && !follow_due {
            return Ok(());
        }
        let owned = if claim_due {
            self.claim_round(now)
        } else {
            self.groups.iter().map(|g| g.owned).collect()
        };
        let mut changed: Vec<(usize, bool)> = owned
            .iter()
            .enumerate()
            .filter(|(g, o)| self.groups[*g].owned != **o)
            .map(|(g, o)| (g, *o))
            .collect();
        if follow_due {
            self.follow_at = Some(now.mono + self.cluster.follow_interval);
            changed.extend(
                owned
                    .iter()
                    .enumerate()
                    .filter(|(g, o)| !**o && !self.groups[*g].owned)
                    .map(|(g, _)| (g, false)),
            );
        }
        if changed.is_empty() {
            return Ok(());
        }
        let records = self.store.msks()?;
        for (g, owned) in changed {
            let was_owned = self.groups[g].owned;
            let (group, repush) = self.build_group(g, owned, &records, now)?;
            let name = self.group_name(g);
            if owned && !was_owned {
                tracing::info!(group = %name, "cluster: took over the MSK group");
                self.metrics.cluster_takeovers.inc();
            } else if was_owned && !owned {
                tracing::warn!(group = %name, "cluster: lost the MSK group; following it");
            }
            self.groups[g] = group;
            if !owned {
                // The owner sends the group's MTK messages; a follower repeats none.
                for s in self.groups[g].services.clone() {
                    let svc = &mut self.services[s];
                    svc.message = None;
                    svc.next_send_at = None;
                }
                self.fanouts.retain(|f| f.group() != g);
            }
            for s in self.groups[g].services.clone() {
                self.publish_mtk(s);
            }
            if let Some(msk_id) = repush {
                self.queue_fanout(g, msk_id, now.mono);
            }
        }
        Ok(())
    }

    /// Whether this node owns the MSK group of `service_id` (always, on an unshared store).
    #[must_use]
    pub fn owns_service(&self, service_id: &str) -> Option<bool> {
        let s = self.services.iter().find(|s| s.id == service_id)?;
        self.groups.get(s.group).map(|g| g.owned)
    }

    /// When the next claim round is due (a shared store only).
    #[must_use]
    pub fn next_claim_round(&self) -> Option<Instant> {
        self.claim_at
    }
}
