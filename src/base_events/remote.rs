//! The cross-thread side of a loop (asyncio's `call_soon_threadsafe` and its
//! self-pipe): a mutex-protected inbox that other threads push into, and a
//! `mio::Waker` (an eventfd) that wakes the loop's poll, written only when the loop may
//! be asleep.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::exceptions::{Error, Result};

/// The largest cross-thread batch buffer (in items) a loop keeps for reuse.
pub(super) const REMOTE_SPARE_CAPACITY: usize = 4096;

/// The cross-thread inbox: the only part of a loop that other threads touch.
pub(crate) struct Remote {
    pub(crate) loop_id: u64,
    pub(super) queue: Mutex<Vec<RemoteItem>>,
    /// Whether the queue holds items; set by the push that makes it non-empty, cleared
    /// by the drain (both under the lock), read by the loop without the lock.
    pub(super) pending: AtomicBool,
    /// Whether the loop is awake or already woken, so a push need not write to the
    /// eventfd. The loop clears it just before a poll that may sleep (and then looks
    /// at the queue once more, see [`Remote::prepare_to_sleep`]); the first push after
    /// that sets it and writes to the eventfd. Pushes made while the loop is busy cost
    /// no system call.
    pub(super) notified: AtomicBool,
    pub(super) closed: AtomicBool,
    pub(super) waker: mio::Waker,
}

/// What another thread can ask of the loop.
pub(crate) enum RemoteItem {
    /// Run this closure on the loop thread (`call_soon_threadsafe`).
    Call(Box<dyn FnOnce() + Send>),
    /// Schedule the task in this slab slot, if it is still the task with this waker
    /// tag (see `Inner::waker_tag`).
    Wake { key: usize, id: u64 },
}

impl Remote {
    /// Queue an item and wake the poll. Returns false (and drops the item) if the loop
    /// is closed.
    pub(crate) fn push(&self, item: RemoteItem) -> bool {
        {
            let mut q = match self.queue.lock() {
                Ok(q) => q,
                Err(poisoned) => poisoned.into_inner(),
            };
            if self.closed.load(Ordering::Acquire) {
                return false;
            }
            if q.is_empty() {
                self.pending.store(true, Ordering::Release);
            }
            q.push(item);
        }
        // A plain load first: while the loop is awake the flag stays set, and reading it
        // costs no read-modify-write. If the loop cleared it before our push, the mutex
        // orders that store before this load, so we see `false` and wake it.
        if !self.notified.load(Ordering::Acquire) && !self.notified.swap(true, Ordering::AcqRel) {
            if let Err(e) = self.waker.wake() {
                log::error!(target: "asyncio", "failed to wake the event loop: {e}");
            }
        }
        true
    }

    /// Swap the queue with `batch` (an empty vector, usually with some capacity left
    /// from an earlier batch, so that senders rarely have to grow the queue).
    pub(super) fn take_into(&self, batch: &mut Vec<RemoteItem>) {
        let mut q = match self.queue.lock() {
            Ok(q) => q,
            Err(poisoned) => poisoned.into_inner(),
        };
        self.pending.store(false, Ordering::Relaxed);
        std::mem::swap(&mut *q, batch);
    }

    /// Called by the loop before a poll that may sleep: from now on a push must wake
    /// it. Returns whether items arrived meanwhile (then the poll must not sleep).
    ///
    /// The store is ordered before the check by the mutex: a push whose critical
    /// section comes after the check sees `notified == false` and writes to the
    /// eventfd; one that came before is seen by the check.
    pub(super) fn prepare_to_sleep(&self) -> bool {
        self.notified.store(false, Ordering::Release);
        let q = match self.queue.lock() {
            Ok(q) => q,
            Err(poisoned) => poisoned.into_inner(),
        };
        if q.is_empty() {
            false
        } else {
            // Awake after all: spare the senders the wake-up.
            self.notified.store(true, Ordering::Relaxed);
            true
        }
    }

    pub(super) fn close(&self) -> Vec<RemoteItem> {
        let mut q = match self.queue.lock() {
            Ok(q) => q,
            Err(poisoned) => poisoned.into_inner(),
        };
        self.closed.store(true, Ordering::Release);
        std::mem::take(&mut *q)
    }
}

/// The `Send + Sync` side of a loop: schedule callbacks on it from any thread.
///
/// Cloning is cheap (an `Arc`). The loop is woken through a `mio::Waker` (an eventfd):
/// calls made while the loop is awake cost no wake-up, and any number of calls made
/// while it sleeps cost one.
#[derive(Clone)]
pub struct ThreadsafeHandle {
    pub(super) remote: Arc<Remote>,
}

impl ThreadsafeHandle {
    /// Run `f` on the loop's thread, soon (asyncio's `call_soon_threadsafe()`).
    ///
    /// Calls from one thread run in the order they were made. `f` runs during the
    /// loop's next iteration, inside the loop, so [`get_running_loop`](crate::get_running_loop)
    /// works there. Errors with `"Event loop is closed"` once the loop is closed.
    pub fn call_soon_threadsafe(&self, f: impl FnOnce() + Send + 'static) -> Result<()> {
        if self.remote.push(RemoteItem::Call(Box::new(f))) {
            Ok(())
        } else {
            Err(Error::runtime("Event loop is closed"))
        }
    }
}

impl fmt::Debug for ThreadsafeHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadsafeHandle")
            .field("loop_id", &self.remote.loop_id)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base_events::EventLoop;
    use std::cell::{Cell, RefCell};
    use std::sync::atomic::AtomicUsize;
    use std::time::{Duration, Instant};

    thread_local! {
        static SENDERS_DONE: Cell<usize> = const { Cell::new(0) };
        static ALL_DONE: RefCell<Option<crate::Future<()>>> = const { RefCell::new(None) };
    }

    /// The wake-up protocol of the cross-thread inbox: senders write to the eventfd only
    /// when the loop may be asleep. Each sender makes one call at a time and the next as
    /// soon as the previous one ran, so calls often arrive while the loop is between
    /// its drain and its next sleep, the window in which a wake-up could be lost. A
    /// call that has not run after `LOST` counts as lost (the sender's next call, or
    /// its last one, then wakes the loop so the test ends).
    #[test]
    fn call_soon_threadsafe_never_loses_a_wake_up() {
        const SENDERS: usize = 2;
        const ROUNDS: usize = 2_000;
        const LOST: Duration = Duration::from_secs(2);
        let lp = EventLoop::new().unwrap();
        let all_done = lp.create_future::<()>();
        ALL_DONE.with(|a| *a.borrow_mut() = Some(all_done.clone()));
        SENDERS_DONE.set(0);
        let lost = Arc::new(AtomicUsize::new(0));
        let senders: Vec<_> = (0..SENDERS)
            .map(|_| {
                let h = lp.threadsafe_handle();
                let lost = lost.clone();
                std::thread::spawn(move || {
                    let ran = Arc::new(AtomicUsize::new(0));
                    for round in 1..=ROUNDS {
                        let r = ran.clone();
                        h.call_soon_threadsafe(move || {
                            r.fetch_add(1, Ordering::SeqCst);
                        })
                        .unwrap();
                        let t = Instant::now();
                        while ran.load(Ordering::SeqCst) < round {
                            if t.elapsed() > LOST {
                                lost.fetch_add(1, Ordering::SeqCst);
                                break;
                            }
                            std::thread::yield_now();
                        }
                        if lost.load(Ordering::SeqCst) > 0 {
                            break;
                        }
                    }
                    h.call_soon_threadsafe(|| {
                        SENDERS_DONE.set(SENDERS_DONE.get() + 1);
                        if SENDERS_DONE.get() == SENDERS {
                            let f = ALL_DONE.with(|a| a.borrow_mut().take());
                            f.unwrap().set_result(()).unwrap();
                        }
                    })
                    .unwrap();
                })
            })
            .collect();
        // The timeout only keeps a broken protocol from hanging the test.
        let out = lp.run_until_complete(crate::wait_for(all_done, Duration::from_secs(60)));
        for s in senders {
            s.join().unwrap();
        }
        assert_eq!(
            lost.load(Ordering::SeqCst),
            0,
            "a cross-thread call waited for a wake-up"
        );
        assert!(
            out.unwrap().is_ok(),
            "the last cross-thread calls never ran"
        );
        lp.close().unwrap();
    }
}
