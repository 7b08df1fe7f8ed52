//! [`Semaphore`] and [`BoundedSemaphore`] (asyncio's `Semaphore`, `BoundedSemaphore`).

use std::cell::RefCell;
use std::fmt;
use std::future::Future as StdFuture;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::{wake_all, Slot, Waiters};
use crate::exceptions::{Error, Result};

/// A counter of permits for tasks (asyncio's `Semaphore`): [`acquire`](Semaphore::acquire)
/// takes one, waiting while there is none; [`release`](Semaphore::release) gives one
/// back, and may raise the count above the initial value.
///
/// Fair: waiters get permits in the order they started waiting, and a newcomer waits
/// behind them even if a permit is free (asyncio 3.11+). A release hands its permit
/// straight to the first waiter.
///
/// The count is a `usize`, so asyncio's `ValueError` for a negative initial value
/// cannot happen. [`Default`] is asyncio's `Semaphore()`: one permit.
///
/// ```
/// use std::rc::Rc;
/// use asyncio::Semaphore;
///
/// asyncio::run(async {
///     let sem = Rc::new(Semaphore::new(2));
///     let mut tasks = Vec::new();
///     for i in 0..4 {
///         let s = sem.clone();
///         tasks.push(asyncio::create_task(async move {
///             let _permit = s.permit().await; // `async with sem:`, at most 2 inside
///             asyncio::yield_now().await;
///             i
///         }));
///     }
///     for (i, t) in tasks.into_iter().enumerate() {
///         assert_eq!(t.await.unwrap(), i);
///     }
///     assert!(!sem.locked());
/// }).unwrap();
/// ```
pub struct Semaphore {
    state: RefCell<SemState>,
    /// The initial value, for a [`BoundedSemaphore`].
    bound: Option<usize>,
}

struct SemState {
    /// Free permits (granted ones are already taken off).
    value: usize,
    waiters: Waiters,
}

impl SemState {
    /// asyncio's `locked()`: no free permit, or someone is waiting (3.11+).
    fn locked(&self) -> bool {
        self.value == 0 || !self.waiters.is_empty()
    }

    /// asyncio's `_wake_up_next`: take a free permit and grant it to the first waiter
    /// not granted yet. `false` if there is none.
    fn wake_up_next(&mut self, out: &mut Vec<Waker>) -> bool {
        let Some(slot) = self.waiters.first_waiting() else {
            return false;
        };
        let slot = slot.clone();
        self.value -= 1;
        out.extend(slot.grant());
        true
    }

    /// Grant free permits to waiters for as long as there are both.
    fn wake_up_all_possible(&mut self) -> Vec<Waker> {
        let mut out = Vec::new();
        while self.value > 0 && self.wake_up_next(&mut out) {}
        out
    }
}

impl Default for Semaphore {
    /// One permit: asyncio's `Semaphore()`.
    fn default() -> Semaphore {
        Semaphore::new(1)
    }
}

impl Semaphore {
    /// A semaphore with `value` permits (asyncio's `Semaphore(value)`). Zero means the
    /// first `acquire` waits for a `release`.
    pub fn new(value: usize) -> Semaphore {
        Semaphore::with_bound(value, None)
    }

    fn with_bound(value: usize, bound: Option<usize>) -> Semaphore {
        Semaphore {
            state: RefCell::new(SemState {
                value,
                waiters: Waiters::default(),
            }),
            bound,
        }
    }

    /// Whether `acquire` would wait (asyncio 3.11+'s `locked()`): no permit is free, or
    /// tasks are already waiting.
    pub fn locked(&self) -> bool {
        self.state.borrow().locked()
    }

    /// Take a permit (asyncio's `await sem.acquire()`, which returns `True`; this
    /// returns `()`), waiting in FIFO order if none is free or others wait. The permit
    /// is kept until [`release`](Semaphore::release); for one given back on scope exit
    /// use [`permit`](Semaphore::permit).
    ///
    /// Cancel-safe: dropped while waiting, it leaves the queue; dropped after a permit
    /// was granted to it but before it returned, it gives the permit back, and the
    /// permit goes to the next waiter.
    pub async fn acquire(&self) {
        SemAcquire {
            sem: self,
            slot: None,
        }
        .await
    }

    /// Take a permit and get a guard that gives it back when dropped: asyncio's
    /// `async with sem:` (Rust-only form, since Rust has no async context managers).
    ///
    /// Cancel-safe like [`acquire`](Semaphore::acquire).
    pub async fn permit(&self) -> SemaphorePermit<'_> {
        self.acquire().await;
        SemaphorePermit { sem: self }
    }

    /// Give a permit back (asyncio's `release()`), granting it to the first waiter if
    /// any. The count may exceed the initial value (use a [`BoundedSemaphore`] to
    /// forbid that); at `usize::MAX` it stays there.
    pub fn release(&self) {
        // Unbounded: cannot fail.
        let _ = self.release_checked();
    }

    fn release_checked(&self) -> Result<()> {
        let wakers = {
            let mut st = self.state.borrow_mut();
            if let Some(bound) = self.bound {
                if st.value >= bound {
                    return Err(Error::value("BoundedSemaphore released too many times"));
                }
            }
            st.value = st.value.saturating_add(1);
            let mut out = Vec::new();
            st.wake_up_next(&mut out);
            out
        };
        wake_all(wakers);
        Ok(())
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state.borrow();
        let mut d = f.debug_struct(if self.bound.is_some() {
            "BoundedSemaphore"
        } else {
            "Semaphore"
        });
        d.field("value", &st.value)
            .field("waiters", &st.waiters.len());
        if let Some(b) = self.bound {
            d.field("bound", &b);
        }
        d.finish()
    }
}

struct SemAcquire<'a> {
    sem: &'a Semaphore,
    slot: Option<Rc<Slot>>,
}

impl StdFuture for SemAcquire<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let wakers = {
            let mut st = this.sem.state.borrow_mut();
            match &this.slot {
                None if !st.locked() => {
                    st.value -= 1;
                    return Poll::Ready(());
                }
                None => {
                    this.slot = Some(st.waiters.push(cx.waker()));
                    return Poll::Pending;
                }
                Some(slot) if slot.woken.get() => {
                    // The permit was taken off `value` for us when we were granted.
                    st.waiters.remove(slot);
                    this.slot = None;
                    // Newcomers queue behind waiters even when permits are free:
                    // grant as many as there are (asyncio's `finally` clause).
                    st.wake_up_all_possible()
                }
                Some(slot) => {
                    slot.register(cx.waker());
                    return Poll::Pending;
                }
            }
        };
        wake_all(wakers);
        Poll::Ready(())
    }
}

impl Drop for SemAcquire<'_> {
    fn drop(&mut self) {
        let Some(slot) = self.slot.take() else {
            return;
        };
        let wakers = {
            let mut st = self.sem.state.borrow_mut();
            st.waiters.remove(&slot);
            if slot.woken.get() {
                // Granted a permit we will never use: give it back.
                st.value = st.value.saturating_add(1);
            }
            st.wake_up_all_possible()
        };
        wake_all(wakers);
    }
}

/// A permit from [`Semaphore::permit`] or [`BoundedSemaphore::permit`], given back when
/// dropped (Rust's form of asyncio's `async with sem:`).
///
/// Dropping it is a `release()`. For a [`BoundedSemaphore`] that was released too many
/// times by other code meanwhile, that release fails; the drop then logs the
/// `ValueError` (target `asyncio`) instead of panicking.
#[must_use = "the permit is given back as soon as it is dropped"]
pub struct SemaphorePermit<'a> {
    sem: &'a Semaphore,
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.sem.release_checked() {
            log::warn!(target: "asyncio", "dropping a SemaphorePermit: {e}");
        }
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit")
            .field("semaphore", self.sem)
            .finish()
    }
}

/// A [`Semaphore`] whose count may not exceed its initial value (asyncio's
/// `BoundedSemaphore`): one release too many is
/// `Err(Error::Value("BoundedSemaphore released too many times"))`, the usual sign of a
/// bug that releases twice.
///
/// ```
/// use asyncio::{BoundedSemaphore, Error};
///
/// asyncio::run(async {
///     let sem = BoundedSemaphore::new(1);
///     sem.acquire().await;
///     assert!(sem.locked());
///     sem.release().unwrap();
///     assert!(matches!(sem.release(), Err(Error::Value(_))));
/// }).unwrap();
/// ```
pub struct BoundedSemaphore {
    sem: Semaphore,
}

impl Default for BoundedSemaphore {
    /// One permit: asyncio's `BoundedSemaphore()`.
    fn default() -> BoundedSemaphore {
        BoundedSemaphore::new(1)
    }
}

impl BoundedSemaphore {
    /// A semaphore with `value` permits that may never hold more (asyncio's
    /// `BoundedSemaphore(value)`).
    pub fn new(value: usize) -> BoundedSemaphore {
        BoundedSemaphore {
            sem: Semaphore::with_bound(value, Some(value)),
        }
    }

    /// Whether `acquire` would wait; see [`Semaphore::locked`].
    pub fn locked(&self) -> bool {
        self.sem.locked()
    }

    /// Take a permit; see [`Semaphore::acquire`] (FIFO, cancel-safe).
    pub async fn acquire(&self) {
        self.sem.acquire().await
    }

    /// Take a permit, given back when the guard drops; see [`Semaphore::permit`]
    /// (Rust-only form of `async with sem:`).
    pub async fn permit(&self) -> SemaphorePermit<'_> {
        self.sem.permit().await
    }

    /// Give a permit back (asyncio's `release()`). Errors with
    /// `Error::Value("BoundedSemaphore released too many times")` if every permit is
    /// already free; the count is then unchanged.
    pub fn release(&self) -> Result<()> {
        self.sem.release_checked()
    }
}

impl fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.sem.fmt(f)
    }
}
