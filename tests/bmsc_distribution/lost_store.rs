//! A BM-SC that lost its store (docs/profile.md §5, counter floor): a second BM-SC starts on
//! an empty store with the same configuration and keys, and a UE that kept its state from the
//! first accepts its pushes, because a fresh store's counters start at the wall-clock floor.

use mbms_keys::bmsc::distribution::counter::counter_floor;
use mbms_keys::ue::{DiscardReason, Event};

use super::harness::*;

#[test]
fn a_ue_that_kept_its_state_accepts_the_pushes_of_a_bmsc_on_a_fresh_store() {
    let first_dir = TempDir::new("lost-store-1");
    let services = download("a", 1, "60s", "10s", DEST_A, first_dir.path());
    let mut first = start(
        first_dir.path(),
        config(first_dir.path(), 1, &[], &services),
        1,
        t0(),
        tuning(),
    );
    let mut ues = [Ue::new(&first, 0, &[DEST_A])];
    let mut log = Log::default();
    first.register(0, &["a"], t0());
    run(&mut first.d, t0(), at(25), &mut ues, &mut log);
    assert_eq!(ues[0].installed(), [1]);
    let highest = log
        .sent
        .iter()
        .map(|(_, d)| counter_of(&d.bytes))
        .max()
        .expect("messages");
    // The store is lost: the second BM-SC starts on an empty data directory, a minute later.
    drop(first);
    let second_dir = TempDir::new("lost-store-2");
    let services = download("a", 1, "60s", "10s", DEST_A, second_dir.path());
    let mut second = start(
        second_dir.path(),
        config(second_dir.path(), 1, &[], &services),
        2,
        at(85),
        tuning(),
    );
    let mut after = Log::default();
    let events_before = ues[0].events.len();
    second.register(0, &["a"], at(85));
    run(&mut second.d, at(85), at(110), &mut ues, &mut after);
    let new_events = &ues[0].events[events_before..];
    assert!(
        new_events
            .iter()
            .any(|e| matches!(e, Event::MskInstalled { msk_id, .. } if msk_id.key_number == 1)),
        "the new MSK 1 (another key under the same MSK ID) is installed: {new_events:?}"
    );
    assert!(
        new_events
            .iter()
            .any(|e| matches!(e, Event::MtkReady { .. })),
        "and the MTKs under it are delivered"
    );
    assert!(
        ues[0]
            .discards()
            .keys()
            .all(|r| *r == DiscardReason::Replay),
        "nothing but repetitions discarded: {:?}",
        ues[0].discards()
    );
    assert_eq!(
        second.metrics.pushes_acked.get(),
        1,
        "the UE acknowledged the push"
    );
    let first_counter = counter_of(&after.sent.first().expect("a push").1.bytes);
    assert!(first_counter >= counter_floor(at(85)));
    assert!(
        serial_after(first_counter, highest),
        "{first_counter:#x} is not after {highest:#x}"
    );
}
