//! The 5G key sources against an in-test peer playing the BSF (Nbsp_GBA, TS 29.309) and the
//! AAnF (Naanf_AKMA, TS 29.535) over HTTP/2 with prior knowledge (and HTTP/1.1): the mapping of
//! answers to keys and errors, the bearer token, timeouts, bad answers; then end to end, a BM-SC
//! with `[gba.aanf]` (`[gba.nbsp]`) and a UE with the A-KID and KAF (B-TID and Ks_NAF) registers
//! and verifies its MSK.

mod common;
mod bmsc_e2e {
    pub mod lab;
}

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use mbms_keys::bmsc::config::{Config, KeySourceConfig};
use mbms_keys::bmsc::distribution::Tuning;
use mbms_keys::bmsc::server::Bmsc;
use mbms_keys::crypto::{Kaf, KsNaf};
use mbms_keys::gba::aanf::AanfKeySource;
use mbms_keys::gba::akma::{akma_keys, parse_akid};
use mbms_keys::gba::nbsp::NbspKeySource;
use mbms_keys::gba::sbi::{HttpVersion, SbiSettings, parse_api_root};
use mbms_keys::gba::{GbaKeys, KeySource, KeySourceError, SubscriberKeys};
use mbms_keys::ue::Event;
use mbms_keys::ue::driver::{UeClient, UeConfig};
use mbms_keys::ue::gba_keys::{StaticGbaKeys, UeGbaKeys};
use mbms_keys::ue::http::ClientConfig;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use bmsc_e2e::lab::{self, FQDN, SERVICE, TempDir};

const KS_NAF: [u8; 32] = [0x11; 32];
const KS_INT_NAF: [u8; 32] = [0x22; 32];
const KAF: [u8; 32] = [0x33; 32];
const LATER: &str = "2099-01-01T00:00:00Z";

/// What the peer saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    version: Version,
    path: String,
    authorization: Option<String>,
    content_type: Option<String>,
    body: Value,
}

/// The in-test BSF and AAnF on one port; the user part of the identifier picks the answer.
struct Peer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    connections: Arc<std::sync::atomic::AtomicUsize>,
}

fn problem(status: u16, cause: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/problem+json")
        .body(Full::new(Bytes::from(
            json!({"status": status, "cause": cause, "title": "test"}).to_string(),
        )))
        .expect("response")
}

fn ok(body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("response")
}

async fn answer(req: Request<Incoming>, seen: Arc<Mutex<Vec<Seen>>>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    seen.lock().expect("lock").push(Seen {
        version: parts.version,
        path: parts.uri.path().to_owned(),
        authorization: header("authorization"),
        content_type: header("content-type"),
        body: body.clone(),
    });
    let akma = parts
        .uri
        .path()
        .ends_with("/naanf-akma/v1/retrieve-applicationkey");
    let id = body
        .get(if akma { "aKId" } else { "btId" })
        .and_then(Value::as_str)
        .unwrap_or_default();
    let user = id.split('@').next().unwrap_or_default();
    match user {
        "known" | "gbau" | "expired" | "noexpiry" if akma => {
            let mut v = json!({"kaf": hex::encode(KAF), "expiry": LATER,
                "supi": "imsi-001010000000001"});
            if user == "expired" {
                v["expiry"] = json!("2000-01-01T00:00:00Z");
            }
            if user == "noexpiry" {
                v.as_object_mut().expect("object").remove("expiry");
            }
            ok(v.to_string())
        }
        "known" | "gbau" | "expired" | "noexpiry" => {
            let mut v = json!({"meKeyMaterial": hex::encode(KS_NAF), "keyExpiryTime": LATER,
                "impi": "001010000000001@ims.example.org", "gbaType": "3G_GBA",
                "ussList": [{"uss": {"gsId": 4, "gsType": 0, "ueIds": [{"ueId": "x"}]}}]});
            if user == "gbau" {
                v["uiccKeyMaterial"] = json!(hex::encode(KS_INT_NAF));
            }
            if user == "expired" {
                v["keyExpiryTime"] = json!("2000-01-01T00:00:00Z");
            }
            if user == "noexpiry" {
                v.as_object_mut().expect("object").remove("keyExpiryTime");
            }
            ok(v.to_string())
        }
        "unknown" if akma => Response::builder()
            .status(204)
            .body(Full::new(Bytes::new()))
            .expect("response"),
        "unknown" => problem(404, "USER_NOT_FOUND"),
        "forbidden" => problem(403, "AUTHORIZATION_REJECTED"),
        "broken" => problem(500, "SYSTEM_FAILURE"),
        "busy" => problem(503, "NF_CONGESTION"),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            ok("{}".into())
        }
        "garbage" => ok("this is not JSON {".into()),
        "wrongtype" => ok(json!({"meKeyMaterial": 918273645, "kaf": 918273645,
            "keyExpiryTime": LATER, "expiry": LATER})
        .to_string()),
        "badhex" => ok(
            json!({"meKeyMaterial": "zz", "kaf": "zz", "keyExpiryTime": LATER,
            "expiry": LATER})
            .to_string(),
        ),
        "shortkey" => ok(json!({"meKeyMaterial": "0011", "kaf": "0011",
            "keyExpiryTime": LATER, "expiry": LATER})
        .to_string()),
        "huge" => ok(format!("{{\"pad\": \"{}\"}}", "x".repeat(200_000))),
        "badimpi" => ok(
            json!({"meKeyMaterial": hex::encode(KS_NAF), "keyExpiryTime": LATER,
            "impi": "a b"})
            .to_string(),
        ),
        _ => problem(400, "MANDATORY_IE_INCORRECT"),
    }
}

impl Peer {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let connections: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
        let (s, n) = (seen.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let s = s.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let s = s.clone();
                        async move { Ok::<_, Infallible>(answer(req, s).await) }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            seen,
            connections,
        }
    }

    fn settings(&self, version: HttpVersion, token: Option<PathBuf>) -> SbiSettings {
        SbiSettings {
            api_root: parse_api_root(&format!("http://{}/", self.addr)).expect("root"),
            token_file: token,
            request_timeout: Duration::from_millis(700),
            http_version: version,
        }
    }

    fn last(&self) -> Seen {
        self.seen
            .lock()
            .expect("lock")
            .last()
            .cloned()
            .expect("a request")
    }
}

async fn lookup(source: &Arc<dyn KeySource>, id: &str) -> Result<SubscriberKeys, KeySourceError> {
    let (s, id) = (source.clone(), id.to_owned());
    tokio::task::spawn_blocking(move || s.lookup(&id, SystemTime::now()))
        .await
        .expect("no panic")
}

fn nbsp(peer: &Peer, version: HttpVersion, token: Option<PathBuf>) -> Arc<dyn KeySource> {
    Arc::new(NbspKeySource::new(
        FQDN,
        &peer.settings(version, token),
        tokio::runtime::Handle::current(),
    ))
}

fn aanf(peer: &Peer) -> Arc<dyn KeySource> {
    Arc::new(AanfKeySource::new(
        "af.mbs.example.org",
        &peer.settings(HttpVersion::Http2, None),
        tokio::runtime::Handle::current(),
    ))
}

/// The peer's refusals of `unknown@REALM`, `forbidden@REALM` and `expired@REALM` map to
/// `UnknownBtid`, `NotAuthorized` and `Expired`.
async fn assert_refusals_map(src: &Arc<dyn KeySource>, realm: &str) {
    for (user, want) in [
        ("unknown", KeySourceError::UnknownBtid),
        ("forbidden", KeySourceError::NotAuthorized),
        ("expired", KeySourceError::Expired),
    ] {
        let id = format!("{user}@{realm}");
        assert_eq!(lookup(src, &id).await.map(|_| ()), Err(want), "{id}");
    }
}

fn unavailable<T: std::fmt::Debug>(r: Result<T, KeySourceError>) -> String {
    match r {
        Err(KeySourceError::Unavailable(why)) => why,
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nbsp_success_maps_the_answer_to_subscriber_keys_over_http2() {
    let peer = Peer::start().await;
    let src = nbsp(&peer, HttpVersion::Http2, None);
    let keys = lookup(&src, "known@bsf.example.org").await.expect("keys");
    assert_eq!(keys.btid.as_str(), "known@bsf.example.org");
    assert_eq!(keys.impi, "001010000000001@ims.example.org");
    match &keys.keys {
        GbaKeys::Me { ks_naf } => assert_eq!(ks_naf.as_bytes(), &KS_NAF),
        GbaKeys::U { .. } => panic!("expected GBA_ME"),
    }
    assert_eq!(
        keys.expires,
        mbms_keys::bmsc::config::parse_rfc3339(LATER).expect("time")
    );
    let seen = peer.last();
    assert_eq!(seen.version, Version::HTTP_2);
    assert_eq!(seen.path, "/nbsp-gba/v1/bootstrapping-info-retrieval");
    assert_eq!(seen.content_type.as_deref(), Some("application/json"));
    assert_eq!(seen.authorization, None);
    assert_eq!(
        seen.body,
        json!({"btId": "known@bsf.example.org",
            "nafId": {"nafFqdn": FQDN, "uaSecProtId": "0100000001"}, "gbaUAware": true})
    );
    // GBA_U: meKeyMaterial is Ks_ext_NAF, uiccKeyMaterial Ks_int_NAF (the MUK).
    let u = lookup(&src, "gbau@bsf.example.org").await.expect("keys");
    match &u.keys {
        GbaKeys::U {
            ks_ext_naf,
            ks_int_naf,
        } => {
            assert_eq!(ks_ext_naf.as_bytes(), &KS_NAF);
            assert_eq!(ks_int_naf.as_bytes(), &KS_INT_NAF);
        }
        GbaKeys::Me { .. } => panic!("expected GBA_U"),
    }
    assert_eq!(u.keys.muk().as_bytes(), &KS_INT_NAF);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nbsp_error_answers_map_to_unknown_not_authorized_expired_and_unavailable() {
    let peer = Peer::start().await;
    let src = nbsp(&peer, HttpVersion::Http2, None);
    assert_refusals_map(&src, "bsf").await;
    let why = unavailable(lookup(&src, "broken@bsf").await);
    assert!(
        why.contains("500") && why.contains("SYSTEM_FAILURE"),
        "{why}"
    );
    assert!(unavailable(lookup(&src, "busy@bsf").await).contains("503"));
    assert!(unavailable(lookup(&src, "other@bsf").await).contains("400"));
    assert!(unavailable(lookup(&src, "noexpiry@bsf").await).contains("keyExpiryTime"));
    // A string that is no B-TID is not sent at all.
    let before = peer.seen.lock().expect("lock").len();
    assert_eq!(
        lookup(&src, "no at sign").await.map(|_| ()),
        Err(KeySourceError::UnknownBtid)
    );
    assert_eq!(peer.seen.lock().expect("lock").len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_answers_are_typed_errors_not_panics() {
    let peer = Peer::start().await;
    let src = nbsp(&peer, HttpVersion::Http2, None);
    assert!(unavailable(lookup(&src, "garbage@bsf").await).contains("malformed"));
    // A value of the wrong type is not quoted in the error (it could be a key).
    let why = unavailable(lookup(&src, "wrongtype@bsf").await);
    assert!(
        why.contains("malformed") && !why.contains("918273645"),
        "{why}"
    );
    let why = unavailable(lookup(&aanf(&peer), "wrongtype@rid.akma").await);
    assert!(
        why.contains("malformed") && !why.contains("918273645"),
        "{why}"
    );
    assert!(unavailable(lookup(&src, "badhex@bsf").await).contains("meKeyMaterial"));
    assert!(unavailable(lookup(&src, "shortkey@bsf").await).contains("meKeyMaterial"));
    assert!(unavailable(lookup(&src, "huge@bsf").await).contains("body"));
    assert!(unavailable(lookup(&src, "badimpi@bsf").await).contains("identity"));
    let a = aanf(&peer);
    assert!(unavailable(lookup(&a, "garbage@rid.akma").await).contains("malformed"));
    assert!(unavailable(lookup(&a, "badhex@rid.akma").await).contains("kaf"));
    assert!(unavailable(lookup(&a, "huge@rid.akma").await).contains("body"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_or_no_peer_is_unavailable_within_the_request_timeout() {
    let peer = Peer::start().await;
    let src = nbsp(&peer, HttpVersion::Http2, None);
    let t0 = Instant::now();
    let why = unavailable(lookup(&src, "slow@bsf").await);
    let took = t0.elapsed();
    assert!(why.contains("no answer"), "{why}");
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // Nothing listens on the port of a closed listener.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let dead = Peer {
        addr: closed,
        seen: Arc::default(),
        connections: Arc::default(),
    };
    let src = nbsp(&dead, HttpVersion::Http2, None);
    let t0 = Instant::now();
    unavailable(lookup(&src, "known@bsf").await);
    assert!(t0.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_token_is_sent_and_read_again_when_the_file_changes() {
    let peer = Peer::start().await;
    let dir = TempDir::new("sbi-token");
    let token = dir.path().join("token");
    std::fs::write(&token, "tok-1\n").expect("write");
    let src = nbsp(&peer, HttpVersion::Http2, Some(token.clone()));
    lookup(&src, "known@bsf").await.expect("keys");
    assert_eq!(peer.last().authorization.as_deref(), Some("Bearer tok-1"));
    std::fs::write(&token, "tok-2.rotated").expect("write");
    lookup(&src, "known@bsf").await.expect("keys");
    assert_eq!(
        peer.last().authorization.as_deref(),
        Some("Bearer tok-2.rotated")
    );
    // A token file that went missing: no request without the token, a 503 instead.
    std::fs::remove_file(&token).expect("rm");
    let before = peer.seen.lock().expect("lock").len();
    assert!(unavailable(lookup(&src, "known@bsf").await).contains("token file"));
    assert_eq!(peer.seen.lock().expect("lock").len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_mode_speaks_http_1_1() {
    let peer = Peer::start().await;
    let src = nbsp(&peer, HttpVersion::Http1, None);
    let keys = lookup(&src, "known@bsf").await.expect("keys");
    assert_eq!(keys.keys.muk().as_bytes(), &KS_NAF);
    assert_eq!(peer.last().version, Version::HTTP_11);
    assert_eq!(
        lookup(&src, "unknown@bsf").await.map(|_| ()),
        Err(KeySourceError::UnknownBtid)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aanf_kaf_becomes_the_muk_and_the_akid_the_identifier() {
    let peer = Peer::start().await;
    let src = aanf(&peer);
    let akid = "known@rid0001.akma.example.org";
    let keys = lookup(&src, akid).await.expect("keys");
    assert_eq!(keys.btid.as_str(), akid);
    assert_eq!(keys.impi, "imsi-001010000000001");
    assert_eq!(keys.keys.muk().as_bytes(), &KAF);
    let want = akma_keys(&Kaf::from_bytes(KAF));
    assert_eq!(keys.keys.mrk().as_bytes(), want.mrk().as_bytes());
    let seen = peer.last();
    assert_eq!(seen.version, Version::HTTP_2);
    assert_eq!(seen.path, "/naanf-akma/v1/retrieve-applicationkey");
    assert_eq!(
        seen.body,
        json!({"afId": "af.mbs.example.org", "aKId": akid})
    );
    assert_refusals_map(&src, "rid.akma").await;
    assert!(unavailable(lookup(&src, "noexpiry@rid.akma").await).contains("expiry"));
    assert!(unavailable(lookup(&src, "broken@rid.akma").await).contains("500"));
}

#[test]
fn config_takes_one_key_source() {
    let dir = TempDir::new("sbi-config");
    let base = lab::config_text(
        dir.path(),
        2269,
        "127.0.0.1:9".parse().expect("addr"),
        &[],
        "1h",
        1,
    );
    let c = Config::parse(&format!(
        "{base}\n[gba.nbsp]\napi_root = \"http://127.0.0.1:8080\"\nhttp_version = \"1.1\"\nrequest_timeout = \"2s\"\ntoken_file = \"/run/token\"\n"
    ))
    .expect("nbsp config");
    let KeySourceConfig::Nbsp(n) = c.gba.source else {
        panic!("expected [gba.nbsp]")
    };
    assert_eq!(n.settings.http_version, HttpVersion::Http1);
    assert_eq!(n.settings.request_timeout, Duration::from_secs(2));
    assert_eq!(n.settings.token_file, Some(PathBuf::from("/run/token")));
    let c = Config::parse(&format!(
        "{base}\n[gba.aanf]\napi_root = \"http://aanf.example:80/root\"\n"
    ))
    .expect("aanf config");
    let KeySourceConfig::Aanf(a) = c.gba.source else {
        panic!("expected [gba.aanf]")
    };
    assert_eq!(a.af_id, FQDN);
    assert_eq!(a.settings.http_version, HttpVersion::Http2);
    assert_eq!(a.settings.request_timeout, Duration::from_secs(5));
    let both = Config::parse(&format!(
        "{base}\n[gba.nbsp]\napi_root = \"http://a\"\n[gba.aanf]\napi_root = \"http://b\"\n"
    ))
    .expect_err("two sources");
    assert!(
        both.to_string()
            .contains("[gba.nbsp] and [gba.aanf] are two key sources"),
        "{both}"
    );
    let with_subs = lab::config_text(
        dir.path(),
        2269,
        "127.0.0.1:9".parse().expect("addr"),
        &[1],
        "1h",
        1,
    );
    let err = Config::parse(&format!(
        "{with_subs}\n[gba.aanf]\napi_root = \"http://b\"\n"
    ))
    .expect_err("subscribers and aanf");
    assert!(
        err.to_string()
            .contains("[gba.aanf] and [[gba.subscribers]] are two key sources"),
        "{err}"
    );
    let zn = "[gba.zn]\npeers = [\"127.0.0.1:3868\"]\norigin_host = \"bmsc.example\"\norigin_realm = \"example\"\ndestination_realm = \"example\"\n";
    let err = Config::parse(&format!(
        "{base}\n{zn}[gba.nbsp]\napi_root = \"http://b\"\n"
    ))
    .expect_err("zn and nbsp");
    assert!(
        err.to_string()
            .contains("[gba.zn] and [gba.nbsp] are two key sources"),
        "{err}"
    );
    Config::parse(&format!("{base}\n{zn}")).expect("zn alone");
    for (bad, key) in [
        (
            "[gba.nbsp]\napi_root = \"https://a\"\n",
            "gba.nbsp.api_root",
        ),
        ("[gba.nbsp]\napi_root = \"a\"\n", "gba.nbsp.api_root"),
        (
            "[gba.nbsp]\napi_root = \"http://a\"\nhttp_version = \"3\"\n",
            "gba.nbsp.http_version",
        ),
        (
            "[gba.nbsp]\napi_root = \"http://a\"\nrequest_timeout = \"0s\"\n",
            "gba.nbsp.request_timeout",
        ),
        (
            "[gba.nbsp]\napi_root = \"http://a\"\naf_id = \"x\"\n",
            "gba.nbsp.af_id",
        ),
        (
            "[gba.aanf]\napi_root = \"http://a\"\naf_id = \"a b\"\n",
            "gba.aanf.af_id",
        ),
    ] {
        let err = Config::parse(&format!("{base}\n{bad}")).expect_err(bad);
        assert!(err.to_string().starts_with(key), "{bad}: {err}");
    }
}

async fn start_ue(i: u8, keys: UeGbaKeys, ue_port: u16, http: SocketAddr) -> UeClient {
    let mut c = UeConfig::new(FQDN);
    c.listen = SocketAddr::new(lab::ue_ip(i), ue_port);
    c.bmsc_url = Some(format!("http://{http}"));
    c.client = ClientConfig {
        local_addr: Some(lab::ue_ip(i)),
        ..ClientConfig::default()
    };
    UeClient::start(c, Arc::new(StaticGbaKeys::new(keys)))
        .await
        .expect("UE starts")
}

/// A BM-SC whose only key source is `section`, and one UE with `keys`: the UE registers and
/// installs the MSK pushed under its MUK. Then UEs with the identifiers of `refused` register
/// and get the error each expects (as its text).
async fn register_and_receive_msk(
    section: String,
    keys: UeGbaKeys,
    name: &str,
    refused: &[(&str, &str)],
) -> String {
    let dir = TempDir::new(name);
    let relay = lab::Relay::start().await;
    let ue_port = lab::free_udp_port();
    let text = lab::config_text(dir.path(), ue_port, relay.addr, &[], "1h", 2);
    let config = Config::parse(&format!("{text}\n{section}")).expect("config");
    let bmsc = Bmsc::start_with(config, Tuning::default())
        .await
        .expect("BM-SC starts");
    let mut ue = start_ue(1, keys.clone(), ue_port, bmsc.http_addr()).await;
    let r = ue
        .register(&[SERVICE.to_string()])
        .await
        .expect("registration");
    assert_eq!(r.statuses.len(), 1);
    assert_eq!(r.statuses[0].code, 200);
    let mut seen = Vec::new();
    lab::wait_for(
        &mut ue,
        &mut seen,
        Duration::from_secs(10),
        "MskInstalled",
        |e| matches!(e, Event::MskInstalled { .. }),
    )
    .await;
    ue.shutdown().await;
    for (i, (id, want)) in (2u8..).zip(refused) {
        let other = UeGbaKeys {
            btid: id.parse().expect("identifier"),
            ..keys.clone()
        };
        let ue = start_ue(i, other, ue_port, bmsc.http_addr()).await;
        let err = ue
            .register(&[SERVICE.to_string()])
            .await
            .expect_err("refused");
        assert!(err.to_string().contains(want), "{id}: {err}");
        ue.shutdown().await;
    }
    let metrics = bmsc.metrics().render();
    bmsc.shutdown().await.expect("BM-SC stops");
    metrics
}

/// The value of the metric line `name` (with its labels) in `text`.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bmsc_with_aanf_serves_a_ue_with_akid_and_kaf() {
    let peer = Peer::start().await;
    let akid = "known@rid0001.akma.example.org";
    let keys = UeGbaKeys::akma(
        parse_akid(akid).expect("akid"),
        &Kaf::from_bytes(KAF),
        SystemTime::now() + Duration::from_secs(3600),
    );
    let section = format!(
        "[gba.aanf]\napi_root = \"http://{}\"\naf_id = \"af.mbs.example.org\"\n",
        peer.addr
    );
    let refused = [
        ("forbidden@rid0001.akma.example.org", "403"),
        (
            "unknown@rid0001.akma.example.org",
            "refused the Digest credentials",
        ),
        ("broken@rid0001.akma.example.org", "503"),
    ];
    let metrics = register_and_receive_msk(section, keys, "sbi-aanf-e2e", &refused).await;
    let seen = peer.seen.lock().expect("lock").clone();
    // Every request the AAnF saw is counted, each under one outcome.
    let requests = metric(&metrics, "mbms_bmsc_aanf_requests_total");
    assert_eq!(requests, seen.len() as u64, "{metrics}");
    let outcomes: u64 = ["2xx", "4xx", "5xx", "other_status", "no_answer", "busy"]
        .iter()
        .map(|r| {
            metric(
                &metrics,
                &format!("mbms_bmsc_aanf_answers_total{{result=\"{r}\"}}"),
            )
        })
        .sum();
    assert_eq!(outcomes, requests, "{metrics}");
    // Behind the key cache: asked once for the registration, never for the MSK push.
    assert_eq!(seen.iter().filter(|s| s.body["aKId"] == akid).count(), 1);
    assert!(seen.iter().all(|s| s.version == Version::HTTP_2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bmsc_with_nbsp_serves_a_gba_ue() {
    let peer = Peer::start().await;
    let btid = "known@bsf.example.org";
    let keys = UeGbaKeys {
        btid: btid.parse().expect("btid"),
        material: GbaKeys::Me {
            ks_naf: KsNaf::from_bytes(KS_NAF),
        },
        expiry: SystemTime::now() + Duration::from_secs(3600),
    };
    let section = format!("[gba.nbsp]\napi_root = \"http://{}\"\n", peer.addr);
    let metrics =
        register_and_receive_msk(section, keys, "sbi-nbsp-e2e", &[("forbidden@bsf", "403")]).await;
    let seen = peer.seen.lock().expect("lock").clone();
    assert_eq!(seen.iter().filter(|s| s.body["btId"] == btid).count(), 1);
    // The known B-TID answered 200, the forbidden one 403: one request each.
    assert_eq!(
        metric(&metrics, "mbms_bmsc_nbsp_requests_total"),
        2,
        "{metrics}"
    );
    let answers = |r: &str| {
        metric(
            &metrics,
            &format!("mbms_bmsc_nbsp_answers_total{{result=\"{r}\"}}"),
        )
    };
    assert_eq!(
        (answers("2xx"), answers("4xx"), answers("no_answer")),
        (1, 1, 0)
    );
    assert_eq!(
        metric(&metrics, "mbms_bmsc_nbsp_request_seconds_count"),
        2,
        "{metrics}"
    );
}

/// The `ue` command with `--akid` and `--kaf`: an MSK message to the A-KID under MUK = KAF is
/// installed; `--akid` without `--kaf`, or with a GBA key, is refused.
#[test]
fn ue_command_takes_akid_and_kaf() {
    use std::io::{BufRead as _, BufReader};
    use std::process::{Command, Stdio};

    use mbms_keys::crypto::Msk;
    use mbms_keys::mbms::{MskDelivery, MskUpdate, build_msk};

    let bin = env!("CARGO_BIN_EXE_mbms-keys");
    let akid = "known@rid0001.akma.example.org";
    let refused = |args: &[&str]| {
        let out = Command::new(bin)
            .args([
                "ue",
                "--listen-only",
                "--idi",
                FQDN,
                "--listen",
                "127.0.0.1:0",
            ])
            .args(args)
            .output()
            .expect("binary runs");
        assert!(!out.status.success(), "{args:?} accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(refused(&["--akid", akid]).contains("--kaf"));
    assert!(
        refused(&["--akid", akid, "--kaf", &hex::encode(KAF), "--btid", "a@b"])
            .contains("cannot be used")
    );
    assert!(
        refused(&[
            "--akid",
            akid,
            "--kaf",
            &hex::encode(KAF),
            "--ks-naf",
            &hex::encode(KS_NAF)
        ])
        .contains("cannot be used")
    );
    assert!(refused(&["--akid", akid, "--kaf", "00"]).contains("--kaf"));
    assert!(refused(&["--akid", "no-realm", "--kaf", &hex::encode(KAF)]).contains("--akid"));

    let mut child = Command::new(bin)
        .args([
            "ue",
            "--listen-only",
            "--idi",
            FQDN,
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--akid", akid, "--kaf", &hex::encode(KAF)])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary runs");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut next = || -> Value {
        serde_json::from_str(&lines.next().expect("a line").expect("utf-8")).expect("json")
    };
    let first = next();
    assert_eq!(first["event"], "Listening");
    let addr: SocketAddr = first["addr"].as_str().expect("addr").parse().expect("addr");
    let delivery = MskDelivery::new(
        "00f110".parse().expect("kd"),
        "00010002".parse().expect("msk id"),
        9,
        vec![9; 16],
        FQDN,
        akid,
        MskUpdate::NewKey {
            msk: Msk::from_bytes([0x5a; 16]),
            seql: 1,
            sequ: 100,
        },
    );
    let muk = akma_keys(&Kaf::from_bytes(KAF)).muk();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("socket");
    sock.send_to(&build_msk(&muk, &delivery).expect("build"), addr)
        .expect("send");
    let l = next();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(l["event"], "MskInstalled", "{l}");
    assert_eq!(l["msk_id"], "00010002");
}

/// Many lookups at once from the blocking pool share one HTTP/2 connection; prints the rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_lookups_share_one_http2_connection() {
    let peer = Peer::start().await;
    let src = nbsp(&peer, HttpVersion::Http2, None);
    lookup(&src, "known@bsf").await.expect("warm-up");
    let (threads, per_thread) = (16, 200);
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..threads)
        .map(|_| {
            let s = src.clone();
            tokio::task::spawn_blocking(move || {
                (0..per_thread)
                    .filter(|_| s.lookup("known@bsf", SystemTime::now()).is_ok())
                    .count()
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        ok += t.await.expect("no panic");
    }
    let took = t0.elapsed();
    assert_eq!(ok, threads * per_thread);
    assert_eq!(
        peer.connections.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "one HTTP/2 connection"
    );
    println!(
        "{} Nbsp_GBA lookups from {threads} threads in {took:?}: {:.0}/s",
        ok,
        ok as f64 / took.as_secs_f64()
    );
}
