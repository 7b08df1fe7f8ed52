//! The event loop proper (CPython's `test_base_events.py`): the ready queue and its
//! per-iteration snapshot, stop/run/close rules, timers and their lazy cancellation,
//! the exception handler, and debug mode.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use asyncio::{Error, EventLoop, ExceptionContext};

/// Captures `log` records of the current thread (one global logger per test binary).
mod capture {
    use std::cell::RefCell;
    use std::sync::Once;

    thread_local! {
        static CAPTURED: RefCell<Option<Vec<(log::Level, String)>>> = const { RefCell::new(None) };
    }

    struct Capture;

    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &log::Record<'_>) {
            let _ = CAPTURED.try_with(|c| {
                if let Some(v) = c.borrow_mut().as_mut() {
                    v.push((record.level(), record.args().to_string()));
                }
            });
        }
        fn flush(&self) {}
    }

    static LOGGER: Capture = Capture;
    static INIT: Once = Once::new();

    /// Start capturing this thread's records.
    pub fn start() {
        INIT.call_once(|| {
            log::set_logger(&LOGGER).expect("no other logger in this test binary");
            log::set_max_level(log::LevelFilter::Trace);
        });
        CAPTURED.with(|c| *c.borrow_mut() = Some(Vec::new()));
    }

    /// Stop capturing and return what was captured.
    pub fn take() -> Vec<(log::Level, String)> {
        CAPTURED.with(|c| c.borrow_mut().take().unwrap_or_default())
    }
}

type Log = Rc<RefCell<Vec<String>>>;

fn new_log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

fn push(log: &Log, s: impl Into<String>) {
    log.borrow_mut().push(s.into());
}

/// Run exactly one iteration: `stop()` before `run_forever()` does one and returns.
fn run_once(lp: &EventLoop) {
    lp.stop();
    lp.run_forever().unwrap();
}

/// Collect every exception-handler call.
fn collect_handler_calls(lp: &EventLoop) -> Rc<RefCell<Vec<ExceptionContext>>> {
    let calls = Rc::new(RefCell::new(Vec::new()));
    let c = calls.clone();
    lp.set_exception_handler(Some(move |_: &EventLoop, ctx: &ExceptionContext| {
        c.borrow_mut().push(ctx.clone())
    }));
    calls
}

#[test]
fn call_soon_runs_callbacks_in_fifo_order() {
    let lp = EventLoop::new().unwrap();
    let log = new_log();
    for i in 0..100 {
        let l = log.clone();
        lp.call_soon(move || push(&l, i.to_string())).unwrap();
    }
    run_once(&lp);
    let expected: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    assert_eq!(*log.borrow(), expected);
    // Each callback ran exactly once.
    run_once(&lp);
    assert_eq!(log.borrow().len(), 100);
    lp.close().unwrap();
}

#[test]
fn callback_scheduled_by_a_callback_runs_on_the_next_iteration() {
    let lp = EventLoop::new().unwrap();
    let log = new_log();
    let (l, lp2) = (log.clone(), lp.clone());
    lp.call_soon(move || {
        push(&l, "a");
        let l2 = l.clone();
        lp2.call_soon(move || push(&l2, "b")).unwrap();
    })
    .unwrap();
    run_once(&lp);
    assert_eq!(*log.borrow(), ["a"], "b was scheduled during the batch");
    run_once(&lp);
    assert_eq!(*log.borrow(), ["a", "b"]);
    lp.close().unwrap();
}

/// A callback that re-schedules itself counts iterations: each run is one iteration.
fn start_ticker(lp: &EventLoop) -> (Rc<Cell<u64>>, Rc<Cell<bool>>) {
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

#[test]
fn snapshot_semantics_seen_through_an_iteration_counter() {
    let lp = EventLoop::new().unwrap();
    let (iteration, stop_ticker) = start_ticker(&lp);
    let seen = Rc::new(RefCell::new(Vec::new()));
    let (s, it, lp2, st) = (seen.clone(), iteration.clone(), lp.clone(), stop_ticker);
    lp.call_soon(move || {
        s.borrow_mut().push(it.get());
        let (s2, it2, lp3) = (s.clone(), it.clone(), lp2.clone());
        lp2.call_soon(move || {
            s2.borrow_mut().push(it2.get());
            st.set(true);
            lp3.stop();
        })
        .unwrap();
    })
    .unwrap();
    lp.run_forever().unwrap();
    let seen = seen.borrow();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[1],
        seen[0] + 1,
        "scheduled by a callback: one iteration later"
    );
    lp.close().unwrap();
}

#[test]
fn stop_mid_batch_finishes_the_batch_and_defers_new_callbacks() {
    let lp = EventLoop::new().unwrap();
    let log = new_log();
    let l = log.clone();
    lp.call_soon(move || push(&l, "c1")).unwrap();
    let (l, lp2) = (log.clone(), lp.clone());
    lp.call_soon(move || {
        push(&l, "c2");
        lp2.stop();
        let l2 = l.clone();
        lp2.call_soon(move || push(&l2, "c4")).unwrap();
    })
    .unwrap();
    let l = log.clone();
    lp.call_soon(move || push(&l, "c3")).unwrap();
    lp.run_forever().unwrap();
    assert_eq!(*log.borrow(), ["c1", "c2", "c3"]);
    assert!(!lp.is_running());
    // The callback scheduled by c2 runs on the next run.
    run_once(&lp);
    assert_eq!(*log.borrow(), ["c1", "c2", "c3", "c4"]);
    lp.close().unwrap();
}

#[test]
fn stop_before_run_forever_runs_exactly_one_iteration() {
    let lp = EventLoop::new().unwrap();
    let log = new_log();
    let (l, lp2) = (log.clone(), lp.clone());
    lp.call_soon(move || {
        push(&l, "first");
        let l2 = l.clone();
        lp2.call_soon(move || push(&l2, "second")).unwrap();
    })
    .unwrap();
    lp.stop();
    lp.run_forever().unwrap();
    assert_eq!(*log.borrow(), ["first"]);
    // stop() is consumed: the flag does not leak into the next run.
    let done = lp.run_until_complete(async { 7 }).unwrap();
    assert_eq!(done, 7);
    assert_eq!(*log.borrow(), ["first", "second"]);
    lp.close().unwrap();
}

#[test]
fn timers_with_equal_deadlines_run_in_scheduling_order() {
    let (lp, _clock) = EventLoop::with_test_clock().unwrap();
    let log = new_log();
    let when = lp.time() + Duration::from_secs(1);
    for i in 0..50 {
        let l = log.clone();
        lp.call_at(when, move || push(&l, i.to_string())).unwrap();
    }
    lp.run_until_complete(asyncio::sleep(Duration::from_secs(2)))
        .unwrap();
    let expected: Vec<String> = (0..50).map(|i| i.to_string()).collect();
    assert_eq!(*log.borrow(), expected);
    lp.close().unwrap();
}

#[test]
fn call_later_runs_in_deadline_order_and_never_early() {
    let (lp, _clock) = EventLoop::with_test_clock().unwrap();
    let fired = Rc::new(RefCell::new(Vec::new()));
    let start = lp.time();
    let mut handles = Vec::new();
    for ms in [30u64, 10, 20, 10] {
        let (f, lp2) = (fired.clone(), lp.clone());
        let h = lp
            .call_later(Duration::from_millis(ms), move || {
                f.borrow_mut().push((ms, lp2.time()))
            })
            .unwrap();
        assert_eq!(h.when(), start + Duration::from_millis(ms));
        handles.push((ms, h));
    }
    lp.run_until_complete(asyncio::sleep(Duration::from_millis(50)))
        .unwrap();
    let fired = fired.borrow();
    let order: Vec<u64> = fired.iter().map(|(ms, _)| *ms).collect();
    assert_eq!(order, [10, 10, 20, 30]);
    for (ms, at) in fired.iter() {
        assert!(
            *at >= start + Duration::from_millis(*ms),
            "a timer fired early"
        );
    }
    lp.close().unwrap();
}

#[test]
fn call_at_in_the_past_runs_on_the_next_iteration() {
    let (lp, clock) = EventLoop::with_test_clock().unwrap();
    clock.advance(Duration::from_secs(10));
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    lp.call_at(lp.time() - Duration::from_secs(5), move || r.set(true))
        .unwrap();
    run_once(&lp);
    assert!(ran.get());
    lp.close().unwrap();
}

#[test]
fn timer_with_auto_advance_off_waits_for_the_clock() {
    let (lp, clock) = EventLoop::with_test_clock().unwrap();
    clock.set_auto_advance(false);
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    lp.call_later(Duration::from_secs(3), move || r.set(true))
        .unwrap();
    run_once(&lp);
    assert!(!ran.get());
    clock.advance(Duration::from_secs(2));
    run_once(&lp);
    assert!(!ran.get());
    clock.advance(Duration::from_secs(1));
    run_once(&lp);
    assert!(ran.get());
    lp.close().unwrap();
}

#[test]
fn cancelling_100k_timers_shrinks_the_heap_in_one_iteration() {
    let (lp, _clock) = EventLoop::with_test_clock().unwrap();
    let handles: Vec<_> = (0..100_000u64)
        .map(|i| {
            lp.call_later(Duration::from_secs(3600 + i), || {
                panic!("cancelled timer ran")
            })
            .unwrap()
        })
        .collect();
    assert_eq!(lp.scheduled_timer_count(), 100_000);
    for h in &handles {
        h.cancel();
    }
    // Cancelling is O(1): the heap is purged lazily, at the next iteration.
    assert_eq!(lp.scheduled_timer_count(), 100_000);
    run_once(&lp);
    assert_eq!(lp.scheduled_timer_count(), 0);
    lp.close().unwrap();
}

#[test]
fn heap_is_rebuilt_only_when_more_than_half_is_cancelled() {
    let (lp, _clock) = EventLoop::with_test_clock().unwrap();
    let handles: Vec<_> = (1..=200u64)
        .map(|i| lp.call_later(Duration::from_secs(i), || {}).unwrap())
        .collect();
    // 50 cancelled at the tail: under half, and not at the head: nothing removed.
    for h in &handles[150..] {
        h.cancel();
    }
    run_once(&lp);
    assert_eq!(lp.scheduled_timer_count(), 200);
    // 10 cancelled at the head are popped.
    for h in &handles[..10] {
        h.cancel();
    }
    run_once(&lp);
    assert_eq!(lp.scheduled_timer_count(), 190);
    // 60 more in the middle: 110 of 190 cancelled, over half: the heap is rebuilt.
    for h in &handles[10..70] {
        h.cancel();
    }
    run_once(&lp);
    assert_eq!(lp.scheduled_timer_count(), 80);
    lp.close().unwrap();
}

#[test]
fn a_panicking_callback_is_reported_once_and_the_loop_goes_on() {
    let lp = EventLoop::new().unwrap();
    let calls = collect_handler_calls(&lp);
    let after = Rc::new(Cell::new(false));
    lp.call_soon(|| panic!("boom in callback")).unwrap();
    let a = after.clone();
    lp.call_soon(move || a.set(true)).unwrap();
    run_once(&lp);
    assert!(after.get(), "the callbacks after the panic still ran");
    run_once(&lp);
    let calls = calls.borrow();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].message, "Exception in callback");
    match &calls[0].exception {
        Some(Error::Panic(m)) => assert!(m.contains("boom in callback")),
        other => panic!("unexpected exception {other:?}"),
    }
    // And the loop still works.
    assert_eq!(lp.run_until_complete(async { 1 }).unwrap(), 1);
    lp.close().unwrap();
}

#[test]
fn a_panicking_exception_handler_falls_back_to_the_default_handler() {
    capture::start();
    let lp = EventLoop::new().unwrap();
    let handler_calls = Rc::new(Cell::new(0));
    let hc = handler_calls.clone();
    lp.set_exception_handler(Some(move |_: &EventLoop, _: &ExceptionContext| {
        hc.set(hc.get() + 1);
        panic!("the handler itself fails");
    }));
    assert!(lp.has_exception_handler());
    lp.call_soon(|| panic!("original failure")).unwrap();
    run_once(&lp);
    lp.close().unwrap();
    let records = capture::take();
    assert_eq!(handler_calls.get(), 1);
    let errors: Vec<&String> = records
        .iter()
        .filter(|(lvl, _)| *lvl == log::Level::Error)
        .map(|(_, m)| m)
        .collect();
    assert_eq!(errors.len(), 1, "{records:?}");
    assert!(errors[0].contains("Unhandled error in exception handler"));
    assert!(errors[0].contains("the handler itself fails"));
    assert!(errors[0].contains("original failure"));
}

#[test]
fn default_exception_handler_logs_an_error() {
    capture::start();
    let lp = EventLoop::new().unwrap();
    assert!(!lp.has_exception_handler());
    // Setting None restores the default handler.
    lp.set_exception_handler(Some(|_: &EventLoop, _: &ExceptionContext| {}));
    lp.set_exception_handler(None::<fn(&EventLoop, &ExceptionContext)>);
    assert!(!lp.has_exception_handler());
    lp.call_exception_handler(
        ExceptionContext::new("something broke").with_exception(Error::value("bad value")),
    );
    lp.close().unwrap();
    let records = capture::take();
    let errors: Vec<_> = records
        .iter()
        .filter(|(lvl, _)| *lvl == log::Level::Error)
        .collect();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].1.contains("something broke"));
    assert!(errors[0].1.contains("bad value"));
}

#[test]
fn nested_runs_are_errors_not_hangs() {
    let lp = EventLoop::new().unwrap();
    let other = EventLoop::new().unwrap();
    let lp2 = lp.clone();
    let (a, b, c, d) = lp
        .run_until_complete(async move {
            let a = lp2.run_until_complete(async {}).map(|_| ());
            let b = lp2.run_forever();
            let c = other.run_until_complete(async {}).map(|_| ());
            let d = asyncio::run(async {}).map(|_| ());
            (a, b, c, d)
        })
        .unwrap();
    for r in [&a, &b] {
        match r {
            Err(Error::Runtime(m)) => assert_eq!(m, "This event loop is already running"),
            other => panic!("unexpected {other:?}"),
        }
    }
    match c {
        Err(Error::Runtime(m)) => assert!(m.contains("another loop is running"), "{m}"),
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(d, Err(Error::Runtime(_))));
    lp.close().unwrap();
}

#[test]
fn a_closed_loop_refuses_work() {
    let lp = EventLoop::new().unwrap();
    lp.close().unwrap();
    assert!(lp.is_closed());
    let closed = |r: Result<(), Error>| match r {
        Err(Error::Runtime(m)) => assert_eq!(m, "Event loop is closed"),
        other => panic!("unexpected {other:?}"),
    };
    closed(lp.call_soon(|| {}).map(|_| ()));
    closed(lp.call_later(Duration::from_secs(1), || {}).map(|_| ()));
    closed(lp.call_at(lp.time(), || {}).map(|_| ()));
    closed(lp.run_forever());
    closed(lp.run_until_complete(async {}));
    closed(lp.call_soon_threadsafe(|| {}));
    let task = lp.create_task(async { 1 });
    assert!(task.done());
    assert!(matches!(task.take_result(), Err(Error::Runtime(_))));
    // close() is idempotent.
    lp.close().unwrap();
}

#[test]
fn closing_a_running_loop_is_an_error() {
    let lp = EventLoop::new().unwrap();
    let lp2 = lp.clone();
    let r = lp.run_until_complete(async move { lp2.close() }).unwrap();
    match r {
        Err(Error::Runtime(m)) => assert_eq!(m, "Cannot close a running event loop"),
        other => panic!("unexpected {other:?}"),
    }
    assert!(!lp.is_closed());
    lp.close().unwrap();
}

#[test]
fn is_running_inside_and_outside() {
    let lp = EventLoop::new().unwrap();
    assert!(!lp.is_running());
    let lp2 = lp.clone();
    assert!(lp
        .run_until_complete(async move { lp2.is_running() })
        .unwrap());
    assert!(!lp.is_running());
    lp.close().unwrap();
}

#[test]
fn run_until_complete_stopped_early_is_an_error_and_the_task_survives() {
    let (lp, _clock) = EventLoop::with_test_clock().unwrap();
    let finished = Rc::new(Cell::new(false));
    let f = finished.clone();
    let lp2 = lp.clone();
    lp.call_soon(move || lp2.stop()).unwrap();
    let r = lp.run_until_complete(async move {
        asyncio::sleep(Duration::from_secs(10)).await;
        f.set(true);
    });
    match r {
        Err(Error::Runtime(m)) => assert_eq!(m, "Event loop stopped before Future completed."),
        other => panic!("unexpected {other:?}"),
    }
    assert!(!finished.get());
    // The task is still scheduled: a later run finishes it.
    lp.run_until_complete(asyncio::sleep(Duration::from_secs(20)))
        .unwrap();
    assert!(finished.get());
    lp.close().unwrap();
}

#[test]
fn run_until_complete_reports_panic_and_cancellation() {
    let lp = EventLoop::new().unwrap();
    match lp.run_until_complete(async { panic!("main failed") }) {
        Err(Error::Panic(m)) => assert!(m.contains("main failed")),
        other => panic!("unexpected {other:?}"),
    }
    let r = lp.run_until_complete(async {
        asyncio::current_task().unwrap().cancel();
        asyncio::yield_now().await;
        unreachable!("cancelled at the yield");
    });
    assert!(matches!(r, Err(Error::Cancelled)));
    lp.close().unwrap();
}

struct DropFlag(Rc<Cell<bool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

#[test]
fn close_drops_pending_callbacks_timers_and_tasks() {
    let lp = EventLoop::new().unwrap();
    let calls = collect_handler_calls(&lp);
    let captured = Rc::new(());
    let c1 = captured.clone();
    lp.call_soon(move || drop(c1)).unwrap();
    let c2 = captured.clone();
    lp.call_later(Duration::from_secs(3600), move || drop(c2))
        .unwrap();
    let dropped = Rc::new(Cell::new(false));
    let guard = DropFlag(dropped.clone());
    let task = lp.create_task(async move {
        let _g = guard;
        asyncio::sleep(Duration::from_secs(3600)).await;
    });
    task.set_name("sleeper");
    assert_eq!(Rc::strong_count(&captured), 3);
    lp.close().unwrap();
    assert_eq!(Rc::strong_count(&captured), 1, "closures dropped at close");
    assert!(dropped.get(), "the pending task's future was dropped");
    assert!(task.done() && task.cancelled());
    let calls = calls.borrow();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].message, "Task was destroyed but it is pending!");
    assert_eq!(calls[0].task.as_deref(), Some("sleeper"));
}

#[test]
fn debug_mode_logs_slow_callbacks() {
    capture::start();
    let lp = EventLoop::new().unwrap();
    lp.set_debug(true);
    assert!(lp.get_debug());
    lp.set_slow_callback_duration(Duration::from_millis(1));
    assert_eq!(lp.slow_callback_duration(), Duration::from_millis(1));
    let busy = || {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_millis(5) {
            std::hint::spin_loop();
        }
    };
    lp.call_soon(busy).unwrap();
    run_once(&lp);
    let slow: Vec<_> = capture::take()
        .into_iter()
        .filter(|(lvl, m)| *lvl == log::Level::Warn && m.starts_with("Executing callback took"))
        .collect();
    assert_eq!(slow.len(), 1, "{slow:?}");

    // Off: no warning for the same callback.
    capture::start();
    lp.set_debug(false);
    lp.call_soon(busy).unwrap();
    run_once(&lp);
    let records = capture::take();
    assert!(
        !records.iter().any(|(lvl, _)| *lvl == log::Level::Warn),
        "{records:?}"
    );
    lp.close().unwrap();
}

#[test]
fn debug_mode_narrates_iterations_at_trace_level() {
    capture::start();
    let lp = EventLoop::new().unwrap();
    lp.set_debug(true);
    lp.run_until_complete(async { asyncio::yield_now().await })
        .unwrap();
    lp.close().unwrap();
    let records = capture::take();
    assert!(records
        .iter()
        .any(|(lvl, m)| *lvl == log::Level::Trace && m.starts_with("iteration:")));
}

#[test]
fn loop_time_follows_the_test_clock() {
    let (lp, clock) = EventLoop::with_test_clock().unwrap();
    let t0 = lp.time();
    clock.advance(Duration::from_secs(5));
    assert_eq!(lp.time() - t0, Duration::from_secs(5));
    assert_eq!(clock.now(), lp.time());
    lp.close().unwrap();
}

#[test]
fn tasks_and_callbacks_share_one_fifo_queue() {
    let lp = EventLoop::new().unwrap();
    let log = new_log();
    let l = log.clone();
    lp.call_soon(move || push(&l, "callback 1")).unwrap();
    let l = log.clone();
    let _t = lp.create_task(async move { push(&l, "task step") });
    let l = log.clone();
    lp.call_soon(move || push(&l, "callback 2")).unwrap();
    run_once(&lp);
    assert_eq!(*log.borrow(), ["callback 1", "task step", "callback 2"]);
    lp.close().unwrap();
}
