//! MGV-S persistence: the whole key state (MUKs with their counters, MSKs
//! with interval, SEQs, counter, SP and installation order) as JSON, sealed
//! with [`crate::crypto::at_rest`]. Pending requests and hold-offs are not
//! state: they are not saved. Counters never go back: a restore holds exactly
//! the counters of its snapshot.

use std::io;

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::crypto::at_rest::{self, AtRestError, StateKey};
use crate::crypto::{Msk, Muk, Random};
use crate::mbms::{KeyDomainId, MskId, MtkKeys, MukId, profile};
use crate::mikey::{PolicyParam, ProtType, SecurityPolicy};

use super::super::state::{MAX_MSKS, MSKS_PER_KEY_GROUP, MskEntry, MskStore, MukEntry, MukSlots};
use super::{Receiver, ReceiverConfig};

/// The snapshot format this code writes and reads.
const FORMAT: u32 = 1;

/// Why a state blob was refused. Never carries content of the blob.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// Not sealed under this key (foreign, tampered, truncated).
    #[error("state blob: {0}")]
    Sealed(#[from] AtRestError),
    /// It opened, but is not a receiver state.
    #[error("state blob does not hold a receiver state")]
    Format,
    /// A receiver state of another format version.
    #[error("state format version {0} is not supported")]
    Version(u32),
    /// A receiver state that breaks the receiver's invariants.
    #[error("state is inconsistent: {0}")]
    Inconsistent(&'static str),
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    format: u32,
    current: Option<MukRecord>,
    previous: Option<MukRecord>,
    msks: Vec<MskRecord>,
    next_install: u64,
}

#[derive(Serialize, Deserialize)]
struct MukRecord {
    idi: Vec<u8>,
    idr: Vec<u8>,
    key: [u8; Muk::LEN],
    counter: Option<u32>,
}

#[derive(Serialize, Deserialize)]
struct MskRecord {
    key_domain_id: [u8; KeyDomainId::LEN],
    msk_id: u32,
    key: [u8; Msk::LEN],
    seql: u16,
    sequ: u16,
    seqs: u16,
    counter: Option<u32>,
    installed: u64,
    sp: Option<SpRecord>,
}

#[derive(Serialize, Deserialize)]
struct SpRecord {
    policy_no: u8,
    prot_type: u8,
    params: Vec<(u8, Vec<u8>)>,
}

impl Drop for MukRecord {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl Drop for MskRecord {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

/// Counts octets, so the JSON can be written into a buffer that never
/// reallocates (no stray copy of key material in freed memory).
struct Count(usize);

impl io::Write for Count {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 = self.0.saturating_add(buf.len());
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Receiver {
    /// The whole key state, serialised and sealed under `key`.
    #[must_use]
    pub fn save(&self, key: &StateKey) -> Vec<u8> {
        let snap = Snapshot {
            format: FORMAT,
            current: self.muks.current.as_ref().map(muk_record),
            previous: self.muks.previous.as_ref().map(muk_record),
            msks: self
                .msks
                .map
                .iter()
                .map(|(&(kd, id), e)| msk_record(kd, id, e))
                .collect(),
            next_install: self.msks.next_install,
        };
        let mut count = Count(0);
        // Serialising plain data into a writer that cannot fail cannot fail.
        let _ = serde_json::to_writer(&mut count, &snap);
        let mut json = Zeroizing::new(Vec::with_capacity(count.0));
        let _ = serde_json::to_writer(&mut *json, &snap);
        at_rest::seal(key, &json)
    }

    /// A receiver with the state of a blob made by [`Receiver::save`].
    ///
    /// # Errors
    /// [`StateError`] for a blob sealed under another key, altered, or not
    /// holding a consistent receiver state.
    pub fn restore(
        config: ReceiverConfig,
        rng: Box<dyn Random>,
        key: &StateKey,
        blob: &[u8],
    ) -> Result<Self, StateError> {
        let json = at_rest::open(key, blob)?;
        let snap: Snapshot = serde_json::from_slice(&json).map_err(|_| StateError::Format)?;
        if snap.format != FORMAT {
            return Err(StateError::Version(snap.format));
        }
        let muks = MukSlots {
            current: snap.current.as_ref().map(muk_entry).transpose()?,
            previous: snap.previous.as_ref().map(muk_entry).transpose()?,
        };
        if let (Some(c), Some(p)) = (&muks.current, &muks.previous)
            && c.id == p.id
        {
            return Err(StateError::Inconsistent(
                "current and previous MUK share an ID",
            ));
        }
        if muks.current.is_none() && muks.previous.is_some() {
            return Err(StateError::Inconsistent(
                "a previous MUK without a current one",
            ));
        }
        let msks = msk_store(&snap)?;
        Ok(Self::with_state(config, rng, muks, msks))
    }
}

fn muk_record(e: &MukEntry) -> MukRecord {
    MukRecord {
        idi: e.id.idi.clone(),
        idr: e.id.idr.clone(),
        key: *e.muk.as_bytes(),
        counter: e.counter,
    }
}

fn muk_entry(r: &MukRecord) -> Result<MukEntry, StateError> {
    Ok(MukEntry {
        id: MukId::new(&r.idi, &r.idr),
        muk: Muk::from_slice(&r.key).map_err(|_| StateError::Format)?,
        counter: r.counter,
    })
}

fn msk_record(kd: KeyDomainId, id: MskId, e: &MskEntry) -> MskRecord {
    MskRecord {
        key_domain_id: kd.0,
        msk_id: id.to_u32(),
        key: *e.keys.msk().as_bytes(),
        seql: e.seql,
        sequ: e.sequ,
        seqs: e.seqs,
        counter: e.counter,
        installed: e.installed,
        sp: e.sp.as_ref().map(|sp| SpRecord {
            policy_no: sp.policy_no,
            prot_type: sp.prot_type.0,
            params: sp
                .params
                .iter()
                .map(|p| (p.param_type, p.value.clone()))
                .collect(),
        }),
    }
}

fn msk_store(snap: &Snapshot) -> Result<MskStore, StateError> {
    if snap.msks.len() > MAX_MSKS {
        return Err(StateError::Inconsistent(
            "more MSKs than the receiver holds",
        ));
    }
    let mut store = MskStore {
        next_install: snap.next_install,
        ..MskStore::default()
    };
    for r in &snap.msks {
        let kd = KeyDomainId(r.key_domain_id);
        let msk_id = MskId::from_u32(r.msk_id);
        if msk_id.is_current() {
            return Err(StateError::Inconsistent("an MSK stored under Key Number 0"));
        }
        if r.installed >= snap.next_install {
            return Err(StateError::Inconsistent(
                "installation order ahead of its counter",
            ));
        }
        let in_group = store
            .map
            .keys()
            .filter(|(d, id)| *d == kd && id.key_group == msk_id.key_group)
            .count();
        if in_group >= MSKS_PER_KEY_GROUP {
            return Err(StateError::Inconsistent(
                "more than two MSKs in a key group",
            ));
        }
        let msk = Msk::from_slice(&r.key).map_err(|_| StateError::Format)?;
        let entry = MskEntry {
            keys: MtkKeys::new(&msk, profile::csb_id_for(msk_id)),
            seql: r.seql,
            sequ: r.sequ,
            seqs: r.seqs,
            counter: r.counter,
            installed: r.installed,
            sp: r.sp.as_ref().map(|sp| SecurityPolicy {
                policy_no: sp.policy_no,
                prot_type: ProtType(sp.prot_type),
                params: sp
                    .params
                    .iter()
                    .map(|(t, v)| PolicyParam {
                        param_type: *t,
                        value: v.clone(),
                    })
                    .collect(),
            }),
        };
        if store.map.insert((kd, msk_id), entry).is_some() {
            return Err(StateError::Inconsistent("an MSK stored twice"));
        }
    }
    Ok(store)
}
