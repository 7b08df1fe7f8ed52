//! Step 3 of 7: a Future, resolved by a timer, and awaited.
//!
//! A `Future<T>` is a slot for a value that does not exist yet. Whoever produces the
//! value calls `set_result` (or `set_exception`, or `cancel`); whoever needs it either
//! registers a done callback or `.await`s it. The producer and the consumer no longer
//! need to know each other: this is what the callback chain of `01_call_soon` lacked.
//!
//! ```sh
//! cargo run --example 03_future
//! ASYNCIO_DEBUG=1 cargo run --example 03_future   # see the task woken by set_result
//! ```
//!
//! The pain it ends on: `.await` reads top to bottom, but one `async` block does one
//! thing at a time. Two independent 50 ms waits take 100 ms. `04_task` runs them
//! concurrently.
//!
//! Read with it: docs/04-futures.md.

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use asyncio::{Error, EventLoop, Future};

/// A future that a timer resolves with `value` after `ms` milliseconds: the stand-in
/// for "a reply that arrives later" (a socket read, a database answer...).
fn later<T: 'static>(lp: &EventLoop, ms: u64, value: T) -> asyncio::Result<Future<T>> {
    let fut = lp.create_future();
    let f = fut.clone();
    lp.call_later(Duration::from_millis(ms), move || {
        // The producer's side. `set_result` on a future that is already done (say,
        // cancelled meanwhile) is an InvalidStateError: ignore it here.
        let _ = f.set_result(value);
    })?;
    Ok(fut)
}

fn main() -> asyncio::Result<()> {
    common::init_logging();
    let lp = EventLoop::new()?;

    // --- 1. Done callbacks. ------------------------------------------------------------
    let fut = later(&lp, 10, 21u32)?;
    fut.add_done_callback(|f| println!("done callback: the future holds {:?}", f.result()));
    // run_until_complete drives the loop until the future is done and returns its value.
    let n = lp.run_until_complete(fut.clone())??;
    println!("run_until_complete(fut) returned {n}");

    // A done callback added to a future that is ALREADY done is still not called right
    // away: it is scheduled with call_soon, like every other done callback. Code after
    // add_done_callback can rely on the callback not having run yet.
    let called = Rc::new(Cell::new(false));
    let c = called.clone();
    fut.add_done_callback(move |_| c.set(true));
    assert!(!called.get(), "never synchronous");
    lp.run_until_complete(asyncio::yield_now())?; // one more iteration
    assert!(called.get());
    println!("a done callback on a finished future ran one iteration later");

    // --- 2. Errors and cancellation travel through the same slot. ----------------------
    let failed: Future<u32> = lp.create_future();
    failed.set_exception(Error::value("no such user"))?;
    println!(
        "awaiting a failed future gives {:?}",
        lp.run_until_complete(failed)?
    );
    let cancelled: Future<u32> = lp.create_future();
    cancelled.cancel();
    let r = lp.run_until_complete(cancelled)?;
    assert!(matches!(r, Err(Error::Cancelled)));
    println!("awaiting a cancelled future gives {r:?}");

    // --- 3. The callback chain of 01_call_soon, rewritten with .await. -----------------
    // Each `.await` parks this code until the future is done; the loop runs other things
    // meanwhile. The state (`n`) is an ordinary local variable again.
    let l = lp.clone();
    let t0 = Instant::now();
    let doubled = lp.run_until_complete(async move {
        let n = later(&l, 50, 21)?.await?; // "read" a number: 50 ms
        let doubled = later(&l, 50, n * 2)?.await?; // "compute" on it: another 50 ms
        Ok::<_, Error>(doubled)
    })??;
    let took = t0.elapsed();
    println!("21 doubled is {doubled}, after {} ms", took.as_millis());
    assert_eq!(doubled, 42);
    // The pain: the two waits ran one after the other (about 100 ms, never less).
    assert!(took >= Duration::from_millis(100));
    lp.close()
}
