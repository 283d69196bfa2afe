//! `mbms-lab bench ue`: UE receiver throughput on one core, and the message generators the
//! other UE benches share.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use mbms_keys::crypto::{Fixed, Msk, Mtk, Muk, Salt};
use mbms_keys::mbms::{
    MskDelivery, MskUpdate, MtkDelivery, MtkKeys, MukId, PreparedMuk, build_msk_prepared, build_mtk,
};
use mbms_keys::mikey::{MskId, MtkId};
use mbms_keys::ue::{Event, Receiver, ReceiverConfig};

pub(crate) const IDI: &str = "bmsc.example.org";
pub(crate) const IDR: &str = "ICEiIyQlJicoKSorLC0uLw==@bsf.example.org";

fn median(v: Vec<Duration>) -> Duration {
    crate::median(v).unwrap_or_default()
}

/// A receiver holding `muk` under the bench's MUK ID.
pub(crate) fn receiver(muk: &Muk) -> Receiver {
    let mut rx = Receiver::new(ReceiverConfig::default(), Box::new(Fixed(4)));
    rx.set_muk(MukId::new(IDI.as_bytes(), IDR.as_bytes()), muk.clone());
    rx
}

/// An MSK message installing `msk` under MSK ID 0001‖`key_number` (RAND from the counter).
pub(crate) fn msk_message(muk: &PreparedMuk, counter: u32, key_number: u16, msk: &Msk) -> Vec<u8> {
    let mut rand = [0u8; 16];
    rand[..4].copy_from_slice(&counter.to_be_bytes());
    let d = MskDelivery::new(
        "00f110".parse().expect("literal"),
        MskId::new(1, key_number),
        counter,
        rand.to_vec(),
        IDI,
        IDR,
        MskUpdate::NewKey {
            msk: msk.clone(),
            seql: 0,
            sequ: 0xffff,
        },
    );
    build_msk_prepared(muk, &d).expect("valid delivery")
}

/// MTK messages with MTK IDs (and counters) 1..=`n` under `msk`, installed
/// by [`msk_message`] with Key Number 2 (TEK+SALT, download map).
pub(crate) fn mtk_messages(msk: &Msk, n: u32) -> Vec<Vec<u8>> {
    let keys = MtkKeys::new(msk, MskId::new(1, 2).to_u32());
    (1..=n)
        .map(|i| {
            let d = MtkDelivery {
                key_domain_id: "00f110".parse().expect("literal"),
                msk_id: MskId::new(1, 2),
                csb_id: MskId::new(1, 2).to_u32(),
                mtk_id: MtkId(i as u16),
                counter: i,
                mtk: Mtk::from_bytes([i as u8; 16]),
                salt: Some(Salt::from_bytes([7; 14])),
                streaming: None,
            };
            build_mtk(&keys, &d).expect("valid delivery")
        })
        .collect()
}

/// Feeds `messages` to `rx` and drains the events; returns the elapsed time
/// and the number of events of the expected kind.
fn feed(rx: &mut Receiver, messages: &[Vec<u8>], want: fn(&Event) -> bool) -> (Duration, usize) {
    let now = Instant::now();
    let start = Instant::now();
    let mut hits = 0;
    for m in messages {
        let _ack = rx.handle_datagram(now, m);
        while let Some(e) = rx.poll_event() {
            hits += usize::from(want(&e));
        }
    }
    (start.elapsed(), hits)
}

pub fn run(n_mtk: u32, n_msk: u32, runs: usize) -> ExitCode {
    let muk = Muk::from_bytes([0x42; 32]);
    let prepared = PreparedMuk::new(&muk);
    let msk = Msk::from_bytes([0xb0; 16]);
    let install = msk_message(&prepared, 1, 2, &msk);
    let mtks = mtk_messages(&msk, n_mtk);
    let msks: Vec<Vec<u8>> = (1..=n_msk)
        .map(|i| {
            msk_message(
                &prepared,
                i + 1,
                (i % 0xfffe) as u16 + 1,
                &Msk::from_bytes([i as u8; 16]),
            )
        })
        .collect();

    let mut mtk_times = Vec::new();
    let mut msk_times = Vec::new();
    for _ in 0..runs {
        let mut rx = receiver(&muk);
        let _ = feed(&mut rx, std::slice::from_ref(&install), |_| false);
        let (t, ready) = feed(&mut rx, &mtks, |e| matches!(e, Event::MtkReady { .. }));
        if ready != mtks.len() {
            eprintln!("error: {ready} of {} MTK messages accepted", mtks.len());
            return ExitCode::from(1);
        }
        mtk_times.push(t);
        let mut rx = receiver(&muk);
        let (t, installed) = feed(&mut rx, &msks, |e| matches!(e, Event::MskInstalled { .. }));
        if installed != msks.len() {
            eprintln!("error: {installed} of {} MSK messages accepted", msks.len());
            return ExitCode::from(1);
        }
        msk_times.push(t);
    }
    let rate = |n: u32, t: Duration| f64::from(n) / t.as_secs_f64();
    let (mtk_t, msk_t) = (median(mtk_times), median(msk_times));
    println!("| UE receiver, one core | messages | median time | messages/s | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| MTK messages (verify, decrypt, SEQs, event) | {n_mtk} | {:.1} ms | {:.0} | ≥ 500,000/s |",
        mtk_t.as_secs_f64() * 1e3,
        rate(n_mtk, mtk_t)
    );
    println!(
        "| MSK messages (verify, install, evict, ack) | {n_msk} | {:.1} ms | {:.0} | ≥ 150,000/s |",
        msk_t.as_secs_f64() * 1e3,
        rate(n_msk, msk_t)
    );
    println!("({runs} runs)");
    ExitCode::SUCCESS
}
