//! The small most-recently-used caches of precomputed tables of public points, shared by
//! SAKKE (`fixed.rs`) and ECCSI (`p256_table.rs`). Tables are made outside the lock by the
//! caller: two threads may make the same table once each.

use std::sync::{Arc, Mutex, PoisonError};

/// A small most-recently-used list of shared tables, most recently used last (the Z_S tables of
/// `fixed.rs`, the KPAK and signer tables of `p256_table.rs`).
pub(crate) type TableCache<K, T> = Mutex<Vec<(K, Arc<T>)>>;

/// The table of `key` in `cache`, moved to the most recently used place; `None` when absent.
pub(crate) fn cached<K: PartialEq, T>(cache: &TableCache<K, T>, key: &K) -> Option<Arc<T>> {
    let mut c = cache.lock().unwrap_or_else(PoisonError::into_inner);
    let i = c.iter().position(|(k, _)| k == key)?;
    let hit = c.remove(i);
    let table = Arc::clone(&hit.1);
    c.push(hit);
    Some(table)
}

/// Adds `table` under `key`, dropping the least recently used beyond `limit`.
pub(crate) fn remember<K, T>(cache: &TableCache<K, T>, key: K, table: &Arc<T>, limit: usize) {
    let mut c = cache.lock().unwrap_or_else(PoisonError::into_inner);
    while c.len() >= limit {
        c.remove(0);
    }
    c.push((key, Arc::clone(table)));
}
