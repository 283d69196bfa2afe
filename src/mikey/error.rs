//! Typed decode and encode errors: what was wrong and where.

use std::fmt;

use super::wire::PayloadType;

/// Where a decode error happened: the payload being read and the absolute
/// offset of the octet that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{payload} at offset {offset}: {reason}")]
pub struct DecodeError {
    /// The payload being decoded.
    pub payload: PayloadName,
    /// Offset of the offending field, from the start of the decoded buffer.
    pub offset: usize,
    /// What was wrong.
    pub reason: Reason,
}

/// The payload a [`DecodeError`] occurred in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadName {
    /// The message as a whole (the chain, trailing octets).
    Message,
    /// The common header.
    Hdr,
    /// A payload of the chain, by its type.
    Payload(PayloadType),
    /// An SRTP policy parameter inside SP.
    SpParam,
    /// A Key ID sub-payload inside the Key ID extension.
    KeyId,
}

impl fmt::Display for PayloadName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Message => f.write_str("message"),
            Self::Hdr => f.write_str("HDR payload"),
            Self::Payload(t) => match t.name() {
                Some(name) => write!(f, "{name} payload"),
                None => write!(f, "payload type {}", t.0),
            },
            Self::SpParam => f.write_str("SP policy param"),
            Self::KeyId => f.write_str("Key ID sub-payload"),
        }
    }
}

/// Why decoding failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Reason {
    /// The field needs more octets than remain.
    #[error("truncated: {field} needs {needed} octets, {available} remain")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// The octets it needs.
        needed: usize,
        /// The octets left in the input, or in the enclosing
        /// length-delimited field.
        available: usize,
    },
    /// Octets remain after the last payload.
    #[error("{count} trailing octets after the last payload")]
    TrailingBytes {
        /// How many octets remain.
        count: usize,
    },
    /// The next-payload chain names a type whose layout is not known.
    #[error("unknown payload type {0}")]
    UnknownPayloadType(u8),
    /// A Key data sub-payload (20) in the top-level chain.
    #[error("Key data sub-payload outside a KEMAC")]
    KeyDataOutsideKemac,
    /// The length of a field depends on a value this codec does not know.
    #[error("{field} value {value} has no known length")]
    UnknownLength {
        /// The field whose value gives the length.
        field: &'static str,
        /// Its value.
        value: u8,
    },
    /// A length field is inconsistent with the content it covers.
    #[error("{field}: {detail}")]
    BadLength {
        /// The length field.
        field: &'static str,
        /// What does not match.
        detail: &'static str,
    },
    /// Within Encr data, a Key data sub-payload chains to something else.
    #[error("Key data sub-payload chains to payload type {0}")]
    BadKeyDataChain(u8),
}

/// Why encoding failed: a value does not fit its length field, or the chain
/// cannot be expressed on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A variable field is longer than its length field can say.
    #[error("{field} is {len} octets, more than the {max} its length field allows")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its length, in octets.
        len: usize,
        /// The most its length field can say.
        max: usize,
    },
    /// A field has a length that its type does not allow.
    #[error("{field} must be {expected} octets, is {len}")]
    WrongLength {
        /// The field.
        field: &'static str,
        /// The length its type gives it, in octets.
        expected: usize,
        /// Its length, in octets.
        len: usize,
    },
    /// SIGN has no next-payload field, so it can only be the last payload.
    #[error("SIGN payload is not the last payload")]
    SignNotLast,
    /// A value does not fit its bit field.
    #[error("{field} value {value} does not fit its bit field")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// The value that does not fit.
        value: u32,
    },
}
