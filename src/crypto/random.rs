//! Injected randomness: every MSK, MTK, salt, RAND, Digest nonce and back-off draw comes from a
//! [`Random`] handed in by the caller, never from a global (docs/architecture.md, principle 1).
//! Production uses [`OsRandom`]; tests and fuzzing use [`Fixed`] or [`Seeded`], which are
//! predictable and must never make keys.

use thiserror::Error;

/// The random generator failed; nothing that needs fresh randomness can be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("random generator failed")]
pub struct RngFailure;

/// A source of random octets.
pub trait Random: Send {
    /// Fills `out` with random octets.
    ///
    /// # Errors
    /// [`RngFailure`] when no randomness is available.
    fn fill(&mut self, out: &mut [u8]) -> Result<(), RngFailure>;

    /// A random 64-bit number (eight octets of [`Random::fill`], big-endian).
    ///
    /// # Errors
    /// [`RngFailure`] when no randomness is available.
    fn next_u64(&mut self) -> Result<u64, RngFailure> {
        let mut b = [0u8; 8];
        self.fill(&mut b)?;
        Ok(u64::from_be_bytes(b))
    }
}

/// The operating system's generator (`getrandom`).
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&mut self, out: &mut [u8]) -> Result<(), RngFailure> {
        getrandom::fill(out).map_err(|_| RngFailure)
    }
}

/// Always the same value: [`Random::next_u64`] returns it, [`Random::fill`] repeats its
/// big-endian octets. For tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fixed(pub u64);

impl Random for Fixed {
    fn fill(&mut self, out: &mut [u8]) -> Result<(), RngFailure> {
        for (b, v) in out.iter_mut().zip(self.0.to_be_bytes().into_iter().cycle()) {
            *b = v;
        }
        Ok(())
    }

    fn next_u64(&mut self) -> Result<u64, RngFailure> {
        Ok(self.0)
    }
}

/// A reproducible stream from a seed (xorshift64): runs of tests and fuzz targets repeat
/// exactly. Predictable: never for keys in service.
#[derive(Debug, Clone, Copy)]
pub struct Seeded(u64);

impl Seeded {
    /// The stream of `seed` (an even seed is made odd; zero would stay zero).
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    fn step(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

impl Random for Seeded {
    fn fill(&mut self, out: &mut [u8]) -> Result<(), RngFailure> {
        for chunk in out.chunks_mut(8) {
            let v = self.step().to_be_bytes();
            for (b, v) in chunk.iter_mut().zip(v) {
                *b = v;
            }
        }
        Ok(())
    }

    fn next_u64(&mut self) -> Result<u64, RngFailure> {
        Ok(self.step())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_repeats_its_value_and_seeded_repeats_its_stream() {
        let mut f = Fixed(0x0102_0304_0506_0708);
        assert_eq!(f.next_u64(), Ok(0x0102_0304_0506_0708));
        let mut b = [0u8; 10];
        assert_eq!(f.fill(&mut b), Ok(()));
        assert_eq!(b, [1, 2, 3, 4, 5, 6, 7, 8, 1, 2]);

        let (mut a, mut c) = (Seeded::new(7), Seeded::new(7));
        let (mut x, mut y) = ([0u8; 20], [0u8; 20]);
        assert_eq!((a.fill(&mut x), c.fill(&mut y)), (Ok(()), Ok(())));
        assert_eq!(x, y);
        assert_ne!(x, [0u8; 20]);
        assert_ne!(a.next_u64(), Seeded::new(8).next_u64());
    }

    #[test]
    fn the_os_generator_gives_different_values() {
        let mut r = OsRandom;
        let (a, b) = (r.next_u64(), r.next_u64());
        assert!(a.is_ok() && b.is_ok());
        assert_ne!(a, b);
    }
}
