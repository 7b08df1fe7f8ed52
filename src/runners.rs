//! `asyncio.run()` (asyncio's `runners.py`).

use std::future::Future as StdFuture;

use crate::base_events::EventLoop;
use crate::exceptions::Result;
use crate::tasks::TaskRef;

/// Run `main` on a new event loop and close it (asyncio's `asyncio.run()`).
///
/// 1. A new loop is made and `main` runs as its first task until it completes.
/// 2. Every task still pending is cancelled, and the loop runs until they have all
///    observed it (their futures are dropped, so their destructors run inside the loop,
///    where they can still schedule clean-up).
/// 3. The loop is closed.
///
/// Returns `main`'s output, or `Err(Panic)` if it panicked. Called from inside a
/// running loop it does not deadlock: it drops `main` unrun and returns a
/// `RuntimeError`, `"asyncio::run() cannot be called from a running event loop"`
/// (asyncio's message, with Rust's path).
///
/// ```
/// let n = asyncio::run(async {
///     let t = asyncio::create_task(async { 20 + 1 });
///     t.await.unwrap() * 2
/// }).unwrap();
/// assert_eq!(n, 42);
///
/// asyncio::run(async {
///     let nested = asyncio::run(async {}).unwrap_err();
///     assert_eq!(
///         nested.to_string(),
///         "RuntimeError: asyncio::run() cannot be called from a running event loop"
///     );
/// }).unwrap();
/// ```
pub fn run<F>(main: F) -> Result<F::Output>
where
    F: StdFuture + 'static,
{
    if crate::events::get_running_loop().is_ok() {
        return Err(crate::Error::runtime(
            "asyncio::run() cannot be called from a running event loop",
        ));
    }
    let lp = EventLoop::new()?;
    let result = lp.run_until_complete(main);
    cancel_all_tasks(&lp);
    lp.close()?;
    result
}

/// Cancel every pending task of `lp` and run the loop until all are done (asyncio's
/// `runners._cancel_all_tasks`).
pub(crate) fn cancel_all_tasks(lp: &EventLoop) {
    let pending: Vec<TaskRef> = lp
        .inner
        .tasks
        .borrow()
        .iter()
        .map(|(_, t)| t.clone())
        .map(TaskRef::from_rc)
        .collect();
    if pending.is_empty() {
        return;
    }
    for t in &pending {
        t.cancel();
    }
    let waiter = lp.create_task(async move {
        for t in &pending {
            std::future::poll_fn(|cx| t.poll_done(cx)).await;
        }
    });
    let _ = lp.run_task_until_done(waiter);
}
