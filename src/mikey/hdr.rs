//! The common header HDR (RFC 3830 §6.1) with its CS ID map.

use super::error::EncodeError;
use super::put::{put_len8, put_len16};
use super::wire::{CsIdMapType, DataType, PayloadType, PrfFunc};

/// MIKEY version 1, the only one defined (RFC 3830 §6.1).
pub const MIKEY_VERSION: u8 = 0x01;

/// The common header. The next-payload field is not stored: it is derived
/// from the payload list when encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hdr {
    /// The MIKEY version (1, RFC 3830 §6.1).
    pub version: u8,
    /// The message type.
    pub data_type: DataType,
    /// The V flag: the Initiator asks for a verification message.
    pub v: bool,
    /// PRF func, 7 bits.
    pub prf_func: PrfFunc,
    /// The Crypto Session Bundle ID.
    pub csb_id: u32,
    /// #CS, the number of crypto sessions.
    pub cs_count: u8,
    /// The CS ID map info, as its map type gives it.
    pub cs_id_map: CsIdMap,
}

/// CS ID map info, by map type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CsIdMap {
    /// Map type 0: one entry per crypto session (RFC 3830 §6.1.1).
    SrtpId(Vec<SrtpIdEntry>),
    /// Map type 1, RFC 4563 §5: no map info; policy is conveyed outside MIKEY.
    Empty,
    /// Map type 2, RFC 6043 §6.1: one GENERIC-ID entry per crypto session.
    GenericId(Vec<GenericIdEntry>),
    /// Any other map type. RFC 3830 gives map info no length field, so a map
    /// type whose layout is not known here is accepted only with #CS = 0,
    /// where its map info is empty. (Decoding never gives it for types 0–2,
    /// which have their variants.)
    Other(CsIdMapType),
}

impl CsIdMap {
    /// The CS ID map type of this map info.
    pub fn map_type(&self) -> CsIdMapType {
        match self {
            Self::SrtpId(_) => CsIdMapType::SRTP_ID,
            Self::Empty => CsIdMapType::EMPTY,
            Self::GenericId(_) => CsIdMapType::GENERIC_ID,
            Self::Other(map_type) => *map_type,
        }
    }
}

/// One SRTP-ID map entry: `Policy_no (1) ‖ SSRC (4) ‖ ROC (4)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SrtpIdEntry {
    /// The number of the SP payload that applies to the crypto session.
    pub policy_no: u8,
    /// The SSRC of the crypto session.
    pub ssrc: u32,
    /// The SRTP rollover counter of the crypto session.
    pub roc: u32,
}

/// One GENERIC-ID map entry (RFC 6043 §6.1): `CS ID (1) ‖ Prot type (1) ‖
/// S (1 bit) ‖ #P (7 bits) ‖ Ps (#P) ‖ Session Data Length (2) ‖ Session Data ‖
/// SPI Length (1) ‖ SPI`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenericIdEntry {
    /// The crypto session's ID.
    pub cs_id: u8,
    /// The security protocol (0: SRTP).
    pub prot_type: u8,
    /// The S flag: the session data of the crypto session is signalled elsewhere.
    pub s: bool,
    /// The numbers of the SP payloads that apply (#P of them, at most 127).
    pub policies: Vec<u8>,
    /// Session Data, for the security protocol.
    pub session_data: Vec<u8>,
    /// The Security Parameter Index (TS 33.180: the key IDs).
    pub spi: Vec<u8>,
}

impl GenericIdEntry {
    /// Appends the entry.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(self.cs_id);
        out.push(self.prot_type);
        if self.policies.len() > 0x7f {
            return Err(EncodeError::TooLong {
                field: "GENERIC-ID Ps",
                len: self.policies.len(),
                max: 0x7f,
            });
        }
        out.push(u8::from(self.s) << 7 | self.policies.len() as u8);
        out.extend_from_slice(&self.policies);
        put_len16(out, "GENERIC-ID Session Data", self.session_data.len())?;
        out.extend_from_slice(&self.session_data);
        put_len8(out, "GENERIC-ID SPI", self.spi.len())?;
        out.extend_from_slice(&self.spi);
        Ok(())
    }
}

impl Hdr {
    pub(crate) fn encode(&self, next: PayloadType, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        if self.prf_func.0 > 0x7f {
            return Err(EncodeError::OutOfRange {
                field: "PRF func",
                value: self.prf_func.0.into(),
            });
        }
        out.push(self.version);
        out.push(self.data_type.0);
        out.push(next.0);
        out.push(u8::from(self.v) << 7 | self.prf_func.0);
        out.extend_from_slice(&self.csb_id.to_be_bytes());
        out.push(self.cs_count);
        out.push(self.cs_id_map.map_type().0);
        match &self.cs_id_map {
            CsIdMap::SrtpId(entries) => {
                if entries.len() != usize::from(self.cs_count) {
                    return Err(EncodeError::WrongLength {
                        field: "SRTP-ID map (entries vs #CS)",
                        expected: self.cs_count.into(),
                        len: entries.len(),
                    });
                }
                for e in entries {
                    out.push(e.policy_no);
                    out.extend_from_slice(&e.ssrc.to_be_bytes());
                    out.extend_from_slice(&e.roc.to_be_bytes());
                }
            }
            CsIdMap::Empty => {}
            CsIdMap::GenericId(entries) => {
                if entries.len() != usize::from(self.cs_count) {
                    return Err(EncodeError::WrongLength {
                        field: "GENERIC-ID map (entries vs #CS)",
                        expected: self.cs_count.into(),
                        len: entries.len(),
                    });
                }
                for e in entries {
                    e.encode(out)?;
                }
            }
            CsIdMap::Other(_) => {
                if self.cs_count != 0 {
                    return Err(EncodeError::WrongLength {
                        field: "#CS with a CS ID map type of unknown layout",
                        expected: 0,
                        len: self.cs_count.into(),
                    });
                }
            }
        }
        Ok(())
    }
}
