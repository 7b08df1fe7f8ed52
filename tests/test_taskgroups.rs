//! `TaskGroup` (CPython's `test_taskgroups.py`): waiting for every child, the first
//! failure cancelling the rest, errors collected into `Error::Group`, refusal of new
//! tasks, and what dropping an unwaited group does.

mod support_tasks;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use asyncio::{Error, EventLoop, TaskGroup};
use support_tasks::*;

fn group_errors(r: asyncio::Result<()>) -> Vec<Error> {
    match r {
        Err(Error::Group(v)) => v,
        other => panic!("expected Error::Group, got {other:?}"),
    }
}

#[test]
fn wait_waits_for_every_child() {
    let ((a, b, c), took) = run_timed(async {
        let tg = TaskGroup::new().unwrap();
        let a = tg.create_task(async {
            sleep_s(3).await;
            Ok(3)
        });
        let b = tg.create_task(async {
            sleep_s(1).await;
            Ok("one")
        });
        let c = tg.create_task(async { Ok(()) });
        assert_eq!(tg.len(), 3);
        tg.wait().await.unwrap();
        assert!(a.done() && b.done() && c.done());
        (a.await.unwrap(), b.await.unwrap(), c.await.unwrap())
    });
    assert_eq!((a, b, c), (3, "one", ()));
    assert_eq!(took, Duration::from_secs(3));
}

#[test]
fn an_empty_group_is_done_at_once() {
    let (r, took) = run_timed(async { TaskGroup::new().unwrap().wait().await });
    assert!(r.is_ok());
    assert_eq!(took, Duration::ZERO);
}

#[test]
fn the_first_failure_cancels_the_rest_and_wait_returns_the_group_error() {
    let (errors, at, dropped, outcomes) = run(async {
        let t0 = now();
        let tg = TaskGroup::new().unwrap();
        let (g1, d1) = drop_flag();
        let (g2, d2) = drop_flag();
        let slow1 = tg.create_task(async move {
            let _g = g1;
            sleep_s(10).await;
            Ok(1)
        });
        let failing = tg.create_task(async {
            sleep_s(1).await;
            Err::<i32, _>(Error::value("child failed"))
        });
        let slow2 = tg.create_task(async move {
            let _g = g2;
            sleep_s(20).await;
            Ok(2)
        });
        let r = tg.wait().await;
        let at = secs_since(t0);
        let outcomes = (slow1.await, failing.await, slow2.await);
        (group_errors(r), at, (d1.get(), d2.get()), outcomes)
    });
    assert_eq!(errors.len(), 1);
    assert!(matches!(&errors[0], Error::Value(m) if m == "child failed"));
    assert_eq!(at, 1, "the group ended when the failure cancelled the rest");
    assert_eq!(dropped, (true, true));
    assert!(matches!(outcomes.0, Err(Error::Cancelled)));
    assert!(
        matches!(outcomes.1, Err(Error::Value(_))),
        "the child's own error"
    );
    assert!(matches!(outcomes.2, Err(Error::Cancelled)));
}

#[test]
fn children_failing_in_the_same_iteration_are_all_collected() {
    // asyncio learns of a child's failure through a done callback (call_soon), so
    // siblings whose steps are already queued in that iteration run, and may fail too.
    let errors = run(async {
        let tg = TaskGroup::new().unwrap();
        for name in ["one", "two"] {
            tg.create_task(async move {
                asyncio::yield_now().await;
                Err::<(), _>(Error::value(name))
            });
        }
        group_errors(tg.wait().await)
    });
    let names: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(names, ["ValueError: one", "ValueError: two"]);
}

#[test]
fn a_panicking_child_is_a_failure_and_is_reported_only_through_the_group() {
    let (lp, _clock) = EventLoop::with_test_clock().unwrap();
    let calls = collect_handler_calls(&lp);
    let (errors, sibling) = run_on(&lp, async {
        let tg = TaskGroup::new().unwrap();
        let sibling = tg.create_task(async {
            sleep_s(5).await;
            Ok(())
        });
        drop(tg.create_task(async {
            sleep_s(1).await;
            if true {
                panic!("child panicked");
            }
            Ok(())
        }));
        (group_errors(tg.wait().await), sibling.await)
    });
    assert_eq!(errors.len(), 1);
    assert!(matches!(&errors[0], Error::Panic(m) if m == "child panicked"));
    assert!(matches!(sibling, Err(Error::Cancelled)));
    run_once(&lp);
    assert!(
        calls.borrow().is_empty(),
        "the group retrieved it: {:?}",
        calls.borrow()
    );
    lp.close().unwrap();
}

#[test]
fn a_cancelled_child_is_not_a_failure() {
    let (r, other) = run(async {
        let tg = TaskGroup::new().unwrap();
        let victim = tg.create_task(async {
            sleep_s(10).await;
            Ok(1)
        });
        let returns_cancelled = tg.create_task(async { Err::<i32, _>(Error::Cancelled) });
        let other = tg.create_task(async {
            sleep_s(2).await;
            Ok(2)
        });
        asyncio::yield_now().await;
        victim.cancel();
        let r = tg.wait().await;
        assert!(matches!(returns_cancelled.await, Err(Error::Cancelled)));
        (r, other.await)
    });
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(other.unwrap(), 2, "the others were not cancelled");
}

#[test]
fn create_task_after_a_failure_is_refused() {
    let (refused, ran, dropped, aborting) = run(async {
        let tg = TaskGroup::new().unwrap();
        tg.create_task(async { Err::<(), _>(Error::value("x")) });
        let _long = tg.create_task(sleep_s_ok(10));
        sleep_s(1).await;
        let aborting = tg.is_aborting();
        let ran = Rc::new(Cell::new(false));
        let (guard, dropped) = drop_flag();
        let r = ran.clone();
        let late = tg.create_task(async move {
            let _g = guard;
            r.set(true);
            Ok(())
        });
        let dropped_at_once = dropped.get();
        let refused = late.await;
        let _ = tg.wait().await;
        (refused, ran.get(), dropped_at_once, aborting)
    });
    assert!(aborting);
    assert!(matches!(refused, Err(Error::Runtime(m)) if m == "TaskGroup is shutting down"));
    assert!(!ran, "the refused future never ran");
    assert!(dropped, "and was dropped at once");
}

async fn sleep_s_ok(secs: u64) -> asyncio::Result<()> {
    sleep_s(secs).await;
    Ok(())
}

#[test]
fn a_handle_adds_children_that_wait_waits_for_and_is_refused_once_finished() {
    let (took, log, refused) = run(async {
        let t0 = now();
        let log = new_log();
        let tg = TaskGroup::new().unwrap();
        let handle = tg.handle();
        let (l, h) = (log.clone(), handle.clone());
        tg.create_task(async move {
            sleep_s(1).await;
            let l2 = l.clone();
            // A child spawns a sibling that outlives it.
            h.create_task(async move {
                sleep_s(4).await;
                push(&l2, "grandchild");
                Ok(())
            });
            push(&l, "child");
            Ok(())
        });
        tg.wait().await.unwrap();
        let took = secs_since(t0);
        let refused = handle.create_task(async { Ok(()) }).await;
        let l = log.borrow().clone();
        (took, l, refused)
    });
    assert_eq!(took, 5);
    assert_eq!(log, ["child", "grandchild"]);
    assert!(matches!(refused, Err(Error::Runtime(m)) if m == "TaskGroup is finished"));
}

#[test]
fn dropping_an_unwaited_group_cancels_its_children() {
    let (lp, _clock) = EventLoop::with_test_clock().unwrap();
    let calls = collect_handler_calls(&lp);
    let (dropped, finished) = run_on(&lp, async {
        let finished = Rc::new(Cell::new(false));
        let (guard, dropped) = drop_flag();
        let tg = TaskGroup::new().unwrap();
        let f = finished.clone();
        let child = tg.create_task(async move {
            let _g = guard;
            sleep_s(5).await;
            f.set(true);
            Ok(())
        });
        sleep_s(1).await;
        drop(tg);
        let r = child.await;
        assert!(matches!(r, Err(Error::Cancelled)));
        sleep_s(10).await;
        (dropped.get(), finished.get())
    });
    assert!(dropped);
    assert!(!finished);
    assert!(calls.borrow().is_empty(), "no failure to report");
    lp.close().unwrap();
}

#[test]
fn dropping_the_wait_future_cancels_the_children() {
    let (r, dropped) = run(async {
        let (guard, dropped) = drop_flag();
        let tg = TaskGroup::new().unwrap();
        let child = tg.create_task(async move {
            let _g = guard;
            sleep_s(10).await;
            Ok(())
        });
        let r = asyncio::wait_for(tg.wait(), Duration::from_secs(2)).await;
        assert!(matches!(child.await, Err(Error::Cancelled)));
        (r, dropped.get())
    });
    assert!(matches!(r, Err(Error::Timeout)));
    assert!(dropped);
}

#[test]
fn a_failure_in_a_group_dropped_unwaited_is_reported_once() {
    let (lp, _clock) = EventLoop::with_test_clock().unwrap();
    let calls = collect_handler_calls(&lp);
    run_on(&lp, async {
        let tg = TaskGroup::new().unwrap();
        tg.create_task(async { Err::<(), _>(Error::value("unseen")) });
        sleep_s(1).await;
        drop(tg);
        sleep_s(1).await;
    });
    let calls = calls.borrow();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].message, "TaskGroup exception was never retrieved");
    match &calls[0].exception {
        Some(Error::Group(v)) => {
            assert_eq!(v.len(), 1);
            assert!(matches!(&v[0], Error::Value(m) if m == "unseen"));
        }
        other => panic!("unexpected {other:?}"),
    }
    drop(calls);
    lp.close().unwrap();
}

#[test]
fn task_group_new_needs_a_running_loop() {
    match TaskGroup::new() {
        Err(Error::Runtime(m)) => assert_eq!(m, "no running event loop"),
        other => panic!("unexpected {other:?}"),
    }
    // with_loop works outside, and its children run when the loop does.
    let (lp, _clock) = EventLoop::with_test_clock().unwrap();
    let tg = TaskGroup::with_loop(&lp);
    let child = tg.create_task(async { Ok(5) });
    assert!(!child.done());
    let r = run_on(&lp, async move {
        tg.wait().await.unwrap();
        child.await
    });
    assert_eq!(r.unwrap(), 5);
    lp.close().unwrap();
}

#[test]
fn a_group_on_a_closed_loop_refuses_children() {
    let (lp, _clock) = EventLoop::with_test_clock().unwrap();
    let tg = TaskGroup::with_loop(&lp);
    lp.close().unwrap();
    let (guard, dropped) = drop_flag();
    let t = tg.create_task(async move {
        let _g = guard;
        Ok(())
    });
    assert!(t.done() && dropped.get());
    assert!(matches!(t.take_result(), Err(Error::Runtime(m)) if m == "Event loop is closed"));
    assert!(tg.is_empty(), "the refused child left no trace");
}
