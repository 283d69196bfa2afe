//! The BM-SC Key Request handler (docs/profile.md §4, TS 33.246 6.3.2.3/6.3.2.4) without sockets:
//! one test per rule, with virtual time and a deterministic nonce generator.

mod common;
#[path = "bmsc_keyreq/digest.rs"]
mod digest;
#[path = "bmsc_keyreq/items.rs"]
mod items;
#[path = "bmsc_keyreq/lab.rs"]
mod lab;
#[path = "bmsc_keyreq/robustness.rs"]
mod robustness;

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};

use mbms_keys::bmsc::config::Config;
use mbms_keys::bmsc::events::KeyRequestEvent;
use mbms_keys::bmsc::keyreq::{KeyRequestHandler, Request, Response};
use mbms_keys::bmsc::metrics::Metrics;
use mbms_keys::bmsc::store::{MskState, Store};
use mbms_keys::crypto::{Random, RngFailure};
use mbms_keys::mbms::digest::{
    Authorization, Challenge, ClientSession, Credentials, RspauthStatus,
};
use mbms_keys::mbms::keyreq::{
    MIME_DEREGISTER, MIME_MSK, MIME_MSK_RESPONSE, MIME_REGISTER, MIME_REGISTER_RESPONSE, MskRef,
    MskRequest, MskResponse, PATH_DEREGISTER, PATH_MSK, PATH_REGISTER, RegisterRequest,
    RegisterResponse,
};
use mbms_keys::mikey::{KeyDomainId, MskId};

use lab::{
    ALICE, ALICE_IMPI, FlakyStore, KD, LabSource, OLD, OPEN, OPEN2, REALM, TempDir, VERA, VIP,
    credentials, is_registered, msk_record, t0,
};

const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

/// Nonces 1, 2, 3, … : deterministic, distinct.
struct Sequence(u64);

impl Random for Sequence {
    fn fill(&mut self, out: &mut [u8]) -> Result<(), RngFailure> {
        self.0 += 1;
        for (i, b) in out.iter_mut().enumerate() {
            *b = self.0.to_be_bytes().get(i % 8).copied().unwrap_or(0) ^ (i as u8);
        }
        Ok(())
    }
}

struct Failing;

impl Random for Failing {
    fn fill(&mut self, _: &mut [u8]) -> Result<(), RngFailure> {
        Err(RngFailure)
    }
}

struct Bench {
    handler: Arc<KeyRequestHandler>,
    store: Arc<FlakyStore>,
    source: Arc<LabSource>,
    metrics: Arc<Metrics>,
    _dir: TempDir,
}

fn bench_with(config: &Config, rng: Box<dyn Random>) -> Bench {
    let dir = TempDir::new("handler");
    let store = Arc::new(FlakyStore::open(&dir));
    let source = Arc::new(LabSource::new());
    let metrics = Arc::new(Metrics::default());
    let handler =
        KeyRequestHandler::new(config, source.clone(), store.clone(), metrics.clone(), rng);
    Bench {
        handler: Arc::new(handler),
        store,
        source,
        metrics,
        _dir: dir,
    }
}

fn bench() -> Bench {
    bench_with(
        &lab::config("auth-int", "SHA-256", "5m", 1000),
        Box::new(Sequence(0)),
    )
}

fn request(
    method: &str,
    path: &str,
    content_type: Option<&str>,
    authorization: Option<&str>,
    body: &[u8],
) -> Request {
    Request {
        method: method.to_owned(),
        path: path.to_owned(),
        content_type: content_type.map(str::to_owned),
        authorization: authorization.map(str::to_owned),
        body: Bytes::copy_from_slice(body),
        peer: PEER,
    }
}

fn register_body(ids: &[&str]) -> String {
    RegisterRequest::register(&ids.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).to_xml()
}

fn deregister_body(ids: &[&str]) -> String {
    RegisterRequest::deregister(&ids.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).to_xml()
}

/// The answer to an authenticated request, with what the client sent.
struct Exchange {
    resp: Response,
    events: Vec<KeyRequestEvent>,
    auth: Authorization,
    creds: Credentials,
}

impl Exchange {
    fn rspauth(&self) -> RspauthStatus {
        self.auth.check_authentication_info(
            &self.creds,
            self.resp.header("authentication-info"),
            &self.resp.body,
        )
    }

    fn register_codes(&self) -> Vec<(String, u16)> {
        assert_eq!(self.resp.status, 200, "{:?}", self.resp);
        RegisterResponse::parse(&self.resp.body)
            .expect("register response parses")
            .statuses
            .into_iter()
            .map(|s| (s.service_id, s.code))
            .collect()
    }

    fn msk_codes(&self) -> Vec<u16> {
        assert_eq!(self.resp.status, 200, "{:?}", self.resp);
        MskResponse::parse(&self.resp.body)
            .expect("msk response parses")
            .statuses
            .into_iter()
            .map(|s| s.code)
            .collect()
    }
}

fn www_authenticate(resp: &Response) -> &str {
    assert_eq!(resp.status, 401, "{resp:?}");
    resp.header("www-authenticate").expect("challenge")
}

impl Bench {
    fn call(&self, req: Request, now: SystemTime) -> (Response, Vec<KeyRequestEvent>) {
        self.handler.handle(req, now)
    }

    /// The challenge of an unauthenticated request to `path`.
    fn challenge(&self, path: &str, now: SystemTime) -> String {
        let (resp, events) = self.call(request("POST", path, None, None, b""), now);
        assert!(events.is_empty());
        www_authenticate(&resp).to_owned()
    }

    fn session(&self, path: &str, now: SystemTime) -> ClientSession {
        ClientSession::new(Challenge::parse(&self.challenge(path, now)).expect("usable challenge"))
    }

    /// Sends with a ready session.
    fn send(
        &self,
        session: &mut ClientSession,
        creds: &Credentials,
        path: &str,
        mime: &str,
        body: &[u8],
        now: SystemTime,
    ) -> Exchange {
        let auth = session
            .authorize(creds, "POST", path, body)
            .expect("authorize");
        let (resp, events) = self.call(
            request("POST", path, Some(mime), Some(auth.header_value()), body),
            now,
        );
        Exchange {
            resp,
            events,
            auth,
            creds: creds.clone(),
        }
    }

    /// Challenge, then the authenticated request, as `btid`.
    fn post(&self, btid: &str, seed: u8, path: &str, mime: &str, body: &str) -> Exchange {
        let mut session = self.session(path, t0());
        self.send(
            &mut session,
            &credentials(btid, seed),
            path,
            mime,
            body.as_bytes(),
            t0(),
        )
    }

    fn alice(&self, path: &str, mime: &str, body: &str) -> Exchange {
        self.post(ALICE, 0x10, path, mime, body)
    }

    fn failures(&self) -> u64 {
        self.metrics.digest_failures.get()
    }
}

fn is_stale(resp: &Response) -> bool {
    Challenge::parse(www_authenticate(resp))
        .expect("challenge parses")
        .stale()
}

// ---- routing, method, size, type, body ------------------------------------------------------

#[test]
fn methods_other_than_post_get_405_with_allow_post() {
    let b = bench();
    for m in ["GET", "PUT", "DELETE", "HEAD", "OPTIONS", "post", "PATCH"] {
        let (resp, events) = b.call(request(m, PATH_REGISTER, None, None, b""), t0());
        assert_eq!(resp.status, 405, "{m}");
        assert_eq!(resp.header("allow"), Some("POST"));
        assert!(events.is_empty());
    }
    assert_eq!(b.handler.nonces_held(), 0, "405 issues no nonce");
}

#[test]
fn unknown_paths_get_404_before_the_method_check() {
    let b = bench();
    for p in [
        "/",
        "/keymanagement",
        "/keymanagement/register/",
        "/KEYMANAGEMENT/msk",
        "x",
        "",
    ] {
        for m in ["POST", "GET"] {
            let (resp, _) = b.call(request(m, p, Some(MIME_REGISTER), None, b"<a/>"), t0());
            assert_eq!(resp.status, 404, "{m} {p}");
        }
    }
}

#[test]
fn a_body_over_max_body_gets_413_before_authentication() {
    let b = bench();
    let big = vec![b'x'; 4097];
    let (resp, _) = b.call(
        request("POST", PATH_REGISTER, Some(MIME_REGISTER), None, &big),
        t0(),
    );
    assert_eq!(resp.status, 413);
    assert_eq!(b.handler.nonces_held(), 0);
    assert_eq!(
        b.handler
            .early_response("POST", PATH_MSK, Some(1 << 20))
            .map(|r| r.status),
        Some(413),
        "the driver can answer from Content-Length"
    );
    assert_eq!(b.handler.early_response("POST", PATH_MSK, Some(4096)), None);
}

#[test]
fn content_type_is_checked_after_authentication_415() {
    let b = bench();
    let body = register_body(&[OPEN]);
    // Unauthenticated: the challenge comes first, whatever the type.
    let (resp, _) = b.call(
        request(
            "POST",
            PATH_REGISTER,
            Some("text/plain"),
            None,
            body.as_bytes(),
        ),
        t0(),
    );
    assert_eq!(resp.status, 401);
    for wrong in ["text/xml", MIME_MSK, MIME_DEREGISTER, "application/xml", ""] {
        let x = b.alice(PATH_REGISTER, wrong, &body);
        assert_eq!(x.resp.status, 415, "{wrong}");
        assert_eq!(x.rspauth(), RspauthStatus::Verified, "authenticated 415");
        assert!(x.events.is_empty());
    }
    // Missing Content-Type.
    let mut s = b.session(PATH_REGISTER, t0());
    let creds = credentials(ALICE, 0x10);
    let auth = s
        .authorize(&creds, "POST", PATH_REGISTER, body.as_bytes())
        .expect("authorize");
    let (resp, _) = b.call(
        request(
            "POST",
            PATH_REGISTER,
            None,
            Some(auth.header_value()),
            body.as_bytes(),
        ),
        t0(),
    );
    assert_eq!(resp.status, 415);
    // Case and parameters do not matter.
    let x = b.alice(
        PATH_REGISTER,
        "Application/MBMS-Register+XML; charset=UTF-8",
        &body,
    );
    assert_eq!(x.register_codes(), vec![(OPEN.to_owned(), 200)]);
    assert!(!is_registered(&b.store.inner, ALICE, OPEN2));
}

#[test]
fn malformed_xml_gets_400_with_a_short_text_body() {
    let b = bench();
    let cases: [(&str, &str, &str); 7] = [
        (PATH_REGISTER, MIME_REGISTER, "<mbmsRegister"),
        (PATH_REGISTER, MIME_REGISTER, "not xml at all"),
        (
            PATH_REGISTER,
            MIME_REGISTER,
            "<!DOCTYPE x [<!ENTITY a \"b\">]><mbmsRegister><serviceId>&a;</serviceId></mbmsRegister>",
        ),
        (PATH_REGISTER, MIME_REGISTER, "<mbmsRegister/>"),
        (
            PATH_MSK,
            MIME_MSK,
            "<mbmsMskRequest><msk/><other/></mbmsMskRequest>",
        ),
        // A deregistration body at the registration path.
        (PATH_REGISTER, MIME_REGISTER, &deregister_body(&[OPEN])),
        (PATH_DEREGISTER, MIME_DEREGISTER, &register_body(&[OPEN])),
    ];
    for (path, mime, body) in cases {
        let x = b.alice(path, mime, body);
        assert_eq!(x.resp.status, 400, "{body}");
        assert!(
            x.resp
                .header("content-type")
                .is_some_and(|c| c.starts_with("text/plain"))
        );
        assert!(x.resp.body.len() < 300, "short: {:?}", x.resp.body);
        assert!(x.events.is_empty());
        assert_eq!(x.rspauth(), RspauthStatus::Verified);
    }
    assert!(!is_registered(&b.store.inner, ALICE, OPEN));
    assert_eq!(b.failures(), 0);
}
