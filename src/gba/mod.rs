//! GBA (TS 33.220) as the BM-SC and the UE use it: NAF_Id, B-TID, and the chain
//! Ks → Ks_(ext/int)_NAF → MUK / MRK (docs/profile.md §1).
//!
//! Strings enter the KDF as their UTF-8 octets. TS 33.220 B.2.1.2 asks for NFKC normalisation
//! first; IMPIs and FQDNs are ASCII in practice, where NFKC is the identity, so none is done.

use core::fmt;
use core::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use thiserror::Error;
use zeroize::Zeroizing;

use crate::crypto::{KdfError, Ks, KsExtNaf, KsIntNaf, KsNaf, Mrk, Muk, hmac_sha256, kdf};

pub mod key_source;
#[cfg(feature = "bmsc")]
pub mod zn;

pub use key_source::{
    EmbeddedKeySource, EmbeddedKeySourceError, EmbeddedSubscriber, KeyMaterial, KeySource,
    KeySourceError, SubscriberKeys,
};

/// TS 33.220 H.3: Ua security protocol identifier "according to TS 33.246", which keeps the MBMS
/// keys apart from those of other Ua protocols of the same NAF.
pub const UA_ID_MBMS: [u8; 5] = [0x01, 0x00, 0x00, 0x00, 0x01];

/// TS 33.220 B.3: FC of the NAF-specific key derivations.
const FC_NAF: u8 = 0x01;

/// TS 33.220 B.3: P0 of Ks_NAF and Ks_ext_NAF.
const P0_GBA_ME: &[u8] = b"gba-me";

/// TS 33.220 B.3: P0 of Ks_int_NAF.
const P0_GBA_U: &[u8] = b"gba-u";

/// S of the GBA_ME MRK derivation: 0x01 ‖ "mbms-mrk" ‖ 0x0008 (see [`mrk_gba_me`]).
const MRK_GBA_ME_S: [u8; 11] = [
    0x01, 0x6d, 0x62, 0x6d, 0x73, 0x2d, 0x6d, 0x72, 0x6b, 0x00, 0x08,
];

/// NAF_Id = NAF FQDN ‖ Ua security protocol id (TS 33.220 H.1, B.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NafId {
    fqdn: String,
    bytes: Vec<u8>,
}

impl NafId {
    /// NAF_Id of a BM-SC: its FQDN ‖ [`UA_ID_MBMS`] (docs/profile.md §1).
    #[must_use]
    pub fn mbms(fqdn: &str) -> Self {
        Self::new(fqdn, UA_ID_MBMS)
    }

    /// NAF_Id for any Ua security protocol id (TS 33.220 H.2).
    #[must_use]
    pub fn new(fqdn: &str, ua_id: [u8; 5]) -> Self {
        let mut bytes = Vec::with_capacity(fqdn.len() + ua_id.len());
        bytes.extend_from_slice(fqdn.as_bytes());
        bytes.extend_from_slice(&ua_id);
        Self {
            fqdn: fqdn.to_owned(),
            bytes,
        }
    }

    /// The octets that enter the KDF as P3.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The NAF FQDN part.
    #[must_use]
    pub fn fqdn(&self) -> &str {
        &self.fqdn
    }
}

/// B-TID, the bootstrapping transaction identifier in NAI form: base64(RAND) "@" BSF FQDN
/// (TS 33.220 4.5.2, docs/spec-notes.md §3.4). The HTTP Digest username and the MIKEY IDr.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Btid(String);

/// A string is not a B-TID.
#[non_exhaustive]
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum BtidError {
    /// The string was empty.
    #[error("B-TID is empty")]
    Empty,
    /// There was no '@' between the RAND part and the BSF name.
    #[error("B-TID has no '@'")]
    NoAt,
    /// An octet outside printable ASCII (0x21..=0x7e).
    #[error("B-TID has a character outside printable ASCII at octet {0}")]
    NotPrintable(usize),
    /// Longer than 255 octets.
    #[error("B-TID is {0} octets; at most 255 are allowed")]
    TooLong(usize),
}

impl Btid {
    /// Longest B-TID accepted, so it fits a one-octet length anywhere it is carried.
    pub const MAX_LEN: usize = 255;

    /// The B-TID a BSF forms for `rand`: base64(RAND) "@" `bsf_fqdn` (standard alphabet, padded).
    ///
    /// `bsf_fqdn` is configuration and is taken as is; parse the result with [`str::parse`] to
    /// check it.
    #[must_use]
    pub fn from_rand(rand: &[u8; 16], bsf_fqdn: &str) -> Self {
        Self(format!("{}@{bsf_fqdn}", STANDARD.encode(rand)))
    }

    /// The B-TID text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Btid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Btid {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for Btid {
    type Err = BtidError;

    /// Accepts a non-empty string of printable ASCII without spaces, with an '@', of at most
    /// 255 octets. The RAND part is not decoded: UEs and BSFs only ever compare B-TIDs.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(BtidError::Empty);
        }
        if s.len() > Self::MAX_LEN {
            return Err(BtidError::TooLong(s.len()));
        }
        if let Some(pos) = s.bytes().position(|b| !(0x21..=0x7e).contains(&b)) {
            return Err(BtidError::NotPrintable(pos));
        }
        if !s.contains('@') {
            return Err(BtidError::NoAt);
        }
        Ok(Self(s.to_owned()))
    }
}

/// TS 33.220 B.3: KDF(Ks, FC, P0, RAND, IMPI, NAF_Id).
fn naf_key(
    ks: &Ks,
    p0: &[u8],
    rand: &[u8; 16],
    impi: &str,
    naf_id: &NafId,
) -> Result<[u8; 32], KdfError> {
    kdf(
        ks.as_bytes(),
        FC_NAF,
        &[p0, rand, impi.as_bytes(), naf_id.as_bytes()],
    )
}

/// TS 33.220 B.3: Ks_NAF = KDF(Ks, "gba-me", RAND, IMPI, NAF_Id), the GBA_ME NAF key.
///
/// # Errors
/// [`KdfError::ParamTooLong`] when the IMPI or NAF_Id exceeds 65535 octets (B.1).
pub fn ks_naf(ks: &Ks, rand: &[u8; 16], impi: &str, naf_id: &NafId) -> Result<KsNaf, KdfError> {
    naf_key(ks, P0_GBA_ME, rand, impi, naf_id).map(KsNaf::from_bytes)
}

/// TS 33.220 B.3: Ks_ext_NAF, the same formula as [`ks_naf`] run in the ME of a GBA_U UE.
///
/// # Errors
/// [`KdfError::ParamTooLong`] when the IMPI or NAF_Id exceeds 65535 octets (B.1).
pub fn ks_ext_naf(
    ks: &Ks,
    rand: &[u8; 16],
    impi: &str,
    naf_id: &NafId,
) -> Result<KsExtNaf, KdfError> {
    naf_key(ks, P0_GBA_ME, rand, impi, naf_id).map(KsExtNaf::from_bytes)
}

/// TS 33.220 B.3: Ks_int_NAF = KDF(Ks, "gba-u", RAND, IMPI, NAF_Id), kept in the UICC.
///
/// # Errors
/// [`KdfError::ParamTooLong`] when the IMPI or NAF_Id exceeds 65535 octets (B.1).
pub fn ks_int_naf(
    ks: &Ks,
    rand: &[u8; 16],
    impi: &str,
    naf_id: &NafId,
) -> Result<KsIntNaf, KdfError> {
    naf_key(ks, P0_GBA_U, rand, impi, naf_id).map(KsIntNaf::from_bytes)
}

/// GBA_ME: MUK = Ks_NAF (docs/profile.md §1; TS 33.501 W.4.1.3 by the parallel wording).
#[must_use]
pub fn muk_gba_me(ks_naf: &KsNaf) -> Muk {
    Muk::from_fn(|m| *m = *ks_naf.as_bytes())
}

/// GBA_U: MUK = Ks_int_NAF (docs/profile.md §1, TS 33.220 G.2).
#[must_use]
pub fn muk_gba_u(ks_int_naf: &KsIntNaf) -> Muk {
    Muk::from_fn(|m| *m = *ks_int_naf.as_bytes())
}

/// \[CHOICE\] docs/profile.md §1: GBA_ME MRK = HMAC-SHA-256(Ks_NAF, 0x01 ‖ "mbms-mrk" ‖ 0x0008), the
/// TS 33.220 Annex B KDF form.
///
/// Provisional until the TS 33.246 Annex F text is at hand (TS 33.501 W.4.1.3 confirms Annex F
/// defines it, not how). This function is the one place to change.
#[must_use]
pub fn mrk_gba_me(ks_naf: &KsNaf) -> Mrk {
    Mrk::from_fn(|m| *m = hmac_sha256(ks_naf.as_bytes(), &MRK_GBA_ME_S))
}

/// GBA_U: MRK = Ks_ext_NAF (docs/profile.md §1).
#[must_use]
pub fn mrk_gba_u(ks_ext_naf: &KsExtNaf) -> Mrk {
    Mrk::from_fn(|m| *m = *ks_ext_naf.as_bytes())
}

/// The HTTP Digest password towards the BM-SC: base64(MRK), standard alphabet with padding
/// (docs/profile.md §4 \[CHOICE\]).
#[must_use]
pub fn digest_password(mrk: &Mrk) -> Zeroizing<String> {
    Zeroizing::new(STANDARD.encode(mrk.as_bytes()))
}

/// The NAF keys a UE or BM-SC holds for one bootstrapping, by GBA flavour (TS 33.220 4 vs 5).
#[derive(Clone)]
pub enum GbaKeys {
    /// GBA_ME: everything in the ME.
    Me {
        /// Ks_NAF.
        ks_naf: KsNaf,
    },
    /// GBA_U: the UICC holds Ks_int_NAF, the ME Ks_ext_NAF.
    U {
        /// Ks_ext_NAF.
        ks_ext_naf: KsExtNaf,
        /// Ks_int_NAF.
        ks_int_naf: KsIntNaf,
    },
}

impl GbaKeys {
    /// GBA_ME keys for a NAF from Ks (TS 33.220 B.3).
    ///
    /// # Errors
    /// [`KdfError::ParamTooLong`] when the IMPI or NAF_Id exceeds 65535 octets.
    pub fn derive_me(
        ks: &Ks,
        rand: &[u8; 16],
        impi: &str,
        naf_id: &NafId,
    ) -> Result<Self, KdfError> {
        Ok(Self::Me {
            ks_naf: ks_naf(ks, rand, impi, naf_id)?,
        })
    }

    /// GBA_U keys for a NAF from Ks (TS 33.220 B.3).
    ///
    /// # Errors
    /// [`KdfError::ParamTooLong`] when the IMPI or NAF_Id exceeds 65535 octets.
    pub fn derive_u(
        ks: &Ks,
        rand: &[u8; 16],
        impi: &str,
        naf_id: &NafId,
    ) -> Result<Self, KdfError> {
        Ok(Self::U {
            ks_ext_naf: ks_ext_naf(ks, rand, impi, naf_id)?,
            ks_int_naf: ks_int_naf(ks, rand, impi, naf_id)?,
        })
    }

    /// The MUK (docs/profile.md §1).
    #[must_use]
    pub fn muk(&self) -> Muk {
        match self {
            Self::Me { ks_naf } => muk_gba_me(ks_naf),
            Self::U { ks_int_naf, .. } => muk_gba_u(ks_int_naf),
        }
    }

    /// The MRK (docs/profile.md §1).
    #[must_use]
    pub fn mrk(&self) -> Mrk {
        match self {
            Self::Me { ks_naf } => mrk_gba_me(ks_naf),
            Self::U { ks_ext_naf, .. } => mrk_gba_u(ks_ext_naf),
        }
    }
}

impl fmt::Debug for GbaKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Me { .. } => f.write_str("GbaKeys::Me([REDACTED])"),
            Self::U { .. } => f.write_str("GbaKeys::U([REDACTED])"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::kdf_input;

    const IMPI: &str = "001010123456789@ims.mnc001.mcc001.3gppnetwork.org";
    const NAF: &str = "bmsc.mnc001.mcc001.pub.3gppnetwork.org";

    fn ks() -> Ks {
        Ks::from_hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
            .expect("hex")
    }

    fn rand() -> [u8; 16] {
        core::array::from_fn(|i| 0x20 + i as u8)
    }

    #[test]
    fn naf_id_is_fqdn_then_ua_id() {
        let id = NafId::mbms("bmsc.example");
        assert_eq!(
            hex::encode(id.as_bytes()),
            "626d73632e6578616d706c650100000001"
        );
        assert_eq!(id.fqdn(), "bmsc.example");
    }

    #[test]
    fn mrk_s_is_the_annex_b_form() {
        assert_eq!(
            kdf_input(FC_NAF, &[b"mbms-mrk"]).expect("short"),
            MRK_GBA_ME_S.to_vec()
        );
    }

    #[test]
    fn ts33220_b3_spec_notes_5_2() {
        let naf = NafId::mbms(NAF);
        let me = ks_naf(&ks(), &rand(), IMPI, &naf).expect("kdf");
        assert_eq!(
            hex::encode(me.as_bytes()),
            "7075e981aa34117f3600ea992ce645560ad808a80205590fa662094da10d7b3a"
        );
        let ext = ks_ext_naf(&ks(), &rand(), IMPI, &naf).expect("kdf");
        assert_eq!(ext.as_bytes(), me.as_bytes());
        let int = ks_int_naf(&ks(), &rand(), IMPI, &naf).expect("kdf");
        assert_eq!(
            hex::encode(int.as_bytes()),
            "9aa8c1dd97872507418bab54ca4f34c21af67d8d41ca35adb0c1dbf733d21bfc"
        );
    }

    #[test]
    fn an_impi_over_65535_octets_is_an_error() {
        let long = "a".repeat(65_536);
        assert!(ks_naf(&ks(), &rand(), &long, &NafId::mbms(NAF)).is_err());
    }

    #[test]
    fn btid_from_rand_spec_notes_5_2() {
        let b = Btid::from_rand(&rand(), "bsf.mnc001.mcc001.pub.3gppnetwork.org");
        assert_eq!(
            b.as_str(),
            "ICEiIyQlJicoKSorLC0uLw==@bsf.mnc001.mcc001.pub.3gppnetwork.org"
        );
        assert_eq!(b.to_string().parse::<Btid>(), Ok(b));
    }

    #[test]
    fn btid_parse_rules() {
        assert_eq!("".parse::<Btid>(), Err(BtidError::Empty));
        assert_eq!("abc".parse::<Btid>(), Err(BtidError::NoAt));
        assert_eq!("a b@c".parse::<Btid>(), Err(BtidError::NotPrintable(1)));
        assert_eq!("a\u{e9}@c".parse::<Btid>(), Err(BtidError::NotPrintable(1)));
        let long = format!("{}@b", "a".repeat(254));
        assert_eq!(long.parse::<Btid>(), Err(BtidError::TooLong(256)));
        assert!(format!("{}@b", "a".repeat(253)).parse::<Btid>().is_ok());
    }

    #[test]
    fn gba_keys_pick_the_profile_muk_and_mrk() {
        let naf = NafId::mbms("bmsc.example");
        let me = GbaKeys::derive_me(&ks(), &rand(), IMPI, &naf).expect("kdf");
        let u = GbaKeys::derive_u(&ks(), &rand(), IMPI, &naf).expect("kdf");
        assert_eq!(
            hex::encode(me.muk().as_bytes()),
            "04cc42756103b64c1010b3a9503db631eb7570258823366a7ec44376488bf02f"
        );
        assert_eq!(
            hex::encode(me.mrk().as_bytes()),
            "f53b0eadba42397c65a7623c94000e136a1791b468094b6b903917f3c5e2e8f7"
        );
        assert_eq!(
            hex::encode(u.muk().as_bytes()),
            "3e09ab6fa2bd2fab6268287f77686b9129d2d85a5eab43d5e75459e3986a3d57"
        );
        assert_eq!(u.mrk().as_bytes(), me.muk().as_bytes());
        assert_eq!(
            digest_password(&me.mrk()).as_str(),
            "9TsOrbpCOXxlp2I8lAAOE2oXkbRoCUtrkDkX88Xi6Pc="
        );
        assert_eq!(format!("{me:?}"), "GbaKeys::Me([REDACTED])");
        assert_eq!(format!("{u:?}"), "GbaKeys::U([REDACTED])");
    }
}
