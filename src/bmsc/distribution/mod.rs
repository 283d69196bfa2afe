//! The Key Distribution function of the BM-SC (TS 33.246 6.3.2, 6.3.3), sans-IO.
//!
//! [`Distributor`] owns the MSK life cycle of every (Key Domain ID, Key Group), the MTK schedule
//! under it, and the MSK pushes to the registered UEs with their acknowledgements. It never
//! reads a clock, a socket or a global RNG: `now` is an argument (both clocks, [`Now`]: every
//! deadline is monotonic, wall time is for the protocol), randomness is injected, and
//! what is to be sent or written comes out as [`Action`]s. The store and the key source are
//! called synchronously (both traits are blocking by design); the tokio driver
//! ([`crate::bmsc::udp`]) runs the calls that may reach them on the blocking pool.
//!
//! - [`clock`]: [`Now`], monotonic time for schedules and wall time for the protocol;
//! - [`counter`]: the one MIKEY counter of all messages, durable without a write per message;
//! - `cluster`: on a store shared by several nodes, who owns each MSK group, and the groups
//!   followed from the store;
//! - `lifecycle`: MSK creation, rotation and retirement, SEQu sizing, lead time;
//! - `mtk`: MTK generation, the announce ahead of each switch, repetition;
//! - `push`: MSK messages to UEs after Key Request events, solicited pulls, the MUK cache;
//! - `retransmit`: acknowledgements, retransmissions;
//! - `fanout`: the push of a new MSK to every registered UE, a batch at a time;
//! - `shared`: on a shared store, that push split into work items claimed by every node.

pub mod clock;
mod cluster;
pub mod counter;
mod fanout;
mod foreign_ack;
mod lifecycle;
mod mtk;
mod push;
mod retransmit;
mod shared;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use thiserror::Error;
use tokio::sync::broadcast;

use crate::bmsc::config::{ClusterConfig, Config, PushConfig, ServiceConfig, Transport};
use crate::bmsc::events::KeyRequestEvent;
use crate::bmsc::metrics::Metrics;
use crate::bmsc::store::{Store, StoreError};
use crate::crypto::{Mtk, OsRandom, Random, Salt};
use crate::gba::KeySource;
use crate::mbms::{BuildError, Streaming};
use crate::mikey::{KeyDomainId, MskId, MtkId};

pub use self::clock::Now;
use self::counter::{Counters, DEFAULT_COUNTER_BLOCK};
use self::fanout::FanOut;
use self::lifecycle::{Group, LiveMtk};
use self::push::{Collected, Pushes};
use self::shared::SharedWork;

/// Injected randomness for MSKs, MTKs, salts and RANDs.
pub type Rng = Box<dyn Random>;

/// The production [`Rng`]: the operating system's generator.
#[must_use]
pub fn os_rng() -> Rng {
    Box::new(OsRandom)
}

/// Fills `buf` from `rng`.
///
/// # Panics
/// When the generator fails, which no input can cause (as
/// [`Msk::random`](crate::crypto::Msk::random)): no key is ever made of predictable octets.
pub(crate) fn fill(rng: &mut Rng, buf: &mut [u8]) {
    if let Err(e) = rng.fill(buf) {
        panic!("random generator failed: {e}");
    }
}

/// Knobs of the distribution that are not in the configuration file: defaults fit production,
/// tests shorten them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tuning {
    /// The counter ceiling is raised this far ahead ([`counter`]).
    pub counter_block: u32,
    /// The next MSK is created and pushed `min(msk_lifetime / 4, max_lead)` before the
    /// switch-over (at least one MTK announce interval, at most `msk_lifetime`).
    pub max_lead: Duration,
    /// A retired MSK stays in the store (and can still be requested) this long.
    pub retired_grace: Duration,
    /// Registrations read and MSK messages built per step of a fan-out or a retransmission
    /// round: what bounds the memory of built messages.
    pub batch_size: usize,
    /// Threads building the messages of one batch.
    pub build_threads: usize,
    /// Cap of SEQu: MSKs rotate early once the MTK IDs of their interval run out.
    pub max_sequ: u16,
    /// How long the MUK of a B-TID whose GBA keys expired is kept for a solicited pull.
    pub expired_muk_retention: Duration,
    /// Period of the sweep of the MUK cache.
    pub sweep_interval: Duration,
    /// Lines queued for one key-export client ([`crate::bmsc::export`]) beyond what its
    /// socket holds (at least the lines of the current keys it gets on connecting): a client
    /// further behind is disconnected.
    pub export_queue: usize,
    /// The send buffer (`SO_SNDBUF`) of each key-export connection; `None`: the system's.
    pub export_send_buffer: Option<usize>,
    /// Group commit of registrations: most per transaction, longest wait for a batch to fill
    /// ([`crate::bmsc::store::batch`]).
    pub group_commit: crate::bmsc::store::GroupCommitLimits,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            counter_block: DEFAULT_COUNTER_BLOCK,
            max_lead: Duration::from_secs(60),
            retired_grace: Duration::from_secs(600),
            batch_size: 4096,
            build_threads: std::thread::available_parallelism().map_or(1, usize::from),
            max_sequ: u16::MAX,
            expired_muk_retention: Duration::from_secs(24 * 3600),
            sweep_interval: Duration::from_secs(600),
            export_queue: 256,
            export_send_buffer: None,
            group_commit: crate::bmsc::store::GroupCommitLimits::default(),
        }
    }
}

/// One UDP datagram to send from the distribution socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Destination: a UE's `ue_addr:ue_port`, or a service's `mtk_destination`.
    pub to: SocketAddr,
    /// The MIKEY message.
    pub bytes: Bytes,
}

/// What the driver has to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send these datagrams (one batch: `sendmmsg` where available).
    SendUdp(Vec<Datagram>),
    /// Write an MTK message as a file for the FLUTE sender (docs/profile.md §2.3, MIME type
    /// `application/mikey`): atomically (temporary file + rename), creating the directory.
    WriteMtkObject {
        /// `<mtk_object_dir>/<msk_id>-<mtk_id>.mikey`, both in hex.
        path: PathBuf,
        /// The message.
        bytes: Bytes,
    },
}

/// The distribution could not do what it had to. The state stays consistent: what was not
/// persisted was not sent.
#[non_exhaustive]
#[derive(Debug, Error)]
pub enum DistributionError {
    /// The store failed (an MSK or the counter ceiling could not be made durable).
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A message could not be built (an internal inconsistency).
    #[error("building a message: {0}")]
    Build(#[from] BuildError),
}

/// The MTK a service delivers now: MTK ID, key and (streaming) SRTP master salt.
pub type MtkInfo = (MtkId, Mtk, Option<Salt>);

/// The current MTK of a streaming service as its SRTP sender needs it (docs/profile.md §2.4):
/// the names of the MKI, the master key and salt, and how often its MTK message went out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaKey {
    /// The MSK the MTK was delivered under.
    pub msk_id: MskId,
    /// The MTK ID.
    pub mtk_id: MtkId,
    /// The SRTP master key.
    pub mtk: Mtk,
    /// The SRTP master salt.
    pub salt: Salt,
    /// Sends of the MTK message carrying this MTK so far, in this run of the BM-SC (first send
    /// and repetitions); 0 for an MTK restored from the store and not sent again.
    pub sent: u32,
}

/// An MTK of one service as the key export hands it to external encryptors
/// ([`crate::bmsc::export`]): what the service's MTK message carries, and from when it is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedMtk {
    /// The user service.
    pub service: Arc<str>,
    /// The Key Domain ID of its MSK.
    pub key_domain: KeyDomainId,
    /// The MSK the MTK is delivered under.
    pub msk_id: MskId,
    /// The MTK ID.
    pub mtk_id: MtkId,
    /// The MTK (the SRTP master key of a streaming service).
    pub mtk: Mtk,
    /// The SRTP master salt of a streaming service; `None` for a download service.
    pub salt: Option<Salt>,
    /// When the MTK becomes current (announced ahead) or became current.
    pub valid_from: SystemTime,
}

/// Exported MTKs queued for the key-export clients together before the slowest is cut off
/// (each client drains them into a queue of its own at once: see [`Tuning::export_queue`]).
const EXPORT_CHANNEL: usize = 1024;

/// The exported MTKs of one service: the current one and the one announced for the next switch.
#[derive(Debug, Default)]
struct ExportedKeys {
    current: Option<ExportedMtk>,
    upcoming: Option<ExportedMtk>,
}

#[derive(Debug)]
struct Shared {
    mtks: HashMap<String, MtkInfo>,
    media: HashMap<String, MediaKey>,
    rocs: HashMap<String, u32>,
    exported: BTreeMap<Arc<str>, ExportedKeys>,
    export_feed: broadcast::Sender<ExportedMtk>,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            mtks: HashMap::new(),
            media: HashMap::new(),
            rocs: HashMap::new(),
            exported: BTreeMap::new(),
            export_feed: broadcast::Sender::new(EXPORT_CHANNEL),
        }
    }
}

/// A shared view of the current MTK of every service, for the media encryption side while the
/// [`Distributor`] runs inside its driver. Updated at each MTK switch and, for streaming
/// services, at each send of the current MTK's message; the SRTP sender reports the stream's
/// rollover counter back through it, for the SRTP-ID map of the next MTK message.
#[derive(Debug, Clone, Default)]
pub struct CurrentMtks(Arc<RwLock<Shared>>);

impl CurrentMtks {
    /// The current MTK of `service_id`.
    #[must_use]
    pub fn get(&self, service_id: &str) -> Option<MtkInfo> {
        let map = self.0.read().unwrap_or_else(PoisonError::into_inner);
        map.mtks.get(service_id).cloned()
    }

    /// The current MTK of the streaming service `service_id` with its MSK ID and its sends.
    #[must_use]
    pub fn media_key(&self, service_id: &str) -> Option<MediaKey> {
        let map = self.0.read().unwrap_or_else(PoisonError::into_inner);
        map.media.get(service_id).cloned()
    }

    /// Whether the current media key of `service_id` is other than `(msk_id, mtk_id, sent)`:
    /// a cheap check before [`CurrentMtks::media_key`].
    #[must_use]
    pub fn media_key_changed(&self, service_id: &str, known: Option<(MskId, MtkId, u32)>) -> bool {
        let map = self.0.read().unwrap_or_else(PoisonError::into_inner);
        map.media
            .get(service_id)
            .map(|k| (k.msk_id, k.mtk_id, k.sent))
            != known
    }

    /// The SRTP sender of `service_id` reports its stream's rollover counter: the SRTP-ID map
    /// of the MTK messages built from now on announces it.
    pub fn report_roc(&self, service_id: &str, roc: u32) {
        let mut map = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if map.rocs.get(service_id) != Some(&roc) {
            map.rocs.insert(service_id.to_owned(), roc);
        }
    }

    /// The last rollover counter reported for `service_id`.
    #[must_use]
    pub fn roc(&self, service_id: &str) -> Option<u32> {
        let map = self.0.read().unwrap_or_else(PoisonError::into_inner);
        map.rocs.get(service_id).copied()
    }

    /// The exported MTKs held now — of every service, in service id order, the current MTK
    /// and then the one announced for the next switch — and the MTKs exported from now on.
    /// Taken together: no MTK falls between the two.
    #[must_use]
    pub fn subscribe_exported(&self) -> (Vec<ExportedMtk>, broadcast::Receiver<ExportedMtk>) {
        let map = self.0.read().unwrap_or_else(PoisonError::into_inner);
        let held = map
            .exported
            .values()
            .flat_map(|k| k.current.iter().chain(k.upcoming.iter()))
            .cloned()
            .collect();
        (held, map.export_feed.subscribe())
    }

    /// Records `mtk` as its service's current MTK (`current`) or as the one announced for the
    /// next switch, and hands it to the key-export clients connected now.
    fn export(&self, mtk: ExportedMtk, current: bool) {
        let mut map = self.0.write().unwrap_or_else(PoisonError::into_inner);
        let keys = map.exported.entry(mtk.service.clone()).or_default();
        if current {
            if keys
                .upcoming
                .as_ref()
                .is_some_and(|u| (u.msk_id, u.mtk_id) == (mtk.msk_id, mtk.mtk_id))
            {
                keys.upcoming = None;
            }
            keys.current = Some(mtk.clone());
        } else {
            keys.upcoming = Some(mtk.clone());
        }
        // No receiver (no client connected) is no error.
        let _ = map.export_feed.send(mtk);
    }

    fn set(&self, service_id: &str, value: Option<MtkInfo>, media: Option<MediaKey>) {
        let mut map = self.0.write().unwrap_or_else(PoisonError::into_inner);
        match value {
            Some(v) => map.mtks.insert(service_id.to_owned(), v),
            None => map.mtks.remove(service_id),
        };
        match media {
            Some(m) => map.media.insert(service_id.to_owned(), m),
            None => map.media.remove(service_id),
        };
    }
}

/// One user service as the distribution sees it.
struct ServiceState {
    id: String,
    /// `id`, shared by its exported MTKs.
    export_id: Arc<str>,
    group: usize,
    destination: SocketAddr,
    resend: Duration,
    streaming: Option<Streaming>,
    object_dir: Option<PathBuf>,
    /// The MTK message being repeated (the latest announced MTK).
    message: Option<Bytes>,
    next_send_at: Option<Instant>,
    /// Sends in this run of the messages of the last two MTKs announced (the current and the
    /// upcoming one), by (MSK ID, MTK ID): what [`MediaKey::sent`] reports.
    sends: VecDeque<((MskId, MtkId), u32)>,
}

/// The sans-IO Key Distribution function. See the module documentation.
pub struct Distributor {
    fqdn: String,
    ue_port: u16,
    push: PushConfig,
    tuning: Tuning,
    store: Arc<dyn Store>,
    key_source: Arc<dyn KeySource>,
    metrics: Arc<Metrics>,
    rng: Rng,
    counters: Counters,
    groups: Vec<Group>,
    services: Vec<ServiceState>,
    pushes: Pushes,
    fanouts: VecDeque<FanOut>,
    next_epoch: u32,
    actions: VecDeque<Action>,
    mtk_view: CurrentMtks,
    sweep_at: Instant,
    /// The clocks as of the last input: the counter floor follows its wall time.
    last_now: Now,
    /// `[cluster]`.
    cluster: ClusterConfig,
    /// Each group's (Key Domain ID, Key Group) and the configuration of its services: what a
    /// takeover reloads it with.
    group_keys: Vec<((KeyDomainId, u16), Vec<ServiceConfig>)>,
    /// On a shared store: the next claim round of ownership, the next re-read of the groups
    /// followed.
    claim_at: Option<Instant>,
    follow_at: Option<Instant>,
    /// This node's part in the shared fan-outs (a shared store).
    work: SharedWork,
    /// While [`Distributor::on_events`] runs: the MSK messages of its events, sent together
    /// at its end.
    collected: Option<Collected>,
}

impl std::fmt::Debug for Distributor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Distributor")
            .field("fqdn", &self.fqdn)
            .field("groups", &self.groups.len())
            .field("services", &self.services.len())
            .field("pending_pushes", &self.pushes.pending())
            .field("fanouts", &self.fanouts.len())
            .field("fanout_items_held", &self.work.held())
            .field("actions", &self.actions.len())
            .finish_non_exhaustive()
    }
}

impl Distributor {
    /// Loads the MSKs and the counter ceiling from `store` (a restart continues where the
    /// previous run stopped) and creates the first MSK of every (key_domain, key_group) that has
    /// none, persisted before it is used. An MSK still in state Next is pushed again to every
    /// registered UE, since a crash may have cut its fan-out short.
    ///
    /// # Errors
    /// [`DistributionError::Store`] when the store cannot be read or written.
    pub fn new(
        config: &Config,
        store: Arc<dyn Store>,
        key_source: Arc<dyn KeySource>,
        metrics: Arc<Metrics>,
        rng: Rng,
        now: Now,
    ) -> Result<Self, DistributionError> {
        Self::with_tuning(
            config,
            store,
            key_source,
            metrics,
            rng,
            now,
            Tuning::default(),
        )
    }

    /// [`Distributor::new`] with explicit [`Tuning`].
    ///
    /// # Errors
    /// As [`Distributor::new`].
    pub fn with_tuning(
        config: &Config,
        store: Arc<dyn Store>,
        key_source: Arc<dyn KeySource>,
        metrics: Arc<Metrics>,
        rng: Rng,
        now: Now,
        tuning: Tuning,
    ) -> Result<Self, DistributionError> {
        let counters = Counters::load(store.as_ref(), tuning.counter_block, now.wall)?;
        let mut services = Vec::with_capacity(config.services.len());
        let mut group_keys = Vec::new();
        for s in &config.services {
            let key = s.msk_group();
            let group = match group_keys.iter().position(|k| *k == key) {
                Some(i) => i,
                None => {
                    group_keys.push(key);
                    group_keys.len() - 1
                }
            };
            let (streaming, object_dir) = match &s.transport {
                Transport::Download { mtk_object_dir } => (None, Some(mtk_object_dir.clone())),
                Transport::Streaming { ssrc, roc } => {
                    let tag_len = s.media.as_ref().map_or(10, |m| m.suite.tag_len());
                    (Some(mtk::streaming(*ssrc, *roc, tag_len)), None)
                }
            };
            services.push(ServiceState {
                id: s.id.clone(),
                export_id: Arc::from(s.id.as_str()),
                group,
                destination: s.mtk_destination,
                resend: s.mtk_resend.max(Duration::from_millis(1)),
                streaming,
                object_dir,
                message: None,
                next_send_at: None,
                sends: VecDeque::with_capacity(2),
            });
        }
        let mut this = Self {
            fqdn: config.fqdn.clone(),
            ue_port: config.ue_port,
            push: config.push.clone(),
            tuning,
            store,
            key_source,
            metrics,
            rng,
            counters,
            groups: Vec::with_capacity(group_keys.len()),
            services,
            pushes: Pushes::default(),
            fanouts: VecDeque::new(),
            next_epoch: 1,
            actions: VecDeque::new(),
            mtk_view: CurrentMtks::default(),
            sweep_at: now.mono,
            last_now: now,
            cluster: config.cluster,
            group_keys: Vec::with_capacity(group_keys.len()),
            claim_at: None,
            follow_at: None,
            work: SharedWork::default(),
            collected: None,
        };
        this.start_shared_fanout(now);
        this.sweep_at = now.mono + this.tuning.sweep_interval;
        for (i, key) in group_keys.into_iter().enumerate() {
            let specs: Vec<ServiceConfig> = config
                .services
                .iter()
                .zip(&this.services)
                .filter(|(_, s)| s.group == i)
                .map(|(c, _)| c.clone())
                .collect();
            this.group_keys.push((key, specs));
        }
        let owned = this.claim_round(now);
        let records = this.store.msks()?;
        for (i, owned) in owned.into_iter().enumerate() {
            this.log_ownership(i, owned);
            let (group, repush) = this.build_group(i, owned, &records, now)?;
            this.groups.push(group);
            if let Some(msk_id) = repush {
                this.queue_fanout(i, msk_id, now.mono);
            }
        }
        for s in 0..this.services.len() {
            this.publish_mtk(s);
        }
        for g in 0..this.groups.len() {
            // An MTK restored from the store is current again from this start.
            if let Some(live) = this.groups[g].live.clone() {
                this.export_mtk(g, &live, now.wall, true);
            }
        }
        this.repush_recent_registrations(now)?;
        Ok(this)
    }

    /// A Key Request outcome (TS 33.246 6.3.2.1A/B, 6.3.2.2): pushes the MSKs of the services
    /// the UE registered to, invalidates those of the services it left, or pushes the MSKs it
    /// asked for. The GBA keys come from the key source (a solicited pull with the last known
    /// MUK when they have expired).
    ///
    /// # Errors
    /// [`DistributionError::Store`] when the counter ceiling cannot be raised: nothing is sent.
    pub fn on_event(&mut self, event: KeyRequestEvent, now: Now) -> Result<(), DistributionError> {
        self.last_now = now;
        match event {
            KeyRequestEvent::Registered {
                btid,
                ue_addr,
                service_ids,
            } => self.on_registered(&btid, ue_addr, &service_ids, now),
            KeyRequestEvent::Deregistered {
                btid,
                ue_addr,
                removed,
                remaining,
            } => self.on_deregistered(&btid, ue_addr, &removed, &remaining, now),
            KeyRequestEvent::MskRequested {
                btid,
                ue_addr,
                msks,
            } => self.on_msk_requested(&btid, ue_addr, &msks, now),
        }
    }

    /// Several Key Request events at once, in order, each as [`Distributor::on_event`], but
    /// their MSK messages go out as one batch at the end: one counter reservation (on a shared
    /// store a database transaction, docs/profile.md §6 \[CHOICE\] "cluster counters") and
    /// one build on all cores for all of them, counters increasing in the events' order.
    /// Returns the errors, one per event that failed and one per batch not sent.
    pub fn on_events(
        &mut self,
        events: impl IntoIterator<Item = KeyRequestEvent>,
        now: Now,
    ) -> Vec<DistributionError> {
        let mut errors = Vec::new();
        self.collected = Some(Collected::default());
        for event in events {
            if let Err(e) = self.on_event(event, now) {
                errors.push(e);
            }
        }
        if let Err(e) = self.send_collected(now) {
            errors.push(e);
        }
        errors
    }

    /// A datagram on the distribution socket: an MSK acknowledgement (docs/profile.md §2.2), matched
    /// to its push by (IDr or the sender's address, CSB ID, counter) and verified. Anything else
    /// is counted in `acks_rejected` and dropped.
    pub fn on_datagram(&mut self, from: SocketAddr, bytes: &[u8], now: Now) {
        self.last_now = now;
        self.handle_ack(from, bytes);
    }

    /// Everything due at `now`: MSK creation and switch-over, MTK announce and switch, MTK
    /// repetitions, retransmissions, the next step of a fan-out.
    ///
    /// # Errors
    /// [`DistributionError::Store`] when a new MSK, an MTK state or the counter ceiling cannot
    /// be made durable; what depends on it is not sent and is retried at the next call.
    pub fn on_timeout(&mut self, now: Now) -> Result<(), DistributionError> {
        self.last_now = now;
        let mut first_error = None;
        if let Err(e) = self.cluster_step(now) {
            tracing::warn!("cluster: {e}");
            first_error.get_or_insert(e);
        }
        for g in 0..self.groups.len() {
            if !self.groups[g].owned {
                continue;
            }
            if let Err(e) = self.step_group(g, now) {
                tracing::warn!(group = g, "key distribution: {e}");
                first_error.get_or_insert(e);
            }
        }
        self.resend_mtks(now.mono);
        if let Err(e) = self.retransmit_due(now.mono) {
            first_error.get_or_insert(e);
        }
        if let Err(e) = self.fanout_step(now) {
            tracing::warn!("MSK fan-out: {e}");
            first_error.get_or_insert(e);
        }
        self.shared_step(now);
        if now.mono >= self.sweep_at {
            self.sweep(now.wall);
            self.sweep_at = now.mono + self.tuning.sweep_interval;
        }
        first_error.map_or(Ok(()), Err)
    }

    /// When [`Distributor::on_timeout`] is next due, on the monotonic clock ([`Now::mono`]).
    /// A time not after the last `now` means "as soon as possible": a fan-out or a
    /// retransmission round continues after the driver has sent the previous batch and read
    /// the acknowledgements that arrived meanwhile.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut at: Option<Instant> = None;
        let mut consider = |t: Instant| {
            at = Some(at.map_or(t, |a| a.min(t)));
        };
        for (i, g) in self.groups.iter().enumerate() {
            if g.owned {
                g.deadlines(self.mtk_waits_for_fanout(i), &mut consider);
            }
        }
        for t in [self.claim_at, self.follow_at].into_iter().flatten() {
            consider(t);
        }
        for s in &self.services {
            if let Some(t) = s.next_send_at {
                consider(t);
            }
        }
        if let Some(t) = self.pushes.next_deadline() {
            consider(t);
        }
        if let Some(f) = self.fanouts.front() {
            consider(f.not_before);
        }
        if let Some(t) = self.shared_deadline() {
            consider(t);
        }
        consider(self.sweep_at);
        at
    }

    /// The next thing for the driver to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The MTK `service_id` delivers now (MTK ID, MTK, SRTP master salt for streaming), as the
    /// UEs receive it: for the media encryption side.
    #[must_use]
    pub fn current_mtk(&self, service_id: &str) -> Option<MtkInfo> {
        let s = self.services.iter().find(|s| s.id == service_id)?;
        self.service_mtk(s)
    }

    /// A handle on the current MTKs that stays valid while the distributor runs in its driver.
    #[must_use]
    pub fn current_mtks(&self) -> CurrentMtks {
        self.mtk_view.clone()
    }

    /// MSK messages sent and neither acknowledged nor given up yet.
    #[must_use]
    pub fn pending_pushes(&self) -> usize {
        self.pushes.pending()
    }

    /// UEs whose MUK is cached.
    #[must_use]
    pub fn cached_muks(&self) -> usize {
        self.pushes.cached_muks()
    }

    fn service_mtk(&self, s: &ServiceState) -> Option<MtkInfo> {
        let live = self.groups.get(s.group)?.live.as_ref()?;
        let salt = if s.streaming.is_some() {
            live.salt.clone()
        } else {
            None
        };
        Some((live.mtk_id, live.mtk.clone(), salt))
    }

    fn publish_mtk(&self, service: usize) {
        if let Some(s) = self.services.get(service) {
            let media = self.media_key(s);
            self.mtk_view.set(&s.id, self.service_mtk(s), media);
        }
    }

    /// Hands `live` of group `g` to the key export, one [`ExportedMtk`] per service of the
    /// group: `current` from `valid_from` on, or else announced for `valid_from`.
    fn export_mtk(&self, g: usize, live: &LiveMtk, valid_from: SystemTime, current: bool) {
        let Some(group) = self.groups.get(g) else {
            return;
        };
        for s in &group.services {
            let Some(svc) = self.services.get(*s) else {
                continue;
            };
            self.mtk_view.export(
                ExportedMtk {
                    service: svc.export_id.clone(),
                    key_domain: group.key_domain,
                    msk_id: live.msk_id,
                    mtk_id: live.mtk_id,
                    mtk: live.mtk.clone(),
                    salt: svc.streaming.as_ref().and(live.salt.clone()),
                    valid_from,
                },
                current,
            );
        }
    }

    fn media_key(&self, s: &ServiceState) -> Option<MediaKey> {
        s.streaming.as_ref()?;
        let live = self.groups.get(s.group)?.live.as_ref()?;
        let name = (live.msk_id, live.mtk_id);
        let sent = s
            .sends
            .iter()
            .find(|(k, _)| *k == name)
            .map_or(0, |(_, n)| *n);
        Some(MediaKey {
            msk_id: live.msk_id,
            mtk_id: live.mtk_id,
            mtk: live.mtk.clone(),
            salt: live.salt.clone()?,
            sent,
        })
    }

    /// `n` consecutive MIKEY counters (at least one), the first returned: above the floor of
    /// the wall time of the last input ([`counter::counter_floor`]).
    fn allocate_counters(&mut self, n: usize) -> Result<u32, StoreError> {
        self.counters
            .allocate(self.store.as_ref(), n, self.last_now.wall)
    }

    fn send(&mut self, datagrams: Vec<Datagram>) {
        if !datagrams.is_empty() {
            self.actions.push_back(Action::SendUdp(datagrams));
        }
    }

    /// Fresh random octets from the injected generator.
    fn random<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        fill(&mut self.rng, &mut out);
        out
    }
}

/// Runs `f` over `items` on up to `threads` threads (in order, chunk by chunk): message
/// building is CPU-bound and independent per UE.
fn par_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(usize, &T) -> R + Sync,
) -> Vec<R> {
    const SEQUENTIAL_BELOW: usize = 64;
    if threads <= 1 || items.len() < SEQUENTIAL_BELOW {
        return items.iter().enumerate().map(|(i, t)| f(i, t)).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .enumerate()
            .map(|(c, part)| {
                scope.spawn(move || {
                    part.iter()
                        .enumerate()
                        .map(|(i, t)| f(c * chunk + i, t))
                        .collect::<Vec<R>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(items.len());
        for h in handles {
            match h.join() {
                Ok(part) => out.extend(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}
