//! Step 2 of 7: timers.
//!
//! `call_later(delay, f)` puts `f` in the loop's timer heap, keyed by its deadline.
//! Each iteration the loop asks the heap for the earliest deadline, sleeps in the I/O
//! poll at most until then, and moves every timer that is due to the ready queue, where
//! it runs like any `call_soon` callback.
//!
//! ```sh
//! cargo run --example 02_call_later
//! ASYNCIO_DEBUG=1 cargo run --example 02_call_later   # see the poll timeouts shrink
//! ```
//!
//! The pain it ends on: a timer can start work later, but nothing can *wait* for it.
//! To use a value that a timer produces, the code that needs the value has to be put
//! inside the timer's callback. `03_future` gives the value a place to land.
//!
//! Read with it: docs/03-handles-and-timers.md.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use asyncio::EventLoop;

fn main() -> asyncio::Result<()> {
    common::init_logging();
    let lp = EventLoop::new()?;
    let start = lp.time();
    let fired: Rc<RefCell<Vec<&'static str>>> = Rc::default();

    // A helper that schedules a timer which prints its name and the time it ran.
    let at = |ms: u64, name: &'static str| -> asyncio::Result<asyncio::TimerHandle> {
        let (l, fired) = (lp.clone(), fired.clone());
        lp.call_later(Duration::from_millis(ms), move || {
            let elapsed = (l.time() - start).as_millis();
            println!("{elapsed:>4} ms  timer {name} ({ms} ms) fired");
            fired.borrow_mut().push(name);
        })
    };

    // --- 1. Deadline order, not scheduling order. --------------------------------------
    at(30, "slow")?;
    at(10, "fast")?;

    // --- 2. Equal deadlines fire in the order they were scheduled (FIFO). The heap key
    // is (deadline, sequence number), so ties are broken by who came first.
    at(20, "tie-1")?;
    at(20, "tie-2")?;
    at(20, "tie-3")?;

    // --- 3. A cancelled timer never fires. Cancelling is O(1): the timer is only
    // marked; the loop throws it away when it reaches the top of the heap (or rebuilds
    // the heap when more than half of a big heap is cancelled).
    let doomed = at(15, "cancelled")?;
    doomed.cancel();

    // --- 4. call_at takes an absolute deadline on the loop's clock. A timer's deadline
    // is never early: it runs in the first iteration at or after `when`.
    let l = lp.clone();
    lp.call_at(start + Duration::from_millis(40), move || {
        println!(
            "{:>4} ms  call_at(start + 40 ms): stopping",
            (l.time() - start).as_millis()
        );
        l.stop();
    })?;

    // Between timers, the loop sleeps inside the poll (epoll_wait) for exactly as long
    // as the next deadline allows: no busy waiting. ASYNCIO_DEBUG=1 shows each timeout.
    lp.run_forever()?;
    lp.close()?;
    assert_eq!(*fired.borrow(), ["fast", "tie-1", "tie-2", "tie-3", "slow"]);

    // --- 5. The same heap on a virtual clock: a one-hour timer, no waiting. -----------
    // With nothing else to do, a test-clock loop jumps straight to the next deadline.
    // This is how the crate's own tests check timeouts without sleeping.
    let (lp, _clock) = EventLoop::with_test_clock()?;
    let start = lp.time();
    let l = lp.clone();
    lp.call_later(Duration::from_secs(3600), move || l.stop())?;
    lp.run_forever()?;
    println!(
        "virtual clock: a one-hour timer fired after {:?} of loop time",
        lp.time() - start
    );
    assert_eq!(lp.time() - start, Duration::from_secs(3600));
    lp.close()
}
