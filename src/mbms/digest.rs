//! HTTP Digest (RFC 7616) as the Key Request interface uses it (PROFILE.md §4): realm
//! `3GPP-bootstrapping@<BM-SC FQDN>`, username = B-TID, password = base64(MRK), qop `auth-int` by
//! default, MD5 or SHA-256, `Authentication-Info` with `rspauth` on every 200.
//!
//! The hashing is the `digest_auth` crate's; this module adds what the profile needs on top: the
//! choice of qop and algorithm, a random cnonce, `rspauth` both ways, constant-time comparison,
//! and input checks that keep hostile headers away from the crate's parser (it indexes by
//! character, so only printable ASCII of bounded length is passed on).
//!
//! Nonce management (issuing, expiry, (nonce, nc) replay) is the server's policy, not here.

use core::fmt;
use core::str::FromStr;

use digest_auth::{
    AlgorithmType, AuthContext, AuthorizationHeader, HttpMethod, WwwAuthenticateHeader,
};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::crypto::ct_eq;

/// PROFILE.md §4: the realm prefix of the BM-SC (TS 33.220 usage of RFC 7616).
pub const REALM_PREFIX: &str = "3GPP-bootstrapping@";

/// Longest `WWW-Authenticate`, `Authorization` or `Authentication-Info` value handled.
pub const MAX_HEADER_LEN: usize = 4096;

/// PROFILE.md §4: `3GPP-bootstrapping@<fqdn>`.
#[must_use]
pub fn realm_for(fqdn: &str) -> String {
    format!("{REALM_PREFIX}{fqdn}")
}

/// PROFILE.md §4: the Digest algorithms of the profile (no `-sess` variants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `MD5` (RFC 7616 §3.2, kept for older peers).
    Md5,
    /// `SHA-256` (RFC 7616 §3.2).
    Sha256,
}

impl Algorithm {
    /// The token in headers.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::Sha256 => "SHA-256",
        }
    }

    fn to_crate(self) -> digest_auth::Algorithm {
        let algo = match self {
            Self::Md5 => AlgorithmType::MD5,
            Self::Sha256 => AlgorithmType::SHA2_256,
        };
        digest_auth::Algorithm::new(algo, false)
    }

    fn from_crate(a: digest_auth::Algorithm) -> Result<Self, DigestError> {
        match (a.algo, a.sess) {
            (AlgorithmType::MD5, false) => Ok(Self::Md5),
            (AlgorithmType::SHA2_256, false) => Ok(Self::Sha256),
            _ => Err(DigestError::UnsupportedAlgorithm(a.to_string())),
        }
    }

    /// H(data) as lower-case hex (RFC 7616 §3.4.1).
    #[must_use]
    pub fn hash_hex(self, data: &[u8]) -> String {
        self.to_crate().hash(data)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = DigestError;

    /// `MD5` or `SHA-256`, any case (RFC 7616 §3.3 tokens are case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("MD5") {
            Ok(Self::Md5)
        } else if s.eq_ignore_ascii_case("SHA-256") {
            Ok(Self::Sha256)
        } else {
            Err(DigestError::UnsupportedAlgorithm(clip(s)))
        }
    }
}

/// RFC 7616 §3.3 quality of protection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Qop {
    /// `auth`: method and URI only.
    Auth,
    /// `auth-int`: also H(entity-body), the PROFILE.md §4 default [SEED: body integrity].
    AuthInt,
}

impl Qop {
    /// The token in headers.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::AuthInt => "auth-int",
        }
    }

    fn from_crate(q: digest_auth::Qop) -> Self {
        match q {
            digest_auth::Qop::AUTH => Self::Auth,
            digest_auth::Qop::AUTH_INT => Self::AuthInt,
        }
    }
}

impl fmt::Display for Qop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The qop values a server offers in its challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QopOffer {
    /// `qop="auth"`.
    Auth,
    /// `qop="auth-int"` (PROFILE.md §4 default).
    AuthInt,
    /// `qop="auth,auth-int"`.
    Both,
}

impl QopOffer {
    /// The quoted list in the challenge.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::AuthInt => "auth-int",
            Self::Both => "auth,auth-int",
        }
    }

    /// Whether `qop` is one of the offered values.
    #[must_use]
    pub fn allows(self, qop: Qop) -> bool {
        matches!(
            (self, qop),
            (Self::Both, _) | (Self::Auth, Qop::Auth) | (Self::AuthInt, Qop::AuthInt)
        )
    }
}

/// A Digest header could not be used. Messages never quote a `response`, a password or a hash.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DigestError {
    /// The header value is too long.
    #[error("Digest header is over {MAX_HEADER_LEN} octets")]
    TooLong,
    /// The header value holds octets outside printable ASCII.
    #[error("Digest header is not printable ASCII")]
    NotAscii,
    /// Another authentication scheme.
    #[error("not a Digest header")]
    NotDigest,
    /// Not parseable as RFC 7616 auth-params.
    #[error("malformed Digest header")]
    Syntax,
    /// A required parameter is absent.
    #[error("Digest header lacks {0}")]
    Missing(&'static str),
    /// An algorithm outside PROFILE.md §4.
    #[error("Digest algorithm {0:?} is not supported (MD5 or SHA-256)")]
    UnsupportedAlgorithm(String),
    /// A qop value other than `auth` / `auth-int`.
    #[error("Digest qop {0:?} is not supported")]
    UnsupportedQop(String),
    /// A charset other than UTF-8.
    #[error("Digest charset {0:?} is not supported")]
    UnsupportedCharset(String),
    /// No qop: RFC 2069 Digest, which cannot carry `rspauth` as PROFILE.md §4 requires.
    #[error("Digest without qop (RFC 2069) is not supported")]
    NoQop,
    /// `userhash=true` (RFC 7616 §3.4.4) is not used by the profile.
    #[error("Digest userhash is not supported")]
    Userhash,
    /// `nc` is not 8 hex digits, or the count for this nonce is exhausted.
    #[error("invalid Digest nonce count")]
    BadNc,
    /// The operating system random generator failed (cnonce).
    #[error("random generator failed")]
    Random,
}

fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

impl From<digest_auth::Error> for DigestError {
    fn from(e: digest_auth::Error) -> Self {
        use digest_auth::Error as E;
        match e {
            E::BadCharset(c) => Self::UnsupportedCharset(clip(&c)),
            E::UnknownAlgorithm(a) => Self::UnsupportedAlgorithm(clip(&a)),
            E::BadQop(q) | E::BadQopOptions(q) => Self::UnsupportedQop(clip(&q)),
            E::MissingRequired(what, _) => Self::Missing(what),
            E::InvalidHeaderSyntax(_) => Self::Syntax,
            E::NumParseError => Self::BadNc,
        }
    }
}

/// Checks length and alphabet and strips the `Digest` scheme (any case).
fn digest_params(value: &str) -> Result<&str, DigestError> {
    if value.len() > MAX_HEADER_LEN {
        return Err(DigestError::TooLong);
    }
    if !value
        .bytes()
        .all(|b| b == b'\t' || (0x20..=0x7e).contains(&b))
    {
        return Err(DigestError::NotAscii);
    }
    let value = value.trim();
    let scheme = value.get(..6).ok_or(DigestError::NotDigest)?;
    let rest = value.get(6..).unwrap_or_default();
    if !scheme.eq_ignore_ascii_case("Digest") || !rest.starts_with([' ', '\t']) {
        return Err(DigestError::NotDigest);
    }
    Ok(rest.trim_start())
}

/// Parses RFC 7235 auth-params (`name=token` or `name="quoted"`, comma separated). Input is
/// already printable ASCII of bounded length.
pub fn parse_auth_params(s: &str) -> Result<Vec<(String, String)>, DigestError> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    let skip = |i: &mut usize, pred: &dyn Fn(u8) -> bool| {
        while b.get(*i).is_some_and(|c| pred(*c)) {
            *i += 1;
        }
    };
    let is_tchar = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/:@=?".contains(&c);
    loop {
        skip(&mut i, &|c| c == b' ' || c == b'\t' || c == b',');
        if i >= b.len() {
            return Ok(out);
        }
        let start = i;
        skip(&mut i, &|c| {
            c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
        });
        let name = s.get(start..i).ok_or(DigestError::Syntax)?;
        if name.is_empty() {
            return Err(DigestError::Syntax);
        }
        skip(&mut i, &|c| c == b' ' || c == b'\t');
        if b.get(i) != Some(&b'=') {
            return Err(DigestError::Syntax);
        }
        i += 1;
        skip(&mut i, &|c| c == b' ' || c == b'\t');
        let mut value = String::new();
        if b.get(i) == Some(&b'"') {
            i += 1;
            loop {
                match b.get(i) {
                    None => return Err(DigestError::Syntax),
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') => {
                        let c = b.get(i + 1).ok_or(DigestError::Syntax)?;
                        value.push(char::from(*c));
                        i += 2;
                    }
                    Some(c) => {
                        value.push(char::from(*c));
                        i += 1;
                    }
                }
            }
        } else {
            let start = i;
            skip(&mut i, &|c| is_tchar(c) && c != b',');
            value.push_str(s.get(start..i).ok_or(DigestError::Syntax)?);
            if value.is_empty() {
                return Err(DigestError::Syntax);
            }
        }
        skip(&mut i, &|c| c == b' ' || c == b'\t');
        if i < b.len() && b.get(i) != Some(&b',') {
            return Err(DigestError::Syntax);
        }
        out.push((name.to_ascii_lowercase(), value));
    }
}

/// `\` and `"` escaped for a quoted-string (RFC 7230 §3.2.6).
fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// A fresh cnonce: 16 random octets as hex.
fn fresh_cnonce() -> Result<String, DigestError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|_| DigestError::Random)?;
    Ok(hex::encode(b))
}

/// RFC 7616 §3.5 `rspauth`: the response computed with an empty method and, for `auth-int`,
/// H(entity-body) of the response body; nonce, nc, cnonce and qop as in the request.
fn rspauth_of(sent: &AuthorizationHeader, username: &str, password: &str, body: &[u8]) -> String {
    let mut h = sent.clone();
    let ctx = AuthContext::new_with_method(
        username,
        password,
        sent.uri.as_str(),
        Some(body),
        HttpMethod::from(""),
    );
    h.digest(&ctx);
    h.response
}

/// Username and password; the password never prints.
#[derive(Clone)]
pub struct Credentials {
    username: String,
    password: Zeroizing<String>,
}

impl Credentials {
    /// PROFILE.md §4: username = B-TID, password = base64(MRK) ([`crate::gba::digest_password`]).
    #[must_use]
    pub fn new(username: &str, password: Zeroizing<String>) -> Self {
        Self {
            username: username.to_owned(),
            password,
        }
    }

    /// The username.
    #[must_use]
    pub fn username(&self) -> &str {
        &self.username
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({:?}, [REDACTED])", self.username)
    }
}

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

/// What a server puts in its challenge.
#[derive(Debug, Clone, Copy)]
pub struct ChallengeParams<'a> {
    /// [`realm_for`] the BM-SC FQDN.
    pub realm: &'a str,
    /// A fresh server nonce.
    pub nonce: &'a str,
    /// An opaque value the client echoes, if wanted.
    pub opaque: Option<&'a str>,
    /// The algorithm.
    pub algorithm: Algorithm,
    /// The qop values offered.
    pub qop: QopOffer,
    /// `stale=true`: the client's nonce expired but its credentials were right.
    pub stale: bool,
}

/// The `WWW-Authenticate` value of a 401 (RFC 7616 §3.3).
#[must_use]
pub fn challenge(p: &ChallengeParams<'_>) -> String {
    let mut out = format!(
        "Digest realm=\"{}\", qop=\"{}\", nonce=\"{}\"",
        quote(p.realm),
        p.qop.as_str(),
        quote(p.nonce)
    );
    if let Some(o) = p.opaque {
        out.push_str(&format!(", opaque=\"{}\"", quote(o)));
    }
    out.push_str(&format!(", algorithm={}", p.algorithm));
    if p.stale {
        out.push_str(", stale=true");
    }
    out
}

/// Why a server refuses a Digest `Authorization` it could parse.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum VerifyError {
    /// Another realm than ours.
    #[error("Digest realm does not match")]
    Realm,
    /// The `uri` is not the request target.
    #[error("Digest uri does not match the request target")]
    Uri,
    /// Another algorithm than the one challenged with.
    #[error("Digest algorithm does not match the challenge")]
    Algorithm,
    /// A qop not offered.
    #[error("Digest qop was not offered")]
    Qop,
    /// The `response` is wrong: wrong password, or (auth-int) a changed body.
    #[error("Digest response does not verify")]
    Response,
}

/// What the server expects of a request's `Authorization`.
#[derive(Debug, Clone, Copy)]
pub struct Expectation<'a> {
    /// Our realm.
    pub realm: &'a str,
    /// The request method.
    pub method: &'a str,
    /// The request target as received.
    pub uri: &'a str,
    /// The request body as received.
    pub body: &'a [u8],
    /// The algorithm challenged with.
    pub algorithm: Algorithm,
    /// The qop values offered.
    pub qop: QopOffer,
}

/// A client's `Authorization: Digest` as a server received it.
#[derive(Clone)]
pub struct DigestResponse {
    inner: AuthorizationHeader,
    algorithm: Algorithm,
    qop: Qop,
}

impl fmt::Debug for DigestResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DigestResponse(username={:?}, nonce={:?}, nc={:08x}, qop={}, algorithm={}, [REDACTED])",
            self.inner.username, self.inner.nonce, self.inner.nc, self.qop, self.algorithm
        )
    }
}

impl DigestResponse {
    /// Parses an `Authorization` value: Digest with qop, MD5 or SHA-256, no userhash.
    ///
    /// # Errors
    /// [`DigestError`] naming what is missing or unsupported.
    pub fn parse(value: &str) -> Result<Self, DigestError> {
        let params = digest_params(value)?;
        let checked = parse_auth_params(params)?;
        if let Some((_, nc)) = checked.iter().find(|(n, _)| n == "nc")
            && (nc.len() != 8 || !nc.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(DigestError::BadNc);
        }
        let inner = AuthorizationHeader::parse(params)?;
        let algorithm = Algorithm::from_crate(inner.algorithm)?;
        if inner.userhash {
            return Err(DigestError::Userhash);
        }
        let qop = inner.qop.map(Qop::from_crate).ok_or(DigestError::NoQop)?;
        Ok(Self {
            inner,
            algorithm,
            qop,
        })
    }

    /// The username (B-TID), to look up the password.
    #[must_use]
    pub fn username(&self) -> &str {
        &self.inner.username
    }

    /// The realm.
    #[must_use]
    pub fn realm(&self) -> &str {
        &self.inner.realm
    }

    /// The server nonce answered.
    #[must_use]
    pub fn nonce(&self) -> &str {
        &self.inner.nonce
    }

    /// The nonce count, for (nonce, nc) replay checks.
    #[must_use]
    pub fn nc(&self) -> u32 {
        self.inner.nc
    }

    /// The client nonce.
    #[must_use]
    pub fn cnonce(&self) -> &str {
        self.inner.cnonce.as_deref().unwrap_or_default()
    }

    /// The `uri` parameter.
    #[must_use]
    pub fn uri(&self) -> &str {
        &self.inner.uri
    }

    /// The opaque value echoed, if any.
    #[must_use]
    pub fn opaque(&self) -> Option<&str> {
        self.inner.opaque.as_deref()
    }

    /// The algorithm.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The qop.
    #[must_use]
    pub fn qop(&self) -> Qop {
        self.qop
    }

    /// Checks realm, uri, algorithm and qop against `expect`, then recomputes the response
    /// with `password` and compares in constant time. Nonce validity and (nonce, nc) replay
    /// are the caller's.
    ///
    /// # Errors
    /// The first [`VerifyError`] found.
    pub fn verify(&self, expect: &Expectation<'_>, password: &str) -> Result<(), VerifyError> {
        if self.inner.realm != expect.realm {
            return Err(VerifyError::Realm);
        }
        if self.inner.uri != expect.uri {
            return Err(VerifyError::Uri);
        }
        if self.algorithm != expect.algorithm {
            return Err(VerifyError::Algorithm);
        }
        if !expect.qop.allows(self.qop) {
            return Err(VerifyError::Qop);
        }
        let mut recomputed = self.inner.clone();
        let ctx = AuthContext::new_with_method(
            self.inner.username.as_str(),
            password,
            expect.uri,
            Some(expect.body),
            HttpMethod::from(expect.method),
        );
        recomputed.digest(&ctx);
        let received = self.inner.response.to_ascii_lowercase();
        if ct_eq(recomputed.response.as_bytes(), received.as_bytes()) {
            Ok(())
        } else {
            Err(VerifyError::Response)
        }
    }

    /// The `Authentication-Info` value for a 200 with `response_body` (RFC 7616 §3.5).
    #[must_use]
    pub fn authentication_info(&self, password: &str, response_body: &[u8]) -> String {
        let rspauth = rspauth_of(&self.inner, &self.inner.username, password, response_body);
        format!(
            "rspauth=\"{rspauth}\", qop={}, nc={:08x}, cnonce=\"{}\"",
            self.qop,
            self.inner.nc,
            quote(self.cnonce())
        )
    }
}

#[cfg(test)]
mod tests;
