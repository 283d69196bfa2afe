//! The payloads of the chain after HDR (RFC 3830 §6.2–§6.15). Each payload's
//! own next-payload octet is not stored: the chain is derived when encoding.

use super::DecodeError;
use super::error::{EncodeError, PayloadName, Reason};
use super::ext::Extension;
use super::kemac::{Kemac, KeyValidity, check_mac_len};
use super::reader::{Reader, put_len8, put_len16};
use super::wire::{
    CertType, DhGroup, ErrNo, HashFunc, IdType, KvType, MacAlg, PayloadType, ProtType, SignType,
    TsType,
};

/// One payload of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Kemac(Kemac),
    Pke(Pke),
    Dh(Dh),
    Sign(Sign),
    T(Timestamp),
    Id(Id),
    Cert(Cert),
    Chash(Chash),
    V(Verification),
    Sp(SecurityPolicy),
    Rand(Vec<u8>),
    Err(ErrorPayload),
    Ext(Extension),
}

/// PKE (RFC 3830 §6.3): `C (2 bits) ‖ Data len (14 bits) ‖ Data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pke {
    pub cache: u8,
    pub data: Vec<u8>,
}

/// DH (RFC 3830 §6.4): `DH-Group ‖ DH-value ‖ Reserved (4) ‖ KV (4) ‖ KV data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dh {
    pub group: DhGroup,
    pub value: Vec<u8>,
    /// The 4 reserved bits, kept for a byte-exact round trip.
    pub reserved: u8,
    pub validity: KeyValidity,
}

/// SIGN (RFC 3830 §6.5): `S type (4) ‖ Signature len (12) ‖ Signature`; no
/// next-payload field, so it is always the last payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sign {
    pub sign_type: SignType,
    pub signature: Vec<u8>,
}

/// T (RFC 3830 §6.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timestamp {
    NtpUtc(u64),
    Ntp(u64),
    /// 32 bits on the wire.
    Counter(u32),
}

impl Timestamp {
    pub fn ts_type(self) -> TsType {
        match self {
            Self::NtpUtc(_) => TsType::NTP_UTC,
            Self::Ntp(_) => TsType::NTP,
            Self::Counter(_) => TsType::COUNTER,
        }
    }

    /// The 64-bit T of the PRF input and the AES-CM IV: a COUNTER is padded
    /// with leading zeros (RFC 3830 §6.6 note).
    pub fn t64(self) -> u64 {
        match self {
            Self::NtpUtc(v) | Self::Ntp(v) => v,
            Self::Counter(v) => u64::from(v),
        }
    }

    /// The TS value as transported (8 or 4 octets).
    pub fn value_bytes(self) -> Vec<u8> {
        match self {
            Self::NtpUtc(v) | Self::Ntp(v) => v.to_be_bytes().to_vec(),
            Self::Counter(v) => v.to_be_bytes().to_vec(),
        }
    }
}

/// ID (RFC 3830 §6.7): `ID Type ‖ ID len (16) ‖ ID data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Id {
    pub id_type: IdType,
    pub data: Vec<u8>,
}

/// CERT (RFC 3830 §6.7): `Cert type ‖ Cert len (16) ‖ Cert data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cert {
    pub cert_type: CertType,
    pub data: Vec<u8>,
}

/// CHASH (RFC 3830 §6.8): `Hash func ‖ Hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chash {
    pub hash_func: HashFunc,
    pub hash: Vec<u8>,
}

/// V (RFC 3830 §6.9): `Auth alg ‖ Ver data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub auth_alg: MacAlg,
    pub ver_data: Vec<u8>,
}

/// SP (RFC 3830 §6.10): `Policy no ‖ Prot type ‖ Policy param length (16) ‖ TLVs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityPolicy {
    pub policy_no: u8,
    pub prot_type: ProtType,
    pub params: Vec<PolicyParam>,
}

/// One policy parameter TLV: `Type ‖ Length (8) ‖ Value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyParam {
    pub param_type: u8,
    pub value: Vec<u8>,
}

/// ERR (RFC 3830 §6.12): `Err no ‖ Reserved (16)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorPayload {
    pub err_no: ErrNo,
    pub reserved: u16,
}

/// Where the MAC/signature field of a message lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacField {
    /// The payload holding it (KEMAC, V or SIGN).
    pub payload: PayloadType,
    /// Absolute offset of the field; everything before it is covered.
    pub offset: usize,
    pub len: usize,
}

impl Payload {
    pub fn payload_type(&self) -> PayloadType {
        match self {
            Self::Kemac(_) => PayloadType::KEMAC,
            Self::Pke(_) => PayloadType::PKE,
            Self::Dh(_) => PayloadType::DH,
            Self::Sign(_) => PayloadType::SIGN,
            Self::T(_) => PayloadType::T,
            Self::Id(_) => PayloadType::ID,
            Self::Cert(_) => PayloadType::CERT,
            Self::Chash(_) => PayloadType::CHASH,
            Self::V(_) => PayloadType::V,
            Self::Sp(_) => PayloadType::SP,
            Self::Rand(_) => PayloadType::RAND,
            Self::Err(_) => PayloadType::ERR,
            Self::Ext(_) => PayloadType::GENERAL_EXT,
        }
    }

    /// Decodes one payload of type `ptype` whose next-payload octet (if it
    /// has one) has already been read. Returns the payload, the type of the
    /// next one and, for KEMAC/V/SIGN, the MAC field.
    pub(crate) fn decode(
        ptype: PayloadType,
        r: &mut Reader<'_>,
    ) -> Result<(Self, PayloadType, Option<MacField>), DecodeError> {
        r.payload = PayloadName::Payload(ptype);
        let start = r.pos();
        if ptype == PayloadType::SIGN {
            let word = r.u16("S type/Signature len")?;
            let len = usize::from(word & 0x0fff);
            let offset = r.pos();
            let signature = r.bytes("Signature", len)?.to_vec();
            let sign = Sign {
                sign_type: SignType((word >> 12) as u8),
                signature,
            };
            let mac = MacField {
                payload: ptype,
                offset,
                len,
            };
            return Ok((Self::Sign(sign), PayloadType::LAST, Some(mac)));
        }
        let next = PayloadType(r.u8("next payload")?);
        let mut mac = None;
        let payload = match ptype {
            PayloadType::KEMAC => {
                let (kemac, offset) = Kemac::decode(r)?;
                mac = Some(MacField {
                    payload: ptype,
                    offset,
                    len: kemac.mac.len(),
                });
                Self::Kemac(kemac)
            }
            PayloadType::PKE => {
                let word = r.u16("C/Data len")?;
                let data = r.bytes("PKE data", usize::from(word & 0x3fff))?.to_vec();
                Self::Pke(Pke {
                    cache: (word >> 14) as u8,
                    data,
                })
            }
            PayloadType::DH => {
                let group_pos = r.pos();
                let group = DhGroup(r.u8("DH-Group")?);
                let len = group.value_len().ok_or_else(|| {
                    at(
                        r,
                        group_pos,
                        Reason::UnknownLength {
                            field: "DH-Group",
                            value: group.0,
                        },
                    )
                })?;
                let value = r.bytes("DH-value", len)?.to_vec();
                let kv_octet = r.u8("Reserved/KV")?;
                let validity = KeyValidity::decode(r, KvType(kv_octet & 0x0f))?;
                Self::Dh(Dh {
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
                        return Err(at(
                            r,
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
                Self::Id(Id {
                    id_type,
                    data: r.bytes("ID data", len)?.to_vec(),
                })
            }
            PayloadType::CERT => {
                let cert_type = CertType(r.u8("Cert type")?);
                let len = usize::from(r.u16("Cert len")?);
                Self::Cert(Cert {
                    cert_type,
                    data: r.bytes("Cert data", len)?.to_vec(),
                })
            }
            PayloadType::CHASH => {
                let pos = r.pos();
                let hash_func = HashFunc(r.u8("Hash func")?);
                let len = hash_func.hash_len().ok_or_else(|| {
                    at(
                        r,
                        pos,
                        Reason::UnknownLength {
                            field: "Hash func",
                            value: hash_func.0,
                        },
                    )
                })?;
                Self::Chash(Chash {
                    hash_func,
                    hash: r.bytes("Hash", len)?.to_vec(),
                })
            }
            PayloadType::V => {
                let pos = r.pos();
                let auth_alg = MacAlg(r.u8("Auth alg")?);
                let len = auth_alg.mac_len().ok_or_else(|| {
                    at(
                        r,
                        pos,
                        Reason::UnknownLength {
                            field: "Auth alg",
                            value: auth_alg.0,
                        },
                    )
                })?;
                let offset = r.pos();
                let ver_data = r.bytes("Ver data", len)?.to_vec();
                mac = Some(MacField {
                    payload: ptype,
                    offset,
                    len,
                });
                Self::V(Verification { auth_alg, ver_data })
            }
            PayloadType::SP => {
                let policy_no = r.u8("Policy no")?;
                let prot_type = ProtType(r.u8("Prot type")?);
                let len = usize::from(r.u16("Policy param length")?);
                let mut tlv = r.sub("Policy param", len, PayloadName::SpParam)?;
                let mut params = Vec::new();
                while !tlv.is_empty() {
                    let param_type = tlv.u8("Type")?;
                    let vlen = usize::from(tlv.u8("Length")?);
                    params.push(PolicyParam {
                        param_type,
                        value: tlv.bytes("Value", vlen)?.to_vec(),
                    });
                }
                Self::Sp(SecurityPolicy {
                    policy_no,
                    prot_type,
                    params,
                })
            }
            PayloadType::RAND => {
                let len = usize::from(r.u8("RAND len")?);
                Self::Rand(r.bytes("RAND", len)?.to_vec())
            }
            PayloadType::ERR => Self::Err(ErrorPayload {
                err_no: ErrNo(r.u8("Err no")?),
                reserved: r.u16("Reserved")?,
            }),
            PayloadType::GENERAL_EXT => Self::Ext(Extension::decode(r)?),
            PayloadType::KEY_DATA => return Err(at(r, start, Reason::KeyDataOutsideKemac)),
            other => return Err(at(r, start, Reason::UnknownPayloadType(other.0))),
        };
        Ok((payload, next, mac))
    }

    /// Encodes the payload with `next` as its next-payload octet.
    pub(crate) fn encode(&self, next: PayloadType, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        if let Self::Sign(s) = self {
            if next != PayloadType::LAST {
                return Err(EncodeError::SignNotLast);
            }
            if s.sign_type.0 > 0x0f || s.signature.len() > 0x0fff {
                return Err(EncodeError::TooLong {
                    field: "Signature",
                    len: s.signature.len(),
                    max: 0x0fff,
                });
            }
            let word = u16::from(s.sign_type.0) << 12 | s.signature.len() as u16;
            out.extend_from_slice(&word.to_be_bytes());
            out.extend_from_slice(&s.signature);
            return Ok(());
        }
        out.push(next.0);
        match self {
            Self::Sign(_) => {}
            Self::Kemac(k) => k.encode(out)?,
            Self::Pke(p) => {
                if p.cache > 3 {
                    return Err(EncodeError::OutOfRange {
                        field: "PKE C",
                        value: p.cache.into(),
                    });
                }
                if p.data.len() > 0x3fff {
                    return Err(EncodeError::TooLong {
                        field: "PKE data",
                        len: p.data.len(),
                        max: 0x3fff,
                    });
                }
                let word = u16::from(p.cache) << 14 | p.data.len() as u16;
                out.extend_from_slice(&word.to_be_bytes());
                out.extend_from_slice(&p.data);
            }
            Self::Dh(d) => {
                out.push(d.group.0);
                match d.group.value_len() {
                    Some(n) if n == d.value.len() => {}
                    expected => {
                        return Err(EncodeError::WrongLength {
                            field: "DH-value",
                            expected: expected.unwrap_or(0),
                            len: d.value.len(),
                        });
                    }
                }
                out.extend_from_slice(&d.value);
                if d.reserved > 0x0f {
                    return Err(EncodeError::OutOfRange {
                        field: "DH reserved bits",
                        value: d.reserved.into(),
                    });
                }
                out.push(d.reserved << 4 | d.validity.kv_type().0);
                d.validity.encode(out)?;
            }
            Self::T(t) => {
                out.push(t.ts_type().0);
                out.extend_from_slice(&t.value_bytes());
            }
            Self::Id(id) => {
                out.push(id.id_type.0);
                put_len16(out, "ID data", id.data.len())?;
                out.extend_from_slice(&id.data);
            }
            Self::Cert(c) => {
                out.push(c.cert_type.0);
                put_len16(out, "Cert data", c.data.len())?;
                out.extend_from_slice(&c.data);
            }
            Self::Chash(c) => {
                out.push(c.hash_func.0);
                match c.hash_func.hash_len() {
                    Some(n) if n == c.hash.len() => {}
                    expected => {
                        return Err(EncodeError::WrongLength {
                            field: "Hash",
                            expected: expected.unwrap_or(0),
                            len: c.hash.len(),
                        });
                    }
                }
                out.extend_from_slice(&c.hash);
            }
            Self::V(v) => {
                out.push(v.auth_alg.0);
                check_mac_len("Ver data", v.auth_alg, &v.ver_data)?;
                out.extend_from_slice(&v.ver_data);
            }
            Self::Sp(sp) => {
                out.push(sp.policy_no);
                out.push(sp.prot_type.0);
                let mut params = Vec::with_capacity(sp.params.len() * 3);
                for p in &sp.params {
                    params.push(p.param_type);
                    put_len8(&mut params, "Policy param value", p.value.len())?;
                    params.extend_from_slice(&p.value);
                }
                put_len16(out, "Policy param", params.len())?;
                out.extend_from_slice(&params);
            }
            Self::Rand(rand) => {
                put_len8(out, "RAND", rand.len())?;
                out.extend_from_slice(rand);
            }
            Self::Err(e) => {
                out.push(e.err_no.0);
                out.extend_from_slice(&e.reserved.to_be_bytes());
            }
            Self::Ext(ext) => ext.encode(out)?,
        }
        Ok(())
    }
}

pub(crate) fn at(r: &Reader<'_>, offset: usize, reason: Reason) -> DecodeError {
    DecodeError {
        payload: r.payload,
        offset,
        reason,
    }
}
