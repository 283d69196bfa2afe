//! docs/architecture.md principle 6: no secret reaches a log through `Debug`.

use std::fmt::Debug;

use mbms_keys::crypto::{
    AuthKey, EncKey, HmacSha1State, Kaf, Ks, KsExtNaf, KsIntNaf, KsNaf, Mrk, Msk, Mtk, Muk,
    ProtectionKeys, Salt, SaltKey, derive_from_tgk,
};
use mbms_keys::gba::GbaKeys;

/// Distinctive octets, so a leak in any rendering shows.
fn pattern<const N: usize>() -> [u8; N] {
    core::array::from_fn(|i| 0xa7u8.wrapping_add((i as u8).wrapping_mul(29)))
}

/// Asserts that `text` shows none of `bytes` in any common rendering.
fn assert_hides(text: &str, bytes: &[u8]) {
    assert!(text.contains("REDACTED"), "{text}");
    let lower = hex::encode(bytes);
    assert!(!text.contains(&lower), "{text} shows hex");
    assert!(!text.contains(&lower.to_uppercase()), "{text} shows HEX");
    // Any 4-octet run in hex would already be a leak.
    for w in bytes.windows(4) {
        assert!(!text.contains(&hex::encode(w)), "{text} shows a hex run");
    }
    let decimal = format!("{bytes:?}");
    assert!(!text.contains(&decimal), "{text} shows the decimal list");
    let first = bytes.first().copied().unwrap_or_default();
    assert!(
        !text.contains(&format!("{first}, ")),
        "{text} shows a decimal octet"
    );
    assert!(
        !text.contains(&format!("{first:#x}")),
        "{text} shows a 0x octet"
    );
}

fn check<T: Debug, const N: usize>(make: fn([u8; N]) -> T, name: &str) {
    let bytes = pattern::<N>();
    let value = make(bytes);
    let text = format!("{value:?}");
    assert_eq!(text, format!("{name}([REDACTED])"));
    assert_hides(&text, &bytes);
    assert_hides(&format!("{value:#?}"), &bytes);
}

#[test]
fn every_secret_type_debug_is_redacted() {
    check(Muk::from_bytes, "Muk");
    check(Mrk::from_bytes, "Mrk");
    check(Msk::from_bytes, "Msk");
    check(Mtk::from_bytes, "Mtk");
    check(Salt::from_bytes, "Salt");
    check(Ks::from_bytes, "Ks");
    check(KsNaf::from_bytes, "KsNaf");
    check(Kaf::from_bytes, "Kaf");
    check(KsExtNaf::from_bytes, "KsExtNaf");
    check(KsIntNaf::from_bytes, "KsIntNaf");
    check(EncKey::from_bytes, "EncKey");
    check(SaltKey::from_bytes, "SaltKey");
    check(AuthKey::from_bytes, "AuthKey");
}

#[test]
fn protection_keys_debug_is_redacted() {
    let keys = ProtectionKeys::derive(&pattern::<32>(), 0x0001_0002, &[0x60; 16]);
    let text = format!("{keys:?} {keys:#?}");
    assert_hides(&text, keys.enc_key().as_bytes());
    assert_hides(&text, keys.salt_key().as_bytes());
    assert_hides(&text, keys.auth_key().as_bytes());
    assert_hides(&text, &pattern::<32>());
    let state = HmacSha1State::from(keys.auth_key());
    assert_hides(&format!("{state:?}"), keys.auth_key().as_bytes());
}

#[test]
fn tgk_keys_debug_is_redacted() {
    let keys = derive_from_tgk(&pattern::<16>(), 1, 2, &[], 16);
    let text = format!("{keys:?}");
    assert_hides(&text, &keys.tek);
    assert_hides(&text, keys.enc_key.as_bytes());
}

#[test]
fn gba_keys_debug_is_redacted() {
    let me = GbaKeys::Me {
        ks_naf: KsNaf::from_bytes(pattern()),
    };
    let text = format!("{me:?} {me:#?}");
    assert_hides(&text, &pattern::<32>());
    assert_hides(&text, me.mrk().as_bytes());

    let u = GbaKeys::U {
        ks_ext_naf: KsExtNaf::from_bytes(pattern()),
        ks_int_naf: KsIntNaf::from_bytes([0x5c; 32]),
    };
    let text = format!("{u:?} {u:#?}");
    assert_hides(&text, &pattern::<32>());
    assert_hides(&text, &[0x5c; 32]);
}

#[cfg(feature = "mcx")]
#[test]
fn ibe_secret_types_debug_is_redacted() {
    use mbms_keys::ibe::{EccsiKeyPair, Ksak, Rsk, SakkeMaster, Ssk, Ssv};
    check(Ksak::from_bytes, "Ksak");
    check(Ssk::from_bytes, "Ssk");
    check(SakkeMaster::from_bytes, "SakkeMaster");
    check(Rsk::from_bytes, "Rsk");
    check(Ssv::from_bytes, "Ssv");
    let ssk = pattern::<32>();
    let pair = EccsiKeyPair {
        ssk: Ssk::from_bytes(ssk),
        pvt: [4u8; 65],
    };
    assert_hides(&format!("{pair:?}"), &ssk);
}
