//! The KMS client (TS 33.180 Annex D, docs/mcx.md §10): sends an Annex D request (`init`,
//! `keyprov`, `keyprov/<user>/<time>`, `certcache`) with the access token and the client's
//! TrK-ID/InK-ID, and checks the response in the order of docs/mcx.md §3.3:
//!
//! 1. structure (the schema's elements), 2. signature (before anything is decrypted),
//! 3. decryption and, in bound mode, the recovered TrK-ID/InK-ID against the trusted store
//!    ([`transport::open`]);
//! 4. the key material: the KMS certificate (KPAK and Z on their curves), and for every key set
//!    the UID the client computes itself, the key period, RFC 6507 §5.1.2 for the SSK/PVT and
//!    RFC 6508 §6.1.2 for the RSK ([`check`]);
//!
//! and only then stores it, sealed ([`store::ClientStore`]). A refusal at any step stores
//! nothing and is a typed [`KmsClientError`]. New TrK/InK a KmsInit or KmsKeyProv carries are
//! checked with the rest ([`rotation::adopt`]) and become the client's trusted record only
//! after everything has verified and been stored ([`KmsClient::transport_keys`],
//! [`Outcome::rotated`]).
//!
//! HTTP/1.1 over hyper, `http://` only: TLS towards a KMS is the deployment's (a local TLS
//! terminator or proxy), as docs/mcx.md §10 says.

use std::time::Duration;

use thiserror::Error;

use super::messages::{KmsCertificate, KmsMessage, KmsRequest, KmsResponse, xml_datetime};
use super::rotation;
use super::routes::BASE_PATH;
use super::transport::{self, TransportKeys};
use super::{KmsError, MAX_DOCUMENT_LEN, unix_now};
use crate::ibe::IbeError;

pub mod check;
mod http;
pub mod store;

pub use check::{KeyMaterial, key_period_no};
pub use store::{ClientStore, StoreError};

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Bound on one exchange: connect, send, read the whole answer.
    pub timeout: Duration,
    /// Largest response body read; a longer one is [`KmsClientError::ResponseTooLarge`].
    pub max_response_body: usize,
    /// The KMS URI the client is configured with (TS 33.180: a client is provisioned with its
    /// KMS's URI): the `KmsUri` of requests until the KMS certificate is stored, and the
    /// `KmsUri` its certificate must carry (else [`KmsClientError::WrongKms`]). Once the
    /// certificate is stored, requests name its `KmsUri`, as the UID and the key store do.
    /// Without it, a first `init` names the KMS by its URL's `host[:port]`, which a KMS whose
    /// URI is another name refuses.
    pub kms_uri: Option<String>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            max_response_body: MAX_DOCUMENT_LEN,
            kms_uri: None,
        }
    }
}

/// The Annex D request to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `…/init`: the KMS certificate.
    Init,
    /// `…/keyprov`: the key material of the current key period.
    KeyProv,
    /// `…/keyprov/<user>/<time>`: the key material of the key period holding `unix_secs` (a
    /// future period included).
    KeyProvAt {
        /// The time, seconds since the Unix epoch.
        unix_secs: u64,
    },
    /// `…/certcache`: the certificates of the KMSs the client may meet.
    CertCache,
}

impl Request {
    fn name(&self) -> &'static str {
        match self {
            Self::Init => "KmsInit",
            Self::KeyProv | Self::KeyProvAt { .. } => "KmsKeyProv",
            Self::CertCache => "KmsCertCache",
        }
    }
}

/// Why a KMS exchange was refused. Never carries key material or the token.
#[non_exhaustive]
#[derive(Debug, Error)]
pub enum KmsClientError {
    /// The KMS URL is not `http://host[:port][/prefix]`.
    #[error("invalid KMS URL: {0}")]
    Url(String),
    /// The request cannot be built as given (user URI, token).
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
    /// The exchange took longer than [`ClientConfig::timeout`].
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The response body is larger than [`ClientConfig::max_response_body`].
    #[error("response body over {max} octets")]
    ResponseTooLarge {
        /// The bound.
        max: usize,
    },
    /// HTTP 401: the KMS refused the access token.
    #[error("the KMS refused the access token (401)")]
    Unauthorized,
    /// HTTP 403: the token does not carry the identity asked for.
    #[error("the KMS refused the identity (403)")]
    Forbidden,
    /// Another HTTP status than 200 (a 200 carrying a `KmsError` is [`KmsError::Refused`]).
    #[error("unexpected HTTP status {0}")]
    Status(u16),
    /// Steps 1–3: the response's structure, signature, decryption or bound identifiers
    /// ([`transport::open`]), or a `KmsError` from the KMS ([`KmsError::Refused`]).
    #[error("response refused: {0}")]
    Response(#[from] KmsError),
    /// The response carries another message than the request asks for.
    #[error("expected {expected}, the response carries {found}")]
    UnexpectedMessage {
        /// The message asked for.
        expected: &'static str,
        /// The message found (or "no message").
        found: &'static str,
    },
    /// The response or a key set is for another user than the one asking.
    #[error("response for another user")]
    WrongUser,
    /// A key set or the response names another KMS than the certificate's.
    #[error("key material of another KMS than the certificate's")]
    WrongKms,
    /// A KMS certificate the client cannot use (format, parameter set, KPAK or Z).
    #[error("KMS certificate refused: {0}")]
    Certificate(String),
    /// Key material asked for, but no KMS certificate is known to check it against.
    #[error("no KMS certificate to check the key material against (run init first)")]
    NoCertificate,
    /// A key set is marked revoked.
    #[error("key set for period {period_no} is revoked")]
    Revoked {
        /// `KeyPeriodNo`.
        period_no: u64,
    },
    /// A key set's key period is not the one asked for (docs/mcx.md §10 \[CHOICE\]).
    #[error("key period {found} outside {expected} ± 1")]
    UnexpectedKeyPeriod {
        /// `KeyPeriodNo` found.
        found: u64,
        /// The period asked for.
        expected: u64,
    },
    /// A key set's `UserID` is not the UID the client computes for (user, KMS, period).
    #[error("UserID of period {period_no} is not the UID of this user")]
    UidMismatch {
        /// `KeyPeriodNo`.
        period_no: u64,
    },
    /// The SSK/PVT pair does not validate (RFC 6507 §5.1.2), or is malformed.
    #[error("SSK/PVT of period {period_no} refused: {source}")]
    InvalidSskPvt {
        /// `KeyPeriodNo`.
        period_no: u64,
        /// Why.
        source: IbeError,
    },
    /// The RSK does not validate (RFC 6508 §6.1.2), or is malformed.
    #[error("RSK of period {period_no} refused: {source}")]
    InvalidRsk {
        /// `KeyPeriodNo`.
        period_no: u64,
        /// Why.
        source: IbeError,
    },
    /// The key store failed.
    #[error("key store: {0}")]
    Store(#[from] StoreError),
}

impl KmsClientError {
    /// A stable name for the refusal (the `reason` of the command line's JSON).
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Url(_) => "invalid_url",
            Self::InvalidRequest(_) => "invalid_request",
            Self::Connect { .. } => "connect",
            Self::Http(_) => "http",
            Self::Timeout(_) => "timeout",
            Self::ResponseTooLarge { .. } => "response_too_large",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::Status(_) => "http_status",
            Self::Response(e) => response_reason(e),
            Self::UnexpectedMessage { .. } => "unexpected_message",
            Self::WrongUser => "wrong_user",
            Self::WrongKms => "wrong_kms",
            Self::Certificate(_) => "invalid_certificate",
            Self::NoCertificate => "no_certificate",
            Self::Revoked { .. } => "revoked",
            Self::UnexpectedKeyPeriod { .. } => "unexpected_key_period",
            Self::UidMismatch { .. } => "uid_mismatch",
            Self::InvalidSskPvt { .. } => "invalid_ssk_pvt",
            Self::InvalidRsk { .. } => "invalid_rsk",
            Self::Store(_) => "store",
        }
    }
}

fn response_reason(e: &KmsError) -> &'static str {
    match e {
        KmsError::TooLarge { .. } => "response_too_large",
        KmsError::Xml { .. } => "xml",
        KmsError::Structure(_) => "structure",
        KmsError::Unsigned => "unsigned",
        KmsError::UnsupportedAlgorithm { .. } => "unsupported_algorithm",
        KmsError::UnknownSignatureKey(_) => "unknown_signature_key",
        KmsError::DigestMismatch => "digest_mismatch",
        KmsError::BadSignature => "bad_signature",
        KmsError::UnknownTransportKey { .. } => "unknown_transport_key",
        KmsError::Decrypt { .. } => "decrypt",
        KmsError::BoundTrkIdMismatch { .. } => "bound_trk_id_mismatch",
        KmsError::BoundInkIdMismatch { .. } => "bound_ink_id_mismatch",
        KmsError::BoundNewKeyIdMismatch { .. } => "bound_new_key_id_mismatch",
        KmsError::InvalidNewKey(_) => "invalid_new_key",
        KmsError::Refused { .. } => "kms_error",
        _ => "response",
    }
}

/// What a checked, stored response gave.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum Verified {
    /// KmsInit: the KMS certificate, now the store's home certificate.
    Init(Box<KmsCertificate>),
    /// KmsKeyProv: the key material of every key set, validated and stored.
    KeyProv(Vec<KeyMaterial>),
    /// KmsCertCache: the certificates, each checked and stored.
    CertCache(Vec<KmsCertificate>),
}

/// One exchange: the raw response (for `--save-response`), and its outcome.
#[derive(Debug)]
pub struct Outcome {
    /// The response body as received, when there was one (also for a refused response).
    pub raw: Option<Vec<u8>>,
    /// What the checks gave.
    pub result: Result<Verified, KmsClientError>,
    /// The new trusted TrK/InK record the response delivered, now the client's
    /// ([`KmsClient::transport_keys`]); `None` when it carried none or was refused.
    pub rotated: Option<TransportKeys>,
}

/// A verified response: what it gave, and the new trusted record it delivered, if any.
#[derive(Debug)]
pub struct Accepted {
    /// What it gave (stored).
    pub verified: Verified,
    /// The new TrK/InK record, now the client's.
    pub rotated: Option<TransportKeys>,
}

/// A KMS client for one user and one trusted TrK/InK record.
pub struct KmsClient {
    target: http::Target,
    token: zeroize::Zeroizing<String>,
    user_uri: String,
    /// The trusted TrK/InK record: replaced as a whole when a verified response delivers new
    /// keys.
    keys: std::sync::Mutex<TransportKeys>,
    store: ClientStore,
    config: ClientConfig,
}

impl std::fmt::Debug for KmsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsClient")
            .field("target", &self.target)
            .field("token", &"[REDACTED]")
            .field("user_uri", &self.user_uri)
            .field("keys", &self.keys)
            .field("store", &self.store)
            .field("config", &self.config)
            .finish()
    }
}

/// Percent-encodes a path segment (RFC 3986 unreserved characters kept).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl KmsClient {
    /// A client of the KMS at `kms_url` (`http://host[:port]`, optionally with a path prefix
    /// before `/keymanagement/identity/v1`), for `user_uri`, with its access token, trusted
    /// transport keys and key store.
    ///
    /// # Errors
    /// [`KmsClientError::Url`], or [`KmsClientError::InvalidRequest`] for a token that cannot
    /// be sent in a header or an empty user URI.
    pub fn new(
        kms_url: &str,
        token: &str,
        user_uri: &str,
        keys: TransportKeys,
        store: ClientStore,
        config: ClientConfig,
    ) -> Result<Self, KmsClientError> {
        let target = http::Target::parse(kms_url)?;
        let token = token.trim();
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(KmsClientError::InvalidRequest(
                "the access token is empty or not printable ASCII".into(),
            ));
        }
        if user_uri.is_empty() || user_uri.chars().any(char::is_control) {
            return Err(KmsClientError::InvalidRequest(
                "the user URI is empty or has control characters".into(),
            ));
        }
        Ok(Self {
            target,
            token: zeroize::Zeroizing::new(token.to_owned()),
            user_uri: user_uri.to_owned(),
            keys: std::sync::Mutex::new(keys),
            store,
            config,
        })
    }

    /// The key store.
    #[must_use]
    pub fn store(&self) -> &ClientStore {
        &self.store
    }

    /// The trusted TrK/InK record in use: the one given to [`Self::new`], or the last one a
    /// verified response delivered.
    #[must_use]
    pub fn transport_keys(&self) -> TransportKeys {
        self.keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn path(&self, request: &Request) -> String {
        let tail = match request {
            Request::Init => "init".to_owned(),
            Request::KeyProv => "keyprov".to_owned(),
            Request::KeyProvAt { unix_secs } => format!(
                "keyprov/{}/{}",
                percent_encode(&self.user_uri),
                percent_encode(&xml_datetime(*unix_secs))
            ),
            Request::CertCache => "certcache".to_owned(),
        };
        format!("{}{BASE_PATH}/{tail}", self.target.prefix)
    }

    /// The request document (TS 33.180 D.2.2) with the TrK-ID and InK-ID extension.
    fn request_body(&self, request: &Request, now: u64) -> String {
        let keys = self.transport_keys();
        let kms_uri = match self.store.home_certificate() {
            Ok(Some(c)) => c.kms_uri,
            _ => self
                .config
                .kms_uri
                .clone()
                .unwrap_or_else(|| self.target.authority.clone()),
        };
        KmsRequest {
            id: None,
            user_uri: self.user_uri.clone(),
            kms_uri,
            time: xml_datetime(now),
            client_id: None,
            device_id: None,
            client_req_url: format!("http://{}{}", self.target.authority, self.path(request)),
            trk_id: Some(keys.trk_id),
            ink_id: keys.ink.as_ref().map(|(id, _)| *id),
        }
        .to_xml()
    }

    /// Runs `request`: for key material without a known KMS certificate, `init` first (its
    /// certificate checked and stored); then the request, its checks, and the store.
    pub async fn run(&self, request: &Request) -> Outcome {
        if matches!(request, Request::KeyProv | Request::KeyProvAt { .. }) {
            match self.store.home_certificate() {
                Ok(Some(_)) => {}
                Ok(None) => {
                    let init = self.exchange(&Request::Init).await;
                    if init.result.is_err() {
                        return init;
                    }
                }
                Err(e) => {
                    return Outcome {
                        raw: None,
                        result: Err(e.into()),
                        rotated: None,
                    };
                }
            }
        }
        self.exchange(request).await
    }

    /// One request and its checks, without fetching a certificate first.
    pub async fn exchange(&self, request: &Request) -> Outcome {
        let now = unix_now();
        let body = self.request_body(request, now);
        let raw = match http::post(
            &self.target,
            &self.path(request),
            &self.token,
            body.into_bytes(),
            &self.config,
        )
        .await
        {
            Ok(raw) => raw,
            Err((raw, e)) => {
                tracing::warn!(reason = e.reason(), error = ?e, "KMS request failed");
                return Outcome {
                    raw,
                    result: Err(e),
                    rotated: None,
                };
            }
        };
        let (result, rotated) = match self.accept(request, &raw, now) {
            Ok(a) => (Ok(a.verified), a.rotated),
            Err(e) => {
                // One line per exchange (the caller paces the exchanges); the reason and the
                // error (Debug: text from the peer escaped), which never hold key material.
                tracing::warn!(reason = e.reason(), error = ?e, "KMS response refused");
                (Err(e), None)
            }
        };
        if let Some(k) = &rotated {
            tracing::info!(trk_id = %k.trk_id, "the KMS delivered new transport keys; adopted");
        }
        Outcome {
            raw: Some(raw),
            result,
            rotated,
        }
    }

    /// Checks a response body to `request` received at `now` and stores what it carries: the
    /// sans-IO part of [`Self::exchange`]. New TrK/InK it delivers become the trusted record
    /// last, after the key material is stored.
    ///
    /// # Errors
    /// The first check that fails; nothing is stored (and the trusted record is unchanged)
    /// then.
    pub fn accept(
        &self,
        request: &Request,
        raw: &[u8],
        now: u64,
    ) -> Result<Accepted, KmsClientError> {
        let mut keys = self
            .keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Steps 1–3 (structure, signature, decryption and bound identifiers).
        let response = transport::open(raw, &keys)?;
        let new_keys = match &response.message {
            Some(KmsMessage::Init { new_keys, .. } | KmsMessage::KeyProv { new_keys, .. }) => {
                Some(new_keys.clone())
            }
            _ => None,
        };
        // The new keys are checked before anything is stored: all or nothing.
        let rotated = match &new_keys {
            Some(n) => rotation::adopt(&keys, n)?,
            None => None,
        };
        // Step 4 (key material), then the store.
        let verified = self.check_and_store(request, response, now)?;
        if let Some(next) = &rotated {
            *keys = next.clone();
        }
        Ok(Accepted { verified, rotated })
    }

    fn check_and_store(
        &self,
        request: &Request,
        response: KmsResponse,
        now: u64,
    ) -> Result<Verified, KmsClientError> {
        if response.user_uri != self.user_uri {
            return Err(KmsClientError::WrongUser);
        }
        let found = match &response.message {
            Some(KmsMessage::Init { .. }) => "KmsInit",
            Some(KmsMessage::KeyProv { .. }) => "KmsKeyProv",
            Some(KmsMessage::CertCache { .. }) => "KmsCertCache",
            None => "no message",
        };
        if found != request.name() {
            return Err(KmsClientError::UnexpectedMessage {
                expected: request.name(),
                found,
            });
        }
        match (request, response.message) {
            (Request::Init, Some(KmsMessage::Init { certificate, .. })) => {
                check::certificate(&certificate)?;
                if let Some(uri) = &self.config.kms_uri
                    && certificate.kms_uri != *uri
                {
                    return Err(KmsClientError::WrongKms);
                }
                self.store.put_home_certificate(&certificate)?;
                Ok(Verified::Init(certificate))
            }
            (Request::CertCache, Some(KmsMessage::CertCache { certificates, .. })) => {
                for c in &certificates {
                    check::certificate(c)?;
                }
                for c in &certificates {
                    self.store.put_certificate(c)?;
                }
                Ok(Verified::CertCache(certificates))
            }
            (_, Some(KmsMessage::KeyProv { key_sets, .. })) => {
                let cert = self
                    .store
                    .home_certificate()?
                    .ok_or(KmsClientError::NoCertificate)?;
                if response.kms_uri != cert.kms_uri {
                    return Err(KmsClientError::WrongKms);
                }
                let at = match request {
                    Request::KeyProvAt { unix_secs } => *unix_secs,
                    _ => now,
                };
                let material = check::key_sets(&cert, &self.user_uri, &key_sets, at)?;
                // Every key set checked before the first is stored: all or nothing.
                for m in &material {
                    self.store.put_key_material(m)?;
                }
                Ok(Verified::KeyProv(material))
            }
            _ => Err(KmsClientError::UnexpectedMessage {
                expected: request.name(),
                found,
            }),
        }
    }
}
