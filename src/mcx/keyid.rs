//! Key purposes and identifiers of TS 33.180 key delivery: the purpose tag in the 4 most
//! significant bits of a key ID, and the GUK-ID that stands for a GMK-ID on the wire.

use std::fmt;
use std::str::FromStr;

use crate::crypto::kdf;

/// What a delivered key is for, as the purpose tag of its key ID says (TS 33.180 §5 key
/// identifiers: the 4 most significant bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyPurpose {
    /// Group Master Key (purpose tag 0).
    Gmk,
    /// Private Call Key (purpose tag 1).
    Pck,
    /// Client-Server Key (purpose tag 2).
    Csk,
}

impl KeyPurpose {
    /// The purpose tag: the 4 most significant bits of the key ID.
    pub const fn tag(self) -> u8 {
        match self {
            Self::Gmk => 0,
            Self::Pck => 1,
            Self::Csk => 2,
        }
    }

    /// The purpose tag of `key_id`.
    pub const fn tag_of(key_id: u32) -> u8 {
        (key_id >> 28) as u8
    }

    /// The purpose `key_id` is tagged with; `None` for a tag other than GMK, PCK or CSK.
    pub const fn of_key_id(key_id: u32) -> Option<Self> {
        match Self::tag_of(key_id) {
            0 => Some(Self::Gmk),
            1 => Some(Self::Pck),
            2 => Some(Self::Csk),
            _ => None,
        }
    }

    /// The lower-case name (`gmk`, `pck`, `csk`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Gmk => "gmk",
            Self::Pck => "pck",
            Self::Csk => "csk",
        }
    }
}

impl fmt::Display for KeyPurpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KeyPurpose {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "gmk" => Ok(Self::Gmk),
            "pck" => Ok(Self::Pck),
            "csk" => Ok(Self::Csk),
            _ => Err(format!("unknown key purpose {s:?}: gmk, pck or csk")),
        }
    }
}

/// FC of the GUK-ID derivation (TS 33.180 F.1.3, KDF of TS 33.220 Annex B).
const FC_GUK_ID: u8 = 0x50;

/// The GUK-ID that hides the GMK-ID `gmk_id` in a GMK delivery to `receiver_uri`
/// (TS 33.180 F.1.3): GMK-ID XOR the 28 least significant bits of KDF(GMK, FC 0x50,
/// P0 = the receiver's MC ID). The purpose tag stays. Checked against the Streamwide GMK
/// message (`tests/mikey_sakke_message.rs`). `gmk` is the GMK's octets (16, or 32 for a key in
/// a KEMAC). `None` for a URI over 65535 octets.
pub fn guk_id(gmk: &[u8], gmk_id: u32, receiver_uri: &str) -> Option<u32> {
    let out = kdf(gmk, FC_GUK_ID, &[receiver_uri.as_bytes()]).ok()?;
    let (_, tail) = out.split_last_chunk::<4>()?;
    Some(gmk_id ^ (u32::from_be_bytes(*tail) & 0x0fff_ffff))
}
