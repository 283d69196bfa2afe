//! The payloads of the chain after HDR (RFC 3830 §6.2–§6.15). Each payload's
//! own next-payload octet is not stored: the chain is derived when encoding.

use super::error::EncodeError;
use super::ext::Extension;
use super::kemac::{Kemac, KeyValidity, check_mac_len};
use super::put::{put_len8, put_len16};
use super::wire::{
    CertType, DhGroup, ErrNo, HashFunc, IdRole, IdType, MacAlg, PayloadType, ProtType,
    SakkeIdScheme, SakkeParams, SignType, TsType,
};

/// One payload of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// KEMAC (type 1).
    Kemac(Kemac),
    /// PKE (type 2).
    Pke(Pke),
    /// DH (type 3).
    Dh(Dh),
    /// SIGN (type 4).
    Sign(Sign),
    /// T (type 5).
    T(Timestamp),
    /// ID (type 6).
    Id(Id),
    /// CERT (type 7).
    Cert(Cert),
    /// CHASH (type 8).
    Chash(Chash),
    /// V (type 9).
    V(Verification),
    /// SP (type 10).
    Sp(SecurityPolicy),
    /// RAND (type 11): the random value.
    Rand(Vec<u8>),
    /// ERR (type 12).
    Err(ErrorPayload),
    /// IDR (type 14, RFC 6043 §6.6).
    Idr(Idr),
    /// General Extension (type 21).
    Ext(Extension),
    /// SAKKE (type 26, RFC 6509 §4.2).
    Sakke(Sakke),
}

/// IDR (RFC 6043 §6.6): `ID Role ‖ ID Type ‖ ID len (16) ‖ ID data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idr {
    /// The role of the identity (initiator, responder, their KMSs, their UIDs, ...).
    pub role: IdRole,
    /// The ID type (NAI, URI, byte string).
    pub id_type: IdType,
    /// The identity: a URI, or in roles 8 and 9 a 32-octet UID.
    pub data: Vec<u8>,
}

/// SAKKE (RFC 6509 §4.2): `SAKKE params ‖ ID scheme ‖ SAKKE data len (16) ‖
/// SAKKE data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sakke {
    /// The SAKKE parameter set.
    pub params: SakkeParams,
    /// How the receiver's identifier is formed.
    pub id_scheme: SakkeIdScheme,
    /// The SAKKE Encapsulated Data: for parameter set 1, `04 ‖ Rx ‖ Ry (257) ‖ H (16)`.
    pub data: Vec<u8>,
}

/// PKE (RFC 3830 §6.3): `C (2 bits) ‖ Data len (14 bits) ‖ Data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pke {
    /// C, the 2-bit cache indicator.
    pub cache: u8,
    /// Data: the envelope key encrypted with the public key.
    pub data: Vec<u8>,
}

/// DH (RFC 3830 §6.4): `DH-Group ‖ DH-value ‖ Reserved (4) ‖ KV (4) ‖ KV data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dh {
    /// The DH group.
    pub group: DhGroup,
    /// The DH value, as long as the group's.
    pub value: Vec<u8>,
    /// The 4 reserved bits, kept for a byte-exact round trip.
    pub reserved: u8,
    /// The key validity data, as its KV type gives it.
    pub validity: KeyValidity,
}

/// SIGN (RFC 3830 §6.5): `S type (4) ‖ Signature len (12) ‖ Signature`; no
/// next-payload field, so it is always the last payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sign {
    /// S type, the signature algorithm.
    pub sign_type: SignType,
    /// The signature.
    pub signature: Vec<u8>,
}

/// T (RFC 3830 §6.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timestamp {
    /// TS type 0: NTP-UTC, 64 bits.
    NtpUtc(u64),
    /// TS type 1: NTP, 64 bits.
    Ntp(u64),
    /// 32 bits on the wire.
    Counter(u32),
}

impl Timestamp {
    /// The TS type of this timestamp.
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
    /// The ID type (NAI, URI, ...).
    pub id_type: IdType,
    /// The identity.
    pub data: Vec<u8>,
}

/// CERT (RFC 3830 §6.7): `Cert type ‖ Cert len (16) ‖ Cert data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cert {
    /// The certificate type.
    pub cert_type: CertType,
    /// The certificate.
    pub data: Vec<u8>,
}

/// CHASH (RFC 3830 §6.8): `Hash func ‖ Hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chash {
    /// The hash function.
    pub hash_func: HashFunc,
    /// The hash of the certificate, as long as the function gives.
    pub hash: Vec<u8>,
}

/// V (RFC 3830 §6.9): `Auth alg ‖ Ver data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// The MAC algorithm.
    pub auth_alg: MacAlg,
    /// The verification MAC, as long as the algorithm says.
    pub ver_data: Vec<u8>,
}

/// SP (RFC 3830 §6.10): `Policy no ‖ Prot type ‖ Policy param length (16) ‖ TLVs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityPolicy {
    /// The policy number that the CS ID map refers to.
    pub policy_no: u8,
    /// The security protocol the policy is for (0: SRTP).
    pub prot_type: ProtType,
    /// The policy parameters, in wire order.
    pub params: Vec<PolicyParam>,
}

/// One policy parameter TLV: `Type ‖ Length (8) ‖ Value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyParam {
    /// The parameter type (for SRTP, an [`SrtpParam`](super::SrtpParam)).
    pub param_type: u8,
    /// The parameter value.
    pub value: Vec<u8>,
}

/// ERR (RFC 3830 §6.12): `Err no ‖ Reserved (16)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorPayload {
    /// The error number.
    pub err_no: ErrNo,
    /// The reserved 16 bits, kept for a byte-exact round trip.
    pub reserved: u16,
}

/// Where the MAC/signature field of a message lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacField {
    /// The payload holding it (KEMAC, V or SIGN).
    pub payload: PayloadType,
    /// Absolute offset of the field; everything before it is covered.
    pub offset: usize,
    /// Length of the field, in octets.
    pub len: usize,
}

/// The parts of an ECCSI signature (RFC 6507 §5.2.1, parameter set 1 of
/// RFC 6509): `r (32) ‖ s (32) ‖ PVT (65, an uncompressed point)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EccsiParts<'a> {
    /// r, 32 octets.
    pub r: &'a [u8; 32],
    /// s, 32 octets.
    pub s: &'a [u8; 32],
    /// The signer's Public Validation Token, `04 ‖ x ‖ y`.
    pub pvt: &'a [u8; 65],
}

/// Octets of an ECCSI signature over P-256.
pub const ECCSI_SIGNATURE_LEN: usize = 129;

impl<'a> EccsiParts<'a> {
    /// Splits a signature of S type ECCSI and of the P-256 length; `None`
    /// for another type or length (the codec keeps such a signature as it is).
    pub fn split(sign_type: SignType, signature: &'a [u8]) -> Option<Self> {
        if sign_type != SignType::ECCSI {
            return None;
        }
        let whole: &[u8; ECCSI_SIGNATURE_LEN] = signature.try_into().ok()?;
        let (r, rest) = whole.split_first_chunk::<32>()?;
        let (s, pvt) = rest.split_first_chunk::<32>()?;
        Some(Self {
            r,
            s,
            pvt: pvt.try_into().ok()?,
        })
    }
}

impl Sign {
    /// The parts of an ECCSI signature of the P-256 length.
    pub fn eccsi(&self) -> Option<EccsiParts<'_>> {
        EccsiParts::split(self.sign_type, &self.signature)
    }
}

impl Payload {
    /// The payload type that the previous next-payload field names.
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
            Self::Idr(_) => PayloadType::IDR,
            Self::Ext(_) => PayloadType::GENERAL_EXT,
            Self::Sakke(_) => PayloadType::SAKKE,
        }
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
            Self::Idr(idr) => {
                out.push(idr.role.0);
                out.push(idr.id_type.0);
                put_len16(out, "IDR ID data", idr.data.len())?;
                out.extend_from_slice(&idr.data);
            }
            Self::Ext(ext) => ext.encode(out)?,
            Self::Sakke(sk) => {
                out.push(sk.params.0);
                out.push(sk.id_scheme.0);
                put_len16(out, "SAKKE data", sk.data.len())?;
                out.extend_from_slice(&sk.data);
            }
        }
        Ok(())
    }
}
