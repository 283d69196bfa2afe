//! Why an MBMS message was not accepted.

use crate::mikey::{DecodeError, EncodeError};

/// A message that is not a valid message of the profile, or whose MAC does
/// not verify. Never carries key material.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Not a well-formed MIKEY message.
    #[error("malformed MIKEY message: {0}")]
    Decode(#[from] DecodeError),
    /// Well-formed MIKEY, but not the structure the profile requires.
    #[error("not a profile message: {0}")]
    Structure(&'static str),
    /// The MAC (KEMAC) or verification MAC (V) does not verify.
    #[error("MAC does not verify")]
    BadMac,
    /// The decrypted Encr data is not a valid Key data chain.
    #[error("decrypted key data is malformed: {0}")]
    KeyData(DecodeError),
    /// The decrypted key data does not carry what the profile requires.
    #[error("key data: {0}")]
    KeyContent(&'static str),
}

/// A builder input that cannot be expressed in the profile.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The inputs break a rule of the profile; says which.
    #[error("{0}")]
    Invalid(&'static str),
    /// The MIKEY encoder refused the message.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}
