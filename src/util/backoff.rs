//! The jittered exponential back-off of every reconnect loop: the MQTT client's (`mqtt-net`
//! thread) and the live sources' (`v4l2://`, `alsa://` reopening a lost device).
//!
//! The n-th delay (n from 0) has the nominal value `d = min(min·2ⁿ, max)` and is drawn at random
//! around it ([`Jitter`]), so many devices that lost the same broker or hub do not retry in
//! lock-step. [`Backoff::reset`] after a successful connection starts again at `min`.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// How a delay is drawn around its nominal value `d`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Jitter {
    /// Uniform in `[d/2, d)` ("equal jitter"): never above the cap, at least half of it. The
    /// MQTT client's.
    Equal,
    /// Uniform in `[(1 − f)·d, (1 + f)·d)`, centred on `d`; `f` in `[0, 1]` (0.2 = ±20 %). The
    /// live sources' (`Jitter::Centred(0.2)`).
    Centred(f64),
}

impl Jitter {
    /// The factor range `[lo, hi)` the nominal delay is multiplied by.
    fn range(self) -> (f64, f64) {
        match self {
            Jitter::Equal => (0.5, 1.0),
            Jitter::Centred(f) => {
                let f = f.clamp(0.0, 1.0);
                (1.0 - f, 1.0 + f)
            }
        }
    }
}

/// Jittered exponential back-off for reconnect attempts (see the module doc).
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    jitter: Jitter,
    attempt: u32,
    /// xorshift64* state, seeded once per instance from std's randomly keyed hasher.
    rng: u64,
}

impl Default for Backoff {
    /// The live sources' reconnect policy: 250 ms doubling up to 5 s, ±20 % ([`Jitter::Centred`]).
    fn default() -> Self {
        Self::new(Duration::from_millis(250), Duration::from_secs(5))
            .with_jitter(Jitter::Centred(0.2))
    }
}

impl Backoff {
    /// Starts at `min`, doubling per attempt up to `max` (raised to `min` if below it), with
    /// [`Jitter::Equal`]: delays between `min`/2 and `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(std::process::id().into());
        Self {
            min,
            max: max.max(min),
            jitter: Jitter::Equal,
            attempt: 0,
            rng: h.finish() | 1,
        }
    }

    /// The same back-off with another [`Jitter`].
    pub fn with_jitter(self, jitter: Jitter) -> Self {
        Self { jitter, ..self }
    }

    /// The delay before the next attempt (advances the attempt counter).
    pub fn next_delay(&mut self) -> Duration {
        let d = self
            .min
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let unit = (r >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
        let (lo, hi) = self.jitter.range();
        d.mul_f64(lo + (hi - lo) * unit)
    }

    /// Back to the first delay (after a successful connection).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Attempts made since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn equal_jitter_grows_within_bounds() {
        let (min, max) = (Duration::from_millis(100), Duration::from_millis(1600));
        let mut b = Backoff::new(min, max);
        let mut distinct = HashSet::new();
        for round in 0..50 {
            for n in 0..8u32 {
                let d = b.next_delay();
                let cap = (min * (1 << n)).min(max);
                assert!(
                    d >= cap / 2 && d <= cap,
                    "attempt {n}: {d:?} not in [{:?}, {cap:?}]",
                    cap / 2
                );
                distinct.insert((round, n, d));
            }
            b.reset();
        }
        // jitter: the 50 draws of the capped delay are not all equal
        let capped: HashSet<_> = distinct
            .iter()
            .filter(|(_, n, _)| *n == 7)
            .map(|x| x.2)
            .collect();
        assert!(capped.len() > 10);
    }

    #[test]
    fn centred_jitter_doubles_up_to_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000))
            .with_jitter(Jitter::Centred(0.2));
        let d: Vec<f64> = (0..8).map(|_| b.next_delay().as_secs_f64() * 1e3).collect();
        for (i, base) in [100.0, 200.0, 400.0, 800.0, 1000.0, 1000.0, 1000.0, 1000.0]
            .iter()
            .enumerate()
        {
            assert!(
                d[i] >= 0.8 * base && d[i] < 1.2 * base,
                "delay {i}: {} ms vs base {base}",
                d[i]
            );
        }
        // jittered: eight capped delays are not all identical
        let capped: Vec<f64> = (0..8).map(|_| b.next_delay().as_secs_f64()).collect();
        assert!(capped.iter().any(|&x| x != capped[0]), "{capped:?}");
        assert_eq!(b.attempts(), 16);
        b.reset();
        assert!(b.next_delay() < Duration::from_millis(120));
    }

    #[test]
    fn default_is_the_live_sources_policy() {
        let mut b = Backoff::default();
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(200) && first < Duration::from_millis(300));
        for _ in 0..10 {
            b.next_delay();
        }
        let capped = b.next_delay();
        assert!(capped >= Duration::from_secs(4) && capped < Duration::from_secs(6));
    }
}
