//! The set-up of the distribution tests: configuration, a temporary store, the distributor in
//! virtual time, and UEs with a `Receiver` each.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use mbms_keys::bmsc::config::Config;
use mbms_keys::bmsc::distribution::{Action, Datagram, Distributor, Now, Rng, Tuning};
use mbms_keys::bmsc::events::KeyRequestEvent;
use mbms_keys::bmsc::metrics::Metrics;
use mbms_keys::bmsc::store::{Registration, SqliteStore, Store};
use mbms_keys::crypto::{Fixed, Muk, StateKey};
use mbms_keys::gba::KeySource;
use mbms_keys::mbms::{KeyDomainId, MskUpdate, MukId, UnverifiedMsk, UnverifiedMtk};
use mbms_keys::ue::{DiscardReason, Event, Receiver, ReceiverConfig};

/// A fresh directory under the system temp dir, removed on drop.
pub use crate::common::TempDir;

pub const FQDN: &str = "bmsc.example.org";
pub const UE_PORT: u16 = 2269;
pub const KD: KeyDomainId = KeyDomainId([0x00, 0xf1, 0x10]);
/// 2023-11-14T22:13:20Z.
pub const T0_SECS: u64 = 1_700_000_000;

pub fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(T0_SECS)
}

pub fn at(secs: u64) -> SystemTime {
    t0() + Duration::from_secs(secs)
}

/// The monotonic instant that stands for `t0()` in these tests.
fn mono_t0() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// Virtual time with both clocks in step: `t` on the wall clock, `t - t0()` after `mono_t0()`
/// on the monotonic one.
pub fn vt(t: SystemTime) -> Now {
    let mono = match t.duration_since(t0()) {
        Ok(d) => mono_t0() + d,
        Err(e) => mono_t0()
            .checked_sub(e.duration())
            .expect("virtual time within the monotonic clock's range"),
    };
    Now::new(mono, t)
}

/// The wall time of the monotonic instant `i` while both clocks are in step ([`vt`]).
pub fn wall_of(i: Instant) -> SystemTime {
    if i >= mono_t0() {
        t0() + (i - mono_t0())
    } else {
        t0() - (mono_t0() - i)
    }
}

pub fn btid(i: u32) -> String {
    format!("ue{i:06}@bsf.example.org")
}

pub fn ue_ip(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | i))
}

/// A deterministic generator (xorshift): reproducible tests.
pub fn test_rng(seed: u64) -> Rng {
    Box::new(mbms_keys::crypto::Seeded::new(seed))
}

/// One `[[services]]` table.
pub fn service(
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

pub fn download(
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
pub fn config(dir: &Path, ues: u32, expires: &[(u32, &str)], services: &str) -> Config {
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

pub fn open_store(dir: &Path) -> Arc<SqliteStore> {
    Arc::new(SqliteStore::open(&dir.join("db"), StateKey::from_bytes([0x42; 32])).expect("store"))
}

pub struct Bmsc {
    pub d: Distributor,
    pub store: Arc<dyn Store>,
    pub keys: Arc<dyn KeySource>,
    pub metrics: Arc<Metrics>,
}

pub fn start(dir: &Path, config: Config, seed: u64, now: SystemTime, tuning: Tuning) -> Bmsc {
    start_on(open_store(dir), &config, seed, now, tuning)
}

/// [`start`] on a store of the caller's (another backend, or a store shared by two nodes).
pub fn start_on(
    store: Arc<dyn Store>,
    config: &Config,
    seed: u64,
    now: SystemTime,
    tuning: Tuning,
) -> Bmsc {
    let keys: Arc<dyn KeySource> = Arc::new(config.key_source().expect("key source"));
    let metrics = Arc::new(Metrics::default());
    let d = Distributor::with_tuning(
        config,
        store.clone(),
        keys.clone(),
        metrics.clone(),
        test_rng(seed),
        vt(now),
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

pub fn tuning() -> Tuning {
    Tuning {
        build_threads: 2,
        ..Tuning::default()
    }
}

impl Bmsc {
    pub fn muk(&self, i: u32) -> Muk {
        self.keys
            .lookup(&btid(i), t0())
            .expect("subscriber known")
            .keys
            .muk()
    }

    pub fn register(&mut self, i: u32, services: &[&str], now: SystemTime) {
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
                vt(now),
            )
            .expect("event");
    }
}

/// Every datagram the distributor emitted, with the time.
#[derive(Default)]
pub struct Log {
    pub sent: Vec<(SystemTime, Datagram)>,
    pub objects: Vec<(PathBuf, Vec<u8>)>,
}

impl Log {
    pub fn to(&self, addr: SocketAddr) -> Vec<(SystemTime, Vec<u8>)> {
        self.sent
            .iter()
            .filter(|(_, d)| d.to == addr)
            .map(|(t, d)| (*t, d.bytes.to_vec()))
            .collect()
    }
}

/// A UE: its receiver and everything it reported.
pub struct Ue {
    pub i: u32,
    pub rx: Receiver,
    pub events: Vec<Event>,
    /// MTK destinations it listens to.
    pub listens: Vec<SocketAddr>,
}

impl Ue {
    pub fn new(b: &Bmsc, i: u32, listens: &[&str]) -> Self {
        let mut rx = Receiver::new(ReceiverConfig::default(), Box::new(Fixed(0)));
        rx.set_muk(MukId::new(FQDN.as_bytes(), btid(i).as_bytes()), b.muk(i));
        Self {
            i,
            rx,
            events: Vec::new(),
            listens: listens.iter().map(|d| d.parse().expect("addr")).collect(),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(ue_ip(self.i), UE_PORT)
    }

    pub fn handle(&mut self, now: SystemTime, bytes: &[u8]) -> Option<Vec<u8>> {
        let base = Instant::now();
        let instant = base + now.duration_since(t0()).unwrap_or_default();
        let ack = self.rx.handle_datagram(instant, bytes);
        while let Some(e) = self.rx.poll_event() {
            self.events.push(e);
        }
        ack
    }

    pub fn discards(&self) -> BTreeMap<DiscardReason, usize> {
        let mut out = BTreeMap::new();
        for e in &self.events {
            if let Event::Discarded { reason } = e {
                *out.entry(*reason).or_default() += 1;
            }
        }
        out
    }

    pub fn installed(&self) -> Vec<u16> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::MskInstalled { msk_id, .. } => Some(msk_id.key_number),
                _ => None,
            })
            .collect()
    }

    pub fn mtks(&self) -> Vec<(u16, u16)> {
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
pub fn deliver(
    d: &mut Distributor,
    now: SystemTime,
    action: Action,
    ues: &mut [Ue],
    log: &mut Log,
) {
    deliver_with(d, now, vt(now), action, ues, log);
}

/// [`deliver`] with the distributor's clocks as given (`clocks`), while the UEs and the log
/// keep virtual time `now`.
pub fn deliver_with(
    d: &mut Distributor,
    now: SystemTime,
    clocks: Now,
    action: Action,
    ues: &mut [Ue],
    log: &mut Log,
) {
    match action {
        Action::SendUdp(batch) => {
            for dg in batch {
                for ue in ues.iter_mut() {
                    if dg.to == ue.addr() {
                        if let Some(ack) = ue.handle(now, &dg.bytes) {
                            d.on_datagram(ue.addr(), &ack, clocks);
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

pub fn drain(d: &mut Distributor, now: SystemTime, ues: &mut [Ue], log: &mut Log) {
    while let Some(a) = d.poll_action() {
        deliver(d, now, a, ues, log);
    }
}

/// Runs the distributor in virtual time from `from` through `until`, timer by timer.
pub fn run(
    d: &mut Distributor,
    from: SystemTime,
    until: SystemTime,
    ues: &mut [Ue],
    log: &mut Log,
) {
    let mut now = from;
    drain(d, now, ues, log);
    for _ in 0..1_000_000 {
        let Some(t) = d.poll_timeout().map(wall_of) else {
            return;
        };
        if t > until {
            return;
        }
        now = now.max(t);
        d.on_timeout(vt(now)).expect("on_timeout");
        drain(d, now, ues, log);
    }
    panic!("the distributor does not settle");
}

pub fn msk_of<'a>(bytes: &'a [u8], muk: &Muk) -> (UnverifiedMsk<'a>, MskUpdate) {
    let un = UnverifiedMsk::parse(bytes).expect("an MSK message");
    let msg = un.clone().verify(muk).expect("verifies with the UE's MUK");
    (un, msg.update)
}

pub fn serial_after(a: u32, b: u32) -> bool {
    let d = a.wrapping_sub(b);
    d != 0 && d < 0x8000_0000
}

/// Counter of any MIKEY message the BM-SC sends.
pub fn counter_of(bytes: &[u8]) -> u32 {
    match UnverifiedMtk::parse(bytes) {
        Ok(m) => m.counter(),
        Err(_) => UnverifiedMsk::parse(bytes).expect("MSK or MTK").counter(),
    }
}

pub const DEST_A: &str = "239.1.1.1:2269";
pub const DEST_B: &str = "239.1.1.2:2269";
pub const DEST_C: &str = "239.1.1.3:2269";
