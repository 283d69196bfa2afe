//! The MBMS profile of `docs/profile.md`: identifiers, and builders and verifiers
//! for exactly its messages (MSK delivery, MSK acknowledgement, MTK delivery).
//!
//! Verification always goes structure → MAC → decrypt: a typed message
//! ([`MskMessage`], [`MtkMessage`], [`AckMessage`]) exists only once its MAC
//! has verified; before that the input stays in an `Unverified*` type that
//! exposes only what is needed to find the key and check replay.
// No panic in non-test code (clippy.toml allows these in tests):
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![deny(clippy::indexing_slicing, clippy::panic)]

mod ack;
pub mod digest;
mod error;
pub mod inspect;
pub mod keyreq;
mod msk;
mod mtk;
pub mod profile;
mod protect;
mod shape;

pub use ack::{AckContext, AckMessage, UnverifiedAck, build_ack};
pub use error::{BuildError, MessageError};
pub use msk::{
    MskDelivery, MskMessage, MskUpdate, PreparedMuk, UnverifiedMsk, build_msk, build_msk_prepared,
    build_msk_with,
};
pub use mtk::{MtkDelivery, MtkKeys, MtkMessage, Streaming, UnverifiedMtk, build_mtk};

pub use crate::mikey::{KeyDomainId, MskId, MtkId};

/// MUK ID = IDi ‖ IDr (docs/profile.md §1 \[CHOICE\]): the BM-SC FQDN and the B-TID.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MukId {
    /// IDi: the BM-SC FQDN.
    pub idi: Vec<u8>,
    /// IDr: the B-TID.
    pub idr: Vec<u8>,
}

impl MukId {
    /// The MUK ID of these IDi and IDr data.
    pub fn new(idi: &[u8], idr: &[u8]) -> Self {
        Self {
            idi: idi.to_vec(),
            idr: idr.to_vec(),
        }
    }
}

impl std::fmt::Debug for MukId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MukId({} | {})",
            String::from_utf8_lossy(&self.idi),
            String::from_utf8_lossy(&self.idr)
        )
    }
}
