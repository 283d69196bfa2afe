//! The PostgreSQL store's schema: numbered migrations recorded in `schema_version`, run in
//! one transaction under an advisory lock (the first node to start runs them, the others wait
//! and find nothing to do), and the KEK check value that makes a wrong KEK fail at open.
//!
//! B-TIDs and service IDs are `COLLATE "C"`: they sort by octets, as in the SQLite store,
//! whatever the database's default collation, so keyset paging means the same in both.

use std::time::SystemTime;

use tokio_postgres::{Client, GenericClient};

use super::{db, get};
use crate::bmsc::store::StoreError;
use crate::bmsc::store::codec::{kek_opens_check, seal_kek_check, time_to_nanos};
use crate::crypto::StateKey;

/// The advisory lock key serialising migrations (any fixed 64-bit value; "mbmsmigr").
pub(super) const MIGRATION_LOCK: i64 = 0x6d62_6d73_6d69_6772;

/// Numbered schema migrations; entry `i` brings the schema to version `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: registrations, MSKs, counter ceiling, GBA key cache, KEK check value.
    r#"CREATE TABLE registrations (
           service_id    text   COLLATE "C" NOT NULL,
           btid          text   COLLATE "C" NOT NULL,
           ue_addr       text   NOT NULL,
           registered_at bigint NOT NULL,
           PRIMARY KEY (service_id, btid)
       );
       CREATE INDEX registrations_by_btid ON registrations (btid);
       CREATE INDEX registrations_by_time ON registrations (registered_at);
       CREATE TABLE msks (
           key_domain   bytea   NOT NULL CHECK (length(key_domain) = 3),
           msk_id       bigint  NOT NULL CHECK (msk_id BETWEEN 0 AND 4294967295),
           seql         integer NOT NULL,
           sequ         integer NOT NULL,
           created_at   bigint  NOT NULL,
           activates_at bigint  NOT NULL,
           expires_at   bigint  NOT NULL,
           state        text    NOT NULL CHECK (state IN ('next', 'current', 'retired')),
           mtk_next_id  integer NOT NULL,
           sealed       bytea   NOT NULL,
           PRIMARY KEY (key_domain, msk_id)
       );
       CREATE TABLE counter (
           id      smallint PRIMARY KEY CHECK (id = 0),
           ceiling bigint   NOT NULL CHECK (ceiling BETWEEN 0 AND 4294967295)
       );
       INSERT INTO counter (id, ceiling) VALUES (0, 0);
       CREATE TABLE gba_key_cache (
           btid       text   COLLATE "C" PRIMARY KEY,
           expires_at bigint NOT NULL,
           sealed     bytea  NOT NULL
       );
       CREATE INDEX gba_key_cache_by_expiry ON gba_key_cache (expires_at);
       CREATE TABLE kek_check (
           id     smallint PRIMARY KEY CHECK (id = 0),
           sealed bytea    NOT NULL
       );"#,
    // 2: the one MTK of each (MSK ID, MTK ID), claimed by the first node to make it (a cluster).
    r#"CREATE TABLE mtks (
           key_domain bytea   NOT NULL CHECK (length(key_domain) = 3),
           msk_id     bigint  NOT NULL CHECK (msk_id BETWEEN 0 AND 4294967295),
           mtk_id     integer NOT NULL CHECK (mtk_id BETWEEN 0 AND 65535),
           sealed     bytea   NOT NULL,
           PRIMARY KEY (key_domain, msk_id, mtk_id),
           FOREIGN KEY (key_domain, msk_id) REFERENCES msks (key_domain, msk_id) ON DELETE CASCADE
       );"#,
    // 3: the work items of shared MSK fan-outs and the acknowledgements recorded for them.
    r#"CREATE TABLE fanout_items (
           key_domain  bytea   NOT NULL CHECK (length(key_domain) = 3),
           msk_id      bigint  NOT NULL CHECK (msk_id BETWEEN 0 AND 4294967295),
           item        integer NOT NULL CHECK (item >= 0),
           service_id  text    COLLATE "C" NOT NULL,
           after_btid  text    COLLATE "C",
           until_btid  text    COLLATE "C",
           claimed_by  text,
           lease_until timestamptz,
           claims      integer NOT NULL DEFAULT 0,
           sent        boolean NOT NULL DEFAULT false,
           done        boolean NOT NULL DEFAULT false,
           PRIMARY KEY (key_domain, msk_id, item),
           FOREIGN KEY (key_domain, msk_id) REFERENCES msks (key_domain, msk_id) ON DELETE CASCADE
       );
       CREATE INDEX fanout_items_open ON fanout_items (msk_id, item) WHERE NOT done;
       CREATE TABLE fanout_acks (
           key_domain bytea  NOT NULL CHECK (length(key_domain) = 3),
           msk_id     bigint NOT NULL CHECK (msk_id BETWEEN 0 AND 4294967295),
           btid       text   COLLATE "C" NOT NULL,
           PRIMARY KEY (key_domain, msk_id, btid),
           FOREIGN KEY (key_domain, msk_id) REFERENCES msks (key_domain, msk_id) ON DELETE CASCADE
       );"#,
    // 4: acknowledgements received by a node that sent no push with their counter, unverified,
    // for the node that did (docs/cluster.md "Acknowledgements at another node").
    r#"CREATE TABLE fanout_foreign_acks (
           counter     bigint      NOT NULL CHECK (counter BETWEEN 0 AND 4294967295),
           from_addr   text        NOT NULL CHECK (length(from_addr) <= 64),
           bytes       bytea       NOT NULL CHECK (length(bytes) <= 128),
           received_at timestamptz NOT NULL DEFAULT clock_timestamp()
       );
       CREATE INDEX fanout_foreign_acks_counter ON fanout_foreign_acks (counter);
       CREATE INDEX fanout_foreign_acks_received ON fanout_foreign_acks (received_at);"#,
];

/// The latest schema version.
pub(super) fn latest() -> i64 {
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}

/// The recorded schema version (0 when there is no `schema_version` table).
pub(super) async fn version(c: &impl GenericClient) -> Result<i64, StoreError> {
    let row = c
        .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])
        .await
        .map_err(|e| db(&e))?;
    if !get::<bool>(&row, 0)? {
        return Ok(0);
    }
    let row = c
        .query_one(
            "SELECT coalesce(max(version), 0)::bigint FROM schema_version",
            &[],
        )
        .await
        .map_err(|e| db(&e))?;
    get(&row, 0)
}

/// Whether the database holds no store yet (no KEK check value): a store being created,
/// the only case in which a new KEK may be made.
pub(super) async fn is_new(c: &impl GenericClient) -> Result<bool, StoreError> {
    if version(c).await? == 0 {
        return Ok(true);
    }
    Ok(check_value(c).await?.is_none())
}

async fn check_value(c: &impl GenericClient) -> Result<Option<Vec<u8>>, StoreError> {
    let row = c
        .query_one("SELECT to_regclass('kek_check') IS NOT NULL", &[])
        .await
        .map_err(|e| db(&e))?;
    if !get::<bool>(&row, 0)? {
        return Ok(None);
    }
    match c
        .query_opt("SELECT sealed FROM kek_check WHERE id = 0", &[])
        .await
        .map_err(|e| db(&e))?
    {
        Some(row) => get(&row, 0).map(Some),
        None => Ok(None),
    }
}

pub(super) fn too_new(found: i64) -> Result<(), StoreError> {
    if found > latest() {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: latest(),
        });
    }
    Ok(())
}

/// Brings the schema to the latest version and checks the KEK against the store, recording
/// the check value when there is none: one transaction, so a refused KEK changes nothing. The
/// caller holds [`MIGRATION_LOCK`].
pub(super) async fn migrate(
    client: &mut Client,
    kek: &StateKey,
    wrong: StoreError,
) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(|e| db(&e))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version    bigint PRIMARY KEY,
             applied_at bigint NOT NULL
         );",
    )
    .await
    .map_err(|e| db(&e))?;
    let current = version(&tx).await?;
    too_new(current)?;
    let now = time_to_nanos(SystemTime::now())?;
    for (version, sql) in (1i64..)
        .zip(MIGRATIONS)
        .skip(usize::try_from(current).unwrap_or(0))
    {
        tx.batch_execute(sql).await.map_err(|e| db(&e))?;
        tx.execute(
            "INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)",
            &[&version, &now],
        )
        .await
        .map_err(|e| db(&e))?;
    }
    match check_value(&tx).await? {
        Some(sealed) if kek_opens_check(kek, &sealed) => {}
        Some(_) => return Err(wrong),
        None => {
            tx.execute(
                "INSERT INTO kek_check (id, sealed) VALUES (0, $1)",
                &[&seal_kek_check(kek)],
            )
            .await
            .map_err(|e| db(&e))?;
        }
    }
    tx.commit().await.map_err(|e| db(&e))
}

/// For a read-only open: refuses a database without a store, a schema from a newer program
/// and a wrong KEK; changes nothing.
pub(super) async fn check_read_only(
    c: &impl GenericClient,
    kek: &StateKey,
    no_store: StoreError,
    wrong: StoreError,
) -> Result<(), StoreError> {
    let found = version(c).await?;
    if found == 0 {
        return Err(no_store);
    }
    too_new(found)?;
    match check_value(c).await? {
        Some(sealed) if kek_opens_check(kek, &sealed) => Ok(()),
        _ => Err(wrong),
    }
}
