//! `sleep` (asyncio's `tasks.sleep`) and `yield_now`.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future as StdFuture;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::base_events::Inner;
use crate::events::{with_running, Callback};

/// The timer behind a [`Sleep`]: it lives in the loop's timer heap itself, so a sleep
/// costs one allocation.
struct SleepTimer {
    fired: Cell<bool>,
    cancelled: Cell<bool>,
    in_heap: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Callback for SleepTimer {
    fn run(&self) {
        if self.cancelled.get() {
            return;
        }
        self.fired.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }
    fn cancel(&self) {
        self.cancelled.set(true);
        self.waker.borrow_mut().take();
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

/// The future returned by [`sleep`].
pub struct Sleep {
    delay: Duration,
    at: Option<Instant>,
    timer: Option<(Rc<SleepTimer>, Weak<Inner>)>,
    yielded: bool,
}

/// Wait for `delay` on the running loop's clock (asyncio's `sleep()`).
///
/// The deadline is fixed at the first poll (when the `await` starts). A zero delay
/// yields exactly one loop iteration: the task is re-queued at the back of the ready
/// queue and resumes on the next iteration, letting everything already ready run first.
/// Cancel-safe: dropping the sleep cancels its timer. A delay too large for the clock
/// (`Duration::MAX`) is put about 30 years ahead: in practice, never.
///
/// # Panics
/// If polled outside a running asyncio loop (for example by another executor).
pub fn sleep(delay: Duration) -> Sleep {
    Sleep {
        delay,
        at: None,
        timer: None,
        yielded: false,
    }
}

/// Wait until `when` on the running loop's clock (a deadline already passed completes
/// on the next iteration). Cancel-safe like [`sleep`].
pub fn sleep_until(when: Instant) -> Sleep {
    Sleep {
        delay: Duration::ZERO,
        at: Some(when),
        timer: None,
        yielded: false,
    }
}

/// Yield one loop iteration (asyncio's `await asyncio.sleep(0)`).
pub fn yield_now() -> Sleep {
    sleep(Duration::ZERO)
}

impl StdFuture for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.delay.is_zero() && self.at.is_none() {
            if self.yielded {
                return Poll::Ready(());
            }
            self.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if let Some((timer, _)) = &self.timer {
            if timer.fired.get() {
                return Poll::Ready(());
            }
            let mut w = timer.waker.borrow_mut();
            match &*w {
                Some(old) if old.will_wake(cx.waker()) => {}
                _ => *w = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        }
        let (delay, at) = (self.delay, self.at);
        let registered = with_running(|lp| {
            let timer = Rc::new(SleepTimer {
                fired: Cell::new(false),
                cancelled: Cell::new(false),
                in_heap: Cell::new(false),
                waker: RefCell::new(Some(cx.waker().clone())),
            });
            let when = at.unwrap_or_else(|| crate::clock::deadline_after(lp.clock.now(), delay));
            lp.push_timer(when, timer.clone());
            (timer, Rc::downgrade(lp))
        });
        match registered {
            Some(t) => {
                self.timer = Some(t);
                Poll::Pending
            }
            None => panic!("asyncio::sleep polled outside a running asyncio event loop"),
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some((timer, lp)) = self.timer.take() {
            if !timer.fired.get() && !timer.cancelled.get() {
                timer.cancel();
                if timer.in_heap.get() {
                    if let Some(lp) = lp.upgrade() {
                        lp.timer_cancelled();
                    }
                }
            }
        }
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("delay", &self.delay)
            .field("started", &self.timer.is_some())
            .finish()
    }
}
