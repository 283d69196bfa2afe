//! What a case sends, and how: raw octets, a request signed on a fresh nonce and then
//! altered, or a procedure of its own (timeouts, sizes, replay, connection limit).

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::sleep;

use mbms_keys::bmsc::events::KeyRequestEvent;
use mbms_keys::mbms::digest::{Authorization, Challenge, ClientSession, Credentials};
use mbms_keys::mbms::keyreq::{MIME_REGISTER, PATH_MSK, PATH_REGISTER};

use crate::harness::{IO_LIMIT, LOCALHOST, Server, ids, register_body};
use crate::lab::{ALICE, OPEN, credentials};
use crate::raw::{
    Raw, authed, closed_within, post, raw, raw_or_closed, read_response, request_bytes, session,
    try_read_response,
};
use crate::{MAX_CONNECTIONS, NONCE_LIFETIME, REQUEST_TIMEOUT};

/// What a case sends.
pub enum Input {
    /// Octets on a fresh connection, without credentials.
    Raw(Vec<u8>),
    /// A POST signed on a fresh nonce, then altered.
    Signed(Signed),
    /// A procedure of its own.
    Script(Script),
}

/// A POST answering a fresh challenge, as [`Alter`] changes it.
pub struct Signed {
    pub path: &'static str,
    pub content_type: Option<&'static str>,
    pub body: Vec<u8>,
    pub creds: Credentials,
    pub alter: Alter,
}

/// POST `body` to `path` signed by Alice (`qop=auth-int`, so over the body too).
pub fn signed(path: &'static str, content_type: Option<&'static str>, body: &[u8]) -> Signed {
    Signed {
        path,
        content_type,
        body: body.to_vec(),
        creds: credentials(ALICE, 0x10),
        alter: Alter::None,
    }
}

impl Signed {
    /// Signed with other credentials.
    pub fn by(mut self, creds: Credentials) -> Input {
        self.creds = creds;
        Input::Signed(self)
    }

    /// Altered by `alter`.
    pub fn alter(mut self, alter: Alter) -> Input {
        self.alter = alter;
        Input::Signed(self)
    }

    /// As is.
    pub fn input(self) -> Input {
        Input::Signed(self)
    }
}

/// How a signed request departs from a valid one.
pub enum Alter {
    None,
    /// The challenge is edited before it is answered.
    Challenge(Edit),
    /// The `Authorization` value is edited after signing.
    Header(Edit),
    /// Signed for this `uri`, sent to the case's path.
    SignFor(&'static str),
    /// Another body is sent than the one signed.
    Body(Vec<u8>),
    /// Answered only once the nonce lifetime is over.
    Late,
}

/// An edit of a Digest header value (`Digest a="x", b=y, …`; none of our values holds
/// `", "`, so the list splits there).
pub enum Edit {
    /// Removes a parameter.
    Drop(&'static str),
    /// Sets a parameter to a value written as given (quotes included).
    Set(&'static str, String),
    /// Repeats a parameter with the same value.
    Repeat(&'static str),
    /// Replaces the whole value.
    Whole(String),
}

impl Edit {
    pub fn apply(&self, value: &str) -> String {
        let list = value.strip_prefix("Digest ").expect("a Digest header");
        let mut params: Vec<(String, String)> = list
            .split(", ")
            .map(|p| {
                let (n, v) = p.split_once('=').expect("name=value");
                (n.to_owned(), v.to_owned())
            })
            .collect();
        let at = |params: &[(String, String)], name: &str| {
            params
                .iter()
                .position(|(n, _)| n == name)
                .unwrap_or_else(|| panic!("{name} in {value}"))
        };
        match self {
            Self::Drop(name) => {
                params.remove(at(&params, name));
            }
            Self::Set(name, v) => {
                let i = at(&params, name);
                params[i].1 = v.clone();
            }
            Self::Repeat(name) => {
                let p = params[at(&params, name)].clone();
                params.push(p);
            }
            Self::Whole(v) => return v.clone(),
        }
        let list: Vec<String> = params.iter().map(|(n, v)| format!("{n}={v}")).collect();
        format!("Digest {}", list.join(", "))
    }
}

/// Procedures that need more than one request, a connection held open, or time.
pub enum Script {
    /// A valid request, answered 200, then sent again as is.
    Replay,
    /// A request header dripped in a byte at a time; a valid request is served meanwhile.
    SlowHeader,
    /// A whole header, then a body that never completes.
    SlowBody,
    /// A body shorter than its `Content-Length`, then the client closes its side.
    ShortBody,
    /// `Content-Length` over `max_body`, 1 KiB of it sent.
    OverDeclared,
    /// A chunked body that crosses `max_body`.
    OverChunked,
    /// `Expect: 100-continue` with `Content-Length` over `max_body`.
    ExpectContinue,
    /// One connection beyond `max_connections`.
    ConnectionLimit,
}

/// What came back.
pub struct Observed {
    /// The response; `None` when the connection closed without one.
    pub resp: Option<Raw>,
    /// The `Authorization` sent and its credentials, to check `rspauth`.
    pub signed: Option<(Authorization, Credentials)>,
}

impl Observed {
    fn unsigned(resp: Option<Raw>) -> Self {
        Self { resp, signed: None }
    }
}

/// Sends `input` to `s`.
pub async fn send(s: &mut Server, input: &Input) -> Observed {
    match input {
        Input::Raw(bytes) => Observed::unsigned(raw_or_closed(s.addr, bytes).await),
        Input::Signed(x) => send_signed(s, x).await,
        Input::Script(script) => run(s, script).await,
    }
}

async fn send_signed(s: &Server, x: &Signed) -> Observed {
    let first = post(s.addr, x.path, &[], b"").await;
    let mut value = first
        .header("www-authenticate")
        .expect("a challenge")
        .to_owned();
    if let Alter::Challenge(edit) = &x.alter {
        value = edit.apply(&value);
    }
    let mut session = ClientSession::new(Challenge::parse(&value).expect("challenge parses"));
    if let Alter::Late = x.alter {
        sleep(NONCE_LIFETIME + Duration::from_millis(50)).await;
    }
    let uri = match x.alter {
        Alter::SignFor(uri) => uri,
        _ => x.path,
    };
    let auth = session
        .authorize(&x.creds, "POST", uri, &x.body)
        .expect("authorize");
    let mut header = auth.header_value().to_owned();
    if let Alter::Header(edit) = &x.alter {
        header = edit.apply(&header);
    }
    let body = match &x.alter {
        Alter::Body(other) => other,
        _ => &x.body,
    };
    let mut headers = vec![("authorization", header.as_str())];
    if let Some(ct) = x.content_type {
        headers.push(("content-type", ct));
    }
    let resp = post(s.addr, x.path, &headers, body).await;
    Observed {
        resp: Some(resp),
        signed: Some((auth, x.creds.clone())),
    }
}

/// A request head declaring `content-length: len`, with `headers`.
fn head_declaring(headers: &[(&str, &str)], len: usize) -> Vec<u8> {
    let mut head = request_bytes("POST", PATH_REGISTER, headers, b"");
    head.truncate(head.len() - b"content-length: 0\r\n\r\n".len());
    head.extend_from_slice(format!("content-length: {len}\r\n\r\n").as_bytes());
    head
}

const CT_REGISTER: (&str, &str) = ("content-type", MIME_REGISTER);

async fn run(s: &mut Server, script: &Script) -> Observed {
    let a = s.addr;
    match script {
        Script::Replay => {
            let alice = credentials(ALICE, 0x10);
            let body = register_body(&[OPEN]);
            let mut sess = session(a, PATH_REGISTER).await;
            let (first, auth) = authed(
                a,
                &mut sess,
                &alice,
                PATH_REGISTER,
                MIME_REGISTER,
                body.as_bytes(),
            )
            .await;
            assert_eq!(first.status, 200, "the original is accepted");
            assert_eq!(
                s.next_event().await,
                KeyRequestEvent::Registered {
                    btid: ALICE.parse().expect("btid"),
                    ue_addr: LOCALHOST,
                    service_ids: ids(&[OPEN]),
                }
            );
            let again = request_bytes(
                "POST",
                PATH_REGISTER,
                &[CT_REGISTER, ("authorization", auth.header_value())],
                body.as_bytes(),
            );
            Observed {
                resp: Some(raw(a, &again).await),
                signed: Some((auth, alice)),
            }
        }
        Script::SlowHeader => {
            let t = Instant::now();
            let mut slow = TcpStream::connect(a).await.expect("connect");
            slow.write_all(b"POST /keymanagement/register HTTP/1.1\r\nhost: x\r\n")
                .await
                .expect("write");
            let dripper = tokio::spawn(async move {
                for _ in 0..20 {
                    sleep(Duration::from_millis(200)).await;
                    if slow.write_all(b"x").await.is_err() {
                        break;
                    }
                }
                slow
            });
            let quick = Instant::now();
            assert_eq!(post(a, PATH_MSK, &[], b"").await.status, 401);
            assert!(
                quick.elapsed() < Duration::from_millis(500),
                "served alongside"
            );
            let mut slow = dripper.await.expect("dripper");
            let resp = try_read_response(&mut slow).await;
            assert!(
                t.elapsed() >= REQUEST_TIMEOUT - Duration::from_millis(100)
                    && t.elapsed() < Duration::from_secs(4),
                "cut by the header timeout: {:?}",
                t.elapsed()
            );
            Observed::unsigned(resp)
        }
        Script::SlowBody => {
            let t = Instant::now();
            let mut conn = TcpStream::connect(a).await.expect("connect");
            let mut head = head_declaring(&[CT_REGISTER], 100);
            head.extend_from_slice(b"<mbms");
            conn.write_all(&head).await.expect("write");
            let resp = read_response(&mut conn).await;
            assert!(
                t.elapsed() >= REQUEST_TIMEOUT - Duration::from_millis(100)
                    && t.elapsed() < Duration::from_secs(3),
                "answered at the request timeout: {:?}",
                t.elapsed()
            );
            assert!(closed_within(&mut conn, Duration::from_secs(2)).await);
            Observed::unsigned(Some(resp))
        }
        Script::ShortBody => {
            let mut conn = TcpStream::connect(a).await.expect("connect");
            let mut head = head_declaring(&[CT_REGISTER], 100);
            head.extend_from_slice(b"<mbms");
            conn.write_all(&head).await.expect("write");
            conn.shutdown().await.expect("half-close");
            let resp = read_response(&mut conn).await;
            assert!(closed_within(&mut conn, Duration::from_secs(2)).await);
            Observed::unsigned(Some(resp))
        }
        Script::OverDeclared => {
            let t = Instant::now();
            let mut conn = TcpStream::connect(a).await.expect("connect");
            let mut head = head_declaring(&[CT_REGISTER], 100 * 1024);
            head.extend_from_slice(&[b'<'; 1024]);
            conn.write_all(&head).await.expect("write");
            let resp = read_response(&mut conn).await;
            assert!(
                t.elapsed() < Duration::from_millis(900),
                "before the request timeout"
            );
            assert!(closed_within(&mut conn, Duration::from_secs(2)).await);
            Observed::unsigned(Some(resp))
        }
        Script::OverChunked => {
            let mut conn = TcpStream::connect(a).await.expect("connect");
            let mut req = request_bytes(
                "POST",
                PATH_REGISTER,
                &[CT_REGISTER, ("transfer-encoding", "chunked")],
                b"",
            );
            for _ in 0..6 {
                req.extend_from_slice(b"400\r\n");
                req.extend_from_slice(&[b'a'; 0x400]);
                req.extend_from_slice(b"\r\n");
            }
            conn.write_all(&req).await.expect("write");
            Observed::unsigned(Some(read_response(&mut conn).await))
        }
        Script::ExpectContinue => {
            let mut conn = TcpStream::connect(a).await.expect("connect");
            let head = head_declaring(&[CT_REGISTER, ("expect", "100-continue")], 100 * 1024);
            conn.write_all(&head).await.expect("write");
            Observed::unsigned(Some(read_response(&mut conn).await))
        }
        Script::ConnectionLimit => {
            let mut held = Vec::new();
            for _ in 0..MAX_CONNECTIONS {
                held.push(TcpStream::connect(a).await.expect("connect"));
            }
            let t = Instant::now();
            let resp = post(a, PATH_MSK, &[], b"").await;
            assert!(t.elapsed() < Duration::from_millis(900), "refused at once");
            assert_eq!(resp.header("retry-after"), Some("1"));
            // Each held connection asks to be closed: the server frees its slot as it closes
            // it, so the slots are free once every close is seen.
            let bye = request_bytes("POST", PATH_MSK, &[("connection", "close")], b"");
            for mut conn in held {
                let _ = conn.write_all(&bye).await;
                let r = try_read_response(&mut conn).await;
                // 503 for one a slot of the case before had still held.
                assert!(r.is_some_and(|r| matches!(r.status, 401 | 503)));
                assert!(closed_within(&mut conn, IO_LIMIT).await);
            }
            Observed::unsigned(Some(resp))
        }
    }
}
