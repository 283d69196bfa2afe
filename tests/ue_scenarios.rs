//! Deterministic virtual-time scenarios of the UE receiver: what a media
//! client sees over key rotation, expiry, solicited pulls, lost pushes and a
//! restart. Time is one `Instant` read once plus durations.

mod common;
mod ue_support;

use std::time::Instant;

use mbms_keys::crypto::{AtRestError, Fixed, StateKey};
use mbms_keys::mbms::{MskId, MtkId};
use mbms_keys::ue::{DiscardReason, Event, Receiver, ReceiverConfig, StateError};
use ue_support::*;

/// The MTK IDs handed to the media client, by MSK.
fn ready(events: &[Event]) -> Vec<(MskId, u16)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::MtkReady { msk_id, mtk_id, .. } => Some((*msk_id, mtk_id.0)),
            _ => None,
        })
        .collect()
}

/// The BM-SC's MTK stream of one MSK: next MTK ID and counter.
struct MtkStream {
    key: u8,
    msk_id: MskId,
    next_id: u16,
    counter: u32,
}

impl MtkStream {
    fn new(key: u8, msk_id: MskId, seql: u16) -> Self {
        Self {
            key,
            msk_id,
            next_id: seql + 1,
            counter: 0,
        }
    }

    fn next(&mut self) -> Vec<u8> {
        self.counter += 1;
        let m = mtk_msg(
            &msk(self.key),
            self.msk_id,
            self.next_id,
            self.counter,
            &mtk(self.next_id as u8),
        );
        self.next_id += 1;
        m
    }
}

/// A driver-like loop: fire every timer due up to `until`.
fn run_timers(rx: &mut Receiver, until: Instant) -> Vec<Event> {
    let mut out = Vec::new();
    while let Some(t) = rx.poll_timeout().filter(|t| *t <= until) {
        rx.handle_timeout(t);
        out.extend(drain(rx));
    }
    out
}

#[test]
fn key_rotation_msk_2_pushed_ahead_then_msk_1_deleted_by_a_third() {
    let mut rx = receiver();
    let mut bmsc = Bmsc::vectors(&mut rx);
    let t0 = epoch();
    let (m1, m2, m3) = (id(1, 1), id(1, 2), id(1, 3));
    assert!(
        rx.handle_datagram(t0, &bmsc.new_key(m1, &msk(1), 0, 100))
            .is_some()
    );
    let mut s1 = MtkStream::new(1, m1, 0);
    for _ in 0..3 {
        rx.handle_datagram(t0 + SEC, &s1.next());
    }
    // MSK 2 pushed ahead of the change; MTKs of both MSKs are accepted.
    assert!(
        rx.handle_datagram(t0 + 2 * SEC, &bmsc.new_key(m2, &msk(2), 0, 100))
            .is_some()
    );
    let mut s2 = MtkStream::new(2, m2, 0);
    rx.handle_datagram(t0 + 3 * SEC, &s1.next());
    rx.handle_datagram(t0 + 3 * SEC, &s2.next());
    rx.handle_datagram(t0 + 4 * SEC, &s2.next());
    let events = drain(&mut rx);
    assert_eq!(
        ready(&events),
        [(m1, 1), (m1, 2), (m1, 3), (m1, 4), (m2, 1), (m2, 2)]
    );
    // MSK 3 arrives: the group's earlier MSK (1) is deleted.
    rx.handle_datagram(t0 + 5 * SEC, &bmsc.new_key(m3, &msk(3), 0, 100));
    assert_eq!(
        drain(&mut rx),
        [
            Event::MskInvalidated {
                key_domain_id: kd(),
                msk_id: m1
            },
            Event::MskInstalled {
                key_domain_id: kd(),
                msk_id: m3,
                seql: 0,
                sequ: 100
            },
        ]
    );
    // A late MTK under MSK 1 is for an unknown MSK now; MSK 2 carries on.
    rx.handle_datagram(t0 + 6 * SEC, &s1.next());
    rx.handle_datagram(t0 + 6 * SEC, &s2.next());
    let events = drain(&mut rx);
    assert_eq!(discards(&events), [DiscardReason::UnknownMsk]);
    assert_eq!(ready(&events), [(m2, 3)]);
    let stored: Vec<_> = rx.msks().map(|i| i.msk_id).collect();
    assert_eq!(stored, [m2, m3]);
}

#[test]
fn msk_expiry_mtk_ids_reach_sequ_then_the_rotated_msk_carries_on() {
    let mut rx = receiver();
    let mut bmsc = Bmsc::vectors(&mut rx);
    let t0 = epoch();
    let (m1, m2) = (id(4, 1), id(4, 2));
    rx.handle_datagram(t0, &bmsc.new_key(m1, &msk(1), 0, 3));
    rx.handle_datagram(t0, &bmsc.new_key(m2, &msk(2), 0, 1000));
    let (mut s1, mut s2) = (MtkStream::new(1, m1, 0), MtkStream::new(2, m2, 0));
    drain(&mut rx);
    for i in 0..5u32 {
        let t = t0 + (i + 1) * SEC;
        rx.handle_datagram(t, &s1.next());
    }
    let events = drain(&mut rx);
    assert_eq!(ready(&events), [(m1, 1), (m1, 2), (m1, 3)]);
    assert_eq!(discards(&events), [DiscardReason::MtkIdOutsideInterval; 2]);
    let info = rx.msks().find(|i| i.msk_id == m1).unwrap();
    assert_eq!((info.seqs, info.sequ), (3, 3));
    for _ in 0..3 {
        rx.handle_datagram(t0 + 10 * SEC, &s2.next());
    }
    assert_eq!(ready(&drain(&mut rx)), [(m2, 1), (m2, 2), (m2, 3)]);
}

#[test]
fn solicited_pull_with_backoff_then_msk_push_then_mtks_flow() {
    let config = ReceiverConfig {
        backoff: Some((SEC, 5 * SEC)),
        ..ReceiverConfig::default()
    };
    // The injected randomness draws the middle of the window: 3 s.
    let mut rx = receiver_with(config, 1 << 63);
    let mut bmsc = Bmsc::vectors(&mut rx);
    let t0 = epoch();
    bmsc.counter = 7;
    let pull = bmsc.push(id(1, 0), mbms_keys::mbms::MskUpdate::SolicitedPull);
    assert_eq!(rx.handle_datagram(t0, &pull), None);
    // A second pull of the same Key Group while one is pending: still one request.
    let again = bmsc.push(id(1, 0), mbms_keys::mbms::MskUpdate::SolicitedPull);
    rx.handle_datagram(t0 + SEC, &again);
    assert_eq!(drain(&mut rx), []);
    assert_eq!(rx.poll_timeout(), Some(t0 + 3 * SEC));
    assert_eq!(run_timers(&mut rx, t0 + 2 * SEC), []);
    let fired = run_timers(&mut rx, t0 + 10 * SEC);
    assert_eq!(requests(&fired), [id(1, 0)]);
    assert_eq!(rx.poll_timeout(), None);
    // The MSK request (HTTP, elsewhere) makes the BM-SC push the current MSK.
    let ack = rx.handle_datagram(t0 + 4 * SEC, &bmsc.new_key(id(1, 5), &msk(5), 0, 50));
    assert!(ack.is_some());
    let mut s = MtkStream::new(5, id(1, 5), 0);
    rx.handle_datagram(t0 + 5 * SEC, &s.next());
    let events = drain(&mut rx);
    assert_eq!(ready(&events), [(id(1, 5), 1)]);
}

#[test]
fn lost_pushes_recovered_by_msk_request() {
    let holdoff = 20 * SEC;
    let config = ReceiverConfig {
        missed_key_holdoff: holdoff,
        key_groups: vec![(kd(), 2)],
        ..ReceiverConfig::default()
    };
    let mut rx = receiver_with(config, 0);
    let mut bmsc = Bmsc::vectors(&mut rx);
    let t0 = epoch();
    let m = id(2, 9);
    // The push is lost on the way: the UE only sees the MTK stream.
    let _lost = bmsc.new_key(m, &msk(9), 0, 500);
    let mut s = MtkStream::new(9, m, 0);
    rx.handle_datagram(t0, &s.next());
    rx.handle_datagram(t0 + SEC, &s.next());
    let events = drain(&mut rx);
    assert_eq!(discards(&events), [DiscardReason::UnknownMsk; 2]);
    assert_eq!(requests(&events), [m], "one request per hold-off");
    // The request is answered by a fresh push of that MSK.
    let ack = rx.handle_datagram(t0 + 2 * SEC, &bmsc.new_key(m, &msk(9), 0, 500));
    assert!(ack.is_some());
    rx.handle_datagram(t0 + 3 * SEC, &s.next());
    rx.handle_datagram(t0 + 4 * SEC, &s.next());
    let events = drain(&mut rx);
    assert_eq!(ready(&events)[..], [(m, 3), (m, 4)]);
    assert_eq!(discards(&events), []);
}

#[test]
fn restart_in_the_middle_keeps_replays_out_and_refuses_foreign_blobs() {
    let mut rx = receiver();
    let mut bmsc = Bmsc::vectors(&mut rx);
    let t0 = epoch();
    let key = StateKey::from_bytes([0x42; 32]);
    let m = id(1, 2);
    let push = bmsc.new_key(m, &msk(2), 0, 100);
    rx.handle_datagram(t0, &push);
    let mut s = MtkStream::new(2, m, 0);
    let (mtk1, mtk2) = (s.next(), s.next());
    rx.handle_datagram(t0, &mtk1);
    rx.handle_datagram(t0, &mtk2);
    assert_eq!(ready(&drain(&mut rx)), [(m, 1), (m, 2)]);
    let blob = rx.save(&key);
    let before: Vec<_> = rx.msks().collect();
    drop(rx);

    let mut rx = Receiver::restore(ReceiverConfig::default(), Box::new(Fixed(0)), &key, &blob)
        .expect("own blob");
    assert_eq!(rx.msks().collect::<Vec<_>>(), before);
    assert_eq!(rx.muk_counter(&bmsc.muk_id()), Some(Some(1)));
    // Replays of what was accepted before the restart are refused.
    assert_eq!(rx.handle_datagram(t0 + SEC, &push), None);
    rx.handle_datagram(t0 + SEC, &mtk1);
    rx.handle_datagram(t0 + SEC, &mtk2);
    assert_eq!(discards(&drain(&mut rx)), [DiscardReason::Replay; 3]);
    // New ones are accepted.
    let validity = bmsc.push(
        m,
        mbms_keys::mbms::MskUpdate::ValidityOnly { seql: 0, sequ: 200 },
    );
    assert!(rx.handle_datagram(t0 + 2 * SEC, &validity).is_some());
    rx.handle_datagram(t0 + 2 * SEC, &s.next());
    let events = drain(&mut rx);
    assert_eq!(ready(&events), [(m, 3)]);
    assert!(matches!(
        events.last(),
        Some(Event::MtkReady {
            mtk_id: MtkId(3),
            ..
        })
    ));

    // A blob under another key, or with any one bit flipped, is refused.
    let restore = |k: &StateKey, b: &[u8]| {
        Receiver::restore(ReceiverConfig::default(), Box::new(Fixed(0)), k, b).map(drop)
    };
    assert_eq!(
        restore(&StateKey::from_bytes([0x43; 32]), &blob),
        Err(StateError::Sealed(AtRestError::AuthenticationFailed))
    );
    for bit in (0..blob.len() * 8).step_by(7) {
        let mut bad = blob.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert_eq!(
            restore(&key, &bad),
            Err(StateError::Sealed(AtRestError::AuthenticationFailed)),
            "bit {bit}"
        );
    }
    assert_eq!(
        restore(&key, &blob[..10]),
        Err(StateError::Sealed(AtRestError::TooShort { len: 10 }))
    );
    // A blob sealed under the right key but holding something else.
    let foreign = mbms_keys::crypto::at_rest::seal(&key, b"{\"not\":\"state\"}");
    assert_eq!(restore(&key, &foreign), Err(StateError::Format));
}

#[test]
fn restore_holds_exactly_the_saved_counters_and_previous_muk() {
    let mut rx = receiver();
    let mut old = Bmsc::vectors(&mut rx);
    let t0 = epoch();
    old.counter = 0xffff_fff0;
    rx.handle_datagram(t0, &old.new_key(id(3, 1), &msk(1), 7, 9));
    let mut new = Bmsc::new(mbms_keys::crypto::Muk::from_bytes([5; 32]), SECOND_BTID);
    rx.set_muk(new.muk_id(), new.muk.clone());
    rx.handle_datagram(t0, &new.new_key(id(3, 2), &msk(2), 0, 9));
    let key = StateKey::from_bytes([1; 32]);
    let mut back = Receiver::restore(
        ReceiverConfig::default(),
        Box::new(Fixed(0)),
        &key,
        &rx.save(&key),
    )
    .unwrap();
    assert_eq!(back.muk_counter(&old.muk_id()), Some(Some(0xffff_fff1)));
    assert_eq!(back.muk_counter(&new.muk_id()), Some(Some(1)));
    assert_eq!(
        back.msks().collect::<Vec<_>>(),
        rx.msks().collect::<Vec<_>>()
    );
    // The installation order survives: a third MSK still deletes (3, 1).
    back.handle_datagram(t0, &new.new_key(id(3, 3), &msk(3), 0, 9));
    assert_eq!(
        drain(&mut back)[0],
        Event::MskInvalidated {
            key_domain_id: kd(),
            msk_id: id(3, 1)
        }
    );
    // And the previous MUK still verifies after the wrap.
    assert!(
        back.handle_datagram(
            t0,
            &old.push(
                id(3, 2),
                mbms_keys::mbms::MskUpdate::ValidityOnly { seql: 0, sequ: 5 }
            )
        )
        .is_some()
    );
}
