//! `tokio_micro`: micro-benchmarks of a tokio current_thread runtime + LocalSet,
//! the reference for `asyncio_micro` (same JSON keys, same workloads).
//!
//! Prints one JSON object with nanoseconds per operation (wall clock,
//! `std::time::Instant` around each benchmark). Every benchmark runs
//! `MICRO_REPS` times (environment variable, default 2; `bench/run.py --quick`
//! sets 1) and the best run is reported (the first run also pays for growing the
//! heap to hold 1M tasks):
//!
//! * `call_soon` - 1M units of scheduled work run to completion. tokio has no
//!   bare callback queue; the cheapest equivalent of asyncio's
//!   `loop.call_soon(cb)` is `spawn_local` of a trivial future whose JoinHandle
//!   is dropped (fire-and-forget, like a Handle nobody keeps). Each unit bumps
//!   a thread-local counter; the last one wakes the benchmark.
//! * `timers_cancel` - 1M `tokio::time::sleep` futures created, each polled once
//!   so that it is registered in the timer wheel, then all dropped (tokio's
//!   cancellation: dropping a registered Sleep removes it from the wheel).
//!   Equivalent of `call_later` + `TimerHandle.cancel()`.
//! * `timers_fire` - 1M sleeps with deadlines spread evenly over 100..500 ms
//!   from the start, all fired. Each sleep runs in its own spawned task (the
//!   idiomatic way to have 1M independent timers; a single task polling 1M
//!   sleeps would be quadratic), so the figure includes one task spawn per
//!   timer, compare with `tasks`. The wall figure is bounded below by the
//!   500 ms spread (500 ns/op for 1M); `timers_fire_cpu` is the CPU time of
//!   the thread over the same span, i.e. the real cost per timer.
//! * `tasks` - 1M `spawn_local(async {})` created, then every JoinHandle awaited
//!   (asyncio: `create_task` for each, then `gather`).
//! * `xthread_wake` - 100k messages sent from another std thread through
//!   `tokio::sync::mpsc::unbounded_channel`, each received by a task on the
//!   runtime; time from starting the sender thread until all 100k are
//!   received. (asyncio: `call_soon_threadsafe` from a thread.) A receiver that
//!   is already awake drains queued messages without a new wake-up, as
//!   asyncio's loop does with its ready queue.

use std::cell::Cell;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::time::Sleep;

const N: usize = 1_000_000;
const N_XTHREAD: usize = 100_000;
/// Repetitions of each benchmark unless MICRO_REPS says otherwise.
const DEFAULT_REPS: usize = 2;

thread_local! {
    /// Units of work completed in the current benchmark.
    static COUNT: Cell<usize> = const { Cell::new(0) };
}
/// Woken by the unit of work that brings COUNT to its target.
static DONE: Notify = Notify::const_new();

/// Increments COUNT and wakes the benchmark when it reaches `target`.
fn bump(target: usize) {
    let v = COUNT.get() + 1;
    COUNT.set(v);
    if v == target {
        DONE.notify_one();
    }
}

/// CPU time consumed by the calling thread, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes to the timespec we pass it.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn per_op(elapsed: Duration, n: usize) -> f64 {
    elapsed.as_nanos() as f64 / n as f64
}

async fn call_soon() -> f64 {
    COUNT.set(0);
    let t = Instant::now();
    for _ in 0..N {
        // JoinHandle dropped: the task still runs, nobody waits for it.
        drop(tokio::task::spawn_local(async { bump(N) }));
    }
    DONE.notified().await;
    per_op(t.elapsed(), N)
}

async fn timers_cancel() -> f64 {
    let t = Instant::now();
    let base = tokio::time::Instant::now() + Duration::from_secs(3600);
    let mut sleeps: Vec<Pin<Box<Sleep>>> = (0..N)
        .map(|i| {
            Box::pin(tokio::time::sleep_until(
                base + Duration::from_micros(i as u64),
            ))
        })
        .collect();
    // Poll each once so it is actually inserted into the timer wheel.
    poll_fn(|cx| {
        for s in sleeps.iter_mut() {
            let _ = s.as_mut().poll(cx);
        }
        Poll::Ready(())
    })
    .await;
    drop(sleeps);
    per_op(t.elapsed(), N)
}

async fn timers_fire() -> (f64, f64) {
    COUNT.set(0);
    let t = Instant::now();
    let cpu = thread_cpu_ns();
    let base = tokio::time::Instant::now() + Duration::from_millis(100);
    let spread_ns = 400_000_000u64;
    for i in 0..N {
        let deadline = base + Duration::from_nanos(spread_ns * i as u64 / N as u64);
        drop(tokio::task::spawn_local(async move {
            tokio::time::sleep_until(deadline).await;
            bump(N);
        }));
    }
    DONE.notified().await;
    let wall = per_op(t.elapsed(), N);
    let cpu = (thread_cpu_ns() - cpu) as f64 / N as f64;
    (wall, cpu)
}

async fn tasks() -> f64 {
    let t = Instant::now();
    let handles: Vec<_> = (0..N).map(|_| tokio::task::spawn_local(async {})).collect();
    for h in handles {
        h.await.expect("task");
    }
    per_op(t.elapsed(), N)
}

async fn xthread_wake() -> f64 {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
    let t = Instant::now();
    let sender = std::thread::spawn(move || {
        for i in 0..N_XTHREAD as u32 {
            tx.send(i).expect("receiver alive");
        }
    });
    let received = tokio::task::spawn_local(async move {
        let mut got = 0;
        while got < N_XTHREAD {
            match rx.recv().await {
                Some(_) => got += 1,
                None => break,
            }
        }
        got
    })
    .await
    .expect("receiver task");
    let elapsed = t.elapsed();
    sender.join().expect("sender thread");
    assert_eq!(received, N_XTHREAD);
    per_op(elapsed, N_XTHREAD)
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    let r = local.block_on(&rt, async {
        let (mut call_soon_ns, mut cancel, mut fire, mut fire_cpu, mut tasks_ns, mut xthread) =
            (f64::MAX, f64::MAX, f64::MAX, f64::MAX, f64::MAX, f64::MAX);
        let reps = std::env::var("MICRO_REPS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_REPS)
            .clamp(1, 10);
        for _ in 0..reps {
            call_soon_ns = call_soon_ns.min(call_soon().await);
            cancel = cancel.min(timers_cancel().await);
            let (wall, cpu) = timers_fire().await;
            fire = fire.min(wall);
            fire_cpu = fire_cpu.min(cpu);
            tasks_ns = tasks_ns.min(tasks().await);
            xthread = xthread.min(xthread_wake().await);
        }
        format!(
            "{{\"runtime\":\"tokio\",\"n\":{N},\"n_xthread\":{N_XTHREAD},\"call_soon\":{call_soon_ns:.1},\
             \"timers_cancel\":{cancel:.1},\"timers_fire\":{fire:.1},\"timers_fire_cpu\":{fire_cpu:.1},\
             \"tasks\":{tasks_ns:.1},\"xthread_wake\":{xthread:.1}}}"
        )
    });
    println!("{r}");
}
