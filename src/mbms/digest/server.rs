//! The server half of RFC 7616 Digest: the challenge, verification of an `Authorization`, and
//! `Authentication-Info`. Nonce issuing, expiry and (nonce, nc) replay are the caller's policy.

use core::fmt;

use digest_auth::{AuthContext, AuthorizationHeader, HttpMethod};
use thiserror::Error;

use super::{
    Algorithm, DigestError, Qop, QopOffer, clip, digest_params, parse_auth_params, quote,
    rspauth_of,
};
use crate::crypto::ct_eq;

/// What a server puts in its challenge.
#[derive(Debug, Clone, Copy)]
pub struct ChallengeParams<'a> {
    /// [`realm_for`](crate::mbms::digest::realm_for) the BM-SC FQDN.
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
#[non_exhaustive]
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
    repeated: Option<String>,
}

/// The parameters of an `Authorization` the server reads, each the last value given.
#[derive(Default)]
struct Fields {
    username: Option<String>,
    realm: Option<String>,
    nonce: Option<String>,
    uri: Option<String>,
    response: Option<String>,
    qop: Option<String>,
    nc: Option<String>,
    cnonce: Option<String>,
    opaque: Option<String>,
    algorithm: Option<String>,
    userhash: Option<String>,
}

impl Fields {
    /// The checks, in the order the header used to be checked: required parameters, qop, nc,
    /// algorithm, cnonce with qop, then the profile's algorithm, userhash and qop.
    fn build(self, repeated: Option<String>) -> Result<DigestResponse, DigestError> {
        let username = self.username.ok_or(DigestError::Missing("username"))?;
        let realm = self.realm.ok_or(DigestError::Missing("realm"))?;
        let nonce = self.nonce.ok_or(DigestError::Missing("nonce"))?;
        let uri = self.uri.ok_or(DigestError::Missing("uri"))?;
        let response = self.response.ok_or(DigestError::Missing("response"))?;
        let qop = match self.qop.as_deref() {
            None => None,
            Some("auth") => Some(Qop::Auth),
            Some("auth-int") => Some(Qop::AuthInt),
            Some(other) => return Err(DigestError::UnsupportedQop(clip(other))),
        };
        let nc = match self.nc.as_deref() {
            None => 1,
            Some(hex) => u32::from_str_radix(hex, 16).map_err(|_| DigestError::BadNc)?,
        };
        // The tokens are matched exactly, as RFC 7616 §3.3 spells them.
        let algorithm = match self.algorithm.as_deref() {
            None | Some("MD5") => Algorithm::Md5,
            Some("SHA-256") => Algorithm::Sha256,
            Some(other) => return Err(DigestError::UnsupportedAlgorithm(clip(other))),
        };
        if qop.is_some() && self.cnonce.is_none() {
            return Err(DigestError::Missing("cnonce"));
        }
        if self
            .userhash
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            return Err(DigestError::Userhash);
        }
        let qop = qop.ok_or(DigestError::NoQop)?;
        let inner = AuthorizationHeader {
            realm,
            nonce,
            opaque: self.opaque,
            userhash: false,
            algorithm: algorithm.to_crate(),
            response,
            username,
            uri,
            qop: Some(qop.to_crate()),
            cnonce: self.cnonce,
            nc,
        };
        Ok(DigestResponse {
            inner,
            algorithm,
            qop,
            repeated,
        })
    }
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
    /// The header is read once, by [`parse_auth_params`]; parameter names are matched in any
    /// case (RFC 7235 §2.1). A name that occurs twice does not fail here: the first such name
    /// is kept for [`DigestResponse::repeated_parameter`], so the caller can refuse it with the
    /// username known. Of a repeated name, the last value is used.
    ///
    /// # Errors
    /// [`DigestError`] naming what is missing or unsupported.
    pub fn parse(value: &str) -> Result<Self, DigestError> {
        let params = digest_params(value)?;
        let list = parse_auth_params(params)?;
        let repeated = list
            .iter()
            .enumerate()
            .find(|(i, (name, _))| list.iter().take(*i).any(|(seen, _)| seen == name))
            .map(|(_, (name, _))| name.clone());
        let mut fields = Fields::default();
        for (name, value) in list {
            let slot = match name.as_str() {
                "username" => &mut fields.username,
                "realm" => &mut fields.realm,
                "nonce" => &mut fields.nonce,
                "uri" => &mut fields.uri,
                "response" => &mut fields.response,
                "qop" => &mut fields.qop,
                "nc" => {
                    if value.len() != 8 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(DigestError::BadNc);
                    }
                    &mut fields.nc
                }
                "cnonce" => &mut fields.cnonce,
                "opaque" => &mut fields.opaque,
                "algorithm" => &mut fields.algorithm,
                "userhash" => &mut fields.userhash,
                _ => continue,
            };
            *slot = Some(value);
        }
        fields.build(repeated)
    }

    /// The first parameter name that occurs twice (RFC 9110 §11.2 has each name occur once in
    /// a challenge; credentials are held to the same).
    #[must_use]
    pub fn repeated_parameter(&self) -> Option<&str> {
        self.repeated.as_deref()
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
