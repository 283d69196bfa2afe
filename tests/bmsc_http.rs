//! The BM-SC Key Request server over loopback (PROFILE.md §4): the hyper driver around the
//! handler, a real SQLite store and the embedded GBA key source of the configuration, with
//! - our UE client (`ue::http::KeyRequestClient`), which requires a valid rspauth;
//! - curl `--digest` (qop auth) and Apache HttpClient 4.5 (qop auth-int, MD5 and SHA-256), which
//!   skip when absent and fail instead when `MBMS_REQUIRE_ORACLES=1`;
//! - a bad-input matrix on raw sockets, slowloris, connection limits, idle timeout, graceful
//!   shutdown, and the admin server.

mod common;
#[path = "bmsc_keyreq/lab.rs"]
mod lab;
#[path = "bmsc_http/matrix.rs"]
mod matrix;
#[path = "bmsc_http/oracles.rs"]
mod oracles;
#[path = "bmsc_http/raw.rs"]
mod raw;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout};

use mbms_keys::bmsc::config::Config;
use mbms_keys::bmsc::events::KeyRequestEvent;
use mbms_keys::bmsc::http::{serve_admin, serve_key_requests};
use mbms_keys::bmsc::keyreq::{KeyRequestHandler, OsRng};
use mbms_keys::bmsc::metrics::Metrics;
use mbms_keys::bmsc::store::{MskState, Store};
use mbms_keys::gba::{Btid, GbaKeys, KeySource};
use mbms_keys::mbms::digest::{
    Authorization, Challenge, ClientSession, Credentials, RspauthStatus,
};
use mbms_keys::mbms::keyreq::{
    MIME_REGISTER, PATH_DEREGISTER, PATH_MSK, PATH_REGISTER, RegisterRequest, RegisterResponse,
};
use mbms_keys::mikey::MskId;
use mbms_keys::ue::gba_keys::{StaticGbaKeys, UeGbaKeys};
use mbms_keys::ue::http::KeyRequestClient;

use lab::{ALICE, FlakyStore, KD, OLD, OPEN, OPEN2, REALM, TempDir, VERA, VIP, credentials};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const IO_LIMIT: Duration = Duration::from_secs(10);

struct Server {
    addr: SocketAddr,
    events: mpsc::Receiver<KeyRequestEvent>,
    store: Arc<FlakyStore>,
    metrics: Arc<Metrics>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    _dir: TempDir,
}

async fn start(config: Config) -> Server {
    let dir = TempDir::new("http");
    let store = Arc::new(FlakyStore::open(&dir));
    let source: Arc<dyn KeySource> = Arc::new(config.key_source().expect("key source"));
    let metrics = Arc::new(Metrics::default());
    let handler = Arc::new(KeyRequestHandler::new(
        &config,
        source,
        store.clone(),
        metrics.clone(),
        Box::new(OsRng),
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

fn config(qop: &str, algorithm: &str) -> Config {
    lab::config(qop, algorithm, "5m", 1000)
}

impl Server {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn next_event(&mut self) -> KeyRequestEvent {
        timeout(IO_LIMIT, self.events.recv())
            .await
            .expect("event in time")
            .expect("channel open")
    }

    fn no_event(&mut self) {
        assert!(self.events.try_recv().is_err(), "no event expected");
    }

    /// Stops the server and waits for it to drain.
    async fn stop(&mut self) {
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

fn alice_keys() -> UeGbaKeys {
    UeGbaKeys {
        btid: ALICE.parse().expect("btid"),
        material: GbaKeys::Me {
            ks_naf: lab::ks_naf(0x10),
        },
        expiry: SystemTime::now() + Duration::from_secs(3600),
    }
}

fn client(server: &Server, keys: UeGbaKeys) -> KeyRequestClient {
    KeyRequestClient::new(&server.url(), Arc::new(StaticGbaKeys::new(keys))).expect("client")
}

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn register_body(list: &[&str]) -> String {
    RegisterRequest::register(&ids(list)).to_xml()
}

fn codes(r: &RegisterResponse) -> Vec<(String, u16)> {
    r.statuses
        .iter()
        .map(|s| (s.service_id.clone(), s.code))
        .collect()
}

use raw::*;

// ---- our UE client --------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ue_client_registers_requests_msks_and_deregisters() {
    let mut s = start(config("auth-int", "SHA-256")).await;
    let ue = client(&s, alice_keys());
    let alice: Btid = ALICE.parse().expect("btid");

    let r = ue.register(&ids(&[OPEN, VIP])).await.expect("register");
    assert_eq!(codes(&r), vec![(OPEN.into(), 200), (VIP.into(), 403)]);
    assert_eq!(
        s.next_event().await,
        KeyRequestEvent::Registered {
            btid: alice.clone(),
            ue_addr: LOCALHOST,
            service_ids: ids(&[OPEN]),
        }
    );
    let regs = s.store.registrations_of_btid(&alice).expect("read");
    assert_eq!(regs.len(), 1);
    assert_eq!(
        regs[0].ue_addr, LOCALHOST,
        "the UE address is the source IP"
    );

    s.store
        .put_msk(&lab::msk_record(1, 5, MskState::Current))
        .expect("seed MSK");
    let m = ue
        .request_msk(&[
            (KD, MskId::new(1, 0)),
            (KD, MskId::new(1, 5)),
            (KD, MskId::new(2, 1)),
        ])
        .await
        .expect("msk request");
    let got: Vec<u16> = m.statuses.iter().map(|s| s.code).collect();
    assert_eq!(got, vec![200, 200, 403]);
    assert_eq!(
        s.next_event().await,
        KeyRequestEvent::MskRequested {
            btid: alice.clone(),
            ue_addr: LOCALHOST,
            msks: vec![(KD, MskId::new(1, 0)), (KD, MskId::new(1, 5))],
        }
    );

    let d = ue.deregister(&ids(&[OPEN])).await.expect("deregister");
    assert_eq!(codes(&d), vec![(OPEN.into(), 200)]);
    assert_eq!(
        s.next_event().await,
        KeyRequestEvent::Deregistered {
            btid: alice.clone(),
            ue_addr: LOCALHOST,
            removed: ids(&[OPEN]),
            remaining: vec![],
        }
    );
    assert!(
        s.store
            .registrations_of_btid(&alice)
            .expect("read")
            .is_empty()
    );

    // The lower-level call shows the rspauth check the high-level calls require.
    let a = ue
        .send_authenticated(
            PATH_REGISTER,
            MIME_REGISTER,
            Bytes::from(register_body(&[OPEN2])),
        )
        .await
        .expect("send");
    assert_eq!(
        (a.status.as_u16(), a.rspauth),
        (200, RspauthStatus::Verified)
    );
    s.next_event().await;

    // Vera: Ks_NAF derived from Ks and RAND by the configuration; the restricted service.
    let vera = client(
        &s,
        UeGbaKeys {
            btid: VERA.parse().expect("btid"),
            material: GbaKeys::Me {
                ks_naf: lab::vera_ks_naf(),
            },
            expiry: SystemTime::now() + Duration::from_secs(3600),
        },
    );
    let v = vera.register(&ids(&[VIP])).await.expect("register");
    assert_eq!(codes(&v), vec![(VIP.into(), 200)]);
    s.next_event().await;
    s.no_event();
    assert_eq!(s.metrics.http_status_count(200), 5);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ue_client_works_with_md5_and_qop_auth_too() {
    let mut s = start(config("auth", "MD5")).await;
    let r = client(&s, alice_keys())
        .register(&ids(&[OPEN]))
        .await
        .expect("register");
    assert_eq!(codes(&r), vec![(OPEN.into(), 200)]);
    s.next_event().await;
    s.stop().await;
}

// ---- connections ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_max_connections_get_503_at_once() {
    let mut cfg = config("auth-int", "SHA-256");
    cfg.http.max_connections = 2;
    let mut s = start(cfg).await;
    let held1 = TcpStream::connect(s.addr).await.expect("connect");
    let held2 = TcpStream::connect(s.addr).await.expect("connect");
    sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    let r = post(s.addr, PATH_MSK, &[], b"").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(t.elapsed() < Duration::from_millis(900));
    drop(held1);
    sleep(Duration::from_millis(100)).await;
    assert_eq!(post(s.addr, PATH_MSK, &[], b"").await.status, 401);
    drop(held2);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_connections_wait_idle_timeout_not_request_timeout() {
    let mut cfg = config("auth-int", "SHA-256");
    cfg.http.request_timeout = Duration::from_secs(1);
    cfg.http.idle_timeout = Duration::from_secs(2);
    let mut s = start(cfg).await;
    let mut conn = TcpStream::connect(s.addr).await.expect("connect");
    let req = request_bytes("POST", PATH_DEREGISTER, &[], b"");
    conn.write_all(&req).await.expect("write");
    assert_eq!(read_response(&mut conn).await.status, 401);
    sleep(Duration::from_millis(1500)).await;
    conn.write_all(&req).await.expect("write again");
    assert_eq!(
        read_response(&mut conn).await.status,
        401,
        "still open after 1.5 s idle"
    );
    let t = Instant::now();
    assert!(closed_within(&mut conn, Duration::from_secs(4)).await);
    assert!(
        t.elapsed() >= Duration::from_millis(1800),
        "{:?}",
        t.elapsed()
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_accepting_and_finishes_requests_in_flight() {
    let mut s = start(config("auth-int", "SHA-256")).await;
    let idle = TcpStream::connect(s.addr).await.expect("connect");
    let mut conn = TcpStream::connect(s.addr).await.expect("connect");
    let body = register_body(&[OPEN]);
    let req = request_bytes(
        "POST",
        PATH_REGISTER,
        &[("content-type", MIME_REGISTER)],
        body.as_bytes(),
    );
    let (first, rest) = req.split_at(req.len() - 10);
    conn.write_all(first).await.expect("write");
    sleep(Duration::from_millis(100)).await;
    let stop = s.stop.take().expect("stop");
    let _ = stop.send(());
    sleep(Duration::from_millis(100)).await;
    assert!(
        TcpStream::connect(s.addr).await.is_err(),
        "no longer accepting"
    );
    conn.write_all(rest).await.expect("write the rest");
    let r = read_response(&mut conn).await;
    assert_eq!(r.status, 401, "the request in flight is answered");
    assert_eq!(r.header("connection"), Some("close"));
    let task = s.task.take().expect("task");
    timeout(Duration::from_secs(3), task)
        .await
        .expect("drained in time")
        .expect("server task");
    drop(idle);
}

// ---- admin ----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_server_serves_metrics_and_health() {
    let metrics = Arc::new(Metrics::default());
    metrics.http_status(401);
    let healthy = Arc::new(AtomicBool::new(true));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let a = listener.local_addr().expect("addr");
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let h = healthy.clone();
    let task = tokio::spawn(serve_admin(
        listener,
        metrics.clone(),
        move || h.load(Ordering::SeqCst),
        async move {
            let _ = stop_rx.await;
        },
    ));
    let get = |path: &str| request_bytes("GET", path, &[], b"");
    let r = raw(a, &get("/metrics")).await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain; version=0.0.4"))
    );
    let text = String::from_utf8(r.body).expect("utf-8");
    assert!(
        text.contains("mbms_bmsc_http_responses_total{status=\"401\"} 1"),
        "{text}"
    );
    let r = raw(a, &get("/health")).await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ok\n"[..]));
    healthy.store(false, Ordering::SeqCst);
    assert_eq!(raw(a, &get("/health")).await.status, 503);
    assert_eq!(raw(a, &get("/nope")).await.status, 404);
    assert_eq!(
        raw(a, &request_bytes("POST", "/metrics", &[], b""))
            .await
            .status,
        405
    );
    let _ = stop_tx.send(());
    timeout(IO_LIMIT, task)
        .await
        .expect("stops")
        .expect("admin task");
}
