//! Level 1, sans-IO: `mbms_receiver`, the UE receiver for an application that owns its sockets,
//! clock and event loop. It hands each datagram from port 2269 to
//! `mbms_receiver_handle_datagram` with its monotonic time in milliseconds, sends back the
//! acknowledgement it gets (if any), drains the events with `mbms_receiver_poll_event`, sleeps
//! until `mbms_receiver_next_timeout`, and fetches SRTP keys with the lookups.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use mbms_keys::crypto::{KsNaf, OsRandom, StateKey};
use mbms_keys::gba::{Btid, muk_gba_me};
use mbms_keys::mbms::{KeyDomainId, MskId};
use mbms_keys::ue::gba_keys::muk_id;
use mbms_keys::ue::{Event, MAX_QUEUED_EVENTS, MtkTable, Receiver, ReceiverConfig};

use crate::event::{MBMS_EVENT_DISCARDED, mbms_event};
use crate::key::{mbms_srtp_key, write_key};
use crate::result::{
    MBMS_ERR_BUFFER_TOO_SMALL, MBMS_ERR_INVALID, MBMS_ERR_NOT_FOUND, MBMS_ERR_STATE, guard,
    guard_void, mbms_result, non_null, read_bytes, read_str, write_buf, write_out,
};

/// \[CHOICE\] docs/c-api.md §5: the size an acknowledgement buffer must have: `mbms_receiver_handle_datagram` refuses a
/// smaller `ack_cap` before it looks at the datagram. An acknowledgement carries the BM-SC FQDN
/// and the B-TID (each at most 255 octets) and stays below this bound.
pub const MBMS_ACK_MAX_LEN: usize = 1024;

/// Length of the GBA_ME Ks_NAF, and of a state key, in octets.
pub const MBMS_KEY_LEN: usize = 32;

/// Length of an SRTP MKI (MSK ID ‖ MTK ID) in octets.
pub const MBMS_MKI_LEN: usize = 6;

/// Longest BM-SC FQDN accepted, in octets (a DNS name).
const MAX_FQDN: usize = 255;

/// A sans-IO UE receiver (opaque). Create with `mbms_receiver_new` or `mbms_receiver_restore`,
/// release with `mbms_receiver_free`.
#[allow(non_camel_case_types)]
pub struct mbms_receiver {
    rx: Receiver,
    mtks: MtkTable,
    events: VecDeque<mbms_event>,
    /// The `Instant` of the first application time seen, and that time.
    clock: Clock,
}

/// Maps the application's millisecond clock onto `Instant`: the first `now_ms` seen is the
/// moment of creation; later ones are offsets from it. A time before the first one, or before
/// the latest one, counts as the latest (the receiver's clock never goes back).
struct Clock {
    base: Instant,
    base_ms: Option<u64>,
    latest: Instant,
}

impl Clock {
    fn new() -> Self {
        let base = Instant::now();
        Self {
            base,
            base_ms: None,
            latest: base,
        }
    }

    fn at(&mut self, now_ms: u64) -> Instant {
        let base_ms = *self.base_ms.get_or_insert(now_ms);
        let offset = Duration::from_millis(now_ms.saturating_sub(base_ms));
        let t = self.base.checked_add(offset).unwrap_or(self.latest);
        self.latest = self.latest.max(t);
        self.latest
    }

    fn to_ms(&self, t: Instant) -> u64 {
        let base_ms = self.base_ms.unwrap_or(0);
        let d = t.saturating_duration_since(self.base);
        let mut ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        // Round up: a timeout is reported at the millisecond it is due, not before.
        if d > Duration::from_millis(ms) {
            ms = ms.saturating_add(1);
        }
        base_ms.saturating_add(ms)
    }
}

impl mbms_receiver {
    fn with(rx: Receiver) -> Box<Self> {
        Box::new(Self {
            rx,
            mtks: MtkTable::new(),
            events: VecDeque::new(),
            clock: Clock::new(),
        })
    }

    /// Moves the receiver's events into the key table and the C queue. The C queue is bounded
    /// like the receiver's: a discard notice never displaces a key event.
    fn drain(&mut self) {
        while let Some(event) = self.rx.poll_event() {
            self.mtks.observe(&event);
            self.push(mbms_event::from_event(&event));
            drop::<Event>(event);
        }
    }

    fn push(&mut self, ev: mbms_event) {
        if self.events.len() >= MAX_QUEUED_EVENTS {
            if ev.kind == MBMS_EVENT_DISCARDED {
                return;
            }
            match self
                .events
                .iter()
                .position(|e| e.kind == MBMS_EVENT_DISCARDED)
            {
                Some(i) => {
                    self.events.remove(i);
                }
                None => {
                    self.events.pop_front();
                }
            }
        }
        self.events.push_back(ev);
    }
}

/// The receiver settings and MUK of the GBA arguments.
///
/// # Safety
/// As for `mbms_receiver_new`.
unsafe fn gba_arguments(
    bmsc_fqdn: *const std::ffi::c_char,
    btid: *const std::ffi::c_char,
    ks_naf: *const u8,
    ks_naf_len: usize,
) -> Result<(mbms_keys::mbms::MukId, mbms_keys::crypto::Muk), mbms_result> {
    // SAFETY: NUL-terminated strings or NULL, by the caller's contract.
    let fqdn = unsafe { read_str(bmsc_fqdn) }?;
    // SAFETY: as above.
    let btid = unsafe { read_str(btid) }?;
    non_null(ks_naf)?;
    // SAFETY: `ks_naf_len` readable octets, by the caller's contract.
    let ks = unsafe { read_bytes(ks_naf, ks_naf_len) }?;
    if fqdn.is_empty() || fqdn.len() > MAX_FQDN {
        return Err(MBMS_ERR_INVALID);
    }
    let btid: Btid = btid.parse().map_err(|_| MBMS_ERR_INVALID)?;
    let ks = KsNaf::from_slice(ks).map_err(|_| MBMS_ERR_INVALID)?;
    Ok((muk_id(fqdn, &btid), muk_gba_me(&ks)))
}

fn config() -> ReceiverConfig {
    ReceiverConfig::default()
}

/// Creates a receiver holding the MUK of one GBA_ME bootstrapping: MUK = Ks_NAF, MUK ID = IDi ‖
/// IDr = `bmsc_fqdn` ‖ `btid` (docs/profile.md §1), exactly as the Rust UE derives them. No MSK
/// is held yet.
///
/// - `bmsc_fqdn`: the BM-SC FQDN (NUL-terminated UTF-8, 1 to 255 octets).
/// - `btid`: the B-TID (NUL-terminated, printable ASCII with an '@', at most 255 octets).
/// - `ks_naf`, `ks_naf_len`: the Ks_NAF for the BM-SC's NAF_Id, `MBMS_KEY_LEN` (32) octets. The
///   library keeps its own copy (wiped when the receiver is freed); the caller should wipe its
///   own.
/// - `out`: receives the new receiver, to be released with `mbms_receiver_free`.
///
/// Errors: `MBMS_ERR_NULL` (a pointer is NULL), `MBMS_ERR_INVALID` (FQDN empty or too long,
/// B-TID malformed, text not UTF-8, `ks_naf_len` not 32), `MBMS_ERR_PANIC`. On error `*out` is
/// not written.
///
/// Thread-safety: safe to call from any thread; receivers are independent of each other.
///
/// # Safety
/// The strings are NUL-terminated, `ks_naf` holds `ks_naf_len` readable octets, `out` is
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mbms_receiver_new(
    bmsc_fqdn: *const std::ffi::c_char,
    btid: *const std::ffi::c_char,
    ks_naf: *const u8,
    ks_naf_len: usize,
    out: *mut *mut mbms_receiver,
) -> mbms_result {
    guard(|| {
        non_null(out)?;
        // SAFETY: the caller's contract covers these arguments.
        let (id, muk) = unsafe { gba_arguments(bmsc_fqdn, btid, ks_naf, ks_naf_len) }?;
        let mut rx = Receiver::new(config(), Box::new(OsRandom));
        rx.set_muk(id, muk);
        // SAFETY: `out` is writable by the caller's contract (NULL checked above).
        unsafe { write_out(out, Box::into_raw(mbms_receiver::with(rx))) }
    })
}

/// Creates a receiver from a state blob made by `mbms_receiver_save` (MUKs with their counters,
/// MSKs with their intervals and counters), then installs the MUK of these GBA keys as the
/// current one (as `mbms_receiver_new`; a MUK of the blob with another ID stays as the previous
/// one). The MTK lookup table starts empty: MTKs are not saved.
///
/// - `state_key`, `state_key_len`: the 32-octet key the blob was sealed under.
/// - `blob`, `blob_len`: the blob.
///
/// Errors: `MBMS_ERR_NULL`, `MBMS_ERR_INVALID` (as `mbms_receiver_new`, or `state_key_len` not
/// 32), `MBMS_ERR_STATE` (the blob is sealed under another key, altered, truncated, of another
/// format version, or inconsistent), `MBMS_ERR_PANIC`. On error `*out` is not written.
///
/// Thread-safety: safe to call from any thread.
///
/// # Safety
/// As `mbms_receiver_new`; `state_key` and `blob` hold their lengths of readable octets.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn mbms_receiver_restore(
    bmsc_fqdn: *const std::ffi::c_char,
    btid: *const std::ffi::c_char,
    ks_naf: *const u8,
    ks_naf_len: usize,
    state_key: *const u8,
    state_key_len: usize,
    blob: *const u8,
    blob_len: usize,
    out: *mut *mut mbms_receiver,
) -> mbms_result {
    guard(|| {
        non_null(out)?;
        non_null(state_key)?;
        non_null(blob)?;
        // SAFETY: the caller's contract covers these arguments.
        let (id, muk) = unsafe { gba_arguments(bmsc_fqdn, btid, ks_naf, ks_naf_len) }?;
        // SAFETY: `state_key_len` readable octets by the caller's contract.
        let key = unsafe { read_bytes(state_key, state_key_len) }?;
        let key = StateKey::from_slice(key).map_err(|_| MBMS_ERR_INVALID)?;
        // SAFETY: `blob_len` readable octets by the caller's contract.
        let blob = unsafe { read_bytes(blob, blob_len) }?;
        let mut rx = Receiver::restore(config(), Box::new(OsRandom), &key, blob)
            .map_err(|_| MBMS_ERR_STATE)?;
        rx.set_muk(id, muk);
        // SAFETY: `out` is writable by the caller's contract (NULL checked above).
        unsafe { write_out(out, Box::into_raw(mbms_receiver::with(rx))) }
    })
}

/// Borrows the receiver behind a handle.
///
/// # Safety
/// `r` is NULL or a live handle from `mbms_receiver_new`/`_restore`, not used by another thread.
unsafe fn receiver<'a>(r: *const mbms_receiver) -> Result<&'a mbms_receiver, mbms_result> {
    non_null(r)?;
    // SAFETY: a live handle by the caller's contract (NULL checked above).
    Ok(unsafe { &*r })
}

/// Borrows the receiver behind a handle, mutably.
///
/// # Safety
/// As [`receiver`], and no other reference to it exists during the call.
unsafe fn receiver_mut<'a>(r: *mut mbms_receiver) -> Result<&'a mut mbms_receiver, mbms_result> {
    non_null(r)?;
    // SAFETY: a live handle used by one thread at a time, by the caller's contract.
    Ok(unsafe { &mut *r })
}

/// Seals the receiver's whole key state (MUKs, counters, MSKs) under `state_key` into `buf`.
/// Save after every call that changed state (an accepted MSK or MTK message) and restore with
/// `mbms_receiver_restore`: counters never go back across a restart.
///
/// - `state_key`, `state_key_len`: a 32-octet key the application keeps secret (e.g. random,
///   in a file of mode 0600).
/// - `buf`, `cap`: the caller's buffer; `out_len` receives the blob's length.
///
/// Errors: `MBMS_ERR_NULL` (`r`, `state_key` or `out_len` NULL, or `buf` NULL with `cap` > 0),
/// `MBMS_ERR_INVALID` (`state_key_len` not 32), `MBMS_ERR_BUFFER_TOO_SMALL` (`*out_len` is the
/// size needed; nothing is written to `buf`; call again with a larger buffer), `MBMS_ERR_PANIC`.
///
/// Thread-safety: not thread-safe: call the functions of one receiver from one thread at a time.
///
/// # Safety
/// `r` is a live receiver; `state_key` holds `state_key_len` octets; `buf` holds `cap` writable
/// octets; `out_len` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mbms_receiver_save(
    r: *const mbms_receiver,
    state_key: *const u8,
    state_key_len: usize,
    buf: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> mbms_result {
    guard(|| {
        // SAFETY: a live handle by the caller's contract.
        let r = unsafe { receiver(r) }?;
        non_null(state_key)?;
        non_null(out_len)?;
        // SAFETY: `state_key_len` readable octets by the caller's contract.
        let key = unsafe { read_bytes(state_key, state_key_len) }?;
        let key = StateKey::from_slice(key).map_err(|_| MBMS_ERR_INVALID)?;
        let blob = r.rx.save(&key);
        // SAFETY: `buf` holds `cap` writable octets and `out_len` is writable, by the contract.
        unsafe { write_buf(&blob, buf, cap, out_len) }
    })
}

/// Applies one datagram received on the MIKEY port at the application's time `now_ms`
/// (a monotonic clock in milliseconds, any origin, non-decreasing; an earlier value counts as
/// the latest one). Every outcome, including a discarded datagram, is queued as an event.
///
/// - `datagram`, `len`: the datagram (NULL allowed when `len` is 0).
/// - `ack`, `ack_cap`: the caller's buffer for the acknowledgement; `ack_cap` must be at least
///   `MBMS_ACK_MAX_LEN`.
/// - `ack_len`: receives the acknowledgement's length, 0 when there is nothing to send. Send a
///   non-empty acknowledgement back to the datagram's source address and port.
///
/// A malformed, forged, replayed or otherwise refused datagram is not an error: the result is
/// `MBMS_OK`, `*ack_len` is 0, and an `MBMS_EVENT_DISCARDED` event names the reason.
///
/// Errors: `MBMS_ERR_NULL` (`r`, `ack` or `ack_len` NULL, or `datagram` NULL with `len` > 0),
/// `MBMS_ERR_BUFFER_TOO_SMALL` (`ack_cap` below `MBMS_ACK_MAX_LEN`: `*ack_len` is set to
/// `MBMS_ACK_MAX_LEN` and the datagram is not looked at), `MBMS_ERR_PANIC`.
///
/// Thread-safety: not thread-safe: call the functions of one receiver from one thread at a time.
///
/// # Safety
/// `r` is a live receiver; `datagram` holds `len` readable octets; `ack` holds `ack_cap` writable
/// octets; `ack_len` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mbms_receiver_handle_datagram(
    r: *mut mbms_receiver,
    now_ms: u64,
    datagram: *const u8,
    len: usize,
    ack: *mut u8,
    ack_cap: usize,
    ack_len: *mut usize,
) -> mbms_result {
    guard(|| {
        // SAFETY: a live handle used by one thread at a time, by the caller's contract.
        let r = unsafe { receiver_mut(r) }?;
        non_null(ack)?;
        non_null(ack_len)?;
        // SAFETY: `len` readable octets by the caller's contract.
        let datagram = unsafe { read_bytes(datagram, len) }?;
        if ack_cap < MBMS_ACK_MAX_LEN {
            // SAFETY: `ack_len` is writable by the caller's contract.
            unsafe { write_out(ack_len, MBMS_ACK_MAX_LEN) }?;
            return Err(MBMS_ERR_BUFFER_TOO_SMALL);
        }
        let now = r.clock.at(now_ms);
        let reply = r.rx.handle_datagram(now, datagram);
        r.drain();
        let reply = reply.unwrap_or_default();
        // SAFETY: `ack` holds `ack_cap` writable octets and `ack_len` is writable, by the
        // caller's contract; `reply` is the library's own buffer.
        unsafe { write_buf(&reply, ack, ack_cap, ack_len) }
    })
}

/// Takes the oldest queued event into `*out`. Drain after every call that may queue events
/// (handle_datagram, handle_timeout, msk_response): at most 1024 are kept, and when the queue is
/// full a discard notice gives way to a key event.
///
/// Errors: `MBMS_ERR_NULL`, `MBMS_ERR_NOT_FOUND` (no event queued; `*out` not written),
/// `MBMS_ERR_PANIC`.
///
/// Thread-safety: not thread-safe: call the functions of one receiver from one thread at a time.
///
/// # Safety
/// `r` is a live receiver; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mbms_receiver_poll_event(
    r: *mut mbms_receiver,
    out: *mut mbms_event,
) -> mbms_result {
    guard(|| {
        // SAFETY: a live handle used by one thread at a time, by the caller's contract.
        let r = unsafe { receiver_mut(r) }?;
        non_null(out)?;
        let ev = r.events.pop_front().ok_or(MBMS_ERR_NOT_FOUND)?;
        // SAFETY: `out` is writable by the caller's contract (NULL checked above).
        unsafe { write_out(out, ev) }
    })
}

/// The application time (same clock as `now_ms`) at which `mbms_receiver_handle_timeout` should
/// next be called: the end of an MSK request back-off.
///
/// Errors: `MBMS_ERR_NULL`, `MBMS_ERR_NOT_FOUND` (no timer pending; `*at_ms` not written),
/// `MBMS_ERR_PANIC`.
///
/// Thread-safety: not thread-safe: call the functions of one receiver from one thread at a time.
///
/// # Safety
/// `r` is a live receiver; `at_ms` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mbms_receiver_next_timeout(
    r: *const mbms_receiver,
    at_ms: *mut u64,
) -> mbms_result {
    guard(|| {
        // SAFETY: a live handle by the caller's contract.
        let r = unsafe { receiver(r) }?;
        non_null(at_ms)?;
        let t = r.rx.poll_timeout().ok_or(MBMS_ERR_NOT_FOUND)?;
        // SAFETY: `at_ms` is writable by the caller's contract (NULL checked above).
        unsafe { write_out(at_ms, r.clock.to_ms(t)) }
    })
}

/// Runs the timers due at `now_ms` (queues `MBMS_EVENT_MSK_REQUEST_NEEDED` for each expired
/// back-off).
///
/// Errors: `MBMS_ERR_NULL`, `MBMS_ERR_PANIC`.
///
/// Thread-safety: not thread-safe: call the functions of one receiver from one thread at a time.
///
/// # Safety
/// `r` is a live receiver.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mbms_receiver_handle_timeout(
    r: *mut mbms_receiver,
    now_ms: u64,
) -> mbms_result {
    guard(|| {
        // SAFETY: a live handle used by one thread at a time, by the caller's contract.
        let r = unsafe { receiver_mut(r) }?;
        let now = r.clock.at(now_ms);
        r.rx.handle_timeout(now);
        r.drain();
        Ok(())
    })
}

/// Tells the receiver the BM-SC's answer to an MSK request it asked for
/// (`MBMS_EVENT_MSK_REQUEST_NEEDED`): the per-item status `code` (200 changes nothing; any other
/// ends the request and queues `MBMS_EVENT_MSK_REQUEST_FAILED`; that MSK ID is asked for again
/// only after a verified MSK message of its Key Group).
///
/// Errors: `MBMS_ERR_NULL`, `MBMS_ERR_INVALID` (`key_domain_id` above 24 bits),
/// `MBMS_ERR_PANIC`.
///
/// Thread-safety: not thread-safe: call the functions of one receiver from one thread at a time.
///
/// # Safety
/// `r` is a live receiver.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mbms_receiver_msk_response(
    r: *mut mbms_receiver,
    key_domain_id: u32,
    msk_id: u32,
    code: u16,
) -> mbms_result {
    guard(|| {
        // SAFETY: a live handle used by one thread at a time, by the caller's contract.
        let r = unsafe { receiver_mut(r) }?;
        let [zero, a, b, c] = key_domain_id.to_be_bytes();
        if zero != 0 {
            return Err(MBMS_ERR_INVALID);
        }
        r.rx.handle_msk_response(KeyDomainId([a, b, c]), MskId::from_u32(msk_id), code);
        r.drain();
        Ok(())
    })
}

/// Looks up the MTK whose SRTP MKI (MSK ID ‖ MTK ID, 6 octets) is `mki` among the MTKs this
/// receiver delivered (the newest 64, without those of invalidated MSKs) and writes it to
/// `*out`: what an SRTP decoder needs when a packet names an unknown master key. The caller
/// should wipe `*out` after use.
///
/// Errors: `MBMS_ERR_NULL`, `MBMS_ERR_INVALID` (`mki_len` not 6), `MBMS_ERR_NOT_FOUND` (no such
/// MTK; `*out` not written), `MBMS_ERR_PANIC`.
///
/// Thread-safety: not thread-safe: call the functions of one receiver from one thread at a time.
///
/// # Safety
/// `r` is a live receiver; `mki` holds `mki_len` readable octets; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mbms_receiver_key_by_mki(
    r: *const mbms_receiver,
    mki: *const u8,
    mki_len: usize,
    out: *mut mbms_srtp_key,
) -> mbms_result {
    guard(|| {
        // SAFETY: a live handle by the caller's contract.
        let r = unsafe { receiver(r) }?;
        non_null(mki)?;
        non_null(out)?;
        // SAFETY: `mki_len` readable octets by the caller's contract.
        let mki = unsafe { read_bytes(mki, mki_len) }?;
        if mki.len() != MBMS_MKI_LEN {
            return Err(MBMS_ERR_INVALID);
        }
        let entry = r.mtks.by_mki(mki).ok_or(MBMS_ERR_NOT_FOUND)?;
        // SAFETY: `out` is writable by the caller's contract.
        unsafe { write_key(entry, None, out) }
    })
}

/// Looks up the newest MTK whose SRTP-ID map names `ssrc` and writes it to `*out`, with that
/// crypto session's ROC. The caller should wipe `*out` after use.
///
/// Errors: `MBMS_ERR_NULL`, `MBMS_ERR_NOT_FOUND` (no MTK for that SSRC; `*out` not written),
/// `MBMS_ERR_PANIC`.
///
/// Thread-safety: not thread-safe: call the functions of one receiver from one thread at a time.
///
/// # Safety
/// `r` is a live receiver; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mbms_receiver_key_by_ssrc(
    r: *const mbms_receiver,
    ssrc: u32,
    out: *mut mbms_srtp_key,
) -> mbms_result {
    guard(|| {
        // SAFETY: a live handle by the caller's contract.
        let r = unsafe { receiver(r) }?;
        non_null(out)?;
        let (entry, session) = r.mtks.by_ssrc(ssrc).ok_or(MBMS_ERR_NOT_FOUND)?;
        // SAFETY: `out` is writable by the caller's contract.
        unsafe { write_key(entry, Some(session), out) }
    })
}

/// Releases a receiver: its MUKs, MSKs and MTKs are wiped. NULL is a no-op. Using `r` after
/// this call, or freeing it twice, is undefined behaviour.
///
/// Thread-safety: not thread-safe: no other call on this receiver may run or follow.
///
/// # Safety
/// `r` is NULL or a live receiver not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mbms_receiver_free(r: *mut mbms_receiver) {
    guard_void(|| {
        if !r.is_null() {
            // SAFETY: a live handle made by Box::into_raw in _new/_restore, released once, by
            // the caller's contract.
            drop(unsafe { Box::from_raw(r) });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_starts_at_the_first_time_and_never_goes_back() {
        let mut c = Clock::new();
        let t0 = c.at(5_000);
        assert_eq!(c.at(5_250) - t0, Duration::from_millis(250));
        assert_eq!(c.at(1_000), t0 + Duration::from_millis(250));
        assert_eq!(c.to_ms(t0 + Duration::from_millis(700)), 5_700);
        assert_eq!(c.to_ms(t0 + Duration::from_micros(700_001)), 5_701);
        assert!(c.at(u64::MAX) >= t0);
    }

    #[test]
    fn the_event_queue_is_bounded_and_keeps_key_events() {
        let mut r = mbms_receiver::with(Receiver::new(config(), Box::new(OsRandom)));
        let discard = mbms_event {
            kind: MBMS_EVENT_DISCARDED,
            ..Default::default()
        };
        for _ in 0..MAX_QUEUED_EVENTS + 10 {
            r.push(discard);
        }
        assert_eq!(r.events.len(), MAX_QUEUED_EVENTS);
        let key = mbms_event {
            kind: crate::event::MBMS_EVENT_MTK_READY,
            ..Default::default()
        };
        r.push(key);
        assert_eq!(r.events.len(), MAX_QUEUED_EVENTS);
        assert_eq!(r.events.back(), Some(&key));
        assert_eq!(
            crate::result::MBMS_ERR_NULL,
            crate::result::non_null::<u8>(std::ptr::null()).unwrap_err()
        );
    }
}
