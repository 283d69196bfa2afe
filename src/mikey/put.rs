//! Length fields for the encoders: a length written before its field, or
//! filled in once the field is written.

/// Writes an 8-bit length field, or fails when `len` does not fit it.
pub(crate) fn put_len8(
    out: &mut Vec<u8>,
    field: &'static str,
    len: usize,
) -> Result<(), super::EncodeError> {
    let v = u8::try_from(len).map_err(|_| super::EncodeError::TooLong {
        field,
        len,
        max: 0xff,
    })?;
    out.push(v);
    Ok(())
}

/// Writes a 16-bit length field, or fails when `len` does not fit it.
pub(crate) fn put_len16(
    out: &mut Vec<u8>,
    field: &'static str,
    len: usize,
) -> Result<(), super::EncodeError> {
    let v = u16::try_from(len).map_err(|_| super::EncodeError::TooLong {
        field,
        len,
        max: 0xffff,
    })?;
    out.extend_from_slice(&v.to_be_bytes());
    Ok(())
}

/// Writes a 16-bit length field, then what `write` appends, and fills the length in after:
/// for fields whose length is known only once written. Returns where the written data starts
/// and its length.
pub(crate) fn put_with_len16(
    out: &mut Vec<u8>,
    field: &'static str,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), super::EncodeError>,
) -> Result<(usize, usize), super::EncodeError> {
    let len_at = out.len();
    out.extend_from_slice(&[0, 0]);
    write(out)?;
    let start = len_at + 2;
    let len = out.len() - start;
    let field_len = u16::try_from(len).map_err(|_| super::EncodeError::TooLong {
        field,
        len,
        max: 0xffff,
    })?;
    if let Some(slot) = out.get_mut(len_at..start) {
        slot.copy_from_slice(&field_len.to_be_bytes());
    }
    Ok((start, len))
}
