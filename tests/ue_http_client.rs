//! The UE Key Request client (docs/profile.md §4) over real loopback sockets:
//! a) against an in-test server that verifies RFC 7616 Digest on its own (no `mbms::digest`
//!    code), qop=auth-int, MD5 and SHA-256;
//! b) against lighttpd (Debian), which skips when lighttpd is absent and fails instead when
//!    `MBMS_REQUIRE_ORACLES=1`.

mod common;

use mbms_lab::lighttpd;
#[path = "ue_http/server.rs"]
mod server;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hyper::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use mbms_keys::crypto::KsNaf;
use mbms_keys::gba::{Btid, GbaKeys};
use mbms_keys::mbms::digest::{RspauthStatus, realm_for};
use mbms_keys::mbms::keyreq::{self, MskRef};
use mbms_keys::mikey::{KeyDomainId, MskId};
use mbms_keys::ue::gba_keys::{GbaKeyProvider, ProviderError, StaticGbaKeys, UeGbaKeys};
use mbms_keys::ue::http::{ClientConfig, ClientError, KeyRequestClient};

use server::{Conf, Rsp, Server};

const BTID: &str = "ICEiIyQlJicoKSorLC0uLw==@bsf.example";

/// base64(MRK) of mrk-01 GBA_ME, as the vector states it.
fn password() -> String {
    common::load("mrk-01")["expected"]["gba_me"]["digest_password"]
        .as_str()
        .expect("digest_password")
        .to_owned()
}

fn keys(expiry: SystemTime) -> UeGbaKeys {
    let v = common::load("mrk-01");
    let ks_naf =
        KsNaf::from_hex(v["intermediates"]["ks_naf"].as_str().expect("ks_naf")).expect("hex");
    UeGbaKeys {
        btid: BTID.parse().expect("btid"),
        material: GbaKeys::Me { ks_naf },
        expiry,
    }
}

fn far_future() -> SystemTime {
    SystemTime::now() + Duration::from_secs(3600)
}

/// Counts `keys()` and `invalidate()` calls; the keys live for `ttl`.
struct CountingProvider {
    ttl: Duration,
    calls: AtomicUsize,
    invalidated: AtomicUsize,
}

impl CountingProvider {
    fn new(ttl: Duration) -> Arc<Self> {
        Arc::new(Self {
            ttl,
            calls: AtomicUsize::new(0),
            invalidated: AtomicUsize::new(0),
        })
    }
}

impl GbaKeyProvider for CountingProvider {
    fn keys(&self) -> Result<UeGbaKeys, ProviderError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(keys(SystemTime::now() + self.ttl))
    }

    fn invalidate(&self, btid: &Btid) {
        assert_eq!(btid.as_str(), BTID);
        self.invalidated.fetch_add(1, Ordering::SeqCst);
    }
}

fn conf(alg: &'static str) -> Conf {
    Conf {
        alg,
        qop: "auth-int",
        realm: realm_for("bmsc.example"),
        password: password(),
        stale_once: false,
        rsp: Rsp::Good,
    }
}

fn services() -> Vec<String> {
    vec![
        "urn:example:mbms:news".to_owned(),
        "urn:example:mbms:sport".to_owned(),
    ]
}

fn kd() -> KeyDomainId {
    "00f110".parse().expect("kd")
}

const REGISTER_BODY: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
    <mbmsRegister xmlns=\"urn:mbms-keys:keymanagement:1\">\n  \
    <serviceId>urn:example:mbms:news</serviceId>\n  \
    <serviceId>urn:example:mbms:sport</serviceId>\n\
    </mbmsRegister>\n";

const DEREGISTER_BODY: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
    <mbmsDeregister xmlns=\"urn:mbms-keys:keymanagement:1\">\n  \
    <serviceId>urn:example:mbms:news</serviceId>\n\
    </mbmsDeregister>\n";

const MSK_BODY: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
    <mbmsMskRequest xmlns=\"urn:mbms-keys:keymanagement:1\">\n  \
    <msk keyDomainId=\"00f110\" mskId=\"00010000\"/>\n\
    </mbmsMskRequest>\n";

async fn register_deregister_msk(alg: &'static str) {
    let (url, srv) = Server::start(conf(alg)).await;
    let provider = CountingProvider::new(Duration::from_secs(3600));
    let client = KeyRequestClient::new(&url, provider.clone()).expect("client");

    let reg = client.register(&services()).await.expect("register");
    let codes: Vec<(&str, u16)> = reg
        .statuses
        .iter()
        .map(|s| (s.service_id.as_str(), s.code))
        .collect();
    assert_eq!(
        codes,
        [
            ("urn:example:mbms:news", 200),
            ("urn:example:mbms:sport", 404)
        ]
    );
    client
        .deregister(&services()[..1])
        .await
        .expect("deregister");
    let msk = client
        .request_msk(&[(kd(), MskId::new(1, 0))])
        .await
        .expect("msk request");
    assert_eq!(msk.statuses.len(), 1);
    assert_eq!(msk.statuses[0].msk, MskRef::Id(kd(), MskId::new(1, 0)));
    assert_eq!(msk.statuses[0].code, 200);

    let seen = srv.seen();
    // First call: challenge, then the answer; later calls reuse the nonce with the next nc.
    let summary: Vec<(&str, u16, Option<&str>)> = seen
        .iter()
        .map(|s| {
            (
                s.path.as_str(),
                s.status,
                s.authorization
                    .as_ref()
                    .and_then(|a| a.get("nc"))
                    .map(String::as_str),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (keyreq::PATH_REGISTER, 401, None),
            (keyreq::PATH_REGISTER, 200, Some("00000001")),
            (keyreq::PATH_DEREGISTER, 200, Some("00000002")),
            (keyreq::PATH_MSK, 200, Some("00000003")),
        ]
    );
    let bodies: Vec<&[u8]> = seen.iter().map(|s| s.body.as_slice()).collect();
    assert_eq!(
        bodies,
        [
            REGISTER_BODY.as_bytes(),
            REGISTER_BODY.as_bytes(),
            DEREGISTER_BODY.as_bytes(),
            MSK_BODY.as_bytes(),
        ]
    );
    let types: Vec<&str> = seen.iter().map(|s| s.content_type.as_str()).collect();
    assert_eq!(
        types,
        [
            keyreq::MIME_REGISTER,
            keyreq::MIME_REGISTER,
            keyreq::MIME_DEREGISTER,
            keyreq::MIME_MSK
        ]
    );
    for s in &seen {
        assert!(
            s.user_agent.split(' ').any(|t| t == "3gpp-gba"),
            "{}",
            s.user_agent
        );
        if let Some(a) = &s.authorization {
            assert_eq!(a["username"], BTID);
            assert_eq!(a["qop"], "auth-int");
            assert_eq!(a["algorithm"], alg);
        }
    }
    assert_eq!(
        provider.calls.load(Ordering::SeqCst),
        1,
        "keys held while valid"
    );
    assert_eq!(provider.invalidated.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn md5_auth_int_register_deregister_msk() {
    register_deregister_msk("MD5").await;
}

#[tokio::test]
async fn sha256_auth_int_register_deregister_msk() {
    register_deregister_msk("SHA-256").await;
}

#[tokio::test]
async fn stale_nonce_is_answered_with_the_new_nonce() {
    let (url, srv) = Server::start(Conf {
        stale_once: true,
        ..conf("SHA-256")
    })
    .await;
    let client = KeyRequestClient::new(&url, Arc::new(StaticGbaKeys::new(keys(far_future()))))
        .expect("client");
    client
        .request_msk(&[(kd(), MskId::new(1, 0))])
        .await
        .expect("msk request after stale");
    let seen: Vec<(u16, Option<String>)> = srv
        .seen()
        .iter()
        .map(|s| {
            (
                s.status,
                s.authorization.as_ref().map(|a| a["nonce"].clone()),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (401, None),
            (401, Some("nonce-1".to_owned())),
            (200, Some("nonce-2".to_owned())),
        ]
    );
}

#[tokio::test]
async fn a_200_without_rspauth_is_bad_server_authentication() {
    let (url, _srv) = Server::start(Conf {
        rsp: Rsp::Missing,
        ..conf("MD5")
    })
    .await;
    let client = KeyRequestClient::new(&url, Arc::new(StaticGbaKeys::new(keys(far_future()))))
        .expect("client");
    let err = client.register(&services()).await.expect_err("no rspauth");
    assert!(
        matches!(
            err,
            ClientError::BadServerAuthentication(RspauthStatus::Missing)
        ),
        "{err:?}"
    );
    // The lower level reports the same answer without judging it.
    let resp = client
        .send_authenticated(
            keyreq::PATH_REGISTER,
            keyreq::MIME_REGISTER,
            Bytes::from_static(REGISTER_BODY.as_bytes()),
        )
        .await
        .expect("send");
    assert_eq!(
        (resp.status, resp.rspauth),
        (StatusCode::OK, RspauthStatus::Missing)
    );
}

#[tokio::test]
async fn a_200_with_a_wrong_rspauth_is_bad_server_authentication() {
    let (url, _srv) = Server::start(Conf {
        rsp: Rsp::Wrong,
        ..conf("SHA-256")
    })
    .await;
    let client = KeyRequestClient::new(&url, Arc::new(StaticGbaKeys::new(keys(far_future()))))
        .expect("client");
    let err = client
        .request_msk(&[(kd(), MskId::new(1, 0))])
        .await
        .expect_err("wrong rspauth");
    assert!(
        matches!(
            err,
            ClientError::BadServerAuthentication(RspauthStatus::Invalid)
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn refused_credentials_ask_for_fresh_keys_once_then_fail() {
    let (url, srv) = Server::start(Conf {
        password: "d3Jvbmc=".to_owned(),
        ..conf("MD5")
    })
    .await;
    let provider = CountingProvider::new(Duration::from_secs(3600));
    let client = KeyRequestClient::new(&url, provider.clone()).expect("client");
    let err = client.register(&services()).await.expect_err("refused");
    assert!(matches!(err, ClientError::Unauthorized), "{err:?}");
    assert_eq!(provider.invalidated.load(Ordering::SeqCst), 1);
    assert_eq!(provider.calls.load(Ordering::SeqCst), 2);
    assert_eq!(srv.seen().len(), 2, "challenge + one answer");
    assert!(!err.to_string().contains(&password()));
}

#[tokio::test]
async fn keys_are_asked_again_after_expiry() {
    let (url, _srv) = Server::start(conf("SHA-256")).await;
    let provider = CountingProvider::new(Duration::from_millis(300));
    let client = KeyRequestClient::new(&url, provider.clone()).expect("client");
    client.register(&services()).await.expect("first");
    client
        .register(&services())
        .await
        .expect("second, keys still valid");
    assert_eq!(provider.calls.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    client
        .register(&services())
        .await
        .expect("third, keys expired");
    assert_eq!(provider.calls.load(Ordering::SeqCst), 2);

    let expired = CountingProvider::new(Duration::ZERO);
    let client = KeyRequestClient::new(&url, expired.clone()).expect("client");
    for _ in 0..3 {
        client.register(&services()).await.expect("register");
    }
    assert_eq!(expired.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_non_gba_realm_is_not_answered() {
    let (url, srv) = Server::start(Conf {
        realm: "intranet".to_owned(),
        ..conf("MD5")
    })
    .await;
    let client = KeyRequestClient::new(&url, Arc::new(StaticGbaKeys::new(keys(far_future()))))
        .expect("client");
    let err = client.register(&services()).await.expect_err("realm");
    assert!(matches!(err, ClientError::Challenge(_)), "{err:?}");
    assert_eq!(srv.seen().len(), 1, "no Authorization was sent");
}

/// A raw server that answers every connection with `reply` (or never, when `None`).
async fn raw_server(reply: Option<Vec<u8>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let reply = reply.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                match reply {
                    Some(r) => {
                        let _ = s.write_all(&r).await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(30)).await,
                }
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let url = raw_server(None).await;
    let config = ClientConfig {
        request_timeout: Duration::from_millis(200),
        ..ClientConfig::default()
    };
    let client = KeyRequestClient::with_config(
        &url,
        Arc::new(StaticGbaKeys::new(keys(far_future()))),
        config,
    )
    .expect("client");
    let err = client.register(&services()).await.expect_err("timeout");
    assert!(
        matches!(err, ClientError::Timeout(d) if d == Duration::from_millis(200)),
        "{err:?}"
    );
    let config = ClientConfig {
        overall_timeout: Duration::from_millis(100),
        ..ClientConfig::default()
    };
    let client = KeyRequestClient::with_config(
        &url,
        Arc::new(StaticGbaKeys::new(keys(far_future()))),
        config,
    )
    .expect("client");
    let err = client.register(&services()).await.expect_err("timeout");
    assert!(
        matches!(err, ClientError::Timeout(d) if d == Duration::from_millis(100)),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_large_response_body_is_refused() {
    let big = vec![b'a'; 100 * 1024];
    let mut declared =
        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", big.len()).into_bytes();
    declared.extend_from_slice(&big);
    let mut chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..100 {
        chunked.extend_from_slice(b"400\r\n");
        chunked.extend_from_slice(&[b'a'; 1024]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    for reply in [declared, chunked] {
        let url = raw_server(Some(reply)).await;
        let client = KeyRequestClient::new(&url, Arc::new(StaticGbaKeys::new(keys(far_future()))))
            .expect("client");
        let err = client.register(&services()).await.expect_err("too large");
        assert!(
            matches!(err, ClientError::BodyTooLarge(n) if n == keyreq::MAX_BODY_LEN),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_server_is_a_connect_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let client = KeyRequestClient::new(
        &format!("http://127.0.0.1:{port}"),
        Arc::new(StaticGbaKeys::new(keys(far_future()))),
    )
    .expect("client");
    let err = client.register(&services()).await.expect_err("refused");
    assert!(matches!(err, ClientError::Connect { .. }), "{err:?}");
}

#[tokio::test]
async fn bad_requests_are_refused_before_sending() {
    let client = KeyRequestClient::new(
        "http://127.0.0.1:9",
        Arc::new(StaticGbaKeys::new(keys(far_future()))),
    )
    .expect("client");
    for ids in [vec![], vec![String::new()], vec!["a\u{1}b".to_owned()]] {
        let err = client.register(&ids).await.expect_err("invalid");
        assert!(matches!(err, ClientError::InvalidRequest(_)), "{err:?}");
    }
    let err = client.request_msk(&[]).await.expect_err("empty");
    assert!(matches!(err, ClientError::InvalidRequest(_)), "{err:?}");
    assert!(matches!(
        KeyRequestClient::new(
            "https://x",
            Arc::new(StaticGbaKeys::new(keys(far_future())))
        ),
        Err(ClientError::BaseUrl(_))
    ));
}

// ---- b) lighttpd ----

async fn lighttpd_accepts_our_digest(algorithm: &'static str) {
    if lighttpd::find().is_none() {
        mbms_lab::oracle::missing("lighttpd", lighttpd::INSTALL_HINT);
        return;
    }
    let realm = realm_for("bmsc.example");
    let served = server::MSK_RESPONSE;
    // lighttpd serves the three Key Request paths as static files, Digest on everything.
    let users = [(BTID.to_owned(), password())];
    let files: Vec<(&str, &str)> = [
        keyreq::PATH_REGISTER,
        keyreq::PATH_DEREGISTER,
        keyreq::PATH_MSK,
    ]
    .into_iter()
    .map(|p| (p, served))
    .collect();
    let lt = lighttpd::Lighttpd::start(&lighttpd::Site {
        algorithm,
        realm: &realm,
        users: &users,
        protected: "/",
        files: &files,
        content_type: Some(keyreq::MIME_MSK_RESPONSE),
    })
    .unwrap_or_else(|e| panic!("lighttpd: {e}"));
    let client = KeyRequestClient::new(
        &lt.base_url,
        Arc::new(StaticGbaKeys::new(keys(far_future()))),
    )
    .expect("client");

    // lighttpd answers a Digest it accepts with the static file (200); one it refuses with 401,
    // which the client reports as Unauthorized after its retries.
    for _ in 0..2 {
        let resp = client
            .send_authenticated(
                keyreq::PATH_MSK,
                keyreq::MIME_MSK,
                Bytes::from_static(MSK_BODY.as_bytes()),
            )
            .await
            .unwrap_or_else(|e| panic!("lighttpd {algorithm}: {e}"));
        assert_eq!(resp.status, StatusCode::OK, "lighttpd accepted our Digest");
        assert_eq!(resp.body.as_ref(), served.as_bytes());
        assert_eq!(
            resp.rspauth,
            RspauthStatus::Missing,
            "lighttpd sends no Authentication-Info"
        );
        assert!(resp.headers.get("authentication-info").is_none());
    }
    // The high-level call requires rspauth, so lighttpd's 200 is not good enough.
    let err = client
        .request_msk(&[(kd(), MskId::new(1, 0))])
        .await
        .expect_err("no rspauth from lighttpd");
    assert!(
        matches!(
            err,
            ClientError::BadServerAuthentication(RspauthStatus::Missing)
        ),
        "{err:?}"
    );

    // Negative control: lighttpd does check the password.
    let wrong = UeGbaKeys {
        material: GbaKeys::Me {
            ks_naf: KsNaf::from_bytes([7; 32]),
        },
        ..keys(far_future())
    };
    let client =
        KeyRequestClient::new(&lt.base_url, Arc::new(StaticGbaKeys::new(wrong))).expect("client");
    let err = client
        .send_authenticated(
            keyreq::PATH_MSK,
            keyreq::MIME_MSK,
            Bytes::from_static(MSK_BODY.as_bytes()),
        )
        .await
        .expect_err("wrong password");
    assert!(matches!(err, ClientError::Unauthorized), "{err:?}");
}

#[tokio::test]
async fn lighttpd_md5_accepts_our_digest() {
    lighttpd_accepts_our_digest("MD5").await;
}

#[tokio::test]
async fn lighttpd_sha256_accepts_our_digest() {
    lighttpd_accepts_our_digest("SHA-256").await;
}
