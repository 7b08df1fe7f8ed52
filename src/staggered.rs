//! Racing attempts started one after another (asyncio's `staggered.py`:
//! `staggered_race`), the engine of Happy Eyeballs (RFC 8305) in
//! [`EventLoop::create_connection`](crate::EventLoop::create_connection) with
//! [`ConnectOptions::happy_eyeballs_delay`](crate::ConnectOptions::happy_eyeballs_delay).
//!
//! ```
//! use std::time::Duration;
//! use asyncio::staggered::staggered_race;
//!
//! asyncio::run(async {
//!     // The first attempt never finishes; 10 ms later the second starts and wins.
//!     let attempts = (0..2u32).map(|i| move || async move {
//!         if i == 0 {
//!             std::future::pending::<()>().await;
//!         }
//!         Ok::<u32, asyncio::Error>(i)
//!     });
//!     let race = staggered_race(attempts, Some(Duration::from_millis(10))).await;
//!     assert_eq!(race.winner, Some(1));
//!     assert_eq!(race.result, Some(1));
//! }).unwrap();
//! ```

use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use crate::exceptions::Error;
use crate::tasks::{sleep, Sleep};

/// What [`staggered_race`] returns (asyncio's `(winner_result, winner_index,
/// exceptions)` tuple).
pub struct Race<T> {
    /// The winner's result; `None` if no attempt succeeded.
    pub result: Option<T>,
    /// The index of the winning attempt in the input order; `None` if none won.
    pub winner: Option<usize>,
    /// One entry per attempt that was started, in input order: its error if it failed,
    /// `None` if it won or was still running when another won (and was then dropped).
    pub errors: Vec<Option<Error>>,
}

impl<T> fmt::Debug for Race<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Race")
            .field("winner", &self.winner)
            .field("errors", &self.errors)
            .finish()
    }
}

type Attempt<'a, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + 'a>>;

/// Run the attempts `coro_fns` makes, staggered (asyncio's
/// `staggered.staggered_race(coro_fns, delay)`).
///
/// The first attempt starts at once. The next one starts when the latest started
/// attempt fails, or when `delay` has passed since it started (with `delay = None`,
/// only when it fails: one after the other). The first attempt to succeed wins: every
/// other running attempt is dropped (cancelled) and no further one is started. If all
/// fail, `result` and `winner` are `None` and `errors` holds every error.
///
/// The attempts run inside the caller's task (no task is spawned), so they need not be
/// `'static`. Cancel-safe: dropping the returned future drops every running attempt.
/// Timing uses the loop's clock ([`crate::TestClock`] in tests).
pub async fn staggered_race<'a, T, F, Fut>(
    coro_fns: impl IntoIterator<Item = F>,
    delay: Option<Duration>,
) -> Race<T>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, Error>> + 'a,
{
    let mut pending = coro_fns.into_iter();
    let mut running: Vec<(usize, Attempt<'a, T>)> = Vec::new();
    let mut errors: Vec<Option<Error>> = Vec::new();
    let mut timer: Option<Pin<Box<Sleep>>> = None;
    // Start the next attempt before polling (the first one at once).
    let mut start_next = true;
    let mut exhausted = false;
    poll_fn(move |cx| loop {
        if start_next && !exhausted {
            start_next = false;
            match pending.next() {
                Some(f) => {
                    running.push((errors.len(), Box::pin(f())));
                    errors.push(None);
                    timer = delay.map(|d| Box::pin(sleep(d)));
                }
                None => {
                    exhausted = true;
                    timer = None;
                }
            }
        }
        let latest = errors.len().checked_sub(1);
        let mut i = 0;
        while i < running.len() {
            match running[i].1.as_mut().poll(cx) {
                Poll::Pending => i += 1,
                Poll::Ready(Ok(v)) => {
                    let winner = running[i].0;
                    running.clear();
                    return Poll::Ready(Race {
                        result: Some(v),
                        winner: Some(winner),
                        errors: std::mem::take(&mut errors),
                    });
                }
                Poll::Ready(Err(e)) => {
                    let (idx, _) = running.remove(i);
                    errors[idx] = Some(e);
                    if Some(idx) == latest {
                        start_next = true;
                    }
                }
            }
        }
        if start_next && !exhausted {
            continue;
        }
        if running.is_empty() {
            if exhausted {
                // Nothing runs and nothing more will start: every attempt failed.
                return Poll::Ready(Race {
                    result: None,
                    winner: None,
                    errors: std::mem::take(&mut errors),
                });
            }
            start_next = true;
            continue;
        }
        if let Some(t) = timer.as_mut() {
            if t.as_mut().poll(cx).is_ready() {
                start_next = true;
                continue;
            }
        }
        return Poll::Pending;
    })
    .await
}
