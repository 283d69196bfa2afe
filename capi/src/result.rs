//! Result codes, their names, and the helpers every extern function is built from: the panic
//! guard and the checked reads and writes of caller pointers.

use std::ffi::{CStr, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The result of every function of the library: one of the `MBMS_*` codes. A plain integer, so
/// that a value the caller does not know is still a value.
#[allow(non_camel_case_types)]
pub type mbms_result = u32;

/// Success.
pub const MBMS_OK: mbms_result = 0;
/// A required pointer argument is NULL.
pub const MBMS_ERR_NULL: mbms_result = 1;
/// An argument is malformed (length, UTF-8, syntax).
pub const MBMS_ERR_INVALID: mbms_result = 2;
/// The caller's buffer is too small; `*out_len` tells the size needed.
pub const MBMS_ERR_BUFFER_TOO_SMALL: mbms_result = 3;
/// A state blob does not open: sealed under another key, corrupt, or of another version.
pub const MBMS_ERR_STATE: mbms_result = 4;
/// No such key, no queued event, or no pending timeout.
pub const MBMS_ERR_NOT_FOUND: mbms_result = 5;
/// An internal panic was caught; the handle may be in an inconsistent state and should be freed.
pub const MBMS_ERR_PANIC: mbms_result = 6;
/// A socket, thread or HTTP failure (driver level).
pub const MBMS_ERR_IO: mbms_result = 7;
/// The BM-SC refused (HTTP 4xx) (driver level).
pub const MBMS_ERR_REFUSED: mbms_result = 8;
/// The GBA keys are expired or unusable.
pub const MBMS_ERR_KEYS: mbms_result = 9;

/// Every code with its name, in order.
const NAMES: [&CStr; 10] = [
    c"MBMS_OK",
    c"MBMS_ERR_NULL",
    c"MBMS_ERR_INVALID",
    c"MBMS_ERR_BUFFER_TOO_SMALL",
    c"MBMS_ERR_STATE",
    c"MBMS_ERR_NOT_FOUND",
    c"MBMS_ERR_PANIC",
    c"MBMS_ERR_IO",
    c"MBMS_ERR_REFUSED",
    c"MBMS_ERR_KEYS",
];

/// The name of a result code as a static NUL-terminated string: `"MBMS_OK"`,
/// `"MBMS_ERR_NULL"`, ...; `"MBMS_ERR_UNKNOWN"` for a value that is not a code. Never NULL; the
/// caller must not free it.
///
/// Thread-safety: safe to call from any thread at any time.
#[unsafe(no_mangle)]
pub extern "C" fn mbms_result_name(r: mbms_result) -> *const c_char {
    usize::try_from(r)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or(c"MBMS_ERR_UNKNOWN")
        .as_ptr()
}

/// The library version (`"0.1.0"`), a static NUL-terminated string. Never NULL; the caller must
/// not free it.
///
/// Thread-safety: safe to call from any thread at any time.
#[unsafe(no_mangle)]
pub extern "C" fn mbms_version() -> *const c_char {
    const VERSION: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(v) => v,
            Err(_) => c"unknown",
        };
    VERSION.as_ptr()
}

/// Runs the body of an extern function: its `Err(code)` becomes `code`, `Ok(())` becomes
/// [`MBMS_OK`], and a panic is caught and becomes [`MBMS_ERR_PANIC`] (no panic crosses the
/// boundary).
pub fn guard<F>(body: F) -> mbms_result
where
    F: FnOnce() -> Result<(), mbms_result>,
{
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => MBMS_OK,
        Ok(Err(code)) => code,
        Err(_) => MBMS_ERR_PANIC,
    }
}

/// Runs a body that returns nothing (the `_free` functions): a panic is caught and dropped.
pub fn guard_void<F: FnOnce()>(body: F) {
    let _ = catch_unwind(AssertUnwindSafe(body));
}

/// `Err(MBMS_ERR_NULL)` when `p` is NULL.
pub fn non_null<T>(p: *const T) -> Result<(), mbms_result> {
    if p.is_null() {
        Err(MBMS_ERR_NULL)
    } else {
        Ok(())
    }
}

/// Reads a NUL-terminated UTF-8 string argument.
///
/// # Errors
/// [`MBMS_ERR_NULL`] for NULL, [`MBMS_ERR_INVALID`] for text that is not UTF-8.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that stays valid and unchanged for `'a`.
pub unsafe fn read_str<'a>(p: *const c_char) -> Result<&'a str, mbms_result> {
    non_null(p)?;
    // SAFETY: not NULL (checked above); NUL-terminated and valid for 'a by the caller's contract.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str().map_err(|_| MBMS_ERR_INVALID)
}

/// Reads a `(pointer, length)` octet argument. A NULL pointer with length 0 is the empty slice.
///
/// # Errors
/// [`MBMS_ERR_NULL`] for NULL with a length above 0, [`MBMS_ERR_INVALID`] for a length above
/// `isize::MAX`.
///
/// # Safety
/// `p` is NULL or points to `len` readable octets that stay valid and unchanged for `'a`.
pub unsafe fn read_bytes<'a>(p: *const u8, len: usize) -> Result<&'a [u8], mbms_result> {
    if len == 0 {
        return Ok(&[]);
    }
    non_null(p)?;
    if isize::try_from(len).is_err() {
        return Err(MBMS_ERR_INVALID);
    }
    // SAFETY: not NULL, len ≤ isize::MAX (checked above); `len` readable octets valid for 'a by
    // the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// Writes `value` through an out-pointer.
///
/// # Errors
/// [`MBMS_ERR_NULL`] for NULL.
///
/// # Safety
/// `out` is NULL or points to writable, aligned memory for one `T`.
pub unsafe fn write_out<T>(out: *mut T, value: T) -> Result<(), mbms_result> {
    non_null(out)?;
    // SAFETY: not NULL (checked above); writable and aligned by the caller's contract. `write`
    // does not drop the old contents, which may be uninitialised.
    unsafe { out.write(value) };
    Ok(())
}

/// Copies `data` into the caller's buffer `buf` of `cap` octets and stores its length in
/// `*out_len`. When `cap` is too small, nothing is copied, `*out_len` is the size needed and the
/// result is [`MBMS_ERR_BUFFER_TOO_SMALL`].
///
/// # Errors
/// [`MBMS_ERR_NULL`] for a NULL `out_len`, or a NULL `buf` with `cap` above 0;
/// [`MBMS_ERR_BUFFER_TOO_SMALL`] as above.
///
/// # Safety
/// `out_len` is NULL or writable; `buf` is NULL or points to `cap` writable octets not
/// overlapping `data`.
pub unsafe fn write_buf(
    data: &[u8],
    buf: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> Result<(), mbms_result> {
    non_null(out_len)?;
    if cap > 0 {
        non_null(buf)?;
    }
    // SAFETY: out_len is writable by the caller's contract (NULL checked above).
    unsafe { write_out(out_len, data.len()) }?;
    if data.len() > cap {
        return Err(MBMS_ERR_BUFFER_TOO_SMALL);
    }
    if !data.is_empty() {
        // SAFETY: buf is not NULL (cap ≥ data.len() > 0, checked above) and holds `cap` ≥
        // data.len() writable octets that do not overlap `data`, by the caller's contract.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), buf, data.len()) };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_name_and_others_are_unknown() {
        let name = |r| {
            // SAFETY: mbms_result_name returns a static NUL-terminated string.
            unsafe { CStr::from_ptr(mbms_result_name(r)) }
                .to_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(name(MBMS_OK), "MBMS_OK");
        assert_eq!(name(MBMS_ERR_BUFFER_TOO_SMALL), "MBMS_ERR_BUFFER_TOO_SMALL");
        assert_eq!(name(MBMS_ERR_KEYS), "MBMS_ERR_KEYS");
        assert_eq!(name(10), "MBMS_ERR_UNKNOWN");
        assert_eq!(name(u32::MAX), "MBMS_ERR_UNKNOWN");
        // SAFETY: a static NUL-terminated string.
        let v = unsafe { CStr::from_ptr(mbms_version()) };
        assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn guard_maps_errors_and_panics() {
        assert_eq!(guard(|| Ok(())), MBMS_OK);
        assert_eq!(guard(|| Err(MBMS_ERR_STATE)), MBMS_ERR_STATE);
        assert_eq!(guard(|| panic!("boom")), MBMS_ERR_PANIC);
    }

    #[test]
    fn write_buf_reports_the_size_needed() {
        let mut buf = [0u8; 2];
        let mut len = 0usize;
        // SAFETY: valid buffers.
        let r = unsafe { write_buf(&[1, 2, 3], buf.as_mut_ptr(), 2, &mut len) };
        assert_eq!((r, len, buf), (Err(MBMS_ERR_BUFFER_TOO_SMALL), 3, [0, 0]));
        // SAFETY: valid buffers.
        let r = unsafe { write_buf(&[1, 2], buf.as_mut_ptr(), 2, &mut len) };
        assert_eq!((r, len, buf), (Ok(()), 2, [1, 2]));
        // SAFETY: NULL out_len is refused before any write.
        let r = unsafe { write_buf(&[1], buf.as_mut_ptr(), 2, std::ptr::null_mut()) };
        assert_eq!(r, Err(MBMS_ERR_NULL));
    }
}
