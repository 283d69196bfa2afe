//! The Zn client (TS 29.109): the BM-SC, as a NAF, asks a BSF for the NAF keys of a B-TID with
//! a Bootstrapping-Info-Request over Diameter (RFC 6733, codec in [`crate::diameter`]).
//!
//! [`ZnClient`] keeps one connection per configured peer (`peer` submodule: CER/CEA,
//! DWR/DWA watchdog, DPR/DPA, reconnection with back-off) and sends each request on the first
//! open peer in configuration order, many in flight on one connection. A request whose
//! connection is lost or turns suspect before its answer is sent once more on another open
//! peer, with the T flag and the same End-to-End Identifier: a BIR only reads the BSF's state,
//! so a repeat is harmless (docs/profile.md §6, "Zn failover"). So is one answered 3002
//! UNABLE_TO_DELIVER or 3004 TOO_BUSY. Every request has one overall deadline
//! (`request_timeout`).
//!
//! [`ZnKeySource`] puts the client behind the synchronous [`KeySource`] trait with a bound on
//! concurrent lookups. No key material is ever logged.

mod peer;
mod transport;

use std::fmt;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use thiserror::Error;
use tokio::sync::{Notify, Semaphore, mpsc, oneshot, watch};
use tokio::time::Instant;

pub use transport::{Stream, Transport};

use super::key_source::{KeySource, KeySourceError, SubscriberKeys};
use super::{Btid, GbaKeys, NafId};
use crate::crypto::{KsExtNaf, KsIntNaf, KsNaf};
use crate::diameter::{Avp, Message, ResultCode, VENDOR_3GPP, app, cmd, code, flags, result, zn};
use crate::telemetry::{Counter, Histogram};
use peer::{Job, Lost, PeerCtx};

/// `[gba.zn]`: how the BM-SC reaches its BSFs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZnConfig {
    /// Peers as `host:port`, in order of preference (the first open one is used).
    pub peers: Vec<String>,
    /// This BM-SC's Diameter identity (Origin-Host).
    pub origin_host: String,
    /// Its realm (Origin-Realm).
    pub origin_realm: String,
    /// The BSF realm (Destination-Realm).
    pub destination_realm: String,
    /// The BSF host (Destination-Host), when requests name one.
    pub destination_host: Option<String>,
    /// Overall deadline of one request, failover included.
    pub request_timeout: Duration,
    /// Tw, the watchdog interval (RFC 3539).
    pub watchdog: Duration,
    /// Longest wait between reconnection attempts (the back-off doubles up to it).
    pub reconnect_max: Duration,
    /// Key lookups in flight at once through [`ZnKeySource`]; more are refused at once.
    pub max_concurrent: usize,
    /// Sent as GBA_U-Awareness-Indicator: YES asks a GBA_U BSF for Ks_int_NAF too.
    pub gba_u_aware: bool,
    /// The transport.
    pub transport: Transport,
}

impl ZnConfig {
    /// A configuration with the defaults: request timeout 2 s, Tw 30 s, reconnection back-off
    /// up to 30 s (Tc), 256 concurrent lookups, GBA_U aware, TCP.
    #[must_use]
    pub fn new(
        peers: Vec<String>,
        origin_host: &str,
        origin_realm: &str,
        destination_realm: &str,
    ) -> Self {
        Self {
            peers,
            origin_host: origin_host.to_owned(),
            origin_realm: origin_realm.to_owned(),
            destination_realm: destination_realm.to_owned(),
            destination_host: None,
            request_timeout: Duration::from_secs(2),
            watchdog: Duration::from_secs(30),
            reconnect_max: Duration::from_secs(30),
            max_concurrent: 256,
            gba_u_aware: true,
            transport: Transport::Tcp,
        }
    }
}

/// Connection state of one peer (also the value of the `zn_peer_state` gauge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PeerState {
    /// Not connected; waiting to reconnect.
    Down = 0,
    /// Connecting or exchanging capabilities.
    Connecting = 1,
    /// Open: requests are sent to it.
    Open = 2,
    /// Open but its watchdog went unanswered: no requests until it answers again.
    Suspect = 3,
}

impl PeerState {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Connecting,
            2 => Self::Open,
            3 => Self::Suspect,
            _ => Self::Down,
        }
    }
}

/// Why a Zn request gave no usable answer. Carries no key material.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ZnError {
    /// No answer within `request_timeout`.
    #[error("no answer within the request timeout")]
    Timeout,
    /// No peer was open within the deadline, or the connection was lost twice.
    #[error("no Diameter peer available")]
    NoPeer,
    /// The client was shut down.
    #[error("Zn client shut down")]
    Shutdown,
    /// Experimental-Result 5401 or 5403: the B-TID is unknown or expired at the BSF.
    #[error("BSF does not know the B-TID (result {0})")]
    UnknownBtid(u32),
    /// Experimental-Result 5402: the BSF refuses this NAF the keys.
    #[error("BSF refuses the request (not authorized)")]
    NotAuthorized,
    /// Any other result.
    #[error("BSF answered with result {0:?}")]
    Failed(ResultCode),
    /// A success answer that lacks what it must carry.
    #[error("malformed answer: {0}")]
    BadAnswer(&'static str),
}

/// What a BSF returns in a successful BIA (TS 29.109 §6.1.1).
#[derive(Clone)]
pub struct BootstrappingInfo {
    /// User-Name: the IMPI, when the BSF sends it.
    pub impi: Option<String>,
    /// ME-Key-Material: Ks_NAF (GBA_ME) or Ks_ext_NAF (GBA_U).
    pub me_key: KsNaf,
    /// UICC-Key-Material: Ks_int_NAF (GBA_U only).
    pub uicc_key: Option<KsIntNaf>,
    /// Key-ExpiryTime.
    pub expires: Option<SystemTime>,
    /// BootstrapInfoCreationTime.
    pub created: Option<SystemTime>,
    /// GBA-Type (0 = 3G, 1 = 2G), kept as received.
    pub gba_type: Option<u32>,
    /// GBA-UserSecSettings (XML), kept as received, not interpreted.
    pub user_sec_settings: Option<Vec<u8>>,
}

impl fmt::Debug for BootstrappingInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BootstrappingInfo")
            .field("impi", &self.impi)
            .field("me_key", &"[REDACTED]")
            .field("uicc_key", &self.uicc_key.as_ref().map(|_| "[REDACTED]"))
            .field("expires", &self.expires)
            .field("created", &self.created)
            .field("gba_type", &self.gba_type)
            .field(
                "user_sec_settings",
                &self.user_sec_settings.as_ref().map(Vec::len),
            )
            .finish()
    }
}

/// Answer outcomes counted in `zn_answers_total{result=...}`.
const RESULTS: [&str; 7] = [
    "success",
    "unknown_btid",
    "not_authorized",
    "other",
    "malformed",
    "timeout",
    "no_peer",
];

/// The Zn client's counters, exposed by the BM-SC's `/metrics`.
#[derive(Debug)]
pub struct ZnMetrics {
    /// Requests started.
    pub requests: Counter,
    answers: [Counter; RESULTS.len()],
    /// Request latency, answered requests only.
    pub latency: Histogram,
    /// Requests sent again on another peer.
    pub failovers: Counter,
    peers: Vec<(String, AtomicU64)>,
}

impl ZnMetrics {
    fn new(peers: &[String]) -> Self {
        Self {
            requests: Counter::default(),
            answers: Default::default(),
            latency: Histogram::default(),
            failovers: Counter::default(),
            peers: peers
                .iter()
                .map(|p| (p.clone(), AtomicU64::new(0)))
                .collect(),
        }
    }

    fn peer_state(&self, index: usize, s: PeerState) {
        if let Some((_, g)) = self.peers.get(index) {
            g.store(s as u64, Ordering::Relaxed);
        }
    }

    fn answer(&self, label: &str) {
        if let Some(i) = RESULTS.iter().position(|r| *r == label)
            && let Some(c) = self.answers.get(i)
        {
            c.inc();
        }
    }

    /// Outcomes counted under `label` (`success`, `unknown_btid`, `not_authorized`, `other`,
    /// `malformed`, `timeout`, `no_peer`).
    #[must_use]
    pub fn answers(&self, label: &str) -> u64 {
        RESULTS
            .iter()
            .position(|r| *r == label)
            .and_then(|i| self.answers.get(i))
            .map_or(0, Counter::get)
    }

    /// Appends the Prometheus text lines.
    pub fn render(&self, out: &mut String) {
        const P: &str = "mbms_bmsc_zn";
        let _ = writeln!(
            out,
            "# HELP {P}_requests_total Zn Bootstrapping-Info-Requests.\n\
             # TYPE {P}_requests_total counter\n{P}_requests_total {}",
            self.requests.get()
        );
        let _ = writeln!(
            out,
            "# HELP {P}_answers_total Zn request outcomes by result.\n\
             # TYPE {P}_answers_total counter"
        );
        for (label, c) in RESULTS.iter().zip(&self.answers) {
            let _ = writeln!(out, "{P}_answers_total{{result=\"{label}\"}} {}", c.get());
        }
        let _ = writeln!(
            out,
            "# HELP {P}_failovers_total Zn requests sent again on another peer.\n\
             # TYPE {P}_failovers_total counter\n{P}_failovers_total {}",
            self.failovers.get()
        );
        self.latency
            .render(&format!("{P}_request_seconds"), "Zn request latency", out);
        let _ = writeln!(
            out,
            "# HELP {P}_peer_state Diameter peer state: 0 down, 1 connecting, 2 open, 3 suspect.\n\
             # TYPE {P}_peer_state gauge"
        );
        for (p, g) in &self.peers {
            let v = g.load(Ordering::Relaxed);
            let _ = writeln!(out, "{P}_peer_state{{peer=\"{p}\"}} {v}");
        }
    }
}

/// What the client and its peer tasks share.
struct Shared {
    config: ZnConfig,
    /// Origin-State-Id: the start time, so it grows with every restart.
    origin_state_id: u32,
    session_high: u32,
    session_low: AtomicU32,
    e2e: AtomicU32,
    /// Woken whenever a peer changes state.
    changed: Notify,
    metrics: Arc<ZnMetrics>,
}

impl Shared {
    fn next_e2e(&self) -> u32 {
        self.e2e.fetch_add(1, Ordering::Relaxed)
    }
}

struct PeerHandle {
    state: Arc<AtomicU8>,
    jobs: mpsc::Sender<Job>,
}

/// The Zn client; clones share the connections.
#[derive(Clone)]
pub struct ZnClient {
    shared: Arc<Shared>,
    peers: Arc<Vec<PeerHandle>>,
    shutdown: Arc<watch::Sender<bool>>,
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl fmt::Debug for ZnClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZnClient")
            .field("peers", &self.shared.config.peers)
            .field("origin_host", &self.shared.config.origin_host)
            .finish_non_exhaustive()
    }
}

/// Vendor-Specific-Application-Id {Vendor-Id 10415, Auth-Application-Id 16777220}.
fn zn_vsai() -> Avp {
    Avp::grouped(
        code::VENDOR_SPECIFIC_APPLICATION_ID,
        None,
        vec![
            Avp::base_u32(code::VENDOR_ID, VENDOR_3GPP),
            Avp::base_u32(code::AUTH_APPLICATION_ID, app::ZN),
        ],
    )
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    // Identifiers only need to differ between runs; a failed read leaves the time part.
    let _ = getrandom::fill(&mut b);
    u32::from_be_bytes(b)
}

impl ZnClient {
    /// Starts one task per peer on the current tokio runtime; they connect in the background.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    #[must_use]
    pub fn start(config: ZnConfig) -> Self {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let now32 = u32::try_from(now & 0xffff_ffff).unwrap_or(0);
        // RFC 6733 §3: high 12 bits from the time, low 20 random.
        let e2e = (now32 << 20) | (random_u32() & 0x000f_ffff);
        let metrics = Arc::new(ZnMetrics::new(&config.peers));
        let shared = Arc::new(Shared {
            origin_state_id: now32,
            session_high: now32,
            session_low: AtomicU32::new(random_u32()),
            e2e: AtomicU32::new(e2e),
            changed: Notify::new(),
            metrics,
            config,
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut peers = Vec::new();
        let mut tasks = Vec::new();
        for (index, addr) in shared.config.peers.iter().enumerate() {
            let (tx, rx) = mpsc::channel(4096);
            let state = Arc::new(AtomicU8::new(PeerState::Down as u8));
            let ctx = PeerCtx {
                index,
                addr: addr.clone(),
                state: state.clone(),
                shared: shared.clone(),
                jobs: rx,
                shutdown: shutdown_rx.clone(),
                reader: None,
            };
            tasks.push(tokio::spawn(ctx.run()));
            peers.push(PeerHandle { state, jobs: tx });
        }
        Self {
            shared,
            peers: Arc::new(peers),
            shutdown: Arc::new(shutdown),
            tasks: Arc::new(Mutex::new(tasks)),
        }
    }

    /// The client's metrics.
    #[must_use]
    pub fn metrics(&self) -> Arc<ZnMetrics> {
        self.shared.metrics.clone()
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &ZnConfig {
        &self.shared.config
    }

    /// The state of each configured peer, in configuration order.
    #[must_use]
    pub fn peer_states(&self) -> Vec<PeerState> {
        self.peers
            .iter()
            .map(|p| PeerState::from_u8(p.state.load(Ordering::Acquire)))
            .collect()
    }

    /// Waits until some peer is open, at most `limit`; whether one is.
    pub async fn wait_open(&self, limit: Duration) -> bool {
        self.open_peer(None, Instant::now() + limit).await.is_some()
    }

    /// Sends DPR to every open peer, waits for the DPAs (2 s at most each) and stops the
    /// peer tasks. Requests still waiting fail with [`ZnError::NoPeer`].
    pub async fn shutdown(&self) {
        let _ = self.shutdown.send(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        for t in tasks {
            let _ = t.await;
        }
    }

    /// A new Session-Id: `<origin_host>;<high 32 bits>;<low 32 bits>` (RFC 6733 §8.8).
    fn session_id(&self) -> String {
        let low = self.shared.session_low.fetch_add(1, Ordering::Relaxed);
        format!(
            "{};{};{low}",
            self.shared.config.origin_host, self.shared.session_high
        )
    }

    /// The first open peer other than `skip`, waiting for one until `deadline`.
    async fn open_peer(&self, skip: Option<usize>, deadline: Instant) -> Option<usize> {
        loop {
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let found = self.peers.iter().enumerate().position(|(i, p)| {
                Some(i) != skip && p.state.load(Ordering::Acquire) == PeerState::Open as u8
            });
            if found.is_some() {
                return found;
            }
            if *self.shutdown.borrow() || tokio::time::timeout_at(deadline, changed).await.is_err()
            {
                return None;
            }
        }
    }

    /// Sends `msg` (a request; hop-by-hop and end-to-end identifiers are set here) and waits
    /// for its answer, failing over once as the module doc says.
    ///
    /// # Errors
    /// [`ZnError::Timeout`], [`ZnError::NoPeer`], [`ZnError::Shutdown`].
    pub async fn request(&self, mut msg: Message) -> Result<Message, ZnError> {
        let deadline = Instant::now() + self.shared.config.request_timeout;
        msg.header.end_to_end = self.shared.next_e2e();
        let mut tried: Option<usize> = None;
        loop {
            if *self.shutdown.borrow() {
                return Err(ZnError::Shutdown);
            }
            let Some(i) = self.open_peer(tried, deadline).await else {
                return Err(if Instant::now() >= deadline {
                    ZnError::Timeout
                } else {
                    ZnError::NoPeer
                });
            };
            let Some(peer) = self.peers.get(i) else {
                return Err(ZnError::NoPeer);
            };
            let (tx, rx) = oneshot::channel();
            let job = Job {
                msg: msg.clone(),
                reply: tx,
            };
            let sent = match tokio::time::timeout_at(deadline, peer.jobs.send(job)).await {
                Err(_) => return Err(ZnError::Timeout),
                Ok(sent) => sent,
            };
            let outcome = if sent.is_err() {
                Err(Lost)
            } else {
                match tokio::time::timeout_at(deadline, rx).await {
                    Err(_) => return Err(ZnError::Timeout),
                    Ok(Err(_)) => Err(Lost),
                    Ok(Ok(r)) => r,
                }
            };
            let retry = match &outcome {
                Err(Lost) => true,
                Ok(a) => matches!(
                    a.result(),
                    Some(ResultCode::Base(
                        result::UNABLE_TO_DELIVER | result::TOO_BUSY
                    ))
                ),
            };
            if retry && tried.is_none() && self.peers.len() > 1 {
                tried = Some(i);
                msg.header.flags |= flags::RETRANSMITTED;
                self.shared.metrics.failovers.inc();
                continue;
            }
            return outcome.map_err(|Lost| ZnError::NoPeer);
        }
    }

    /// A Bootstrapping-Info-Request for `btid` and `naf_id`; the answer's key material.
    ///
    /// # Errors
    /// [`ZnError`]: 5401/5403 → [`ZnError::UnknownBtid`], 5402 → [`ZnError::NotAuthorized`].
    pub async fn bootstrapping_info(
        &self,
        btid: &str,
        naf_id: &NafId,
    ) -> Result<BootstrappingInfo, ZnError> {
        let c = &self.shared.config;
        let mut avps = vec![
            Avp::base(code::SESSION_ID, self.session_id()),
            zn_vsai(),
            Avp::base(code::ORIGIN_HOST, c.origin_host.as_bytes()),
            Avp::base(code::ORIGIN_REALM, c.origin_realm.as_bytes()),
            Avp::base(code::DESTINATION_REALM, c.destination_realm.as_bytes()),
        ];
        if let Some(h) = &c.destination_host {
            avps.push(Avp::base(code::DESTINATION_HOST, h.as_bytes()));
        }
        avps.extend([
            Avp::tgpp(zn::TRANSACTION_IDENTIFIER, btid.as_bytes()),
            Avp::tgpp(zn::NAF_ID, naf_id.as_bytes()),
            Avp::tgpp(
                zn::GBA_U_AWARENESS_INDICATOR,
                u32::from(c.gba_u_aware).to_be_bytes(),
            ),
        ]);
        let msg = Message::request(cmd::BOOTSTRAPPING_INFO, app::ZN, true, avps);
        let m = &self.shared.metrics;
        m.requests.inc();
        let started = Instant::now();
        let outcome = self.request(msg).await.and_then(|a| parse_bia(&a));
        let label = match &outcome {
            Ok(_) => "success",
            Err(ZnError::UnknownBtid(_)) => "unknown_btid",
            Err(ZnError::NotAuthorized) => "not_authorized",
            Err(ZnError::Failed(_)) => "other",
            Err(ZnError::BadAnswer(_)) => "malformed",
            Err(ZnError::Timeout) => "timeout",
            Err(_) => "no_peer",
        };
        m.answer(label);
        if !matches!(
            outcome,
            Err(ZnError::Timeout | ZnError::NoPeer | ZnError::Shutdown)
        ) {
            m.latency.observe(started.elapsed());
        }
        outcome
    }
}

/// Reads a BIA (TS 29.109 §6.1.1; result codes §6.3.3).
fn parse_bia(a: &Message) -> Result<BootstrappingInfo, ZnError> {
    if a.header.command != cmd::BOOTSTRAPPING_INFO || a.header.is_request() {
        return Err(ZnError::BadAnswer("not a Bootstrapping-Info-Answer"));
    }
    match a.result() {
        Some(ResultCode::Base(c)) if (2000..3000).contains(&c) => {}
        Some(ResultCode::Experimental {
            vendor: VENDOR_3GPP,
            code: c @ (result::IMPI_UNKNOWN | result::TRANSACTION_IDENTIFIER_INVALID),
        }) => return Err(ZnError::UnknownBtid(c)),
        Some(ResultCode::Experimental {
            vendor: VENDOR_3GPP,
            code: result::NOT_AUTHORIZED,
        }) => return Err(ZnError::NotAuthorized),
        Some(r) => return Err(ZnError::Failed(r)),
        None => return Err(ZnError::BadAnswer("no Result-Code or Experimental-Result")),
    }
    let get = |c| a.find(c, Some(VENDOR_3GPP));
    let key32 = |c| -> Result<Option<[u8; 32]>, ZnError> {
        match get(c).map(|avp| avp.data().map(<[u8; 32]>::try_from)) {
            None => Ok(None),
            Some(Some(Ok(k))) => Ok(Some(k)),
            Some(_) => Err(ZnError::BadAnswer("key material is not 32 octets")),
        }
    };
    let me = key32(zn::ME_KEY_MATERIAL)?.ok_or(ZnError::BadAnswer("no ME-Key-Material"))?;
    let uicc = key32(zn::UICC_KEY_MATERIAL)?;
    let time = |c| -> Result<Option<SystemTime>, ZnError> {
        match get(c) {
            None => Ok(None),
            Some(avp) => avp
                .as_time()
                .map(Some)
                .ok_or(ZnError::BadAnswer("a Time AVP is not 4 octets")),
        }
    };
    let impi = match a.find(code::USER_NAME, None) {
        None => None,
        Some(u) => Some(
            u.as_str()
                .ok_or(ZnError::BadAnswer("User-Name is not UTF-8"))?
                .to_owned(),
        ),
    };
    Ok(BootstrappingInfo {
        impi,
        me_key: KsNaf::from_bytes(me),
        uicc_key: uicc.map(KsIntNaf::from_bytes),
        expires: time(zn::KEY_EXPIRY_TIME)?,
        created: time(zn::BOOTSTRAP_INFO_CREATION_TIME)?,
        gba_type: get(zn::GBA_TYPE).and_then(Avp::as_u32),
        user_sec_settings: get(zn::GBA_USER_SEC_SETTINGS)
            .and_then(Avp::data)
            .map(<[u8]>::to_vec),
    })
}

/// \[CHOICE\] docs/profile.md §6 "Zn key lifetime": the lifetime given to keys whose BIA has
/// no Key-ExpiryTime.
pub const DEFAULT_KEY_LIFETIME: Duration = Duration::from_secs(3600);

/// The keys of a successful BIA as [`SubscriberKeys`]: ME-Key-Material alone is GBA_ME
/// Ks_NAF; with UICC-Key-Material it is GBA_U (Ks_ext_NAF, Ks_int_NAF). A missing User-Name
/// gives an empty IMPI.
///
/// # Errors
/// [`KeySourceError::Expired`] when the Key-ExpiryTime is at or before `now`.
pub fn subscriber_keys(
    btid: Btid,
    info: BootstrappingInfo,
    now: SystemTime,
) -> Result<SubscriberKeys, KeySourceError> {
    let expires = info.expires.unwrap_or(now + DEFAULT_KEY_LIFETIME);
    if expires <= now {
        return Err(KeySourceError::Expired);
    }
    let keys = match info.uicc_key {
        None => GbaKeys::Me {
            ks_naf: info.me_key,
        },
        Some(ks_int_naf) => GbaKeys::U {
            ks_ext_naf: KsExtNaf::from_bytes(*info.me_key.as_bytes()),
            ks_int_naf,
        },
    };
    Ok(SubscriberKeys {
        btid,
        impi: info.impi.unwrap_or_default(),
        keys,
        expires,
    })
}

/// A [`KeySource`] asking a BSF over Zn.
///
/// `lookup` is synchronous: it hands the request to the client's runtime and waits on a
/// standard channel with a deadline (`request_timeout` + 1 s), so it never blocks forever,
/// even if called from a runtime thread (where it would hold that thread meanwhile; the
/// BM-SC calls it from `spawn_blocking`). At most `max_concurrent` lookups are in flight;
/// more fail at once as [`KeySourceError::Unavailable`].
pub struct ZnKeySource {
    client: ZnClient,
    runtime: tokio::runtime::Handle,
    naf_id: NafId,
    permits: Arc<Semaphore>,
}

impl fmt::Debug for ZnKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZnKeySource")
            .field("client", &self.client)
            .field("naf_id", &self.naf_id)
            .finish_non_exhaustive()
    }
}

impl ZnKeySource {
    /// A key source for the BM-SC `naf_id` over `client`, whose tasks run on `runtime`.
    #[must_use]
    pub fn new(client: ZnClient, runtime: tokio::runtime::Handle, naf_id: NafId) -> Self {
        let permits = Arc::new(Semaphore::new(client.config().max_concurrent.max(1)));
        Self {
            client,
            runtime,
            naf_id,
            permits,
        }
    }

    /// The client.
    #[must_use]
    pub fn client(&self) -> &ZnClient {
        &self.client
    }
}

impl KeySource for ZnKeySource {
    fn lookup(&self, btid: &str, now: SystemTime) -> Result<SubscriberKeys, KeySourceError> {
        // A string that is no B-TID is unknown to every BSF: no round trip.
        let parsed: Btid = btid.parse().map_err(|_| KeySourceError::UnknownBtid)?;
        let permit = self
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| KeySourceError::Unavailable("too many Zn lookups in flight".into()))?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let (client, naf, b) = (self.client.clone(), self.naf_id.clone(), btid.to_owned());
        self.runtime.spawn(async move {
            let r = client.bootstrapping_info(&b, &naf).await;
            drop(permit);
            let _ = tx.send(r);
        });
        let wait = self.client.config().request_timeout + Duration::from_secs(1);
        match rx.recv_timeout(wait) {
            Ok(Ok(info)) => subscriber_keys(parsed, info, now),
            Ok(Err(ZnError::UnknownBtid(_))) => Err(KeySourceError::UnknownBtid),
            Ok(Err(ZnError::NotAuthorized)) => Err(KeySourceError::NotAuthorized),
            Ok(Err(e)) => Err(KeySourceError::Unavailable(e.to_string())),
            Err(_) => Err(KeySourceError::Unavailable(
                "Zn lookup did not finish".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diameter::system_to_ntp;

    fn bia(avps: Vec<Avp>) -> Message {
        let mut req = Message::request(cmd::BOOTSTRAPPING_INFO, app::ZN, true, vec![]);
        req.header.hop_by_hop = 7;
        Message::answer_to(&req.header, avps)
    }

    fn exp(code_: u32) -> Avp {
        Avp::grouped(
            code::EXPERIMENTAL_RESULT,
            None,
            vec![
                Avp::base_u32(code::VENDOR_ID, VENDOR_3GPP),
                Avp::base_u32(code::EXPERIMENTAL_RESULT_CODE, code_),
            ],
        )
    }

    #[test]
    fn experimental_results_map_to_errors() {
        assert_eq!(
            parse_bia(&bia(vec![exp(5401)])).err(),
            Some(ZnError::UnknownBtid(5401))
        );
        assert_eq!(
            parse_bia(&bia(vec![exp(5403)])).err(),
            Some(ZnError::UnknownBtid(5403))
        );
        assert_eq!(
            parse_bia(&bia(vec![exp(5402)])).err(),
            Some(ZnError::NotAuthorized)
        );
        assert!(matches!(
            parse_bia(&bia(vec![exp(5999)])),
            Err(ZnError::Failed(_))
        ));
        assert!(matches!(
            parse_bia(&bia(vec![Avp::base_u32(code::RESULT_CODE, 5012)])),
            Err(ZnError::Failed(ResultCode::Base(5012)))
        ));
        assert!(matches!(
            parse_bia(&bia(vec![])),
            Err(ZnError::BadAnswer(_))
        ));
    }

    #[test]
    fn a_gba_u_answer_maps_to_gba_u_keys() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000);
        let a = bia(vec![
            Avp::base_u32(code::RESULT_CODE, 2001),
            Avp::base(code::USER_NAME, "impi@ims"),
            Avp::tgpp(zn::ME_KEY_MATERIAL, vec![1; 32]),
            Avp::tgpp(zn::UICC_KEY_MATERIAL, vec![2; 32]),
            Avp::tgpp(
                zn::KEY_EXPIRY_TIME,
                system_to_ntp(t).expect("t").to_be_bytes(),
            ),
            Avp::tgpp(zn::GBA_TYPE, 0u32.to_be_bytes()),
            Avp::tgpp(zn::GBA_USER_SEC_SETTINGS, b"<ussList/>".to_vec()),
        ]);
        let info = parse_bia(&a).expect("ok");
        assert_eq!(info.gba_type, Some(0));
        assert_eq!(info.user_sec_settings.as_deref(), Some(&b"<ussList/>"[..]));
        assert!(!format!("{info:?}").contains("1, 1"));
        let now = t - Duration::from_secs(10);
        let keys = subscriber_keys("a@b".parse().expect("btid"), info, now).expect("keys");
        assert_eq!(keys.impi, "impi@ims");
        assert_eq!(keys.expires, t);
        match keys.keys {
            GbaKeys::U {
                ks_ext_naf,
                ks_int_naf,
            } => {
                assert_eq!(ks_ext_naf.as_bytes(), &[1; 32]);
                assert_eq!(ks_int_naf.as_bytes(), &[2; 32]);
            }
            GbaKeys::Me { .. } => panic!("expected GBA_U"),
        }
        let later = t + Duration::from_secs(1);
        let info = parse_bia(&a).expect("ok");
        assert_eq!(
            subscriber_keys("a@b".parse().expect("btid"), info, later).err(),
            Some(KeySourceError::Expired)
        );
    }

    #[test]
    fn short_key_material_is_malformed() {
        let a = bia(vec![
            Avp::base_u32(code::RESULT_CODE, 2001),
            Avp::tgpp(zn::ME_KEY_MATERIAL, vec![1; 31]),
        ]);
        assert!(matches!(parse_bia(&a), Err(ZnError::BadAnswer(_))));
    }
}
