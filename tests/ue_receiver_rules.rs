//! docs/profile.md §3, the receiver rules: one test per rule and per [CHOICE]
//! edge case, named after it. Messages come from the vectors in
//! `proto-vectors/` and from the crate's builders.

mod common;
mod ue_support;

use std::time::Duration;

use mbms_keys::crypto::{Muk, ProtectionKeys, Salt};
use mbms_keys::mbms::{AckContext, MskId, MskUpdate, MtkId, Streaming, UnverifiedAck, profile};
use mbms_keys::mikey::{Payload, PolicyParam, ProtType, SecurityPolicy, SrtpIdEntry};
use mbms_keys::ue::{
    DiscardReason, Event, Receiver, ReceiverConfig, RequestLimits, SrtpPolicy, fuzzing,
};
use ue_support::*;

fn installed(rx: &Receiver) -> Vec<(u16, u16)> {
    rx.msks()
        .map(|i| (i.msk_id.key_group, i.msk_id.key_number))
        .collect()
}

fn validity(seql: u16, sequ: u16) -> MskUpdate {
    MskUpdate::ValidityOnly { seql, sequ }
}

fn invalidate() -> MskUpdate {
    MskUpdate::Invalidate {
        seql: profile::INVALIDATION_SEQL,
        sequ: profile::INVALIDATION_SEQU,
    }
}

// --- structure and dispatch -------------------------------------------------

#[test]
fn malformed_datagrams_are_discarded_as_malformed() {
    let mut rx = receiver();
    let now = epoch();
    let normal = vector("msk-message-normal");
    for d in [&[][..], &[0x01], &normal[..normal.len() - 1], &[0xff; 40]] {
        assert_eq!(rx.handle_datagram(now, d), None);
    }
    assert_eq!(rx.stats().discards(DiscardReason::Malformed), 4);
}

#[test]
fn mikey_messages_outside_the_profile_are_not_profile_messages() {
    let mut rx = receiver();
    let now = epoch();
    for (name, bytes) in common::all_messages() {
        if [
            "rfc3830-psk-init-v1",
            "gstreamer-psk-init",
            "onvif-mikey-null",
        ]
        .contains(&name.as_str())
        {
            rx.handle_datagram(now, &bytes);
            assert_eq!(
                discards(&drain(&mut rx)),
                [DiscardReason::NotProfileMessage],
                "{name}"
            );
        }
    }
    // An RFC 3830 Error message (data type 6) is not for the UE either.
    let err = remac(&[0; 32], &vector("msk-message-normal"), |m| {
        m.hdr.data_type = mbms_keys::mikey::DataType::ERROR
    });
    rx.handle_datagram(now, &err);
    assert_eq!(
        discards(&drain(&mut rx)),
        [DiscardReason::NotProfileMessage]
    );
}

#[test]
fn acknowledgement_at_the_ue_is_unexpected() {
    let mut rx = receiver();
    Bmsc::vectors(&mut rx);
    assert_eq!(rx.handle_datagram(epoch(), &vector("msk-ack")), None);
    assert_eq!(
        discards(&drain(&mut rx)),
        [DiscardReason::UnexpectedAcknowledgement]
    );
}

// --- MSK message: MUK, counter, MAC ---------------------------------------

#[test]
fn msk_vector_is_accepted_under_the_muk_named_by_idi_idr() {
    let mut rx = receiver();
    Bmsc::vectors(&mut rx);
    let ack = rx.handle_datagram(epoch(), &vector("msk-message-normal"));
    assert!(ack.is_some());
    assert_eq!(
        drain(&mut rx),
        [Event::MskInstalled {
            key_domain_id: kd(),
            msk_id: id(1, 2),
            seql: 1,
            sequ: 0xffff
        }]
    );
    assert_eq!(rx.muk_counter(&vector_muk_id()), Some(Some(5)));
    let info = rx.msks().next().unwrap();
    assert_eq!(
        (info.seql, info.sequ, info.seqs, info.counter),
        (1, 0xffff, 1, None)
    );
}

#[test]
fn ack_for_the_normal_vector_is_the_ack_vector() {
    let mut rx = receiver();
    Bmsc::vectors(&mut rx);
    let ack = rx
        .handle_datagram(epoch(), &vector("msk-message-normal"))
        .unwrap();
    assert_eq!(ack, vector("msk-ack"));
}

#[test]
fn unknown_muk_is_discarded() {
    let mut rx = receiver();
    let other = Bmsc::new(vector_muk(), SECOND_BTID);
    rx.set_muk(other.muk_id(), other.muk.clone());
    assert_eq!(
        rx.handle_datagram(epoch(), &vector("msk-message-normal")),
        None
    );
    assert_eq!(discards(&drain(&mut rx)), [DiscardReason::UnknownMuk]);
    assert_eq!(rx.msks().count(), 0);
}

#[test]
fn msk_under_previous_muk_is_accepted() {
    let mut rx = receiver();
    let mut old = Bmsc::vectors(&mut rx);
    let mut new = Bmsc::new(Muk::from_bytes([0x77; 32]), SECOND_BTID);
    rx.set_muk(new.muk_id(), new.muk.clone());
    let now = epoch();
    assert!(
        rx.handle_datagram(now, &old.new_key(id(1, 1), &msk(1), 0, 9))
            .is_some()
    );
    assert!(
        rx.handle_datagram(now, &new.new_key(id(1, 2), &msk(2), 0, 9))
            .is_some()
    );
    assert_eq!(installed(&rx), [(1, 1), (1, 2)]);
    // Only one previous MUK is kept: a third MUK drops the first.
    let third = Bmsc::new(Muk::from_bytes([0x78; 32]), "third@bsf");
    rx.set_muk(third.muk_id(), third.muk.clone());
    assert!(
        rx.handle_datagram(now, &new.push(id(1, 2), validity(0, 9)))
            .is_some()
    );
    assert_eq!(
        rx.handle_datagram(now, &old.push(id(1, 1), validity(0, 9))),
        None
    );
    assert_eq!(discards(&drain(&mut rx)), [DiscardReason::UnknownMuk]);
}

#[test]
fn removed_muk_is_unknown() {
    let mut rx = receiver();
    let mut b = Bmsc::vectors(&mut rx);
    rx.remove_muk(&b.muk_id());
    rx.handle_datagram(epoch(), &b.new_key(id(1, 1), &msk(1), 0, 9));
    assert_eq!(discards(&drain(&mut rx)), [DiscardReason::UnknownMuk]);
}

#[test]
fn set_muk_with_the_same_key_keeps_the_counter_and_another_key_resets_it() {
    let mut rx = receiver();
    let b = Bmsc::vectors(&mut rx);
    let now = epoch();
    rx.handle_datagram(
        now,
        &b.at(
            100,
            id(1, 1),
            MskUpdate::NewKey {
                msk: msk(1),
                seql: 0,
                sequ: 9,
            },
        ),
    );
    rx.set_muk(b.muk_id(), b.muk.clone());
    assert_eq!(rx.muk_counter(&b.muk_id()), Some(Some(100)));
    let rekeyed = Bmsc::new(Muk::from_bytes([0x99; 32]), BTID);
    rx.set_muk(rekeyed.muk_id(), rekeyed.muk.clone());
    assert_eq!(rx.muk_counter(&b.muk_id()), Some(None));
    assert!(
        rx.handle_datagram(now, &rekeyed.at(1, id(1, 1), validity(0, 9)))
            .is_some()
    );
}

#[test]
fn first_counter_under_a_muk_is_accepted_whatever_its_value() {
    for c in [0, 1, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff] {
        let mut rx = receiver();
        let b = Bmsc::vectors(&mut rx);
        let m = b.at(
            c,
            id(1, 1),
            MskUpdate::NewKey {
                msk: msk(1),
                seql: 0,
                sequ: 9,
            },
        );
        assert!(rx.handle_datagram(epoch(), &m).is_some(), "{c:#x}");
        assert_eq!(rx.muk_counter(&b.muk_id()), Some(Some(c)));
    }
}

#[test]
fn replay_counter_must_be_newer_in_serial_arithmetic() {
    let mut rx = receiver();
    Bmsc::vectors(&mut rx);
    let now = epoch();
    let normal = vector("msk-message-normal");
    assert!(rx.handle_datagram(now, &normal).is_some());
    drain(&mut rx);
    // The same message again, and an older counter: both replays.
    assert_eq!(rx.handle_datagram(now, &normal), None);
    let b = Bmsc::new(vector_muk(), BTID);
    assert_eq!(
        rx.handle_datagram(now, &b.at(4, id(1, 2), validity(1, 2))),
        None
    );
    assert_eq!(
        discards(&drain(&mut rx)),
        [DiscardReason::Replay, DiscardReason::Replay]
    );
    // The next vector (counter 6) is newer.
    assert!(
        rx.handle_datagram(now, &vector("msk-message-validity-update"))
            .is_some()
    );
    assert_eq!(rx.muk_counter(&vector_muk_id()), Some(Some(6)));
}

#[test]
fn counter_wrap_0xfffffff0_to_0x00000005_is_newer() {
    let mut rx = receiver();
    let b = Bmsc::vectors(&mut rx);
    let now = epoch();
    let key = || MskUpdate::NewKey {
        msk: msk(1),
        seql: 0,
        sequ: 9,
    };
    assert!(
        rx.handle_datagram(now, &b.at(0xffff_fff0, id(1, 1), key()))
            .is_some()
    );
    assert!(
        rx.handle_datagram(now, &b.at(0x0000_0005, id(1, 1), validity(0, 9)))
            .is_some()
    );
    assert_eq!(rx.muk_counter(&b.muk_id()), Some(Some(5)));
    assert_eq!(
        rx.handle_datagram(now, &b.at(0xffff_fff8, id(1, 1), validity(0, 9))),
        None
    );
    assert_eq!(discards(&drain(&mut rx)), [DiscardReason::Replay]);
}

#[test]
fn counter_exactly_2_pow_31_away_is_not_newer() {
    let mut rx = receiver();
    let b = Bmsc::vectors(&mut rx);
    let now = epoch();
    let key = MskUpdate::NewKey {
        msk: msk(1),
        seql: 0,
        sequ: 9,
    };
    assert!(rx.handle_datagram(now, &b.at(10, id(1, 1), key)).is_some());
    assert_eq!(
        rx.handle_datagram(now, &b.at(10 + (1 << 31), id(1, 1), validity(0, 9))),
        None
    );
    assert_eq!(discards(&drain(&mut rx)), [DiscardReason::Replay]);
    assert!(
        rx.handle_datagram(now, &b.at(10 + (1 << 31) - 1, id(1, 1), validity(0, 9)))
            .is_some()
    );
}

#[test]
fn nothing_changes_before_mac_verifies() {
    let mut rx = receiver();
    let mut b = Bmsc::vectors(&mut rx);
    let now = epoch();
    assert!(
        rx.handle_datagram(now, &b.new_key(id(1, 1), &msk(1), 0, 9))
            .is_some()
    );
    drain(&mut rx);
    let before: Vec<_> = rx.msks().collect();
    let good = b.new_key(id(1, 2), &msk(2), 0, 9);
    let wrong_muk = Bmsc::new(Muk::from_bytes([0x01; 32]), BTID);
    let mut tampered = vec![wrong_muk.at(b.counter + 1, id(1, 1), invalidate())];
    for i in [2, 20, good.len() - 30, good.len() - 1] {
        let mut t = good.clone();
        t[i] ^= 0x01;
        tampered.push(t);
    }
    for t in &tampered {
        assert_eq!(rx.handle_datagram(now, t), None);
    }
    let reasons = discards(&drain(&mut rx));
    assert_eq!(reasons.len(), tampered.len());
    assert!(
        reasons.iter().all(|r| *r != DiscardReason::Replay),
        "{reasons:?}"
    );
    assert!(reasons.contains(&DiscardReason::BadMac));
    assert_eq!(rx.msks().collect::<Vec<_>>(), before);
    assert_eq!(rx.muk_counter(&b.muk_id()), Some(Some(1)));
    assert_eq!(rx.stats().msk_accepted, 1);
    // The genuine message still goes through afterwards.
    assert!(rx.handle_datagram(now, &good).is_some());
}

#[test]
fn counter_stored_only_after_full_success() {
    let mut rx = receiver();
    let mut b = Bmsc::vectors(&mut rx);
    let now = epoch();
    // A MAC failure, then a message that verifies but cannot be applied.
    let bad = Bmsc::new(Muk::from_bytes([2; 32]), BTID).at(50, id(1, 1), invalidate());
    rx.handle_datagram(now, &bad);
    rx.handle_datagram(now, &b.at(60, id(1, 1), validity(0, 9)));
    assert_eq!(rx.muk_counter(&b.muk_id()), Some(None));
    assert_eq!(
        discards(&drain(&mut rx)),
        [DiscardReason::BadMac, DiscardReason::UnknownMsk]
    );
    b.counter = 1;
    assert!(
        rx.handle_datagram(now, &b.new_key(id(1, 1), &msk(1), 0, 9))
            .is_some()
    );
    assert_eq!(rx.muk_counter(&b.muk_id()), Some(Some(2)));
}

// --- MSK message: apply ---------------------------------------------------

#[test]
fn new_key_under_stored_msk_id_is_a_new_installation() {
    let mut rx = receiver();
    let mut b = Bmsc::vectors(&mut rx);
    let now = epoch();
    rx.handle_datagram(now, &b.new_key(id(1, 1), &msk(1), 0, 100));
    rx.handle_datagram(now, &mtk_msg(&msk(1), id(1, 1), 50, 1000, &mtk(1)));
    drain(&mut rx);
    rx.handle_datagram(now, &b.new_key(id(1, 1), &msk(9), 10, 200));
    assert_eq!(
        drain(&mut rx),
        [Event::MskInstalled {
            key_domain_id: kd(),
            msk_id: id(1, 1),
            seql: 10,
            sequ: 200
        }]
    );
    let info = rx.msks().next().unwrap();
    assert_eq!((info.seqs, info.counter), (10, None));
    // SEQs := SEQl and the MSK's counter state reset: MTK ID 11, counter 1.
    rx.handle_datagram(now, &mtk_msg(&msk(9), id(1, 1), 11, 1, &mtk(2)));
    assert!(matches!(
        drain(&mut rx)[..],
        [Event::MtkReady {
            mtk_id: MtkId(11),
            ..
        }]
    ));
}

#[test]
fn same_key_again_is_a_validity_only_update() {
    let mut rx = receiver();
    let mut b = Bmsc::vectors(&mut rx);
    let now = epoch();
    rx.handle_datagram(now, &b.new_key(id(1, 1), &msk(1), 0, 100));
    rx.handle_datagram(now, &mtk_msg(&msk(1), id(1, 1), 50, 1000, &mtk(1)));
    drain(&mut rx);
    rx.handle_datagram(now, &b.new_key(id(1, 1), &msk(1), 10, 200));
    assert_eq!(
        drain(&mut rx),
        [Event::MskUpdated {
            key_domain_id: kd(),
            msk_id: id(1, 1),
            seql: 10,
            sequ: 200
        }]
    );
    let info = rx.msks().next().unwrap();
    assert_eq!(
        (info.seql, info.sequ, info.seqs, info.counter),
        (10, 200, 50, Some(1000))
    );
}

#[test]
fn validity_update_replaces_the_interval() {
    let mut rx = receiver();
    Bmsc::vectors(&mut rx);
    let now = epoch();
    rx.handle_datagram(now, &vector("msk-message-normal"));
    assert!(
        rx.handle_datagram(now, &vector("msk-message-validity-update"))
            .is_some()
    );
    let info = rx.msks().next().unwrap();
    assert_eq!((info.seql, info.sequ, info.seqs), (1, 0x0100, 1));
    // The shortened interval applies: MTK ID 0x0101 is now outside.
    let key = mbms_keys::crypto::Msk::from_hex("b0b1b2b3b4b5b6b7b8b9babbbcbdbebf").unwrap();
    rx.handle_datagram(now, &mtk_msg(&key, id(1, 2), 0x0101, 1, &mtk(1)));
    assert_eq!(
        discards(&drain(&mut rx)),
        [DiscardReason::MtkIdOutsideInterval]
    );
}

#[test]
fn validity_update_never_moves_seqs_back() {
    let mut rx = receiver();
    let mut b = Bmsc::vectors(&mut rx);
    let now = epoch();
    rx.handle_datagram(now, &b.new_key(id(1, 1), &msk(1), 0, 100));
    rx.handle_datagram(now, &mtk_msg(&msk(1), id(1, 1), 40, 1, &mtk(1)));
    rx.handle_datagram(now, &b.push(id(1, 1), validity(5, 300)));
    assert_eq!(rx.msks().next().unwrap().seqs, 40);
    // MTK IDs up to 40 stay closed.
    rx.handle_datagram(now, &mtk_msg(&msk(1), id(1, 1), 30, 2, &mtk(2)));
    assert_eq!(discards(&drain(&mut rx)), [DiscardReason::MtkIdNotNewer]);
    // A validity update above SEQs moves it forward.
    rx.handle_datagram(now, &b.push(id(1, 1), validity(60, 300)));
    assert_eq!(rx.msks().next().unwrap().seqs, 60);
}

#[test]
fn validity_update_for_unknown_msk_does_not_advance_counter() {
    let mut rx = receiver();
    let mut b = Bmsc::vectors(&mut rx);
    let now = epoch();
    rx.handle_datagram(now, &b.new_key(id(1, 1), &msk(1), 0, 100));
    assert_eq!(
        rx.handle_datagram(now, &b.push(id(1, 7), validity(0, 9))),
        None
    );
    assert_eq!(discards(&drain(&mut rx)), [DiscardReason::UnknownMsk]);
    assert_eq!(rx.muk_counter(&b.muk_id()), Some(Some(1)));
    // So the BM-SC may reuse that counter once the MSK is pushed.
    b.counter = 1;
    assert!(
        rx.handle_datagram(now, &b.new_key(id(1, 7), &msk(7), 0, 9))
            .is_some()
    );
}

#[test]
fn invalidation_deletes_the_msk() {
    let mut rx = receiver();
    Bmsc::vectors(&mut rx);
    let now = epoch();
    rx.handle_datagram(now, &vector("msk-message-normal"));
    drain(&mut rx);
    assert!(
        rx.handle_datagram(now, &vector("msk-message-invalidation"))
            .is_some()
    );
    assert_eq!(
        drain(&mut rx),
        [Event::MskInvalidated {
            key_domain_id: kd(),
            msk_id: id(1, 2)
        }]
    );
    assert_eq!(rx.msks().count(), 0);
    assert_eq!(rx.muk_counter(&vector_muk_id()), Some(Some(7)));
    // MTKs under it are now for an unknown MSK.
    rx.handle_datagram(now, &vector("mtk-message-download"));
    assert_eq!(discards(&drain(&mut rx)), [DiscardReason::UnknownMsk]);
}

#[test]
fn invalidation_of_unknown_msk_advances_counter() {
    let mut rx = receiver();
    Bmsc::vectors(&mut rx);
    assert!(
        rx.handle_datagram(epoch(), &vector("msk-message-invalidation"))
            .is_some()
    );
    assert_eq!(drain(&mut rx), []);
    assert_eq!(rx.muk_counter(&vector_muk_id()), Some(Some(7)));
    assert_eq!(rx.stats().msk_accepted, 1);
}

#[test]
fn third_msk_in_key_group_deletes_the_older() {
    let mut rx = receiver();
    let mut b = Bmsc::vectors(&mut rx);
    let now = epoch();
    // Installed in the order 5, 3: the earlier one (5) goes, not the lower ID.
    rx.handle_datagram(now, &b.new_key(id(1, 5), &msk(5), 0, 9));
    rx.handle_datagram(now, &b.new_key(id(1, 3), &msk(3), 0, 9));
    drain(&mut rx);
    rx.handle_datagram(now, &b.new_key(id(1, 7), &msk(7), 0, 9));
    assert_eq!(
        drain(&mut rx),
        [
            Event::MskInvalidated {
                key_domain_id: kd(),
                msk_id: id(1, 5)
            },
            Event::MskInstalled {
                key_domain_id: kd(),
                msk_id: id(1, 7),
                seql: 0,
                sequ: 9
            },
        ]
    );
    assert_eq!(installed(&rx), [(1, 3), (1, 7)]);
    // A re-installation under a stored ID counts as the latest installation.
    rx.handle_datagram(now, &b.new_key(id(1, 3), &msk(33), 0, 9));
    rx.handle_datagram(now, &b.new_key(id(1, 8), &msk(8), 0, 9));
    assert_eq!(installed(&rx), [(1, 3), (1, 8)]);
}

#[test]
fn key_groups_and_key_domains_are_counted_apart() {
    let mut rx = receiver();
    let mut b = Bmsc::vectors(&mut rx);
    let now = epoch();
    for (g, n) in [(1, 1), (1, 2), (2, 1), (2, 2)] {
        rx.handle_datagram(now, &b.new_key(id(g, n), &msk(n as u8), 0, 9));
    }
    assert_eq!(installed(&rx), [(1, 1), (1, 2), (2, 1), (2, 2)]);
    assert!(
        !drain(&mut rx)
            .iter()
            .any(|e| matches!(e, Event::MskInvalidated { .. }))
    );
}

#[test]
fn sp_payload_is_stored_with_the_msk() {
    let mut rx = receiver();
    let b = Bmsc::vectors(&mut rx);
    let sp = SecurityPolicy {
        policy_no: 0,
        prot_type: ProtType(0),
        params: vec![PolicyParam {
            param_type: 0,
            value: vec![1],
        }],
    };
    let plain = b.at(
        1,
        id(1, 1),
        MskUpdate::NewKey {
            msk: msk(1),
            seql: 0,
            sequ: 9,
        },
    );
    let with_sp = remac(b.muk.as_bytes(), &plain, |m| {
        let at = m.payloads.len() - 1;
        m.payloads.insert(at, Payload::Sp(sp.clone()));
    });
    assert!(rx.handle_datagram(epoch(), &with_sp).is_some());
    let info = rx.msks().next().unwrap();
    assert!(info.has_sp());
    assert_eq!(info.sp, Some(sp));
    let mut plain_rx = receiver();
    Bmsc::vectors(&mut plain_rx);
    plain_rx.handle_datagram(epoch(), &plain);
    assert!(!plain_rx.msks().next().unwrap().has_sp());
}

// --- solicited pull and acknowledgement -----------------------------------

#[test]
fn solicited_pull_requests_after_backoff_drawn_from_window() {
    let window = (2 * SEC, 6 * SEC);
    for (random, delay) in [
        (0, 2 * SEC),
        (u64::MAX, 6 * SEC),
        (1 << 63, 4 * SEC),
        (1 << 62, 3 * SEC),
    ] {
        let config = ReceiverConfig {
            backoff: Some(window),
            ..ReceiverConfig::default()
        };
        let mut rx = receiver_with(config, random);
        Bmsc::vectors(&mut rx);
        let t0 = epoch();
        assert_eq!(
            rx.handle_datagram(t0, &vector("msk-message-solicited-pull")),
            None
        );
        assert_eq!(drain(&mut rx), []);
        assert_eq!(rx.poll_timeout(), Some(t0 + delay));
        rx.handle_timeout(t0 + delay - Duration::from_nanos(1));
        assert_eq!(drain(&mut rx), []);
        rx.handle_timeout(t0 + delay);
        assert_eq!(
            drain(&mut rx),
            [Event::MskRequestNeeded {
                key_domain_id: kd(),
                msk_id: id(1, 0)
            }]
        );
        assert_eq!(rx.poll_timeout(), None);
    }
}

#[test]
fn solicited_pull_without_backoff_requests_at_once() {
    let mut rx = receiver();
    Bmsc::vectors(&mut rx);
    rx.handle_datagram(epoch(), &vector("msk-message-solicited-pull"));
    assert_eq!(
        drain(&mut rx),
        [Event::MskRequestNeeded {
            key_domain_id: kd(),
            msk_id: id(1, 0)
        }]
    );
    assert_eq!(rx.poll_timeout(), None);
}

#[test]
fn solicited_pull_ignores_v_and_stores_its_counter() {
    let mut rx = receiver();
    let b = Bmsc::vectors(&mut rx);
    let pull = b.at_v(8, id(1, 0), MskUpdate::SolicitedPull, true);
    assert!(mbms_keys::mbms::UnverifiedMsk::parse(&pull).unwrap().v());
    assert_eq!(rx.handle_datagram(epoch(), &pull), None);
    assert_eq!(rx.muk_counter(&b.muk_id()), Some(Some(8)));
    assert_eq!(rx.stats().acks, 0);
    assert_eq!(rx.stats().msk_accepted, 1);
}

#[test]
fn ack_only_for_v1() {
    let mut rx = receiver();
    let b = Bmsc::vectors(&mut rx);
    let now = epoch();
    let key = || MskUpdate::NewKey {
        msk: msk(1),
        seql: 0,
        sequ: 9,
    };
    assert_eq!(
        rx.handle_datagram(now, &b.at_v(1, id(1, 1), key(), false)),
        None
    );
    assert_eq!(rx.stats().msk_accepted, 1);
    let ack = rx
        .handle_datagram(now, &b.at_v(2, id(1, 1), validity(0, 5), true))
        .unwrap();
    // The BM-SC verifies it with its own keys (docs/profile.md §2.2).
    let mut rand = [0x60u8; profile::MSK_RAND_LEN];
    rand[..4].copy_from_slice(&2u32.to_be_bytes());
    let csb = profile::csb_id_for(id(1, 1));
    let keys = ProtectionKeys::derive(b.muk.as_bytes(), csb, &rand);
    let ctx = AckContext::new(keys, csb, 2, IDI.as_bytes(), BTID.as_bytes());
    UnverifiedAck::parse(&ack).unwrap().verify(&ctx).unwrap();
    // A discarded V = 1 message gets nothing back.
    assert_eq!(
        rx.handle_datagram(now, &b.at_v(2, id(1, 1), validity(0, 5), true)),
        None
    );
    assert_eq!(rx.stats().acks, 1);
}

#[test]
fn never_an_answer_to_mtk() {
    let mut rx = receiver();
    Bmsc::vectors(&mut rx);
    let now = epoch();
    rx.handle_datagram(now, &vector("msk-message-normal"));
    let key = mbms_keys::crypto::Msk::from_hex("b0b1b2b3b4b5b6b7b8b9babbbcbdbebf").unwrap();
    let v1 = remac(key.as_bytes(), &vector("mtk-message-download"), |m| {
        m.hdr.v = true
    });
    assert_eq!(rx.handle_datagram(now, &v1), None);
    assert!(matches!(drain(&mut rx)[1..], [Event::MtkReady { .. }]));
    // Nor to a discarded one.
    assert_eq!(rx.handle_datagram(now, &v1), None);
    assert_eq!(
        rx.handle_datagram(now, &vector("mtk-message-streaming")[..20]),
        None
    );
    assert_eq!(rx.stats().acks, 1);
}

// --- MTK message -----------------------------------------------------------

#[test]
fn mtk_vectors_are_accepted_after_the_msk_vector() {
    let mut rx = receiver();
    Bmsc::vectors(&mut rx);
    let now = epoch();
    rx.handle_datagram(now, &vector("msk-message-normal"));
    drain(&mut rx);
    for (name, mtk_id, counter) in [
        ("mtk-message-download", 3, 7),
        ("mtk-message-streaming", 4, 8),
    ] {
        let v = common::load(name);
        assert_eq!(rx.handle_datagram(now, &vector(name)), None);
        let want_mtk =
            mbms_keys::crypto::Mtk::from_hex(v["inputs"]["mtk"].as_str().unwrap()).unwrap();
        let want_salt = v["inputs"]["mtk_salt"]
            .as_str()
            .map(|s| Salt::from_hex(s).unwrap());
        // The streaming vector: one crypto session under the profile's SRTP policy.
        let streaming = want_salt.is_some();
        let want_policy = streaming
            .then(|| SrtpPolicy::from_sp(Streaming::srtp_default(0x1122_3344, 0).policy))
            .flatten();
        let want_ids = if streaming {
            vec![SrtpIdEntry {
                policy_no: 0,
                ssrc: 0x1122_3344,
                roc: 0,
            }]
        } else {
            vec![]
        };
        assert_eq!(
            drain(&mut rx),
            [Event::MtkReady {
                key_domain_id: kd(),
                msk_id: id(1, 2),
                mtk_id: MtkId(mtk_id),
                mki: [0x00, 0x01, 0x00, 0x02, 0x00, mtk_id as u8],
                mtk: want_mtk,
                salt: want_salt,
                policy: want_policy,
                srtp_ids: want_ids,
            }],
            "{name}"
        );
        let info = rx.msks().next().unwrap();
        assert_eq!((info.seqs, info.counter), (mtk_id, Some(counter)));
    }
    assert_eq!(rx.stats().mtk_accepted, 2);
}

#[test]
fn mtk_ready_carries_the_mki_and_a_streaming_message_its_policy_and_srtp_ids() {
    let mut rx = receiver();
    let mut b = Bmsc::vectors(&mut rx);
    let now = epoch();
    // The MSK message carries an SRTP policy with 32-bit tags.
    let mut sp = Streaming::srtp_default(0, 0).policy;
    sp.params.retain(|p| p.param_type != 11);
    sp.params.push(PolicyParam {
        param_type: 11,
        value: vec![4],
    });
    let install = b.new_key(id(1, 1), &msk(1), 0, 100);
    let install = remac(b.muk.as_bytes(), &install, |m| {
        let at = m.payloads.len() - 1;
        m.payloads.insert(at, Payload::Sp(sp.clone()));
    });
    rx.handle_datagram(now, &install);
    drain(&mut rx);
    let streaming = |mtk_id: u16, counter: u32, keep_sp: bool| {
        let csb_id = profile::csb_id_for(id(1, 1));
        let d = mbms_keys::mbms::MtkDelivery {
            key_domain_id: kd(),
            msk_id: id(1, 1),
            csb_id,
            mtk_id: MtkId(mtk_id),
            counter,
            mtk: mtk(2),
            salt: Some(Salt::from_bytes([3; 14])),
            streaming: Some(Streaming::srtp_default(0x0a0b_0c0d, 7)),
        };
        let keys = mbms_keys::mbms::MtkKeys::new(&msk(1), csb_id);
        let bytes = mbms_keys::mbms::build_mtk(&keys, &d).unwrap();
        remac(msk(1).as_bytes(), &bytes, |m| {
            if !keep_sp {
                m.payloads.retain(|p| !matches!(p, Payload::Sp(_)));
            }
        })
    };
    let session = SrtpIdEntry {
        policy_no: 0,
        ssrc: 0x0a0b_0c0d,
        roc: 7,
    };
    // Its own SP first; without one, the MSK's.
    for (mtk_id, keep_sp, suite) in [
        (1, true, "AES_CM_128_HMAC_SHA1_80"),
        (2, false, "AES_CM_128_HMAC_SHA1_32"),
    ] {
        rx.handle_datagram(now, &streaming(mtk_id, u32::from(mtk_id), keep_sp));
        match &drain(&mut rx)[..] {
            [
                Event::MtkReady {
                    mki,
                    policy: Some(policy),
                    srtp_ids,
                    ..
                },
            ] => {
                assert_eq!(*mki, profile::srtp_mki(id(1, 1), MtkId(mtk_id)));
                assert_eq!(policy.suite(), Some(suite));
                assert_eq!(srtp_ids, &[session]);
            }
            other => panic!("{other:?}"),
        }
    }
    // A download MTK message: no policy, no crypto sessions, whatever the MSK carried.
    rx.handle_datagram(now, &mtk_msg(&msk(1), id(1, 1), 3, 3, &mtk(4)));
    assert!(matches!(
        &drain(&mut rx)[..],
        [Event::MtkReady { policy: None, srtp_ids, .. }] if srtp_ids.is_empty()
    ));
}

#[test]
fn mtk_counter_must_be_newer_per_msk() {
    let mut rx = receiver();
    let mut b = Bmsc::vectors(&mut rx);
    let now = epoch();
    rx.handle_datagram(now, &b.new_key(id(1, 1), &msk(1), 0, 100));
    rx.handle_datagram(now, &b.new_key(id(1, 2), &msk(2), 0, 100));
    rx.handle_datagram(now, &mtk_msg(&msk(1), id(1, 1), 1, 500, &mtk(1)));
    // The other MSK has its own counter: 5 is fine there.
    rx.handle_datagram(now, &mtk_msg(&msk(2), id(1, 2), 1, 5, &mtk(2)));
    drain(&mut rx);
    for c in [500, 499, 500 + (1 << 31)] {
        rx.handle_datagram(now, &mtk_msg(&msk(1), id(1, 1), 2, c, &mtk(3)));
    }
    assert_eq!(discards(&drain(&mut rx)), [DiscardReason::Replay; 3]);
    rx.handle_datagram(now, &mtk_msg(&msk(1), id(1, 1), 2, 501, &mtk(3)));
    assert!(matches!(drain(&mut rx)[..], [Event::MtkReady { .. }]));
}

#[test]
fn mtk_outside_interval_is_discarded() {
    let mut rx = receiver();
    let mut b = Bmsc::vectors(&mut rx);
    let now = epoch();
    rx.handle_datagram(now, &b.new_key(id(1, 1), &msk(1), 10, 20));
    drain(&mut rx);
    rx.handle_datagram(now, &mtk_msg(&msk(1), id(1, 1), 21, 1, &mtk(1)));
    rx.handle_datagram(now, &mtk_msg(&msk(1), id(1, 1), 0xffff, 2, &mtk(1)));
    assert_eq!(
        discards(&drain(&mut rx)),
        [DiscardReason::MtkIdOutsideInterval; 2]
    );
    // SEQu itself is inside; the counters were not consumed.
    rx.handle_datagram(now, &mtk_msg(&msk(1), id(1, 1), 20, 1, &mtk(1)));
    assert!(matches!(
        drain(&mut rx)[..],
        [Event::MtkReady {
            mtk_id: MtkId(20),
            ..
        }]
    ));
}

#[test]
fn mtk_id_not_newer_is_discarded() {
    let mut rx = receiver();
    let mut b = Bmsc::vectors(&mut rx);
    let now = epoch();
    rx.handle_datagram(now, &b.new_key(id(1, 1), &msk(1), 10, 20));
    drain(&mut rx);
    // SEQs starts at SEQl: SEQl itself is not usable, SEQl + 1 is.
    rx.handle_datagram(now, &mtk_msg(&msk(1), id(1, 1), 10, 1, &mtk(1)));
    rx.handle_datagram(now, &mtk_msg(&msk(1), id(1, 1), 3, 2, &mtk(1)));
    assert_eq!(discards(&drain(&mut rx)), [DiscardReason::MtkIdNotNewer; 2]);
    rx.handle_datagram(now, &mtk_msg(&msk(1), id(1, 1), 11, 3, &mtk(1)));
    rx.handle_datagram(now, &mtk_msg(&msk(1), id(1, 1), 11, 4, &mtk(2)));
    let events = drain(&mut rx);
    assert!(matches!(
        events[0],
        Event::MtkReady {
            mtk_id: MtkId(11),
            ..
        }
    ));
    assert_eq!(discards(&events), [DiscardReason::MtkIdNotNewer]);
}

#[test]
fn mtk_with_bad_mac_changes_nothing() {
    let mut rx = receiver();
    let mut b = Bmsc::vectors(&mut rx);
    let now = epoch();
    rx.handle_datagram(now, &b.new_key(id(1, 1), &msk(1), 0, 20));
    drain(&mut rx);
    let good = mtk_msg(&msk(1), id(1, 1), 5, 9, &mtk(1));
    let mut bad = good.clone();
    *bad.last_mut().unwrap() ^= 1;
    rx.handle_datagram(now, &bad);
    rx.handle_datagram(now, &mtk_msg(&msk(2), id(1, 1), 5, 9, &mtk(1)));
    assert_eq!(discards(&drain(&mut rx)), [DiscardReason::BadMac; 2]);
    let info = rx.msks().next().unwrap();
    assert_eq!((info.seqs, info.counter), (0, None));
    rx.handle_datagram(now, &good);
    assert!(matches!(drain(&mut rx)[..], [Event::MtkReady { .. }]));
}

#[test]
fn mtk_under_unknown_msk_requests_the_missed_key_once_per_holdoff() {
    let holdoff = 30 * SEC;
    let config = ReceiverConfig {
        missed_key_holdoff: holdoff,
        key_groups: vec![(kd(), 1)],
        ..ReceiverConfig::default()
    };
    let mut rx = receiver_with(config, 0);
    let t0 = epoch();
    let m = mtk_msg(&msk(1), id(1, 9), 5, 1, &mtk(1));
    rx.handle_datagram(t0, &m);
    assert_eq!(
        drain(&mut rx),
        [
            Event::Discarded {
                reason: DiscardReason::UnknownMsk
            },
            Event::MskRequestNeeded {
                key_domain_id: kd(),
                msk_id: id(1, 9)
            },
        ]
    );
    rx.handle_datagram(t0 + holdoff - SEC, &m);
    assert_eq!(discards(&drain(&mut rx)), [DiscardReason::UnknownMsk]);
    rx.handle_datagram(t0 + holdoff, &m);
    assert_eq!(drain(&mut rx).len(), 2);
}

#[test]
fn missed_key_holdoff_set_is_bounded() {
    let config = ReceiverConfig {
        key_groups: vec![(kd(), 7)],
        request_limits: RequestLimits::UNLIMITED,
        ..ReceiverConfig::default()
    };
    let mut rx = receiver_with(config, 0);
    let t0 = epoch();
    let flood = 10 * mbms_keys::ue::MAX_PENDING as u16;
    for n in 1..=flood {
        rx.handle_datagram(t0, &mtk_msg(&msk(1), id(7, n), 5, 1, &mtk(1)));
        assert_eq!(drain(&mut rx).len(), 2);
    }
    // The first forged IDs were evicted to make room: asking again is allowed,
    // the most recent ones are still held off.
    rx.handle_datagram(t0, &mtk_msg(&msk(1), id(7, 1), 5, 1, &mtk(1)));
    rx.handle_datagram(t0, &mtk_msg(&msk(1), id(7, flood), 5, 1, &mtk(1)));
    assert_eq!(drain(&mut rx).len(), 3);
}

// --- MSK requests: no amplification from forged MTK messages ----------------

/// An MTK message under a forged MSK ID: anyone can send one, nobody can verify it.
fn forged(msk_id: MskId) -> Vec<u8> {
    mtk_msg(&msk(0xee), msk_id, 1, 1, &mtk(0xee))
}

#[test]
fn forged_mtk_messages_for_unknown_groups_trigger_no_request() {
    let mut rx = receiver_with(
        ReceiverConfig {
            key_groups: vec![(kd(), 1)],
            ..ReceiverConfig::default()
        },
        0,
    );
    let now = epoch();
    let mut x = 0x9e37_79b9u32;
    for _ in 0..40 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        // Any Key Group but the configured one.
        let msk_id = MskId::from_u32(x | 0x0002_0000);
        rx.handle_datagram(now, &forged(msk_id));
    }
    let events = drain(&mut rx);
    assert_eq!(requests(&events), []);
    assert_eq!(discards(&events), [DiscardReason::UnknownKeyGroup; 40]);
    assert_eq!(rx.stats().discards(DiscardReason::UnknownKeyGroup), 40);
    // The configured group does ask.
    rx.handle_datagram(now, &forged(id(1, 9)));
    assert_eq!(requests(&drain(&mut rx)), [id(1, 9)]);
}

#[test]
fn key_groups_are_learned_from_verified_msk_messages_and_stored_msks() {
    let mut rx = receiver();
    let mut b = Bmsc::vectors(&mut rx);
    let t0 = epoch();
    rx.handle_datagram(t0, &forged(id(3, 9)));
    rx.handle_datagram(t0, &forged(id(4, 9)));
    assert_eq!(
        discards(&drain(&mut rx)),
        [DiscardReason::UnknownKeyGroup; 2]
    );
    // A verified invalidation of an MSK never stored: group 3 is the UE's now.
    rx.handle_datagram(t0, &b.push(id(3, 1), invalidate()));
    // A stored MSK makes its group known, also after a restart.
    rx.handle_datagram(t0, &b.new_key(id(4, 1), &msk(4), 0, 9));
    rx.handle_datagram(t0, &forged(id(3, 9)));
    assert_eq!(requests(&drain(&mut rx)), [id(3, 9)]);
    let key = mbms_keys::crypto::StateKey::from_bytes([7; 32]);
    let blob = rx.save(&key);
    let config = ReceiverConfig::default();
    let mut rx =
        Receiver::restore(config, Box::new(mbms_keys::crypto::Fixed(0)), &key, &blob).unwrap();
    rx.handle_datagram(t0, &forged(id(4, 9)));
    assert_eq!(requests(&drain(&mut rx)), [id(4, 9)]);
}

#[test]
fn requests_for_a_known_group_are_rate_limited() {
    let groups: Vec<_> = (1..=6).map(|g| (kd(), g)).collect();
    let mut rx = receiver_with(
        ReceiverConfig {
            key_groups: groups,
            ..ReceiverConfig::default()
        },
        0,
    );
    let t0 = epoch();
    // Per group: one request per 10 s, whatever the MSK IDs.
    for n in 1..=20 {
        rx.handle_datagram(t0, &forged(id(1, n)));
    }
    assert_eq!(requests(&drain(&mut rx)), [id(1, 1)]);
    assert_eq!(rx.stats().requests_suppressed, 19);
    rx.handle_datagram(t0 + 9 * SEC, &forged(id(1, 21)));
    assert_eq!(requests(&drain(&mut rx)), []);
    rx.handle_datagram(t0 + 10 * SEC, &forged(id(1, 22)));
    assert_eq!(requests(&drain(&mut rx)), [id(1, 22)]);
    // Over all groups: a burst of 4, then one per second.
    let t1 = t0 + 100 * SEC;
    for g in 1..=6 {
        rx.handle_datagram(t1, &forged(id(g, 1)));
    }
    assert_eq!(
        requests(&drain(&mut rx)),
        [id(1, 1), id(2, 1), id(3, 1), id(4, 1)]
    );
    rx.handle_datagram(t1 + SEC, &forged(id(5, 1)));
    rx.handle_datagram(t1 + SEC, &forged(id(6, 1)));
    assert_eq!(requests(&drain(&mut rx)), [id(5, 1)]);
}

#[test]
fn a_refused_request_is_not_repeated_until_something_changes() {
    let mut rx = receiver_with(
        ReceiverConfig {
            key_groups: vec![(kd(), 1)],
            ..ReceiverConfig::default()
        },
        0,
    );
    let mut b = Bmsc::vectors(&mut rx);
    let t0 = epoch();
    rx.handle_datagram(t0, &forged(id(1, 9)));
    assert_eq!(requests(&drain(&mut rx)), [id(1, 9)]);
    // A success changes nothing; a refusal ends the request with its code.
    rx.handle_msk_response(kd(), id(1, 9), 200);
    assert_eq!(drain(&mut rx), []);
    rx.handle_msk_response(kd(), id(1, 9), 403);
    assert_eq!(
        drain(&mut rx),
        [Event::MskRequestFailed {
            key_domain_id: kd(),
            msk_id: id(1, 9),
            code: 403
        }]
    );
    // Long past the hold-off and the rates: still not asked again.
    for minute in 1..=5 {
        rx.handle_datagram(t0 + minute * 60 * SEC, &forged(id(1, 9)));
        assert_eq!(requests(&drain(&mut rx)), []);
    }
    // Another MSK ID of the group may be asked.
    rx.handle_datagram(t0 + 400 * SEC, &forged(id(1, 8)));
    assert_eq!(requests(&drain(&mut rx)), [id(1, 8)]);
    // A verified MSK message of the group changes things: asked again.
    rx.handle_datagram(t0 + 500 * SEC, &b.new_key(id(1, 1), &msk(1), 0, 9));
    rx.handle_datagram(t0 + 500 * SEC, &forged(id(1, 9)));
    assert_eq!(requests(&drain(&mut rx)), [id(1, 9)]);
    // So does a solicited pull (a verified MSK message too).
    rx.handle_msk_response(kd(), id(1, 9), 404);
    rx.handle_datagram(t0 + 600 * SEC, &forged(id(1, 9)));
    assert_eq!(requests(&drain(&mut rx)), []);
    rx.handle_datagram(t0 + 600 * SEC, &b.push(id(1, 0), MskUpdate::SolicitedPull));
    assert_eq!(requests(&drain(&mut rx)), [id(1, 0)]);
    rx.handle_datagram(t0 + 700 * SEC, &forged(id(1, 9)));
    assert_eq!(requests(&drain(&mut rx)), [id(1, 9)]);
}

// --- accounting and safety -------------------------------------------------

#[test]
fn every_discard_is_counted() {
    let mut rx = receiver();
    let mut b = Bmsc::vectors(&mut rx);
    let now = epoch();
    rx.handle_datagram(now, &b.new_key(id(1, 1), &msk(1), 10, 20));
    let stranger = Bmsc::new(vector_muk(), "nobody@bsf");
    let datagrams = [
        vec![0u8; 3],                                                            // malformed
        extra("onvif-mikey-null"),                                               // not profile
        stranger.at(1, id(1, 1), invalidate()),                                  // unknown MUK
        b.at(1, id(1, 1), invalidate()),                                         // replay
        Bmsc::new(Muk::from_bytes([3; 32]), BTID).at(9, id(1, 1), invalidate()), // bad MAC
        b.at(9, id(1, 4), validity(0, 9)),                                       // unknown MSK
        mtk_msg(&msk(1), id(1, 1), 21, 1, &mtk(1)),                              // outside
        mtk_msg(&msk(1), id(1, 1), 10, 1, &mtk(1)),                              // not newer
        vector("msk-ack"),                                                       // acknowledgement
        mtk_msg(&msk(1), id(9, 1), 1, 1, &mtk(1)),                               // unknown group
    ];
    for d in &datagrams {
        assert_eq!(rx.handle_datagram(now, d), None);
    }
    let events = drain(&mut rx);
    let reasons = discards(&events);
    assert_eq!(
        reasons,
        [
            DiscardReason::Malformed,
            DiscardReason::NotProfileMessage,
            DiscardReason::UnknownMuk,
            DiscardReason::Replay,
            DiscardReason::BadMac,
            DiscardReason::UnknownMsk,
            DiscardReason::MtkIdOutsideInterval,
            DiscardReason::MtkIdNotNewer,
            DiscardReason::UnexpectedAcknowledgement,
            DiscardReason::UnknownKeyGroup,
        ]
    );
    for r in &reasons {
        assert_eq!(rx.stats().discards(*r), 1, "{r}");
        assert!(!r.as_str().is_empty() && !r.to_string().is_empty());
    }
    assert_eq!(rx.stats().total_discards(), reasons.len() as u64);
    assert_eq!(
        rx.stats().discards_by_reason().map(|(_, n)| n).sum::<u64>(),
        reasons.len() as u64
    );
}

#[test]
fn discard_reason_names_are_stable_snake_case() {
    let names: Vec<_> = DiscardReason::ALL.iter().map(|r| r.as_str()).collect();
    assert!(names.contains(&"replay") && names.contains(&"mtk_id_not_newer"));
    for n in names {
        assert!(n.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{n}");
    }
}

#[test]
fn event_debug_never_prints_key_material() {
    let e = Event::MtkReady {
        key_domain_id: kd(),
        msk_id: id(1, 1),
        mtk_id: MtkId(1),
        mki: profile::srtp_mki(id(1, 1), MtkId(1)),
        mtk: mtk(0xab),
        salt: Some(Salt::from_bytes([0xcd; 14])),
        policy: None,
        srtp_ids: vec![],
    };
    let text = format!("{e:?}");
    assert!(text.contains("REDACTED"));
    assert!(!text.to_lowercase().contains("abab") && !text.contains("171"));
    let rx = receiver();
    assert!(!format!("{rx:?}").is_empty());
}

#[test]
fn receiver_is_send() {
    fn send<T: Send>() {}
    send::<Receiver>();
}

#[test]
fn event_queue_is_bounded() {
    let mut rx = receiver();
    let now = epoch();
    let n = mbms_keys::ue::MAX_QUEUED_EVENTS + 10;
    for _ in 0..n {
        rx.handle_datagram(now, &[0]);
    }
    assert_eq!(drain(&mut rx).len(), mbms_keys::ue::MAX_QUEUED_EVENTS);
    assert_eq!(rx.stats().events_dropped, 10);
    assert_eq!(rx.stats().discards(DiscardReason::Malformed), n as u64);
}

#[test]
fn key_events_are_never_dropped_for_discard_notices() {
    let mut rx = receiver();
    let mut b = Bmsc::vectors(&mut rx);
    let now = epoch();
    let max = mbms_keys::ue::MAX_QUEUED_EVENTS;
    // A full queue of discard notices, then keys, then more noise.
    for _ in 0..max {
        rx.handle_datagram(now, &[0]);
    }
    rx.handle_datagram(now, &b.new_key(id(1, 1), &msk(1), 0, 100));
    rx.handle_datagram(now, &mtk_msg(&msk(1), id(1, 1), 1, 1, &mtk(1)));
    for _ in 0..10 {
        rx.handle_datagram(now, &[0]);
    }
    let events = drain(&mut rx);
    assert_eq!(events.len(), max);
    let keys: Vec<_> = events.iter().filter(|e| !e.is_discard()).collect();
    assert!(
        matches!(
            keys[..],
            [Event::MskInstalled { .. }, Event::MtkReady { .. }]
        ),
        "{keys:?}"
    );
    // The two oldest notices made room; the ten late ones found the queue full.
    assert_eq!(rx.stats().events_dropped, 12);
    assert_eq!(
        rx.stats().discards(DiscardReason::Malformed),
        max as u64 + 10
    );
}

#[test]
fn fuzz_seed_programs_hold_the_invariants() {
    // The fuzz oracle over a few fixed programs and every vector datagram.
    fuzzing::run(&[]);
    fuzzing::run(&[
        1, 2, 3, 4, 1, 0, 1, 1, 0, 0, 0, 0x10, 0, 5, 5, 1, 1, 0, 0, 0, 2, 3,
    ]);
    for (_, bytes) in common::all_messages() {
        let mut program = vec![0, 0, 0, 7, 0, bytes.len().min(255) as u8];
        program.extend_from_slice(&bytes);
        fuzzing::run(&program);
    }
    let mut x = 0x1234_5678u32;
    for _ in 0..200 {
        let program: Vec<u8> = (0..300)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        fuzzing::run(&program);
    }
}

#[test]
fn fuzz_seed_corpus_reaches_past_the_mac() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/ue_receiver");
    let seed = |name: &str| {
        let bytes = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let r = fuzzing::run_counting(&bytes);
        println!("{name}: {r:?}");
        r
    };
    let r = seed("install-and-mtks");
    assert_eq!((r.installed, r.mtk_ready, r.acks), (1, 2, 1));
    let r = seed("rotation");
    assert_eq!((r.installed, r.invalidated, r.mtk_ready), (3, 1, 2));
    let r = seed("expiry");
    assert_eq!((r.mtk_ready, r.discards), (2, 1));
    let r = seed("validity-and-invalidate");
    assert_eq!((r.mtk_ready, r.invalidated, r.msk_accepted), (1, 1, 4));
    let r = seed("pull-backoff");
    assert_eq!((r.msk_accepted, r.requests, r.acks), (1, 1, 0));
    // Two MTKs under one missing MSK, then a third past the 5 s hold-off but within the Key
    // Group's 10 s rate: one request.
    let r = seed("missed-key");
    assert_eq!((r.requests, r.discards), (1, 3));
    let r = seed("restart");
    assert_eq!((r.restores, r.mtk_ready), (2, 2));
    assert!(r.discards >= 2, "{r:?}");
    let r = seed("rekey-and-wrap");
    assert_eq!((r.installed, r.msk_accepted, r.discards), (2, 3, 1));
    let r = seed("raw-vector");
    assert_eq!(r.discards, 1);
}
