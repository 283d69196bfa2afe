//! The MIKEY counter (T payload, type COUNTER) of every message the BM-SC sends
//! (docs/profile.md §2.1, §2.3; RFC 3830 §6.6).
//!
//! One allocator serves every MIKEY message, MSK and MTK messages alike, so each MUK and each
//! MSK sees strictly increasing values: the UE compares a counter with the last one it accepted
//! under the same MUK or MSK (docs/profile.md §3), and a value from one global sequence is always
//! newer than every earlier value of that sequence. RFC 1982 caveat: the UE compares within a
//! 2^31 window, so a MUK or MSK left unused while more than 2^31 values went to other scopes
//! would see its next value as older. That does not happen: an MSK lives `msk_lifetime` plus
//! the lead time, a registered UE's MUK gets a message at every rotation of its key groups, and
//! a MUK ends with its GBA key lifetime, each far shorter than 2^31 messages take to send.
//!
//! Durability without a disk write per message: values are handed out from memory below a
//! persisted ceiling ([`Store::counter_ceiling`]); before a value at or over the ceiling is
//! used, the ceiling is raised durably by a block. A restart continues at the persisted ceiling,
//! so the values between the last one used and the ceiling are skipped, never reused.
//!
//! A floor from the wall clock (docs/profile.md §5, [`counter_floor`]): no value is handed out
//! below the floor of the current wall time, and a fresh store (ceiling 0) starts at it. The
//! counter thus runs at least as fast as the floor, and a BM-SC that lost its store starts above
//! every value the lost store used, so UEs that kept their state accept its messages (limits in
//! docs/profile.md §5). Following the floor, values pass at [`COUNTER_RATE`] per second even
//! when idle: the RFC 1982 window above is then `2^31 / COUNTER_RATE` seconds (24 days), still
//! far longer than an MSK lifetime or the gap between a registered UE's pushes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::bmsc::store::{Store, StoreError};

/// The ceiling is raised this far ahead of the value needed (one store write per block).
pub const DEFAULT_COUNTER_BLOCK: u32 = 0x1_0000;

/// docs/profile.md §5 \[CHOICE\] counter floor: counter values per second of wall time by
/// which the floor rises — the message rate, averaged over time, below which a lost store
/// never makes the counter go back.
pub const COUNTER_RATE: u64 = 1024;

/// The RFC 1982 window of a counter that follows the floor, `2^31 / COUNTER_RATE` seconds (about
/// 24.3 days): a UE that got nothing under a MUK or an MSK for this long takes the next counter
/// for an old one. An MSK lifetime must stay below it (the configuration refuses longer ones),
/// so every registered UE gets a message under its MUK, and under each MSK, more often.
pub const COUNTER_WINDOW: Duration = Duration::from_secs((1 << 31) / COUNTER_RATE);

/// docs/profile.md §5 \[CHOICE\] counter floor: `COUNTER_RATE × (milliseconds since 1970-01-01
/// UTC) / 1000`, modulo 2^32 (it wraps every 2^32 / 1024 s, about 48.5 days, which RFC 1982
/// order absorbs). A wall time before 1970 gives 0.
#[must_use]
pub fn counter_floor(wall: SystemTime) -> u32 {
    let ms = wall.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let v = ms.saturating_mul(u128::from(COUNTER_RATE)) / 1000;
    u32::try_from(v % (1 << 32)).unwrap_or(0)
}

/// RFC 1982 (32 bits): whether `a` is before `b`.
pub(crate) fn serial_before(a: u32, b: u32) -> bool {
    let d = b.wrapping_sub(a);
    d != 0 && d < 0x8000_0000
}

/// Hands out counter values below a persisted ceiling.
#[derive(Debug)]
pub(crate) struct Counters {
    next: u32,
    ceiling: u32,
    block: u32,
    /// The store is shared by several nodes: every batch reserves its values in the store.
    shared: bool,
}

impl Counters {
    /// Continues after a restart at the persisted ceiling, or starts a fresh store (ceiling 0)
    /// at the floor of `wall`.
    pub(crate) fn load(
        store: &dyn Store,
        block: u32,
        wall: SystemTime,
    ) -> Result<Self, StoreError> {
        let ceiling = store.counter_ceiling()?;
        let block = block.clamp(1, 0x4000_0000);
        if ceiling == 0 {
            let floor = counter_floor(wall);
            tracing::info!(
                floor,
                "fresh store: MIKEY counters start at the wall-clock floor"
            );
            // Nothing below the floor is durable yet: the first allocation raises the ceiling.
            return Ok(Self {
                next: floor,
                ceiling: floor,
                block,
                shared: store.is_shared(),
            });
        }
        Ok(Self {
            next: ceiling,
            ceiling,
            block,
            shared: store.is_shared(),
        })
    }

    /// `n` consecutive values (at least one) for one batch of messages, none below the floor
    /// of `wall`; returns the first. The range never wraps past `u32::MAX` (values are
    /// skipped to 0 instead), so a batch is a plain integer range.
    pub(crate) fn allocate(
        &mut self,
        store: &dyn Store,
        n: usize,
        wall: SystemTime,
    ) -> Result<u32, StoreError> {
        let n = u32::try_from(n.max(1)).unwrap_or(u32::MAX).min(0x4000_0000);
        let floor = counter_floor(wall);
        if self.shared {
            // docs/profile.md §6 [CHOICE] "cluster counters": one reservation per batch of
            // messages, after every value any node reserved before it.
            if let Some(first) = store.reserve_counters(floor, n)? {
                self.next = first.wrapping_add(n);
                self.ceiling = self.next;
                return Ok(first);
            }
        }
        // A floor 2^31 or more ahead reads as behind (RFC 1982): the counter then keeps its
        // own course, which is what UEs holding its recent values accept.
        if serial_before(self.next, floor) {
            self.next = floor;
        }
        if self.next.checked_add(n - 1).is_none() {
            // Skipping values is harmless: 0 is after 0xffffffff in RFC 1982 order.
            self.next = 0;
        }
        let first = self.next;
        let last = first + (n - 1);
        if !serial_before(last, self.ceiling) {
            let mut new = last.wrapping_add(1).wrapping_add(self.block);
            if new == 0 {
                // 0 is the ceiling of a fresh store only.
                new = 1;
            }
            store.raise_counter_ceiling(new)?;
            self.ceiling = new;
        }
        self.next = last.wrapping_add(1);
        Ok(first)
    }

    /// The next value [`Counters::allocate`] would hand out.
    #[cfg(test)]
    pub(crate) fn peek(&self) -> u32 {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::bmsc::store::{Member, MskRecord, Registration};
    use crate::gba::{Btid, SubscriberKeys};
    use crate::mikey::{KeyDomainId, MskId};

    /// A store holding only the ceiling; the rest is never called here.
    #[derive(Default)]
    struct Ceiling(Mutex<(u32, u32)>);

    impl Ceiling {
        fn writes(&self) -> u32 {
            self.0.lock().map(|g| g.1).unwrap_or(0)
        }
    }

    impl Store for Ceiling {
        fn register(&self, _: &Registration) -> Result<(), StoreError> {
            unreachable!()
        }
        fn register_many(&self, _: &[Registration]) -> Result<(), StoreError> {
            unreachable!()
        }
        fn deregister(&self, _: &Btid, _: &str) -> Result<bool, StoreError> {
            unreachable!()
        }
        fn registrations_of_btid(&self, _: &Btid) -> Result<Vec<Registration>, StoreError> {
            unreachable!()
        }
        fn registrations_of_service(
            &self,
            _: &str,
            _: Option<&Btid>,
            _: usize,
        ) -> Result<Vec<Member>, StoreError> {
            unreachable!()
        }
        fn registrations_since(
            &self,
            _: std::time::SystemTime,
            _: usize,
        ) -> Result<Vec<Registration>, StoreError> {
            unreachable!()
        }
        fn count_registrations_by_service(
            &self,
        ) -> Result<std::collections::BTreeMap<String, u64>, StoreError> {
            unreachable!()
        }
        fn put_msk(&self, _: &MskRecord) -> Result<(), StoreError> {
            unreachable!()
        }
        fn msk(&self, _: KeyDomainId, _: MskId) -> Result<Option<MskRecord>, StoreError> {
            unreachable!()
        }
        fn msks_of_group(&self, _: KeyDomainId, _: u16) -> Result<Vec<MskRecord>, StoreError> {
            unreachable!()
        }
        fn msks(&self) -> Result<Vec<MskRecord>, StoreError> {
            unreachable!()
        }
        fn delete_msk(&self, _: KeyDomainId, _: MskId) -> Result<bool, StoreError> {
            unreachable!()
        }
        fn counter_ceiling(&self) -> Result<u32, StoreError> {
            Ok(self.0.lock().map(|g| g.0).unwrap_or(0))
        }
        fn raise_counter_ceiling(&self, new: u32) -> Result<(), StoreError> {
            let mut g = self
                .0
                .lock()
                .map_err(|_| StoreError::Backend("poisoned".into()))?;
            if g.0 != 0 && new != g.0 && !serial_before(g.0, new) {
                return Err(StoreError::CeilingNotRaised {
                    current: g.0,
                    requested: new,
                });
            }
            *g = (new, g.1 + 1);
            Ok(())
        }
        fn cached_keys(
            &self,
            _: &str,
            _: std::time::SystemTime,
        ) -> Result<Option<SubscriberKeys>, StoreError> {
            unreachable!()
        }
        fn cache_keys(&self, _: &SubscriberKeys) -> Result<(), StoreError> {
            unreachable!()
        }
        fn purge_expired_keys(&self, _: std::time::SystemTime) -> Result<u64, StoreError> {
            unreachable!()
        }
    }

    /// A wall time whose floor is `v` (rounded down by at most one).
    fn wall_with_floor(v: u32) -> SystemTime {
        UNIX_EPOCH + std::time::Duration::from_millis(u64::from(v) * 1000 / 1024 + 1)
    }

    const EPOCH: SystemTime = UNIX_EPOCH;

    #[test]
    fn one_store_write_per_block_not_per_message() {
        let store = Ceiling::default();
        let mut c = Counters::load(&store, 100, EPOCH).expect("load");
        for want in 0..250u32 {
            assert_eq!(c.allocate(&store, 1, EPOCH).expect("allocate"), want);
        }
        assert_eq!(store.writes(), 3);
        assert!(serial_before(
            249,
            store.counter_ceiling().expect("ceiling")
        ));
    }

    #[test]
    fn a_restart_continues_above_every_value_handed_out() {
        let store = Ceiling::default();
        let last = {
            let mut c = Counters::load(&store, 1000, EPOCH).expect("load");
            let mut last = 0;
            for _ in 0..10 {
                last = c.allocate(&store, 7, EPOCH).expect("allocate") + 6;
            }
            last
            // A crash: the allocator is gone without saving anything.
        };
        let mut again = Counters::load(&store, 1000, EPOCH).expect("reload");
        let next = again.allocate(&store, 1, EPOCH).expect("allocate");
        assert!(serial_before(last, next));
    }

    #[test]
    fn a_batch_never_wraps_and_the_sequence_stays_increasing() {
        let store = Ceiling(Mutex::new((0xffff_fff0, 0)));
        // A floor well behind the counter.
        let wall = wall_with_floor(0x8000_0000);
        let mut c = Counters::load(&store, 16, wall).expect("load");
        assert_eq!(c.allocate(&store, 10, wall).expect("allocate"), 0xffff_fff0);
        assert_eq!(c.peek(), 0xffff_fffa);
        // 10 more would pass u32::MAX: the batch starts at 0, still after in RFC 1982 order.
        let first = c.allocate(&store, 10, wall).expect("allocate");
        assert_eq!(first, 0);
        assert!(serial_before(0xffff_fff9, first));
        assert!(serial_before(9, store.counter_ceiling().expect("ceiling")));
    }

    #[test]
    fn the_floor_rises_at_the_counter_rate_and_wraps_in_2_to_the_32() {
        let s = std::time::Duration::from_secs;
        assert_eq!(counter_floor(UNIX_EPOCH), 0);
        assert_eq!(counter_floor(UNIX_EPOCH + s(1)), 1024);
        assert_eq!(counter_floor(UNIX_EPOCH + s(3600)), 3600 * 1024);
        // 2^32 / 1024 s after the epoch: the floor wraps to 0.
        assert_eq!(counter_floor(UNIX_EPOCH + s(1 << 22)), 0);
        assert_eq!(counter_floor(UNIX_EPOCH + s((1 << 22) + 2)), 2048);
        assert_eq!(counter_floor(UNIX_EPOCH - s(1)), 0);
    }

    #[test]
    fn a_fresh_store_starts_at_the_floor_of_the_wall_clock() {
        let store = Ceiling::default();
        // Upper half of the 32-bit range: not after 0 in RFC 1982 order, still taken.
        let wall = wall_with_floor(0xc000_0000);
        let mut c = Counters::load(&store, 100, wall).expect("load");
        let first = c.allocate(&store, 1, wall).expect("allocate");
        assert_eq!(first, counter_floor(wall));
        assert!(serial_before(
            first,
            store.counter_ceiling().expect("ceiling")
        ));
    }

    #[test]
    fn no_value_is_handed_out_below_the_floor_and_a_step_back_changes_nothing() {
        let store = Ceiling(Mutex::new((1000, 0)));
        let mut c = Counters::load(&store, 100, EPOCH).expect("load");
        assert_eq!(c.allocate(&store, 1, EPOCH).expect("allocate"), 1000);
        let later = wall_with_floor(1_000_000);
        let v = c.allocate(&store, 1, later).expect("allocate");
        assert_eq!(v, counter_floor(later));
        // The wall clock set back an hour: the counter goes on, it does not go back.
        let back = later - std::time::Duration::from_secs(3600);
        assert_eq!(c.allocate(&store, 1, back).expect("allocate"), v + 1);
    }

    #[test]
    fn a_lost_store_is_followed_by_counters_above_every_value_it_used() {
        let hour = std::time::Duration::from_secs(3600);
        let start = wall_with_floor(0x1234_5678);
        let lost = Ceiling::default();
        let mut c = Counters::load(&lost, 0x1_0000, start).expect("load");
        let mut last = 0;
        // A day at 1000 messages per minute (below the rate bound), in bursts of 1000.
        for minute in 0..24 * 60 {
            let wall = start + std::time::Duration::from_secs(60 * minute);
            last = c.allocate(&lost, 1000, wall).expect("allocate") + 999;
        }
        // The store is lost; a new one starts a minute after the last message.
        let fresh = Ceiling::default();
        let restart = start + hour * 24 + std::time::Duration::from_secs(60);
        let mut again = Counters::load(&fresh, 0x1_0000, restart).expect("load");
        let next = again.allocate(&fresh, 1, restart).expect("allocate");
        assert!(serial_before(last, next), "{last:#x} then {next:#x}");
    }

    #[test]
    fn serial_order_is_rfc_1982() {
        assert!(serial_before(0, 1));
        assert!(serial_before(0xffff_ffff, 0));
        assert!(!serial_before(0, 0x8000_0000));
        assert!(!serial_before(5, 5));
    }
}
