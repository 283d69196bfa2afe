//! Key issuance of the KMS (docs/mcx.md §9.3): the KMS certificate of the master secrets, the
//! key period of a time, and a user's key set for a key period (UID format 2, ECCSI SSK/PVT,
//! SAKKE RSK).

use thiserror::Error;

use super::Secret;
use super::messages::{KeyContent, KmsCertificate, KmsKeySet, Role, xml_datetime};
use super::store::MasterSecrets;
use crate::crypto::Random;
use crate::ibe::{IbeError, Kpak, SakkePublic, uid_format2};

/// Seconds from the NTP epoch (1900-01-01) to the Unix epoch.
pub const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// Why a key set was not issued.
#[non_exhaustive]
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum IssueError {
    /// The time asked for is before the current key period.
    #[error("key period {asked} is past (current {current})")]
    Past {
        /// The period asked for.
        asked: u64,
        /// The current period.
        current: u64,
    },
    /// The time asked for is further ahead than the KMS issues.
    #[error("key period {asked} is more than {max} periods ahead of {current}")]
    TooFarAhead {
        /// The period asked for.
        asked: u64,
        /// The current period.
        current: u64,
        /// The bound.
        max: u64,
    },
    /// A time before the first key period.
    #[error("time before the first key period")]
    BeforeOffset,
    /// The user URI cannot make a UID.
    #[error("user URI cannot make a UID")]
    Uid,
    /// ECCSI or SAKKE failed.
    #[error("key generation: {0}")]
    Ibe(#[from] IbeError),
}

/// The KMS's issuing side: its URI, key period parameters and master secrets.
#[derive(Debug)]
pub struct Issuer {
    kms_uri: String,
    period: u64,
    offset: u64,
    max_ahead: u64,
    masters: MasterSecrets,
    kpak: Kpak,
    z_pub: SakkePublic,
}

impl Issuer {
    /// The issuer of `masters` for `kms_uri`, with `UserKeyPeriod` `period` (seconds, > 0),
    /// `UserKeyOffset` `offset` and at most `max_ahead` periods ahead.
    ///
    /// # Errors
    /// [`IssueError::Ibe`] when a master secret is out of range.
    pub fn new(
        kms_uri: &str,
        period: u64,
        offset: u64,
        max_ahead: u64,
        masters: MasterSecrets,
    ) -> Result<Self, IssueError> {
        let kpak = masters.ksak.kpak()?;
        let z_pub = masters.z.public()?;
        Ok(Self {
            kms_uri: kms_uri.to_owned(),
            period: period.max(1),
            offset,
            max_ahead,
            masters,
            kpak,
            z_pub,
        })
    }

    /// The KMS certificate (KMS URI, UID format 2, period, offset, Z, KPAK, parameter set 1).
    #[must_use]
    pub fn certificate(&self) -> KmsCertificate {
        KmsCertificate {
            id: None,
            version: Some("1.1.0".into()),
            role: Some(Role::Root),
            cert_uri: None,
            kms_uri: self.kms_uri.clone(),
            issuer: None,
            valid_from: None,
            valid_to: None,
            revoked: Some(false),
            user_id_format: "2".into(),
            user_key_period: self.period,
            user_key_offset: self.offset,
            pub_enc_key: self.z_pub.to_octets().to_vec(),
            pub_auth_key: self.kpak.to_octets().to_vec(),
            parameter_set: Some(1),
            domains: Vec::new(),
        }
    }

    /// The key period number of Unix time `unix_secs`:
    /// floor((NTP seconds − UserKeyOffset) / UserKeyPeriod) (TS 33.180; NTP time, since
    /// 1900-01-01).
    ///
    /// # Errors
    /// [`IssueError::BeforeOffset`].
    pub fn period_no(&self, unix_secs: u64) -> Result<u64, IssueError> {
        unix_secs
            .saturating_add(NTP_UNIX_OFFSET)
            .checked_sub(self.offset)
            .map(|t| t / self.period)
            .ok_or(IssueError::BeforeOffset)
    }

    /// The Unix times the key period `n` starts and ends (exclusive).
    fn period_bounds(&self, n: u64) -> (u64, u64) {
        let start = n
            .saturating_mul(self.period)
            .saturating_add(self.offset)
            .saturating_sub(NTP_UNIX_OFFSET);
        (start, start.saturating_add(self.period))
    }

    /// \[CHOICE\] docs/mcx.md §9.3: the key period a request at `now` may have for time
    /// `asked` (both Unix seconds): the current period and up to `max_periods_ahead` after
    /// it; past periods are refused (their keys were delivered in their time).
    ///
    /// # Errors
    /// [`IssueError::Past`], [`IssueError::TooFarAhead`], [`IssueError::BeforeOffset`].
    pub fn allowed_period(&self, now: u64, asked: u64) -> Result<u64, IssueError> {
        let current = self.period_no(now)?;
        let n = self.period_no(asked)?;
        if n < current {
            return Err(IssueError::Past { asked: n, current });
        }
        if n - current > self.max_ahead {
            return Err(IssueError::TooFarAhead {
                asked: n,
                current,
                max: self.max_ahead,
            });
        }
        Ok(n)
    }

    /// The key set of `user_uri` for key period `n`: UID format 2, a fresh ECCSI SSK/PVT and
    /// the SAKKE RSK, each in clear (the transport protection encrypts them).
    ///
    /// # Errors
    /// [`IssueError::Uid`], [`IssueError::Ibe`].
    pub fn key_set(
        &self,
        user_uri: &str,
        n: u64,
        rng: &mut dyn Random,
    ) -> Result<KmsKeySet, IssueError> {
        let uid = uid_format2(user_uri, &self.kms_uri, self.period, self.offset, n)
            .map_err(|_| IssueError::Uid)?;
        let pair = self.masters.ksak.issue(&uid, rng)?;
        let rsk = self.masters.z.issue_rsk(&uid)?;
        let (from, to) = self.period_bounds(n);
        Ok(KmsKeySet {
            kms_uri: self.kms_uri.clone(),
            cert_uri: None,
            issuer: None,
            user_uri: user_uri.to_owned(),
            user_id: uid.to_vec(),
            valid_from: Some(xml_datetime(from)),
            valid_to: Some(xml_datetime(to)),
            key_period_no: n,
            revoked: Some(false),
            rsk: KeyContent::Plain(Secret::new(rsk.as_bytes().to_vec())),
            ssk: KeyContent::Plain(Secret::new(pair.ssk.as_bytes().to_vec())),
            pvt: KeyContent::Plain(Secret::new(pair.pvt.to_vec())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Seeded;
    use crate::ibe::{Ksak, SakkeMaster};

    fn issuer(max_ahead: u64) -> Issuer {
        let m = MasterSecrets {
            ksak: Ksak::generate(&mut Seeded::new(1)).unwrap(),
            z: SakkeMaster::generate(&mut Seeded::new(2)).unwrap(),
        };
        Issuer::new("kms.example.org", 2_592_000, 0, max_ahead, m).unwrap()
    }

    #[test]
    fn period_numbers_count_from_the_ntp_epoch() {
        let i = issuer(1);
        // 2024-01-01T00:00:00Z: NTP 3913056000 / 2592000 = 1509.
        assert_eq!(i.period_no(1_704_067_200).unwrap(), 1509);
        let (from, to) = i.period_bounds(1509);
        assert!(from <= 1_704_067_200 && 1_704_067_200 < to);
        assert_eq!(i.period_no(from).unwrap(), 1509);
        assert_eq!(i.period_no(to).unwrap(), 1510);
    }

    #[test]
    fn only_the_current_and_the_allowed_next_periods_are_issued() {
        let i = issuer(1);
        let now = 1_704_067_200;
        assert_eq!(i.allowed_period(now, now).unwrap(), 1509);
        assert_eq!(i.allowed_period(now, now + 2_592_000).unwrap(), 1510);
        assert!(matches!(
            i.allowed_period(now, now + 2 * 2_592_000),
            Err(IssueError::TooFarAhead { .. })
        ));
        assert!(matches!(
            i.allowed_period(now, now - 2_592_000),
            Err(IssueError::Past { .. })
        ));
    }
}
