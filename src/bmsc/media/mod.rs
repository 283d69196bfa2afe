//! SRTP protection of the streaming services' media (docs/profile.md §2.4; RFC 3711): plain
//! RTP from the content provider in, SRTP under the service's current MTK out, each packet's
//! MKI naming its key (MSK ID ‖ MTK ID).
//!
//! - [`rtp`]: the RTP header as far as the sender reads it (RFC 3550 §5.1);
//! - [`protector`]: the sans-IO [`Protector`] (keys, index and rollover counter, the SRTP
//!   transform);
//! - [`driver`]: its tokio driver (sockets, multicast options, key hand-over, metrics).
//!
//! The keys come from the Key Distribution function through
//! [`CurrentMtks`](crate::bmsc::distribution::CurrentMtks): an MTK protects media once it is
//! current and its MTK message has gone out `key_lead` times; the sender reports the stream's
//! rollover counter back for the SRTP-ID map of the next MTK message.

pub mod driver;
pub mod protector;
pub mod rtp;

pub use protector::{MediaError, Protector, estimate_index};
pub use rtp::{MAX_RTP_PACKET, RtpError, RtpHeader};
