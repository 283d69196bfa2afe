//! What the benches that drive a real BM-SC share: N UEs preloaded in a SQLite store with
//! synthetic GBA keys (Ks_NAF = HMAC of the B-TID, so no configuration lists them), their
//! loopback addresses, the BM-SC configuration, large socket buffers, and /proc readers.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::bmsc_config::{LabConfig, LabService};
use mbms_keys::bmsc::store::{Registration, SqliteStore, Store};
use mbms_keys::crypto::{KsNaf, hmac_sha256};
use mbms_keys::gba::{GbaKeys, KeySource, KeySourceError, SubscriberKeys, muk_gba_me};
use mbms_keys::mbms::{MskMessage, UnverifiedMsk};
use nix::sys::socket::{setsockopt, sockopt};

pub const FQDN: &str = "bmsc.bench.example.org";
pub const SERVICE: &str = "urn:bench:push";
pub const BSF: &str = "bsf.bench.example.org";
/// The secret the synthetic Ks_NAFs are derived from.
const SEED: &[u8] = b"mbms-keys bench push";
/// Registrations per `register_many` transaction during the preload.
const PRELOAD_CHUNK: usize = 50_000;
/// Socket buffers asked for (SO_RCVBUFFORCE as root, else capped by net.core.rmem_max).
const SOCKET_BUFFER: usize = 1 << 30;

/// UE `i`'s B-TID.
pub fn btid(i: u32) -> String {
    format!("bench{i:07}@{BSF}")
}

/// The UE number of a B-TID made by [`btid`].
pub fn ue_of_btid(btid: &[u8]) -> Option<u32> {
    let digits = btid.strip_prefix(b"bench")?.split(|b| *b == b'@').next()?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// UE `i`'s address: 127.x.y.z from `i + 2` (never 127.0.0.0 or 127.0.0.1).
pub fn ue_addr(i: u32) -> IpAddr {
    let j = i + 2;
    IpAddr::V4(Ipv4Addr::new(127, (j >> 16) as u8, (j >> 8) as u8, j as u8))
}

pub fn ks_naf_of(btid: &str) -> KsNaf {
    KsNaf::from_bytes(hmac_sha256(SEED, btid.as_bytes()))
}

/// GBA keys for any B-TID of the bench BSF, derived from the B-TID.
pub struct SyntheticKeys;

impl KeySource for SyntheticKeys {
    fn lookup(&self, btid: &str, _now: SystemTime) -> Result<SubscriberKeys, KeySourceError> {
        if !btid.ends_with(BSF) {
            return Err(KeySourceError::UnknownBtid);
        }
        Ok(SubscriberKeys {
            btid: btid.parse().map_err(|_| KeySourceError::UnknownBtid)?,
            impi: format!("{btid}.impi"),
            keys: GbaKeys::Me {
                ks_naf: ks_naf_of(btid),
            },
            expires: SystemTime::UNIX_EPOCH + Duration::from_secs(2_208_988_800),
        })
    }
}

/// The BM-SC configuration of the benches: one download service authorizing everyone, Key
/// Requests on `127.0.0.1:http_port` (0: any port); the UEs' keys come from [`SyntheticKeys`].
pub fn config_text(data_dir: &Path, ue_port: u16, mtk_sink: SocketAddr, http_port: u16) -> String {
    // Lifetime = MTK interval = MTK resend: the lead time is the whole lifetime, so the next
    // MSK is due at the driver's first timeout. Retransmissions are an hour away: what is
    // counted is the first push to each UE.
    let mut c = LabConfig::new(
        FQDN,
        data_dir.to_path_buf(),
        ue_port,
        LabService {
            id: SERVICE.to_owned(),
            msk_lifetime: "1h",
            mtk_interval: "1h",
            mtk_resend: "1h",
            mtk_destination: mtk_sink,
        },
    );
    c.http_port = http_port;
    c.push_backoff = Some(("1h", "1h"));
    c.to_toml()
}

pub fn open_store(data_dir: &Path) -> Result<SqliteStore, String> {
    SqliteStore::open_with_kek_file(data_dir, &data_dir.join("kek")).map_err(|e| e.to_string())
}

/// Registers UEs `0..n` to [`SERVICE`] in the store at `dir`, a day ago: long enough for a
/// start not to take them for registrations whose push may be outstanding.
pub fn preload(dir: &Path, n: u32) -> Result<(), String> {
    let store = open_store(dir)?;
    let now = SystemTime::now()
        .checked_sub(Duration::from_secs(24 * 3600))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut chunk = Vec::with_capacity(PRELOAD_CHUNK);
    for i in 0..n {
        chunk.push(Registration {
            btid: btid(i).parse().map_err(|e| format!("B-TID: {e}"))?,
            service_id: SERVICE.to_owned(),
            ue_addr: ue_addr(i),
            registered_at: now,
        });
        if chunk.len() == PRELOAD_CHUNK || i + 1 == n {
            store.register_many(&chunk).map_err(|e| e.to_string())?;
            chunk.clear();
        }
    }
    Ok(())
}

/// Copies the files of `from` (not its subdirectories) into `to`.
pub fn copy_dir(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| e.to_string())?;
    for entry in std::fs::read_dir(from).map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        if entry.file_type().map_err(|e| e.to_string())?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Verifies an MSK message under the MUK of the UE its IDr names.
pub fn verify(message: &[u8]) -> bool {
    verified(message).is_some()
}

/// The MSK message, verified under the MUK of the UE its IDr names.
pub fn verified(message: &[u8]) -> Option<MskMessage> {
    let m = UnverifiedMsk::parse(message).ok()?;
    let btid = std::str::from_utf8(m.idr()).ok()?;
    let muk = muk_gba_me(&ks_naf_of(btid));
    m.verify(&muk).ok()
}

pub fn big_buffers(socket: &impl std::os::fd::AsFd) {
    if setsockopt(socket, sockopt::RcvBufForce, &SOCKET_BUFFER).is_err() {
        let _ = setsockopt(socket, sockopt::RcvBuf, &SOCKET_BUFFER);
    }
    if setsockopt(socket, sockopt::SndBufForce, &SOCKET_BUFFER).is_err() {
        let _ = setsockopt(socket, sockopt::SndBuf, &SOCKET_BUFFER);
    }
}

/// The UDP sockets of a bench run: the UE farm's on `0.0.0.0:ue_port` (receiving for every UE
/// address, with large buffers and a read timeout) and a sink for the MTK messages.
pub struct LabSockets {
    pub farm: UdpSocket,
    pub ue_port: u16,
    pub mtk_sink: UdpSocket,
    pub sink_addr: SocketAddr,
}

impl LabSockets {
    pub fn bind(read_timeout: Duration) -> Result<Self, String> {
        let farm = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
        big_buffers(&farm);
        farm.set_read_timeout(Some(read_timeout))
            .map_err(|e| e.to_string())?;
        let ue_port = farm.local_addr().map_err(|e| e.to_string())?.port();
        let mtk_sink = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let sink_addr = mtk_sink.local_addr().map_err(|e| e.to_string())?;
        Ok(Self {
            farm,
            ue_port,
            mtk_sink,
            sink_addr,
        })
    }
}

/// A `kB` line of /proc/self/status, in KiB.
pub fn proc_status_kib(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// User + system CPU time of the whole process (all threads), from /proc/self/stat (clock
/// ticks of 1/100 s, Linux's USER_HZ).
pub fn cpu_time() -> Duration {
    cpu_time_of("/proc/self/stat")
}

/// As [`cpu_time`] for a /proc `stat` file (`/proc/thread-self/stat`: the calling thread).
pub fn cpu_time_of(path: &str) -> Duration {
    let Ok(stat) = std::fs::read_to_string(path) else {
        return Duration::ZERO;
    };
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    // utime is field 14, stime 15: indices 11 and 12 after the state field (3).
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}
