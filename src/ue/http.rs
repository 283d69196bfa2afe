//! The UE's Key Request client (TS 33.246 6.3.2.3, docs/profile.md §4): registration,
//! deregistration and MSK request over HTTP/1.1 with Digest authentication (username B-TID,
//! password base64(MRK)), `auth-int` preferred, and the server's `rspauth` required on 200.
//!
//! Plain `http://` only; each exchange runs on a fresh connection (a Key Request is rare and
//! small). The last server nonce is kept and answered pre-emptively with the next nc, so a
//! steady client needs one round trip per request.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::header::{
    AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderMap, HeaderName, HeaderValue,
    USER_AGENT, WWW_AUTHENTICATE,
};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use thiserror::Error;
use tokio::net::TcpStream;
use tracing::{debug, info, warn};

use crate::gba::Btid;
use crate::mbms::digest::{
    self, Challenge, ClientSession, Credentials, DigestError, RspauthStatus,
};
use crate::mbms::keyreq::{
    self, MAX_BODY_LEN, MAX_ITEMS, MskRequest, MskResponse, RegisterKind, RegisterRequest,
    RegisterResponse, XmlError,
};
use crate::mikey::{KeyDomainId, MskId};

use super::gba_keys::{GbaKeyProvider, ProviderError, UeGbaKeys};

/// RFC 7615 `Authentication-Info`.
const AUTHENTICATION_INFO: HeaderName = HeaderName::from_static("authentication-info");

/// Requests sent per call at most: first try, answer to the challenge, answer after a stale
/// nonce, answer with fresh keys.
const MAX_EXCHANGES: usize = 4;

/// TS 24.109 B.3: the `3gpp-gba` product token tells the BM-SC the UE supports GBA.
pub const USER_AGENT_VALUE: &str = concat!("mbms-keys/", env!("CARGO_PKG_VERSION"), " 3gpp-gba");

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Bound on one HTTP exchange (connect, send, read the whole answer).
    pub request_timeout: Duration,
    /// Bound on a whole call, retries and key retrieval included.
    pub overall_timeout: Duration,
    /// Largest response body read.
    pub max_response_body: usize,
    /// Answer only challenges whose realm starts with [`digest::REALM_PREFIX`] (docs/profile.md §4),
    /// so GBA keys are never offered to a server that did not ask for them.
    pub require_gba_realm: bool,
    /// The local address requests leave from (the BM-SC records the request's source address
    /// as the UE's address for pushes); `None` lets the system choose.
    pub local_addr: Option<std::net::IpAddr>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(10),
            overall_timeout: Duration::from_secs(10),
            max_response_body: MAX_BODY_LEN,
            require_gba_realm: true,
            local_addr: None,
        }
    }
}

/// A Key Request failed. No variant carries key material or a Digest response.
#[non_exhaustive]
#[derive(Debug, Error)]
pub enum ClientError {
    /// The base URL is not `http://host:port`.
    #[error("invalid base URL: {0}")]
    BaseUrl(String),
    /// The request cannot be sent as given.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// TCP connect failed.
    #[error("connect to {addr}: {source}")]
    Connect {
        /// host:port.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// HTTP/1.1 protocol or I/O failure after connecting.
    #[error("HTTP exchange failed: {0}")]
    Http(String),
    /// An exchange or the whole call took too long.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The answer was larger than allowed.
    #[error("response body over {0} octets")]
    BodyTooLarge(usize),
    /// A final status other than 200.
    #[error("unexpected HTTP status {0}")]
    Status(StatusCode),
    /// The server kept refusing our Digest credentials.
    #[error("the BM-SC refused the Digest credentials")]
    Unauthorized,
    /// The 401 carried no challenge this client can answer.
    #[error("unusable Digest challenge: {0}")]
    Challenge(#[from] DigestError),
    /// A 200 whose `Authentication-Info` rspauth did not verify.
    #[error("BM-SC response not authenticated: rspauth {0}")]
    BadServerAuthentication(RspauthStatus),
    /// A 200 with another Content-Type than the profile's.
    #[error("unexpected Content-Type {0:?}")]
    ContentType(String),
    /// The 200 body did not parse.
    #[error("response body: {0}")]
    Xml(#[from] XmlError),
    /// No GBA keys.
    #[error(transparent)]
    Provider(#[from] ProviderError),
}

/// A response after Digest authentication, for callers and interop tests that need more than
/// the parsed body.
#[derive(Debug, Clone)]
pub struct AuthenticatedResponse {
    /// The final status (never 401).
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The response body.
    pub body: Bytes,
    /// The check of the server's `Authentication-Info` against this request and body.
    pub rspauth: RspauthStatus,
}

/// Where requests go.
#[derive(Debug, Clone)]
struct Target {
    host: String,
    port: u16,
    /// host:port as in the Host header.
    authority: String,
}

impl Target {
    fn parse(base_url: &str) -> Result<Self, ClientError> {
        let bad = |why: &str| ClientError::BaseUrl(format!("{why} in {base_url:?}"));
        let parse_port = |p: Option<&str>| {
            p.and_then(|p| p.parse::<u16>().ok())
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("bad port"))
        };
        let rest = base_url
            .strip_prefix("http://")
            .ok_or_else(|| bad("expected http://"))?;
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
            return Err(bad("expected only host:port"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("bad IPv6 literal"))?;
            match after {
                "" => (host, 80),
                p => (host, parse_port(p.strip_prefix(':'))?),
            }
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h, parse_port(Some(p))?),
                None => (authority, 80),
            }
        };
        if host.is_empty() || HeaderValue::from_str(authority).is_err() {
            return Err(bad("bad host"));
        }
        Ok(Self {
            host: host.to_owned(),
            port,
            authority: authority.to_owned(),
        })
    }
}

/// Keys and the Digest state kept between calls.
#[derive(Default)]
struct State {
    keys: Option<UeGbaKeys>,
    /// The last challenge answered, for the same B-TID.
    session: Option<(Btid, ClientSession)>,
}

/// One answer as read from the wire.
struct RawResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

/// Aborts the connection task when the exchange ends or is cancelled.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The UE's Key Request client (docs/profile.md §4).
pub struct KeyRequestClient {
    target: Target,
    provider: Arc<dyn GbaKeyProvider>,
    config: ClientConfig,
    state: Mutex<State>,
}

impl std::fmt::Debug for KeyRequestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRequestClient")
            .field("target", &self.target.authority)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl KeyRequestClient {
    /// A client for the BM-SC at `base_url` (`http://host:port`) with default settings.
    ///
    /// # Errors
    /// [`ClientError::BaseUrl`] for anything but `http://host[:port][/]`.
    pub fn new(base_url: &str, provider: Arc<dyn GbaKeyProvider>) -> Result<Self, ClientError> {
        Self::with_config(base_url, provider, ClientConfig::default())
    }

    /// As [`Self::new`] with `config`.
    ///
    /// # Errors
    /// [`ClientError::BaseUrl`] for anything but `http://host[:port][/]`.
    pub fn with_config(
        base_url: &str,
        provider: Arc<dyn GbaKeyProvider>,
        config: ClientConfig,
    ) -> Result<Self, ClientError> {
        Ok(Self {
            target: Target::parse(base_url)?,
            provider,
            config,
            state: Mutex::new(State::default()),
        })
    }

    /// Registers to user services (TS 33.246 6.3.2.3); one status per service.
    ///
    /// # Errors
    /// [`ClientError`]; a 200 without a valid rspauth is
    /// [`ClientError::BadServerAuthentication`].
    pub async fn register(&self, service_ids: &[String]) -> Result<RegisterResponse, ClientError> {
        self.register_like(RegisterKind::Register, service_ids)
            .await
    }

    /// Deregisters from user services; one status per service.
    ///
    /// # Errors
    /// As [`Self::register`].
    pub async fn deregister(
        &self,
        service_ids: &[String],
    ) -> Result<RegisterResponse, ClientError> {
        self.register_like(RegisterKind::Deregister, service_ids)
            .await
    }

    /// Requests MSKs (Key Number 0 = the current one); one status per MSK. The keys themselves
    /// arrive as MIKEY messages on UDP.
    ///
    /// # Errors
    /// As [`Self::register`].
    pub async fn request_msk(
        &self,
        msks: &[(KeyDomainId, MskId)],
    ) -> Result<MskResponse, ClientError> {
        check_count(msks.len())?;
        let body = MskRequest::new(msks).to_xml();
        let resp = self
            .send_authenticated(keyreq::PATH_MSK, keyreq::MIME_MSK, Bytes::from(body))
            .await?;
        let body = accept(resp, keyreq::MIME_MSK_RESPONSE)?;
        Ok(MskResponse::parse(&body)?)
    }

    async fn register_like(
        &self,
        kind: RegisterKind,
        service_ids: &[String],
    ) -> Result<RegisterResponse, ClientError> {
        check_count(service_ids.len())?;
        for id in service_ids {
            keyreq::check_service_id(id).map_err(|e| ClientError::InvalidRequest(e.to_string()))?;
        }
        let body = RegisterRequest {
            kind,
            service_ids: service_ids.to_vec(),
        }
        .to_xml();
        let resp = self
            .send_authenticated(kind.path(), kind.mime(), Bytes::from(body))
            .await?;
        let body = accept(resp, keyreq::MIME_REGISTER_RESPONSE)?;
        Ok(RegisterResponse::parse(&body)?)
    }

    /// POSTs `body` to `path` and follows Digest challenges: answers a 401 once, once more
    /// after `stale=true`, and once more with fresh keys after a refusal. Returns the first
    /// non-401 answer with the result of its rspauth check, which the caller judges (the
    /// high-level calls require [`RspauthStatus::Verified`]).
    ///
    /// # Errors
    /// Transport, timeout, challenge and provider failures; [`ClientError::Unauthorized`] when
    /// the credentials stay refused.
    pub async fn send_authenticated(
        &self,
        path: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<AuthenticatedResponse, ClientError> {
        let limit = self.config.overall_timeout;
        tokio::time::timeout(limit, self.authenticated(path, content_type, body))
            .await
            .map_err(|_| ClientError::Timeout(limit))?
    }

    async fn authenticated(
        &self,
        path: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<AuthenticatedResponse, ClientError> {
        if !path.starts_with('/') || HeaderValue::from_str(content_type).is_err() {
            return Err(ClientError::InvalidRequest(
                "path must start with '/' and Content-Type be a header value".into(),
            ));
        }
        let mut keys = self.current_keys(false).await?;
        let mut creds = keys.digest_credentials();
        let mut auth = self.preemptive(&keys.btid, &creds, path, &body)?;
        let mut preemptive = auth.is_some();
        let mut stale_answered = false;
        let mut refreshed = false;
        for _ in 0..MAX_EXCHANGES {
            let value = auth.as_ref().map(|a| a.header_value());
            let resp = self
                .exchange(path, content_type, body.clone(), value)
                .await?;
            if resp.status != StatusCode::UNAUTHORIZED {
                let info = resp
                    .headers
                    .get(AUTHENTICATION_INFO)
                    .and_then(|v| v.to_str().ok());
                let rspauth = match &auth {
                    Some(a) => a.check_authentication_info(&creds, info, &resp.body),
                    None => RspauthStatus::Missing,
                };
                debug!(path, status = resp.status.as_u16(), %rspauth, "key request answered");
                return Ok(AuthenticatedResponse {
                    status: resp.status,
                    headers: resp.headers,
                    body: resp.body,
                    rspauth,
                });
            }
            let challenge = Challenge::select(
                resp.headers
                    .get_all(WWW_AUTHENTICATE)
                    .iter()
                    .filter_map(|v| v.to_str().ok()),
            )?;
            if self.config.require_gba_realm && !challenge.realm().starts_with(digest::REALM_PREFIX)
            {
                return Err(ClientError::Challenge(DigestError::Missing(
                    "a 3GPP-bootstrapping realm",
                )));
            }
            if auth.is_some() && !preemptive {
                if challenge.stale() && !stale_answered {
                    stale_answered = true;
                    debug!(path, "nonce stale; answering the fresh nonce");
                } else if !challenge.stale() && !refreshed {
                    // docs/profile.md §4: an unknown or expired B-TID gets a fresh challenge.
                    refreshed = true;
                    info!(path, btid = %keys.btid, "credentials refused; asking for fresh keys");
                    self.provider.invalidate(&keys.btid);
                    let old = keys.btid.clone();
                    keys = self.current_keys(true).await?;
                    if keys.btid == old {
                        return Err(ClientError::Unauthorized);
                    }
                    creds = keys.digest_credentials();
                } else {
                    warn!(path, "credentials refused");
                    return Err(ClientError::Unauthorized);
                }
            }
            preemptive = false;
            let mut session = ClientSession::new(challenge);
            let a = session.authorize(&creds, Method::POST.as_str(), path, &body)?;
            self.lock().session = Some((keys.btid.clone(), session));
            auth = Some(a);
        }
        Err(ClientError::Unauthorized)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An `Authorization` for the kept nonce with the next nc, if there is one for this B-TID.
    fn preemptive(
        &self,
        btid: &Btid,
        creds: &Credentials,
        path: &str,
        body: &[u8],
    ) -> Result<Option<digest::Authorization>, ClientError> {
        let mut state = self.lock();
        match state.session.as_mut() {
            Some((b, session)) if b == btid => Ok(Some(session.authorize(
                creds,
                Method::POST.as_str(),
                path,
                body,
            )?)),
            _ => Ok(None),
        }
    }

    /// The held keys while not expired, else the provider's (called off the executor).
    async fn current_keys(&self, force: bool) -> Result<UeGbaKeys, ClientError> {
        if !force
            && let Some(k) = self.lock().keys.as_ref()
            && !k.is_expired(SystemTime::now())
        {
            return Ok(k.clone());
        }
        let provider = Arc::clone(&self.provider);
        let keys = tokio::task::spawn_blocking(move || provider.keys())
            .await
            .map_err(|_| ProviderError("provider task failed".into()))??;
        debug!(btid = %keys.btid, "GBA keys from provider");
        let mut state = self.lock();
        if state.session.as_ref().is_some_and(|(b, _)| *b != keys.btid) {
            state.session = None;
        }
        state.keys = Some(keys.clone());
        Ok(keys)
    }

    /// One POST on a fresh connection, bounded by the request timeout and the body limit.
    async fn exchange(
        &self,
        path: &str,
        content_type: &str,
        body: Bytes,
        authorization: Option<&str>,
    ) -> Result<RawResponse, ClientError> {
        let limit = self.config.request_timeout;
        tokio::time::timeout(
            limit,
            self.exchange_inner(path, content_type, body, authorization),
        )
        .await
        .map_err(|_| ClientError::Timeout(limit))?
    }

    async fn exchange_inner(
        &self,
        path: &str,
        content_type: &str,
        body: Bytes,
        authorization: Option<&str>,
    ) -> Result<RawResponse, ClientError> {
        let t = &self.target;
        let connect_err = |source| ClientError::Connect {
            addr: t.authority.clone(),
            source,
        };
        let stream = match self.config.local_addr {
            None => TcpStream::connect((t.host.as_str(), t.port))
                .await
                .map_err(connect_err)?,
            Some(local) => {
                let remote = tokio::net::lookup_host((t.host.as_str(), t.port))
                    .await
                    .map_err(connect_err)?
                    .find(|a| a.is_ipv4() == local.is_ipv4())
                    .ok_or_else(|| {
                        connect_err(std::io::Error::new(
                            std::io::ErrorKind::AddrNotAvailable,
                            "no address of the BM-SC in the local address's family",
                        ))
                    })?;
                let socket = if local.is_ipv4() {
                    tokio::net::TcpSocket::new_v4()
                } else {
                    tokio::net::TcpSocket::new_v6()
                }
                .map_err(connect_err)?;
                socket
                    .bind(std::net::SocketAddr::new(local, 0))
                    .map_err(connect_err)?;
                socket.connect(remote).await.map_err(connect_err)?
            }
        };
        let _ = stream.set_nodelay(true);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let _conn = AbortOnDrop(tokio::spawn(async move {
            if let Err(e) = conn.await {
                debug!(error = %e, "key request connection ended");
            }
        }));
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(HOST, t.authority.as_str())
            .header(USER_AGENT, USER_AGENT_VALUE)
            .header(CONTENT_TYPE, content_type);
        if let Some(a) = authorization {
            req = req.header(AUTHORIZATION, a);
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| ClientError::InvalidRequest(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let (parts, incoming) = resp.into_parts();
        let max = self.config.max_response_body;
        let declared = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max as u64) {
            return Err(ClientError::BodyTooLarge(max));
        }
        let body = Limited::new(incoming, max)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<LengthLimitError>() {
                    ClientError::BodyTooLarge(max)
                } else {
                    ClientError::Http(e.to_string())
                }
            })?
            .to_bytes();
        debug!(
            path,
            status = parts.status.as_u16(),
            len = body.len(),
            "HTTP exchange"
        );
        Ok(RawResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

fn check_count(n: usize) -> Result<(), ClientError> {
    if n == 0 || n > MAX_ITEMS {
        return Err(ClientError::InvalidRequest(format!(
            "between 1 and {MAX_ITEMS} items per request, got {n}"
        )));
    }
    Ok(())
}

/// A high-level call's acceptance of an answer: 200, verified rspauth, the profile's type.
fn accept(resp: AuthenticatedResponse, mime: &str) -> Result<Bytes, ClientError> {
    if resp.status != StatusCode::OK {
        return Err(ClientError::Status(resp.status));
    }
    if resp.rspauth != RspauthStatus::Verified {
        warn!(rspauth = %resp.rspauth, "200 without a valid rspauth");
        return Err(ClientError::BadServerAuthentication(resp.rspauth));
    }
    let ct = resp
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = ct.split(';').next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case(mime) {
        return Err(ClientError::ContentType(ct.chars().take(80).collect()));
    }
    Ok(resp.body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        let t = Target::parse("http://127.0.0.1:8080").expect("ok");
        assert_eq!(
            (t.host.as_str(), t.port, t.authority.as_str()),
            ("127.0.0.1", 8080, "127.0.0.1:8080")
        );
        let t = Target::parse("http://bmsc.example/").expect("ok");
        assert_eq!((t.host.as_str(), t.port), ("bmsc.example", 80));
        let t = Target::parse("http://[::1]:9000").expect("ok");
        assert_eq!((t.host.as_str(), t.port), ("::1", 9000));
        for bad in [
            "https://x:1",
            "http://",
            "http://x:1/path",
            "http://u@x:1",
            "http://x:99999",
            "http://x:1?q",
            "ftp://x",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn user_agent_carries_the_gba_token() {
        assert!(USER_AGENT_VALUE.split(' ').any(|t| t == "3gpp-gba"));
    }
}
