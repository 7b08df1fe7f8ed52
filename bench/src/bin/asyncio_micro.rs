//! `asyncio_micro`: micro-benchmarks of the `asyncio` crate's event loop, the twin
//! of `tokio_micro` (same JSON keys, same counts, same reporting).
//!
//! Prints one JSON object with nanoseconds per operation (wall clock,
//! `std::time::Instant` around each benchmark). Every benchmark runs
//! `MICRO_REPS` times (environment variable, default 2; `bench/run.py --quick`
//! sets 1) and the best run is reported (the first run also pays for growing the
//! ready queue, the timer heap and the task slab to a million entries).
//!
//! Everything runs inside one `asyncio::run` (the twin of tokio_micro's
//! `LocalSet::block_on`): the benchmarks are steps of the main task, and they
//! wait for their work the way tokio_micro does, by awaiting a completion
//! signal (here an `asyncio::Future<()>` kept in a thread-local, as tokio_micro
//! keeps a static `Notify`, so the scheduled closures capture nothing).
//!
//! How each workload maps to tokio_micro's:
//!
//! * `call_soon` - 1M `EventLoop::call_soon(cb)` whose `Handle` is dropped, all
//!   run to completion. This is asyncio's bare callback queue; tokio has none,
//!   so tokio_micro spawns a trivial task per unit instead (its cheapest
//!   equivalent). Each callback bumps a thread-local counter; the last one
//!   completes the future the benchmark awaits.
//! * `timers_cancel` - 1M `EventLoop::call_later(1 h + i µs, cb)`, every
//!   `TimerHandle` kept, then each one `cancel()`ed, the handles dropped, and
//!   the loop run (one `yield_now` per iteration) until its heap is empty:
//!   asyncio cancels lazily, and the first iteration after more than half of
//!   the heap is cancelled rebuilds it without them. tokio_micro registers 1M
//!   `Sleep`s in the timer wheel and drops them (its cancellation removes each
//!   from the wheel at once). Both figures include freeing the timers.
//! * `timers_fire` - 1M `EventLoop::call_at(deadline, cb)` with deadlines spread
//!   evenly over 100..500 ms from one start instant, all fired; each callback
//!   bumps the counter and the last one completes the awaited future.
//!   `call_at` rather than `call_later`: `call_later(d)` is `call_at(time() + d)`,
//!   and computing every deadline from one instant, as tokio_micro's
//!   `sleep_until` does, keeps the time spent scheduling the first timers from
//!   pushing the last deadlines later. tokio has no callback timers, so
//!   tokio_micro spawns one task per timer that awaits a `Sleep`: its figure
//!   includes a task spawn per timer, this one does not (compare with `tasks`).
//!   The wall figure is bounded below by the 500 ms spread (500 ns/op for 1M);
//!   `timers_fire_cpu` is the CPU time of the thread over the same span, the
//!   real cost per timer, measured exactly as tokio_micro does.
//! * `tasks` - 1M `asyncio::create_task(async {})` (the free function, which
//!   finds the running loop in a thread-local as tokio's `spawn_local` finds
//!   its LocalSet), then every `Task` awaited in creation order, as tokio_micro
//!   awaits every `JoinHandle`.
//! * `xthread_wake` - 100k `ThreadsafeHandle::call_soon_threadsafe(cb)` from
//!   another std thread, each callback run on the loop (it bumps the counter;
//!   the last one completes the awaited future); time from starting the sender
//!   thread until all 100k have run. tokio_micro sends 100k messages through an
//!   unbounded mpsc channel to a task. In both, a loop that is already awake
//!   takes everything queued so far without a new wake-up.

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use asyncio::{EventLoop, Future};

const N: usize = 1_000_000;
const N_XTHREAD: usize = 100_000;
/// Repetitions of each benchmark unless MICRO_REPS says otherwise.
const DEFAULT_REPS: usize = 2;
/// Upper bound on the loop iterations `timers_cancel` waits for the purge.
const MAX_PURGE_ITERATIONS: usize = 1_000;

thread_local! {
    /// Units of work completed in the current benchmark.
    static COUNT: Cell<usize> = const { Cell::new(0) };
    /// Completed by the unit of work that brings COUNT to its target.
    static DONE: RefCell<Option<Future<()>>> = const { RefCell::new(None) };
    /// Set if a cancelled timer ever runs (it must not).
    static FIRED: Cell<bool> = const { Cell::new(false) };
}

/// Increments COUNT and completes DONE when it reaches `target`.
fn bump(target: usize) {
    let v = COUNT.get() + 1;
    COUNT.set(v);
    if v == target {
        if let Some(done) = DONE.with(|d| d.borrow_mut().take()) {
            done.set_result(()).expect("DONE completed once");
        }
    }
}

/// Resets COUNT and arms DONE; returns the future to await.
fn arm(lp: &EventLoop) -> Future<()> {
    COUNT.set(0);
    let done = lp.create_future::<()>();
    DONE.with(|d| *d.borrow_mut() = Some(done.clone()));
    done
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

async fn call_soon(lp: &EventLoop) -> f64 {
    let done = arm(lp);
    let t = Instant::now();
    for _ in 0..N {
        // Handle dropped: the callback still runs, nobody can cancel it.
        drop(lp.call_soon(|| bump(N)).expect("loop open"));
    }
    done.await.expect("all callbacks ran");
    per_op(t.elapsed(), N)
}

async fn timers_cancel(lp: &EventLoop) -> f64 {
    FIRED.set(false);
    let t = Instant::now();
    let handles: Vec<_> = (0..N)
        .map(|i| {
            let delay = Duration::from_secs(3600) + Duration::from_micros(i as u64);
            lp.call_later(delay, || FIRED.set(true)).expect("loop open")
        })
        .collect();
    for h in &handles {
        h.cancel();
    }
    drop(handles);
    // The next iteration sees more than half of the heap cancelled and rebuilds it.
    let mut iterations = 0;
    while lp.scheduled_timer_count() > 0 && iterations < MAX_PURGE_ITERATIONS {
        asyncio::yield_now().await;
        iterations += 1;
    }
    let elapsed = t.elapsed();
    assert_eq!(lp.scheduled_timer_count(), 0, "heap not purged");
    assert!(!FIRED.get(), "a cancelled timer ran");
    per_op(elapsed, N)
}

async fn timers_fire(lp: &EventLoop) -> (f64, f64) {
    let done = arm(lp);
    let t = Instant::now();
    let cpu = thread_cpu_ns();
    let base = lp.time() + Duration::from_millis(100);
    let spread_ns = 400_000_000u64;
    for i in 0..N {
        let deadline = base + Duration::from_nanos(spread_ns * i as u64 / N as u64);
        drop(lp.call_at(deadline, || bump(N)).expect("loop open"));
    }
    done.await.expect("all timers fired");
    let wall = per_op(t.elapsed(), N);
    let cpu = (thread_cpu_ns() - cpu) as f64 / N as f64;
    (wall, cpu)
}

async fn tasks() -> f64 {
    let t = Instant::now();
    let handles: Vec<_> = (0..N).map(|_| asyncio::create_task(async {})).collect();
    for h in handles {
        h.await.expect("task");
    }
    per_op(t.elapsed(), N)
}

async fn xthread_wake(lp: &EventLoop) -> f64 {
    let done = arm(lp);
    let handle = lp.threadsafe_handle();
    let t = Instant::now();
    let sender = std::thread::spawn(move || {
        for i in 0..N_XTHREAD as u32 {
            handle
                .call_soon_threadsafe(move || {
                    std::hint::black_box(i);
                    bump(N_XTHREAD);
                })
                .expect("loop open");
        }
    });
    done.await.expect("all calls ran");
    let elapsed = t.elapsed();
    sender.join().expect("sender thread");
    assert_eq!(COUNT.get(), N_XTHREAD);
    per_op(elapsed, N_XTHREAD)
}

fn main() {
    let r = asyncio::run(async {
        let lp = asyncio::get_running_loop().expect("inside asyncio::run");
        let (mut call_soon_ns, mut cancel, mut fire, mut fire_cpu, mut tasks_ns, mut xthread) =
            (f64::MAX, f64::MAX, f64::MAX, f64::MAX, f64::MAX, f64::MAX);
        let reps = std::env::var("MICRO_REPS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_REPS)
            .clamp(1, 10);
        for _ in 0..reps {
            call_soon_ns = call_soon_ns.min(call_soon(&lp).await);
            cancel = cancel.min(timers_cancel(&lp).await);
            let (wall, cpu) = timers_fire(&lp).await;
            fire = fire.min(wall);
            fire_cpu = fire_cpu.min(cpu);
            tasks_ns = tasks_ns.min(tasks().await);
            xthread = xthread.min(xthread_wake(&lp).await);
        }
        format!(
            "{{\"runtime\":\"asyncio\",\"n\":{N},\"n_xthread\":{N_XTHREAD},\"call_soon\":{call_soon_ns:.1},\
             \"timers_cancel\":{cancel:.1},\"timers_fire\":{fire:.1},\"timers_fire_cpu\":{fire_cpu:.1},\
             \"tasks\":{tasks_ns:.1},\"xthread_wake\":{xthread:.1}}}"
        )
    })
    .expect("asyncio::run");
    println!("{r}");
}
