//! The RTP fixed header and what follows it (RFC 3550 §5.1, §5.3.1), read only as far as the
//! SRTP sender needs: version, SSRC, sequence number and the header length (CSRCs and
//! extension included). Total: every input is either a header or a reason.

use thiserror::Error;

/// The largest RTP packet accepted from `rtp_input`: an Ethernet MTU, so that the SRTP packet
/// (MKI and tag added) still fits a datagram a receiver expects.
pub const MAX_RTP_PACKET: usize = 1500;

/// Why a datagram on `rtp_input` is not an RTP packet the sender protects.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RtpError {
    /// Fewer octets than the header (fixed part, CSRCs, extension) announces.
    #[error("truncated RTP header: {len} octets, {needed} needed")]
    Truncated {
        /// Octets received.
        len: usize,
        /// Octets the header needs.
        needed: usize,
    },
    /// The version field is not 2.
    #[error("RTP version {0}, not 2")]
    Version(u8),
    /// Larger than [`MAX_RTP_PACKET`].
    #[error("RTP packet of {0} octets is over the limit")]
    TooLong(usize),
    /// The padding count is zero or runs into the header (RFC 3550 §5.1, P bit).
    #[error("RTP padding count is invalid")]
    Padding,
}

/// The fields of an RTP header the SRTP sender uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Sequence number.
    pub seq: u16,
    /// Synchronization source.
    pub ssrc: u32,
    /// Octets of the header: 12, the CSRCs and the extension (its 4-octet head included).
    pub len: usize,
}

impl RtpHeader {
    /// Reads the header of `packet`.
    ///
    /// # Errors
    /// [`RtpError`] for anything but a well-formed RTP packet of at most [`MAX_RTP_PACKET`]
    /// octets.
    pub fn parse(packet: &[u8]) -> Result<Self, RtpError> {
        if packet.len() > MAX_RTP_PACKET {
            return Err(RtpError::TooLong(packet.len()));
        }
        let truncated = |needed| RtpError::Truncated {
            len: packet.len(),
            needed,
        };
        let Some((fixed, rest)) = packet.split_first_chunk::<12>() else {
            return Err(truncated(12));
        };
        let [b0, _, s0, s1, _, _, _, _, i0, i1, i2, i3] = *fixed;
        let version = b0 >> 6;
        if version != 2 {
            return Err(RtpError::Version(version));
        }
        let padded = b0 & 0x20 != 0;
        let extension = b0 & 0x10 != 0;
        let csrcs = usize::from(b0 & 0x0f) * 4;
        let mut len = 12 + csrcs;
        let rest = rest.get(csrcs..).ok_or_else(|| truncated(len))?;
        if extension {
            let Some((head, _)) = rest.split_first_chunk::<4>() else {
                return Err(truncated(len + 4));
            };
            let words = usize::from(u16::from_be_bytes([head[2], head[3]]));
            len += 4 + words * 4;
            if packet.len() < len {
                return Err(truncated(len));
            }
        }
        if padded {
            // The last octet counts the padding octets, itself included.
            let count = usize::from(packet.last().copied().unwrap_or(0));
            if count == 0 || packet.len() - len < count {
                return Err(RtpError::Padding);
            }
        }
        Ok(Self {
            seq: u16::from_be_bytes([s0, s1]),
            ssrc: u32::from_be_bytes([i0, i1, i2, i3]),
            len,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(b0: u8, tail: &[u8]) -> Vec<u8> {
        let mut p = vec![b0, 0x60, 0x12, 0x34, 0, 0, 0, 1, 0x11, 0x22, 0x33, 0x44];
        p.extend_from_slice(tail);
        p
    }

    #[test]
    fn a_plain_header_is_twelve_octets() {
        let h = RtpHeader::parse(&packet(0x80, b"payload")).unwrap();
        assert_eq!((h.seq, h.ssrc, h.len), (0x1234, 0x1122_3344, 12));
    }

    #[test]
    fn csrcs_and_the_extension_belong_to_the_header() {
        let mut tail = vec![0; 8]; // two CSRCs
        tail.extend_from_slice(&[0xbe, 0xde, 0, 1, 1, 2, 3, 4]); // one extension word
        tail.extend_from_slice(b"data");
        let h = RtpHeader::parse(&packet(0x92, &tail)).unwrap();
        assert_eq!(h.len, 12 + 8 + 4 + 4);
    }

    #[test]
    fn bad_input_is_refused_with_its_reason() {
        assert_eq!(
            RtpHeader::parse(&[0x80; 11]),
            Err(RtpError::Truncated {
                len: 11,
                needed: 12
            })
        );
        assert_eq!(
            RtpHeader::parse(&packet(0x40, b"x")),
            Err(RtpError::Version(1))
        );
        assert!(matches!(
            RtpHeader::parse(&packet(0x83, &[0; 4])),
            Err(RtpError::Truncated { needed: 24, .. })
        ));
        assert!(matches!(
            RtpHeader::parse(&packet(0x90, &[0xbe, 0xde, 0, 9])),
            Err(RtpError::Truncated { .. })
        ));
        assert_eq!(
            RtpHeader::parse(&packet(0xa0, &[1, 0])),
            Err(RtpError::Padding)
        );
        assert_eq!(
            RtpHeader::parse(&vec![0x80; MAX_RTP_PACKET + 1]),
            Err(RtpError::TooLong(MAX_RTP_PACKET + 1))
        );
        for n in 0..64 {
            let _ = RtpHeader::parse(&vec![0x9f; n]);
        }
    }
}
