//! Step 4 of 7: tasks, and concurrency on one thread.
//!
//! A task wraps an `async` block and lets the loop drive it: the loop polls it once
//! (one "step"); when the block reaches an `.await` that is not ready, the step ends and
//! the loop is free to run other things. When the awaited thing is done, it wakes the
//! task, which queues its next step. Two tasks waiting at the same time wait
//! *concurrently*: the two 50 ms waits of `03_future` now take 50 ms, not 100.
//!
//! ```sh
//! cargo run --example 04_task
//! ASYNCIO_DEBUG=1 cargo run --example 04_task   # see "step of ping" / "step of pong"
//! ```
//!
//! The pain it ends on: everything so far waits on timers the program set itself. Real
//! programs wait on the network. `05_echo_protocol` brings in sockets.
//!
//! Read with it: docs/05-tasks-and-wakers.md.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use asyncio::{Error, EventLoop};

/// Prints when dropped: shows that cancelling a task drops its future.
struct Noisy(&'static str);

impl Drop for Noisy {
    fn drop(&mut self) {
        println!("  drop: {} (its task's future was dropped)", self.0);
    }
}

fn main() -> asyncio::Result<()> {
    common::init_logging();
    let lp = EventLoop::new()?;
    let order: Rc<RefCell<Vec<String>>> = Rc::default();

    // --- 1. Two tasks interleaving. ----------------------------------------------------
    // Each prints, then sleeps 10 ms, three times. `ping` starts first; both sleep at the
    // same moments, so their steps alternate: ping, pong, ping, pong...
    let player = |name: &'static str, order: Rc<RefCell<Vec<String>>>| async move {
        for i in 1..=3 {
            println!("{name} {i}");
            order.borrow_mut().push(format!("{name} {i}"));
            asyncio::sleep(Duration::from_millis(10)).await;
        }
        name.len()
    };
    let t0 = Instant::now();
    let l = lp.clone();
    let o = order.clone();
    let total = lp.run_until_complete(async move {
        let ping = l.create_task(player("ping", o.clone()));
        ping.set_name("ping");
        let pong = l.create_task(player("pong", o));
        pong.set_name("pong");
        // Both tasks are already scheduled; awaiting them just collects their outputs.
        Ok::<_, Error>(ping.await? + pong.await?)
    })??;
    let took = t0.elapsed();
    println!(
        "both done: {total}, after {} ms (three 10 ms sleeps each)",
        took.as_millis()
    );
    assert_eq!(
        *order.borrow(),
        ["ping 1", "pong 1", "ping 2", "pong 2", "ping 3", "pong 3"]
    );

    // --- 2. The two waits of 03_future, now concurrent. --------------------------------
    let l = lp.clone();
    let t0 = Instant::now();
    let (a, b) = lp.run_until_complete(async move {
        let slow_read = l.create_task(async {
            asyncio::sleep(Duration::from_millis(50)).await;
            21
        });
        let slow_compute = l.create_task(async {
            asyncio::sleep(Duration::from_millis(50)).await;
            2
        });
        Ok::<_, Error>((slow_read.await?, slow_compute.await?))
    })??;
    println!(
        "{a} x {b} = {}, after {} ms (not 100)",
        a * b,
        t0.elapsed().as_millis()
    );

    // --- 3. Cancellation is drop. ------------------------------------------------------
    // asyncio throws CancelledError into the coroutine; Rust cannot resume a suspended
    // async block with an error, so the task's future is dropped at its next step
    // instead. Destructors (here `Noisy`) are how the block notices.
    let l = lp.clone();
    let outcome = lp.run_until_complete(async move {
        let sleeper = l.create_task(async {
            let _guard = Noisy("the sleeper's guard");
            asyncio::sleep(Duration::from_secs(3600)).await;
            "woke up" // never reached
        });
        asyncio::yield_now().await; // let the sleeper start and reach its sleep
        println!("cancel() -> {}", sleeper.cancel());
        sleeper.await
    })?;
    println!("awaiting the cancelled task gives {outcome:?}");
    assert!(matches!(outcome, Err(Error::Cancelled)));

    // --- 4. Dropping a Task handle does NOT cancel: the loop owns the task. ------------
    let l = lp.clone();
    let done = Rc::new(RefCell::new(false));
    let d = done.clone();
    lp.run_until_complete(async move {
        drop(l.create_task(async move {
            asyncio::sleep(Duration::from_millis(5)).await;
            *d.borrow_mut() = true;
        }));
        asyncio::sleep(Duration::from_millis(20)).await;
    })?;
    println!("a detached task finished on its own: {}", done.borrow());
    assert!(*done.borrow());
    lp.close()
}
