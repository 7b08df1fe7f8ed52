//! The loop's clock, and a controllable one for tests (asyncio's `TestLoop` clock,
//! tokio's paused time).
//!
//! A loop normally reads [`Instant::now`]. A loop made with
//! [`EventLoop::with_test_clock`](crate::EventLoop::with_test_clock) reads a
//! [`TestClock`] instead: time stands still until the test calls
//! [`TestClock::advance`], or until the loop has nothing to do but wait for a timer, at
//! which point it jumps straight to that timer's deadline (auto-advance). A test of a
//! 10-minute timeout therefore runs in microseconds and never sleeps.

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How far ahead a deadline too large for [`Instant`] is put: about 30 years, which no
/// loop reaches, so `Duration::MAX` means "never" (asyncio accepts `math.inf`).
const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// `now + delay`, or [`FAR_FUTURE`] from now when that overflows `Instant` (adding a
/// huge `Duration` to an `Instant` panics).
pub(crate) fn deadline_after(now: Instant, delay: Duration) -> Instant {
    now.checked_add(delay).unwrap_or_else(|| now + FAR_FUTURE)
}

/// Where a loop reads the time from.
#[derive(Clone)]
pub(crate) enum Clock {
    /// The monotonic system clock.
    System,
    /// A virtual clock shared with a [`TestClock`].
    Test(Rc<TestClockState>),
}

pub(crate) struct TestClockState {
    pub(crate) now: Cell<Instant>,
    pub(crate) auto_advance: Cell<bool>,
}

impl Clock {
    /// The current time on this clock.
    #[inline]
    pub(crate) fn now(&self) -> Instant {
        match self {
            Clock::System => Instant::now(),
            Clock::Test(s) => s.now.get(),
        }
    }

    /// The test clock's state, if this is a test clock that may auto-advance.
    pub(crate) fn auto_advancing(&self) -> Option<&TestClockState> {
        match self {
            Clock::Test(s) if s.auto_advance.get() => Some(s),
            _ => None,
        }
    }
}

/// A virtual clock for tests: the loop's `time()` moves only when the test (or the idle
/// loop, see [`TestClock::set_auto_advance`]) moves it.
///
/// Get one from [`EventLoop::with_test_clock`](crate::EventLoop::with_test_clock). It is
/// a cheap handle: clones control the same clock.
///
/// ```
/// use std::time::Duration;
/// let (lp, clock) = asyncio::EventLoop::with_test_clock().unwrap();
/// let start = lp.time();
/// // A one-hour sleep finishes at once: the idle loop jumps to the deadline.
/// lp.run_until_complete(asyncio::sleep(Duration::from_secs(3600))).unwrap();
/// assert_eq!(lp.time() - start, Duration::from_secs(3600));
/// clock.advance(Duration::from_secs(1));
/// assert_eq!(lp.time() - start, Duration::from_secs(3601));
/// ```
#[derive(Clone)]
pub struct TestClock {
    pub(crate) state: Rc<TestClockState>,
}

impl TestClock {
    pub(crate) fn new() -> TestClock {
        TestClock {
            state: Rc::new(TestClockState {
                now: Cell::new(Instant::now()),
                auto_advance: Cell::new(true),
            }),
        }
    }

    /// Move the clock forward by `d`. Timers that become due run on the loop's next
    /// iteration, in deadline order.
    pub fn advance(&self, d: Duration) {
        self.state.now.set(self.state.now.get() + d);
    }

    /// The clock's current reading (the same as the loop's `time()`).
    pub fn now(&self) -> Instant {
        self.state.now.get()
    }

    /// Auto-advance (on by default): when the loop has no ready callback, no I/O event
    /// and no cross-thread call, and its next timer lies in the future, the clock jumps
    /// to that timer instead of the loop sleeping. Real I/O still takes real time, so a
    /// test that mixes sockets with timeouts should turn this off and advance by hand.
    pub fn set_auto_advance(&self, on: bool) {
        self.state.auto_advance.set(on);
    }
}

impl fmt::Debug for TestClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestClock")
            .field("now", &self.state.now.get())
            .field("auto_advance", &self.state.auto_advance.get())
            .finish()
    }
}
