//! The BM-SC (TS 33.246 4.2, 6.3): Key Request function (HTTP Digest registration,
//! deregistration and MSK requests) and Key Distribution function (MSK pushes under each UE's
//! MUK, MTK delivery under the MSK).
//!
//! - [`config`]: the TOML configuration, checked at start;
//! - [`store`]: the persistent state behind a trait, with the SQLite implementation;
//! - [`keycache`]: the store's GBA key cache in front of a network key source (Zn);
//! - [`media`]: the SRTP sender of streaming services;
//! - [`export`]: the key export for external encryptors (a local Unix socket);
//! - [`supervise`], [`health`], [`reload`], [`notify`]: supervision of the server's tasks,
//!   liveness and readiness, configuration reload on SIGHUP, systemd readiness notification.

pub mod config;
pub mod distribution;
pub mod events;
pub mod export;
pub mod health;
pub mod http;
pub mod keycache;
pub mod keyreq;
pub mod logthrottle;
pub mod media;
pub mod metrics;
pub mod mmsg;
pub mod notify;
pub mod reload;
pub mod server;
mod signals;
pub mod status;
pub mod store;
pub mod supervise;
pub mod udp;
