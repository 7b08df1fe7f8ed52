//! Queues (CPython's `test_queues.py`): order of items, order in which blocked putters
//! and getters proceed, the `_nowait` errors, `task_done` / `join`, cancel safety of
//! waiting gets and puts, and `shutdown(immediate)`. Every test runs on the test clock,
//! bounded in virtual time; `yield_now` lets the other tasks take their steps.

mod support_tasks;

use std::rc::Rc;
use std::time::Duration;

use asyncio::queues::Storage;
use asyncio::{
    create_task, wait_for, yield_now, Error, LifoQueue, PriorityQueue, PutError, PutNowaitError,
    Queue, Task,
};
use support_tasks::*;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A few loop iterations: enough for every runnable task to take its next step.
async fn settle() {
    for _ in 0..3 {
        yield_now().await;
    }
}

/// A task that gets one item and records `name:item` in the log.
fn getter(q: &Rc<Queue<i32>>, log: &Log, name: &'static str) -> Task<asyncio::Result<i32>> {
    let (q, log) = (q.clone(), log.clone());
    create_task(async move {
        let r = q.get().await;
        match &r {
            Ok(n) => push(&log, format!("{name}:{n}")),
            Err(e) => push(&log, format!("{name}:{e}")),
        }
        r
    })
}

/// A task that puts `item` and records `put name` in the log once it is in.
fn putter(
    q: &Rc<Queue<&'static str>>,
    log: &Log,
    item: &'static str,
) -> Task<Result<(), PutError<&'static str>>> {
    let (q, log) = (q.clone(), log.clone());
    create_task(async move {
        let r = q.put(item).await;
        if r.is_ok() {
            push(&log, format!("put {item}"));
        }
        r
    })
}

fn drain<T, S: Storage<T>>(q: &asyncio::GenericQueue<T, S>) -> Vec<T> {
    std::iter::from_fn(|| q.get_nowait().ok()).collect()
}

// ---- order of items ------------------------------------------------------------

#[test]
fn queue_gives_items_first_in_first_out() {
    let q = Queue::new(0);
    for n in [3, 1, 2] {
        q.put_nowait(n).unwrap();
    }
    assert_eq!(drain(&q), [3, 1, 2]);
}

#[test]
fn lifo_queue_gives_the_last_item_first() {
    let q = LifoQueue::new(0);
    for n in [3, 1, 2] {
        q.put_nowait(n).unwrap();
    }
    assert_eq!(drain(&q), [2, 1, 3]);
}

#[test]
fn priority_queue_gives_the_smallest_item_first() {
    let q = PriorityQueue::new(0);
    for n in [3, 1, 4, 1, 5, 9, 2, 6] {
        q.put_nowait(n).unwrap();
    }
    assert_eq!(drain(&q), [1, 1, 2, 3, 4, 5, 6, 9]);
}

#[test]
fn async_put_and_get_keep_the_order_too() {
    let out = run(async {
        let q = LifoQueue::new(0);
        for n in 0..3 {
            q.put(n).await.unwrap();
        }
        let mut out = Vec::new();
        for _ in 0..3 {
            out.push(q.get().await.unwrap());
        }
        out
    });
    assert_eq!(out, [2, 1, 0]);
}

// ---- sizes -----------------------------------------------------------------------

#[test]
fn maxsize_zero_is_unbounded_and_never_full() {
    let q = Queue::unbounded();
    assert_eq!(q.maxsize(), 0);
    for n in 0..1000 {
        q.put_nowait(n).unwrap();
    }
    assert!(!q.full());
    assert_eq!(q.qsize(), 1000);
}

#[test]
fn qsize_empty_and_full_follow_the_items() {
    let q = Queue::new(2);
    assert_eq!(q.maxsize(), 2);
    assert!(q.empty() && !q.full());
    q.put_nowait(1).unwrap();
    assert!(!q.empty() && !q.full());
    q.put_nowait(2).unwrap();
    assert!(q.full());
    assert_eq!(q.qsize(), 2);
    q.get_nowait().unwrap();
    assert!(!q.full());
    assert_eq!(q.qsize(), 1);
}

// ---- the _nowait errors ------------------------------------------------------------

#[test]
fn put_nowait_on_a_full_queue_hands_the_item_back() {
    let q = Queue::new(1);
    q.put_nowait(String::from("in")).unwrap();
    let err = q.put_nowait(String::from("refused")).unwrap_err();
    assert!(err.is_full() && !err.is_shut_down());
    assert_eq!(err.to_string(), "QueueFull");
    assert_eq!(err.into_inner(), "refused");
    assert_eq!(q.qsize(), 1);
}

#[test]
fn put_nowait_errors_convert_into_asyncio_errors_with_question_mark() {
    fn put_two(q: &Queue<i32>) -> asyncio::Result<()> {
        q.put_nowait(1)?;
        q.put_nowait(2)?;
        Ok(())
    }
    let q = Queue::new(1);
    assert!(matches!(put_two(&q), Err(Error::QueueFull)));
    q.shutdown(false);
    assert!(matches!(put_two(&q), Err(Error::QueueShutDown)));
}

#[test]
fn get_nowait_on_an_empty_queue_is_queue_empty() {
    let q: Queue<i32> = Queue::new(0);
    let e = q.get_nowait().unwrap_err();
    assert!(matches!(e, Error::QueueEmpty));
    assert_eq!(e.to_string(), "QueueEmpty");
}

// ---- blocking and the order of wake-ups ------------------------------------------

#[test]
fn blocked_putters_proceed_oldest_first_one_per_item_got() {
    let (log, got) = run(async {
        let q = Rc::new(Queue::new(1));
        let log = new_log();
        q.put_nowait("first").unwrap();
        let tasks: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|&s| putter(&q, &log, s))
            .collect();
        settle().await;
        assert!(
            log.borrow().is_empty(),
            "every putter waits while the queue is full"
        );
        let mut got = Vec::new();
        for _ in 0..4 {
            got.push(q.get().await.unwrap());
            settle().await;
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let log = log.borrow().clone();
        (log, got)
    });
    assert_eq!(log, ["put a", "put b", "put c"]);
    assert_eq!(got, ["first", "a", "b", "c"]);
}

#[test]
fn blocked_getters_proceed_oldest_first_one_per_item_put() {
    let log = run(async {
        let q = Rc::new(Queue::new(0));
        let log = new_log();
        let tasks: Vec<_> = ["g1", "g2", "g3"]
            .iter()
            .map(|&s| getter(&q, &log, s))
            .collect();
        settle().await;
        assert!(
            log.borrow().is_empty(),
            "every getter waits while the queue is empty"
        );
        for n in 1..=3 {
            q.put(n).await.unwrap();
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let log = log.borrow().clone();
        log
    });
    assert_eq!(log, ["g1:1", "g2:2", "g3:3"]);
}

#[test]
fn put_waits_for_room_then_completes() {
    let (left, took) = run_timed(async {
        let q = Rc::new(Queue::new(1));
        q.put_nowait(0).unwrap();
        let q2 = q.clone();
        create_task(async move {
            sleep_s(5).await;
            q2.get().await.unwrap()
        });
        q.put(1).await.unwrap(); // waits five seconds for the getter
        drain(&q)
    });
    assert_eq!(left, [1]);
    assert_eq!(took, secs(5));
}

#[test]
fn a_woken_getter_whose_item_was_taken_first_waits_again() {
    let log = run(async {
        let q = Rc::new(Queue::new(0));
        let log = new_log();
        let g = getter(&q, &log, "g");
        settle().await;
        q.put_nowait(1).unwrap(); // wakes g ...
        assert_eq!(q.get_nowait().unwrap(), 1); // ... but this task takes the item first
        settle().await;
        assert!(!g.done(), "g found the queue empty and waits again");
        q.put_nowait(2).unwrap();
        assert_eq!(g.await.unwrap().unwrap(), 2);
        let log = log.borrow().clone();
        log
    });
    assert_eq!(log, ["g:2"]);
}

// ---- cancel safety ------------------------------------------------------------------

#[test]
fn a_get_dropped_while_waiting_loses_nothing_and_leaves_no_trace() {
    let log = run(async {
        let q = Rc::new(Queue::new(0));
        let log = new_log();
        assert!(matches!(
            wait_for(q.get(), secs(1)).await,
            Err(Error::Timeout)
        ));
        assert!(format!("{q:?}").contains("getters: 0"), "{q:?}");
        // A stale waiter would take the wake-up of the next put and strand this one.
        let g = getter(&q, &log, "late");
        settle().await;
        q.put_nowait(7).unwrap();
        assert_eq!(g.await.unwrap().unwrap(), 7);
        let log = log.borrow().clone();
        log
    });
    assert_eq!(log, ["late:7"]);
}

#[test]
fn a_cancelled_getter_task_takes_no_item() {
    let left = run(async {
        let q = Rc::new(Queue::new(0));
        let log = new_log();
        let g = getter(&q, &log, "g");
        settle().await;
        g.cancel();
        settle().await;
        assert!(g.cancelled());
        q.put_nowait(1).unwrap();
        settle().await;
        assert!(log.borrow().is_empty());
        drain(&q)
    });
    assert_eq!(left, [1]);
}

#[test]
fn a_getter_woken_then_dropped_passes_the_wake_up_on() {
    let log = run(async {
        let q = Rc::new(Queue::new(0));
        let log = new_log();
        let a = getter(&q, &log, "a");
        let b = getter(&q, &log, "b");
        settle().await;
        q.put_nowait(1).unwrap(); // wakes a, the oldest getter
        a.cancel(); // a is dropped before it runs: its wake-up must go to b
        assert_eq!(b.await.unwrap().unwrap(), 1);
        assert!(a.cancelled());
        let log = log.borrow().clone();
        log
    });
    assert_eq!(log, ["b:1"]);
}

#[test]
fn a_put_dropped_while_waiting_drops_its_item_and_leaves_no_trace() {
    let (dropped, left) = run(async {
        let q = Rc::new(Queue::new(1));
        let (guard, dropped) = drop_flag();
        q.put_nowait(None).unwrap();
        let r = wait_for(q.put(Some(guard)), secs(1)).await;
        assert!(matches!(r, Err(Error::Timeout)));
        assert!(dropped.get(), "the waiting put's item was dropped with it");
        assert!(format!("{q:?}").contains("putters: 0"), "{q:?}");
        // A stale putter would take the wake-up of the next get and strand this one.
        let q2 = q.clone();
        let p = create_task(async move { q2.put(None).await.is_ok() });
        settle().await;
        assert!(q.get_nowait().unwrap().is_none());
        assert!(p.await.unwrap());
        (dropped.get(), q.qsize())
    });
    assert!(dropped);
    assert_eq!(left, 1);
}

#[test]
fn a_putter_woken_then_dropped_passes_the_wake_up_on() {
    let (log, left) = run(async {
        let q = Rc::new(Queue::new(1));
        let log = new_log();
        q.put_nowait("first").unwrap();
        let a = putter(&q, &log, "a");
        let b = putter(&q, &log, "b");
        settle().await;
        assert_eq!(q.get_nowait().unwrap(), "first"); // wakes a
        a.cancel(); // dropped before it runs: b gets the free slot
        b.await.unwrap().unwrap();
        let log = log.borrow().clone();
        (log, drain(&q))
    });
    assert_eq!(log, ["put b"]);
    assert_eq!(left, ["b"]);
}

// ---- task_done and join ------------------------------------------------------------

#[test]
fn join_returns_at_once_when_nothing_is_unfinished() {
    let (_, took) = run_timed(async {
        let q: Queue<i32> = Queue::new(0);
        q.join().await;
    });
    assert_eq!(took, Duration::ZERO);
}

#[test]
fn join_waits_until_every_item_is_marked_done() {
    run(async {
        let q = Rc::new(Queue::new(0));
        q.put_nowait(1).unwrap();
        q.put_nowait(2).unwrap();
        let q2 = q.clone();
        let joiner = create_task(async move { q2.join().await });
        q.get_nowait().unwrap();
        q.get_nowait().unwrap();
        settle().await;
        assert!(!joiner.done(), "got is not done: two items unfinished");
        q.task_done().unwrap();
        settle().await;
        assert!(!joiner.done(), "one item unfinished");
        q.task_done().unwrap();
        settle().await;
        assert!(joiner.done());
    });
}

#[test]
fn task_done_called_too_many_times_is_a_value_error() {
    let q = Queue::new(0);
    match q.task_done() {
        Err(Error::Value(m)) => assert_eq!(m, "task_done() called too many times"),
        other => panic!("unexpected {other:?}"),
    }
    q.put_nowait(1).unwrap();
    q.get_nowait().unwrap();
    q.task_done().unwrap();
    assert!(matches!(q.task_done(), Err(Error::Value(_))));
    // Nothing changed: the next put counts once, as usual.
    q.put_nowait(2).unwrap();
    q.task_done().unwrap();
    assert!(q.task_done().is_err());
}

#[test]
fn a_dropped_join_leaves_no_trace() {
    run(async {
        let q = Rc::new(Queue::new(0));
        q.put_nowait(1).unwrap();
        assert!(matches!(
            wait_for(q.join(), secs(1)).await,
            Err(Error::Timeout)
        ));
        let q2 = q.clone();
        let joiner = create_task(async move { q2.join().await });
        settle().await;
        q.get_nowait().unwrap();
        q.task_done().unwrap();
        joiner.await.unwrap();
    });
}

// ---- shutdown ------------------------------------------------------------------------

#[test]
fn after_shutdown_puts_fail_and_hand_the_item_back() {
    run(async {
        let q = Queue::new(0);
        q.shutdown(false);
        assert!(q.is_shut_down());
        match q.put_nowait("x") {
            Err(PutNowaitError::ShutDown(item)) => assert_eq!(item, "x"),
            other => panic!("unexpected {other:?}"),
        }
        let e = q.put("y").await.unwrap_err();
        assert_eq!(e.to_string(), "QueueShutDown");
        assert_eq!(e.into_inner(), "y");
        assert!(q.empty());
    });
}

#[test]
fn shutdown_lets_gets_drain_the_queue_then_fail() {
    run(async {
        let q = Queue::new(0);
        q.put_nowait(1).unwrap();
        q.put_nowait(2).unwrap();
        q.shutdown(false);
        assert_eq!(q.get().await.unwrap(), 1);
        assert_eq!(q.get_nowait().unwrap(), 2);
        assert!(matches!(q.get_nowait(), Err(Error::QueueShutDown)));
        assert!(matches!(q.get().await, Err(Error::QueueShutDown)));
    });
}

#[test]
fn shutdown_wakes_blocked_getters_and_they_fail() {
    let log = run(async {
        let q = Rc::new(Queue::new(0));
        let log = new_log();
        let tasks: Vec<_> = ["a", "b"].iter().map(|&s| getter(&q, &log, s)).collect();
        settle().await;
        q.shutdown(false);
        for t in tasks {
            assert!(matches!(t.await.unwrap(), Err(Error::QueueShutDown)));
        }
        let log = log.borrow().clone();
        log
    });
    assert_eq!(log, ["a:QueueShutDown", "b:QueueShutDown"]);
}

#[test]
fn shutdown_wakes_blocked_putters_and_they_get_their_item_back() {
    let left = run(async {
        let q = Rc::new(Queue::new(1));
        let log = new_log();
        q.put_nowait("in").unwrap();
        let p = putter(&q, &log, "blocked");
        settle().await;
        q.shutdown(false);
        assert_eq!(p.await.unwrap().unwrap_err().into_inner(), "blocked");
        assert!(log.borrow().is_empty());
        drain(&q)
    });
    assert_eq!(
        left,
        ["in"],
        "a non-immediate shutdown keeps the queued items"
    );
}

#[test]
fn shutdown_immediate_drops_the_items_and_releases_join() {
    run(async {
        let q = Rc::new(Queue::new(0));
        let (guard, dropped) = drop_flag();
        q.put_nowait(Some(guard)).unwrap();
        q.put_nowait(None).unwrap();
        let q2 = q.clone();
        let joiner = create_task(async move { q2.join().await });
        settle().await;
        assert!(!joiner.done());
        q.shutdown(true);
        assert!(dropped.get(), "the queued items were dropped");
        assert_eq!(q.qsize(), 0);
        assert!(matches!(q.get_nowait(), Err(Error::QueueShutDown)));
        joiner.await.unwrap();
        // Every item counted as done: task_done has nothing left to mark.
        assert!(matches!(q.task_done(), Err(Error::Value(_))));
    });
}

#[test]
fn shutdown_immediate_join_still_waits_for_items_already_got() {
    run(async {
        let q = Rc::new(Queue::new(0));
        q.put_nowait(1).unwrap();
        q.put_nowait(2).unwrap();
        assert_eq!(q.get_nowait().unwrap(), 1); // being processed
        q.shutdown(true); // drops 2, counted as done
        let q2 = q.clone();
        let joiner = create_task(async move { q2.join().await });
        settle().await;
        assert!(!joiner.done(), "item 1 is not marked done yet");
        q.task_done().unwrap();
        joiner.await.unwrap();
    });
}

#[test]
fn shutdown_immediate_wakes_blocked_getters_and_putters() {
    run(async {
        let gq = Rc::new(Queue::new(0));
        let log = new_log();
        let g = getter(&gq, &log, "g");
        let pq = Rc::new(Queue::new(1));
        pq.put_nowait("in").unwrap();
        let p = putter(&pq, &log, "p");
        settle().await;
        gq.shutdown(true);
        pq.shutdown(true);
        assert!(matches!(g.await.unwrap(), Err(Error::QueueShutDown)));
        assert_eq!(p.await.unwrap().unwrap_err().into_inner(), "p");
        assert!(pq.empty());
        assert!(matches!(pq.get().await, Err(Error::QueueShutDown)));
    });
}

// ---- Debug ------------------------------------------------------------------------------

#[test]
fn debug_prints_sizes_without_needing_debug_items() {
    struct Opaque;
    let q = Queue::new(3);
    q.put_nowait(Opaque).unwrap();
    let s = format!("{q:?}");
    assert!(
        s.contains("maxsize: 3") && s.contains("unfinished: 1"),
        "{s}"
    );
    let e = Queue::new(1);
    e.put_nowait(Opaque).unwrap();
    assert_eq!(
        format!("{:?}", e.put_nowait(Opaque).unwrap_err()),
        "Full(..)"
    );
}
