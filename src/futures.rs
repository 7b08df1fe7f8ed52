//! asyncio's `Future` (`futures.py`): a slot for a result that arrives later.
//!
//! A [`Future<T>`] is pending until someone calls [`Future::set_result`],
//! [`Future::set_exception`] or [`Future::cancel`]; then it is done, for good. Done
//! callbacks are always scheduled with `call_soon`, never run synchronously, even when
//! the future is already done. It implements [`std::future::Future`]: any number of
//! tasks can `.await` a clone of it, and each receives a clone of the outcome (hence
//! `T: Clone` for awaiting).
//!
//! States: `PENDING -> FINISHED (result or exception)` or `PENDING -> CANCELLED`.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

use crate::base_events::{EventLoop, Inner};
use crate::events::ExceptionContext;
use crate::exceptions::{Error, Result};

enum State<T> {
    Pending,
    Finished(Result<T>),
    Cancelled,
}

/// The id of a done callback, for [`Future::remove_done_callback`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallbackId(u64);

type DoneCallback<T> = Box<dyn FnOnce(&Future<T>)>;

struct Shared<T> {
    lp: Weak<Inner>,
    state: RefCell<State<T>>,
    wakers: RefCell<Vec<Waker>>,
    callbacks: RefCell<Vec<(CallbackId, DoneCallback<T>)>>,
    next_callback: Cell<u64>,
    /// Whether someone looked at the exception (else it is reported on drop).
    retrieved: Cell<bool>,
}

/// asyncio's `Future` (also what `loop.create_future()` returns): a cheap, cloneable
/// handle to one eventual outcome.
///
/// ```
/// let lp = asyncio::EventLoop::new().unwrap();
/// let fut = lp.create_future::<u32>();
/// let f = fut.clone();
/// lp.call_soon(move || f.set_result(7).unwrap()).unwrap();
/// assert_eq!(lp.run_until_complete(fut).unwrap().unwrap(), 7);
/// ```
pub struct Future<T> {
    shared: Rc<Shared<T>>,
}

impl<T> Clone for Future<T> {
    fn clone(&self) -> Self {
        Future {
            shared: self.shared.clone(),
        }
    }
}

impl<T> fmt::Debug for Future<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &*self.shared.state.borrow() {
            State::Pending => "pending",
            State::Finished(Ok(_)) => "finished result",
            State::Finished(Err(_)) => "finished exception",
            State::Cancelled => "cancelled",
        };
        write!(f, "<Future {state}>")
    }
}

impl EventLoop {
    /// A new pending [`Future`] bound to this loop (asyncio's `create_future()`).
    pub fn create_future<T: 'static>(&self) -> Future<T> {
        Future::new(self)
    }
}

impl<T: 'static> Future<T> {
    /// A new pending future bound to `lp`.
    pub fn new(lp: &EventLoop) -> Future<T> {
        Future {
            shared: Rc::new(Shared {
                lp: Rc::downgrade(&lp.inner),
                state: RefCell::new(State::Pending),
                wakers: RefCell::new(Vec::new()),
                callbacks: RefCell::new(Vec::new()),
                next_callback: Cell::new(0),
                retrieved: Cell::new(false),
            }),
        }
    }

    /// Whether the future is done: finished with a result or exception, or cancelled.
    pub fn done(&self) -> bool {
        !matches!(&*self.shared.state.borrow(), State::Pending)
    }

    /// Whether the future was cancelled.
    pub fn cancelled(&self) -> bool {
        matches!(&*self.shared.state.borrow(), State::Cancelled)
    }

    /// Mark the future done with `value` and schedule its callbacks and awaiters.
    /// `InvalidStateError` if it is already done.
    pub fn set_result(&self, value: T) -> Result<()> {
        self.finish(State::Finished(Ok(value)))
    }

    /// Mark the future done with the error `e`. `InvalidStateError` if already done.
    /// If nobody ever retrieves the error (by awaiting, `result()` or `exception()`),
    /// it is reported as `"Future exception was never retrieved"` when the last handle
    /// is dropped.
    pub fn set_exception(&self, e: Error) -> Result<()> {
        if matches!(e, Error::Cancelled) {
            // asyncio refuses CancelledError here too; cancel() is the way.
            return Err(Error::invalid_state(
                "set_exception() cannot take CancelledError; use cancel()",
            ));
        }
        self.finish(State::Finished(Err(e)))
    }

    /// Cancel the future (asyncio's `cancel()`): if it is pending, it becomes cancelled,
    /// its callbacks are scheduled and its awaiters get `Error::Cancelled`; returns
    /// `true`. Returns `false` if it was already done.
    pub fn cancel(&self) -> bool {
        self.finish(State::Cancelled).is_ok()
    }

    fn finish(&self, new: State<T>) -> Result<()> {
        {
            let mut st = self.shared.state.borrow_mut();
            if !matches!(&*st, State::Pending) {
                drop(st); // Debug below borrows the state again
                return Err(Error::invalid_state(format!(
                    "invalid state: {self:?} is already done"
                )));
            }
            *st = new;
        }
        self.schedule_callbacks();
        Ok(())
    }

    fn schedule_callbacks(&self) {
        let wakers = std::mem::take(&mut *self.shared.wakers.borrow_mut());
        for w in wakers {
            w.wake();
        }
        let callbacks = std::mem::take(&mut *self.shared.callbacks.borrow_mut());
        if callbacks.is_empty() {
            return;
        }
        if let Some(lp) = self.shared.lp.upgrade() {
            for (_, cb) in callbacks {
                let fut = self.clone();
                lp.call_soon_internal(move || cb(&fut));
            }
        }
    }

    /// The result (asyncio's `result()`): the value if finished with one; the stored
    /// error if finished with an exception; `Error::Cancelled` if cancelled;
    /// `InvalidStateError("Result is not set.")` if pending.
    pub fn result(&self) -> Result<T>
    where
        T: Clone,
    {
        match &*self.shared.state.borrow() {
            State::Pending => Err(Error::invalid_state("Result is not set.")),
            State::Cancelled => Err(Error::Cancelled),
            State::Finished(r) => {
                self.shared.retrieved.set(true);
                r.clone()
            }
        }
    }

    /// The exception (asyncio's `exception()`): `Ok(None)` if finished with a result,
    /// `Ok(Some(e))` if with an error, `Err(Cancelled)` if cancelled,
    /// `Err(InvalidStateError)` if pending.
    pub fn exception(&self) -> Result<Option<Error>> {
        match &*self.shared.state.borrow() {
            State::Pending => Err(Error::invalid_state("Exception is not set.")),
            State::Cancelled => Err(Error::Cancelled),
            State::Finished(Ok(_)) => Ok(None),
            State::Finished(Err(e)) => {
                self.shared.retrieved.set(true);
                Ok(Some(e.clone()))
            }
        }
    }

    /// Call `f` once the future is done (asyncio's `add_done_callback()`). `f` is always
    /// scheduled with `call_soon`, never called synchronously, even if the future is
    /// already done. Callbacks run in the order they were added. Returns an id for
    /// [`Future::remove_done_callback`] (Rust closures cannot be compared).
    pub fn add_done_callback(&self, f: impl FnOnce(&Future<T>) + 'static) -> CallbackId {
        let id = CallbackId(self.shared.next_callback.get());
        self.shared.next_callback.set(id.0 + 1);
        if self.done() {
            if let Some(lp) = self.shared.lp.upgrade() {
                let fut = self.clone();
                lp.call_soon_internal(move || f(&fut));
            }
        } else {
            self.shared.callbacks.borrow_mut().push((id, Box::new(f)));
        }
        id
    }

    /// Remove a done callback that has not been scheduled yet (asyncio's
    /// `remove_done_callback()`). Returns how many were removed (0 or 1).
    pub fn remove_done_callback(&self, id: CallbackId) -> usize {
        let mut cbs = self.shared.callbacks.borrow_mut();
        let before = cbs.len();
        cbs.retain(|(cid, _)| *cid != id);
        before - cbs.len()
    }

    /// The loop this future is bound to, if it still exists (asyncio's `get_loop()`).
    pub fn get_loop(&self) -> Option<EventLoop> {
        self.shared.lp.upgrade().map(EventLoop::from_inner)
    }
}

impl<T: Clone + 'static> std::future::Future for Future<T> {
    type Output = Result<T>;

    /// Pending until done; then a clone of the outcome (`Err(Cancelled)` if cancelled).
    /// Cancel-safe: dropping the await leaves the future untouched.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        if self.done() {
            return Poll::Ready(self.result());
        }
        let mut wakers = self.shared.wakers.borrow_mut();
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        if self.retrieved.get() {
            return;
        }
        if let State::Finished(Err(e)) = &*self.state.borrow() {
            let ctx = ExceptionContext {
                message: "Future exception was never retrieved".into(),
                exception: Some(e.clone()),
                ..Default::default()
            };
            match self.lp.upgrade() {
                Some(lp) if !lp.is_closed() => lp.call_exception_handler(ctx),
                _ => crate::base_events::default_exception_handler(&ctx),
            }
        }
    }
}
