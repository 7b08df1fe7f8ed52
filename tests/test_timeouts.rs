//! `wait_for`, `timeout` and `timeout_at` (CPython's `test_timeouts.py` and
//! `test_waitfor.py`), on the test clock: a deadline drops the inner future and gives
//! `Error::Timeout`; an inner future that finishes first gives its value.

mod support_tasks;

use std::cell::Cell;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use asyncio::{timeout, timeout_at, wait_for, Error, EventLoop};
use support_tasks::*;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn wait_for_returns_the_inner_value_when_it_finishes_first() {
    let (r, took) = run_timed(wait_for(
        async {
            sleep_s(2).await;
            "inner"
        },
        secs(5),
    ));
    assert_eq!(r.unwrap(), "inner");
    assert_eq!(took, secs(2));
}

#[test]
fn wait_for_drops_the_inner_future_at_the_deadline_and_returns_timeout() {
    let (r, took, dropped, reached_end) = {
        let reached_end = Rc::new(Cell::new(false));
        let (guard, dropped) = drop_flag();
        let e = reached_end.clone();
        let (r, took) = run_timed(wait_for(
            async move {
                let _g = guard;
                sleep_s(10).await;
                e.set(true);
            },
            secs(3),
        ));
        (r, took, dropped.get(), reached_end.get())
    };
    assert!(matches!(r, Err(Error::Timeout)));
    assert_eq!(took, secs(3), "exactly at the deadline");
    assert!(dropped, "the inner future was dropped (cancelled)");
    assert!(!reached_end);
}

#[test]
fn the_inner_future_is_dropped_when_the_timeout_fires_not_later() {
    let seen = run(async {
        let (guard, dropped) = drop_flag();
        let d = dropped.clone();
        let w = asyncio::create_task(wait_for(
            async move {
                let _g = guard;
                sleep_s(10).await;
            },
            secs(1),
        ));
        sleep_s(1).await;
        // The timer and this task's wake-up share the iteration; one more yield lets
        // the wait_for task take its step.
        asyncio::yield_now().await;
        let seen = (d.get(), w.done());
        assert!(matches!(w.await, Ok(Err(Error::Timeout))));
        seen
    });
    assert_eq!(seen, (true, true));
}

#[test]
fn wait_for_with_a_zero_timeout_on_a_ready_future_returns_its_value() {
    let (r, took) = run_timed(async {
        let lp = asyncio::get_running_loop().unwrap();
        let fut = lp.create_future::<u8>();
        fut.set_result(8).unwrap();
        let a = wait_for(fut, Duration::ZERO).await;
        let b = wait_for(async { 9 }, Duration::ZERO).await;
        (a.unwrap(), b)
    });
    assert_eq!(r.0.unwrap(), 8);
    assert_eq!(r.1.unwrap(), 9);
    assert_eq!(took, Duration::ZERO);
}

#[test]
fn wait_for_with_a_zero_timeout_on_a_pending_future_times_out_at_once() {
    let (polls, dropped, r, took) = {
        let polls = Rc::new(Cell::new(0));
        let (guard, dropped) = drop_flag();
        let p = polls.clone();
        let (r, took) = run_timed(wait_for(
            async move {
                let _g = guard;
                std::future::poll_fn(|_| {
                    p.set(p.get() + 1);
                    Poll::<()>::Pending
                })
                .await
            },
            Duration::ZERO,
        ));
        (polls.get(), dropped.get(), r, took)
    };
    assert!(matches!(r, Err(Error::Timeout)));
    assert_eq!(polls, 1, "polled exactly once");
    assert!(dropped);
    assert_eq!(took, Duration::ZERO);
}

#[test]
fn wait_for_on_a_task_drops_only_the_wait() {
    let (r, later) = run(async {
        let task = asyncio::create_task(async {
            sleep_s(5).await;
            55
        });
        let task_ref = task.task_ref();
        let r = wait_for(task, secs(1)).await;
        assert!(!task_ref.done() && !task_ref.cancelled());
        // The task goes on and finishes on its own.
        sleep_s(10).await;
        (r.map(|_| ()), task_ref.done() && !task_ref.cancelled())
    });
    assert!(matches!(r, Err(Error::Timeout)));
    assert!(later);
}

#[test]
fn cancelling_the_task_in_wait_for_drops_the_inner_future() {
    let (lp, _clock) = EventLoop::with_test_clock().unwrap();
    let (guard, dropped) = drop_flag();
    let task = lp.create_task(wait_for(
        async move {
            let _g = guard;
            sleep_s(100).await;
        },
        secs(50),
    ));
    run_once(&lp);
    assert!(!dropped.get());
    task.cancel();
    run_once(&lp);
    assert!(dropped.get());
    assert!(matches!(task.take_result(), Err(Error::Cancelled)));
    // Both timers (the inner sleep and the deadline) went with it.
    run_once(&lp);
    assert_eq!(lp.scheduled_timer_count(), 0);
    lp.close().unwrap();
}

#[test]
fn the_deadline_timer_is_cancelled_when_the_inner_future_wins() {
    let (lp, _clock) = EventLoop::with_test_clock().unwrap();
    let t0 = lp.time();
    let r = run_on(&lp, wait_for(sleep_s(1), secs(1000)));
    assert!(r.is_ok());
    run_once(&lp);
    assert_eq!(lp.scheduled_timer_count(), 0, "no timer left behind");
    // With the deadline gone, the idle loop has nothing to jump to.
    run_once(&lp);
    assert_eq!(lp.time() - t0, secs(1));
    lp.close().unwrap();
}

#[test]
fn timeout_expired_tells_whether_the_deadline_fired() {
    let (first, second) = run(async {
        let mut t = timeout(secs(2), sleep_s(5));
        assert!(!t.expired());
        let r1 = (&mut t).await;
        let first = (r1.is_err_and(|e| e.is_timeout()), t.expired());

        let mut t = timeout(secs(5), sleep_s(2));
        let r2 = (&mut t).await;
        let second = (r2.is_ok(), t.expired());
        (first, second)
    });
    assert_eq!(first, (true, true));
    assert_eq!(second, (true, false));
}

#[test]
fn timeout_at_uses_an_absolute_deadline_on_the_loop_clock() {
    let (r, at) = run(async {
        let t0 = now();
        let deadline = t0 + secs(4);
        sleep_s(1).await; // the deadline does not move with the start of the await
        let r = timeout_at(deadline, sleep_s(10)).await;
        (r, secs_since(t0))
    });
    assert!(matches!(r, Err(Error::Timeout)));
    assert_eq!(at, 4);
}

#[test]
fn timeout_at_a_passed_deadline_times_out_unless_the_inner_is_ready() {
    let (pending, ready) = run(async {
        let past = now();
        sleep_s(1).await;
        let mut t = timeout_at(past, sleep_s(10));
        let pending = ((&mut t).await.is_err_and(|e| e.is_timeout()), t.expired());
        let ready = timeout_at(past, async { 3 }).await;
        (pending, ready)
    });
    assert_eq!(pending, (true, true));
    assert_eq!(ready.unwrap(), 3);
}

#[test]
fn nested_timeouts_fire_in_deadline_order() {
    let (inner_first, outer_first) = run(async {
        let t0 = now();
        // The inner deadline is the earlier one: the outer sees the inner's Timeout.
        let r = wait_for(wait_for(sleep_s(10), secs(2)), secs(5)).await;
        let inner_first = (matches!(r, Ok(Err(Error::Timeout))), secs_since(t0));
        let t1 = now();
        // The outer deadline is the earlier one.
        let r = wait_for(wait_for(sleep_s(10), secs(5)), secs(2)).await;
        let outer_first = (matches!(r, Err(Error::Timeout)), secs_since(t1));
        (inner_first, outer_first)
    });
    assert_eq!(inner_first, (true, 2));
    assert_eq!(outer_first, (true, 2));
}

#[test]
fn a_timeout_polled_again_after_expiring_keeps_saying_timeout() {
    let r = run(async {
        let mut t = wait_for(sleep_s(10), secs(1));
        let first = (&mut t).await;
        let again = (&mut t).await;
        (first.is_err(), again.is_err_and(|e| e.is_timeout()))
    });
    assert_eq!(r, (true, true));
}

#[test]
fn wait_for_counts_its_delay_from_the_first_poll() {
    let (r, at) = run(async {
        let t0 = now();
        let w = wait_for(sleep_s(10), secs(3));
        sleep_s(2).await;
        let r = w.await;
        (r, secs_since(t0))
    });
    assert!(matches!(r, Err(Error::Timeout)));
    assert_eq!(at, 5);
}

#[test]
fn a_timeout_kept_after_its_inner_finished_holds_no_timer() {
    // `expired()` is read on a `Timeout` that outlives its `.await`: the deadline
    // timer must go when the inner future wins, as asyncio's `__aexit__` cancels it.
    let (before, after, expired) = run(async {
        let lp = asyncio::get_running_loop().unwrap();
        asyncio::yield_now().await;
        let before = lp.scheduled_timer_count();
        let mut t = timeout(secs(100), sleep_s(1));
        (&mut t).await.unwrap();
        asyncio::yield_now().await; // cancelled timers at the heap's head are purged
        (before, lp.scheduled_timer_count(), t.expired())
    });
    assert_eq!(after, before, "the deadline timer is still in the heap");
    assert!(!expired);
}

#[test]
fn a_duration_too_large_for_the_clock_means_never_not_a_panic() {
    // `Duration::MAX` is the natural "no deadline"; asyncio accepts `math.inf` too.
    let out = run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let forever = Duration::MAX;
        let a = wait_for(async { 1 }, forever).await;
        let b = timeout(forever, sleep_s(1)).await;
        let c = wait_for(asyncio::sleep(forever), secs(2)).await;
        let handle = lp.call_later(forever, || {}).map(|h| h.cancel());
        let (done, pending) = asyncio::wait(
            vec![asyncio::create_task(sleep_s(1))],
            asyncio::ReturnWhen::AllCompleted,
            Some(forever),
        )
        .await;
        let mut it = asyncio::as_completed(vec![asyncio::create_task(sleep_s(1))], Some(forever));
        let d = it.next().await;
        (
            a.unwrap(),
            b.is_ok(),
            c.is_err_and(|e| e.is_timeout()),
            handle.is_ok(),
            (done.len(), pending.len()),
            matches!(d, Some(Ok(()))),
        )
    });
    assert_eq!(out, (1, true, true, true, (1, 0), true));
}
