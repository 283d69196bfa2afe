//! [`Store`] on SQLite (rusqlite, bundled), in `<data_dir>/bmsc.sqlite`.
//!
//! Durability: WAL journal with `synchronous=FULL`, so every committed transaction is on disk
//! when the call returns and survives `kill -9` or a power cut. The WAL is checkpointed by a
//! thread of its own, not inside commits (`sqlite/checkpoint.rs`). One writer connection
//! serialises writes; a few read connections let reads (paging a million registrations for an
//! MSK push) run beside them, which WAL allows. Schema changes are numbered migrations
//! recorded in `schema_version` (`sqlite/schema.rs`).
//!
//! A read-write open takes the store's lock ([`StoreLock`]: one BM-SC per store) and creates a
//! KEK only with a new, empty database; [`SqliteStore::open_read_only`] takes no lock, opens the
//! database read-only and creates nothing.

mod checkpoint;
mod open;
mod schema;
mod writer;

pub use checkpoint::CheckpointStats;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use super::batch::{CommitStats, GroupCommit, GroupCommitLimits};
use super::codec::{
    nanos_to_time, open_gba_keys, open_msk, seal_gba_keys, seal_msk, time_to_nanos,
};
use super::{
    Committed, Member, MskRecord, MskState, Registration, Store, StoreError, StoreLock, committed,
};
use crate::crypto::StateKey;
use crate::gba::{Btid, SubscriberKeys};
use crate::mikey::{KeyDomainId, MskId};

/// Read connections beside the writer.
pub(super) const READERS: usize = 2;

/// The SQLite store.
pub struct SqliteStore {
    path: PathBuf,
    writer: std::sync::Arc<Mutex<Connection>>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    kek: StateKey,
    /// Registrations share durable commits ([`GroupCommit`]); `None` when read-only. Stopped
    /// (dropped) first: what is queued is written before the connections close.
    registrations: Option<GroupCommit<Registration, ()>>,
    /// Checkpoints the WAL outside commits; `None` when read-only. Stopped (dropped) before the
    /// lock is released.
    checkpointer: Option<checkpoint::Checkpointer>,
    /// Held for the store's life by a read-write open; `None` when read-only. Last, so that it
    /// is released only after every connection of the store has closed.
    _lock: Option<StoreLock>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A write to a store opened read-only.
fn read_only() -> StoreError {
    StoreError::Backend("the store is open read-only".to_owned())
}

pub(super) fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

pub(super) fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while holding the lock left no transaction open (a dropped transaction rolls
    // back), so the connection is still usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn member_of(row: &Row<'_>) -> rusqlite::Result<(String, String)> {
    Ok((row.get(0)?, row.get(1)?))
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

/// The MSK columns, in the order [`SqliteStore::msk_from_row`] reads them.
const MSK_COLUMNS: &str = "key_domain, msk_id, seql, sequ, created_at, activates_at, expires_at, \
                           state, mtk_next_id, sealed";

impl SqliteStore {
    /// The database file name inside `data_dir`.
    pub const FILE_NAME: &'static str = "bmsc.sqlite";

    /// The store with registrations group-committed within `limits` (default:
    /// [`GroupCommitLimits::default`]).
    ///
    /// # Errors
    /// The writer thread of the new group commit could not be started.
    pub fn with_group_commit(mut self, limits: GroupCommitLimits) -> Result<Self, StoreError> {
        self.registrations = Some(writer::registration_writer(&self.writer, limits)?);
        Ok(self)
    }

    /// The counts of the registrations' group commits (`/metrics`).
    #[must_use]
    pub fn commit_stats(&self) -> std::sync::Arc<CommitStats> {
        self.registrations
            .as_ref()
            .map_or_else(std::sync::Arc::default, GroupCommit::stats)
    }

    /// What the WAL checkpoint thread did (`None` for a read-only store, which has none).
    #[must_use]
    pub fn checkpoint_stats(&self) -> Option<std::sync::Arc<CheckpointStats>> {
        self.checkpointer
            .as_ref()
            .map(checkpoint::Checkpointer::stats)
    }

    /// The database file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the database.
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.read(|c| {
            c.query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
                .map_err(db)
        })
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = lock(&self.writer);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let out = f(&tx)?;
        tx.commit().map_err(db)?;
        Ok(out)
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        for r in &self.readers {
            if let Ok(conn) = r.try_lock() {
                return f(&conn);
            }
        }
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len().max(1);
        match self.readers.get(i) {
            Some(r) => f(&lock(r)),
            None => f(&lock(&self.writer)),
        }
    }

    fn msk_from_row(&self, row: &Row<'_>) -> Result<MskRecord, StoreError> {
        let corrupt = |id: String| StoreError::Corrupt { what: "MSK", id };
        let kd: Vec<u8> = row.get(0).map_err(db)?;
        let key_domain = KeyDomainId(
            kd.as_slice()
                .try_into()
                .map_err(|_| corrupt(hex::encode(&kd)))?,
        );
        let raw_id: i64 = row.get(1).map_err(db)?;
        let msk_id = MskId::from_u32(
            u32::try_from(raw_id).map_err(|_| corrupt(format!("{key_domain}/{raw_id}")))?,
        );
        let id = || corrupt(format!("{key_domain}/{msk_id}"));
        let u16_at = |i: usize| -> Result<u16, StoreError> {
            let v: i64 = row.get(i).map_err(db)?;
            u16::try_from(v).map_err(|_| id())
        };
        let time_at = |i: usize| -> Result<SystemTime, StoreError> {
            Ok(nanos_to_time(row.get(i).map_err(db)?))
        };
        let state: String = row.get(7).map_err(db)?;
        let sealed: Vec<u8> = row.get(9).map_err(db)?;
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

    fn msks_where(
        &self,
        filter: &str,
        p: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<MskRecord>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {MSK_COLUMNS} FROM msks {filter} ORDER BY key_domain, msk_id"
                ))
                .map_err(db)?;
            let mut rows = stmt.query(p).map_err(db)?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(db)? {
                out.push(self.msk_from_row(row)?);
            }
            Ok(out)
        })
    }
}

pub(super) fn upsert_registration(tx: &Connection, r: &Registration) -> Result<(), StoreError> {
    let at = time_to_nanos(r.registered_at)?;
    tx.prepare_cached(
        "INSERT INTO registrations (service_id, btid, ue_addr, registered_at)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (service_id, btid)
         DO UPDATE SET ue_addr = excluded.ue_addr, registered_at = excluded.registered_at",
    )
    .map_err(db)?
    .execute(params![
        r.service_id,
        r.btid.as_str(),
        r.ue_addr.to_string(),
        at
    ])
    .map_err(db)?;
    Ok(())
}

/// RFC 1982 (32 bits): whether `new` is after `current`.
fn serial_after(new: u32, current: u32) -> bool {
    let d = new.wrapping_sub(current);
    d != 0 && d < 0x8000_0000
}

impl Store for SqliteStore {
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

    fn register_many(&self, registrations: &[Registration]) -> Result<(), StoreError> {
        self.write(|tx| {
            registrations
                .iter()
                .try_for_each(|r| upsert_registration(tx, r))
        })
    }

    fn deregister(&self, btid: &Btid, service_id: &str) -> Result<bool, StoreError> {
        self.write(|tx| {
            tx.execute(
                "DELETE FROM registrations WHERE service_id = ?1 AND btid = ?2",
                params![service_id, btid.as_str()],
            )
            .map(|n| n > 0)
            .map_err(db)
        })
    }

    fn registrations_of_btid(&self, btid: &Btid) -> Result<Vec<Registration>, StoreError> {
        let rows: Vec<(String, String, i64)> = self.read(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT service_id, ue_addr, registered_at FROM registrations
                     WHERE btid = ?1 ORDER BY service_id",
                )
                .map_err(db)?;
            stmt.query_map([btid.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(db)?
                .collect::<Result<_, _>>()
                .map_err(db)
        })?;
        rows.into_iter()
            .map(|(service_id, ip, at)| {
                Ok(Registration {
                    btid: btid.clone(),
                    ue_addr: parse_ip(btid.as_str(), &ip)?,
                    service_id,
                    registered_at: nanos_to_time(at),
                })
            })
            .collect()
    }

    fn registrations_since(
        &self,
        since: SystemTime,
        limit: usize,
    ) -> Result<Vec<Registration>, StoreError> {
        let since = time_to_nanos(since)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<(String, String, String, i64)> = self.read(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT btid, service_id, ue_addr, registered_at FROM registrations
                     WHERE registered_at >= ?1 ORDER BY registered_at DESC LIMIT ?2",
                )
                .map_err(db)?;
            stmt.query_map(params![since, limit], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .map_err(db)?
            .collect::<Result<_, _>>()
            .map_err(db)
        })?;
        rows.into_iter()
            .map(|(btid, service_id, ip, at)| {
                let btid: Btid = btid.parse().map_err(|_| StoreError::Corrupt {
                    what: "registration",
                    id: btid.chars().take(64).collect(),
                })?;
                Ok(Registration {
                    ue_addr: parse_ip(btid.as_str(), &ip)?,
                    btid,
                    service_id,
                    registered_at: nanos_to_time(at),
                })
            })
            .collect()
    }

    fn registrations_of_service(
        &self,
        service_id: &str,
        after: Option<&Btid>,
        limit: usize,
    ) -> Result<Vec<Member>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // "" sorts before every B-TID (B-TIDs are never empty).
        let after = after.map_or("", Btid::as_str);
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT btid, ue_addr FROM registrations
                     WHERE service_id = ?1 AND btid > ?2 ORDER BY btid LIMIT ?3",
                )
                .map_err(db)?;
            let mut rows = stmt
                .query_map(params![service_id, after, limit], member_of)
                .map_err(db)?;
            let mut out = Vec::new();
            for row in &mut rows {
                let (btid, ip) = row.map_err(db)?;
                out.push(Member {
                    ue_addr: parse_ip(&btid, &ip)?,
                    btid: parse_btid(&btid)?,
                });
            }
            Ok(out)
        })
    }

    fn count_registrations_by_service(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT service_id, count(*) FROM registrations GROUP BY service_id",
                )
                .map_err(db)?;
            stmt.query_map([], |r| {
                let n: i64 = r.get(1)?;
                Ok((r.get::<_, String>(0)?, n.unsigned_abs()))
            })
            .map_err(db)?
            .collect::<Result<_, _>>()
            .map_err(db)
        })
    }

    fn put_msk(&self, r: &MskRecord) -> Result<(), StoreError> {
        let sealed = seal_msk(
            &self.kek,
            r.key_domain,
            r.msk_id,
            &r.msk,
            r.current_mtk.as_ref(),
        );
        let created = time_to_nanos(r.created_at)?;
        let activates = time_to_nanos(r.activates_at)?;
        let expires = time_to_nanos(r.expires_at)?;
        self.write(|tx| {
            tx.prepare_cached(&format!(
                "INSERT OR REPLACE INTO msks ({MSK_COLUMNS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
            ))
            .map_err(db)?
            .execute(params![
                r.key_domain.0.as_slice(),
                r.msk_id.to_u32(),
                r.seql,
                r.sequ,
                created,
                activates,
                expires,
                r.state.as_str(),
                r.mtk_next_id,
                sealed,
            ])
            .map_err(db)?;
            Ok(())
        })
    }

    fn msk(&self, key_domain: KeyDomainId, msk_id: MskId) -> Result<Option<MskRecord>, StoreError> {
        let mut v = self.msks_where(
            "WHERE key_domain = ?1 AND msk_id = ?2",
            &[&key_domain.0.as_slice(), &msk_id.to_u32()],
        )?;
        Ok(v.pop())
    }

    fn msks_of_group(
        &self,
        key_domain: KeyDomainId,
        key_group: u16,
    ) -> Result<Vec<MskRecord>, StoreError> {
        let low = MskId::new(key_group, 0).to_u32();
        let high = MskId::new(key_group, u16::MAX).to_u32();
        self.msks_where(
            "WHERE key_domain = ?1 AND msk_id BETWEEN ?2 AND ?3",
            &[&key_domain.0.as_slice(), &low, &high],
        )
    }

    fn msk_states_of_group(
        &self,
        key_domain: KeyDomainId,
        key_group: u16,
    ) -> Result<Vec<(MskId, MskState)>, StoreError> {
        let low = MskId::new(key_group, 0).to_u32();
        let high = MskId::new(key_group, u16::MAX).to_u32();
        let rows: Vec<(i64, String)> = self.read(|c| {
            c.prepare_cached(
                "SELECT msk_id, state FROM msks
                 WHERE key_domain = ?1 AND msk_id BETWEEN ?2 AND ?3 ORDER BY msk_id",
            )
            .map_err(db)?
            .query_map(params![key_domain.0.as_slice(), low, high], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(db)?
            .collect::<Result<_, _>>()
            .map_err(db)
        })?;
        rows.into_iter()
            .map(|(id, state)| {
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
        self.msks_where("", &[])
    }

    fn delete_msk(&self, key_domain: KeyDomainId, msk_id: MskId) -> Result<bool, StoreError> {
        self.write(|tx| {
            tx.execute(
                "DELETE FROM msks WHERE key_domain = ?1 AND msk_id = ?2",
                params![key_domain.0.as_slice(), msk_id.to_u32()],
            )
            .map(|n| n > 0)
            .map_err(db)
        })
    }

    fn counter_ceiling(&self) -> Result<u32, StoreError> {
        let v: i64 = self.read(|c| {
            c.query_row("SELECT ceiling FROM counter WHERE id = 0", [], |r| r.get(0))
                .map_err(db)
        })?;
        u32::try_from(v).map_err(|_| StoreError::Corrupt {
            what: "counter ceiling",
            id: v.to_string(),
        })
    }

    fn raise_counter_ceiling(&self, new: u32) -> Result<(), StoreError> {
        self.write(|tx| {
            let v: i64 = tx
                .query_row("SELECT ceiling FROM counter WHERE id = 0", [], |r| r.get(0))
                .map_err(db)?;
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
            tx.execute("UPDATE counter SET ceiling = ?1 WHERE id = 0", [new])
                .map_err(db)?;
            Ok(())
        })
    }

    fn cached_keys(
        &self,
        btid: &str,
        now: SystemTime,
    ) -> Result<Option<SubscriberKeys>, StoreError> {
        let now = time_to_nanos(now)?;
        let row: Option<(i64, Vec<u8>)> = self.read(|c| {
            c.prepare_cached("SELECT expires_at, sealed FROM gba_key_cache WHERE btid = ?1")
                .map_err(db)?
                .query_row([btid], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(db)
        })?;
        match row {
            Some((expires, sealed)) if expires > now => {
                open_gba_keys(&self.kek, btid, expires, &sealed).map(Some)
            }
            _ => Ok(None),
        }
    }

    fn cache_keys(&self, keys: &SubscriberKeys) -> Result<(), StoreError> {
        let sealed = seal_gba_keys(&self.kek, keys)?;
        let expires = time_to_nanos(keys.expires)?;
        self.write(|tx| {
            tx.execute(
                "INSERT OR REPLACE INTO gba_key_cache (btid, expires_at, sealed)
                 VALUES (?1, ?2, ?3)",
                params![keys.btid.as_str(), expires, sealed],
            )
            .map_err(db)?;
            Ok(())
        })
    }

    fn purge_expired_keys(&self, now: SystemTime) -> Result<u64, StoreError> {
        let now = time_to_nanos(now)?;
        self.write(|tx| {
            tx.execute("DELETE FROM gba_key_cache WHERE expires_at <= ?1", [now])
                .map(|n| n as u64)
                .map_err(db)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::open::configure;
    use super::{SqliteStore, serial_after};
    use crate::bmsc::store::{Registration, Store};
    use crate::crypto::StateKey;
    use rusqlite::{Connection, StatementStatus};

    #[test]
    fn cached_statements_are_not_prepared_again_for_new_values() {
        let dir = std::env::temp_dir().join(format!("mbms-qpsg-{}", std::process::id()));
        let store = SqliteStore::open(&dir, StateKey::from_bytes([7; 32])).expect("open");
        for i in 0..4 {
            store
                .register(&Registration {
                    btid: format!("b{i}@bsf.example.org").parse().expect("btid"),
                    service_id: "news".to_owned(),
                    ue_addr: std::net::IpAddr::from([10, 0, 0, 1]),
                    registered_at: std::time::SystemTime::now(),
                })
                .expect("register");
        }
        let conn = Connection::open(store.path()).expect("open");
        configure(&conn, true).expect("configure");
        let sql = "SELECT service_id FROM registrations WHERE btid = ?1";
        for i in 0..4 {
            let mut stmt = conn.prepare_cached(sql).expect("prepare");
            let rows = stmt
                .query_map([format!("b{i}@bsf.example.org")], |_| Ok(()))
                .expect("query")
                .count();
            assert_eq!(rows, 1);
            assert_eq!(stmt.get_status(StatementStatus::RePrepare), 0);
        }
        drop((conn, store));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn serial_order_is_rfc_1982() {
        assert!(serial_after(1, 0));
        assert!(serial_after(0, 0xffff_ffff));
        assert!(serial_after(0x7fff_ffff, 0));
        assert!(!serial_after(0x8000_0000, 0));
        assert!(!serial_after(0, 1));
        assert!(!serial_after(5, 5));
    }
}
