//! A cooperative budget: a task that keeps finding its I/O ready is made to yield.
//!
//! asyncio has no such thing (nor does this module have a CPython twin): a coroutine
//! that loops over `await reader.readline()` while lines are buffered never suspends,
//! so it keeps the thread until the buffer runs dry, and every other task, timer and
//! connection waits. The idea is tokio's `coop` budget, built for this loop:
//!
//! - every task **step** starts with a budget of [`BUDGET`] (32) units;
//! - each stream operation that may complete without suspending spends one unit
//!   before it looks at its buffer: every [`StreamReader`] read (`read`, `read_with`,
//!   `read_to_end`, `readline`, `next_line`, `readuntil`, `readuntil_any`,
//!   `readexactly`) and every [`StreamWriter::drain`];
//! - every [`StreamWriter::write`] / [`StreamWriter::writelines`] spends one unit too,
//!   but never yields (it is not `async`): a task that writes many times per read (a
//!   chat relay writes each line to every member) yields after fewer reads, because
//!   the work of a step is counted, not only its reads;
//! - when the budget is spent, the operation wakes its own task and returns
//!   `Pending`: the task goes to the back of the ready queue, the loop polls for I/O,
//!   fires due timers and runs the other ready tasks, and the operation is tried again
//!   at the task's next step, with a full budget;
//! - outside a task step (a plain callback, a future polled by hand) no budget applies.
//!
//! Nothing is lost by yielding: the operation has not looked at or consumed any data
//! when it returns `Pending` for the budget, and every stream read is cancel-safe as
//! before. A read that suspends because no data is there spends its unit too (it gives
//! the thread back anyway).
//!
//! Spending is one thread-local `Cell` read and write. [`unconstrained`] opts a section
//! out (a task that must finish a burst before anyone else runs), and
//! [`consume_budget`] lets a loop of your own code take part.
//!
//! ```
//! asyncio::run(async {
//!     let mut r = asyncio::StreamReader::new();
//!     for _ in 0..1000 {
//!         r.feed_data(b"line\n").unwrap();
//!     }
//!     r.feed_eof();
//!     // 1000 ready lines: the task yields about every 32 reads, so a timer or a
//!     // connection waiting meanwhile gets its turn; the lines all arrive in order.
//!     let mut n = 0;
//!     while let Some(line) = r.next_line().await {
//!         assert_eq!(line.unwrap(), b"line\n");
//!         n += 1;
//!     }
//!     assert_eq!(n, 1000);
//! })
//! .unwrap();
//! ```
//!
//! [`StreamReader`]: crate::StreamReader
//! [`StreamWriter::drain`]: crate::StreamWriter::drain
//! [`StreamWriter::write`]: crate::StreamWriter::write
//! [`StreamWriter::writelines`]: crate::StreamWriter::writelines

use std::cell::Cell;
use std::fmt;
use std::future::Future as StdFuture;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Units of ready work a task may do in one step before it is made to yield (tokio's
/// figure).
pub const BUDGET: u8 = 32;

thread_local! {
    /// The running step's budget left; `None`: no budget applies (outside a task
    /// step, or inside [`unconstrained`]).
    static LEFT: Cell<Option<u8>> = const { Cell::new(None) };
}

/// Give the current step a full budget until the guard is dropped (the task step in
/// `tasks.rs`); the previous budget comes back then.
pub(crate) struct StepBudget(Option<u8>);

impl StepBudget {
    #[inline]
    pub(crate) fn start() -> StepBudget {
        StepBudget(LEFT.with(|b| b.replace(Some(BUDGET))))
    }
}

impl Drop for StepBudget {
    #[inline]
    fn drop(&mut self) {
        LEFT.with(|b| b.set(self.0));
    }
}

/// Spend one unit of the current step's budget: `Ready` if there was one (or no
/// budget applies), otherwise wake `cx`'s task and return `Pending`, so that the task
/// runs again on a later loop iteration with a full budget.
///
/// Call it before doing any work that has side effects, so that returning `Pending`
/// here loses nothing. This is what the crate's stream reads and `drain` do; a future
/// of your own that may complete many times in a row without suspending can do it too.
#[inline]
pub fn poll_proceed(cx: &mut Context<'_>) -> Poll<()> {
    LEFT.with(|b| match b.get() {
        None => Poll::Ready(()),
        Some(0) => {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
        Some(n) => {
            b.set(Some(n - 1));
            Poll::Ready(())
        }
    })
}

/// Spend one unit without yielding (for work that cannot wait, such as
/// [`StreamWriter::write`](crate::StreamWriter::write)): the task yields at its next
/// read or `drain` once the budget is spent. Saturates at zero.
#[inline]
pub(crate) fn spend() {
    LEFT.with(|b| {
        if let Some(n) = b.get() {
            b.set(Some(n.saturating_sub(1)));
        }
    });
}

/// Whether the current step has budget left (always `true` outside a task step and
/// inside [`unconstrained`]). Spends nothing.
pub fn has_budget_remaining() -> bool {
    LEFT.with(|b| b.get() != Some(0))
}

/// Spend one unit of budget, yielding to the loop first if it is spent (tokio's
/// `consume_budget`): put it in a loop of your own that may never suspend otherwise.
/// Cheaper than [`crate::yield_now`] in every step but the one that yields.
pub fn consume_budget() -> ConsumeBudget {
    ConsumeBudget(())
}

/// The future of [`consume_budget`]: `Ready` once one unit of budget was spent.
#[must_use = "futures do nothing unless awaited"]
pub struct ConsumeBudget(());

impl StdFuture for ConsumeBudget {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        poll_proceed(cx)
    }
}

impl fmt::Debug for ConsumeBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConsumeBudget")
    }
}

/// Run `fut` with no budget (tokio's `unconstrained`): the stream operations inside it
/// never yield for the budget, and spend nothing of the enclosing step's budget.
///
/// Use it for a section that must not be interleaved with other tasks, knowing that it
/// keeps the thread for as long as its I/O stays ready. The future is boxed once (the
/// crate uses no `unsafe` to pin it in place).
///
/// ```
/// asyncio::run(async {
///     let mut r = asyncio::StreamReader::new();
///     r.feed_data(&[b'x'; 1000]).unwrap();
///     let n = asyncio::coop::unconstrained(async move {
///         let mut n = 0;
///         while n < 1000 {
///             n += r.read(1).await.unwrap().len(); // never yields: data is there
///         }
///         n
///     })
///     .await;
///     assert_eq!(n, 1000);
/// })
/// .unwrap();
/// ```
pub fn unconstrained<F: StdFuture>(fut: F) -> Unconstrained<F> {
    Unconstrained(Box::pin(fut))
}

/// The future of [`unconstrained`].
#[must_use = "futures do nothing unless awaited"]
pub struct Unconstrained<F>(Pin<Box<F>>);

impl<F: StdFuture> StdFuture for Unconstrained<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        struct Restore(Option<u8>);
        impl Drop for Restore {
            fn drop(&mut self) {
                LEFT.with(|b| b.set(self.0));
            }
        }
        let _restore = Restore(LEFT.with(|b| b.replace(None)));
        self.0.as_mut().poll(cx)
    }
}

impl<F> fmt::Debug for Unconstrained<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Unconstrained")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    #[test]
    fn no_budget_outside_a_step() {
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..1000 {
            assert!(poll_proceed(&mut cx).is_ready());
        }
        assert!(has_budget_remaining());
    }

    #[test]
    fn spend_counts_without_yielding_and_saturates() {
        let mut cx = Context::from_waker(Waker::noop());
        let _b = StepBudget::start();
        for _ in 0..BUDGET as usize + 10 {
            spend();
        }
        assert!(!has_budget_remaining());
        assert!(poll_proceed(&mut cx).is_pending());
    }

    #[test]
    fn a_step_budget_runs_out_and_the_guard_restores() {
        let mut cx = Context::from_waker(Waker::noop());
        {
            let _b = StepBudget::start();
            for _ in 0..BUDGET {
                assert!(poll_proceed(&mut cx).is_ready());
            }
            assert!(!has_budget_remaining());
            assert!(poll_proceed(&mut cx).is_pending());
            {
                let _inner = StepBudget::start();
                assert!(
                    poll_proceed(&mut cx).is_ready(),
                    "a nested step has its own"
                );
            }
            assert!(
                poll_proceed(&mut cx).is_pending(),
                "restored after the nested step"
            );
        }
        assert!(poll_proceed(&mut cx).is_ready(), "no budget after the step");
    }
}
