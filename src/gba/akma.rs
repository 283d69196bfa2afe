//! AKMA (TS 33.535) as the key source of 5G MBS (TS 33.501 Annex W): the A-KID and KAF stand
//! where GBA has the B-TID and Ks_NAF (docs/key-sources-5g.md).
//!
//! Annex W reuses the TS 33.246 key management with AKMA: the MUK is KAF, and the MRK is derived
//! from KAF as it is from Ks_NAF in GBA_ME. So an AKMA bootstrapping becomes [`GbaKeys::Me`] with
//! KAF in place of Ks_NAF, and everything above (Digest, MIKEY, the store's sealed cache) is
//! unchanged.

use super::{Btid, BtidError, GbaKeys};
use crate::crypto::{Kaf, KsNaf};

/// \[CHOICE\] docs/profile.md §6, docs/key-sources-5g.md §3: the MBS keys of an AKMA
/// bootstrapping. MUK = KAF (TS 33.501 W.4.1.3 as quoted in the issue); MRK = KDF(KAF, 0x01 ‖
/// "mbms-mrk"), the GBA_ME MRK derivation ([`super::mrk_gba_me`]) with KAF in place of Ks_NAF.
///
/// The W.4.1.3 text itself was not at hand; this function is the one place to change.
#[must_use]
pub fn akma_keys(kaf: &Kaf) -> GbaKeys {
    GbaKeys::Me {
        ks_naf: KsNaf::from_fn(|k| *k = *kaf.as_bytes()),
    }
}

/// Parses an A-KID (TS 33.535 §5.1: NAI `A-TID@RID-based realm`, RFC 7542) into the identifier
/// type the BM-SC and the UE use for the Digest username and the MIKEY IDr.
///
/// The rules are those of [`Btid`]: printable ASCII, an '@', at most 255 octets (an RFC 7542 NAI
/// is at most 253). The A-TID part is base64 like the B-TID's RAND part and is not decoded.
///
/// # Errors
/// [`BtidError`] as for a B-TID.
pub fn parse_akid(text: &str) -> Result<Btid, BtidError> {
    text.parse()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn muk_is_kaf_and_mrk_is_derived_as_from_ks_naf() {
        let kaf = Kaf::from_hex("04cc42756103b64c1010b3a9503db631eb7570258823366a7ec44376488bf02f")
            .expect("hex");
        let keys = akma_keys(&kaf);
        assert_eq!(keys.muk().as_bytes(), kaf.as_bytes());
        let ks_naf = KsNaf::from_bytes(*kaf.as_bytes());
        assert_eq!(
            keys.mrk().as_bytes(),
            super::super::mrk_gba_me(&ks_naf).as_bytes()
        );
        assert_ne!(keys.mrk().as_bytes(), kaf.as_bytes());
    }

    #[test]
    fn an_akid_follows_the_nai_rules() {
        let akid =
            parse_akid("AbCdEf0123==@rid0001.akma.5gc.mnc001.mcc001.3gppnetwork.org").expect("nai");
        assert!(akid.as_str().starts_with("AbCdEf0123==@rid0001"));
        assert_eq!(parse_akid("no-realm"), Err(BtidError::NoAt));
        assert_eq!(parse_akid("a b@c"), Err(BtidError::NotPrintable(1)));
    }
}
