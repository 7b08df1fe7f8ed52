//! The default executor and `getaddrinfo` (CPython's `test_base_events.py` executor
//! cases and `concurrent.futures` pool rules): no thread before the first job, results
//! delivered on the loop thread through its thread-safe inbox, panics as errors, a
//! pool that grows only when every thread is busy, and the numeric fast path of
//! `getaddrinfo`.
//!
//! These tests involve real threads, so they run on the system clock, bounded by a
//! generous wall-clock limit; none of them sleeps.

mod support_tasks;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use asyncio::{Error, EventLoop};
use support_tasks::*;

/// The pool's maximum size: Python's `min(32, cores + 4)`.
fn max_threads() -> usize {
    let cores = thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    (cores + 4).min(32)
}

/// A gate that blocked jobs wait on until the test opens it.
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    fn wait(&self) {
        let (lock, cv) = &*self.0;
        let mut open = lock.lock().unwrap();
        while !*open {
            // Bounded, so a bug cannot hang the test binary.
            let (g, t) = cv.wait_timeout(open, REAL_LIMIT).unwrap();
            open = g;
            assert!(!t.timed_out() || *open, "gate never opened");
        }
    }
    fn open(&self) {
        let (lock, cv) = &*self.0;
        *lock.lock().unwrap() = true;
        cv.notify_all();
    }
}

#[test]
fn no_thread_exists_before_the_first_job() {
    let lp = EventLoop::new().unwrap();
    assert_eq!(lp.executor_threads(), 0);
    // Running the loop, tasks, timers and numeric getaddrinfo start no thread either.
    let lp2 = lp.clone();
    lp.run_until_complete(async move {
        asyncio::sleep(Duration::from_millis(1)).await;
        asyncio::create_task(async {}).await.unwrap();
        lp2.getaddrinfo("127.0.0.1", 80).await.unwrap();
    })
    .unwrap();
    assert_eq!(lp.executor_threads(), 0);
    let t = lp.run_in_executor(|| 1);
    assert_eq!(lp.executor_threads(), 1, "started by the first job");
    assert_eq!(run_on_real(&lp, t).unwrap(), 1);
    lp.close().unwrap();
}

#[test]
fn run_in_executor_runs_the_job_on_a_pool_thread_and_delivers_on_the_loop_thread() {
    let loop_thread = thread::current().id();
    let (job_thread, job_name, done_on) = run_real(async move {
        let lp = asyncio::get_running_loop().unwrap();
        let t = lp.run_in_executor(|| {
            let me = thread::current();
            (me.id(), me.name().map(str::to_owned))
        });
        let (id, name) = t.await.unwrap();
        (id, name, thread::current().id())
    });
    assert_ne!(job_thread, loop_thread);
    assert_eq!(job_name.as_deref(), Some("asyncio-executor-0"));
    assert_eq!(
        done_on, loop_thread,
        "the result is handed over on the loop thread"
    );
}

#[test]
fn a_result_from_the_pool_wakes_a_loop_blocked_in_its_selector() {
    // The job waits for the test's go, given from a plain callback; the loop then has
    // nothing to do but wait in its selector until the pool's wake-up comes through
    // the thread-safe inbox.
    let out = run_real(async {
        let lp = asyncio::get_running_loop().unwrap();
        let (go_tx, go_rx) = mpsc::channel::<u32>();
        let t = lp.run_in_executor(move || go_rx.recv().unwrap() * 2);
        lp.call_soon(move || go_tx.send(21).unwrap()).unwrap();
        t.await.unwrap()
    });
    assert_eq!(out, 42);
}

#[test]
fn a_panicking_job_becomes_error_panic() {
    let r = run_real(async {
        let lp = asyncio::get_running_loop().unwrap();
        let bad = lp.run_in_executor(|| -> u8 { panic!("job failed") });
        let r = bad.await;
        // The pool survives: the next job runs.
        let good = lp.run_in_executor(|| 5u8).await.unwrap();
        (r, good)
    });
    assert!(matches!(r.0, Err(Error::Panic(m)) if m == "job failed"));
    assert_eq!(r.1, 5);
}

#[test]
fn the_pool_grows_while_every_thread_is_busy_up_to_its_maximum() {
    let max = max_threads();
    let jobs = max + 3;
    let (outs, threads) = run_real(async move {
        let lp = asyncio::get_running_loop().unwrap();
        let gate = Gate::default();
        let tasks: Vec<_> = (0..jobs)
            .map(|i| {
                let g = gate.clone();
                lp.run_in_executor(move || {
                    g.wait();
                    i
                })
            })
            .collect();
        let threads = lp.executor_threads();
        gate.open();
        let mut outs = Vec::new();
        for t in tasks {
            outs.push(t.await.unwrap());
        }
        (outs, threads)
    });
    assert_eq!(outs, (0..jobs).collect::<Vec<_>>());
    assert_eq!(
        threads, max,
        "all threads were blocked, so each job until the maximum added one"
    );
}

#[test]
fn a_job_is_never_queued_behind_busy_threads_below_the_maximum() {
    // Job A waits for job B: B must get a thread of its own whenever the pool has room.
    // A worker that was idle but about to take A must not count as free for B (the
    // race showed up about once in a hundred rounds).
    for round in 0..500 {
        let lp = EventLoop::new().unwrap();
        let (tx, rx) = mpsc::channel::<()>();
        let a = lp.run_in_executor(move || rx.recv_timeout(Duration::from_secs(5)).is_ok());
        let b = lp.run_in_executor(move || {
            let _ = tx.send(());
        });
        let ok = run_on_real(&lp, async move {
            let ok = a.await.unwrap();
            b.await.unwrap();
            ok
        });
        assert!(ok, "round {round}: job B waited behind job A");
        lp.close().unwrap();
    }
}

#[test]
fn cancelling_an_executor_task_stops_the_wait_not_the_job() {
    let (cancelled, job_finished) = run_real(async {
        let lp = asyncio::get_running_loop().unwrap();
        let gate = Gate::default();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let g = gate.clone();
        let t = lp.run_in_executor(move || {
            g.wait();
            done_tx.send(()).unwrap();
        });
        asyncio::yield_now().await;
        t.cancel();
        let r = t.await;
        gate.open();
        // The job still runs to its end on its thread.
        let finished = lp
            .run_in_executor(move || done_rx.recv_timeout(REAL_LIMIT).is_ok())
            .await
            .unwrap();
        (r, finished)
    });
    assert!(matches!(cancelled, Err(Error::Cancelled)));
    assert!(job_finished);
}

#[test]
fn run_in_executor_on_a_closed_loop_fails_without_starting_a_thread() {
    let lp = EventLoop::new().unwrap();
    lp.close().unwrap();
    let ran = Arc::new(Mutex::new(false));
    let r = ran.clone();
    let t = lp.run_in_executor(move || *r.lock().unwrap() = true);
    assert!(t.done());
    assert!(matches!(t.take_result(), Err(Error::Runtime(m)) if m == "Event loop is closed"));
    assert_eq!(lp.executor_threads(), 0);
    assert!(!*ran.lock().unwrap());
}

#[test]
fn close_releases_the_pool() {
    let lp = EventLoop::new().unwrap();
    assert_eq!(run_on_real(&lp, lp.run_in_executor(|| 3)).unwrap(), 3);
    assert_eq!(lp.executor_threads(), 1);
    lp.close().unwrap();
    assert_eq!(lp.executor_threads(), 0);
}

#[test]
fn getaddrinfo_of_a_numeric_host_starts_no_thread() {
    let lp = EventLoop::new().unwrap();
    let lp2 = lp.clone();
    let (v4, v6, bracketed) = run_on_real(&lp, async move {
        (
            lp2.getaddrinfo("127.0.0.1", 80).await.unwrap(),
            lp2.getaddrinfo("::1", 443).await.unwrap(),
            lp2.getaddrinfo("[::1]", 8080).await.unwrap(),
        )
    });
    assert_eq!(v4, [SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 80)]);
    assert_eq!(v6, [SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 443)]);
    assert_eq!(
        bracketed,
        [SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 8080)]
    );
    assert_eq!(lp.executor_threads(), 0, "the numeric fast path");
    lp.close().unwrap();
}

#[test]
fn getaddrinfo_of_localhost_resolves_on_the_pool() {
    let lp = EventLoop::new().unwrap();
    let lp2 = lp.clone();
    let addrs = run_on_real(&lp, async move { lp2.getaddrinfo("localhost", 80).await }).unwrap();
    assert!(!addrs.is_empty());
    assert!(addrs.iter().all(|a| a.port() == 80));
    assert!(
        addrs.iter().any(|a| a.ip().is_loopback()),
        "localhost is a loopback name: {addrs:?}"
    );
    assert_eq!(lp.executor_threads(), 1, "a name goes to the executor");
    lp.close().unwrap();
}
