//! Tasks (CPython's `test_tasks.py`, task half): scheduling of the first step,
//! cancellation as drop, detached handles, panics and their reports, names,
//! `current_task` / `all_tasks`, and `sleep` on the test clock.
//!
//! Wakers are in `test_tasks_wakers.rs`; gather, shield, wait and as_completed in
//! `test_tasks_helpers.rs`.

mod support_tasks;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use asyncio::{Error, EventLoop, Task};
use support_tasks::*;

// ----- scheduling ----------------------------------------------------------------------

#[test]
fn the_first_step_is_scheduled_with_call_soon_not_run_inside_create_task() {
    let lp = EventLoop::new().unwrap();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let task = lp.create_task(async move { r.set(true) });
    assert!(!ran.get(), "create_task must not run the body");
    assert!(!task.done());
    run_once(&lp);
    assert!(ran.get() && task.done());

    // Inside a running loop too: the new task waits for the creator to yield.
    let log = new_log();
    let l = log.clone();
    run_on(&lp, async move {
        let l2 = l.clone();
        let child = asyncio::create_task(async move { push(&l2, "child") });
        push(&l, "after create_task");
        asyncio::yield_now().await;
        push(&l, "after yield");
        child.await.unwrap();
    });
    assert_eq!(*log.borrow(), ["after create_task", "child", "after yield"]);
    lp.close().unwrap();
}

#[test]
fn task_steps_and_callbacks_run_in_one_fifo_order() {
    let lp = EventLoop::new().unwrap();
    let log = new_log();
    let l = log.clone();
    lp.call_soon(move || push(&l, "cb1")).unwrap();
    let l = log.clone();
    let task = lp.create_task(async move {
        push(&l, "task step 1");
        asyncio::yield_now().await;
        push(&l, "task step 2");
    });
    let (l, lp2) = (log.clone(), lp.clone());
    lp.call_soon(move || {
        push(&l, "cb2");
        let l2 = l.clone();
        lp2.call_soon(move || push(&l2, "cb3")).unwrap();
    })
    .unwrap();
    run_once(&lp);
    assert_eq!(*log.borrow(), ["cb1", "task step 1", "cb2"]);
    // The task re-queued itself during step 1, before cb2 queued cb3.
    run_once(&lp);
    assert_eq!(
        *log.borrow(),
        ["cb1", "task step 1", "cb2", "task step 2", "cb3"]
    );
    assert!(task.done());
    lp.close().unwrap();
}

#[test]
fn create_task_outside_a_running_loop_returns_a_failed_task() {
    let task = asyncio::create_task(async { 1 });
    assert!(task.done());
    match task.take_result() {
        Err(Error::Runtime(m)) => assert_eq!(m, "no running event loop"),
        other => panic!("unexpected {other:?}"),
    }
}

// ----- cancellation --------------------------------------------------------------------

#[test]
fn cancel_before_the_first_step_never_runs_the_body() {
    let lp = EventLoop::new().unwrap();
    let ran = Rc::new(Cell::new(false));
    let (guard, dropped) = drop_flag();
    let r = ran.clone();
    let task = lp.create_task(async move {
        let _g = guard;
        r.set(true);
        7
    });
    assert!(task.cancel());
    assert!(!task.done(), "cancellation takes effect at the next step");
    let r = run_on(&lp, task);
    assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");
    assert!(!ran.get(), "the body never ran");
    assert!(dropped.get(), "the future (and what it owns) was dropped");
    lp.close().unwrap();
}

#[test]
fn cancel_while_suspended_drops_the_future_at_its_next_step() {
    let lp = EventLoop::new().unwrap();
    let (guard, dropped) = drop_flag();
    let reached_end = Rc::new(Cell::new(false));
    let never = lp.create_future::<()>();
    let (n, e) = (never.clone(), reached_end.clone());
    let task = lp.create_task(async move {
        let _g = guard;
        let _ = n.await;
        e.set(true);
    });
    run_once(&lp);
    assert!(!task.done() && !dropped.get(), "suspended on the future");
    assert!(task.cancel());
    assert!(!dropped.get(), "not dropped synchronously inside cancel()");
    assert!(!task.cancelled());
    run_once(&lp);
    assert!(dropped.get(), "dropped at the next step");
    assert!(!reached_end.get());
    assert!(task.done() && task.cancelled());
    // Departure from asyncio (which cancels the future the task waits on): the future
    // may be shared by clones, so only the task's own future is dropped.
    assert!(!never.done(), "the awaited future itself is untouched");
    assert!(matches!(task.take_result(), Err(Error::Cancelled)));
    lp.close().unwrap();
}

#[test]
fn awaiters_of_a_cancelled_task_get_cancelled() {
    let out = run(async {
        let victim = asyncio::create_task(sleep_s(100));
        let victim_ref = victim.task_ref();
        let awaiter = asyncio::create_task(victim);
        let seen = Rc::new(Cell::new(false));
        let s = seen.clone();
        victim_ref.add_done_callback(move |t| s.set(t.cancelled()));
        sleep_s(1).await;
        assert!(victim_ref.cancel());
        let r = awaiter.await.unwrap();
        asyncio::yield_now().await;
        (r, seen.get(), victim_ref.cancelled())
    });
    assert!(matches!(out.0, Err(Error::Cancelled)), "{:?}", out.0);
    assert!(out.1, "the done callback saw a cancelled task");
    assert!(out.2);
}

#[test]
fn cancel_after_done_returns_false() {
    let lp = EventLoop::new().unwrap();
    let task = lp.create_task(async { 3 });
    run_once(&lp);
    assert!(task.done());
    assert!(!task.cancel());
    assert!(!task.task_ref().cancel());
    assert!(!task.cancelled());
    assert_eq!(task.take_result().unwrap(), 3);
    lp.close().unwrap();
}

#[test]
fn cancel_twice_is_one_cancellation() {
    let lp = EventLoop::new().unwrap();
    let task = lp.create_task(sleep_s(10));
    run_once(&lp);
    assert!(task.cancel());
    assert!(
        task.cancel(),
        "still pending: cancel() asks again and says so"
    );
    run_once(&lp);
    assert!(task.cancelled());
    assert!(!task.cancel());
    lp.close().unwrap();
}

#[test]
fn a_task_cancelled_during_its_own_step_is_cancelled_even_if_it_returns() {
    let lp = EventLoop::new().unwrap();
    let task = lp.create_task(async {
        asyncio::current_task().unwrap().cancel();
        5
    });
    run_once(&lp);
    assert!(task.done() && task.cancelled());
    assert!(matches!(task.take_result(), Err(Error::Cancelled)));
    lp.close().unwrap();
}

/// Records `current_task()` when dropped.
struct SeesCurrentTask(Rc<RefCell<Option<Option<asyncio::TaskRef>>>>);

impl Drop for SeesCurrentTask {
    fn drop(&mut self) {
        *self.0.borrow_mut() = Some(asyncio::current_task());
    }
}

#[test]
fn a_cancelled_task_is_the_current_task_while_its_future_is_dropped() {
    // asyncio runs a cancelled coroutine's `finally:` blocks inside the task's step;
    // here its destructors are that step.
    let lp = EventLoop::new().unwrap();
    let seen = Rc::new(RefCell::new(None));
    let guard = SeesCurrentTask(seen.clone());
    let task = lp.create_task(async move {
        let _g = guard;
        std::future::pending::<()>().await;
    });
    let me = task.task_ref();
    run_once(&lp);
    task.cancel();
    run_once(&lp);
    assert!(task.cancelled());
    assert_eq!(*seen.borrow(), Some(Some(me)));
    lp.close().unwrap();
}

#[test]
fn a_panic_while_dropping_a_cancelled_task_is_reported_and_the_task_is_cancelled() {
    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("drop failed");
        }
    }
    let lp = EventLoop::new().unwrap();
    let calls = collect_handler_calls(&lp);
    let task = lp.create_task(async {
        let _p = PanicOnDrop;
        std::future::pending::<()>().await;
    });
    run_once(&lp);
    task.cancel();
    run_once(&lp);
    assert!(task.cancelled());
    assert!(matches!(task.take_result(), Err(Error::Cancelled)));
    let c = calls.borrow();
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].message, "Exception while dropping a cancelled task");
    assert!(matches!(&c[0].exception, Some(Error::Panic(m)) if m == "drop failed"));
    drop(c);
    lp.close().unwrap();
}

// ----- ownership -----------------------------------------------------------------------

#[test]
fn dropping_a_task_handle_never_cancels_or_loses_the_task() {
    let (finished, took) = run_timed(async {
        let finished = Rc::new(RefCell::new(Vec::new()));
        // Dropped before its first step.
        let f = finished.clone();
        drop(asyncio::create_task(async move {
            sleep_s(2).await;
            f.borrow_mut().push("unstarted");
        }));
        // Dropped while suspended.
        let f = finished.clone();
        let t = asyncio::create_task(async move {
            sleep_s(3).await;
            f.borrow_mut().push("suspended");
        });
        sleep_s(1).await;
        assert!(!t.done());
        drop(t);
        sleep_s(10).await;
        let v = finished.borrow().clone();
        v
    });
    assert_eq!(finished, ["unstarted", "suspended"]);
    assert_eq!(took, Duration::from_secs(11));
}

#[test]
fn a_detached_task_keeps_what_it_owns_alive_until_it_finishes() {
    let lp = EventLoop::new().unwrap();
    let (guard, dropped) = drop_flag();
    let fut = lp.create_future::<u8>();
    let f = fut.clone();
    drop(lp.create_task(async move {
        let _g = guard;
        f.await.unwrap()
    }));
    run_once(&lp);
    run_once(&lp);
    assert!(!dropped.get(), "the loop owns the task");
    fut.set_result(1).unwrap();
    run_once(&lp);
    assert!(dropped.get(), "dropped once it finished");
    lp.close().unwrap();
}

// ----- panics --------------------------------------------------------------------------

#[test]
fn a_panic_inside_a_task_becomes_error_panic_for_the_awaiter() {
    let r = run(async {
        let t = asyncio::create_task(async {
            sleep_s(1).await;
            if true {
                panic!("task blew up");
            }
            1
        });
        t.await
    });
    match r {
        Err(Error::Panic(m)) => assert_eq!(m, "task blew up"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn an_unretrieved_panic_is_reported_once_when_the_handle_was_already_dropped() {
    let (lp, _clock) = EventLoop::with_test_clock().unwrap();
    let calls = collect_handler_calls(&lp);
    let t = lp.create_task(async {
        sleep_s(1).await;
        panic!("nobody listens");
    });
    t.set_name("orphan");
    drop(t);
    run_on(&lp, sleep_s(5));
    let calls = calls.borrow();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].message, "Task exception was never retrieved");
    assert_eq!(calls[0].task.as_deref(), Some("orphan"));
    assert!(matches!(&calls[0].exception, Some(Error::Panic(m)) if m == "nobody listens"));
    drop(calls);
    lp.close().unwrap();
}

#[test]
fn an_unretrieved_panic_is_reported_once_when_the_handle_is_dropped_later() {
    let lp = EventLoop::new().unwrap();
    let calls = collect_handler_calls(&lp);
    let t = lp.create_task(async { panic!("late drop") });
    run_once(&lp);
    run_once(&lp);
    assert!(t.done());
    assert!(
        calls.borrow().is_empty(),
        "the handle may still retrieve it"
    );
    drop(t);
    run_once(&lp);
    let c = calls.borrow();
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].message, "Task exception was never retrieved");
    assert!(matches!(&c[0].exception, Some(Error::Panic(m)) if m == "late drop"));
    drop(c);
    lp.close().unwrap();
    assert_eq!(calls.borrow().len(), 1, "not reported again at close");
}

#[test]
fn a_retrieved_panic_is_not_reported() {
    let lp = EventLoop::new().unwrap();
    let calls = collect_handler_calls(&lp);
    // Retrieved by awaiting, by result(), by exception().
    let awaited = lp.create_task(async { panic!("a") });
    let by_result = lp.create_task(async { panic!("b") });
    let by_exception = lp.create_task(async { panic!("c") });
    let r = lp.run_until_complete(awaited).unwrap();
    assert!(matches!(r, Err(Error::Panic(_))));
    run_once(&lp);
    assert!(matches!(by_result.result(), Err(Error::Panic(m)) if m == "b"));
    assert!(matches!(by_exception.exception(), Ok(Some(Error::Panic(m))) if m == "c"));
    drop(by_result);
    drop(by_exception);
    run_once(&lp);
    lp.close().unwrap();
    assert!(calls.borrow().is_empty(), "{:?}", calls.borrow());
}

#[test]
fn the_loop_survives_a_panicking_task_and_keeps_serving_others() {
    let (lp, _clock) = EventLoop::with_test_clock().unwrap();
    let calls = collect_handler_calls(&lp);
    let progress = Rc::new(Cell::new(0));
    let p = progress.clone();
    let worker = lp.create_task(async move {
        for _ in 0..5 {
            sleep_s(1).await;
            p.set(p.get() + 1);
        }
        "worker done"
    });
    drop(lp.create_task(async {
        sleep_s(2).await;
        panic!("crash in the middle");
    }));
    assert_eq!(run_on(&lp, worker).unwrap(), "worker done");
    assert_eq!(progress.get(), 5);
    // The loop still runs new work afterwards.
    assert_eq!(run_on(&lp, async { 40 + 2 }), 42);
    assert_eq!(calls.borrow().len(), 1);
    lp.close().unwrap();
}

// ----- results and callbacks -----------------------------------------------------------

#[test]
fn result_take_result_and_exception_follow_the_task_state() {
    let lp = EventLoop::new().unwrap();
    let task = lp.create_task(async { String::from("out") });
    assert!(matches!(task.result(), Err(Error::InvalidState(m)) if m == "Result is not set."));
    assert!(matches!(task.take_result(), Err(Error::InvalidState(_))));
    assert!(matches!(task.exception(), Err(Error::InvalidState(_))));
    run_once(&lp);
    assert_eq!(task.result().unwrap(), "out");
    assert!(matches!(task.exception(), Ok(None)));
    assert_eq!(task.take_result().unwrap(), "out");
    assert!(
        matches!(task.result(), Err(Error::InvalidState(_))),
        "the output was moved out"
    );
    let cancelled = lp.create_task(async {});
    cancelled.cancel();
    run_once(&lp);
    assert!(matches!(cancelled.exception(), Err(Error::Cancelled)));
    lp.close().unwrap();
}

#[test]
fn task_done_callbacks_run_through_call_soon() {
    let lp = EventLoop::new().unwrap();
    let log = new_log();
    let task = lp.create_task(async { 1 });
    let l = log.clone();
    task.add_done_callback(move |t| push(&l, format!("first done={}", t.done())));
    run_once(&lp);
    assert!(task.done());
    assert!(
        log.borrow().is_empty(),
        "scheduled, not called, at completion"
    );
    run_once(&lp);
    assert_eq!(*log.borrow(), ["first done=true"]);
    // Already done: still through call_soon.
    let l = log.clone();
    task.add_done_callback(move |_| push(&l, "second"));
    assert_eq!(log.borrow().len(), 1);
    run_once(&lp);
    assert_eq!(*log.borrow(), ["first done=true", "second"]);
    lp.close().unwrap();
}

// ----- names, current_task, all_tasks --------------------------------------------------

fn number_of(name: &str) -> u64 {
    name.strip_prefix("Task-")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a Task-N name: {name}"))
}

#[test]
fn tasks_are_named_task_n_in_creation_order_and_set_name_renames() {
    let lp = EventLoop::new().unwrap();
    let tasks: Vec<Task<()>> = (0..3).map(|_| lp.create_task(async {})).collect();
    let numbers: Vec<u64> = tasks.iter().map(|t| number_of(&t.name())).collect();
    assert!(numbers[0] >= 1);
    assert_eq!(numbers, [numbers[0], numbers[0] + 1, numbers[0] + 2]);
    tasks[1].set_name("worker");
    assert_eq!(tasks[1].name(), "worker");
    assert_eq!(tasks[1].task_ref().name(), "worker");
    tasks[2].task_ref().set_name("via ref");
    assert_eq!(tasks[2].name(), "via ref");
    assert!(format!("{:?}", tasks[1]).contains("name='worker'"));
    assert!(format!("{:?}", tasks[1]).contains("pending"));
    run_once(&lp);
    assert!(format!("{:?}", tasks[1]).contains("finished"));
    let next = lp.create_task(async {});
    assert_eq!(number_of(&next.name()), numbers[0] + 3);
    lp.close().unwrap();
}

#[test]
fn current_task_is_the_stepping_task_inside_and_none_outside() {
    assert!(asyncio::current_task().is_none(), "no loop");
    let lp = EventLoop::new().unwrap();
    let in_callback = Rc::new(Cell::new(true));
    let c = in_callback.clone();
    lp.call_soon(move || c.set(asyncio::current_task().is_some()))
        .unwrap();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    let task = lp.create_task(async move {
        s.borrow_mut().push(asyncio::current_task());
        asyncio::yield_now().await;
        s.borrow_mut().push(asyncio::current_task());
    });
    let me = task.task_ref();
    run_once(&lp);
    run_once(&lp);
    assert!(!in_callback.get(), "None in a plain callback");
    let seen = seen.borrow();
    assert_eq!(seen.len(), 2);
    for s in seen.iter() {
        assert_eq!(s.as_ref(), Some(&me));
    }
    assert!(asyncio::current_task().is_none(), "None between runs");
    lp.close().unwrap();
}

#[test]
fn all_tasks_lists_the_unfinished_tasks_of_the_running_loop() {
    assert!(asyncio::all_tasks().is_empty(), "no loop");
    run(async {
        let me = asyncio::current_task().unwrap();
        let sleeper = asyncio::create_task(sleep_s(10));
        let quick = asyncio::create_task(async {});
        let all = asyncio::all_tasks();
        assert!(all.contains(&me));
        assert!(all.contains(&sleeper.task_ref()));
        assert!(all.contains(&quick.task_ref()));
        asyncio::yield_now().await;
        assert!(quick.done());
        let all = asyncio::all_tasks();
        assert!(!all.contains(&quick.task_ref()), "finished tasks leave");
        assert!(all.contains(&sleeper.task_ref()));
        assert!(all.iter().all(|t| !t.done()));
        sleeper.cancel();
        asyncio::yield_now().await;
        assert!(!asyncio::all_tasks().contains(&sleeper.task_ref()));
    });
}

// ----- sleep ---------------------------------------------------------------------------

#[test]
fn sleep_zero_yields_exactly_one_loop_iteration() {
    let lp = EventLoop::new().unwrap();
    let (iteration, stop) = start_ticker(&lp);
    let it = iteration.clone();
    let seen = run_on(&lp, async move {
        let mut seen = vec![it.get()];
        for _ in 0..3 {
            asyncio::sleep(Duration::ZERO).await;
            seen.push(it.get());
        }
        asyncio::yield_now().await;
        seen.push(it.get());
        seen
    });
    stop.set(true);
    let deltas: Vec<u64> = seen.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(deltas, [1, 1, 1, 1], "seen {seen:?}");
    lp.close().unwrap();
}

#[test]
fn sleep_reads_the_test_clock_and_never_the_wall_clock() {
    let (lp, clock) = EventLoop::with_test_clock().unwrap();
    let wall = std::time::Instant::now();
    let t0 = lp.time();
    run_on(&lp, asyncio::sleep(Duration::from_secs(50 * 60)));
    assert_eq!(lp.time() - t0, Duration::from_secs(50 * 60));
    assert!(wall.elapsed() < Duration::from_secs(60));

    // Without auto-advance, the sleep waits for the test to move the clock.
    clock.set_auto_advance(false);
    let task = lp.create_task(asyncio::sleep(Duration::from_secs(10)));
    run_once(&lp);
    clock.advance(Duration::from_secs(9));
    run_once(&lp);
    assert!(!task.done(), "one second early");
    clock.advance(Duration::from_secs(1));
    run_once(&lp);
    run_once(&lp);
    assert!(task.done());
    lp.close().unwrap();
}

#[test]
fn the_sleep_deadline_is_fixed_at_the_first_poll() {
    let took = run(async {
        let s = asyncio::sleep(Duration::from_secs(10));
        sleep_s(4).await; // not polled yet: not counting
        let t0 = now();
        s.await;
        secs_since(t0)
    });
    assert_eq!(took, 10);
}

#[test]
fn concurrent_sleeps_wake_in_deadline_order() {
    let log = run(async {
        let log = new_log();
        let mut tasks = Vec::new();
        for s in [3u64, 1, 2, 1] {
            let l = log.clone();
            tasks.push(asyncio::create_task(async move {
                let t0 = now();
                sleep_s(s).await;
                push(&l, format!("{s}@{}", secs_since(t0)));
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let v = log.borrow().clone();
        v
    });
    assert_eq!(log, ["1@1", "1@1", "2@2", "3@3"]);
}

#[test]
fn dropping_a_sleep_cancels_its_timer() {
    let (lp, _clock) = EventLoop::with_test_clock().unwrap();
    let t0 = lp.time();
    let task = lp.create_task(asyncio::sleep(Duration::from_secs(1000)));
    run_once(&lp);
    assert_eq!(lp.scheduled_timer_count(), 1);
    task.cancel();
    run_once(&lp); // the sleep is dropped here
    run_once(&lp); // and its cancelled timer purged from the heap head
    assert_eq!(lp.scheduled_timer_count(), 0);
    // Nothing left to jump to: time did not move.
    assert_eq!(lp.time(), t0);
    lp.close().unwrap();
}

#[test]
fn sleep_until_a_passed_deadline_completes_on_the_next_iteration() {
    let lp = EventLoop::new().unwrap();
    let past = lp.time();
    let task = lp.create_task(asyncio::tasks::sleep_until(past));
    run_once(&lp); // first poll: timer armed, already due
    assert!(!task.done());
    run_once(&lp); // the timer fires and wakes the task
    run_once(&lp); // the task's step
    assert!(task.done());
    lp.close().unwrap();
}
