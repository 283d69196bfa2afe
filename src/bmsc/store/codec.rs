//! Backend-independent encodings of the store: times as integers, and the sealed (encrypted at
//! rest) forms of key material with their associated data. A PostgreSQL store reuses these, so
//! sealed values mean the same in every backend.
//!
//! Sealing is AES-256-GCM under the KEK ([`crate::crypto::at_rest::seal_with`]). The associated
//! data is a format label and the row identity, so a sealed value copied to another row (another
//! MSK ID, another B-TID) fails to open instead of yielding a key under a wrong identity.

use std::time::{Duration, SystemTime};

use zeroize::Zeroizing;

use super::{CurrentMtk, StoreError};
use crate::crypto::at_rest::{open_with, seal_with};
use crate::crypto::{KsExtNaf, KsIntNaf, KsNaf, Msk, Mtk, Salt, StateKey};
use crate::gba::{Btid, GbaKeys, SubscriberKeys};
use crate::mikey::{KeyDomainId, MskId, MtkId};

/// Associated-data label of a sealed MSK row.
const MSK_LABEL: &[u8] = b"mbms-keys bmsc msk v1\0";
/// Associated-data label of a sealed MTK claim row (the cluster's one MTK per MTK ID).
const MTK_LABEL: &[u8] = b"mbms-keys bmsc mtk v1\0";
/// Associated-data label of a sealed GBA key cache row.
const GBA_LABEL: &[u8] = b"mbms-keys bmsc gba-cache v1\0";
/// Associated-data label of the store's KEK check value.
const KEK_CHECK_LABEL: &[u8] = b"mbms-keys bmsc kek-check v1\0";

/// A time as signed nanoseconds since the Unix epoch (years 1678 to 2262).
///
/// # Errors
/// [`StoreError::TimeOutOfRange`] outside that range.
pub fn time_to_nanos(t: SystemTime) -> Result<i64, StoreError> {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).map_err(|_| StoreError::TimeOutOfRange),
        Err(before) => i64::try_from(before.duration().as_nanos())
            .map(|n| -n)
            .map_err(|_| StoreError::TimeOutOfRange),
    }
}

/// The inverse of [`time_to_nanos`].
#[must_use]
pub fn nanos_to_time(n: i64) -> SystemTime {
    let d = Duration::from_nanos(n.unsigned_abs());
    if n >= 0 {
        SystemTime::UNIX_EPOCH + d
    } else {
        SystemTime::UNIX_EPOCH - d
    }
}

fn msk_aad(key_domain: KeyDomainId, msk_id: MskId) -> Vec<u8> {
    let mut aad = MSK_LABEL.to_vec();
    aad.extend_from_slice(&key_domain.0);
    aad.extend_from_slice(&msk_id.to_bytes());
    aad
}

/// Plaintext: MSK (16) ‖ form (0 no MTK, 1 MTK, 2 MTK + salt) ‖ [MTK ID (2) ‖ MTK (16) ‖ [salt (14)]].
///
/// # Panics
/// Only when the operating system's random generator fails.
#[must_use]
pub fn seal_msk(
    kek: &StateKey,
    key_domain: KeyDomainId,
    msk_id: MskId,
    msk: &Msk,
    current_mtk: Option<&CurrentMtk>,
) -> Vec<u8> {
    let mut plain = Zeroizing::new(Vec::with_capacity(Msk::LEN + 1 + 2 + Mtk::LEN + Salt::LEN));
    plain.extend_from_slice(msk.as_bytes());
    match current_mtk {
        None => plain.push(0),
        Some(c) => {
            plain.push(if c.salt.is_some() { 2 } else { 1 });
            plain.extend_from_slice(&c.id.0.to_be_bytes());
            plain.extend_from_slice(c.mtk.as_bytes());
            if let Some(salt) = &c.salt {
                plain.extend_from_slice(salt.as_bytes());
            }
        }
    }
    seal_with(kek, &msk_aad(key_domain, msk_id), &plain)
}

/// Opens what [`seal_msk`] sealed for the same row.
///
/// # Errors
/// [`StoreError::Corrupt`] for another KEK, another row, or altered octets.
pub fn open_msk(
    kek: &StateKey,
    key_domain: KeyDomainId,
    msk_id: MskId,
    sealed: &[u8],
) -> Result<(Msk, Option<CurrentMtk>), StoreError> {
    let corrupt = || StoreError::Corrupt {
        what: "MSK",
        id: format!("{key_domain}/{msk_id}"),
    };
    let plain = open_with(kek, &msk_aad(key_domain, msk_id), sealed).map_err(|_| corrupt())?;
    let (msk, rest) = plain.split_at_checked(Msk::LEN).ok_or_else(corrupt)?;
    let msk = Msk::from_slice(msk).map_err(|_| corrupt())?;
    let current = match rest.split_first() {
        Some((0, [])) => None,
        Some((form @ (1 | 2), rest)) => {
            let (id, rest) = rest.split_at_checked(2).ok_or_else(corrupt)?;
            let id = MtkId(u16::from_be_bytes(id.try_into().map_err(|_| corrupt())?));
            let (mtk, rest) = rest.split_at_checked(Mtk::LEN).ok_or_else(corrupt)?;
            let mtk = Mtk::from_slice(mtk).map_err(|_| corrupt())?;
            let salt = if *form == 2 {
                Some(Salt::from_slice(rest).map_err(|_| corrupt())?)
            } else if rest.is_empty() {
                None
            } else {
                return Err(corrupt());
            };
            Some(CurrentMtk { id, mtk, salt })
        }
        _ => return Err(corrupt()),
    };
    Ok((msk, current))
}

fn mtk_aad(key_domain: KeyDomainId, msk_id: MskId, mtk_id: MtkId) -> Vec<u8> {
    let mut aad = MTK_LABEL.to_vec();
    aad.extend_from_slice(&key_domain.0);
    aad.extend_from_slice(&msk_id.to_bytes());
    aad.extend_from_slice(&mtk_id.0.to_be_bytes());
    aad
}

/// Seals the MTK (and salt) claimed for (key domain, MSK ID, MTK ID). Plaintext: MTK (16) ‖
/// [salt (14)].
///
/// # Panics
/// Only when the operating system's random generator fails.
#[must_use]
pub fn seal_mtk(
    kek: &StateKey,
    key_domain: KeyDomainId,
    msk_id: MskId,
    mtk: &CurrentMtk,
) -> Vec<u8> {
    let mut plain = Zeroizing::new(Vec::with_capacity(Mtk::LEN + Salt::LEN));
    plain.extend_from_slice(mtk.mtk.as_bytes());
    if let Some(salt) = &mtk.salt {
        plain.extend_from_slice(salt.as_bytes());
    }
    seal_with(kek, &mtk_aad(key_domain, msk_id, mtk.id), &plain)
}

/// Opens what [`seal_mtk`] sealed for the same row.
///
/// # Errors
/// [`StoreError::Corrupt`] for another KEK, another row, or altered octets.
pub fn open_mtk(
    kek: &StateKey,
    key_domain: KeyDomainId,
    msk_id: MskId,
    mtk_id: MtkId,
    sealed: &[u8],
) -> Result<CurrentMtk, StoreError> {
    let corrupt = || StoreError::Corrupt {
        what: "MTK",
        id: format!("{key_domain}/{msk_id}/{mtk_id}"),
    };
    let plain =
        open_with(kek, &mtk_aad(key_domain, msk_id, mtk_id), sealed).map_err(|_| corrupt())?;
    let (mtk, rest) = plain.split_at_checked(Mtk::LEN).ok_or_else(corrupt)?;
    let mtk = Mtk::from_slice(mtk).map_err(|_| corrupt())?;
    let salt = if rest.is_empty() {
        None
    } else {
        Some(Salt::from_slice(rest).map_err(|_| corrupt())?)
    };
    Ok(CurrentMtk {
        id: mtk_id,
        mtk,
        salt,
    })
}

fn gba_aad(btid: &str, expires_nanos: i64) -> Vec<u8> {
    let mut aad = GBA_LABEL.to_vec();
    aad.extend_from_slice(&expires_nanos.to_be_bytes());
    aad.extend_from_slice(btid.as_bytes());
    aad
}

/// Plaintext: kind (0 GBA_ME, 1 GBA_U) ‖ Ks_NAF | Ks_ext_NAF ‖ Ks_int_NAF ‖ IMPI. The associated
/// data binds the B-TID and the expiry, so neither can be changed in the database.
///
/// # Errors
/// [`StoreError::TimeOutOfRange`] for an expiry the store cannot hold.
///
/// # Panics
/// Only when the operating system's random generator fails.
pub fn seal_gba_keys(kek: &StateKey, keys: &SubscriberKeys) -> Result<Vec<u8>, StoreError> {
    let expires = time_to_nanos(keys.expires)?;
    let mut plain = Zeroizing::new(Vec::with_capacity(1 + 64 + keys.impi.len()));
    match &keys.keys {
        GbaKeys::Me { ks_naf } => {
            plain.push(0);
            plain.extend_from_slice(ks_naf.as_bytes());
        }
        GbaKeys::U {
            ks_ext_naf,
            ks_int_naf,
        } => {
            plain.push(1);
            plain.extend_from_slice(ks_ext_naf.as_bytes());
            plain.extend_from_slice(ks_int_naf.as_bytes());
        }
    }
    plain.extend_from_slice(keys.impi.as_bytes());
    Ok(seal_with(
        kek,
        &gba_aad(keys.btid.as_str(), expires),
        &plain,
    ))
}

/// Opens what [`seal_gba_keys`] sealed for the same B-TID and expiry.
///
/// # Errors
/// [`StoreError::Corrupt`] for another KEK, another row, or altered octets.
pub fn open_gba_keys(
    kek: &StateKey,
    btid: &str,
    expires_nanos: i64,
    sealed: &[u8],
) -> Result<SubscriberKeys, StoreError> {
    let corrupt = || StoreError::Corrupt {
        what: "GBA keys",
        id: btid.to_owned(),
    };
    let plain = open_with(kek, &gba_aad(btid, expires_nanos), sealed).map_err(|_| corrupt())?;
    let (keys, impi) = match plain.split_first() {
        Some((0, rest)) => {
            let (k, impi) = rest.split_at_checked(KsNaf::LEN).ok_or_else(corrupt)?;
            let ks_naf = KsNaf::from_slice(k).map_err(|_| corrupt())?;
            (GbaKeys::Me { ks_naf }, impi)
        }
        Some((1, rest)) => {
            let (ext, rest) = rest.split_at_checked(KsExtNaf::LEN).ok_or_else(corrupt)?;
            let (int, impi) = rest.split_at_checked(KsIntNaf::LEN).ok_or_else(corrupt)?;
            (
                GbaKeys::U {
                    ks_ext_naf: KsExtNaf::from_slice(ext).map_err(|_| corrupt())?,
                    ks_int_naf: KsIntNaf::from_slice(int).map_err(|_| corrupt())?,
                },
                impi,
            )
        }
        _ => return Err(corrupt()),
    };
    let impi = std::str::from_utf8(impi).map_err(|_| corrupt())?.to_owned();
    let btid: Btid = btid.parse().map_err(|_| corrupt())?;
    Ok(SubscriberKeys {
        btid,
        impi,
        keys,
        expires: nanos_to_time(expires_nanos),
    })
}

/// The store's KEK check value: nothing sealed under the KEK, recorded when the store is
/// created, so a wrong KEK is refused at open rather than at the first MSK it cannot open.
///
/// # Panics
/// Only when the operating system's random generator fails.
#[must_use]
pub fn seal_kek_check(kek: &StateKey) -> Vec<u8> {
    seal_with(kek, KEK_CHECK_LABEL, &[])
}

/// Whether `sealed` is a check value of [`seal_kek_check`] under `kek`.
#[must_use]
pub fn kek_opens_check(kek: &StateKey, sealed: &[u8]) -> bool {
    open_with(kek, KEK_CHECK_LABEL, sealed).is_ok_and(|plain| plain.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek() -> StateKey {
        StateKey::from_bytes([9; 32])
    }

    #[test]
    fn msk_round_trips_with_each_mtk_form() {
        let kd = KeyDomainId([0x00, 0xf1, 0x10]);
        let id = MskId::new(1, 2);
        let msk = Msk::from_bytes([1; 16]);
        for current in [
            None,
            Some(CurrentMtk {
                id: MtkId(7),
                mtk: Mtk::from_bytes([2; 16]),
                salt: None,
            }),
            Some(CurrentMtk {
                id: MtkId(8),
                mtk: Mtk::from_bytes([3; 16]),
                salt: Some(Salt::from_bytes([4; 14])),
            }),
        ] {
            let sealed = seal_msk(&kek(), kd, id, &msk, current.as_ref());
            let (m, c) = open_msk(&kek(), kd, id, &sealed).expect("opens");
            assert_eq!((m, c), (msk.clone(), current));
            assert!(open_msk(&kek(), kd, MskId::new(1, 3), &sealed).is_err());
        }
    }

    #[test]
    fn times_round_trip_both_sides_of_the_epoch() {
        for n in [0i64, 1, -1, 1_700_000_000_123_456_789, -86_400_000_000_000] {
            assert_eq!(time_to_nanos(nanos_to_time(n)).expect("in range"), n);
        }
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(400 * 365 * 86_400);
        assert!(matches!(
            time_to_nanos(far),
            Err(StoreError::TimeOutOfRange)
        ));
    }

    #[test]
    fn the_kek_check_value_opens_under_its_key_only() {
        let kek = StateKey::from_bytes([3; 32]);
        let check = seal_kek_check(&kek);
        assert!(kek_opens_check(&kek, &check));
        assert!(!kek_opens_check(&StateKey::from_bytes([4; 32]), &check));
        // Not interchangeable with a sealed MSK of the same key.
        let msk = seal_msk(
            &kek,
            KeyDomainId([0; 3]),
            MskId::new(1, 1),
            &Msk::from_bytes([1; 16]),
            None,
        );
        assert!(!kek_opens_check(&kek, &msk));
        assert!(!kek_opens_check(&kek, &[]));
    }
}
