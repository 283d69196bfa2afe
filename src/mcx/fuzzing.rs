//! The entry point of the `sakke_verify` fuzz target (not a supported API): the I_MESSAGE
//! verifier on arbitrary octets, and on a valid message with octets flipped. It must refuse
//! with a typed [`super::Refusal`], never panic; a message it accepts must carry the key sent.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use super::{
    Expect, KeyDelivery, KeyPurpose, Receiver, ReplayCache, Signer, build_i_message, ntp_timestamp,
    profile, verify_i_message,
};
use crate::crypto::Seeded;
use crate::ibe::{Kpak, Ksak, Rsk, SakkeMaster, SakkePublic, Ssv};

struct Keys {
    kpak: Kpak,
    z: SakkePublic,
    rsk: Rsk,
    key: Ssv,
    message: Vec<u8>,
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
        let key = Ssv::from_bytes([0x5c; 16]);
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let d = KeyDelivery {
            key: &key,
            key_id: 0x1000_0001,
            purpose: KeyPurpose::Pck,
            to_uid: &TO,
            to_uri: None,
            kms_uri: Some("kms.example.org"),
            time: ntp_timestamp(at)?,
            key_params: None,
        };
        let signer = Signer {
            uid: &FROM,
            ssk: &pair.ssk,
            pvt: &pair.pvt,
            kpak: &kpak,
        };
        let message = build_i_message(&d, &z, &signer, &mut rng).ok()?;
        Some(Keys {
            kpak,
            z,
            rsk,
            key,
            message,
            at,
        })
    })
    .as_ref()
}

/// Verifies `data` (first octet even), or the valid message with the rest of `data` XORed
/// into it (first octet odd).
///
/// Whether the message was accepted (the fuzz target ignores it; the tests check it).
///
/// # Panics
/// On a finding: an accepted message whose key is not the one sent, or accepted twice.
pub fn sakke_verify(data: &[u8]) -> bool {
    let Some(k) = keys() else { return false };
    let msg = match data.split_first() {
        Some((mode, rest)) if mode & 1 == 1 => {
            let mut m = k.message.clone();
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
        assert!(got.key == k.key, "accepted with another key");
        assert!(
            verify_i_message(&msg, &rx, &expect, &mut replay).is_err(),
            "accepted twice"
        );
        return true;
    }
    false
}
