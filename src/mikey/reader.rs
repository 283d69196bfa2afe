//! A cursor over a complete datagram: every read checks the remaining
//! length first (`split_first_chunk`, `split_at_checked`) and reports an
//! absolute offset. Plain slice operations, inlined, rather than a parser
//! combinator library: this runs for every field of every received message.

use super::error::{DecodeError, PayloadName, Reason};

#[derive(Clone)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
    /// Absolute offset of `rest[0]` in the decoded buffer.
    pos: usize,
    /// The payload errors are attributed to.
    pub(crate) payload: PayloadName,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(input: &'a [u8], base: usize, payload: PayloadName) -> Self {
        Self {
            rest: input,
            pos: base,
            payload,
        }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The octets not read yet; with [`Reader::read_since`], the span a
    /// sequence of reads covered.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.rest
    }

    /// The octets read since `rest` was this reader's [`Reader::rest`].
    pub(crate) fn read_since(&self, rest: &'a [u8]) -> &'a [u8] {
        let read = rest.len().saturating_sub(self.rest.len());
        rest.get(..read).unwrap_or_default()
    }

    pub(crate) fn error(&self, reason: Reason) -> DecodeError {
        DecodeError {
            payload: self.payload,
            offset: self.pos,
            reason,
        }
    }

    /// An error at `offset`, a field already read.
    pub(crate) fn error_at(&self, offset: usize, reason: Reason) -> DecodeError {
        DecodeError {
            payload: self.payload,
            offset,
            reason,
        }
    }

    fn truncated(&self, field: &'static str, needed: usize) -> DecodeError {
        self.error(Reason::Truncated {
            field,
            needed,
            available: self.rest.len(),
        })
    }

    #[inline]
    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let (value, rest) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or_else(|| self.truncated(field, N))?;
        self.rest = rest;
        self.pos += N;
        Ok(*value)
    }

    #[inline]
    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        self.array(field).map(u8::from_be_bytes)
    }

    #[inline]
    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        self.array(field).map(u16::from_be_bytes)
    }

    #[inline]
    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        self.array(field).map(u32::from_be_bytes)
    }

    #[inline]
    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        self.array(field).map(u64::from_be_bytes)
    }

    #[inline]
    pub(crate) fn bytes(
        &mut self,
        field: &'static str,
        len: usize,
    ) -> Result<&'a [u8], DecodeError> {
        let (value, rest) = self
            .rest
            .split_at_checked(len)
            .ok_or_else(|| self.truncated(field, len))?;
        self.rest = rest;
        self.pos += len;
        Ok(value)
    }

    /// Splits off a sub-reader over the next `len` octets (for a length-delimited field).
    pub(crate) fn sub(
        &mut self,
        field: &'static str,
        len: usize,
        payload: PayloadName,
    ) -> Result<Reader<'a>, DecodeError> {
        let base = self.pos;
        let bytes = self.bytes(field, len)?;
        Ok(Reader::new(bytes, base, payload))
    }
}
