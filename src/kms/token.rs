//! The access token a KMS request carries (`Authorization: Bearer`): a JWT from the MC
//! identity management server, signed ES256 or RS256 with a key of a configured JWKS file,
//! with `exp`, `nbf`, `iss` and `aud` checked against the caller's clock and policy, and the MC
//! service identities read from the claims of TS 24.482 (docs/mcx.md §4).
//!
//! Sans-IO: the caller passes the current time; nothing here reads a clock or a file.

use std::collections::HashSet;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use thiserror::Error;

/// Longest token read (a JWT with a few claims is well under 2 KiB).
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Longest JWKS document read.
pub const MAX_JWKS_LEN: usize = 256 * 1024;

/// \[CHOICE\] docs/mcx.md §4 (profile.md §6): the claims that carry a user's MC service
/// identities, after TS 24.482 (`mcptt_id`, `mcvideo_id`, `mcdata_id`), each a string.
pub const IDENTITY_CLAIMS: [&str; 3] = ["mcptt_id", "mcvideo_id", "mcdata_id"];

/// Why a token was refused. Never carries the token.
#[non_exhaustive]
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Not a JWT, or claims of the wrong type.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// Longer than [`MAX_TOKEN_LEN`].
    #[error("token longer than {MAX_TOKEN_LEN} octets")]
    TooLong,
    /// A header `alg` other than ES256 and RS256, or one the key is not for.
    #[error("algorithm {0} not accepted")]
    Algorithm(String),
    /// The header has no `kid`.
    #[error("token has no kid")]
    NoKid,
    /// No key of the JWKS has the token's `kid`.
    #[error("unknown key id {0}")]
    UnknownKid(String),
    /// The signature does not verify.
    #[error("token signature does not verify")]
    BadSignature,
    /// `exp` is past.
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("token not yet valid")]
    NotYetValid,
    /// `iss` is not the configured issuer (or missing).
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` does not contain the configured audience (or missing).
    #[error("wrong audience")]
    WrongAudience,
    /// The requested identity is not among the token's MC identities.
    #[error("identity not in the token")]
    IdentityNotInToken,
    /// The JWKS document could not be read.
    #[error("JWKS: {0}")]
    Jwks(String),
}

/// The keys tokens may be signed with (a JWKS document, RFC 7517 §5).
#[derive(Debug, Clone)]
pub struct Jwks(JwkSet);

impl Jwks {
    /// Reads a JWKS document.
    ///
    /// # Errors
    /// [`TokenError::Jwks`] when it is too long or not a JWK set.
    pub fn from_json(json: &[u8]) -> Result<Self, TokenError> {
        if json.len() > MAX_JWKS_LEN {
            return Err(TokenError::Jwks("document too long".into()));
        }
        serde_json::from_slice(json)
            .map(Self)
            .map_err(|e| TokenError::Jwks(e.to_string()))
    }

    fn find(&self, kid: &str) -> Option<&Jwk> {
        self.0.find(kid)
    }
}

/// What a KMS accepts: the issuer and audience it expects, and the clock skew it tolerates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPolicy {
    /// The expected `iss`.
    pub issuer: String,
    /// The audience the KMS answers to (one of `aud`).
    pub audience: String,
    /// Seconds of clock skew allowed on `exp` and `nbf`.
    pub leeway_secs: u64,
}

/// A verified token's MC service identities.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct McIdentities {
    /// `mcptt_id`.
    pub mcptt: Option<String>,
    /// `mcvideo_id`.
    pub mcvideo: Option<String>,
    /// `mcdata_id`.
    pub mcdata: Option<String>,
}

/// A token that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// `sub`, if any.
    pub subject: Option<String>,
    /// `exp`, seconds since the Unix epoch.
    pub expires: u64,
    /// The MC identities it carries.
    pub identities: McIdentities,
}

impl AccessToken {
    /// Whether `user_uri` is one of the token's MC identities.
    ///
    /// # Errors
    /// [`TokenError::IdentityNotInToken`] otherwise.
    pub fn authorize(&self, user_uri: &str) -> Result<(), TokenError> {
        let i = &self.identities;
        if [&i.mcptt, &i.mcvideo, &i.mcdata]
            .into_iter()
            .flatten()
            .any(|id| id == user_uri)
        {
            Ok(())
        } else {
            Err(TokenError::IdentityNotInToken)
        }
    }
}

#[derive(Deserialize)]
struct Claims {
    exp: u64,
    nbf: Option<u64>,
    sub: Option<String>,
    mcptt_id: Option<String>,
    mcvideo_id: Option<String>,
    mcdata_id: Option<String>,
}

/// Verifies `token` at time `now` (seconds since the Unix epoch).
///
/// Order: header (`alg` ES256 or RS256, `kid` in the JWKS, key of the same type) → signature →
/// `iss` and `aud` → `exp` and `nbf` → identities.
///
/// # Errors
/// The first check that fails, as a [`TokenError`].
pub fn verify(
    token: &str,
    jwks: &Jwks,
    policy: &TokenPolicy,
    now: u64,
) -> Result<AccessToken, TokenError> {
    use jsonwebtoken::errors::ErrorKind;

    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLong);
    }
    let header =
        jsonwebtoken::decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
    let alg = header.alg;
    if !matches!(alg, Algorithm::ES256 | Algorithm::RS256) {
        return Err(TokenError::Algorithm(format!("{alg:?}")));
    }
    let kid = header.kid.ok_or(TokenError::NoKid)?;
    let jwk = jwks
        .find(&kid)
        .ok_or_else(|| TokenError::UnknownKid(kid.chars().take(64).collect()))?;
    // A key that names its algorithm is used for that one only (RFC 7517 §4.4).
    if let Some(key_alg) = jwk.common.key_algorithm
        && format!("{key_alg:?}") != format!("{alg:?}")
    {
        return Err(TokenError::Algorithm(format!("{alg:?}")));
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|e| TokenError::Jwks(e.to_string()))?;

    let mut v = Validation::new(alg);
    v.algorithms = vec![alg];
    // Time is checked below against the caller's `now`.
    v.validate_exp = false;
    v.validate_nbf = false;
    v.required_spec_claims = ["exp", "iss", "aud"]
        .into_iter()
        .map(String::from)
        .collect::<HashSet<_>>();
    v.set_issuer(&[policy.issuer.as_str()]);
    v.set_audience(&[policy.audience.as_str()]);
    let data = jsonwebtoken::decode::<Claims>(token, &key, &v).map_err(|e| match e.kind() {
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
        ErrorKind::InvalidAudience => TokenError::WrongAudience,
        ErrorKind::MissingRequiredClaim(c) if c == "iss" => TokenError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(c) if c == "aud" => TokenError::WrongAudience,
        ErrorKind::InvalidAlgorithm => TokenError::Algorithm(format!("{alg:?}")),
        ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidKeyFormat => {
            TokenError::Jwks(e.to_string())
        }
        _ => TokenError::Malformed(e.to_string()),
    })?;
    let c = data.claims;
    if c.exp.saturating_add(policy.leeway_secs) <= now {
        return Err(TokenError::Expired);
    }
    if c.nbf
        .is_some_and(|nbf| nbf > now.saturating_add(policy.leeway_secs))
    {
        return Err(TokenError::NotYetValid);
    }
    Ok(AccessToken {
        subject: c.sub,
        expires: c.exp,
        identities: McIdentities {
            mcptt: c.mcptt_id,
            mcvideo: c.mcvideo_id,
            mcdata: c.mcdata_id,
        },
    })
}
