//! The BM-SC configuration: a TOML file, read once at start and refused with a message that
//! names the key and the problem (`services[1].key_domain: must be 6 hex digits`).
//!
//! The file is parsed by the `toml` crate into a table, then read key by key (see
//! `table.rs`): unknown keys are refused as `deny_unknown_fields` would, and every error —
//! also a wrong type — carries the full key path. The result holds typed values only:
//! addresses, [`Duration`]s, [`SystemTime`]s, identifiers and secret key types, whose `Debug`
//! is redacted. `examples/bmsc.toml` documents every key.
//!
//! Services that share (key_domain, key_group) share one MSK and its MTK ID sequence: that is
//! how TS 33.246 lets one MSK protect several user services. They must then agree on
//! `msk_lifetime`, a property of the MSK.

mod gba;
mod gba_http;
mod read;
mod store;
mod table;
mod values;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use thiserror::Error;

pub use gba_http::{AanfConfig, NbspConfig};
pub use store::{DEFAULT_POOL_SIZE, PG_PASSWORD_ENV, Password, PostgresConfig, StoreConfig};
pub use values::{ImpiPattern, check_fqdn, format_rfc3339, parse_rfc3339};

use self::read::{
    cluster_section, digest_section, http_section, multicast, push_section, services, socket_addr,
    syntax_error,
};
use self::table::Section;
use crate::gba::zn::ZnConfig;
use crate::gba::{
    Btid, EmbeddedKeySource, EmbeddedKeySourceError, EmbeddedSubscriber, KeyMaterial, NafId,
};
use crate::mikey::KeyDomainId;

/// The UDP port of the UE's MIKEY receiver (TS 33.246 6.3.2.2, 6.3.3.2).
pub const DEFAULT_UE_PORT: u16 = 2269;

/// The environment variable that overrides `kek_file`.
pub const KEK_FILE_ENV: &str = "MBMS_KEK_FILE";

/// A configuration was refused: the key (full path) and what is wrong with it.
/// Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{key}: {problem}")]
pub struct ConfigError {
    /// The full key, e.g. `services[1].key_domain`.
    pub key: String,
    /// What is wrong with it.
    pub problem: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// Something accepted but probably unintended (an expired subscriber), to log at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The full key.
    pub key: String,
    /// What looks wrong.
    pub problem: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.problem)
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// The qop values the BM-SC offers in its Digest challenge (RFC 7616 §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qop {
    /// `auth-int` only: the body is authenticated too.
    AuthInt,
    /// `auth` only.
    Auth,
    /// `auth,auth-int`: the client chooses.
    Both,
}

/// The Digest hash algorithm (RFC 7616 §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlgorithm {
    /// `MD5`, for old clients.
    Md5,
    /// `SHA-256`.
    Sha256,
}

/// `[digest]`: HTTP Digest authentication of the Key Request function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestConfig {
    /// Offered qop values.
    pub qop: Qop,
    /// Hash algorithm.
    pub algorithm: DigestAlgorithm,
    /// How long a nonce is accepted after it was issued.
    pub nonce_lifetime: Duration,
    /// Most nonces held at once; the oldest are forgotten first.
    pub max_nonces: usize,
}

/// `[http]`: limits of the HTTP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Time allowed for reading a request and answering it.
    pub request_timeout: Duration,
    /// Idle keep-alive connections are closed after this.
    pub idle_timeout: Duration,
    /// Most connections served at once.
    pub max_connections: usize,
    /// Largest request body accepted, in octets (413 above).
    pub max_body: usize,
}

/// `[push]`: retransmission of MSK messages that ask for an acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushConfig {
    /// Retransmissions after the first send (0: none).
    pub retries: u32,
    /// Wait before the first retransmission; doubled each time.
    pub initial_backoff: Duration,
    /// Upper bound of the wait.
    pub max_backoff: Duration,
}

/// `[cluster]`: several BM-SC nodes on one PostgreSQL store (docs/cluster.md). Ignored on the
/// SQLite store (one BM-SC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterConfig {
    /// How often a node tries to take the ownership of the MSK groups it does not own (and
    /// checks the connection that holds those it owns): the bound on the takeover after an
    /// owner died (default 10 s).
    pub takeover_after: Duration,
    /// How often a node that does not own an MSK group re-reads its MSKs and MTKs from the
    /// store, to push what the owner made to the UEs that register with it (default 1 s).
    pub follow_interval: Duration,
    /// Registrations per work item of a shared MSK fan-out (default 1024).
    pub fanout_item_size: usize,
    /// How long a node's claim on fan-out work items holds without renewal; `None` (the
    /// default): `[push] initial_backoff`, one retransmission interval.
    pub fanout_lease: Option<Duration>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            takeover_after: Duration::from_secs(10),
            follow_interval: Duration::from_secs(1),
            fanout_item_size: DEFAULT_FANOUT_ITEM_SIZE,
            fanout_lease: None,
        }
    }
}

/// `[cluster] fanout_item_size` by default.
pub const DEFAULT_FANOUT_ITEM_SIZE: usize = 1024;

/// `[[gba.subscribers]]`: one lab subscriber of the embedded key source.
#[derive(Debug, Clone)]
pub struct SubscriberConfig {
    /// B-TID.
    pub btid: Btid,
    /// IMPI.
    pub impi: String,
    /// Key material (redacted in `Debug`).
    pub material: KeyMaterial,
    /// End of the key lifetime.
    pub expires: SystemTime,
}

/// Where GBA keys come from: exactly one source.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum KeySourceConfig {
    /// `[[gba.subscribers]]`: the embedded lab list.
    Embedded(Vec<SubscriberConfig>),
    /// `[gba.zn]`: a BSF over Diameter Zn (TS 29.109).
    Zn(ZnConfig),
    /// `[gba.nbsp]`: a BSF over Nbsp_GBA (TS 29.309).
    Nbsp(NbspConfig),
    /// `[gba.aanf]`: an AAnF over Naanf_AKMA (TS 29.535), 5G MBS with AKMA.
    Aanf(AanfConfig),
}

impl Default for KeySourceConfig {
    fn default() -> Self {
        Self::Embedded(Vec::new())
    }
}

/// `[gba]`.
#[derive(Debug, Clone, Default)]
pub struct GbaConfig {
    /// The key source.
    pub source: KeySourceConfig,
}

impl GbaConfig {
    /// The embedded subscribers (none unless the source is [`KeySourceConfig::Embedded`]).
    #[must_use]
    pub fn subscribers(&self) -> &[SubscriberConfig] {
        match &self.source {
            KeySourceConfig::Embedded(s) => s,
            KeySourceConfig::Zn(_) | KeySourceConfig::Nbsp(_) | KeySourceConfig::Aanf(_) => &[],
        }
    }
}

/// How a service's MTKs reach the UEs (TS 33.246 6.3.3.2, docs/profile.md §2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// FLUTE download: each MTK message is written as a file into `mtk_object_dir`.
    Download {
        /// Directory the FLUTE sender picks the MTK objects up from.
        mtk_object_dir: PathBuf,
    },
    /// SRTP streaming: MTK messages carry the SRTP policy (AES-CM-128 / HMAC-SHA1-80 default)
    /// and the SRTP crypto session (SSRC, ROC).
    Streaming {
        /// SSRC of the SRTP stream.
        ssrc: u32,
        /// Rollover counter at the start.
        roc: u32,
    },
}

/// The SRTP protection profile of a streaming service's media (RFC 3711 §8.2, RFC 4568 §6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrtpSuite {
    /// `AES_CM_128_HMAC_SHA1_80`: AES-CM-128, 80-bit HMAC-SHA-1 tag (the default).
    AesCm128HmacSha1_80,
    /// `AES_CM_128_HMAC_SHA1_32`: AES-CM-128, 32-bit HMAC-SHA-1 tag.
    AesCm128HmacSha1_32,
}

impl SrtpSuite {
    /// The SRTP authentication tag length in octets.
    #[must_use]
    pub fn tag_len(self) -> usize {
        match self {
            Self::AesCm128HmacSha1_80 => 10,
            Self::AesCm128HmacSha1_32 => 4,
        }
    }

    /// The suite's name as in the configuration (RFC 4568 §6.2).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Self::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }
}

/// The SRTP sender of a streaming service (`[services.srtp]` with `rtp_input`): plain RTP in,
/// SRTP under the current MTK out (docs/profile.md §2.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtpSenderConfig {
    /// `rtp_input`: the UDP address plain RTP from the content provider arrives on.
    pub rtp_input: SocketAddr,
    /// `media_destination`: where the SRTP packets go (multicast group or unicast).
    pub media_destination: SocketAddr,
    /// `suite`.
    pub suite: SrtpSuite,
    /// `mki`: whether packets carry the MKI (MSK ID ‖ MTK ID) on the wire.
    pub mki: bool,
    /// `key_lead`: how many times an MTK's message must have been sent before media use it.
    pub key_lead: u32,
    /// `udp_offload`: read `rtp_input` with `UDP_GRO` and send runs of equal-size packets with
    /// `UDP_SEGMENT` where the kernel accepts them (default on; the datagrams on the wire are
    /// the same either way).
    pub udp_offload: bool,
}

/// The default `key_lead`: an MTK protects media once its MTK message went out twice.
pub const DEFAULT_KEY_LEAD: u32 = 2;

/// The outgoing interface of multicast datagrams (`multicast_interface`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MulticastInterface {
    /// IPv4: the interface with this address (`IP_MULTICAST_IF`).
    V4(Ipv4Addr),
    /// IPv6: the interface with this index (`IPV6_MULTICAST_IF`), given as a number or a
    /// name resolved at start.
    V6(u32),
}

/// How multicast datagrams leave: `multicast_ttl` and `multicast_interface`, per service
/// or global. Loopback of multicast to local receivers is always on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MulticastConfig {
    /// IPv4 TTL / IPv6 hop limit of multicast datagrams (default 1).
    pub ttl: u32,
    /// The outgoing interface; the system's choice when `None`.
    pub interface: Option<MulticastInterface>,
}

impl Default for MulticastConfig {
    fn default() -> Self {
        Self {
            ttl: 1,
            interface: None,
        }
    }
}

/// Which IMPIs may register to a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorized {
    /// Every subscriber (`authorized = "*"`).
    Everyone,
    /// Subscribers whose IMPI matches one of the patterns.
    Patterns(Vec<ImpiPattern>),
}

impl Authorized {
    /// Whether `impi` may register.
    #[must_use]
    pub fn allows(&self, impi: &str) -> bool {
        match self {
            Self::Everyone => true,
            Self::Patterns(ps) => ps.iter().any(|p| p.matches(impi)),
        }
    }
}

/// `[[services]]`: one MBMS user service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// User service id, as UEs name it in requests.
    pub id: String,
    /// Key Domain ID of its MSK.
    pub key_domain: KeyDomainId,
    /// Key Group of its MSK ID.
    pub key_group: u16,
    /// How long one MSK is used.
    pub msk_lifetime: Duration,
    /// How long one MTK is used.
    pub mtk_interval: Duration,
    /// Period of MTK message repetition.
    pub mtk_resend: Duration,
    /// Where MTK messages are sent over UDP.
    pub mtk_destination: SocketAddr,
    /// Download or streaming.
    pub transport: Transport,
    /// The SRTP sender of a streaming service that has `rtp_input`; `None` when the media are
    /// protected elsewhere.
    pub media: Option<SrtpSenderConfig>,
    /// Multicast options of this service's media and MTK messages (the global ones unless
    /// the service sets its own).
    pub multicast: MulticastConfig,
    /// Who may register.
    pub authorized: Authorized,
}

impl ServiceConfig {
    /// The MSK this service uses: services with equal values share it.
    #[must_use]
    pub fn msk_group(&self) -> (KeyDomainId, u16) {
        (self.key_domain, self.key_group)
    }
}

/// The resolved BM-SC configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The BM-SC FQDN: NAF_Id = fqdn ‖ 0100000001, and the MIKEY IDi.
    pub fqdn: String,
    /// Key Request function (HTTP) listening address.
    pub http_listen: SocketAddr,
    /// Administration / metrics listening address.
    pub admin_listen: SocketAddr,
    /// UDP port of the UEs' MIKEY receivers (MSK pushes; default port of MTK destinations).
    pub ue_port: u16,
    /// Directory of the store.
    pub data_dir: PathBuf,
    /// Key-encryption key file: `kek_file`, `$MBMS_KEK_FILE` over it, default `<data_dir>/kek`.
    pub kek_file: PathBuf,
    /// `store`: the embedded SQLite store in `data_dir` (absent) or PostgreSQL.
    pub store: StoreConfig,
    /// Log output format.
    pub log_format: LogFormat,
    /// `[digest]`.
    pub digest: DigestConfig,
    /// `[http]`.
    pub http: HttpConfig,
    /// `[push]`.
    pub push: PushConfig,
    /// `[cluster]`.
    pub cluster: ClusterConfig,
    /// `[gba]`.
    pub gba: GbaConfig,
    /// `multicast_ttl` and `multicast_interface` at the top level: the MIKEY socket's, and
    /// the default of every service.
    pub multicast: MulticastConfig,
    /// `[[services]]`, in file order.
    pub services: Vec<ServiceConfig>,
    /// `key_export_socket`: the Unix domain socket that hands the MTKs to external encryptors
    /// ([`crate::bmsc::export`]); `None` (the default) turns the export off.
    pub key_export_socket: Option<PathBuf>,
}

/// Longest `key_export_socket` path in octets: a Unix socket address holds 107, and the socket
/// is first bound under a name seven octets longer (`.<name>.new/s`, in a private directory).
pub const MAX_EXPORT_SOCKET_PATH: usize = 100;

/// `key_export_socket`: an absolute path of at most [`MAX_EXPORT_SOCKET_PATH`] octets naming a
/// file in a directory that exists.
fn check_export_socket(path: &Path) -> Result<PathBuf, String> {
    if path.as_os_str().is_empty() {
        return Err("must not be empty".to_owned());
    }
    if !path.is_absolute() {
        return Err(format!(
            "must be an absolute path, got {:?}",
            path.display().to_string()
        ));
    }
    if path.as_os_str().len() > MAX_EXPORT_SOCKET_PATH {
        return Err(format!(
            "must be at most {MAX_EXPORT_SOCKET_PATH} octets long (a Unix socket address)"
        ));
    }
    let (Some(dir), Some(_)) = (path.parent(), path.file_name()) else {
        return Err("must name a file, not a directory".to_owned());
    };
    if path.as_os_str().to_string_lossy().ends_with('/') {
        return Err("must name a file, not a directory".to_owned());
    }
    if !dir.is_dir() {
        return Err(format!("directory {} does not exist", dir.display()));
    }
    Ok(path.to_path_buf())
}

impl Config {
    /// Reads and checks the file at `path`; `$MBMS_KEK_FILE` overrides `kek_file`. Logs a
    /// warning for each [`Config::warnings`] at the current time.
    ///
    /// # Errors
    /// The first problem found, naming its key (the path for a file that cannot be read).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(path.display().to_string(), e.to_string()))?;
        let config = Self::parse(&text)?;
        for w in config.warnings(SystemTime::now()) {
            tracing::warn!(key = %w.key, "configuration: {}", w.problem);
        }
        Ok(config)
    }

    /// Checks a configuration text; `$MBMS_KEK_FILE` overrides `kek_file`.
    ///
    /// # Errors
    /// The first problem found, naming its key.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        Self::parse_with_env(text, |name| std::env::var_os(name))
    }

    /// [`Config::parse`] with the environment given as a function (for tests).
    ///
    /// # Errors
    /// The first problem found, naming its key.
    pub fn parse_with_env(
        text: &str,
        env: impl Fn(&str) -> Option<std::ffi::OsString>,
    ) -> Result<Self, ConfigError> {
        let doc: toml::Table = toml::from_str(text).map_err(|e| syntax_error(text, &e))?;
        let mut top = Section::open(
            String::new(),
            doc,
            &[
                "fqdn",
                "http_listen",
                "admin_listen",
                "ue_port",
                "data_dir",
                "kek_file",
                "store",
                "log_format",
                "digest",
                "http",
                "push",
                "cluster",
                "gba",
                "multicast_ttl",
                "multicast_interface",
                "services",
                "key_export_socket",
            ],
        )?;
        let fqdn = top.req_str("fqdn")?;
        check_fqdn(&fqdn).map_err(|p| top.err("fqdn", p))?;
        let http_listen = socket_addr(&mut top, "http_listen", "0.0.0.0:8080")?;
        let admin_listen = socket_addr(&mut top, "admin_listen", "127.0.0.1:9090")?;
        if admin_listen == http_listen {
            return Err(top.err("admin_listen", "must differ from http_listen"));
        }
        let ue_port = top
            .opt_int::<u16>("ue_port", "a port number 1 to 65535")?
            .unwrap_or(DEFAULT_UE_PORT);
        if ue_port == 0 {
            return Err(top.err("ue_port", "must be a port number 1 to 65535, got 0"));
        }
        let data_dir = PathBuf::from(top.req_str("data_dir")?);
        if data_dir.as_os_str().is_empty() {
            return Err(top.err("data_dir", "must not be empty"));
        }
        let kek_file = match env(KEK_FILE_ENV).filter(|v| !v.is_empty()) {
            Some(v) => {
                let _ = top.opt_str("kek_file")?;
                PathBuf::from(v)
            }
            None => match top.opt_str("kek_file")? {
                Some(p) if p.is_empty() => return Err(top.err("kek_file", "must not be empty")),
                Some(p) => PathBuf::from(p),
                None => data_dir.join("kek"),
            },
        };
        let store = store::store_config(&mut top, &env)?;
        let log_format = match top.opt_str("log_format")?.as_deref() {
            None | Some("human") => LogFormat::Human,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(top.err(
                    "log_format",
                    format!("must be \"human\" or \"json\", got {other:?}"),
                ));
            }
        };
        let digest = digest_section(top.opt_table(
            "digest",
            &["qop", "algorithm", "nonce_lifetime", "max_nonces"],
        )?)?;
        let http = http_section(top.opt_table(
            "http",
            &[
                "request_timeout",
                "idle_timeout",
                "max_connections",
                "max_body",
            ],
        )?)?;
        let push =
            push_section(top.opt_table("push", &["retries", "initial_backoff", "max_backoff"])?)?;
        let cluster = cluster_section(top.opt_table(
            "cluster",
            &[
                "takeover_after",
                "follow_interval",
                "fanout_item_size",
                "fanout_lease",
            ],
        )?)?;
        let gba = match top.opt_table("gba", gba::GBA_KEYS)? {
            None => GbaConfig::default(),
            Some(g) => gba::gba_section(g, &fqdn)?,
        };
        let multicast = multicast(&mut top, MulticastConfig::default())?;
        let services = services(&mut top, &data_dir, ue_port, multicast)?;
        let key_export_socket = match top.opt_str("key_export_socket")? {
            None => None,
            Some(p) => Some(
                check_export_socket(Path::new(&p)).map_err(|e| top.err("key_export_socket", e))?,
            ),
        };
        Ok(Self {
            fqdn,
            http_listen,
            admin_listen,
            ue_port,
            data_dir,
            kek_file,
            store,
            log_format,
            digest,
            http,
            push,
            cluster,
            gba,
            multicast,
            services,
            key_export_socket,
        })
    }

    /// The BM-SC's NAF_Id (docs/profile.md §1).
    #[must_use]
    pub fn naf_id(&self) -> NafId {
        NafId::mbms(&self.fqdn)
    }

    /// The service with this id.
    #[must_use]
    pub fn service(&self, id: &str) -> Option<&ServiceConfig> {
        self.services.iter().find(|s| s.id == id)
    }

    /// The embedded key source of `[[gba.subscribers]]` (keys derived for this BM-SC's NAF_Id).
    ///
    /// # Errors
    /// Only for inputs [`Config::parse`] already refuses (duplicate B-TID, over-long IMPI).
    pub fn key_source(&self) -> Result<EmbeddedKeySource, EmbeddedKeySourceError> {
        EmbeddedKeySource::new(
            &self.fqdn,
            self.gba.subscribers().iter().map(|s| EmbeddedSubscriber {
                btid: s.btid.clone(),
                impi: s.impi.clone(),
                material: s.material.clone(),
                expires: s.expires,
            }),
        )
    }

    /// What is accepted but looks unintended at `now`: subscribers already expired.
    #[must_use]
    pub fn warnings(&self, now: SystemTime) -> Vec<ConfigWarning> {
        self.gba
            .subscribers()
            .iter()
            .enumerate()
            .filter(|(_, s)| s.expires <= now)
            .map(|(i, s)| ConfigWarning {
                key: format!("gba.subscribers[{i}].expires"),
                problem: format!("subscriber {} has already expired", s.btid),
            })
            .collect()
    }
}
