//! A small verifying Digest server for the client tests. It does NOT use `mbms::digest`: the
//! RFC 7616 formulas are written out here, with H() from `sha2` (SHA-256) and the
//! `digest_auth` crate's bare hash function (MD5).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use sha2::Digest as _;
use tokio::net::TcpListener;

/// H(data) as lower-case hex for `MD5` or `SHA-256`.
pub fn h(alg: &str, data: &[u8]) -> String {
    match alg {
        "SHA-256" => hex::encode(sha2::Sha256::digest(data)),
        "MD5" => digest_auth::Algorithm::new(digest_auth::AlgorithmType::MD5, false).hash(data),
        other => panic!("algorithm {other}"),
    }
}

/// Splits `k=v, k="v"` (values in these tests hold no commas or quotes).
pub fn params(s: &str) -> HashMap<String, String> {
    s.split(',')
        .filter_map(|p| p.trim().split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
        .collect()
}

/// What the server does with the response `rspauth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rsp {
    Good,
    Missing,
    Wrong,
}

#[derive(Debug, Clone)]
pub struct Conf {
    pub alg: &'static str,
    pub qop: &'static str,
    pub realm: String,
    pub password: String,
    /// Answer the first correct Authorization with 401 stale=true.
    pub stale_once: bool,
    pub rsp: Rsp,
}

/// One request as the server saw it, with its verdict.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub content_type: String,
    pub user_agent: String,
    pub authorization: Option<HashMap<String, String>>,
    pub body: Vec<u8>,
    pub status: u16,
}

pub struct Server {
    pub conf: Conf,
    pub seen: Mutex<Vec<Seen>>,
    next_nonce: AtomicU32,
    stale_sent: AtomicBool,
    /// Highest nc seen per nonce: a repeat is a replay.
    nc: Mutex<HashMap<String, u32>>,
}

pub const REGISTER_RESPONSE: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
    <mbmsRegisterResponse xmlns=\"urn:mbms-keys:keymanagement:1\">\n  \
    <status serviceId=\"urn:example:mbms:news\" code=\"200\"/>\n  \
    <status serviceId=\"urn:example:mbms:sport\" code=\"404\"/>\n\
    </mbmsRegisterResponse>\n";

pub const MSK_RESPONSE: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
    <mbmsMskResponse xmlns=\"urn:mbms-keys:keymanagement:1\">\n  \
    <status keyDomainId=\"00f110\" mskId=\"00010000\" code=\"200\"/>\n\
    </mbmsMskResponse>\n";

impl Server {
    /// Serves on a free loopback port until the test ends; returns the base URL.
    pub async fn start(conf: Conf) -> (String, Arc<Self>) {
        let server = Arc::new(Self {
            conf,
            seen: Mutex::new(Vec::new()),
            next_nonce: AtomicU32::new(1),
            stale_sent: AtomicBool::new(false),
            nc: Mutex::new(HashMap::new()),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let s = Arc::clone(&server);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let s = Arc::clone(&s);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let s = Arc::clone(&s);
                        async move { Ok::<_, hyper::Error>(s.handle(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        (format!("http://{addr}"), server)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    fn challenge(&self, stale: bool) -> String {
        let n = self.next_nonce.fetch_add(1, Ordering::SeqCst);
        format!(
            "Digest realm=\"{}\", nonce=\"nonce-{n}\", qop=\"{}\", algorithm={}, opaque=\"op-1\"{}",
            self.conf.realm,
            self.conf.qop,
            self.conf.alg,
            if stale { ", stale=true" } else { "" }
        )
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let header = |n: &str| {
            req.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let path = req.uri().path().to_owned();
        let content_type = header("content-type");
        let user_agent = header("user-agent");
        let authorization = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(|a| params(a.strip_prefix("Digest ").expect("Digest scheme")));
        let body = req
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        let resp = self.decide(&path, authorization.as_ref(), &body);
        self.seen.lock().expect("lock").push(Seen {
            path,
            content_type,
            user_agent,
            authorization,
            body,
            status: resp.status().as_u16(),
        });
        resp
    }

    fn unauthorized(&self, stale: bool) -> Response<Full<Bytes>> {
        Response::builder()
            .status(401)
            .header("www-authenticate", self.challenge(stale))
            .body(Full::new(Bytes::new()))
            .expect("response")
    }

    /// RFC 7616 §3.4.1 / §3.5, written out.
    fn decide(
        &self,
        path: &str,
        auth: Option<&HashMap<String, String>>,
        body: &[u8],
    ) -> Response<Full<Bytes>> {
        let c = &self.conf;
        let Some(p) = auth else {
            return self.unauthorized(false);
        };
        let get = |k: &str| p.get(k).map(String::as_str).unwrap_or_default();
        assert_eq!(get("realm"), c.realm);
        assert_eq!(get("uri"), path, "Digest uri is the request target");
        assert_eq!(get("qop"), c.qop);
        assert_eq!(get("algorithm"), c.alg);
        assert_eq!(get("opaque"), "op-1");
        let nonce = get("nonce");
        let nc_hex = get("nc");
        let cnonce = get("cnonce");
        let ha1 = h(
            c.alg,
            format!("{}:{}:{}", get("username"), c.realm, c.password).as_bytes(),
        );
        let ha2 = if c.qop == "auth-int" {
            h(c.alg, format!("POST:{path}:{}", h(c.alg, body)).as_bytes())
        } else {
            h(c.alg, format!("POST:{path}").as_bytes())
        };
        let expected = h(
            c.alg,
            format!("{ha1}:{nonce}:{nc_hex}:{cnonce}:{}:{ha2}", c.qop).as_bytes(),
        );
        if expected != get("response") {
            return self.unauthorized(false);
        }
        let nc = u32::from_str_radix(nc_hex, 16).expect("nc hex");
        {
            let mut seen = self.nc.lock().expect("lock");
            let last = seen.entry(nonce.to_owned()).or_insert(0);
            assert!(nc > *last, "nc {nc} replayed for {nonce}");
            *last = nc;
        }
        if c.stale_once && !self.stale_sent.swap(true, Ordering::SeqCst) {
            return self.unauthorized(true);
        }
        let (ct, out) = match path {
            "/keymanagement/msk" => ("application/mbms-msk-response+xml", MSK_RESPONSE),
            _ => ("application/mbms-register-response+xml", REGISTER_RESPONSE),
        };
        let a2 = if c.qop == "auth-int" {
            format!(":{path}:{}", h(c.alg, out.as_bytes()))
        } else {
            format!(":{path}")
        };
        let mut rspauth = h(
            c.alg,
            format!(
                "{ha1}:{nonce}:{nc_hex}:{cnonce}:{}:{}",
                c.qop,
                h(c.alg, a2.as_bytes())
            )
            .as_bytes(),
        );
        let mut b = Response::builder().status(200).header("content-type", ct);
        match c.rsp {
            Rsp::Missing => {}
            Rsp::Wrong | Rsp::Good => {
                if c.rsp == Rsp::Wrong {
                    rspauth = h(c.alg, b"not the rspauth");
                }
                b = b.header(
                    "authentication-info",
                    format!(
                        "rspauth=\"{rspauth}\", qop={}, nc={nc_hex}, cnonce=\"{cnonce}\"",
                        c.qop
                    ),
                );
            }
        }
        b.body(Full::new(Bytes::from_static(out.as_bytes())))
            .expect("response")
    }
}
