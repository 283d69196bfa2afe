//! The tokio driver around the sans-IO [`Receiver`]: the UDP listener on port
//! 2269 (acknowledgements go back to the sender's address), the timers, the
//! MGV-S state file, and the Key Request client, behind one async API for
//! the embedding media client.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::crypto::{OsRandom, Random, StateKey};
use crate::mbms::keyreq::{MskRef, MskResponse, RegisterResponse};
use crate::mbms::{KeyDomainId, MskId};

use super::gba_keys::GbaKeyProvider;
use super::http::{ClientConfig, ClientError, KeyRequestClient};
use super::multicast::{Join, group_socket};
use super::queue::EventQueue;
use super::{Event, Receiver, ReceiverConfig, StateError};

/// The UDP port MIKEY messages are pushed to (docs/profile.md §2.1).
pub const MIKEY_PORT: u16 = 2269;

/// Largest datagram read; a longer one is truncated by the socket and then
/// refused by the codec.
const MAX_DATAGRAM: usize = 65_535;

/// Events queued for the application at most: when it is full, discard notices are dropped
/// first and key events are kept (docs/profile.md §3, bounds).
const EVENT_QUEUE: usize = 4096;

/// The host of a Key Request URL `http://host:port/...` (the brackets of an IPv6 literal
/// removed): the BM-SC FQDN a UE uses when none is given (IDi of the MUK ID, docs/profile.md §1).
/// `None` for a URL without a host.
#[must_use]
pub fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next()?;
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => authority,
    };
    (!host.is_empty()).then(|| host.trim_matches(['[', ']']).to_string())
}

/// Settings of a [`UeClient`].
#[derive(Debug, Clone)]
pub struct UeConfig {
    /// Where MIKEY pushes arrive (default `0.0.0.0:2269`).
    pub listen: SocketAddr,
    /// The BM-SC's Key Request function, `http://host:port`; `None` = push only.
    pub bmsc_url: Option<String>,
    /// The BM-SC FQDN: IDi of the MUK ID (docs/profile.md §1).
    pub bmsc_fqdn: String,
    /// The MGV-S state file, sealed under `state_key`.
    pub state_file: Option<PathBuf>,
    /// Settings of the sans-IO receiver.
    pub receiver: ReceiverConfig,
    /// Run the MSK request procedure by itself when the receiver asks for it
    /// (solicited pull, missed key).
    pub auto_request: bool,
    /// Settings of the Key Request client (timeouts, local address).
    pub client: ClientConfig,
    /// Multicast groups carrying MTK messages to join, each on its own socket bound to the
    /// group address and port (the listen port when none is given). MSK pushes stay unicast
    /// on the listen socket, and acknowledgements go out from it.
    pub join: Vec<Join>,
}

impl UeConfig {
    /// Defaults for the BM-SC `bmsc_fqdn`: listen on `0.0.0.0:2269`, push only (no Key Request
    /// URL), no state file, automatic MSK requests.
    pub fn new(bmsc_fqdn: &str) -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], MIKEY_PORT)),
            bmsc_url: None,
            bmsc_fqdn: bmsc_fqdn.to_string(),
            state_file: None,
            receiver: ReceiverConfig::default(),
            auto_request: true,
            client: ClientConfig::default(),
            join: Vec::new(),
        }
    }
}

/// Why the UE client could not start or stopped.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum UeError {
    /// The MIKEY socket could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address it was to be bound to.
        addr: SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A multicast group could not be joined.
    #[error("joining {group}: {source}")]
    Join {
        /// The group as configured.
        group: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The GBA key provider failed to give the keys (B-TID, MUK).
    #[error("GBA keys: {0}")]
    Keys(String),
    /// The state file or its state key could not be read, created or restored.
    #[error("state file {path}: {reason}")]
    State {
        /// The state file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A Key Request was asked for but no BM-SC URL is configured.
    #[error("no Key Request function configured (push-only mode)")]
    NoBmsc,
    /// The Key Request client failed.
    #[error(transparent)]
    Client(#[from] ClientError),
}

enum Command {
    Shutdown(oneshot::Sender<()>),
}

/// One MSK's answer to an MSK request: (Key Domain ID, MSK ID, per-item code or HTTP status).
type Answer = (KeyDomainId, MskId, u16);

/// Answers queued for the receiver at most; requests are rate limited, so this is ample.
const ANSWER_QUEUE: usize = 256;

/// What the receiver learns from an MSK request's outcome (docs/profile.md §3): every per-item
/// status, or for a request refused as a whole with 403 or 404 that status for each MSK asked
/// for. Transport failures and other statuses are not answers.
fn answers(
    requested: &[(KeyDomainId, MskId)],
    result: &Result<MskResponse, ClientError>,
) -> Vec<Answer> {
    match result {
        Ok(r) => r
            .statuses
            .iter()
            .filter_map(|s| match s.msk {
                MskRef::Id(kd, id) => Some((kd, id, s.code)),
                MskRef::Malformed { .. } => None,
            })
            .collect(),
        Err(ClientError::Status(status))
            if *status == hyper::StatusCode::FORBIDDEN
                || *status == hyper::StatusCode::NOT_FOUND =>
        {
            requested
                .iter()
                .map(|(kd, id)| (*kd, *id, status.as_u16()))
                .collect()
        }
        Err(_) => Vec::new(),
    }
}

fn report(
    to: &mpsc::Sender<Answer>,
    requested: &[(KeyDomainId, MskId)],
    result: &Result<MskResponse, ClientError>,
) {
    for a in answers(requested, result) {
        if to.try_send(a).is_err() {
            tracing::warn!("MSK request answers queue full: an answer was dropped");
        }
    }
}

/// The events on their way from the receiving task to the application.
struct Events {
    queue: Mutex<EventQueue>,
    ready: Notify,
    closed: AtomicBool,
}

impl Events {
    fn new() -> Self {
        Self {
            queue: Mutex::new(EventQueue::new(EVENT_QUEUE)),
            ready: Notify::new(),
            closed: AtomicBool::new(false),
        }
    }

    /// `false` when an event was dropped for this one.
    fn push(&self, event: Event) -> bool {
        let kept = self
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event);
        self.ready.notify_one();
        kept
    }

    fn pop(&self) -> Option<Event> {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.ready.notify_one();
    }
}

/// A running UE: receives pushes, applies them, and talks to the BM-SC.
pub struct UeClient {
    http: Option<Arc<KeyRequestClient>>,
    events: Arc<Events>,
    answers: mpsc::Sender<Answer>,
    commands: mpsc::Sender<Command>,
    local_addr: SocketAddr,
    task: JoinHandle<()>,
}

/// Loads the state key next to the state file (`<state>.key`), creating it
/// with mode 0600 on first use.
pub fn load_or_create_state_key(state_file: &Path) -> std::io::Result<StateKey> {
    let mut key_path = state_file.as_os_str().to_owned();
    key_path.push(".key");
    let key_path = PathBuf::from(key_path);
    match std::fs::read(&key_path) {
        Ok(bytes) => StateKey::from_slice(&bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = StateKey::random();
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut f = opts.open(&key_path)?;
            f.write_all(key.as_bytes())?;
            f.sync_all()?;
            Ok(key)
        }
        Err(e) => Err(e),
    }
}

struct Persist {
    path: PathBuf,
    key: StateKey,
}

impl Persist {
    fn save(&self, rx: &Receiver) {
        if let Err(e) = crate::files::write_atomic(&self.path, &rx.save(&self.key)) {
            tracing::error!(path = %self.path.display(), error = %e, "saving the UE state failed");
        }
    }
}

fn restore_or_new(config: &UeConfig) -> Result<(Receiver, Option<Persist>), UeError> {
    let rng = || -> Box<dyn Random> { Box::new(OsRandom) };
    let Some(path) = &config.state_file else {
        return Ok((Receiver::new(config.receiver.clone(), rng()), None));
    };
    let state_err = |reason: String| UeError::State {
        path: path.clone(),
        reason,
    };
    let key = load_or_create_state_key(path).map_err(|e| state_err(e.to_string()))?;
    let rx = match std::fs::read(path) {
        Ok(blob) => Receiver::restore(config.receiver.clone(), rng(), &key, &blob)
            .map_err(|e: StateError| state_err(e.to_string()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Receiver::new(config.receiver.clone(), rng())
        }
        Err(e) => return Err(state_err(e.to_string())),
    };
    Ok((
        rx,
        Some(Persist {
            path: path.clone(),
            key,
        }),
    ))
}

impl UeClient {
    /// Binds the MIKEY socket, restores the state file if any, installs the
    /// MUK from the GBA provider, and starts receiving.
    pub async fn start(
        config: UeConfig,
        provider: Arc<dyn GbaKeyProvider>,
    ) -> Result<Self, UeError> {
        let socket = UdpSocket::bind(config.listen)
            .await
            .map_err(|source| UeError::Bind {
                addr: config.listen,
                source,
            })?;
        let local_addr = socket.local_addr().map_err(|source| UeError::Bind {
            addr: config.listen,
            source,
        })?;
        let (groups, group_rx) = join_groups(&config.join, local_addr.port())?;
        let (mut receiver, persist) = restore_or_new(&config)?;
        let keys = provider.keys().map_err(|e| UeError::Keys(e.to_string()))?;
        receiver.set_muk(keys.muk_id(&config.bmsc_fqdn), keys.material.muk());
        let http = match &config.bmsc_url {
            Some(url) => Some(Arc::new(KeyRequestClient::with_config(
                url,
                provider.clone(),
                config.client.clone(),
            )?)),
            None => None,
        };
        let events = Arc::new(Events::new());
        let (commands, command_rx) = mpsc::channel(4);
        let (answers, answer_rx) = mpsc::channel(ANSWER_QUEUE);
        let ctx = Loop {
            socket,
            receiver,
            persist,
            events: events.clone(),
            answers: answers.clone(),
            groups,
            http: if config.auto_request {
                http.clone()
            } else {
                None
            },
            provider,
            fqdn: config.bmsc_fqdn.clone(),
            keys_expiry: keys.expiry,
            btid: keys.btid.as_str().to_string(),
        };
        let task = tokio::spawn(ctx.run(command_rx, answer_rx, group_rx));
        Ok(Self {
            http,
            events,
            answers,
            commands,
            local_addr,
            task,
        })
    }

    /// The address the MIKEY socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    fn http(&self) -> Result<&KeyRequestClient, UeError> {
        self.http.as_deref().ok_or(UeError::NoBmsc)
    }

    /// Registers to MBMS user services (TS 33.246 6.3.2.1A).
    pub async fn register(&self, services: &[String]) -> Result<RegisterResponse, UeError> {
        Ok(self.http()?.register(services).await?)
    }

    /// Deregisters from MBMS user services (TS 33.246 6.3.2.1B).
    pub async fn deregister(&self, services: &[String]) -> Result<RegisterResponse, UeError> {
        Ok(self.http()?.deregister(services).await?)
    }

    /// Requests MSKs (TS 33.246 6.3.2.2.1); Key Number 0 = the current MSK. The receiver
    /// learns the answer: an MSK the BM-SC refused is not requested again by the UE until a
    /// verified MSK message of its Key Group arrives (docs/profile.md §3).
    pub async fn request_msk(&self, msks: &[(KeyDomainId, MskId)]) -> Result<MskResponse, UeError> {
        let result = self.http()?.request_msk(msks).await;
        report(&self.answers, msks, &result);
        Ok(result?)
    }

    /// The next event (MSK installed/updated/invalidated, MTK ready, request
    /// needed, discard). `None` once the client has stopped.
    pub async fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.events.pop() {
                return Some(event);
            }
            if self.events.closed.load(Ordering::Acquire) {
                // Events pushed before the close are still handed out.
                return self.events.pop();
            }
            // A notification sent while no one waited is kept for this call.
            self.events.ready.notified().await;
        }
    }

    /// Stops receiving and writes the state file.
    pub async fn shutdown(self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
        let _ = self.task.await;
    }
}

/// Datagrams from the group sockets queued for the receiver at most; beyond that a reader
/// waits (and its socket's buffer drops).
const GROUP_QUEUE: usize = 1024;

/// A datagram read from a group socket, and its sender.
type GroupDatagram = (Vec<u8>, SocketAddr);

/// Joins every group, each with a task that forwards its datagrams to the receiving loop.
fn join_groups(
    joins: &[Join],
    listen_port: u16,
) -> Result<(Vec<JoinHandle<()>>, mpsc::Receiver<GroupDatagram>), UeError> {
    let (tx, rx) = mpsc::channel(GROUP_QUEUE);
    let mut tasks = Vec::with_capacity(joins.len());
    for join in joins {
        let socket = match group_socket(join, listen_port) {
            Ok(s) => s,
            Err(source) => {
                tasks.iter().for_each(JoinHandle::abort);
                return Err(UeError::Join {
                    group: join.to_string(),
                    source,
                });
            }
        };
        tracing::info!(group = %join, "joined multicast group");
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            let mut buf = vec![0u8; MAX_DATAGRAM];
            loop {
                match socket.recv_from(&mut buf).await {
                    Ok((n, from)) => {
                        let d = buf.get(..n).unwrap_or_default().to_vec();
                        if tx.send((d, from)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "receiving a group datagram failed"),
                }
            }
        }));
    }
    Ok((tasks, rx))
}

struct Loop {
    socket: UdpSocket,
    /// The readers of the group sockets, stopped with the loop.
    groups: Vec<JoinHandle<()>>,
    receiver: Receiver,
    persist: Option<Persist>,
    events: Arc<Events>,
    answers: mpsc::Sender<Answer>,
    http: Option<Arc<KeyRequestClient>>,
    provider: Arc<dyn GbaKeyProvider>,
    fqdn: String,
    keys_expiry: std::time::SystemTime,
    btid: String,
}

impl Drop for Loop {
    /// However the task ends, the application's `next_event` learns it.
    fn drop(&mut self) {
        self.groups.iter().for_each(JoinHandle::abort);
        self.events.close();
    }
}

impl Loop {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut answers: mpsc::Receiver<Answer>,
        mut group_datagrams: mpsc::Receiver<GroupDatagram>,
    ) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let timeout = self.receiver.poll_timeout();
            let keys_in = self
                .keys_expiry
                .duration_since(std::time::SystemTime::now())
                .unwrap_or(Duration::ZERO)
                .max(Duration::from_secs(1));
            tokio::select! {
                r = self.socket.recv_from(&mut buf) => match r {
                    Ok((n, from)) => self.datagram(buf.get(..n).unwrap_or_default(), from).await,
                    Err(e) => tracing::warn!(error = %e, "receiving a datagram failed"),
                },
                () = sleep_until(timeout) => {
                    self.receiver.handle_timeout(Instant::now());
                    self.drain().await;
                }
                // MTK messages of the joined groups: the same receiver, acknowledgements (never
                // for an MTK message) from the listen socket.
                Some((d, from)) = group_datagrams.recv() => self.datagram(&d, from).await,
                Some((kd, id, code)) = answers.recv() => {
                    self.receiver.handle_msk_response(kd, id, code);
                    self.drain().await;
                }
                () = tokio::time::sleep(keys_in) => self.refresh_keys(),
                cmd = commands.recv() => {
                    if let Some(p) = &self.persist {
                        p.save(&self.receiver);
                    }
                    if let Some(Command::Shutdown(done)) = cmd {
                        let _ = done.send(());
                    }
                    return;
                }
            }
        }
    }

    async fn datagram(&mut self, bytes: &[u8], from: SocketAddr) {
        if let Some(ack) = self.receiver.handle_datagram(Instant::now(), bytes)
            && let Err(e) = self.socket.send_to(&ack, from).await
        {
            tracing::warn!(%from, error = %e, "sending the acknowledgement failed");
        }
        self.drain().await;
    }

    /// Hands events to the application, saves the state when it changed,
    /// and runs MSK requests the receiver asks for.
    async fn drain(&mut self) {
        let mut changed = false;
        while let Some(event) = self.receiver.poll_event() {
            match &event {
                Event::Discarded { reason } => {
                    tracing::info!(reason = reason.as_str(), "datagram discarded");
                }
                Event::MskRequestNeeded {
                    key_domain_id,
                    msk_id,
                } => {
                    if let Some(http) = &self.http {
                        let (http, to) = (http.clone(), self.answers.clone());
                        let asked = [(*key_domain_id, *msk_id)];
                        tokio::spawn(async move {
                            let result = http.request_msk(&asked).await;
                            match &result {
                                Ok(r) => {
                                    tracing::info!(statuses = ?r.statuses, "MSK request answered")
                                }
                                Err(e) => tracing::warn!(error = %e, "MSK request failed"),
                            }
                            report(&to, &asked, &result);
                        });
                    }
                }
                Event::MskRequestFailed { msk_id, code, .. } => {
                    tracing::warn!(%msk_id, code, "MSK request refused");
                }
                _ => changed = true,
            }
            if !self.events.push(event) {
                tracing::warn!("event queue full: an event was dropped");
            }
        }
        if changed && let Some(p) = &self.persist {
            p.save(&self.receiver);
        }
    }

    /// GBA keys past their expiry: ask the provider again and install the
    /// new MUK (the old one stays as the previous MUK).
    fn refresh_keys(&mut self) {
        if std::time::SystemTime::now() < self.keys_expiry {
            return;
        }
        match self.provider.keys() {
            Ok(keys) => {
                self.keys_expiry = keys.expiry;
                if keys.btid.as_str() != self.btid {
                    self.btid = keys.btid.as_str().to_string();
                    self.receiver
                        .set_muk(keys.muk_id(&self.fqdn), keys.material.muk());
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "GBA key provider failed");
                self.keys_expiry = std::time::SystemTime::now() + Duration::from_secs(30);
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mbms::keyreq::MskStatus;

    #[test]
    fn refusals_reach_the_receiver_and_transport_failures_do_not() {
        let kd = KeyDomainId([0, 0xf1, 0x10]);
        let asked = [(kd, MskId::new(1, 2)), (kd, MskId::new(1, 3))];
        let statuses = vec![
            MskStatus {
                msk: MskRef::Id(kd, MskId::new(1, 2)),
                code: 200,
            },
            MskStatus {
                msk: MskRef::Id(kd, MskId::new(1, 3)),
                code: 403,
            },
        ];
        let ok = Ok(MskResponse { statuses });
        assert_eq!(
            answers(&asked, &ok),
            [(kd, MskId::new(1, 2), 200), (kd, MskId::new(1, 3), 403)]
        );
        let refused = Err(ClientError::Status(hyper::StatusCode::NOT_FOUND));
        assert_eq!(
            answers(&asked, &refused),
            [(kd, MskId::new(1, 2), 404), (kd, MskId::new(1, 3), 404)]
        );
        for e in [
            ClientError::Status(hyper::StatusCode::INTERNAL_SERVER_ERROR),
            ClientError::Timeout(Duration::from_secs(1)),
            ClientError::Unauthorized,
        ] {
            assert_eq!(answers(&asked, &Err(e)), []);
        }
    }
}
