//! Helpers shared by the layer-2 tests (tasks, wakers, helpers, task groups,
//! timeouts, executor): loop runners bounded in time, an iteration counter, drop
//! guards and a recorder for the exception handler.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::future::Future as StdFuture;
use std::rc::Rc;
use std::time::{Duration, Instant};

use asyncio::{EventLoop, ExceptionContext};

/// Every test is bounded: a bug fails the test instead of hanging it. On a test clock
/// this is virtual time (the idle loop jumps to it), so it costs nothing.
pub const LIMIT: Duration = Duration::from_secs(3600);

/// A generous wall-clock bound for tests that involve other threads.
pub const REAL_LIMIT: Duration = Duration::from_secs(30);

/// Run `fut` on a fresh loop with a [`asyncio::TestClock`], bounded by [`LIMIT`] of
/// virtual time, then close the loop. Returns the output and the virtual time the run
/// took.
pub fn run_timed<T: 'static>(fut: impl StdFuture<Output = T> + 'static) -> (T, Duration) {
    let (lp, _clock) = EventLoop::with_test_clock().unwrap();
    let t0 = lp.time();
    let out = lp
        .run_until_complete(asyncio::wait_for(fut, LIMIT))
        .unwrap()
        .expect("test timed out (virtual time)");
    let took = lp.time() - t0;
    lp.close().unwrap();
    (out, took)
}

/// [`run_timed`] without the time.
pub fn run<T: 'static>(fut: impl StdFuture<Output = T> + 'static) -> T {
    run_timed(fut).0
}

/// Run `fut` on `lp` bounded by [`LIMIT`] (virtual time on a test clock).
pub fn run_on<T: 'static>(lp: &EventLoop, fut: impl StdFuture<Output = T> + 'static) -> T {
    lp.run_until_complete(asyncio::wait_for(fut, LIMIT))
        .unwrap()
        .expect("test timed out")
}

/// Run `fut` on `lp` (on the system clock) bounded by [`REAL_LIMIT`] of wall time.
pub fn run_on_real<T: 'static>(lp: &EventLoop, fut: impl StdFuture<Output = T> + 'static) -> T {
    lp.run_until_complete(asyncio::wait_for(fut, REAL_LIMIT))
        .unwrap()
        .expect("test timed out")
}

/// Run `fut` on a fresh loop on the system clock, bounded by [`REAL_LIMIT`] of wall
/// time (for tests where other threads do the work), then close the loop.
pub fn run_real<T: 'static>(fut: impl StdFuture<Output = T> + 'static) -> T {
    let lp = EventLoop::new().unwrap();
    let t0 = Instant::now();
    let out = lp
        .run_until_complete(asyncio::wait_for(fut, REAL_LIMIT))
        .unwrap()
        .unwrap_or_else(|_| panic!("test timed out after {:?}", t0.elapsed()));
    lp.close().unwrap();
    out
}

/// Run exactly one iteration: `stop()` before `run_forever()` does one and returns.
pub fn run_once(lp: &EventLoop) {
    lp.stop();
    lp.run_forever().unwrap();
}

/// Collect every exception-handler call.
pub fn collect_handler_calls(lp: &EventLoop) -> Rc<RefCell<Vec<ExceptionContext>>> {
    let calls = Rc::new(RefCell::new(Vec::new()));
    let c = calls.clone();
    lp.set_exception_handler(Some(move |_: &EventLoop, ctx: &ExceptionContext| {
        c.borrow_mut().push(ctx.clone())
    }));
    calls
}

/// An ordered record of what happened.
pub type Log = Rc<RefCell<Vec<String>>>;

pub fn new_log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

pub fn push(log: &Log, s: impl Into<String>) {
    log.borrow_mut().push(s.into());
}

/// Sets its flag when dropped: observes that a future was dropped (cancelled).
pub struct DropFlag(pub Rc<Cell<bool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// A drop guard and the flag it sets.
pub fn drop_flag() -> (DropFlag, Rc<Cell<bool>>) {
    let flag = Rc::new(Cell::new(false));
    (DropFlag(flag.clone()), flag)
}

/// A callback that re-schedules itself counts iterations: each run is one iteration.
/// Returns the counter and a switch that stops it.
pub fn start_ticker(lp: &EventLoop) -> (Rc<Cell<u64>>, Rc<Cell<bool>>) {
    fn tick(lp: EventLoop, count: Rc<Cell<u64>>, stop: Rc<Cell<bool>>) {
        if stop.get() {
            return;
        }
        count.set(count.get() + 1);
        let lp2 = lp.clone();
        lp.call_soon(move || tick(lp2, count, stop)).unwrap();
    }
    let count = Rc::new(Cell::new(0));
    let stop = Rc::new(Cell::new(false));
    let (lp2, c, s) = (lp.clone(), count.clone(), stop.clone());
    lp.call_soon(move || tick(lp2, c, s)).unwrap();
    (count, stop)
}

/// Sleep on the running loop for `secs` seconds (of virtual time in these tests).
pub async fn sleep_s(secs: u64) {
    asyncio::sleep(Duration::from_secs(secs)).await;
}

/// The virtual seconds elapsed on the running loop since `t0`.
pub fn secs_since(t0: Instant) -> u64 {
    let lp = asyncio::get_running_loop().unwrap();
    let d = lp.time() - t0;
    assert_eq!(d.subsec_nanos(), 0, "whole seconds expected, got {d:?}");
    d.as_secs()
}

/// The running loop's time.
pub fn now() -> Instant {
    asyncio::get_running_loop().unwrap().time()
}

/// Let every runnable task take a few steps (five loop iterations).
pub async fn settle() {
    for _ in 0..5 {
        asyncio::yield_now().await;
    }
}

/// The message of an expected `Error::Runtime`.
pub fn runtime_msg(r: asyncio::Result<()>) -> String {
    match r {
        Err(asyncio::Error::Runtime(m)) => m,
        other => panic!("expected a RuntimeError, got {other:?}"),
    }
}
