//! What the UE driver tests share: one UE's identities and GBA keys, and the MSK the tests push.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mbms_keys::crypto::{KsNaf, Msk, Muk};
use mbms_keys::gba::GbaKeys;
use mbms_keys::ue::gba_keys::{StaticGbaKeys, UeGbaKeys};

pub const FQDN: &str = "bmsc.example.org";
pub const BTID: &str = "ICEiIyQlJicoKSorLC0uLw==@bsf.example.org";

pub fn ks_naf() -> KsNaf {
    KsNaf::from_bytes([0x42; 32])
}

/// The UE's GBA keys, valid for an hour.
pub fn provider() -> Arc<StaticGbaKeys> {
    Arc::new(StaticGbaKeys::new(UeGbaKeys {
        btid: BTID.parse().unwrap(),
        material: GbaKeys::Me { ks_naf: ks_naf() },
        expiry: SystemTime::now() + Duration::from_secs(3600),
    }))
}

/// GBA_ME: MUK = Ks_NAF (docs/profile.md §1).
pub fn muk() -> Muk {
    Muk::from_bytes(*ks_naf().as_bytes())
}

pub fn msk() -> Msk {
    Msk::from_bytes([0xb0; 16])
}
