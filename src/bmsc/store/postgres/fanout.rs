//! Shared MSK fan-out on PostgreSQL (docs/cluster.md "Shared fan-out"): the work items of a
//! fan-out (`fanout_items`, ranges of B-TIDs of one service), claimed by any node with
//! `SELECT … FOR UPDATE SKIP LOCKED` under a lease on the database's clock, and the
//! acknowledgements recorded for them (`fanout_acks`), written many rows per statement, and
//! the unverified acknowledgements received by a node that sent no push with their counter
//! (`fanout_foreign_acks`).

use deadpool_postgres::Pool;
use tokio_postgres::Row;

use super::{db, get, parse_btid, pool_err};
use crate::bmsc::store::{AckedPush, FanoutItem, FanoutProgress, ForeignAck, StoreError};
use crate::mikey::{KeyDomainId, MskId};

/// (Key Domain ID ‖ MSK ID as 8 octets big-endian): how a claim names the MSKs it takes
/// items of (`key_domain || int8send(msk_id)`).
pub(super) fn msk_key(key_domain: KeyDomainId, msk_id: MskId) -> Vec<u8> {
    let mut k = key_domain.0.to_vec();
    k.extend_from_slice(&i64::from(msk_id.to_u32()).to_be_bytes());
    k
}

fn corrupt(what: &'static str) -> StoreError {
    StoreError::Corrupt {
        what,
        id: String::new(),
    }
}

fn key_domain_of(v: &[u8]) -> Result<KeyDomainId, StoreError> {
    <[u8; 3]>::try_from(v)
        .map(KeyDomainId)
        .map_err(|_| corrupt("fan-out item"))
}

fn msk_id_of(v: i64) -> Result<MskId, StoreError> {
    u32::try_from(v)
        .map(MskId::from_u32)
        .map_err(|_| corrupt("fan-out item"))
}

const PROGRESS: &str = "SELECT count(*), count(*) FILTER (WHERE NOT sent),
                               count(*) FILTER (WHERE NOT done)
                        FROM fanout_items WHERE key_domain = $1 AND msk_id = $2";

fn progress_of(row: &Row) -> Result<FanoutProgress, StoreError> {
    let n = |i| get::<i64>(row, i).map(i64::unsigned_abs);
    Ok(FanoutProgress {
        items: n(0)?,
        unsent: n(1)?,
        open: n(2)?,
    })
}

/// The fan-out's progress.
pub(super) async fn progress(
    pool: Pool,
    key_domain: KeyDomainId,
    msk_id: MskId,
) -> Result<FanoutProgress, StoreError> {
    let client = pool.get().await.map_err(|e| pool_err(&e))?;
    let row = client
        .query_one(
            PROGRESS,
            &[&key_domain.0.to_vec(), &i64::from(msk_id.to_u32())],
        )
        .await
        .map_err(|e| db(&e))?;
    progress_of(&row)
}

/// docs/profile.md §6 \[CHOICE\] "fan-out work items": ranges of B-TIDs.
/// Writes the items of the fan-out of `msk_id` unless it has some: under the row lock of the
/// MSK, so that two writers (a stale owner and the new one) never both write. The boundaries
/// are every `item_size`-th B-TID of each service, found by the server in one query per
/// service (no B-TID crosses the connection but the boundaries).
pub(super) async fn create(
    pool: Pool,
    key_domain: KeyDomainId,
    msk_id: MskId,
    service_ids: Vec<String>,
    item_size: usize,
) -> Result<FanoutProgress, StoreError> {
    let mut client = pool.get().await.map_err(|e| pool_err(&e))?;
    let tx = client.transaction().await.map_err(|e| db(&e))?;
    let kd = key_domain.0.to_vec();
    let id = i64::from(msk_id.to_u32());
    tx.query_opt(
        "SELECT 1 FROM msks WHERE key_domain = $1 AND msk_id = $2 FOR UPDATE",
        &[&kd, &id],
    )
    .await
    .map_err(|e| db(&e))?
    .ok_or_else(|| StoreError::Corrupt {
        what: "MSK",
        id: format!("{key_domain}/{msk_id}"),
    })?;
    let found = progress_of(
        &tx.query_one(PROGRESS, &[&kd, &id])
            .await
            .map_err(|e| db(&e))?,
    )?;
    if found.items > 0 {
        tx.commit().await.map_err(|e| db(&e))?;
        return Ok(found);
    }
    let size = i64::try_from(item_size.max(1)).unwrap_or(i64::MAX);
    let mut item = 0i32;
    for service in &service_ids {
        let rows = tx
            .query(
                "SELECT btid FROM (SELECT btid, row_number() OVER (ORDER BY btid) AS n
                                   FROM registrations WHERE service_id = $1) r
                 WHERE n % $2 = 0 ORDER BY btid",
                &[service, &size],
            )
            .await
            .map_err(|e| db(&e))?;
        let mut after: Option<String> = None;
        let bounds = rows
            .iter()
            .map(|r| get::<String>(r, 0).map(Some))
            .chain(std::iter::once(Ok(None)));
        for until in bounds {
            let until = until?;
            tx.execute(
                "INSERT INTO fanout_items (key_domain, msk_id, item, service_id, after_btid,
                                           until_btid)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[&kd, &id, &item, service, &after, &until],
            )
            .await
            .map_err(|e| db(&e))?;
            item = item.saturating_add(1);
            after = until;
        }
    }
    tx.commit().await.map_err(|e| db(&e))?;
    let n = u64::try_from(item).unwrap_or(0);
    Ok(FanoutProgress {
        items: n,
        unsent: n,
        open: n,
    })
}

const ITEM_COLUMNS: &str = "key_domain, msk_id, item, service_id, after_btid, until_btid, claims";

fn item_of(row: &Row) -> Result<FanoutItem, StoreError> {
    let bound = |i| -> Result<_, StoreError> {
        get::<Option<String>>(row, i)?
            .map(|b| parse_btid(&b))
            .transpose()
    };
    Ok(FanoutItem {
        key_domain: key_domain_of(&get::<Vec<u8>>(row, 0)?)?,
        msk_id: msk_id_of(get(row, 1)?)?,
        item: u32::try_from(get::<i32>(row, 2)?).map_err(|_| corrupt("fan-out item"))?,
        service_id: get(row, 3)?,
        after: bound(4)?,
        until: bound(5)?,
        claims: u32::try_from(get::<i32>(row, 6)?).unwrap_or(u32::MAX),
    })
}

/// Claims one open item nobody holds among the fan-outs of `msks` ([`msk_key`]).
pub(super) async fn claim(
    pool: Pool,
    node: String,
    lease_ms: f64,
    msks: Vec<Vec<u8>>,
) -> Result<Option<FanoutItem>, StoreError> {
    let client = pool.get().await.map_err(|e| pool_err(&e))?;
    let sql = format!(
        "UPDATE fanout_items f
         SET claimed_by = $1, lease_until = clock_timestamp() + $2 * interval '1 millisecond',
             claims = f.claims + 1
         FROM (SELECT key_domain, msk_id, item FROM fanout_items
               WHERE NOT done AND (lease_until IS NULL OR lease_until < clock_timestamp())
                 AND (key_domain || int8send(msk_id)) = ANY($3)
               ORDER BY msk_id, item LIMIT 1
               FOR UPDATE SKIP LOCKED) c
         WHERE f.key_domain = c.key_domain AND f.msk_id = c.msk_id AND f.item = c.item
         RETURNING {}",
        ITEM_COLUMNS
            .split(", ")
            .map(|c| format!("f.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let row = client
        .query_opt(&sql, &[&node, &lease_ms, &msks])
        .await
        .map_err(|e| db(&e))?;
    row.as_ref().map(item_of).transpose()
}

/// Extends the leases of the open items `node` holds; the items still held.
pub(super) async fn renew(
    pool: Pool,
    node: String,
    lease_ms: f64,
) -> Result<Vec<(KeyDomainId, MskId, u32)>, StoreError> {
    let client = pool.get().await.map_err(|e| pool_err(&e))?;
    let rows = client
        .query(
            "UPDATE fanout_items
             SET lease_until = clock_timestamp() + $2 * interval '1 millisecond'
             WHERE claimed_by = $1 AND NOT done
             RETURNING key_domain, msk_id, item",
            &[&node, &lease_ms],
        )
        .await
        .map_err(|e| db(&e))?;
    rows.iter()
        .map(|r| {
            Ok((
                key_domain_of(&get::<Vec<u8>>(r, 0)?)?,
                msk_id_of(get(r, 1)?)?,
                u32::try_from(get::<i32>(r, 2)?).map_err(|_| corrupt("fan-out item"))?,
            ))
        })
        .collect()
}

/// Marks an item `node` holds as sent, or done (closed, its lease released).
pub(super) async fn mark(
    pool: Pool,
    node: String,
    item: FanoutItem,
    done: bool,
) -> Result<(), StoreError> {
    let client = pool.get().await.map_err(|e| pool_err(&e))?;
    let number = i32::try_from(item.item).map_err(|_| corrupt("fan-out item"))?;
    client
        .execute(
            "UPDATE fanout_items
             SET sent = true, done = done OR $5,
                 lease_until = CASE WHEN $5 THEN NULL ELSE lease_until END
             WHERE key_domain = $1 AND msk_id = $2 AND item = $3 AND claimed_by = $4",
            &[
                &item.key_domain.0.to_vec(),
                &i64::from(item.msk_id.to_u32()),
                &number,
                &node,
                &done,
            ],
        )
        .await
        .map_err(|e| db(&e))?;
    Ok(())
}

/// Records acknowledgements, one statement for all (rows of MSKs deleted meanwhile are left
/// out; rows already there are kept).
pub(super) async fn record_acks(pool: Pool, acks: Vec<AckedPush>) -> Result<(), StoreError> {
    let client = pool.get().await.map_err(|e| pool_err(&e))?;
    let kds: Vec<Vec<u8>> = acks.iter().map(|a| a.0.0.to_vec()).collect();
    let ids: Vec<i64> = acks.iter().map(|a| i64::from(a.1.to_u32())).collect();
    let btids: Vec<&str> = acks.iter().map(|a| a.2.as_str()).collect();
    client
        .execute(
            "INSERT INTO fanout_acks (key_domain, msk_id, btid)
             SELECT u.kd, u.id, u.btid
             FROM unnest($1::bytea[], $2::bigint[], $3::text[]) AS u(kd, id, btid)
             JOIN msks m ON m.key_domain = u.kd AND m.msk_id = u.id
             ON CONFLICT DO NOTHING",
            &[&kds, &ids, &btids],
        )
        .await
        .map_err(|e| db(&e))?;
    Ok(())
}

/// Which of `btids` acknowledged a push of `msk_id`.
pub(super) async fn acked(
    pool: Pool,
    key_domain: KeyDomainId,
    msk_id: MskId,
    btids: Vec<String>,
) -> Result<Vec<String>, StoreError> {
    let client = pool.get().await.map_err(|e| pool_err(&e))?;
    let rows = client
        .query(
            "SELECT btid FROM fanout_acks
             WHERE key_domain = $1 AND msk_id = $2 AND btid = ANY($3)",
            &[&key_domain.0.to_vec(), &i64::from(msk_id.to_u32()), &btids],
        )
        .await
        .map_err(|e| db(&e))?;
    rows.iter().map(|r| get(r, 0)).collect()
}

/// Counters below the cluster's ceiling a foreign acknowledgement may carry (64 default
/// counter blocks): older (or not yet reserved) ones name no push in flight and are left out.
const FOREIGN_ACK_WINDOW: i64 = 64 * 0x1_0000;

/// Records foreign acknowledgements in one statement (only counters within the last
/// [`FOREIGN_ACK_WINDOW`] counters below the ceiling), then deletes those older than `retain`.
pub(super) async fn record_foreign_acks(
    pool: Pool,
    acks: Vec<ForeignAck>,
    retain: std::time::Duration,
) -> Result<(), StoreError> {
    let client = pool.get().await.map_err(|e| pool_err(&e))?;
    if !acks.is_empty() {
        let counters: Vec<i64> = acks.iter().map(|a| i64::from(a.counter)).collect();
        let froms: Vec<String> = acks.iter().map(|a| a.from.to_string()).collect();
        let bytes: Vec<&[u8]> = acks.iter().map(|a| a.bytes.as_slice()).collect();
        let window = FOREIGN_ACK_WINDOW;
        client
            .execute(
                "INSERT INTO fanout_foreign_acks (counter, from_addr, bytes)
                 SELECT u.counter, u.from_addr, u.bytes
                 FROM unnest($1::bigint[], $2::text[], $3::bytea[]) AS u(counter, from_addr, bytes)
                 JOIN counter c ON c.id = 0
                 WHERE u.counter < c.ceiling AND u.counter >= c.ceiling - $4",
                &[&counters, &froms, &bytes, &window],
            )
            .await
            .map_err(|e| db(&e))?;
    }
    let retain_ms = retain.as_secs_f64() * 1000.0;
    client
        .execute(
            "DELETE FROM fanout_foreign_acks
             WHERE received_at < clock_timestamp() - $1 * interval '1 millisecond'",
            &[&retain_ms],
        )
        .await
        .map_err(|e| db(&e))?;
    Ok(())
}

/// The foreign acknowledgements recorded for `counters` (rows that do not parse are left out).
pub(super) async fn foreign_acks(
    pool: Pool,
    counters: Vec<u32>,
) -> Result<Vec<ForeignAck>, StoreError> {
    let client = pool.get().await.map_err(|e| pool_err(&e))?;
    let counters: Vec<i64> = counters.into_iter().map(i64::from).collect();
    let rows = client
        .query(
            "SELECT counter, from_addr, bytes FROM fanout_foreign_acks
             WHERE counter = ANY($1)",
            &[&counters],
        )
        .await
        .map_err(|e| db(&e))?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let (Ok(counter), Ok(from)) = (
            u32::try_from(get::<i64>(r, 0)?),
            get::<String>(r, 1)?.parse(),
        ) else {
            continue;
        };
        out.push(ForeignAck {
            counter,
            from,
            bytes: get(r, 2)?,
        });
    }
    Ok(out)
}
