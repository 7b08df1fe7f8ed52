//! Condition (CPython's `test_locks.py`, `ConditionTests`), on the test clock: notify
//! order, the un-acquired errors, `wait_for`, and cancellation (a dropped `wait` leaves
//! the lock released and passes a received notify on).

mod support_tasks;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use asyncio::{wait_for, Condition, Error, Lock, Task};
use support_tasks::*;

// ----- Condition -----------------------------------------------------------------------

#[test]
fn condition_wait_and_notify_without_the_lock_are_runtime_errors() {
    run(async {
        let cond = Condition::new();
        assert_eq!(
            runtime_msg(cond.wait().await),
            "cannot wait on un-acquired lock"
        );
        assert_eq!(
            runtime_msg(cond.wait_for(|| false).await),
            "cannot wait on un-acquired lock"
        );
        assert_eq!(
            runtime_msg(cond.notify(1)),
            "cannot notify on un-acquired lock"
        );
        assert_eq!(
            runtime_msg(cond.notify_all()),
            "cannot notify on un-acquired lock"
        );
        assert_eq!(runtime_msg(cond.release()), "Lock is not acquired.");
        // A predicate already true returns at once (asyncio checks it first).
        cond.wait_for(|| true).await.unwrap();
    });
}

/// Tasks that each take the condition's lock, wait once, log, and release.
fn cond_waiters(cond: &Rc<Condition>, log: &Log, names: &[&'static str]) -> Vec<Task<()>> {
    names
        .iter()
        .map(|&n| {
            let (c, l) = (cond.clone(), log.clone());
            asyncio::create_task(async move {
                c.acquire().await;
                c.wait().await.unwrap();
                assert!(c.locked(), "wait re-acquires the lock");
                push(&l, n);
                c.release().unwrap();
            })
        })
        .collect()
}

#[test]
fn condition_notify_n_wakes_the_n_longest_waiting_then_notify_all_the_rest() {
    let log = new_log();
    let l = log.clone();
    run(async move {
        let cond = Rc::new(Condition::new());
        let tasks = cond_waiters(&cond, &l, &["a", "b", "c", "d"]);
        settle().await;
        assert!(!cond.locked(), "every waiter released the lock");
        assert_eq!(
            format!("{cond:?}"),
            "Condition { locked: false, waiters: 4 }"
        );

        cond.acquire().await;
        cond.notify(2).unwrap();
        settle().await;
        assert!(l.borrow().is_empty(), "woken waiters need the lock first");
        cond.release().unwrap();
        settle().await;
        assert_eq!(*l.borrow(), ["a", "b"]);

        cond.acquire().await;
        cond.notify(0).unwrap();
        cond.notify_all().unwrap();
        cond.release().unwrap();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(
            format!("{cond:?}"),
            "Condition { locked: false, waiters: 0 }"
        );
    });
    assert_eq!(*log.borrow(), ["a", "b", "c", "d"]);
}

#[test]
fn condition_notify_with_no_waiters_is_a_no_op() {
    run(async {
        let cond = Condition::new();
        let _g = cond.lock().await;
        cond.notify(3).unwrap();
        cond.notify_all().unwrap();
    });
}

#[test]
fn condition_wait_for_returns_once_the_predicate_holds() {
    run(async {
        let cond = Rc::new(Condition::new());
        let n = Rc::new(Cell::new(0));
        let checks = Rc::new(Cell::new(0));
        let (c, n2, ch) = (cond.clone(), n.clone(), checks.clone());
        let waiter = asyncio::create_task(async move {
            let _g = c.lock().await;
            c.wait_for(|| {
                ch.set(ch.get() + 1);
                n2.get() >= 2
            })
            .await
            .unwrap();
            assert!(c.locked());
            n2.get()
        });
        for _ in 0..2 {
            settle().await;
            let _g = cond.lock().await;
            n.set(n.get() + 1);
            cond.notify(1).unwrap();
        }
        assert_eq!(waiter.await.unwrap(), 2);
        assert_eq!(checks.get(), 3, "checked at start and after each notify");
        assert!(!cond.locked());
    });
}

#[test]
fn condition_dropped_wait_leaves_the_lock_released_and_the_queue_clean() {
    let log = new_log();
    let l = log.clone();
    run(async move {
        let cond = Rc::new(Condition::new());
        let c = cond.clone();
        let dropped = asyncio::create_task(async move {
            c.acquire().await;
            let r = wait_for(c.wait(), Duration::from_secs(2)).await;
            assert!(matches!(r, Err(Error::Timeout)));
            c.locked()
        });
        let tasks = cond_waiters(&cond, &l, &["b"]);
        assert!(
            !dropped.await.unwrap(),
            "a dropped wait does not re-acquire"
        );
        assert_eq!(
            format!("{cond:?}"),
            "Condition { locked: false, waiters: 1 }"
        );
        // The one notify goes to the remaining waiter, not to a ghost.
        cond.acquire().await;
        cond.notify(1).unwrap();
        cond.release().unwrap();
        for t in tasks {
            t.await.unwrap();
        }
    });
    assert_eq!(*log.borrow(), ["b"]);
}

#[test]
fn condition_notified_waiter_dropped_before_it_returned_passes_the_notify_on() {
    let log = new_log();
    let l = log.clone();
    run(async move {
        let cond = Rc::new(Condition::new());
        let mut tasks = cond_waiters(&cond, &l, &["a", "b"]);
        settle().await;
        cond.acquire().await;
        cond.notify(1).unwrap(); // notifies `a`
        settle().await; // `a` saw it and now waits for the lock we hold
        assert!(l.borrow().is_empty());
        let a = tasks.remove(0);
        a.cancel();
        settle().await; // `a` is dropped while waiting for the lock
        assert!(a.cancelled());
        cond.release().unwrap();
        for t in tasks {
            t.await.unwrap(); // `b` got `a`'s notify
        }
        assert!(!cond.locked());
    });
    assert_eq!(*log.borrow(), ["b"]);
}

#[test]
fn condition_notified_waiter_dropped_before_its_step_passes_the_notify_on() {
    let log = new_log();
    let l = log.clone();
    run(async move {
        let cond = Rc::new(Condition::new());
        let mut tasks = cond_waiters(&cond, &l, &["a", "b"]);
        settle().await;
        cond.acquire().await;
        cond.notify(1).unwrap();
        tasks.remove(0).cancel(); // dropped before it saw the notify
        cond.release().unwrap();
        for t in tasks {
            t.await.unwrap();
        }
    });
    assert_eq!(*log.borrow(), ["b"]);
}

#[test]
fn condition_guard_holds_across_wait_and_ignores_a_dropped_wait() {
    run(async {
        let cond = Rc::new(Condition::new());
        // A guard is valid after a wait that returned.
        let c = cond.clone();
        let w = asyncio::create_task(async move {
            let _g = c.lock().await;
            c.wait().await.unwrap();
            assert!(c.locked());
        });
        settle().await;
        {
            let _g = cond.lock().await;
            cond.notify_all().unwrap();
        }
        w.await.unwrap();
        assert!(!cond.locked(), "the guard released after the wait");

        // A dropped wait leaves the lock to others; the guard does not release it.
        let c = cond.clone();
        let w = asyncio::create_task(async move {
            let _g = c.lock().await;
            c.wait().await.unwrap();
        });
        settle().await;
        cond.acquire().await; // the waiter released it in wait()
        w.cancel();
        settle().await;
        assert!(w.cancelled());
        assert!(
            cond.locked(),
            "the cancelled waiter's guard left our lock alone"
        );
        cond.release().unwrap();
    });
}

#[test]
fn conditions_can_share_a_lock() {
    run(async {
        let lock = Rc::new(Lock::new());
        let c1 = Rc::new(Condition::with_lock(lock.clone()));
        let c2 = Condition::with_lock(lock.clone());
        lock.acquire().await;
        assert!(c1.locked() && c2.locked());
        c2.notify(1).unwrap();
        let c = c1.clone();
        let w = asyncio::create_task(async move {
            c.acquire().await;
            c.wait().await.unwrap();
            c.release().unwrap();
        });
        lock.release().unwrap();
        settle().await;
        assert!(!lock.locked(), "c1's waiter released the shared lock");
        c2.acquire().await;
        c2.notify_all().unwrap(); // c2 has no waiters: c1's waiter sleeps on
        c1.notify(1).unwrap();
        c2.release().unwrap();
        w.await.unwrap();
        assert!(!lock.locked());
        assert!(!Condition::default().locked());
    });
}
