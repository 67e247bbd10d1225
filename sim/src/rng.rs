//! A tiny seeded PRNG (SplitMix64) and a keyed hash.
//!
//! Our own rather than `rand`: the data set must stay byte-for-byte the same
//! for a seed across `rand` releases, and the simulator needs nothing more.

/// SplitMix64: fast, good enough statistically for picking shapes and ratios.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The SplitMix64 output function, also used as a 64-bit mixer.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a: a stable hash of a string (std's hasher is randomly keyed per process).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xCBF2_9CE4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01B3);
    }
    hash
}

/// A uniform number in `[0, 1)` from 64 random bits.
pub(crate) fn unit(bits: u64) -> f64 {
    // 53 bits fill an f64 mantissa exactly.
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(mix(seed ^ GOLDEN))
    }

    /// A generator for one named stream, so adding draws to one part of the
    /// data set does not shift every other part.
    pub(crate) fn derive(seed: u64, stream: &str) -> Self {
        Self::new(seed ^ fnv1a(stream.as_bytes()).rotate_left(17))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix(self.0)
    }

    pub(crate) fn next_f64(&mut self) -> f64 {
        unit(self.next_u64())
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.next_f64() < p
    }

    /// A uniform index below `n` (`n > 0`; 0 when `n == 0`).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        // Modulo bias is negligible for the small n used here.
        (self.next_u64() % n as u64) as usize
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.get(self.below(items.len()))
    }

    /// 40 lowercase hex digits, like a git commit id.
    pub(crate) fn commit_hash(&mut self) -> String {
        let mut out = String::with_capacity(40);
        while out.len() < 40 {
            out.push_str(&format!("{:016x}", self.next_u64()));
        }
        out.truncate(40);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_unit_range() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..1000 {
            let x = a.next_f64();
            assert_eq!(x.to_bits(), b.next_f64().to_bits());
            assert!((0.0..1.0).contains(&x));
        }
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
        assert_eq!(Rng::new(3).commit_hash().len(), 40);
    }
}
