//! The measurement of the fan-out (ignored by default; run in release mode).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mbms_keys::bmsc::distribution::{Action, Distributor, Tuning};
use mbms_keys::bmsc::metrics::Metrics;
use mbms_keys::bmsc::store::{Registration, Store};
use mbms_keys::gba::KeySource;
use mbms_keys::mbms::{MskId, MskUpdate, PreparedMuk};

use super::harness::*;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// GBA keys for any `ueNNNNNN@…` B-TID, derived from the number: a key source for a million
/// UEs without a million-entry configuration.
struct SyntheticKeys;

impl KeySource for SyntheticKeys {
    fn lookup(
        &self,
        btid: &str,
        _now: SystemTime,
    ) -> Result<mbms_keys::gba::SubscriberKeys, mbms_keys::gba::KeySourceError> {
        let n: u32 = btid
            .get(2..8)
            .and_then(|d| d.parse().ok())
            .ok_or(mbms_keys::gba::KeySourceError::UnknownBtid)?;
        let mut ks_naf = [0u8; 32];
        ks_naf[..4].copy_from_slice(&n.to_be_bytes());
        Ok(mbms_keys::gba::SubscriberKeys {
            btid: btid
                .parse()
                .map_err(|_| mbms_keys::gba::KeySourceError::UnknownBtid)?,
            impi: format!("user{n}@ims.example.org"),
            keys: mbms_keys::gba::GbaKeys::Me {
                ks_naf: mbms_keys::crypto::KsNaf::from_bytes(ks_naf),
            },
            expires: at(10 * 365 * 86_400),
        })
    }
}

/// `cargo test --release --test bmsc_distribution -- --ignored --nocapture`: a full rotation
/// fan-out to 100,000 registered UEs (store pages, MUK lookups, counters, RANDs, building on
/// all cores) with the distributor's memory per UE, then MSK message building alone.
/// `MBMS_FANOUT_UES=1000000` for a million.
#[test]
#[ignore = "measurement; run in release mode"]
fn measure_msk_messages_for_100k_ues() {
    let n: u32 = std::env::var("MBMS_FANOUT_UES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = TempDir::new("measure");
    let services = download("a", 1, "60s", "10s", DEST_A, dir.path());
    let cfg = config(dir.path(), 0, &[], &services);
    let store = open_store(dir.path());
    let metrics = Arc::new(Metrics::default());
    let keys: Arc<dyn KeySource> = Arc::new(SyntheticKeys);
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    for start in (0..n).step_by(10_000) {
        let regs: Vec<Registration> = (start..n.min(start + 10_000))
            .map(|i| Registration {
                btid: btid(i).parse().expect("btid"),
                service_id: "a".to_owned(),
                ue_addr: ue_ip(i),
                registered_at: t0(),
            })
            .collect();
        store.register_many(&regs).expect("register");
    }
    let mut d = Distributor::with_tuning(
        &cfg,
        store.clone(),
        keys.clone(),
        metrics.clone(),
        test_rng(1),
        vt(t0()),
        Tuning::default(),
    )
    .expect("distributor");

    // 1. The fan-out of the next MSK (created at t0 + 45 s), in virtual time, nobody acking.
    let rss_before = rss_kib();
    let mut now = t0();
    let mut fanout_wall = Duration::ZERO;
    let mut largest_batch = 0;
    while metrics.push_fanout_latency.count() == 0 {
        let t = wall_of(d.poll_timeout().expect("a deadline"));
        now = now.max(t);
        let wall = Instant::now();
        d.on_timeout(vt(now)).expect("on_timeout");
        while let Some(a) = d.poll_action() {
            if let Action::SendUdp(batch) = a {
                largest_batch = largest_batch.max(batch.len());
            }
        }
        if now >= at(45) {
            fanout_wall += wall.elapsed();
        }
    }
    let rss_after = rss_kib();
    assert_eq!(metrics.pushes_sent.get(), u64::from(n));
    assert_eq!(d.pending_pushes(), n as usize);
    let per_ue = (rss_after.saturating_sub(rss_before) * 1024) as f64 / f64::from(n);
    println!(
        "fan-out to {n} UEs: {fanout_wall:?} ({:.2} µs per UE; store pages, MUK lookups and \
         preparation, counters, RANDs, building on {threads} threads), largest batch \
         {largest_batch}; then {} pushes pending, {} MUKs cached: RSS +{} KiB = {per_ue:.0} B/UE",
        fanout_wall.as_secs_f64() * 1e6 / f64::from(n),
        d.pending_pushes(),
        d.cached_muks(),
        rss_after.saturating_sub(rss_before),
    );

    // 2. Building alone: prepared MUKs, a fresh RAND and counter per message, all cores.
    let muks: Vec<PreparedMuk> = (0..n)
        .map(|i| PreparedMuk::new(&keys.lookup(&btid(i), t0()).expect("known").keys.muk()))
        .collect();
    let msk = store
        .msk(KD, MskId::new(1, 2))
        .expect("read")
        .expect("the next MSK")
        .msk;
    let started = Instant::now();
    let total: usize = std::thread::scope(|s| {
        let chunk = muks.len().div_ceil(threads);
        let handles: Vec<_> = muks
            .chunks(chunk)
            .enumerate()
            .map(|(c, part)| {
                let msk = msk.clone();
                s.spawn(move || {
                    let mut bytes = 0;
                    for (i, muk) in part.iter().enumerate() {
                        let k = (c * chunk + i) as u32;
                        let d = mbms_keys::mbms::MskDelivery::new(
                            KD,
                            MskId::new(1, 2),
                            k,
                            k.to_be_bytes().repeat(4),
                            FQDN,
                            &btid(k),
                            MskUpdate::NewKey {
                                msk: msk.clone(),
                                seql: 0,
                                sequ: 8,
                            },
                        );
                        bytes += mbms_keys::mbms::build_msk_prepared(muk, &d)
                            .expect("builds")
                            .len();
                    }
                    bytes
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).sum()
    });
    let build = started.elapsed();
    println!(
        "{n} MSK messages built in {build:?} on {threads} threads ({:.2} µs each, {:.0} octets \
         on average)",
        build.as_secs_f64() * 1e6 / f64::from(n),
        total as f64 / f64::from(n)
    );
}
