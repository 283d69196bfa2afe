//! The BM-SC Key Distribution function, sans-IO with virtual time, a temporary SQLite store and
//! the embedded key source: the MSK life cycle, MSK pushes and their acknowledgements, MTK
//! delivery, and a UE `Receiver` (docs/profile.md §3) accepting all of it.

mod common;
mod bmsc_distribution {
    mod clock_steps;
    pub mod harness;
    mod lost_store;
    mod measure;
}

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use bmsc_distribution::harness::*;
use mbms_keys::bmsc::distribution::{Action, Tuning};
use mbms_keys::bmsc::events::KeyRequestEvent;
use mbms_keys::bmsc::store::{MskState, Registration};
use mbms_keys::gba::Btid;
use mbms_keys::mbms::{
    AckContext, MskId, MskUpdate, PreparedMuk, UnverifiedMsk, UnverifiedMtk, build_ack,
};
use mbms_keys::mikey::CsIdMap;
use mbms_keys::ue::{DiscardReason, Event};

// --- MSK life cycle -----------------------------------------------------------------------

#[test]
fn the_first_msk_of_each_key_group_is_created_and_persisted() {
    let dir = TempDir::new("first");
    let services = download("a", 1, "60s", "10s", DEST_A, dir.path())
        + &download("b", 2, "60s", "10s", DEST_B, dir.path())
        + &download("c", 1, "60s", "10s", DEST_C, dir.path());
    let b = start(
        dir.path(),
        config(dir.path(), 1, &[], &services),
        1,
        t0(),
        tuning(),
    );
    let msks = b.store.msks().expect("msks");
    assert_eq!(msks.len(), 2, "one MSK per (key domain, key group)");
    for r in &msks {
        assert_eq!(r.key_domain, KD);
        assert_eq!(r.msk_id.key_number, 1);
        assert_eq!(r.state, MskState::Current);
        assert_eq!((r.seql, r.sequ), (0, 6 + 2));
        assert_eq!(r.mtk_next_id, 1);
    }
    let first: Vec<_> = msks.iter().map(|r| r.msk.clone()).collect();
    drop(b);
    // A restart uses the stored MSKs, it does not make new ones.
    let b = start(
        dir.path(),
        config(dir.path(), 1, &[], &services),
        2,
        at(5),
        tuning(),
    );
    let again: Vec<_> = b
        .store
        .msks()
        .expect("msks")
        .iter()
        .map(|r| r.msk.clone())
        .collect();
    assert_eq!(first, again);
}

#[test]
fn mtk_ids_increase_from_seql_plus_one_every_interval_and_stay_within_sequ() {
    let dir = TempDir::new("mtk-ids");
    let services = download("a", 1, "60s", "10s", DEST_A, dir.path());
    let mut b = start(
        dir.path(),
        config(dir.path(), 0, &[], &services),
        1,
        t0(),
        tuning(),
    );
    let mut log = Log::default();
    run(&mut b.d, t0(), at(55), &mut [], &mut log);
    let msgs = log.to(DEST_A.parse().expect("addr"));
    let mut first_seen: BTreeMap<u16, SystemTime> = BTreeMap::new();
    for (t, bytes) in &msgs {
        let m = UnverifiedMtk::parse(bytes).expect("MTK message");
        assert_eq!(m.msk_id(), MskId::new(1, 1));
        first_seen.entry(m.mtk_id().0).or_insert(*t);
    }
    let ids: Vec<u16> = first_seen.keys().copied().collect();
    assert_eq!(
        ids,
        vec![1, 2, 3, 4, 5, 6],
        "SEQl + 1 upwards, one per interval"
    );
    assert!(ids.iter().all(|id| *id <= 8), "within SEQu");
    // MTK n is current from t0 + 10(n-1) s and first sent one mtk_resend before.
    assert_eq!(first_seen[&1], t0());
    for n in 2..=6u16 {
        assert_eq!(first_seen[&n], at(10 * u64::from(n - 1) - 1), "MTK {n}");
    }
    // Repetitions every second are the same bytes.
    let of_three: BTreeSet<&Vec<u8>> = msgs
        .iter()
        .filter(|(_, b)| UnverifiedMtk::parse(b).map(|m| m.mtk_id().0) == Ok(3))
        .map(|(_, b)| b)
        .collect();
    assert_eq!(of_three.len(), 1);
    // The MTK state is persisted with the MSK.
    let r = b
        .store
        .msk(KD, MskId::new(1, 1))
        .expect("read")
        .expect("msk");
    assert_eq!(r.mtk_next_id, 7);
    assert_eq!(r.current_mtk.map(|m| m.id.0), Some(6));
    assert_eq!(b.metrics.mtks_generated.get(), 6);
}

#[test]
fn download_mtk_messages_are_also_written_as_mikey_objects() {
    let dir = TempDir::new("objects");
    let services = download("a", 1, "60s", "10s", DEST_A, dir.path());
    let mut b = start(
        dir.path(),
        config(dir.path(), 0, &[], &services),
        1,
        t0(),
        tuning(),
    );
    let mut log = Log::default();
    run(&mut b.d, t0(), at(12), &mut [], &mut log);
    let names: Vec<String> = log
        .objects
        .iter()
        .map(|(p, _)| p.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["00010001-0001.mikey", "00010001-0002.mikey"]);
    assert!(
        log.objects
            .iter()
            .all(|(p, _)| p.parent() == Some(&dir.path().join("mtk-a")))
    );
    let udp = log.to(DEST_A.parse().expect("addr"));
    for (_, bytes) in &log.objects {
        assert!(
            udp.iter().any(|(_, u)| u == bytes),
            "the object is the UDP message"
        );
        let m = UnverifiedMtk::parse(bytes).expect("MTK");
        assert_eq!(m.view().to_message().hdr.cs_id_map, CsIdMap::Empty);
    }
}

// --- pushes ------------------------------------------------------------------------------

#[test]
fn a_registration_pushes_the_current_msk_which_the_ue_verifies_with_its_muk() {
    let dir = TempDir::new("register");
    let services = download("a", 1, "60s", "10s", DEST_A, dir.path());
    let mut b = start(
        dir.path(),
        config(dir.path(), 1, &[], &services),
        1,
        t0(),
        tuning(),
    );
    let mut log = Log::default();
    run(&mut b.d, t0(), t0(), &mut [], &mut log);
    b.register(0, &["a"], t0());
    drain(&mut b.d, t0(), &mut [], &mut log);
    let to_ue = log.to(SocketAddr::new(ue_ip(0), UE_PORT));
    assert_eq!(to_ue.len(), 1);
    let (un, update) = msk_of(&to_ue[0].1, &b.muk(0));
    assert!(un.v(), "an acknowledgement is asked for");
    assert_eq!(un.idi(), FQDN.as_bytes());
    assert_eq!(un.idr(), btid(0).as_bytes());
    assert_eq!((un.key_domain_id(), un.msk_id()), (KD, MskId::new(1, 1)));
    let stored = b
        .store
        .msk(KD, MskId::new(1, 1))
        .expect("read")
        .expect("msk");
    match update {
        MskUpdate::NewKey { msk, seql, sequ } => {
            assert!(msk == stored.msk);
            assert_eq!((seql, sequ), (0, stored.sequ));
        }
        other => panic!("expected the key, got {other:?}"),
    }
    assert_eq!(b.metrics.pushes_sent.get(), 1);
}

#[test]
fn key_request_events_handled_together_send_one_batch_with_one_counter_range() {
    let dir = TempDir::new("events-together");
    let services = download("a", 1, "60s", "10s", DEST_A, dir.path());
    let mut b = start(
        dir.path(),
        config(dir.path(), 20, &[], &services),
        1,
        t0(),
        tuning(),
    );
    let mut log = Log::default();
    run(&mut b.d, t0(), t0(), &mut [], &mut log);
    let events: Vec<KeyRequestEvent> = (0..20)
        .map(|i| {
            b.store
                .register(&Registration {
                    btid: btid(i).parse().expect("btid"),
                    service_id: "a".to_owned(),
                    ue_addr: ue_ip(i),
                    registered_at: t0(),
                })
                .expect("register");
            KeyRequestEvent::Registered {
                btid: btid(i).parse().expect("btid"),
                ue_addr: ue_ip(i),
                service_ids: vec!["a".to_owned()],
            }
        })
        .collect();
    let errors = b.d.on_events(events, vt(t0()));
    assert!(errors.is_empty(), "{errors:?}");
    // One batch of 20 datagrams, in the events' order, with 20 consecutive counters: one
    // allocation (one reservation on a shared store) for all of them.
    let mut batches = Vec::new();
    while let Some(a) = b.d.poll_action() {
        if let Action::SendUdp(batch) = a {
            batches.push(batch);
        }
    }
    assert_eq!(batches.len(), 1, "one batch for the 20 events");
    let batch = &batches[0];
    assert_eq!(batch.len(), 20);
    let first = counter_of(&batch[0].bytes);
    for (i, d) in batch.iter().enumerate() {
        let i = u32::try_from(i).expect("small");
        assert_eq!(d.to, SocketAddr::new(ue_ip(i), UE_PORT));
        assert_eq!(counter_of(&d.bytes), first.wrapping_add(i));
        let (un, _) = msk_of(&d.bytes, &b.muk(i));
        assert_eq!(un.msk_id(), MskId::new(1, 1));
    }
    assert_eq!(b.metrics.pushes_sent.get(), 20);
    // A failing event does not hold back the others': an unknown B-TID is counted as failed.
    let errors = b.d.on_events(
        [
            KeyRequestEvent::Registered {
                btid: "nobody@bsf.example.org".parse().expect("btid"),
                ue_addr: ue_ip(99),
                service_ids: vec!["a".to_owned()],
            },
            KeyRequestEvent::MskRequested {
                btid: btid(3).parse().expect("btid"),
                ue_addr: ue_ip(3),
                msks: vec![(KD, MskId::new(1, 0))],
            },
        ],
        vt(t0()),
    );
    assert!(errors.is_empty(), "{errors:?}");
    let mut sent = Vec::new();
    while let Some(a) = b.d.poll_action() {
        if let Action::SendUdp(batch) = a {
            sent.extend(batch);
        }
    }
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, SocketAddr::new(ue_ip(3), UE_PORT));
    assert!(serial_after(
        counter_of(&sent[0].bytes),
        first.wrapping_add(19)
    ));
    assert_eq!(b.metrics.pushes_failed.get(), 1);
}

#[test]
fn an_acknowledged_push_is_not_retransmitted() {
    let dir = TempDir::new("acked");
    let services = download("a", 1, "60s", "10s", DEST_A, dir.path());
    let mut b = start(
        dir.path(),
        config(dir.path(), 1, &[], &services),
        1,
        t0(),
        tuning(),
    );
    let mut ues = [Ue::new(&b, 0, &[])];
    let mut log = Log::default();
    b.register(0, &["a"], t0());
    run(&mut b.d, t0(), at(30), &mut ues, &mut log);
    assert_eq!(log.to(ues[0].addr()).len(), 1, "sent once");
    assert_eq!(b.metrics.pushes_acked.get(), 1);
    assert_eq!(b.metrics.pushes_retried.get(), 0);
    assert_eq!(b.d.pending_pushes(), 0);
    assert_eq!(ues[0].installed(), [1]);
}

#[test]
fn an_unacknowledged_push_is_retransmitted_with_backoff_then_given_up() {
    let dir = TempDir::new("retx");
    let services = download("a", 1, "60s", "10s", DEST_A, dir.path());
    let mut b = start(
        dir.path(),
        config(dir.path(), 1, &[], &services),
        1,
        t0(),
        tuning(),
    );
    let mut log = Log::default();
    b.register(0, &["a"], t0());
    run(&mut b.d, t0(), at(30), &mut [], &mut log);
    let to_ue = log.to(SocketAddr::new(ue_ip(0), UE_PORT));
    let times: Vec<SystemTime> = to_ue.iter().map(|(t, _)| *t).collect();
    // First send, then initial_backoff 1 s, doubled: +1 s, +2 s (retries = 2).
    assert_eq!(times, [t0(), at(1), at(3)]);
    assert!(
        to_ue.iter().all(|(_, m)| *m == to_ue[0].1),
        "the same bytes"
    );
    assert_eq!(b.metrics.pushes_retried.get(), 2);
    // Given up after the last wait (4 s).
    assert_eq!(b.metrics.pushes_failed.get(), 1);
    assert_eq!(b.d.pending_pushes(), 0);
}

#[test]
fn a_late_acknowledgement_still_counts_and_stops_the_retransmissions() {
    let dir = TempDir::new("late-ack");
    let services = download("a", 1, "60s", "10s", DEST_A, dir.path());
    let mut b = start(
        dir.path(),
        config(dir.path(), 1, &[], &services),
        1,
        t0(),
        tuning(),
    );
    let mut log = Log::default();
    b.register(0, &["a"], t0());
    run(&mut b.d, t0(), at(2), &mut [], &mut log);
    // The UE got the retransmission at t0 + 1 s (the first send was lost).
    let to_ue = log.to(SocketAddr::new(ue_ip(0), UE_PORT));
    assert_eq!(to_ue.len(), 2);
    let mut ue = Ue::new(&b, 0, &[]);
    let ack = ue.handle(at(2), &to_ue[1].1).expect("acknowledged");
    b.d.on_datagram(ue.addr(), &ack, vt(at(2)));
    assert_eq!(b.metrics.pushes_acked.get(), 1);
    let before = log.sent.len();
    run(&mut b.d, at(2), at(10), &mut [], &mut log);
    assert!(log.sent[before..].iter().all(|(_, d)| d.to != ue.addr()));
    assert_eq!(b.metrics.pushes_failed.get(), 0);
}

#[test]
fn acknowledgements_that_do_not_match_or_verify_are_rejected() {
    let dir = TempDir::new("bad-ack");
    let services = download("a", 1, "60s", "10s", DEST_A, dir.path());
    let mut b = start(
        dir.path(),
        config(dir.path(), 2, &[], &services),
        1,
        t0(),
        tuning(),
    );
    let mut log = Log::default();
    b.register(0, &["a"], t0());
    drain(&mut b.d, t0(), &mut [], &mut log);
    let bytes = &log.to(SocketAddr::new(ue_ip(0), UE_PORT))[0].1;
    let un = UnverifiedMsk::parse(bytes).expect("msk");
    let ue_addr = SocketAddr::new(ue_ip(0), UE_PORT);
    // Right message, wrong key (UE 1's MUK).
    let wrong = PreparedMuk::new(&b.muk(1));
    let keys = wrong.keys(un.csb_id(), un.view().rand().expect("rand"));
    let forged = AckContext::new(keys, un.csb_id(), un.counter(), FQDN.as_bytes(), un.idr());
    b.d.on_datagram(ue_addr, &build_ack(&forged).expect("ack"), vt(t0()));
    // Garbage, and an acknowledgement of a counter never used.
    b.d.on_datagram(ue_addr, &[0x01, 0x02, 0x03], vt(t0()));
    let right = PreparedMuk::new(&b.muk(0));
    let keys = right.keys(un.csb_id(), un.view().rand().expect("rand"));
    let other = AckContext::new(
        keys,
        un.csb_id(),
        un.counter() + 7,
        FQDN.as_bytes(),
        un.idr(),
    );
    b.d.on_datagram(ue_addr, &build_ack(&other).expect("ack"), vt(t0()));
    assert_eq!(b.metrics.acks_rejected.get(), 3);
    assert_eq!(b.metrics.pushes_acked.get(), 0);
    assert_eq!(b.d.pending_pushes(), 1);
}

#[test]
fn a_registration_in_the_lead_time_gets_the_current_and_the_next_msk() {
    let dir = TempDir::new("lead");
    let services = download("a", 1, "60s", "10s", DEST_A, dir.path());
    let mut b = start(
        dir.path(),
        config(dir.path(), 1, &[], &services),
        1,
        t0(),
        tuning(),
    );
    let mut ues = [Ue::new(&b, 0, &[DEST_A])];
    let mut log = Log::default();
    // Lead time min(60 s / 4, 60 s) = 15 s: the next MSK exists from t0 + 45 s.
    run(&mut b.d, t0(), at(50), &mut [], &mut log);
    let states: Vec<(u16, MskState)> = b
        .store
        .msks()
        .expect("msks")
        .iter()
        .map(|r| (r.msk_id.key_number, r.state))
        .collect();
    assert_eq!(states, [(1, MskState::Current), (2, MskState::Next)]);
    b.register(0, &["a"], at(50));
    run(&mut b.d, at(50), at(75), &mut ues, &mut log);
    assert_eq!(ues[0].installed(), [1, 2]);
    assert!(
        ues[0].mtks().contains(&(2, 1)),
        "the first MTK under the next MSK"
    );
}

#[test]
fn a_ue_accepts_everything_through_two_rotations() {
    let dir = TempDir::new("rotations");
    let services = download("a", 1, "60s", "10s", DEST_A, dir.path());
    let mut b = start(
        dir.path(),
        config(dir.path(), 2, &[], &services),
        7,
        t0(),
        tuning(),
    );
    let mut ues = [Ue::new(&b, 0, &[DEST_A]), Ue::new(&b, 1, &[DEST_A])];
    let mut log = Log::default();
    b.register(0, &["a"], t0());
    b.register(1, &["a"], t0());
    run(&mut b.d, t0(), at(130), &mut ues, &mut log);
    for ue in &ues {
        assert_eq!(ue.installed(), [1, 2, 3], "UE {}", ue.i);
        let mtks = ue.mtks();
        let want: Vec<(u16, u16)> = (1..=6)
            .map(|n| (1, n))
            .chain((1..=6).map(|n| (2, n)))
            .chain((1..=2).map(|n| (3, n)))
            .collect();
        assert_eq!(mtks, want, "UE {}", ue.i);
        let discards = ue.discards();
        assert_eq!(
            discards.keys().copied().collect::<Vec<_>>(),
            [DiscardReason::Replay],
            "only repetitions of MTK messages are discarded"
        );
        // At most two MSKs held per key group: the oldest went when the third arrived.
        let held: Vec<u16> = ue.rx.msks().map(|m| m.msk_id.key_number).collect();
        assert_eq!(held, [2, 3]);
    }
    assert_eq!(b.metrics.msk_rotations.get(), 2);
    assert_eq!(b.metrics.pushes_acked.get(), 6, "3 MSKs to 2 UEs");
    assert_eq!(b.metrics.pushes_failed.get(), 0);
    // Switch-over times: the first MTK under MSK 2 is current at t0 + 60 s.
    let states: Vec<(u16, MskState)> = b
        .store
        .msks()
        .expect("msks")
        .iter()
        .map(|r| (r.msk_id.key_number, r.state))
        .collect();
    assert_eq!(
        states,
        [
            (1, MskState::Retired),
            (2, MskState::Retired),
            (3, MskState::Current)
        ]
    );
}

#[test]
fn retired_msks_are_deleted_after_the_grace_period() {
    let dir = TempDir::new("grace");
    let services = download("a", 1, "60s", "10s", DEST_A, dir.path());
    let t = Tuning {
        retired_grace: Duration::from_secs(30),
        ..tuning()
    };
    let mut b = start(
        dir.path(),
        config(dir.path(), 0, &[], &services),
        7,
        t0(),
        t,
    );
    let mut log = Log::default();
    run(&mut b.d, t0(), at(89), &mut [], &mut log);
    assert!(b.store.msk(KD, MskId::new(1, 1)).expect("read").is_some());
    run(&mut b.d, at(89), at(91), &mut [], &mut log);
    assert!(b.store.msk(KD, MskId::new(1, 1)).expect("read").is_none());
}

#[test]
fn an_msk_is_rotated_early_when_its_mtk_ids_run_out() {
    let dir = TempDir::new("ids-out");
    // 40 s lifetime, 10 s MTKs, but SEQu capped at 3: the MSK lasts 3 MTKs (30 s).
    let services = download("a", 1, "40s", "10s", DEST_A, dir.path());
    let t = Tuning {
        max_sequ: 3,
        ..tuning()
    };
    let mut b = start(
        dir.path(),
        config(dir.path(), 1, &[], &services),
        3,
        t0(),
        t,
    );
    let mut ues = [Ue::new(&b, 0, &[DEST_A])];
    let mut log = Log::default();
    b.register(0, &["a"], t0());
    run(&mut b.d, t0(), at(65), &mut ues, &mut log);
    assert_eq!(
        ues[0].mtks(),
        [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3), (3, 1)]
    );
    let first_under_2 = log
        .sent
        .iter()
        .find(|(_, d)| UnverifiedMtk::parse(&d.bytes).is_ok_and(|m| m.msk_id().key_number == 2))
        .map(|(t, _)| *t);
    assert_eq!(
        first_under_2,
        Some(at(29)),
        "announced 1 s before the switch at 30 s"
    );
    assert_eq!(b.metrics.msk_rotations.get(), 2);
    assert_eq!(
        ues[0].discards().keys().copied().collect::<Vec<_>>(),
        [DiscardReason::Replay]
    );
}

#[test]
fn counters_strictly_increase_across_a_restart() {
    let dir = TempDir::new("restart");
    let services = download("a", 1, "60s", "10s", DEST_A, dir.path());
    let cfg = || config(dir.path(), 1, &[], &services);
    let mut b = start(dir.path(), cfg(), 1, t0(), tuning());
    let mut ues = [Ue::new(&b, 0, &[DEST_A])];
    let mut log = Log::default();
    b.register(0, &["a"], t0());
    run(&mut b.d, t0(), at(25), &mut ues, &mut log);
    let before: Vec<u32> = log.sent.iter().map(|(_, d)| counter_of(&d.bytes)).collect();
    let highest = *before.iter().max().expect("messages");
    // A crash: nothing is saved, the store is opened again.
    drop(b);
    let mut b = start(dir.path(), cfg(), 2, at(26), tuning());
    let mut after_log = Log::default();
    b.register(0, &["a"], at(26));
    run(&mut b.d, at(26), at(40), &mut ues, &mut after_log);
    assert!(!after_log.sent.is_empty());
    for (_, d) in &after_log.sent {
        let c = counter_of(&d.bytes);
        assert!(serial_after(c, highest), "{c:#x} is not after {highest:#x}");
    }
    // The UE accepted all of it: MTK IDs went on from where they were.
    assert_eq!(ues[0].mtks(), [(1, 1), (1, 2), (1, 3), (1, 4), (1, 5)]);
    assert!(
        ues[0]
            .discards()
            .keys()
            .all(|r| *r == DiscardReason::Replay)
    );
    assert!(
        ues[0]
            .events
            .iter()
            .any(|e| matches!(e, Event::MskUpdated { .. })),
        "the MSK pushed again after the restart is the same key"
    );
}

#[test]
fn a_crash_at_any_point_of_a_rotation_leaves_the_ue_accepting_everything() {
    let ms = |n: u64| t0() + Duration::from_millis(n);
    // (crash, restart) in ms after t0: before the next MSK, right after it was created, around
    // the announce of its first MTK and the switch, and a long stop past the MSK's expiry.
    let cases = [
        (44_000, 44_300),
        (45_000, 45_200),
        (58_900, 59_200),
        (59_000, 59_500),
        (60_000, 60_100),
        (59_900, 60_050),
        (61_000, 61_300),
        (105_000, 105_100),
        (44_000, 90_000),
        (59_000, 130_000),
    ];
    for (crash, restart) in cases {
        let dir = TempDir::new("crash");
        let services = download("a", 1, "60s", "10s", DEST_A, dir.path());
        let cfg = || config(dir.path(), 1, &[], &services);
        let mut b = start(dir.path(), cfg(), 1, t0(), tuning());
        let mut ues = [Ue::new(&b, 0, &[DEST_A])];
        let mut log = Log::default();
        b.register(0, &["a"], t0());
        run(&mut b.d, t0(), ms(crash), &mut ues, &mut log);
        drop(b);
        let mut b = start(dir.path(), cfg(), 2, ms(restart), tuning());
        run(
            &mut b.d,
            ms(restart),
            ms(restart + 150_000),
            &mut ues,
            &mut log,
        );
        let ue = &ues[0];
        let case = format!("crash at {crash} ms, restart at {restart} ms");
        assert_eq!(
            ue.discards().keys().copied().collect::<Vec<_>>(),
            [DiscardReason::Replay],
            "{case}: {:?}",
            ue.events
        );
        let mtks = ue.mtks();
        assert!(mtks.windows(2).all(|w| w[0] < w[1]), "{case}: {mtks:?}");
        let installed = ue.installed();
        assert!(
            installed.windows(2).all(|w| w[0] < w[1]),
            "{case}: {installed:?}"
        );
        assert!(installed.len() >= 3, "{case}: {installed:?}");
        let last = mtks.last().expect("MTKs").0;
        assert!(last >= 3, "{case}: MTKs under the third MSK, got {mtks:?}");
        assert!(b.metrics.msk_rotations.get() >= 1, "{case}");
    }
}

#[test]
fn a_deregistration_invalidates_the_msks_no_remaining_service_uses() {
    let dir = TempDir::new("dereg");
    let services = download("a", 1, "60s", "10s", DEST_A, dir.path())
        + &download("b", 2, "60s", "10s", DEST_B, dir.path())
        + &download("c", 1, "60s", "10s", DEST_C, dir.path());
    let mut b = start(
        dir.path(),
        config(dir.path(), 1, &[], &services),
        1,
        t0(),
        tuning(),
    );
    let mut ues = [Ue::new(&b, 0, &[])];
    let mut log = Log::default();
    b.register(0, &["a", "b", "c"], t0());
    run(&mut b.d, t0(), at(1), &mut ues, &mut log);
    assert_eq!(ues[0].rx.msks().count(), 2);
    let dereg = |removed: &[&str], remaining: &[&str]| KeyRequestEvent::Deregistered {
        btid: btid(0).parse::<Btid>().expect("btid"),
        ue_addr: ue_ip(0),
        removed: removed.iter().map(|s| (*s).to_owned()).collect(),
        remaining: remaining.iter().map(|s| (*s).to_owned()).collect(),
    };
    // "a" shares its MSK with "c", which the UE keeps: nothing to invalidate.
    b.d.on_event(dereg(&["a"], &["b", "c"]), vt(at(2)))
        .expect("event");
    drain(&mut b.d, at(2), &mut ues, &mut log);
    assert_eq!(b.metrics.invalidations_sent.get(), 0);
    // "b" was the only user of key group 2.
    b.d.on_event(dereg(&["b"], &["c"]), vt(at(3)))
        .expect("event");
    drain(&mut b.d, at(3), &mut ues, &mut log);
    assert_eq!(b.metrics.invalidations_sent.get(), 1);
    let last = &log.to(ues[0].addr()).last().expect("sent").1.clone();
    match msk_of(last, &b.muk(0)).1 {
        MskUpdate::Invalidate { seql, sequ } => assert_eq!((seql, sequ), (0xffff, 0x0000)),
        other => panic!("expected an invalidation, got {other:?}"),
    }
    assert!(ues[0].events.contains(&Event::MskInvalidated {
        key_domain_id: KD,
        msk_id: MskId::new(2, 1),
    }));
    let held: Vec<MskId> = ues[0].rx.msks().map(|m| m.msk_id).collect();
    assert_eq!(held, [MskId::new(1, 1)]);
    assert_eq!(
        b.metrics.pushes_acked.get(),
        3,
        "two MSKs and the invalidation"
    );
}

#[test]
fn expired_key_material_gets_a_solicited_pull_under_the_last_muk() {
    let dir = TempDir::new("pull");
    let services = download("a", 1, "60s", "10s", DEST_A, dir.path());
    // UE 0's GBA keys end at t0 + 100 s.
    let cfg = config(dir.path(), 1, &[(0, "2023-11-14T22:15:00Z")], &services);
    let mut b = start(dir.path(), cfg, 1, t0(), tuning());
    let mut ues = [Ue::new(&b, 0, &[])];
    let mut log = Log::default();
    b.register(0, &["a"], t0());
    run(&mut b.d, t0(), at(1), &mut ues, &mut log);
    assert_eq!(ues[0].installed(), [1]);
    let ev = KeyRequestEvent::MskRequested {
        btid: btid(0).parse().expect("btid"),
        ue_addr: ue_ip(0),
        msks: vec![(KD, MskId::new(1, 0))],
    };
    b.d.on_event(ev, vt(at(200))).expect("event");
    drain(&mut b.d, at(200), &mut ues, &mut log);
    let last = log.to(ues[0].addr()).last().expect("sent").1.clone();
    let (un, update) = msk_of(&last, &b.muk(0));
    assert!(!un.v(), "V = 0: no acknowledgement");
    assert_eq!(un.msk_id(), MskId::new(1, 0), "Key Number 0");
    assert_eq!(update, MskUpdate::SolicitedPull);
    assert!(ues[0].events.contains(&Event::MskRequestNeeded {
        key_domain_id: KD,
        msk_id: MskId::new(1, 0),
    }));
    assert_eq!(b.metrics.solicited_pulls.get(), 1);
    assert_eq!(b.d.pending_pushes(), 0, "a pull is not retransmitted");
}

#[test]
fn the_current_mtk_api_returns_what_ues_receive() {
    let dir = TempDir::new("api");
    let services = download("a", 1, "60s", "10s", DEST_A, dir.path())
        + &service(
            "s",
            2,
            "60s",
            "10s",
            DEST_B,
            "transport = \"streaming\"\n[services.srtp]\nssrc = 0x11223344\nroc = 5",
        );
    let mut b = start(
        dir.path(),
        config(dir.path(), 1, &[], &services),
        1,
        t0(),
        tuning(),
    );
    let mut ues = [Ue::new(&b, 0, &[DEST_A, DEST_B])];
    let mut log = Log::default();
    let view = b.d.current_mtks();
    b.register(0, &["a", "s"], t0());
    for end in [5, 15, 25] {
        run(&mut b.d, t0(), at(end), &mut ues, &mut log);
        for (service, group) in [("a", 1), ("s", 2)] {
            let (id, mtk, salt) = b.d.current_mtk(service).expect("current MTK");
            let ready = ues[0]
                .events
                .iter()
                .rev()
                .find_map(|e| match e {
                    Event::MtkReady {
                        msk_id,
                        mtk_id,
                        mtk,
                        salt,
                        ..
                    } if msk_id.key_group == group && *mtk_id == id => {
                        Some((mtk.clone(), salt.clone()))
                    }
                    _ => None,
                })
                .expect("the UE has the current MTK");
            assert!(ready.0 == mtk, "{service} at {end}");
            assert_eq!(
                ready.1.is_some(),
                service == "s",
                "a salt for streaming only"
            );
            assert!(ready.1 == salt);
            let shared = view.get(service).expect("shared view");
            assert_eq!(shared.0, id);
            assert!(shared.1 == mtk);
        }
    }
    let streaming = log
        .to(DEST_B.parse().expect("addr"))
        .into_iter()
        .next()
        .expect("sent");
    let m = UnverifiedMtk::parse(&streaming.1).expect("MTK");
    match &m.view().to_message().hdr.cs_id_map {
        CsIdMap::SrtpId(entries) => {
            assert_eq!((entries[0].ssrc, entries[0].roc), (0x1122_3344, 5));
        }
        other => panic!("expected an SRTP-ID map, got {other:?}"),
    }
}

#[test]
fn a_rotation_fans_the_next_msk_out_to_every_registered_ue_once() {
    let dir = TempDir::new("fanout");
    let services = download("a", 1, "60s", "10s", DEST_A, dir.path())
        + &download("c", 1, "60s", "10s", DEST_C, dir.path());
    let n = 150u32;
    let t = Tuning {
        batch_size: 32,
        ..tuning()
    };
    let mut b = start(
        dir.path(),
        config(dir.path(), n, &[], &services),
        1,
        t0(),
        t,
    );
    // Registered before the start (no events): the fan-out reads them from the store. Half
    // of them to both services of the key group.
    let regs: Vec<Registration> = (0..n)
        .flat_map(|i| {
            let services: &[&str] = if i % 2 == 0 { &["a", "c"] } else { &["a"] };
            services.iter().map(move |s| Registration {
                btid: btid(i).parse().expect("btid"),
                service_id: (*s).to_owned(),
                ue_addr: ue_ip(i),
                registered_at: t0(),
            })
        })
        .collect();
    b.store.register_many(&regs).expect("register");
    let mut ues: Vec<Ue> = (0..n).map(|i| Ue::new(&b, i, &[])).collect();
    let mut log = Log::default();
    run(&mut b.d, t0(), at(50), &mut ues, &mut log);
    let mut per_ue: HashMap<SocketAddr, usize> = HashMap::new();
    for (_, d) in &log.sent {
        if let Ok(m) = UnverifiedMsk::parse(&d.bytes) {
            assert_eq!(m.msk_id(), MskId::new(1, 2));
            *per_ue.entry(d.to).or_default() += 1;
        }
    }
    assert_eq!(per_ue.len(), n as usize);
    assert!(per_ue.values().all(|c| *c == 1), "each UE once");
    assert!(ues.iter().all(|u| u.installed() == [2]));
    assert_eq!(b.metrics.pushes_acked.get(), u64::from(n));
    assert_eq!(b.metrics.push_fanout_latency.count(), 1);
}

#[test]
fn after_a_restart_no_ue_sees_an_mtk_before_the_fan_out_of_its_msk_reached_it() {
    // A stop while the pushes of the next MSK (2, created at 45 s) were lost, and a restart
    // after the switch-over time (60 s). Stopped at 47 s, the restart finds MSK 2 as the next
    // MSK, the switch to it due; stopped at 59 s (its first MTK announced), the restart makes
    // it current. Either way it is pushed again to every registered UE, in 10 pages, and its
    // MTKs wait for the last page: no UE discards an MTK for an unknown MSK.
    let ms = |n: u64| t0() + Duration::from_millis(n);
    for stop in [47_000, 59_000] {
        let dir = TempDir::new("switch-waits");
        let services = download("a", 1, "60s", "10s", DEST_A, dir.path());
        let n = 40u32;
        let t = Tuning {
            batch_size: 4,
            ..tuning()
        };
        let cfg = || config(dir.path(), n, &[], &services);
        let mut b = start(dir.path(), cfg(), 1, t0(), t.clone());
        let mut ues: Vec<Ue> = (0..n).map(|i| Ue::new(&b, i, &[DEST_A])).collect();
        let mut log = Log::default();
        for i in 0..n {
            b.register(i, &["a"], t0());
        }
        run(&mut b.d, t0(), ms(40_000), &mut ues, &mut log);
        // Nothing reaches the UEs from here to the stop.
        run(&mut b.d, ms(40_000), ms(stop), &mut [], &mut log);
        drop(b);
        assert!(ues.iter().all(|u| u.installed() == [1]));
        let mut b = start(dir.path(), cfg(), 2, ms(61_000), t);
        run(&mut b.d, ms(61_000), ms(75_000), &mut ues, &mut log);
        assert_eq!(
            b.metrics.push_fanout_latency.count(),
            1,
            "stop at {stop} ms"
        );
        assert_eq!(
            b.metrics.pushes_sent.get(),
            u64::from(n),
            "stop at {stop} ms"
        );
        for ue in &ues {
            assert_eq!(
                ue.discards().keys().copied().collect::<Vec<_>>(),
                [DiscardReason::Replay],
                "stop at {stop} ms, UE {}: {:?}",
                ue.i,
                ue.events
            );
            assert!(
                ue.mtks().iter().any(|(msk, _)| *msk == 2),
                "stop at {stop} ms, UE {}",
                ue.i
            );
        }
    }
}

#[test]
fn a_restart_pushes_again_to_registrations_whose_push_a_stop_may_have_lost() {
    // UE 0 registered long ago and holds the MSK; UE 1's registration was acknowledged (stored)
    // but the stop came before its push went out.
    let dir = TempDir::new("repush");
    let services = download("a", 1, "600s", "10s", DEST_A, dir.path());
    let cfg = || config(dir.path(), 2, &[], &services);
    let mut b = start(dir.path(), cfg(), 1, t0(), tuning());
    let mut ues = [Ue::new(&b, 0, &[]), Ue::new(&b, 1, &[])];
    let mut log = Log::default();
    b.register(0, &["a"], t0());
    run(&mut b.d, t0(), at(100), &mut ues, &mut log);
    b.register(1, &["a"], at(100));
    drop(b);
    assert_eq!(ues[1].installed(), Vec::<u16>::new());
    let sent_before = log.sent.len();
    let mut b = start(dir.path(), cfg(), 2, at(101), tuning());
    run(&mut b.d, at(101), at(110), &mut ues, &mut log);
    assert_eq!(ues[1].installed(), [1], "the lost push is made again");
    let pushed_to: Vec<SocketAddr> = log.sent[sent_before..]
        .iter()
        .filter(|(_, d)| UnverifiedMsk::parse(&d.bytes).is_ok())
        .map(|(_, d)| d.to)
        .collect();
    assert_eq!(pushed_to, [ues[1].addr()], "only the recent registration");
    assert_eq!(ues[0].installed(), [1]);
}

#[test]
fn exported_mtks_are_what_ues_receive_announced_for_the_switch_then_current() {
    let dir = TempDir::new("export");
    let services = service(
        "s",
        2,
        "60s",
        "10s",
        DEST_B,
        "transport = \"streaming\"\n[services.srtp]\nssrc = 0x11223344",
    );
    let mut b = start(
        dir.path(),
        config(dir.path(), 1, &[], &services),
        1,
        t0(),
        tuning(),
    );
    let (held, mut feed) = b.d.current_mtks().subscribe_exported();
    assert!(held.is_empty(), "no MTK before the first step");
    let mut ues = [Ue::new(&b, 0, &[DEST_B])];
    let mut log = Log::default();
    b.register(0, &["s"], t0());
    run(&mut b.d, t0(), at(35), &mut ues, &mut log);
    let mut exported = Vec::new();
    while let Ok(m) = feed.try_recv() {
        exported.push(m);
    }
    assert!(exported.len() >= 6, "{} exported", exported.len());
    // Each MTK twice: announced for the planned switch, then current from the switch (virtual
    // time runs on time: the same instant).
    let mut previous: Option<SystemTime> = None;
    for pair in exported.chunks(2) {
        let [announced, current] = pair else {
            panic!("an MTK announced and not made current");
        };
        assert_eq!(&*announced.service, "s");
        assert_eq!(announced.key_domain, KD);
        assert_eq!(
            (announced.msk_id, announced.mtk_id),
            (current.msk_id, current.mtk_id)
        );
        assert!(announced.mtk == current.mtk && announced.salt == current.salt);
        assert_eq!(announced.valid_from, current.valid_from);
        if let Some(p) = previous {
            assert_eq!(
                current.valid_from,
                p + Duration::from_secs(10),
                "mtk_interval"
            );
        }
        previous = Some(current.valid_from);
        let received = ues[0]
            .events
            .iter()
            .find_map(|e| match e {
                Event::MtkReady {
                    msk_id,
                    mtk_id,
                    mtk,
                    salt,
                    ..
                } if (*msk_id, *mtk_id) == (current.msk_id, current.mtk_id) => {
                    Some((mtk.clone(), salt.clone()))
                }
                _ => None,
            })
            .expect("the UE received the exported MTK");
        assert!(received.0 == current.mtk && received.1 == current.salt);
        assert!(current.salt.is_some(), "a streaming MTK has a salt");
    }
    // A client connecting now gets the current MTK.
    let (held, _) = b.d.current_mtks().subscribe_exported();
    let (id, mtk, salt) = b.d.current_mtk("s").expect("current");
    let now = held
        .iter()
        .find(|m| m.mtk_id == id)
        .expect("the current MTK is held");
    assert!(now.mtk == mtk && now.salt == salt);
}
