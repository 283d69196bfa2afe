//! The payloads of the chain after HDR (RFC 3830 §6.2–§6.15) read in
//! place: every variable field is a slice of the datagram.

use crate::mikey::DecodeError;
use crate::mikey::error::{PayloadName, Reason};
use crate::mikey::payload::{ErrorPayload, Timestamp};
use crate::mikey::reader::Reader;
use crate::mikey::wire::{
    CertType, DhGroup, EncrAlg, ErrNo, HashFunc, IdType, KvType, MacAlg, PayloadType, ProtType,
    SignType, TsType,
};

use super::ext::ExtensionView;
use super::keydata::KeyValidityView;

/// One payload of the chain, borrowing its variable fields; the borrowed
/// counterpart of [`crate::mikey::Payload`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadView<'a> {
    Kemac(KemacView<'a>),
    Pke(PkeView<'a>),
    Dh(DhView<'a>),
    Sign(SignView<'a>),
    T(Timestamp),
    Id(IdView<'a>),
    Cert(CertView<'a>),
    Chash(ChashView<'a>),
    V(VerificationView<'a>),
    Sp(SecurityPolicyView<'a>),
    Rand(&'a [u8]),
    Err(ErrorPayload),
    Ext(ExtensionView<'a>),
}

/// KEMAC (RFC 3830 §6.2); Encr data as transported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KemacView<'a> {
    pub encr_alg: EncrAlg,
    pub encr_data: &'a [u8],
    pub mac_alg: MacAlg,
    pub mac: &'a [u8],
}

/// PKE (RFC 3830 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PkeView<'a> {
    pub cache: u8,
    pub data: &'a [u8],
}

/// DH (RFC 3830 §6.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhView<'a> {
    pub group: DhGroup,
    pub value: &'a [u8],
    pub reserved: u8,
    pub validity: KeyValidityView<'a>,
}

/// SIGN (RFC 3830 §6.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignView<'a> {
    pub sign_type: SignType,
    pub signature: &'a [u8],
}

/// ID (RFC 3830 §6.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdView<'a> {
    pub id_type: IdType,
    pub data: &'a [u8],
}

/// CERT (RFC 3830 §6.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertView<'a> {
    pub cert_type: CertType,
    pub data: &'a [u8],
}

/// CHASH (RFC 3830 §6.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChashView<'a> {
    pub hash_func: HashFunc,
    pub hash: &'a [u8],
}

/// V (RFC 3830 §6.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerificationView<'a> {
    pub auth_alg: MacAlg,
    pub ver_data: &'a [u8],
}

/// SP (RFC 3830 §6.10), its parameter TLVs checked and read again on
/// each iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecurityPolicyView<'a> {
    pub policy_no: u8,
    pub prot_type: ProtType,
    params: &'a [u8],
}

/// One policy parameter TLV: `Type ‖ Length (8) ‖ Value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyParamView<'a> {
    pub param_type: u8,
    pub value: &'a [u8],
}

impl<'a> SecurityPolicyView<'a> {
    pub fn params(&self) -> impl Iterator<Item = PolicyParamView<'a>> + Clone + 'a {
        let mut r = Reader::new(self.params, 0, PayloadName::SpParam);
        // The TLVs were checked when the message was decoded.
        std::iter::from_fn(move || policy_param(&mut r).ok())
    }
}

fn policy_param<'a>(r: &mut Reader<'a>) -> Result<PolicyParamView<'a>, DecodeError> {
    let param_type = r.u8("Type")?;
    let len = usize::from(r.u8("Length")?);
    Ok(PolicyParamView {
        param_type,
        value: r.bytes("Value", len)?,
    })
}

/// Reads the length a field's type gives it, or fails at the type octet.
fn typed_len<T: Copy>(
    r: &mut Reader<'_>,
    field: &'static str,
    wrap: impl FnOnce(u8) -> T,
    len_of: impl FnOnce(T) -> Option<usize>,
) -> Result<(T, usize), DecodeError> {
    let pos = r.pos();
    let value = r.u8(field)?;
    let t = wrap(value);
    let len = len_of(t).ok_or_else(|| r.error_at(pos, Reason::UnknownLength { field, value }))?;
    Ok((t, len))
}

impl<'a> PayloadView<'a> {
    /// The length of the MAC/signature field that ends a KEMAC, V or SIGN
    /// payload (RFC 3830 §5.2), `None` for other payloads.
    pub(crate) fn mac_len(&self) -> Option<usize> {
        match self {
            Self::Kemac(k) => Some(k.mac.len()),
            Self::V(v) => Some(v.ver_data.len()),
            Self::Sign(s) => Some(s.signature.len()),
            _ => None,
        }
    }

    /// Decodes one payload of type `ptype` whose next-payload octet (if it
    /// has one) has not been read yet. Returns the payload and the type of
    /// the next one.
    pub(crate) fn decode(
        ptype: PayloadType,
        r: &mut Reader<'a>,
    ) -> Result<(Self, PayloadType), DecodeError> {
        r.payload = PayloadName::Payload(ptype);
        let start = r.pos();
        if ptype == PayloadType::SIGN {
            let word = r.u16("S type/Signature len")?;
            let len = usize::from(word & 0x0fff);
            let sign = SignView {
                sign_type: SignType((word >> 12) as u8),
                signature: r.bytes("Signature", len)?,
            };
            return Ok((Self::Sign(sign), PayloadType::LAST));
        }
        let next = PayloadType(r.u8("next payload")?);
        let payload = match ptype {
            PayloadType::KEMAC => {
                let encr_alg = EncrAlg(r.u8("Encr alg")?);
                let len = usize::from(r.u16("Encr data len")?);
                let encr_data = r.bytes("Encr data", len)?;
                let (mac_alg, mac_len) = typed_len(r, "MAC alg", MacAlg, MacAlg::mac_len)?;
                Self::Kemac(KemacView {
                    encr_alg,
                    encr_data,
                    mac_alg,
                    mac: r.bytes("MAC", mac_len)?,
                })
            }
            PayloadType::PKE => {
                let word = r.u16("C/Data len")?;
                Self::Pke(PkeView {
                    cache: (word >> 14) as u8,
                    data: r.bytes("PKE data", usize::from(word & 0x3fff))?,
                })
            }
            PayloadType::DH => {
                let (group, len) = typed_len(r, "DH-Group", DhGroup, DhGroup::value_len)?;
                let value = r.bytes("DH-value", len)?;
                let kv_octet = r.u8("Reserved/KV")?;
                let validity = KeyValidityView::decode(r, KvType(kv_octet & 0x0f))?;
                Self::Dh(DhView {
                    group,
                    value,
                    reserved: kv_octet >> 4,
                    validity,
                })
            }
            PayloadType::T => {
                let ts_pos = r.pos();
                let ts_type = TsType(r.u8("TS type")?);
                Self::T(match ts_type {
                    TsType::NTP_UTC => Timestamp::NtpUtc(r.u64("TS value")?),
                    TsType::NTP => Timestamp::Ntp(r.u64("TS value")?),
                    TsType::COUNTER => Timestamp::Counter(r.u32("TS value")?),
                    other => {
                        return Err(r.error_at(
                            ts_pos,
                            Reason::UnknownLength {
                                field: "TS type",
                                value: other.0,
                            },
                        ));
                    }
                })
            }
            PayloadType::ID => {
                let id_type = IdType(r.u8("ID Type")?);
                let len = usize::from(r.u16("ID len")?);
                Self::Id(IdView {
                    id_type,
                    data: r.bytes("ID data", len)?,
                })
            }
            PayloadType::CERT => {
                let cert_type = CertType(r.u8("Cert type")?);
                let len = usize::from(r.u16("Cert len")?);
                Self::Cert(CertView {
                    cert_type,
                    data: r.bytes("Cert data", len)?,
                })
            }
            PayloadType::CHASH => {
                let (hash_func, len) = typed_len(r, "Hash func", HashFunc, HashFunc::hash_len)?;
                Self::Chash(ChashView {
                    hash_func,
                    hash: r.bytes("Hash", len)?,
                })
            }
            PayloadType::V => {
                let (auth_alg, len) = typed_len(r, "Auth alg", MacAlg, MacAlg::mac_len)?;
                Self::V(VerificationView {
                    auth_alg,
                    ver_data: r.bytes("Ver data", len)?,
                })
            }
            PayloadType::SP => {
                let policy_no = r.u8("Policy no")?;
                let prot_type = ProtType(r.u8("Prot type")?);
                let len = usize::from(r.u16("Policy param length")?);
                let mut tlv = r.sub("Policy param", len, PayloadName::SpParam)?;
                let params = tlv.rest();
                while !tlv.is_empty() {
                    policy_param(&mut tlv)?;
                }
                Self::Sp(SecurityPolicyView {
                    policy_no,
                    prot_type,
                    params,
                })
            }
            PayloadType::RAND => {
                let len = usize::from(r.u8("RAND len")?);
                Self::Rand(r.bytes("RAND", len)?)
            }
            PayloadType::ERR => Self::Err(ErrorPayload {
                err_no: ErrNo(r.u8("Err no")?),
                reserved: r.u16("Reserved")?,
            }),
            PayloadType::GENERAL_EXT => Self::Ext(ExtensionView::decode(r)?),
            PayloadType::KEY_DATA => return Err(r.error_at(start, Reason::KeyDataOutsideKemac)),
            other => return Err(r.error_at(start, Reason::UnknownPayloadType(other.0))),
        };
        Ok((payload, next))
    }
}
