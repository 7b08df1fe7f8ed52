//! `to_thread` (asyncio's `threads.py`), and the default executor's settings:
//! `set_default_executor`, `shutdown_default_executor`, and `run` joining the threads
//! (CPython's `test_threads.py` and the executor cases of `test_base_events.py`).
//! No test sleeps: blocking jobs wait on gates that the test opens.

mod support_tasks;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier as StdBarrier};

use asyncio::Error;
use support_tasks::{run_real, start_ticker};

#[test]
fn to_thread_returns_the_value_and_a_panic_is_an_error() {
    run_real(async {
        let here = std::thread::current().id();
        let (v, there) = asyncio::to_thread(|| (6 * 7, std::thread::current().id()))
            .await
            .unwrap();
        assert_eq!(v, 42);
        assert_ne!(here, there, "the function ran on another thread");
        let r = asyncio::to_thread(|| -> u8 { panic!("in the thread") }).await;
        assert!(matches!(r, Err(Error::Panic(m)) if m == "in the thread"));
    });
}

#[test]
fn to_thread_outside_a_loop_is_an_error() {
    let r = poll_once(asyncio::to_thread(|| 1));
    assert!(matches!(r, Err(Error::Runtime(m)) if m == "no running event loop"));
}

/// Poll a future once with a no-op waker (it must be ready at once).
fn poll_once<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("expected an immediate result"),
    }
}

#[test]
fn eight_blocking_calls_do_not_stall_the_loop() {
    // Eight calls block on one gate that opens only after the loop has run 200 more
    // iterations: if a call blocked the loop, the ticker could never get there and the
    // test would time out.
    let done = run_real(async {
        let lp = asyncio::get_running_loop().unwrap();
        lp.set_default_executor(8).unwrap();
        let (ticks, stop) = start_ticker(&lp);
        let gate = Arc::new(StdBarrier::new(9));
        let started = Arc::new(AtomicUsize::new(0));
        let mut calls = Vec::new();
        for i in 0..8 {
            let (g, s) = (gate.clone(), started.clone());
            calls.push(asyncio::create_task(asyncio::to_thread(move || {
                s.fetch_add(1, Ordering::SeqCst);
                g.wait();
                i
            })));
        }
        while started.load(Ordering::SeqCst) < 8 {
            asyncio::yield_now().await;
        }
        let t0 = ticks.get();
        while ticks.get() < t0 + 200 {
            asyncio::yield_now().await;
        }
        // Still blocked, and the loop ran meanwhile.
        assert!(calls.iter().all(|c| !c.done()));
        let g = gate.clone();
        std::thread::spawn(move || {
            g.wait();
        });
        let mut out = Vec::new();
        for c in calls {
            out.push(c.await.unwrap().unwrap());
        }
        stop.set(true);
        out
    });
    assert_eq!(done, (0..8).collect::<Vec<_>>());
}

#[test]
fn set_default_executor_bounds_the_pool() {
    run_real(async {
        let lp = asyncio::get_running_loop().unwrap();
        assert!(matches!(
            lp.set_default_executor(0),
            Err(Error::Value(m)) if m == "max_workers must be greater than 0"
        ));
        lp.set_default_executor(2).unwrap();
        let (tx, rx) = mpsc::channel::<()>();
        let rx = Arc::new(std::sync::Mutex::new(rx));
        let mut jobs = Vec::new();
        for _ in 0..6 {
            let rx = rx.clone();
            jobs.push(lp.run_in_executor(move || {
                let _ = rx.lock().unwrap().recv();
            }));
        }
        for _ in 0..6 {
            tx.send(()).unwrap();
        }
        for j in jobs {
            j.await.unwrap();
        }
        assert_eq!(
            lp.executor_threads(),
            2,
            "never more threads than configured"
        );
    });
}

#[test]
fn shutdown_default_executor_waits_for_running_jobs_then_refuses_new_ones() {
    let finished = Arc::new(AtomicBool::new(false));
    let f = finished.clone();
    run_real(async move {
        let lp = asyncio::get_running_loop().unwrap();
        let (tx, rx) = mpsc::channel::<()>();
        let job = lp.run_in_executor(move || {
            rx.recv().unwrap();
            f.store(true, Ordering::SeqCst);
        });
        assert_eq!(lp.executor_threads(), 1);
        // Open the gate from the loop once the shutdown is waiting: the loop must keep
        // running while the threads are joined.
        let opened = Rc::new(Cell::new(false));
        let o = opened.clone();
        lp.call_soon(move || {
            o.set(true);
            tx.send(()).unwrap();
        })
        .unwrap();
        lp.shutdown_default_executor(None).await.unwrap();
        assert!(opened.get());
        assert!(
            finished.load(Ordering::SeqCst),
            "the running job finished first"
        );
        assert_eq!(lp.executor_threads(), 0);
        job.await.unwrap();
        let refused = lp.run_in_executor(|| ()).await;
        assert!(
            matches!(refused, Err(Error::Runtime(m)) if m == "Executor shutdown has been called")
        );
        // Without threads there is nothing to wait for.
        lp.shutdown_default_executor(None).await.unwrap();
    });
}

#[test]
fn run_joins_the_executor_threads_before_it_returns() {
    let finished = Arc::new(AtomicBool::new(false));
    let main_done = Arc::new(AtomicBool::new(false));
    let (f, m) = (finished.clone(), main_done.clone());
    let (tx, rx) = mpsc::channel::<()>();
    // Opens the job's gate once `main` has returned: `run` is then past its main task,
    // and can only have the job's result if it waits for the thread.
    let watcher = {
        let m = main_done.clone();
        std::thread::spawn(move || {
            while !m.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            let _ = tx.send(());
        })
    };
    asyncio::run(async move {
        let lp = asyncio::get_running_loop().unwrap();
        // Detached: nobody awaits it.
        drop(lp.run_in_executor(move || {
            rx.recv().unwrap();
            f.store(true, Ordering::SeqCst);
        }));
        m.store(true, Ordering::SeqCst);
    })
    .unwrap();
    assert!(main_done.load(Ordering::SeqCst));
    assert!(
        finished.load(Ordering::SeqCst),
        "run returned only after the executor's thread finished its job"
    );
    watcher.join().unwrap();
}
