//! `mbms-keys bmsc serve`: the BM-SC assembled from its parts — the store,
//! the key source, the Key Request function behind hyper, the Key
//! Distribution function on its UDP socket, the SRTP senders of the streaming
//! services, the admin listener — and its
//! graceful shutdown (in-flight HTTP requests finish; the distribution's
//! state is persisted as it goes).
//!
//! Every task is essential and supervised (`supervise`): one that ends unexpectedly stops the
//! server through the same graceful path. Readiness (`health`) is what `/health/ready` serves;
//! SIGHUP reloads the subscribers and authorizations (`reload`).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use thiserror::Error;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinHandle};

use super::config::{Config, KeySourceConfig, StoreConfig, Transport};
use super::distribution::{CurrentMtks, DistributionError, Distributor, Tuning, os_rng};
use super::export::{ClientLimits, ExportError, ExportListener, run_export};
use super::health::{Check, KeySourceProbe, Readiness, SharedReadiness};
use super::http::{serve_admin, serve_key_requests};
use super::keycache::CachingKeySource;
use super::keyreq::KeyRequestHandler;
use super::media::Protector;
use super::media::driver::{MediaSockets, run_media, set_multicast};
use super::metrics::Metrics;
use super::reload::{ReloadOutcome, Reloader, SwappableKeySource};
use super::signals::{OsSignals, Signal};
use super::store::{SqliteStore, Store, StoreError};
use super::supervise::{Phase, Signals, TaskEnded, Tasks, supervise};
use crate::crypto::OsRandom;
use crate::gba::zn::{ZnClient, ZnKeySource};
use crate::gba::{EmbeddedKeySourceError, KeySource};

/// Key Request events queued for the distribution before the HTTP side waits.
const EVENT_QUEUE: usize = 4096;

/// How often the registrations gauge is refreshed from the store without a
/// registration change, and at least how long between two refreshes.
const GAUGE_PERIOD: Duration = Duration::from_secs(10);
const GAUGE_MIN_INTERVAL: Duration = Duration::from_millis(200);
/// On a store shared by several nodes the gauge is refreshed only every [`GAUGE_PERIOD`]: its
/// count is a full scan of the cluster's registrations (run as a parallel sequential scan by
/// PostgreSQL), too dear to repeat every [`GAUGE_MIN_INTERVAL`] while registrations arrive, and
/// the other nodes' registrations do not signal this one anyway.
fn gauge_follows_changes(store: &dyn Store) -> bool {
    !store.is_shared()
}

/// How often expired GBA keys are deleted from the store's key cache.
const KEY_CACHE_PURGE: Duration = Duration::from_secs(600);

/// Why the BM-SC could not start or stopped abnormally.
#[non_exhaustive]
#[derive(Debug, Error)]
pub enum ServeError {
    /// The store did not open.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The embedded GBA key source could not be built from `[[gba.subscribers]]`.
    #[error("key source: {0}")]
    KeySource(#[from] EmbeddedKeySourceError),
    /// The Key Distribution function did not start.
    #[error("key distribution: {0}")]
    Distribution(#[from] DistributionError),
    /// A listener or socket could not be bound.
    #[error("binding {what} on {addr}: {source}")]
    Bind {
        /// Which one: the Key Request listener, the admin listener, the MIKEY socket or a
        /// streaming service's media sockets.
        what: &'static str,
        /// The address it was to be bound to.
        addr: SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The key-export socket (`key_export_socket`) could not be set up.
    #[error(transparent)]
    KeyExport(#[from] ExportError),
    /// A task of the server failed or panicked; names the task where known.
    #[error("a task of the server failed: {0}")]
    Task(String),
    /// An essential task ended while the server was running: the server stopped
    /// (`bmsc serve` exits with [`super::supervise::EXIT_TASK_ENDED`]).
    #[error("the BM-SC stopped because its {task} task ended unexpectedly ({why})")]
    TaskEnded {
        /// The task, e.g. `key distribution`.
        task: String,
        /// How it ended: `returned`, `failed: ...`, `panicked`, `cancelled`.
        why: String,
    },
}

/// A running BM-SC.
pub struct Bmsc {
    http_addr: SocketAddr,
    admin_addr: SocketAddr,
    udp_addr: SocketAddr,
    metrics: Arc<Metrics>,
    current_mtks: CurrentMtks,
    /// Set to shut down; dropping the `Bmsc` shuts it down too.
    shutdown: watch::Sender<bool>,
    supervisor: JoinHandle<Result<Result<(), String>, TaskEnded>>,
    failed: watch::Receiver<Option<TaskEnded>>,
    readiness: Arc<Readiness>,
    reloader: Reloader,
    aborts: Vec<(&'static str, AbortHandle)>,
    zn: Option<ZnClient>,
}

/// Where a started BM-SC gets GBA keys.
#[non_exhaustive]
pub enum GbaSource {
    /// Asked on every lookup, Key Requests and MSK fan-out alike (the embedded list).
    Direct(Arc<dyn KeySource>),
    /// A network source behind the store's key cache ([`CachingKeySource`]): Key Requests ask
    /// it on a cache miss, the MSK fan-out reads the cache only.
    Cached(Arc<dyn KeySource>),
}

fn bind_err(what: &'static str, addr: SocketAddr) -> impl FnOnce(std::io::Error) -> ServeError {
    move |source| ServeError::Bind { what, addr, source }
}

impl Bmsc {
    /// Opens the store, binds every listener and starts the tasks.
    pub async fn start(config: Config) -> Result<Self, ServeError> {
        Self::start_with(config, Tuning::default()).await
    }

    /// [`Bmsc::start`] with explicit distribution [`Tuning`] (tests shorten lead times).
    ///
    /// With `[gba.zn]` it starts the Zn client (its peers connect in the background) and puts
    /// it behind the store's key cache ([`GbaSource::Cached`]).
    pub async fn start_with(config: Config, tuning: Tuning) -> Result<Self, ServeError> {
        match &config.gba.source {
            KeySourceConfig::Zn(z) => {
                let client = ZnClient::start(z.clone());
                let source = Arc::new(ZnKeySource::new(
                    client.clone(),
                    tokio::runtime::Handle::current(),
                    config.naf_id(),
                ));
                let started = Self::start_inner(
                    config,
                    tuning,
                    GbaSource::Cached(source),
                    Some(client.clone()),
                    None,
                )
                .await;
                if started.is_err() {
                    client.shutdown().await;
                }
                started
            }
            KeySourceConfig::Nbsp(_) | KeySourceConfig::Aanf(_) => {
                // The 5G sources (docs/key-sources-5g.md) behind the key cache, as Zn.
                match config.http_key_source(&tokio::runtime::Handle::current()) {
                    Some((source, counters)) => {
                        let bmsc =
                            Self::start_with_source(config, tuning, GbaSource::Cached(source))
                                .await?;
                        let _ = bmsc.metrics().sbi.set(counters);
                        Ok(bmsc)
                    }
                    None => Err(ServeError::Task("no HTTP key source configured".into())),
                }
            }
            KeySourceConfig::Embedded(_) => {
                // Behind a swappable source, so that a reload can replace the list.
                let keys = Arc::new(SwappableKeySource::new(Arc::new(config.key_source()?)));
                let source = GbaSource::Direct(keys.clone());
                Self::start_inner(config, tuning, source, None, Some(keys)).await
            }
        }
    }

    /// [`Bmsc::start_with`] with GBA keys from `key_source` instead of the configuration's
    /// `[gba]` subscribers.
    pub async fn start_with_keys(
        config: Config,
        tuning: Tuning,
        key_source: Arc<dyn KeySource>,
    ) -> Result<Self, ServeError> {
        Self::start_inner(config, tuning, GbaSource::Direct(key_source), None, None).await
    }

    /// [`Bmsc::start_with`] with GBA keys from `source` instead of the configuration's `[gba]`.
    pub async fn start_with_source(
        config: Config,
        tuning: Tuning,
        source: GbaSource,
    ) -> Result<Self, ServeError> {
        Self::start_inner(config, tuning, source, None, None).await
    }

    async fn start_inner(
        config: Config,
        tuning: Tuning,
        source: GbaSource,
        zn: Option<ZnClient>,
        embedded: Option<Arc<SwappableKeySource>>,
    ) -> Result<Self, ServeError> {
        let metrics = Arc::new(Metrics::default());
        let store = open_store(&config, tuning.group_commit, &metrics).await?;
        if let Some(z) = &zn {
            let _ = metrics.zn.set(z.metrics());
        }
        let readiness = Arc::new(Readiness::default());
        readiness.set_key_source(match (&config.gba.source, &zn) {
            (KeySourceConfig::Zn(_), Some(z)) => KeySourceProbe::Zn(z.clone()),
            (KeySourceConfig::Nbsp(_) | KeySourceConfig::Aanf(_), _) => {
                KeySourceProbe::Http(metrics.clone())
            }
            _ => KeySourceProbe::Local,
        });
        // Key Requests ask the source (through the cache); the fan-out reads the cache only.
        let cached_keys = matches!(source, GbaSource::Cached(_));
        let (key_source, dist_keys): (Arc<dyn KeySource>, Arc<dyn KeySource>) = match source {
            GbaSource::Direct(k) => (k.clone(), k),
            GbaSource::Cached(inner) => {
                let c = CachingKeySource::new(inner, store.clone(), metrics.clone());
                let only = Arc::new(c.cached_only());
                (Arc::new(c), only)
            }
        };
        let handler = Arc::new(KeyRequestHandler::new(
            &config,
            key_source.clone(),
            store.clone(),
            metrics.clone(),
            Box::new(OsRandom),
        ));
        let limits = ClientLimits {
            queue: tuning.export_queue,
            send_buffer: tuning.export_send_buffer,
        };
        let distributor = {
            let (config, store, ks, m) = (
                config.clone(),
                store.clone(),
                dist_keys.clone(),
                metrics.clone(),
            );
            tokio::task::spawn_blocking(move || {
                Distributor::with_tuning(
                    &config,
                    store,
                    ks,
                    m,
                    os_rng(),
                    super::udp::clocks(),
                    tuning,
                )
            })
            .await
            .map_err(|e| ServeError::Task(e.to_string()))??
        };
        let current_mtks = distributor.current_mtks();

        let http = TcpListener::bind(config.http_listen)
            .await
            .map_err(bind_err("the Key Request listener", config.http_listen))?;
        let admin = TcpListener::bind(config.admin_listen)
            .await
            .map_err(bind_err("the admin listener", config.admin_listen))?;
        // Pushes leave from (and acknowledgements come back to) the HTTP
        // listener's address with an ephemeral port.
        let udp_bind = SocketAddr::new(config.http_listen.ip(), 0);
        let udp = UdpSocket::bind(udp_bind)
            .await
            .map_err(bind_err("the MIKEY socket", udp_bind))?;
        let http_addr = http
            .local_addr()
            .map_err(bind_err("the Key Request listener", config.http_listen))?;
        let admin_addr = admin
            .local_addr()
            .map_err(bind_err("the admin listener", config.admin_listen))?;
        let udp_addr = udp
            .local_addr()
            .map_err(bind_err("the MIKEY socket", udp_bind))?;
        // MTK messages to a multicast mtk_destination leave with the global multicast options.
        for s in &config.services {
            let to = s.mtk_destination.ip();
            if to.is_multicast() && to.is_ipv4() == udp_addr.is_ipv4() {
                set_multicast(&udp, to, &config.multicast)
                    .map_err(bind_err("the MIKEY socket", s.mtk_destination))?;
            }
        }
        let export = match &config.key_export_socket {
            Some(path) => Some(ExportListener::bind(path).await?),
            None => None,
        };
        let mut media = Vec::new();
        for s in &config.services {
            let (Some(m), Transport::Streaming { ssrc, roc }) = (&s.media, &s.transport) else {
                continue;
            };
            let sockets = MediaSockets::bind(m, &s.multicast)
                .await
                .map_err(bind_err("the media sockets (rtp_input)", m.rtp_input))?;
            media.push((
                s.id.clone(),
                Protector::new(*ssrc, *roc, m),
                m.clone(),
                sockets,
            ));
        }

        let (shutdown, shutdown_rx) = watch::channel(false);
        // The front tasks (taking traffic in) stop first, the back ones once they ended.
        let (front, stop_rx) = watch::channel(false);
        let (back, back_rx) = watch::channel(false);
        let (admin_stop, admin_rx) = watch::channel(false);
        let (failed_tx, failed) = watch::channel(None);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let (events_tx, mut http_events) = mpsc::channel(EVENT_QUEUE);
        let (dist_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        // Registration changes also refresh the registrations gauge.
        let changed = Arc::new(tokio::sync::Notify::new());
        let reloader = Reloader::new(config.clone(), embedded, handler.clone(), metrics.clone());
        // Every task below is essential (crate::bmsc::supervise); the guards clear their
        // readiness flag the moment their task ends.
        readiness.set_started();
        let mut tasks = Tasks::default();

        let guard = readiness.guard(Check::Distribution);
        let dist_stop = stopped(back_rx.clone());
        tasks.spawn("key distribution", Phase::Back, async move {
            let _guard = guard;
            let r = super::udp::run_distribution(distributor, udp, events_rx, dist_stop).await;
            r.map(drop).map_err(|e| e.to_string())
        });
        for (id, protector, cfg, sockets) in media {
            let (m, s, mtks) = (
                metrics.clone(),
                stopped(stop_rx.clone()),
                current_mtks.clone(),
            );
            let guard = readiness.guard(Check::Listeners);
            tasks.spawn("media", Phase::Front, async move {
                let _guard = guard;
                run_media(id, protector, cfg, sockets, mtks, m, s).await;
                Ok(())
            });
        }
        if let Some(listener) = export {
            let (mtks, m, rx) = (current_mtks.clone(), metrics.clone(), stop_rx.clone());
            let guard = readiness.guard(Check::Listeners);
            tasks.spawn("key export", Phase::Front, async move {
                let _guard = guard;
                run_export(listener, mtks, limits, m, rx).await;
                Ok(())
            });
        }
        let (h, mut rx) = (handler.clone(), back_rx.clone());
        tasks.spawn("failure logs", Phase::Back, async move {
            // The counts of a burst are logged within an interval, not at the next failure.
            loop {
                tokio::select! {
                    _ = rx.wait_for(|s| *s) => return Ok(()),
                    () = tokio::time::sleep(super::logthrottle::LOG_INTERVAL) => {}
                }
                h.flush_logs(SystemTime::now());
            }
        });
        let http_cfg = config.http.clone();
        let (m, s) = (metrics.clone(), stopped(stop_rx.clone()));
        let guard = readiness.guard(Check::Listeners);
        tasks.spawn("key requests", Phase::Front, async move {
            let _guard = guard;
            serve_key_requests(http, handler, events_tx, http_cfg, m, s).await;
            Ok(())
        });
        let (m, s, health) = (
            metrics.clone(),
            stopped(admin_rx),
            SharedReadiness(readiness.clone()),
        );
        let guard = readiness.guard(Check::Listeners);
        let admin_task = tokio::spawn(async move {
            let _guard = guard;
            serve_admin(admin, m, health, s).await;
            Ok(())
        });
        let notify = changed.clone();
        let mut rx = back_rx.clone();
        tasks.spawn("key request events", Phase::Back, async move {
            // When the Key Distribution function is gone, the channel from the Key Request
            // server is closed at once, so that no registration is answered 200 without its
            // push queued (the server answers 503).
            let mut gone = false;
            loop {
                tokio::select! {
                    () = dist_tx.closed(), if !gone => {
                        gone = true;
                        http_events.close();
                    }
                    event = http_events.recv() => match event {
                        Some(event) => {
                            notify.notify_one();
                            if dist_tx.send(event).await.is_err() {
                                gone = true;
                                http_events.close();
                            }
                        }
                        None => break,
                    },
                }
            }
            // Ends with the Key Request server, or after the stop when the distribution
            // ended first (the supervisor then names the distribution).
            let _ = rx.wait_for(|s| *s).await;
            Ok(())
        });
        let (m, st, mut rx, ready) = (
            metrics.clone(),
            store.clone(),
            back_rx.clone(),
            readiness.clone(),
        );
        let follows = gauge_follows_changes(store.as_ref());
        tasks.spawn("registrations gauge", Phase::Back, async move {
            loop {
                let st = st.clone();
                match tokio::task::spawn_blocking(move || st.count_registrations_by_service()).await
                {
                    Ok(Ok(counts)) => {
                        ready.set_store(true);
                        m.registrations.set(counts.values().sum());
                    }
                    Ok(Err(e)) => {
                        ready.set_store(false);
                        tracing::warn!(error = %e, "the store did not answer");
                    }
                    Err(_) => ready.set_store(false),
                }
                let notified = tokio::select! {
                    _ = rx.wait_for(|s| *s) => return Ok(()),
                    () = tokio::time::sleep(GAUGE_PERIOD) => false,
                    () = changed.notified(), if follows => true,
                };
                if notified {
                    tokio::time::sleep(GAUGE_MIN_INTERVAL).await;
                }
            }
        });
        if cached_keys {
            let (st, mut rx) = (store.clone(), back_rx.clone());
            tasks.spawn("key cache purge", Phase::Back, async move {
                loop {
                    tokio::select! {
                        _ = rx.wait_for(|s| *s) => return Ok(()),
                        () = tokio::time::sleep(KEY_CACHE_PURGE) => {}
                    }
                    let st = st.clone();
                    let purged = tokio::task::spawn_blocking(move || {
                        st.purge_expired_keys(SystemTime::now())
                    })
                    .await;
                    if let Ok(Err(e)) = purged {
                        tracing::warn!(error = %e, "expired GBA keys not purged");
                    }
                }
            });
        }
        let aborts = tasks.handles();
        let supervisor = tokio::spawn(supervise(
            tasks,
            admin_task,
            Signals {
                shutdown: shutdown_rx,
                front,
                back,
                admin: admin_stop,
                failed: failed_tx,
            },
            readiness.clone(),
        ));
        tracing::info!(%http_addr, %admin_addr, %udp_addr, fqdn = %config.fqdn, services = config.services.len(), "BM-SC started");
        Ok(Self {
            http_addr,
            admin_addr,
            udp_addr,
            metrics,
            current_mtks,
            shutdown,
            supervisor,
            failed,
            readiness,
            reloader,
            aborts,
            zn,
        })
    }

    /// The Key Request (HTTP) listener's address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The admin (metrics, health) listener's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The UDP address MIKEY messages leave from.
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    /// The counters and histograms the admin listener exposes.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The current MTK of each service, for the media encryption side.
    pub fn current_mtks(&self) -> &CurrentMtks {
        &self.current_mtks
    }

    /// Readiness as `/health/ready` reports it.
    pub fn readiness(&self) -> &Arc<Readiness> {
        &self.readiness
    }

    /// Waits until an essential task ends unexpectedly (the server is then stopping: call
    /// [`Bmsc::shutdown`] to finish) and says which and why.
    pub async fn task_ended(&self) -> TaskEnded {
        let mut rx = self.failed.clone();
        match rx.wait_for(Option::is_some).await {
            Ok(e) => e.clone().unwrap_or_else(|| TaskEnded {
                task: "supervisor",
                why: "ended".into(),
            }),
            Err(_) => TaskEnded {
                task: "supervisor",
                why: "ended".into(),
            },
        }
    }

    /// Re-reads the configuration at `path` and swaps in what can change live
    /// ([`crate::bmsc::reload`]); what SIGHUP does.
    pub fn reload_file(&self, path: &Path) -> ReloadOutcome {
        self.reloader.reload_file(path)
    }

    /// [`Bmsc::reload_file`] with an already parsed configuration.
    pub fn reload(&self, config: Config) -> ReloadOutcome {
        self.reloader.apply(config)
    }

    /// Fault injection for tests: cancels the essential task `name` (e.g. `key
    /// distribution`) as if it had ended. Whether such a task exists.
    #[doc(hidden)]
    pub fn abort_task(&self, name: &str) -> bool {
        let mut found = false;
        for (n, h) in &self.aborts {
            if *n == name {
                h.abort();
                found = true;
            }
        }
        found
    }

    /// Stops accepting, lets in-flight requests finish, stops the tasks (the admin listener
    /// last). [`ServeError::TaskEnded`] when an essential task had ended unexpectedly.
    pub async fn shutdown(self) -> Result<(), ServeError> {
        let _ = self.shutdown.send(true);
        let outcome = self.supervisor.await;
        if let Some(zn) = self.zn {
            zn.shutdown().await;
        }
        tracing::info!("BM-SC stopped");
        match outcome {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(ServeError::Task(e)),
            Ok(Err(e)) => Err(ServeError::TaskEnded {
                task: e.task.to_owned(),
                why: e.why,
            }),
            Err(e) => Err(ServeError::Task(format!("supervisor: {e}"))),
        }
    }
}

/// Runs the BM-SC until SIGTERM or Ctrl-C, then shuts it down gracefully; on SIGHUP re-reads
/// `config_path` (when given) and swaps in what can change live. Stops on its own, with
/// [`ServeError::TaskEnded`], when an essential task ends. Tells systemd `READY=1` once
/// started and `STOPPING=1` when stopping ([`crate::bmsc::notify`]).
pub async fn serve(config: Config, config_path: Option<&Path>) -> Result<(), ServeError> {
    let bmsc = Bmsc::start(config).await?;
    super::notify::notify("READY=1");
    super::signals::inject_fault(&bmsc);
    let mut signals = OsSignals::new();
    loop {
        tokio::select! {
            e = bmsc.task_ended() => {
                tracing::error!(task = e.task, why = %e.why, "stopping");
                break;
            }
            s = signals.next() => match s {
                Signal::Stop => {
                    tracing::info!("shutting down");
                    break;
                }
                Signal::Reload => match config_path {
                    Some(path) => {
                        tracing::info!(path = %path.display(), "SIGHUP: reloading the configuration");
                        let _ = bmsc.reload_file(path);
                    }
                    None => tracing::warn!("SIGHUP: no configuration file to reload"),
                },
            },
        }
    }
    super::notify::notify("STOPPING=1");
    bmsc.shutdown().await
}

/// Opens the configured store (`store`: SQLite in `data_dir`, or PostgreSQL) on a blocking
/// thread, registrations group-committed within `group_commit`, its commit counts on
/// `metrics`.
async fn open_store(
    config: &Config,
    group_commit: crate::bmsc::store::GroupCommitLimits,
    metrics: &Metrics,
) -> Result<Arc<dyn Store>, ServeError> {
    let (data_dir, kek) = (config.data_dir.clone(), config.kek_file.clone());
    let store: Arc<dyn Store> = match &config.store {
        StoreConfig::Sqlite => {
            let sqlite = tokio::task::spawn_blocking(move || {
                SqliteStore::open_with_kek_file(&data_dir, &kek)
            })
            .await
            .map_err(|e| ServeError::Task(e.to_string()))??
            .with_group_commit(group_commit)?;
            let _ = metrics.store.set(sqlite.commit_stats());
            Arc::new(sqlite)
        }
        #[cfg(feature = "postgres")]
        StoreConfig::Postgres(pg) => {
            let pg = pg.clone();
            let store = tokio::task::spawn_blocking(move || {
                crate::bmsc::store::PostgresStore::open(&pg, &kek)
            })
            .await
            .map_err(|e| ServeError::Task(e.to_string()))??
            .with_group_commit(group_commit)?;
            let _ = metrics.store.set(store.commit_stats());
            Arc::new(store)
        }
        #[cfg(not(feature = "postgres"))]
        StoreConfig::Postgres(_) => {
            return Err(ServeError::Task(
                "this build has no PostgreSQL store (the `postgres` feature)".into(),
            ));
        }
    };
    Ok(store)
}
