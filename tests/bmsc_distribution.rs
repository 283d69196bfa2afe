//! The BM-SC Key Distribution function, sans-IO with virtual time, a temporary SQLite store and
//! the embedded key source: the MSK life cycle, MSK pushes and their acknowledgements, MTK
//! delivery, and a UE `Receiver` (PROFILE.md §3) accepting all of it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

use mbms_keys::bmsc::config::Config;
use mbms_keys::bmsc::distribution::{Action, Datagram, Distributor, Rng, Tuning};
use mbms_keys::bmsc::events::KeyRequestEvent;
use mbms_keys::bmsc::metrics::Metrics;
use mbms_keys::bmsc::store::{MskState, Registration, SqliteStore, Store};
use mbms_keys::crypto::{Muk, StateKey};
use mbms_keys::gba::{Btid, KeySource};
use mbms_keys::mbms::{
    AckContext, KeyDomainId, MskId, MskUpdate, MukId, PreparedMuk, UnverifiedMsk, UnverifiedMtk,
    build_ack,
};
use mbms_keys::mikey::CsIdMap;
use mbms_keys::ue::{DiscardReason, Event, Receiver, ReceiverConfig};

// --- set-up ------------------------------------------------------------------------------

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "mbms-bmsc-dist-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const FQDN: &str = "bmsc.example.org";
const UE_PORT: u16 = 2269;
const KD: KeyDomainId = KeyDomainId([0x00, 0xf1, 0x10]);
/// 2023-11-14T22:13:20Z.
const T0_SECS: u64 = 1_700_000_000;

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(T0_SECS)
}

fn at(secs: u64) -> SystemTime {
    t0() + Duration::from_secs(secs)
}

fn btid(i: u32) -> String {
    format!("ue{i:06}@bsf.example.org")
}

fn ue_ip(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | i))
}

/// A deterministic generator (xorshift): reproducible tests.
fn test_rng(seed: u64) -> Rng {
    let mut s = seed | 1;
    Box::new(move |buf: &mut [u8]| {
        for b in buf {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            *b = (s >> 24) as u8;
        }
    })
}

/// One `[[services]]` table.
fn service(
    id: &str,
    group: u16,
    lifetime: &str,
    interval: &str,
    dest: &str,
    extra: &str,
) -> String {
    format!(
        r#"
[[services]]
id = "{id}"
key_domain = "00f110"
key_group = {group}
msk_lifetime = "{lifetime}"
mtk_interval = "{interval}"
mtk_resend = "1s"
mtk_destination = "{dest}"
authorized = "*"
{extra}
"#
    )
}

fn download(
    id: &str,
    group: u16,
    lifetime: &str,
    interval: &str,
    dest: &str,
    dir: &Path,
) -> String {
    let extra = format!(
        "transport = \"download\"\nmtk_object_dir = \"{}\"",
        dir.join(format!("mtk-{id}")).display()
    );
    service(id, group, lifetime, interval, dest, &extra)
}

/// A configuration with `ues` subscribers (`ue000000` … expiring in 2035, or the given time),
/// `[push]` retries 2 from 1 s to 4 s, and `services`.
fn config(dir: &Path, ues: u32, expires: &[(u32, &str)], services: &str) -> Config {
    let mut text = format!(
        "fqdn = \"{FQDN}\"\ndata_dir = \"{}\"\nue_port = {UE_PORT}\n\
         [push]\nretries = 2\ninitial_backoff = \"1s\"\nmax_backoff = \"4s\"\n",
        dir.display()
    );
    for i in 0..ues {
        let exp = expires
            .iter()
            .find(|(n, _)| *n == i)
            .map_or("2035-01-01T00:00:00Z", |(_, e)| e);
        text.push_str(&format!(
            "[[gba.subscribers]]\nbtid = \"{}\"\nimpi = \"user{i}@ims.example.org\"\n\
             ks_naf = \"{}\"\nexpires = \"{exp}\"\n",
            btid(i),
            hex::encode([(i % 251 + 1) as u8; 32])
        ));
    }
    text.push_str(services);
    Config::parse_with_env(&text, |_| None).expect("test configuration is valid")
}

fn open_store(dir: &Path) -> Arc<SqliteStore> {
    Arc::new(SqliteStore::open(&dir.join("db"), StateKey::from_bytes([0x42; 32])).expect("store"))
}

struct Bmsc {
    d: Distributor,
    store: Arc<SqliteStore>,
    keys: Arc<dyn KeySource>,
    metrics: Arc<Metrics>,
}

fn start(dir: &Path, config: Config, seed: u64, now: SystemTime, tuning: Tuning) -> Bmsc {
    let store = open_store(dir);
    let keys: Arc<dyn KeySource> = Arc::new(config.key_source().expect("key source"));
    let metrics = Arc::new(Metrics::default());
    let d = Distributor::with_tuning(
        &config,
        store.clone(),
        keys.clone(),
        metrics.clone(),
        test_rng(seed),
        now,
        tuning,
    )
    .expect("distributor starts");
    Bmsc {
        d,
        store,
        keys,
        metrics,
    }
}

fn tuning() -> Tuning {
    Tuning {
        build_threads: 2,
        ..Tuning::default()
    }
}

impl Bmsc {
    fn muk(&self, i: u32) -> Muk {
        self.keys
            .lookup(&btid(i), t0())
            .expect("subscriber known")
            .keys
            .muk()
    }

    fn register(&mut self, i: u32, services: &[&str], now: SystemTime) {
        for s in services {
            self.store
                .register(&Registration {
                    btid: btid(i).parse().expect("btid"),
                    service_id: (*s).to_owned(),
                    ue_addr: ue_ip(i),
                    registered_at: now,
                })
                .expect("register");
        }
        self.d
            .on_event(
                KeyRequestEvent::Registered {
                    btid: btid(i).parse().expect("btid"),
                    ue_addr: ue_ip(i),
                    service_ids: services.iter().map(|s| (*s).to_owned()).collect(),
                },
                now,
            )
            .expect("event");
    }
}

/// Every datagram the distributor emitted, with the time.
#[derive(Default)]
struct Log {
    sent: Vec<(SystemTime, Datagram)>,
    objects: Vec<(PathBuf, Vec<u8>)>,
}

impl Log {
    fn to(&self, addr: SocketAddr) -> Vec<(SystemTime, Vec<u8>)> {
        self.sent
            .iter()
            .filter(|(_, d)| d.to == addr)
            .map(|(t, d)| (*t, d.bytes.to_vec()))
            .collect()
    }
}

/// A UE: its receiver and everything it reported.
struct Ue {
    i: u32,
    rx: Receiver,
    events: Vec<Event>,
    /// MTK destinations it listens to.
    listens: Vec<SocketAddr>,
}

impl Ue {
    fn new(b: &Bmsc, i: u32, listens: &[&str]) -> Self {
        let mut rx = Receiver::new(ReceiverConfig::default(), Box::new(|| 0));
        rx.set_muk(MukId::new(FQDN.as_bytes(), btid(i).as_bytes()), b.muk(i));
        Self {
            i,
            rx,
            events: Vec::new(),
            listens: listens.iter().map(|d| d.parse().expect("addr")).collect(),
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::new(ue_ip(self.i), UE_PORT)
    }

    fn handle(&mut self, now: SystemTime, bytes: &[u8]) -> Option<Vec<u8>> {
        let base = Instant::now();
        let instant = base + now.duration_since(t0()).unwrap_or_default();
        let ack = self.rx.handle_datagram(instant, bytes);
        while let Some(e) = self.rx.poll_event() {
            self.events.push(e);
        }
        ack
    }

    fn discards(&self) -> BTreeMap<DiscardReason, usize> {
        let mut out = BTreeMap::new();
        for e in &self.events {
            if let Event::Discarded { reason } = e {
                *out.entry(*reason).or_default() += 1;
            }
        }
        out
    }

    fn installed(&self) -> Vec<u16> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::MskInstalled { msk_id, .. } => Some(msk_id.key_number),
                _ => None,
            })
            .collect()
    }

    fn mtks(&self) -> Vec<(u16, u16)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::MtkReady { msk_id, mtk_id, .. } => Some((msk_id.key_number, mtk_id.0)),
                _ => None,
            })
            .collect()
    }
}

/// Delivers one action: datagrams to the UEs they are addressed to (acknowledgements straight
/// back), MTK objects to the log.
fn deliver(d: &mut Distributor, now: SystemTime, action: Action, ues: &mut [Ue], log: &mut Log) {
    match action {
        Action::SendUdp(batch) => {
            for dg in batch {
                for ue in ues.iter_mut() {
                    if dg.to == ue.addr() {
                        if let Some(ack) = ue.handle(now, &dg.bytes) {
                            d.on_datagram(ue.addr(), &ack, now);
                        }
                    } else if ue.listens.contains(&dg.to) {
                        ue.handle(now, &dg.bytes);
                    }
                }
                log.sent.push((now, dg));
            }
        }
        Action::WriteMtkObject { path, bytes } => log.objects.push((path, bytes.to_vec())),
    }
}

fn drain(d: &mut Distributor, now: SystemTime, ues: &mut [Ue], log: &mut Log) {
    while let Some(a) = d.poll_action() {
        deliver(d, now, a, ues, log);
    }
}

/// Runs the distributor in virtual time from `from` through `until`, timer by timer.
fn run(d: &mut Distributor, from: SystemTime, until: SystemTime, ues: &mut [Ue], log: &mut Log) {
    let mut now = from;
    drain(d, now, ues, log);
    for _ in 0..1_000_000 {
        let Some(t) = d.poll_timeout() else { return };
        if t > until {
            return;
        }
        now = now.max(t);
        d.on_timeout(now).expect("on_timeout");
        drain(d, now, ues, log);
    }
    panic!("the distributor does not settle");
}

fn msk_of(bytes: &[u8], muk: &Muk) -> (UnverifiedMsk, MskUpdate) {
    let un = UnverifiedMsk::parse(bytes).expect("an MSK message");
    let msg = un.clone().verify(muk).expect("verifies with the UE's MUK");
    (un, msg.update)
}

fn serial_after(a: u32, b: u32) -> bool {
    let d = a.wrapping_sub(b);
    d != 0 && d < 0x8000_0000
}

/// Counter of any MIKEY message the BM-SC sends.
fn counter_of(bytes: &[u8]) -> u32 {
    match UnverifiedMtk::parse(bytes) {
        Ok(m) => m.counter(),
        Err(_) => UnverifiedMsk::parse(bytes).expect("MSK or MTK").counter(),
    }
}

const DEST_A: &str = "239.1.1.1:2269";
const DEST_B: &str = "239.1.1.2:2269";
const DEST_C: &str = "239.1.1.3:2269";

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
        assert_eq!(m.received().message().hdr.cs_id_map, CsIdMap::Empty);
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
    b.d.on_datagram(ue.addr(), &ack, at(2));
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
    let keys = wrong.keys(un.csb_id(), un.received().message().rand().expect("rand"));
    let forged = AckContext::new(keys, un.csb_id(), un.counter(), FQDN.as_bytes(), un.idr());
    b.d.on_datagram(ue_addr, &build_ack(&forged).expect("ack"), t0());
    // Garbage, and an acknowledgement of a counter never used.
    b.d.on_datagram(ue_addr, &[0x01, 0x02, 0x03], t0());
    let right = PreparedMuk::new(&b.muk(0));
    let keys = right.keys(un.csb_id(), un.received().message().rand().expect("rand"));
    let other = AckContext::new(
        keys,
        un.csb_id(),
        un.counter() + 7,
        FQDN.as_bytes(),
        un.idr(),
    );
    b.d.on_datagram(ue_addr, &build_ack(&other).expect("ack"), t0());
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
    b.d.on_event(dereg(&["a"], &["b", "c"]), at(2))
        .expect("event");
    drain(&mut b.d, at(2), &mut ues, &mut log);
    assert_eq!(b.metrics.invalidations_sent.get(), 0);
    // "b" was the only user of key group 2.
    b.d.on_event(dereg(&["b"], &["c"]), at(3)).expect("event");
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
    b.d.on_event(ev, at(200)).expect("event");
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
    match &m.received().message().hdr.cs_id_map {
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

// --- measurement --------------------------------------------------------------------------

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

/// `cargo test --release --test bmsc_distribution -- --ignored --nocapture`: MSK message
/// building for 100,000 UEs (all cores), and a full rotation fan-out to them (store pages,
/// MUK lookups, counters, RANDs, building), with the distributor's memory per UE.
#[test]
#[ignore = "measurement; run in release mode"]
fn measure_msk_messages_for_100k_ues() {
    let n: u32 = std::env::var("MBMS_FANOUT_UES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = TempDir::new("measure");
    let services = download("a", 1, "60s", "10s", DEST_A, dir.path());
    let cfg = config(dir.path(), n, &[], &services);
    let mut b = start(dir.path(), cfg, 1, t0(), Tuning::default());
    let threads = std::thread::available_parallelism().map_or(1, usize::from);

    // 1. Building alone: prepared MUKs, fresh RAND and counter per message.
    let muks: Vec<PreparedMuk> = (0..n).map(|i| PreparedMuk::new(&b.muk(i))).collect();
    let msk = b
        .store
        .msk(KD, MskId::new(1, 1))
        .expect("read")
        .expect("msk")
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
    drop(muks);

    // 2. A rotation fan-out through the distributor.
    let regs: Vec<Registration> = (0..n)
        .map(|i| Registration {
            btid: btid(i).parse().expect("btid"),
            service_id: "a".to_owned(),
            ue_addr: ue_ip(i),
            registered_at: t0(),
        })
        .collect();
    b.store.register_many(&regs).expect("register");
    drop(regs);
    let rss_before = rss_kib();
    let mut now = t0();
    let mut sent = 0usize;
    let mut fanout_started = None;
    let mut fanout_wall = Duration::ZERO;
    while now < at(46) {
        let t = b.d.poll_timeout().expect("a deadline");
        now = now.max(t);
        let wall = Instant::now();
        b.d.on_timeout(now).expect("on_timeout");
        while let Some(a) = b.d.poll_action() {
            if let Action::SendUdp(batch) = a {
                let pushes = batch
                    .iter()
                    .filter(|d| {
                        d.to.port() == UE_PORT
                            && d.to.ip() != DEST_A.parse::<SocketAddr>().expect("addr").ip()
                    })
                    .count();
                if pushes > 0 {
                    fanout_started.get_or_insert(now);
                    sent += pushes;
                    fanout_wall += wall.elapsed();
                }
            }
        }
    }
    let rss_after = rss_kib();
    assert_eq!(sent, n as usize);
    println!(
        "{n} MSK messages built in {build:?} on {threads} threads ({:.2} µs each, {:.0} octets avg)",
        build.as_secs_f64() * 1e6 / f64::from(n),
        total as f64 / f64::from(n)
    );
    println!(
        "fan-out of {n} pushes (store pages, MUK lookups, building): {fanout_wall:?}; \
         pending pushes {}, cached MUKs {}; RSS +{} KiB ({:.0} B/UE)",
        b.d.pending_pushes(),
        b.d.cached_muks(),
        rss_after.saturating_sub(rss_before),
        (rss_after.saturating_sub(rss_before) * 1024) as f64 / f64::from(n)
    );
}
