//! HDR (RFC 3830 §6.1) read in place: the CS ID map stays a slice of the
//! datagram.

use crate::mikey::DecodeError;
use crate::mikey::error::Reason;
use crate::mikey::hdr::SrtpIdEntry;
use crate::mikey::reader::Reader;
use crate::mikey::wire::{CsIdMapType, DataType, PayloadType, PrfFunc};

/// The common header, borrowing its CS ID map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HdrView<'a> {
    pub version: u8,
    pub data_type: DataType,
    /// The V flag: the Initiator asks for a verification message.
    pub v: bool,
    pub prf_func: PrfFunc,
    pub csb_id: u32,
    /// #CS, the number of crypto sessions.
    pub cs_count: u8,
    pub cs_id_map: CsIdMapView<'a>,
}

/// CS ID map info by map type, as [`crate::mikey::CsIdMap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsIdMapView<'a> {
    /// Map type 0: #CS SRTP-ID entries (RFC 3830 §6.1.1).
    SrtpId(SrtpIdMap<'a>),
    /// Map type 1 (RFC 4563 §5): no map info.
    Empty,
    /// Another map type, only with #CS = 0 (its layout is not known).
    Other(CsIdMapType),
}

/// The SRTP-ID map entries as received: `Policy_no (1) ‖ SSRC (4) ‖ ROC (4)` each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SrtpIdMap<'a>(&'a [u8]);

const SRTP_ID_ENTRY_LEN: usize = 9;

impl<'a> SrtpIdMap<'a> {
    pub fn len(&self) -> usize {
        self.0.len() / SRTP_ID_ENTRY_LEN
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = SrtpIdEntry> + 'a {
        self.0.as_chunks::<SRTP_ID_ENTRY_LEN>().0.iter().map(
            |&[policy_no, s0, s1, s2, s3, r0, r1, r2, r3]| SrtpIdEntry {
                policy_no,
                ssrc: u32::from_be_bytes([s0, s1, s2, s3]),
                roc: u32::from_be_bytes([r0, r1, r2, r3]),
            },
        )
    }

    pub fn first(&self) -> Option<SrtpIdEntry> {
        self.iter().next()
    }
}

impl CsIdMapView<'_> {
    pub fn map_type(&self) -> CsIdMapType {
        match self {
            Self::SrtpId(_) => CsIdMapType::SRTP_ID,
            Self::Empty => CsIdMapType::EMPTY,
            Self::Other(map_type) => *map_type,
        }
    }
}

impl<'a> HdrView<'a> {
    /// Decodes HDR and returns it with the type of the first payload.
    pub(crate) fn decode(r: &mut Reader<'a>) -> Result<(Self, PayloadType), DecodeError> {
        let version = r.u8("version")?;
        let data_type = DataType(r.u8("data type")?);
        let next = PayloadType(r.u8("next payload")?);
        let v_prf = r.u8("V/PRF func")?;
        let csb_id = r.u32("CSB ID")?;
        let cs_count = r.u8("#CS")?;
        let map_pos = r.pos();
        let map_type = CsIdMapType(r.u8("CS ID map type")?);
        let cs_id_map = match map_type {
            CsIdMapType::SRTP_ID => {
                let entries = r.rest();
                for _ in 0..cs_count {
                    r.u8("SRTP-ID Policy_no")?;
                    r.u32("SRTP-ID SSRC")?;
                    r.u32("SRTP-ID ROC")?;
                }
                CsIdMapView::SrtpId(SrtpIdMap(r.read_since(entries)))
            }
            CsIdMapType::EMPTY => CsIdMapView::Empty,
            other if cs_count == 0 => CsIdMapView::Other(other),
            other => {
                return Err(r.error_at(
                    map_pos,
                    Reason::UnknownLength {
                        field: "CS ID map type",
                        value: other.0,
                    },
                ));
            }
        };
        let hdr = Self {
            version,
            data_type,
            v: v_prf & 0x80 != 0,
            prf_func: PrfFunc(v_prf & 0x7f),
            csb_id,
            cs_count,
            cs_id_map,
        };
        Ok((hdr, next))
    }
}
