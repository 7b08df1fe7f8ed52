//! The helpers of `tasks.py` (CPython's `test_tasks.py`, helper half): gather and
//! gather_all, shield, wait and as_completed, all on the test clock.

mod support_tasks;

use std::cell::Cell;
use std::future::Future as StdFuture;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use asyncio::{as_completed, gather, gather_all, shield, wait, Error, EventLoop, ReturnWhen, Task};
use support_tasks::*;

type Child<T> = Pin<Box<dyn StdFuture<Output = asyncio::Result<T>>>>;

/// A child that sleeps `secs`, logs its completion, and returns `out`.
fn child<T: 'static>(log: &Log, secs: u64, out: asyncio::Result<T>) -> Child<T> {
    let log = log.clone();
    Box::pin(async move {
        sleep_s(secs).await;
        push(&log, format!("{secs}"));
        out
    })
}

/// A task that sleeps `secs` and returns them.
fn sleeper(secs: u64) -> Task<u64> {
    asyncio::create_task(async move {
        sleep_s(secs).await;
        secs
    })
}

// ----- gather --------------------------------------------------------------------------

#[test]
fn gather_returns_results_in_argument_order_whatever_the_completion_order() {
    let ((out, log), took) = run_timed(async {
        let log = new_log();
        let out = gather([
            child(&log, 3, Ok("three")),
            child(&log, 1, Ok("one")),
            child(&log, 2, Ok("two")),
        ])
        .await;
        let l = log.borrow().clone();
        (out, l)
    });
    assert_eq!(out.unwrap(), ["three", "one", "two"]);
    assert_eq!(log, ["1", "2", "3"], "completion order");
    assert_eq!(
        took,
        Duration::from_secs(3),
        "the children ran concurrently"
    );
}

#[test]
fn gather_inside_a_running_loop_starts_its_children_at_once() {
    let (started_before_await, out) = run(async {
        let log = new_log();
        let l = log.clone();
        let g = gather([Box::pin(async move {
            push(&l, "child ran");
            Ok(1)
        }) as Child<i32>]);
        asyncio::yield_now().await; // the gather itself was never polled
        let started = log.borrow().len() == 1;
        (started, g.await)
    });
    assert!(started_before_await, "children are tasks from the start");
    assert_eq!(out.unwrap(), [1]);
}

#[test]
fn gather_of_nothing_is_empty_at_once() {
    let (out, took) = run_timed(gather(Vec::<Child<u8>>::new()));
    assert!(out.unwrap().is_empty());
    assert_eq!(took, Duration::ZERO);
    let all = run(gather_all(Vec::<Child<u8>>::new()));
    assert!(all.is_empty());
}

#[test]
fn gather_returns_the_first_error_in_completion_order_and_the_others_keep_running() {
    let (r, at, log) = run(async {
        let log = new_log();
        let t0 = now();
        let r = gather([
            child(&log, 3, Err(Error::value("late error"))),
            child(&log, 1, Err(Error::value("first error"))),
            child(&log, 5, Ok(())),
        ])
        .await;
        let at = secs_since(t0);
        sleep_s(10).await;
        let l = log.borrow().clone();
        (r, at, l)
    });
    assert!(matches!(r, Err(Error::Value(m)) if m == "first error"));
    assert_eq!(at, 1, "returned as soon as the first child failed");
    assert_eq!(log, ["1", "3", "5"], "the other children ran to completion");
}

#[test]
fn gather_reports_a_panicking_or_cancelled_child_as_an_error() {
    let r = run(gather([
        Box::pin(async { Ok(1) }) as Child<i32>,
        Box::pin(async {
            sleep_s(1).await;
            panic!("child panicked")
        }),
    ]));
    assert!(matches!(r, Err(Error::Panic(m)) if m == "child panicked"));

    let r = run(gather([
        Box::pin(async { Ok(1) }) as Child<i32>,
        Box::pin(async {
            asyncio::current_task().unwrap().cancel();
            sleep_s(1).await;
            Ok(2)
        }),
    ]));
    assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");
}

#[test]
fn gather_all_returns_every_outcome_in_argument_order() {
    let (out, took) = run_timed(async {
        let log = new_log();
        gather_all([
            child(&log, 4, Ok(4)),
            child(&log, 1, Err(Error::value("bad"))),
            Box::pin(async {
                sleep_s(2).await;
                panic!("boom")
            }),
            Box::pin(async {
                asyncio::current_task().unwrap().cancel();
                sleep_s(3).await;
                Ok(3)
            }),
            child(&log, 0, Ok(0)),
        ])
        .await
    });
    assert_eq!(took, Duration::from_secs(4), "waited for every child");
    assert_eq!(out.len(), 5);
    assert_eq!(*out[0].as_ref().unwrap(), 4);
    assert!(matches!(&out[1], Err(Error::Value(m)) if m == "bad"));
    assert!(matches!(&out[2], Err(Error::Panic(m)) if m == "boom"));
    assert!(matches!(&out[3], Err(Error::Cancelled)));
    assert_eq!(*out[4].as_ref().unwrap(), 0);
}

#[test]
fn gather_keeps_a_user_error_type() {
    #[derive(Debug, PartialEq)]
    enum MyError {
        Mine(u8),
        Runtime(String),
    }
    impl From<Error> for MyError {
        fn from(e: Error) -> MyError {
            MyError::Runtime(e.to_string())
        }
    }
    type MyChild = Pin<Box<dyn StdFuture<Output = Result<u8, MyError>>>>;
    let r = run(gather([
        Box::pin(async { Ok(1u8) }) as MyChild,
        Box::pin(async { Err(MyError::Mine(7)) }),
    ]));
    assert_eq!(r, Err(MyError::Mine(7)));
    let r = run(gather([Box::pin(async {
        if true {
            panic!("p");
        }
        Ok(0u8)
    }) as MyChild]));
    assert_eq!(r, Err(MyError::Runtime("panic: p".into())));
}

#[test]
fn dropping_a_pending_gather_cancels_its_children() {
    let (flags, log, took) = run(async {
        let log = new_log();
        let mut flags = Vec::new();
        let mut children = Vec::new();
        for secs in [5u64, 10] {
            let (guard, flag) = drop_flag();
            flags.push(flag);
            let l = log.clone();
            children.push(Box::pin(async move {
                let _g = guard;
                sleep_s(secs).await;
                push(&l, "finished");
                Ok(secs)
            }) as Child<u64>);
        }
        let t0 = now();
        let r = asyncio::wait_for(gather(children), Duration::from_secs(2)).await;
        assert!(matches!(r, Err(Error::Timeout)));
        // The children were asked to cancel; they are dropped at their next step.
        asyncio::yield_now().await;
        let flags: Vec<bool> = flags.iter().map(|f| f.get()).collect();
        sleep_s(20).await;
        let l = log.borrow().clone();
        (flags, l, secs_since(t0))
    });
    assert_eq!(flags, [true, true]);
    assert!(log.is_empty(), "no child ran to completion: {log:?}");
    assert_eq!(took, 22);
}

#[test]
fn dropping_a_pending_gather_all_cancels_its_children() {
    let (lp, _clock) = EventLoop::with_test_clock().unwrap();
    let (guard, dropped) = drop_flag();
    let g = gather_all([Box::pin(async move {
        let _g = guard;
        sleep_s(100).await;
        Ok(())
    }) as Child<()>]);
    let outer = lp.create_task(g);
    run_once(&lp); // the gather's first poll spawns its child
    run_once(&lp); // the child's first step
    outer.cancel();
    run_once(&lp); // the gather is dropped and cancels the child
    run_once(&lp); // the child's cancelled step
    assert!(dropped.get());
    lp.close().unwrap();
}

#[test]
fn a_gather_made_outside_a_loop_starts_its_children_at_the_first_poll() {
    let (lp, _clock) = EventLoop::with_test_clock().unwrap();
    let log = new_log();
    let g = gather([child(&log, 1, Ok(1)), child(&log, 1, Ok(2))]);
    let unpolled = gather([child(&log, 0, Ok(3))]);
    assert!(log.borrow().is_empty());
    assert_eq!(run_on(&lp, g).unwrap(), [1, 2]);
    drop(unpolled);
    run_on(&lp, sleep_s(5));
    assert_eq!(*log.borrow(), ["1", "1"], "an unpolled gather never ran");
    lp.close().unwrap();
}

#[test]
fn a_panic_in_a_child_left_running_after_gather_returned_is_reported() {
    let (lp, _clock) = EventLoop::with_test_clock().unwrap();
    let calls = collect_handler_calls(&lp);
    let r = run_on(&lp, async {
        let r = gather([
            Box::pin(async { Err(Error::value("first")) }) as Child<()>,
            Box::pin(async {
                sleep_s(2).await;
                panic!("after the gather")
            }),
        ])
        .await;
        sleep_s(5).await;
        r
    });
    assert!(matches!(r, Err(Error::Value(_))));
    let c = calls.borrow();
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].message, "Task exception was never retrieved");
    assert!(matches!(&c[0].exception, Some(Error::Panic(m)) if m == "after the gather"));
    drop(c);
    lp.close().unwrap();
}

// ----- shield --------------------------------------------------------------------------

#[test]
fn dropping_a_shield_does_not_cancel_the_inner_task() {
    let (r, finished_at, dropped_early) = run(async {
        let finished_at = Rc::new(Cell::new(0));
        let (guard, dropped) = drop_flag();
        let t0 = now();
        let f = finished_at.clone();
        let inner = shield(async move {
            let _g = guard;
            sleep_s(5).await;
            f.set(secs_since(t0));
            "inner"
        });
        let r = asyncio::wait_for(inner, Duration::from_secs(1)).await;
        asyncio::yield_now().await;
        let dropped_early = dropped.get();
        sleep_s(10).await;
        (r, finished_at.get(), dropped_early)
    });
    assert!(matches!(r, Err(Error::Timeout)));
    assert!(
        !dropped_early,
        "the inner future was not dropped with the shield"
    );
    assert_eq!(finished_at, 5, "the inner ran to completion");
}

#[test]
fn cancelling_the_task_awaiting_a_shield_leaves_the_inner_running() {
    let (outer, inner_done) = run(async {
        let done = Rc::new(Cell::new(false));
        let d = done.clone();
        let outer = asyncio::create_task(shield(async move {
            sleep_s(3).await;
            d.set(true);
        }));
        sleep_s(1).await;
        outer.cancel();
        let o = outer.await;
        sleep_s(5).await;
        (o, done.get())
    });
    assert!(matches!(outer, Err(Error::Cancelled)));
    assert!(inner_done);
}

#[test]
fn shield_gives_the_inner_outcome() {
    assert_eq!(run(shield(async { 5 })).unwrap(), 5);
    let r = run(shield(async {
        sleep_s(1).await;
        panic!("inner failed")
    }));
    assert!(matches!(r, Err(Error::Panic(m)) if m == "inner failed"));
    let r = run(async {
        let s = shield(sleep_s(10));
        s.task().unwrap().cancel();
        s.await
    });
    assert!(matches!(r, Err(Error::Cancelled)));
}

#[test]
fn a_shield_made_outside_a_loop_and_dropped_unpolled_never_runs() {
    let (lp, _clock) = EventLoop::with_test_clock().unwrap();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let s = shield(async move { r.set(true) });
    assert!(s.task().is_none());
    drop(s);
    run_on(&lp, sleep_s(1));
    assert!(!ran.get());
    lp.close().unwrap();
}

#[test]
fn a_panic_in_a_shielded_task_after_the_shield_was_dropped_is_reported() {
    let (lp, _clock) = EventLoop::with_test_clock().unwrap();
    let calls = collect_handler_calls(&lp);
    let r = run_on(&lp, async {
        let s = shield(async {
            sleep_s(2).await;
            panic!("unwatched")
        });
        let r = asyncio::wait_for(s, Duration::from_secs(1)).await;
        sleep_s(5).await;
        r.map(|_| ())
    });
    assert!(matches!(r, Err(Error::Timeout)));
    let c = calls.borrow();
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].message, "Task exception was never retrieved");
    drop(c);
    lp.close().unwrap();
}

// ----- wait ----------------------------------------------------------------------------

fn outputs(tasks: Vec<Task<u64>>) -> Vec<u64> {
    tasks
        .into_iter()
        .map(|t| t.take_result().unwrap())
        .collect()
}

#[test]
fn wait_first_completed_returns_when_one_task_is_done() {
    let (done, pending_done, at, later) = run(async {
        let t0 = now();
        let (done, pending) = wait(
            vec![sleeper(3), sleeper(1), sleeper(2)],
            ReturnWhen::FirstCompleted,
            None,
        )
        .await;
        let at = secs_since(t0);
        let pending_done: Vec<bool> = pending.iter().map(|t| t.done()).collect();
        // The pending tasks kept running.
        let mut later = Vec::new();
        for t in pending {
            later.push(t.await.unwrap());
        }
        (outputs(done), pending_done, at, later)
    });
    assert_eq!(done, [1]);
    assert_eq!(pending_done, [false, false]);
    assert_eq!(at, 1);
    assert_eq!(later, [3, 2], "argument order within the half");
}

#[test]
fn wait_first_exception_returns_at_the_first_panic() {
    let (done, pending, at) = run(async {
        let t0 = now();
        let boom = asyncio::create_task(async {
            sleep_s(2).await;
            panic!("boom")
        });
        let (done, pending) = wait(
            vec![sleeper(5), sleeper(1), boom],
            ReturnWhen::FirstException,
            None,
        )
        .await;
        let at = secs_since(t0);
        let done: Vec<asyncio::Result<u64>> = done.into_iter().map(|t| t.take_result()).collect();
        (done, pending.len(), at)
    });
    assert_eq!(at, 2);
    assert_eq!(pending, 1);
    assert_eq!(done.len(), 2);
    assert_eq!(*done[0].as_ref().unwrap(), 1);
    assert!(matches!(&done[1], Err(Error::Panic(m)) if m == "boom"));
}

#[test]
fn wait_first_exception_does_not_count_cancellations_or_err_outputs() {
    let (ndone, npending, at) = run(async {
        let t0 = now();
        let cancelled = asyncio::create_task(async {
            sleep_s(1).await;
            asyncio::current_task().unwrap().cancel();
            sleep_s(1).await;
            Ok(0)
        });
        let err_output = asyncio::create_task(async {
            sleep_s(2).await;
            Err::<u64, Error>(Error::value("just an output"))
        });
        let last = asyncio::create_task(async {
            sleep_s(4).await;
            Ok(4)
        });
        let (done, pending) = wait(
            vec![cancelled, err_output, last],
            ReturnWhen::FirstException,
            None,
        )
        .await;
        (done.len(), pending.len(), secs_since(t0))
    });
    assert_eq!((ndone, npending), (3, 0));
    assert_eq!(at, 4, "waited for all: nothing panicked");
}

#[test]
fn wait_all_completed_waits_for_every_task() {
    let (done, npending, at) = run(async {
        let t0 = now();
        let (done, pending) = wait(
            vec![sleeper(2), sleeper(3), sleeper(1)],
            ReturnWhen::AllCompleted,
            None,
        )
        .await;
        (outputs(done), pending.len(), secs_since(t0))
    });
    assert_eq!(done, [2, 3, 1], "argument order");
    assert_eq!(npending, 0);
    assert_eq!(at, 3);
}

#[test]
fn wait_with_a_timeout_returns_the_split_without_an_error() {
    let (done, still_running, at, later) = run(async {
        let t0 = now();
        let (done, pending) = wait(
            vec![sleeper(5), sleeper(1), sleeper(9)],
            ReturnWhen::AllCompleted,
            Some(Duration::from_secs(2)),
        )
        .await;
        let at = secs_since(t0);
        let still_running = pending.iter().all(|t| !t.done());
        let mut later = Vec::new();
        for t in pending {
            later.push(t.await.unwrap());
        }
        (outputs(done), still_running, at, later)
    });
    assert_eq!(done, [1]);
    assert!(still_running);
    assert_eq!(at, 2);
    assert_eq!(later, [5, 9], "the pending tasks were not cancelled");
}

#[test]
fn wait_counts_its_timeout_from_the_first_poll() {
    let (npending, at) = run(async {
        let t0 = now();
        let w = wait(
            vec![sleeper(10)],
            ReturnWhen::AllCompleted,
            Some(Duration::from_secs(3)),
        );
        sleep_s(2).await;
        let (_, pending) = w.await;
        (pending.len(), secs_since(t0))
    });
    assert_eq!(npending, 1);
    assert_eq!(at, 5);
}

#[test]
fn wait_first_completed_with_a_task_already_done_returns_at_once() {
    let (ndone, took) = run_timed(async {
        let quick = asyncio::create_task(async { 0u64 });
        asyncio::yield_now().await;
        let t0 = now();
        let (done, pending) = wait(vec![sleeper(5), quick], ReturnWhen::FirstCompleted, None).await;
        assert_eq!(pending.len(), 1);
        assert_eq!(secs_since(t0), 0);
        done.len()
    });
    assert_eq!(ndone, 1);
    assert_eq!(took, Duration::ZERO);
}

#[test]
fn wait_on_nothing_returns_two_empty_halves_at_once() {
    let ((done, pending), took) = run_timed(wait(
        Vec::<Task<()>>::new(),
        ReturnWhen::FirstCompleted,
        None,
    ));
    assert!(done.is_empty() && pending.is_empty());
    assert_eq!(took, Duration::ZERO);
}

#[test]
fn dropping_a_wait_leaves_its_tasks_running() {
    let finished = run(async {
        let done = Rc::new(Cell::new(0));
        let tasks: Vec<Task<()>> = (1..=2)
            .map(|s| {
                let d = done.clone();
                asyncio::create_task(async move {
                    sleep_s(s).await;
                    d.set(d.get() + 1);
                })
            })
            .collect();
        let r = asyncio::wait_for(
            wait(tasks, ReturnWhen::AllCompleted, None),
            Duration::from_millis(500),
        )
        .await;
        assert!(r.is_err());
        sleep_s(5).await;
        done.get()
    });
    assert_eq!(finished, 2);
}

// ----- as_completed --------------------------------------------------------------------

#[test]
fn as_completed_yields_outcomes_in_completion_order() {
    let seen = run(async {
        let t0 = now();
        let mut it = as_completed(vec![sleeper(3), sleeper(1), sleeper(2)], None);
        assert_eq!(it.remaining(), 3);
        let mut seen = Vec::new();
        while let Some(r) = it.next().await {
            seen.push((r.unwrap(), secs_since(t0)));
        }
        assert_eq!(it.remaining(), 0);
        assert!(it.next().await.is_none());
        seen
    });
    assert_eq!(seen, [(1, 1), (2, 2), (3, 3)]);
}

#[test]
fn as_completed_with_a_timeout_yields_timeout_for_the_rest() {
    let (seen, pending, later) = run(async {
        let t0 = now();
        let mut it = as_completed(
            vec![sleeper(5), sleeper(1), sleeper(9)],
            Some(Duration::from_secs(3)),
        );
        let mut seen = Vec::new();
        for _ in 0..2 {
            let r = it.next().await.unwrap();
            seen.push((r.map_err(|e| e.is_timeout()), secs_since(t0)));
        }
        assert_eq!(it.remaining(), 1);
        let pending = it.into_pending();
        let n = pending.len();
        let mut later = Vec::new();
        for t in pending {
            later.push(t.await.unwrap());
        }
        (seen, n, later)
    });
    assert_eq!(seen, [(Ok(1), 1), (Err(true), 3)]);
    assert_eq!(pending, 2, "the tasks not yielded are handed back");
    assert_eq!(later, [5, 9], "still running after the timeout");
}

#[test]
fn as_completed_counts_its_timeout_from_the_call() {
    let (first, at) = run(async {
        let t0 = now();
        let mut it = as_completed(vec![sleeper(10)], Some(Duration::from_secs(3)));
        sleep_s(2).await;
        let r = it.next().await.unwrap();
        (r.map_err(|e| e.is_timeout()), secs_since(t0))
    });
    assert_eq!(first, Err(true));
    assert_eq!(
        at, 3,
        "three seconds after as_completed(), not after next()"
    );
}

#[test]
fn dropping_an_as_completed_next_loses_no_outcome() {
    let seen = run(async {
        let mut it = as_completed(vec![sleeper(2), sleeper(4)], None);
        let mut seen = Vec::new();
        // Give up on next() twice before anything finished, once more mid-way.
        for _ in 0..2 {
            let r = asyncio::wait_for(it.next(), Duration::from_millis(500)).await;
            assert!(r.is_err());
        }
        seen.push(it.next().await.unwrap().unwrap());
        let r = asyncio::wait_for(it.next(), Duration::from_millis(500)).await;
        assert!(r.is_err());
        sleep_s(5).await; // the second task finishes while nobody calls next()
        seen.push(it.next().await.unwrap().unwrap());
        assert!(it.next().await.is_none());
        seen
    });
    assert_eq!(seen, [2, 4]);
}

#[test]
fn as_completed_yields_already_done_tasks_first_in_argument_order() {
    let seen = run(async {
        let a = sleeper(2);
        let b = asyncio::create_task(async { 10 });
        let c = asyncio::create_task(async { 20 });
        asyncio::yield_now().await;
        assert!(b.done() && c.done());
        let mut it = as_completed(vec![a, c, b], None);
        let mut seen = Vec::new();
        while let Some(r) = it.next().await {
            seen.push(r.unwrap());
        }
        seen
    });
    assert_eq!(seen, [20, 10, 2]);
}

#[test]
fn as_completed_yields_panics_and_cancellations_as_errors() {
    let seen = run(async {
        let boom = asyncio::create_task(async {
            sleep_s(1).await;
            panic!("boom")
        });
        let cancelled = sleeper(5);
        cancelled.cancel();
        let mut it = as_completed(vec![boom, sleeper(2), cancelled], None);
        let mut seen = Vec::new();
        while let Some(r) = it.next().await {
            seen.push(match r {
                Ok(v) => format!("ok {v}"),
                Err(Error::Cancelled) => "cancelled".into(),
                Err(Error::Panic(m)) => format!("panic {m}"),
                Err(e) => format!("other {e}"),
            });
        }
        seen
    });
    assert_eq!(seen, ["cancelled", "panic boom", "ok 2"]);
}

#[test]
fn gather_of_a_thousand_children_keeps_argument_order() {
    let (out, took) = run_timed(async move {
        let children: Vec<Child<usize>> = (0..1000)
            .map(|i| {
                Box::pin(async move {
                    // Reverse completion order.
                    sleep_s(1000 - i as u64).await;
                    Ok::<usize, Error>(i)
                }) as Child<usize>
            })
            .collect();
        gather(children).await.unwrap()
    });
    assert_eq!(out, (0..1000).collect::<Vec<_>>());
    assert_eq!(took, Duration::from_secs(1000));
}
