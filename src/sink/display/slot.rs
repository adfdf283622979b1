//! A one-place channel between the pipeline and an output thread: the producer never waits for a
//! slow output (a frame still waiting is replaced by the newer one and counted as skipped),
//! unless the output asked for every frame (`lossless`, file outputs).

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// The slot will give no more items: it was finished and is drained, or closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the output slot has ended")]
pub struct Ended;

#[derive(Debug)]
struct Inner<T> {
    item: Option<T>,
    /// No more puts will come (the consumer drains what is left, then stops).
    finished: bool,
    /// The consumer is gone: puts are dropped.
    closed: bool,
    skipped: u64,
}

/// Capacity-1 channel with replace-when-full semantics.
#[derive(Debug)]
pub struct Slot<T> {
    inner: Mutex<Inner<T>>,
    cond: Condvar,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Slot<T> {
    /// An empty, open slot.
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Inner {
                item: None,
                finished: false,
                closed: false,
                skipped: 0,
            }),
            cond: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Offers `item`. Not `lossless`: replaces a waiting item (counted in [`Self::skipped`]),
    /// never blocks. `lossless`: waits until the consumer took the previous item. Dropped when
    /// the consumer is gone.
    pub fn put(&self, item: T, lossless: bool) {
        let mut g = self.lock();
        if lossless {
            while g.item.is_some() && !g.closed {
                g = self.cond.wait(g).unwrap_or_else(|e| e.into_inner());
            }
        }
        if g.closed {
            return;
        }
        if g.item.replace(item).is_some() {
            g.skipped += 1;
        }
        self.cond.notify_all();
    }

    /// Next item; waits. `None` once finished (and drained) or closed.
    pub fn take(&self) -> Option<T> {
        let mut g = self.lock();
        loop {
            if g.closed {
                return None;
            }
            if let Some(x) = g.item.take() {
                self.cond.notify_all();
                return Some(x);
            }
            if g.finished {
                return None;
            }
            g = self.cond.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Like [`Self::take`] but gives up after `timeout` with `Ok(None)`; [`Ended`] when finished
    /// (and drained) or closed.
    pub fn take_timeout(&self, timeout: std::time::Duration) -> Result<Option<T>, Ended> {
        let g = self.lock();
        let (mut g, _) = self
            .cond
            .wait_timeout_while(g, timeout, |i| i.item.is_none() && !i.finished && !i.closed)
            .unwrap_or_else(|e| e.into_inner());
        if g.closed {
            return Err(Ended);
        }
        match g.item.take() {
            Some(x) => {
                self.cond.notify_all();
                Ok(Some(x))
            }
            None if g.finished => Err(Ended),
            None => Ok(None),
        }
    }

    /// No more items will be put; the consumer drains the slot and stops.
    pub fn finish(&self) {
        self.lock().finished = true;
        self.cond.notify_all();
    }

    /// The consumer is gone (or should stop now): items are dropped, waiters wake.
    pub fn close(&self) {
        let mut g = self.lock();
        g.closed = true;
        g.item = None;
        self.cond.notify_all();
    }

    /// Closes the slot unless an item still waits for the consumer (which then takes it first;
    /// used to end an output's linger after the input ended without dropping its final frame).
    /// Returns whether the slot is closed now.
    pub fn close_if_empty(&self) -> bool {
        let mut g = self.lock();
        if g.item.is_none() {
            g.closed = true;
            self.cond.notify_all();
        }
        g.closed
    }

    /// Waits until the slot is closed or `timeout` has passed; returns whether it is closed.
    pub fn wait_closed(&self, timeout: std::time::Duration) -> bool {
        let g = self.lock();
        let (g, _) = self
            .cond
            .wait_timeout_while(g, timeout, |i| !i.closed)
            .unwrap_or_else(|e| e.into_inner());
        g.closed
    }

    /// Whether [`Self::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Items replaced before the consumer took them.
    pub fn skipped(&self) -> u64 {
        self.lock().skipped
    }
}

/// Closes the slot when dropped (held by the consumer thread, so a failing or panicking output
/// never leaves the producer waiting).
#[derive(Debug)]
pub struct CloseOnDrop<T>(pub Arc<Slot<T>>);

impl<T> Drop for CloseOnDrop<T> {
    fn drop(&mut self) {
        self.0.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn replaces_when_behind_and_counts_skips() {
        let s = Slot::new();
        s.put(1, false);
        s.put(2, false);
        s.put(3, false);
        assert_eq!(s.skipped(), 2);
        assert_eq!(s.take(), Some(3));
        s.finish();
        assert_eq!(s.take(), None);
    }

    #[test]
    fn finish_then_the_last_item_is_still_delivered() {
        // the newest item put before finish is the consumer's last one, by either take
        let s = Slot::new();
        s.put(1, false);
        s.put(2, false);
        s.finish();
        assert_eq!(s.take(), Some(2));
        assert_eq!(s.take(), None);
        let s = Slot::new();
        s.put(7, false);
        s.finish();
        assert_eq!(s.take_timeout(Duration::from_millis(1)), Ok(Some(7)));
        assert_eq!(s.take_timeout(Duration::from_millis(1)), Err(Ended));
        assert_eq!(s.skipped(), 0);
        // a consumer blocked in take when the producer finishes still gets the last item
        let s = Arc::new(Slot::new());
        let c = s.clone();
        let t = std::thread::spawn(move || {
            let mut last = None;
            while let Some(x) = c.take() {
                last = Some(x);
            }
            last
        });
        for i in 0..100 {
            s.put(i, false);
        }
        s.finish();
        assert_eq!(t.join().unwrap(), Some(99));
    }

    #[test]
    fn close_if_empty_keeps_a_waiting_item_and_wakes_wait_closed() {
        let s = Arc::new(Slot::new());
        s.put(1, false);
        s.finish();
        assert!(!s.close_if_empty(), "an item still waits: not closed");
        assert_eq!(s.take(), Some(1));
        assert!(!s.wait_closed(Duration::from_millis(1)));
        let c = s.clone();
        let t = std::thread::spawn(move || c.wait_closed(Duration::from_secs(600)));
        assert!(s.close_if_empty());
        assert!(t.join().unwrap(), "wait_closed returns once closed");
        assert_eq!(s.take(), None);
    }

    #[test]
    fn lossless_waits_for_the_consumer_and_close_unblocks() {
        let s = Arc::new(Slot::new());
        let c = s.clone();
        let t = std::thread::spawn(move || {
            let mut got = vec![];
            while let Some(x) = c.take() {
                std::thread::sleep(Duration::from_millis(5));
                got.push(x);
            }
            got
        });
        for i in 0..10 {
            s.put(i, true);
        }
        s.finish();
        assert_eq!(t.join().unwrap(), (0..10).collect::<Vec<_>>());
        assert_eq!(s.skipped(), 0);
        let s = Slot::new();
        s.put(1, true);
        s.close();
        s.put(2, true); // would block forever without close
        assert_eq!(s.take_timeout(Duration::from_millis(1)), Err(Ended));
    }
}
