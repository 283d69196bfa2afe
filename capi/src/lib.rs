//! The C ABI of mbms-keys (header `include/mbms_keys.h`, generated from this crate).
//!
//! Two levels: the sans-IO receiver (`mbms_receiver_*`: the application owns sockets, clock and
//! event loop) and the driver (`mbms_client_*`: the library owns them). Conventions
//! (docs/c-api.md): opaque handles with `_new`/`_free`, `mbms_result` codes (a `uint32_t`, never
//! a Rust enum) named by `mbms_result_name`, every pointer checked for NULL, no panic crosses the
//! boundary, key material only in caller buffers. This crate is the only one of the project
//! with `unsafe`; every block carries a `// SAFETY:` comment.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod client;
pub mod event;
pub mod key;
pub mod receiver;
pub mod result;

pub use client::*;
pub use event::*;
pub use key::*;
pub use receiver::*;
pub use result::*;
