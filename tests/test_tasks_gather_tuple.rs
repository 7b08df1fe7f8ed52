//! `gather` over futures of different types: `gather_tuple` / `gather!` and
//! `gather_all_tuple` / `gather_all!` (asyncio's `a, b = await gather(fa(), fb())`),
//! with asyncio's gather rules (CPython's `test_tasks.py` gather cases): argument
//! order, concurrency, the first error returned while the others run on,
//! `return_exceptions`, and cancellation of the children when the gather is dropped.
//! Every test runs on the test clock.

mod support_tasks;

use std::time::Duration;

use asyncio::{Error, EventLoop, Result};
use support_tasks::{drop_flag, new_log, now, push, run_timed, secs_since, settle, sleep_s};

#[test]
fn outputs_of_three_types_come_in_argument_order_and_the_children_run_concurrently() {
    let log = new_log();
    let l = log.clone();
    let ((n, s, b), took) = run_timed(async move {
        let (l1, l2, l3) = (l.clone(), l.clone(), l.clone());
        asyncio::gather!(
            async move {
                sleep_s(3).await;
                push(&l1, "int");
                Ok::<_, Error>(7u32)
            },
            async move {
                sleep_s(2).await;
                push(&l2, "string");
                Ok(String::from("seven"))
            },
            async move {
                sleep_s(1).await;
                push(&l3, "bool");
                Ok(true)
            },
        )
        .await
        .unwrap()
    });
    assert_eq!((n, s.as_str(), b), (7, "seven", true));
    assert_eq!(
        *log.borrow(),
        ["bool", "string", "int"],
        "finished in time order"
    );
    assert_eq!(
        took,
        Duration::from_secs(3),
        "concurrent: the longest, not the sum"
    );
}

#[test]
fn the_first_error_returns_at_once_and_the_other_children_keep_running() {
    let log = new_log();
    let l = log.clone();
    run_timed(async move {
        let t0 = now();
        let l2 = l.clone();
        let r: Result<(u8, &str)> = asyncio::gather_tuple((
            async {
                sleep_s(1).await;
                Err(Error::value("first"))
            },
            async move {
                sleep_s(5).await;
                push(&l2, "slow child finished");
                Ok("late")
            },
        ))
        .await;
        match r {
            Err(Error::Value(m)) => assert_eq!(m, "first"),
            other => panic!("expected the first error, got {other:?}"),
        }
        assert_eq!(secs_since(t0), 1, "returned when the first child failed");
        assert!(l.borrow().is_empty());
        sleep_s(10).await;
    });
    assert_eq!(
        *log.borrow(),
        ["slow child finished"],
        "asyncio does not cancel the other children when one fails"
    );
}

#[test]
fn gather_all_returns_every_outcome_panics_and_cancellations_included() {
    run_timed(async {
        let victim = asyncio::create_task(async {
            sleep_s(100).await;
            Ok::<u8, Error>(1)
        });
        let v = victim.task_ref();
        asyncio::get_running_loop()
            .unwrap()
            .call_later(Duration::from_secs(1), move || {
                v.cancel();
            })
            .unwrap();
        let (a, b, c, d) = asyncio::gather_all!(
            async { Ok::<_, Error>("fine") },
            async { Err::<(), _>(Error::Timeout) },
            async {
                sleep_s(2).await;
                panic!("boom");
                #[allow(unreachable_code)]
                Ok::<u16, Error>(0)
            },
            async move { victim.await? },
        )
        .await;
        assert_eq!(a.unwrap(), "fine");
        assert!(b.unwrap_err().is_timeout());
        assert!(matches!(c, Err(Error::Panic(m)) if m == "boom"));
        assert!(d.unwrap_err().is_cancelled());
    });
}

#[test]
fn dropping_an_unfinished_gather_cancels_the_children_still_running() {
    let (guard_a, dropped_a) = drop_flag();
    let (guard_b, dropped_b) = drop_flag();
    let finished = std::rc::Rc::new(std::cell::Cell::new(false));
    let f = finished.clone();
    let (da, db) = (dropped_a.clone(), dropped_b.clone());
    run_timed(async move {
        let g = asyncio::gather!(
            async move {
                let _g = guard_a;
                sleep_s(1).await;
                f.set(true);
                Ok::<_, Error>(1)
            },
            async move {
                let _g = guard_b;
                sleep_s(60).await;
                Ok::<_, Error>("never")
            },
        );
        let r = asyncio::wait_for(g, Duration::from_secs(5)).await;
        assert!(r.unwrap_err().is_timeout());
        settle().await;
        // Checked on the loop: closing it would drop every pending task anyway.
        assert!(da.get());
        assert!(
            db.get(),
            "the running child was cancelled (its future dropped)"
        );
    });
    assert!(finished.get(), "the child that was done finished normally");
}

#[test]
fn a_gather_made_outside_a_running_loop_starts_its_children_at_its_first_poll() {
    let (lp, _clock) = EventLoop::with_test_clock().unwrap();
    let started = new_log();
    let s = started.clone();
    let g = asyncio::gather_tuple((async move {
        push(&s, "child ran");
        Ok::<_, Error>(5u8)
    },));
    assert!(
        started.borrow().is_empty(),
        "nothing runs before a loop does"
    );
    let (five,) = lp.run_until_complete(g).unwrap().unwrap();
    assert_eq!(five, 5);
    assert_eq!(*started.borrow(), ["child ran"]);
    lp.close().unwrap();
}

#[test]
fn twelve_futures_of_mixed_types() {
    let (out, _) = run_timed(async {
        asyncio::gather!(
            async { Ok::<_, Error>(1u8) },
            async { Ok(2u16) },
            async { Ok(3u32) },
            async { Ok(4u64) },
            async { Ok(5i8) },
            async { Ok(6i16) },
            async { Ok(7i32) },
            async { Ok(8i64) },
            async { Ok('9') },
            async { Ok("10") },
            async { Ok(11usize) },
            async { Ok(vec![12u8]) },
        )
        .await
        .unwrap()
    });
    assert_eq!(out.0, 1);
    assert_eq!(out.8, '9');
    assert_eq!(out.11, vec![12]);
}

#[test]
fn made_outside_the_loop_an_eager_first_error_still_leaves_the_others_running() {
    // Made before the loop runs, the children are spawned at the first poll. Under the
    // eager task factory the first child fails inside that spawn: the others must
    // still be started and run on, as asyncio's gather promises.
    let lp = EventLoop::new().unwrap();
    lp.set_task_factory(asyncio::TaskFactory::Eager);
    let ran = std::rc::Rc::new(std::cell::Cell::new(false));
    let r = ran.clone();
    let g = asyncio::gather!(async { Err::<(), _>(Error::value("first")) }, async move {
        r.set(true);
        Ok(())
    },);
    let out = lp.run_until_complete(g).unwrap();
    assert!(out.is_err());
    lp.run_until_complete(asyncio::sleep(Duration::ZERO))
        .unwrap();
    assert!(ran.get(), "the second child never ran");
    lp.close().unwrap();
}
