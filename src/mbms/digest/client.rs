//! The client half of RFC 7616 Digest: answering a challenge, counting nc, checking rspauth.

use core::fmt;

use digest_auth::{AuthContext, AuthorizationHeader, HttpMethod, WwwAuthenticateHeader};

use super::{
    Algorithm, Credentials, DigestError, MAX_HEADER_LEN, Qop, digest_params, fresh_cnonce,
    parse_auth_params, rspauth_of,
};
use crate::crypto::ct_eq;

/// A server's `WWW-Authenticate: Digest` challenge the profile can answer.
#[derive(Debug, Clone)]
pub struct Challenge {
    inner: WwwAuthenticateHeader,
    algorithm: Algorithm,
    qop: Qop,
}

impl Challenge {
    /// Parses one `WWW-Authenticate` value: MD5 or SHA-256, a qop list containing `auth` or
    /// `auth-int` (the latter is chosen when offered), no userhash.
    ///
    /// # Errors
    /// [`DigestError`] naming what is missing or unsupported.
    pub fn parse(value: &str) -> Result<Self, DigestError> {
        let params = digest_params(value)?;
        // Checked with our parser first: the crate's accepts some malformed input silently.
        parse_auth_params(params)?;
        let inner = WwwAuthenticateHeader::parse(params)?;
        let algorithm = Algorithm::from_crate(inner.algorithm)?;
        if inner.userhash {
            return Err(DigestError::Userhash);
        }
        let offered = inner.qop.as_deref().unwrap_or_default();
        let qop = if offered.contains(&digest_auth::Qop::AUTH_INT) {
            Qop::AuthInt
        } else if offered.contains(&digest_auth::Qop::AUTH) {
            Qop::Auth
        } else {
            return Err(DigestError::NoQop);
        };
        Ok(Self {
            inner,
            algorithm,
            qop,
        })
    }

    /// Picks the best usable challenge of several `WWW-Authenticate` values: `auth-int` over
    /// `auth`, then SHA-256 over MD5, then the first.
    ///
    /// # Errors
    /// The first value's error when none is usable; [`DigestError::NotDigest`] when there is none.
    pub fn select<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Self, DigestError> {
        let mut best: Option<Self> = None;
        let mut first_err = None;
        for v in values {
            match Self::parse(v) {
                Ok(c) => {
                    let rank = |c: &Self| (c.qop == Qop::AuthInt, c.algorithm == Algorithm::Sha256);
                    if best.as_ref().is_none_or(|b| rank(&c) > rank(b)) {
                        best = Some(c);
                    }
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        best.ok_or(first_err.unwrap_or(DigestError::NotDigest))
    }

    /// The realm.
    #[must_use]
    pub fn realm(&self) -> &str {
        &self.inner.realm
    }

    /// The server nonce.
    #[must_use]
    pub fn nonce(&self) -> &str {
        &self.inner.nonce
    }

    /// The opaque value, if any.
    #[must_use]
    pub fn opaque(&self) -> Option<&str> {
        self.inner.opaque.as_deref()
    }

    /// The algorithm.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The qop this client answers with.
    #[must_use]
    pub fn qop(&self) -> Qop {
        self.qop
    }

    /// `stale=true`: the nonce expired, the credentials were right (RFC 7616 §3.3).
    #[must_use]
    pub fn stale(&self) -> bool {
        self.inner.stale
    }
}

/// Client state for one server nonce: counts `nc` (RFC 7616 §3.4).
#[derive(Debug, Clone)]
pub struct ClientSession {
    challenge: Challenge,
}

impl ClientSession {
    /// Starts counting for the nonce of `challenge`.
    #[must_use]
    pub fn new(challenge: Challenge) -> Self {
        Self { challenge }
    }

    /// The challenge answered.
    #[must_use]
    pub fn challenge(&self) -> &Challenge {
        &self.challenge
    }

    /// The `Authorization` for a request, with a random cnonce and the next nc.
    ///
    /// # Errors
    /// [`DigestError::Random`] when no cnonce can be drawn, [`DigestError::BadNc`] when the
    /// count for this nonce is exhausted.
    pub fn authorize(
        &mut self,
        credentials: &Credentials,
        method: &str,
        uri: &str,
        body: &[u8],
    ) -> Result<Authorization, DigestError> {
        let cnonce = fresh_cnonce()?;
        self.authorize_with_cnonce(credentials, method, uri, body, &cnonce)
    }

    /// As [`Self::authorize`] with a given cnonce, for test vectors.
    ///
    /// # Errors
    /// [`DigestError::BadNc`] when the count for this nonce is exhausted.
    pub fn authorize_with_cnonce(
        &mut self,
        credentials: &Credentials,
        method: &str,
        uri: &str,
        body: &[u8],
        cnonce: &str,
    ) -> Result<Authorization, DigestError> {
        if self.challenge.inner.nc == u32::MAX {
            return Err(DigestError::BadNc);
        }
        let mut ctx = AuthContext::new_with_method(
            credentials.username.as_str(),
            credentials.password.as_str(),
            uri,
            Some(body),
            HttpMethod::from(method),
        );
        ctx.set_custom_cnonce(cnonce);
        let sent = self.challenge.inner.respond(&ctx)?;
        Ok(Authorization {
            value: sent.to_string(),
            sent,
        })
    }
}

/// The outcome of checking a server's `Authentication-Info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RspauthStatus {
    /// `rspauth` matched, and qop/nc/cnonce (where present) echo the request.
    Verified,
    /// No `Authentication-Info`, or one without `rspauth`.
    Missing,
    /// Present but wrong, or not parseable.
    Invalid,
}

impl fmt::Display for RspauthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Verified => "verified",
            Self::Missing => "missing",
            Self::Invalid => "invalid",
        })
    }
}

/// An `Authorization` sent, kept to check the answer's `rspauth`.
#[derive(Clone)]
pub struct Authorization {
    value: String,
    sent: AuthorizationHeader,
}

impl fmt::Debug for Authorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Authorization(username={:?}, nc={:08x}, qop={:?}, [REDACTED])",
            self.sent.username, self.sent.nc, self.sent.qop
        )
    }
}

impl Authorization {
    /// The `Authorization` header value.
    #[must_use]
    pub fn header_value(&self) -> &str {
        &self.value
    }

    /// The request digest (`response`).
    #[must_use]
    pub fn response(&self) -> &str {
        &self.sent.response
    }

    /// The nonce count used.
    #[must_use]
    pub fn nc(&self) -> u32 {
        self.sent.nc
    }

    /// The cnonce used.
    #[must_use]
    pub fn cnonce(&self) -> Option<&str> {
        self.sent.cnonce.as_deref()
    }

    /// The qop used.
    #[must_use]
    pub fn qop(&self) -> Option<Qop> {
        self.sent.qop.map(Qop::from_crate)
    }

    /// The `rspauth` a genuine server sends with `response_body` (RFC 7616 §3.5).
    #[must_use]
    pub fn expected_rspauth(&self, credentials: &Credentials, response_body: &[u8]) -> String {
        rspauth_of(
            &self.sent,
            &credentials.username,
            &credentials.password,
            response_body,
        )
    }

    /// Checks an `Authentication-Info` value against this request and the response body,
    /// comparing `rspauth` in constant time.
    #[must_use]
    pub fn check_authentication_info(
        &self,
        credentials: &Credentials,
        value: Option<&str>,
        response_body: &[u8],
    ) -> RspauthStatus {
        let Some(value) = value else {
            return RspauthStatus::Missing;
        };
        if value.len() > MAX_HEADER_LEN || !value.is_ascii() {
            return RspauthStatus::Invalid;
        }
        let Ok(params) = parse_auth_params(value) else {
            return RspauthStatus::Invalid;
        };
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let Some(rspauth) = get("rspauth") else {
            return RspauthStatus::Missing;
        };
        let echoes = get("qop").is_none_or(|q| self.qop().is_some_and(|s| s.as_str() == q))
            && get("nc").is_none_or(|n| u32::from_str_radix(n, 16) == Ok(self.sent.nc))
            && get("cnonce").is_none_or(|c| self.sent.cnonce.as_deref() == Some(c));
        let expected = self.expected_rspauth(credentials, response_body);
        let matches = ct_eq(expected.as_bytes(), rspauth.to_ascii_lowercase().as_bytes());
        if matches && echoes {
            RspauthStatus::Verified
        } else {
            RspauthStatus::Invalid
        }
    }
}
