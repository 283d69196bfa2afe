//! The work items of a shared MSK fan-out (docs/cluster.md "Shared fan-out"): on a store
//! shared by several BM-SC nodes, the owner of an MSK group splits the push of a new MSK into
//! ranges of registrations, which every live node claims, pushes and closes.

use std::time::Duration;

use crate::gba::Btid;
use crate::mikey::{KeyDomainId, MskId};

/// One range of the registrations of one service to push an MSK to: the B-TIDs after
/// `after` (all when `None`) up to and including `until` (to the last when `None`), in
/// octet order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanoutItem {
    /// Key Domain ID of the MSK.
    pub key_domain: KeyDomainId,
    /// The MSK to push.
    pub msk_id: MskId,
    /// Number of the item within the fan-out of this MSK.
    pub item: u32,
    /// The service whose registrations it covers.
    pub service_id: String,
    /// Exclusive lower bound.
    pub after: Option<Btid>,
    /// Inclusive upper bound.
    pub until: Option<Btid>,
    /// Claims of the item so far, this one included: above 1, a node before this one held it
    /// (its lease ran out), and the UEs that acknowledged are skipped.
    pub claims: u32,
}

/// How the work items of one MSK fan-out stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FanoutProgress {
    /// Items of the fan-out.
    pub items: u64,
    /// Items whose first pushes have not all been sent yet.
    pub unsent: u64,
    /// Items not closed yet (pushes neither acknowledged nor given up).
    pub open: u64,
}

/// One acknowledged MSK push: (Key Domain ID, MSK ID, B-TID).
pub type AckedPush = (KeyDomainId, MskId, String);

/// A claim of a node on work items: who claims and for how long.
#[derive(Debug, Clone, Copy)]
pub struct Lease<'a> {
    /// The node's name in the store (unique per process).
    pub node: &'a str,
    /// How long the claim holds without renewal.
    pub duration: Duration,
}

/// An acknowledgement received by a node that sent no push with its counter, recorded
/// unverified for the node that did (docs/profile.md §6 \[CHOICE\] "acknowledgements in a
/// cluster").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignAck {
    /// Counter (T payload) of the acknowledged message.
    pub counter: u32,
    /// Who sent it.
    pub from: std::net::SocketAddr,
    /// The acknowledgement as received (at most [`FOREIGN_ACK_MAX_LEN`] octets).
    pub bytes: Vec<u8>,
}

/// Longest acknowledgement recorded for another node (one is under 100 octets).
pub const FOREIGN_ACK_MAX_LEN: usize = 128;
