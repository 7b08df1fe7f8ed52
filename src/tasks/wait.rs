//! `wait` and `as_completed` (asyncio's `tasks.wait()` and `tasks.as_completed()`).
//!
//! Both watch a set of [`Task`]s without taking their outputs until asked, using the
//! per-child wakers of [`super::gather`]: each finished task is looked at once.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future as StdFuture;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::gather::ChildWakers;
use crate::exceptions::{Error, Result};
use crate::tasks::{sleep_until, Sleep, Task, TaskRef};

/// When [`wait`] returns (asyncio's `FIRST_COMPLETED`, `FIRST_EXCEPTION`,
/// `ALL_COMPLETED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ReturnWhen {
    /// As soon as any task is done (completed, panicked or cancelled).
    FirstCompleted,
    /// As soon as any task ends with an error, i.e. panics (a cancelled task does not
    /// count, as in asyncio); or when all are done.
    FirstException,
    /// When every task is done (the default).
    #[default]
    AllCompleted,
}

/// A deadline that becomes a timer at the first poll inside a running loop.
struct Deadline {
    delay: Option<Duration>,
    at: Option<Instant>,
    timer: Option<Sleep>,
    expired: bool,
}

impl Deadline {
    /// `delay` counted from now if a loop is running, else from the first poll.
    fn new(delay: Option<Duration>, start_now: bool) -> Deadline {
        let at = match (delay, start_now) {
            (Some(d), true) => crate::events::get_running_loop()
                .ok()
                .map(|lp| crate::clock::deadline_after(lp.time(), d)),
            _ => None,
        };
        Deadline {
            delay,
            at,
            timer: None,
            expired: false,
        }
    }

    /// Whether the deadline passed; arms the timer (with `cx`'s waker) otherwise.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(delay) = self.delay else {
            return false;
        };
        if self.expired {
            return true;
        }
        if self.timer.is_none() {
            let Ok(lp) = crate::events::get_running_loop() else {
                // No loop runs, so no timer can fire and nothing can progress: the
                // time is up at once rather than never.
                self.expired = true;
                return true;
            };
            let at = *self
                .at
                .get_or_insert_with(|| crate::clock::deadline_after(lp.time(), delay));
            self.timer = Some(sleep_until(at));
        }
        if let Some(t) = self.timer.as_mut() {
            if Pin::new(t).poll(cx).is_ready() {
                self.expired = true;
                self.timer = None;
            }
        }
        self.expired
    }
}

impl fmt::Debug for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deadline")
            .field("delay", &self.delay)
            .field("expired", &self.expired)
            .finish()
    }
}

// ----- wait --------------------------------------------------------------------------

/// The future returned by [`wait`]: `(done, pending)`.
pub struct Wait<T> {
    tasks: Vec<Task<T>>,
    refs: Vec<TaskRef>,
    done: Vec<bool>,
    ndone: usize,
    failed: bool,
    return_when: ReturnWhen,
    deadline: Deadline,
    wakers: ChildWakers,
}

/// Wait for tasks until `return_when` holds or `timeout` passes, and split them into
/// `(done, pending)` (asyncio's `wait(aws, timeout=, return_when=)`).
///
/// * Outputs are not taken: the tasks come back as they went in, each in the half it
///   belongs to, in argument order (asyncio returns two sets).
/// * A timeout is not an error (asyncio raises no `TimeoutError` here): the split is
///   returned as it is when the time is up, and the pending tasks keep running.
///   The timeout starts at the first poll.
/// * [`ReturnWhen::FirstException`] counts tasks that panicked; a cancelled task, or a
///   task whose output happens to be an `Err`, is merely done.
/// * Dropping the `Wait` before it resolves drops the task handles it holds: the tasks
///   keep running, detached (asyncio's `wait` does not cancel on cancellation either).
/// * No tasks: `(vec![], vec![])` at once (asyncio raises `ValueError`).
///
/// ```
/// use std::time::Duration;
/// use asyncio::{wait, ReturnWhen};
/// let (lp, _clock) = asyncio::EventLoop::with_test_clock().unwrap();
/// let (done, pending) = lp.run_until_complete(async {
///     let fast = asyncio::create_task(asyncio::sleep(Duration::from_secs(1)));
///     let slow = asyncio::create_task(asyncio::sleep(Duration::from_secs(9)));
///     wait(vec![slow, fast], ReturnWhen::FirstCompleted, None).await
/// }).unwrap();
/// assert_eq!((done.len(), pending.len()), (1, 1));
/// ```
pub fn wait<T: 'static>(
    tasks: Vec<Task<T>>,
    return_when: ReturnWhen,
    timeout: Option<Duration>,
) -> Wait<T> {
    let n = tasks.len();
    Wait {
        refs: tasks.iter().map(Task::task_ref).collect(),
        tasks,
        done: vec![false; n],
        ndone: 0,
        failed: false,
        return_when,
        deadline: Deadline::new(timeout, false),
        wakers: ChildWakers::new(n),
    }
}

impl<T: 'static> Wait<T> {
    fn satisfied(&self) -> bool {
        let n = self.tasks.len();
        match self.return_when {
            ReturnWhen::FirstCompleted => self.ndone > 0 || n == 0,
            ReturnWhen::FirstException => self.failed || self.ndone == n,
            ReturnWhen::AllCompleted => self.ndone == n,
        }
    }

    fn split(&mut self) -> (Vec<Task<T>>, Vec<Task<T>>) {
        let mut done = Vec::new();
        let mut pending = Vec::new();
        for t in self.tasks.drain(..) {
            if t.done() {
                done.push(t);
            } else {
                pending.push(t);
            }
        }
        (done, pending)
    }
}

impl<T: 'static> StdFuture for Wait<T> {
    type Output = (Vec<Task<T>>, Vec<Task<T>>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        for i in this.wakers.candidates(cx) {
            if this.done[i] {
                continue;
            }
            let mut ccx = this.wakers.context(i);
            if this.refs[i].poll_done(&mut ccx).is_ready() {
                this.done[i] = true;
                this.ndone += 1;
                if this.refs[i].failed() {
                    this.failed = true;
                }
            }
        }
        if this.satisfied() || this.deadline.poll_expired(cx) {
            return Poll::Ready(this.split());
        }
        Poll::Pending
    }
}

impl<T> fmt::Debug for Wait<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wait")
            .field("tasks", &self.tasks.len())
            .field("done", &self.ndone)
            .field("return_when", &self.return_when)
            .field("deadline", &self.deadline)
            .finish()
    }
}

// ----- as_completed ------------------------------------------------------------------

/// The iterator returned by [`as_completed`]: call [`AsCompleted::next`].
pub struct AsCompleted<T> {
    /// `None` once yielded.
    tasks: Vec<Option<Task<T>>>,
    refs: Vec<TaskRef>,
    /// Finished tasks not yet yielded, in completion order.
    finished: VecDeque<usize>,
    /// Whether an index is already in `finished` (or was yielded).
    seen: Vec<bool>,
    /// How many items `next` still yields.
    remaining: usize,
    deadline: Deadline,
    wakers: ChildWakers,
}

/// Yield the outcomes of `tasks` in the order they finish (asyncio's
/// `as_completed(aws, timeout=)`).
///
/// [`AsCompleted::next`] gives `Some(outcome)` per task, the first to finish first
/// (`Ok(value)`, `Err(Cancelled)` or `Err(Panic)`, as awaiting the task would), then
/// `None`. Tasks already done when iteration starts come first, in argument order.
///
/// With a `timeout` (counted from this call when a loop is running, else from the
/// first `next`), once the time is up every remaining item is `Err(Error::Timeout)`,
/// as asyncio raises `TimeoutError` for each remaining awaitable; outcomes that had
/// already been collected are still given first. The tasks not yet yielded keep
/// running: get their handles back with [`AsCompleted::into_pending`], or let them run
/// detached by dropping the iterator.
///
/// Rust departure: asyncio yields awaitables to be awaited; here `next().await` gives
/// the outcome directly, moved out of the task.
///
/// ```
/// use std::time::Duration;
/// let (lp, _clock) = asyncio::EventLoop::with_test_clock().unwrap();
/// let order = lp.run_until_complete(async {
///     let t = |s: u64| asyncio::create_task(async move {
///         asyncio::sleep(Duration::from_secs(s)).await;
///         s
///     });
///     let mut it = asyncio::as_completed(vec![t(3), t(1), t(2)], None);
///     let mut order = Vec::new();
///     while let Some(r) = it.next().await {
///         order.push(r.unwrap());
///     }
///     order
/// }).unwrap();
/// assert_eq!(order, [1, 2, 3]);
/// ```
pub fn as_completed<T: 'static>(tasks: Vec<Task<T>>, timeout: Option<Duration>) -> AsCompleted<T> {
    let n = tasks.len();
    AsCompleted {
        refs: tasks.iter().map(Task::task_ref).collect(),
        tasks: tasks.into_iter().map(Some).collect(),
        finished: VecDeque::new(),
        seen: vec![false; n],
        remaining: n,
        deadline: Deadline::new(timeout, true),
        wakers: ChildWakers::new(n),
    }
}

impl<T: 'static> AsCompleted<T> {
    /// The next outcome in completion order; `None` when every task was yielded.
    ///
    /// Cancel-safe: dropping the returned future loses nothing, since outcomes stay in
    /// their tasks until `next` hands them out.
    pub async fn next(&mut self) -> Option<Result<T>> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// The poll behind [`AsCompleted::next`], for hand-written futures.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        if !self.deadline.expired {
            for i in self.wakers.candidates(cx) {
                if self.seen[i] {
                    continue;
                }
                let mut ccx = self.wakers.context(i);
                if self.refs[i].poll_done(&mut ccx).is_ready() {
                    self.seen[i] = true;
                    self.finished.push_back(i);
                }
            }
        }
        if let Some(i) = self.finished.pop_front() {
            self.remaining -= 1;
            let out = match self.tasks[i].take() {
                Some(t) => t.take_result(),
                None => Err(Error::invalid_state("task already yielded")),
            };
            return Poll::Ready(Some(out));
        }
        if self.deadline.poll_expired(cx) {
            self.remaining -= 1;
            return Poll::Ready(Some(Err(Error::Timeout)));
        }
        Poll::Pending
    }

    /// How many more items [`AsCompleted::next`] will yield.
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// The tasks not yielded yet, in argument order (for instance after a timeout, to
    /// keep waiting for them or cancel them).
    pub fn into_pending(mut self) -> Vec<Task<T>> {
        self.tasks.drain(..).flatten().collect()
    }
}

impl<T> fmt::Debug for AsCompleted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted")
            .field("remaining", &self.remaining)
            .field("finished", &self.finished.len())
            .field("deadline", &self.deadline)
            .finish()
    }
}
