//! Where a UE's GBA keys come from (TS 33.220): on a phone, the platform GBA API runs the
//! bootstrapping and hands over the B-TID and the NAF keys for the BM-SC; in a lab, fixed keys.

use std::fmt;
use std::time::SystemTime;

use thiserror::Error;

use crate::crypto::{Mrk, Muk};
use crate::gba::{Btid, GbaKeys, digest_password};
use crate::mbms::MukId;
use crate::mbms::digest::Credentials;

/// The keys of one bootstrapping for the BM-SC, with their lifetime.
#[derive(Clone)]
pub struct UeGbaKeys {
    /// The B-TID: the Digest username and the MIKEY IDr.
    pub btid: Btid,
    /// The NAF keys (GBA_ME or GBA_U) for the BM-SC's NAF_Id.
    pub material: GbaKeys,
    /// When the bootstrapping's key lifetime ends.
    pub expiry: SystemTime,
}

impl UeGbaKeys {
    /// Whether the keys' lifetime is over at `now`.
    #[must_use]
    pub fn is_expired(&self, now: SystemTime) -> bool {
        now >= self.expiry
    }

    /// The MUK (docs/profile.md §1).
    #[must_use]
    pub fn muk(&self) -> Muk {
        self.material.muk()
    }

    /// The MUK ID of these keys for the BM-SC `bmsc_fqdn`: see [`muk_id`].
    #[must_use]
    pub fn muk_id(&self, bmsc_fqdn: &str) -> MukId {
        muk_id(bmsc_fqdn, &self.btid)
    }

    /// The MRK (docs/profile.md §1).
    #[must_use]
    pub fn mrk(&self) -> Mrk {
        self.material.mrk()
    }

    /// docs/profile.md §4 Digest credentials: username = B-TID, password = base64(MRK).
    #[must_use]
    pub fn digest_credentials(&self) -> Credentials {
        Credentials::new(self.btid.as_str(), digest_password(&self.material.mrk()))
    }
}

impl fmt::Debug for UeGbaKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UeGbaKeys")
            .field("btid", &self.btid)
            .field("material", &self.material)
            .field("expiry", &self.expiry)
            .finish()
    }
}

/// MUK ID = IDi ‖ IDr = BM-SC FQDN ‖ B-TID (docs/profile.md §1): the identities of the MSK
/// messages protected under the MUK of this bootstrapping.
#[must_use]
pub fn muk_id(bmsc_fqdn: &str, btid: &Btid) -> MukId {
    MukId::new(bmsc_fqdn.as_bytes(), btid.as_str().as_bytes())
}

/// The provider could not deliver keys (e.g. bootstrapping failed). The message must not
/// hold key material.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("GBA key provider: {0}")]
pub struct ProviderError(pub String);

/// A source of GBA keys for the BM-SC.
pub trait GbaKeyProvider: Send + Sync {
    /// Keys valid now, bootstrapping again if needed. May block (it is called off the async
    /// executor).
    ///
    /// # Errors
    /// [`ProviderError`] when no keys can be had.
    fn keys(&self) -> Result<UeGbaKeys, ProviderError>;

    /// The BM-SC refused the keys of `btid` (docs/profile.md §4: unknown B-TID or past its key
    /// lifetime): the next [`Self::keys`] should bootstrap again. The default does nothing.
    fn invalidate(&self, btid: &Btid) {
        let _ = btid;
    }
}

/// Fixed keys, for labs and tests.
#[derive(Debug, Clone)]
pub struct StaticGbaKeys {
    keys: UeGbaKeys,
}

impl StaticGbaKeys {
    /// Always hands out `keys`.
    #[must_use]
    pub fn new(keys: UeGbaKeys) -> Self {
        Self { keys }
    }
}

impl GbaKeyProvider for StaticGbaKeys {
    fn keys(&self) -> Result<UeGbaKeys, ProviderError> {
        Ok(self.keys.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::crypto::KsNaf;

    #[test]
    fn debug_is_redacted_and_credentials_follow_the_profile() {
        let ks_naf =
            KsNaf::from_hex("04cc42756103b64c1010b3a9503db631eb7570258823366a7ec44376488bf02f")
                .expect("hex");
        let keys = UeGbaKeys {
            btid: "ICEiIyQlJicoKSorLC0uLw==@bsf.example"
                .parse()
                .expect("btid"),
            material: GbaKeys::Me { ks_naf },
            expiry: SystemTime::UNIX_EPOCH + Duration::from_secs(10),
        };
        let dbg = format!("{keys:?}");
        assert!(
            dbg.contains("[REDACTED]") && !dbg.contains("04cc4275"),
            "{dbg}"
        );
        let c = keys.digest_credentials();
        assert_eq!(c.username(), "ICEiIyQlJicoKSorLC0uLw==@bsf.example");
        assert!(!format!("{c:?}").contains("9TsOrbpC"));
        assert!(keys.is_expired(SystemTime::UNIX_EPOCH + Duration::from_secs(10)));
        assert!(!keys.is_expired(SystemTime::UNIX_EPOCH + Duration::from_secs(9)));
        let p = StaticGbaKeys::new(keys);
        assert_eq!(
            p.keys().map(|k| k.btid.to_string()).ok(),
            Some(c.username().to_owned())
        );
    }
}
