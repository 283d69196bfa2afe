//! [`Store`] on PostgreSQL (tokio-postgres, a deadpool-postgres pool), selected by
//! `store = "postgres://..."` (docs/architecture.md §4).
//!
//! The [`Store`] contract is synchronous and its callers run it on blocking threads
//! (`spawn_blocking`); the database client is async. The store therefore owns a small tokio
//! runtime of its own (two worker threads, `bmsc-pg`) on which every query runs: a call spawns
//! its future there and waits for the answer on a channel (`PostgresStore::run`), so the
//! calling thread blocks (as it would on SQLite) and no runtime worker of the BM-SC ever waits
//! for the database. Registrations go through the same group commit as SQLite's
//! ([`GroupCommit`]): a Key Request awaits its registration's completion without holding a
//! thread, and concurrent registrations share one transaction (one multi-row upsert).
//!
//! Sealing is the SQLite store's, octet for octet ([`super::codec`]): MSKs, MTKs and cached GBA
//! keys are stored only as AES-256-GCM ciphertext under the KEK file's key, which never enters
//! the database. Schema changes are numbered migrations recorded in `schema_version`, run under
//! an advisory lock by whichever node opens the database first (`postgres/schema.rs`).
//!
//! Several BM-SC nodes may share the database (a cluster, docs/cluster.md): each MSK group has
//! one owner at a time, a session advisory lock held on the node's dedicated connection, which
//! PostgreSQL releases when that connection ends, `kill -9` of the node included; MSKs, MTKs
//! and counter blocks are claimed in the database (`postgres/cluster.rs`).

mod cluster;
mod fanout;
mod open;
mod schema;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use deadpool_postgres::Pool;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::batch::{CommitStats, GroupCommit, GroupCommitLimits};
use super::codec::{
    nanos_to_time, open_gba_keys, open_msk, seal_gba_keys, seal_msk, time_to_nanos,
};
use super::{
    AckedPush, Committed, CurrentMtk, FOREIGN_ACK_MAX_LEN, FanoutItem, FanoutProgress, ForeignAck,
    Lease, Member, MskRecord, MskState, Registration, Store, StoreError, committed,
};
use crate::crypto::StateKey;
use crate::gba::{Btid, SubscriberKeys};
use crate::mikey::{KeyDomainId, MskId};

/// Registrations in one upsert statement of [`Store::register_many`].
const BULK_CHUNK: usize = 5000;

/// A parameter of a query run on the store's runtime.
type Param = Box<dyn ToSql + Send + Sync>;

/// The PostgreSQL store.
pub struct PostgresStore {
    /// The URL without a password (for messages).
    url: String,
    kek: StateKey,
    pool: Pool,
    /// The fan-out's bookkeeping, committed without waiting for the WAL flush (`open.rs`,
    /// `relaxed_pool`); the read-only store's one pool.
    relaxed: Pool,
    /// Registrations share transactions; `None` when read-only. Dropped first, so what is
    /// queued is written while the pool and the runtime still run.
    registrations: Option<GroupCommit<Registration, ()>>,
    /// The dedicated connection holding the node's MSK group locks; `None` when read-only.
    session: Option<Arc<cluster::Ownership>>,
    /// Runs the client; shut down (without blocking) when the store is dropped. Last.
    runtime: StoreRuntime,
}

/// The store's runtime, shut down without blocking when dropped: a store (or a failed open)
/// may be dropped on an async thread, where a blocking shutdown would panic.
struct StoreRuntime(Option<tokio::runtime::Runtime>);

impl StoreRuntime {
    fn handle(&self) -> Result<tokio::runtime::Handle, StoreError> {
        self.0
            .as_ref()
            .map(|rt| rt.handle().clone())
            .ok_or_else(stopped)
    }
}

impl Drop for StoreRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("url", &self.url)
            .field("read_only", &self.session.is_none())
            .finish_non_exhaustive()
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // Queued registrations are written first (the writer thread uses the runtime).
        drop(self.registrations.take());
        drop(self.session.take());
        self.pool.close();
        self.relaxed.close();
    }
}

/// The client's error with the server's own (SQLSTATE, message) when there is one: what
/// `Display` alone leaves out. Neither carries parameter values.
pub(super) fn db(e: &tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(d) => StoreError::Backend(format!(
            "{} (SQLSTATE {}): {}",
            d.severity(),
            d.code().code(),
            d.message()
        )),
        // Not the server's answer: the connection failed or closed.
        None => match std::error::Error::source(e) {
            Some(source) => StoreError::Unavailable(format!("{e}: {source}")),
            None => StoreError::Unavailable(e.to_string()),
        },
    }
}

fn pool_err(e: &deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => db(e),
        other => StoreError::Unavailable(format!("connection pool: {other}")),
    }
}

fn stopped() -> StoreError {
    StoreError::Backend("the store's database runtime has stopped".to_owned())
}

fn read_only() -> StoreError {
    StoreError::Backend("the store is open read-only".to_owned())
}

/// Runs `fut` on `handle`'s runtime and blocks the calling thread until it answers. Works
/// from any thread but the runtime's own workers (which only ever run the store's futures).
fn run_on<T: Send + 'static>(
    handle: &tokio::runtime::Handle,
    fut: impl Future<Output = Result<T, StoreError>> + Send + 'static,
) -> Result<T, StoreError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    handle.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().unwrap_or_else(|_| Err(stopped()))
}

/// One statement on a pooled connection (prepared once per connection), its rows.
async fn query(pool: Pool, sql: &'static str, params: Vec<Param>) -> Result<Vec<Row>, StoreError> {
    let client = pool.get().await.map_err(|e| pool_err(&e))?;
    let stmt = client.prepare_cached(sql).await.map_err(|e| db(&e))?;
    let refs: Vec<&(dyn ToSql + Sync)> = params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect();
    client.query(&stmt, &refs).await.map_err(|e| db(&e))
}

/// One statement on a pooled connection, the number of rows it changed.
async fn execute(pool: Pool, sql: &'static str, params: Vec<Param>) -> Result<u64, StoreError> {
    let client = pool.get().await.map_err(|e| pool_err(&e))?;
    let stmt = client.prepare_cached(sql).await.map_err(|e| db(&e))?;
    let refs: Vec<&(dyn ToSql + Sync)> = params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect();
    client.execute(&stmt, &refs).await.map_err(|e| db(&e))
}

fn parse_btid(text: &str) -> Result<Btid, StoreError> {
    text.parse().map_err(|_| StoreError::Corrupt {
        what: "registration",
        id: text.chars().take(64).collect(),
    })
}

fn parse_ip(btid: &str, text: &str) -> Result<IpAddr, StoreError> {
    text.parse().map_err(|_| StoreError::Corrupt {
        what: "registration",
        id: btid.chars().take(64).collect(),
    })
}

/// A (btid, ue_addr) row as a member.
fn member_of_row(r: &Row) -> Result<Member, StoreError> {
    let btid: String = get(r, 0)?;
    Ok(Member {
        ue_addr: parse_ip(&btid, &get::<String>(r, 1)?)?,
        btid: parse_btid(&btid)?,
    })
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, i: usize) -> Result<T, StoreError> {
    row.try_get(i).map_err(|e| db(&e))
}

/// The upsert of registrations given as parallel arrays: one statement for many rows.
const UPSERT_REGISTRATIONS: &str =
    "INSERT INTO registrations (service_id, btid, ue_addr, registered_at)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])
     ON CONFLICT (service_id, btid)
     DO UPDATE SET ue_addr = excluded.ue_addr, registered_at = excluded.registered_at";

/// Registrations as the parallel arrays of [`UPSERT_REGISTRATIONS`], the last of each
/// (service, B-TID) only (one statement may not update a row twice); `at[i]` is the stored
/// time of `rows[i]`.
fn upsert_params(rows: &[&Registration], at: &[i64]) -> Vec<Param> {
    let mut last: HashMap<(&str, &str), usize> = HashMap::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        last.insert((r.service_id.as_str(), r.btid.as_str()), i);
    }
    let mut keep: Vec<usize> = last.into_values().collect();
    keep.sort_unstable();
    let services: Vec<String> = keep.iter().map(|&i| rows[i].service_id.clone()).collect();
    let btids: Vec<String> = keep
        .iter()
        .map(|&i| rows[i].btid.as_str().to_owned())
        .collect();
    let addrs: Vec<String> = keep.iter().map(|&i| rows[i].ue_addr.to_string()).collect();
    let times: Vec<i64> = keep.iter().map(|&i| at[i]).collect();
    vec![
        Box::new(services),
        Box::new(btids),
        Box::new(addrs),
        Box::new(times),
    ]
}

/// Writes a batch of registrations in one statement and one transaction; a registration
/// whose time cannot be stored fails alone, a failed statement fails the batch.
fn register_batch(
    handle: &tokio::runtime::Handle,
    pool: &Pool,
    batch: &[Registration],
) -> Vec<Result<(), StoreError>> {
    let times: Vec<Result<i64, StoreError>> = batch
        .iter()
        .map(|r| time_to_nanos(r.registered_at))
        .collect();
    let (rows, at): (Vec<&Registration>, Vec<i64>) = batch
        .iter()
        .zip(&times)
        .filter_map(|(r, t)| t.as_ref().ok().map(|t| (r, *t)))
        .unzip();
    let written = if rows.is_empty() {
        Ok(0)
    } else {
        run_on(
            handle,
            execute(
                pool.clone(),
                UPSERT_REGISTRATIONS,
                upsert_params(&rows, &at),
            ),
        )
    };
    times
        .into_iter()
        .map(|t| match (&written, t) {
            (_, Err(e)) => Err(e),
            (Ok(_), Ok(_)) => Ok(()),
            (Err(e), Ok(_)) => Err(match e {
                StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
                StoreError::Backend(m) => StoreError::Backend(m.clone()),
                other => StoreError::Backend(other.to_string()),
            }),
        })
        .collect()
}

impl PostgresStore {
    /// The store with registrations group-committed within `limits`.
    ///
    /// # Errors
    /// The writer thread of the new group commit could not be started.
    pub fn with_group_commit(mut self, limits: GroupCommitLimits) -> Result<Self, StoreError> {
        if self.registrations.is_some() {
            drop(self.registrations.take());
            self.registrations = Some(self.registration_writer(limits)?);
        }
        Ok(self)
    }

    fn registration_writer(
        &self,
        limits: GroupCommitLimits,
    ) -> Result<GroupCommit<Registration, ()>, StoreError> {
        let handle = self.handle()?;
        let pool = self.pool.clone();
        GroupCommit::start(limits, "bmsc-store-writer", move |batch| {
            register_batch(&handle, &pool, &batch)
        })
        .map_err(|e| StoreError::Backend(format!("cannot start the store writer: {e}")))
    }

    /// The counts of the registrations' group commits (`/metrics`).
    #[must_use]
    pub fn commit_stats(&self) -> Arc<CommitStats> {
        self.registrations
            .as_ref()
            .map_or_else(Arc::default, GroupCommit::stats)
    }

    /// The database URL (it never holds the password).
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The schema version of the database.
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        let rows = self.query("SELECT max(version) FROM schema_version", vec![])?;
        rows.first().map_or(Ok(0), |r| get(r, 0))
    }

    fn handle(&self) -> Result<tokio::runtime::Handle, StoreError> {
        self.runtime.handle()
    }

    /// Runs `fut` on the store's runtime, blocking the calling thread until it answers (module
    /// doc): call it from a blocking thread, never from an async task.
    fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        run_on(&self.handle()?, fut)
    }

    fn query(&self, sql: &'static str, params: Vec<Param>) -> Result<Vec<Row>, StoreError> {
        self.run(query(self.pool.clone(), sql, params))
    }

    fn execute(&self, sql: &'static str, params: Vec<Param>) -> Result<u64, StoreError> {
        if self.session.is_none() {
            return Err(read_only());
        }
        self.run(execute(self.pool.clone(), sql, params))
    }

    /// The ten parameters of an MSK row, its key sealed.
    fn msk_params(&self, r: &MskRecord) -> Result<Vec<Param>, StoreError> {
        let sealed = seal_msk(
            &self.kek,
            r.key_domain,
            r.msk_id,
            &r.msk,
            r.current_mtk.as_ref(),
        );
        Ok(vec![
            Box::new(r.key_domain.0.to_vec()),
            Box::new(i64::from(r.msk_id.to_u32())),
            Box::new(i32::from(r.seql)),
            Box::new(i32::from(r.sequ)),
            Box::new(time_to_nanos(r.created_at)?),
            Box::new(time_to_nanos(r.activates_at)?),
            Box::new(time_to_nanos(r.expires_at)?),
            Box::new(r.state.as_str().to_owned()),
            Box::new(i32::from(r.mtk_next_id)),
            Box::new(sealed),
        ])
    }

    /// An MSK from a row of `SELECT key_domain, msk_id, seql, sequ, created_at,
    /// activates_at, expires_at, state, mtk_next_id, sealed`.
    fn msk_from_row(&self, row: &Row) -> Result<MskRecord, StoreError> {
        let corrupt = |id: String| StoreError::Corrupt { what: "MSK", id };
        let kd: Vec<u8> = get(row, 0)?;
        let key_domain = KeyDomainId(
            kd.as_slice()
                .try_into()
                .map_err(|_| corrupt(hex::encode(&kd)))?,
        );
        let raw_id: i64 = get(row, 1)?;
        let msk_id = MskId::from_u32(
            u32::try_from(raw_id).map_err(|_| corrupt(format!("{key_domain}/{raw_id}")))?,
        );
        let id = || corrupt(format!("{key_domain}/{msk_id}"));
        let u16_at = |i: usize| -> Result<u16, StoreError> {
            let v: i32 = get(row, i)?;
            u16::try_from(v).map_err(|_| id())
        };
        let time_at =
            |i: usize| -> Result<SystemTime, StoreError> { Ok(nanos_to_time(get::<i64>(row, i)?)) };
        let state: String = get(row, 7)?;
        let sealed: Vec<u8> = get(row, 9)?;
        let (msk, current_mtk) = open_msk(&self.kek, key_domain, msk_id, &sealed)?;
        Ok(MskRecord {
            key_domain,
            msk_id,
            msk,
            seql: u16_at(2)?,
            sequ: u16_at(3)?,
            created_at: time_at(4)?,
            activates_at: time_at(5)?,
            expires_at: time_at(6)?,
            state: MskState::from_name(&state).ok_or_else(id)?,
            mtk_next_id: u16_at(8)?,
            current_mtk,
        })
    }

    fn msks_from(&self, rows: &[Row]) -> Result<Vec<MskRecord>, StoreError> {
        rows.iter().map(|r| self.msk_from_row(r)).collect()
    }

    fn registrations_from(
        rows: &[Row],
        btid: Option<&Btid>,
    ) -> Result<Vec<Registration>, StoreError> {
        rows.iter()
            .map(|r| {
                let btid = match btid {
                    Some(b) => b.clone(),
                    None => parse_btid(&get::<String>(r, 0)?)?,
                };
                Ok(Registration {
                    ue_addr: parse_ip(btid.as_str(), &get::<String>(r, 2)?)?,
                    service_id: get(r, 1)?,
                    registered_at: nanos_to_time(get(r, 3)?),
                    btid,
                })
            })
            .collect()
    }
}

/// RFC 1982 (32 bits): whether `new` is after `current`.
fn serial_after(new: u32, current: u32) -> bool {
    let d = new.wrapping_sub(current);
    d != 0 && d < 0x8000_0000
}

impl Store for PostgresStore {
    fn register(&self, registration: &Registration) -> Result<(), StoreError> {
        match &self.registrations {
            Some(gc) => gc.submit(registration.clone()),
            None => Err(read_only()),
        }
    }

    fn register_queued(&self, registration: Registration) -> Committed {
        match &self.registrations {
            Some(gc) => gc.queue(registration),
            None => committed(Err(read_only())),
        }
    }

    fn queues_registrations(&self) -> bool {
        self.registrations.is_some()
    }

    fn reads_may_block(&self) -> bool {
        true
    }

    fn register_many(&self, registrations: &[Registration]) -> Result<(), StoreError> {
        if self.session.is_none() {
            return Err(read_only());
        }
        let mut chunks = Vec::new();
        for chunk in registrations.chunks(BULK_CHUNK) {
            let rows: Vec<&Registration> = chunk.iter().collect();
            let at = chunk
                .iter()
                .map(|r| time_to_nanos(r.registered_at))
                .collect::<Result<Vec<_>, _>>()?;
            chunks.push(upsert_params(&rows, &at));
        }
        let pool = self.pool.clone();
        self.run(async move {
            let mut client = pool.get().await.map_err(|e| pool_err(&e))?;
            let tx = client.transaction().await.map_err(|e| db(&e))?;
            let stmt = tx
                .prepare_cached(UPSERT_REGISTRATIONS)
                .await
                .map_err(|e| db(&e))?;
            for params in chunks {
                let refs: Vec<&(dyn ToSql + Sync)> = params
                    .iter()
                    .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                    .collect();
                tx.execute(&stmt, &refs).await.map_err(|e| db(&e))?;
            }
            tx.commit().await.map_err(|e| db(&e))
        })
    }

    fn deregister(&self, btid: &Btid, service_id: &str) -> Result<bool, StoreError> {
        self.execute(
            "DELETE FROM registrations WHERE service_id = $1 AND btid = $2",
            vec![
                Box::new(service_id.to_owned()),
                Box::new(btid.as_str().to_owned()),
            ],
        )
        .map(|n| n > 0)
    }

    fn registrations_of_btid(&self, btid: &Btid) -> Result<Vec<Registration>, StoreError> {
        let rows = self.query(
            "SELECT btid, service_id, ue_addr, registered_at FROM registrations
             WHERE btid = $1 ORDER BY service_id",
            vec![Box::new(btid.as_str().to_owned())],
        )?;
        Self::registrations_from(&rows, Some(btid))
    }

    fn registrations_of_service(
        &self,
        service_id: &str,
        after: Option<&Btid>,
        limit: usize,
    ) -> Result<Vec<Member>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // "" sorts before every B-TID (B-TIDs are never empty; the column sorts by octets).
        let after = after.map_or("", Btid::as_str).to_owned();
        let rows = self.query(
            "SELECT btid, ue_addr FROM registrations
             WHERE service_id = $1 AND btid > $2 ORDER BY btid LIMIT $3",
            vec![
                Box::new(service_id.to_owned()),
                Box::new(after),
                Box::new(limit),
            ],
        )?;
        rows.iter().map(member_of_row).collect()
    }

    fn registrations_in_range(
        &self,
        service_id: &str,
        after: Option<&Btid>,
        until: Option<&Btid>,
        limit: usize,
    ) -> Result<Vec<Member>, StoreError> {
        let Some(until) = until else {
            return self.registrations_of_service(service_id, after, limit);
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let after = after.map_or("", Btid::as_str).to_owned();
        // Both bounds are index conditions: the scan stops at `until`.
        let rows = self.query(
            "SELECT btid, ue_addr FROM registrations
             WHERE service_id = $1 AND btid > $2 AND btid <= $3 ORDER BY btid LIMIT $4",
            vec![
                Box::new(service_id.to_owned()),
                Box::new(after),
                Box::new(until.as_str().to_owned()),
                Box::new(limit),
            ],
        )?;
        rows.iter().map(member_of_row).collect()
    }

    fn registrations_since(
        &self,
        since: SystemTime,
        limit: usize,
    ) -> Result<Vec<Registration>, StoreError> {
        let since = time_to_nanos(since)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.query(
            "SELECT btid, service_id, ue_addr, registered_at FROM registrations
             WHERE registered_at >= $1 ORDER BY registered_at DESC LIMIT $2",
            vec![Box::new(since), Box::new(limit)],
        )?;
        Self::registrations_from(&rows, None)
    }

    fn count_registrations_by_service(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let rows = self.query(
            "SELECT service_id, count(*) FROM registrations GROUP BY service_id",
            vec![],
        )?;
        rows.iter()
            .map(|r| Ok((get(r, 0)?, get::<i64>(r, 1)?.unsigned_abs())))
            .collect()
    }

    fn put_msk(&self, r: &MskRecord) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO msks (key_domain, msk_id, seql, sequ, created_at, activates_at,
                               expires_at, state, mtk_next_id, sealed)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (key_domain, msk_id) DO UPDATE SET
                 seql = excluded.seql, sequ = excluded.sequ, created_at = excluded.created_at,
                 activates_at = excluded.activates_at, expires_at = excluded.expires_at,
                 state = excluded.state, mtk_next_id = excluded.mtk_next_id,
                 sealed = excluded.sealed",
            self.msk_params(r)?,
        )
        .map(|_| ())
    }

    fn msk(&self, key_domain: KeyDomainId, msk_id: MskId) -> Result<Option<MskRecord>, StoreError> {
        const SQL: &str = "SELECT key_domain, msk_id, seql, sequ, created_at, activates_at, \
                           expires_at, state, mtk_next_id, sealed FROM msks \
                           WHERE key_domain = $1 AND msk_id = $2";
        let rows = self.query(
            SQL,
            vec![
                Box::new(key_domain.0.to_vec()),
                Box::new(i64::from(msk_id.to_u32())),
            ],
        )?;
        Ok(self.msks_from(&rows)?.pop())
    }

    fn msks_of_group(
        &self,
        key_domain: KeyDomainId,
        key_group: u16,
    ) -> Result<Vec<MskRecord>, StoreError> {
        const SQL: &str = "SELECT key_domain, msk_id, seql, sequ, created_at, activates_at, \
                           expires_at, state, mtk_next_id, sealed FROM msks \
                           WHERE key_domain = $1 AND msk_id BETWEEN $2 AND $3 ORDER BY msk_id";
        let low = i64::from(MskId::new(key_group, 0).to_u32());
        let high = i64::from(MskId::new(key_group, u16::MAX).to_u32());
        let rows = self.query(
            SQL,
            vec![
                Box::new(key_domain.0.to_vec()),
                Box::new(low),
                Box::new(high),
            ],
        )?;
        self.msks_from(&rows)
    }

    fn msk_states_of_group(
        &self,
        key_domain: KeyDomainId,
        key_group: u16,
    ) -> Result<Vec<(MskId, MskState)>, StoreError> {
        let low = i64::from(MskId::new(key_group, 0).to_u32());
        let high = i64::from(MskId::new(key_group, u16::MAX).to_u32());
        let rows = self.query(
            "SELECT msk_id, state FROM msks
             WHERE key_domain = $1 AND msk_id BETWEEN $2 AND $3 ORDER BY msk_id",
            vec![
                Box::new(key_domain.0.to_vec()),
                Box::new(low),
                Box::new(high),
            ],
        )?;
        rows.iter()
            .map(|r| {
                let id: i64 = get(r, 0)?;
                let state: String = get(r, 1)?;
                let corrupt = || StoreError::Corrupt {
                    what: "MSK",
                    id: format!("{key_domain}/{id}"),
                };
                let msk_id = MskId::from_u32(u32::try_from(id).map_err(|_| corrupt())?);
                Ok((msk_id, MskState::from_name(&state).ok_or_else(corrupt)?))
            })
            .collect()
    }

    fn msks(&self) -> Result<Vec<MskRecord>, StoreError> {
        const SQL: &str = "SELECT key_domain, msk_id, seql, sequ, created_at, activates_at, \
                           expires_at, state, mtk_next_id, sealed FROM msks \
                           ORDER BY key_domain, msk_id";
        let rows = self.query(SQL, vec![])?;
        self.msks_from(&rows)
    }

    fn delete_msk(&self, key_domain: KeyDomainId, msk_id: MskId) -> Result<bool, StoreError> {
        self.execute(
            "DELETE FROM msks WHERE key_domain = $1 AND msk_id = $2",
            vec![
                Box::new(key_domain.0.to_vec()),
                Box::new(i64::from(msk_id.to_u32())),
            ],
        )
        .map(|n| n > 0)
    }

    fn counter_ceiling(&self) -> Result<u32, StoreError> {
        let rows = self.query("SELECT ceiling FROM counter WHERE id = 0", vec![])?;
        let v: i64 = rows
            .first()
            .map_or_else(|| Err(stopped_counter()), |r| get(r, 0))?;
        u32::try_from(v).map_err(|_| StoreError::Corrupt {
            what: "counter ceiling",
            id: v.to_string(),
        })
    }

    fn raise_counter_ceiling(&self, new: u32) -> Result<(), StoreError> {
        if self.session.is_none() {
            return Err(read_only());
        }
        let pool = self.pool.clone();
        // [CHOICE] docs/profile.md §6 "counter ceiling on PostgreSQL": the contract's ceiling
        // (raised a block ahead, no write per message) is one row, raised under a row lock.
        self.run(async move {
            let mut client = pool.get().await.map_err(|e| pool_err(&e))?;
            let tx = client.transaction().await.map_err(|e| db(&e))?;
            let row = tx
                .query_opt("SELECT ceiling FROM counter WHERE id = 0 FOR UPDATE", &[])
                .await
                .map_err(|e| db(&e))?
                .ok_or_else(stopped_counter)?;
            let v: i64 = get(&row, 0)?;
            let current = u32::try_from(v).map_err(|_| StoreError::Corrupt {
                what: "counter ceiling",
                id: v.to_string(),
            })?;
            if new == current {
                return Ok(());
            }
            // 0: a fresh store, whose first ceiling is the counter floor (docs/profile.md §5).
            if current != 0 && !serial_after(new, current) {
                return Err(StoreError::CeilingNotRaised {
                    current,
                    requested: new,
                });
            }
            tx.execute(
                "UPDATE counter SET ceiling = $1 WHERE id = 0",
                &[&i64::from(new)],
            )
            .await
            .map_err(|e| db(&e))?;
            tx.commit().await.map_err(|e| db(&e))
        })
    }

    fn cached_keys(
        &self,
        btid: &str,
        now: SystemTime,
    ) -> Result<Option<SubscriberKeys>, StoreError> {
        let now = time_to_nanos(now)?;
        let rows = self.query(
            "SELECT expires_at, sealed FROM gba_key_cache WHERE btid = $1",
            vec![Box::new(btid.to_owned())],
        )?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let expires: i64 = get(row, 0)?;
        if expires <= now {
            return Ok(None);
        }
        let sealed: Vec<u8> = get(row, 1)?;
        open_gba_keys(&self.kek, btid, expires, &sealed).map(Some)
    }

    fn cache_keys(&self, keys: &SubscriberKeys) -> Result<(), StoreError> {
        let sealed = seal_gba_keys(&self.kek, keys)?;
        let expires = time_to_nanos(keys.expires)?;
        self.execute(
            "INSERT INTO gba_key_cache (btid, expires_at, sealed) VALUES ($1, $2, $3)
             ON CONFLICT (btid) DO UPDATE SET expires_at = excluded.expires_at,
                                              sealed = excluded.sealed",
            vec![
                Box::new(keys.btid.as_str().to_owned()),
                Box::new(expires),
                Box::new(sealed),
            ],
        )
        .map(|_| ())
    }

    fn purge_expired_keys(&self, now: SystemTime) -> Result<u64, StoreError> {
        let now = time_to_nanos(now)?;
        self.execute(
            "DELETE FROM gba_key_cache WHERE expires_at <= $1",
            vec![Box::new(now)],
        )
    }

    fn is_shared(&self) -> bool {
        self.session.is_some()
    }

    fn claim_ownership(&self, groups: &[String]) -> Result<Vec<bool>, StoreError> {
        if self.session.is_none() {
            return Err(read_only());
        }
        let keys: Vec<i64> = groups.iter().map(|g| cluster::lock_key(g)).collect();
        let session = self.session.clone().ok_or_else(read_only)?;
        self.run(async move { session.claim(&keys).await })
    }

    fn create_msk(&self, record: &MskRecord) -> Result<MskRecord, StoreError> {
        let inserted = self.execute(cluster::INSERT_MSK_IF_ABSENT, self.msk_params(record)?)?;
        if inserted == 1 {
            return Ok(record.clone());
        }
        self.msk(record.key_domain, record.msk_id)?
            .ok_or_else(|| StoreError::Corrupt {
                what: "MSK",
                id: format!("{}/{}", record.key_domain, record.msk_id),
            })
    }

    fn claim_mtk(
        &self,
        key_domain: KeyDomainId,
        msk_id: MskId,
        mtk: &CurrentMtk,
    ) -> Result<CurrentMtk, StoreError> {
        if self.session.is_none() {
            return Err(read_only());
        }
        self.run(cluster::claim_mtk(
            self.pool.clone(),
            self.kek.clone(),
            key_domain,
            msk_id,
            mtk.clone(),
        ))
    }

    fn reserve_counters(&self, floor: u32, n: u32) -> Result<Option<u32>, StoreError> {
        if self.session.is_none() {
            return Err(read_only());
        }
        self.run(cluster::reserve_counters(self.pool.clone(), floor, n))
            .map(Some)
    }

    fn create_fanout_items(
        &self,
        key_domain: KeyDomainId,
        msk_id: MskId,
        service_ids: &[String],
        item_size: usize,
    ) -> Result<Option<FanoutProgress>, StoreError> {
        if self.session.is_none() {
            return Err(read_only());
        }
        self.run(fanout::create(
            self.pool.clone(),
            key_domain,
            msk_id,
            service_ids.to_vec(),
            item_size,
        ))
        .map(Some)
    }

    fn fanout_progress(
        &self,
        key_domain: KeyDomainId,
        msk_id: MskId,
    ) -> Result<FanoutProgress, StoreError> {
        self.run(fanout::progress(self.pool.clone(), key_domain, msk_id))
    }

    fn claim_fanout_item(
        &self,
        lease: Lease<'_>,
        msks: &[(KeyDomainId, MskId)],
    ) -> Result<Option<FanoutItem>, StoreError> {
        if self.session.is_none() {
            return Err(read_only());
        }
        let keys = msks.iter().map(|(k, m)| fanout::msk_key(*k, *m)).collect();
        self.run(fanout::claim(
            self.relaxed.clone(),
            lease.node.to_owned(),
            lease.duration.as_secs_f64() * 1000.0,
            keys,
        ))
    }

    fn renew_fanout_items(
        &self,
        lease: Lease<'_>,
    ) -> Result<Vec<(KeyDomainId, MskId, u32)>, StoreError> {
        if self.session.is_none() {
            return Err(read_only());
        }
        self.run(fanout::renew(
            self.relaxed.clone(),
            lease.node.to_owned(),
            lease.duration.as_secs_f64() * 1000.0,
        ))
    }

    fn mark_fanout_item(
        &self,
        node: &str,
        item: &FanoutItem,
        done: bool,
    ) -> Result<(), StoreError> {
        if self.session.is_none() {
            return Err(read_only());
        }
        self.run(fanout::mark(
            self.relaxed.clone(),
            node.to_owned(),
            item.clone(),
            done,
        ))
    }

    fn record_acks(&self, acks: &[AckedPush]) -> Result<(), StoreError> {
        if self.session.is_none() {
            return Err(read_only());
        }
        if acks.is_empty() {
            return Ok(());
        }
        self.run(fanout::record_acks(self.relaxed.clone(), acks.to_vec()))
    }

    fn acked(
        &self,
        key_domain: KeyDomainId,
        msk_id: MskId,
        btids: &[&str],
    ) -> Result<Vec<String>, StoreError> {
        if btids.is_empty() {
            return Ok(Vec::new());
        }
        let btids = btids.iter().map(|b| (*b).to_owned()).collect();
        self.run(fanout::acked(self.pool.clone(), key_domain, msk_id, btids))
    }

    fn record_foreign_acks(
        &self,
        acks: &[ForeignAck],
        retain: std::time::Duration,
    ) -> Result<(), StoreError> {
        if self.session.is_none() {
            return Err(read_only());
        }
        let acks: Vec<ForeignAck> = acks
            .iter()
            .filter(|a| a.bytes.len() <= FOREIGN_ACK_MAX_LEN)
            .cloned()
            .collect();
        self.run(fanout::record_foreign_acks(
            self.relaxed.clone(),
            acks,
            retain,
        ))
    }

    fn foreign_acks(&self, counters: &[u32]) -> Result<Vec<ForeignAck>, StoreError> {
        if counters.is_empty() {
            return Ok(Vec::new());
        }
        self.run(fanout::foreign_acks(self.pool.clone(), counters.to_vec()))
    }
}

/// The counter row is missing: the schema was altered outside the program.
fn stopped_counter() -> StoreError {
    StoreError::Corrupt {
        what: "counter ceiling",
        id: "missing row".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::serial_after;

    #[test]
    fn serial_order_is_rfc_1982() {
        assert!(serial_after(1, 0));
        assert!(serial_after(0, 0xffff_ffff));
        assert!(!serial_after(0x8000_0000, 0));
        assert!(!serial_after(5, 5));
    }
}
