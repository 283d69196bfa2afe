//! mbms-keys: MBMS key delivery after 3GPP TS 33.246.
//!
//! Layers, each depending only on the ones above it in this list:
//! - [`mikey`]: the RFC 3830 / RFC 4563 wire codec (no crypto, no I/O);
//! - [`crypto`]: MIKEY PRF, KEMAC protection, the TS 33.220 KDF and secret types;
//! - [`ibe`] (feature `mcx`): ECCSI (RFC 6507), SAKKE (RFC 6508) and UID format 2 (TS 33.180);
//! - [`gba`]: NAF_Id, B-TID and the MUK/MRK derivations;
//! - [`diameter`]: the RFC 6733 message and AVP codec with the Zn (TS 29.109) numbers (no I/O);
//! - [`mbms`]: the profile of `docs/profile.md`: identifiers, message builders and verifiers;
//! - `kms` (feature `mcx`): the TS 33.180 Annex D KMS documents, their TrK/InK protection and
//!   the access token (docs/mcx.md);
//! - `mcx` (feature `mcx`): MIKEY-SAKKE key delivery, the I_MESSAGE builder and verifier
//!   (docs/mcx.md §11).
#![forbid(unsafe_code)]

#[cfg(feature = "bmsc")]
pub mod bmsc;
pub mod crypto;
pub mod diameter;
pub mod duration;
pub mod files;
pub mod gba;
#[cfg(feature = "mcx")]
pub mod ibe;
#[cfg(feature = "mcx")]
pub mod kms;
pub mod mbms;
#[cfg(feature = "mcx")]
pub mod mcx;
pub mod mikey;
#[cfg(feature = "relay")]
pub mod relay;
#[cfg(feature = "bmsc")]
pub mod telemetry;
pub mod ue;
