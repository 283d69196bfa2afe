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

use crate::bmsc::store::{Store, StoreError};

/// The ceiling is raised this far ahead of the value needed (one store write per block).
pub const DEFAULT_COUNTER_BLOCK: u32 = 0x1_0000;

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
}

impl Counters {
    /// Continues after a restart (or starts on a new store) at the persisted ceiling.
    pub(crate) fn load(store: &dyn Store, block: u32) -> Result<Self, StoreError> {
        let ceiling = store.counter_ceiling()?;
        Ok(Self {
            next: ceiling,
            ceiling,
            block: block.clamp(1, 0x4000_0000),
        })
    }

    /// `n` consecutive values (at least one) for one batch of messages; returns the first.
    /// The range never wraps past `u32::MAX` (values are skipped to 0 instead), so a batch is
    /// a plain integer range.
    pub(crate) fn allocate(&mut self, store: &dyn Store, n: usize) -> Result<u32, StoreError> {
        let n = u32::try_from(n.max(1)).unwrap_or(u32::MAX).min(0x4000_0000);
        if self.next.checked_add(n - 1).is_none() {
            // Skipping values is harmless: 0 is after 0xffffffff in RFC 1982 order.
            self.next = 0;
        }
        let first = self.next;
        let last = first + (n - 1);
        if !serial_before(last, self.ceiling) {
            let new = last.wrapping_add(1).wrapping_add(self.block);
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
            if new != g.0 && !serial_before(g.0, new) {
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

    #[test]
    fn one_store_write_per_block_not_per_message() {
        let store = Ceiling::default();
        let mut c = Counters::load(&store, 100).expect("load");
        for want in 0..250u32 {
            assert_eq!(c.allocate(&store, 1).expect("allocate"), want);
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
            let mut c = Counters::load(&store, 1000).expect("load");
            let mut last = 0;
            for _ in 0..10 {
                last = c.allocate(&store, 7).expect("allocate") + 6;
            }
            last
            // A crash: the allocator is gone without saving anything.
        };
        let mut again = Counters::load(&store, 1000).expect("reload");
        let next = again.allocate(&store, 1).expect("allocate");
        assert!(serial_before(last, next));
    }

    #[test]
    fn a_batch_never_wraps_and_the_sequence_stays_increasing() {
        let store = Ceiling(Mutex::new((0xffff_fff0, 0)));
        let mut c = Counters::load(&store, 16).expect("load");
        assert_eq!(c.allocate(&store, 10).expect("allocate"), 0xffff_fff0);
        assert_eq!(c.peek(), 0xffff_fffa);
        // 10 more would pass u32::MAX: the batch starts at 0, still after in RFC 1982 order.
        let first = c.allocate(&store, 10).expect("allocate");
        assert_eq!(first, 0);
        assert!(serial_before(0xffff_fff9, first));
        assert!(serial_before(9, store.counter_ceiling().expect("ceiling")));
    }

    #[test]
    fn serial_order_is_rfc_1982() {
        assert!(serial_before(0, 1));
        assert!(serial_before(0xffff_ffff, 0));
        assert!(!serial_before(0, 0x8000_0000));
        assert!(!serial_before(5, 5));
    }
}
