//! The store contract ([`Store`]), backend-independent: every test here runs against each
//! backend (`tests/bmsc_store.rs` on SQLite, `tests/bmsc_store_postgres.rs` on PostgreSQL)
//! through [`contract_tests!`].
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mbms_keys::bmsc::store::{
    CurrentMtk, Member, MskRecord, MskState, Registration, Store, StoreError, members_of_service,
};
use mbms_keys::crypto::{KsExtNaf, KsIntNaf, KsNaf, Msk, Mtk, Salt};
use mbms_keys::gba::{Btid, GbaKeys, SubscriberKeys};
use mbms_keys::mikey::{KeyDomainId, MskId, MtkId};

/// A backend under test: opens (again) one and the same store.
pub trait Backend {
    /// The store type.
    type S: Store + 'static;
    /// Opens the store; a second call after the first store is dropped reopens it.
    fn open(&self) -> Self::S;
}

/// One `#[test]` per contract test, each with a backend from `$make` (an `Option`: `None`
/// when the backend is not available here, the test then skips as its helper decided).
macro_rules! contract_tests {
    ($make:expr) => {
        contract_tests!(@each $make; register_is_an_upsert_and_deregister_reports_whether_there_was_one,
            registrations_of_service_pages_in_btid_order,
            a_range_of_a_service_stops_at_its_upper_bound,
            ten_thousand_registrations_stream_back_exactly_once,
            reads_proceed_while_another_thread_writes,
            msks_are_put_read_listed_updated_and_deleted,
            the_counter_ceiling_only_rises_in_serial_order_and_persists,
            a_fresh_store_takes_any_first_ceiling_then_only_raises,
            gba_key_cache_gets_puts_and_purges,
            queued_registrations_complete_and_recent_ones_are_listed_newest_first,
            msk_states_of_a_group_leave_other_groups_out);
    };
    (@each $make:expr; $($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                if let Some(b) = $make {
                    crate::store_contract::$name(&b);
                }
            }
        )*
    };
}
pub(crate) use contract_tests;

pub const KD: KeyDomainId = KeyDomainId([0x00, 0xf1, 0x10]);

pub fn btid(i: u32) -> Btid {
    format!("btid{i:08}@bsf.example.org").parse().expect("btid")
}

pub fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

pub fn reg(i: u32, service: &str) -> Registration {
    Registration {
        btid: btid(i),
        service_id: service.to_owned(),
        ue_addr: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | i)),
        registered_at: at(1_700_000_000) + Duration::from_nanos(u64::from(i) * 1_001),
    }
}

/// Distinctive octets: easy to find in a file if they were ever written in the clear.
pub const MSK_OCTETS: [u8; 16] = [
    0xc3, 0x5e, 0x91, 0x0d, 0x7a, 0x42, 0xee, 0x18, 0x66, 0xb9, 0x2f, 0xd4, 0x03, 0x8c, 0x71, 0xa5,
];
pub const MTK_OCTETS: [u8; 16] = [
    0x9d, 0x14, 0x6b, 0xf2, 0x38, 0xc7, 0x05, 0xae, 0x51, 0xe0, 0x27, 0x8f, 0xba, 0x46, 0x1c, 0xd3,
];
pub const SALT_OCTETS: [u8; 14] = [
    0x2e, 0x87, 0xd9, 0x40, 0x13, 0xfa, 0x6c, 0xb5, 0x08, 0x9e, 0x73, 0xc1, 0x5f, 0xa2,
];
pub const KS_NAF_OCTETS: [u8; 32] = [
    0x71, 0x3a, 0xe4, 0x0f, 0x8b, 0xd6, 0x25, 0x9c, 0x47, 0xf1, 0x12, 0xad, 0x6e, 0xc8, 0x33, 0x5b,
    0x94, 0x0e, 0xb7, 0x29, 0xd2, 0x6a, 0x81, 0xfc, 0x17, 0x4e, 0xa9, 0x35, 0xe2, 0x58, 0x0b, 0xc6,
];

pub fn msk_record(number: u16, octets: [u8; 16]) -> MskRecord {
    MskRecord {
        key_domain: KD,
        msk_id: MskId::new(1, number),
        msk: Msk::from_bytes(octets),
        seql: 0x0000,
        sequ: 0x0200,
        created_at: at(1_700_000_000),
        activates_at: at(1_700_000_100),
        expires_at: at(1_700_003_700),
        state: MskState::Next,
        mtk_next_id: 1,
        current_mtk: None,
    }
}

pub fn gba_keys(btid_text: &str, expires: SystemTime) -> SubscriberKeys {
    SubscriberKeys {
        btid: btid_text.parse().expect("btid"),
        impi: "alice@ims.example.org".to_owned(),
        keys: GbaKeys::Me {
            ks_naf: KsNaf::from_bytes(KS_NAF_OCTETS),
        },
        expires,
    }
}

pub fn register_is_an_upsert_and_deregister_reports_whether_there_was_one<B: Backend>(b: &B) {
    let store = b.open();
    store.register(&reg(1, "news")).expect("register");
    store.register(&reg(1, "tv")).expect("register");
    store.register(&reg(2, "news")).expect("register");
    let mut moved = reg(1, "news");
    moved.ue_addr = IpAddr::V6(Ipv6Addr::LOCALHOST);
    moved.registered_at = at(1_800_000_000);
    store.register(&moved).expect("re-register");

    let of_1 = store.registrations_of_btid(&btid(1)).expect("list");
    assert_eq!(of_1, vec![moved.clone(), reg(1, "tv")]);
    let counts = store.count_registrations_by_service().expect("count");
    assert_eq!(counts.get("news"), Some(&2));
    assert_eq!(counts.get("tv"), Some(&1));

    assert!(store.deregister(&btid(1), "news").expect("deregister"));
    assert!(!store.deregister(&btid(1), "news").expect("again"));
    assert!(!store.deregister(&btid(9), "news").expect("unknown"));
    assert_eq!(
        store.registrations_of_btid(&btid(1)).expect("list"),
        vec![reg(1, "tv")]
    );
    assert!(
        store
            .registrations_of_btid(&btid(9))
            .expect("none")
            .is_empty()
    );
}

pub fn registrations_of_service_pages_in_btid_order<B: Backend>(b: &B) {
    let store = b.open();
    let regs: Vec<_> = (0..25).map(|i| reg(i, "news")).collect();
    store.register_many(&regs).expect("bulk");
    store.register(&reg(100, "tv")).expect("other service");

    let first = store
        .registrations_of_service("news", None, 10)
        .expect("page");
    assert_eq!(first.len(), 10);
    assert_eq!(first[0].btid, btid(0));
    assert_eq!(first[0].ue_addr, reg(0, "news").ue_addr);
    let second = store
        .registrations_of_service("news", Some(&first[9].btid), 10)
        .expect("page");
    assert_eq!(second[0].btid, btid(10));
    let third = store
        .registrations_of_service("news", Some(&second[9].btid), 10)
        .expect("page");
    assert_eq!(third.len(), 5);
    let end = store
        .registrations_of_service("news", Some(&third[4].btid), 10)
        .expect("page");
    assert!(end.is_empty());
    assert!(
        store
            .registrations_of_service("nobody", None, 10)
            .expect("empty")
            .is_empty()
    );
}

pub fn a_range_of_a_service_stops_at_its_upper_bound<B: Backend>(b: &B) {
    let store = b.open();
    let regs: Vec<_> = (0..25).map(|i| reg(i, "news")).collect();
    store.register_many(&regs).expect("bulk");
    store.register(&reg(12, "tv")).expect("other service");
    let btids = |page: Vec<Member>| -> Vec<Btid> { page.into_iter().map(|m| m.btid).collect() };

    // (btid 4, btid 12]: pages of 5 end at the bound, never past it.
    let page = |after: u32, limit| {
        btids(
            store
                .registrations_in_range("news", Some(&btid(after)), Some(&btid(12)), limit)
                .expect("page"),
        )
    };
    assert_eq!(page(4, 5), (5..10).map(btid).collect::<Vec<_>>());
    assert_eq!(page(9, 5), (10..13).map(btid).collect::<Vec<_>>());
    assert!(page(12, 5).is_empty());
    assert!(page(20, 5).is_empty());
    // No lower bound; no upper bound (the rest of the service).
    let first = store
        .registrations_in_range("news", None, Some(&btid(2)), 10)
        .expect("page");
    assert_eq!(btids(first), (0..3).map(btid).collect::<Vec<_>>());
    let rest = store
        .registrations_in_range("news", Some(&btid(19)), None, 10)
        .expect("page");
    assert_eq!(btids(rest), (20..25).map(btid).collect::<Vec<_>>());
    // Another service's registration inside the range is not one of this service's.
    let tv = store
        .registrations_in_range("tv", None, Some(&btid(24)), 10)
        .expect("page");
    assert_eq!(btids(tv), vec![btid(12)]);
}

pub fn ten_thousand_registrations_stream_back_exactly_once<B: Backend>(b: &B) {
    let store: Arc<dyn Store> = Arc::new(b.open()) as Arc<dyn Store>;
    let regs: Vec<_> = (0..10_000).map(|i| reg(i, "news")).collect();
    store.register_many(&regs).expect("bulk");
    let mut seen = BTreeSet::new();
    let mut previous: Option<Btid> = None;
    for m in members_of_service(&*store, "news", 999) {
        let m = m.expect("row");
        if let Some(p) = &previous {
            assert!(p.as_str() < m.btid.as_str(), "B-TID order");
        }
        assert!(seen.insert(m.btid.to_string()), "each member once");
        previous = Some(m.btid);
    }
    assert_eq!(seen.len(), 10_000);
    assert_eq!(
        store
            .count_registrations_by_service()
            .expect("count")
            .get("news"),
        Some(&10_000)
    );
    // A page size that divides the total exactly ends on an empty page.
    assert_eq!(members_of_service(&*store, "news", 1_000).count(), 10_000);
}

pub fn reads_proceed_while_another_thread_writes<B: Backend>(b: &B) {
    let store: Arc<dyn Store> = Arc::new(b.open()) as Arc<dyn Store>;
    store
        .register_many(&(0..2_000).map(|i| reg(i, "news")).collect::<Vec<_>>())
        .expect("bulk");
    let writer = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            for i in 2_000..2_200 {
                store.register(&reg(i, "tv")).expect("register");
            }
        })
    };
    for _ in 0..5 {
        assert_eq!(members_of_service(&*store, "news", 500).count(), 2_000);
    }
    writer.join().expect("writer");
    assert_eq!(members_of_service(&*store, "tv", 500).count(), 200);
}

pub fn msks_are_put_read_listed_updated_and_deleted<B: Backend>(b: &B) {
    let store = b.open();
    assert!(store.msk(KD, MskId::new(1, 1)).expect("read").is_none());
    let a = msk_record(1, MSK_OCTETS);
    let b = msk_record(2, [7; 16]);
    let mut other_group = msk_record(1, [8; 16]);
    other_group.msk_id = MskId::new(2, 1);
    let mut other_domain = msk_record(1, [9; 16]);
    other_domain.key_domain = KeyDomainId([0x13, 0x00, 0x14]);
    for r in [&b, &a, &other_group, &other_domain] {
        store.put_msk(r).expect("put");
    }
    assert_eq!(store.msk(KD, a.msk_id).expect("read"), Some(a.clone()));
    assert_eq!(
        store.msks_of_group(KD, 1).expect("group"),
        vec![a.clone(), b.clone()]
    );
    assert_eq!(store.msks().expect("all").len(), 4);

    // Update: the same row, a new state and a current MTK with a salt.
    let mut updated = a.clone();
    updated.state = MskState::Current;
    updated.mtk_next_id = 2;
    updated.current_mtk = Some(CurrentMtk {
        id: MtkId(1),
        mtk: Mtk::from_bytes(MTK_OCTETS),
        salt: Some(Salt::from_bytes(SALT_OCTETS)),
    });
    store.put_msk(&updated).expect("update");
    assert_eq!(
        store.msk(KD, a.msk_id).expect("read"),
        Some(updated.clone())
    );
    updated.current_mtk = Some(CurrentMtk {
        id: MtkId(2),
        mtk: Mtk::from_bytes([3; 16]),
        salt: None,
    });
    updated.state = MskState::Retired;
    store.put_msk(&updated).expect("update");
    assert_eq!(store.msk(KD, a.msk_id).expect("read"), Some(updated));
    assert_eq!(store.msks_of_group(KD, 1).expect("group").len(), 2);

    assert!(store.delete_msk(KD, b.msk_id).expect("delete"));
    assert!(!store.delete_msk(KD, b.msk_id).expect("again"));
    assert_eq!(store.msks_of_group(KD, 1).expect("group").len(), 1);
}

pub fn the_counter_ceiling_only_rises_in_serial_order_and_persists<B: Backend>(b: &B) {
    {
        let store = b.open();
        assert_eq!(store.counter_ceiling().expect("fresh"), 0);
        store.raise_counter_ceiling(1_000).expect("raise");
        store
            .raise_counter_ceiling(1_000)
            .expect("same value is a no-op");
        assert!(matches!(
            store.raise_counter_ceiling(999),
            Err(StoreError::CeilingNotRaised {
                current: 1_000,
                requested: 999
            })
        ));
        // More than 2^31 ahead is "behind" in RFC 1982 order.
        assert!(store.raise_counter_ceiling(1_000 + 0x8000_0000).is_err());
        store
            .raise_counter_ceiling(0xffff_ff00)
            .expect_err("too far");
        store.raise_counter_ceiling(0x7fff_0000).expect("raise");
        store.raise_counter_ceiling(0xfff0_0000).expect("raise");
        // Wrapping past 2^32 is a raise.
        store.raise_counter_ceiling(0x0000_1000).expect("wraps");
    }
    assert_eq!(b.open().counter_ceiling().expect("persisted"), 0x1000);
}

pub fn a_fresh_store_takes_any_first_ceiling_then_only_raises<B: Backend>(b: &B) {
    // A fresh store's counters start at the wall-clock floor (docs/profile.md §5), which may
    // be in the upper half of the 32-bit range: not after 0 in RFC 1982 order.
    let store = b.open();
    assert_eq!(store.counter_ceiling().expect("fresh"), 0);
    store
        .raise_counter_ceiling(0xc000_0000)
        .expect("first ceiling");
    assert_eq!(store.counter_ceiling().expect("ceiling"), 0xc000_0000);
    // From then on only a raise in RFC 1982 order.
    assert!(matches!(
        store.raise_counter_ceiling(0x8000_0000),
        Err(StoreError::CeilingNotRaised { .. })
    ));
}

pub fn gba_key_cache_gets_puts_and_purges<B: Backend>(b: &B) {
    let store = b.open();
    assert!(store.cached_keys("a@bsf", at(0)).expect("empty").is_none());
    store
        .cache_keys(&gba_keys("a@bsf", at(1_000)))
        .expect("cache");
    let u = SubscriberKeys {
        btid: "u@bsf".parse().expect("btid"),
        impi: "bob@ims.example.org".to_owned(),
        keys: GbaKeys::U {
            ks_ext_naf: KsExtNaf::from_bytes([1; 32]),
            ks_int_naf: KsIntNaf::from_bytes([2; 32]),
        },
        expires: at(3_000),
    };
    store.cache_keys(&u).expect("cache");
    let got = store
        .cached_keys("a@bsf", at(999))
        .expect("read")
        .expect("valid");
    assert_eq!(got.impi, "alice@ims.example.org");
    assert_eq!(got.expires, at(1_000));
    match got.keys {
        GbaKeys::Me { ks_naf } => assert_eq!(ks_naf.as_bytes(), &KS_NAF_OCTETS),
        GbaKeys::U { .. } => panic!("GBA_ME expected"),
    }
    match store
        .cached_keys("u@bsf", at(0))
        .expect("read")
        .expect("valid")
        .keys
    {
        GbaKeys::U {
            ks_ext_naf,
            ks_int_naf,
        } => {
            assert_eq!(ks_ext_naf.as_bytes(), &[1; 32]);
            assert_eq!(ks_int_naf.as_bytes(), &[2; 32]);
        }
        GbaKeys::Me { .. } => panic!("GBA_U expected"),
    }
    // Expired entries are not returned, then purged.
    assert!(
        store
            .cached_keys("a@bsf", at(1_000))
            .expect("read")
            .is_none()
    );
    assert_eq!(store.purge_expired_keys(at(1_000)).expect("purge"), 1);
    assert_eq!(store.purge_expired_keys(at(1_000)).expect("purge"), 0);
    assert!(
        store
            .cached_keys("u@bsf", at(2_000))
            .expect("read")
            .is_some()
    );
    // Replacing extends the lifetime.
    store
        .cache_keys(&gba_keys("a@bsf", at(5_000)))
        .expect("cache");
    assert!(
        store
            .cached_keys("a@bsf", at(4_000))
            .expect("read")
            .is_some()
    );
}

pub fn queued_registrations_complete_and_recent_ones_are_listed_newest_first<B: Backend>(b: &B) {
    let store = b.open();
    let receivers: Vec<_> = (0..20)
        .map(|i| store.register_queued(reg(i, "news")))
        .collect();
    for rx in receivers {
        rx.blocking_recv().expect("answered").expect("durable");
    }
    assert_eq!(
        store
            .count_registrations_by_service()
            .expect("count")
            .get("news"),
        Some(&20)
    );
    // reg(i) is registered i * 1001 ns after the base time.
    let since = reg(15, "news").registered_at;
    let recent = store.registrations_since(since, 100).expect("since");
    assert_eq!(
        recent,
        (15..20).rev().map(|i| reg(i, "news")).collect::<Vec<_>>()
    );
    assert_eq!(store.registrations_since(since, 2).expect("limit").len(), 2);
    assert!(
        store
            .registrations_since(at(1_900_000_000), 10)
            .expect("none")
            .is_empty()
    );
    // Many queued registrations of one UE and service: the last one is what is kept.
    let receivers: Vec<_> = (0..5u64)
        .map(|k| {
            let mut r = reg(3, "tv");
            r.registered_at = at(1_750_000_000 + k);
            store.register_queued(r)
        })
        .collect();
    for rx in receivers {
        rx.blocking_recv().expect("answered").expect("durable");
    }
    let of_3 = store.registrations_of_btid(&btid(3)).expect("list");
    assert_eq!(of_3.len(), 2);
    assert_eq!(of_3[1].registered_at, at(1_750_000_004));
}

pub fn msk_states_of_a_group_leave_other_groups_out<B: Backend>(b: &B) {
    let store = b.open();
    let mut current = msk_record(2, [6; 16]);
    current.state = MskState::Current;
    current.current_mtk = Some(CurrentMtk {
        id: MtkId(7),
        mtk: Mtk::from_bytes(MTK_OCTETS),
        salt: Some(Salt::from_bytes(SALT_OCTETS)),
    });
    store.put_msk(&msk_record(1, MSK_OCTETS)).expect("put");
    store.put_msk(&current).expect("put");
    let mut other = msk_record(1, [8; 16]);
    other.msk_id = MskId::new(2, 1);
    store.put_msk(&other).expect("put");
    assert_eq!(
        store.msk_states_of_group(KD, 1).expect("states"),
        vec![
            (MskId::new(1, 1), MskState::Next),
            (MskId::new(1, 2), MskState::Current)
        ]
    );
    assert_eq!(store.msk(KD, current.msk_id).expect("read"), Some(current));
    assert!(store.msk_states_of_group(KD, 3).expect("none").is_empty());
}
