//! A test KMS and its users for MIKEY-SAKKE messages: KPAK and Z, and per user a UID with its
//! SSK, PVT and RSK, issued by our `ibe` module; messages built between them.
#![allow(dead_code)]

use std::time::{Duration, SystemTime};

use mbms_keys::crypto::OsRandom;
use mbms_keys::ibe::{Kpak, Ksak, Rsk, SakkeMaster, SakkePublic, Ssk, uid_format2};
use mbms_keys::mcx::{
    DeliveryKey, Expect, KeyDelivery, KeyPurpose, Receiver, Signer, build_i_message, ntp_timestamp,
    profile,
};

pub const KMS_URI: &str = "kms.example.org";

pub struct Kms {
    pub ksak: Ksak,
    pub kpak: Kpak,
    pub master: SakkeMaster,
    pub z: SakkePublic,
}

pub struct User {
    pub uri: String,
    pub uid: [u8; 32],
    pub ssk: Ssk,
    pub pvt: [u8; 65],
    pub rsk: Rsk,
}

impl Kms {
    pub fn new() -> Self {
        let ksak = Ksak::generate(&mut OsRandom).unwrap();
        let master = SakkeMaster::generate(&mut OsRandom).unwrap();
        Self {
            kpak: ksak.kpak().unwrap(),
            z: master.public().unwrap(),
            ksak,
            master,
        }
    }

    pub fn user(&self, uri: &str) -> User {
        self.user_with_uid(uri, uid_format2(uri, KMS_URI, 2_592_000, 0, 700).unwrap())
    }

    /// A user of a chosen UID (e.g. printable, for a dissector that shows it as text).
    pub fn user_with_uid(&self, uri: &str, uid: [u8; 32]) -> User {
        let pair = self.ksak.issue(&uid, &mut OsRandom).unwrap();
        User {
            uri: uri.into(),
            uid,
            ssk: pair.ssk,
            pvt: pair.pvt,
            rsk: self.master.issue_rsk(&uid).unwrap(),
        }
    }

    pub fn signer<'a>(&'a self, u: &'a User) -> Signer<'a> {
        Signer {
            uid: &u.uid,
            ssk: &u.ssk,
            pvt: &u.pvt,
            kpak: &self.kpak,
        }
    }

    pub fn receiver<'a>(&'a self, u: &'a User, with_uri: bool) -> Receiver<'a> {
        Receiver {
            uid: &u.uid,
            uri: with_uri.then_some(u.uri.as_str()),
            rsk: &u.rsk,
            z: &self.z,
        }
    }

    /// What a receiver expects of `from` at `at`.
    pub fn expect<'a>(&'a self, from: &'a User, at: SystemTime) -> Expect<'a> {
        Expect {
            from_uid: &from.uid,
            kpak: &self.kpak,
            purpose: None,
            at,
            window: profile::FRESHNESS_WINDOW,
        }
    }

    /// A message from `from` to `to` delivering `key` (an SSV, or a 16- or 32-octet
    /// `DeliveryKey`) of `purpose` and `key_id` at `at`.
    pub fn message<K: Clone + Into<DeliveryKey>>(
        &self,
        from: &User,
        to: &User,
        key: &K,
        purpose: KeyPurpose,
        key_id: u32,
        at: SystemTime,
    ) -> Vec<u8> {
        let key: DeliveryKey = key.clone().into();
        let d = KeyDelivery {
            key: &key,
            key_id,
            purpose,
            to_uid: &to.uid,
            to_uri: Some(&to.uri),
            kms_uri: Some(KMS_URI),
            time: ntp_timestamp(at).unwrap(),
            key_params: None,
        };
        build_i_message(&d, &self.z, &self.signer(from), &mut OsRandom).unwrap()
    }
}

/// 2027-01-15T08:00:00Z.
pub fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}
