//! `asyncio.run()` (asyncio's `runners.py`).

use std::future::Future as StdFuture;

use crate::base_events::EventLoop;
use crate::exceptions::Result;
use crate::tasks::TaskRef;

/// asyncio's `THREAD_JOIN_TIMEOUT`: how long [`run`] waits for the executor's threads.
const THREAD_JOIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// Run `main` on a new event loop and close it (asyncio's `asyncio.run()`).
///
/// 1. A new loop is made and `main` runs as its first task until it completes.
/// 2. Every task still pending is cancelled, and the loop runs until they have all
///    observed it (their futures are dropped, so their destructors run inside the loop,
///    where they can still schedule clean-up).
/// 3. The default executor is shut down and its threads joined (at most 300 s, as
///    asyncio's `THREAD_JOIN_TIMEOUT`; the loop runs meanwhile).
/// 4. The loop is closed.
///
/// Returns `main`'s output, or `Err(Panic)` if it panicked. Errors with
/// `"Cannot run the event loop while another loop is running"` when called from inside
/// a running loop, instead of deadlocking.
///
/// ```
/// let n = asyncio::run(async {
///     let t = asyncio::create_task(async { 20 + 1 });
///     t.await.unwrap() * 2
/// }).unwrap();
/// assert_eq!(n, 42);
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
    // asyncio's Runner.close: join the executor's threads (bounded, as asyncio's
    // THREAD_JOIN_TIMEOUT) before closing the loop.
    let lp2 = lp.clone();
    let _ = lp.run_until_complete(async move {
        lp2.shutdown_default_executor(Some(THREAD_JOIN_TIMEOUT))
            .await
    });
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
