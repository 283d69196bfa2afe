//! The GBA key cache in front of a network key source: the store's sealed key cache
//! ([`Store::cached_keys`], [`Store::cache_keys`]) holds each B-TID's keys until their
//! Key-ExpiryTime, so the BSF is asked once per B-TID while its keys are valid, and a restart
//! (the cache is in the store) asks again for no one.
//!
//! [`CachingKeySource`] answers from the cache, else asks the inner source and caches what it
//! gets. [`CachedOnly`] answers from the cache alone: the Key Distribution function's MSK
//! fan-out uses it, so pushing an MSK to N UEs makes no BSF request (a UE whose keys are not
//! cached, or have expired, must come back with a Key Request, which looks them up again).

use std::sync::Arc;
use std::time::SystemTime;

use tracing::warn;

use super::metrics::Metrics;
use super::store::Store;
use crate::gba::{KeySource, KeySourceError, SubscriberKeys};

/// A [`KeySource`] that consults the store's key cache before `inner`.
pub struct CachingKeySource {
    inner: Arc<dyn KeySource>,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for CachingKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachingKeySource").finish_non_exhaustive()
    }
}

impl CachingKeySource {
    /// `inner` behind the key cache of `store`; hits and misses counted in `metrics`.
    #[must_use]
    pub fn new(inner: Arc<dyn KeySource>, store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Self {
        Self {
            inner,
            store,
            metrics,
        }
    }

    /// The cache-only view of the same store.
    #[must_use]
    pub fn cached_only(&self) -> CachedOnly {
        CachedOnly {
            store: self.store.clone(),
        }
    }
}

/// The cached keys of `btid` at `now`; a store failure is logged and read as a miss.
fn cached(store: &dyn Store, btid: &str, now: SystemTime) -> Option<SubscriberKeys> {
    match store.cached_keys(btid, now) {
        Ok(k) => k,
        Err(e) => {
            warn!(btid, error = %e, "GBA key cache unreadable");
            None
        }
    }
}

impl KeySource for CachingKeySource {
    fn lookup(&self, btid: &str, now: SystemTime) -> Result<SubscriberKeys, KeySourceError> {
        if let Some(k) = cached(self.store.as_ref(), btid, now) {
            self.metrics.gba_cache_hits.inc();
            return Ok(k);
        }
        self.metrics.gba_cache_misses.inc();
        let keys = self.inner.lookup(btid, now)?;
        if let Err(e) = self.store.cache_keys(&keys) {
            // The keys are still good for this request; the next one asks again.
            warn!(btid, error = %e, "GBA keys not cached");
        }
        Ok(keys)
    }
}

/// A [`KeySource`] over the key cache alone: a miss is [`KeySourceError::Expired`] (the keys
/// were cached when the UE registered, so they are gone only once their lifetime ended or
/// were never valid).
#[derive(Clone)]
pub struct CachedOnly {
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for CachedOnly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedOnly").finish_non_exhaustive()
    }
}

impl KeySource for CachedOnly {
    fn lookup(&self, btid: &str, now: SystemTime) -> Result<SubscriberKeys, KeySourceError> {
        cached(self.store.as_ref(), btid, now).ok_or(KeySourceError::Expired)
    }
}
