//! A tiny KMS on loopback for the client tests: hyper's HTTP/1.1 server on its own thread,
//! answering the Annex D requests with documents of the library (`messages`,
//! `transport::protect`) and real key material issued from the RFC 6507 KSAK and the RFC 6508
//! z; a [`Fault`] makes it answer the way an attacker or a broken KMS would.
#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use mbms_keys::crypto::Seeded;
use mbms_keys::ibe::{Ksak, Rsk, SakkeMaster, uid_format2};
use mbms_keys::kms::client::key_period_no;
use mbms_keys::kms::messages::{
    ErrorInfo, KeyContent, KmsCertificate, KmsKeySet, KmsMessage, KmsRequest, KmsResponse, NewKeys,
    Role, xml_datetime,
};
use mbms_keys::kms::routes::{self, Route};
use mbms_keys::kms::transport::{self, Mode, TransportKeys};
use mbms_keys::kms::{KeyId, Secret};

pub const USER: &str = "sip:alice@example.org";
pub const KMS_URI: &str = "kms.example.org";
pub const PERIOD: u64 = 2_592_000;
pub const OFFSET: u64 = 0;
pub const TOKEN: &str = "eyJ0ZXN0IjoidG9rZW4ifQ.e30.c2lnbmF0dXJl";

/// How the test KMS misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// None: a correct KMS.
    None,
    /// One character of the SignatureValue changed.
    TamperSignature,
    /// The SSK EncryptedKeys of two key sets swapped in transit (after signing).
    SwapEncryptedKeyInTransit,
    /// The KMS signs key sets whose SSKs were swapped (a signature that holds over wrong keys).
    SwapSskSigned,
    /// The keys are encrypted for another TrK-ID record with the same TrK octets.
    OtherTrkId,
    /// The keys are bound to another InK-ID.
    OtherInkId,
    /// The RSK is the one of another identity (a point on the curve, wrong pairing).
    InvalidRsk,
    /// The PVT is the one of another issuance (on the curve, wrong equation).
    InvalidPvt,
    /// A well-formed document that the schema does not allow.
    SchemaInvalid,
    /// A body of 300 KiB.
    Oversized,
    /// This HTTP status instead of an answer.
    Status(u16),
    /// A key set one period further than the window.
    FarPeriod,
    /// A KmsError, signed.
    KmsError,
    /// The key set's UserID is the UID of another user (its keys are the user's own).
    WrongUid,
    /// The response and its key set are for another user.
    OtherUser,
}

/// What the test KMS received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub authorization: Option<String>,
    pub body: String,
}

pub struct TestKms {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl TestKms {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn vectors() -> &'static Value {
    static V: OnceLock<Value> = OnceLock::new();
    V.get_or_init(|| {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proto-vectors/eccsi-sakke-rfc.json"
        ))
        .unwrap();
        serde_json::from_str(&text).unwrap()
    })
}

fn vector_hex(scheme: &str, name: &str) -> Vec<u8> {
    hex::decode(vectors()[scheme][name].as_str().unwrap()).unwrap()
}

/// The KMS master secrets: the KSAK of RFC 6507 Appendix A and the z of RFC 6508 Appendix A.
pub fn ksak() -> Ksak {
    Ksak::from_slice(&vector_hex("ECCSI_RFC6507", "KSAK")).unwrap()
}

pub fn master() -> SakkeMaster {
    SakkeMaster::from_slice(&vector_hex("SAKKE_RFC6508", "z")).unwrap()
}

pub fn kpak() -> Vec<u8> {
    vector_hex("ECCSI_RFC6507", "KPAK")
}

pub fn z() -> Vec<u8> {
    vector_hex("SAKKE_RFC6508", "Z")
}

pub fn certificate() -> KmsCertificate {
    KmsCertificate {
        version: Some("1.1.0".into()),
        role: Some(Role::Root),
        kms_uri: KMS_URI.into(),
        user_id_format: "2".into(),
        user_key_period: PERIOD,
        user_key_offset: OFFSET,
        pub_enc_key: z(),
        pub_auth_key: kpak(),
        parameter_set: Some(1),
        ..KmsCertificate::default()
    }
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn current_period() -> u64 {
    key_period_no(now(), PERIOD, OFFSET).unwrap()
}

pub fn uid(user: &str, period_no: u64) -> [u8; 32] {
    uid_format2(user, KMS_URI, PERIOD, OFFSET, period_no).unwrap()
}

/// Key material issued for one UID: SSK, PVT, RSK (cached: an RSK costs a second in a debug
/// build).
#[derive(Clone)]
pub struct Issued {
    pub ssk: Vec<u8>,
    pub pvt: Vec<u8>,
    pub rsk: Vec<u8>,
}

pub fn issue(uid: &[u8; 32]) -> Issued {
    static CACHE: OnceLock<Mutex<HashMap<[u8; 32], Issued>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    if let Some(i) = cache.lock().unwrap().get(uid) {
        return i.clone();
    }
    let seed = u64::from_be_bytes(uid[..8].try_into().unwrap());
    let pair = ksak().issue(uid, &mut Seeded::new(seed)).unwrap();
    let rsk: Rsk = master().issue_rsk(uid).unwrap();
    let i = Issued {
        ssk: pair.ssk.as_bytes().to_vec(),
        pvt: pair.pvt.to_vec(),
        rsk: rsk.as_bytes().to_vec(),
    };
    cache.lock().unwrap().insert(*uid, i.clone());
    i
}

pub fn transport_keys(mode: Mode, ink: bool) -> TransportKeys {
    TransportKeys {
        trk_id: KeyId(0x1122_3344),
        trk: Secret::new((0u8..32).collect()),
        ink: ink.then(|| (KeyId(0x5566_7788), Secret::new((100u8..132).collect()))),
        mode,
    }
}

fn secret(b: &[u8]) -> KeyContent {
    KeyContent::Plain(Secret::new(b.to_vec()))
}

fn key_set(user: &str, period_no: u64, fault: Fault) -> KmsKeySet {
    let uid = uid(user, period_no);
    let i = issue(&uid);
    let rsk = match fault {
        Fault::InvalidRsk => issue(&self::uid("sip:mallory@example.org", period_no)).rsk,
        _ => i.rsk,
    };
    let pvt = match fault {
        Fault::InvalidPvt => issue(&self::uid("sip:mallory@example.org", period_no)).pvt,
        _ => i.pvt,
    };
    let user_id = match fault {
        Fault::WrongUid => self::uid("sip:mallory@example.org", period_no).to_vec(),
        _ => uid.to_vec(),
    };
    KmsKeySet {
        kms_uri: KMS_URI.into(),
        cert_uri: None,
        issuer: None,
        user_uri: user.into(),
        user_id,
        valid_from: None,
        valid_to: None,
        key_period_no: period_no,
        revoked: Some(false),
        rsk: secret(&rsk),
        ssk: secret(&i.ssk),
        pvt: secret(&pvt),
    }
}

fn response(req: &KmsRequest, url: &str, message: Option<KmsMessage>) -> KmsResponse {
    KmsResponse {
        id: Some("resp".into()),
        user_uri: req.user_uri.clone(),
        kms_uri: KMS_URI.into(),
        time: xml_datetime(now()),
        kms_id: None,
        client_req_url: url.into(),
        message,
        error: None,
    }
}

fn encrypted_key_spans(doc: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(s) = doc[from..].find("<xenc:EncryptedKey") {
        let start = from + s;
        let end = start
            + doc[start..].find("</xenc:EncryptedKey>").unwrap()
            + "</xenc:EncryptedKey>".len();
        spans.push((start, end));
        from = end;
    }
    spans
}

/// The document the test KMS answers `route` with (200), or a status.
fn answer(
    route: &Route,
    req: &KmsRequest,
    record: &TransportKeys,
    fault: Fault,
) -> Result<String, u16> {
    if let Fault::Status(s) = fault {
        return Err(s);
    }
    match fault {
        Fault::Oversized => return Ok(" ".repeat(300 * 1024)),
        Fault::SchemaInvalid => {
            return Ok(format!(
                "<?xml version=\"1.0\"?><SignedKmsResponse xmlns=\"{}\" Id=\"SignedKmsResponse\">\
                 <KmsResponse Version=\"1.0.0\"><Unexpected/></KmsResponse></SignedKmsResponse>",
                mbms_keys::kms::NAMESPACE
            ));
        }
        _ => {}
    }
    let url = req.client_req_url.clone();
    let message = match route {
        Route::Init => KmsMessage::Init {
            certificate: Box::new(certificate()),
            new_keys: NewKeys::default(),
        },
        Route::CertCache => KmsMessage::CertCache {
            cache_num: Some(1),
            certificates: vec![certificate(), {
                let mut c = certificate();
                c.role = Some(Role::External);
                c.kms_uri = "kms.partner.example".into();
                c
            }],
        },
        Route::KeyProv { user, time } => {
            let user = user.as_deref().unwrap_or(&req.user_uri);
            // A dated request: the test asks for the next period.
            let mut period = current_period() + u64::from(time.is_some());
            if fault == Fault::FarPeriod {
                period += 2;
            }
            let mut sets = vec![key_set(user, period, fault)];
            if matches!(
                fault,
                Fault::SwapSskSigned | Fault::SwapEncryptedKeyInTransit
            ) {
                sets.push(key_set(user, period + 1, Fault::None));
            }
            if fault == Fault::SwapSskSigned {
                let (a, b) = sets.split_at_mut(1);
                std::mem::swap(&mut a[0].ssk, &mut b[0].ssk);
            }
            KmsMessage::KeyProv {
                key_sets: sets,
                new_keys: NewKeys::default(),
            }
        }
    };
    let mut r = response(req, &url, Some(message));
    if fault == Fault::OtherUser {
        r.user_uri = "sip:mallory@example.org".into();
    }
    if fault == Fault::KmsError {
        r.message = None;
        r.error = Some(ErrorInfo {
            code: 404,
            message: "no such user".into(),
        });
    }
    let mut keys = record.clone();
    match fault {
        Fault::OtherTrkId => keys.trk_id = KeyId(record.trk_id.0 ^ 1),
        Fault::OtherInkId => {
            if let Some((id, _)) = &mut keys.ink {
                id.0 ^= 1;
            }
        }
        _ => {}
    }
    let doc = transport::protect(&r, &keys, &mut Seeded::new(5)).unwrap();
    Ok(match fault {
        Fault::TamperSignature => {
            let start = doc.find("<ds:SignatureValue>").unwrap() + "<ds:SignatureValue>".len();
            let mut bytes = doc.into_bytes();
            bytes[start] = if bytes[start] == b'A' { b'B' } else { b'A' };
            String::from_utf8(bytes).unwrap()
        }
        Fault::SwapEncryptedKeyInTransit => {
            let spans = encrypted_key_spans(&doc);
            let (a, b) = (spans[1], spans[4]);
            format!(
                "{}{}{}{}{}",
                &doc[..a.0],
                &doc[b.0..b.1],
                &doc[a.1..b.0],
                &doc[a.0..a.1],
                &doc[b.1..]
            )
        }
        _ => doc,
    })
}

async fn handle(
    req: Request<Incoming>,
    record: TransportKeys,
    fault: Fault,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let method = req.method().as_str().to_owned();
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = req.into_body().collect().await.unwrap().to_bytes();
    seen.lock().unwrap().push(Seen {
        path: path.clone(),
        authorization: authorization.clone(),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let status = |s: u16| {
        Response::builder()
            .status(s)
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let route = match routes::route(&method, &path) {
        Ok(r) => r,
        Err(e) => return status(e.status()),
    };
    if authorization.as_deref() != Some(&format!("Bearer {TOKEN}")) {
        return status(401);
    }
    let Ok(kms_req) = KmsRequest::parse(&body) else {
        return status(400);
    };
    if kms_req.trk_id != Some(record.trk_id) {
        return status(400);
    }
    match answer(&route, &kms_req, &record, fault) {
        Ok(doc) => Response::builder()
            .header("content-type", "application/xml")
            .body(Full::new(Bytes::from(doc)))
            .unwrap(),
        Err(s) => status(s),
    }
}

/// Starts a test KMS for the client record `record` (its TrK/InK and mode) on loopback.
pub fn start(record: TransportKeys, fault: Fault) -> TestKms {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let s = seen.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            while let Ok((stream, _)) = listener.accept().await {
                let (record, s) = (record.clone(), s.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let (record, s) = (record.clone(), s.clone());
                        async move { Ok::<_, Infallible>(handle(req, record, fault, s).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    TestKms { addr, seen }
}
