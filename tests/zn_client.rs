//! The Zn client against a scripted BSF on loopback TCP (`mbms_lab::fake_bsf`, written with
//! the crate's Diameter codec): capabilities exchange, pipelining, timeouts, the watchdog,
//! failover, reconnection, DPR on shutdown, the BIA mapping and the key source's bound.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use mbms_keys::diameter::{Avp, VENDOR_3GPP, app, code, flags, zn};
use mbms_keys::gba::zn::{PeerState, ZnClient, ZnConfig, ZnError, ZnKeySource};
use mbms_keys::gba::{GbaKeys, KeySource, KeySourceError, NafId};
use mbms_lab::fake_bsf::{BSF_REALM, FakeBsf, FakeSubscriber};

const BTID: &str = "ICEiIyQlJicoKSorLC0uLw==@bsf.example.test";
const NAF: &str = "bmsc.example.test";

fn sub(uicc: bool) -> FakeSubscriber {
    FakeSubscriber {
        impi: "001010123456789@ims.example.test".into(),
        me_key: [0x11; 32],
        uicc_key: uicc.then_some([0x22; 32]),
        expires: SystemTime::now() + Duration::from_secs(3600),
    }
}

fn config(peers: &[&FakeBsf]) -> ZnConfig {
    let mut c = ZnConfig::new(
        peers.iter().map(|p| p.addr().to_string()).collect(),
        "naf.client.test",
        "client.test",
        BSF_REALM,
    );
    c.request_timeout = Duration::from_secs(2);
    c.watchdog = Duration::from_secs(30);
    c.reconnect_max = Duration::from_millis(200);
    c
}

async fn bsf() -> FakeBsf {
    let b = FakeBsf::start().await.expect("fake BSF");
    b.add(BTID, sub(false));
    b
}

async fn open(c: &ZnClient) {
    assert!(c.wait_open(Duration::from_secs(5)).await, "a peer opens");
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..400 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cer_then_bir_returns_the_bsf_keys() {
    let b = bsf().await;
    let c = ZnClient::start(config(&[&b]));
    open(&c).await;
    let cer = b.seen().last_cer.lock().unwrap().clone().expect("CER");
    let vsai = cer
        .find(code::VENDOR_SPECIFIC_APPLICATION_ID, None)
        .and_then(Avp::members)
        .expect("VSAI");
    assert!(
        vsai.iter()
            .any(|a| a.is(code::AUTH_APPLICATION_ID, None) && a.as_u32() == Some(app::ZN))
    );
    assert!(
        vsai.iter()
            .any(|a| a.is(code::VENDOR_ID, None) && a.as_u32() == Some(VENDOR_3GPP))
    );
    assert!(cer.find(code::ORIGIN_STATE_ID, None).is_some());
    assert_eq!(
        cer.find(code::ORIGIN_HOST, None).and_then(Avp::as_str),
        Some("naf.client.test")
    );

    let info = c
        .bootstrapping_info(BTID, &NafId::mbms(NAF))
        .await
        .expect("answer");
    assert_eq!(info.me_key.as_bytes(), &[0x11; 32]);
    assert!(info.uicc_key.is_none());
    assert_eq!(
        info.impi.as_deref(),
        Some("001010123456789@ims.example.test")
    );
    assert_eq!(info.gba_type, Some(0));

    let bir = b.seen().last_bir.lock().unwrap().clone().expect("BIR");
    assert_eq!(bir.header.flags & (flags::REQUEST | flags::PROXIABLE), 0xc0);
    assert_eq!(bir.header.application, app::ZN);
    assert_eq!(bir.avps[0].code, code::SESSION_ID, "Session-Id first");
    let sid = bir.avps[0].as_str().expect("utf-8");
    assert_eq!(sid.split(';').count(), 3);
    assert!(sid.starts_with("naf.client.test;"));
    let naf_id = bir
        .find(zn::NAF_ID, Some(VENDOR_3GPP))
        .and_then(Avp::data)
        .expect("NAF-Id");
    assert_eq!(naf_id, b"bmsc.example.test\x01\x00\x00\x00\x01");
    assert_eq!(
        bir.find(zn::TRANSACTION_IDENTIFIER, Some(VENDOR_3GPP))
            .and_then(Avp::as_str),
        Some(BTID)
    );
    let t = bir
        .find(zn::TRANSACTION_IDENTIFIER, Some(VENDOR_3GPP))
        .expect("401");
    assert_eq!(t.flags & 0xc0, 0xc0, "V and M");
    assert_eq!(
        bir.find(zn::GBA_U_AWARENESS_INDICATOR, Some(VENDOR_3GPP))
            .and_then(Avp::as_u32),
        Some(1)
    );
    assert_eq!(
        bir.find(code::DESTINATION_REALM, None)
            .and_then(Avp::as_str),
        Some(BSF_REALM)
    );
    // Two requests: two Session-Ids.
    c.bootstrapping_info(BTID, &NafId::mbms(NAF))
        .await
        .expect("again");
    let bir2 = b.seen().last_bir.lock().unwrap().clone().expect("BIR");
    assert_ne!(bir2.avps[0], bir.avps[0]);
    assert_ne!(bir2.header.end_to_end, bir.header.end_to_end);
    assert_eq!(c.metrics().answers("success"), 2);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_auth_application_id_in_the_cea_is_accepted_and_none_is_not() {
    let b = bsf().await;
    b.behaviour().plain_auth_app.store(true, Ordering::SeqCst);
    let c = ZnClient::start(config(&[&b]));
    open(&c).await;
    c.bootstrapping_info(BTID, &NafId::mbms(NAF))
        .await
        .expect("answer");
    c.shutdown().await;

    let n = bsf().await;
    n.behaviour().no_zn.store(true, Ordering::SeqCst);
    let c = ZnClient::start(config(&[&n]));
    assert!(!c.wait_open(Duration::from_millis(500)).await);
    assert!(n.seen().cers.load(Ordering::SeqCst) >= 1);
    let mut cfg = config(&[&n]);
    cfg.request_timeout = Duration::from_millis(300);
    let c2 = ZnClient::start(cfg);
    assert!(matches!(
        c2.bootstrapping_info(BTID, &NafId::mbms(NAF)).await,
        Err(ZnError::Timeout | ZnError::NoPeer)
    ));
    c.shutdown().await;
    c2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_requests_are_in_flight_on_one_connection() {
    let b = bsf().await;
    b.behaviour().delay_ms.store(300, Ordering::SeqCst);
    let c = ZnClient::start(config(&[&b]));
    open(&c).await;
    let naf = NafId::mbms(NAF);
    let started = std::time::Instant::now();
    let all: Vec<_> = (0..200)
        .map(|_| {
            let (c, naf) = (c.clone(), naf.clone());
            tokio::spawn(async move { c.bootstrapping_info(BTID, &naf).await })
        })
        .collect();
    for h in all {
        let info = h.await.expect("task").expect("answer");
        assert_eq!(info.me_key.as_bytes(), &[0x11; 32]);
    }
    // 200 answers each delayed 300 ms in well under 200 × 300 ms: they were pipelined.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(b.seen().peak_outstanding.load(Ordering::SeqCst) >= 100);
    assert_eq!(b.seen().connections.load(Ordering::SeqCst), 1);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_request_times_out() {
    let b = bsf().await;
    b.behaviour().ignore_bir.store(true, Ordering::SeqCst);
    let mut cfg = config(&[&b]);
    cfg.request_timeout = Duration::from_millis(300);
    let c = ZnClient::start(cfg);
    open(&c).await;
    let t = std::time::Instant::now();
    assert_eq!(
        c.bootstrapping_info(BTID, &NafId::mbms(NAF)).await.err(),
        Some(ZnError::Timeout)
    );
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert_eq!(c.metrics().answers("timeout"), 1);
    // The connection is still usable.
    b.behaviour().ignore_bir.store(false, Ordering::SeqCst);
    c.bootstrapping_info(BTID, &NafId::mbms(NAF))
        .await
        .expect("answer");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn experimental_results_map_to_typed_errors() {
    let b = bsf().await;
    let c = ZnClient::start(config(&[&b]));
    open(&c).await;
    let naf = NafId::mbms(NAF);
    assert_eq!(
        c.bootstrapping_info("unknown@bsf", &naf).await.err(),
        Some(ZnError::UnknownBtid(5403))
    );
    b.behaviour().experimental.store(5401, Ordering::SeqCst);
    assert_eq!(
        c.bootstrapping_info(BTID, &naf).await.err(),
        Some(ZnError::UnknownBtid(5401))
    );
    b.behaviour().experimental.store(5402, Ordering::SeqCst);
    assert_eq!(
        c.bootstrapping_info(BTID, &naf).await.err(),
        Some(ZnError::NotAuthorized)
    );
    b.behaviour().experimental.store(5999, Ordering::SeqCst);
    assert!(matches!(
        c.bootstrapping_info(BTID, &naf).await,
        Err(ZnError::Failed(_))
    ));
    assert_eq!(c.metrics().answers("unknown_btid"), 2);
    assert_eq!(c.metrics().answers("not_authorized"), 1);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_finds_a_silent_peer_and_replaces_the_connection() {
    let b = bsf().await;
    let mut cfg = config(&[&b]);
    cfg.watchdog = Duration::from_millis(200);
    let c = ZnClient::start(cfg);
    open(&c).await;
    // An answering peer gets DWRs and stays open.
    eventually("a DWR", || b.seen().dwrs.load(Ordering::SeqCst) >= 2).await;
    assert_eq!(c.peer_states(), vec![PeerState::Open]);
    assert_eq!(b.seen().connections.load(Ordering::SeqCst), 1);
    // Silent: suspect after Tw without a DWA, closed after another Tw, then reconnected.
    b.behaviour().ignore_dwr.store(true, Ordering::SeqCst);
    eventually("suspect", || c.peer_states() == vec![PeerState::Suspect]).await;
    b.behaviour().ignore_dwr.store(false, Ordering::SeqCst);
    eventually("a second connection", || {
        b.seen().connections.load(Ordering::SeqCst) >= 2
    })
    .await;
    open(&c).await;
    c.bootstrapping_info(BTID, &NafId::mbms(NAF))
        .await
        .expect("answer");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_lost_with_its_connection_is_sent_again_on_the_other_peer() {
    let primary = bsf().await;
    let secondary = bsf().await;
    primary
        .behaviour()
        .close_on_bir
        .store(true, Ordering::SeqCst);
    let c = ZnClient::start(config(&[&primary, &secondary]));
    eventually("both peers open", || {
        c.peer_states() == vec![PeerState::Open, PeerState::Open]
    })
    .await;
    let info = c
        .bootstrapping_info(BTID, &NafId::mbms(NAF))
        .await
        .expect("answered by the secondary");
    assert_eq!(info.me_key.as_bytes(), &[0x11; 32]);
    assert_eq!(primary.seen().birs.load(Ordering::SeqCst), 1);
    assert_eq!(secondary.seen().birs.load(Ordering::SeqCst), 1);
    assert_eq!(
        secondary.seen().retransmitted.load(Ordering::SeqCst),
        1,
        "T flag"
    );
    let (p, s) = (
        primary.seen().last_bir.lock().unwrap().clone().expect("p"),
        secondary
            .seen()
            .last_bir
            .lock()
            .unwrap()
            .clone()
            .expect("s"),
    );
    assert_eq!(
        p.header.end_to_end, s.header.end_to_end,
        "same end-to-end id"
    );
    assert_eq!(c.metrics().failovers.get(), 1);
    // With the primary down, requests go to the secondary without delay.
    primary.stop();
    eventually("primary down", || c.peer_states()[0] != PeerState::Open).await;
    c.bootstrapping_info(BTID, &NafId::mbms(NAF))
        .await
        .expect("secondary");
    assert_eq!(secondary.seen().birs.load(Ordering::SeqCst), 2);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_comes_back_is_used_again() {
    let b = bsf().await;
    let addr = b.addr();
    let mut cfg = config(&[&b]);
    cfg.request_timeout = Duration::from_millis(300);
    let c = ZnClient::start(cfg);
    open(&c).await;
    b.stop();
    drop(b);
    eventually("down", || c.peer_states() != vec![PeerState::Open]).await;
    assert!(c.bootstrapping_info(BTID, &NafId::mbms(NAF)).await.is_err());
    let b2 = FakeBsf::start_on(addr).await.expect("same port");
    b2.add(BTID, sub(false));
    open(&c).await;
    c.bootstrapping_info(BTID, &NafId::mbms(NAF))
        .await
        .expect("answer");
    assert_eq!(c.peer_states(), vec![PeerState::Open]);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_sends_a_dpr() {
    let b = bsf().await;
    let c = ZnClient::start(config(&[&b]));
    open(&c).await;
    c.shutdown().await;
    assert_eq!(b.seen().dprs.load(Ordering::SeqCst), 1);
    assert_eq!(c.peer_states(), vec![PeerState::Down]);
    assert_eq!(
        c.bootstrapping_info(BTID, &NafId::mbms(NAF)).await.err(),
        Some(ZnError::Shutdown)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_source_maps_the_answer_and_bounds_concurrency() {
    let b = bsf().await;
    b.add("u@bsf.example.test", sub(true));
    let mut cfg = config(&[&b]);
    cfg.max_concurrent = 1;
    let c = ZnClient::start(cfg);
    open(&c).await;
    let ks = Arc::new(ZnKeySource::new(
        c.clone(),
        tokio::runtime::Handle::current(),
        NafId::mbms(NAF),
    ));
    let k = ks.clone();
    let got = tokio::task::spawn_blocking(move || {
        (
            k.lookup(BTID, SystemTime::now()),
            k.lookup("u@bsf.example.test", SystemTime::now()),
            k.lookup("nobody@bsf.example.test", SystemTime::now()),
            k.lookup("not a btid", SystemTime::now()),
        )
    })
    .await
    .expect("blocking");
    let me = got.0.expect("GBA_ME");
    assert!(matches!(me.keys, GbaKeys::Me { .. }));
    assert_eq!(me.impi, "001010123456789@ims.example.test");
    match got.1.expect("GBA_U").keys {
        GbaKeys::U {
            ks_ext_naf,
            ks_int_naf,
        } => {
            assert_eq!(ks_ext_naf.as_bytes(), &[0x11; 32]);
            assert_eq!(ks_int_naf.as_bytes(), &[0x22; 32]);
        }
        GbaKeys::Me { .. } => panic!("expected GBA_U"),
    }
    assert_eq!(got.2.err(), Some(KeySourceError::UnknownBtid));
    assert_eq!(got.3.err(), Some(KeySourceError::UnknownBtid));
    assert_eq!(
        b.seen().birs.load(Ordering::SeqCst),
        3,
        "no BIR for a non-B-TID"
    );

    // One lookup in flight (delayed by the BSF): a second one is refused at once.
    b.behaviour().delay_ms.store(500, Ordering::SeqCst);
    let k = ks.clone();
    let slow = tokio::task::spawn_blocking(move || k.lookup(BTID, SystemTime::now()));
    eventually("the first BIR", || {
        b.seen().birs.load(Ordering::SeqCst) == 4
    })
    .await;
    let k = ks.clone();
    let second = tokio::task::spawn_blocking(move || k.lookup(BTID, SystemTime::now()))
        .await
        .expect("blocking");
    assert!(matches!(second, Err(KeySourceError::Unavailable(_))));
    assert!(slow.await.expect("blocking").is_ok());
    // A stopped BSF: Unavailable, not UnknownBtid.
    b.stop();
    eventually("down", || c.peer_states() != vec![PeerState::Open]).await;
    let k = ks.clone();
    let down = tokio::task::spawn_blocking(move || k.lookup(BTID, SystemTime::now()))
        .await
        .expect("blocking");
    assert!(matches!(down, Err(KeySourceError::Unavailable(_))));
    c.shutdown().await;
}
