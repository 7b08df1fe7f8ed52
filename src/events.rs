//! Callback handles and the exception-handler context (asyncio's `events.py`).
//!
//! `call_soon` returns a [`Handle`]; `call_later` and `call_at` return a [`TimerHandle`].
//! Both let the caller cancel the callback before it runs. A handle is one allocation
//! that holds the callback and its cancelled flag; the loop's ready queue and timer heap
//! hold the same allocation, so scheduling a callback costs one `malloc`.
//!
//! [`get_running_loop`] lives here, as in asyncio.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::{Rc, Weak};
use std::time::Instant;

use crate::base_events::{EventLoop, Inner};
use crate::exceptions::{Error, Result};

/// A unit of work in the ready queue or the timer heap.
///
/// Implemented by the boxed user callbacks behind [`Handle`], and by runtime internals
/// (a `sleep`'s timer) that want to live in the heap without a second allocation.
pub(crate) trait Callback {
    /// Run the callback if it was not cancelled. Called at most once.
    fn run(&self);
    /// Mark cancelled and drop the callback's captures now (asyncio drops `_callback`).
    fn cancel(&self);
    /// Whether [`Callback::cancel`] was called.
    fn cancelled(&self) -> bool;
    /// Whether this callback sits in the timer heap (so cancelling it counts towards
    /// the lazy-purge rule).
    fn in_heap(&self) -> bool;
    /// Record whether this callback sits in the timer heap.
    fn set_in_heap(&self, v: bool);
}

/// The allocation behind a [`Handle`]: the closure and its state.
pub(crate) struct CallbackCell<F> {
    cancelled: Cell<bool>,
    in_heap: Cell<bool>,
    f: Cell<Option<F>>,
}

impl<F: FnOnce() + 'static> CallbackCell<F> {
    pub(crate) fn new(f: F) -> Rc<Self> {
        Rc::new(CallbackCell {
            cancelled: Cell::new(false),
            in_heap: Cell::new(false),
            f: Cell::new(Some(f)),
        })
    }
}

impl<F: FnOnce() + 'static> Callback for CallbackCell<F> {
    fn run(&self) {
        if self.cancelled.get() {
            return;
        }
        if let Some(f) = self.f.take() {
            f();
        }
    }
    fn cancel(&self) {
        if !self.cancelled.replace(true) {
            drop(self.f.take());
        }
    }
    fn cancelled(&self) -> bool {
        self.cancelled.get()
    }
    fn in_heap(&self) -> bool {
        self.in_heap.get()
    }
    fn set_in_heap(&self, v: bool) {
        self.in_heap.set(v);
    }
}

/// A callback scheduled with [`EventLoop::call_soon`] (asyncio's `events.Handle`).
///
/// Dropping a `Handle` does not cancel the callback; only [`Handle::cancel`] does.
#[derive(Clone)]
pub struct Handle {
    pub(crate) cb: Rc<dyn Callback>,
}

impl Handle {
    /// Cancel the callback: if it has not run yet, it never will, and whatever it
    /// captured is dropped now. Idempotent (asyncio's `Handle.cancel()`).
    pub fn cancel(&self) {
        self.cb.cancel();
    }

    /// Whether [`Handle::cancel`] was called (asyncio's `Handle.cancelled()`).
    pub fn cancelled(&self) -> bool {
        self.cb.cancelled()
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("cancelled", &self.cancelled())
            .finish()
    }
}

/// A callback scheduled for a point in time with [`EventLoop::call_later`] or
/// [`EventLoop::call_at`] (asyncio's `events.TimerHandle`).
///
/// Cancelling marks the timer; the loop removes cancelled timers lazily, rebuilding the
/// heap when more than half of it is cancelled (asyncio's rule), so `cancel` is O(1).
#[derive(Clone)]
pub struct TimerHandle {
    pub(crate) cb: Rc<dyn Callback>,
    pub(crate) when: Instant,
    pub(crate) lp: Weak<Inner>,
}

impl TimerHandle {
    /// Cancel the timer: its callback never runs and its captures are dropped now.
    /// Idempotent (asyncio's `TimerHandle.cancel()`).
    pub fn cancel(&self) {
        if !self.cb.cancelled() {
            self.cb.cancel();
            if self.cb.in_heap() {
                if let Some(lp) = self.lp.upgrade() {
                    lp.timer_cancelled();
                }
            }
        }
    }

    /// Whether [`TimerHandle::cancel`] was called.
    pub fn cancelled(&self) -> bool {
        self.cb.cancelled()
    }

    /// The time the callback is scheduled for, on the loop's clock (asyncio's `when()`).
    pub fn when(&self) -> Instant {
        self.when
    }
}

impl fmt::Debug for TimerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerHandle")
            .field("when", &self.when)
            .field("cancelled", &self.cancelled())
            .finish()
    }
}

/// What [`EventLoop::call_exception_handler`] receives: asyncio's context dict as a struct.
///
/// `message` is always set; the other fields are set when they apply, as the keys of
/// asyncio's dict are (`exception`, `task`, `future`, `handle`, `protocol`, `transport`,
/// `socket`). Objects are described by a string rather than referenced, so a context
/// can outlive what it describes.
#[derive(Debug, Clone, Default)]
pub struct ExceptionContext {
    /// What happened, e.g. `"Exception in callback"` or `"Task exception was never retrieved"`.
    pub message: String,
    /// The error, if there is one.
    pub exception: Option<Error>,
    /// The task involved, by name.
    pub task: Option<String>,
    /// The future involved, described.
    pub future: Option<String>,
    /// The callback handle involved, described.
    pub handle: Option<String>,
    /// The protocol involved, described.
    pub protocol: Option<String>,
    /// The transport involved, described.
    pub transport: Option<String>,
    /// The socket involved, described (usually its addresses).
    pub socket: Option<String>,
}

impl ExceptionContext {
    /// A context with just a message.
    pub fn new(message: impl Into<String>) -> ExceptionContext {
        ExceptionContext {
            message: message.into(),
            ..Default::default()
        }
    }

    /// Set the `exception` field.
    pub fn with_exception(mut self, e: Error) -> ExceptionContext {
        self.exception = Some(e);
        self
    }

    /// Render like asyncio's default handler: the message, then `key: value` lines.
    pub fn render(&self) -> String {
        let mut out = self.message.clone();
        let fields: [(&str, &Option<String>); 6] = [
            ("future", &self.future),
            ("handle", &self.handle),
            ("protocol", &self.protocol),
            ("socket", &self.socket),
            ("task", &self.task),
            ("transport", &self.transport),
        ];
        if let Some(e) = &self.exception {
            out.push_str(&format!("\nexception: {e}"));
        }
        for (k, v) in fields {
            if let Some(v) = v {
                out.push_str(&format!("\n{k}: {v}"));
            }
        }
        out
    }
}

/// A user exception handler, set with [`EventLoop::set_exception_handler`].
pub type ExceptionHandler = Rc<dyn Fn(&EventLoop, &ExceptionContext)>;

thread_local! {
    /// The loop currently running on this thread, if any.
    pub(crate) static RUNNING: RefCell<Option<Rc<Inner>>> = const { RefCell::new(None) };
}

/// The event loop running on this thread (asyncio's `get_running_loop()`).
///
/// Returns `Err(Error::Runtime("no running event loop"))` when called outside
/// `run_until_complete` / `run_forever` / `asyncio::run`, exactly where asyncio raises
/// `RuntimeError`. Inside tasks and callbacks it always succeeds.
pub fn get_running_loop() -> Result<EventLoop> {
    RUNNING.with(|r| match &*r.borrow() {
        Some(inner) => Ok(EventLoop::from_inner(inner.clone())),
        None => Err(Error::runtime("no running event loop")),
    })
}

/// Run `f` with the running loop's internals, if a loop runs on this thread.
pub(crate) fn with_running<R>(f: impl FnOnce(&Rc<Inner>) -> R) -> Option<R> {
    RUNNING.with(|r| r.borrow().as_ref().map(f))
}
