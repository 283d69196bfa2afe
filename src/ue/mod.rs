//! The UE side of TS 33.246 (the MGV-F/MGV-S role): a sans-IO [`Receiver`]
//! that applies MSK and MTK messages, and the tokio driver and HTTP client
//! around it.

mod events;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod mtk_table;
mod queue;
mod receiver;
pub mod serial;
mod srtp;
mod state;

pub use crate::crypto::StateKey;
pub use events::{DiscardReason, Event, MskInfo, Stats};
pub use mtk_table::{MAX_MTK_ENTRIES, MtkEntry, MtkTable};
pub use receiver::{
    DEFAULT_MISSED_KEY_HOLDOFF, MAX_LEARNED_GROUPS, MAX_PENDING, MAX_QUEUED_EVENTS, Receiver,
    ReceiverConfig, RequestLimits, RequestRate, StateError,
};
pub use srtp::SrtpPolicy;
pub use state::{MAX_MSKS, MSKS_PER_KEY_GROUP};
#[cfg(feature = "ue")]
pub mod driver;
pub mod gba_keys;
#[cfg(feature = "ue")]
pub mod http;
#[cfg(feature = "ue")]
pub mod multicast;
