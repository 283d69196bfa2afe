//! The SQLite store's schema: numbered migrations recorded in `schema_version`, and the KEK
//! check value that makes a wrong key-encryption key fail at open.

use std::path::Path;
use std::time::SystemTime;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::db;
use crate::bmsc::store::StoreError;
use crate::bmsc::store::codec::{
    kek_opens_check, open_gba_keys, open_msk, seal_kek_check, time_to_nanos,
};
use crate::crypto::StateKey;
use crate::mikey::{KeyDomainId, MskId};

/// Numbered schema migrations; entry `i` brings the schema to version `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: registrations, MSKs, counter ceiling, GBA key cache.
    "CREATE TABLE registrations (
         service_id    TEXT    NOT NULL,
         btid          TEXT    NOT NULL,
         ue_addr       TEXT    NOT NULL,
         registered_at INTEGER NOT NULL,
         PRIMARY KEY (service_id, btid)
     ) WITHOUT ROWID;
     CREATE INDEX registrations_by_btid ON registrations (btid);
     CREATE TABLE msks (
         key_domain   BLOB    NOT NULL CHECK (length(key_domain) = 3),
         msk_id       INTEGER NOT NULL CHECK (msk_id BETWEEN 0 AND 4294967295),
         seql         INTEGER NOT NULL,
         sequ         INTEGER NOT NULL,
         created_at   INTEGER NOT NULL,
         activates_at INTEGER NOT NULL,
         expires_at   INTEGER NOT NULL,
         state        TEXT    NOT NULL CHECK (state IN ('next', 'current', 'retired')),
         mtk_next_id  INTEGER NOT NULL,
         sealed       BLOB    NOT NULL,
         PRIMARY KEY (key_domain, msk_id)
     );
     CREATE TABLE counter (
         id      INTEGER PRIMARY KEY CHECK (id = 0),
         ceiling INTEGER NOT NULL
     );
     INSERT INTO counter (id, ceiling) VALUES (0, 0);
     CREATE TABLE gba_key_cache (
         btid       TEXT    PRIMARY KEY,
         expires_at INTEGER NOT NULL,
         sealed     BLOB    NOT NULL
     );
     CREATE INDEX gba_key_cache_by_expiry ON gba_key_cache (expires_at);",
    // 2: the KEK check value (codec::seal_kek_check); recorded right after the migration, for
    // a store from before it once its sealed rows are seen to open under the KEK.
    "CREATE TABLE kek_check (
         id     INTEGER PRIMARY KEY CHECK (id = 0),
         sealed BLOB    NOT NULL
     );",
];

/// The latest schema version.
pub(super) fn latest() -> i64 {
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}

/// Whether the database holds nothing at all: a store being created.
pub(super) fn is_empty(conn: &Connection) -> Result<bool, StoreError> {
    conn.query_row("SELECT count(*) = 0 FROM sqlite_master", [], |r| r.get(0))
        .map_err(db)
}

fn has_table(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get(0),
    )
    .map_err(db)
}

/// The recorded schema version (0 when there is none).
pub(super) fn version(conn: &Connection) -> Result<i64, StoreError> {
    if !has_table(conn, "schema_version")? {
        return Ok(0);
    }
    conn.query_row(
        "SELECT coalesce(max(version), 0) FROM schema_version",
        [],
        |r| r.get(0),
    )
    .map_err(db)
}

fn too_new(found: i64) -> Result<(), StoreError> {
    if found > latest() {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: latest(),
        });
    }
    Ok(())
}

/// Brings the schema to the latest version and checks the KEK against the store, recording
/// the check value when there is none yet: one transaction, so a refused KEK changes nothing.
pub(super) fn migrate(
    conn: &mut Connection,
    kek: &StateKey,
    wrong: &dyn Fn() -> StoreError,
) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version    INTEGER PRIMARY KEY,
             applied_at INTEGER NOT NULL
         );",
    )
    .map_err(db)?;
    let current = version(&tx)?;
    too_new(current)?;
    let now = time_to_nanos(SystemTime::now())?;
    for (version, sql) in (1i64..)
        .zip(MIGRATIONS)
        .skip(usize::try_from(current).unwrap_or(0))
    {
        tx.execute_batch(sql).map_err(db)?;
        tx.execute(
            "INSERT INTO schema_version (version, applied_at) VALUES (?1, ?2)",
            params![version, now],
        )
        .map_err(db)?;
    }
    if !check_kek(&tx, kek, wrong)? {
        tx.execute(
            "INSERT INTO kek_check (id, sealed) VALUES (0, ?1)",
            [seal_kek_check(kek)],
        )
        .map_err(db)?;
    }
    tx.commit().map_err(db)
}

/// For a read-only open: refuses a schema from a newer program, an empty database and a
/// wrong KEK; changes nothing.
pub(super) fn check_read_only(
    conn: &Connection,
    kek: &StateKey,
    store: &Path,
    wrong: &dyn Fn() -> StoreError,
) -> Result<(), StoreError> {
    let found = version(conn)?;
    if found == 0 {
        return Err(StoreError::NoStore {
            path: store.to_owned(),
        });
    }
    too_new(found)?;
    check_kek(conn, kek, wrong).map(|_| ())
}

/// Whether the store has a check value (and it opens under `kek`). Without one, the first
/// sealed MSK and cached GBA keys must open under `kek` instead.
///
/// # Errors
/// `wrong()` when the check value or a sealed row does not open.
fn check_kek(
    conn: &Connection,
    kek: &StateKey,
    wrong: &dyn Fn() -> StoreError,
) -> Result<bool, StoreError> {
    if has_table(conn, "kek_check")? {
        let sealed: Option<Vec<u8>> = conn
            .query_row("SELECT sealed FROM kek_check WHERE id = 0", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(db)?;
        if let Some(sealed) = sealed {
            return if kek_opens_check(kek, &sealed) {
                Ok(true)
            } else {
                Err(wrong())
            };
        }
    }
    // [CHOICE] docs/profile.md §6 "KEK check of a store from before the check value".
    let msk: Option<(Vec<u8>, u32, Vec<u8>)> = conn
        .query_row(
            "SELECT key_domain, msk_id, sealed FROM msks LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(db)?;
    if let Some((kd, id, sealed)) = msk {
        let kd: [u8; 3] = kd.try_into().map_err(|_| wrong())?;
        open_msk(kek, KeyDomainId(kd), MskId::from_u32(id), &sealed).map_err(|_| wrong())?;
    }
    let gba: Option<(String, i64, Vec<u8>)> = conn
        .query_row(
            "SELECT btid, expires_at, sealed FROM gba_key_cache LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(db)?;
    if let Some((btid, expires, sealed)) = gba {
        open_gba_keys(kek, &btid, expires, &sealed).map_err(|_| wrong())?;
    }
    Ok(false)
}
