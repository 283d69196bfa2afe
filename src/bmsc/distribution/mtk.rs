//! MTK delivery under the current MSK (TS 33.246 6.3.3; docs/profile.md §2.3).
//!
//! The MTK of a group changes every `mtk_interval`, taking the next MTK ID of the MSK's
//! interval (from SEQl + 1 upwards, never above SEQu). Each service of the group gets its own
//! message for it (download: empty map, TEK; streaming: SRTP-ID map, SP, TEK+SALT), built once
//! with a fresh counter and sent to `mtk_destination` every `mtk_resend`: the same bytes each
//! time, reliability by repetition (a UE that has the MTK discards a repeat as a replay).
//!
//! Announce: each MTK is first sent `announce` (the shortest `mtk_resend` of the group) before
//! it becomes current, so that UEs hold it when the media switch to it; from then on the
//! repetitions carry the new MTK. The MTK ID and the MTK are persisted in the MSK record
//! before the first message carrying them leaves, so a restart never reuses an MTK ID.

use std::time::Instant;

use bytes::Bytes;

use crate::bmsc::store::CurrentMtk;
use crate::crypto::{Mtk, Salt};
use crate::mbms::profile::csb_id_for;
use crate::mbms::{BuildError, MtkDelivery, Streaming, build_mtk};
use crate::mikey::{MtkId, SrtpParam};

use super::lifecycle::{LiveMtk, ids_left};
use super::{Action, Datagram, DistributionError, Distributor, Now};

/// The SRTP part of a streaming service's MTK messages (docs/profile.md §2.3), with the
/// authentication tag length of its suite (10 octets by default, 4 for `_32`).
pub(super) fn streaming(ssrc: u32, roc: u32, tag_len: usize) -> Streaming {
    let mut s = Streaming::srtp_default(ssrc, roc);
    if let Ok(len) = u8::try_from(tag_len) {
        for p in &mut s.policy.params {
            if p.param_type == SrtpParam::AUTH_TAG_LEN.0 {
                p.value = vec![len];
            }
        }
    }
    s
}

impl Distributor {
    /// Generates the MTK for the group's next switch and sends it for the first time; or, when
    /// the switch would go to a next MSK pushed less than the lead time ago, postpones it.
    pub(super) fn announce_mtk(&mut self, g: usize, now: Now) -> Result<(), DistributionError> {
        let mut use_next = self.groups[g].rotation_due();
        if use_next {
            if self.groups[g].next.is_none() {
                self.create_next(g, now)?;
            }
            let group = &mut self.groups[g];
            let ready = group
                .next
                .as_ref()
                .map_or(now.mono, |n| n.created + group.lead);
            if ready > group.switch_at {
                // The next MSK went out less than the lead time ago (a restart after a long
                // stop): the current MSK carries on, with a new MTK while it has IDs left, or
                // else with the current MTK until the next MSK is ready.
                if ids_left(&group.current.record) == 0 {
                    group.switch_at = ready;
                    return Ok(());
                }
                use_next = false;
            }
        }
        let mtk = Mtk::from_fn(|b| super::fill(&mut self.rng, b));
        let salt = self.groups[g]
            .salted
            .then(|| Salt::from_fn(|b| super::fill(&mut self.rng, b)));
        let key_domain = self.groups[g].key_domain;
        let group = &mut self.groups[g];
        let slot = match (use_next, group.next.as_mut()) {
            (true, Some(next)) => next,
            _ => &mut group.current,
        };
        if ids_left(&slot.record) == 0 {
            return Err(BuildError::Invalid("no MTK ID left in the MSK's interval").into());
        }
        let mtk_id = MtkId(slot.record.mtk_next_id);
        // One MTK per MTK ID whatever the nodes (a cluster): a node that owned the group before
        // may have claimed this one; then it is the one delivered.
        let claimed = self.store.claim_mtk(
            key_domain,
            slot.record.msk_id,
            &CurrentMtk {
                id: mtk_id,
                mtk,
                salt,
            },
        )?;
        let (mtk, salt) = (claimed.mtk.clone(), claimed.salt.clone());
        let mut record = slot.record.clone();
        record.mtk_next_id = record.mtk_next_id.wrapping_add(1);
        record.current_mtk = Some(claimed);
        // Durable before any message carries this MTK ID.
        self.store.put_msk(&record)?;
        let msk_id = record.msk_id;
        slot.record = record;
        let live = LiveMtk {
            msk_id,
            mtk_id,
            mtk,
            salt,
        };
        group.upcoming = Some(live.clone());
        self.metrics.mtks_generated.inc();
        tracing::debug!(%msk_id, %mtk_id, "MTK announced");
        self.emit_mtk_messages(g, &live, now.mono)?;
        let switch_at = now.wall_at(self.groups[g].switch_at);
        self.export_mtk(g, &live, switch_at, false);
        Ok(())
    }

    /// The announced MTK becomes current (and with it, possibly, the next MSK).
    pub(super) fn switch_mtk(&mut self, g: usize, now: Now) -> Result<(), DistributionError> {
        let group = &mut self.groups[g];
        let Some(up) = group.upcoming.take() else {
            return Ok(());
        };
        let at = group.switch_at;
        let rotating = group.next.as_ref().map(|n| n.msk_id()) == Some(up.msk_id);
        group.live = Some(up.clone());
        let mut next = at + group.interval;
        if next <= now.mono {
            // Called late (a stalled driver): keep the rhythm from now rather than catch up.
            next = now.mono + group.interval;
        }
        group.switch_at = next;
        let rotated = if rotating {
            self.rotate(g, at, now)
        } else {
            Ok(())
        };
        let group = &mut self.groups[g];
        if group.next.is_none() {
            group.next_msk_at = group
                .rotation_estimate()
                .checked_sub(group.lead)
                .unwrap_or(now.mono);
        }
        for s in self.groups[g].services.clone() {
            self.publish_mtk(s);
        }
        // Exported as current from the moment the media sender may take it.
        self.export_mtk(g, &up, now.wall, true);
        rotated
    }

    /// Builds the message of `live` for every service of group `g`, sends each once, writes
    /// the download objects, and makes them the messages repeated from now on.
    fn emit_mtk_messages(
        &mut self,
        g: usize,
        live: &LiveMtk,
        now: Instant,
    ) -> Result<(), DistributionError> {
        let services = self.groups[g].services.clone();
        let first = self.allocate_counters(services.len())?;
        let group = &self.groups[g];
        let Some(slot) = group.slot(live.msk_id) else {
            return Err(BuildError::Invalid("the MTK's MSK is not held").into());
        };
        let key_domain = group.key_domain;
        let mut built = Vec::with_capacity(services.len());
        for (i, s) in services.iter().enumerate() {
            let svc = &self.services[*s];
            // The SRTP-ID map announces the rollover counter the service's SRTP sender last
            // reported, or else the configured one (docs/profile.md §2.4).
            let streaming = svc.streaming.clone().map(|mut st| {
                if let Some(roc) = self.mtk_view.roc(&svc.id) {
                    st.srtp.roc = roc;
                }
                st
            });
            let d = MtkDelivery {
                key_domain_id: key_domain,
                msk_id: live.msk_id,
                csb_id: csb_id_for(live.msk_id),
                mtk_id: live.mtk_id,
                counter: first.wrapping_add(u32::try_from(i).unwrap_or(u32::MAX)),
                mtk: live.mtk.clone(),
                salt: svc.streaming.as_ref().and(live.salt.clone()),
                streaming,
            };
            built.push(Bytes::from(build_mtk(&slot.keys, &d)?));
        }
        let mut datagrams = Vec::with_capacity(services.len());
        for (s, bytes) in services.into_iter().zip(built) {
            let svc = &mut self.services[s];
            if let Some(dir) = &svc.object_dir {
                self.actions.push_back(Action::WriteMtkObject {
                    path: dir.join(format!("{}-{}.mikey", live.msk_id, live.mtk_id)),
                    bytes: bytes.clone(),
                });
            }
            datagrams.push(Datagram {
                to: svc.destination,
                bytes: bytes.clone(),
            });
            svc.message = Some(bytes);
            svc.next_send_at = Some(now + svc.resend);
            if svc.sends.len() >= 2 {
                svc.sends.pop_front();
            }
            svc.sends.push_back(((live.msk_id, live.mtk_id), 1));
        }
        self.metrics.mtk_messages.add(datagrams.len() as u64);
        self.send(datagrams);
        Ok(())
    }

    /// Repeats every service's MTK message that is due (identical bytes).
    pub(super) fn resend_mtks(&mut self, now: Instant) {
        let mut datagrams = Vec::new();
        let mut resent = Vec::new();
        for (i, svc) in self.services.iter_mut().enumerate() {
            let (Some(at), Some(bytes)) = (svc.next_send_at, &svc.message) else {
                continue;
            };
            if at > now {
                continue;
            }
            datagrams.push(Datagram {
                to: svc.destination,
                bytes: bytes.clone(),
            });
            let mut next = at + svc.resend;
            if next <= now {
                next = now + svc.resend;
            }
            svc.next_send_at = Some(next);
            if let Some((_, n)) = svc.sends.back_mut() {
                *n = n.saturating_add(1);
                if svc.streaming.is_some() {
                    resent.push(i);
                }
            }
        }
        self.metrics.mtk_messages.add(datagrams.len() as u64);
        self.send(datagrams);
        for s in resent {
            self.publish_mtk(s);
        }
    }
}
