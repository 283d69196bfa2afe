//! A streaming encoder for senders that build many messages of one shape: payloads are
//! written straight from borrowed fields into one output buffer, with no [`Message`] value
//! in between (no vector per field). Each payload's next-payload octet is patched when the
//! following payload begins, so the chain comes out as [`Message::encode`] derives it; the
//! octets are the same as encoding the equivalent [`Message`] (tested for every MSK message
//! kind in `crate::mbms`).
//!
//! [`Message`]: super::Message
//! [`Message::encode`]: super::Message::encode

use super::ext::encode_key_id_ext;
use super::put::{put_len8, put_len16, put_with_len16};
use super::{
    EncodeError, EncrAlg, ExtType, Hdr, IdRole, IdType, KeyDataType, KeyIdEntry, KvType, MacAlg,
    MacField, PayloadType, SakkeIdScheme, SakkeParams, SignType, Timestamp, TsType,
};

/// The output of a message being written.
#[derive(Debug)]
pub struct MessageWriter {
    out: Vec<u8>,
    /// Where the next-payload octet of the last payload (or of the HDR) lies.
    next_at: usize,
}

/// Where the KEMAC's Encr data and MAC fields lie in the written message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KemacFields {
    /// Offset and length of Encr data: the Key data sub-payloads, to be encrypted in place.
    pub encr_data: (usize, usize),
    /// Offset and length of the MAC field, zeroed, to be filled in.
    pub mac: (usize, usize),
}

impl MessageWriter {
    /// Starts a message with `hdr`; `capacity` should be the message's length, so that key
    /// material written before encryption is never left behind by a reallocation.
    ///
    /// # Errors
    /// The HDR's own encoding errors.
    pub fn new(hdr: &Hdr, capacity: usize) -> Result<Self, EncodeError> {
        let mut out = Vec::with_capacity(capacity);
        hdr.encode(PayloadType::LAST, &mut out)?;
        Ok(Self { out, next_at: 2 })
    }

    /// Links the previous payload to one of type `t` and writes its next-payload octet.
    fn begin(&mut self, t: PayloadType) {
        if let Some(b) = self.out.get_mut(self.next_at) {
            *b = t.0;
        }
        self.next_at = self.out.len();
        self.out.push(PayloadType::LAST.0);
    }

    /// An EXT payload of type Key ID (RFC 4563) with `entries`.
    ///
    /// # Errors
    /// An entry or the extension too long for its length field.
    pub fn key_ids(&mut self, entries: &[KeyIdEntry]) -> Result<(), EncodeError> {
        self.begin(PayloadType::GENERAL_EXT);
        encode_key_id_ext(entries, &mut self.out)
    }

    /// A T payload of type COUNTER (TS type 2).
    pub fn counter(&mut self, counter: u32) {
        self.begin(PayloadType::T);
        self.out.push(TsType::COUNTER.0);
        self.out.extend_from_slice(&counter.to_be_bytes());
    }

    /// A RAND payload.
    ///
    /// # Errors
    /// More than 255 octets.
    pub fn rand(&mut self, rand: &[u8]) -> Result<(), EncodeError> {
        self.begin(PayloadType::RAND);
        put_len8(&mut self.out, "RAND", rand.len())?;
        self.out.extend_from_slice(rand);
        Ok(())
    }

    /// An ID payload.
    ///
    /// # Errors
    /// More than 65535 octets.
    pub fn id(&mut self, id_type: IdType, data: &[u8]) -> Result<(), EncodeError> {
        self.begin(PayloadType::ID);
        self.out.push(id_type.0);
        put_len16(&mut self.out, "ID data", data.len())?;
        self.out.extend_from_slice(data);
        Ok(())
    }

    /// A KEMAC payload whose Encr data is the Key data chain `items` written in clear (the
    /// caller encrypts it in place), and whose MAC field is zeros (the caller writes it).
    ///
    /// # Errors
    /// A field too long for its length field, or a MAC algorithm of unknown length.
    pub fn kemac(
        &mut self,
        encr_alg: EncrAlg,
        items: &[KeyDataRef<'_>],
        mac_alg: MacAlg,
    ) -> Result<KemacFields, EncodeError> {
        let mac_len = mac_alg.mac_len().ok_or(EncodeError::OutOfRange {
            field: "MAC alg of unknown length",
            value: mac_alg.0.into(),
        })?;
        self.begin(PayloadType::KEMAC);
        self.out.push(encr_alg.0);
        let encr_data = put_with_len16(&mut self.out, "Encr data", |out| {
            for (i, kd) in items.iter().enumerate() {
                let next = if i + 1 < items.len() {
                    PayloadType::KEY_DATA
                } else {
                    PayloadType::LAST
                };
                out.push(next.0);
                kd.encode(out)?;
            }
            Ok(())
        })?;
        self.out.push(mac_alg.0);
        let mac_at = self.out.len();
        self.out.resize(mac_at + mac_len, 0);
        Ok(KemacFields {
            encr_data,
            mac: (mac_at, mac_len),
        })
    }

    /// A T payload.
    pub fn timestamp(&mut self, t: Timestamp) {
        self.begin(PayloadType::T);
        self.out.push(t.ts_type().0);
        match t {
            Timestamp::NtpUtc(v) | Timestamp::Ntp(v) => {
                self.out.extend_from_slice(&v.to_be_bytes())
            }
            Timestamp::Counter(v) => self.out.extend_from_slice(&v.to_be_bytes()),
        }
    }

    /// An IDR payload (RFC 6043 §6.6).
    ///
    /// # Errors
    /// More than 65535 octets.
    pub fn idr(&mut self, role: IdRole, id_type: IdType, data: &[u8]) -> Result<(), EncodeError> {
        self.begin(PayloadType::IDR);
        self.out.push(role.0);
        self.out.push(id_type.0);
        put_len16(&mut self.out, "IDR ID data", data.len())?;
        self.out.extend_from_slice(data);
        Ok(())
    }

    /// A SAKKE payload (RFC 6509 §4.2).
    ///
    /// # Errors
    /// More than 65535 octets.
    pub fn sakke(
        &mut self,
        params: SakkeParams,
        id_scheme: SakkeIdScheme,
        data: &[u8],
    ) -> Result<(), EncodeError> {
        self.begin(PayloadType::SAKKE);
        self.out.push(params.0);
        self.out.push(id_scheme.0);
        put_len16(&mut self.out, "SAKKE data", data.len())?;
        self.out.extend_from_slice(data);
        Ok(())
    }

    /// A General Extension payload of `ext_type` with `data` as it is (e.g. the
    /// TS 33.180 key parameters, type 7).
    ///
    /// # Errors
    /// More than 65535 octets.
    pub fn extension(&mut self, ext_type: ExtType, data: &[u8]) -> Result<(), EncodeError> {
        self.begin(PayloadType::GENERAL_EXT);
        self.out.push(ext_type.0);
        put_len16(&mut self.out, "EXT data", data.len())?;
        self.out.extend_from_slice(data);
        Ok(())
    }

    /// Ends the message with a SIGN payload whose signature field, `len`
    /// octets, is zeros; returns the message and where the field lies. The
    /// signed octets are those before the field (the SIGN type/length
    /// octets included); the caller writes the signature in place.
    ///
    /// # Errors
    /// An S type above 15 or a signature longer than 4095 octets.
    pub fn sign(
        mut self,
        sign_type: SignType,
        len: usize,
    ) -> Result<(Vec<u8>, MacField), EncodeError> {
        if sign_type.0 > 0x0f || len > 0x0fff {
            return Err(EncodeError::TooLong {
                field: "Signature",
                len,
                max: 0x0fff,
            });
        }
        // SIGN has no next-payload octet of its own.
        if let Some(b) = self.out.get_mut(self.next_at) {
            *b = PayloadType::SIGN.0;
        }
        let word = u16::from(sign_type.0) << 12 | len as u16;
        self.out.extend_from_slice(&word.to_be_bytes());
        let offset = self.out.len();
        self.out.resize(offset + len, 0);
        let field = MacField {
            payload: PayloadType::SIGN,
            offset,
            len,
        };
        Ok((self.out, field))
    }

    /// The octets written so far.
    pub fn as_mut_bytes(&mut self) -> &mut [u8] {
        &mut self.out
    }

    /// The message written.
    pub fn into_bytes(self) -> Vec<u8> {
        self.out
    }
}

/// A Key data sub-payload with borrowed fields, for [`MessageWriter::kemac`].
#[derive(Clone, Copy)]
pub struct KeyDataRef<'a> {
    /// The type of the key (TGK, TGK+SALT, TEK, TEK+SALT).
    pub key_type: KeyDataType,
    /// The key.
    pub key: &'a [u8],
    /// KV interval (Valid From, Valid To); `None` is KV NULL.
    pub interval: Option<(&'a [u8], &'a [u8])>,
}

impl std::fmt::Debug for KeyDataRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyDataRef")
            .field("key_type", &self.key_type)
            .field("key", &"[REDACTED]")
            .field("interval", &self.interval)
            .finish()
    }
}

impl KeyDataRef<'_> {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        if self.key_type.0 > 0x0f || self.key_type.has_salt() {
            return Err(EncodeError::OutOfRange {
                field: "Key data type (no salt here)",
                value: self.key_type.0.into(),
            });
        }
        let kv = if self.interval.is_some() {
            KvType::INTERVAL
        } else {
            KvType::NULL
        };
        out.push(self.key_type.0 << 4 | kv.0);
        put_len16(out, "Key data", self.key.len())?;
        out.extend_from_slice(self.key);
        if let Some((from, to)) = self.interval {
            put_len8(out, "Valid From", from.len())?;
            out.extend_from_slice(from);
            put_len8(out, "Valid To", to.len())?;
            out.extend_from_slice(to);
        }
        Ok(())
    }
}
