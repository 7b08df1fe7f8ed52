//! `asyncio.run()` (asyncio's `runners.py`).

use std::cell::Cell;
use std::future::Future as StdFuture;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use signal_hook::consts::signal::SIGINT;
use signal_hook::SigId;

use crate::base_events::EventLoop;
use crate::exceptions::{Error, Result};
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
/// Returns `main`'s output, or `Err(Panic)` if it panicked. Called from inside a
/// running loop it does not deadlock: it drops `main` unrun and returns a
/// `RuntimeError`, `"asyncio::run() cannot be called from a running event loop"`
/// (asyncio's message, with Rust's path).
///
/// # Ctrl-C
///
/// Called on the main thread, `run` handles SIGINT as asyncio 3.11's `Runner` does: the
/// first Ctrl-C cancels the main task (its future is dropped, so its destructors clean
/// up; other tasks are then cancelled as in step 2) and `run` returns
/// `Err(Error::KeyboardInterrupt)`; a second Ctrl-C ends the process at once, by SIGINT
/// (decided in signal context, so it works even if the loop is stuck). An
/// [`EventLoop::add_signal_handler`] for SIGINT made by `main` replaces this handling,
/// and a pending [`wait_for_signal`](crate::unix_events::wait_for_signal) on SIGINT takes
/// the first Ctrl-C instead of the main task (the second still ends the process). The
/// handler is removed when `run` returns. On other threads (whose SIGINT goes to the
/// main thread's handling anyway) `run` leaves SIGINT alone.
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
    let task = lp.create_task(main);
    let interrupted = Rc::new(Cell::new(false));
    let sigint = if std::thread::current().name() == Some("main") {
        install_sigint(&lp, task.task_ref(), interrupted.clone())
    } else {
        false
    };
    let result = lp.run_task_until_done(task);
    cancel_all_tasks(&lp);
    if sigint {
        let _ = lp.remove_signal_handler(SIGINT);
    }
    // asyncio's Runner.close: join the executor's threads (bounded, as asyncio's
    // THREAD_JOIN_TIMEOUT) before closing the loop.
    let lp2 = lp.clone();
    let _ = lp.run_until_complete(async move {
        lp2.shutdown_default_executor(Some(THREAD_JOIN_TIMEOUT))
            .await
    });
    lp.close()?;
    match result {
        Err(Error::Cancelled) if interrupted.get() => Err(Error::KeyboardInterrupt),
        r => r,
    }
}

/// Unregisters the signal-context half of `run`'s Ctrl-C handling when the loop-side
/// handler is dropped (removed, or replaced by the user's own).
struct SecondInterrupt([SigId; 2]);

impl Drop for SecondInterrupt {
    fn drop(&mut self) {
        for id in self.0 {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// asyncio's `Runner._on_sigint`: the first SIGINT cancels the main task; the second
/// runs SIGINT's default action (terminate). Returns whether it is installed.
fn install_sigint(lp: &EventLoop, main: TaskRef, interrupted: Rc<Cell<bool>>) -> bool {
    // In signal context, in this order: the first action kills the process only once
    // the second has armed it, i.e. from the second SIGINT on.
    let armed = Arc::new(AtomicBool::new(false));
    let Ok(kill) = signal_hook::flag::register_conditional_default(SIGINT, armed.clone()) else {
        return false;
    };
    let arm = match signal_hook::flag::register(SIGINT, armed) {
        Ok(id) => id,
        Err(_) => {
            signal_hook::low_level::unregister(kill);
            return false;
        }
    };
    let second = SecondInterrupt([kill, arm]);
    lp.add_signal_handler(SIGINT, move || {
        let _keep = &second;
        if !interrupted.replace(true) {
            main.cancel();
        }
    })
    .is_ok()
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
