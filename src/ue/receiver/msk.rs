//! MSK messages (docs/profile.md §3, first paragraph and edge cases): find the
//! MUK → counter newer → MAC → apply → store the counter → acknowledge.

use std::time::Instant;

use crate::mbms::{AckContext, MskMessage, MskUpdate, UnverifiedMsk, build_ack};
use crate::mikey::MessageView;

use super::super::events::{DiscardReason, Event};
use super::super::serial::is_newer;
use super::super::state::{NewKeyOutcome, StoreFull};
use super::timers::draw_delay;
use super::{Receiver, verify_failure};

impl Receiver {
    pub(super) fn handle_msk(&mut self, now: Instant, view: MessageView<'_>) -> Option<Vec<u8>> {
        let un = match UnverifiedMsk::from_view(view) {
            Ok(un) => un,
            Err(_) => {
                self.discard(DiscardReason::NotProfileMessage);
                return None;
            }
        };
        let Some(slot) = self.muks.find(un.idi(), un.idr()) else {
            self.discard(DiscardReason::UnknownMuk);
            return None;
        };
        let verified = match self.muks.get(slot) {
            Some(entry) if !is_newer(un.counter(), entry.counter) => Err(DiscardReason::Replay),
            Some(entry) => un.verify(&entry.muk).map_err(|e| verify_failure(&e)),
            None => Err(DiscardReason::UnknownMuk),
        };
        let msg = match verified {
            Ok(msg) => msg,
            Err(reason) => {
                self.discard(reason);
                return None;
            }
        };
        // docs/profile.md §3: the Key Group is the UE's, and what was refused for it may be
        // asked again.
        self.requests.learn(msg.key_domain_id, msg.msk_id.key_group);
        if let Err(reason) = self.apply_msk(now, &msg) {
            self.discard(reason);
            return None;
        }
        // Only now, after full success (docs/profile.md §3).
        if let Some(entry) = self.muks.get_mut(slot) {
            entry.counter = Some(msg.counter);
        }
        self.stats.msk_accepted = self.stats.msk_accepted.saturating_add(1);
        if !msg.v || matches!(msg.update, MskUpdate::SolicitedPull) {
            return None;
        }
        let ack = build_ack(&AckContext::of(&msg)).ok()?;
        self.stats.acks = self.stats.acks.saturating_add(1);
        Some(ack)
    }

    /// Applies a verified MSK message; on `Err` nothing has changed.
    fn apply_msk(&mut self, now: Instant, msg: &MskMessage) -> Result<(), DiscardReason> {
        let (key_domain_id, msk_id) = (msg.key_domain_id, msg.msk_id);
        match &msg.update {
            MskUpdate::NewKey { msk, seql, sequ } => {
                let outcome = self
                    .msks
                    .new_key(key_domain_id, msk_id, msk, (*seql, *sequ), msg.sp.clone())
                    .map_err(|StoreFull| DiscardReason::StoreFull)?;
                let (seql, sequ) = (*seql, *sequ);
                match outcome {
                    NewKeyOutcome::Installed { evicted } => {
                        if let Some(old) = evicted {
                            self.push_event(Event::MskInvalidated {
                                key_domain_id,
                                msk_id: old,
                            });
                        }
                        self.requests.forget(key_domain_id, msk_id);
                        self.push_event(Event::MskInstalled {
                            key_domain_id,
                            msk_id,
                            seql,
                            sequ,
                        });
                    }
                    NewKeyOutcome::Updated => self.push_event(Event::MskUpdated {
                        key_domain_id,
                        msk_id,
                        seql,
                        sequ,
                    }),
                }
            }
            MskUpdate::ValidityOnly { seql, sequ } => {
                let stored =
                    self.msks
                        .validity_only(key_domain_id, msk_id, (*seql, *sequ), msg.sp.clone());
                if !stored {
                    // docs/profile.md §3 [CHOICE]: discarded, the MUK counter stays.
                    return Err(DiscardReason::UnknownMsk);
                }
                self.push_event(Event::MskUpdated {
                    key_domain_id,
                    msk_id,
                    seql: *seql,
                    sequ: *sequ,
                });
            }
            MskUpdate::Invalidate { .. } => {
                // docs/profile.md §3 [CHOICE]: an MSK not stored is a success too.
                if self.msks.invalidate(key_domain_id, msk_id) {
                    self.push_event(Event::MskInvalidated {
                        key_domain_id,
                        msk_id,
                    });
                }
            }
            MskUpdate::SolicitedPull => {
                // TS 33.246 6.3.2.2.4: request the Key Group's current MSK
                // (Key Number 0), after the back-off when one is configured.
                match self.config.backoff {
                    Some(window) => {
                        let delay = draw_delay(window, self.rng.next_u64().unwrap_or(0));
                        let at = now.checked_add(delay).unwrap_or(now);
                        self.pulls.schedule(at, key_domain_id, msk_id);
                    }
                    None => self.push_event(Event::MskRequestNeeded {
                        key_domain_id,
                        msk_id,
                    }),
                }
            }
        }
        Ok(())
    }
}
