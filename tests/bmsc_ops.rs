//! Operations of the assembled BM-SC: liveness and readiness on the admin listener,
//! supervision of its essential tasks (an unexpected end stops the server with an error) and
//! the configuration reload SIGHUP uses (subscribers and authorizations swapped in live,
//! anything else refused). The same through a real `bmsc serve` process: exit status 3 when a
//! task ends, SIGHUP applied.

mod common;
mod bmsc_e2e {
    pub mod lab;
}

use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bmsc_e2e::lab::{self, FQDN, Relay, SERVICE, TempDir, http_get, metric, start_ue, subscriber};
use mbms_keys::bmsc::config::Config;
use mbms_keys::bmsc::distribution::Tuning;
use mbms_keys::bmsc::http::serve_key_requests;
use mbms_keys::bmsc::keyreq::KeyRequestHandler;
use mbms_keys::bmsc::metrics::Metrics;
use mbms_keys::bmsc::reload::ReloadOutcome;
use mbms_keys::bmsc::server::{Bmsc, ServeError};
use mbms_keys::bmsc::store::SqliteStore;
use mbms_keys::crypto::OsRandom;
use mbms_lab::bmsc_config::{LabConfig, LabService};

fn status_of(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn body_of(response: &str) -> &str {
    response.split("\r\n\r\n").nth(1).unwrap_or("")
}

async fn start(dir: &TempDir, relay: SocketAddr, subscribers: &[u8]) -> (Bmsc, u16, String) {
    let ue_port = lab::free_udp_port();
    let text = lab::config_text(dir.path(), ue_port, relay, subscribers, "1h", 2);
    let config = Config::parse(&text).expect("lab config");
    let bmsc = Bmsc::start_with(config, Tuning::default())
        .await
        .expect("BM-SC starts");
    (bmsc, ue_port, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_bmsc_is_live_and_ready_and_health_is_readiness() {
    let dir = TempDir::new("ops-health");
    let relay = Relay::start().await;
    let (bmsc, _, _) = start(&dir, relay.addr, &[1]).await;
    let live = http_get(bmsc.admin_addr(), "/health/live").await;
    assert_eq!(
        (status_of(&live), body_of(&live)),
        (200, "live\n"),
        "{live}"
    );
    for path in ["/health/ready", "/health"] {
        let r = http_get(bmsc.admin_addr(), path).await;
        assert_eq!(status_of(&r), 200, "{path}: {r}");
        let body = body_of(&r);
        for line in [
            "ready",
            "store: ok",
            "listeners: ok",
            "distribution: ok",
            "key_source: ok",
        ] {
            assert!(body.lines().any(|l| l == line), "{path}: {line} in {body}");
        }
    }
    bmsc.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_distribution_task_ends_the_bmsc_is_not_ready_refuses_registrations_and_stops_with_an_error()
 {
    let dir = TempDir::new("ops-supervise");
    let relay = Relay::start().await;
    let (bmsc, ue_port, _) = start(&dir, relay.addr, &[1, 2]).await;
    let ue1 = start_ue(1, ue_port, bmsc.http_addr(), None).await;
    let r = ue1
        .register(&[SERVICE.to_string()])
        .await
        .expect("registration");
    assert_eq!(r.statuses[0].code, 200);

    assert!(bmsc.abort_task("key distribution"), "the task exists");
    let ended = tokio::time::timeout(Duration::from_secs(5), bmsc.task_ended())
        .await
        .expect("the supervisor notices");
    assert_eq!(ended.task, "key distribution");
    assert!(!bmsc.readiness().is_ready());

    // The admin listener stays up until the owner shuts down: live, but not ready.
    let ready = http_get(bmsc.admin_addr(), "/health/ready").await;
    assert_eq!(status_of(&ready), 503, "{ready}");
    assert!(
        body_of(&ready).contains("distribution: not running"),
        "{ready}"
    );
    assert_eq!(
        status_of(&http_get(bmsc.admin_addr(), "/health").await),
        503
    );
    assert_eq!(
        status_of(&http_get(bmsc.admin_addr(), "/health/live").await),
        200
    );

    // No registration is answered 200 any more.
    let ue2 = start_ue(2, ue_port, bmsc.http_addr(), None).await;
    match ue2.register(&[SERVICE.to_string()]).await {
        Ok(r) => panic!("registration answered after the distribution ended: {r:?}"),
        Err(e) => println!("refused as expected: {e}"),
    }

    match bmsc.shutdown().await {
        Err(ServeError::TaskEnded { task, why }) => {
            assert_eq!(
                (task.as_str(), why.as_str()),
                ("key distribution", "cancelled")
            );
        }
        other => panic!("expected TaskEnded, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zn_source_without_an_open_peer_is_not_ready_and_says_so() {
    let dir = TempDir::new("ops-zn");
    let relay = Relay::start().await;
    // A port nothing listens on: the peer never opens.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let bsf = closed.local_addr().expect("addr");
    drop(closed);
    let mut c = LabConfig::new(
        FQDN,
        dir.path().to_path_buf(),
        lab::free_udp_port(),
        LabService {
            id: SERVICE.to_owned(),
            msk_lifetime: "1h",
            mtk_interval: "1s",
            mtk_resend: "500ms",
            mtk_destination: relay.addr,
        },
    );
    c.zn = Some(format!(
        "peers = [\"{bsf}\"]\norigin_host = \"{FQDN}\"\norigin_realm = \"example.test\"\n\
         destination_realm = \"bsf.example.test\"\nrequest_timeout = \"500ms\"\nreconnect_max = \"200ms\"\n"
    ));
    let config = Config::parse(&c.to_toml()).expect("config");
    let bmsc = Bmsc::start_with(config, Tuning::default())
        .await
        .expect("BM-SC starts");
    let r = http_get(bmsc.admin_addr(), "/health/ready").await;
    assert_eq!(status_of(&r), 503, "{r}");
    assert!(
        body_of(&r).contains("key_source: no Zn peer open (1 configured)"),
        "{r}"
    );
    assert!(body_of(&r).contains("distribution: ok"), "{r}");
    assert_eq!(
        status_of(&http_get(bmsc.admin_addr(), "/health/live").await),
        200
    );
    bmsc.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_nbsp_source_whose_last_request_got_no_answer_is_not_ready() {
    let dir = TempDir::new("ops-nbsp");
    let relay = Relay::start().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let bsf = closed.local_addr().expect("addr");
    drop(closed);
    let ue_port = lab::free_udp_port();
    let text = format!(
        "{}\n[gba.nbsp]\napi_root = \"http://{bsf}\"\nhttp_version = \"1.1\"\nrequest_timeout = \"500ms\"\n",
        lab::config_text(dir.path(), ue_port, relay.addr, &[], "1h", 2)
    );
    let bmsc = Bmsc::start_with(Config::parse(&text).expect("config"), Tuning::default())
        .await
        .expect("BM-SC starts");
    // No request yet: nothing says the source is unreachable.
    let r = http_get(bmsc.admin_addr(), "/health/ready").await;
    assert_eq!(status_of(&r), 200, "{r}");
    let ue = start_ue(1, ue_port, bmsc.http_addr(), None).await;
    assert!(ue.register(&[SERVICE.to_string()]).await.is_err());
    let r = http_get(bmsc.admin_addr(), "/health/ready").await;
    assert_eq!(status_of(&r), 503, "{r}");
    assert!(
        body_of(&r).contains("key_source: the last request to the key source got no usable answer"),
        "{r}"
    );
    bmsc.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_whose_push_cannot_be_queued_is_answered_503() {
    let dir = TempDir::new("ops-503");
    let relay = Relay::start().await;
    let ue_port = lab::free_udp_port();
    let text = lab::config_text(dir.path(), ue_port, relay.addr, &[1], "1h", 2);
    let config = Config::parse(&text).expect("lab config");
    let store = Arc::new(
        SqliteStore::open_with_kek_file(&config.data_dir, &config.kek_file).expect("store"),
    );
    let metrics = Arc::new(Metrics::default());
    let handler = Arc::new(KeyRequestHandler::new(
        &config,
        Arc::new(config.key_source().expect("keys")),
        store,
        metrics.clone(),
        Box::new(OsRandom),
    ));
    // The Key Distribution side is gone: its receiver is dropped.
    let (events, rx) = tokio::sync::mpsc::channel(4);
    drop(rx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_key_requests(
        listener,
        handler,
        events,
        config.http.clone(),
        metrics.clone(),
        async move {
            let _ = stop_rx.await;
        },
    ));
    let ue = start_ue(1, ue_port, addr, None).await;
    let r = ue.register(&[SERVICE.to_string()]).await;
    assert!(r.is_err(), "answered without a queued push: {r:?}");
    assert!(format!("{:?}", r).contains("503"), "{r:?}");
    let _ = stop.send(());
    let _ = server.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_swaps_in_subscribers_and_authorizations_and_keeps_registrations() {
    let dir = TempDir::new("ops-reload");
    let relay = Relay::start().await;
    let (bmsc, ue_port, text) = start(&dir, relay.addr, &[1]).await;
    let ue1 = start_ue(1, ue_port, bmsc.http_addr(), None).await;
    let ue2 = start_ue(2, ue_port, bmsc.http_addr(), None).await;
    let r = ue1.register(&[SERVICE.to_string()]).await.expect("ue1");
    assert_eq!(r.statuses[0].code, 200);
    assert!(
        ue2.register(&[SERVICE.to_string()]).await.is_err(),
        "subscriber 2 is not listed yet"
    );

    // Subscriber 2 added; only subscriber 2 may register from now on.
    let (_, impi2, _) = subscriber(2);
    let with_two = lab::config_text(dir.path(), ue_port, relay.addr, &[1, 2], "1h", 2)
        .replace("authorized = \"*\"", &format!("authorized = [\"{impi2}\"]"));
    assert_ne!(with_two, text);
    let outcome = bmsc.reload(Config::parse(&with_two).expect("new config"));
    assert_eq!(outcome, ReloadOutcome::Applied { subscribers: 2 });

    let r = ue2.register(&[SERVICE.to_string()]).await.expect("ue2");
    assert_eq!(r.statuses[0].code, 200, "subscriber 2 is listed now");
    let r = ue1.register(&[SERVICE.to_string()]).await.expect("ue1");
    assert_eq!(
        r.statuses[0].code, 403,
        "subscriber 1 is no longer authorized"
    );
    // Subscriber 1's registration was not dropped: two are stored.
    let mut registrations = 0;
    for _ in 0..100 {
        let m = http_get(bmsc.admin_addr(), "/metrics").await;
        registrations = metric(&m, "mbms_bmsc_registrations");
        if registrations == 2 {
            assert_eq!(
                metric(&m, "mbms_bmsc_config_reloads_total{result=\"applied\"}"),
                1
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(registrations, 2);
    bmsc.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_changes_a_fixed_key_is_refused_and_the_running_configuration_stays() {
    let dir = TempDir::new("ops-refuse");
    let relay = Relay::start().await;
    let (bmsc, ue_port, text) = start(&dir, relay.addr, &[1]).await;
    // Subscriber 2 added, but also another ue_port and max_body: refused as a whole.
    let changed = format!(
        "{}\n[http]\nmax_body = 4096\n",
        lab::config_text(dir.path(), ue_port + 1, relay.addr, &[1, 2], "1h", 2)
    );
    match bmsc.reload(Config::parse(&changed).expect("parses")) {
        ReloadOutcome::Refused { keys } => {
            assert!(keys.iter().any(|k| k == "ue_port"), "{keys:?}");
            assert!(keys.iter().any(|k| k == "http"), "{keys:?}");
            assert!(!keys.iter().any(|k| k.starts_with("gba")), "{keys:?}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let ue2 = start_ue(2, ue_port, bmsc.http_addr(), None).await;
    assert!(
        ue2.register(&[SERVICE.to_string()]).await.is_err(),
        "the refused subscriber list was not applied"
    );
    // A file that is not a valid configuration.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, text.replace("fqdn", "fqnd")).expect("write");
    assert!(matches!(bmsc.reload_file(&bad), ReloadOutcome::Invalid(_)));
    let m = http_get(bmsc.admin_addr(), "/metrics").await;
    assert_eq!(
        metric(&m, "mbms_bmsc_config_reloads_total{result=\"refused\"}"),
        1
    );
    assert_eq!(
        metric(&m, "mbms_bmsc_config_reloads_total{result=\"invalid\"}"),
        1
    );
    assert_eq!(
        metric(&m, "mbms_bmsc_config_reloads_total{result=\"applied\"}"),
        0
    );
    bmsc.shutdown().await.expect("clean shutdown");
}

// ---- the real process ---------------------------------------------------------------------

/// The server process, killed when the test ends (also on panic).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_server(config: &std::path::Path, fault: Option<&str>, notify: Option<&Path>) -> Server {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mbms-keys"));
    c.args(["bmsc", "serve", "--config"])
        .arg(config)
        .env("MBMS_LOG", "info")
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(path) = notify {
        c.env("NOTIFY_SOCKET", path);
    }
    if let Some(task) = fault {
        // Only the exit message and a few log lines: small enough for the pipe.
        c.env("MBMS_FAULT_ABORT_TASK", task)
            .env("MBMS_LOG", "error")
            .stderr(Stdio::piped());
    }
    Server(c.spawn().expect("server starts"))
}

fn wait_exit(server: &mut Server, within: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(s) = server.0.try_wait().expect("wait") {
            return s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not exit"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn process_config(dir: &TempDir, relay: SocketAddr, subscribers: &[u8]) -> (String, SocketAddr) {
    let admin_port = lab::free_udp_port();
    let admin: SocketAddr = format!("127.0.0.2:{admin_port}").parse().expect("addr");
    let text = lab::config_text(
        dir.path(),
        lab::free_udp_port(),
        relay,
        subscribers,
        "1h",
        2,
    )
    .replace(
        "admin_listen = \"127.0.0.2:0\"",
        &format!("admin_listen = \"{admin}\""),
    );
    assert!(text.contains(&admin.to_string()));
    (text, admin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bmsc_serve_exits_with_status_3_when_an_essential_task_ends() {
    let dir = TempDir::new("ops-exit");
    let relay = Relay::start().await;
    let (text, _) = process_config(&dir, relay.addr, &[1]);
    let path = dir.path().join("bmsc.toml");
    std::fs::write(&path, text).expect("write");
    let mut server = spawn_server(&path, Some("key distribution"), None);
    let status = wait_exit(&mut server, Duration::from_secs(20));
    let mut stderr = String::new();
    if let Some(mut e) = server.0.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut stderr);
    }
    assert_eq!(status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("key distribution"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bmsc_serve_notifies_readiness_and_reloads_its_subscribers_on_sighup() {
    let dir = TempDir::new("ops-sighup");
    let relay = Relay::start().await;
    let (text, admin) = process_config(&dir, relay.addr, &[1]);
    let http_port = lab::free_udp_port();
    let text = text.replace(
        "http_listen = \"127.0.0.1:0\"",
        &format!("http_listen = \"127.0.0.1:{http_port}\""),
    );
    let http: SocketAddr = format!("127.0.0.1:{http_port}").parse().expect("addr");
    let path = dir.path().join("bmsc.toml");
    std::fs::write(&path, &text).expect("write");
    // systemd's side of Type=notify.
    let notify_path = dir.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path).expect("notify socket");
    notify
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut server = spawn_server(&path, None, Some(&notify_path));
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).expect("READY=1 arrives");
    assert_eq!(&buf[..n], b"READY=1");
    let mut up = false;
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(admin).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "admin listener up");
    let ue_port = Config::parse(&text).expect("config").ue_port;
    let ue2 = start_ue(2, ue_port, http, None).await;
    assert!(ue2.register(&[SERVICE.to_string()]).await.is_err());

    let with_two = lab::config_text(dir.path(), ue_port, relay.addr, &[1, 2], "1h", 2)
        .replace(
            "admin_listen = \"127.0.0.2:0\"",
            &format!("admin_listen = \"{admin}\""),
        )
        .replace(
            "http_listen = \"127.0.0.1:0\"",
            &format!("http_listen = \"127.0.0.1:{http_port}\""),
        );
    std::fs::write(&path, with_two).expect("rewrite");
    let pid = server.0.id().to_string();
    let hup = Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill");
    assert!(hup.success());
    let mut applied = 0;
    for _ in 0..100 {
        let m = http_get(admin, "/metrics").await;
        applied = metric(&m, "mbms_bmsc_config_reloads_total{result=\"applied\"}");
        if applied == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(applied, 1);
    let r = ue2.register(&[SERVICE.to_string()]).await.expect("ue2");
    assert_eq!(r.statuses[0].code, 200);

    let term = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(term.success());
    let status = wait_exit(&mut server, Duration::from_secs(20));
    assert_eq!(status.code(), Some(0));
    let n = notify.recv(&mut buf).expect("STOPPING=1 arrives");
    assert_eq!(&buf[..n], b"STOPPING=1");
}
