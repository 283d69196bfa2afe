//! The BM-SC with `[gba.zn]` against the lab's scripted BSF on loopback: Key Requests ask the
//! BSF once per B-TID while its keys are valid (the store's key cache), the MSK pushes ask it
//! never, a restart asks again for no one, an unreachable BSF gives 503 and service resumes
//! when it comes back; the Zn metrics are exposed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use mbms_keys::bmsc::config::Config;
use mbms_keys::bmsc::distribution::Tuning;
use mbms_keys::bmsc::server::Bmsc;
use mbms_keys::crypto::KsNaf;
use mbms_keys::gba::GbaKeys;
use mbms_keys::ue::gba_keys::{StaticGbaKeys, UeGbaKeys};
use mbms_keys::ue::http::{ClientError, KeyRequestClient};
use mbms_lab::bmsc_config::{LabConfig, LabService};
use mbms_lab::fake_bsf::{BSF_REALM, FakeBsf, FakeSubscriber};
use mbms_lab::{TempDir, free_port};

const FQDN: &str = "bmsc.example.test";
const SERVICE: &str = "urn:zn:test";

fn btid(i: usize) -> String {
    format!("ue{i:04}@bsf.example.test")
}

fn key(i: usize) -> [u8; 32] {
    let mut k = [0x5a; 32];
    k[..8].copy_from_slice(&(i as u64).to_be_bytes());
    k
}

fn subscriber(i: usize) -> FakeSubscriber {
    FakeSubscriber {
        impi: format!("user{i}@ims.example.test"),
        me_key: key(i),
        uicc_key: None,
        expires: SystemTime::now() + Duration::from_secs(3600),
    }
}

fn config(dir: &std::path::Path, bsf: SocketAddr) -> Config {
    let sink = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut c = LabConfig::new(
        FQDN,
        dir.to_path_buf(),
        free_port(),
        LabService {
            id: SERVICE.to_owned(),
            msk_lifetime: "1h",
            mtk_interval: "1h",
            mtk_resend: "1h",
            mtk_destination: sink,
        },
    );
    c.push_retries = Some(0);
    c.zn = Some(format!(
        "peers = [\"{bsf}\"]\norigin_host = \"{FQDN}\"\norigin_realm = \"example.test\"\n\
         destination_realm = \"{BSF_REALM}\"\nrequest_timeout = \"500ms\"\nreconnect_max = \"200ms\"\n"
    ));
    Config::parse(&c.to_toml()).expect("config")
}

fn ue(bmsc: &Bmsc, i: usize) -> KeyRequestClient {
    let keys = UeGbaKeys {
        btid: btid(i).parse().expect("btid"),
        material: GbaKeys::Me {
            ks_naf: KsNaf::from_bytes(key(i)),
        },
        expiry: SystemTime::now() + Duration::from_secs(3600),
    };
    KeyRequestClient::new(
        &format!("http://{}", bmsc.http_addr()),
        Arc::new(StaticGbaKeys::new(keys)),
    )
    .expect("client")
}

async fn register(bmsc: &Bmsc, i: usize) -> Result<(), ClientError> {
    let r = ue(bmsc, i).register(&[SERVICE.to_owned()]).await?;
    assert_eq!(r.statuses.len(), 1);
    assert_eq!(r.statuses[0].code, 200, "{r:?}");
    Ok(())
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

async fn peer_open(bmsc: &Bmsc) {
    eventually("the Zn peer open", || {
        bmsc.metrics()
            .render()
            .lines()
            .any(|l| l.starts_with("mbms_bmsc_zn_peer_state{") && l.ends_with(" 2"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bsf_is_asked_once_per_btid_and_never_by_the_msk_pushes() {
    const N: usize = 20;
    let bsf = FakeBsf::start().await.expect("fake BSF");
    for i in 0..N {
        bsf.add(&btid(i), subscriber(i));
    }
    let tmp = TempDir::new("bmsc-zn");
    let bmsc = Bmsc::start_with(config(tmp.path(), bsf.addr()), Tuning::default())
        .await
        .expect("start");
    peer_open(&bmsc).await;
    for i in 0..N {
        register(&bmsc, i).await.expect("register");
    }
    assert_eq!(bsf.seen().birs.load(Ordering::SeqCst), N);
    // Each registration is followed by an MSK push to the UE: under the cached keys.
    eventually("a push per UE", || {
        bmsc.metrics().pushes_sent.get() >= N as u64
    })
    .await;
    // Again, and an MSK request: all from the cache.
    for i in 0..N {
        register(&bmsc, i).await.expect("register again");
    }
    assert_eq!(bsf.seen().birs.load(Ordering::SeqCst), N, "no second BIR");
    assert!(bmsc.metrics().gba_cache_hits.get() >= N as u64);
    let text = bmsc.metrics().render();
    assert!(text.contains("mbms_bmsc_zn_requests_total 20\n"), "{text}");
    assert!(text.contains("mbms_bmsc_zn_answers_total{result=\"success\"} 20\n"));
    assert!(text.contains("mbms_bmsc_zn_request_seconds_count 20\n"));

    // A restart on the same store asks again for no one.
    bmsc.shutdown().await.expect("shutdown");
    assert_eq!(bsf.seen().dprs.load(Ordering::SeqCst), 1, "DPR on shutdown");
    let bmsc = Bmsc::start_with(config(tmp.path(), bsf.addr()), Tuning::default())
        .await
        .expect("restart");
    peer_open(&bmsc).await;
    for i in 0..N {
        register(&bmsc, i).await.expect("register after restart");
    }
    assert_eq!(
        bsf.seen().birs.load(Ordering::SeqCst),
        N,
        "no BIR after restart"
    );
    bmsc.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_bsf_is_503_and_service_resumes_when_it_comes_back() {
    let bsf = FakeBsf::start().await.expect("fake BSF");
    let addr = bsf.addr();
    bsf.add(&btid(0), subscriber(0));
    let tmp = TempDir::new("bmsc-zn-down");
    let bmsc = Bmsc::start_with(config(tmp.path(), addr), Tuning::default())
        .await
        .expect("start");
    peer_open(&bmsc).await;
    register(&bmsc, 0)
        .await
        .expect("registered while the BSF is up");
    bsf.stop();
    drop(bsf);
    // A new UE cannot be served: 503 (not 401); the registered one still is, from the cache.
    match register(&bmsc, 1).await {
        Err(ClientError::Status(s)) => assert_eq!(s.as_u16(), 503),
        other => panic!("expected 503, got {other:?}"),
    }
    register(&bmsc, 0)
        .await
        .expect("cached keys still serve UE 0");
    let text = bmsc.metrics().render();
    let count = |label: &str| -> u64 {
        let prefix = format!("mbms_bmsc_zn_answers_total{{result=\"{label}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.parse().ok())
            .expect("counter")
    };
    assert!(count("timeout") + count("no_peer") >= 1, "{text}");
    // The BSF comes back on the same port: UE 1 is served without any restart.
    let back = FakeBsf::start_on(addr).await.expect("same port");
    back.add(&btid(1), subscriber(1));
    peer_open(&bmsc).await;
    register(&bmsc, 1).await.expect("served again");
    assert_eq!(back.seen().birs.load(Ordering::SeqCst), 1);
    bmsc.shutdown().await.expect("shutdown");
}

#[test]
fn zn_and_embedded_subscribers_together_are_refused() {
    let text = "fqdn = \"bmsc.example.test\"\nhttp_listen = \"127.0.0.1:0\"\n\
                data_dir = \"/tmp/x\"\n\
                [[gba.subscribers]]\nbtid = \"a@b\"\nimpi = \"i@x\"\n\
                ks_naf = \"0000000000000000000000000000000000000000000000000000000000000000\"\n\
                expires = \"2040-01-01T00:00:00Z\"\n\
                [gba.zn]\npeers = [\"127.0.0.1:3868\"]\norigin_host = \"b.example\"\n\
                origin_realm = \"example\"\ndestination_realm = \"example\"\n";
    let e = Config::parse(text).expect_err("both sources");
    assert!(e.to_string().contains("configure one"), "{e}");
}
