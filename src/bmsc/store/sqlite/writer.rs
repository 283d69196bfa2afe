//! The registrations' writer: the group commit over the SQLite writer connection, one
//! transaction per batch and one savepoint per registration.

use std::sync::{Arc, Mutex};

use rusqlite::{Connection, TransactionBehavior};

use super::{db, lock, upsert_registration};
use crate::bmsc::store::batch::{GroupCommit, GroupCommitLimits};
use crate::bmsc::store::{Registration, StoreError};

/// The group commit of registrations over the `writer` connection, with its writer thread.
pub(super) fn registration_writer(
    writer: &Arc<Mutex<Connection>>,
    limits: GroupCommitLimits,
) -> Result<GroupCommit<Registration, ()>, StoreError> {
    let conn = Arc::clone(writer);
    GroupCommit::start(limits, "bmsc-store-writer", move |batch| {
        register_batch(&conn, &batch)
    })
    .map_err(|e| StoreError::Backend(format!("cannot start the store writer: {e}")))
}

/// Writes a batch of registrations in one transaction, each in its own savepoint so that one
/// failing registration leaves the others; one result per registration.
fn register_batch(
    writer: &Mutex<Connection>,
    batch: &[Registration],
) -> Vec<Result<(), StoreError>> {
    let all_failed = |e: &rusqlite::Error| {
        batch
            .iter()
            .map(|_| Err(StoreError::Backend(e.to_string())))
            .collect()
    };
    let mut conn = lock(writer);
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return all_failed(&e),
    };
    let mut out = Vec::with_capacity(batch.len());
    for r in batch {
        let one = tx.savepoint().map_err(db).and_then(|sp| {
            upsert_registration(&sp, r)?;
            sp.commit().map_err(db)
        });
        out.push(one);
    }
    match tx.commit() {
        Ok(()) => out,
        Err(e) => all_failed(&e),
    }
}
