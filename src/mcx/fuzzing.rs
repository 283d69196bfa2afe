//! The entry point of the `sakke_verify` fuzz target (not a supported API): the I_MESSAGE
//! verifier on arbitrary octets, and on a valid message (a 16-octet key, or a 32-octet key in a
//! KEMAC) with octets flipped. It must refuse with a typed [`super::Refusal`], never panic; a
//! message it accepts must carry the key sent.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use super::{
    DeliveryKey, Expect, KeyDelivery, KeyPurpose, Receiver, ReplayCache, Signer, build_i_message,
    ntp_timestamp, profile, verify_i_message,
};
use crate::crypto::Seeded;
use crate::ibe::{Kpak, Ksak, Rsk, SakkeMaster, SakkePublic};

struct Keys {
    kpak: Kpak,
    z: SakkePublic,
    rsk: Rsk,
    /// The 16-octet key and its message, the 32-octet key and its message.
    sent: [(DeliveryKey, Vec<u8>); 2],
    at: SystemTime,
}

const FROM: [u8; 32] = [0x11; 32];
const TO: [u8; 32] = [0x22; 32];

fn keys() -> Option<&'static Keys> {
    static KEYS: OnceLock<Option<Keys>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut rng = Seeded::new(7);
        let ksak = Ksak::generate(&mut rng).ok()?;
        let kpak = ksak.kpak().ok()?;
        let pair = ksak.issue(&FROM, &mut rng).ok()?;
        let master = SakkeMaster::generate(&mut rng).ok()?;
        let z = master.public().ok()?;
        let rsk = master.issue_rsk(&TO).ok()?;
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let signer = Signer {
            uid: &FROM,
            ssk: &pair.ssk,
            pvt: &pair.pvt,
            kpak: &kpak,
        };
        let mut sent = |key: DeliveryKey| {
            let message = build_i_message(&delivery(&key, at)?, &z, &signer, &mut rng).ok()?;
            Some((key, message))
        };
        let sent = [
            sent(DeliveryKey::from_slice(&[0x5c; 16]).ok()?)?,
            sent(DeliveryKey::from_slice(&[0xc5; 32]).ok()?)?,
        ];
        Some(Keys {
            kpak,
            z,
            rsk,
            sent,
            at,
        })
    })
    .as_ref()
}

fn delivery(key: &DeliveryKey, at: SystemTime) -> Option<KeyDelivery<'_>> {
    Some(KeyDelivery {
        key,
        key_id: 0x1000_0001,
        purpose: KeyPurpose::Pck,
        to_uid: &TO,
        to_uri: None,
        kms_uri: Some("kms.example.org"),
        time: ntp_timestamp(at)?,
        key_params: None,
    })
}

/// Verifies `data` (first octet even), or a valid message with the rest of `data` XORed
/// into it (first octet odd; bit 1 of it chooses the message with the 32-octet key).
///
/// Whether the message was accepted (the fuzz target ignores it; the tests check it).
///
/// # Panics
/// On a finding: an accepted message whose key is not the one sent, or accepted twice.
pub fn sakke_verify(data: &[u8]) -> bool {
    let Some(k) = keys() else { return false };
    let [first, second] = &k.sent;
    let mut sent = first;
    let msg = match data.split_first() {
        Some((mode, rest)) if mode & 1 == 1 => {
            if mode & 2 == 2 {
                sent = second;
            }
            let mut m = sent.1.clone();
            for (o, x) in m.iter_mut().zip(rest) {
                *o ^= x;
            }
            m
        }
        _ => data.to_vec(),
    };
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
        at: k.at,
        window: profile::FRESHNESS_WINDOW,
    };
    let mut replay = ReplayCache::new();
    if let Ok(got) = verify_i_message(&msg, &rx, &expect, &mut replay) {
        assert!(
            k.sent.iter().any(|(key, _)| got.key == *key),
            "accepted with another key"
        );
        if data.first().is_some_and(|mode| mode & 1 == 1) {
            assert!(got.key == sent.0, "accepted with another key");
        }
        assert!(
            verify_i_message(&msg, &rx, &expect, &mut replay).is_err(),
            "accepted twice"
        );
        return true;
    }
    false
}
