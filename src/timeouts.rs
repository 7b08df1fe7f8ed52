//! Deadlines for awaits (asyncio's `timeouts.py`, and `wait_for` from `tasks.py`).
//!
//! asyncio's `timeout()` is an async context manager that cancels the current task at
//! the deadline and turns the `CancelledError` into `TimeoutError`. In Rust the same
//! thing is a future that wraps another: [`Timeout`] polls the inner future and a timer,
//! and if the timer wins it **drops** the inner future (that is Rust's cancellation)
//! and returns `Err(Error::Timeout)`.

use std::fmt;
use std::future::Future as StdFuture;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::exceptions::{Error, Result};
use crate::tasks::{sleep, sleep_until, Sleep};

/// The future returned by [`wait_for`], [`timeout`] and [`timeout_at`].
pub struct Timeout<F> {
    inner: Option<Pin<Box<F>>>,
    /// The deadline; dropped (so its timer is cancelled) once the outcome is known.
    timer: Option<Sleep>,
    immediate: bool,
    expired: bool,
}

/// Wait for `fut` for at most `delay` (asyncio's `wait_for(aw, timeout)`).
///
/// Returns `Ok(output)` if `fut` completes first. Otherwise `fut` is dropped at the
/// deadline and the result is `Err(Error::Timeout)`. A zero `delay` polls `fut` once:
/// ready then means `Ok`, pending means an immediate `Err(Timeout)` (asyncio's
/// `timeout <= 0` rule). If the `wait_for` itself is dropped (its task cancelled), `fut`
/// is dropped with it. To let the inner work survive a timeout, wrap it in a task
/// ([`crate::shield`] semantics): `wait_for(task, d)` drops only the wait.
pub fn wait_for<F: StdFuture>(fut: F, delay: Duration) -> Timeout<F> {
    Timeout {
        inner: Some(Box::pin(fut)),
        timer: Some(sleep(delay)),
        immediate: delay.is_zero(),
        expired: false,
    }
}

/// `fut` with a deadline `delay` from now (asyncio's `async with timeout(delay)`);
/// the same as [`wait_for`] with tokio's argument order.
pub fn timeout<F: StdFuture>(delay: Duration, fut: F) -> Timeout<F> {
    wait_for(fut, delay)
}

/// `fut` with an absolute deadline on the loop's clock (asyncio's `timeout_at(when)`).
pub fn timeout_at<F: StdFuture>(when: Instant, fut: F) -> Timeout<F> {
    Timeout {
        inner: Some(Box::pin(fut)),
        timer: Some(sleep_until(when)),
        immediate: false,
        expired: false,
    }
}

impl<F: StdFuture> Timeout<F> {
    /// Whether the deadline passed and the inner future was dropped (asyncio's
    /// `Timeout.expired()`).
    pub fn expired(&self) -> bool {
        self.expired
    }
}

impl<F: StdFuture> StdFuture for Timeout<F> {
    type Output = Result<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Timeout<F> is Unpin: the inner future is boxed.
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(Err(Error::Timeout));
        };
        if let Poll::Ready(v) = inner.as_mut().poll(cx) {
            this.inner = None;
            this.timer = None; // cancels the deadline's timer
            return Poll::Ready(Ok(v));
        }
        let fired = match this.timer.as_mut() {
            _ if this.immediate => true,
            Some(t) => Pin::new(t).poll(cx).is_ready(),
            None => true,
        };
        if fired {
            this.inner = None; // dropping is cancelling
            this.timer = None;
            this.expired = true;
            return Poll::Ready(Err(Error::Timeout));
        }
        Poll::Pending
    }
}

impl<F> fmt::Debug for Timeout<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("pending", &self.inner.is_some())
            .field("timer", &self.timer)
            .finish()
    }
}
