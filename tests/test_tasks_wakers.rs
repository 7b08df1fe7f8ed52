//! Task wakers (CPython's `test_tasks.py` wake-up cases, and the `std::task::Waker`
//! contract): one step per wake-up however many wakes, harmless late and stale
//! wakes, wakes from other threads, and the life of a packed waker through the public
//! API.

mod support_tasks;

use std::cell::{Cell, RefCell};
use std::future::Future as StdFuture;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll, Waker};
use std::thread;

use asyncio::{EventLoop, Future};
use support_tasks::*;

/// A future that counts its polls, keeps the latest waker, and completes when told.
#[derive(Clone, Default)]
struct Probe {
    polls: Rc<Cell<u32>>,
    waker: Rc<RefCell<Option<Waker>>>,
    ready: Rc<Cell<bool>>,
}

impl Probe {
    fn waker(&self) -> Waker {
        self.waker.borrow().clone().expect("polled at least once")
    }
}

impl StdFuture for Probe {
    type Output = u32;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        self.polls.set(self.polls.get() + 1);
        *self.waker.borrow_mut() = Some(cx.waker().clone());
        if self.ready.get() {
            Poll::Ready(self.polls.get())
        } else {
            Poll::Pending
        }
    }
}

#[test]
fn a_task_that_wakes_itself_during_its_poll_gets_exactly_one_more_step() {
    let lp = EventLoop::new().unwrap();
    let polls = Rc::new(Cell::new(0u32));
    let p = polls.clone();
    let task = lp.create_task(std::future::poll_fn(move |cx| {
        p.set(p.get() + 1);
        if p.get() == 1 {
            // Wake itself, several ways, while its own step runs.
            cx.waker().wake_by_ref();
            cx.waker().wake_by_ref();
            let owned = cx.waker().clone();
            owned.wake(); // by value
        }
        Poll::<()>::Pending
    }));
    run_once(&lp);
    assert_eq!(polls.get(), 1);
    run_once(&lp);
    assert_eq!(polls.get(), 2, "the self-wake queued one more step");
    for _ in 0..5 {
        run_once(&lp);
    }
    assert_eq!(polls.get(), 2, "and only one");
    assert!(!task.done());
    lp.close().unwrap();
}

#[test]
fn two_wakes_before_the_task_runs_queue_one_step() {
    let lp = EventLoop::new().unwrap();
    let probe = Probe::default();
    let task = lp.create_task(probe.clone());
    run_once(&lp);
    assert_eq!(probe.polls.get(), 1);
    // From a callback (the loop's own thread, while it runs).
    let w = probe.waker();
    lp.call_soon(move || {
        w.wake_by_ref();
        w.wake_by_ref();
        w.wake();
    })
    .unwrap();
    run_once(&lp);
    run_once(&lp);
    run_once(&lp);
    assert_eq!(probe.polls.get(), 2, "three wakes, one step");
    // From outside the running loop (the thread-safe inbox).
    let w = probe.waker();
    w.wake_by_ref();
    w.wake();
    run_once(&lp);
    run_once(&lp);
    assert_eq!(probe.polls.get(), 3, "two wakes, one step");
    probe.ready.set(true);
    probe.waker().wake();
    run_once(&lp);
    assert_eq!(task.take_result().unwrap(), 4);
    lp.close().unwrap();
}

#[test]
fn a_wake_after_completion_is_harmless() {
    let lp = EventLoop::new().unwrap();
    let probe = Probe::default();
    probe.ready.set(true);
    let task = lp.create_task(probe.clone());
    run_once(&lp);
    assert!(task.done());
    let w = probe.waker();
    // Locally while running, from outside the run, and from another thread.
    let w2 = w.clone();
    lp.call_soon(move || w2.wake_by_ref()).unwrap();
    w.wake_by_ref();
    let w3 = w.clone();
    thread::spawn(move || w3.wake()).join().unwrap();
    for _ in 0..3 {
        run_once(&lp);
    }
    assert_eq!(probe.polls.get(), 1, "a done task is never polled again");
    assert_eq!(task.take_result().unwrap(), 1);
    lp.close().unwrap();
}

#[test]
fn a_waker_dropped_while_pending_leaves_the_task_pending_and_cancellable() {
    let lp = EventLoop::new().unwrap();
    let polls = Rc::new(Cell::new(0u32));
    let p = polls.clone();
    let (guard, dropped) = drop_flag();
    let task = lp.create_task(async move {
        let _g = guard;
        std::future::poll_fn(|cx| {
            p.set(p.get() + 1);
            // Clone the waker and drop the clones, here and on another thread.
            let w = cx.waker().clone();
            let w2 = w.clone();
            drop(w);
            thread::spawn(move || drop(w2)).join().unwrap();
            Poll::<()>::Pending
        })
        .await
    });
    for _ in 0..4 {
        run_once(&lp);
    }
    assert_eq!(polls.get(), 1, "nobody woke it");
    assert!(!task.done());
    task.cancel();
    run_once(&lp);
    assert!(task.cancelled() && dropped.get());
    lp.close().unwrap();
}

#[test]
fn wakes_from_eight_threads_finish_every_task() {
    const THREADS: usize = 8;
    // Under Miri every step is interpreted: fewer wakes keep the run to seconds.
    const WAKES: usize = if cfg!(miri) { 50 } else { 2_000 };
    let finished = run_real(async {
        let mut tasks = Vec::new();
        let mut threads = Vec::new();
        for _ in 0..THREADS {
            let counter = Arc::new(AtomicUsize::new(0));
            let (tx, rx) = mpsc::channel::<Waker>();
            let c = counter.clone();
            threads.push(thread::spawn(move || {
                let waker = rx.recv().unwrap();
                for i in 1..=WAKES {
                    c.store(i, Ordering::Release);
                    if i % 2 == 0 {
                        waker.wake_by_ref();
                    } else {
                        let owned = waker.clone();
                        owned.wake(); // by value
                    }
                }
            }));
            let mut tx = Some(tx);
            let steps = Rc::new(Cell::new(0usize));
            let s = steps.clone();
            tasks.push(asyncio::create_task(async move {
                std::future::poll_fn(|cx| {
                    s.set(s.get() + 1);
                    // Checked before the waker is handed over: the first poll is
                    // always pending, and only the thread's wakes can finish the task.
                    if counter.load(Ordering::Acquire) == WAKES {
                        return Poll::Ready(());
                    }
                    if let Some(tx) = tx.take() {
                        tx.send(cx.waker().clone()).unwrap();
                    }
                    Poll::Pending
                })
                .await;
                steps.get()
            }));
        }
        let mut steps = Vec::new();
        for t in tasks {
            steps.push(t.await.unwrap());
        }
        for th in threads {
            th.join().unwrap();
        }
        steps
    });
    assert_eq!(finished.len(), THREADS);
    for steps in finished {
        // Coalesced: never more steps than wakes (plus the first step).
        assert!((2..=WAKES + 1).contains(&steps), "{steps} steps");
    }
}

#[test]
fn waking_a_task_from_a_thread_after_the_loop_is_closed_is_harmless() {
    let lp = EventLoop::new().unwrap();
    let probe = Probe::default();
    let _task = lp.create_task(probe.clone());
    run_once(&lp);
    let w = probe.waker();
    lp.close().unwrap();
    let w2 = w.clone();
    thread::spawn(move || {
        w2.wake_by_ref();
        w2.wake();
    })
    .join()
    .unwrap();
    w.wake_by_ref();
    drop(lp);
    // And after the loop itself is gone.
    thread::spawn(move || w.wake()).join().unwrap();
    assert_eq!(probe.polls.get(), 1);
}

#[test]
fn a_stale_waker_does_not_reach_the_task_that_reuses_its_slot() {
    let lp = EventLoop::new().unwrap();
    // Task A finishes; its slab slot is free.
    let a_probe = Probe::default();
    a_probe.ready.set(true);
    let a = lp.create_task(async move { ("a", a_probe.clone().await, a_probe) });
    run_once(&lp);
    let (_, _, a_probe) = a.result().unwrap();
    let stale = a_probe.waker();
    // Task B is created next and takes the freed slot.
    let b_probe = Probe::default();
    let b = lp.create_task(b_probe.clone());
    run_once(&lp);
    assert_eq!(b_probe.polls.get(), 1);
    // A's waker, every way: locally while running, from outside, from a thread.
    let s = stale.clone();
    lp.call_soon(move || s.wake_by_ref()).unwrap();
    stale.wake_by_ref();
    let s = stale.clone();
    thread::spawn(move || s.wake()).join().unwrap();
    for _ in 0..3 {
        run_once(&lp);
    }
    assert_eq!(b_probe.polls.get(), 1, "B was not woken by A's waker");
    assert!(!stale.will_wake(&b_probe.waker()));
    // Both tasks keep their own outcomes.
    b_probe.ready.set(true);
    b_probe.waker().wake();
    run_once(&lp);
    assert_eq!(b.take_result().unwrap(), 2);
    assert_eq!(a.take_result().unwrap().0, "a");
    lp.close().unwrap();
}

#[test]
fn will_wake_holds_for_clones_and_across_steps_of_one_task_only() {
    let lp = EventLoop::new().unwrap();
    let p1 = Probe::default();
    let p2 = Probe::default();
    let _t1 = lp.create_task(p1.clone());
    let _t2 = lp.create_task(p2.clone());
    run_once(&lp);
    let w1 = p1.waker();
    let c1 = w1.clone();
    assert!(w1.will_wake(&c1) && c1.will_wake(&w1));
    let from_thread = thread::spawn(move || c1.clone()).join().unwrap();
    assert!(w1.will_wake(&from_thread), "a clone made on another thread");
    assert!(!w1.will_wake(&p2.waker()), "another task's waker");
    // The waker is made once per task: a later step sees the same one.
    w1.wake_by_ref();
    run_once(&lp);
    assert_eq!(p1.polls.get(), 2);
    assert!(w1.will_wake(&p1.waker()));
    lp.close().unwrap();
}

#[test]
fn packed_waker_lifecycle_through_the_public_api() {
    let lp = EventLoop::new().unwrap();
    let probe = Probe::default();
    let task = lp.create_task(probe.clone());
    run_once(&lp);
    let w = probe.waker();
    // Many clones, dropped on this thread and on others, in any order.
    let mut mine: Vec<Waker> = (0..100).map(|_| w.clone()).collect();
    let theirs = mine.split_off(50);
    let handle = thread::spawn(move || {
        for (i, c) in theirs.into_iter().enumerate() {
            if i % 10 == 0 {
                c.wake(); // consumes the clone
            } else {
                drop(c);
            }
        }
    });
    drop(mine);
    handle.join().unwrap();
    // The wakes from the thread wait in the inbox until the loop runs.
    assert_eq!(probe.polls.get(), 1);
    run_once(&lp);
    run_once(&lp);
    assert_eq!(probe.polls.get(), 2, "five cross-thread wakes, one step");
    // The original still works after all its clones are gone.
    probe.ready.set(true);
    w.wake_by_ref();
    run_once(&lp);
    run_once(&lp);
    assert_eq!(task.take_result().unwrap(), 3);
    // And is harmless once the task is done, the loop closed, and the loop dropped.
    w.wake_by_ref();
    run_once(&lp);
    lp.close().unwrap();
    w.wake_by_ref();
    drop(lp);
    w.wake();
    assert_eq!(probe.polls.get(), 3);
}

#[test]
fn a_waker_woken_from_a_thread_wakes_a_loop_blocked_in_poll() {
    // No timer but the bound: the loop sleeps in the selector until the wake arrives.
    let polls = run_real(async {
        let flag = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel::<Waker>();
        let f = flag.clone();
        let th = thread::spawn(move || {
            let w = rx.recv().unwrap();
            f.store(1, Ordering::Release);
            w.wake();
        });
        let mut polls = 0u32;
        let mut tx = Some(tx);
        std::future::poll_fn(|cx| {
            polls += 1;
            // Checked before the waker is handed over, so the first poll is pending.
            if flag.load(Ordering::Acquire) == 1 {
                return Poll::Ready(());
            }
            if let Some(tx) = tx.take() {
                tx.send(cx.waker().clone()).unwrap();
            }
            Poll::Pending
        })
        .await;
        th.join().unwrap();
        polls
    });
    assert_eq!(polls, 2, "one wake from the thread, one more step");
}

#[test]
fn stale_wakers_of_a_closed_loop_do_not_wake_tasks_of_a_new_loop() {
    // Loops reuse the waker registry's slots once closed, and every loop numbers its
    // tasks from 1: a waker that outlives its loop must not find its way into the
    // same slot of the next loop.
    const LOOPS: usize = 16;
    let mut stale = Vec::new();
    for _ in 0..LOOPS {
        let lp = EventLoop::new().unwrap();
        let probe = Probe::default();
        let _t = lp.create_task(probe.clone());
        run_once(&lp);
        stale.push(probe.waker());
        lp.close().unwrap();
    }
    let mut fresh = Vec::new();
    for _ in 0..LOOPS {
        let lp = EventLoop::new().unwrap();
        let probe = Probe::default();
        let task = lp.create_task(probe.clone());
        run_once(&lp);
        fresh.push((lp, probe, task));
    }
    // Wake every stale waker from a thread (the inbox path)...
    let ws = stale.clone();
    thread::spawn(move || ws.iter().for_each(Waker::wake_by_ref))
        .join()
        .unwrap();
    for (lp, probe, _) in &fresh {
        // ...and locally while each new loop runs.
        let ws = stale.clone();
        lp.call_soon(move || ws.iter().for_each(Waker::wake_by_ref))
            .unwrap();
        run_once(lp);
        run_once(lp);
        assert_eq!(probe.polls.get(), 1, "a task of a new loop was woken");
    }
    for (lp, _, _) in fresh {
        lp.close().unwrap();
    }
}

#[test]
fn asyncio_future_wakes_each_awaiting_task_once() {
    let lp = EventLoop::new().unwrap();
    let fut: Future<u8> = lp.create_future();
    let steps = Rc::new(Cell::new(0u32));
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let (f, s) = (fut.clone(), steps.clone());
            lp.create_task(async move {
                s.set(s.get() + 1);
                let v = f.await.unwrap();
                s.set(s.get() + 1);
                v
            })
        })
        .collect();
    run_once(&lp);
    fut.set_result(9).unwrap();
    for _ in 0..3 {
        run_once(&lp);
    }
    assert_eq!(steps.get(), 6);
    for t in tasks {
        assert_eq!(t.take_result().unwrap(), 9);
    }
    lp.close().unwrap();
}
