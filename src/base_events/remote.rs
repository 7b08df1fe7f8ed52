//! The cross-thread side of a loop (asyncio's `call_soon_threadsafe` and its
//! self-pipe): a mutex-protected inbox that other threads push into, and a
//! `mio::Waker` (an eventfd) that wakes the loop's poll, written only when the loop may
//! be asleep.
//!
//! Closures cross threads in blocks: a call whose closure has the type of the closures
//! in the last queued block joins that block (up to [`BLOCK_BYTES`] of closures), so a
//! stream of calls from one call site costs one allocation per block, not one per
//! call, and the loop runs each block as one ready-queue entry. One box per call cost
//! more than all the rest of a cross-thread call: the sender allocates it and the loop
//! frees it, and glibc's per-thread cache serves neither side of that. A call that
//! starts a block allocates it before taking the lock (`Remote::last_block` tells it
//! whether it will), so that senders and the loop seldom wait for an allocation.

use std::any::{Any, TypeId};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::Inner;
use crate::exceptions::{Error, Result};

/// The largest cross-thread batch buffer (in items) a loop keeps for reuse.
pub(super) const REMOTE_SPARE_CAPACITY: usize = 4096;

/// The most closure storage (in bytes) one block takes: it holds calls until this full,
/// and at least one.
const BLOCK_BYTES: usize = 4096;

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
    /// The [`type_digest`] of the closures in the queue's last item if that is a block,
    /// else 0; written under the lock, read without it. A call whose closure type has
    /// another digest will start a block, so it allocates the block before taking the
    /// lock. Only a hint: it may be stale, and two types may share a digest.
    pub(super) last_block: AtomicU64,
}

/// A 64-bit digest of `F`'s `TypeId`, never 0 (folds to a constant once inlined).
fn type_digest<F: 'static>() -> u64 {
    struct Digest(u64);
    impl Hasher for Digest {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for &b in bytes {
                self.0 = self.0.rotate_left(8) ^ u64::from(b);
            }
        }
    }
    let mut d = Digest(0);
    TypeId::of::<F>().hash(&mut d);
    d.finish() | 1
}

/// What another thread can ask of the loop.
pub(crate) enum RemoteItem {
    /// Run these closures on the loop thread, in order (`call_soon_threadsafe`).
    Calls(Box<dyn Calls>),
    /// Schedule the task in this slab slot, if it is still the task with this waker
    /// tag (see `Inner::waker_tag`).
    Wake { key: usize, id: u64 },
}

/// A block of `call_soon_threadsafe` closures of one type, in call order.
pub(crate) trait Calls: Send {
    /// Run the closures in order, each as its own callback (a panic is reported and
    /// the next one runs). With `debug`, each is logged and timed as debug mode does
    /// with every ready entry.
    fn run(self: Box<Self>, lp: &Rc<Inner>, debug: bool);
    /// The block, for a downcast to its concrete type.
    fn as_any(&mut self) -> &mut dyn Any;
}

/// The one implementation of [`Calls`]. The first closure lives in the block itself, so
/// that a block of one call costs one allocation, as a boxed closure does.
struct Block<F> {
    first: F,
    /// The closures after the first, in call order.
    rest: Vec<F>,
}

impl<F: FnOnce() + Send + 'static> Block<F> {
    /// How many closures a block of this type takes.
    const CAPACITY: usize = match std::mem::size_of::<F>() {
        0 => BLOCK_BYTES,
        size if size >= BLOCK_BYTES => 1,
        size => BLOCK_BYTES / size,
    };

    /// Append `f` to `block` if it is a block of `F` with room; else hand `f` back.
    #[inline]
    fn append(block: &mut dyn Calls, f: F) -> std::result::Result<(), F> {
        match block.as_any().downcast_mut::<Block<F>>() {
            Some(b) if 1 + b.rest.len() < Self::CAPACITY => {
                b.rest.push(f);
                Ok(())
            }
            _ => Err(f),
        }
    }
}

impl<F: FnOnce() + Send + 'static> Calls for Block<F> {
    fn run(self: Box<Self>, lp: &Rc<Inner>, debug: bool) {
        let Block { first, rest } = *self;
        if debug {
            let run = |f: F| lp.run_timed("callback", || lp.run_callback(f));
            run(first);
            rest.into_iter().for_each(run);
        } else {
            lp.run_callback(first);
            if !rest.is_empty() {
                rest.into_iter().for_each(|f| lp.run_callback(f));
            }
        }
    }

    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
}

impl Remote {
    fn lock(&self) -> MutexGuard<'_, Vec<RemoteItem>> {
        match self.queue.lock() {
            Ok(q) => q,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Queue an item and wake the poll. Returns false (and drops the item) if the loop
    /// is closed.
    pub(crate) fn push(&self, item: RemoteItem) -> bool {
        self.push_item(item, 0)
    }

    /// [`Remote::push`] of an item whose [`type_digest`] is `digest` (0 if no block).
    fn push_item(&self, item: RemoteItem, digest: u64) -> bool {
        {
            let mut q = self.lock();
            if self.closed.load(Ordering::Acquire) {
                return false;
            }
            self.push_locked(&mut q, item, digest);
        }
        self.wake();
        true
    }

    /// Queue a call of `f` and wake the poll: `f` joins the last queued item if that is
    /// a block of closures of its type with room, else starts a new block. Returns
    /// false (and drops `f`) if the loop is closed.
    pub(crate) fn push_call<F: FnOnce() + Send + 'static>(&self, f: F) -> bool {
        let digest = type_digest::<F>();
        if Block::<F>::CAPACITY == 1 || self.last_block.load(Ordering::Relaxed) != digest {
            // A new block, allocated before the lock is taken. (Should the hint be
            // stale and the last block take `F` after all, this block goes after it.)
            let block = Box::new(Block {
                first: f,
                rest: Vec::new(),
            });
            return self.push_item(RemoteItem::Calls(block), digest);
        }
        {
            let mut q = self.lock();
            if self.closed.load(Ordering::Acquire) {
                return false;
            }
            let f = match q.last_mut() {
                Some(RemoteItem::Calls(last)) => match Block::append(&mut **last, f) {
                    // The queue was not empty: the push that made it so wakes the loop.
                    Ok(()) => return true,
                    Err(f) => f,
                },
                _ => f,
            };
            // The last block is full (or the hint was wrong): start one.
            let block = Box::new(Block {
                first: f,
                rest: Vec::new(),
            });
            self.push_locked(&mut q, RemoteItem::Calls(block), digest);
        }
        self.wake();
        true
    }

    /// Append `item` to the locked queue; `digest` is the [`type_digest`] of its
    /// closures if it is a block, else 0.
    #[inline]
    fn push_locked(&self, q: &mut Vec<RemoteItem>, item: RemoteItem, digest: u64) {
        if q.is_empty() {
            self.pending.store(true, Ordering::Release);
        }
        q.push(item);
        self.last_block.store(digest, Ordering::Relaxed);
    }

    /// Write to the eventfd unless the loop is awake or already woken.
    #[inline]
    fn wake(&self) {
        // A plain load first: while the loop is awake the flag stays set, and reading it
        // costs no read-modify-write. If the loop cleared it before our push, the mutex
        // orders that store before this load, so we see `false` and wake it.
        if !self.notified.load(Ordering::Acquire) && !self.notified.swap(true, Ordering::AcqRel) {
            if let Err(e) = self.waker.wake() {
                log::error!(target: "asyncio", "failed to wake the event loop: {e}");
            }
        }
    }

    /// Swap the queue with `batch` (an empty vector, usually with some capacity left
    /// from an earlier batch, so that senders rarely have to grow the queue).
    pub(super) fn take_into(&self, batch: &mut Vec<RemoteItem>) {
        let mut q = self.lock();
        self.pending.store(false, Ordering::Relaxed);
        self.last_block.store(0, Ordering::Relaxed);
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
        let q = self.lock();
        if q.is_empty() {
            false
        } else {
            // Awake after all: spare the senders the wake-up.
            self.notified.store(true, Ordering::Relaxed);
            true
        }
    }

    /// The task wakes queued now, as `(slot key, waker tag)` (for tests).
    #[cfg(test)]
    pub(crate) fn queued_wakes(&self) -> Vec<(usize, u64)> {
        self.lock()
            .iter()
            .filter_map(|item| match item {
                RemoteItem::Wake { key, id } => Some((*key, *id)),
                RemoteItem::Calls(_) => None,
            })
            .collect()
    }

    pub(super) fn close(&self) -> Vec<RemoteItem> {
        let mut q = self.lock();
        self.closed.store(true, Ordering::Release);
        std::mem::take(&mut *q)
    }
}

/// The `Send + Sync` side of a loop: schedule callbacks on it from any thread.
///
/// Cloning is cheap (an `Arc`). The loop is woken through a `mio::Waker` (an eventfd):
/// calls made while the loop is awake cost no wake-up, and any number of calls made
/// while it sleeps cost one. Calls queued in a row with closures of one type (from one
/// call site) share one allocation per block of them, and are run as one entry of the
/// loop's ready queue, each still as its own callback.
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
        if self.remote.push_call(f) {
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

    /// Queues `n` calls that each log `i` (their index): most with one closure type,
    /// every seventh with another, every thirteenth with a closure too large to share
    /// a block; so blocks fill up, and a call of another type ends a block.
    fn queue_logging_calls(h: &ThreadsafeHandle, log: &Arc<Mutex<Vec<usize>>>, n: usize) {
        for i in 0..n {
            let log = log.clone();
            if i % 13 == 5 {
                let big = [i as u8; BLOCK_BYTES];
                h.call_soon_threadsafe(move || {
                    assert_eq!(std::hint::black_box(big)[1], i as u8);
                    log.lock().unwrap().push(i);
                })
            } else if i % 7 == 3 {
                let j = i as u64;
                h.call_soon_threadsafe(move || log.lock().unwrap().push(j as usize))
            } else {
                h.call_soon_threadsafe(move || log.lock().unwrap().push(i))
            }
            .unwrap();
        }
    }

    #[test]
    fn calls_of_one_type_share_blocks_and_all_run_in_call_order() {
        for debug in [false, true] {
            let lp = EventLoop::new().unwrap();
            lp.set_debug(debug);
            let h = lp.threadsafe_handle();
            let log = Arc::new(Mutex::new(Vec::new()));
            // Calls of one closure type, from the thread that will run the loop.
            fn logger(log: &Arc<Mutex<Vec<usize>>>, i: usize) -> impl FnOnce() + Send + 'static {
                let log = log.clone();
                move || log.lock().unwrap().push(i)
            }
            fn per_block<F: FnOnce() + Send + 'static>(_: &F) -> usize {
                Block::<F>::CAPACITY
            }
            let n = 2 * per_block(&logger(&log, 0)) + 1;
            for i in 0..n {
                h.call_soon_threadsafe(logger(&log, i)).unwrap();
            }
            assert_eq!(
                h.remote.queue.lock().unwrap().len(),
                3,
                "{n} calls, 3 blocks"
            );
            // And a mix of types from another thread.
            let (h2, log2) = (h.clone(), log.clone());
            std::thread::spawn(move || queue_logging_calls(&h2, &log2, 5_000))
                .join()
                .unwrap();
            // Everything was queued before this task: it all ran by its second step.
            lp.run_until_complete(crate::sleep(Duration::ZERO)).unwrap();
            let expected: Vec<usize> = (0..n).chain(0..5_000).collect();
            assert_eq!(*log.lock().unwrap(), expected, "debug: {debug}");
            lp.close().unwrap();
        }
    }

    #[test]
    fn a_panicking_call_does_not_stop_the_rest_of_its_block() {
        let lp = EventLoop::new().unwrap();
        let errors = Rc::new(Cell::new(0));
        let e = errors.clone();
        lp.set_exception_handler(Some(move |_: &EventLoop, ctx: &crate::ExceptionContext| {
            assert_eq!(ctx.message, "Exception in callback");
            e.set(e.get() + 1);
        }));
        let h = lp.threadsafe_handle();
        let ran = Arc::new(Mutex::new(Vec::new()));
        for i in 0..3 {
            let ran = ran.clone();
            h.call_soon_threadsafe(move || {
                if i == 1 {
                    panic!("boom in a threadsafe call");
                }
                ran.lock().unwrap().push(i);
            })
            .unwrap();
        }
        assert_eq!(h.remote.queue.lock().unwrap().len(), 1, "one block");
        lp.run_until_complete(crate::sleep(Duration::ZERO)).unwrap();
        assert_eq!(*ran.lock().unwrap(), [0, 2]);
        assert_eq!(errors.get(), 1);
        lp.close().unwrap();
    }

    #[test]
    fn close_drops_the_calls_that_never_ran() {
        let lp = EventLoop::new().unwrap();
        let h = lp.threadsafe_handle();
        let token = Arc::new(());
        for _ in 0..10 {
            let t = token.clone();
            h.call_soon_threadsafe(move || drop(t)).unwrap();
        }
        assert_eq!(Arc::strong_count(&token), 11);
        lp.close().unwrap();
        assert_eq!(Arc::strong_count(&token), 1, "closed with the calls unrun");
        let t = token.clone();
        let err = h.call_soon_threadsafe(move || drop(t)).unwrap_err();
        assert!(err.to_string().contains("Event loop is closed"), "{err}");
        assert_eq!(Arc::strong_count(&token), 1, "a refused call is dropped");
    }

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
