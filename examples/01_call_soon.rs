//! Step 1 of 7: callbacks and the ready queue.
//!
//! An event loop is, at heart, a queue of callbacks. `call_soon(f)` appends `f` to the
//! back of the ready queue; each iteration of the loop runs the callbacks that were in
//! the queue when the iteration began, front to back. That is all this example uses.
//!
//! ```sh
//! cargo run --example 01_call_soon
//! ASYNCIO_DEBUG=1 cargo run --example 01_call_soon   # the loop narrates each iteration
//! ```
//!
//! The pain it ends on: a sequence of steps written as callbacks becomes a chain of
//! closures, each scheduling the next, with the state threaded through by hand.
//! `02_call_later` adds time; `03_future` and `04_task` take the pain away.
//!
//! Read with it: docs/02-the-loop.md (one iteration, line by line).

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use asyncio::EventLoop;

fn main() -> asyncio::Result<()> {
    common::init_logging();
    let lp = EventLoop::new()?;

    // A shared log of what ran, so the example can check its own claims at the end.
    let ran: Rc<RefCell<Vec<String>>> = Rc::default();
    let note = {
        let ran = ran.clone();
        move |s: String| {
            println!("{s}");
            ran.borrow_mut().push(s);
        }
    };

    // --- 1. FIFO: callbacks run in the order they were scheduled. ----------------------
    for name in ["a", "b", "c"] {
        let note = note.clone();
        lp.call_soon(move || note(format!("iteration 1: callback {name}")))?;
    }

    // --- 2. A callback that schedules another: the new one waits for the NEXT
    // iteration, even though the queue is being drained right now. This is asyncio's
    // `ntodo` snapshot: one iteration runs only what was ready when it began, so a
    // callback that keeps rescheduling itself cannot starve timers or I/O.
    {
        let note = note.clone();
        let l = lp.clone();
        lp.call_soon(move || {
            note("iteration 1: callback d schedules e".to_string());
            let note = note.clone();
            l.call_soon(move || note("iteration 2: callback e (scheduled by d)".to_string()))
                .expect("the loop is open");
        })?;
    }

    // --- 3. A cancelled handle never runs. ---------------------------------------------
    let h = {
        let note = note.clone();
        lp.call_soon(move || note("never printed".to_string()))?
    };
    h.cancel();

    // --- 4. The pain: three dependent steps as a callback chain. -----------------------
    // "Read a number, double it, print it" -- where each step would, in real code, wait
    // for something. Every step must know the next one, the state (`n`) is passed by
    // hand, and the last one must remember to stop the loop.
    {
        let note = note.clone();
        let l = lp.clone();
        lp.call_soon(move || {
            let n = 21; // step 1: "read" a number
            let l2 = l.clone();
            l.call_soon(move || {
                let doubled = n * 2; // step 2: double it
                let l3 = l2.clone();
                l2.call_soon(move || {
                    // step 3: report it, and end the program
                    note(format!("callback chain: 21 doubled is {doubled}"));
                    l3.stop();
                })
                .expect("the loop is open");
            })
            .expect("the loop is open");
        })?;
    }

    // run_forever runs iterations until some callback calls stop().
    lp.run_forever()?;
    lp.close()?;

    // The example checks what it claims (so CI notices if it ever stops being true).
    let ran = ran.borrow();
    assert_eq!(
        ran[..3],
        [
            "iteration 1: callback a",
            "iteration 1: callback b",
            "iteration 1: callback c"
        ]
    );
    assert!(ran.iter().any(|s| s.starts_with("iteration 2")));
    assert!(!ran.iter().any(|s| s == "never printed"));
    assert_eq!(
        ran.last().map(String::as_str),
        Some("callback chain: 21 doubled is 42")
    );
    Ok(())
}
