//! The payloads of the chain after HDR (RFC 3830 §6.2–§6.15) read in
//! place: every variable field is a slice of the datagram.

use nom::Parser;

use super::fail::{Fail, Res, fail};
use super::field::{
    bytes, items, labelled, len8_bytes, len16_bytes, list_field, typed_len, uint8, uint16, uint32,
    uint64,
};
use crate::mikey::error::{PayloadName, Reason};
use crate::mikey::payload::{ErrorPayload, Timestamp};
use crate::mikey::wire::{
    CertType, DhGroup, EncrAlg, ErrNo, HashFunc, IdRole, IdType, KvType, MacAlg, PayloadType,
    ProtType, SakkeIdScheme, SakkeParams, SignType, TsType,
};

use super::ext::ExtensionView;
use super::keydata::KeyValidityView;

/// One payload of the chain, borrowing its variable fields; the borrowed
/// counterpart of [`crate::mikey::Payload`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadView<'a> {
    /// KEMAC (type 1).
    Kemac(KemacView<'a>),
    /// PKE (type 2).
    Pke(PkeView<'a>),
    /// DH (type 3).
    Dh(DhView<'a>),
    /// SIGN (type 4).
    Sign(SignView<'a>),
    /// T (type 5).
    T(Timestamp),
    /// ID (type 6).
    Id(IdView<'a>),
    /// CERT (type 7).
    Cert(CertView<'a>),
    /// CHASH (type 8).
    Chash(ChashView<'a>),
    /// V (type 9).
    V(VerificationView<'a>),
    /// SP (type 10).
    Sp(SecurityPolicyView<'a>),
    /// RAND (type 11): the random value.
    Rand(&'a [u8]),
    /// ERR (type 12).
    Err(ErrorPayload),
    /// IDR (type 14, RFC 6043 §6.6).
    Idr(IdrView<'a>),
    /// General Extension (type 21).
    Ext(ExtensionView<'a>),
    /// SAKKE (type 26, RFC 6509 §4.2).
    Sakke(SakkeView<'a>),
}

/// IDR (RFC 6043 §6.6), as [`crate::mikey::Idr`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdrView<'a> {
    /// The role of the identity.
    pub role: IdRole,
    /// The ID type.
    pub id_type: IdType,
    /// The identity.
    pub data: &'a [u8],
}

/// SAKKE (RFC 6509 §4.2), as [`crate::mikey::Sakke`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SakkeView<'a> {
    /// The SAKKE parameter set.
    pub params: SakkeParams,
    /// How the receiver's identifier is formed.
    pub id_scheme: SakkeIdScheme,
    /// The SAKKE Encapsulated Data.
    pub data: &'a [u8],
}

/// KEMAC (RFC 3830 §6.2); Encr data as transported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KemacView<'a> {
    /// The encryption algorithm of Encr data.
    pub encr_alg: EncrAlg,
    /// Encr data as transported: the Key data sub-payloads, encrypted unless Encr alg is NULL.
    pub encr_data: &'a [u8],
    /// The MAC algorithm.
    pub mac_alg: MacAlg,
    /// The MAC, as long as the MAC algorithm says.
    pub mac: &'a [u8],
}

/// PKE (RFC 3830 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PkeView<'a> {
    /// C, the 2-bit cache indicator.
    pub cache: u8,
    /// Data: the envelope key encrypted with the public key.
    pub data: &'a [u8],
}

/// DH (RFC 3830 §6.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhView<'a> {
    /// The DH group.
    pub group: DhGroup,
    /// The DH value, as long as the group's.
    pub value: &'a [u8],
    /// The 4 reserved bits, kept for a byte-exact round trip.
    pub reserved: u8,
    /// The key validity data, as its KV type gives it.
    pub validity: KeyValidityView<'a>,
}

/// SIGN (RFC 3830 §6.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignView<'a> {
    /// S type, the signature algorithm.
    pub sign_type: SignType,
    /// The signature.
    pub signature: &'a [u8],
}

impl<'a> SignView<'a> {
    /// The parts of an ECCSI signature of the P-256 length.
    pub fn eccsi(&self) -> Option<crate::mikey::EccsiParts<'a>> {
        crate::mikey::EccsiParts::split(self.sign_type, self.signature)
    }
}

/// ID (RFC 3830 §6.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdView<'a> {
    /// The ID type (NAI, URI, ...).
    pub id_type: IdType,
    /// The identity.
    pub data: &'a [u8],
}

/// CERT (RFC 3830 §6.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertView<'a> {
    /// The certificate type.
    pub cert_type: CertType,
    /// The certificate.
    pub data: &'a [u8],
}

/// CHASH (RFC 3830 §6.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChashView<'a> {
    /// The hash function.
    pub hash_func: HashFunc,
    /// The hash of the certificate, as long as the function gives.
    pub hash: &'a [u8],
}

/// V (RFC 3830 §6.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerificationView<'a> {
    /// The MAC algorithm.
    pub auth_alg: MacAlg,
    /// The verification MAC, as long as the algorithm says.
    pub ver_data: &'a [u8],
}

/// SP (RFC 3830 §6.10), its parameter TLVs checked and read again on
/// each iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecurityPolicyView<'a> {
    /// The policy number that the CS ID map refers to.
    pub policy_no: u8,
    /// The security protocol the policy is for (0: SRTP).
    pub prot_type: ProtType,
    params: &'a [u8],
}

/// One policy parameter TLV: `Type ‖ Length (8) ‖ Value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyParamView<'a> {
    /// The parameter type (for SRTP, an [`SrtpParam`](crate::mikey::SrtpParam)).
    pub param_type: u8,
    /// The parameter value.
    pub value: &'a [u8],
}

impl<'a> SecurityPolicyView<'a> {
    /// The policy parameters, in wire order.
    pub fn params(&self) -> impl Iterator<Item = PolicyParamView<'a>> + Clone + 'a {
        // The TLVs were checked when the message was parsed.
        items(self.params, policy_param)
    }
}

/// `Type ‖ Length (8) ‖ Value`.
fn policy_param<'a>() -> impl Parser<&'a [u8], Output = PolicyParamView<'a>, Error = Fail> {
    (uint8("Type"), len8_bytes("Length", "Value"))
        .map(|(param_type, value)| PolicyParamView { param_type, value })
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

    /// Parses one payload of type `ptype`, its next-payload octet (if it has
    /// one) first. Returns the payload and the type of the next one.
    pub(crate) fn parse(ptype: PayloadType, i: &'a [u8]) -> Res<'a, (Self, PayloadType)> {
        labelled(PayloadName::Payload(ptype), Self::body(ptype, i))
    }

    fn body(ptype: PayloadType, start: &'a [u8]) -> Res<'a, (Self, PayloadType)> {
        if ptype == PayloadType::SIGN {
            // No next-payload field: SIGN is the last payload.
            let (i, sign) = sign(start)?;
            return Ok((i, (Self::Sign(sign), PayloadType::LAST)));
        }
        let (i, next) = uint8("next payload")
            .map(PayloadType)
            .parse_complete(start)?;
        let (i, payload) = match ptype {
            PayloadType::KEMAC => kemac(i).map(|(i, k)| (i, Self::Kemac(k)))?,
            PayloadType::PKE => pke(i).map(|(i, p)| (i, Self::Pke(p)))?,
            PayloadType::DH => dh(i).map(|(i, d)| (i, Self::Dh(d)))?,
            PayloadType::T => timestamp(i).map(|(i, t)| (i, Self::T(t)))?,
            PayloadType::ID => (
                uint8("ID Type").map(IdType),
                len16_bytes("ID len", "ID data"),
            )
                .map(|(id_type, data)| Self::Id(IdView { id_type, data }))
                .parse_complete(i)?,
            PayloadType::CERT => (
                uint8("Cert type").map(CertType),
                len16_bytes("Cert len", "Cert data"),
            )
                .map(|(cert_type, data)| Self::Cert(CertView { cert_type, data }))
                .parse_complete(i)?,
            PayloadType::CHASH => {
                let (i, (hash_func, len)) =
                    typed_len("Hash func", HashFunc, HashFunc::hash_len).parse_complete(i)?;
                bytes("Hash", len)
                    .map(|hash| Self::Chash(ChashView { hash_func, hash }))
                    .parse_complete(i)?
            }
            PayloadType::V => {
                let (i, (auth_alg, len)) =
                    typed_len("Auth alg", MacAlg, MacAlg::mac_len).parse_complete(i)?;
                bytes("Ver data", len)
                    .map(|ver_data| Self::V(VerificationView { auth_alg, ver_data }))
                    .parse_complete(i)?
            }
            PayloadType::SP => security_policy(i).map(|(i, sp)| (i, Self::Sp(sp)))?,
            PayloadType::RAND => len8_bytes("RAND len", "RAND")
                .map(Self::Rand)
                .parse_complete(i)?,
            PayloadType::ERR => (uint8("Err no").map(ErrNo), uint16("Reserved"))
                .map(|(err_no, reserved)| Self::Err(ErrorPayload { err_no, reserved }))
                .parse_complete(i)?,
            PayloadType::IDR => (
                uint8("ID Role").map(IdRole),
                uint8("ID Type").map(IdType),
                len16_bytes("ID len", "ID data"),
            )
                .map(|(role, id_type, data)| {
                    Self::Idr(IdrView {
                        role,
                        id_type,
                        data,
                    })
                })
                .parse_complete(i)?,
            PayloadType::SAKKE => (
                uint8("SAKKE params").map(SakkeParams),
                uint8("ID scheme").map(SakkeIdScheme),
                len16_bytes("SAKKE data len", "SAKKE data"),
            )
                .map(|(params, id_scheme, data)| {
                    Self::Sakke(SakkeView {
                        params,
                        id_scheme,
                        data,
                    })
                })
                .parse_complete(i)?,
            PayloadType::GENERAL_EXT => ExtensionView::parse(i).map(|(i, e)| (i, Self::Ext(e)))?,
            PayloadType::KEY_DATA => return fail(start, Reason::KeyDataOutsideKemac),
            other => return fail(start, Reason::UnknownPayloadType(other.0)),
        };
        Ok((i, (payload, next)))
    }
}

/// SIGN after its payload type: `S type (4 bits) ‖ Signature len (12 bits) ‖ Signature`.
fn sign(i: &[u8]) -> Res<'_, SignView<'_>> {
    let (i, word) = uint16("S type/Signature len").parse_complete(i)?;
    bytes("Signature", usize::from(word & 0x0fff))
        .map(|signature| SignView {
            sign_type: SignType((word >> 12) as u8),
            signature,
        })
        .parse_complete(i)
}

/// KEMAC after its next-payload octet: `Encr alg ‖ Encr data len ‖ Encr data ‖ MAC alg ‖ MAC`.
fn kemac(i: &[u8]) -> Res<'_, KemacView<'_>> {
    let (i, (encr_alg, encr_data, (mac_alg, mac_len))) = (
        uint8("Encr alg").map(EncrAlg),
        len16_bytes("Encr data len", "Encr data"),
        typed_len("MAC alg", MacAlg, MacAlg::mac_len),
    )
        .parse_complete(i)?;
    bytes("MAC", mac_len)
        .map(|mac| KemacView {
            encr_alg,
            encr_data,
            mac_alg,
            mac,
        })
        .parse_complete(i)
}

/// PKE after its next-payload octet: `C (2 bits) ‖ Data len (14 bits) ‖ Data`.
fn pke(i: &[u8]) -> Res<'_, PkeView<'_>> {
    let (i, word) = uint16("C/Data len").parse_complete(i)?;
    bytes("PKE data", usize::from(word & 0x3fff))
        .map(|data| PkeView {
            cache: (word >> 14) as u8,
            data,
        })
        .parse_complete(i)
}

/// DH after its next-payload octet: `DH-Group ‖ DH-value ‖ Reserved ‖ KV ‖ KV data`.
fn dh(i: &[u8]) -> Res<'_, DhView<'_>> {
    let (i, (group, len)) = typed_len("DH-Group", DhGroup, DhGroup::value_len).parse_complete(i)?;
    let (i, (value, kv_octet)) =
        (bytes("DH-value", len), uint8("Reserved/KV")).parse_complete(i)?;
    let (i, validity) = KeyValidityView::parse(KvType(kv_octet & 0x0f), i)?;
    let dh = DhView {
        group,
        value,
        reserved: kv_octet >> 4,
        validity,
    };
    Ok((i, dh))
}

/// T after its next-payload octet: `TS type ‖ TS value`, the value's length
/// given by the type.
fn timestamp(at: &[u8]) -> Res<'_, Timestamp> {
    let (i, ts_type) = uint8("TS type").map(TsType).parse_complete(at)?;
    match ts_type {
        TsType::NTP_UTC => uint64("TS value").map(Timestamp::NtpUtc).parse_complete(i),
        TsType::NTP => uint64("TS value").map(Timestamp::Ntp).parse_complete(i),
        TsType::COUNTER => uint32("TS value").map(Timestamp::Counter).parse_complete(i),
        other => fail(
            at,
            Reason::UnknownLength {
                field: "TS type",
                value: other.0,
            },
        ),
    }
}

/// SP after its next-payload octet: `Policy no ‖ Prot type ‖ Policy param
/// length ‖ Policy params`, the parameter TLVs to the end of their field.
fn security_policy(i: &[u8]) -> Res<'_, SecurityPolicyView<'_>> {
    let (i, (policy_no, prot_type, len)) = (
        uint8("Policy no"),
        uint8("Prot type").map(ProtType),
        uint16("Policy param length"),
    )
        .parse_complete(i)?;
    list_field(
        "Policy param",
        usize::from(len),
        PayloadName::SpParam,
        policy_param(),
    )
    .map(|params| SecurityPolicyView {
        policy_no,
        prot_type,
        params,
    })
    .parse_complete(i)
}
