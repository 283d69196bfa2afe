//! The relay store (docs/relay.md §4): an embedded SQLite database `<data_dir>/relay.sqlite`
//! with the transfers, their envelopes sealed at rest under the deployment's key-encryption
//! key ([`crate::crypto::at_rest::seal_with`], the KEK file of [`crate::bmsc::store::kek`]),
//! the digests of the envelopes ever accepted (to refuse a replay) and the audit log (who, when,
//! which transfer, what; never key material or envelope octets).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use rusqlite::{Connection, OptionalExtension, params};
use thiserror::Error;

use super::Purpose;
use crate::bmsc::store::StoreError;
use crate::bmsc::store::kek::{load_or_create_kek, read_kek};
use crate::crypto::StateKey;
use crate::crypto::at_rest::{open_with, seal_with};
use crate::kms::store::open_private_db;

/// The database file's name inside `data_dir`.
pub const FILE_NAME: &str = "relay.sqlite";
/// The format label bound into every sealed value.
const AD_LABEL: &str = "mbms-keys relay-store v1";

/// Why the store refused.
#[non_exhaustive]
#[derive(Debug, Error)]
pub enum RelayStoreError {
    /// The KEK file.
    #[error(transparent)]
    Kek(#[from] StoreError),
    /// The KEK does not open the store.
    #[error("the key-encryption key {0} does not open the relay store")]
    WrongKek(PathBuf),
    /// The database or its directory.
    #[error("relay store: {0}")]
    Backend(String),
    /// A stored value that does not decode or open.
    #[error("corrupt relay store: {0}")]
    Corrupt(String),
}

fn db(e: rusqlite::Error) -> RelayStoreError {
    RelayStoreError::Backend(e.to_string())
}

/// The state of a transfer (docs/relay.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Opened, no envelope yet.
    Open,
    /// The envelope is waiting for the target.
    Posted,
    /// The target acknowledged it; the envelope is deleted.
    Delivered,
    /// The source revoked it; the envelope is deleted.
    Revoked,
    /// Its time ran out; the envelope is deleted.
    Expired,
}

impl State {
    /// Its name in the API and the database.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Posted => "posted",
            Self::Delivered => "delivered",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "open" => Self::Open,
            "posted" => Self::Posted,
            "delivered" => Self::Delivered,
            "revoked" => Self::Revoked,
            "expired" => Self::Expired,
            _ => return None,
        })
    }
}

/// A transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// Its identifier (32 hex digits, random).
    pub id: String,
    /// The source identity.
    pub source: String,
    /// The target identity.
    pub target: String,
    /// What it carries.
    pub purpose: Purpose,
    /// Its state.
    pub state: State,
    /// When it was opened, Unix seconds.
    pub created: u64,
    /// When it expires, Unix seconds.
    pub expires: u64,
}

/// One audit row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// The identity that acted (or `relay` for the expiry sweep).
    pub who: String,
    /// When, Unix seconds.
    pub at: u64,
    /// The transfer.
    pub transfer: String,
    /// What happened (`open`, `post`, `fetch`, `ack`, `revoke`, `expire`, `refuse-…`).
    pub action: String,
}

/// The store.
#[derive(Debug)]
pub struct RelayStore {
    conn: Mutex<Connection>,
    kek: StateKey,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, sealed BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS transfers (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    purpose TEXT NOT NULL,
    state TEXT NOT NULL,
    created INTEGER NOT NULL,
    expires INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS transfers_target ON transfers (target, state);
CREATE INDEX IF NOT EXISTS transfers_source ON transfers (source, state);
CREATE TABLE IF NOT EXISTS envelopes (
    transfer_id TEXT PRIMARY KEY REFERENCES transfers (id),
    sealed BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS seen (digest BLOB PRIMARY KEY, until INTEGER);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    who TEXT NOT NULL,
    at INTEGER NOT NULL,
    transfer_id TEXT NOT NULL,
    action TEXT NOT NULL
);
";

/// The `until` column of `seen` (added after the first stores: their rows keep NULL, never
/// pruned) and its index.
fn migrate_seen(conn: &Connection) -> Result<(), RelayStoreError> {
    let has_until: bool = conn
        .query_row(
            "SELECT count(*) FROM pragma_table_info('seen') WHERE name = 'until'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(db)?
        > 0;
    if !has_until {
        conn.execute_batch("ALTER TABLE seen ADD COLUMN until INTEGER")
            .map_err(db)?;
    }
    conn.execute_batch("CREATE INDEX IF NOT EXISTS seen_until ON seen (until)")
        .map_err(db)
}

/// Most `seen` rows one [`RelayStore::prune_seen`] deletes (the rest go at the next sweep).
pub const PRUNE_BATCH: usize = 10_000;

fn aad(row: &str) -> Vec<u8> {
    format!("{AD_LABEL}|{row}").into_bytes()
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

type Row = (String, String, String, String, String, i64, i64);

fn transfer_of(r: Row) -> Result<Transfer, RelayStoreError> {
    let (id, source, target, purpose, state, created, expires) = r;
    let corrupt = || RelayStoreError::Corrupt(format!("transfer {id}"));
    Ok(Transfer {
        purpose: Purpose::parse(&purpose).ok_or_else(corrupt)?,
        state: State::parse(&state).ok_or_else(corrupt)?,
        created: u64::try_from(created).map_err(|_| corrupt())?,
        expires: u64::try_from(expires).map_err(|_| corrupt())?,
        id,
        source,
        target,
    })
}

/// What [`RelayStore::post`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Posted {
    /// Stored; the transfer is `posted`.
    Stored,
    /// This envelope was accepted before (for any transfer): nothing stored.
    Replay,
    /// The transfer is not `open` any more: nothing stored.
    NotOpen,
}

impl RelayStore {
    /// Opens (creating when needed, directory mode 0700, file 0600) the store in `data_dir`;
    /// a new store creates the KEK file when it does not exist, an existing one needs the KEK
    /// it was made with.
    ///
    /// # Errors
    /// [`RelayStoreError`].
    pub fn open(data_dir: &Path, kek_file: &Path) -> Result<Self, RelayStoreError> {
        let mut conn = open_private_db(data_dir, FILE_NAME).map_err(RelayStoreError::Backend)?;
        // Deleted envelopes are overwritten, not left in free pages.
        conn.pragma_update(None, "secure_delete", "ON")
            .map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        migrate_seen(&conn)?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db)?;
        let check: Option<Vec<u8>> = tx
            .query_row("SELECT sealed FROM meta WHERE name = 'check'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(db)?;
        let kek = match check {
            None => {
                let kek = load_or_create_kek(kek_file)?;
                tx.execute(
                    "INSERT INTO meta (name, sealed) VALUES ('check', ?1)",
                    [seal_with(&kek, &aad("check"), b"relay")],
                )
                .map_err(db)?;
                kek
            }
            Some(blob) => {
                let kek = read_kek(kek_file)?;
                open_with(&kek, &aad("check"), &blob)
                    .map_err(|_| RelayStoreError::WrongKek(kek_file.to_owned()))?;
                kek
            }
        };
        tx.commit().map_err(db)?;
        Ok(Self {
            conn: Mutex::new(conn),
            kek,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn audit_in(
        conn: &Connection,
        who: &str,
        at: u64,
        id: &str,
        action: &str,
    ) -> Result<(), RelayStoreError> {
        conn.execute(
            "INSERT INTO audit (who, at, transfer_id, action) VALUES (?1, ?2, ?3, ?4)",
            params![who, i(at), id, action],
        )
        .map(|_| ())
        .map_err(db)
    }

    /// Writes an audit row.
    ///
    /// # Errors
    /// [`RelayStoreError::Backend`].
    pub fn audit(&self, who: &str, at: u64, id: &str, action: &str) -> Result<(), RelayStoreError> {
        Self::audit_in(&self.lock(), who, at, id, action)
    }

    /// The audit log, oldest first.
    ///
    /// # Errors
    /// [`RelayStoreError::Backend`].
    pub fn audit_log(&self) -> Result<Vec<AuditRow>, RelayStoreError> {
        let conn = self.lock();
        let mut st = conn
            .prepare("SELECT who, at, transfer_id, action FROM audit ORDER BY seq")
            .map_err(db)?;
        let rows = st
            .query_map([], |r| {
                Ok(AuditRow {
                    who: r.get(0)?,
                    at: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                    transfer: r.get(2)?,
                    action: r.get(3)?,
                })
            })
            .map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }

    /// Records a new transfer (state `open`) and its audit row, unless its source already
    /// has `max_open` transfers open or posted: the count and the insert are one statement,
    /// so concurrent opens never pass the limit together. `false` (nothing written) at the
    /// limit.
    ///
    /// # Errors
    /// [`RelayStoreError::Backend`].
    pub fn create(&self, t: &Transfer, max_open: u64) -> Result<bool, RelayStoreError> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db)?;
        let n = tx
            .execute(
                "INSERT INTO transfers (id, source, target, purpose, state, created, expires)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7
                 WHERE (SELECT count(*) FROM transfers
                        WHERE source = ?2 AND state IN ('open', 'posted')) < ?8",
                params![
                    t.id,
                    t.source,
                    t.target,
                    t.purpose.name(),
                    t.state.name(),
                    i(t.created),
                    i(t.expires),
                    i(max_open)
                ],
            )
            .map_err(db)?;
        if n == 0 {
            return Ok(false);
        }
        Self::audit_in(&tx, &t.source, t.created, &t.id, "open")?;
        tx.commit().map_err(db)?;
        Ok(true)
    }

    /// How many transfers `source` has open or posted.
    ///
    /// # Errors
    /// [`RelayStoreError::Backend`].
    pub fn active_of(&self, source: &str) -> Result<u64, RelayStoreError> {
        let n: i64 = self
            .lock()
            .query_row(
                "SELECT count(*) FROM transfers WHERE source = ?1 AND state IN ('open', 'posted')",
                [source],
                |r| r.get(0),
            )
            .map_err(db)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The transfer `id`, if any.
    ///
    /// # Errors
    /// [`RelayStoreError`].
    pub fn get(&self, id: &str) -> Result<Option<Transfer>, RelayStoreError> {
        let row: Option<Row> = self
            .lock()
            .query_row(
                "SELECT id, source, target, purpose, state, created, expires
                 FROM transfers WHERE id = ?1",
                [id],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                },
            )
            .optional()
            .map_err(db)?;
        row.map(transfer_of).transpose()
    }

    /// Stores the envelope of the open transfer `id` (sealed), unless its replay `digest` was
    /// seen (`relay::envelope::check` gives it: over the signed octets); the digest is kept
    /// until `seen_until` (Unix seconds: when the envelope can no longer pass
    /// the check anyway), then [`RelayStore::prune_seen`] deletes it.
    ///
    /// # Errors
    /// [`RelayStoreError::Backend`].
    pub fn post(
        &self,
        id: &str,
        who: &str,
        envelope: &[u8],
        digest: &[u8; 32],
        now: u64,
        seen_until: u64,
    ) -> Result<Posted, RelayStoreError> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db)?;
        let seen: i64 = tx
            .query_row(
                "SELECT count(*) FROM seen WHERE digest = ?1",
                [&digest[..]],
                |r| r.get(0),
            )
            .map_err(db)?;
        if seen > 0 {
            return Ok(Posted::Replay);
        }
        let n = tx
            .execute(
                "UPDATE transfers SET state = 'posted' WHERE id = ?1 AND state = 'open'",
                [id],
            )
            .map_err(db)?;
        if n == 0 {
            return Ok(Posted::NotOpen);
        }
        tx.execute(
            "INSERT INTO seen (digest, until) VALUES (?1, ?2)",
            params![&digest[..], i(seen_until)],
        )
        .map_err(db)?;
        tx.execute(
            "INSERT INTO envelopes (transfer_id, sealed) VALUES (?1, ?2)",
            params![
                id,
                seal_with(&self.kek, &aad(&format!("envelope:{id}")), envelope)
            ],
        )
        .map_err(db)?;
        Self::audit_in(&tx, who, now, id, "post")?;
        tx.commit().map_err(db)?;
        Ok(Posted::Stored)
    }

    /// The envelope of transfer `id`, opened, if stored.
    ///
    /// # Errors
    /// [`RelayStoreError`].
    pub fn envelope(&self, id: &str) -> Result<Option<Vec<u8>>, RelayStoreError> {
        let blob: Option<Vec<u8>> = self
            .lock()
            .query_row(
                "SELECT sealed FROM envelopes WHERE transfer_id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)?;
        blob.map(|b| {
            open_with(&self.kek, &aad(&format!("envelope:{id}")), &b)
                .map(|p| p.to_vec())
                .map_err(|_| RelayStoreError::Corrupt(format!("envelope of {id}")))
        })
        .transpose()
    }

    /// Moves transfer `id` from one of `from` to `to`, deletes its envelope and audits
    /// `action` by `who`; `false` when it was in none of `from`.
    ///
    /// # Errors
    /// [`RelayStoreError::Backend`].
    pub fn finish(
        &self,
        id: &str,
        from: &[State],
        to: State,
        who: &str,
        action: &str,
        now: u64,
    ) -> Result<bool, RelayStoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(db)?;
        let state: Option<String> = tx
            .query_row("SELECT state FROM transfers WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(db)?;
        if !state
            .and_then(|s| State::parse(&s))
            .is_some_and(|s| from.contains(&s))
        {
            return Ok(false);
        }
        tx.execute(
            "UPDATE transfers SET state = ?2 WHERE id = ?1",
            params![id, to.name()],
        )
        .map_err(db)?;
        tx.execute("DELETE FROM envelopes WHERE transfer_id = ?1", [id])
            .map_err(db)?;
        Self::audit_in(&tx, who, now, id, action)?;
        tx.commit().map_err(db)?;
        Ok(true)
    }

    /// The ids of the posted, unexpired transfers to any of `targets`, oldest first (at most
    /// `limit`).
    ///
    /// # Errors
    /// [`RelayStoreError::Backend`].
    pub fn inbox(
        &self,
        targets: &[&str],
        now: u64,
        limit: usize,
    ) -> Result<Vec<String>, RelayStoreError> {
        let conn = self.lock();
        let mut st = conn
            .prepare(
                "SELECT id FROM transfers WHERE target = ?1 AND state = 'posted' AND expires > ?2
                 ORDER BY created, id LIMIT ?3",
            )
            .map_err(db)?;
        let mut out = Vec::new();
        for t in targets {
            let ids = st
                .query_map(params![t, i(now), i(limit as u64)], |r| {
                    r.get::<_, String>(0)
                })
                .map_err(db)?;
            for id in ids {
                out.push(id.map_err(db)?);
            }
        }
        out.truncate(limit);
        Ok(out)
    }

    /// Expires every open or posted transfer whose time is over at `now`: deletes its
    /// envelope, audits `expire`. Returns how many.
    ///
    /// # Errors
    /// [`RelayStoreError::Backend`].
    pub fn sweep(&self, now: u64) -> Result<usize, RelayStoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(db)?;
        let ids: Vec<String> = {
            let mut st = tx
                .prepare(
                    "SELECT id FROM transfers WHERE state IN ('open', 'posted') AND expires <= ?1",
                )
                .map_err(db)?;
            st.query_map([i(now)], |r| r.get(0))
                .map_err(db)?
                .collect::<Result<_, _>>()
                .map_err(db)?
        };
        for id in &ids {
            tx.execute("UPDATE transfers SET state = 'expired' WHERE id = ?1", [id])
                .map_err(db)?;
            tx.execute("DELETE FROM envelopes WHERE transfer_id = ?1", [id])
                .map_err(db)?;
            Self::audit_in(&tx, "relay", now, id, "expire")?;
        }
        tx.commit().map_err(db)?;
        Ok(ids.len())
    }

    /// Deletes at most `limit` replay digests whose time is over at `now` (their envelopes
    /// would fail the check now: signed for a key period that has ended). Returns how many.
    ///
    /// # Errors
    /// [`RelayStoreError::Backend`].
    pub fn prune_seen(&self, now: u64, limit: usize) -> Result<usize, RelayStoreError> {
        self.lock()
            .execute(
                "DELETE FROM seen WHERE digest IN
                 (SELECT digest FROM seen WHERE until <= ?1 LIMIT ?2)",
                params![i(now), i(limit as u64)],
            )
            .map_err(db)
    }

    /// How many replay digests are kept.
    ///
    /// # Errors
    /// [`RelayStoreError::Backend`].
    pub fn seen_count(&self) -> Result<u64, RelayStoreError> {
        let n: i64 = self
            .lock()
            .query_row("SELECT count(*) FROM seen", [], |r| r.get(0))
            .map_err(db)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh store in its own directory (removed on drop).
    struct Dir(PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn store(tag: &str) -> (Dir, RelayStore) {
        let dir = std::env::temp_dir().join(format!(
            "mbms-relay-store-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let s = RelayStore::open(&dir.join("data"), &dir.join("kek")).unwrap();
        (Dir(dir), s)
    }

    fn transfer(n: u32, source: &str) -> Transfer {
        Transfer {
            id: format!("{n:032x}"),
            source: source.into(),
            target: "sip:bob@example.org".into(),
            purpose: Purpose::Pck,
            state: State::Open,
            created: 1000,
            expires: 5000,
        }
    }

    #[test]
    fn replay_digests_are_pruned_once_their_time_is_over_a_batch_at_a_time() {
        let (_d, s) = store("prune");
        for n in 0..5u32 {
            assert!(s.create(&transfer(n, "a"), 100).unwrap());
            // Three digests until 2000, two until 3000.
            let until = if n < 3 { 2000 } else { 3000 };
            let env = [n as u8; 8];
            assert_eq!(
                s.post(&transfer(n, "a").id, "a", &env, &[n as u8; 32], 1000, until)
                    .unwrap(),
                Posted::Stored
            );
        }
        assert_eq!(s.seen_count().unwrap(), 5);
        assert_eq!(s.prune_seen(1999, 100).unwrap(), 0);
        // Bounded: at most `limit` rows a call.
        assert_eq!(s.prune_seen(2000, 2).unwrap(), 2);
        assert_eq!(s.prune_seen(2000, 2).unwrap(), 1);
        assert_eq!(s.prune_seen(2000, 2).unwrap(), 0);
        assert_eq!(s.seen_count().unwrap(), 2);
        // A digest still kept is still refused.
        assert!(s.create(&transfer(9, "a"), 100).unwrap());
        assert_eq!(
            s.post(&transfer(9, "a").id, "a", &[9u8; 8], &[4u8; 32], 2500, 3000)
                .unwrap(),
            Posted::Replay
        );
        assert_eq!(s.prune_seen(3000, 100).unwrap(), 2);
        assert_eq!(s.seen_count().unwrap(), 0);
    }

    #[test]
    fn a_store_made_before_pruning_gets_the_column_and_keeps_its_digests() {
        let dir = std::env::temp_dir().join(format!("mbms-relay-store-old-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let d = Dir(dir.clone());
        drop(RelayStore::open(&dir.join("data"), &dir.join("kek")).unwrap());
        {
            let c = Connection::open(dir.join("data").join(FILE_NAME)).unwrap();
            c.execute_batch(
                "DROP INDEX seen_until; DROP TABLE seen;
                 CREATE TABLE seen (digest BLOB PRIMARY KEY);
                 INSERT INTO seen (digest) VALUES (x'01');",
            )
            .unwrap();
        }
        let s = RelayStore::open(&dir.join("data"), &dir.join("kek")).unwrap();
        assert_eq!(s.seen_count().unwrap(), 1);
        assert_eq!(s.prune_seen(u64::MAX / 2, 100).unwrap(), 0, "NULL is kept");
        drop(s);
        drop(d);
    }

    #[test]
    fn concurrent_opens_never_pass_the_limit() {
        let (_d, s) = store("limit");
        let s = std::sync::Arc::new(s);
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(16));
        let handles: Vec<_> = (0..16u32)
            .map(|n| {
                let (s, b) = (s.clone(), barrier.clone());
                std::thread::spawn(move || {
                    b.wait();
                    s.create(&transfer(n, "alice"), 5).unwrap()
                })
            })
            .collect();
        let created = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|c| *c)
            .count();
        assert_eq!(created, 5);
        assert_eq!(s.active_of("alice").unwrap(), 5);
        // Another source has its own count; audit rows only for what was created.
        assert!(s.create(&transfer(100, "carol"), 5).unwrap());
        let opens = s
            .audit_log()
            .unwrap()
            .iter()
            .filter(|r| r.action == "open")
            .count();
        assert_eq!(opens, 6);
        // A finished transfer no longer counts.
        let first = s
            .audit_log()
            .unwrap()
            .into_iter()
            .find(|r| r.who == "alice")
            .unwrap()
            .transfer;
        assert!(!s.create(&transfer(200, "alice"), 5).unwrap());
        assert!(
            s.finish(
                &first,
                &[State::Open],
                State::Revoked,
                "alice",
                "revoke",
                1001
            )
            .unwrap()
        );
        assert!(s.create(&transfer(200, "alice"), 5).unwrap());
    }
}
