//! The BM-SC Key Request server over loopback (docs/profile.md §4): the hyper driver around the
//! handler, a real SQLite store and the embedded GBA key source of the configuration, with
//! - our UE client (`ue::http::KeyRequestClient`), which requires a valid rspauth;
//! - curl `--digest` (qop auth) and Apache HttpClient 4.5 (qop auth-int, MD5 and SHA-256), which
//!   skip when absent and fail instead when `MBMS_REQUIRE_ORACLES=1`;
//! - connection limits, idle timeout, graceful shutdown, and the admin server.
//!
//! The bad-input battery over the same harness is `bmsc_http_battery`.

mod common;
#[path = "bmsc_http/harness.rs"]
mod harness;
#[path = "bmsc_keyreq/lab.rs"]
mod lab;
#[path = "bmsc_http/oracles.rs"]
mod oracles;
#[path = "bmsc_http/raw.rs"]
mod raw;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::time::{sleep, timeout};

use mbms_keys::bmsc::events::KeyRequestEvent;
use mbms_keys::bmsc::http::serve_admin;
use mbms_keys::bmsc::metrics::Metrics;
use mbms_keys::bmsc::store::{GroupCommitLimits, MskState, Store};
use mbms_keys::gba::{Btid, GbaKeys};
use mbms_keys::mbms::digest::RspauthStatus;
use mbms_keys::mbms::keyreq::{
    MIME_REGISTER, PATH_DEREGISTER, PATH_MSK, PATH_REGISTER, RegisterResponse,
};
use mbms_keys::mikey::MskId;
use mbms_keys::ue::gba_keys::UeGbaKeys;

use harness::*;
use lab::{ALICE, KD, OPEN, OPEN2, REALM, TempDir, VERA, VIP};
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

/// With the embedded key source an MSK request reads only memory and the store, so it runs on
/// the runtime: it is answered while every blocking thread is busy (through the blocking
/// pool it would wait past `request_timeout` and get 503).
#[test]
fn msk_requests_are_answered_while_the_blocking_pool_is_busy() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut s = start(config("auth-int", "SHA-256")).await;
        let ue = client(&s, alice_keys());
        let alice: Btid = ALICE.parse().expect("btid");
        let r = ue.register(&ids(&[OPEN])).await.expect("register");
        assert_eq!(codes(&r), vec![(OPEN.into(), 200)]);
        s.next_event().await;
        s.store
            .put_msk(&lab::msk_record(1, 5, MskState::Current))
            .expect("seed MSK");

        let (started_tx, started_rx) = oneshot::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let busy = tokio::task::spawn_blocking(move || {
            let _ = started_tx.send(());
            let _ = release_rx.recv();
        });
        started_rx.await.expect("the blocking thread runs");
        let probe = tokio::task::spawn_blocking(|| ());
        sleep(Duration::from_millis(50)).await;
        assert!(!probe.is_finished(), "the blocking pool is busy");

        let m = timeout(IO_LIMIT, ue.request_msk(&[(KD, MskId::new(1, 5))]))
            .await
            .expect("answered in time")
            .expect("msk request");
        let got: Vec<u16> = m.statuses.iter().map(|st| st.code).collect();
        assert_eq!(got, vec![200]);
        assert_eq!(
            s.next_event().await,
            KeyRequestEvent::MskRequested {
                btid: alice,
                ue_addr: LOCALHOST,
                msks: vec![(KD, MskId::new(1, 5))],
            }
        );
        assert!(
            !probe.is_finished(),
            "still busy: the request did not use it"
        );

        release_tx.send(()).expect("release");
        busy.await.expect("busy task");
        probe.await.expect("probe");
        s.stop().await;
    });
}

/// A registration queues its row to the store's writer and awaits the commit on the runtime:
/// with the only blocking thread busy, concurrent registrations are all answered 200 once
/// durable, with their events (through the blocking pool, or with a thread parked per
/// registration, they would wait past `request_timeout` and get 503).
#[test]
fn registrations_await_their_commit_without_a_blocking_thread() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut s = start(config("auth-int", "SHA-256")).await;
        // Each UE client fetches its GBA keys once, on the blocking pool: before it is busy.
        let n = 16;
        let ues: Vec<_> = (0..n).map(|_| Arc::new(client(&s, alice_keys()))).collect();
        for ue in &ues {
            ue.register(&ids(&[OPEN]))
                .await
                .expect("first registration");
            s.next_event().await;
        }
        let before = s.store.inner.commit_stats().jobs();

        let (started_tx, started_rx) = oneshot::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let busy = tokio::task::spawn_blocking(move || {
            let _ = started_tx.send(());
            let _ = release_rx.recv();
        });
        started_rx.await.expect("the blocking thread runs");
        let probe = tokio::task::spawn_blocking(|| ());
        sleep(Duration::from_millis(50)).await;
        assert!(!probe.is_finished(), "the blocking pool is busy");

        let mut set = tokio::task::JoinSet::new();
        for ue in &ues {
            let ue = Arc::clone(ue);
            set.spawn(async move { ue.register(&ids(&[OPEN])).await });
        }
        let answers = timeout(IO_LIMIT, set.join_all())
            .await
            .expect("answered in time");
        for r in answers {
            assert_eq!(codes(&r.expect("register")), vec![(OPEN.into(), 200)]);
        }
        for _ in 0..n {
            assert!(matches!(
                s.next_event().await,
                KeyRequestEvent::Registered { .. }
            ));
        }
        let alice: Btid = ALICE.parse().expect("btid");
        assert_eq!(
            s.store.registrations_of_btid(&alice).expect("read").len(),
            1
        );
        assert_eq!(
            s.store.inner.commit_stats().jobs() - before,
            n as u64,
            "every registration went through the group commit"
        );
        assert!(!probe.is_finished(), "still busy: no registration used it");
        release_tx.send(()).expect("release");
        busy.await.expect("busy task");
        probe.await.expect("probe");
        s.stop().await;
    });
}

/// A registration whose client leaves while its batch is still being formed is stored and
/// reported all the same: the rest of a dropped registration goes on by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_whose_client_leaves_before_its_commit_is_stored_and_reported() {
    let mut s = start_with_group_commit(
        config("auth-int", "SHA-256"),
        GroupCommitLimits {
            max_batch: 64,
            max_wait: Duration::from_millis(600),
        },
    )
    .await;
    let alice = lab::credentials(ALICE, 0x10);
    let mut sess = session(s.addr, PATH_REGISTER).await;
    let body = register_body(&[OPEN]);
    let auth = sess
        .authorize(&alice, "POST", PATH_REGISTER, body.as_bytes())
        .expect("authorize");
    let mut conn = TcpStream::connect(s.addr).await.expect("connect");
    conn.write_all(&request_bytes(
        "POST",
        PATH_REGISTER,
        &[
            ("content-type", MIME_REGISTER),
            ("authorization", auth.header_value()),
        ],
        body.as_bytes(),
    ))
    .await
    .expect("write");
    // Read and queued; the batch lingers for company while the client goes.
    sleep(Duration::from_millis(150)).await;
    drop(conn);
    let alice_btid: Btid = ALICE.parse().expect("btid");
    assert_eq!(
        s.next_event().await,
        KeyRequestEvent::Registered {
            btid: alice_btid.clone(),
            ue_addr: LOCALHOST,
            service_ids: ids(&[OPEN]),
        }
    );
    assert_eq!(
        s.store
            .registrations_of_btid(&alice_btid)
            .expect("read")
            .len(),
        1
    );
    s.stop().await;
}

/// A registration whose durable write fails is answered 500 for that service (with a verified
/// rspauth, as before the write was queued), never 200, and reports no event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_registration_commit_is_500_and_reports_nothing() {
    let mut s = start(config("auth-int", "SHA-256")).await;
    let ue = client(&s, alice_keys());
    s.store.fail_writes.store(true, Ordering::SeqCst);
    let r = ue.register(&ids(&[OPEN, VIP])).await.expect("register");
    assert_eq!(codes(&r), vec![(OPEN.into(), 500), (VIP.into(), 403)]);
    sleep(Duration::from_millis(100)).await;
    s.no_event();
    let alice: Btid = ALICE.parse().expect("btid");
    s.store.fail_writes.store(false, Ordering::SeqCst);
    assert!(
        s.store
            .registrations_of_btid(&alice)
            .expect("read")
            .is_empty()
    );
    assert_eq!(s.metrics.registrations_accepted.get(), 0);
    // The same request once the store writes again: 200 and its event.
    let r = ue.register(&ids(&[OPEN])).await.expect("register");
    assert_eq!(codes(&r), vec![(OPEN.into(), 200)]);
    assert!(matches!(
        s.next_event().await,
        KeyRequestEvent::Registered { .. }
    ));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ue_client_answers_stale_true_with_the_fresh_nonce() {
    let mut s = start(lab::config("auth-int", "SHA-256", "1s", 100)).await;
    let ue = client(&s, alice_keys());
    ue.register(&ids(&[OPEN])).await.expect("first");
    s.next_event().await;
    sleep(Duration::from_millis(1100)).await;
    ue.register(&ids(&[OPEN]))
        .await
        .expect("after the nonce expired");
    s.next_event().await;
    assert_eq!(
        s.metrics.digest_failures.get(),
        1,
        "the expired nonce was tried once, then the fresh one"
    );
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
