//! The error of the nom parsers: a [`Reason`] and where it happened, turned
//! into a [`DecodeError`] once parsing stops. Plain values, no allocation.
//!
//! Where is counted from the end: `rest_len` is how many octets, from the
//! offending field to the end of the input, remained when it failed. A
//! parser of a length-delimited field adds what follows the field
//! ([`Fail::within`]), so that `rest_len` always counts to the end of the
//! whole input and the absolute offset is its length minus `rest_len`.

use nom::error::{ErrorKind, ParseError};

use crate::mikey::error::{DecodeError, PayloadName, Reason};

/// A parse failure, not yet placed in the whole input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fail {
    /// Octets from the offending field to the end of the input.
    rest_len: usize,
    /// The payload it is attributed to: set by the innermost labelling
    /// parser ([`Fail::or_in`]), the message when none did.
    payload: Option<PayloadName>,
    reason: Reason,
}

/// What the parsers return.
pub(crate) type Res<'a, T> = nom::IResult<&'a [u8], T, Fail>;

impl Fail {
    /// A failure at the field that starts `at`, the input not read yet.
    #[cold]
    pub(crate) fn at(at: &[u8], reason: Reason) -> Self {
        Self {
            rest_len: at.len(),
            payload: None,
            reason,
        }
    }

    /// `field` needs `needed` octets; `at` is what remains.
    #[cold]
    pub(crate) fn truncated(at: &[u8], field: &'static str, needed: usize) -> Self {
        Self::at(
            at,
            Reason::Truncated {
                field,
                needed,
                available: at.len(),
            },
        )
    }

    /// Attributes the failure to `payload` unless a parser inside did.
    #[cold]
    pub(crate) fn or_in(mut self, payload: PayloadName) -> Self {
        self.payload.get_or_insert(payload);
        self
    }

    /// The failure of a parser run on a length-delimited field, seen from
    /// outside the field: attributed to `payload` unless a parser inside
    /// did, and `after` more octets (those that follow the field) to the end.
    #[cold]
    pub(crate) fn within(self, payload: PayloadName, after: usize) -> Self {
        let mut fail = self.or_in(payload);
        fail.rest_len = fail.rest_len.saturating_add(after);
        fail
    }

    /// The typed error, the failure placed in an input of `len` octets.
    #[cold]
    pub(crate) fn into_decode_error(self, len: usize) -> DecodeError {
        DecodeError {
            payload: self.payload.unwrap_or(PayloadName::Message),
            offset: len.saturating_sub(self.rest_len),
            reason: self.reason,
        }
    }
}

/// A failed parse as an `Err`, for the parsers' early returns.
#[cold]
pub(crate) fn fail<T>(at: &[u8], reason: Reason) -> Res<'_, T> {
    Err(nom::Err::Error(Fail::at(at, reason)))
}

/// The typed error of a parse of an input of `len` octets.
#[cold]
pub(crate) fn decode_error(err: nom::Err<Fail>, len: usize) -> DecodeError {
    match err {
        nom::Err::Error(fail) | nom::Err::Failure(fail) => fail.into_decode_error(len),
        // The parsers are the complete ones: they fail with `Error`, never
        // ask for more input. Said as the truncation it would be.
        nom::Err::Incomplete(needed) => DecodeError {
            payload: PayloadName::Message,
            offset: len,
            reason: Reason::Truncated {
                field: "input",
                needed: match needed {
                    nom::Needed::Size(n) => n.get(),
                    nom::Needed::Unknown => 1,
                },
                available: 0,
            },
        },
    }
}

/// nom's own failures. Every nom parser the view calls is wrapped by one
/// that replaces its error with the typed one (see `field.rs`), so these are
/// only the raw material: nom's primitives fail only for want of octets, so
/// a truncation at `input`.
impl ParseError<&[u8]> for Fail {
    fn from_error_kind(input: &[u8], _: ErrorKind) -> Self {
        Self::truncated(input, "input", 1)
    }

    /// Keeps the innermost failure: it is the one that says what was wrong.
    fn append(_: &[u8], _: ErrorKind, other: Self) -> Self {
        other
    }
}
