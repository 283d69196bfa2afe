//! Mission-critical key management (TS 33.180 Annex D, docs/mcx.md): the KMS request and
//! response documents (`messages`), their TrK/InK transport protection (`transport`), the access
//! token a KMS checks (`token`), the routing and authorization of its HTTP requests without the
//! HTTP (`routes`), new TrK/InK offered and adopted (`rotation`), the bounded XML tree with its exclusive canonical form (`xml`), and the
//! client that requests, checks and stores key material (`client`).
//!
//! With feature `kms-server`, the KMS server itself (docs/mcx.md §9): its configuration
//! (`config`), store of master secrets and clients (`store`), key issuance (`issue`), the
//! request handling without the HTTP (`service`) and the hyper server (`server`).
//!
//! Key material (SSK, PVT, RSK, KPAK, Z) is handled here as opaque octet strings ([`Secret`] for
//! the secret ones); the ECCSI/SAKKE arithmetic that makes and checks it lives elsewhere.

use std::fmt;

use thiserror::Error;
use zeroize::Zeroizing;

pub mod client;
#[cfg(feature = "kms-server")]
pub mod config;
#[cfg(feature = "kms-server")]
pub mod issue;
pub mod messages;
pub mod rotation;
pub mod routes;
#[cfg(feature = "kms-server")]
pub mod server;
#[cfg(feature = "kms-server")]
pub mod service;
#[cfg(feature = "kms-server")]
pub mod store;
pub mod token;
pub mod transport;
pub mod xml;

/// Seconds since the Unix epoch, by the system clock (0 before it): the `now` of the KMS, its
/// client and the key relay.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The KMS interface namespace (TS 33.180 Annex D schema).
pub const NAMESPACE: &str = "urn:3gpp:ns:mcsecKMSInterface:1.0";
/// XML Schema instance (`xsi:type` selects the key content and the TrK/InK extension types).
pub const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";
/// XML Signature.
pub const DS_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
/// XML Encryption 1.0.
pub const XENC_NS: &str = "http://www.w3.org/2001/04/xmlenc#";
/// The namespace of this implementation's request extension elements (the TrK-ID and InK-ID a
/// client announces); see [`messages::KmsRequest`] and docs/mcx.md §2.
pub const EXT_NS: &str = "urn:mbms-keys:ns:mcsecKMSExt:1.0";

/// Longest KMS document read (a KmsKeyProv with a few key sets is a few kilobytes).
pub const MAX_DOCUMENT_LEN: usize = 256 * 1024;

/// A 32-bit TrK-ID or InK-ID (TS 33.180 Rel-17), written as eight hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub u32);

impl KeyId {
    /// Parses eight hex digits.
    ///
    /// # Errors
    /// [`KmsError::Structure`] when the text is not eight hex digits.
    pub fn parse(s: &str) -> Result<Self, KmsError> {
        if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(KmsError::Structure(format!(
                "key identifier {:?} is not eight hex digits",
                s.chars().take(20).collect::<String>()
            )));
        }
        u32::from_str_radix(s, 16)
            .map(Self)
            .map_err(|_| KmsError::Structure("key identifier out of range".into()))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// Secret octets of variable length (an SSK, an RSK, a PVT as delivered, a TrK or InK):
/// zeroized on drop, printed `Secret([REDACTED])`, compared in constant time.
#[derive(Clone)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Takes the octets.
    #[must_use]
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The octets.
    #[must_use]
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        crate::crypto::secret::ct_eq(&self.0, &other.0)
    }
}

impl Eq for Secret {}

/// Why a KMS document was refused. Never carries key material.
#[non_exhaustive]
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum KmsError {
    /// The document is larger than [`MAX_DOCUMENT_LEN`].
    #[error("document larger than {max} octets")]
    TooLarge {
        /// The bound.
        max: usize,
    },
    /// Not well-formed XML, or outside the reader's bounds.
    #[error("XML at offset {offset}: {message}")]
    Xml {
        /// Byte offset where the reader stopped.
        offset: u64,
        /// What was wrong.
        message: String,
    },
    /// Well-formed but not a KMS document of the schema (missing, unexpected or malformed
    /// element).
    #[error("not a valid KMS document: {0}")]
    Structure(String),
    /// The response is not signed but the client requires it.
    #[error("the response is not signed")]
    Unsigned,
    /// An algorithm this implementation does not accept.
    #[error("unsupported {what} algorithm {uri}")]
    UnsupportedAlgorithm {
        /// Which algorithm slot (canonicalization, signature, digest, transform, encryption).
        what: &'static str,
        /// The URI found.
        uri: String,
    },
    /// The signature names a key (Signature-ID) the trusted store does not hold.
    #[error("signature key {0} is not the trusted InK/TrK")]
    UnknownSignatureKey(String),
    /// The digest of the signed content does not match: the response was altered.
    #[error("signed content digest mismatch")]
    DigestMismatch,
    /// The signature value is wrong.
    #[error("signature value mismatch")]
    BadSignature,
    /// An encrypted key names a TrK the trusted store does not hold.
    #[error("{element}: encrypted under TrK-ID {found}, not the trusted one")]
    UnknownTransportKey {
        /// The key element.
        element: &'static str,
        /// The TrK-ID named in the response.
        found: String,
    },
    /// An encrypted key did not decrypt under the TrK.
    #[error("{element}: decryption failed")]
    Decrypt {
        /// The key element.
        element: &'static str,
    },
    /// Bound mode: the TrK-ID inside the encrypted content is not the trusted one.
    #[error("{element}: bound TrK-ID mismatch")]
    BoundTrkIdMismatch {
        /// The key element.
        element: &'static str,
    },
    /// Bound mode: the InK-ID inside the encrypted content is not the trusted one.
    #[error("{element}: bound InK-ID mismatch")]
    BoundInkIdMismatch {
        /// The key element.
        element: &'static str,
    },
    /// Bound mode: the new key's identifier inside the encrypted content is not the one its
    /// `CarriedKeyName` names (docs/mcx.md §3.4).
    #[error("{element}: bound identifier of the new key mismatch")]
    BoundNewKeyIdMismatch {
        /// The key element.
        element: &'static str,
    },
    /// New transport keys this client cannot adopt (more than one of a kind, not 32 octets,
    /// an identifier already in use; docs/mcx.md §3.4).
    #[error("new transport keys refused: {0}")]
    InvalidNewKey(String),
    /// The KMS answered with a KmsError.
    #[error("KMS error {code}: {message}")]
    Refused {
        /// ErrorCode.
        code: i64,
        /// ErrorMsg (from the peer, clipped).
        message: String,
    },
    /// A transport key of the store is not 256 bits.
    #[error("the TrK is not 32 octets")]
    TrkLength,
    /// No randomness for an IV.
    #[error("no randomness available")]
    Rng,
}
