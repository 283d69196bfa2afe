//! The KMS's HTTP surface without the HTTP (docs/mcx.md §7): which Annex D request a method and
//! path are, and whether the bearer token of a request lets it ask for an identity, each refusal
//! with the status a server answers. The server that moves the bytes comes on top of this.

use super::token::{self, AccessToken, Jwks, TokenError, TokenPolicy};

/// The path prefix of the Annex D requests.
pub const BASE_PATH: &str = "/keymanagement/identity/v1";

/// Longest path segment accepted (a SIP URI, percent-encoded).
const MAX_SEGMENT_LEN: usize = 1024;

/// An Annex D request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `POST …/init`: the KMS certificate.
    Init,
    /// `POST …/keyprov`, or `…/keyprov/<user>/<time>` for a given identity and time (future key
    /// periods included); both segments percent-decoded.
    KeyProv {
        /// The identity asked for, when the path names one.
        user: Option<String>,
        /// The time asked for, as written in the path.
        time: Option<String>,
    },
    /// `POST …/certcache`.
    CertCache,
}

/// Why a request is refused before any key material is looked at.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// No such path.
    #[error("no such resource")]
    NotFound,
    /// A path of the KMS with another method than POST.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// No `Authorization: Bearer` header.
    #[error("no bearer token")]
    NoToken,
    /// The token was refused.
    #[error("token refused: {0}")]
    Token(TokenError),
    /// The token does not carry the identity asked for.
    #[error("identity not in the token")]
    Forbidden,
}

impl RequestError {
    /// The HTTP status a server answers.
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::NoToken | Self::Token(_) => 401,
            Self::Forbidden => 403,
        }
    }
}

fn percent_decode(s: &str) -> Option<String> {
    if s.is_empty() || s.len() > MAX_SEGMENT_LEN {
        return None;
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    let s = String::from_utf8(out).ok()?;
    (!s.chars().any(char::is_control)).then_some(s)
}

/// Which Annex D request `method` and `path` (without query) are.
///
/// # Errors
/// [`RequestError::NotFound`] or [`RequestError::MethodNotAllowed`].
pub fn route(method: &str, path: &str) -> Result<Route, RequestError> {
    let rest = path
        .strip_prefix(BASE_PATH)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or(RequestError::NotFound)?;
    let segments: Vec<&str> = rest.split('/').collect();
    let route = match segments.as_slice() {
        ["init"] => Route::Init,
        ["certcache"] => Route::CertCache,
        ["keyprov"] => Route::KeyProv {
            user: None,
            time: None,
        },
        ["keyprov", user, time] => Route::KeyProv {
            user: Some(percent_decode(user).ok_or(RequestError::NotFound)?),
            time: Some(percent_decode(time).ok_or(RequestError::NotFound)?),
        },
        _ => return Err(RequestError::NotFound),
    };
    if method == "POST" {
        Ok(route)
    } else {
        Err(RequestError::MethodNotAllowed)
    }
}

/// Checks the `Authorization` header value at `now`: a bearer token that verifies
/// ([`token::verify`]). The first half of [`authorize`], for a server that checks the token
/// before it reads the request that names the identity.
///
/// # Errors
/// [`RequestError::NoToken`] or [`RequestError::Token`] (401).
pub fn authenticate(
    authorization: Option<&str>,
    jwks: &Jwks,
    policy: &TokenPolicy,
    now: u64,
) -> Result<AccessToken, RequestError> {
    let value = authorization.ok_or(RequestError::NoToken)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(RequestError::NoToken)?;
    if !scheme.eq_ignore_ascii_case("Bearer") {
        return Err(RequestError::NoToken);
    }
    token::verify(token.trim(), jwks, policy, now).map_err(RequestError::Token)
}

/// Checks the `Authorization` header value of a request for `user_uri` at `now`: a bearer
/// token that verifies ([`token::verify`]) and carries the identity.
///
/// # Errors
/// [`RequestError::NoToken`] or [`RequestError::Token`] (401), [`RequestError::Forbidden`]
/// (403).
pub fn authorize(
    authorization: Option<&str>,
    user_uri: &str,
    jwks: &Jwks,
    policy: &TokenPolicy,
    now: u64,
) -> Result<AccessToken, RequestError> {
    let t = authenticate(authorization, jwks, policy, now)?;
    match t.authorize(user_uri) {
        Ok(()) => Ok(t),
        Err(_) => Err(RequestError::Forbidden),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_annex_d_paths_route() {
        assert_eq!(
            route("POST", "/keymanagement/identity/v1/init"),
            Ok(Route::Init)
        );
        assert_eq!(
            route("POST", "/keymanagement/identity/v1/certcache"),
            Ok(Route::CertCache)
        );
        assert_eq!(
            route("POST", "/keymanagement/identity/v1/keyprov"),
            Ok(Route::KeyProv {
                user: None,
                time: None
            })
        );
        assert_eq!(
            route(
                "POST",
                "/keymanagement/identity/v1/keyprov/sip%3Aalice%40example.org/2027-01-01T00%3A00%3A00Z"
            ),
            Ok(Route::KeyProv {
                user: Some("sip:alice@example.org".into()),
                time: Some("2027-01-01T00:00:00Z".into())
            })
        );
    }

    #[test]
    fn other_paths_and_methods_are_refused_with_their_status() {
        for p in [
            "/",
            "/keymanagement/identity/v1",
            "/keymanagement/identity/v1/",
            "/keymanagement/identity/v1/init/x",
            "/keymanagement/identity/v1/keyprov/only-user",
            "/keymanagement/identity/v1/keyprov/%zz/t",
            "/keymanagement/identity/v1/keyprov/a%0a/t",
            "/keymanagement/identity/v2/init",
        ] {
            let e = route("POST", p).unwrap_err();
            assert_eq!(e.status(), 404, "{p}");
        }
        let e = route("GET", "/keymanagement/identity/v1/init").unwrap_err();
        assert_eq!(
            (e.clone(), e.status()),
            (RequestError::MethodNotAllowed, 405)
        );
    }

    #[test]
    fn a_missing_or_non_bearer_authorization_is_401() {
        let jwks = Jwks::from_json(br#"{"keys":[]}"#).unwrap();
        let policy = TokenPolicy {
            issuer: "i".into(),
            audience: "a".into(),
            leeway_secs: 0,
        };
        for h in [
            None,
            Some("Basic abc"),
            Some("Bearer"),
            Some("Bearer a.b.c"),
        ] {
            let e = authorize(h, "sip:a@b", &jwks, &policy, 0).unwrap_err();
            assert_eq!(e.status(), 401, "{h:?}");
        }
    }
}
