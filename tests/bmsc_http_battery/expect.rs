//! What a case expects back, checked exactly: the status, and whether each of the challenge,
//! `Allow`, `Connection: close`, `Authentication-Info` and per-item codes is there.

use mbms_keys::mbms::digest::RspauthStatus;
use mbms_keys::mbms::keyreq::{
    MIME_MSK_RESPONSE, MIME_REGISTER_RESPONSE, MskResponse, RegisterResponse,
};

use crate::inputs::Observed;
use crate::lab::REALM;
use crate::raw::Raw;

#[derive(Debug, Clone, Default)]
pub struct Expect {
    /// The status; `None`: the connection closes without an answer.
    pub status: Option<u16>,
    /// A Digest challenge in our realm, with this `stale` flag.
    pub stale: Option<bool>,
    /// `Allow`.
    pub allow: Option<&'static str>,
    /// `Connection: close`.
    pub close: bool,
    /// A short `text/plain` body.
    pub text: bool,
    /// `Authentication-Info` whose `rspauth` verifies.
    pub rspauth: bool,
    /// The per-item codes of a 200.
    pub items: Option<Vec<u16>>,
    /// Digest failures the case adds to the counter.
    pub failures: u64,
}

pub fn status(code: u16) -> Expect {
    Expect {
        status: Some(code),
        ..Expect::default()
    }
}

/// Closed without a response.
pub fn closed() -> Expect {
    Expect::default()
}

/// 401 with a fresh challenge, not counted as a failure: no credentials were sent.
pub fn challenged() -> Expect {
    status(401).challenge(false)
}

/// 401 with a fresh challenge (`stale` as given), counted as a Digest failure.
pub fn refused(stale: bool) -> Expect {
    let mut e = status(401).challenge(stale);
    e.failures = 1;
    e
}

/// An authenticated answer with a text body: 400 or 415.
pub fn authed_error(code: u16) -> Expect {
    let mut e = status(code);
    e.text = true;
    e.rspauth = true;
    e
}

/// 200 with these per-item codes.
pub fn items(codes: &[u16]) -> Expect {
    let mut e = status(200);
    e.rspauth = true;
    e.items = Some(codes.to_vec());
    e
}

impl Expect {
    pub fn challenge(mut self, stale: bool) -> Self {
        self.stale = Some(stale);
        self
    }

    pub fn allow(mut self, methods: &'static str) -> Self {
        self.allow = Some(methods);
        self
    }

    pub fn close(mut self) -> Self {
        self.close = true;
        self
    }

    pub fn text(mut self) -> Self {
        self.text = true;
        self
    }

    pub fn check(&self, case: &str, seen: &Observed) {
        let r = match (&seen.resp, self.status) {
            (None, None) => return,
            (Some(r), Some(code)) => {
                assert_eq!(r.status, code, "{case}: status of {r:?}");
                r
            }
            (got, want) => panic!("{case}: expected {want:?}, got {got:?}"),
        };
        assert!(!r.continued, "{case}: no 100 Continue");
        assert_eq!(
            r.header("connection").is_some_and(|c| c == "close"),
            self.close,
            "{case}: Connection: close"
        );
        assert_eq!(r.header("allow"), self.allow, "{case}: Allow");
        match self.stale {
            Some(stale) => {
                let c = r.challenge();
                assert_eq!(c.realm(), REALM, "{case}");
                assert_eq!(c.stale(), stale, "{case}: stale");
            }
            None => assert!(r.header("www-authenticate").is_none(), "{case}: challenge"),
        }
        if self.text {
            assert!(
                r.header("content-type")
                    .is_some_and(|c| c.starts_with("text/plain")),
                "{case}: text body: {r:?}"
            );
        }
        let info = r.header("authentication-info");
        assert_eq!(info.is_some(), self.rspauth, "{case}: Authentication-Info");
        if self.rspauth {
            let (auth, creds) = seen.signed.as_ref().expect("a signed request");
            assert_eq!(
                auth.check_authentication_info(creds, info, &r.body),
                RspauthStatus::Verified,
                "{case}: rspauth"
            );
        }
        if let Some(want) = &self.items {
            assert_eq!(&item_codes(r), want, "{case}: per-item codes");
        }
    }
}

/// The per-item codes of a register/deregister or MSK response.
fn item_codes(r: &Raw) -> Vec<u16> {
    match r.header("content-type") {
        Some(MIME_REGISTER_RESPONSE) => RegisterResponse::parse(&r.body)
            .expect("register response")
            .statuses
            .iter()
            .map(|s| s.code)
            .collect(),
        Some(MIME_MSK_RESPONSE) => MskResponse::parse(&r.body)
            .expect("MSK response")
            .statuses
            .iter()
            .map(|s| s.code)
            .collect(),
        other => panic!("not an item response: {other:?}"),
    }
}
