//! A key longer than the SSV: the KEMAC of an I_MESSAGE (docs/mcx.md §11.5).
//!
//! SAKKE parameter set 1 carries a 128-bit SSV (RFC 6509 §7: n = 128; RFC 6508 asks
//! lg(q) > 2n), so a 256-bit key cannot be the SSV. It travels instead in a KEMAC payload
//! (RFC 3830 §6.2) of the same message, under keys derived from a fresh SSV: the SSV is the
//! envelope key, as the PSK is in RFC 3830's pre-shared-key method. What this module holds is
//! the one place of that \[CHOICE\] ([`envelope_keys`]).

use crate::crypto::{PrfKey, ProtectionKeys};
use crate::ibe::Ssv;
use crate::mikey::view::{EncrDataBuf, KemacView, KeyValidityView};
use crate::mikey::{
    EncodeError, EncrAlg, KeyDataRef, KeyDataType, MacAlg, MessageWriter, PayloadType,
};

use super::key::Key256;
use super::verify::Refusal;

/// The Key data type of the delivered key: TGK (RFC 3830 §6.13), as RFC 6509 calls the SSV.
pub const KEY_DATA_TYPE: KeyDataType = KeyDataType::TGK;

/// The encryption of the Key data: AES-CM-128 (RFC 3830 §4.2.3, encr alg 1), the KEMAC
/// encryption of the MBMS messages (`crypto::ProtectionKeys`).
pub const ENCR_ALG: EncrAlg = EncrAlg::AES_CM_128;

/// The MAC: HMAC-SHA-1-160 (RFC 3830 §4.2.4, MAC alg 1), the only MAC algorithm with a value
/// the codec (and Wireshark) knows.
pub const MAC_ALG: MacAlg = MacAlg::HMAC_SHA1_160;

/// The most octets of Encr data a verifier decrypts: one Key data of 32 octets takes 36.
const MAX_ENCR_DATA: usize = 64;

/// The keys that encrypt and MAC the KEMAC of a message whose SAKKE payload carries `ssv`.
/// \[CHOICE\] docs/mcx.md §11.5: RFC 3830 §4.1.4 with the SSV as the envelope key, the
/// message's PRF (HDR PRF func 1, PRF-HMAC-SHA-256, RFC 6043), the message's CSB ID and RAND:
/// encr_key (16 octets), the salting key (14, for the AES-CM IV of §4.2.3 with T) and auth_key
/// (20, for HMAC-SHA-1-160), derived with the constants 0x150533E1, 0x29B88916, 0x2D22AC75.
/// The MAC covers every octet of the message before the MAC field (RFC 3830 §5.2), and the
/// KEMAC is the last payload before SIGN, so it covers all but the signature; the ECCSI
/// signature then covers the KEMAC too.
pub fn envelope_keys(ssv: &Ssv, csb_id: u32, rand: &[u8]) -> ProtectionKeys {
    ProtectionKeys::derive_with(&PrfKey::hmac_sha256(ssv.as_bytes()), csb_id, rand)
}

/// Writes the KEMAC carrying `key` (one Key data of [`KEY_DATA_TYPE`], KV NULL) as the next
/// payload of `w`, to be followed by SIGN, encrypted with AES-CM-128 (IV from `csb_id` and T `t`) and MACed under
/// `keys`.
///
/// # Errors
/// A key too long for its length field.
pub(crate) fn write(
    w: &mut MessageWriter,
    key: &[u8],
    keys: &ProtectionKeys,
    csb_id: u32,
    t: u64,
) -> Result<(), EncodeError> {
    let item = KeyDataRef {
        key_type: KEY_DATA_TYPE,
        key,
        interval: None,
    };
    let f = w.kemac(ENCR_ALG, &[item], MAC_ALG)?;
    let bytes = w.as_mut_bytes();
    let (at, len) = f.encr_data;
    // The MAC covers the KEMAC's own next-payload octet, which the writer would patch only
    // when SIGN begins: it is SIGN already (next ‖ Encr alg ‖ Encr data len ‖ Encr data).
    if let Some(next) = at.checked_sub(4).and_then(|n| bytes.get_mut(n)) {
        *next = PayloadType::SIGN.0;
    }
    if let Some(encr) = bytes.get_mut(at..at.saturating_add(len)) {
        keys.apply_keystream(csb_id, t, encr);
    }
    let (covered, field) = bytes.split_at_mut(f.mac.0);
    if let Some(field) = field.get_mut(..f.mac.1) {
        field.copy_from_slice(&keys.mac(&[covered]));
    }
    Ok(())
}

/// Checks the KEMAC's algorithms and its MAC over `covered` (every octet before the MAC field)
/// in constant time, and only then decrypts it and reads the one Key data: a TGK of 32 octets,
/// KV NULL.
///
/// # Errors
/// [`Refusal::KemacAlgorithm`], [`Refusal::BadKemacMac`], [`Refusal::KemacKeyData`].
pub(crate) fn open(
    kemac: &KemacView<'_>,
    covered: &[u8],
    keys: &ProtectionKeys,
    csb_id: u32,
    t: u64,
) -> Result<Key256, Refusal> {
    if kemac.encr_alg != ENCR_ALG || kemac.mac_alg != MAC_ALG {
        return Err(Refusal::KemacAlgorithm {
            encr_alg: kemac.encr_alg.0,
            mac_alg: kemac.mac_alg.0,
        });
    }
    if !keys.verify_mac(&[covered], kemac.mac) {
        return Err(Refusal::BadKemacMac);
    }
    let mut plain = EncrDataBuf::<MAX_ENCR_DATA>::new();
    let data = plain
        .fill(kemac.encr_data)
        .map_err(|_| Refusal::KemacKeyData("Encr data too long"))?;
    keys.apply_keystream(csb_id, t, data);
    let chain = plain
        .key_data()
        .map_err(|_| Refusal::KemacKeyData("not a Key data chain"))?;
    let mut items = chain.iter();
    let (Some(kd), None) = (items.next(), items.next()) else {
        return Err(Refusal::KemacKeyData("not exactly one Key data"));
    };
    if kd.key_type != KEY_DATA_TYPE || kd.salt.is_some() {
        return Err(Refusal::KemacKeyData("Key data: not a TGK"));
    }
    if kd.validity != KeyValidityView::Null {
        return Err(Refusal::KemacKeyData("Key data: validity data"));
    }
    Key256::from_slice(kd.key).map_err(|_| Refusal::KemacKeyData("Key data: not 32 octets"))
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::crypto::Seeded;
    use crate::ibe::{EccsiKeyPair, Kpak, Ksak, Rsk, SakkeMaster, SakkePublic, sakke};
    use crate::mcx::build::{self, Unsigned};
    use crate::mcx::{
        DeliveredKey, DeliveryKey, Expect, KeyDelivery, KeyPurpose, Receiver, ReplayCache, Signer,
        build_i_message, ntp_timestamp, profile, verify_i_message,
    };
    use crate::mikey::MessageView;
    use crate::mikey::view::PayloadView;

    const FROM: [u8; 32] = [0x11; 32];
    const TO: [u8; 32] = [0x22; 32];

    struct Keys {
        kpak: Kpak,
        pair: EccsiKeyPair,
        z: SakkePublic,
        rsk: Rsk,
    }

    fn keys() -> &'static Keys {
        static KEYS: OnceLock<Keys> = OnceLock::new();
        KEYS.get_or_init(|| {
            let mut rng = Seeded::new(11);
            let ksak = Ksak::generate(&mut rng).unwrap();
            let master = SakkeMaster::generate(&mut rng).unwrap();
            Keys {
                kpak: ksak.kpak().unwrap(),
                pair: ksak.issue(&FROM, &mut rng).unwrap(),
                z: master.public().unwrap(),
                rsk: master.issue_rsk(&TO).unwrap(),
            }
        })
    }

    fn at() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn delivery(key: &DeliveryKey) -> KeyDelivery<'_> {
        KeyDelivery {
            key,
            key_id: 0x1000_0042,
            purpose: KeyPurpose::Pck,
            to_uid: &TO,
            to_uri: None,
            kms_uri: Some("kms.example.org"),
            time: ntp_timestamp(at()).unwrap(),
            key_params: None,
        }
    }

    fn signer(k: &Keys) -> Signer<'_> {
        Signer {
            uid: &FROM,
            ssk: &k.pair.ssk,
            pvt: &k.pair.pvt,
            kpak: &k.kpak,
        }
    }

    fn verify(msg: &[u8]) -> Result<DeliveredKey, Refusal> {
        let k = keys();
        let rx = Receiver {
            uid: &TO,
            uri: None,
            rsk: &k.rsk,
            z: &k.z,
        };
        let expect = Expect {
            from_uid: &FROM,
            kpak: &k.kpak,
            purpose: None,
            at: at(),
            window: profile::FRESHNESS_WINDOW,
        };
        verify_i_message(msg, &rx, &expect, &mut ReplayCache::new())
    }

    fn kemacs(msg: &[u8]) -> Vec<KemacView<'_>> {
        let view = MessageView::decode(msg).unwrap();
        view.payloads()
            .filter_map(|(_, p)| match p {
                PayloadView::Kemac(k) => Some(k),
                _ => None,
            })
            .collect()
    }

    fn build(key: &DeliveryKey, seed: u64) -> Vec<u8> {
        let k = keys();
        build_i_message(&delivery(key), &k.z, &signer(k), &mut Seeded::new(seed)).unwrap()
    }

    /// A message whose SAKKE data encapsulates `ssv` and whose KEMAC carries `key` under the
    /// keys of `kemac_ssv`, altered by `alter` (given the octets and where the signature
    /// starts), then signed.
    fn crafted(
        key: &[u8],
        ssv: &Ssv,
        kemac_ssv: &Ssv,
        alter: impl FnOnce(&mut [u8], usize),
    ) -> Vec<u8> {
        let k = keys();
        let dk = DeliveryKey::from_slice(&[0; 32]).unwrap();
        let d = delivery(&dk);
        let data = sakke::encapsulate(&k.z, &TO, ssv).unwrap();
        let mut u: Unsigned =
            build::write(&d, &FROM, &[0x33; 16], &data, Some((key, kemac_ssv))).unwrap();
        let sig_at = u.signed_octets().len();
        alter(u.bytes_mut(), sig_at);
        build::sign(u, &signer(k), &mut Seeded::new(5)).unwrap()
    }

    #[test]
    fn a_16_octet_key_is_the_ssv_and_no_kemac() {
        let key = DeliveryKey::from_slice(&[0xa5; 16]).unwrap();
        let msg = build(&key, 1);
        assert!(kemacs(&msg).is_empty());
        let got = verify(&msg).unwrap();
        assert!(matches!(got.key, DeliveryKey::Bits128(_)));
        assert_eq!(got.key, key);
    }

    #[test]
    fn a_32_octet_key_round_trips_in_one_kemac() {
        let key = DeliveryKey::from_slice(&(0..32).collect::<Vec<u8>>()).unwrap();
        let msg = build(&key, 2);
        let found = kemacs(&msg);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].encr_alg, EncrAlg::AES_CM_128);
        assert_eq!(found[0].mac_alg, MacAlg::HMAC_SHA1_160);
        assert_eq!(found[0].encr_data.len(), 36);
        // Encrypted: the key is nowhere in the message.
        assert!(!msg.windows(16).any(|w| w == &key.as_bytes()[..16]));
        assert!(!msg.windows(16).any(|w| w == &key.as_bytes()[16..]));
        // KEMAC then SIGN, the last two payloads.
        let view = MessageView::decode(&msg).unwrap();
        let payloads: Vec<PayloadView<'_>> = view.payloads().map(|(_, p)| p).collect();
        assert!(matches!(
            payloads[payloads.len() - 2..],
            [PayloadView::Kemac(_), PayloadView::Sign(_)]
        ));
        let got = verify(&msg).unwrap();
        assert!(matches!(got.key, DeliveryKey::Bits256(_)));
        assert_eq!(got.key, key);
        assert_eq!(got.key_id, 0x1000_0042);
        // Another SSV each time: two builds differ in SAKKE data and KEMAC.
        let again = build(&key, 5);
        assert_ne!(kemacs(&again)[0].encr_data, found[0].encr_data);
        assert_eq!(verify(&again).unwrap().key, key);
    }

    #[test]
    fn a_crafted_message_with_the_right_ssv_is_accepted() {
        let ssv = Ssv::from_bytes([0x44; 16]);
        let msg = crafted(&[0x77; 32], &ssv, &ssv, |_, _| {});
        assert_eq!(verify(&msg).unwrap().key.as_bytes(), &[0x77; 32]);
    }

    #[test]
    fn a_kemac_under_the_ssv_of_another_message_is_refused() {
        let msg = crafted(
            &[0x77; 32],
            &Ssv::from_bytes([0x44; 16]),
            &Ssv::from_bytes([0x45; 16]),
            |_, _| {},
        );
        assert_eq!(verify(&msg).unwrap_err(), Refusal::BadKemacMac);
    }

    #[test]
    fn a_tampered_kemac_is_refused_by_its_mac_even_when_signed() {
        let ssv = Ssv::from_bytes([0x44; 16]);
        // SIGN header 2, MAC 20, MAC alg 1, then Encr data (36) before the signature.
        for at in [3, 20, 22, 24, 40, 58] {
            let msg = crafted(&[0x77; 32], &ssv, &ssv, |b, sig_at| b[sig_at - at] ^= 0x01);
            assert_eq!(verify(&msg).unwrap_err(), Refusal::BadKemacMac, "{at}");
        }
        // A bit of the header, which the MAC covers too.
        let msg = crafted(&[0x77; 32], &ssv, &ssv, |b, _| b[20] ^= 0x01);
        assert!(verify(&msg).is_err());
        // Unsigned tampering: the signature refuses it first.
        let mut msg = crafted(&[0x77; 32], &ssv, &ssv, |_, _| {});
        let n = msg.len();
        msg[n - 140] ^= 1;
        assert_eq!(verify(&msg).unwrap_err(), Refusal::BadSignature);
    }

    #[test]
    fn an_unknown_kemac_algorithm_is_refused() {
        let ssv = Ssv::from_bytes([0x44; 16]);
        // Encr alg octet: SIGN 2, MAC 20, MAC alg 1, Encr data 36, its length 2, then it.
        for alg in [0, 2, 9] {
            let msg = crafted(&[0x77; 32], &ssv, &ssv, |b, sig_at| b[sig_at - 62] = alg);
            assert_eq!(
                verify(&msg).unwrap_err(),
                Refusal::KemacAlgorithm {
                    encr_alg: alg,
                    mac_alg: 1
                }
            );
        }
    }

    #[test]
    fn a_kemac_key_of_another_length_is_refused() {
        let ssv = Ssv::from_bytes([0x44; 16]);
        for len in [0, 16, 31, 33, 48] {
            let msg = crafted(&vec![0x77; len], &ssv, &ssv, |_, _| {});
            assert!(
                matches!(verify(&msg).unwrap_err(), Refusal::KemacKeyData(_)),
                "{len}"
            );
        }
    }

    #[test]
    fn a_truncated_message_is_refused() {
        let key = DeliveryKey::from_slice(&[0x5a; 32]).unwrap();
        let msg = build(&key, 4);
        for cut in [1, 2, 129, 131, 150, 160, 200, msg.len() - 10] {
            let err = verify(&msg[..msg.len() - cut]).unwrap_err();
            assert!(
                matches!(err, Refusal::Malformed(_) | Refusal::Structure(_)),
                "{cut}: {err:?}"
            );
        }
    }

    #[test]
    fn a_kemac_elsewhere_than_before_sign_is_refused() {
        // The KEMAC's last octet moved into a payload after it is not possible without
        // re-encoding; a message with the KEMAC removed from the SIGN's neighbourhood is
        // produced by appending a General Extension after it.
        let ssv = Ssv::from_bytes([0x44; 16]);
        let k = keys();
        let dk = DeliveryKey::from_slice(&[0; 32]).unwrap();
        let d = delivery(&dk);
        let data = sakke::encapsulate(&k.z, &TO, &ssv).unwrap();
        let mut w = crate::mikey::MessageWriter::new(&build_hdr(&d), 1024).unwrap();
        w.timestamp(crate::mikey::Timestamp::NtpUtc(d.time));
        w.rand(&[0x33; 16]).unwrap();
        w.idr(
            crate::mikey::IdRole::IDRUIDI,
            crate::mikey::IdType::URI,
            &FROM,
        )
        .unwrap();
        w.idr(
            crate::mikey::IdRole::IDRUIDR,
            crate::mikey::IdType::URI,
            &TO,
        )
        .unwrap();
        w.sakke(
            crate::mikey::SakkeParams::PARAMETER_SET_1,
            crate::mikey::SakkeIdScheme::UID,
            &data,
        )
        .unwrap();
        let keys_ = envelope_keys(&ssv, d.key_id, &[0x33; 16]);
        write(&mut w, &[0x77; 32], &keys_, d.key_id, d.time).unwrap();
        w.extension(crate::mikey::ExtType::KEY_PARAMS, &[1, 2, 3])
            .unwrap();
        let (bytes, field) = w.sign(crate::mikey::SignType::ECCSI, 129).unwrap();
        let sig = crate::ibe::eccsi::sign(
            &k.kpak,
            &FROM,
            &k.pair.ssk,
            &k.pair.pvt,
            &bytes[..field.offset],
            &mut Seeded::new(9),
        )
        .unwrap();
        let mut msg = bytes;
        msg[field.offset..].copy_from_slice(&sig);
        assert_eq!(
            verify(&msg).unwrap_err(),
            Refusal::Structure("KEMAC: not the payload before SIGN")
        );
    }

    fn build_hdr(d: &KeyDelivery<'_>) -> crate::mikey::Hdr {
        crate::mikey::Hdr {
            version: crate::mikey::MIKEY_VERSION,
            data_type: crate::mikey::DataType::SAKKE,
            v: false,
            prf_func: crate::mikey::PrfFunc::HMAC_SHA_256,
            csb_id: d.key_id,
            cs_count: 0,
            cs_id_map: crate::mikey::CsIdMap::Empty,
        }
    }
}
