//! Configuration reload (SIGHUP to `bmsc serve`): the file is read again and what can change
//! live is swapped in — the embedded subscriber list (`[[gba.subscribers]]`) and the service
//! authorisations (`services[].authorized`) — without dropping registrations. Any other
//! difference is refused with a message naming the keys that differ, and the running
//! configuration stays. Reloads are counted in `mbms_bmsc_config_reloads_total{result=...}`.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::SystemTime;

use super::config::{Authorized, Config, ConfigError, KeySourceConfig};
use super::keyreq::KeyRequestHandler;
use super::metrics::{Counter, Metrics};
use crate::gba::{KeySource, KeySourceError, SubscriberKeys};

/// A key source that a reload can replace as a whole; lookups in flight finish on the old one.
pub struct SwappableKeySource {
    inner: RwLock<Arc<dyn KeySource>>,
}

impl SwappableKeySource {
    /// Starts with `inner`.
    #[must_use]
    pub fn new(inner: Arc<dyn KeySource>) -> Self {
        Self {
            inner: RwLock::new(inner),
        }
    }

    /// Replaces the source.
    pub fn replace(&self, inner: Arc<dyn KeySource>) {
        *self.inner.write().unwrap_or_else(PoisonError::into_inner) = inner;
    }
}

impl KeySource for SwappableKeySource {
    fn lookup(&self, btid: &str, now: SystemTime) -> Result<SubscriberKeys, KeySourceError> {
        let current = Arc::clone(&self.inner.read().unwrap_or_else(PoisonError::into_inner));
        current.lookup(btid, now)
    }

    /// The current source's answer: a reload may swap an embedded list for another, never
    /// the kind of source (that is refused).
    fn may_block(&self) -> bool {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .may_block()
    }
}

/// `mbms_bmsc_config_reloads_total{result="applied|refused|invalid"}`.
#[derive(Debug, Default)]
pub struct ReloadMetrics {
    /// Reloads applied (also those that changed nothing).
    pub applied: Counter,
    /// Reloads refused: a key that cannot change live differs.
    pub refused: Counter,
    /// Reloads of a file that could not be read or is not a valid configuration.
    pub invalid: Counter,
}

impl ReloadMetrics {
    /// Appends the Prometheus text lines.
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP mbms_bmsc_config_reloads_total Configuration reloads by result.\n\
             # TYPE mbms_bmsc_config_reloads_total counter"
        );
        for (label, c) in [
            ("applied", &self.applied),
            ("refused", &self.refused),
            ("invalid", &self.invalid),
        ] {
            let _ = writeln!(
                out,
                "mbms_bmsc_config_reloads_total{{result=\"{label}\"}} {}",
                c.get()
            );
        }
    }
}

/// What a reload did.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// Swapped in: the subscriber list and the authorisations now in force.
    Applied {
        /// Embedded subscribers now listed.
        subscribers: usize,
    },
    /// Refused: these keys differ and cannot change while running.
    Refused {
        /// The keys, e.g. `http_listen`, `services`.
        keys: Vec<String>,
    },
    /// The file could not be read or is not a valid configuration.
    Invalid(ConfigError),
}

/// The keys that differ between `old` and `new` and cannot change live: everything but the
/// embedded subscriber list and `services[].authorized`. \[CHOICE\] (docs/profile.md §6): what
/// needs no rebinding or re-keying changes live; stored registrations are always kept.
#[must_use]
pub fn fixed_differences(old: &Config, new: &Config) -> Vec<String> {
    let mut keys = Vec::new();
    let mut differs = |key: &str, d: bool| {
        if d {
            keys.push(key.to_owned());
        }
    };
    differs("fqdn", old.fqdn != new.fqdn);
    differs("http_listen", old.http_listen != new.http_listen);
    differs("admin_listen", old.admin_listen != new.admin_listen);
    differs("ue_port", old.ue_port != new.ue_port);
    differs("data_dir", old.data_dir != new.data_dir);
    differs("kek_file", old.kek_file != new.kek_file);
    differs("store", old.store != new.store);
    differs("log_format", old.log_format != new.log_format);
    differs("digest", old.digest != new.digest);
    differs("http", old.http != new.http);
    differs("push", old.push != new.push);
    differs("cluster", old.cluster != new.cluster);
    differs(
        "multicast_ttl/multicast_interface",
        old.multicast != new.multicast,
    );
    differs(
        "key_export_socket",
        old.key_export_socket != new.key_export_socket,
    );
    let gba = match (&old.gba.source, &new.gba.source) {
        (KeySourceConfig::Embedded(_), KeySourceConfig::Embedded(_)) => None,
        (KeySourceConfig::Zn(a), KeySourceConfig::Zn(b)) => (a != b).then_some("gba.zn"),
        (KeySourceConfig::Nbsp(a), KeySourceConfig::Nbsp(b)) => (a != b).then_some("gba.nbsp"),
        (KeySourceConfig::Aanf(a), KeySourceConfig::Aanf(b)) => (a != b).then_some("gba.aanf"),
        _ => Some("gba (the kind of key source)"),
    };
    if let Some(k) = gba {
        keys.push(k.to_owned());
    }
    let ids = |c: &Config| c.services.iter().map(|s| s.id.clone()).collect::<Vec<_>>();
    if ids(old) != ids(new) {
        keys.push("services (added, removed or reordered)".to_owned());
    } else {
        for (i, (a, b)) in old.services.iter().zip(&new.services).enumerate() {
            let (mut a, mut b) = (a.clone(), b.clone());
            a.authorized = Authorized::Everyone;
            b.authorized = Authorized::Everyone;
            if a != b {
                keys.push(format!("services[{i}] ({})", a.id));
            }
        }
    }
    keys
}

/// Applies reloads to a running BM-SC.
pub struct Reloader {
    current: Mutex<Config>,
    /// The embedded key source, when the BM-SC built it from the configuration.
    keys: Option<Arc<SwappableKeySource>>,
    handler: Arc<KeyRequestHandler>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("embedded", &self.keys.is_some())
            .finish_non_exhaustive()
    }
}

impl Reloader {
    /// A reloader for a BM-SC started with `config`; `keys` is its embedded key source when
    /// it was built from `[[gba.subscribers]]`.
    #[must_use]
    pub fn new(
        config: Config,
        keys: Option<Arc<SwappableKeySource>>,
        handler: Arc<KeyRequestHandler>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            current: Mutex::new(config),
            keys,
            handler,
            metrics,
        }
    }

    /// Reads `path` and applies it ([`Reloader::apply`]).
    pub fn reload_file(&self, path: &Path) -> ReloadOutcome {
        match Config::load(path) {
            Ok(c) => self.apply(c),
            Err(e) => self.invalid(e),
        }
    }

    fn invalid(&self, e: ConfigError) -> ReloadOutcome {
        self.metrics.reloads.invalid.inc();
        tracing::error!(error = %e, "configuration reload refused: the file is not valid; the running configuration stays");
        ReloadOutcome::Invalid(e)
    }

    /// Swaps in `new`'s subscribers and authorisations, or refuses it (module doc).
    pub fn apply(&self, new: Config) -> ReloadOutcome {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let mut keys = fixed_differences(&current, &new);
        let subscribers_changed = !same_subscribers(&current, &new);
        if subscribers_changed && self.keys.is_none() {
            keys.push("gba.subscribers (this BM-SC was given its key source)".to_owned());
        }
        if !keys.is_empty() {
            self.metrics.reloads.refused.inc();
            tracing::error!(
                keys = %keys.join(", "),
                "configuration reload refused: these keys cannot change while running (restart to apply them); the running configuration stays"
            );
            return ReloadOutcome::Refused { keys };
        }
        // The embedded source is rebuilt on every reload: key material may have changed.
        if let Some(swap) = &self.keys {
            match new.key_source() {
                Ok(source) => swap.replace(Arc::new(source)),
                Err(e) => {
                    return self.invalid(ConfigError {
                        key: "gba.subscribers".to_owned(),
                        problem: e.to_string(),
                    });
                }
            }
        }
        self.handler.set_authorizations(&new);
        let subscribers = new.gba.subscribers().len();
        *current = new;
        self.metrics.reloads.applied.inc();
        tracing::info!(
            subscribers,
            "configuration reloaded: subscribers and service authorizations swapped in"
        );
        ReloadOutcome::Applied { subscribers }
    }
}

/// Whether the embedded subscriber lists name the same subscribers (B-TID, IMPI, expiry).
/// Key material is not compared: a reload with an embedded source rebuilds it anyway.
fn same_subscribers(a: &Config, b: &Config) -> bool {
    let (a, b) = (a.gba.subscribers(), b.gba.subscribers());
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.btid == y.btid && x.impi == y.impi && x.expires == y.expires)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::SystemTime;

    use super::SwappableKeySource;
    use crate::gba::{EmbeddedKeySource, KeySource, KeySourceError, SubscriberKeys};

    struct Remote;

    impl KeySource for Remote {
        fn lookup(&self, _: &str, _: SystemTime) -> Result<SubscriberKeys, KeySourceError> {
            Err(KeySourceError::UnknownBtid)
        }
    }

    #[test]
    fn the_swappable_source_blocks_as_its_current_source_does() {
        let embedded = EmbeddedKeySource::new("bmsc.example.org", []).expect("empty list");
        let s = SwappableKeySource::new(Arc::new(embedded));
        assert!(!s.may_block(), "an embedded list is memory");
        s.replace(Arc::new(Remote));
        assert!(s.may_block());
    }
}
