//! The key a delivery carries: 16 octets (the SSV of SAKKE itself) or 32 octets (in a KEMAC
//! under keys derived from the SSV, `super::kemac`, docs/mcx.md §11.5).

use core::fmt;

use super::BuildError;
use crate::crypto::secret::secret_bytes;
use crate::ibe::Ssv;

secret_bytes!(
    /// A 256-bit key delivered in the KEMAC of an I_MESSAGE (docs/mcx.md §11.5).
    Key256,
    32
);

/// A key to deliver, or delivered: 128 bits (the SSV) or 256 bits (KEMAC). Zeroized on drop
/// (both arms are secret types), printed `[REDACTED]`, compared in constant time.
#[derive(Clone, PartialEq, Eq)]
pub enum DeliveryKey {
    /// 16 octets: SAKKE encapsulates the key itself as the SSV (RFC 6509).
    Bits128(Ssv),
    /// 32 octets: a fresh SSV is encapsulated and the key travels in a KEMAC under it.
    Bits256(Key256),
}

impl DeliveryKey {
    /// The key lengths a delivery carries: 16 and 32 octets.
    pub const LENGTHS: [usize; 2] = [Ssv::LEN, Key256::LEN];

    /// Copies a key of 16 or 32 octets.
    ///
    /// # Errors
    /// [`BuildError::KeyLength`] for any other length.
    pub fn from_slice(key: &[u8]) -> Result<Self, BuildError> {
        let wrong = |_| BuildError::KeyLength { len: key.len() };
        match key.len() {
            Ssv::LEN => Ssv::from_slice(key).map(Self::Bits128).map_err(wrong),
            Key256::LEN => Key256::from_slice(key).map(Self::Bits256).map_err(wrong),
            len => Err(BuildError::KeyLength { len }),
        }
    }

    /// The key's octets.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Bits128(k) => k.as_bytes(),
            Self::Bits256(k) => k.as_bytes(),
        }
    }

    /// Its length in octets (16 or 32).
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Never true: a key has 16 or 32 octets.
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl From<Ssv> for DeliveryKey {
    fn from(ssv: Ssv) -> Self {
        Self::Bits128(ssv)
    }
}

impl From<Key256> for DeliveryKey {
    fn from(key: Key256) -> Self {
        Self::Bits256(key)
    }
}

/// A 128-bit key equals the SSV of its octets (in constant time); a 256-bit key none.
impl PartialEq<Ssv> for DeliveryKey {
    fn eq(&self, other: &Ssv) -> bool {
        match self {
            Self::Bits128(k) => k == other,
            Self::Bits256(_) => false,
        }
    }
}

impl fmt::Debug for DeliveryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeliveryKey([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixteen_or_thirty_two_octets_only() {
        assert!(matches!(
            DeliveryKey::from_slice(&[1; 16]),
            Ok(DeliveryKey::Bits128(_))
        ));
        assert!(matches!(
            DeliveryKey::from_slice(&[1; 32]),
            Ok(DeliveryKey::Bits256(_))
        ));
        for len in [0, 15, 17, 24, 31, 33, 64] {
            assert_eq!(
                DeliveryKey::from_slice(&vec![1; len]),
                Err(BuildError::KeyLength { len })
            );
        }
        let k = DeliveryKey::from_slice(&[7; 32]).unwrap();
        assert_eq!(k.as_bytes(), &[7; 32]);
        assert_eq!(k.len(), 32);
        assert_eq!(format!("{k:?}"), "DeliveryKey([REDACTED])");
        assert_ne!(k, DeliveryKey::from_slice(&[8; 32]).unwrap());
    }
}
