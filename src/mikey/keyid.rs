//! The MBMS key identifiers carried in the RFC 4563 Key ID extension
//! (TS 33.246 6.3.2.1, 6.3.3.1; docs/profile.md §1), displayed and parsed as hex.

use std::fmt;
use std::str::FromStr;

/// Why a hex identifier did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} must be {digits} hex digits, got {got:?}")]
pub struct IdParseError {
    what: &'static str,
    digits: usize,
    got: String,
}

fn parse_hex<const N: usize>(what: &'static str, s: &str) -> Result<[u8; N], IdParseError> {
    let err = || IdParseError {
        what,
        digits: 2 * N,
        got: s.chars().take(32).collect(),
    };
    let s = s.trim();
    let s = s.strip_prefix("0x").unwrap_or(s);
    if s.len() != 2 * N {
        return Err(err());
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).map_err(|_| err())?;
    Ok(out)
}

/// Key Domain ID: MCC ‖ MNC, 3 octets (TS 33.246 6.3.2.1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyDomainId(pub [u8; 3]);

impl KeyDomainId {
    /// Its length on the wire, in octets.
    pub const LEN: usize = 3;
}

impl fmt::Display for KeyDomainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyDomainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyDomainId({self})")
    }
}

impl FromStr for KeyDomainId {
    type Err = IdParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_hex("Key Domain ID", s).map(Self)
    }
}

/// MSK ID: Key Group (octets 0–1) ‖ Key Number (octets 2–3) (TS 33.246 6.3.2.1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MskId {
    /// The Key Group: the MSKs of one service share it.
    pub key_group: u16,
    /// The Key Number within the Key Group.
    pub key_number: u16,
}

impl MskId {
    /// Its length on the wire, in octets.
    pub const LEN: usize = 4;

    /// The MSK ID of Key Group `key_group` and Key Number `key_number`.
    pub fn new(key_group: u16, key_number: u16) -> Self {
        Self {
            key_group,
            key_number,
        }
    }

    /// The MSK ID whose 4 octets are `v`, big-endian.
    pub fn from_u32(v: u32) -> Self {
        Self::new((v >> 16) as u16, v as u16)
    }

    /// The 4 octets as a big-endian number.
    pub fn to_u32(self) -> u32 {
        u32::from(self.key_group) << 16 | u32::from(self.key_number)
    }

    /// The 4 octets as on the wire.
    pub fn to_bytes(self) -> [u8; 4] {
        self.to_u32().to_be_bytes()
    }

    /// The MSK ID of the 4 octets as on the wire.
    pub fn from_bytes(b: [u8; 4]) -> Self {
        Self::from_u32(u32::from_be_bytes(b))
    }

    /// Key Number 0 means "the current MSK" in requests and marks a
    /// solicited pull in pushes (TS 33.246 6.3.2.1A, 6.3.2.2.4).
    pub fn is_current(self) -> bool {
        self.key_number == 0
    }
}

impl fmt::Display for MskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.to_u32())
    }
}

impl fmt::Debug for MskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MskId({self})")
    }
}

impl FromStr for MskId {
    type Err = IdParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_hex("MSK ID", s).map(Self::from_bytes)
    }
}

/// MTK ID, 2 octets [CHOICE: width, docs/profile.md §1].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MtkId(pub u16);

impl MtkId {
    /// Its length on the wire, in octets.
    pub const LEN: usize = 2;
}

impl fmt::Display for MtkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}", self.0)
    }
}

impl fmt::Debug for MtkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MtkId({self})")
    }
}

impl FromStr for MtkId {
    type Err = IdParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_hex::<2>("MTK ID", s).map(|b| Self(u16::from_be_bytes(b)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_display_and_parse_as_hex() {
        let kd: KeyDomainId = "00f110".parse().unwrap();
        assert_eq!(kd.0, [0x00, 0xf1, 0x10]);
        assert_eq!(kd.to_string(), "00f110");
        let msk: MskId = "00010002".parse().unwrap();
        assert_eq!((msk.key_group, msk.key_number), (1, 2));
        assert_eq!(msk.to_string(), "00010002");
        assert!("00010000".parse::<MskId>().unwrap().is_current());
        let mtk: MtkId = "0x0003".parse().unwrap();
        assert_eq!(mtk, MtkId(3));
        assert_eq!(mtk.to_string(), "0003");
    }

    #[test]
    fn ids_reject_wrong_width_and_non_hex() {
        assert!("00f1".parse::<KeyDomainId>().is_err());
        assert!("0001000".parse::<MskId>().is_err());
        assert!("zz".parse::<MtkId>().is_err());
        assert!("000g".parse::<MtkId>().is_err());
    }
}
