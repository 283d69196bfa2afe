//! The Key Request server on a loopback socket: the hyper driver around the handler, a real
//! SQLite store and the embedded GBA key source of the lab configuration.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::timeout;

use mbms_keys::bmsc::config::Config;
use mbms_keys::bmsc::events::KeyRequestEvent;
use mbms_keys::bmsc::http::serve_key_requests;
use mbms_keys::bmsc::keyreq::KeyRequestHandler;
use mbms_keys::bmsc::metrics::Metrics;
use mbms_keys::bmsc::store::GroupCommitLimits;
use mbms_keys::crypto::OsRandom;
use mbms_keys::gba::{GbaKeys, KeySource};
use mbms_keys::mbms::keyreq::{RegisterRequest, RegisterResponse};
use mbms_keys::ue::gba_keys::{StaticGbaKeys, UeGbaKeys};
use mbms_keys::ue::http::KeyRequestClient;

use crate::lab::{self, ALICE, FlakyStore, TempDir};

pub const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// How long a test waits for any one answer before it fails.
pub const IO_LIMIT: Duration = Duration::from_secs(10);

pub struct Server {
    pub addr: SocketAddr,
    pub events: mpsc::Receiver<KeyRequestEvent>,
    pub store: Arc<FlakyStore>,
    pub metrics: Arc<Metrics>,
    pub stop: Option<oneshot::Sender<()>>,
    pub task: Option<JoinHandle<()>>,
    _dir: TempDir,
}

pub async fn start(config: Config) -> Server {
    let dir = TempDir::new("http");
    let store = FlakyStore::open(&dir);
    start_on(config, store, dir).await
}

/// As [`start`], with the store's registrations group-committed within `limits`.
pub async fn start_with_group_commit(config: Config, limits: GroupCommitLimits) -> Server {
    let dir = TempDir::new("http");
    let mut store = FlakyStore::open(&dir);
    store.inner = store.inner.with_group_commit(limits).expect("store writer");
    start_on(config, store, dir).await
}

async fn start_on(config: Config, store: FlakyStore, dir: TempDir) -> Server {
    let store = Arc::new(store);
    let source: Arc<dyn KeySource> = Arc::new(config.key_source().expect("key source"));
    let metrics = Arc::new(Metrics::default());
    let handler = Arc::new(KeyRequestHandler::new(
        &config,
        source,
        store.clone(),
        metrics.clone(),
        Box::new(OsRandom),
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (ev_tx, ev_rx) = mpsc::channel(64);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_key_requests(
        listener,
        handler,
        ev_tx,
        config.http.clone(),
        metrics.clone(),
        async move {
            let _ = stop_rx.await;
        },
    ));
    Server {
        addr,
        events: ev_rx,
        store,
        metrics,
        stop: Some(stop_tx),
        task: Some(task),
        _dir: dir,
    }
}

/// The lab configuration (`request_timeout` 1 s, `max_body` 4096) with nonces of 5 minutes.
pub fn config(qop: &str, algorithm: &str) -> Config {
    lab::config(qop, algorithm, "5m", 1000)
}

impl Server {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn next_event(&mut self) -> KeyRequestEvent {
        timeout(IO_LIMIT, self.events.recv())
            .await
            .expect("event in time")
            .expect("channel open")
    }

    pub fn no_event(&mut self) {
        assert!(self.events.try_recv().is_err(), "no event expected");
    }

    /// Stops the server and waits for it to drain.
    pub async fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            timeout(IO_LIMIT, t)
                .await
                .expect("server stops in time")
                .expect("server task");
        }
    }
}

pub fn alice_keys() -> UeGbaKeys {
    UeGbaKeys {
        btid: ALICE.parse().expect("btid"),
        material: GbaKeys::Me {
            ks_naf: lab::ks_naf(0x10),
        },
        expiry: SystemTime::now() + Duration::from_secs(3600),
    }
}

pub fn client(server: &Server, keys: UeGbaKeys) -> KeyRequestClient {
    KeyRequestClient::new(&server.url(), Arc::new(StaticGbaKeys::new(keys))).expect("client")
}

pub fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

pub fn register_body(list: &[&str]) -> String {
    RegisterRequest::register(&ids(list)).to_xml()
}

pub fn codes(r: &RegisterResponse) -> Vec<(String, u16)> {
    r.statuses
        .iter()
        .map(|s| (s.service_id.clone(), s.code))
        .collect()
}
