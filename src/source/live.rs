//! Shared machinery of the live sources (`v4l2://`, `alsa://`): the monotonic clock their
//! timestamps are on, the options of a live input, the jittered exponential backoff of their
//! reconnect loops, and the bounded queue that sits between capture and inference.
//!
//! **Clock.** Live timestamps are milliseconds of `CLOCK_MONOTONIC` (the clock V4L2 buffers are
//! stamped with when `V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC` is set, and the clock the ALSA source
//! asks for its status timestamps), so video and audio meet on one timeline in
//! [`crate::sync`]. They do not start at 0.
//!
//! **Queues** ([`queue`]): for files the pipeline's queues block (nothing is lost, the reader
//! waits for inference); for live inputs they drop the *oldest* item when full, so the latency
//! between capture and inference stays bounded by the queue capacity, and each drop is counted
//! (`RunControl::add_dropped_frames`).

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Now on `CLOCK_MONOTONIC`, in ms (the live sources' timeline).
pub fn monotonic_ms() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    timespec_ms(ts.tv_sec, ts.tv_nsec)
}

/// A `(seconds, nanoseconds)` timestamp in ms, rounded to the nearest ms.
pub fn timespec_ms(sec: i64, nsec: i64) -> i64 {
    sec * 1000 + (nsec + 500_000) / 1_000_000
}

/// Camera mode request and fault policy of a live input (`--input-width`, `--input-height`,
/// `--input-rate`, `--input-codec`, `--input-wait`; integration-conventions.md §1.2, §1.4).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LiveOptions {
    /// Requested frame width in pixels (`None`: 1280, jetson-utils' default).
    pub width: Option<u32>,
    /// Requested frame height in pixels (`None`: 720).
    pub height: Option<u32>,
    /// Requested frame rate in fps (`None`: the highest the chosen size offers).
    pub rate_hz: Option<f64>,
    /// Required pixel format: `mjpeg`, `yuyv`, `nv12`, `rgb24` or a FourCC (`None`: any,
    /// uncompressed preferred on a tie).
    pub codec: Option<String>,
    /// Wait (retrying with backoff) when the device is missing or busy at start, instead of
    /// failing.
    pub wait: bool,
    /// ALSA: requested capture rate in Hz (`None`: 16000 if the device has it, else its nearest).
    pub audio_rate: Option<u32>,
    /// ALSA: requested channel count (`None`: the device's minimum, usually 1 or 2).
    pub audio_channels: Option<u32>,
    /// ALSA: required sample format `s16`, `s32` or `float` (`None`: the first of these the
    /// device offers).
    pub audio_format: Option<String>,
}

/// Jittered exponential backoff for reconnect attempts: the n-th delay is
/// `min(initial · 2ⁿ, max)` scaled by a random factor in `[0.8, 1.2)` (so cameras on one hub do
/// not retry in lock-step).
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Default for Backoff {
    /// 250 ms doubling up to 5 s.
    fn default() -> Self {
        Self::new(Duration::from_millis(250), Duration::from_secs(5))
    }
}

impl Backoff {
    /// Starts at `initial`, doubling up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            attempt: 0,
        }
    }

    /// The delay before the next attempt (advances the attempt counter).
    pub fn next_delay(&mut self) -> Duration {
        let base = self
            .initial
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        // std's RandomState is seeded randomly per instance: a dependency-free jitter source.
        let r = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let factor = 0.8 + 0.4 * (r >> 11) as f64 / (1u64 << 53) as f64;
        base.mul_f64(factor)
    }

    /// Back to the initial delay (after a successful reconnect).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Attempts made since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

/// What a full [`queue`] does with a new item.
pub enum FullPolicy<T> {
    /// Wait until there is room (files: nothing is lost).
    Block,
    /// Drop the oldest queued item, calling the function on it (live inputs: count the drop).
    DropOldest(Box<dyn Fn(&T) + Send + Sync>),
}

struct State<T> {
    items: VecDeque<T>,
    sender: bool,
    receiver: bool,
}

struct Shared<T> {
    cap: usize,
    policy: FullPolicy<T>,
    state: Mutex<State<T>>,
    changed: Condvar,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // a panicking peer leaves consistent data (plain VecDeque ops): keep going
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Sending half of a [`queue`].
pub struct QueueTx<T>(Arc<Shared<T>>);
/// Receiving half of a [`queue`].
pub struct QueueRx<T>(Arc<Shared<T>>);

/// The other half is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disconnected;

/// A single-producer single-consumer queue of capacity `cap` (≥ 1) with the given policy when
/// full. `recv` drains what is queued after the sender is dropped, then fails; `send` fails once
/// the receiver is dropped.
pub fn queue<T>(cap: usize, policy: FullPolicy<T>) -> (QueueTx<T>, QueueRx<T>) {
    let shared = Arc::new(Shared {
        cap: cap.max(1),
        policy,
        state: Mutex::new(State {
            items: VecDeque::new(),
            sender: true,
            receiver: true,
        }),
        changed: Condvar::new(),
    });
    (QueueTx(shared.clone()), QueueRx(shared))
}

impl<T> QueueTx<T> {
    /// Queues `item` (waits or drops the oldest when full, per the policy).
    pub fn send(&self, item: T) -> Result<(), Disconnected> {
        let sh = &*self.0;
        let mut st = sh.lock();
        loop {
            if !st.receiver {
                return Err(Disconnected);
            }
            if st.items.len() < sh.cap {
                break;
            }
            match &sh.policy {
                FullPolicy::Block => {
                    st = sh.changed.wait(st).unwrap_or_else(|e| e.into_inner());
                }
                FullPolicy::DropOldest(on_drop) => {
                    if let Some(old) = st.items.pop_front() {
                        on_drop(&old);
                    }
                }
            }
        }
        st.items.push_back(item);
        sh.changed.notify_all();
        Ok(())
    }
}

impl<T> QueueRx<T> {
    /// The oldest item; waits for one. Fails when the queue is empty and the sender is gone.
    pub fn recv(&self) -> Result<T, Disconnected> {
        let sh = &*self.0;
        let mut st = sh.lock();
        loop {
            if let Some(x) = st.items.pop_front() {
                sh.changed.notify_all();
                return Ok(x);
            }
            if !st.sender {
                return Err(Disconnected);
            }
            st = sh.changed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl<T> QueueRx<T> {
    /// The oldest item if one is queued, without waiting.
    pub fn try_recv(&self) -> Option<T> {
        let sh = &*self.0;
        let mut st = sh.lock();
        let x = st.items.pop_front();
        if x.is_some() {
            sh.changed.notify_all();
        }
        x
    }
}

impl<T> Iterator for QueueRx<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.recv().ok()
    }
}

impl<T> Drop for QueueTx<T> {
    fn drop(&mut self) {
        self.0.lock().sender = false;
        self.0.changed.notify_all();
    }
}

impl<T> Drop for QueueRx<T> {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.receiver = false;
        st.items.clear();
        drop(st);
        self.0.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
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
    fn drop_oldest_keeps_the_newest_and_counts() {
        let dropped = Arc::new(AtomicU64::new(0));
        let d = dropped.clone();
        let (tx, rx) = queue::<u32>(
            3,
            FullPolicy::DropOldest(Box::new(move |_| {
                d.fetch_add(1, Ordering::Relaxed);
            })),
        );
        // producer 10x faster than the consumer: it never blocks
        for i in 0..10 {
            tx.send(i).unwrap();
        }
        assert_eq!(dropped.load(Ordering::Relaxed), 7);
        drop(tx);
        assert_eq!(rx.collect::<Vec<_>>(), vec![7, 8, 9]);
    }

    #[test]
    fn blocking_queue_loses_nothing_and_disconnects() {
        let (tx, rx) = queue::<u32>(2, FullPolicy::Block);
        let h = std::thread::spawn(move || {
            for i in 0..100 {
                tx.send(i).unwrap();
            }
        });
        let got: Vec<u32> = rx.collect();
        h.join().unwrap();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        let (tx, rx) = queue::<u32>(1, FullPolicy::Block);
        drop(rx);
        assert_eq!(tx.send(1), Err(Disconnected));
    }

    #[test]
    fn live_latency_stays_bounded_when_inference_is_slow() {
        // synthetic capture at 25 fps (40 ms) into a drop-oldest queue of 4, a consumer that
        // takes one item per 200 ms of capture time: the age of what it gets never exceeds
        // cap * 40 ms, and the drops add up.
        let dropped = Arc::new(AtomicU64::new(0));
        let d = dropped.clone();
        let (tx, rx) = queue::<i64>(
            4,
            FullPolicy::DropOldest(Box::new(move |_| {
                d.fetch_add(1, Ordering::Relaxed);
            })),
        );
        let mut consumed = 0u64;
        for k in 0..1000i64 {
            let now = k * 40;
            tx.send(now).unwrap();
            if k % 5 == 4 {
                let pts = rx.recv().unwrap();
                consumed += 1;
                assert!(now - pts < 4 * 40, "age {} ms at {now}", now - pts);
            }
        }
        drop(tx);
        let left = rx.count() as u64;
        assert_eq!(consumed + left + dropped.load(Ordering::Relaxed), 1000);
        assert_eq!((consumed, left), (200, 3));
    }
}
