//! MTK messages (docs/profile.md §3): find the MSK → counter newer → SEQs < MTK
//! ID ≤ SEQu → MAC → SEQs := MTK ID, store the counter → hand out the MTK.
//! Never answered, whatever V says.

use std::time::Instant;

use crate::mbms::{UnverifiedMtk, profile};
use crate::mikey::MessageView;
use crate::mikey::view::CsIdMapView;

use super::super::events::{DiscardReason, Event};
use super::super::serial::is_newer;
use super::super::srtp::SrtpPolicy;
use super::{Receiver, verify_failure};

impl Receiver {
    pub(super) fn handle_mtk(&mut self, now: Instant, view: MessageView<'_>) {
        let un = match UnverifiedMtk::from_view(view) {
            Ok(un) => un,
            Err(_) => {
                self.discard(DiscardReason::NotProfileMessage);
                return;
            }
        };
        let (key_domain_id, msk_id, mtk_id) = (un.key_domain_id(), un.msk_id(), un.mtk_id());
        let Some(entry) = self.msks.get(key_domain_id, msk_id) else {
            if self.key_group_known(key_domain_id, msk_id.key_group) {
                self.discard(DiscardReason::UnknownMsk);
                self.missed_key(now, un);
            } else {
                // docs/profile.md §3: not one of the UE's services; no request.
                self.discard(DiscardReason::UnknownKeyGroup);
            }
            return;
        };
        // Covered by the MAC: read only once it has verified.
        let map = un.view().hdr().cs_id_map;
        let checked = if !is_newer(un.counter(), entry.counter) {
            Err(DiscardReason::Replay)
        } else if mtk_id.0 <= entry.seqs {
            Err(DiscardReason::MtkIdNotNewer)
        } else if mtk_id.0 > entry.sequ {
            Err(DiscardReason::MtkIdOutsideInterval)
        } else {
            // The keys cached at installation: no derivation per message.
            un.verify(&entry.keys).map_err(|e| verify_failure(&e))
        };
        let msg = match checked {
            Ok(msg) => msg,
            Err(reason) => {
                self.discard(reason);
                return;
            }
        };
        // docs/profile.md §3: a streaming MTK message (one with an SRTP-ID map) names its
        // crypto sessions; its policy is its own SP payload, else the MSK message's.
        let srtp_ids: Vec<_> = match map {
            CsIdMapView::SrtpId(entries) => entries.iter().collect(),
            _ => Vec::new(),
        };
        let mut stored_sp = None;
        if let Some(entry) = self.msks.get_mut(key_domain_id, msk_id) {
            entry.seqs = mtk_id.0;
            entry.counter = Some(msg.counter);
            if msg.sp.is_none() && !srtp_ids.is_empty() {
                stored_sp.clone_from(&entry.sp);
            }
        }
        let policy = if srtp_ids.is_empty() {
            None
        } else {
            msg.sp.or(stored_sp).and_then(SrtpPolicy::from_sp)
        };
        self.stats.mtk_accepted = self.stats.mtk_accepted.saturating_add(1);
        self.push_event(Event::MtkReady {
            key_domain_id,
            msk_id,
            mtk_id,
            mki: profile::srtp_mki(msk_id, mtk_id),
            mtk: msg.mtk,
            salt: msg.salt,
            policy,
            srtp_ids,
        });
    }

    /// TS 33.246 6.3.2.2.3 (missed key update): an MTK under an MSK the UE does not hold, in
    /// one of its Key Groups, asks for that MSK, within the rules of docs/profile.md §3 (MSK
    /// requests). The message cannot be verified, so a forged MSK ID costs at most one request
    /// within the rates, and nothing once the BM-SC has refused it.
    fn missed_key(&mut self, now: Instant, un: UnverifiedMtk<'_>) {
        let (key_domain_id, msk_id) = (un.key_domain_id(), un.msk_id());
        let holdoff = self.config.missed_key_holdoff;
        let limits = self.config.request_limits;
        match self
            .requests
            .try_request(now, holdoff, &limits, key_domain_id, msk_id)
        {
            Ok(()) => self.push_event(Event::MskRequestNeeded {
                key_domain_id,
                msk_id,
            }),
            Err(_) => {
                self.stats.requests_suppressed = self.stats.requests_suppressed.saturating_add(1);
            }
        }
    }
}
