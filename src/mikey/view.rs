//! A borrowed reading of a MIKEY datagram: [`MessageView`] checks a
//! datagram exactly as [`Message::decode`] does (the same inputs accepted,
//! the same errors), but copies nothing and allocates nothing. Variable
//! fields are slices of the datagram; repeated structures (the payload
//! chain, Key ID entries, SP parameters, SRTP-ID map entries, a Key data
//! chain) are checked once and read again when iterated.
//!
//! [`Message::decode`] is this reading followed by a copy into the owned
//! types, so both agree by construction.

mod ext;
mod fail;
mod field;
mod hdr;
mod keydata;
mod owned;
mod payload;

pub(crate) use owned::decode_owned;

pub use ext::{ExtensionView, KeyIdEntries, KeyIdEntryView};
pub use hdr::{CsIdMapView, GenericIdEntryView, GenericIdMap, HdrView, SrtpIdMap};
pub use keydata::{EncrDataBuf, EncrDataTooLong, KeyDataChain, KeyDataView, KeyValidityView};
pub use payload::{
    CertView, ChashView, DhView, IdView, IdrView, KemacView, PayloadView, PkeView, PolicyParamView,
    SakkeView, SecurityPolicyView, SignView, VerificationView,
};

use super::error::{DecodeError, PayloadName, Reason};
use super::payload::{MacField, Timestamp};
use super::wire::{IdRole, PayloadType};
#[cfg(doc)]
use super::{Message, Received};
use fail::{Fail, decode_error};
use field::labelled;

/// A checked MIKEY datagram, read in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageView<'a> {
    bytes: &'a [u8],
    hdr: HdrView<'a>,
    /// The type of the first payload, from HDR.
    first: PayloadType,
    /// Offset of the first payload: the length of HDR.
    body: usize,
    count: usize,
    mac: Option<MacField>,
}

/// The walk along the next-payload chain shared by checking and iterating.
struct Chain<'a> {
    /// The octets after the payloads passed.
    rest: &'a [u8],
    /// The length of the whole datagram, `rest` its end: offsets are
    /// `end - rest.len()`.
    end: usize,
    next: PayloadType,
    /// The last MAC/signature field passed.
    mac: Option<MacField>,
}

impl<'a> Chain<'a> {
    /// The chain whose first payload, of type `first`, starts `body`, the
    /// end of a datagram of `end` octets.
    fn new(body: &'a [u8], end: usize, first: PayloadType) -> Self {
        Self {
            rest: body,
            end,
            next: first,
            mac: None,
        }
    }

    fn offset(&self) -> usize {
        self.end.saturating_sub(self.rest.len())
    }

    /// The next payload with its offset, `None` after the last.
    fn step(&mut self) -> Result<Option<(usize, PayloadView<'a>)>, nom::Err<Fail>> {
        if self.next == PayloadType::LAST {
            return Ok(None);
        }
        if self.rest.is_empty() {
            let announced = "payload announced by the previous next-payload field";
            return Err(nom::Err::Error(Fail::truncated(self.rest, announced, 1)));
        }
        let offset = self.offset();
        let ptype = self.next;
        let (rest, (payload, following)) = PayloadView::parse(ptype, self.rest)?;
        self.rest = rest;
        if let Some(len) = payload.mac_len() {
            // The field ends the payload.
            self.mac = Some(MacField {
                payload: ptype,
                offset: self.offset().saturating_sub(len),
                len,
            });
        }
        self.next = following;
        Ok(Some((offset, payload)))
    }
}

/// The payloads of a [`MessageView`] with their offsets, in wire order.
pub struct Payloads<'a>(Chain<'a>);

impl<'a> Iterator for Payloads<'a> {
    /// The start offset of the payload and the payload.
    type Item = (usize, PayloadView<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        // The chain was checked by `MessageView::decode`; should a step
        // fail anyway, the iteration ends.
        match self.0.step() {
            Ok(Some(item)) => Some(item),
            _ => {
                self.0.next = PayloadType::LAST;
                None
            }
        }
    }
}

impl<'a> MessageView<'a> {
    /// Checks one complete datagram; trailing octets after the last payload
    /// are an error. Accepts and rejects exactly what [`Message::decode`]
    /// does, with the same [`DecodeError`].
    pub fn decode(input: &'a [u8]) -> Result<Self, DecodeError> {
        Self::decode_with(input, |_, _| {})
    }

    /// [`MessageView::decode`] that hands each payload, with its start
    /// offset, to `visit` as it is checked: one walk for a reader that needs
    /// every payload anyway. On `Err`, `visit` may have seen a prefix of the
    /// payloads.
    pub fn decode_with(
        input: &'a [u8],
        visit: impl FnMut(usize, PayloadView<'a>),
    ) -> Result<Self, DecodeError> {
        Self::parse(input, visit).map_err(|e| decode_error(e, input.len()))
    }

    /// [`MessageView::decode_with`] with the parsers' error.
    fn parse(
        input: &'a [u8],
        mut visit: impl FnMut(usize, PayloadView<'a>),
    ) -> Result<Self, nom::Err<Fail>> {
        let (body, (hdr, first)) = labelled(PayloadName::Hdr, HdrView::parse(input))?;
        let mut chain = Chain::new(body, input.len(), first);
        let mut count = 0;
        while let Some((offset, payload)) = chain.step()? {
            count += 1;
            visit(offset, payload);
        }
        if !chain.rest.is_empty() {
            let count = chain.rest.len();
            return Err(nom::Err::Error(Fail::at(
                chain.rest,
                Reason::TrailingBytes { count },
            )));
        }
        Ok(Self {
            bytes: input,
            hdr,
            first,
            body: input.len().saturating_sub(body.len()),
            count,
            mac: chain.mac,
        })
    }

    /// The octets exactly as received.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The common header.
    pub fn hdr(&self) -> &HdrView<'a> {
        &self.hdr
    }

    /// The payloads after HDR with their start offsets, in wire order.
    pub fn payloads(&self) -> Payloads<'a> {
        let body = self.bytes.get(self.body..).unwrap_or_default();
        Payloads(Chain::new(body, self.bytes.len(), self.first))
    }

    /// How many payloads follow HDR.
    pub fn payload_count(&self) -> usize {
        self.count
    }

    /// The last MAC/signature field (of KEMAC, V or SIGN), if any.
    pub fn mac_field(&self) -> Option<MacField> {
        self.mac
    }

    /// The octets the MAC covers: everything before the MAC field
    /// (RFC 3830 §5.2). `None` when the message has no MAC field.
    pub fn mac_input(&self) -> Option<&'a [u8]> {
        self.mac.and_then(|m| self.bytes.get(..m.offset))
    }

    /// The MAC field octets as received.
    pub fn mac_value(&self) -> Option<&'a [u8]> {
        self.mac
            .and_then(|m| self.bytes.get(m.offset..m.offset.checked_add(m.len)?))
    }

    /// The first T payload.
    pub fn timestamp(&self) -> Option<Timestamp> {
        self.payloads().find_map(|(_, p)| match p {
            PayloadView::T(t) => Some(t),
            _ => None,
        })
    }

    /// The first RAND payload.
    pub fn rand(&self) -> Option<&'a [u8]> {
        self.payloads().find_map(|(_, p)| match p {
            PayloadView::Rand(r) => Some(r),
            _ => None,
        })
    }

    /// The first KEMAC payload.
    pub fn kemac(&self) -> Option<KemacView<'a>> {
        self.payloads().find_map(|(_, p)| match p {
            PayloadView::Kemac(k) => Some(k),
            _ => None,
        })
    }

    /// The first IDR payload of `role`.
    pub fn idr(&self, role: IdRole) -> Option<IdrView<'a>> {
        self.payloads().find_map(|(_, p)| match p {
            PayloadView::Idr(i) if i.role == role => Some(i),
            _ => None,
        })
    }

    /// The first SAKKE payload.
    pub fn sakke(&self) -> Option<SakkeView<'a>> {
        self.payloads().find_map(|(_, p)| match p {
            PayloadView::Sakke(s) => Some(s),
            _ => None,
        })
    }

    /// The SIGN payload (always the last one).
    pub fn sign(&self) -> Option<SignView<'a>> {
        self.payloads().find_map(|(_, p)| match p {
            PayloadView::Sign(s) => Some(s),
            _ => None,
        })
    }

    /// The entries of the first General Extension payload of type Key ID.
    pub fn key_id_ext(&self) -> Option<KeyIdEntries<'a>> {
        self.payloads().find_map(|(_, p)| match p {
            PayloadView::Ext(ExtensionView::KeyId(ids)) => Some(ids),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests;
