//! Server nonces of the Digest challenge (RFC 7616 §3.3, §5.4 replay): issued with injected
//! randomness, accepted for `nonce_lifetime`, each (nonce, nc) at most once with nc strictly
//! increasing, and at most `max_nonces` held: the oldest are forgotten first, so memory stays
//! bounded whatever the request rate.
//!
//! Expired nonces are kept until capacity pushes them out, so a late answer is recognised as
//! stale (`stale=true`) rather than unknown.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime};

use crate::crypto::{Random, RngFailure};

/// Random octets per nonce (128 bits, RFC 7616 §5.4: unpredictable).
const NONCE_OCTETS: usize = 16;
/// Random octets per opaque value.
const OPAQUE_OCTETS: usize = 8;

/// A nonce as issued: what goes into the challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The nonce.
    pub nonce: String,
    /// The opaque value the client must echo with it.
    pub opaque: String,
}

/// Why an answered nonce is refused.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceRefusal {
    /// Never issued, or forgotten to make room: answer with `stale=true` when the response
    /// verified, since the credentials were right.
    Unknown,
    /// Past its lifetime (`stale=true`).
    Expired,
    /// nc not above the highest accepted for this nonce: a replay.
    Replayed,
    /// The opaque value is not the one issued with the nonce.
    Opaque,
}

impl NonceRefusal {
    /// Whether the refusal is answered with `stale=true` (RFC 7616 §3.3).
    #[must_use]
    pub fn is_stale(self) -> bool {
        matches!(self, Self::Unknown | Self::Expired)
    }

    /// A short reason for logs.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown nonce",
            Self::Expired => "expired nonce",
            Self::Replayed => "replayed nonce count",
            Self::Opaque => "opaque does not match",
        }
    }
}

#[derive(Debug)]
struct Entry {
    issued_at: SystemTime,
    opaque: String,
    /// Highest nc accepted so far; 0 before the first (nc starts at 1).
    last_nc: u32,
    /// Which of the [`NC_WINDOW`] counts up to `last_nc` were accepted (bit i: `last_nc - i`).
    seen: u64,
}

/// How far below the highest accepted nc a request may still arrive: a
/// client with requests in parallel on one nonce may have them arrive out of
/// order (RFC 7616 §3.3 asks the server to detect replays, not reordering).
const NC_WINDOW: u32 = 64;

/// The nonces issued and not yet forgotten.
pub struct NonceStore {
    rng: Box<dyn Random>,
    lifetime: Duration,
    capacity: usize,
    entries: HashMap<String, Entry>,
    /// Issue order, oldest first: what capacity eviction removes.
    order: VecDeque<String>,
}

impl std::fmt::Debug for NonceStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonceStore")
            .field("lifetime", &self.lifetime)
            .field("capacity", &self.capacity)
            .field("held", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl NonceStore {
    /// A store accepting nonces for `lifetime`, holding at most `capacity` (at least 1).
    #[must_use]
    pub fn new(rng: Box<dyn Random>, lifetime: Duration, capacity: usize) -> Self {
        Self {
            rng,
            lifetime,
            capacity: capacity.max(1),
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Number of nonces held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no nonce is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Issues a fresh nonce at `now`, forgetting the oldest when full.
    ///
    /// # Errors
    /// [`RngFailure`] from the generator.
    pub fn issue(&mut self, now: SystemTime) -> Result<Issued, RngFailure> {
        let mut raw = [0u8; NONCE_OCTETS + OPAQUE_OCTETS];
        self.rng.fill(&mut raw)?;
        let (n, o) = raw.split_at(NONCE_OCTETS);
        let issued = Issued {
            nonce: hex::encode(n),
            opaque: hex::encode(o),
        };
        while self.entries.len() >= self.capacity {
            match self.order.pop_front() {
                Some(old) => {
                    self.entries.remove(&old);
                }
                None => break,
            }
        }
        // 128 random bits do not collide; if the generator repeats itself, the old entry is
        // replaced and its order slot removes the new one early, which only costs a stale.
        self.entries.insert(
            issued.nonce.clone(),
            Entry {
                issued_at: now,
                opaque: issued.opaque.clone(),
                last_nc: 0,
                seen: 0,
            },
        );
        self.order.push_back(issued.nonce.clone());
        Ok(issued)
    }

    /// Whether (nonce, nc) would be accepted at `now`, without recording anything: the
    /// key-free check made before the key source is asked (a forged or replayed header costs
    /// no lookup). [`Self::accept`] repeats it and records nc once the response verified.
    ///
    /// # Errors
    /// The [`NonceRefusal`].
    pub fn check(
        &self,
        nonce: &str,
        nc: u32,
        opaque: Option<&str>,
        now: SystemTime,
    ) -> Result<(), NonceRefusal> {
        let entry = self.entries.get(nonce).ok_or(NonceRefusal::Unknown)?;
        Self::judge(entry, self.lifetime, nc, opaque, now)
    }

    /// The checks of [`Self::check`] on one entry.
    fn judge(
        entry: &Entry,
        lifetime: Duration,
        nc: u32,
        opaque: Option<&str>,
        now: SystemTime,
    ) -> Result<(), NonceRefusal> {
        // A clock stepped back leaves the nonce fresh rather than refusing everyone.
        let age = now.duration_since(entry.issued_at).unwrap_or_default();
        if age >= lifetime {
            return Err(NonceRefusal::Expired);
        }
        if opaque != Some(entry.opaque.as_str()) {
            return Err(NonceRefusal::Opaque);
        }
        if nc == 0 {
            return Err(NonceRefusal::Replayed);
        }
        if nc <= entry.last_nc {
            let below = entry.last_nc - nc;
            if below >= NC_WINDOW || entry.seen & (1 << below) != 0 {
                return Err(NonceRefusal::Replayed);
            }
        }
        Ok(())
    }

    /// Accepts (nonce, nc) at `now` for a request whose response already verified: the nonce
    /// must be held and within its lifetime, `opaque` (when sent) must be the issued one, and
    /// nc must not have been accepted before: above the highest so far, or one of the
    /// `NC_WINDOW` (64) counts below it not yet seen. On success nc is recorded.
    ///
    /// # Errors
    /// The [`NonceRefusal`].
    pub fn accept(
        &mut self,
        nonce: &str,
        nc: u32,
        opaque: Option<&str>,
        now: SystemTime,
    ) -> Result<(), NonceRefusal> {
        let lifetime = self.lifetime;
        let entry = self.entries.get_mut(nonce).ok_or(NonceRefusal::Unknown)?;
        Self::judge(entry, lifetime, nc, opaque, now)?;
        if nc > entry.last_nc {
            let shift = nc - entry.last_nc;
            entry.seen = if shift >= NC_WINDOW {
                0
            } else {
                entry.seen << shift
            };
            entry.seen |= 1;
            entry.last_nc = nc;
        } else {
            entry.seen |= 1 << (entry.last_nc - nc);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter(u8);

    impl Random for Counter {
        fn fill(&mut self, out: &mut [u8]) -> Result<(), RngFailure> {
            self.0 = self.0.wrapping_add(1);
            out.fill(self.0);
            Ok(())
        }
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn nc_must_increase_and_nonces_expire() {
        let mut s = NonceStore::new(Box::new(Counter(0)), Duration::from_secs(10), 4);
        let n = s.issue(at(100)).expect("issued");
        let o = Some(n.opaque.as_str());
        assert_eq!(s.check(&n.nonce, 1, o, at(101)), Ok(()));
        assert_eq!(
            s.check(&n.nonce, 1, o, at(101)),
            Ok(()),
            "check records nothing"
        );
        assert_eq!(s.accept(&n.nonce, 1, o, at(101)), Ok(()));
        assert_eq!(
            s.accept(&n.nonce, 1, o, at(101)),
            Err(NonceRefusal::Replayed)
        );
        assert_eq!(
            s.check(&n.nonce, 1, o, at(101)),
            Err(NonceRefusal::Replayed)
        );
        assert_eq!(s.check("00", 1, o, at(101)), Err(NonceRefusal::Unknown));
        assert_eq!(s.check(&n.nonce, 2, o, at(110)), Err(NonceRefusal::Expired));
        assert_eq!(s.accept(&n.nonce, 3, o, at(101)), Ok(()));
        // Out of order (parallel requests on one nonce) but not seen: accepted once.
        assert_eq!(s.accept(&n.nonce, 2, o, at(101)), Ok(()));
        assert_eq!(
            s.accept(&n.nonce, 2, o, at(101)),
            Err(NonceRefusal::Replayed)
        );
        assert_eq!(
            s.accept(&n.nonce, 0, o, at(101)),
            Err(NonceRefusal::Replayed)
        );
        assert_eq!(
            s.accept(&n.nonce, 4, None, at(101)),
            Err(NonceRefusal::Opaque)
        );
        assert_eq!(
            s.accept(&n.nonce, 4, o, at(110)),
            Err(NonceRefusal::Expired)
        );
        assert_eq!(s.accept("00", 1, o, at(101)), Err(NonceRefusal::Unknown));
        assert_eq!(s.accept(&n.nonce, 4, o, at(50)), Ok(()));
    }

    #[test]
    fn nc_far_below_the_window_is_refused() {
        let mut s = NonceStore::new(Box::new(Counter(0)), Duration::from_secs(10), 4);
        let n = s.issue(at(0)).expect("issued");
        let o = Some(n.opaque.as_str());
        assert_eq!(s.accept(&n.nonce, 100, o, at(1)), Ok(()));
        assert_eq!(s.accept(&n.nonce, 37, o, at(1)), Ok(()));
        assert_eq!(
            s.accept(&n.nonce, 36, o, at(1)),
            Err(NonceRefusal::Replayed)
        );
        assert_eq!(s.accept(&n.nonce, 1000, o, at(1)), Ok(()));
        assert_eq!(
            s.accept(&n.nonce, 100, o, at(1)),
            Err(NonceRefusal::Replayed)
        );
        assert_eq!(s.accept(&n.nonce, 999, o, at(1)), Ok(()));
    }

    #[test]
    fn the_oldest_nonce_is_forgotten_at_capacity() {
        let mut s = NonceStore::new(Box::new(Counter(0)), Duration::from_secs(10), 2);
        let a = s.issue(at(0)).expect("a");
        let b = s.issue(at(0)).expect("b");
        let c = s.issue(at(0)).expect("c");
        assert_eq!(s.len(), 2);
        let ok = |s: &mut NonceStore, i: &Issued| s.accept(&i.nonce, 1, Some(&i.opaque), at(1));
        assert_eq!(ok(&mut s, &a), Err(NonceRefusal::Unknown));
        assert_eq!(ok(&mut s, &b), Ok(()));
        assert_eq!(ok(&mut s, &c), Ok(()));
    }
}
