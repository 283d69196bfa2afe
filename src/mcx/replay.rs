//! The replay cache of the I_MESSAGE verifier (RFC 3830 §5.4): the messages accepted within
//! the freshness window, bounded.

use std::collections::BTreeSet;

use super::profile::REPLAY_CAPACITY;

/// The messages accepted lately, by their time (Unix seconds) and a digest of their signed
/// octets (not of the signature, which a third party can alter without the key). Bounded: past
/// its capacity the oldest entry is forgotten and raises a floor, and every message not newer
/// than the floor is taken for a replay, so forgetting never lets a replay through.
#[derive(Debug, Clone)]
pub struct ReplayCache {
    seen: BTreeSet<(u64, [u8; 32])>,
    capacity: usize,
    /// Messages at or before this time are refused.
    floor: Option<u64>,
}

impl Default for ReplayCache {
    fn default() -> Self {
        Self::with_capacity(REPLAY_CAPACITY)
    }
}

impl ReplayCache {
    /// An empty cache of [`REPLAY_CAPACITY`] entries.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty cache of `capacity` entries (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            seen: BTreeSet::new(),
            capacity: capacity.max(1),
            floor: None,
        }
    }

    /// How many messages it remembers.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether it remembers none.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Whether the message of `time` and `digest` is, or may be, a replay.
    pub fn is_replay(&self, time: u64, digest: &[u8; 32]) -> bool {
        self.floor.is_some_and(|f| time <= f) || self.seen.contains(&(time, *digest))
    }

    /// Remembers an accepted message; forgets those older than `oldest` (which the freshness
    /// check refuses anyway), then the oldest beyond the capacity.
    pub fn record(&mut self, time: u64, digest: [u8; 32], oldest: u64) {
        while let Some(&(t, _)) = self.seen.first() {
            if t >= oldest && self.seen.len() < self.capacity {
                break;
            }
            self.seen.pop_first();
            self.floor = Some(self.floor.map_or(t, |f| f.max(t)));
        }
        self.seen.insert((time, digest));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_message_is_a_replay_and_another_is_not() {
        let mut c = ReplayCache::new();
        c.record(100, [1; 32], 0);
        assert!(c.is_replay(100, &[1; 32]));
        assert!(!c.is_replay(100, &[2; 32]));
        assert!(!c.is_replay(101, &[1; 32]));
    }

    #[test]
    fn forgetting_the_oldest_raises_the_floor() {
        let mut c = ReplayCache::with_capacity(2);
        c.record(10, [1; 32], 0);
        c.record(20, [2; 32], 0);
        c.record(30, [3; 32], 0);
        assert_eq!(c.len(), 2);
        // The forgotten message (time 10) is still refused, and so is anything as old.
        assert!(c.is_replay(10, &[1; 32]));
        assert!(c.is_replay(9, &[9; 32]));
        assert!(!c.is_replay(25, &[9; 32]));
    }

    #[test]
    fn entries_older_than_the_window_are_forgotten() {
        let mut c = ReplayCache::new();
        c.record(10, [1; 32], 0);
        c.record(500, [2; 32], 200);
        assert_eq!(c.len(), 1);
        assert!(c.is_replay(10, &[1; 32]));
    }
}
