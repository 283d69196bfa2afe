//! The Diameter base protocol codec (RFC 6733 §3, §4) as the Zn client needs it: message header,
//! AVPs with the vendor bit and padding, grouped AVPs, and the command and AVP numbers of the
//! base protocol and of Zn (TS 29.109, application 16777220).
//!
//! No I/O and no cryptography here (the client is `crate::gba::zn`). Decoding is total: every
//! input either yields a [`Message`] or a [`DecodeError`]; it never panics or loops, grouped
//! AVPs nest at most [`MAX_DEPTH`] deep, and what it allocates is bounded by the input length
//! (itself bounded by the caller's maximum, see [`Header::check_length`]).
//!
//! Grouped AVPs are recognised by code (see [`is_grouped`]): a Diameter message does not say
//! which AVPs are grouped, the dictionary does. Every other AVP keeps its octets as received.
//! Encoding writes zero padding and computes every length, so `decode → encode` gives back the
//! input octet for octet whenever the input's padding was zero.

// No panic in non-test code (clippy.toml allows these in tests):
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![deny(clippy::indexing_slicing, clippy::panic)]

use std::time::{Duration, SystemTime};

use thiserror::Error;

/// Diameter protocol version (RFC 6733 §3).
pub const VERSION: u8 = 1;
/// Octets of the message header.
pub const HEADER_LEN: usize = 20;
/// Deepest nesting of grouped AVPs decoded (a message at depth 0, its AVPs at 1).
pub const MAX_DEPTH: usize = 8;
/// Largest AVP or message length the 24-bit length fields can carry.
pub const MAX_LEN_FIELD: usize = 0x00ff_ffff;

/// Header flags (RFC 6733 §3).
pub mod flags {
    /// R: request.
    pub const REQUEST: u8 = 0x80;
    /// P: proxiable.
    pub const PROXIABLE: u8 = 0x40;
    /// E: error (an answer carrying a 3xxx protocol error).
    pub const ERROR: u8 = 0x20;
    /// T: potentially retransmitted (resent after a failover).
    pub const RETRANSMITTED: u8 = 0x10;
}

/// AVP flags (RFC 6733 §4.1).
pub mod avp_flags {
    /// V: a Vendor-ID follows.
    pub const VENDOR: u8 = 0x80;
    /// M: mandatory.
    pub const MANDATORY: u8 = 0x40;
}

/// Application identifiers.
pub mod app {
    /// Diameter common messages (CER/CEA, DWR/DWA, DPR/DPA).
    pub const COMMON: u32 = 0;
    /// 3GPP Zn (TS 29.109).
    pub const ZN: u32 = 16_777_220;
}

/// Vendor-Id of 3GPP.
pub const VENDOR_3GPP: u32 = 10_415;

/// Command codes.
pub mod cmd {
    /// Capabilities-Exchange-Request/Answer.
    pub const CAPABILITIES_EXCHANGE: u32 = 257;
    /// Device-Watchdog-Request/Answer.
    pub const DEVICE_WATCHDOG: u32 = 280;
    /// Disconnect-Peer-Request/Answer.
    pub const DISCONNECT_PEER: u32 = 282;
    /// Bootstrapping-Info-Request/Answer (Zn).
    pub const BOOTSTRAPPING_INFO: u32 = 310;
}

/// AVP codes of the base protocol (vendor 0).
pub mod code {
    /// Host-IP-Address (Address).
    pub const HOST_IP_ADDRESS: u32 = 257;
    /// Auth-Application-Id (Unsigned32).
    pub const AUTH_APPLICATION_ID: u32 = 258;
    /// Acct-Application-Id (Unsigned32).
    pub const ACCT_APPLICATION_ID: u32 = 259;
    /// Vendor-Specific-Application-Id (Grouped).
    pub const VENDOR_SPECIFIC_APPLICATION_ID: u32 = 260;
    /// Session-Id (UTF8String).
    pub const SESSION_ID: u32 = 263;
    /// Origin-Host (DiameterIdentity).
    pub const ORIGIN_HOST: u32 = 264;
    /// Supported-Vendor-Id (Unsigned32).
    pub const SUPPORTED_VENDOR_ID: u32 = 265;
    /// Vendor-Id (Unsigned32).
    pub const VENDOR_ID: u32 = 266;
    /// Firmware-Revision (Unsigned32).
    pub const FIRMWARE_REVISION: u32 = 267;
    /// Result-Code (Unsigned32).
    pub const RESULT_CODE: u32 = 268;
    /// Product-Name (UTF8String).
    pub const PRODUCT_NAME: u32 = 269;
    /// Disconnect-Cause (Enumerated).
    pub const DISCONNECT_CAUSE: u32 = 273;
    /// Origin-State-Id (Unsigned32).
    pub const ORIGIN_STATE_ID: u32 = 278;
    /// Failed-AVP (Grouped).
    pub const FAILED_AVP: u32 = 279;
    /// Error-Message (UTF8String).
    pub const ERROR_MESSAGE: u32 = 281;
    /// Route-Record (DiameterIdentity).
    pub const ROUTE_RECORD: u32 = 282;
    /// Destination-Realm (DiameterIdentity).
    pub const DESTINATION_REALM: u32 = 283;
    /// Proxy-Info (Grouped).
    pub const PROXY_INFO: u32 = 284;
    /// Destination-Host (DiameterIdentity).
    pub const DESTINATION_HOST: u32 = 293;
    /// Origin-Realm (DiameterIdentity).
    pub const ORIGIN_REALM: u32 = 296;
    /// Experimental-Result (Grouped).
    pub const EXPERIMENTAL_RESULT: u32 = 297;
    /// Experimental-Result-Code (Unsigned32).
    pub const EXPERIMENTAL_RESULT_CODE: u32 = 298;
    /// User-Name (UTF8String).
    pub const USER_NAME: u32 = 1;
}

/// Zn AVP codes (vendor 10415, TS 29.109 §6.3).
pub mod zn {
    /// GBA-UserSecSettings (OctetString).
    pub const GBA_USER_SEC_SETTINGS: u32 = 400;
    /// Transaction-Identifier (OctetString): the B-TID.
    pub const TRANSACTION_IDENTIFIER: u32 = 401;
    /// NAF-Id (OctetString): NAF FQDN ‖ Ua security protocol id.
    pub const NAF_ID: u32 = 402;
    /// GAA-Service-Identifier (OctetString).
    pub const GAA_SERVICE_IDENTIFIER: u32 = 403;
    /// Key-ExpiryTime (Time).
    pub const KEY_EXPIRY_TIME: u32 = 404;
    /// ME-Key-Material (OctetString): Ks_NAF or Ks_ext_NAF.
    pub const ME_KEY_MATERIAL: u32 = 405;
    /// UICC-Key-Material (OctetString): Ks_int_NAF.
    pub const UICC_KEY_MATERIAL: u32 = 406;
    /// GBA_U-Awareness-Indicator (Enumerated NO 0 / YES 1).
    pub const GBA_U_AWARENESS_INDICATOR: u32 = 407;
    /// BootstrapInfoCreationTime (Time).
    pub const BOOTSTRAP_INFO_CREATION_TIME: u32 = 408;
    /// GBA-Type (Enumerated 3G 0 / 2G 1).
    pub const GBA_TYPE: u32 = 410;
}

/// Result codes used here (RFC 6733 §7.1, TS 29.109 §6.3.3).
pub mod result {
    /// DIAMETER_SUCCESS.
    pub const SUCCESS: u32 = 2001;
    /// DIAMETER_COMMAND_UNSUPPORTED.
    pub const COMMAND_UNSUPPORTED: u32 = 3001;
    /// DIAMETER_UNABLE_TO_DELIVER.
    pub const UNABLE_TO_DELIVER: u32 = 3002;
    /// DIAMETER_TOO_BUSY.
    pub const TOO_BUSY: u32 = 3004;
    /// DIAMETER_UNKNOWN_PEER.
    pub const UNKNOWN_PEER: u32 = 3010;
    /// DIAMETER_NO_COMMON_APPLICATION.
    pub const NO_COMMON_APPLICATION: u32 = 5010;
    /// DIAMETER_ERROR_IMPI_UNKNOWN (Experimental-Result, vendor 10415).
    pub const IMPI_UNKNOWN: u32 = 5401;
    /// DIAMETER_ERROR_NOT_AUTHORIZED (Experimental-Result, vendor 10415).
    pub const NOT_AUTHORIZED: u32 = 5402;
    /// DIAMETER_ERROR_TRANSACTION_IDENTIFIER_INVALID (Experimental-Result, vendor 10415).
    pub const TRANSACTION_IDENTIFIER_INVALID: u32 = 5403;
}

/// Whether the AVP `(code, vendor)` is Grouped in the dictionary this codec knows: the base
/// protocol's Vendor-Specific-Application-Id, Failed-AVP, Proxy-Info and Experimental-Result.
#[must_use]
pub fn is_grouped(code: u32, vendor: Option<u32>) -> bool {
    vendor.is_none()
        && matches!(
            code,
            code::VENDOR_SPECIFIC_APPLICATION_ID
                | code::FAILED_AVP
                | code::PROXY_INFO
                | code::EXPERIMENTAL_RESULT
        )
}

/// Why octets are not a Diameter message.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// Fewer octets than the header or a length field needs.
    #[error("truncated: {need} octets needed, {have} present")]
    Truncated {
        /// Octets the structure needs.
        need: usize,
        /// Octets present.
        have: usize,
    },
    /// The version octet is not 1.
    #[error("Diameter version {0}, only 1 is known")]
    Version(u8),
    /// The message length is under 20, not a multiple of 4, or over the caller's maximum.
    #[error("message length {0} is invalid")]
    MessageLength(usize),
    /// The message length does not match the octets given.
    #[error("message length {declared} but {actual} octets given")]
    LengthMismatch {
        /// The header's length.
        declared: usize,
        /// Octets present.
        actual: usize,
    },
    /// An AVP length is under its header size or runs past its container.
    #[error("AVP {code} at offset {offset}: length {length} is invalid")]
    AvpLength {
        /// The AVP code.
        code: u32,
        /// Offset of the AVP in its container.
        offset: usize,
        /// Its length field.
        length: usize,
    },
    /// An AVP header is cut short by the end of its container.
    #[error("AVP header at offset {0} is truncated")]
    AvpHeader(usize),
    /// Grouped AVPs nested deeper than [`MAX_DEPTH`].
    #[error("grouped AVPs nest deeper than {MAX_DEPTH}")]
    TooDeep,
}

/// Why a message cannot be encoded.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// An AVP or the message is longer than its 24-bit length field allows.
    #[error("{0} octets do not fit a 24-bit length")]
    TooLong(usize),
}

/// The message header (RFC 6733 §3); the length is computed on encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Command flags (see [`flags`]).
    pub flags: u8,
    /// Command code.
    pub command: u32,
    /// Application-ID.
    pub application: u32,
    /// Hop-by-Hop Identifier.
    pub hop_by_hop: u32,
    /// End-to-End Identifier.
    pub end_to_end: u32,
}

fn u24(b: &[u8]) -> usize {
    b.iter()
        .take(3)
        .fold(0usize, |acc, &x| (acc << 8) | usize::from(x))
}

fn be32(b: &[u8]) -> u32 {
    b.iter()
        .take(4)
        .fold(0u32, |acc, &x| (acc << 8) | u32::from(x))
}

impl Header {
    /// Whether the R flag is set.
    #[must_use]
    pub fn is_request(&self) -> bool {
        self.flags & flags::REQUEST != 0
    }

    /// Reads the header at the start of `buf` and checks its message length: at least 20, a
    /// multiple of 4, at most `max_len`. Returns the header and the message length, so that a
    /// stream reader knows how many octets to wait for before reading them.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`], [`DecodeError::Version`], [`DecodeError::MessageLength`].
    pub fn check_length(buf: &[u8], max_len: usize) -> Result<(Self, usize), DecodeError> {
        let Some(h) = buf.get(..HEADER_LEN) else {
            return Err(DecodeError::Truncated {
                need: HEADER_LEN,
                have: buf.len(),
            });
        };
        let version = h.first().copied().unwrap_or_default();
        if version != VERSION {
            return Err(DecodeError::Version(version));
        }
        let len = u24(h.get(1..4).unwrap_or_default());
        if len < HEADER_LEN || !len.is_multiple_of(4) || len > max_len {
            return Err(DecodeError::MessageLength(len));
        }
        let header = Self {
            flags: h.get(4).copied().unwrap_or_default(),
            command: be32(h.get(4..8).unwrap_or_default()) & 0x00ff_ffff,
            application: be32(h.get(8..12).unwrap_or_default()),
            hop_by_hop: be32(h.get(12..16).unwrap_or_default()),
            end_to_end: be32(h.get(16..20).unwrap_or_default()),
        };
        Ok((header, len))
    }
}

/// The value of an AVP: its octets, or the AVPs of a grouped one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Any non-grouped type, as octets.
    Octets(Vec<u8>),
    /// A Grouped AVP's members.
    Grouped(Vec<Avp>),
}

/// One AVP (RFC 6733 §4.1).
///
/// `Debug` prints the octets: key-carrying AVPs (ME-/UICC-Key-Material) must not be logged;
/// the Zn client never formats messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Avp {
    /// AVP code.
    pub code: u32,
    /// AVP flags (see [`avp_flags`]); the constructors set V with a vendor, and encoding
    /// writes V from `vendor` whatever this says.
    pub flags: u8,
    /// Vendor-ID, present exactly when the V bit is set.
    pub vendor: Option<u32>,
    /// The value.
    pub value: Value,
}

impl Avp {
    /// An AVP with octets `data`, the M bit set when `mandatory`.
    #[must_use]
    pub fn octets(
        code: u32,
        vendor: Option<u32>,
        mandatory: bool,
        data: impl Into<Vec<u8>>,
    ) -> Self {
        Self {
            code,
            flags: if mandatory { avp_flags::MANDATORY } else { 0 }
                | if vendor.is_some() {
                    avp_flags::VENDOR
                } else {
                    0
                },
            vendor,
            value: Value::Octets(data.into()),
        }
    }

    /// A base-protocol (vendor 0) mandatory AVP with octets `data`.
    #[must_use]
    pub fn base(code: u32, data: impl Into<Vec<u8>>) -> Self {
        Self::octets(code, None, true, data)
    }

    /// A base-protocol mandatory Unsigned32 (or Enumerated) AVP.
    #[must_use]
    pub fn base_u32(code: u32, v: u32) -> Self {
        Self::base(code, v.to_be_bytes())
    }

    /// A 3GPP (vendor 10415) AVP with V and M set.
    #[must_use]
    pub fn tgpp(code: u32, data: impl Into<Vec<u8>>) -> Self {
        Self::octets(code, Some(VENDOR_3GPP), true, data)
    }

    /// A mandatory grouped AVP.
    #[must_use]
    pub fn grouped(code: u32, vendor: Option<u32>, members: Vec<Avp>) -> Self {
        Self {
            code,
            flags: avp_flags::MANDATORY
                | if vendor.is_some() {
                    avp_flags::VENDOR
                } else {
                    0
                },
            vendor,
            value: Value::Grouped(members),
        }
    }

    /// The octets of a non-grouped AVP.
    #[must_use]
    pub fn data(&self) -> Option<&[u8]> {
        match &self.value {
            Value::Octets(d) => Some(d),
            Value::Grouped(_) => None,
        }
    }

    /// The members of a grouped AVP.
    #[must_use]
    pub fn members(&self) -> Option<&[Avp]> {
        match &self.value {
            Value::Octets(_) => None,
            Value::Grouped(m) => Some(m),
        }
    }

    /// The value as Unsigned32 / Enumerated (exactly 4 octets).
    #[must_use]
    pub fn as_u32(&self) -> Option<u32> {
        let d: [u8; 4] = self.data()?.try_into().ok()?;
        Some(u32::from_be_bytes(d))
    }

    /// The value as UTF-8 text.
    #[must_use]
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self.data()?).ok()
    }

    /// The value as a Diameter Time (see [`ntp_to_system`]).
    #[must_use]
    pub fn as_time(&self) -> Option<SystemTime> {
        self.as_u32().map(ntp_to_system)
    }

    /// Whether this is `(code, vendor)`.
    #[must_use]
    pub fn is(&self, code: u32, vendor: Option<u32>) -> bool {
        self.code == code && self.vendor == vendor
    }

    fn header_len(&self) -> usize {
        if self.vendor.is_some() { 12 } else { 8 }
    }

    /// Encoded length without padding (the AVP Length field).
    fn unpadded_len(&self) -> usize {
        self.header_len()
            + match &self.value {
                Value::Octets(d) => d.len(),
                Value::Grouped(m) => m.iter().map(Avp::padded_len).sum(),
            }
    }

    fn padded_len(&self) -> usize {
        self.unpadded_len().next_multiple_of(4)
    }

    fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let len = self.unpadded_len();
        if len > MAX_LEN_FIELD {
            return Err(EncodeError::TooLong(len));
        }
        out.extend_from_slice(&self.code.to_be_bytes());
        let mut f = self.flags & !avp_flags::VENDOR;
        if self.vendor.is_some() {
            f |= avp_flags::VENDOR;
        }
        out.push(f);
        out.extend_from_slice(&u32::try_from(len).unwrap_or(0).to_be_bytes()[1..]);
        if let Some(v) = self.vendor {
            out.extend_from_slice(&v.to_be_bytes());
        }
        match &self.value {
            Value::Octets(d) => out.extend_from_slice(d),
            Value::Grouped(m) => {
                for a in m {
                    a.encode_into(out)?;
                }
            }
        }
        out.resize(out.len() + (self.padded_len() - len), 0);
        Ok(())
    }
}

/// Decodes the AVPs filling `buf` (a message body or a grouped AVP's data) at nesting `depth`.
fn decode_avps(buf: &[u8], depth: usize) -> Result<Vec<Avp>, DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError::TooDeep);
    }
    let mut out = Vec::new();
    let mut off = 0;
    while off < buf.len() {
        let rest = buf.get(off..).unwrap_or_default();
        let Some(h) = rest.get(..8) else {
            return Err(DecodeError::AvpHeader(off));
        };
        let code = be32(h);
        let flags = h.get(4).copied().unwrap_or_default();
        let length = u24(h.get(5..8).unwrap_or_default());
        let (vendor, hlen) = if flags & avp_flags::VENDOR != 0 {
            let v = rest.get(8..12).ok_or(DecodeError::AvpHeader(off))?;
            (Some(be32(v)), 12)
        } else {
            (None, 8)
        };
        if length < hlen || length > rest.len() {
            return Err(DecodeError::AvpLength {
                code,
                offset: off,
                length,
            });
        }
        let data = rest.get(hlen..length).unwrap_or_default();
        let value = if is_grouped(code, vendor) {
            Value::Grouped(decode_avps(data, depth + 1)?)
        } else {
            Value::Octets(data.to_vec())
        };
        out.push(Avp {
            code,
            flags,
            vendor,
            value,
        });
        // The last AVP of a container may lack its padding (RFC 6733 §4.1 counts it in the
        // enclosing length; some peers omit it at the very end): accept the end.
        off = off
            .saturating_add(length.next_multiple_of(4))
            .min(buf.len());
    }
    Ok(out)
}

/// A Diameter message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The header.
    pub header: Header,
    /// The AVPs, in order.
    pub avps: Vec<Avp>,
}

impl Message {
    /// A request: R set, plus P when `proxiable`.
    #[must_use]
    pub fn request(command: u32, application: u32, proxiable: bool, avps: Vec<Avp>) -> Self {
        Self {
            header: Header {
                flags: flags::REQUEST | if proxiable { flags::PROXIABLE } else { 0 },
                command,
                application,
                hop_by_hop: 0,
                end_to_end: 0,
            },
            avps,
        }
    }

    /// The answer header of `request`: command, application and identifiers copied, R
    /// cleared, P kept (RFC 6733 §6.2).
    #[must_use]
    pub fn answer_to(request: &Header, avps: Vec<Avp>) -> Self {
        Self {
            header: Header {
                flags: request.flags & flags::PROXIABLE,
                ..*request
            },
            avps,
        }
    }

    /// Decodes one whole message of at most `max_len` octets.
    ///
    /// # Errors
    /// The [`DecodeError`].
    pub fn decode(buf: &[u8], max_len: usize) -> Result<Self, DecodeError> {
        let (header, len) = Header::check_length(buf, max_len)?;
        if len != buf.len() {
            return Err(DecodeError::LengthMismatch {
                declared: len,
                actual: buf.len(),
            });
        }
        let avps = decode_avps(buf.get(HEADER_LEN..).unwrap_or_default(), 1)?;
        Ok(Self { header, avps })
    }

    /// The encoded message.
    ///
    /// # Errors
    /// [`EncodeError::TooLong`].
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out =
            Vec::with_capacity(HEADER_LEN + self.avps.iter().map(Avp::padded_len).sum::<usize>());
        out.push(VERSION);
        out.extend_from_slice(&[0, 0, 0]);
        out.push(self.header.flags);
        out.extend_from_slice(&self.header.command.to_be_bytes()[1..]);
        out.extend_from_slice(&self.header.application.to_be_bytes());
        out.extend_from_slice(&self.header.hop_by_hop.to_be_bytes());
        out.extend_from_slice(&self.header.end_to_end.to_be_bytes());
        for a in &self.avps {
            a.encode_into(&mut out)?;
        }
        let len = out.len();
        if len > MAX_LEN_FIELD {
            return Err(EncodeError::TooLong(len));
        }
        let l = u32::try_from(len).unwrap_or(0).to_be_bytes();
        if let (Some(dst), Some(src)) = (out.get_mut(1..4), l.get(1..4)) {
            dst.copy_from_slice(src);
        }
        Ok(out)
    }

    /// The first top-level AVP `(code, vendor)`.
    #[must_use]
    pub fn find(&self, code: u32, vendor: Option<u32>) -> Option<&Avp> {
        self.avps.iter().find(|a| a.is(code, vendor))
    }

    /// The Result-Code, or the Experimental-Result-Code with its Vendor-Id.
    #[must_use]
    pub fn result(&self) -> Option<ResultCode> {
        if let Some(c) = self.find(code::RESULT_CODE, None).and_then(Avp::as_u32) {
            return Some(ResultCode::Base(c));
        }
        let members = self.find(code::EXPERIMENTAL_RESULT, None)?.members()?;
        let get = |c| members.iter().find(|a| a.is(c, None)).and_then(Avp::as_u32);
        Some(ResultCode::Experimental {
            vendor: get(code::VENDOR_ID)?,
            code: get(code::EXPERIMENTAL_RESULT_CODE)?,
        })
    }
}

/// An answer's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultCode {
    /// Result-Code.
    Base(u32),
    /// Experimental-Result {Vendor-Id, Experimental-Result-Code}.
    Experimental {
        /// Vendor-Id.
        vendor: u32,
        /// Experimental-Result-Code.
        code: u32,
    },
}

impl ResultCode {
    /// The numeric code.
    #[must_use]
    pub fn code(self) -> u32 {
        match self {
            Self::Base(c) | Self::Experimental { code: c, .. } => c,
        }
    }

    /// Whether it is a 2xxx success.
    #[must_use]
    pub fn is_success(self) -> bool {
        (2000..3000).contains(&self.code())
    }
}

/// Seconds between the NTP epoch (1900) and the Unix epoch.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// A Diameter Time (RFC 6733 §4.3.1: NTP seconds) as a [`SystemTime`]. Values with the most
/// significant bit clear are read in the era starting 2036-02-07 06:28:16 UTC, as RFC 5905
/// and RFC 6733 §4.3.1 allow for the 2036 rollover.
#[must_use]
pub fn ntp_to_system(ntp: u32) -> SystemTime {
    let secs = u64::from(ntp) + if ntp & 0x8000_0000 == 0 { 1 << 32 } else { 0 };
    let unix = secs.saturating_sub(NTP_UNIX_OFFSET);
    SystemTime::UNIX_EPOCH + Duration::from_secs(unix)
}

/// A [`SystemTime`] as a Diameter Time (the inverse of [`ntp_to_system`] for 1968–2104);
/// `None` outside that range.
#[must_use]
pub fn system_to_ntp(t: SystemTime) -> Option<u32> {
    let unix = t.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs();
    let ntp = unix + NTP_UNIX_OFFSET;
    let v = u32::try_from(ntp & 0xffff_ffff).ok()?;
    (ntp < (1 << 32) + (1 << 31) && (ntp >= 1 << 32 || v & 0x8000_0000 != 0)).then_some(v)
}

#[cfg(test)]
mod tests;
