//! Steps of the wall clock while the distributor runs: the monotonic clock advances as usual
//! while the wall clock jumps an hour back (as after an NTP correction) or an hour forward.
//! The schedule follows the monotonic clock only (docs/profile.md §5, clocks): every message
//! leaves when it would have without the step. What reads the wall clock — the times written
//! to the store, GBA key lifetimes, the counter floor — sees the step.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use mbms_keys::bmsc::distribution::{Distributor, Now};
use mbms_keys::ue::DiscardReason;

use super::harness::*;

const HOUR: Duration = Duration::from_secs(3600);
/// The wall clock steps at this virtual time.
const STEP_AT: u64 = 30;
const UNTIL: u64 = 150;

#[derive(Clone, Copy)]
enum Step {
    None,
    Back,
    Forward,
}

/// The distributor's clocks at virtual time `t`: in step until [`STEP_AT`], then the wall
/// clock an hour off.
fn clocks(t: SystemTime, step: Step) -> Now {
    let n = vt(t);
    if t < at(STEP_AT) {
        return n;
    }
    match step {
        Step::None => n,
        Step::Back => Now::new(n.mono, n.wall - HOUR),
        Step::Forward => Now::new(n.mono, n.wall + HOUR),
    }
}

/// [`run`] with the wall clock stepped.
fn run_stepped(d: &mut Distributor, until: SystemTime, step: Step, ues: &mut [Ue], log: &mut Log) {
    let mut now = t0();
    for _ in 0..1_000_000 {
        while let Some(a) = d.poll_action() {
            deliver_with(d, now, clocks(now, step), a, ues, log);
        }
        let Some(t) = d.poll_timeout().map(wall_of) else {
            return;
        };
        if t > until {
            return;
        }
        now = now.max(t);
        d.on_timeout(clocks(now, step)).expect("on_timeout");
    }
    panic!("the distributor does not settle");
}

struct Outcome {
    /// Every datagram by (monotonic time as virtual time, destination).
    sent: Vec<(SystemTime, SocketAddr)>,
    /// Counters of the MTK messages, in sending order.
    mtk_counters: Vec<u32>,
    mtks: Vec<(u16, u16)>,
    installed: Vec<u16>,
    discards: Vec<DiscardReason>,
    rotations: u64,
    /// The wall time the store holds as the activation of the third MSK.
    msk3_activates: SystemTime,
}

/// One UE registered to a download service with a 60 s MSK lifetime and a 10 s MTK interval,
/// run for [`UNTIL`] s (two rotations) with the wall clock stepped at [`STEP_AT`] s.
fn scenario(step: Step) -> Outcome {
    let dir = TempDir::new("clock-step");
    let services = download("a", 1, "60s", "10s", DEST_A, dir.path());
    let mut b = start(
        dir.path(),
        config(dir.path(), 1, &[], &services),
        7,
        t0(),
        tuning(),
    );
    let mut ues = [Ue::new(&b, 0, &[DEST_A])];
    let mut log = Log::default();
    b.register(0, &["a"], t0());
    run_stepped(&mut b.d, at(UNTIL), step, &mut ues, &mut log);
    let dest: SocketAddr = DEST_A.parse().expect("addr");
    let msk3_activates = b
        .store
        .msks()
        .expect("msks")
        .iter()
        .find(|r| r.msk_id.key_number == 3)
        .expect("the third MSK")
        .activates_at;
    Outcome {
        sent: log.sent.iter().map(|(t, d)| (*t, d.to)).collect(),
        mtk_counters: log
            .sent
            .iter()
            .filter(|(_, d)| d.to == dest)
            .map(|(_, d)| counter_of(&d.bytes))
            .collect(),
        mtks: ues[0].mtks(),
        installed: ues[0].installed(),
        discards: ues[0].discards().into_keys().collect(),
        rotations: b.metrics.msk_rotations.get(),
        msk3_activates,
    }
}

/// What a step must not change: when each message leaves and what the UE accepts.
fn assert_on_schedule(stepped: &Outcome, reference: &Outcome) {
    assert_eq!(reference.rotations, 2, "the reference run rotates twice");
    assert_eq!(
        stepped.sent, reference.sent,
        "every datagram leaves at its time and to its destination"
    );
    assert_eq!(stepped.mtks, reference.mtks, "the UE gets every MTK");
    assert_eq!(stepped.installed, [1, 2, 3]);
    assert_eq!(stepped.rotations, 2);
    assert_eq!(
        stepped.discards,
        [DiscardReason::Replay],
        "only repetitions of MTK messages are discarded"
    );
    // Repetitions carry the same counter, each new MTK message a later one.
    for w in stepped.mtk_counters.windows(2) {
        assert!(
            w[1] == w[0] || serial_after(w[1], w[0]),
            "{:#x} then {:#x}",
            w[0],
            w[1]
        );
    }
}

/// The gaps between MTK messages to the service's destination, in seconds.
fn longest_gap(o: &Outcome) -> Duration {
    let dest: SocketAddr = DEST_A.parse().expect("addr");
    let times: Vec<SystemTime> = o
        .sent
        .iter()
        .filter(|(_, to)| *to == dest)
        .map(|(t, _)| *t)
        .collect();
    times
        .windows(2)
        .map(|w| w[1].duration_since(w[0]).unwrap_or_default())
        .max()
        .unwrap_or_default()
}

#[test]
fn a_backward_wall_step_of_an_hour_stalls_no_mtk_delivery() {
    let reference = scenario(Step::None);
    let stepped = scenario(Step::Back);
    assert_on_schedule(&stepped, &reference);
    assert!(longest_gap(&stepped) <= Duration::from_secs(1));
    assert!(
        stepped.sent.last().expect("sent").0 >= at(UNTIL - 1),
        "delivery goes on to the end"
    );
    // The times stored are wall times read after the step: MSK 3 became current at 120 s
    // of monotonic time, an hour back on the wall clock.
    assert_eq!(stepped.msk3_activates, reference.msk3_activates - HOUR);
}

#[test]
fn a_forward_wall_step_of_an_hour_fires_nothing_at_once() {
    let reference = scenario(Step::None);
    let stepped = scenario(Step::Forward);
    assert_on_schedule(&stepped, &reference);
    // No burst: as many datagrams in the second after the step as without it.
    let in_second = |o: &Outcome| {
        o.sent
            .iter()
            .filter(|(t, _)| *t >= at(STEP_AT) && *t < at(STEP_AT + 1))
            .count()
    };
    assert_eq!(in_second(&stepped), in_second(&reference));
    assert!(longest_gap(&stepped) <= Duration::from_secs(1));
    assert_eq!(stepped.msk3_activates, reference.msk3_activates + HOUR);
    // The counter floor follows the wall clock: the counters jumped ahead, and the UE took
    // them (the jump is far inside the RFC 1982 window).
    let jump = stepped
        .mtk_counters
        .last()
        .expect("messages")
        .wrapping_sub(*reference.mtk_counters.last().expect("messages"));
    assert!(jump >= 3000 * 1024, "counters jumped by {jump}");
}
