//! HTTP Digest (RFC 7616) as the Key Request interface uses it (docs/profile.md §4): realm
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

use digest_auth::{AlgorithmType, AuthContext, AuthorizationHeader, HttpMethod};
use thiserror::Error;
use zeroize::Zeroizing;

mod client;
mod server;

pub use client::{Authorization, Challenge, ClientSession, RspauthStatus};
pub use server::{ChallengeParams, DigestResponse, Expectation, VerifyError, challenge};

/// docs/profile.md §4: the realm prefix of the BM-SC (TS 33.220 usage of RFC 7616).
pub const REALM_PREFIX: &str = "3GPP-bootstrapping@";

/// Longest `WWW-Authenticate`, `Authorization` or `Authentication-Info` value handled.
pub const MAX_HEADER_LEN: usize = 4096;

/// docs/profile.md §4: `3GPP-bootstrapping@<fqdn>`.
#[must_use]
pub fn realm_for(fqdn: &str) -> String {
    format!("{REALM_PREFIX}{fqdn}")
}

/// docs/profile.md §4: the Digest algorithms of the profile (no `-sess` variants).
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
    /// `auth-int`: also H(entity-body), the docs/profile.md §4 default [SEED: body integrity].
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

    fn to_crate(self) -> digest_auth::Qop {
        match self {
            Self::Auth => digest_auth::Qop::AUTH,
            Self::AuthInt => digest_auth::Qop::AUTH_INT,
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
    /// `qop="auth-int"` (docs/profile.md §4 default).
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
#[non_exhaustive]
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
    /// An algorithm outside docs/profile.md §4.
    #[error("Digest algorithm {0:?} is not supported (MD5 or SHA-256)")]
    UnsupportedAlgorithm(String),
    /// A qop value other than `auth` / `auth-int`.
    #[error("Digest qop {0:?} is not supported")]
    UnsupportedQop(String),
    /// A charset other than UTF-8.
    #[error("Digest charset {0:?} is not supported")]
    UnsupportedCharset(String),
    /// No qop: RFC 2069 Digest, which cannot carry `rspauth` as docs/profile.md §4 requires.
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
    #[cfg(test)]
    PARSES.with(|n| n.set(n.get() + 1));
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
            // Without an escape the value is the slice up to the closing quote.
            let plain = b
                .get(i..)
                .and_then(|rest| rest.iter().position(|c| *c == b'"' || *c == b'\\'))
                .filter(|end| b.get(i + end) == Some(&b'"'));
            if let Some(end) = plain {
                value.push_str(s.get(i..i + end).ok_or(DigestError::Syntax)?);
                i += end;
            }
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

#[cfg(test)]
thread_local! {
    /// How many times this thread ran [`parse_auth_params`].
    static PARSES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many times this thread ran [`parse_auth_params`].
#[cfg(test)]
fn auth_param_parses() -> u64 {
    PARSES.with(std::cell::Cell::get)
}

/// `\` and `"` escaped for a quoted-string (RFC 7230 §3.2.6); borrowed when there is none.
fn quote(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains(['\\', '"']) {
        s.replace('\\', "\\\\").replace('"', "\\\"").into()
    } else {
        s.into()
    }
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
    /// docs/profile.md §4: username = B-TID, password = base64(MRK) ([`crate::gba::digest_password`]).
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

#[cfg(test)]
mod tests;
