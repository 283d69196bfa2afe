//! Where the BM-SC, as a NAF, gets the GBA keys of a B-TID (TS 33.220 4.5.3, 5.3.3).
//!
//! [`KeySource`] is the seam: [`EmbeddedKeySource`] serves lab subscribers listed in the
//! configuration; `gba::zn::ZnKeySource` asks a BSF (Diameter BIR/BIA, TS 29.109).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use thiserror::Error;

use super::{Btid, GbaKeys, NafId, ks_ext_naf, ks_int_naf, ks_naf};
use crate::crypto::{KdfError, Ks, KsExtNaf, KsIntNaf, KsNaf};

/// The NAF keys of one bootstrapping, as a BSF hands them to the NAF over Zn (TS 33.220 4.5.3):
/// the IMPI, the keys and their lifetime.
#[derive(Clone)]
pub struct SubscriberKeys {
    /// The bootstrapping transaction identifier.
    pub btid: Btid,
    /// The subscriber's private identity, what service authorisation is checked against.
    pub impi: String,
    /// Ks_NAF (GBA_ME) or Ks_ext_NAF + Ks_int_NAF (GBA_U) for this BM-SC's NAF_Id.
    pub keys: GbaKeys,
    /// End of the key lifetime: the keys are not used at or after it (TS 33.220 4.5.3).
    pub expires: SystemTime,
}

impl fmt::Debug for SubscriberKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriberKeys")
            .field("btid", &self.btid)
            .field("impi", &self.impi)
            .field("keys", &"[REDACTED]")
            .field("expires", &self.expires)
            .finish()
    }
}

/// Why a key source gave no keys. Carries no key material.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeySourceError {
    /// No bootstrapping with this B-TID is known: the UE has to bootstrap again.
    #[error("unknown B-TID")]
    UnknownBtid,
    /// The bootstrapping is known but its key lifetime has ended.
    #[error("GBA keys of this B-TID have expired")]
    Expired,
    /// The BSF knows the bootstrapping but refuses this NAF its keys (Zn Experimental-Result
    /// 5402 DIAMETER_ERROR_NOT_AUTHORIZED).
    #[error("the BSF does not authorize this NAF for the B-TID")]
    NotAuthorized,
    /// The source could not answer (BSF unreachable, timeout): a temporary failure.
    #[error("key source unavailable: {0}")]
    Unavailable(String),
}

/// A source of GBA NAF keys by B-TID.
///
/// Synchronous on purpose, like the store: a network-backed source is called from
/// `spawn_blocking` by the driver, and the pure Key Request handlers stay free of async.
pub trait KeySource: Send + Sync {
    /// The keys of `btid`, valid at `now`.
    ///
    /// # Errors
    /// [`KeySourceError::UnknownBtid`], [`KeySourceError::Expired`] when the key lifetime ended
    /// at or before `now`, [`KeySourceError::Unavailable`] on a temporary failure.
    fn lookup(&self, btid: &str, now: SystemTime) -> Result<SubscriberKeys, KeySourceError>;

    /// Whether [`lookup`](Self::lookup) may wait on anything (a network round trip, a lock held
    /// across one): then the driver calls it from the blocking pool. A source that only reads
    /// memory says `false`, so a Key Request that writes nothing can run on the runtime.
    fn may_block(&self) -> bool {
        true
    }
}

impl<T: KeySource + ?Sized> KeySource for Arc<T> {
    fn lookup(&self, btid: &str, now: SystemTime) -> Result<SubscriberKeys, KeySourceError> {
        (**self).lookup(btid, now)
    }

    fn may_block(&self) -> bool {
        (**self).may_block()
    }
}

impl<T: KeySource + ?Sized> KeySource for Box<T> {
    fn lookup(&self, btid: &str, now: SystemTime) -> Result<SubscriberKeys, KeySourceError> {
        (**self).lookup(btid, now)
    }

    fn may_block(&self) -> bool {
        (**self).may_block()
    }
}

/// The key material of a lab subscriber, in one of the forms a configuration may give it.
#[derive(Clone)]
pub enum KeyMaterial {
    /// GBA_ME: Ks_NAF as the BSF would hand it over.
    KsNaf(KsNaf),
    /// Ks = CK ‖ IK and the RAND of the bootstrapping: the NAF keys are derived for this BM-SC's
    /// NAF_Id (TS 33.220 B.3), GBA_U (Ks_ext_NAF + Ks_int_NAF) when `gba_u`, else GBA_ME.
    Ks {
        /// CK ‖ IK.
        ks: Ks,
        /// RAND of the bootstrapping (public: it is in the B-TID).
        rand: [u8; 16],
        /// Derive GBA_U keys instead of GBA_ME.
        gba_u: bool,
    },
    /// GBA_U: Ks_ext_NAF and Ks_int_NAF as the BSF would hand them over.
    GbaU {
        /// Ks_ext_NAF.
        ks_ext_naf: KsExtNaf,
        /// Ks_int_NAF.
        ks_int_naf: KsIntNaf,
    },
}

impl KeyMaterial {
    /// The NAF keys for `naf_id` and `impi`.
    ///
    /// # Errors
    /// [`KdfError::ParamTooLong`] when the IMPI or NAF_Id exceeds 65535 octets.
    pub fn naf_keys(&self, impi: &str, naf_id: &NafId) -> Result<GbaKeys, KdfError> {
        Ok(match self {
            Self::KsNaf(k) => GbaKeys::Me { ks_naf: k.clone() },
            Self::Ks {
                ks,
                rand,
                gba_u: false,
            } => GbaKeys::Me {
                ks_naf: ks_naf(ks, rand, impi, naf_id)?,
            },
            Self::Ks {
                ks,
                rand,
                gba_u: true,
            } => GbaKeys::U {
                ks_ext_naf: ks_ext_naf(ks, rand, impi, naf_id)?,
                ks_int_naf: ks_int_naf(ks, rand, impi, naf_id)?,
            },
            Self::GbaU {
                ks_ext_naf,
                ks_int_naf,
            } => GbaKeys::U {
                ks_ext_naf: ks_ext_naf.clone(),
                ks_int_naf: ks_int_naf.clone(),
            },
        })
    }
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::KsNaf(_) => f.write_str("KeyMaterial::KsNaf([REDACTED])"),
            Self::Ks { gba_u, .. } => write!(f, "KeyMaterial::Ks([REDACTED], gba_u: {gba_u})"),
            Self::GbaU { .. } => f.write_str("KeyMaterial::GbaU([REDACTED])"),
        }
    }
}

/// One subscriber of an [`EmbeddedKeySource`].
#[derive(Debug, Clone)]
pub struct EmbeddedSubscriber {
    /// The B-TID the UE presents.
    pub btid: Btid,
    /// The subscriber's IMPI.
    pub impi: String,
    /// Its key material.
    pub material: KeyMaterial,
    /// End of the key lifetime.
    pub expires: SystemTime,
}

/// An [`EmbeddedKeySource`] could not be built.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EmbeddedKeySourceError {
    /// Two subscribers share a B-TID.
    #[error("B-TID {0} is listed twice")]
    DuplicateBtid(String),
    /// A key derivation refused its input (an IMPI or FQDN over 65535 octets).
    #[error("subscriber {btid}: {source}")]
    Kdf {
        /// The subscriber's B-TID.
        btid: String,
        /// The KDF error.
        source: KdfError,
    },
}

/// A [`KeySource`] over a fixed list of subscribers (lab and test deployments): the NAF keys are
/// derived once, at construction.
pub struct EmbeddedKeySource {
    naf_id: NafId,
    by_btid: HashMap<String, SubscriberKeys>,
}

impl EmbeddedKeySource {
    /// Derives the NAF keys of every subscriber for the BM-SC `fqdn` (NAF_Id = fqdn ‖ 0100000001).
    ///
    /// # Errors
    /// [`EmbeddedKeySourceError::DuplicateBtid`], [`EmbeddedKeySourceError::Kdf`].
    pub fn new(
        fqdn: &str,
        subscribers: impl IntoIterator<Item = EmbeddedSubscriber>,
    ) -> Result<Self, EmbeddedKeySourceError> {
        let naf_id = NafId::mbms(fqdn);
        let mut by_btid = HashMap::new();
        for s in subscribers {
            let keys = s.material.naf_keys(&s.impi, &naf_id).map_err(|source| {
                EmbeddedKeySourceError::Kdf {
                    btid: s.btid.to_string(),
                    source,
                }
            })?;
            match by_btid.entry(s.btid.as_str().to_owned()) {
                Entry::Occupied(e) => {
                    return Err(EmbeddedKeySourceError::DuplicateBtid(e.key().clone()));
                }
                Entry::Vacant(e) => {
                    e.insert(SubscriberKeys {
                        btid: s.btid,
                        impi: s.impi,
                        keys,
                        expires: s.expires,
                    });
                }
            }
        }
        Ok(Self { naf_id, by_btid })
    }

    /// The NAF_Id the keys were derived for.
    #[must_use]
    pub fn naf_id(&self) -> &NafId {
        &self.naf_id
    }

    /// Number of subscribers.
    #[must_use]
    pub fn len(&self) -> usize {
        self.by_btid.len()
    }

    /// Whether there are no subscribers.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.by_btid.is_empty()
    }
}

impl fmt::Debug for EmbeddedKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedKeySource")
            .field("naf_id", &self.naf_id)
            .field("subscribers", &self.by_btid.len())
            .finish()
    }
}

impl KeySource for EmbeddedKeySource {
    fn lookup(&self, btid: &str, now: SystemTime) -> Result<SubscriberKeys, KeySourceError> {
        let keys = self.by_btid.get(btid).ok_or(KeySourceError::UnknownBtid)?;
        if keys.expires <= now {
            return Err(KeySourceError::Expired);
        }
        Ok(keys.clone())
    }

    /// A map lookup in memory.
    fn may_block(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const IMPI: &str = "001010123456789@ims.mnc001.mcc001.3gppnetwork.org";
    const NAF: &str = "bmsc.mnc001.mcc001.pub.3gppnetwork.org";
    const BTID: &str = "ICEiIyQlJicoKSorLC0uLw==@bsf.mnc001.mcc001.pub.3gppnetwork.org";

    fn ks() -> Ks {
        Ks::from_hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
            .expect("hex")
    }

    fn rand() -> [u8; 16] {
        core::array::from_fn(|i| 0x20 + i as u8)
    }

    fn sub(btid: &str, material: KeyMaterial, expires: SystemTime) -> EmbeddedSubscriber {
        EmbeddedSubscriber {
            btid: btid.parse().expect("btid"),
            impi: IMPI.to_owned(),
            material,
            expires,
        }
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn ks_and_rand_derive_the_spec_notes_5_2_keys() {
        let me = sub(
            BTID,
            KeyMaterial::Ks {
                ks: ks(),
                rand: rand(),
                gba_u: false,
            },
            at(2000),
        );
        let u = sub(
            "u@bsf",
            KeyMaterial::Ks {
                ks: ks(),
                rand: rand(),
                gba_u: true,
            },
            at(2000),
        );
        let src = EmbeddedKeySource::new(NAF, [me, u]).expect("build");
        let got = src.lookup(BTID, at(1000)).expect("known");
        assert_eq!(got.impi, IMPI);
        match &got.keys {
            GbaKeys::Me { ks_naf } => assert_eq!(
                hex::encode(ks_naf.as_bytes()),
                "7075e981aa34117f3600ea992ce645560ad808a80205590fa662094da10d7b3a"
            ),
            GbaKeys::U { .. } => panic!("expected GBA_ME"),
        }
        match src.lookup("u@bsf", at(1000)).expect("known").keys {
            GbaKeys::U { ks_int_naf, .. } => assert_eq!(
                hex::encode(ks_int_naf.as_bytes()),
                "9aa8c1dd97872507418bab54ca4f34c21af67d8d41ca35adb0c1dbf733d21bfc"
            ),
            GbaKeys::Me { .. } => panic!("expected GBA_U"),
        }
    }

    #[test]
    fn unknown_and_expired_btids_are_refused() {
        let src = EmbeddedKeySource::new(
            NAF,
            [sub(
                BTID,
                KeyMaterial::KsNaf(KsNaf::from_bytes([1; 32])),
                at(2000),
            )],
        )
        .expect("build");
        assert_eq!(
            src.lookup("nobody@bsf", at(0)).map(|_| ()),
            Err(KeySourceError::UnknownBtid)
        );
        assert!(src.lookup(BTID, at(1999)).is_ok());
        assert_eq!(
            src.lookup(BTID, at(2000)).map(|_| ()),
            Err(KeySourceError::Expired)
        );
    }

    #[test]
    fn duplicate_btids_are_refused() {
        let m = || KeyMaterial::KsNaf(KsNaf::from_bytes([1; 32]));
        let err = EmbeddedKeySource::new(NAF, [sub(BTID, m(), at(1)), sub(BTID, m(), at(1))])
            .expect_err("duplicate");
        assert_eq!(err, EmbeddedKeySourceError::DuplicateBtid(BTID.to_owned()));
    }

    #[test]
    fn debug_never_shows_keys() {
        let s = sub(
            BTID,
            KeyMaterial::KsNaf(KsNaf::from_bytes([0xab; 32])),
            at(1),
        );
        assert!(!format!("{s:?}").contains("ab, ab") && !format!("{s:?}").contains("abab"));
        let src = EmbeddedKeySource::new(NAF, [s]).expect("build");
        let keys = src.lookup(BTID, at(0)).expect("known");
        let text = format!("{keys:?} {src:?}");
        assert!(text.contains("[REDACTED]"));
        assert!(!text.contains("abab") && !text.contains("171"));
    }

    #[test]
    fn only_the_embedded_source_says_it_does_not_block_also_behind_arc_and_box() {
        struct Remote;
        impl KeySource for Remote {
            fn lookup(&self, _: &str, _: SystemTime) -> Result<SubscriberKeys, KeySourceError> {
                Err(KeySourceError::UnknownBtid)
            }
        }
        let m = KeyMaterial::KsNaf(KsNaf::from_bytes([1; 32]));
        let embedded = EmbeddedKeySource::new(NAF, [sub(BTID, m, at(1))]).expect("build");
        let shared: Arc<dyn KeySource> = Arc::new(embedded);
        let boxed: Box<dyn KeySource> = Box::new(Arc::clone(&shared));
        assert!(!shared.may_block() && !boxed.may_block());
        let remote: Box<dyn KeySource> = Box::new(Arc::new(Remote));
        assert!(remote.may_block());
    }
}
