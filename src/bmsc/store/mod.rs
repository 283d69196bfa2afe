//! The BM-SC's persistent state behind one trait, [`Store`], so that the protocol code does not
//! know the database: [`sqlite::SqliteStore`] (the default) or, with the `postgres` feature,
//! `postgres::PostgresStore` (`store = "postgres://..."`).
//!
//! The trait is synchronous; the tokio drivers call it from `spawn_blocking`, except for
//! [`Store::register_queued`], whose completion a registration awaits on the runtime. Everything the
//! BM-SC acknowledges (a registration, a new MSK, a raised counter ceiling) is durable when the
//! call returns. Key material (MSKs, MTKs, cached GBA keys) is sealed with AES-256-GCM under a
//! key-encryption key kept in a separate file ([`kek`]), with the row identity as associated
//! data (see [`codec`]), so the database alone reveals no key and a sealed value copied to
//! another row does not open.
//!
//! One BM-SC per SQLite store: a read-write open holds the store's [`lock`] for the store's
//! life. Several BM-SC nodes may share a PostgreSQL store ([`Store::is_shared`]): each MSK group
//! then has one owner at a time, and MSKs, MTKs and counters are claimed in the database so
//! that no two nodes ever use different keys under one ID or the same counter twice.

pub mod batch;
pub mod codec;
pub mod kek;
pub mod lock;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod sqlite;
pub mod work;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::SystemTime;

use thiserror::Error;

pub use batch::{CommitStats, GroupCommitLimits};
pub use kek::load_or_create_kek;
pub use lock::StoreLock;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
pub use work::{AckedPush, FOREIGN_ACK_MAX_LEN, FanoutItem, FanoutProgress, ForeignAck, Lease};

use crate::crypto::{Msk, Mtk, Salt};
use crate::gba::{Btid, SubscriberKeys};
use crate::mikey::{KeyDomainId, MskId, MtkId};

/// A store operation failed. Messages never carry key material: at most identifiers.
#[non_exhaustive]
#[derive(Debug, Error)]
pub enum StoreError {
    /// A file of the store could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The key-encryption key file is unusable.
    #[error("key-encryption key {path}: {problem}")]
    Kek {
        /// The KEK file.
        path: PathBuf,
        /// What is wrong (never the key).
        problem: String,
    },
    /// Another BM-SC holds the store's lock: one BM-SC per store.
    #[error(
        "{path}: the store is in use by another BM-SC{}; stop it first",
        lock::holder_note(*.pid)
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// The holder's process ID, when it has written it.
        pid: Option<u32>,
    },
    /// The store exists but its key-encryption key file does not. A new key would not open the
    /// store, so none is created: a KEK is only ever created with a new, empty database.
    #[error(
        "key-encryption key {path} does not exist, but the store {store} does: point kek_file \
         or MBMS_KEK_FILE at the key the store was created with"
    )]
    KekMissing {
        /// The KEK file looked for.
        path: PathBuf,
        /// The existing database.
        store: PathBuf,
    },
    /// The key-encryption key does not open the store's check value (or, in a store from before
    /// the check value, its sealed rows): it is not the key the store was created with.
    #[error(
        "the key-encryption key{} does not open the store {store}: it is not the key the \
         store was created with",
        kek_file.as_ref().map_or_else(String::new, |p| format!(" {}", p.display()))
    )]
    WrongKek {
        /// The database.
        store: PathBuf,
        /// The KEK file, when the key came from one.
        kek_file: Option<PathBuf>,
    },
    /// Another BM-SC holds the store (not returned by the PostgreSQL store since several nodes
    /// may share it; kept for callers matching on it).
    #[error("the store {store} is in use by another BM-SC; stop it first")]
    InUse {
        /// The database URL (never with a password).
        store: String,
    },
    /// The database password file is unusable.
    #[error("database password file {path}: {problem}")]
    PasswordFile {
        /// The file.
        path: PathBuf,
        /// What is wrong (never the password).
        problem: String,
    },
    /// The key-encryption key file is readable or writable by group or others.
    #[error("key-encryption key {path} has mode {mode:04o}, open to group or others: chmod 600 it")]
    KekPermissions {
        /// The KEK file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// There is no store in the data directory (read-only opens create none).
    #[error("no store at {path}: `bmsc serve` creates it on its first start")]
    NoStore {
        /// The database file looked for.
        path: PathBuf,
    },
    /// The database refused or failed an operation.
    #[error("database: {0}")]
    Backend(String),
    /// The database server cannot be reached now (stopped, restarting, a network cut): nothing
    /// was done; the same operation may succeed later (a Key Request gets 503).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A stored row does not decode, or its sealed value does not open under the KEK with this
    /// row's identity (wrong KEK, altered, or moved from another row).
    #[error("stored {what} {id} is corrupt, was moved, or the KEK is wrong")]
    Corrupt {
        /// The kind of record.
        what: &'static str,
        /// The record's identity (never key material).
        id: String,
    },
    /// The database was written by a newer program.
    #[error("database schema version {found} is newer than the supported {supported}")]
    SchemaTooNew {
        /// Version in the database.
        found: i64,
        /// Latest version this program knows.
        supported: i64,
    },
    /// [`Store::raise_counter_ceiling`] was asked to lower the ceiling (RFC 1982 order).
    #[error("counter ceiling {requested:#010x} is not above the stored {current:#010x}")]
    CeilingNotRaised {
        /// The persisted ceiling.
        current: u32,
        /// The refused value.
        requested: u32,
    },
    /// A time outside what the store represents (about years 1678 to 2262).
    #[error("time out of the storable range")]
    TimeOutOfRange,
}

/// A UE's registration to a user service (TS 33.246 6.3.2.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The UE's B-TID.
    pub btid: Btid,
    /// The user service.
    pub service_id: String,
    /// Where MSK messages to this UE go (its port is the configured `ue_port`).
    pub ue_addr: IpAddr,
    /// When the registration was (last) accepted.
    pub registered_at: SystemTime,
}

/// One UE registered to a service, as the MSK push fan-out needs it: no key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The UE's B-TID.
    pub btid: Btid,
    /// Its address.
    pub ue_addr: IpAddr,
}

/// Where an MSK is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MskState {
    /// Created ahead of time and pushed, not yet used for MTKs.
    Next,
    /// Protecting the MTKs now.
    Current,
    /// No longer used; kept until deleted.
    Retired,
}

impl MskState {
    /// The stored name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Current => "current",
            Self::Retired => "retired",
        }
    }

    /// The state of a stored name.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "next" => Some(Self::Next),
            "current" => Some(Self::Current),
            "retired" => Some(Self::Retired),
            _ => None,
        }
    }
}

/// The MTK currently delivered under an MSK (docs/profile.md §2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentMtk {
    /// Its MTK ID.
    pub id: MtkId,
    /// The key.
    pub mtk: Mtk,
    /// The SRTP master salt (streaming services).
    pub salt: Option<Salt>,
}

/// One MSK of a (Key Domain ID, Key Group) and its MTK state (TS 33.246 6.3.2.1, 6.3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MskRecord {
    /// Key Domain ID.
    pub key_domain: KeyDomainId,
    /// MSK ID (Key Group ‖ Key Number).
    pub msk_id: MskId,
    /// The key (sealed at rest).
    pub msk: Msk,
    /// Lower end of the MTK ID interval.
    pub seql: u16,
    /// Upper end of the MTK ID interval.
    pub sequ: u16,
    /// When the MSK was made.
    pub created_at: SystemTime,
    /// When it starts protecting MTKs.
    pub activates_at: SystemTime,
    /// When it stops.
    pub expires_at: SystemTime,
    /// Where it is in its life.
    pub state: MskState,
    /// The MTK ID the next MTK under this MSK gets.
    pub mtk_next_id: u16,
    /// The MTK being delivered now (sealed at rest).
    pub current_mtk: Option<CurrentMtk>,
}

/// The completion of a queued registration ([`Store::register_queued`]): yields its result
/// once it is durable (or failed). A dropped sender (a writer gone) is a failure.
pub type Committed = tokio::sync::oneshot::Receiver<Result<(), StoreError>>;

/// A [`Committed`] already complete with `result`.
#[must_use]
pub fn committed(result: Result<(), StoreError>) -> Committed {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let _ = tx.send(result);
    rx
}

/// The BM-SC's persistent state. Synchronous, `Send + Sync`; each method is one transaction,
/// except that a backend may write concurrent registrations in one shared transaction
/// ([`batch`]): each still completes only once it is durable.
pub trait Store: Send + Sync {
    /// Records (or refreshes: upsert) a registration; durable on return.
    ///
    /// # Errors
    /// [`StoreError`] from the backend.
    fn register(&self, registration: &Registration) -> Result<(), StoreError>;

    /// Queues a registration for its durable write and returns its completion, which an async
    /// caller awaits without holding a thread (the registration is written whether or not the
    /// completion is awaited). When [`Store::queues_registrations`] is false (the default)
    /// this writes synchronously, like [`Store::register`], before returning; call it only
    /// where blocking is allowed then.
    fn register_queued(&self, registration: Registration) -> Committed {
        committed(self.register(&registration))
    }

    /// Whether [`Store::register_queued`] returns without waiting for the database (it hands
    /// the write to a writer: SQLite's group commit, or an async database client).
    fn queues_registrations(&self) -> bool {
        false
    }

    /// Whether a read may wait on something slower than local memory and disk (a database
    /// server across the network): the driver then makes it from the blocking pool only,
    /// never on the runtime (default: false, an embedded database answering in microseconds).
    fn reads_may_block(&self) -> bool {
        false
    }

    /// Upserts many registrations in one transaction (bulk load, benchmark preload).
    ///
    /// # Errors
    /// [`StoreError`] from the backend; nothing is stored then.
    fn register_many(&self, registrations: &[Registration]) -> Result<(), StoreError>;

    /// Removes a registration; whether there was one. Durable on return.
    ///
    /// # Errors
    /// [`StoreError`] from the backend.
    fn deregister(&self, btid: &Btid, service_id: &str) -> Result<bool, StoreError>;

    /// Every registration of a UE, by service id.
    ///
    /// # Errors
    /// [`StoreError`] from the backend or a row that does not decode.
    fn registrations_of_btid(&self, btid: &Btid) -> Result<Vec<Registration>, StoreError>;

    /// One page of a service's members in B-TID order: at most `limit` with a B-TID after
    /// `after` (from the start when `None`). Keyset paging: pass the last B-TID of a page to get
    /// the next; an empty page is the end. See [`members_of_service`] for an iterator.
    ///
    /// # Errors
    /// [`StoreError`] from the backend or a row that does not decode.
    fn registrations_of_service(
        &self,
        service_id: &str,
        after: Option<&Btid>,
        limit: usize,
    ) -> Result<Vec<Member>, StoreError>;

    /// One page of a range of a service's members in B-TID order: as
    /// [`Store::registrations_of_service`], but none after `until` (inclusive bound; no bound
    /// when `None`), so that a page never reads past the range (a work item of a shared
    /// fan-out). By default a page of the service trimmed to the range (an unshared store
    /// has no work items); the PostgreSQL store bounds the query itself.
    ///
    /// # Errors
    /// [`StoreError`] from the backend or a row that does not decode.
    fn registrations_in_range(
        &self,
        service_id: &str,
        after: Option<&Btid>,
        until: Option<&Btid>,
        limit: usize,
    ) -> Result<Vec<Member>, StoreError> {
        let mut page = self.registrations_of_service(service_id, after, limit)?;
        if let Some(until) = until {
            page.retain(|m| m.btid.as_str() <= until.as_str());
        }
        Ok(page)
    }

    /// The registrations made at or after `since`, newest first, at most `limit`: what a
    /// restart pushes to again (the push of a registration acknowledged just before a stop may
    /// not have gone out).
    ///
    /// # Errors
    /// [`StoreError`] from the backend or a row that does not decode.
    fn registrations_since(
        &self,
        since: SystemTime,
        limit: usize,
    ) -> Result<Vec<Registration>, StoreError>;

    /// Number of registrations per service id (services without any are absent).
    ///
    /// # Errors
    /// [`StoreError`] from the backend.
    fn count_registrations_by_service(&self) -> Result<BTreeMap<String, u64>, StoreError>;

    /// Inserts or replaces the MSK of (key_domain, msk_id); durable on return.
    ///
    /// # Errors
    /// [`StoreError`] from the backend, [`StoreError::TimeOutOfRange`].
    fn put_msk(&self, record: &MskRecord) -> Result<(), StoreError>;

    /// One MSK.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when its sealed value does not open, or a backend error.
    fn msk(&self, key_domain: KeyDomainId, msk_id: MskId) -> Result<Option<MskRecord>, StoreError>;

    /// The MSKs of one (Key Domain ID, Key Group), by MSK ID.
    ///
    /// # Errors
    /// As [`Store::msk`].
    fn msks_of_group(
        &self,
        key_domain: KeyDomainId,
        key_group: u16,
    ) -> Result<Vec<MskRecord>, StoreError>;

    /// The MSK IDs and states of one (Key Domain ID, Key Group), by MSK ID, without opening
    /// the keys: what answering an MSK request needs. The default reads
    /// [`Store::msks_of_group`]; a backend overrides it to leave the sealed keys unread.
    ///
    /// # Errors
    /// A backend error (and, from the default, as [`Store::msk`]).
    fn msk_states_of_group(
        &self,
        key_domain: KeyDomainId,
        key_group: u16,
    ) -> Result<Vec<(MskId, MskState)>, StoreError> {
        Ok(self
            .msks_of_group(key_domain, key_group)?
            .into_iter()
            .map(|m| (m.msk_id, m.state))
            .collect())
    }

    /// Every MSK, by (Key Domain ID, MSK ID): what a restart reloads.
    ///
    /// # Errors
    /// As [`Store::msk`].
    fn msks(&self) -> Result<Vec<MskRecord>, StoreError>;

    /// Deletes an MSK; whether there was one.
    ///
    /// # Errors
    /// [`StoreError`] from the backend.
    fn delete_msk(&self, key_domain: KeyDomainId, msk_id: MskId) -> Result<bool, StoreError>;

    /// The persisted MIKEY counter ceiling: every counter value used so far is below it, in
    /// RFC 1982 order (0 on a new store).
    ///
    /// The protocol layer hands out counters from memory below the ceiling and raises it
    /// before crossing it, so there is no disk write per message, and after a crash it restarts
    /// from the persisted ceiling: no counter is ever used twice. The counter is the 32-bit
    /// MIKEY T payload value and wraps; receivers compare it in RFC 1982 serial arithmetic, so
    /// the ceiling is compared the same way.
    ///
    /// # Errors
    /// [`StoreError`] from the backend.
    fn counter_ceiling(&self) -> Result<u32, StoreError>;

    /// Raises the ceiling to `new`, durable on return. Setting the current value again is a
    /// no-op. A ceiling of 0 is a fresh store's: any value raises it (a fresh store's counters
    /// start at the wall-clock floor, docs/profile.md §5); the distributor never sets 0.
    ///
    /// # Errors
    /// [`StoreError::CeilingNotRaised`] unless `new` is the current value or after it in
    /// RFC 1982 order (less than 2^31 ahead), or the current ceiling is 0.
    fn raise_counter_ceiling(&self, new: u32) -> Result<(), StoreError>;

    /// Cached GBA keys of `btid` still valid at `now` (for a Zn key source).
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when the sealed value does not open, or a backend error.
    fn cached_keys(
        &self,
        btid: &str,
        now: SystemTime,
    ) -> Result<Option<SubscriberKeys>, StoreError>;

    /// Caches (or replaces) the GBA keys of `keys.btid` until `keys.expires`.
    ///
    /// # Errors
    /// [`StoreError`] from the backend, [`StoreError::TimeOutOfRange`].
    fn cache_keys(&self, keys: &SubscriberKeys) -> Result<(), StoreError>;

    /// Deletes cached keys expired at `now`; how many.
    ///
    /// # Errors
    /// [`StoreError`] from the backend.
    fn purge_expired_keys(&self, now: SystemTime) -> Result<u64, StoreError>;

    /// Whether several BM-SC nodes may share this store (a cluster, docs/cluster.md): MSK
    /// groups then have one owner at a time ([`Store::claim_ownership`]) and counters come in
    /// reserved blocks ([`Store::reserve_counters`]). False (the default): one BM-SC per store.
    fn is_shared(&self) -> bool {
        false
    }

    /// Tries to hold the ownership of each MSK group named in `groups` (rotation of its MSKs,
    /// generation of its MTKs) and returns, for each, whether this node holds it now. Keeps what
    /// it holds; checks that what holds it (a database session) is still alive, and when it is
    /// not, gives everything up and starts again. The default (an unshared store): every group
    /// is owned.
    ///
    /// # Errors
    /// [`StoreError`] from the backend: this node then owns nothing.
    fn claim_ownership(&self, groups: &[String]) -> Result<Vec<bool>, StoreError> {
        Ok(vec![true; groups.len()])
    }

    /// Stores `record` as a new MSK unless its (Key Domain ID, MSK ID) has one already, and
    /// returns the stored MSK: `record`, or the one another node made first, which the caller
    /// adopts (never two different MSKs for one MSK ID). Durable on return.
    ///
    /// # Errors
    /// As [`Store::put_msk`] and [`Store::msk`].
    fn create_msk(&self, record: &MskRecord) -> Result<MskRecord, StoreError> {
        if let Some(stored) = self.msk(record.key_domain, record.msk_id)? {
            return Ok(stored);
        }
        self.put_msk(record)?;
        Ok(record.clone())
    }

    /// Claims `mtk` as the one MTK of (Key Domain ID, MSK ID, `mtk.id`) and returns the claimed
    /// MTK: `mtk`, or the one claimed first, which the caller adopts (never two different MTKs
    /// for one MTK ID). Durable on return. The default (an unshared store, one writer) claims
    /// nothing: [`Store::put_msk`] records the MTK with its MSK.
    ///
    /// # Errors
    /// [`StoreError`] from the backend.
    fn claim_mtk(
        &self,
        key_domain: KeyDomainId,
        msk_id: MskId,
        mtk: &CurrentMtk,
    ) -> Result<CurrentMtk, StoreError> {
        let _ = (key_domain, msk_id);
        Ok(mtk.clone())
    }

    /// Reserves `n` consecutive MIKEY counter values (at least one) for this node, none before
    /// `floor` in RFC 1982 order and all after every value reserved before by any node; returns
    /// the first. `None` (the default): the store is not shared, and the caller keeps its
    /// counters below [`Store::counter_ceiling`] alone.
    ///
    /// # Errors
    /// [`StoreError`] from the backend: no value is reserved.
    fn reserve_counters(&self, floor: u32, n: u32) -> Result<Option<u32>, StoreError> {
        let _ = (floor, n);
        Ok(None)
    }

    /// Splits the push of MSK `msk_id` to the registrations of `service_ids` into work items
    /// of about `item_size` registrations each ([`work`]), unless the fan-out of this MSK has
    /// items already (a takeover finds those of the owner before it): the progress of its
    /// items. `None` (the default, an unshared store): the caller pushes to every UE itself.
    ///
    /// # Errors
    /// [`StoreError`] from the backend: no item is written.
    fn create_fanout_items(
        &self,
        key_domain: KeyDomainId,
        msk_id: MskId,
        service_ids: &[String],
        item_size: usize,
    ) -> Result<Option<FanoutProgress>, StoreError> {
        let _ = (key_domain, msk_id, service_ids, item_size);
        Ok(None)
    }

    /// How the items of the fan-out of `msk_id` stand (all zero when it has none).
    ///
    /// # Errors
    /// [`StoreError`] from the backend.
    fn fanout_progress(
        &self,
        key_domain: KeyDomainId,
        msk_id: MskId,
    ) -> Result<FanoutProgress, StoreError> {
        let _ = (key_domain, msk_id);
        Ok(FanoutProgress::default())
    }

    /// Claims one open item of the fan-out of an MSK among `msks` that no node holds (never
    /// claimed, or its lease ran out): skipping rows other nodes are claiming at the same
    /// moment (`FOR UPDATE SKIP LOCKED`). `None`: nothing to claim (always, by default).
    ///
    /// # Errors
    /// [`StoreError`] from the backend: nothing is claimed.
    fn claim_fanout_item(
        &self,
        lease: Lease<'_>,
        msks: &[(KeyDomainId, MskId)],
    ) -> Result<Option<FanoutItem>, StoreError> {
        let _ = (lease, msks);
        Ok(None)
    }

    /// Extends the lease of every open item `lease.node` holds: the items still held
    /// (Key Domain ID, MSK ID, item).
    ///
    /// # Errors
    /// [`StoreError`] from the backend.
    fn renew_fanout_items(
        &self,
        lease: Lease<'_>,
    ) -> Result<Vec<(KeyDomainId, MskId, u32)>, StoreError> {
        let _ = lease;
        Ok(Vec::new())
    }

    /// Marks an item `node` holds as sent (`done` false: every first push of it went out) or
    /// done (`done` true: every push of it acknowledged or given up; the item is closed).
    ///
    /// # Errors
    /// [`StoreError`] from the backend.
    fn mark_fanout_item(
        &self,
        node: &str,
        item: &FanoutItem,
        done: bool,
    ) -> Result<(), StoreError> {
        let _ = (node, item, done);
        Ok(())
    }

    /// Records acknowledged MSK pushes, all in one statement, so that a node about to push
    /// or retransmit to these UEs skips them. Does nothing by default (one node matches its
    /// own acknowledgements).
    ///
    /// # Errors
    /// [`StoreError`] from the backend: none is recorded.
    fn record_acks(&self, acks: &[AckedPush]) -> Result<(), StoreError> {
        let _ = acks;
        Ok(())
    }

    /// Which of `btids` acknowledged a push of `msk_id` (recorded with
    /// [`Store::record_acks`]); none by default.
    ///
    /// # Errors
    /// [`StoreError`] from the backend.
    fn acked(
        &self,
        key_domain: KeyDomainId,
        msk_id: MskId,
        btids: &[&str],
    ) -> Result<Vec<String>, StoreError> {
        let _ = (key_domain, msk_id, btids);
        Ok(Vec::new())
    }

    /// Records acknowledgements this node could not match to a push of its own, unverified,
    /// for the node that sent the push (all in one statement; counters outside the recent
    /// counter blocks of the cluster and oversized ones are left out), and deletes those
    /// received more than `retain` ago. Does nothing by default (one node).
    ///
    /// # Errors
    /// [`StoreError`] from the backend: none is recorded.
    fn record_foreign_acks(
        &self,
        acks: &[ForeignAck],
        retain: std::time::Duration,
    ) -> Result<(), StoreError> {
        let _ = (acks, retain);
        Ok(())
    }

    /// The acknowledgements recorded with [`Store::record_foreign_acks`] for `counters`;
    /// none by default.
    ///
    /// # Errors
    /// [`StoreError`] from the backend.
    fn foreign_acks(&self, counters: &[u32]) -> Result<Vec<ForeignAck>, StoreError> {
        let _ = counters;
        Ok(Vec::new())
    }
}

/// Iterates over every member of a service, one page of `page_size` at a time: memory stays
/// bounded by one page, whatever the number of registrations.
pub fn members_of_service<'a, S: Store + ?Sized>(
    store: &'a S,
    service_id: &str,
    page_size: usize,
) -> Members<'a, S> {
    Members {
        store,
        service_id: service_id.to_owned(),
        page_size: page_size.max(1),
        page: Vec::new().into_iter(),
        last: None,
        done: false,
    }
}

/// The iterator of [`members_of_service`]. Stops after the first error.
pub struct Members<'a, S: Store + ?Sized> {
    store: &'a S,
    service_id: String,
    page_size: usize,
    page: std::vec::IntoIter<Member>,
    last: Option<Btid>,
    done: bool,
}

impl<S: Store + ?Sized> Iterator for Members<'_, S> {
    type Item = Result<Member, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(m) = self.page.next() {
                self.last = Some(m.btid.clone());
                return Some(Ok(m));
            }
            if self.done {
                return None;
            }
            match self.store.registrations_of_service(
                &self.service_id,
                self.last.as_ref(),
                self.page_size,
            ) {
                Ok(page) => {
                    self.done = page.len() < self.page_size;
                    if page.is_empty() {
                        return None;
                    }
                    self.page = page.into_iter();
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}
