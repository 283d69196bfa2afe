//! `mbms_event`: a receiver event as a plain C struct. It never carries key material: the
//! application fetches an MTK with the key lookups after an `MBMS_EVENT_MTK_READY`.

use std::ffi::{CStr, c_char};

use mbms_keys::ue::{DiscardReason, Event};

/// A new MSK was stored (`key_domain_id`, `msk_id`, `seql`, `sequ`).
pub const MBMS_EVENT_MSK_INSTALLED: u32 = 1;
/// The validity interval of a stored MSK changed (`key_domain_id`, `msk_id`, `seql`, `sequ`).
pub const MBMS_EVENT_MSK_UPDATED: u32 = 2;
/// A stored MSK was deleted; its MTKs leave the key lookup table (`key_domain_id`, `msk_id`).
pub const MBMS_EVENT_MSK_INVALIDATED: u32 = 3;
/// A verified MTK is ready; fetch it by `mki` or SSRC (`key_domain_id`, `msk_id`, `mtk_id`,
/// `mki`, `ssrc_count`).
pub const MBMS_EVENT_MTK_READY: u32 = 4;
/// The MSK request procedure should be run for (`key_domain_id`, `msk_id`); `msk_id` with Key
/// Number 0 asks for the Key Group's current MSK.
pub const MBMS_EVENT_MSK_REQUEST_NEEDED: u32 = 5;
/// The BM-SC refused an MSK request (`key_domain_id`, `msk_id`, `code`).
pub const MBMS_EVENT_MSK_REQUEST_FAILED: u32 = 6;
/// A datagram was dropped (`discard_reason`; see `mbms_discard_reason_name`).
pub const MBMS_EVENT_DISCARDED: u32 = 7;

/// One event of a receiver. Fields that do not apply to `kind` are 0.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct mbms_event {
    /// One of the `MBMS_EVENT_*` values.
    pub kind: u32,
    /// The Key Domain ID, a 24-bit value (MCC ‖ MNC as on the wire).
    pub key_domain_id: u32,
    /// The MSK ID: Key Group (high 16 bits) ‖ Key Number (low 16 bits).
    pub msk_id: u32,
    /// MTK_READY: the MTK ID.
    pub mtk_id: u16,
    /// MSK_INSTALLED / MSK_UPDATED: SEQl, the lowest MTK ID the MSK may be used with.
    pub seql: u16,
    /// MSK_INSTALLED / MSK_UPDATED: SEQu, the highest MTK ID the MSK may be used with.
    pub sequ: u16,
    /// MSK_REQUEST_FAILED: the per-item code or HTTP status of the refusal.
    pub code: u16,
    /// DISCARDED: why, a number named by `mbms_discard_reason_name`.
    pub discard_reason: u32,
    /// MTK_READY: the SRTP MKI, MSK ID ‖ MTK ID.
    pub mki: [u8; 6],
    /// MTK_READY: the crypto sessions in the SRTP-ID map (0 for a download MTK).
    pub ssrc_count: u32,
}

/// The number of a discard reason: its place in [`DiscardReason::ALL`] plus one (0 is none).
pub fn discard_reason_number(reason: DiscardReason) -> u32 {
    DiscardReason::ALL
        .iter()
        .position(|r| *r == reason)
        .and_then(|i| u32::try_from(i + 1).ok())
        .unwrap_or(0)
}

/// The names of the discard reasons 1, 2, ... (the Rust library's stable snake_case names).
const REASON_NAMES: [&CStr; DiscardReason::ALL.len()] = [
    c"malformed",
    c"not_profile_message",
    c"unknown_muk",
    c"replay",
    c"bad_mac",
    c"bad_key_data",
    c"unknown_msk",
    c"mtk_id_outside_interval",
    c"mtk_id_not_newer",
    c"unexpected_acknowledgement",
    c"store_full",
    c"unknown_key_group",
];

/// The name of a discard reason of an `MBMS_EVENT_DISCARDED` event: `"malformed"`,
/// `"bad_mac"`, `"replay"`, ... (1 = malformed, 2 = not_profile_message, 3 = unknown_muk,
/// 4 = replay, 5 = bad_mac, 6 = bad_key_data, 7 = unknown_msk, 8 = mtk_id_outside_interval,
/// 9 = mtk_id_not_newer, 10 = unexpected_acknowledgement, 11 = store_full,
/// 12 = unknown_key_group); `"unknown"` for another number. A static NUL-terminated string,
/// never NULL.
///
/// Thread-safety: safe to call from any thread at any time.
#[unsafe(no_mangle)]
pub extern "C" fn mbms_discard_reason_name(reason: u32) -> *const c_char {
    usize::try_from(reason)
        .ok()
        .and_then(|r| r.checked_sub(1))
        .and_then(|i| REASON_NAMES.get(i))
        .copied()
        .unwrap_or(c"unknown")
        .as_ptr()
}

fn kd(k: mbms_keys::mbms::KeyDomainId) -> u32 {
    let [a, b, c] = k.0;
    u32::from_be_bytes([0, a, b, c])
}

impl mbms_event {
    /// The C form of a receiver event. An event kind this version does not know has kind 0.
    pub fn from_event(event: &Event) -> Self {
        let mut out = Self::default();
        match event {
            Event::MskInstalled {
                key_domain_id,
                msk_id,
                seql,
                sequ,
            }
            | Event::MskUpdated {
                key_domain_id,
                msk_id,
                seql,
                sequ,
            } => {
                out.kind = if matches!(event, Event::MskInstalled { .. }) {
                    MBMS_EVENT_MSK_INSTALLED
                } else {
                    MBMS_EVENT_MSK_UPDATED
                };
                out.key_domain_id = kd(*key_domain_id);
                out.msk_id = msk_id.to_u32();
                out.seql = *seql;
                out.sequ = *sequ;
            }
            Event::MskInvalidated {
                key_domain_id,
                msk_id,
            } => {
                out.kind = MBMS_EVENT_MSK_INVALIDATED;
                out.key_domain_id = kd(*key_domain_id);
                out.msk_id = msk_id.to_u32();
            }
            Event::MtkReady {
                key_domain_id,
                msk_id,
                mtk_id,
                mki,
                srtp_ids,
                ..
            } => {
                out.kind = MBMS_EVENT_MTK_READY;
                out.key_domain_id = kd(*key_domain_id);
                out.msk_id = msk_id.to_u32();
                out.mtk_id = mtk_id.0;
                out.mki = *mki;
                out.ssrc_count = u32::try_from(srtp_ids.len()).unwrap_or(u32::MAX);
            }
            Event::MskRequestNeeded {
                key_domain_id,
                msk_id,
            } => {
                out.kind = MBMS_EVENT_MSK_REQUEST_NEEDED;
                out.key_domain_id = kd(*key_domain_id);
                out.msk_id = msk_id.to_u32();
            }
            Event::MskRequestFailed {
                key_domain_id,
                msk_id,
                code,
            } => {
                out.kind = MBMS_EVENT_MSK_REQUEST_FAILED;
                out.key_domain_id = kd(*key_domain_id);
                out.msk_id = msk_id.to_u32();
                out.code = *code;
            }
            Event::Discarded { reason } => {
                out.kind = MBMS_EVENT_DISCARDED;
                out.discard_reason = discard_reason_number(*reason);
            }
            _ => {}
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use mbms_keys::mbms::{KeyDomainId, MskId};

    use super::*;

    #[test]
    fn reason_numbers_and_names_follow_the_rust_library() {
        for (i, r) in DiscardReason::ALL.into_iter().enumerate() {
            let n = discard_reason_number(r);
            assert_eq!(n as usize, i + 1);
            // SAFETY: a static NUL-terminated string.
            let name = unsafe { CStr::from_ptr(mbms_discard_reason_name(n)) };
            assert_eq!(name.to_str().unwrap(), r.as_str());
        }
        for n in [0, 13, u32::MAX] {
            // SAFETY: a static NUL-terminated string.
            let name = unsafe { CStr::from_ptr(mbms_discard_reason_name(n)) };
            assert_eq!(name.to_str().unwrap(), "unknown");
        }
    }

    #[test]
    fn events_convert_field_by_field() {
        let e = mbms_event::from_event(&Event::MskInstalled {
            key_domain_id: KeyDomainId([0x12, 0x34, 0x56]),
            msk_id: MskId::new(1, 2),
            seql: 3,
            sequ: 9,
        });
        assert_eq!(
            e,
            mbms_event {
                kind: MBMS_EVENT_MSK_INSTALLED,
                key_domain_id: 0x12_3456,
                msk_id: 0x0001_0002,
                seql: 3,
                sequ: 9,
                ..Default::default()
            }
        );
        let e = mbms_event::from_event(&Event::MskRequestFailed {
            key_domain_id: KeyDomainId([0, 0, 1]),
            msk_id: MskId::new(1, 0),
            code: 404,
        });
        assert_eq!(
            (e.kind, e.code, e.msk_id),
            (MBMS_EVENT_MSK_REQUEST_FAILED, 404, 0x10000)
        );
        let e = mbms_event::from_event(&Event::Discarded {
            reason: DiscardReason::BadMac,
        });
        assert_eq!((e.kind, e.discard_reason), (MBMS_EVENT_DISCARDED, 5));
    }
}
