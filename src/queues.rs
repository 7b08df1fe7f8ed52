//! Queues for passing items between tasks (CPython's `Lib/asyncio/queues.py`):
//! [`Queue`] (first in, first out), [`LifoQueue`] and [`PriorityQueue`].
//!
//! The three are one type, [`GenericQueue`], over a [`Storage`] that decides the order
//! ([`Fifo`], [`Lifo`], [`Priority`]), as asyncio's subclasses override `_put` and
//! `_get`. Every method takes `&self`: share a queue between tasks as an
//! `Rc<Queue<T>>`. The queue belongs to no loop; its waits are plain Rust futures that
//! park the task's [`Waker`] in a FIFO, so they work in any task of this crate.
//!
//! ```
//! use std::rc::Rc;
//!
//! let total = asyncio::run(async {
//!     let q = Rc::new(asyncio::Queue::new(2));
//!     let consumer = asyncio::create_task({
//!         let q = q.clone();
//!         async move {
//!             let mut total = 0;
//!             while let Ok(n) = q.get().await {
//!                 total += n;
//!                 q.task_done().unwrap();
//!             }
//!             total // get() failed: the queue is shut down and empty
//!         }
//!     });
//!     for n in 1..=10 {
//!         q.put(n).await.unwrap(); // waits while two items are queued
//!     }
//!     q.join().await; // every item was got and marked done
//!     q.shutdown(false);
//!     consumer.await.unwrap()
//! })
//! .unwrap();
//! assert_eq!(total, 55);
//! ```
//!
//! ## Order of wake-ups
//!
//! Blocked getters are woken one per item put, oldest first; blocked putters one per
//! item got, oldest first. A woken waiter re-checks the queue when its task runs: if
//! another task took the item (or the room) first, it waits again, at the back of the
//! line, exactly as asyncio's `while self.empty(): ...` loop does.
//!
//! ## Cancel safety
//!
//! Cancelling a task drops the future it awaits. A dropped [`Get`] never loses an item
//! (an item leaves the queue only when `get` returns it) and a dropped [`Put`] drops its
//! item; either leaves no trace in the queue. A waiter dropped after it was woken but
//! before its task ran passes the wake-up on to the next waiter in line when the queue
//! still has an item (or room) for it, so nobody is left stranded.
//!
//! ## Errors
//!
//! `put_nowait` and `put` hand a refused item back in [`PutNowaitError`] / [`PutError`]
//! instead of dropping it: a Python caller still holds its object after `QueueFull`,
//! a Rust caller moved it into the call. Both convert into [`Error::QueueFull`] /
//! [`Error::QueueShutDown`] for `?`. `get_nowait` and `get` have nothing to hand back
//! and return [`Error::QueueEmpty`] / [`Error::QueueShutDown`] directly.

mod errors;
mod storage;
mod waiters;

use std::cell::RefCell;
use std::fmt;
use std::future::Future as StdFuture;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::exceptions::{Error, Result};
pub use errors::{PutError, PutNowaitError};
pub use storage::{Fifo, Lifo, Priority, Storage};
use waiters::{Turn, Waiters};

/// A first-in, first-out queue (asyncio's `Queue`).
///
/// ```
/// asyncio::run(async {
///     let q = asyncio::Queue::new(0); // unbounded
///     q.put_nowait("a").unwrap();
///     q.put("b").await.unwrap();
///     assert_eq!(q.get().await.unwrap(), "a");
///     assert_eq!(q.get_nowait().unwrap(), "b");
///     assert!(matches!(q.get_nowait(), Err(asyncio::Error::QueueEmpty)));
/// })
/// .unwrap();
/// ```
pub type Queue<T> = GenericQueue<T, Fifo<T>>;

/// A last-in, first-out queue (asyncio's `LifoQueue`).
///
/// ```
/// asyncio::run(async {
///     let q = asyncio::LifoQueue::new(0);
///     for n in [1, 2, 3] {
///         q.put_nowait(n).unwrap();
///     }
///     assert_eq!(q.get().await.unwrap(), 3);
///     assert_eq!(q.get().await.unwrap(), 2);
/// })
/// .unwrap();
/// ```
pub type LifoQueue<T> = GenericQueue<T, Lifo<T>>;

/// A queue that gives the smallest item first (asyncio's `PriorityQueue`, a `heapq`
/// min-heap); see [`Priority`] for how equal items are ordered. `T` must be [`Ord`].
///
/// ```
/// asyncio::run(async {
///     let q = asyncio::PriorityQueue::new(0);
///     for job in [(2, "later"), (1, "first"), (3, "last")] {
///         q.put_nowait(job).unwrap();
///     }
///     assert_eq!(q.get().await.unwrap(), (1, "first"));
///     assert_eq!(q.get().await.unwrap(), (2, "later"));
/// })
/// .unwrap();
/// ```
pub type PriorityQueue<T> = GenericQueue<T, Priority<T>>;

/// The queue behind [`Queue`], [`LifoQueue`] and [`PriorityQueue`], generic over the
/// [`Storage`] that orders its items (asyncio's `Queue` with its overridable `_put` and
/// `_get`).
///
/// Methods take `&self`; share a queue as an `Rc<GenericQueue<..>>`. It is not `Send`:
/// like the loop, it lives on one thread.
///
/// ```
/// use std::rc::Rc;
///
/// asyncio::run(async {
///     let q = Rc::new(asyncio::Queue::new(1));
///     let getter = asyncio::create_task({
///         let q = q.clone();
///         async move { q.get().await.unwrap() }
///     });
///     q.put(7).await.unwrap();
///     assert_eq!(getter.await.unwrap(), 7);
/// })
/// .unwrap();
/// ```
pub struct GenericQueue<T, S> {
    state: RefCell<State<S>>,
    _item: std::marker::PhantomData<fn(T) -> T>,
}

struct State<S> {
    items: S,
    maxsize: usize,
    getters: Waiters,
    putters: Waiters,
    joiners: Waiters,
    /// Items put and not yet marked done (asyncio's `_unfinished_tasks`).
    unfinished: usize,
    shut_down: bool,
}

impl<S> State<S> {
    fn is_full<T>(&self) -> bool
    where
        S: Storage<T>,
    {
        self.maxsize > 0 && self.items.len() >= self.maxsize
    }
}

fn wake(w: Option<Waker>) {
    if let Some(w) = w {
        w.wake();
    }
}

impl<T, S: Storage<T> + Default> GenericQueue<T, S> {
    /// A queue that holds at most `maxsize` items; `0` means no limit (asyncio's
    /// `Queue(maxsize=0)`, where any `maxsize <= 0` means no limit).
    pub fn new(maxsize: usize) -> Self {
        GenericQueue {
            state: RefCell::new(State {
                items: S::default(),
                maxsize,
                getters: Waiters::default(),
                putters: Waiters::default(),
                joiners: Waiters::default(),
                unfinished: 0,
                shut_down: false,
            }),
            _item: std::marker::PhantomData,
        }
    }

    /// A queue without a size limit: `new(0)`.
    pub fn unbounded() -> Self {
        Self::new(0)
    }
}

impl<T, S: Storage<T>> GenericQueue<T, S> {
    /// How many items the queue holds (asyncio's `qsize()`). Exact: nothing runs
    /// between this call and the next operation on the queue.
    pub fn qsize(&self) -> usize {
        self.state.borrow().items.len()
    }

    /// The most items the queue holds; `0` means no limit (asyncio's `maxsize`).
    pub fn maxsize(&self) -> usize {
        self.state.borrow().maxsize
    }

    /// Whether the queue holds no item (asyncio's `empty()`).
    pub fn empty(&self) -> bool {
        self.state.borrow().items.is_empty()
    }

    /// Whether the queue holds `maxsize` items; never for an unbounded queue (asyncio's
    /// `full()`).
    pub fn full(&self) -> bool {
        self.state.borrow().is_full()
    }

    /// Whether [`shutdown`](Self::shutdown) was called (asyncio has no public twin; it
    /// keeps `_is_shutdown`).
    pub fn is_shut_down(&self) -> bool {
        self.state.borrow().shut_down
    }

    /// Put an item without waiting (asyncio's `put_nowait`), and wake the oldest
    /// blocked getter. Counts one more unfinished item for [`join`](Self::join).
    ///
    /// Refuses with [`PutNowaitError::ShutDown`] after [`shutdown`](Self::shutdown),
    /// else with [`PutNowaitError::Full`] when the queue is full; either hands the item
    /// back (see the [module docs](self) on why).
    pub fn put_nowait(&self, item: T) -> std::result::Result<(), PutNowaitError<T>> {
        let mut st = self.state.borrow_mut();
        if st.shut_down {
            return Err(PutNowaitError::ShutDown(item));
        }
        if st.is_full() {
            return Err(PutNowaitError::Full(item));
        }
        st.items.push(item);
        st.unfinished += 1;
        let w = st.getters.wake_next();
        drop(st);
        wake(w);
        Ok(())
    }

    /// Take the next item without waiting (asyncio's `get_nowait`), and wake the oldest
    /// blocked putter.
    ///
    /// An empty queue gives [`Error::QueueEmpty`], or [`Error::QueueShutDown`] once it
    /// is shut down. After a `shutdown(false)` the items still queued are given out.
    pub fn get_nowait(&self) -> Result<T> {
        let mut st = self.state.borrow_mut();
        match st.items.pop() {
            Some(item) => {
                let w = st.putters.wake_next();
                drop(st);
                wake(w);
                Ok(item)
            }
            None if st.shut_down => Err(Error::QueueShutDown),
            None => Err(Error::QueueEmpty),
        }
    }

    /// Put an item, waiting while the queue is full (asyncio's `put`).
    ///
    /// Blocked putters proceed oldest first, one per item taken out. Fails with
    /// [`PutError`], handing the item back, when the queue is shut down before or while
    /// it waits.
    ///
    /// Cancel-safe: dropping the future before it completes drops the item (it was never
    /// queued) and removes the putter from the line; if it had already been woken, the
    /// wake-up goes to the next putter while the queue has room.
    pub fn put(&self, item: T) -> Put<'_, T, S> {
        Put {
            queue: self,
            item: Some(item),
            key: None,
        }
    }

    /// Take the next item, waiting while the queue is empty (asyncio's `get`).
    ///
    /// Blocked getters proceed oldest first, one per item put. Fails with
    /// [`Error::QueueShutDown`] when the queue is shut down and empty, at once or while
    /// it waits (after `shutdown(true)` the queue is emptied, so every get fails).
    ///
    /// Cancel-safe: an item leaves the queue only in the poll that returns it, so
    /// dropping the future never loses one; a dropped getter leaves the line, and if it
    /// had already been woken, the wake-up goes to the next getter while the queue holds
    /// an item.
    pub fn get(&self) -> Get<'_, T, S> {
        Get {
            queue: self,
            key: None,
        }
    }

    /// Mark one item got earlier as processed (asyncio's `task_done`); when no
    /// unfinished item is left, every [`join`](Self::join) returns.
    ///
    /// Called more often than items were put: `Err(Error::Value("task_done() called too
    /// many times"))`, and nothing changes.
    pub fn task_done(&self) -> Result<()> {
        let mut st = self.state.borrow_mut();
        if st.unfinished == 0 {
            return Err(Error::value("task_done() called too many times"));
        }
        st.unfinished -= 1;
        let mut wakers = Vec::new();
        if st.unfinished == 0 {
            st.joiners.wake_all(&mut wakers);
        }
        drop(st);
        wakers.into_iter().for_each(Waker::wake);
        Ok(())
    }

    /// Wait until every item put has been marked done with
    /// [`task_done`](Self::task_done) (asyncio's `join`). Returns at once when nothing is
    /// unfinished. Like asyncio's (an `Event`), a join woken by the count reaching zero
    /// returns even if another item is put before its task runs.
    ///
    /// Cancel-safe: dropping the future only removes it from the line.
    pub fn join(&self) -> Join<'_, T, S> {
        Join {
            queue: self,
            key: None,
        }
    }

    /// Shut the queue down (asyncio 3.13's `shutdown(immediate)`).
    ///
    /// From now on puts fail ([`PutNowaitError::ShutDown`], [`PutError`]), and gets
    /// fail with [`Error::QueueShutDown`] once the queue is empty. Every blocked putter
    /// and getter is woken: putters fail, getters take what is left or fail.
    ///
    /// With `immediate`, the queued items are dropped now and each counts as done, so
    /// [`join`](Self::join) returns unless items already got are still unfinished.
    /// Calling it again is allowed (a later `immediate` call still drains).
    pub fn shutdown(&self, immediate: bool) {
        let mut st = self.state.borrow_mut();
        st.shut_down = true;
        let mut dropped = Vec::new();
        let mut wakers = Vec::new();
        if immediate {
            while let Some(item) = st.items.pop() {
                dropped.push(item);
                st.unfinished = st.unfinished.saturating_sub(1);
            }
            if st.unfinished == 0 {
                st.joiners.wake_all(&mut wakers);
            }
        }
        st.getters.wake_all(&mut wakers);
        st.putters.wake_all(&mut wakers);
        drop(st);
        // The items' destructors and the wake-ups run with the queue not borrowed.
        drop(dropped);
        wakers.into_iter().for_each(Waker::wake);
    }
}

impl<T, S: Storage<T>> fmt::Debug for GenericQueue<T, S> {
    /// Sizes and counts only (asyncio's `repr`); the items need not be `Debug`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Queue");
        if let Ok(st) = self.state.try_borrow() {
            d.field("maxsize", &st.maxsize)
                .field("qsize", &st.items.len())
                .field("getters", &st.getters.len())
                .field("putters", &st.putters.len())
                .field("unfinished", &st.unfinished)
                .field("shut_down", &st.shut_down);
        }
        d.finish_non_exhaustive()
    }
}

/// The future of [`GenericQueue::put`]; see there for ordering, shutdown and cancel
/// safety.
///
/// Polled again after it completed, it stays pending (its item is gone).
///
/// ```
/// use std::time::Duration;
///
/// asyncio::run(async {
///     let q = asyncio::Queue::new(1);
///     q.put_nowait(1).unwrap();
///     // Full: the put waits, the timeout drops it, and its item with it.
///     let r = asyncio::wait_for(q.put(2), Duration::from_millis(1)).await;
///     assert!(r.unwrap_err().is_timeout());
///     assert_eq!(q.qsize(), 1);
/// })
/// .unwrap();
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct Put<'a, T, S: Storage<T>> {
    queue: &'a GenericQueue<T, S>,
    /// `None` once the item was queued (or handed back).
    item: Option<T>,
    /// The putter's place in line while it waits.
    key: Option<usize>,
}

// The item is only moved, never pinned.
impl<T, S: Storage<T>> Unpin for Put<'_, T, S> {}

impl<T, S: Storage<T>> StdFuture for Put<'_, T, S> {
    type Output = std::result::Result<(), PutError<T>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let Some(item) = this.item.take() else {
            // Polled after it completed: nothing left to put.
            return Poll::Pending;
        };
        let mut st = this.queue.state.borrow_mut();
        if let Some(key) = this.key {
            if st.putters.poll(key, cx.waker()) == Turn::Waiting {
                this.item = Some(item);
                return Poll::Pending;
            }
            this.key = None;
        }
        if st.shut_down {
            return Poll::Ready(Err(PutError(item)));
        }
        if st.is_full() {
            this.key = Some(st.putters.register(cx.waker()));
            this.item = Some(item);
            return Poll::Pending;
        }
        st.items.push(item);
        st.unfinished += 1;
        let w = st.getters.wake_next();
        drop(st);
        wake(w);
        Poll::Ready(Ok(()))
    }
}

impl<T, S: Storage<T>> Drop for Put<'_, T, S> {
    fn drop(&mut self) {
        let Some(key) = self.key else { return };
        let Ok(mut st) = self.queue.state.try_borrow_mut() else {
            return;
        };
        let mut w = None;
        if st.putters.cancel(key) && !st.is_full() {
            // Woken for a free slot it will not use: pass the turn on.
            w = st.putters.wake_next();
        }
        drop(st);
        wake(w);
    }
}

impl<T, S: Storage<T>> fmt::Debug for Put<'_, T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Put")
            .field("waiting", &self.key.is_some())
            .finish_non_exhaustive()
    }
}

/// The future of [`GenericQueue::get`]; see there for ordering, shutdown and cancel
/// safety.
///
/// Polled again after it completed, it acts as a fresh `get`.
///
/// ```
/// use std::time::Duration;
///
/// asyncio::run(async {
///     let q = asyncio::Queue::<i32>::new(0);
///     // Empty: the get waits and the timeout drops it; nothing is lost.
///     let r = asyncio::wait_for(q.get(), Duration::from_millis(1)).await;
///     assert!(r.unwrap_err().is_timeout());
///     q.put_nowait(1).unwrap();
///     assert_eq!(q.get().await.unwrap(), 1);
/// })
/// .unwrap();
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct Get<'a, T, S: Storage<T>> {
    queue: &'a GenericQueue<T, S>,
    /// The getter's place in line while it waits.
    key: Option<usize>,
}

impl<T, S: Storage<T>> StdFuture for Get<'_, T, S> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let this = &mut *self;
        let mut st = this.queue.state.borrow_mut();
        if let Some(key) = this.key {
            if st.getters.poll(key, cx.waker()) == Turn::Waiting {
                return Poll::Pending;
            }
            this.key = None;
        }
        if let Some(item) = st.items.pop() {
            let w = st.putters.wake_next();
            drop(st);
            wake(w);
            return Poll::Ready(Ok(item));
        }
        if st.shut_down {
            return Poll::Ready(Err(Error::QueueShutDown));
        }
        this.key = Some(st.getters.register(cx.waker()));
        Poll::Pending
    }
}

impl<T, S: Storage<T>> Drop for Get<'_, T, S> {
    fn drop(&mut self) {
        let Some(key) = self.key else { return };
        let Ok(mut st) = self.queue.state.try_borrow_mut() else {
            return;
        };
        let mut w = None;
        if st.getters.cancel(key) && !st.items.is_empty() {
            // Woken for an item it will not take: pass the turn on.
            w = st.getters.wake_next();
        }
        drop(st);
        wake(w);
    }
}

impl<T, S: Storage<T>> fmt::Debug for Get<'_, T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Get")
            .field("waiting", &self.key.is_some())
            .finish_non_exhaustive()
    }
}

/// The future of [`GenericQueue::join`]; see there.
///
/// ```
/// asyncio::run(async {
///     let q = asyncio::Queue::new(0);
///     q.put_nowait("job").unwrap();
///     let job = q.get().await.unwrap();
///     assert_eq!(job, "job");
///     q.task_done().unwrap();
///     q.join().await; // nothing unfinished: returns at once
/// })
/// .unwrap();
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct Join<'a, T, S: Storage<T>> {
    queue: &'a GenericQueue<T, S>,
    key: Option<usize>,
}

impl<T, S: Storage<T>> StdFuture for Join<'_, T, S> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let mut st = this.queue.state.borrow_mut();
        if let Some(key) = this.key {
            if st.joiners.poll(key, cx.waker()) == Turn::Waiting {
                return Poll::Pending;
            }
            this.key = None;
            return Poll::Ready(());
        }
        if st.unfinished == 0 {
            return Poll::Ready(());
        }
        this.key = Some(st.joiners.register(cx.waker()));
        Poll::Pending
    }
}

impl<T, S: Storage<T>> Drop for Join<'_, T, S> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            if let Ok(mut st) = self.queue.state.try_borrow_mut() {
                st.joiners.cancel(key);
            }
        }
    }
}

impl<T, S: Storage<T>> fmt::Debug for Join<'_, T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Join")
            .field("waiting", &self.key.is_some())
            .finish_non_exhaustive()
    }
}
