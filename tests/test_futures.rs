//! asyncio's `Future` (CPython's `test_futures.py`): states, results, done callbacks
//! (always through `call_soon`), awaiting from many tasks, and the report of an
//! exception nobody retrieved.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use asyncio::{Error, EventLoop, ExceptionContext, Future};

fn run_once(lp: &EventLoop) {
    lp.stop();
    lp.run_forever().unwrap();
}

fn collect_handler_calls(lp: &EventLoop) -> Rc<RefCell<Vec<ExceptionContext>>> {
    let calls = Rc::new(RefCell::new(Vec::new()));
    let c = calls.clone();
    lp.set_exception_handler(Some(move |_: &EventLoop, ctx: &ExceptionContext| {
        c.borrow_mut().push(ctx.clone())
    }));
    calls
}

fn is_invalid_state<T: std::fmt::Debug>(r: Result<T, Error>) -> bool {
    matches!(r, Err(Error::InvalidState(_)))
}

#[test]
fn a_new_future_is_pending() {
    let lp = EventLoop::new().unwrap();
    let f = lp.create_future::<i32>();
    assert!(!f.done());
    assert!(!f.cancelled());
    match f.result() {
        Err(Error::InvalidState(m)) => assert_eq!(m, "Result is not set."),
        other => panic!("unexpected {other:?}"),
    }
    assert!(is_invalid_state(f.exception()));
    assert!(f.get_loop().is_some());
    assert!(format!("{f:?}").contains("pending"));
    lp.close().unwrap();
}

#[test]
fn set_result_once_only() {
    let lp = EventLoop::new().unwrap();
    let f = Future::new(&lp);
    f.set_result(1).unwrap();
    assert!(f.done());
    assert_eq!(f.result().unwrap(), 1);
    assert!(matches!(f.exception(), Ok(None)));
    assert!(is_invalid_state(f.set_result(2)));
    assert!(is_invalid_state(f.set_exception(Error::value("late"))));
    assert!(!f.cancel(), "cancel after done returns false");
    assert_eq!(f.result().unwrap(), 1, "the first result stays");
    lp.close().unwrap();
}

#[test]
fn set_exception_is_given_back_by_result_and_exception() {
    let lp = EventLoop::new().unwrap();
    let calls = collect_handler_calls(&lp);
    let f = lp.create_future::<i32>();
    f.set_exception(Error::value("bad")).unwrap();
    assert!(f.done() && !f.cancelled());
    assert!(matches!(f.result(), Err(Error::Value(m)) if m == "bad"));
    assert!(matches!(f.exception(), Ok(Some(Error::Value(_)))));
    assert!(is_invalid_state(f.set_result(3)));
    drop(f);
    assert!(calls.borrow().is_empty(), "retrieved, so not reported");
    lp.close().unwrap();
}

#[test]
fn set_exception_refuses_cancelled() {
    let lp = EventLoop::new().unwrap();
    let f = lp.create_future::<i32>();
    assert!(is_invalid_state(f.set_exception(Error::Cancelled)));
    assert!(!f.done());
    lp.close().unwrap();
}

#[test]
fn cancel_a_pending_future() {
    let lp = EventLoop::new().unwrap();
    let f = lp.create_future::<i32>();
    assert!(f.cancel());
    assert!(f.cancelled() && f.done());
    assert!(!f.cancel());
    assert!(matches!(f.result(), Err(Error::Cancelled)));
    assert!(matches!(f.exception(), Err(Error::Cancelled)));
    assert!(is_invalid_state(f.set_result(1)));
    let r = lp.run_until_complete(f.clone()).unwrap();
    assert!(matches!(r, Err(Error::Cancelled)));
    lp.close().unwrap();
}

#[test]
fn done_callbacks_never_run_synchronously() {
    let lp = EventLoop::new().unwrap();
    let log = Rc::new(RefCell::new(Vec::new()));
    let f = lp.create_future::<i32>();
    for i in 0..3 {
        let l = log.clone();
        f.add_done_callback(move |fut| l.borrow_mut().push((i, fut.result().unwrap())));
    }
    f.set_result(5).unwrap();
    assert!(
        log.borrow().is_empty(),
        "set_result only schedules the callbacks"
    );
    run_once(&lp);
    assert_eq!(*log.borrow(), [(0, 5), (1, 5), (2, 5)]);

    // Already done: still scheduled, not called right away.
    let l = log.clone();
    f.add_done_callback(move |_| l.borrow_mut().push((9, 9)));
    assert_eq!(log.borrow().len(), 3);
    run_once(&lp);
    assert_eq!(log.borrow().last(), Some(&(9, 9)));
    lp.close().unwrap();
}

#[test]
fn remove_done_callback_by_id() {
    let lp = EventLoop::new().unwrap();
    let log = Rc::new(RefCell::new(Vec::new()));
    let f = lp.create_future::<()>();
    let l = log.clone();
    let keep = f.add_done_callback(move |_| l.borrow_mut().push("kept"));
    let l = log.clone();
    let gone = f.add_done_callback(move |_| l.borrow_mut().push("removed"));
    assert_ne!(keep, gone);
    assert_eq!(f.remove_done_callback(gone), 1);
    assert_eq!(f.remove_done_callback(gone), 0);
    f.set_result(()).unwrap();
    run_once(&lp);
    assert_eq!(*log.borrow(), ["kept"]);
    // Too late to remove a callback that was already scheduled.
    assert_eq!(f.remove_done_callback(keep), 0);
    lp.close().unwrap();
}

#[test]
fn many_tasks_await_one_future() {
    let (lp, _clock) = EventLoop::with_test_clock().unwrap();
    let f = lp.create_future::<String>();
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let f = f.clone();
            lp.create_task(async move { format!("{i}:{}", f.await.unwrap()) })
        })
        .collect();
    let f2 = f.clone();
    lp.call_later(Duration::from_secs(1), move || {
        f2.set_result("v".to_string()).unwrap()
    })
    .unwrap();
    let out = lp
        .run_until_complete(async move {
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        })
        .unwrap();
    let expected: Vec<String> = (0..10).map(|i| format!("{i}:v")).collect();
    assert_eq!(out, expected);
    lp.close().unwrap();
}

#[test]
fn awaiters_of_a_failed_future_each_get_the_error() {
    let lp = EventLoop::new().unwrap();
    let f = lp.create_future::<u8>();
    let a = lp.create_task(f.clone());
    let b = lp.create_task(f.clone());
    let f2 = f.clone();
    lp.call_soon(move || f2.set_exception(Error::runtime("nope")).unwrap())
        .unwrap();
    let (ra, rb) = lp
        .run_until_complete(async move { (a.await.unwrap(), b.await.unwrap()) })
        .unwrap();
    assert!(matches!(ra, Err(Error::Runtime(m)) if m == "nope"));
    assert!(matches!(rb, Err(Error::Runtime(m)) if m == "nope"));
    lp.close().unwrap();
}

#[test]
fn an_exception_never_retrieved_is_reported_when_the_future_is_dropped() {
    let lp = EventLoop::new().unwrap();
    let calls = collect_handler_calls(&lp);
    let f = lp.create_future::<i32>();
    let clone = f.clone();
    f.set_exception(Error::value("lost")).unwrap();
    drop(f);
    assert!(calls.borrow().is_empty(), "a clone is still alive");
    drop(clone);
    let calls = calls.borrow();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].message, "Future exception was never retrieved");
    assert!(matches!(&calls[0].exception, Some(Error::Value(m)) if m == "lost"));
    drop(calls);
    lp.close().unwrap();
}

#[test]
fn awaiting_retrieves_the_exception() {
    let lp = EventLoop::new().unwrap();
    let calls = collect_handler_calls(&lp);
    let f = lp.create_future::<i32>();
    f.set_exception(Error::value("seen")).unwrap();
    let r = lp.run_until_complete(f).unwrap();
    assert!(r.is_err());
    assert!(calls.borrow().is_empty());
    // A cancelled or successful future is never reported.
    let g = lp.create_future::<i32>();
    g.cancel();
    drop(g);
    let h = lp.create_future::<i32>();
    h.set_result(1).unwrap();
    drop(h);
    assert!(calls.borrow().is_empty());
    lp.close().unwrap();
}

#[test]
fn awaiting_a_future_is_cancel_safe() {
    let (lp, _clock) = EventLoop::with_test_clock().unwrap();
    let f = lp.create_future::<u32>();
    let f2 = f.clone();
    let r = lp
        .run_until_complete(async move {
            let first = asyncio::wait_for(f2.clone(), Duration::from_secs(1)).await;
            assert!(matches!(first, Err(Error::Timeout)));
            let setter = f2.clone();
            asyncio::get_running_loop()
                .unwrap()
                .call_soon(move || setter.set_result(3).unwrap())
                .unwrap();
            f2.await
        })
        .unwrap();
    assert_eq!(r.unwrap(), 3);
    assert!(
        !f.cancelled(),
        "the timed-out await did not cancel the future"
    );
    lp.close().unwrap();
}

#[test]
fn done_callback_sees_the_final_state_and_can_schedule() {
    let lp = EventLoop::new().unwrap();
    let state = Rc::new(Cell::new((false, false)));
    let f = lp.create_future::<u8>();
    let s = state.clone();
    f.add_done_callback(move |fut| s.set((fut.done(), fut.cancelled())));
    f.cancel();
    run_once(&lp);
    assert_eq!(state.get(), (true, true));
    lp.close().unwrap();
}
