//! Lock, Event, Semaphore and BoundedSemaphore (CPython's `test_locks.py`; Condition is in
//! `test_locks_condition.rs`),
//! on the test clock: FIFO order, no barging, errors on misuse, and cancellation
//! (a dropped waiter leaves no trace; a dropped waiter that was granted passes it on).

mod support_tasks;

use std::rc::Rc;
use std::time::Duration;

use asyncio::{wait_for, BoundedSemaphore, Error, Event, Lock, Semaphore, Task};
use support_tasks::*;

/// A task that acquires `lock`, logs `name`, yields once and releases.
fn lock_user(lock: &Rc<Lock>, log: &Log, name: &'static str) -> Task<()> {
    let (lock, log) = (lock.clone(), log.clone());
    asyncio::create_task(async move {
        lock.acquire().await;
        push(&log, name);
        asyncio::yield_now().await;
        lock.release().unwrap();
    })
}

/// Whether `fut` is ready at its first poll (a zero-timeout `wait_for` polls once and
/// drops it otherwise).
async fn ready_now<F: std::future::Future<Output = ()>>(fut: F) -> bool {
    wait_for(fut, Duration::ZERO).await.is_ok()
}

// ----- Lock ----------------------------------------------------------------------------

#[test]
fn lock_acquire_release_and_locked() {
    run(async {
        let lock = Lock::new();
        assert!(!lock.locked());
        lock.acquire().await;
        assert!(lock.locked());
        lock.release().unwrap();
        assert!(!lock.locked());
        assert_eq!(format!("{lock:?}"), "Lock { locked: false, waiters: 0 }");
    });
}

#[test]
fn lock_release_when_unlocked_is_a_runtime_error() {
    let lock = Lock::new();
    assert_eq!(runtime_msg(lock.release()), "Lock is not acquired.");
    assert!(!lock.locked());
}

#[test]
fn lock_release_by_a_task_that_does_not_hold_it_is_allowed_as_in_asyncio() {
    run(async {
        let lock = Rc::new(Lock::new());
        let l = lock.clone();
        asyncio::create_task(async move { l.acquire().await })
            .await
            .unwrap();
        assert!(lock.locked(), "the task ended holding the lock");
        lock.release().unwrap();
        assert!(!lock.locked());
    });
}

#[test]
fn lock_is_not_reentrant() {
    run(async {
        let lock = Lock::new();
        lock.acquire().await;
        let r = wait_for(lock.acquire(), Duration::from_secs(5)).await;
        assert!(matches!(r, Err(Error::Timeout)));
        assert!(lock.locked());
        assert_eq!(format!("{lock:?}"), "Lock { locked: true, waiters: 0 }");
    });
}

#[test]
fn lock_waiters_get_the_lock_in_fifo_order() {
    let log = new_log();
    let l = log.clone();
    run(async move {
        let lock = Rc::new(Lock::new());
        lock.acquire().await;
        let tasks: Vec<_> = ["a", "b", "c"]
            .into_iter()
            .map(|n| lock_user(&lock, &l, n))
            .collect();
        settle().await;
        assert!(l.borrow().is_empty());
        lock.release().unwrap();
        for t in tasks {
            t.await.unwrap();
        }
        assert!(!lock.locked());
    });
    assert_eq!(*log.borrow(), ["a", "b", "c"]);
}

#[test]
fn lock_newcomer_does_not_barge_ahead_of_a_woken_waiter() {
    let log = new_log();
    let l = log.clone();
    run(async move {
        let lock = Rc::new(Lock::new());
        lock.acquire().await;
        let a = lock_user(&lock, &l, "a");
        settle().await;
        lock.release().unwrap();
        // `a` is granted but has not run: the lock looks free (as in asyncio) ...
        assert!(!lock.locked());
        // ... yet a newcomer queues behind `a`.
        assert!(!ready_now(lock.acquire()).await);
        let b = lock_user(&lock, &l, "b");
        a.await.unwrap();
        b.await.unwrap();
        assert!(!lock.locked());
    });
    assert_eq!(*log.borrow(), ["a", "b"]);
}

#[test]
fn lock_waiter_dropped_by_a_timeout_leaves_the_queue_clean() {
    run(async {
        let lock = Rc::new(Lock::new());
        lock.acquire().await;
        let l = lock.clone();
        let w = asyncio::create_task(
            async move { wait_for(l.acquire(), Duration::from_secs(3)).await },
        );
        settle().await;
        assert_eq!(format!("{lock:?}"), "Lock { locked: true, waiters: 1 }");
        assert!(matches!(w.await.unwrap(), Err(Error::Timeout)));
        assert_eq!(format!("{lock:?}"), "Lock { locked: true, waiters: 0 }");
        lock.release().unwrap();
        assert!(!lock.locked());
        assert!(ready_now(lock.acquire()).await, "no ghost waiter ahead");
    });
}

#[test]
fn lock_waiter_cancelled_while_waiting_leaves_the_queue_clean() {
    let log = new_log();
    let l = log.clone();
    run(async move {
        let lock = Rc::new(Lock::new());
        lock.acquire().await;
        let a = lock_user(&lock, &l, "a");
        let b = lock_user(&lock, &l, "b");
        settle().await;
        assert!(a.cancel());
        settle().await;
        assert!(a.cancelled());
        assert_eq!(format!("{lock:?}"), "Lock { locked: true, waiters: 1 }");
        lock.release().unwrap();
        b.await.unwrap();
        assert!(!lock.locked());
    });
    assert_eq!(*log.borrow(), ["b"]);
}

#[test]
fn lock_granted_waiter_dropped_before_it_ran_passes_the_lock_on() {
    let log = new_log();
    let l = log.clone();
    run(async move {
        let lock = Rc::new(Lock::new());
        lock.acquire().await;
        let a = lock_user(&lock, &l, "a");
        let b = lock_user(&lock, &l, "b");
        settle().await;
        lock.release().unwrap(); // grants `a`
        a.cancel(); // `a` is dropped at its next step, before it saw the grant
        b.await.unwrap(); // no deadlock: `b` got the lock
        assert!(a.cancelled());
        assert!(!lock.locked());
    });
    assert_eq!(*log.borrow(), ["b"]);
}

#[test]
fn lock_granted_waiter_dropped_with_nobody_behind_leaves_the_lock_free() {
    run(async {
        let lock = Rc::new(Lock::new());
        lock.acquire().await;
        let l = lock.clone();
        let a = asyncio::create_task(async move { l.acquire().await });
        settle().await;
        lock.release().unwrap();
        a.cancel();
        settle().await;
        assert!(a.cancelled());
        assert!(!lock.locked());
        assert!(ready_now(lock.acquire()).await);
    });
}

#[test]
fn lock_guard_releases_on_drop() {
    run(async {
        let lock = Lock::new();
        {
            let g = lock.lock().await;
            assert!(lock.locked());
            assert!(std::ptr::eq(g.lock(), &lock));
        }
        assert!(!lock.locked());
    });
}

#[test]
fn lock_guard_does_not_release_an_acquisition_it_did_not_make() {
    run(async {
        let lock = Lock::new();
        let g = lock.lock().await;
        lock.release().unwrap(); // released another way
        lock.acquire().await; // a new acquisition
        drop(g);
        assert!(lock.locked(), "the stale guard left the new holder alone");
        lock.release().unwrap();
    });
}

// ----- Event ---------------------------------------------------------------------------

#[test]
fn event_wait_returns_at_once_when_set() {
    run(async {
        let ev = Event::new();
        assert!(!ev.is_set());
        ev.set();
        ev.set(); // no-op
        assert!(ev.is_set());
        assert!(ready_now(ev.wait()).await);
        ev.clear();
        assert!(!ev.is_set());
        assert!(!ready_now(ev.wait()).await);
        assert_eq!(format!("{ev:?}"), "Event { set: false, waiters: 0 }");
    });
}

#[test]
fn event_set_wakes_every_waiter_in_order() {
    let log = new_log();
    let l = log.clone();
    run(async move {
        let ev = Rc::new(Event::new());
        let tasks: Vec<_> = ["a", "b", "c"]
            .into_iter()
            .map(|n| {
                let (ev, l) = (ev.clone(), l.clone());
                asyncio::create_task(async move {
                    ev.wait().await;
                    push(&l, n);
                })
            })
            .collect();
        settle().await;
        assert!(l.borrow().is_empty());
        ev.set();
        for t in tasks {
            t.await.unwrap();
        }
    });
    assert_eq!(*log.borrow(), ["a", "b", "c"]);
}

#[test]
fn event_waiters_woken_by_set_return_even_if_cleared_at_once() {
    run(async {
        let ev = Rc::new(Event::new());
        let tasks: Vec<_> = (0..3)
            .map(|_| {
                let ev = ev.clone();
                asyncio::create_task(async move { ev.wait().await })
            })
            .collect();
        settle().await;
        ev.set();
        ev.clear();
        for t in tasks {
            t.await.unwrap();
        }
        // A wait that starts now blocks.
        let r = wait_for(ev.wait(), Duration::from_secs(2)).await;
        assert!(matches!(r, Err(Error::Timeout)));
    });
}

#[test]
fn event_waiter_dropped_while_waiting_leaves_the_queue_clean() {
    run(async {
        let ev = Rc::new(Event::new());
        let e = ev.clone();
        let w = asyncio::create_task(async move { e.wait().await });
        settle().await;
        assert_eq!(format!("{ev:?}"), "Event { set: false, waiters: 1 }");
        w.cancel();
        settle().await;
        assert!(w.cancelled());
        assert_eq!(format!("{ev:?}"), "Event { set: false, waiters: 0 }");
    });
}

// ----- Semaphore -----------------------------------------------------------------------

#[test]
fn semaphore_counts_permits_and_blocks_at_zero() {
    run(async {
        let sem = Rc::new(Semaphore::new(2));
        assert!(!sem.locked());
        sem.acquire().await;
        assert!(!sem.locked());
        sem.acquire().await;
        assert!(sem.locked(), "value 0");
        let s = sem.clone();
        let third = asyncio::create_task(async move { s.acquire().await });
        settle().await;
        assert!(!third.done());
        sem.release();
        third.await.unwrap();
        assert!(sem.locked());
        sem.release();
        sem.release();
        assert!(!sem.locked());
    });
}

#[test]
fn semaphore_default_has_one_permit() {
    run(async {
        let sem = Semaphore::default();
        sem.acquire().await;
        assert!(sem.locked());
        assert!(format!("{sem:?}").starts_with("Semaphore { value: 0"));
    });
}

#[test]
fn semaphore_release_may_exceed_the_initial_value() {
    run(async {
        let sem = Semaphore::new(0);
        assert!(sem.locked());
        sem.release();
        sem.release();
        assert!(ready_now(sem.acquire()).await);
        assert!(ready_now(sem.acquire()).await);
        assert!(!ready_now(sem.acquire()).await);
    });
}

#[test]
fn semaphore_waiters_get_permits_in_fifo_order() {
    let log = new_log();
    let l = log.clone();
    run(async move {
        let sem = Rc::new(Semaphore::new(0));
        let tasks: Vec<_> = ["a", "b", "c"]
            .into_iter()
            .map(|n| {
                let (s, l) = (sem.clone(), l.clone());
                asyncio::create_task(async move {
                    s.acquire().await;
                    push(&l, n);
                })
            })
            .collect();
        settle().await;
        sem.release();
        sem.release();
        sem.release();
        for t in tasks {
            t.await.unwrap();
        }
        assert!(sem.locked());
    });
    assert_eq!(*log.borrow(), ["a", "b", "c"]);
}

#[test]
fn semaphore_is_locked_while_waiters_exist_and_newcomers_queue() {
    run(async {
        let sem = Rc::new(Semaphore::new(1));
        sem.acquire().await;
        let s = sem.clone();
        let a = asyncio::create_task(async move { s.acquire().await });
        settle().await;
        sem.release(); // the permit goes to `a`, which has not run yet
        assert!(sem.locked());
        assert!(!ready_now(sem.acquire()).await, "no barging");
        a.await.unwrap();
        sem.release();
        assert!(!sem.locked());
    });
}

#[test]
fn semaphore_newcomer_queues_behind_a_granted_waiter_even_with_a_free_permit() {
    let log = new_log();
    let l = log.clone();
    run(async move {
        let sem = Rc::new(Semaphore::new(0));
        let (s, l2) = (sem.clone(), l.clone());
        let a = asyncio::create_task(async move {
            s.acquire().await;
            push(&l2, "a");
        });
        settle().await;
        sem.release(); // granted to `a`, which has not run
        sem.release(); // a free permit, but `a` still waits to run
        assert!(sem.locked(), "asyncio 3.11+: waiters exist");
        assert!(!ready_now(sem.acquire()).await, "no barging");
        let (s, l2) = (sem.clone(), l.clone());
        let b = asyncio::create_task(async move {
            s.acquire().await;
            push(&l2, "b");
        });
        a.await.unwrap();
        b.await.unwrap();
        assert!(sem.locked(), "both permits are taken");
    });
    assert_eq!(*log.borrow(), ["a", "b"]);
}

#[test]
fn semaphore_waiter_dropped_by_a_timeout_leaves_the_queue_clean() {
    run(async {
        let sem = Rc::new(Semaphore::new(0));
        let r = wait_for(sem.acquire(), Duration::from_secs(1)).await;
        assert!(matches!(r, Err(Error::Timeout)));
        assert!(format!("{sem:?}").contains("waiters: 0"));
        sem.release();
        assert!(!sem.locked());
        assert!(ready_now(sem.acquire()).await);
    });
}

#[test]
fn semaphore_granted_waiter_dropped_before_it_ran_passes_the_permit_on() {
    let log = new_log();
    let l = log.clone();
    run(async move {
        let sem = Rc::new(Semaphore::new(0));
        let spawn = |n: &'static str| {
            let (s, l) = (sem.clone(), l.clone());
            asyncio::create_task(async move {
                s.acquire().await;
                push(&l, n);
            })
        };
        let a = spawn("a");
        let b = spawn("b");
        settle().await;
        sem.release(); // grants `a`
        a.cancel();
        b.await.unwrap();
        assert!(a.cancelled());
        assert!(sem.locked(), "the one permit is `b`'s");
    });
    assert_eq!(*log.borrow(), ["b"]);
}

#[test]
fn semaphore_granted_waiter_dropped_with_nobody_behind_gives_the_permit_back() {
    run(async {
        let sem = Rc::new(Semaphore::new(0));
        let s = sem.clone();
        let a = asyncio::create_task(async move { s.acquire().await });
        settle().await;
        sem.release();
        a.cancel();
        settle().await;
        assert!(a.cancelled());
        assert!(!sem.locked());
        assert!(ready_now(sem.acquire()).await);
        assert!(sem.locked());
    });
}

#[test]
fn semaphore_permit_gives_the_permit_back_on_drop() {
    run(async {
        let sem = Semaphore::new(1);
        {
            let _p = sem.permit().await;
            assert!(sem.locked());
        }
        assert!(!sem.locked());
    });
}

#[test]
fn bounded_semaphore_release_beyond_the_initial_value_is_a_value_error() {
    run(async {
        let sem = BoundedSemaphore::new(2);
        sem.acquire().await;
        sem.release().unwrap();
        match sem.release() {
            Err(Error::Value(m)) => assert_eq!(m, "BoundedSemaphore released too many times"),
            other => panic!("{other:?}"),
        }
        // The count is unchanged: two permits, not three.
        sem.acquire().await;
        sem.acquire().await;
        assert!(sem.locked());
        assert!(!ready_now(sem.acquire()).await);
        let p = {
            sem.release().unwrap();
            sem.permit().await
        };
        assert!(sem.locked());
        drop(p);
        assert!(!sem.locked());
        assert!(format!("{sem:?}").starts_with("BoundedSemaphore"));
    });
}

#[test]
fn bounded_semaphore_default_has_one_permit() {
    let sem = BoundedSemaphore::default();
    assert!(!sem.locked());
    assert!(sem.release().is_err());
}
