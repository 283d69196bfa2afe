//! HDR (RFC 3830 §6.1) read in place: the CS ID map stays a slice of the
//! datagram.

use nom::Parser;
use nom::combinator::recognize;
use nom::multi::fold_many_m_n;

use super::fail::{Fail, Res, fail};
use super::field::{bytes, items, len8_bytes, len16_bytes, uint8, uint32};
use crate::mikey::error::Reason;
use crate::mikey::hdr::SrtpIdEntry;
use crate::mikey::wire::{CsIdMapType, DataType, PayloadType, PrfFunc};

/// The common header, borrowing its CS ID map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HdrView<'a> {
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
    pub cs_id_map: CsIdMapView<'a>,
}

/// CS ID map info by map type, as [`crate::mikey::CsIdMap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsIdMapView<'a> {
    /// Map type 0: #CS SRTP-ID entries (RFC 3830 §6.1.1).
    SrtpId(SrtpIdMap<'a>),
    /// Map type 1 (RFC 4563 §5): no map info.
    Empty,
    /// Map type 2 (RFC 6043 §6.1): #CS GENERIC-ID entries.
    GenericId(GenericIdMap<'a>),
    /// Another map type, only with #CS = 0 (its layout is not known).
    Other(CsIdMapType),
}

/// The SRTP-ID map entries as received: `Policy_no (1) ‖ SSRC (4) ‖ ROC (4)` each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SrtpIdMap<'a>(&'a [u8]);

const SRTP_ID_ENTRY_LEN: usize = 9;

impl<'a> SrtpIdMap<'a> {
    /// The number of entries (#CS).
    pub fn len(&self) -> usize {
        self.0.len() / SRTP_ID_ENTRY_LEN
    }

    /// Whether the map has no entry.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The entries, one per crypto session, in wire order.
    pub fn iter(&self) -> impl Iterator<Item = SrtpIdEntry> + 'a {
        self.0.as_chunks::<SRTP_ID_ENTRY_LEN>().0.iter().map(
            |&[policy_no, s0, s1, s2, s3, r0, r1, r2, r3]| SrtpIdEntry {
                policy_no,
                ssrc: u32::from_be_bytes([s0, s1, s2, s3]),
                roc: u32::from_be_bytes([r0, r1, r2, r3]),
            },
        )
    }

    /// The entry of the first crypto session.
    pub fn first(&self) -> Option<SrtpIdEntry> {
        self.iter().next()
    }
}

/// The GENERIC-ID map entries as received, checked when the message was
/// decoded and read again on each iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenericIdMap<'a>(&'a [u8]);

/// One GENERIC-ID map entry, as [`crate::mikey::GenericIdEntry`], borrowing its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenericIdEntryView<'a> {
    /// The crypto session's ID.
    pub cs_id: u8,
    /// The security protocol (0: SRTP).
    pub prot_type: u8,
    /// The S flag.
    pub s: bool,
    /// The numbers of the SP payloads that apply.
    pub policies: &'a [u8],
    /// Session Data.
    pub session_data: &'a [u8],
    /// The Security Parameter Index.
    pub spi: &'a [u8],
}

impl<'a> GenericIdMap<'a> {
    /// The entries, one per crypto session, in wire order.
    pub fn iter(&self) -> impl Iterator<Item = GenericIdEntryView<'a>> + Clone + 'a {
        items(self.0, || generic_id_entry)
    }
}

/// `CS ID ‖ Prot type ‖ S/#P ‖ Ps ‖ Session Data Length (16) ‖ Session Data ‖
/// SPI Length (8) ‖ SPI`.
fn generic_id_entry(i: &[u8]) -> Res<'_, GenericIdEntryView<'_>> {
    let (i, (cs_id, prot_type, s_p)) = (
        uint8("GENERIC-ID CS ID"),
        uint8("GENERIC-ID Prot type"),
        uint8("GENERIC-ID S/#P"),
    )
        .parse_complete(i)?;
    let (i, (policies, session_data, spi)) = (
        bytes("GENERIC-ID Ps", usize::from(s_p & 0x7f)),
        len16_bytes("GENERIC-ID Session Data Length", "GENERIC-ID Session Data"),
        len8_bytes("GENERIC-ID SPI Length", "GENERIC-ID SPI"),
    )
        .parse_complete(i)?;
    let entry = GenericIdEntryView {
        cs_id,
        prot_type,
        s: s_p & 0x80 != 0,
        policies,
        session_data,
        spi,
    };
    Ok((i, entry))
}

impl CsIdMapView<'_> {
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

impl<'a> HdrView<'a> {
    /// Parses HDR; returns it with the type of the first payload.
    pub(crate) fn parse(i: &'a [u8]) -> Res<'a, (Self, PayloadType)> {
        let (i, (version, data_type, next, v_prf, csb_id, cs_count)) = (
            uint8("version"),
            uint8("data type").map(DataType),
            uint8("next payload").map(PayloadType),
            uint8("V/PRF func"),
            uint32("CSB ID"),
            uint8("#CS"),
        )
            .parse_complete(i)?;
        let map_at = i;
        let (i, map_type) = uint8("CS ID map type").map(CsIdMapType).parse_complete(i)?;
        let (i, cs_id_map) = match map_type {
            CsIdMapType::SRTP_ID => recognize(srtp_id_entries(cs_count))
                .map(|entries| CsIdMapView::SrtpId(SrtpIdMap(entries)))
                .parse_complete(i)?,
            CsIdMapType::EMPTY => (i, CsIdMapView::Empty),
            CsIdMapType::GENERIC_ID => {
                let mut rest = i;
                for _ in 0..cs_count {
                    rest = generic_id_entry(rest)?.0;
                }
                let used = i.len().saturating_sub(rest.len());
                let entries = i.get(..used).unwrap_or_default();
                (rest, CsIdMapView::GenericId(GenericIdMap(entries)))
            }
            other if cs_count == 0 => (i, CsIdMapView::Other(other)),
            other => {
                return fail(
                    map_at,
                    Reason::UnknownLength {
                        field: "CS ID map type",
                        value: other.0,
                    },
                );
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
        Ok((i, (hdr, next)))
    }
}

/// `count` SRTP-ID map entries, checked and not kept.
fn srtp_id_entries<'a>(count: u8) -> impl Parser<&'a [u8], Output = (), Error = Fail> {
    let count = usize::from(count);
    let entry = (
        uint8("SRTP-ID Policy_no"),
        uint32("SRTP-ID SSRC"),
        uint32("SRTP-ID ROC"),
    );
    fold_many_m_n(count, count, entry, || (), |(), _| ())
}
