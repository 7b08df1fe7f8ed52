//! [`Condition`] (asyncio's `Condition`).

use std::cell::RefCell;
use std::fmt;
use std::future::Future as StdFuture;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::{wake_all, Lock, LockGuard, Slot, Waiters};
use crate::exceptions::{Error, Result};

/// A condition variable for tasks (asyncio's `Condition`): tasks holding its lock
/// [`wait`](Condition::wait) until another task [`notify`](Condition::notify)s them.
///
/// The lock is the condition's own ([`Condition::new`]) or one shared with other
/// conditions or code ([`Condition::with_lock`]); [`acquire`](Condition::acquire),
/// [`release`](Condition::release), [`locked`](Condition::locked) and
/// [`lock`](Condition::lock) are the lock's.
///
/// Waiters are notified in the order they started waiting. A notified waiter then
/// queues for the lock like any other acquirer.
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use asyncio::Condition;
///
/// asyncio::run(async {
///     let cond = Rc::new(Condition::new());
///     let ready = Rc::new(Cell::new(false));
///     let (c, r) = (cond.clone(), ready.clone());
///     let consumer = asyncio::create_task(async move {
///         let _guard = c.lock().await;       // async with cond:
///         c.wait_for(|| r.get()).await?;     //     await cond.wait_for(...)
///         Ok::<_, asyncio::Error>("ready")
///     });
///     asyncio::yield_now().await;
///     {
///         let _guard = cond.lock().await;
///         ready.set(true);
///         cond.notify(1).unwrap();
///     }
///     assert_eq!(consumer.await.unwrap().unwrap(), "ready");
///     assert!(!cond.locked());
/// }).unwrap();
/// ```
pub struct Condition {
    lock: Rc<Lock>,
    waiters: RefCell<Waiters>,
}

impl Default for Condition {
    fn default() -> Condition {
        Condition::new()
    }
}

impl Condition {
    /// A condition with a new lock of its own (asyncio's `Condition()`).
    pub fn new() -> Condition {
        Condition::with_lock(Rc::new(Lock::new()))
    }

    /// A condition over `lock`, which other conditions or code may share (asyncio's
    /// `Condition(lock)`).
    pub fn with_lock(lock: Rc<Lock>) -> Condition {
        Condition {
            lock,
            waiters: RefCell::new(Waiters::default()),
        }
    }

    /// Whether the lock is held; see [`Lock::locked`].
    pub fn locked(&self) -> bool {
        self.lock.locked()
    }

    /// Acquire the lock; see [`Lock::acquire`] (FIFO, cancel-safe).
    pub async fn acquire(&self) {
        self.lock.acquire().await
    }

    /// Acquire the lock with a guard that releases it on drop; see [`Lock::lock`]
    /// (Rust-only form of `async with cond:`). The guard stays valid across
    /// [`wait`](Condition::wait)s that return.
    pub async fn lock(&self) -> LockGuard<'_> {
        self.lock.lock().await
    }

    /// Release the lock; see [`Lock::release`].
    pub fn release(&self) -> Result<()> {
        self.lock.release()
    }

    /// Wait until notified (asyncio's `await cond.wait()`, which returns `True`; this
    /// returns `Ok(())`). The caller must hold the lock, else
    /// `Err(Error::Runtime("cannot wait on un-acquired lock"))`. It releases the lock,
    /// waits for a [`notify`](Condition::notify) or
    /// [`notify_all`](Condition::notify_all), then acquires the lock again (in FIFO order
    /// with other acquirers) before returning. A [`LockGuard`] that held the lock holds
    /// it again afterwards.
    ///
    /// Cancel-safe, with one departure from asyncio: asyncio re-acquires the lock
    /// before it lets `CancelledError` out, but a dropped Rust future cannot wait for
    /// anything. So a `wait` dropped at any point after it started leaves the lock
    /// **not held by the caller**: released while waiting for the notify, and, if it
    /// was dropped while re-acquiring, its place in the lock's queue is given up (a
    /// lock already handed to it goes to the next waiter). A notify it received but
    /// did not return from is passed on to the next waiter, so no wake-up is lost. A
    /// guard from [`lock`](Condition::lock) notices and does not release on drop.
    pub async fn wait(&self) -> Result<()> {
        if !self.lock.locked() {
            return Err(Error::runtime("cannot wait on un-acquired lock"));
        }
        let stamp = self.lock.stamp();
        self.lock.release()?;
        Notified {
            cond: self,
            slot: None,
        }
        .await;
        // Notified, not back yet: if dropped while re-acquiring, pass it on.
        let pass_on = PassOn {
            cond: self,
            armed: true,
        };
        self.lock.acquire_stamped().await;
        self.lock.restore_stamp(stamp);
        pass_on.disarm();
        Ok(())
    }

    /// Wait until `predicate` returns `true` (asyncio's `await cond.wait_for(pred)`):
    /// checks it, and [`wait`](Condition::wait)s and checks again while it is `false`.
    /// The caller must hold the lock, as for `wait`; as in asyncio, a predicate already
    /// true returns at once without checking that.
    ///
    /// Cancel-safe as [`wait`](Condition::wait) is.
    pub async fn wait_for(&self, mut predicate: impl FnMut() -> bool) -> Result<()> {
        while !predicate() {
            self.wait().await?;
        }
        Ok(())
    }

    /// Wake up to `n` waiters, the longest waiting first (asyncio's `notify(n)`; use
    /// `notify(1)` for its default). The caller must hold the lock, else
    /// `Err(Error::Runtime("cannot notify on un-acquired lock"))`. A woken waiter still
    /// needs the lock, which `notify` does not release. No-op if nobody waits.
    pub fn notify(&self, n: usize) -> Result<()> {
        if !self.lock.locked() {
            return Err(Error::runtime("cannot notify on un-acquired lock"));
        }
        self.notify_unchecked(n);
        Ok(())
    }

    /// Wake every waiter (asyncio's `notify_all()`); the lock rule of
    /// [`notify`](Condition::notify).
    pub fn notify_all(&self) -> Result<()> {
        self.notify(usize::MAX)
    }

    fn notify_unchecked(&self, n: usize) {
        let wakers = self.waiters.borrow_mut().grant_front(n);
        wake_all(wakers);
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition")
            .field("locked", &self.locked())
            .field("waiters", &self.waiters.borrow().len())
            .finish()
    }
}

/// The part of [`Condition::wait`] that waits for a notify.
struct Notified<'a> {
    cond: &'a Condition,
    slot: Option<Rc<Slot>>,
}

impl StdFuture for Notified<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        match &this.slot {
            None => {
                this.slot = Some(this.cond.waiters.borrow_mut().push(cx.waker()));
                Poll::Pending
            }
            Some(slot) if slot.woken.get() => {
                this.slot = None; // notify took it out of the queue
                Poll::Ready(())
            }
            Some(slot) => {
                slot.register(cx.waker());
                Poll::Pending
            }
        }
    }
}

impl Drop for Notified<'_> {
    fn drop(&mut self) {
        let Some(slot) = self.slot.take() else {
            return;
        };
        if slot.woken.get() {
            self.cond.notify_unchecked(1);
        } else {
            self.cond.waiters.borrow_mut().remove(&slot);
        }
    }
}

/// Passes a received notify on if [`Condition::wait`] is dropped before it returns.
struct PassOn<'a> {
    cond: &'a Condition,
    armed: bool,
}

impl PassOn<'_> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for PassOn<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.cond.notify_unchecked(1);
        }
    }
}
