#![allow(dead_code)]
//! A BM-SC lab on loopback: configuration, UEs on their own 127.0.0.x
//! addresses, a relay standing in for the broadcast bearer, and helpers.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use mbms_keys::crypto::KsNaf;
use mbms_keys::gba::GbaKeys;
use mbms_keys::ue::Event;
use mbms_keys::ue::driver::{UeClient, UeConfig};
use mbms_keys::ue::gba_keys::{StaticGbaKeys, UeGbaKeys};
use mbms_keys::ue::http::ClientConfig;
use mbms_lab::bmsc_config::{LabConfig, LabService, LabSubscriber};
use tokio::net::UdpSocket;

pub const FQDN: &str = "bmsc.e2e.example.org";
pub const SERVICE: &str = "urn:e2e:news";

pub use crate::common::TempDir;

/// The lab's subscribers: B-TID, IMPI and Ks_NAF octet.
pub fn subscriber(i: u8) -> (String, String, KsNaf) {
    (
        format!("VUUt{i:02}@bsf.e2e.example.org"),
        format!("00101000000{i:04}@ims.e2e.example.org"),
        KsNaf::from_bytes([0x40 + i; 32]),
    )
}

pub use crate::common::free_port as free_udp_port;

/// The configuration text of the lab BM-SC.
pub fn config_text(
    data_dir: &Path,
    ue_port: u16,
    relay: SocketAddr,
    subscribers: &[u8],
    msk_lifetime: &'static str,
    retries: u32,
) -> String {
    let mut c = LabConfig::new(
        FQDN,
        data_dir.to_path_buf(),
        ue_port,
        LabService {
            id: SERVICE.to_owned(),
            msk_lifetime,
            mtk_interval: "1s",
            mtk_resend: "500ms",
            mtk_destination: relay,
        },
    );
    c.qop = Some("auth,auth-int");
    c.algorithm = Some("SHA-256");
    c.nonce_lifetime = Some("5m");
    c.push_retries = Some(retries);
    c.push_backoff = Some(("300ms", "1s"));
    c.subscribers = subscribers
        .iter()
        .map(|i| {
            let (btid, impi, ks) = subscriber(*i);
            LabSubscriber {
                btid,
                impi,
                ks_naf: *ks.as_bytes(),
            }
        })
        .collect();
    c.to_toml()
}

/// Stands in for the broadcast bearer: every MTK message sent to the relay
/// is forwarded to every UE address registered with it.
pub struct Relay {
    pub addr: SocketAddr,
    pub targets: Arc<Mutex<Vec<SocketAddr>>>,
    pub forwarded: Arc<Mutex<u64>>,
    /// The first 64 MTK messages forwarded, as sent.
    pub history: Arc<Mutex<Vec<Vec<u8>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    pub async fn start() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("relay socket");
        let addr = socket.local_addr().expect("relay addr");
        let targets: Arc<Mutex<Vec<SocketAddr>>> = Arc::default();
        let forwarded: Arc<Mutex<u64>> = Arc::default();
        let history: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let (t, f, h) = (targets.clone(), forwarded.clone(), history.clone());
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 65_535];
            while let Ok((n, _)) = socket.recv_from(&mut buf).await {
                let list = t.lock().expect("lock").clone();
                for to in list {
                    let _ = socket.send_to(&buf[..n], to).await;
                }
                *f.lock().expect("lock") += 1;
                let mut h = h.lock().expect("lock");
                if h.len() < 64 {
                    h.push(buf[..n].to_vec());
                }
            }
        });
        Self {
            addr,
            targets,
            forwarded,
            history,
            task,
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The loopback address of UE `i`.
pub fn ue_ip(i: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 10 + i))
}

/// Starts UE `i` of the lab: listening on its own address and `ue_port`,
/// sending its HTTP requests from that address too.
pub async fn start_ue(i: u8, ue_port: u16, http: SocketAddr, state: Option<PathBuf>) -> UeClient {
    let (btid, _, ks_naf) = subscriber(i);
    let keys = UeGbaKeys {
        btid: btid.parse().expect("btid"),
        material: GbaKeys::Me { ks_naf },
        expiry: SystemTime::now() + Duration::from_secs(3600),
    };
    let mut c = UeConfig::new(FQDN);
    c.listen = SocketAddr::new(ue_ip(i), ue_port);
    c.bmsc_url = Some(format!("http://{http}"));
    c.state_file = state;
    c.client = ClientConfig {
        local_addr: Some(ue_ip(i)),
        ..ClientConfig::default()
    };
    UeClient::start(c, Arc::new(StaticGbaKeys::new(keys)))
        .await
        .expect("UE starts")
}

/// Pulls events of `ue` until one matches `want`; every event seen is kept in `seen`.
pub async fn wait_for(
    ue: &mut UeClient,
    seen: &mut Vec<Event>,
    within: Duration,
    what: &str,
    want: impl Fn(&Event) -> bool,
) -> Event {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, ue.next_event()).await {
            Ok(Some(e)) => {
                seen.push(e.clone());
                if want(&e) {
                    return e;
                }
            }
            Ok(None) => panic!("UE stopped while waiting for {what}"),
            Err(_) => panic!("no {what} within {within:?}; seen: {seen:?}"),
        }
    }
}

/// GET a path of the admin listener, plain HTTP/1.0.
pub async fn http_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("admin connect");
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out
}

/// The value of one metric line `name value` in a Prometheus text.
pub fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("metric {name} missing"))
}
