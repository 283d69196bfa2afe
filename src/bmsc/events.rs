//! What the Key Request function tells the Key Distribution function, once
//! the change is durable in the store (TS 33.246 6.3.2.1A, 6.3.2.1B, 6.3.2.2).

use std::net::IpAddr;

use crate::gba::Btid;
use crate::mikey::{KeyDomainId, MskId};

/// A Key Request outcome that needs MSK messages pushed to the UE.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRequestEvent {
    /// The UE was registered to these services (answered 200 per service):
    /// push the current MSK(s) of each.
    Registered {
        /// The B-TID the UE authenticated with.
        btid: Btid,
        /// The UE's address, where the MSK messages go (the Key Request's peer).
        ue_addr: IpAddr,
        /// The MBMS User Service IDs registered.
        service_ids: Vec<String>,
    },
    /// The UE was deregistered from `removed` and is still registered to
    /// `remaining`: invalidate every MSK of `removed` that no service of
    /// `remaining` uses.
    Deregistered {
        /// The B-TID the UE authenticated with.
        btid: Btid,
        /// The UE's address, where the invalidating MSK messages go.
        ue_addr: IpAddr,
        /// The MBMS User Service IDs deregistered.
        removed: Vec<String>,
        /// The MBMS User Service IDs the UE is still registered to.
        remaining: Vec<String>,
    },
    /// The UE asked for these MSKs (each answered 200): push them; Key
    /// Number 0 means the current MSK of the Key Group.
    MskRequested {
        /// The B-TID the UE authenticated with.
        btid: Btid,
        /// The UE's address, where the MSK messages go.
        ue_addr: IpAddr,
        /// The MSKs asked for, by Key Domain ID and MSK ID.
        msks: Vec<(KeyDomainId, MskId)>,
    },
}
