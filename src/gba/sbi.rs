//! The 5G service-based interface client shared by the Nbsp_GBA ([`super::nbsp`]) and
//! Naanf_AKMA ([`super::aanf`]) key sources: one JSON `POST` over HTTP/2 with prior knowledge
//! (TS 29.500 §5.2) or HTTP/1.1, an optional OAuth2 bearer token read from a file, a request
//! timeout, a bound on the answer's size, `ProblemDetails` (TS 29.571) on errors.
//!
//! [`KeySource`](super::KeySource) is synchronous and is called from the blocking pool: the
//! request runs as a task on the runtime of the [`Handle`] given at construction, and the
//! calling thread waits for its result on a channel with a deadline. So a lookup never blocks
//! longer than the request timeout and never panics, whatever thread calls it (called on a
//! runtime thread of a current-thread runtime it cannot make progress and ends as
//! [`KeySourceError::Unavailable`] at the deadline: see docs/key-sources-5g.md §4).

use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use super::KeySourceError;
use crate::telemetry::{Counter, Histogram};

/// The largest answer body read (a 200 answer is a few hundred octets; a `ProblemDetails` a few
/// kilo-octets).
pub const MAX_ANSWER: usize = 64 * 1024;

/// The largest token file read.
pub const MAX_TOKEN: u64 = 16 * 1024;

/// Requests in flight at once per client; one more is refused as unavailable at once.
pub const MAX_IN_FLIGHT: usize = 256;

/// Which HTTP version the client speaks.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpVersion {
    /// HTTP/2 with prior knowledge over TCP (h2c), as TS 29.500 §5.2 asks of SBA peers.
    #[default]
    Http2,
    /// HTTP/1.1, for peers or proxies without HTTP/2.
    Http1,
}

/// Settings of one service-based client (`[gba.nbsp]`, `[gba.aanf]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SbiSettings {
    /// `{apiRoot}` (TS 29.501 §4.4.1): `http://host[:port][/prefix]`, without the API name.
    pub api_root: Uri,
    /// A file holding the OAuth2 access token sent as `Authorization: Bearer`; none sends no
    /// token (the APIs allow `{}` as a security requirement).
    pub token_file: Option<PathBuf>,
    /// The time one request may take, connection set-up included.
    pub request_timeout: Duration,
    /// HTTP/2 (default) or HTTP/1.1.
    pub http_version: HttpVersion,
}

/// Checks an `{apiRoot}`: an absolute `http` URI with a host, no query.
///
/// # Errors
/// A description of the problem. `https` is refused: no TLS client is built in (TLS towards the
/// BSF or AAnF is a later addition, or a local proxy).
pub fn parse_api_root(text: &str) -> Result<Uri, String> {
    let uri: Uri = text
        .parse()
        .map_err(|e| format!("must be a URI such as \"http://bsf.example:8080\": {e}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err("https is not supported: use http (h2c) or a local TLS proxy".into());
        }
        _ => return Err(format!("must start with http://, got {text:?}")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("has no host: {text:?}"));
    }
    if uri.query().is_some() {
        return Err(format!("must not have a query: {text:?}"));
    }
    Ok(uri)
}

/// An answer of the peer, before the service maps it.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    /// The body, wiped on drop (it may hold key material).
    pub(crate) body: Zeroizing<Vec<u8>>,
}

impl Answer {
    /// The `ProblemDetails` of an error answer, if the body is one (TS 29.571 §5.2.4.1).
    pub(crate) fn problem(&self) -> Option<ProblemDetails> {
        serde_json::from_slice(&self.body).ok()
    }

    /// A short text for logs and errors: the status, and the problem's cause and title if any.
    /// Never key material: error answers carry none, and success bodies are not quoted.
    pub(crate) fn describe(&self) -> String {
        match self.problem() {
            Some(p) => format!(
                "HTTP {} (cause {}, {})",
                self.status.as_u16(),
                p.cause.as_deref().unwrap_or("-"),
                p.title.as_deref().unwrap_or("-")
            ),
            None => format!("HTTP {}", self.status.as_u16()),
        }
    }
}

/// The fields of a TS 29.571 `ProblemDetails` the clients use (others are ignored).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub(crate) struct ProblemDetails {
    pub(crate) title: Option<String>,
    pub(crate) status: Option<u16>,
    pub(crate) cause: Option<String>,
}

/// The OAuth2 token file, read again when its modification time or length changes.
struct TokenFile {
    path: PathBuf,
    cached: Mutex<Option<(SystemTime, u64, HeaderValue)>>,
}

impl TokenFile {
    fn header(&self) -> Result<HeaderValue, String> {
        let meta = std::fs::metadata(&self.path).map_err(|e| format!("token file: {e}"))?;
        let stamp = meta.modified().map_err(|e| format!("token file: {e}"))?;
        let mut cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((t, len, value)) = cached.as_ref()
            && *t == stamp
            && *len == meta.len()
        {
            return Ok(value.clone());
        }
        let value = read_token(&self.path)?;
        *cached = Some((stamp, meta.len(), value.clone()));
        Ok(value)
    }
}

/// `Bearer <token>` from the first line of `path` (RFC 6750 §2.1: b64token characters).
fn read_token(path: &Path) -> Result<HeaderValue, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("token file: {e}"))?;
    let mut text = Zeroizing::new(String::new());
    file.take(MAX_TOKEN + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("token file: {e}"))?;
    if text.len() as u64 > MAX_TOKEN {
        return Err(format!("token file: longer than {MAX_TOKEN} octets"));
    }
    let token = text.trim();
    let b64token = |c: char| c.is_ascii_alphanumeric() || "-._~+/=".contains(c);
    if token.is_empty() || !token.chars().all(b64token) {
        return Err("token file: not one RFC 6750 b64token".into());
    }
    let line = Zeroizing::new(format!("Bearer {token}"));
    let mut value =
        HeaderValue::from_str(&line).map_err(|_| "token file: not a header value".to_owned())?;
    value.set_sensitive(true);
    Ok(value)
}

/// Request outcomes counted in `mbms_bmsc_<service>_answers_total{result=...}`: the HTTP status
/// class of an answer, or why there was none.
const OUTCOMES: [&str; 6] = ["2xx", "4xx", "5xx", "other_status", "no_answer", "busy"];

/// The counters of one HTTP key source (Nbsp_GBA or Naanf_AKMA), exposed by the BM-SC's
/// `/metrics` as `mbms_bmsc_<service>_requests_total`, `_answers_total{result=...}` and
/// `_request_seconds`.
#[derive(Debug)]
pub struct SbiMetrics {
    service: &'static str,
    /// Requests started.
    pub requests: Counter,
    answers: [Counter; OUTCOMES.len()],
    /// Time to an answer (answered requests only).
    pub latency: Histogram,
    /// Whether the last request that reached the wire failed (`5xx` or no answer).
    last_failed: std::sync::atomic::AtomicBool,
}

impl SbiMetrics {
    /// Counters for `service` (`nbsp`, `aanf`: the metric name prefix after `mbms_bmsc_`).
    #[must_use]
    pub fn new(service: &'static str) -> Self {
        Self {
            service,
            requests: Counter::default(),
            answers: Default::default(),
            latency: Histogram::default(),
            last_failed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether the peer counts as reachable for the BM-SC's readiness: no request yet, or the
    /// last one got an answer other than `5xx` (`busy` is local and does not count). \[CHOICE\]
    /// (docs/profile.md §6): these sources have no watchdog, the last outcome is the evidence.
    #[must_use]
    pub fn reachable(&self) -> bool {
        !self.last_failed.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn outcome(&self, label: &str) {
        if label != "busy" {
            let failed = matches!(label, "5xx" | "no_answer");
            self.last_failed
                .store(failed, std::sync::atomic::Ordering::Relaxed);
        }
        if let Some(c) = OUTCOMES
            .iter()
            .position(|o| *o == label)
            .and_then(|i| self.answers.get(i))
        {
            c.inc();
        }
    }

    /// Requests counted under `label` (`2xx`, `4xx`, `5xx`, `other_status`, `no_answer`,
    /// `busy`).
    #[must_use]
    pub fn answers(&self, label: &str) -> u64 {
        OUTCOMES
            .iter()
            .position(|o| *o == label)
            .and_then(|i| self.answers.get(i))
            .map_or(0, Counter::get)
    }

    /// Appends the Prometheus text lines.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let p = format!("mbms_bmsc_{}", self.service);
        let _ = writeln!(
            out,
            "# HELP {p}_requests_total Key requests to the {} peer.\n\
             # TYPE {p}_requests_total counter\n{p}_requests_total {}",
            self.service,
            self.requests.get()
        );
        let _ = writeln!(
            out,
            "# HELP {p}_answers_total Outcomes by HTTP status class, or no answer.\n\
             # TYPE {p}_answers_total counter"
        );
        for (label, c) in OUTCOMES.iter().zip(&self.answers) {
            let _ = writeln!(out, "{p}_answers_total{{result=\"{label}\"}} {}", c.get());
        }
        self.latency
            .render(&format!("{p}_request_seconds"), "Time to an answer", out);
    }
}

/// A JSON-over-HTTP client for one service, bridged to synchronous callers.
pub(crate) struct SbiClient {
    client: Client<HttpConnector, Full<Bytes>>,
    api_root: String,
    token: Option<TokenFile>,
    timeout: Duration,
    handle: Handle,
    in_flight: Arc<Semaphore>,
    metrics: Arc<SbiMetrics>,
}

impl fmt::Debug for SbiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SbiClient")
            .field("api_root", &self.api_root)
            .field("token_file", &self.token.as_ref().map(|t| &t.path))
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl SbiClient {
    /// A client whose requests run on `handle`'s runtime.
    pub(crate) fn new(settings: &SbiSettings, handle: Handle, service: &'static str) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(settings.request_timeout));
        let client = {
            let _guard = handle.enter();
            Client::builder(TokioExecutor::new())
                .http2_only(settings.http_version == HttpVersion::Http2)
                .build(connector)
        };
        Self {
            client,
            api_root: settings
                .api_root
                .to_string()
                .trim_end_matches('/')
                .to_owned(),
            token: settings.token_file.as_ref().map(|path| TokenFile {
                path: path.clone(),
                cached: Mutex::new(None),
            }),
            timeout: settings.request_timeout,
            handle,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            metrics: Arc::new(SbiMetrics::new(service)),
        }
    }

    /// The client's counters.
    pub(crate) fn metrics(&self) -> Arc<SbiMetrics> {
        Arc::clone(&self.metrics)
    }

    /// `POST {apiRoot}{path}` with a JSON body, waiting at most the request timeout.
    ///
    /// # Errors
    /// [`KeySourceError::Unavailable`] for everything that is not an answer: too many requests
    /// in flight, an unreadable token file, no connection, a timeout, an oversize body.
    pub(crate) fn post_json(&self, path: &str, body: Vec<u8>) -> Result<Answer, KeySourceError> {
        let unavailable = |why: String| KeySourceError::Unavailable(why);
        self.metrics.requests.inc();
        let Ok(permit) = Arc::clone(&self.in_flight).try_acquire_owned() else {
            self.metrics.outcome("busy");
            return Err(unavailable("too many requests in flight".into()));
        };
        let started = std::time::Instant::now();
        let answer = self.exchange(path, body, permit);
        match &answer {
            Ok(a) => {
                self.metrics.latency.observe(started.elapsed());
                self.metrics.outcome(match a.status.as_u16() {
                    200..=299 => "2xx",
                    400..=499 => "4xx",
                    500..=599 => "5xx",
                    _ => "other_status",
                });
            }
            Err(_) => self.metrics.outcome("no_answer"),
        }
        answer
    }

    fn exchange(
        &self,
        path: &str,
        body: Vec<u8>,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) -> Result<Answer, KeySourceError> {
        let unavailable = |why: String| KeySourceError::Unavailable(why);
        let uri: Uri = format!("{}{path}", self.api_root)
            .parse()
            .map_err(|e| unavailable(format!("request URI: {e}")))?;
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json, application/problem+json");
        if let Some(token) = &self.token {
            req = req.header(AUTHORIZATION, token.header().map_err(unavailable)?);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| unavailable(format!("request: {e}")))?;
        let (client, timeout) = (self.client.clone(), self.timeout);
        let (tx, rx) = mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _permit = permit;
            let exchange = async {
                let resp = client.request(req).await.map_err(|e| {
                    // The source chain names the cause (refused, reset, protocol).
                    let mut text = e.to_string();
                    let mut src = std::error::Error::source(&e);
                    while let Some(s) = src {
                        text.push_str(": ");
                        text.push_str(&s.to_string());
                        src = s.source();
                    }
                    text
                })?;
                let (parts, body) = resp.into_parts();
                let bytes = Limited::new(body, MAX_ANSWER)
                    .collect()
                    .await
                    .map_err(|e| format!("answer body: {e}"))?
                    .to_bytes();
                Ok::<_, String>(Answer {
                    status: parts.status,
                    body: Zeroizing::new(bytes.to_vec()),
                })
            };
            let result = match tokio::time::timeout(timeout, exchange).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {timeout:?}")),
            };
            let _ = tx.send(result);
        });
        // The task ends by its own timeout; the margin covers scheduling only.
        match rx.recv_timeout(timeout + Duration::from_secs(1)) {
            Ok(result) => result.map_err(unavailable),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                Err(unavailable(format!("no answer within {timeout:?}")))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(unavailable("the client's runtime has shut down".into()))
            }
        }
    }
}

/// Parses a 200 body as `T`, mapping garbage to [`KeySourceError::Unavailable`] (the peer is
/// broken; retrying later is the only remedy).
pub(crate) fn parse_body<T: for<'de> Deserialize<'de>>(
    what: &str,
    answer: &Answer,
) -> Result<T, KeySourceError> {
    serde_json::from_slice(&answer.body).map_err(|e| {
        // The kind and place only: serde_json's own message may quote a value of the wrong
        // type, which could be key material.
        KeySourceError::Unavailable(format!(
            "{what}: malformed answer ({:?} error at line {}, column {})",
            e.classify(),
            e.line(),
            e.column()
        ))
    })
}

/// 32 octets from 64 hex digits, straight into a zeroized key type.
pub(crate) fn hex_key<K>(
    field: &str,
    text: &str,
    from_hex: impl FnOnce(&str) -> Result<K, crate::crypto::KeyLengthError>,
) -> Result<K, KeySourceError> {
    from_hex(text)
        .map_err(|_| KeySourceError::Unavailable(format!("{field}: not 64 hex digits (32 octets)")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reachable_follows_the_last_outcome_and_ignores_busy() {
        let m = SbiMetrics::new("nbsp");
        assert!(m.reachable(), "no request yet");
        m.outcome("no_answer");
        assert!(!m.reachable());
        m.outcome("busy");
        assert!(!m.reachable(), "a local limit says nothing of the peer");
        m.outcome("4xx");
        assert!(m.reachable());
        m.outcome("5xx");
        assert!(!m.reachable());
        m.outcome("2xx");
        assert!(m.reachable());
    }

    #[test]
    fn api_roots_are_http_with_a_host() {
        assert!(parse_api_root("http://bsf.example:8080").is_ok());
        assert!(parse_api_root("http://127.0.0.1:1/prefix/").is_ok());
        assert!(parse_api_root("https://bsf.example").is_err());
        assert!(parse_api_root("bsf.example").is_err());
        assert!(parse_api_root("http://bsf.example/?a=b").is_err());
    }

    #[test]
    fn a_token_file_is_one_b64token() {
        let dir = std::env::temp_dir().join(format!("sbi-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let good = dir.join("good");
        std::fs::write(&good, "abc.DEF-123_~+/=\n").expect("write");
        let v = read_token(&good).expect("token");
        assert_eq!(v.to_str().expect("ascii"), "Bearer abc.DEF-123_~+/=");
        assert!(v.is_sensitive());
        let bad = dir.join("bad");
        std::fs::write(&bad, "two words").expect("write");
        assert!(read_token(&bad).is_err());
        std::fs::write(&bad, "x".repeat(20_000)).expect("write");
        assert!(read_token(&bad).is_err());
        assert!(read_token(&dir.join("missing")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
