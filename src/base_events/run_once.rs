//! One iteration of the loop, asyncio's `BaseEventLoop._run_once`: the five steps
//! listed in the docs of [`crate::base_events`], and how each ready entry is run
//! (caught, and in debug mode logged and timed).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Inner, Ready, RemoteItem, REMOTE_SPARE_CAPACITY};
use crate::clock::Clock;
use crate::events::ExceptionContext;
use crate::exceptions::Error;

/// asyncio's `MAXIMUM_SELECT_TIMEOUT`: the poll never sleeps longer than a day.
const MAXIMUM_SELECT_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// asyncio's `_MIN_SCHEDULED_TIMER_HANDLES`: below this many timers, no heap rebuild.
const MIN_SCHEDULED_TIMER_HANDLES: usize = 100;
/// asyncio's `_MIN_CANCELLED_TIMER_HANDLES_FRACTION`.
const MIN_CANCELLED_TIMER_HANDLES_FRACTION: f64 = 0.5;
/// Timers due before `now + CLOCK_RESOLUTION` fire in this iteration (asyncio's
/// `end_time = self.time() + self._clock_resolution`). mio rounds poll timeouts *up* to
/// whole milliseconds, so the loop never wakes early and never spins on a near timer.
const CLOCK_RESOLUTION: Duration = Duration::from_nanos(1);

impl Inner {
    /// Drop cancelled timers: rebuild the heap when it is big and mostly cancelled,
    /// otherwise pop the cancelled ones off the top (asyncio's rule).
    fn purge_cancelled_timers(&self) {
        let mut timers = self.timers.borrow_mut();
        let cancelled = self.timer_cancelled.get();
        if timers.len() > MIN_SCHEDULED_TIMER_HANDLES
            && cancelled as f64 / timers.len() as f64 > MIN_CANCELLED_TIMER_HANDLES_FRACTION
        {
            timers.retain(|t| {
                let keep = !t.cb.cancelled();
                if !keep {
                    t.cb.set_in_heap(false);
                }
                keep
            });
            self.timer_cancelled.set(0);
        } else {
            while let Some(top) = timers.peek() {
                if !top.cb.cancelled() {
                    break;
                }
                let t = timers.pop().expect("peeked");
                t.cb.set_in_heap(false);
                self.timer_cancelled
                    .set(self.timer_cancelled.get().saturating_sub(1));
            }
        }
    }

    /// One iteration of the loop: asyncio's `_run_once`. See the module docs.
    pub(crate) fn run_once(self: &Rc<Self>) {
        self.purge_cancelled_timers();

        // How long may the poll wait?
        let next_timer = self
            .timers
            .borrow()
            .peek()
            .map(|t| self.epoch + Duration::from_nanos(t.when_ns()));
        let busy = !self.ready.borrow().is_empty() || self.stopping.get();
        let mut advance_to = None;
        let mut timeout = if busy {
            Some(Duration::ZERO)
        } else if let Some(when) = next_timer {
            let now = self.clock.now();
            match &self.clock {
                Clock::System => Some(
                    when.saturating_duration_since(now)
                        .min(MAXIMUM_SELECT_TIMEOUT),
                ),
                Clock::Test(state) => {
                    if when <= now {
                        Some(Duration::ZERO)
                    } else if state.auto_advance.get() {
                        advance_to = Some(when);
                        Some(Duration::ZERO)
                    } else {
                        None
                    }
                }
            }
        } else {
            None
        };

        // A poll that may sleep: other threads must wake it from now on.
        if timeout != Some(Duration::ZERO) && self.remote.prepare_to_sleep() {
            timeout = Some(Duration::ZERO);
        }

        // Poll and queue I/O steps; cross-thread calls land in the ready queue too. A
        // busy loop (callbacks already ready) that polled in the previous iteration
        // skips this poll: the callbacks ready now were mostly queued by that poll's
        // events (a woken task), and one more `epoll_wait` would find nothing new.
        // Not with `add_reader` / `add_writer` callbacks: they are level-triggered, and
        // asyncio runs them on every iteration while their fd is ready.
        let skip_poll =
            busy && !self.stopping.get() && self.polled.get() && !self.has_fd_callbacks();
        self.polled.set(!skip_poll);
        let nevents = if skip_poll { 0 } else { self.poll_io(timeout) };
        if self.remote.pending.load(Ordering::Acquire) {
            self.drain_remote();
        }
        if let (Some(when), Some(state)) = (advance_to, self.clock.auto_advancing()) {
            if nevents == 0 && self.ready.borrow().is_empty() {
                state.now.set(when);
            }
        }

        // Move due timers to the ready queue.
        let mut fired = 0usize;
        if next_timer.is_some() {
            let end = self.ns_since_epoch(self.clock.now() + CLOCK_RESOLUTION);
            let mut timers = self.timers.borrow_mut();
            let mut ready = self.ready.borrow_mut();
            while let Some(top) = timers.peek() {
                if top.when_ns() >= end {
                    break;
                }
                let t = timers.pop().expect("peeked");
                t.cb.set_in_heap(false);
                if t.cb.cancelled() {
                    self.timer_cancelled
                        .set(self.timer_cancelled.get().saturating_sub(1));
                    continue;
                }
                fired += 1;
                ready.push_back(Ready::Callback(t.cb));
            }
        }

        // Run the callbacks that are ready now, and only those.
        let ntodo = self.ready.borrow().len();
        let debug = self.debug.get();
        if debug {
            log::trace!(
                target: "asyncio",
                "iteration: {}, {} I/O event(s), {} timer(s) fired, {} ready to run",
                if skip_poll {
                    "poll skipped (polled last iteration)".to_string()
                } else {
                    format!("poll timeout {timeout:?}")
                },
                nevents,
                fired,
                ntodo
            );
        }
        for _ in 0..ntodo {
            let item = match self.ready.borrow_mut().pop_front() {
                Some(item) => item,
                None => break,
            };
            if debug {
                self.run_ready_debug(item);
            } else {
                self.run_ready(item);
            }
        }
    }

    #[inline]
    fn run_ready(self: &Rc<Self>, item: Ready) {
        match item {
            Ready::Callback(cb) => self.run_callback(|| cb.run()),
            Ready::Threadsafe(calls) => calls.run(self, false),
            Ready::Task(task) => task.step(self),
            Ready::Io(token, bits) => self.dispatch_io(token, bits),
        }
    }

    /// Run a callback; a panic is reported as `"Exception in callback"`.
    #[inline]
    pub(super) fn run_callback(self: &Rc<Self>, f: impl FnOnce()) {
        if let Err(p) = catch_unwind(AssertUnwindSafe(f)) {
            self.call_exception_handler(
                ExceptionContext::new("Exception in callback").with_exception(Error::from_panic(p)),
            );
        }
    }

    fn run_ready_debug(self: &Rc<Self>, item: Ready) {
        let item = match item {
            // Each callback of the block is logged and timed on its own.
            Ready::Threadsafe(calls) => return calls.run(self, true),
            item => item,
        };
        let what = match &item {
            Ready::Callback(_) | Ready::Threadsafe(_) => "callback".to_string(),
            Ready::Task(t) => format!("step of {}", t.header().name()),
            Ready::Io(token, bits) => format!("I/O {}", self.describe_io(*token, *bits)),
        };
        self.run_timed(&what, || self.run_ready(item));
    }

    /// Run `f` as debug mode runs a ready entry: logged, timed, and reported if slow.
    pub(super) fn run_timed(&self, what: &str, f: impl FnOnce()) {
        log::trace!(target: "asyncio", "  run {what}");
        let t0 = Instant::now();
        f();
        let dt = t0.elapsed();
        if dt >= self.slow_callback_duration.get() {
            log::warn!(target: "asyncio", "Executing {what} took {:.3} seconds", dt.as_secs_f64());
        }
    }

    fn drain_remote(self: &Rc<Self>) {
        let mut batch = self.remote_spare.take();
        self.remote.take_into(&mut batch);
        for item in batch.drain(..) {
            match item {
                RemoteItem::Calls(calls) => self.push_ready(Ready::Threadsafe(calls)),
                RemoteItem::Wake { key, id } => self.wake_task(key, id),
            }
        }
        if batch.capacity() <= REMOTE_SPARE_CAPACITY {
            self.remote_spare.set(batch);
        }
    }
}
