//! What lets several BM-SC nodes share one PostgreSQL store (docs/cluster.md):
//!
//! - [`Ownership`]: one owner per MSK group, a session advisory lock per group held on the
//!   node's dedicated connection, so PostgreSQL releases it when that connection ends (`kill -9`
//!   of the node, a network cut, a server restart). Each claim round probes the connection; a
//!   dead one is noticed there, everything it held is given up (and logged), and the next round
//!   reconnects and claims again;
//! - the one MSK per (Key Domain ID, MSK ID) and the one MTK per (MSK ID, MTK ID): inserts that
//!   keep the first row ([`create_msk`], [`claim_mtk`]), the later writer adopting it;
//! - counter blocks reserved under the row lock of the one counter row ([`reserve_counters`]).

use std::collections::HashSet;
use std::time::Duration;

use deadpool_postgres::Pool;
use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use super::open::connect;
use super::{db, get, pool_err};
use crate::bmsc::store::codec::{open_mtk, seal_mtk};
use crate::bmsc::store::{CurrentMtk, StoreError};
use crate::crypto::StateKey;
use crate::mikey::{KeyDomainId, MskId};

/// How long the liveness probe of the ownership connection may take before the connection is
/// taken for dead.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// docs/profile.md §6 \[CHOICE\] "unit of ownership in a cluster": the MSK group.
/// The advisory lock key of an MSK group: the first 8 octets of SHA-256 over a label and the
/// group's name, so that no other user of the database collides with it by accident.
#[must_use]
pub(crate) fn lock_key(group: &str) -> i64 {
    let digest = Sha256::new()
        .chain_update(b"mbms-keys bmsc msk-owner\0")
        .chain_update(group.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// The node's dedicated connection and the group locks it holds.
pub(crate) struct Ownership {
    pg: tokio_postgres::Config,
    state: tokio::sync::Mutex<State>,
}

struct State {
    client: Option<Client>,
    held: HashSet<i64>,
}

impl Ownership {
    /// Ownership over `client`, reconnecting with `pg` when it dies.
    pub(crate) fn new(pg: tokio_postgres::Config, client: Client) -> Self {
        Self {
            pg,
            state: tokio::sync::Mutex::new(State {
                client: Some(client),
                held: HashSet::new(),
            }),
        }
    }

    /// One claim round (see [`crate::bmsc::store::Store::claim_ownership`]).
    pub(crate) async fn claim(&self, keys: &[i64]) -> Result<Vec<bool>, StoreError> {
        let mut st = self.state.lock().await;
        let alive = match &st.client {
            Some(c) if !c.is_closed() => {
                matches!(
                    tokio::time::timeout(PROBE_TIMEOUT, c.simple_query("SELECT 1")).await,
                    Ok(Ok(_))
                )
            }
            _ => false,
        };
        if !alive {
            if !st.held.is_empty() {
                tracing::warn!(
                    groups = st.held.len(),
                    "the ownership connection to the database is lost: this node gives up \
                     its MSK groups until it reconnects"
                );
            }
            st.held.clear();
            st.client = None;
            st.client = Some(connect(&self.pg).await?);
        }
        let State { client, held } = &mut *st;
        let Some(client) = client.as_ref() else {
            return Err(StoreError::Backend("no ownership connection".to_owned()));
        };
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            if held.contains(key) {
                out.push(true);
                continue;
            }
            let row = client
                .query_one("SELECT pg_try_advisory_lock($1)", &[key])
                .await
                .map_err(|e| db(&e))?;
            let got: bool = get(&row, 0)?;
            if got {
                held.insert(*key);
            }
            out.push(got);
        }
        Ok(out)
    }
}

/// RFC 1982 (32 bits): whether `a` is before `b`.
fn serial_before(a: u32, b: u32) -> bool {
    let d = b.wrapping_sub(a);
    d != 0 && d < 0x8000_0000
}

/// The block after a stored ceiling: its first value and the new ceiling.
pub(crate) fn next_block(ceiling: u32, floor: u32, n: u32) -> (u32, u32) {
    let n = n.clamp(1, 0x4000_0000);
    let mut first = if ceiling == 0 || serial_before(ceiling, floor) {
        floor
    } else {
        ceiling
    };
    if first.checked_add(n - 1).is_none() {
        // Skipping to 0 is harmless: 0 is after 0xffffffff in RFC 1982 order.
        first = 0;
    }
    let mut new = first.wrapping_add(n);
    if new == 0 {
        // 0 is the ceiling of a fresh store only.
        new = 1;
    }
    (first, new)
}

/// Reserves `n` counter values after every value reserved before: the counter row is locked
/// for the transaction, so concurrent reservations of other nodes queue behind it.
pub(crate) async fn reserve_counters(pool: Pool, floor: u32, n: u32) -> Result<u32, StoreError> {
    let mut client = pool.get().await.map_err(|e| pool_err(&e))?;
    let tx = client.transaction().await.map_err(|e| db(&e))?;
    let row = tx
        .query_one("SELECT ceiling FROM counter WHERE id = 0 FOR UPDATE", &[])
        .await
        .map_err(|e| db(&e))?;
    let ceiling = u32::try_from(get::<i64>(&row, 0)?).map_err(|_| StoreError::Corrupt {
        what: "counter",
        id: "0".to_owned(),
    })?;
    let (first, new) = next_block(ceiling, floor, n);
    tx.execute(
        "UPDATE counter SET ceiling = $1 WHERE id = 0",
        &[&i64::from(new)],
    )
    .await
    .map_err(|e| db(&e))?;
    tx.commit().await.map_err(|e| db(&e))?;
    Ok(first)
}

/// The insert of a new MSK that keeps a row already there.
pub(crate) const INSERT_MSK_IF_ABSENT: &str =
    "INSERT INTO msks (key_domain, msk_id, seql, sequ, created_at, activates_at,
                       expires_at, state, mtk_next_id, sealed)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
     ON CONFLICT (key_domain, msk_id) DO NOTHING";

/// Claims the MTK of (key domain, MSK ID, MTK ID): the first claim stays, later ones get it.
pub(crate) async fn claim_mtk(
    pool: Pool,
    kek: StateKey,
    key_domain: KeyDomainId,
    msk_id: MskId,
    mtk: CurrentMtk,
) -> Result<CurrentMtk, StoreError> {
    let client = pool.get().await.map_err(|e| pool_err(&e))?;
    let kd = key_domain.0.to_vec();
    let id = i64::from(msk_id.to_u32());
    let mtk_id = i32::from(mtk.id.0);
    let sealed = seal_mtk(&kek, key_domain, msk_id, &mtk);
    let inserted = client
        .execute(
            "INSERT INTO mtks (key_domain, msk_id, mtk_id, sealed) VALUES ($1, $2, $3, $4)
             ON CONFLICT (key_domain, msk_id, mtk_id) DO NOTHING",
            &[&kd, &id, &mtk_id, &sealed],
        )
        .await
        .map_err(|e| db(&e))?;
    if inserted == 1 {
        return Ok(mtk);
    }
    let row = client
        .query_one(
            "SELECT sealed FROM mtks WHERE key_domain = $1 AND msk_id = $2 AND mtk_id = $3",
            &[&kd, &id, &mtk_id],
        )
        .await
        .map_err(|e| db(&e))?;
    let stored: Vec<u8> = get(&row, 0)?;
    open_mtk(&kek, key_domain, msk_id, mtk.id, &stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_follow_the_ceiling_or_the_floor_and_never_wrap() {
        assert_eq!(next_block(0, 500, 10), (500, 510));
        assert_eq!(next_block(1000, 500, 10), (1000, 1010));
        assert_eq!(next_block(1000, 2000, 10), (2000, 2010));
        assert_eq!(next_block(u32::MAX - 3, u32::MAX - 100, 10), (0, 10));
        assert_eq!(
            next_block(u32::MAX - 9, u32::MAX - 100, 10),
            (u32::MAX - 9, 1)
        );
        // A ceiling just before the wrap is behind a floor just after it (RFC 1982).
        assert_eq!(next_block(u32::MAX - 3, 5, 10), (5, 15));
    }

    #[test]
    fn lock_keys_differ_per_group() {
        assert_ne!(lock_key("000001:0001"), lock_key("000001:0002"));
        assert_eq!(lock_key("a"), lock_key("a"));
    }
}
