//! The \[CHOICE\]s of the MIKEY-SAKKE I_MESSAGE, in one place (docs/mcx.md §11.4,
//! docs/profile.md §6). Where TS 33.180 was not at hand, the values are those of the
//! Streamwide messages of `proto-vectors/streamwide-mikey-sakke.json`.

use std::time::Duration;

use crate::mikey::IdType;

/// How far T may lie from the verifier's clock, before or after (RFC 3830 §5.4 leaves the
/// allowed clock skew to the profile): five minutes. \[CHOICE\] docs/mcx.md §11.4.
pub const FRESHNESS_WINDOW: Duration = Duration::from_secs(300);

/// The most messages a [`super::ReplayCache`] remembers; the oldest is forgotten beyond it,
/// and every message not newer than a forgotten one is refused. \[CHOICE\] docs/mcx.md §11.4.
pub const REPLAY_CAPACITY: usize = 4096;

/// The CS ID of the GENERIC-ID map entry of a GMK delivery. \[CHOICE\] docs/mcx.md §11.4: the
/// value the Streamwide GMK message carries (its meaning in TS 33.180 was not confirmed).
pub const GMK_CS_ID: u8 = 4;

/// The CS ID of the GENERIC-ID map entry of a CSK delivery. \[CHOICE\] as [`GMK_CS_ID`].
pub const CSK_CS_ID: u8 = 6;

/// The ID type of the IDR payloads, UIDs (roles 8, 9) and KMS URIs (roles 6, 7) alike: URI.
/// \[CHOICE\] docs/mcx.md §11.4: what the Streamwide messages carry, even for the binary UID.
pub const IDR_ID_TYPE: IdType = IdType::URI;

/// The length of RAND. \[CHOICE\] docs/mcx.md §11.4: 16 octets, as in the Streamwide messages
/// (RFC 3830 §6.11 asks for at least 128 bits).
pub const RAND_LEN: usize = 16;
