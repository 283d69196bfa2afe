//! Identity-based cryptography of the mission-critical key management (TS 33.180): ECCSI
//! signatures (RFC 6507) over NIST P-256 and SAKKE key encapsulation (RFC 6508) with parameter
//! set 1 (RFC 6509), and the UID format 2 identifiers they are keyed by.
//!
//! Crypto layer (docs/architecture.md §3): it uses only [`crate::crypto`]. Secrets (KSAK, z, SSK,
//! RSK, SSV) are fixed-size types that zeroize on drop, print `[REDACTED]` and compare in
//! constant time; randomness comes from an injected [`crate::crypto::Random`].
// No panic in non-test code (clippy.toml allows these in tests):
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![deny(clippy::indexing_slicing, clippy::panic)]

mod cache;
pub mod eccsi;
mod field;
mod fixed;
mod fp;
mod limbs;
mod p256_table;
mod p256_vartime;
mod pairing;
pub mod params;
pub mod sakke;
pub mod uid;

use thiserror::Error;

use crate::crypto::secret::secret_bytes;

pub use eccsi::{EccsiKeyPair, Kpak};
pub use params::{ECCSI_POINT_LEN, ECCSI_SIG_LEN, SAKKE_ENCAP_LEN, SAKKE_POINT_LEN, SAKKE_SSV_LEN};
pub use sakke::SakkePublic;
pub use uid::{UidError, uid_format2};

secret_bytes!(
    /// The KMS Secret Authentication Key of ECCSI (RFC 6507 §2.2), a scalar mod q of P-256.
    Ksak,
    32
);
secret_bytes!(
    /// A user's Secret Signing Key of ECCSI (RFC 6507 §4.1).
    Ssk,
    32
);
secret_bytes!(
    /// The KMS master secret z of SAKKE (RFC 6508 §2.2), 128 octets big-endian.
    SakkeMaster,
    128
);
secret_bytes!(
    /// A user's Receiver Secret Key of SAKKE, the point `04 ‖ x ‖ y` (RFC 6508 §2.2).
    Rsk,
    257
);
secret_bytes!(
    /// The Shared Secret Value SAKKE carries, n = 128 bits (RFC 6508 §2.1).
    Ssv,
    16
);

/// The refusals of ECCSI, SAKKE and their encodings. They name the field, never its value.
#[non_exhaustive]
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum IbeError {
    /// A field has the wrong number of octets.
    #[error("{what}: expected {expected} octets, got {got}")]
    Length {
        /// The field.
        what: &'static str,
        /// Octets required.
        expected: usize,
        /// Octets given.
        got: usize,
    },
    /// A point is not in the uncompressed form `04 ‖ x ‖ y`.
    #[error("{what}: not an uncompressed point (04 ‖ x ‖ y)")]
    NotUncompressed {
        /// The field.
        what: &'static str,
    },
    /// A point is not on the curve (or a coordinate is not below p).
    #[error("{what}: not a point on the curve")]
    NotOnCurve {
        /// The field.
        what: &'static str,
    },
    /// A point on the curve but not of the prime order q.
    #[error("{what}: not in the subgroup of order q")]
    NotInSubgroup {
        /// The field.
        what: &'static str,
    },
    /// A scalar is zero or not below the group order, or a computation met the identity.
    #[error("{what}: out of range")]
    OutOfRange {
        /// The field.
        what: &'static str,
    },
    /// The identifier is empty.
    #[error("identifier: empty")]
    EmptyIdentifier,
    /// The identifier is longer than SAKKE allows (128 octets).
    #[error("identifier: longer than 128 octets")]
    IdentifierTooLong,
    /// An ECCSI signature does not verify (RFC 6507 §5.2.2).
    #[error("ECCSI signature does not verify")]
    BadSignature,
    /// An SSK/PVT pair does not validate against the KPAK and identifier (RFC 6507 §5.1.2).
    #[error("SSK/PVT do not validate against KPAK and identifier")]
    InvalidKeyPair,
    /// An RSK does not validate against Z and the identifier (RFC 6508 §6.1.2).
    #[error("RSK does not validate against Z and identifier")]
    InvalidRsk,
    /// Encapsulated Data does not decapsulate under this RSK and identifier (RFC 6508 §6.2.2).
    #[error("SAKKE data does not decapsulate")]
    DecapsulationFailed,
    /// The random generator failed.
    #[error("random generator failed")]
    Random,
}

/// Identifiers are 1 to `max` octets.
fn check_id(id: &[u8], max: usize) -> Result<(), IbeError> {
    if id.is_empty() {
        return Err(IbeError::EmptyIdentifier);
    }
    if id.len() > max {
        return Err(IbeError::IdentifierTooLong);
    }
    Ok(())
}
