//! A generic verification report for any MIKEY message under a given key,
//! for operators debugging a deployment (`mbms-keys mikey verify`): what
//! kind of profile message it looks like, whether its MAC verifies, and the
//! first Key data sub-payload once decrypted.

use crate::crypto::ProtectionKeys;
use crate::mikey::view::KeyIdEntryView;
use crate::mikey::{
    DataType, DecodeError, KeyData, KeyDomainId, KeyValidity, MessageView, MskId, MtkId, Timestamp,
};

use super::ack::{AckContext, UnverifiedAck};
use super::msk::UnverifiedMsk;
use super::mtk::{MtkKeys, UnverifiedMtk};
use super::protect::final_mac;

/// What a message looks like, from its header and Key ID extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A PSK initiator message whose Key ID extension names an MSK and no MTK.
    Msk,
    /// A PSK verification message: an MSK acknowledgement.
    MskAck,
    /// A PSK initiator message whose Key ID extension names an MTK.
    Mtk,
    /// Anything else.
    Other,
}

impl Kind {
    /// The kind's name in reports: `msk`, `msk-ack`, `mtk` or `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Msk => "msk",
            Self::MskAck => "msk-ack",
            Self::Mtk => "mtk",
            Self::Other => "other",
        }
    }
}

/// The report of [`inspect`]. `key_data` holds decrypted key material: it
/// is meant for the operator's terminal, never for logs.
#[derive(Debug, Clone)]
pub struct Report {
    /// What the message looks like.
    pub kind: Kind,
    /// Whether the MAC (or, for an acknowledgement, the verification MAC) verified.
    pub mac_ok: bool,
    /// CSB ID from the common header.
    pub csb_id: u32,
    /// The COUNTER value of T, `None` for another timestamp type or no T.
    pub counter: Option<u32>,
    /// The first Key Domain ID of the Key ID extension.
    pub key_domain_id: Option<KeyDomainId>,
    /// The first MSK ID of the Key ID extension.
    pub msk_id: Option<MskId>,
    /// The first MTK ID of the Key ID extension.
    pub mtk_id: Option<MtkId>,
    /// The header's V flag (an acknowledgement is asked for).
    pub v_flag: bool,
    /// The first Key data sub-payload, when the MAC verified and the KEMAC carries one.
    pub key_data: Option<KeyData>,
    /// Why the message is not a valid message of the profile (structure or
    /// key content), `None` when it is one.
    pub profile_error: Option<String>,
}

fn classify(view: &MessageView<'_>) -> Kind {
    let data_type = view.hdr().data_type;
    if data_type == DataType::PSK_VERIFY {
        return Kind::MskAck;
    }
    if data_type != DataType::PSK_INIT {
        return Kind::Other;
    }
    match view.key_id_ext() {
        Some(ids) if ids.iter().any(|e| matches!(e, KeyIdEntryView::Mtk(_))) => Kind::Mtk,
        Some(ids) if ids.iter().any(|e| matches!(e, KeyIdEntryView::Msk(_))) => Kind::Msk,
        _ => Kind::Other,
    }
}

/// The first entry of the Key ID extension that `pick` takes.
fn key_id<T>(
    view: &MessageView<'_>,
    pick: impl FnMut(KeyIdEntryView<'_>) -> Option<T>,
) -> Option<T> {
    view.key_id_ext()?.iter().find_map(pick)
}

/// Checks the MAC of any message with a KEMAC under `key` (RFC 3830 §4.1.4
/// keys from the HDR CSB ID and the RAND payload, empty if absent) and reads
/// the first Key data sub-payload. For an acknowledgement, `of` is the MSK
/// message it acknowledges and `key` the MUK.
pub fn inspect(bytes: &[u8], key: &[u8], of: Option<&[u8]>) -> Result<Report, DecodeError> {
    let view = MessageView::decode(bytes)?;
    let hdr = view.hdr();
    let kind = classify(&view);
    let mut report = Report {
        kind,
        mac_ok: false,
        csb_id: hdr.csb_id,
        counter: match view.timestamp() {
            Some(Timestamp::Counter(c)) => Some(c),
            _ => None,
        },
        key_domain_id: key_id(&view, |e| match e {
            KeyIdEntryView::KeyDomain(id) => Some(id),
            _ => None,
        }),
        msk_id: key_id(&view, |e| match e {
            KeyIdEntryView::Msk(id) => Some(id),
            _ => None,
        }),
        mtk_id: key_id(&view, |e| match e {
            KeyIdEntryView::Mtk(id) => Some(id),
            _ => None,
        }),
        v_flag: hdr.v,
        key_data: None,
        profile_error: None,
    };
    if kind == Kind::MskAck {
        let outcome = match of.map(UnverifiedMsk::parse) {
            None => Err(
                "an acknowledgement is verified against the MSK message it acknowledges (--of)"
                    .to_string(),
            ),
            Some(Err(e)) => Err(format!("the acknowledged message: {e}")),
            Some(Ok(msk)) => {
                let keys = ProtectionKeys::derive(key, msk.csb_id(), msk.rand());
                let ctx = AckContext::new(keys, msk.csb_id(), msk.counter(), msk.idi(), msk.idr());
                UnverifiedAck::parse(bytes)
                    .and_then(|a| a.verify(&ctx))
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
        };
        match outcome {
            Ok(()) => report.mac_ok = true,
            Err(e) => report.profile_error = Some(e),
        }
        return Ok(report);
    }
    let Some(kemac) = view.kemac() else {
        report.profile_error = Some("no KEMAC payload".into());
        return Ok(report);
    };
    let rand = view.rand().unwrap_or_default();
    let keys = ProtectionKeys::derive(key, hdr.csb_id, rand);
    let Ok((input, tag)) = final_mac(&view) else {
        report.profile_error = Some("the MAC field does not end the message".into());
        return Ok(report);
    };
    report.mac_ok = keys.verify_mac(&[input], tag);
    if !report.mac_ok {
        return Ok(report);
    }
    let mut plain = zeroize::Zeroizing::new(kemac.encr_data.to_vec());
    if kemac.encr_alg == crate::mikey::EncrAlg::AES_CM_128 {
        let t64 = view.timestamp().map_or(0, Timestamp::t64);
        keys.apply_keystream(hdr.csb_id, t64, &mut plain);
    }
    match KeyData::decode_chain(&plain) {
        Ok(items) => report.key_data = items.into_iter().next(),
        Err(e) => report.profile_error = Some(format!("decrypted key data: {e}")),
    }
    report.profile_error = report
        .profile_error
        .or_else(|| profile_check(kind, view, key));
    Ok(report)
}

/// Runs the typed verifier of the kind, to say whether the message is a
/// valid profile message.
fn profile_check(kind: Kind, view: MessageView<'_>, key: &[u8]) -> Option<String> {
    let result = match kind {
        Kind::Msk => crate::crypto::Muk::from_slice(key)
            .map_err(|e| e.to_string())
            .and_then(|muk| {
                UnverifiedMsk::from_view(view)
                    .and_then(|u| u.verify(&muk))
                    .map(drop)
                    .map_err(|e| e.to_string())
            }),
        Kind::Mtk => crate::crypto::Msk::from_slice(key)
            .map_err(|e| e.to_string())
            .and_then(|msk| {
                let keys = MtkKeys::new(&msk, view.hdr().csb_id);
                UnverifiedMtk::from_view(view)
                    .and_then(|u| u.verify(&keys))
                    .map(drop)
                    .map_err(|e| e.to_string())
            }),
        Kind::MskAck | Kind::Other => Ok(()),
    };
    result.err()
}

/// Valid From / Valid To of an Interval key validity.
pub fn interval(kd: &KeyData) -> (Option<&[u8]>, Option<&[u8]>) {
    match &kd.validity {
        KeyValidity::Interval { from, to } => (Some(from), Some(to)),
        _ => (None, None),
    }
}
