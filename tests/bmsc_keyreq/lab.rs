//! A lab for the Key Request tests: a configuration with an open, a restricted and a second
//! open service sharing the first one's MSK; a key source with a few subscribers; a SQLite
//! store in a temp dir wrapped so tests can make it fail.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use mbms_keys::bmsc::config::Config;
use mbms_keys::bmsc::store::{
    Committed, Member, MskRecord, MskState, Registration, SqliteStore, Store, StoreError, committed,
};
use mbms_keys::crypto::{KsNaf, Msk, StateKey};
use mbms_keys::gba::{
    Btid, GbaKeys, KeySource, KeySourceError, SubscriberKeys, digest_password, mrk_gba_me,
};
use mbms_keys::mbms::digest::Credentials;
use mbms_keys::mikey::{KeyDomainId, MskId};

pub const FQDN: &str = "bmsc.example.org";
pub const REALM: &str = "3GPP-bootstrapping@bmsc.example.org";
pub const OPEN: &str = "urn:example:mbms:open";
pub const VIP: &str = "urn:example:mbms:vip";
pub const OPEN2: &str = "urn:example:mbms:open2";
pub const KD: KeyDomainId = KeyDomainId([0x00, 0xf1, 0x10]);

/// A subscriber allowed everywhere but VIP.
pub const ALICE: &str = "QUxJQ0VhbGljZWFsaWNlYQ==@bsf.example.org";
pub const ALICE_IMPI: &str = "alice@ims.example.org";
/// A subscriber whose IMPI matches the VIP pattern.
pub const VERA: &str = "VkVSQXZlcmF2ZXJhdmVyYQ==@bsf.example.org";
pub const VERA_IMPI: &str = "vip-vera@ims.example.org";
/// Vera's Ks and RAND in the configuration (Ks_NAF derived for [`FQDN`]).
pub const VERA_KS: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
pub const VERA_RAND: &str = "202122232425262728292a2b2c2d2e2f";
/// A subscriber whose keys expired.
pub const OLD: &str = "T0xET2xkb2xkb2xkb2xkbw==@bsf.example.org";

pub fn ks_naf(seed: u8) -> KsNaf {
    KsNaf::from_bytes(core::array::from_fn(|i| seed.wrapping_add(i as u8)))
}

/// The Digest password of a subscriber (docs/profile.md §4: base64(MRK), GBA_ME MRK).
pub fn password(seed: u8) -> zeroize::Zeroizing<String> {
    digest_password(&mrk_gba_me(&ks_naf(seed)))
}

pub fn credentials(btid: &str, seed: u8) -> Credentials {
    Credentials::new(btid, password(seed))
}

pub fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// The configuration text.
pub fn config_text(qop: &str, algorithm: &str, nonce_lifetime: &str, max_nonces: usize) -> String {
    let alice_ks_naf = hex::encode(ks_naf(0x10).as_bytes());
    let old_ks_naf = hex::encode(ks_naf(0x30).as_bytes());
    format!(
        r#"
fqdn = "{FQDN}"
data_dir = "/nonexistent/mbms-keyreq-tests"

[digest]
qop = "{qop}"
algorithm = "{algorithm}"
nonce_lifetime = "{nonce_lifetime}"
max_nonces = {max_nonces}

[http]
request_timeout = "1s"
idle_timeout = "5s"
max_connections = 16
max_body = 4096

[[gba.subscribers]]
btid = "{ALICE}"
impi = "{ALICE_IMPI}"
ks_naf = "{alice_ks_naf}"
expires = "2099-01-01T00:00:00Z"

[[gba.subscribers]]
btid = "{VERA}"
impi = "{VERA_IMPI}"
ks = "{VERA_KS}"
rand = "{VERA_RAND}"
expires = "2099-01-01T00:00:00Z"

[[gba.subscribers]]
btid = "{OLD}"
impi = "old@ims.example.org"
ks_naf = "{old_ks_naf}"
expires = "2001-01-01T00:00:00Z"

[[services]]
id = "{OPEN}"
key_domain = "00f110"
key_group = 1
mtk_destination = "239.255.0.1"
transport = "download"
authorized = "*"

[[services]]
id = "{VIP}"
key_domain = "00f110"
key_group = 2
mtk_destination = "239.255.0.2"
transport = "download"
authorized = ["vip-*@ims.example.org"]

[[services]]
id = "{OPEN2}"
key_domain = "00f110"
key_group = 1
mtk_destination = "239.255.0.3"
transport = "download"
authorized = "*"
"#
    )
}

pub fn config(qop: &str, algorithm: &str, nonce_lifetime: &str, max_nonces: usize) -> Config {
    Config::parse_with_env(
        &config_text(qop, algorithm, nonce_lifetime, max_nonces),
        |_| None,
    )
    .expect("test configuration parses")
}

/// A key source over fixed subscribers that can be switched to "unavailable".
pub struct LabSource {
    subs: HashMap<String, SubscriberKeys>,
    pub unavailable: AtomicBool,
    /// Answer every lookup as the BSF's 5402 (not authorized).
    pub not_authorized: AtomicBool,
    /// Lookups made.
    pub lookups: AtomicUsize,
}

impl LabSource {
    pub fn new() -> Self {
        let sub = |btid: &str, impi: &str, seed: u8, expires: SystemTime| {
            (
                btid.to_owned(),
                SubscriberKeys {
                    btid: btid.parse().expect("btid"),
                    impi: impi.to_owned(),
                    keys: GbaKeys::Me {
                        ks_naf: ks_naf(seed),
                    },
                    expires,
                },
            )
        };
        let far = SystemTime::now().max(t0()) + Duration::from_secs(365 * 86_400);
        Self {
            subs: [
                sub(ALICE, ALICE_IMPI, 0x10, far),
                sub(VERA, VERA_IMPI, 0x20, far),
                sub(
                    OLD,
                    "old@ims.example.org",
                    0x30,
                    t0() - Duration::from_secs(1),
                ),
            ]
            .into_iter()
            .collect(),
            unavailable: AtomicBool::new(false),
            not_authorized: AtomicBool::new(false),
            lookups: AtomicUsize::new(0),
        }
    }
}

impl KeySource for LabSource {
    fn lookup(&self, btid: &str, now: SystemTime) -> Result<SubscriberKeys, KeySourceError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        if self.not_authorized.load(Ordering::SeqCst) {
            return Err(KeySourceError::NotAuthorized);
        }
        if self.unavailable.load(Ordering::SeqCst) {
            return Err(KeySourceError::Unavailable("BSF unreachable".into()));
        }
        let s = self.subs.get(btid).ok_or(KeySourceError::UnknownBtid)?;
        if s.expires <= now {
            return Err(KeySourceError::Expired);
        }
        Ok(s.clone())
    }
}

/// A fresh directory under the system temp dir, removed on drop.
pub use crate::common::TempDir;

/// A SQLite store whose writes or reads can be made to fail.
pub struct FlakyStore {
    pub inner: SqliteStore,
    pub fail_writes: AtomicBool,
    pub fail_reads: AtomicBool,
}

impl FlakyStore {
    pub fn open(dir: &TempDir) -> Self {
        Self {
            inner: SqliteStore::open(dir.path(), StateKey::from_bytes([0x42; 32]))
                .expect("store opens"),
            fail_writes: AtomicBool::new(false),
            fail_reads: AtomicBool::new(false),
        }
    }

    fn write(&self) -> Result<(), StoreError> {
        if self.fail_writes.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("disk full (test)".into()));
        }
        Ok(())
    }

    fn read(&self) -> Result<(), StoreError> {
        if self.fail_reads.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("read failed (test)".into()));
        }
        Ok(())
    }
}

impl Store for FlakyStore {
    fn register(&self, r: &Registration) -> Result<(), StoreError> {
        self.write()?;
        self.inner.register(r)
    }
    fn register_queued(&self, r: Registration) -> Committed {
        match self.write() {
            Ok(()) => self.inner.register_queued(r),
            Err(e) => committed(Err(e)),
        }
    }
    fn queues_registrations(&self) -> bool {
        self.inner.queues_registrations()
    }
    fn register_many(&self, r: &[Registration]) -> Result<(), StoreError> {
        self.write()?;
        self.inner.register_many(r)
    }
    fn deregister(&self, btid: &Btid, service_id: &str) -> Result<bool, StoreError> {
        self.write()?;
        self.inner.deregister(btid, service_id)
    }
    fn registrations_of_btid(&self, btid: &Btid) -> Result<Vec<Registration>, StoreError> {
        self.read()?;
        self.inner.registrations_of_btid(btid)
    }
    fn registrations_of_service(
        &self,
        service_id: &str,
        after: Option<&Btid>,
        limit: usize,
    ) -> Result<Vec<Member>, StoreError> {
        self.read()?;
        self.inner
            .registrations_of_service(service_id, after, limit)
    }
    fn registrations_since(
        &self,
        since: SystemTime,
        limit: usize,
    ) -> Result<Vec<Registration>, StoreError> {
        self.read()?;
        self.inner.registrations_since(since, limit)
    }
    fn count_registrations_by_service(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        self.read()?;
        self.inner.count_registrations_by_service()
    }
    fn put_msk(&self, record: &MskRecord) -> Result<(), StoreError> {
        self.write()?;
        self.inner.put_msk(record)
    }
    fn msk(&self, kd: KeyDomainId, id: MskId) -> Result<Option<MskRecord>, StoreError> {
        self.read()?;
        self.inner.msk(kd, id)
    }
    fn msks_of_group(&self, kd: KeyDomainId, group: u16) -> Result<Vec<MskRecord>, StoreError> {
        self.read()?;
        self.inner.msks_of_group(kd, group)
    }
    fn msks(&self) -> Result<Vec<MskRecord>, StoreError> {
        self.read()?;
        self.inner.msks()
    }
    fn delete_msk(&self, kd: KeyDomainId, id: MskId) -> Result<bool, StoreError> {
        self.write()?;
        self.inner.delete_msk(kd, id)
    }
    fn counter_ceiling(&self) -> Result<u32, StoreError> {
        self.inner.counter_ceiling()
    }
    fn raise_counter_ceiling(&self, new: u32) -> Result<(), StoreError> {
        self.inner.raise_counter_ceiling(new)
    }
    fn cached_keys(
        &self,
        btid: &str,
        now: SystemTime,
    ) -> Result<Option<SubscriberKeys>, StoreError> {
        self.inner.cached_keys(btid, now)
    }
    fn cache_keys(&self, keys: &SubscriberKeys) -> Result<(), StoreError> {
        self.inner.cache_keys(keys)
    }
    fn purge_expired_keys(&self, now: SystemTime) -> Result<u64, StoreError> {
        self.inner.purge_expired_keys(now)
    }
}

/// An MSK record of Key Group `group`, Key Number `number`, in `state`.
pub fn msk_record(group: u16, number: u16, state: MskState) -> MskRecord {
    MskRecord {
        key_domain: KD,
        msk_id: MskId::new(group, number),
        msk: Msk::from_bytes([number as u8; 16]),
        seql: 0,
        sequ: 0x0200,
        created_at: t0(),
        activates_at: t0(),
        expires_at: t0() + Duration::from_secs(3600),
        state,
        mtk_next_id: 1,
        current_mtk: None,
    }
}

/// Whether the registration of (btid, service) is in the store.
pub fn is_registered(store: &dyn Store, btid: &str, service: &str) -> bool {
    store
        .registrations_of_btid(&btid.parse().expect("btid"))
        .expect("read")
        .iter()
        .any(|r| r.service_id == service)
}

/// A handle for tests that need the store as a trait object and as itself.
pub fn shared(store: FlakyStore) -> (Arc<FlakyStore>, Arc<dyn Store>) {
    let s = Arc::new(store);
    let d: Arc<dyn Store> = s.clone();
    (s, d)
}

/// Vera's Ks_NAF as the configuration derives it (TS 33.220 B.3, NAF_Id of [`FQDN`]).
pub fn vera_ks_naf() -> KsNaf {
    let ks = mbms_keys::crypto::Ks::from_hex(VERA_KS).expect("hex");
    let mut rand = [0u8; 16];
    hex::decode_to_slice(VERA_RAND, &mut rand).expect("hex");
    mbms_keys::gba::ks_naf(&ks, &rand, VERA_IMPI, &mbms_keys::gba::NafId::mbms(FQDN))
        .expect("derive")
}
