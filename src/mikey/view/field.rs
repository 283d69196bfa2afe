//! The fields of MIKEY payloads as nom parsers over the complete datagram.
//! Each field is taken as nom's `take` takes it, named after the field so
//! that a short input fails with the typed truncation; integers are read
//! big-endian from the octets taken. The combinators the payloads share: length-prefixed fields,
//! a type octet that gives a length, a list of TLVs filling a field, and the
//! labelling of failures with their payload.
//!
//! The parsers are structs implementing [`Parser::process`], inlined into
//! their callers, so that nom's output modes reach them: a list being
//! checked builds no items ([`Check`] output), a walk that ignores failures
//! builds no errors ([`Check`] errors).

use nom::{Check, Complete, Emit, Input, Mode, OutputM, OutputMode, PResult, Parser};

use super::fail::{Fail, Res};
use crate::mikey::error::{PayloadName, Reason};

/// The output mode `OM` with its outputs emitted: for the values a parser
/// needs itself (a length, a type).
type Emitting<OM> = OutputM<Emit, <OM as OutputMode>::Error, Complete>;

/// An `Err` for `OM` saying `reason` at the field that starts `at`.
#[inline(always)]
fn failure<OM: OutputMode, T>(at: &[u8], reason: Reason) -> PResult<OM, &[u8], T, Fail> {
    Err(nom::Err::Error(OM::Error::bind(|| Fail::at(at, reason))))
}

/// `len` octets named `field`: what nom's `take` does, by the same
/// [`Input`] methods, but splitting with the inlined `take_split` (nom
/// 8.0's `take` goes through `Input::take_from`, not inlinable: one call
/// per field, which cost the parse about half its time).
#[inline(always)]
fn take_field<'a, OM: OutputMode>(
    i: &'a [u8],
    field: &'static str,
    len: usize,
) -> PResult<OM, &'a [u8], &'a [u8], Fail> {
    match i.slice_index(len) {
        Ok(len) => {
            let (rest, data) = i.take_split(len);
            Ok((rest, OM::Output::bind(|| data)))
        }
        Err(_) => Err(nom::Err::Error(OM::Error::bind(|| {
            Fail::truncated(i, field, len)
        }))),
    }
}

/// A big-endian unsigned integer field of `N` octets.
#[derive(Clone, Copy)]
pub(super) struct Uint<T, const N: usize> {
    field: &'static str,
    from_be_bytes: fn([u8; N]) -> T,
}

impl<'a, T, const N: usize> Parser<&'a [u8]> for Uint<T, N> {
    type Output = T;
    type Error = Fail;

    #[inline(always)]
    fn process<OM: OutputMode>(&mut self, i: &'a [u8]) -> PResult<OM, &'a [u8], T, Fail> {
        let (rest, octets) = take_field::<Emitting<OM>>(i, self.field, N)?;
        match octets.first_chunk::<N>() {
            Some(&octets) => Ok((rest, OM::Output::bind(|| (self.from_be_bytes)(octets)))),
            // Not reached: `take` gave N octets.
            None => Err(nom::Err::Error(OM::Error::bind(|| {
                Fail::truncated(i, self.field, N)
            }))),
        }
    }
}

/// A one-octet field.
#[inline(always)]
pub(super) fn uint8(field: &'static str) -> Uint<u8, 1> {
    Uint {
        field,
        from_be_bytes: u8::from_be_bytes,
    }
}

/// A 16-bit field.
#[inline(always)]
pub(super) fn uint16(field: &'static str) -> Uint<u16, 2> {
    Uint {
        field,
        from_be_bytes: u16::from_be_bytes,
    }
}

/// A 32-bit field.
#[inline(always)]
pub(super) fn uint32(field: &'static str) -> Uint<u32, 4> {
    Uint {
        field,
        from_be_bytes: u32::from_be_bytes,
    }
}

/// A 64-bit field.
#[inline(always)]
pub(super) fn uint64(field: &'static str) -> Uint<u64, 8> {
    Uint {
        field,
        from_be_bytes: u64::from_be_bytes,
    }
}

/// A field of a length known before it is read, as a slice of the input.
#[derive(Clone, Copy)]
pub(super) struct Bytes {
    field: &'static str,
    len: usize,
}

/// A field of `len` octets.
#[inline(always)]
pub(super) fn bytes(field: &'static str, len: usize) -> Bytes {
    Bytes { field, len }
}

impl<'a> Parser<&'a [u8]> for Bytes {
    type Output = &'a [u8];
    type Error = Fail;

    #[inline(always)]
    fn process<OM: OutputMode>(&mut self, i: &'a [u8]) -> PResult<OM, &'a [u8], &'a [u8], Fail> {
        take_field::<OM>(i, self.field, self.len)
    }
}

/// A length field, then the field it measures, as a slice of the input.
#[derive(Clone, Copy)]
pub(super) struct LenBytes<T, const N: usize> {
    len: Uint<T, N>,
    field: &'static str,
}

/// An 8-bit length field named `len_field`, then the field it measures.
#[inline(always)]
pub(super) fn len8_bytes(len_field: &'static str, field: &'static str) -> LenBytes<u8, 1> {
    LenBytes {
        len: uint8(len_field),
        field,
    }
}

/// A 16-bit length field named `len_field`, then the field it measures.
#[inline(always)]
pub(super) fn len16_bytes(len_field: &'static str, field: &'static str) -> LenBytes<u16, 2> {
    LenBytes {
        len: uint16(len_field),
        field,
    }
}

impl<'a, T: Into<usize>, const N: usize> Parser<&'a [u8]> for LenBytes<T, N> {
    type Output = &'a [u8];
    type Error = Fail;

    #[inline(always)]
    fn process<OM: OutputMode>(&mut self, i: &'a [u8]) -> PResult<OM, &'a [u8], &'a [u8], Fail> {
        let (i, len) = self.len.process::<Emitting<OM>>(i)?;
        take_field::<OM>(i, self.field, len.into())
    }
}

/// A type octet that gives the length of the field after it.
#[derive(Clone, Copy)]
pub(super) struct TypedLen<T> {
    field: &'static str,
    wrap: fn(u8) -> T,
    len_of: fn(T) -> Option<usize>,
}

/// A type octet named `field`, made a `T` by `wrap`, and the length
/// `len_of` gives the field after it; a failure at the type octet when
/// `len_of` knows none.
#[inline(always)]
pub(super) fn typed_len<T>(
    field: &'static str,
    wrap: fn(u8) -> T,
    len_of: fn(T) -> Option<usize>,
) -> TypedLen<T> {
    TypedLen {
        field,
        wrap,
        len_of,
    }
}

impl<'a, T: Copy> Parser<&'a [u8]> for TypedLen<T> {
    type Output = (T, usize);
    type Error = Fail;

    #[inline(always)]
    fn process<OM: OutputMode>(&mut self, at: &'a [u8]) -> PResult<OM, &'a [u8], (T, usize), Fail> {
        let (i, value) = uint8(self.field).process::<Emitting<OM>>(at)?;
        let t = (self.wrap)(value);
        match (self.len_of)(t) {
            Some(len) => Ok((i, OM::Output::bind(|| (t, len)))),
            None => failure::<OM, _>(
                at,
                Reason::UnknownLength {
                    field: self.field,
                    value,
                },
            ),
        }
    }
}

/// A field of a known length holding a list of items to its end.
#[derive(Clone, Copy)]
pub(super) struct ListField<P> {
    field: &'static str,
    len: usize,
    payload: PayloadName,
    item: P,
}

/// A field named `field` of `len` octets holding a list of items read by
/// `item` to its end; returns the field. Failures inside are attributed to
/// `payload` (unless a parser inside named another) and keep their offsets
/// in the whole input.
#[inline(always)]
pub(super) fn list_field<P>(
    field: &'static str,
    len: usize,
    payload: PayloadName,
    item: P,
) -> ListField<P> {
    ListField {
        field,
        len,
        payload,
        item,
    }
}

impl<'a, P: Parser<&'a [u8], Error = Fail>> Parser<&'a [u8]> for ListField<P> {
    type Output = &'a [u8];
    type Error = Fail;

    #[inline(always)]
    fn process<OM: OutputMode>(&mut self, i: &'a [u8]) -> PResult<OM, &'a [u8], &'a [u8], Fail> {
        let (rest, list) = take_field::<Emitting<OM>>(i, self.field, self.len)?;
        let mut items = list;
        while !items.is_empty() {
            // Items are checked, not built.
            match self
                .item
                .process::<OutputM<Check, OM::Error, Complete>>(items)
            {
                Ok((after, ())) => items = after,
                Err(e) => {
                    let (payload, after) = (self.payload, rest.len());
                    return Err(match e {
                        nom::Err::Error(e) => {
                            nom::Err::Error(OM::Error::map(e, |f| f.within(payload, after)))
                        }
                        nom::Err::Failure(f) => nom::Err::Failure(f.within(payload, after)),
                        nom::Err::Incomplete(n) => nom::Err::Incomplete(n),
                    });
                }
            }
        }
        Ok((rest, OM::Output::bind(|| list)))
    }
}

/// The items of a list checked by [`list_field`], read again by the parser
/// `item` makes; no error is built, the walk ends at the first failure.
pub(super) fn items<'a, P>(
    list: &'a [u8],
    item: fn() -> P,
) -> impl Iterator<Item = P::Output> + Clone + 'a
where
    P: Parser<&'a [u8], Error = Fail> + 'a,
{
    let mut rest = list;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (after, value) = item()
            .process::<OutputM<Emit, Check, Complete>>(rest)
            .ok()?;
        rest = after;
        Some(value)
    })
}

/// The result of a parser whose failures are attributed to `payload`,
/// unless a parser inside named another.
#[inline(always)]
pub(super) fn labelled<T>(payload: PayloadName, result: Res<'_, T>) -> Res<'_, T> {
    result.map_err(|e| e.map(|f| f.or_in(payload)))
}
