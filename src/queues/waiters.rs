//! The FIFO of parked tasks behind a queue's `put`, `get` and `join` (asyncio keeps a
//! `deque` of futures for each).
//!
//! A waiter is a slot in a slab, and its key sits in `order` while it waits. Waking it
//! takes the key out of `order` and marks the slot [`Slot::Notified`]; the slot stays
//! until its future sees the mark (or is dropped), so the future can tell a real
//! wake-up from a spurious poll, and a future dropped after it was woken can pass the
//! wake-up on (asyncio's `_wakeup_next` in the `except` branch of `get` and `put`).

use std::collections::VecDeque;
use std::task::Waker;

use slab::Slab;

/// One parked waiter.
enum Slot {
    /// Still in line: wake this waker when its turn comes.
    Waiting(Waker),
    /// Woken, and its future has not seen it yet.
    Notified,
}

/// What a registered future learns when it is polled again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Turn {
    /// Still in line; the waker is updated.
    Waiting,
    /// It was woken; its registration is gone.
    Notified,
}

/// A FIFO of parked wakers with O(1) wake-ups and no trace left by a dropped waiter.
#[derive(Default)]
pub(crate) struct Waiters {
    slots: Slab<Slot>,
    /// The keys of the `Waiting` slots, oldest first.
    order: VecDeque<usize>,
}

impl Waiters {
    /// Park a waiter at the back of the line; the key identifies it from now on.
    pub(crate) fn register(&mut self, waker: &Waker) -> usize {
        let key = self.slots.insert(Slot::Waiting(waker.clone()));
        self.order.push_back(key);
        key
    }

    /// The registered waiter `key` is polled: has its turn come? A `Notified` answer
    /// ends the registration.
    pub(crate) fn poll(&mut self, key: usize, waker: &Waker) -> Turn {
        match self.slots.get_mut(key) {
            Some(Slot::Waiting(w)) => {
                if !w.will_wake(waker) {
                    w.clone_from(waker);
                }
                Turn::Waiting
            }
            Some(Slot::Notified) => {
                self.slots.remove(key);
                Turn::Notified
            }
            // Unreachable while the queue owns the only keys; a fresh turn is the
            // harmless answer (the caller re-checks its condition).
            None => Turn::Notified,
        }
    }

    /// The waiter `key` is dropped: remove every trace of it. Returns whether it had
    /// been woken (its wake-up is then the caller's to pass on).
    pub(crate) fn cancel(&mut self, key: usize) -> bool {
        match self.slots.try_remove(key) {
            Some(Slot::Waiting(_)) => {
                if let Some(pos) = self.order.iter().position(|&k| k == key) {
                    self.order.remove(pos);
                }
                false
            }
            Some(Slot::Notified) => true,
            None => false,
        }
    }

    /// Wake the oldest waiter, if any; the waker is returned so the caller can call it
    /// once it no longer borrows the queue.
    pub(crate) fn wake_next(&mut self) -> Option<Waker> {
        while let Some(key) = self.order.pop_front() {
            // Every key in `order` is a `Waiting` slot; anything else is skipped.
            if let Some(slot) = self.slots.get_mut(key) {
                if let Slot::Waiting(w) = std::mem::replace(slot, Slot::Notified) {
                    return Some(w);
                }
            }
        }
        None
    }

    /// Wake every waiter, oldest first (into `out`).
    pub(crate) fn wake_all(&mut self, out: &mut Vec<Waker>) {
        while let Some(w) = self.wake_next() {
            out.push(w);
        }
    }

    /// How many waiters are still in line (woken ones not counted).
    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakes_in_fifo_order_and_a_cancelled_waiter_leaves_no_trace() {
        let w = Waker::noop();
        let mut q = Waiters::default();
        let a = q.register(w);
        let b = q.register(w);
        let c = q.register(w);
        assert!(!q.cancel(b), "b was still waiting");
        assert_eq!(q.len(), 2);
        assert!(q.wake_next().is_some());
        assert_eq!(q.poll(a, w), Turn::Notified);
        assert_eq!(q.poll(c, w), Turn::Waiting);
        assert!(q.wake_next().is_some());
        assert!(q.cancel(c), "c had been woken");
        assert!(q.wake_next().is_none());
        assert_eq!(q.slots.len(), 0);
    }

    #[test]
    fn wake_all_wakes_each_waiter_once() {
        let w = Waker::noop();
        let mut q = Waiters::default();
        q.register(w);
        q.register(w);
        let mut out = Vec::new();
        q.wake_all(&mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(q.len(), 0);
        q.wake_all(&mut out);
        assert_eq!(out.len(), 2, "nobody is woken twice");
    }
}
