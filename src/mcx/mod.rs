//! MIKEY-SAKKE key delivery (RFC 6509, TS 33.180): the I_MESSAGE that carries a GMK, PCK or CSK
//! to one user, SAKKE-encapsulated to the receiver's UID and ECCSI-signed by the sender
//! (docs/mcx.md §11).
//!
//! Profile layer (docs/architecture.md §3): it writes and reads messages with [`crate::mikey`]
//! and does their cryptography with [`crate::ibe`] and [`crate::crypto`]. Sans-IO: the time is
//! an argument, randomness is injected, the replay cache is a plain value.
// No panic in non-test code (clippy.toml allows these in tests):
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![deny(clippy::indexing_slicing, clippy::panic)]

mod build;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod kemac;
mod key;
mod keyid;
pub mod profile;
mod replay;
mod time;
mod verify;

pub use build::{BuildError, KeyDelivery, Signer, Unsigned, assemble, build_i_message};
pub use key::{DeliveryKey, Key256};
pub use keyid::{KeyPurpose, guk_id};
pub use replay::ReplayCache;
pub use time::{ntp_seconds, ntp_timestamp, ntp_to_system};
pub use verify::{DeliveredKey, Expect, Receiver, Refusal, UnverifiedIMessage, verify_i_message};
