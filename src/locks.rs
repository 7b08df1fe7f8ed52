//! Synchronization primitives for tasks of one loop (asyncio's `locks.py`): [`Lock`],
//! [`Event`], [`Condition`], [`Semaphore`], [`BoundedSemaphore`] and [`Barrier`].
//!
//! They are not thread-safe (neither are asyncio's): they synchronize the tasks of one
//! single-threaded loop, so they use `Cell` / `RefCell` and are shared with `Rc`.
//!
//! ```
//! use std::rc::Rc;
//! use asyncio::Lock;
//!
//! asyncio::run(async {
//!     let lock = Rc::new(Lock::new());
//!     let l = lock.clone();
//!     let task = asyncio::create_task(async move {
//!         let _guard = l.lock().await; // `async with lock:`
//!         "inside"
//!     });
//!     assert_eq!(task.await.unwrap(), "inside");
//!     assert!(!lock.locked());
//! }).unwrap();
//! ```
//!
//! ## Waiting and cancellation
//!
//! A waiting call (`acquire`, `wait`) is a future that puts a waiter at the back of a
//! FIFO queue, stores its task's [`Waker`] there and returns `Pending`; the call that
//! frees the resource marks the waiter at the front as *woken* and wakes its task.
//! Nothing polls in a loop.
//!
//! Cancellation in Rust is dropping the future (see [`crate::Task::cancel`],
//! [`crate::wait_for`]). Every waiting future here is **cancel-safe** in asyncio's
//! sense:
//!
//! - dropped while waiting, it leaves the queue (no trace stays behind);
//! - dropped after it was granted the lock or a permit but before it returned, it
//!   passes the grant on to the next waiter (or gives it back), as asyncio's
//!   `_wake_up_first` / `_wake_up_next` do, so nothing deadlocks;
//! - a [`Condition::wait`] dropped after a notify passes the notify on.
//!
//! ## Rust-only guards
//!
//! asyncio's `async with lock:` is [`Lock::lock`], which returns a [`LockGuard`] that
//! releases on drop; `async with sem:` is [`Semaphore::permit`] and its
//! [`SemaphorePermit`]. [`Lock::acquire`] keeps asyncio's meaning: the lock stays held
//! until [`Lock::release`].

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future as StdFuture;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use crate::exceptions::{Error, Result};

mod barrier;
mod condition;
mod semaphore;

pub use barrier::{Barrier, BarrierWait};
pub use condition::Condition;
pub use semaphore::{BoundedSemaphore, Semaphore, SemaphorePermit};

// ----- the waiter queue ----------------------------------------------------------------

/// One waiting future's place in a queue (asyncio's per-waiter `Future`).
struct Slot {
    /// Set by whoever grants this waiter (asyncio's `fut.set_result(True)`).
    woken: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl Slot {
    /// Remember the waker of the latest poll (cloned only if it changed).
    fn register(&self, waker: &Waker) {
        match self.waker.take() {
            Some(w) if w.will_wake(waker) => self.waker.set(Some(w)),
            _ => self.waker.set(Some(waker.clone())),
        }
    }

    /// Mark the waiter woken and hand back its waker, to be woken once no `RefCell`
    /// of the primitive is borrowed any more.
    fn grant(&self) -> Option<Waker> {
        self.woken.set(true);
        self.waker.take()
    }
}

/// A FIFO queue of waiters. A waiter is removed by its own future (when it returns or
/// is dropped), or by the primitive when it wakes every waiter it grants at once.
#[derive(Default)]
struct Waiters {
    queue: VecDeque<Rc<Slot>>,
}

impl Waiters {
    /// A new waiter at the back.
    fn push(&mut self, waker: &Waker) -> Rc<Slot> {
        let slot = Rc::new(Slot {
            woken: Cell::new(false),
            waker: Cell::new(Some(waker.clone())),
        });
        self.queue.push_back(slot.clone());
        slot
    }

    /// Take `slot` out of the queue, wherever it is (no-op if it is gone already).
    fn remove(&mut self, slot: &Rc<Slot>) {
        if let Some(i) = self.queue.iter().position(|s| Rc::ptr_eq(s, slot)) {
            self.queue.remove(i);
        }
    }

    /// The first waiter not granted yet.
    fn first_waiting(&self) -> Option<&Rc<Slot>> {
        self.queue.iter().find(|s| !s.woken.get())
    }

    /// Grant and remove up to `n` waiters from the front; their wakers.
    fn grant_front(&mut self, n: usize) -> Vec<Waker> {
        let n = n.min(self.queue.len());
        self.queue.drain(..n).filter_map(|s| s.grant()).collect()
    }

    fn len(&self) -> usize {
        self.queue.len()
    }

    fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

fn wake_all(wakers: Vec<Waker>) {
    for w in wakers {
        w.wake();
    }
}

// ----- Lock ----------------------------------------------------------------------------

/// A mutual-exclusion lock for tasks (asyncio's `Lock`). Not reentrant: a task that
/// holds it and acquires it again waits forever, as in asyncio.
///
/// Fair: waiters get the lock in the order they started waiting, and a newcomer never
/// takes it ahead of a waiter, even in the moment between a `release` and the woken
/// waiter's next step (then [`locked`](Lock::locked) is `false`, as in asyncio, but
/// `acquire` still queues).
///
/// The lock does not know its holder (asyncio's does not either): any code may call
/// [`release`](Lock::release). Share it with `Rc<Lock>`.
///
/// ```
/// use std::rc::Rc;
/// use asyncio::Lock;
///
/// asyncio::run(async {
///     let lock = Rc::new(Lock::new());
///     lock.acquire().await;
///     assert!(lock.locked());
///     let l = lock.clone();
///     let waiter = asyncio::create_task(async move {
///         l.acquire().await; // waits for the release below
///         l.release().unwrap();
///     });
///     asyncio::yield_now().await; // the waiter queues up
///     lock.release().unwrap();
///     waiter.await.unwrap();
///     assert!(!lock.locked());
///     assert!(lock.release().is_err()); // RuntimeError('Lock is not acquired.')
/// }).unwrap();
/// ```
#[derive(Default)]
pub struct Lock {
    state: RefCell<LockState>,
}

#[derive(Default)]
struct LockState {
    locked: bool,
    waiters: Waiters,
    /// Which acquisition holds the lock: a new number per acquisition, so a
    /// [`LockGuard`] releases only the acquisition it made.
    stamp: u64,
    next_stamp: u64,
}

impl LockState {
    /// Take the lock; the new acquisition's stamp.
    fn take(&mut self) -> u64 {
        self.locked = true;
        self.next_stamp += 1;
        self.stamp = self.next_stamp;
        self.stamp
    }

    /// asyncio's `_wake_up_first`: grant the front waiter unless it is granted already.
    /// At most one waiter is ever granted, and only while the lock is free.
    fn wake_up_first(&mut self) -> Option<Waker> {
        match self.waiters.queue.front() {
            Some(s) if !s.woken.get() => s.grant(),
            _ => None,
        }
    }
}

impl Lock {
    /// A new, unlocked lock (asyncio's `Lock()`).
    pub fn new() -> Lock {
        Lock::default()
    }

    /// Whether the lock is held (asyncio's `locked()`).
    pub fn locked(&self) -> bool {
        self.state.borrow().locked
    }

    /// Acquire the lock (asyncio's `await lock.acquire()`), waiting in FIFO order if it
    /// is held or others are waiting. The lock stays held after this returns, until
    /// [`release`](Lock::release) (asyncio's returns `True`; this returns `()`). For a
    /// lock released on scope exit use [`lock`](Lock::lock).
    ///
    /// Cancel-safe: dropped while waiting, it leaves the queue; dropped after the lock
    /// was handed to it but before it returned, it passes the lock on to the next
    /// waiter (or leaves it free), so the lock is never held by a dropped future.
    pub async fn acquire(&self) {
        self.acquire_stamped().await;
    }

    /// Acquire the lock and get a guard that releases it when dropped: asyncio's
    /// `async with lock:` (Rust-only form, since Rust has no async context managers).
    ///
    /// Cancel-safe like [`acquire`](Lock::acquire).
    pub async fn lock(&self) -> LockGuard<'_> {
        let stamp = self.acquire_stamped().await;
        LockGuard { lock: self, stamp }
    }

    /// Release the lock (asyncio's `release()`) and grant it to the first waiter, if
    /// any. Errors with `Error::Runtime("Lock is not acquired.")` if it is not held.
    pub fn release(&self) -> Result<()> {
        let waker = {
            let mut st = self.state.borrow_mut();
            if !st.locked {
                return Err(Error::runtime("Lock is not acquired."));
            }
            st.locked = false;
            st.wake_up_first()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    fn acquire_stamped(&self) -> LockAcquire<'_> {
        LockAcquire {
            lock: self,
            slot: None,
        }
    }

    /// The stamp of the current acquisition (for [`Condition::wait`]).
    fn stamp(&self) -> u64 {
        self.state.borrow().stamp
    }

    /// Make the current acquisition carry `stamp` again: [`Condition::wait`] gives a
    /// lock it released and re-acquired back to the guard that held it.
    fn restore_stamp(&self, stamp: u64) {
        self.state.borrow_mut().stamp = stamp;
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state.borrow();
        f.debug_struct("Lock")
            .field("locked", &st.locked)
            .field("waiters", &st.waiters.len())
            .finish()
    }
}

/// The waiting part of [`Lock::acquire`]; resolves to the acquisition's stamp.
struct LockAcquire<'a> {
    lock: &'a Lock,
    slot: Option<Rc<Slot>>,
}

impl StdFuture for LockAcquire<'_> {
    type Output = u64;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        let this = self.get_mut();
        let mut st = this.lock.state.borrow_mut();
        match &this.slot {
            None if !st.locked && st.waiters.is_empty() => Poll::Ready(st.take()),
            None => {
                this.slot = Some(st.waiters.push(cx.waker()));
                Poll::Pending
            }
            Some(slot) if slot.woken.get() => {
                // release() left the lock free for us; nobody else could take it
                // meanwhile, since newcomers queue behind us.
                st.waiters.remove(slot);
                this.slot = None;
                Poll::Ready(st.take())
            }
            Some(slot) => {
                slot.register(cx.waker());
                Poll::Pending
            }
        }
    }
}

impl Drop for LockAcquire<'_> {
    fn drop(&mut self) {
        let Some(slot) = self.slot.take() else {
            return;
        };
        let waker = {
            let mut st = self.lock.state.borrow_mut();
            st.waiters.remove(&slot);
            // Granted but never taken (or the lock is free for another reason): the
            // next waiter gets it.
            if st.locked {
                None
            } else {
                st.wake_up_first()
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// Holds a [`Lock`] from [`Lock::lock`] and releases it when dropped (Rust's form of
/// asyncio's `async with lock:`).
///
/// The guard releases only the acquisition it made: if the lock was released some
/// other way meanwhile (a call to [`Lock::release`], or a dropped [`Condition::wait`]
/// that left it released) the guard's drop does nothing, so it never releases a lock
/// that another task holds now.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a> {
    lock: &'a Lock,
    stamp: u64,
}

impl LockGuard<'_> {
    /// The lock this guard holds.
    pub fn lock(&self) -> &Lock {
        self.lock
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        let held = {
            let st = self.lock.state.borrow();
            st.locked && st.stamp == self.stamp
        };
        if held {
            // Cannot fail: the lock is held.
            let _ = self.lock.release();
        }
    }
}

impl fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("lock", self.lock)
            .finish()
    }
}

// ----- Event ---------------------------------------------------------------------------

/// A flag tasks can wait for (asyncio's `Event`): [`set`](Event::set) wakes every
/// waiter, [`clear`](Event::clear) resets it.
///
/// A waiter woken by `set` returns even if `clear` is called before it runs, as in
/// asyncio: it saw the event set.
///
/// ```
/// use std::rc::Rc;
/// use asyncio::Event;
///
/// asyncio::run(async {
///     let ev = Rc::new(Event::new());
///     let e = ev.clone();
///     let waiter = asyncio::create_task(async move { e.wait().await; "woken" });
///     asyncio::yield_now().await;
///     ev.set();
///     ev.clear(); // too late to stop the waiter
///     assert_eq!(waiter.await.unwrap(), "woken");
///     assert!(!ev.is_set());
/// }).unwrap();
/// ```
#[derive(Default)]
pub struct Event {
    state: RefCell<EventState>,
}

#[derive(Default)]
struct EventState {
    value: bool,
    waiters: Waiters,
}

impl Event {
    /// A new event, not set (asyncio's `Event()`).
    pub fn new() -> Event {
        Event::default()
    }

    /// Whether the event is set (asyncio's `is_set()`).
    pub fn is_set(&self) -> bool {
        self.state.borrow().value
    }

    /// Set the event and wake every waiter, in the order they started waiting
    /// (asyncio's `set()`). Later `wait` calls return at once until
    /// [`clear`](Event::clear). No-op if already set.
    pub fn set(&self) {
        let wakers = {
            let mut st = self.state.borrow_mut();
            if st.value {
                return;
            }
            st.value = true;
            let n = st.waiters.len();
            st.waiters.grant_front(n)
        };
        wake_all(wakers);
    }

    /// Reset the event (asyncio's `clear()`): later `wait` calls block until the next
    /// [`set`](Event::set). Waiters already woken by a `set` still return.
    pub fn clear(&self) {
        self.state.borrow_mut().value = false;
    }

    /// Wait until the event is set (asyncio's `await event.wait()`, which returns
    /// `True`; this returns `()`). Returns at once if it is set.
    ///
    /// Cancel-safe: dropped while waiting, it leaves the queue; there is nothing to
    /// pass on, since `set` wakes every waiter.
    pub async fn wait(&self) {
        EventWait {
            event: self,
            slot: None,
        }
        .await
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state.borrow();
        f.debug_struct("Event")
            .field("set", &st.value)
            .field("waiters", &st.waiters.len())
            .finish()
    }
}

struct EventWait<'a> {
    event: &'a Event,
    slot: Option<Rc<Slot>>,
}

impl StdFuture for EventWait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        match &this.slot {
            None => {
                let mut st = this.event.state.borrow_mut();
                if st.value {
                    return Poll::Ready(());
                }
                this.slot = Some(st.waiters.push(cx.waker()));
                Poll::Pending
            }
            Some(slot) if slot.woken.get() => {
                this.slot = None; // set() took it out of the queue
                Poll::Ready(())
            }
            Some(slot) => {
                slot.register(cx.waker());
                Poll::Pending
            }
        }
    }
}

impl Drop for EventWait<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.event.state.borrow_mut().waiters.remove(&slot);
        }
    }
}
