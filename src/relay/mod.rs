//! The asynchronous key relay (docs/relay.md): a source device opens a transfer to a target
//! identity, posts a signed MIKEY-SAKKE I_MESSAGE for it, and the target fetches it later; the
//! relay checks the envelope's structure, its IDRr and its ECCSI signature, keeps it sealed at
//! rest, and never sees the key it carries (only the target's RSK opens the SAKKE payload).
//!
//! Modules: the device-side client (`client`), configuration (`config`), store of transfers, sealed envelopes and the audit log
//! (`store`), the envelope check (`envelope`), one request answered without the HTTP
//! (`service`) and the hyper server (`server`).

pub mod client;
pub mod config;
pub mod envelope;
pub mod server;
pub mod service;
pub mod store;

/// What a transfer carries (docs/relay.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// A group master key.
    Gmk,
    /// A private call key.
    Pck,
    /// A client server key.
    Csk,
}

impl Purpose {
    /// Its name in the API and the configuration.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Gmk => "gmk",
            Self::Pck => "pck",
            Self::Csk => "csk",
        }
    }

    /// The purpose named `s`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "gmk" => Some(Self::Gmk),
            "pck" => Some(Self::Pck),
            "csk" => Some(Self::Csk),
            _ => None,
        }
    }
}
