//! The event loop proper (asyncio's `base_events.py`).
//!
//! An [`EventLoop`] is a multiplexer: it holds a FIFO queue of ready callbacks, a heap of
//! timers, and a mio `Poll` for I/O readiness, and it runs them one iteration at a time.
//! One iteration (`Inner::run_once`, in `base_events/run_once.rs`) is asyncio's
//! `_run_once`:
//!
//! 1. drop cancelled timers (all at once when more than half of a heap of over 100 is
//!    cancelled, else only from the head);
//! 2. pick the poll timeout: zero when callbacks are ready or the loop is stopping,
//!    else the time to the next timer (at most 24 h), else wait for I/O; before a poll
//!    that may sleep, tell other threads that they must wake it (and look at the
//!    cross-thread inbox once more);
//! 3. poll mio and queue a step for every I/O event (and drain the cross-thread inbox);
//!    a busy loop (callbacks ready) polls every other iteration: after a poll, the
//!    callbacks ready in the next iteration are mostly the tasks that poll's events
//!    woke, and a second `epoll_wait` in a row would find nothing new (this saves one
//!    system call per request on a lightly loaded server; asyncio polls every time).
//!    While an `add_reader` / `add_writer` callback is registered the loop polls on
//!    every iteration, as those callbacks are level-triggered;
//! 4. move every timer due by now (plus the clock resolution) to the ready queue, in
//!    deadline order and, for equal deadlines, in scheduling order;
//! 5. run exactly the callbacks that are ready now: those scheduled while they run wait
//!    for the next iteration, so one busy callback cannot starve I/O.
//!
//! Everything is single-threaded (`Rc`/`RefCell`); the only thread-safe entry point is
//! [`ThreadsafeHandle::call_soon_threadsafe`], which pushes into a mutex-protected inbox
//! and, if the loop may be sleeping, wakes the poll through a `mio::Waker`.

use std::cell::{Cell, RefCell};
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::future::Future as StdFuture;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use slab::Slab;

use crate::clock::{Clock, TestClock};
use crate::events::{
    Callback, CallbackCell, ExceptionContext, ExceptionHandler, Handle, TimerHandle, RUNNING,
};
use crate::exceptions::{Error, Result};
use crate::executor::Executor;
use crate::selector_events::IoState;
use crate::tasks::{Task, TaskRun};
use crate::waker::ID_MASK;

mod remote;
mod run_once;

pub use remote::ThreadsafeHandle;
use remote::{Calls, REMOTE_SPARE_CAPACITY};
pub(crate) use remote::{Remote, RemoteItem};

/// The default `slow_callback_duration` of debug mode (asyncio's 0.1 s).
const SLOW_CALLBACK_DURATION: Duration = Duration::from_millis(100);

/// Source of unique loop ids (wakers use them to find their loop).
static NEXT_LOOP_ID: AtomicU64 = AtomicU64::new(1);

/// One entry of the ready queue.
pub(crate) enum Ready {
    /// A `call_soon` callback, a due timer, or a future's done callback.
    Callback(Rc<dyn Callback>),
    /// A block of `call_soon_threadsafe` callbacks, run in call order straight from the
    /// block they crossed threads in (no handle can reach them, so they need no
    /// `CallbackCell` and no second allocation), each as its own callback.
    Threadsafe(Box<dyn Calls>),
    /// One step of a task (asyncio's `Task.__step`).
    Task(Rc<dyn TaskRun>),
    /// An I/O event for the registration with this mio token and readiness bits.
    Io(usize, u8),
}

/// A timer in the heap. Ordered so that `BinaryHeap` (a max-heap) pops the earliest
/// deadline first and, among equal deadlines, the one scheduled first.
///
/// `key` packs the deadline (nanoseconds since the loop's epoch, high 64 bits) and a
/// sequence number (low 64 bits) into one integer: entries are 32 bytes and compare
/// with a single instruction, which matters with a million timers in the heap.
struct TimerEntry {
    key: u128,
    cb: Rc<dyn Callback>,
}

impl TimerEntry {
    fn when_ns(&self) -> u64 {
        (self.key >> 64) as u64
    }
}

impl PartialEq for TimerEntry {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for TimerEntry {}
impl PartialOrd for TimerEntry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for TimerEntry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.key.cmp(&self.key)
    }
}

/// The loop's state. `EventLoop` is an `Rc` of this.
pub(crate) struct Inner {
    pub(crate) id: u64,
    ready: RefCell<VecDeque<Ready>>,
    timers: RefCell<BinaryHeap<TimerEntry>>,
    /// Timer deadlines are stored as nanoseconds since this instant.
    epoch: Instant,
    timer_seq: Cell<u64>,
    timer_cancelled: Cell<usize>,
    stopping: Cell<bool>,
    pub(crate) running: Cell<bool>,
    closed: Cell<bool>,
    debug: Cell<bool>,
    slow_callback_duration: Cell<Duration>,
    pub(crate) clock: Clock,
    pub(crate) io: IoState,
    pub(crate) remote: Arc<Remote>,
    /// The inbox's second buffer: each drain swaps it with the queue and hands it back
    /// empty with its capacity (up to [`REMOTE_SPARE_CAPACITY`] items).
    remote_spare: Cell<Vec<RemoteItem>>,
    /// Whether the last iteration polled mio (a busy loop polls every other
    /// iteration; see the module docs).
    polled: Cell<bool>,
    /// This loop's slot in the packed-waker registry (see `waker.rs`).
    pub(crate) waker_slot: Option<u16>,
    /// Added to task ids in waker tags, so that a waker outliving its loop does not
    /// match the task with the same id in a later loop that reuses the registry slot
    /// (every loop numbers its tasks from 1).
    waker_salt: u64,
    pub(crate) tasks: RefCell<Slab<Rc<dyn TaskRun>>>,
    pub(crate) task_counter: Cell<u64>,
    /// The task factory is asyncio's `eager_task_factory`.
    pub(crate) eager_tasks: Cell<bool>,
    pub(crate) current_task: RefCell<Option<Rc<dyn TaskRun>>>,
    exception_handler: RefCell<Option<ExceptionHandler>>,
    pub(crate) executor: Executor,
}

/// A handle to an event loop (asyncio's `AbstractEventLoop` / `BaseEventLoop`).
///
/// `EventLoop` is a cheap `Rc` handle: clone it into callbacks and tasks freely. It is
/// `!Send`: a loop and everything scheduled on it stay on the thread that made it. The
/// one way in from another thread is [`EventLoop::threadsafe_handle`].
///
/// ```
/// let lp = asyncio::EventLoop::new().unwrap();
/// let out = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
/// let o = out.clone();
/// lp.call_soon(move || o.borrow_mut().push("soon")).unwrap();
/// let answer = lp.run_until_complete(async { 6 * 7 }).unwrap();
/// assert_eq!(answer, 42);
/// assert_eq!(*out.borrow(), ["soon"]);
/// lp.close().unwrap();
/// ```
///
/// A loop that is never closed keeps its pending tasks (and what they hold) alive; call
/// [`EventLoop::close`], or use [`crate::run`], which closes for you.
#[derive(Clone)]
pub struct EventLoop {
    pub(crate) inner: Rc<Inner>,
}

impl fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLoop")
            .field("id", &self.inner.id)
            .field("running", &self.inner.running.get())
            .field("closed", &self.inner.closed.get())
            .field("debug", &self.inner.debug.get())
            .finish()
    }
}

/// Whether the `ASYNCIO_DEBUG` environment variable turns debug mode on (any value but
/// empty or `0`), as `PYTHONASYNCIODEBUG` does for asyncio.
fn debug_from_env() -> bool {
    std::env::var_os("ASYNCIO_DEBUG")
        .map(|v| !v.is_empty() && v != "0")
        .unwrap_or(false)
}

impl EventLoop {
    /// A new event loop reading the system's monotonic clock (asyncio's
    /// `new_event_loop()`). Fails only if the OS refuses an epoll instance or an eventfd.
    pub fn new() -> Result<EventLoop> {
        EventLoop::with_clock(Clock::System)
    }

    /// A new event loop on a virtual clock, and the [`TestClock`] that controls it.
    /// Timer tests then never sleep: see [`TestClock`].
    pub fn with_test_clock() -> Result<(EventLoop, TestClock)> {
        let clock = TestClock::new();
        let lp = EventLoop::with_clock(Clock::Test(clock.state.clone()))?;
        Ok((lp, clock))
    }

    fn with_clock(clock: Clock) -> Result<EventLoop> {
        let id = NEXT_LOOP_ID.fetch_add(1, Ordering::Relaxed);
        let (io, waker) = IoState::new()?;
        let remote = Arc::new(Remote {
            loop_id: id,
            queue: Mutex::new(Vec::new()),
            pending: AtomicBool::new(false),
            notified: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            waker,
            last_block: AtomicU64::new(0),
        });
        let waker_slot = crate::waker::register_loop(remote.clone());
        let inner = Rc::new(Inner {
            id,
            waker_slot,
            // The loop id scrambled (Fibonacci hashing): consecutive loops get far
            // apart salts.
            waker_salt: id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40,
            ready: RefCell::new(VecDeque::with_capacity(256)),
            timers: RefCell::new(BinaryHeap::new()),
            epoch: clock.now(),
            timer_seq: Cell::new(0),
            timer_cancelled: Cell::new(0),
            stopping: Cell::new(false),
            running: Cell::new(false),
            closed: Cell::new(false),
            debug: Cell::new(debug_from_env()),
            slow_callback_duration: Cell::new(SLOW_CALLBACK_DURATION),
            clock,
            io,
            remote,
            remote_spare: Cell::new(Vec::new()),
            polled: Cell::new(false),
            tasks: RefCell::new(Slab::new()),
            task_counter: Cell::new(0),
            eager_tasks: Cell::new(false),
            current_task: RefCell::new(None),
            exception_handler: RefCell::new(None),
            executor: Executor::new(),
        });
        Ok(EventLoop { inner })
    }

    pub(crate) fn from_inner(inner: Rc<Inner>) -> EventLoop {
        EventLoop { inner }
    }

    // ----- running and stopping -------------------------------------------------------

    /// Run until [`EventLoop::stop`] is called (asyncio's `run_forever()`).
    ///
    /// Errors, without running anything, if this loop is already running, if another
    /// loop is running on this thread, or if the loop is closed. If `stop` was called
    /// before, the loop runs one iteration (polling I/O without waiting) and returns.
    pub fn run_forever(&self) -> Result<()> {
        let inner = &self.inner;
        inner.check_closed()?;
        if inner.running.get() {
            return Err(Error::runtime("This event loop is already running"));
        }
        if RUNNING.with(|r| r.borrow().is_some()) {
            return Err(Error::runtime(
                "Cannot run the event loop while another loop is running",
            ));
        }
        struct Running<'a>(&'a Inner);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                self.0.running.set(false);
                self.0.stopping.set(false);
                RUNNING.with(|r| r.borrow_mut().take());
            }
        }
        inner.running.set(true);
        RUNNING.with(|r| *r.borrow_mut() = Some(inner.clone()));
        let _guard = Running(inner);
        loop {
            inner.run_once();
            if inner.stopping.get() {
                break;
            }
        }
        Ok(())
    }

    /// Run `fut` as a task until it completes and return its output (asyncio's
    /// `run_until_complete()`).
    ///
    /// Other tasks and callbacks run meanwhile. Errors: the same misuse errors as
    /// [`EventLoop::run_forever`] (a nested call gets `"This event loop is already
    /// running"`, not a deadlock); `Error::Panic` if the future panicked;
    /// `Error::Cancelled` if its task was cancelled; and `"Event loop stopped before
    /// Future completed."` if [`EventLoop::stop`] ended the loop first (the task stays
    /// scheduled and a later run can finish it).
    pub fn run_until_complete<F>(&self, fut: F) -> Result<F::Output>
    where
        F: StdFuture + 'static,
    {
        let inner = &self.inner;
        inner.check_closed()?;
        if inner.running.get() {
            return Err(Error::runtime("This event loop is already running"));
        }
        let task = self.create_task(fut);
        self.run_task_until_done(task)
    }

    /// `run_until_complete` for a task that already exists.
    pub(crate) fn run_task_until_done<T: 'static>(&self, task: Task<T>) -> Result<T> {
        // Like asyncio's `remove_done_callback(_run_until_complete_cb)` in `finally`:
        // a task left running after an early stop must not stop a later run.
        let lp = self.clone();
        let active = Rc::new(Cell::new(true));
        let still_active = active.clone();
        task.add_done_callback(move |_| {
            if still_active.get() {
                lp.stop();
            }
        });
        let ran = self.run_forever();
        active.set(false);
        ran?;
        if !task.done() {
            return Err(Error::runtime(
                "Event loop stopped before Future completed.",
            ));
        }
        task.take_result()
    }

    /// Ask the loop to stop (asyncio's `stop()`): the callbacks of the current iteration
    /// all still run, then `run_forever` returns. Callbacks they schedule run on the next
    /// `run_forever`. Harmless when the loop is not running: the next run then does one
    /// iteration and returns.
    pub fn stop(&self) {
        self.inner.stopping.set(true);
    }

    /// Whether the loop is running (asyncio's `is_running()`).
    pub fn is_running(&self) -> bool {
        self.inner.running.get()
    }

    /// Whether [`EventLoop::close`] was called (asyncio's `is_closed()`).
    pub fn is_closed(&self) -> bool {
        self.inner.closed.get()
    }

    /// Close the loop (asyncio's `close()`): drop every pending callback and timer, drop
    /// the futures of tasks still pending (each reported as `"Task was destroyed but it
    /// is pending!"`), close I/O registrations, refuse further cross-thread calls, and
    /// let the executor's threads finish their current job and exit without waiting.
    ///
    /// Idempotent. Errors with `"Cannot close a running event loop"` while running.
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }

    // ----- time and scheduling ---------------------------------------------------------

    /// The loop's clock (asyncio's `time()`): monotonic, or virtual under a [`TestClock`].
    /// Timers compare against this clock.
    pub fn time(&self) -> Instant {
        self.inner.clock.now()
    }

    /// Schedule `f` to run on the next iteration (asyncio's `call_soon()`).
    ///
    /// Callbacks run in the order they were scheduled (FIFO), each exactly once. A panic
    /// in `f` is caught and reported through the exception handler; the loop carries on.
    /// Errors with `"Event loop is closed"` on a closed loop.
    pub fn call_soon(&self, f: impl FnOnce() + 'static) -> Result<Handle> {
        self.inner.check_closed()?;
        let cb: Rc<dyn Callback> = CallbackCell::new(f);
        self.inner.push_ready(Ready::Callback(cb.clone()));
        Ok(Handle { cb })
    }

    /// Schedule `f` to run `delay` from now (asyncio's `call_later()`); see
    /// [`EventLoop::call_at`]. A delay too large for the clock (`Duration::MAX`) is put
    /// about 30 years ahead.
    pub fn call_later(&self, delay: Duration, f: impl FnOnce() + 'static) -> Result<TimerHandle> {
        let when = crate::clock::deadline_after(self.time(), delay);
        self.call_at(when, f)
    }

    /// Schedule `f` to run at `when` on the loop's clock (asyncio's `call_at()`).
    ///
    /// The callback runs in the first iteration at or after `when` (never before).
    /// Timers with the same deadline run in the order they were scheduled. Errors with
    /// `"Event loop is closed"` on a closed loop.
    pub fn call_at(&self, when: Instant, f: impl FnOnce() + 'static) -> Result<TimerHandle> {
        self.inner.check_closed()?;
        let cb: Rc<dyn Callback> = CallbackCell::new(f);
        self.inner.push_timer(when, cb.clone());
        Ok(TimerHandle {
            cb,
            when,
            lp: Rc::downgrade(&self.inner),
        })
    }

    /// A `Send + Sync` handle through which other threads schedule work on this loop.
    pub fn threadsafe_handle(&self) -> ThreadsafeHandle {
        ThreadsafeHandle {
            remote: self.inner.remote.clone(),
        }
    }

    /// Schedule `f` from any thread (asyncio's `call_soon_threadsafe()`); the same as
    /// `self.threadsafe_handle().call_soon_threadsafe(f)`.
    pub fn call_soon_threadsafe(&self, f: impl FnOnce() + Send + 'static) -> Result<()> {
        self.threadsafe_handle().call_soon_threadsafe(f)
    }

    // ----- errors and debugging --------------------------------------------------------

    /// Set the handler that [`EventLoop::call_exception_handler`] calls; `None` restores
    /// the default (asyncio's `set_exception_handler()`). A handler that panics is itself
    /// reported by the default handler as `"Unhandled error in exception handler"`.
    pub fn set_exception_handler(
        &self,
        handler: Option<impl Fn(&EventLoop, &ExceptionContext) + 'static>,
    ) {
        *self.inner.exception_handler.borrow_mut() =
            handler.map(|h| Rc::new(h) as ExceptionHandler);
    }

    /// Whether a custom exception handler is set (asyncio's `get_exception_handler()`
    /// returning not-`None`).
    pub fn has_exception_handler(&self) -> bool {
        self.inner.exception_handler.borrow().is_some()
    }

    /// Report an error that has no caller to return to (asyncio's
    /// `call_exception_handler()`): a panicking callback, a task error nobody retrieved,
    /// a protocol failure. Calls the custom handler if set, else
    /// [`EventLoop::default_exception_handler`]. Never panics.
    pub fn call_exception_handler(&self, context: ExceptionContext) {
        self.inner.call_exception_handler(context);
    }

    /// The default handler (asyncio's `default_exception_handler()`): logs the context
    /// with `log::error!` under the target `asyncio`. When no `log` logger is installed
    /// (`log::max_level()` is `Off`, `log`'s state until a logger sets a level) the
    /// report would vanish, so it is written to stderr instead, once, with its context
    /// (message, exception, task / transport / protocol fields), as CPython's logging
    /// does by default. Set a handler with [`EventLoop::set_exception_handler`] to send
    /// reports elsewhere. Never panics (a closed stderr is ignored).
    pub fn default_exception_handler(&self, context: &ExceptionContext) {
        default_exception_handler(context);
    }

    /// Turn debug mode on or off (asyncio's `set_debug()`; also on when the
    /// `ASYNCIO_DEBUG` environment variable is set). In debug mode callbacks slower than
    /// [`EventLoop::slow_callback_duration`] are logged at `warn`, and every iteration is
    /// narrated at `trace` level under the target `asyncio` (ready count, poll timeout,
    /// events and what they woke, timers fired). Off, it costs one branch per iteration.
    pub fn set_debug(&self, on: bool) {
        self.inner.debug.set(on);
    }

    /// Whether debug mode is on (asyncio's `get_debug()`).
    pub fn get_debug(&self) -> bool {
        self.inner.debug.get()
    }

    /// The threshold above which debug mode logs a slow callback (default 100 ms).
    pub fn slow_callback_duration(&self) -> Duration {
        self.inner.slow_callback_duration.get()
    }

    /// Set the slow-callback threshold of debug mode.
    pub fn set_slow_callback_duration(&self, d: Duration) {
        self.inner.slow_callback_duration.set(d);
    }

    /// How many timers sit in the heap, cancelled ones included until purged (for
    /// tests of the lazy-cancellation rule; not part of the API).
    #[doc(hidden)]
    pub fn scheduled_timer_count(&self) -> usize {
        self.inner.timers.borrow().len()
    }
}

/// See [`EventLoop::default_exception_handler`]: `log::error!`, or stderr when no
/// logger is installed.
pub(crate) fn default_exception_handler(context: &ExceptionContext) {
    if log::max_level() == log::LevelFilter::Off {
        use std::io::Write;
        let text = format!("asyncio: {}\n", context.render());
        // One write of the whole report (no interleaving with other writers' lines);
        // a closed or full stderr is not worth a panic.
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    } else {
        log::error!(target: "asyncio", "{}", context.render());
    }
}

impl Inner {
    pub(crate) fn check_closed(&self) -> Result<()> {
        if self.closed.get() {
            Err(Error::runtime("Event loop is closed"))
        } else {
            Ok(())
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.get()
    }

    pub(crate) fn is_debug(&self) -> bool {
        self.debug.get()
    }

    #[inline]
    pub(crate) fn push_ready(&self, r: Ready) {
        self.ready.borrow_mut().push_back(r);
    }

    /// `call_soon` for runtime internals: no handle, nothing returned; dropped silently
    /// on a closed loop (the caller is tearing down anyway).
    pub(crate) fn call_soon_internal(&self, f: impl FnOnce() + 'static) {
        if !self.closed.get() {
            self.push_ready(Ready::Callback(CallbackCell::new(f)));
        }
    }

    /// Put a timer in the heap (no closed check: callers checked).
    pub(crate) fn push_timer(&self, when: Instant, cb: Rc<dyn Callback>) {
        let seq = self.timer_seq.get();
        self.timer_seq.set(seq + 1);
        cb.set_in_heap(true);
        let key = ((self.ns_since_epoch(when) as u128) << 64) | seq as u128;
        self.timers.borrow_mut().push(TimerEntry { key, cb });
    }

    /// `t` as nanoseconds since the loop's epoch (0 for earlier instants).
    #[inline]
    fn ns_since_epoch(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch)
            .as_nanos()
            .min(u64::MAX as u128) as u64
    }

    /// Called by `TimerHandle::cancel` for a timer still in the heap.
    pub(crate) fn timer_cancelled(&self) {
        self.timer_cancelled.set(self.timer_cancelled.get() + 1);
    }

    pub(crate) fn call_exception_handler(self: &Rc<Self>, context: ExceptionContext) {
        let handler = self.exception_handler.borrow().clone();
        match handler {
            None => default_exception_handler(&context),
            Some(h) => {
                let lp = EventLoop::from_inner(self.clone());
                if let Err(p) = catch_unwind(AssertUnwindSafe(|| h(&lp, &context))) {
                    let mut ctx = ExceptionContext::new("Unhandled error in exception handler")
                        .with_exception(Error::from_panic(p));
                    ctx.handle = Some(format!("context: {}", context.render()));
                    default_exception_handler(&ctx);
                }
            }
        }
    }

    /// The tag that a waker of task `task_id` carries (see `waker_salt`).
    #[inline]
    pub(crate) fn waker_tag(&self, task_id: u64) -> u64 {
        task_id.wrapping_add(self.waker_salt) & ID_MASK
    }

    /// Schedule the task in slab slot `key` if it is still the task whose waker tag is
    /// `tag`.
    pub(crate) fn wake_task(&self, key: usize, tag: u64) {
        let task = match self.tasks.borrow().get(key) {
            Some(t) if self.waker_tag(t.header().id) == tag & ID_MASK => t.clone(),
            _ => return,
        };
        self.schedule_task(task);
    }

    /// Queue a step of `task` unless one is queued already (two wakes, one step).
    #[inline]
    pub(crate) fn schedule_task(&self, task: Rc<dyn TaskRun>) {
        if !task.header().set_scheduled() && !self.closed.get() {
            if self.debug.get() {
                log::trace!(target: "asyncio", "    wake {} (step queued)", task.header().name());
            }
            self.push_ready(Ready::Task(task));
        }
    }

    fn close(self: &Rc<Self>) -> Result<()> {
        if self.running.get() {
            return Err(Error::runtime("Cannot close a running event loop"));
        }
        if self.closed.replace(true) {
            return Ok(());
        }
        log::debug!(target: "asyncio", "closing event loop {}", self.id);
        // Take everything out first, then drop it: drops may call back into the loop.
        let ready = std::mem::take(&mut *self.ready.borrow_mut());
        let timers = std::mem::take(&mut *self.timers.borrow_mut());
        let remote = self.remote.close();
        drop(ready);
        drop(timers);
        drop(remote);
        let tasks: Vec<Rc<dyn TaskRun>> = self.tasks.borrow_mut().drain().collect();
        for t in &tasks {
            t.destroy_pending(self);
        }
        drop(tasks);
        self.current_task.borrow_mut().take();
        self.close_io();
        self.executor.shutdown();
        if let Some(slot) = self.waker_slot {
            crate::waker::unregister_loop(slot);
        }
        Ok(())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if !self.closed.get() {
            if let Some(slot) = self.waker_slot {
                crate::waker::unregister_loop(slot);
            }
        }
    }
}
