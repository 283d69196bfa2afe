//! Fixed-size secret key types (docs/architecture.md principle 6).
//!
//! Every key of the profile gets its own newtype so a MUK cannot be passed where an MSK is
//! expected. All of them zeroize on drop, print `Name([REDACTED])` under `Debug`, have no
//! `Display`, and compare in constant time.

use subtle::ConstantTimeEq;
use thiserror::Error;

/// A secret could not be built from the given octets or hex text.
///
/// Never carries the offending value, only its length.
#[non_exhaustive]
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum KeyLengthError {
    /// The input had the wrong number of octets.
    #[error("{name}: expected {expected} octets, got {actual}")]
    Length {
        /// The secret type being built.
        name: &'static str,
        /// Octets the type holds.
        expected: usize,
        /// Octets supplied.
        actual: usize,
    },
    /// The text was not an even-length string of hex digits.
    #[error("{name}: not a hex string")]
    Hex {
        /// The secret type being built.
        name: &'static str,
    },
}

/// Constant-time equality of two octet strings; `false` when the lengths differ.
///
/// For MAC and key comparison: the time taken depends only on the lengths, not on where the
/// first differing octet is.
#[must_use]
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Defines a fixed-size secret newtype over `[u8; $len]`.
///
/// The generated type zeroizes on drop, is `Clone`, has a redacted `Debug`, no `Display`,
/// and `PartialEq`/`Eq`/[`subtle::ConstantTimeEq`] in constant time.
macro_rules! secret_bytes {
    ($(#[$meta:meta])* $name:ident, $len:expr) => {
        $(#[$meta])*
        #[derive(Clone)]
        pub struct $name([u8; $len]);

        impl $name {
            /// Length of this secret in octets.
            pub const LEN: usize = $len;

            /// Takes ownership of the octets (the caller's copy, if any, is not wiped).
            #[must_use]
            pub fn from_bytes(b: [u8; $len]) -> Self {
                Self(b)
            }

            /// Copies the octets from a slice of exactly [`Self::LEN`] octets.
            ///
            /// # Errors
            /// [`KeyLengthError::Length`](crate::crypto::KeyLengthError::Length) when the slice
            /// has another length.
            pub fn from_slice(s: &[u8]) -> Result<Self, $crate::crypto::secret::KeyLengthError> {
                if s.len() != $len {
                    return Err($crate::crypto::secret::KeyLengthError::Length {
                        name: stringify!($name),
                        expected: $len,
                        actual: s.len(),
                    });
                }
                let mut out = Self([0u8; $len]);
                out.0.copy_from_slice(s);
                Ok(out)
            }

            /// Parses exactly `2 * LEN` hex digits (either case, no separators).
            ///
            /// # Errors
            /// [`KeyLengthError::Hex`](crate::crypto::KeyLengthError::Hex) for odd length or a
            /// non-hex digit, [`KeyLengthError::Length`](crate::crypto::KeyLengthError::Length) for
            /// the wrong number of octets.
            pub fn from_hex(s: &str) -> Result<Self, $crate::crypto::secret::KeyLengthError> {
                if s.len() % 2 != 0 {
                    return Err($crate::crypto::secret::KeyLengthError::Hex {
                        name: stringify!($name),
                    });
                }
                if s.len() / 2 != $len {
                    return Err($crate::crypto::secret::KeyLengthError::Length {
                        name: stringify!($name),
                        expected: $len,
                        actual: s.len() / 2,
                    });
                }
                // Decode straight into the zeroize-on-drop value: no plain copy is left behind.
                let mut out = Self([0u8; $len]);
                ::hex::decode_to_slice(s, &mut out.0).map_err(|_| {
                    $crate::crypto::secret::KeyLengthError::Hex {
                        name: stringify!($name),
                    }
                })?;
                Ok(out)
            }

            /// A fresh value from the operating system's random generator.
            ///
            /// # Errors
            /// When the OS generator fails.
            pub fn try_random() -> Result<Self, ::getrandom::Error> {
                let mut out = Self([0u8; $len]);
                ::getrandom::fill(&mut out.0)?;
                Ok(out)
            }

            /// A fresh value from the operating system's random generator.
            ///
            /// # Panics
            /// Only when the OS generator fails, which no input can cause; use
            /// [`Self::try_random`] to handle that case.
            #[must_use]
            pub fn random() -> Self {
                match Self::try_random() {
                    Ok(v) => v,
                    Err(e) => panic!("operating system random generator failed: {e}"),
                }
            }

            /// The secret octets.
            #[must_use]
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Builds the value in place, so derivations write straight into zeroized storage.
            #[allow(dead_code)]
            pub(crate) fn from_fn(fill: impl FnOnce(&mut [u8; $len])) -> Self {
                let mut out = Self([0u8; $len]);
                fill(&mut out.0);
                out
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                ::zeroize::Zeroize::zeroize(&mut self.0);
            }
        }

        impl ::zeroize::ZeroizeOnDrop for $name {}

        impl ::core::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(concat!(stringify!($name), "([REDACTED])"))
            }
        }

        impl ::subtle::ConstantTimeEq for $name {
            fn ct_eq(&self, other: &Self) -> ::subtle::Choice {
                self.0[..].ct_eq(&other.0[..])
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                bool::from(::subtle::ConstantTimeEq::ct_eq(self, other))
            }
        }

        impl Eq for $name {}
    };
}

/// Lets other modules of the crate define further secret types the same way.
#[allow(unused_imports)]
pub(crate) use secret_bytes;

secret_bytes!(
    /// MBMS User Key: GBA_ME Ks_NAF, GBA_U Ks_int_NAF (docs/profile.md §1, TS 33.220 G.2).
    Muk,
    32
);
secret_bytes!(
    /// MBMS Request Key, the HTTP Digest password source (docs/profile.md §1, §4).
    Mrk,
    32
);
secret_bytes!(
    /// MBMS Service Key, the PSK of MTK messages (docs/profile.md §1).
    Msk,
    16
);
secret_bytes!(
    /// MBMS Traffic Key, the TEK handed to the media client (docs/profile.md §1).
    Mtk,
    16
);
secret_bytes!(
    /// The 14-octet MTK salt, the SRTP master salt in streaming (docs/profile.md §1, §2.3).
    Salt,
    14
);
secret_bytes!(
    /// GBA master key Ks = CK ‖ IK (TS 33.220 B.3).
    Ks,
    32
);
secret_bytes!(
    /// Ks_NAF for GBA_ME (TS 33.220 B.3, "gba-me").
    KsNaf,
    32
);
secret_bytes!(
    /// Ks_ext_NAF for GBA_U: the same formula as Ks_NAF (TS 33.220 B.3, "gba-me").
    KsExtNaf,
    32
);
secret_bytes!(
    /// Ks_int_NAF for GBA_U, kept in the UICC (TS 33.220 B.3, "gba-u").
    KsIntNaf,
    32
);
secret_bytes!(
    /// KAF, the AKMA application key of one AF (TS 33.535 A.4); the MUK of 5G MBS with AKMA
    /// (TS 33.501 Annex W, docs/key-sources-5g.md).
    Kaf,
    32
);
secret_bytes!(
    /// RFC 3830 §4.1.4 encryption key: the AES-CM-128 key of the KEMAC (§4.2.3).
    EncKey,
    16
);
secret_bytes!(
    /// RFC 3830 §4.1.4 salting key: the 112-bit S of the AES-CM IV (§4.2.3).
    SaltKey,
    14
);
secret_bytes!(
    /// RFC 3830 §4.1.4 authentication key: HMAC-SHA-1-160 keys are 160 bits (§4.2.4).
    AuthKey,
    20
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_eq_is_false_on_length_mismatch() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(ct_eq(b"", b""));
    }

    #[test]
    fn from_hex_checks_length_and_digits() {
        let k = Msk::from_hex("B0b1b2b3b4b5b6b7b8b9babbbcbdbebf").expect("valid");
        assert_eq!(k.as_bytes()[0], 0xb0);
        assert_eq!(
            Msk::from_hex("b0b1"),
            Err(KeyLengthError::Length {
                name: "Msk",
                expected: 16,
                actual: 2
            })
        );
        assert_eq!(
            Msk::from_hex("b0b"),
            Err(KeyLengthError::Hex { name: "Msk" })
        );
        assert_eq!(
            Msk::from_hex("zzb1b2b3b4b5b6b7b8b9babbbcbdbebf"),
            Err(KeyLengthError::Hex { name: "Msk" })
        );
    }

    #[test]
    fn error_message_never_holds_the_value() {
        let err = Muk::from_hex("deadbeef").expect_err("short");
        let text = err.to_string();
        assert!(text.contains("32") && text.contains('4'));
        assert!(!text.contains("deadbeef"));
    }

    #[test]
    fn from_slice_checks_length() {
        assert!(AuthKey::from_slice(&[7; 20]).is_ok());
        assert!(AuthKey::from_slice(&[7; 21]).is_err());
        assert_eq!(AuthKey::LEN, 20);
    }

    #[test]
    fn equality_is_by_value() {
        assert_eq!(Mtk::from_bytes([1; 16]), Mtk::from_bytes([1; 16]));
        assert_ne!(Mtk::from_bytes([1; 16]), Mtk::from_bytes([2; 16]));
    }

    #[test]
    fn random_values_differ() {
        assert_ne!(Muk::random(), Muk::random());
    }

    #[test]
    fn debug_is_redacted() {
        assert_eq!(
            format!("{:?}", SaltKey::from_bytes([0xab; 14])),
            "SaltKey([REDACTED])"
        );
    }
}
