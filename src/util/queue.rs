//! The bounded drop-oldest queue, and the single-producer single-consumer channel built on it.
//!
//! [`DropOldest`] is the plain data structure: a FIFO of fixed capacity that drops (and counts)
//! its oldest item to make room. The MQTT client keeps its event messages in one (a broker that
//! is away must not make the pipeline wait or grow memory without bound).
//!
//! [`queue`] is the channel between the pipeline's threads: for files it blocks when full
//! ([`FullPolicy::Block`]: nothing is lost, the reader waits for inference); for live inputs it
//! drops the *oldest* item ([`FullPolicy::DropOldest`]), so the latency between capture and
//! inference stays bounded by the queue capacity, and each drop is reported to the policy's
//! function (the pipeline counts it with `RunControl::add_dropped_frames`).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Bounded FIFO that drops its oldest item when full.
#[derive(Debug)]
pub struct DropOldest<T> {
    items: VecDeque<T>,
    cap: usize,
    dropped: u64,
}

impl<T> DropOldest<T> {
    /// Empty queue of capacity `cap` (≥ 1; 0 is taken as 1).
    pub fn new(cap: usize) -> Self {
        Self {
            items: VecDeque::with_capacity(cap.min(4096)),
            cap: cap.max(1),
            dropped: 0,
        }
    }
    /// Appends `item`; returns the item dropped to make room, if any (also counted).
    pub fn push(&mut self, item: T) -> Option<T> {
        let old = if self.items.len() >= self.cap {
            self.dropped += 1;
            self.items.pop_front()
        } else {
            None
        };
        self.items.push_back(item);
        old
    }
    /// Puts an item back at the front (it was taken but could not be handed on). Never drops:
    /// the queue may exceed its capacity by the items put back until they are taken again.
    pub fn push_front(&mut self, item: T) {
        self.items.push_front(item);
    }
    /// Puts items taken earlier back at the front, in their order (they are older than anything
    /// queued), then drops (and counts) the oldest while more than the capacity wait.
    pub fn put_back(&mut self, items: Vec<T>) {
        for item in items.into_iter().rev() {
            self.items.push_front(item);
        }
        while self.items.len() > self.cap {
            self.items.pop_front();
            self.dropped += 1;
        }
    }
    /// Oldest item.
    pub fn pop(&mut self) -> Option<T> {
        self.items.pop_front()
    }
    /// Items waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }
    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    /// Whether the next [`Self::push`] drops an item.
    pub fn is_full(&self) -> bool {
        self.items.len() >= self.cap
    }
    /// Removes every item (not counted as dropped).
    pub fn clear(&mut self) {
        self.items.clear();
    }
    /// Items dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
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
    items: DropOldest<T>,
    sender: bool,
    receiver: bool,
}

struct Shared<T> {
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
        policy,
        state: Mutex::new(State {
            items: DropOldest::new(cap),
            sender: true,
            receiver: true,
        }),
        changed: Condvar::new(),
    });
    (QueueTx(shared.clone()), QueueRx(shared))
}

impl<T> QueueTx<T> {
    /// True when nothing is queued (the receiver has taken every item sent).
    pub fn is_empty(&self) -> bool {
        self.0.lock().items.is_empty()
    }

    /// Queues `item` (waits or drops the oldest when full, per the policy).
    pub fn send(&self, item: T) -> Result<(), Disconnected> {
        let sh = &*self.0;
        let mut st = sh.lock();
        loop {
            if !st.receiver {
                return Err(Disconnected);
            }
            match &sh.policy {
                FullPolicy::Block if st.items.is_full() => {
                    st = sh.changed.wait(st).unwrap_or_else(|e| e.into_inner());
                }
                FullPolicy::Block => {
                    st.items.push(item);
                    break;
                }
                FullPolicy::DropOldest(on_drop) => {
                    if let Some(old) = st.items.push(item) {
                        on_drop(&old);
                    }
                    break;
                }
            }
        }
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
            if let Some(x) = st.items.pop() {
                sh.changed.notify_all();
                return Ok(x);
            }
            if !st.sender {
                return Err(Disconnected);
            }
            st = sh.changed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The oldest item if one is queued, without waiting.
    pub fn try_recv(&self) -> Option<T> {
        let sh = &*self.0;
        let mut st = sh.lock();
        let x = st.items.pop();
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
    fn queue_drops_oldest_and_counts() {
        let mut q = DropOldest::new(3);
        for i in 0..3 {
            assert_eq!(q.push(i), None);
        }
        assert!(q.is_full());
        assert_eq!(q.push(3), Some(0));
        assert_eq!(q.push(4), Some(1));
        assert_eq!((q.len(), q.dropped()), (3, 2));
        assert_eq!(q.pop(), Some(2));
        q.push_front(2);
        assert_eq!(
            std::iter::from_fn(|| q.pop()).collect::<Vec<_>>(),
            [2, 3, 4]
        );
        assert!(q.is_empty());
    }

    #[test]
    fn put_back_goes_first_and_drops_the_oldest_past_capacity() {
        let mut q = DropOldest::new(4);
        q.push(10);
        q.push(11);
        q.put_back(vec![1, 2]);
        assert_eq!((q.len(), q.dropped()), (4, 0));
        q.put_back(vec![0]);
        // five wait for four places: the oldest (the one put back last) goes, counted
        assert_eq!(q.dropped(), 1);
        let order: Vec<i32> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, vec![1, 2, 10, 11]);
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
