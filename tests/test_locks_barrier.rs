//! `Barrier` (asyncio 3.11), after CPython's `test_locks.py` `BarrierTests`: the cycle
//! (filling, draining, filling again), indices, abort and reset, and what a cancelled
//! wait leaves behind. Every test runs on the test clock.

mod support_tasks;

use std::rc::Rc;

use asyncio::{Barrier, Error, Result};
use support_tasks::{new_log, push, run, settle};

fn spawn_waiters(barrier: &Rc<Barrier>, n: usize) -> Vec<asyncio::Task<Result<usize>>> {
    (0..n)
        .map(|_| {
            let b = barrier.clone();
            asyncio::create_task(async move { b.wait().await })
        })
        .collect()
}

fn broken_msg(r: Result<usize>) -> String {
    match r {
        Err(Error::BrokenBarrier(m)) => m,
        other => panic!("expected BrokenBarrierError, got {other:?}"),
    }
}

#[test]
fn zero_parties_is_a_value_error() {
    match Barrier::new(0) {
        Err(Error::Value(m)) => assert_eq!(m, "parties must be > 0"),
        other => panic!("expected ValueError, got {other:?}"),
    }
}

#[test]
fn nobody_passes_before_the_last_party_and_each_gets_its_own_index() {
    run(async {
        let barrier = Rc::new(Barrier::new(3).unwrap());
        let tasks = spawn_waiters(&barrier, 2);
        settle().await;
        assert!(tasks.iter().all(|t| !t.done()), "two of three wait");
        assert_eq!(barrier.n_waiting(), 2);
        let mine = barrier.wait().await.unwrap();
        let mut indices = vec![mine];
        for t in tasks {
            indices.push(t.await.unwrap().unwrap());
        }
        indices.sort();
        assert_eq!(indices, [0, 1, 2]);
        assert_eq!(barrier.n_waiting(), 0);
        assert!(!barrier.broken());
    });
}

#[test]
fn the_barrier_cycles_and_a_newcomer_while_draining_waits_for_the_next_cycle() {
    let log = new_log();
    let l = log.clone();
    run(async move {
        let barrier = Rc::new(Barrier::new(2).unwrap());
        let first = spawn_waiters(&barrier, 1);
        settle().await;
        // The second party opens the barrier; the first one has not left yet (draining).
        assert_eq!(barrier.wait().await.unwrap(), 1);
        let b = barrier.clone();
        let l2 = l.clone();
        let newcomer = asyncio::create_task(async move {
            let i = b.wait().await;
            push(&l2, "newcomer passed");
            i
        });
        settle().await;
        assert_eq!(first.into_iter().next().unwrap().await.unwrap().unwrap(), 0);
        assert!(!newcomer.done(), "the newcomer waits for a second party");
        assert!(l.borrow().is_empty());
        assert_eq!(barrier.n_waiting(), 1, "the next cycle is filling");
        assert_eq!(barrier.wait().await.unwrap(), 1);
        assert_eq!(newcomer.await.unwrap().unwrap(), 0);
    });
    assert_eq!(*log.borrow(), ["newcomer passed"]);
}

#[test]
fn abort_fails_the_waiting_tasks_and_every_later_wait_until_reset() {
    run(async {
        let barrier = Rc::new(Barrier::new(3).unwrap());
        let tasks = spawn_waiters(&barrier, 2);
        settle().await;
        barrier.abort();
        assert!(barrier.broken());
        for t in tasks {
            assert_eq!(broken_msg(t.await.unwrap()), "Abort or reset of barrier");
        }
        assert_eq!(broken_msg(barrier.wait().await), "Barrier aborted");
        barrier.reset();
        assert!(!barrier.broken());
        let tasks = spawn_waiters(&barrier, 2);
        barrier.wait().await.unwrap();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
    });
}

#[test]
fn reset_while_tasks_wait_sends_them_away_then_fills_again() {
    run(async {
        let barrier = Rc::new(Barrier::new(3).unwrap());
        let tasks = spawn_waiters(&barrier, 2);
        settle().await;
        barrier.reset();
        assert_eq!(
            barrier.n_waiting(),
            0,
            "resetting: nobody counts as waiting"
        );
        let b = barrier.clone();
        let late = asyncio::create_task(async move { b.wait().await });
        for t in tasks {
            assert_eq!(broken_msg(t.await.unwrap()), "Abort or reset of barrier");
        }
        settle().await;
        assert!(
            !late.done(),
            "the task arriving while resetting joins the new cycle"
        );
        assert_eq!(barrier.n_waiting(), 1);
        let more = spawn_waiters(&barrier, 1);
        barrier.wait().await.unwrap();
        late.await.unwrap().unwrap();
        more.into_iter().next().unwrap().await.unwrap().unwrap();
    });
}

#[test]
fn a_cancelled_wait_leaves_the_barrier() {
    run(async {
        let barrier = Rc::new(Barrier::new(2).unwrap());
        let tasks = spawn_waiters(&barrier, 1);
        settle().await;
        assert_eq!(barrier.n_waiting(), 1);
        tasks[0].cancel();
        settle().await;
        assert!(tasks[0].cancelled());
        assert_eq!(barrier.n_waiting(), 0, "the cancelled party left");
        // Two fresh parties still open it: the cancelled one does not count.
        let others = spawn_waiters(&barrier, 1);
        settle().await;
        assert_eq!(barrier.n_waiting(), 1);
        let mine = barrier.wait().await.unwrap();
        let theirs = others.into_iter().next().unwrap().await.unwrap().unwrap();
        assert_eq!(mine + theirs, 1, "indices 0 and 1");
    });
}

#[test]
fn a_wait_dropped_after_the_barrier_opened_changes_nothing() {
    run(async {
        let barrier = Rc::new(Barrier::new(2).unwrap());
        let tasks = spawn_waiters(&barrier, 1);
        settle().await;
        barrier.wait().await.unwrap();
        // The waiter was woken (draining) but its task is cancelled before it resumes:
        // it leaves, and the barrier fills again.
        tasks[0].cancel();
        settle().await;
        assert_eq!(barrier.n_waiting(), 0);
        let again = spawn_waiters(&barrier, 1);
        barrier.wait().await.unwrap();
        again.into_iter().next().unwrap().await.unwrap().unwrap();
        assert_eq!(
            format!("{barrier:?}"),
            "Barrier { state: Filling, waiters: 0, parties: 2 }"
        );
    });
}
