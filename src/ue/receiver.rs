//! The UE receiver (MGV-F/MGV-S role of TS 33.246), sans-IO: it takes
//! datagrams from port 2269 and the current time, returns the acknowledgement
//! to send, and queues [`Event`]s. It never reads a clock, a socket or a
//! global RNG; the back-off randomness is injected.
//!
//! Every rule is docs/profile.md §3. Untrusted input changes nothing until its MAC
//! has verified; the counter of a message is stored only after the message
//! was applied in full.
// No panic in non-test code (clippy.toml allows these in tests):
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![deny(clippy::indexing_slicing, clippy::panic)]

mod msk;
mod mtk;
mod persist;
mod requests;
mod timers;

use std::fmt;
use std::time::{Duration, Instant};

use crate::crypto::{Muk, Random};
use crate::mbms::keyreq::code;
use crate::mbms::{KeyDomainId, MessageError, MskId, MukId};
use crate::mikey::view::{ExtensionView, KeyIdEntryView, PayloadView};
use crate::mikey::{DataType, MessageView};

use super::events::{DiscardReason, Event, MskInfo, Stats};
use super::queue::EventQueue;
use super::state::{MskStore, MukSlots};

pub use persist::StateError;
pub use requests::{MAX_LEARNED_GROUPS, RequestLimits, RequestRate};
pub use timers::MAX_PENDING;

/// Events kept for the driver at most. Beyond that a discard notice is not queued and a key
/// event takes the place of the oldest queued notice (or, with none queued, of the oldest
/// event); each drop is counted in [`Stats::events_dropped`]. A driver drains after every call.
pub const MAX_QUEUED_EVENTS: usize = 1024;

/// Default [`ReceiverConfig::missed_key_holdoff`].
pub const DEFAULT_MISSED_KEY_HOLDOFF: Duration = Duration::from_secs(10);

/// Receiver settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverConfig {
    /// TS 33.246 6.3.2.2.2 back-off: an MSK request triggered by a solicited
    /// pull waits a delay drawn uniformly from [min, max]; `None` = no delay.
    pub backoff: Option<(Duration, Duration)>,
    /// How long a missed-key request (MTK under an unknown MSK, TS 33.246
    /// 6.3.2.2.3) is not repeated for the same MSK ID.
    pub missed_key_holdoff: Duration,
    /// The (Key Domain ID, Key Group) of each of the UE's services, as configured. An MTK
    /// message under an unknown MSK causes a request only for these, for the groups of
    /// verified MSK messages and for the groups of stored MSKs (docs/profile.md §3).
    pub key_groups: Vec<(KeyDomainId, u16)>,
    /// The rates of missed-key requests (docs/profile.md §3).
    pub request_limits: RequestLimits,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        Self {
            backoff: None,
            missed_key_holdoff: DEFAULT_MISSED_KEY_HOLDOFF,
            key_groups: Vec::new(),
            request_limits: RequestLimits::DEFAULT,
        }
    }
}

/// The UE's key-management state machine.
pub struct Receiver {
    config: ReceiverConfig,
    rng: Box<dyn Random>,
    muks: MukSlots,
    msks: MskStore,
    pulls: timers::Pending,
    requests: requests::Gate,
    events: EventQueue,
    stats: Stats,
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("config", &self.config)
            .field("current_muk", &self.muks.current.as_ref().map(|e| &e.id))
            .field("previous_muk", &self.muks.previous.as_ref().map(|e| &e.id))
            .field("msks", &self.msks.map.len())
            .field("pending_requests", &self.pulls.len())
            .field("request_state", &self.requests.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Receiver {
    /// A receiver holding no MUK and no MSK; `rng` draws the MSK request back-off delays.
    pub fn new(config: ReceiverConfig, rng: Box<dyn Random>) -> Self {
        Self::with_state(config, rng, MukSlots::default(), MskStore::default())
    }

    fn with_state(
        config: ReceiverConfig,
        rng: Box<dyn Random>,
        muks: MukSlots,
        msks: MskStore,
    ) -> Self {
        Self {
            config,
            rng,
            muks,
            msks,
            pulls: timers::Pending::default(),
            requests: requests::Gate::default(),
            events: EventQueue::new(MAX_QUEUED_EVENTS),
            stats: Stats::default(),
        }
    }

    /// Installs or replaces the UE's current MUK (GBA_ME: Ks_NAF; GBA_U:
    /// Ks_int_NAF). The previous current MUK stays held as "previous"
    /// (docs/profile.md §3: try the previous MUK(s) still held; one is kept). The
    /// same ID with the same key keeps its counter; another key under the
    /// same ID starts a fresh counter.
    pub fn set_muk(&mut self, id: MukId, muk: Muk) {
        self.muks.set(id, muk);
    }

    /// Forgets the MUK with this ID, current or previous; when it was the current one, the
    /// previous MUK (if any) becomes current.
    pub fn remove_muk(&mut self, id: &MukId) {
        self.muks.remove(id);
    }

    /// One datagram from port 2269 at `now`. Returns the acknowledgement to
    /// send back, only for an accepted MSK message with V = 1 that is not a
    /// solicited pull; otherwise `None` (docs/profile.md §3: no error messages,
    /// no answer to MTK messages). Everything else is queued as events.
    pub fn handle_datagram(&mut self, now: Instant, datagram: &[u8]) -> Option<Vec<u8>> {
        let view = match MessageView::decode(datagram) {
            Ok(view) => view,
            Err(_) => {
                self.discard(DiscardReason::Malformed);
                return None;
            }
        };
        match view.hdr().data_type {
            DataType::PSK_VERIFY => {
                self.discard(DiscardReason::UnexpectedAcknowledgement);
                None
            }
            DataType::PSK_INIT if carries_mtk_id(&view) => {
                self.handle_mtk(now, view);
                None
            }
            DataType::PSK_INIT => self.handle_msk(now, view),
            _ => {
                self.discard(DiscardReason::NotProfileMessage);
                None
            }
        }
    }

    /// The oldest queued event, if any; a driver drains them after every call.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop()
    }

    /// The earliest pending timer (a back-off expiry), for the driver's sleep.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pulls.earliest()
    }

    /// Emits the MSK requests whose back-off has expired at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        for (key_domain_id, msk_id) in self.pulls.take_due(now) {
            self.push_event(Event::MskRequestNeeded {
                key_domain_id,
                msk_id,
            });
        }
    }

    /// The BM-SC's answer to an MSK request for `msk_id`: the per-item `code` of its status
    /// (docs/profile.md §4), or the HTTP status 403 or 404 that refused the whole request. A
    /// success (200) changes nothing. Any other code ends the request: an
    /// [`Event::MskRequestFailed`] is queued, and the receiver asks for that MSK ID again only
    /// after a verified MSK message of its Key Group (docs/profile.md §3). Transport failures
    /// are not answers: the hold-off alone spaces the next try.
    pub fn handle_msk_response(&mut self, key_domain_id: KeyDomainId, msk_id: MskId, code: u16) {
        if code == code::OK {
            return;
        }
        self.requests.refuse(key_domain_id, msk_id);
        self.push_event(Event::MskRequestFailed {
            key_domain_id,
            msk_id,
            code,
        });
    }

    /// Counters of accepted messages, acknowledgements, dropped events and discards.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The stored MSKs, without their keys, by (Key Domain ID, MSK ID).
    pub fn msks(&self) -> impl Iterator<Item = MskInfo> + '_ {
        self.msks.infos()
    }

    /// The last accepted MSK message counter of the MUK with this ID, if held.
    pub fn muk_counter(&self, id: &MukId) -> Option<Option<u32>> {
        [&self.muks.current, &self.muks.previous]
            .into_iter()
            .flatten()
            .find(|e| &e.id == id)
            .map(|e| e.counter)
    }

    /// docs/profile.md §3: a Key Group is the UE's when configured, learned from a verified
    /// MSK message, or that of a stored MSK.
    fn key_group_known(&self, kd: KeyDomainId, key_group: u16) -> bool {
        self.config.key_groups.contains(&(kd, key_group))
            || self.requests.learned(kd, key_group)
            || self.msks.holds_group(kd, key_group)
    }

    fn push_event(&mut self, event: Event) {
        if !self.events.push(event) {
            self.stats.events_dropped = self.stats.events_dropped.saturating_add(1);
        }
    }

    /// docs/profile.md §3: every discard is counted and logged with its reason,
    /// and silent on the wire.
    fn discard(&mut self, reason: DiscardReason) {
        tracing::debug!(reason = reason.as_str(), "datagram discarded");
        self.stats.count_discard(reason);
        self.push_event(Event::Discarded { reason });
    }
}

/// An MTK message is the PSK message whose Key ID extension carries an MTK ID.
fn carries_mtk_id(view: &MessageView<'_>) -> bool {
    view.payloads().any(|(_, p)| match p {
        PayloadView::Ext(ExtensionView::KeyId(entries)) => {
            entries.iter().any(|e| matches!(e, KeyIdEntryView::Mtk(_)))
        }
        _ => false,
    })
}

/// Why verification failed, as a discard reason.
fn verify_failure(e: &MessageError) -> DiscardReason {
    match e {
        MessageError::BadMac => DiscardReason::BadMac,
        MessageError::KeyData(_) | MessageError::KeyContent(_) => DiscardReason::BadKeyData,
        MessageError::Decode(_) => DiscardReason::Malformed,
        MessageError::Structure(_) => DiscardReason::NotProfileMessage,
    }
}
