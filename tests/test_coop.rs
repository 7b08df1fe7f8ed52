//! The cooperative budget (`asyncio::coop`, no CPython twin: tokio's `coop`): a task
//! whose stream reads and drains keep completing without suspending yields after
//! `BUDGET` of them, so timers, other tasks and other connections get their turn; the
//! budget refills at every step; `unconstrained` opts a section out.

mod support_streams;
mod support_transports;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use asyncio::coop::{self, BUDGET};
use asyncio::{EventLoop, StreamReader};
use support_streams::*;
use support_transports::*;

/// Lines fed up front: far more than one budget.
const LINES: usize = 10_000;

fn reader_with_lines(n: usize) -> StreamReader {
    let r = StreamReader::with_limit(64).unwrap();
    for _ in 0..n {
        r.feed_data(b"line\n").unwrap();
    }
    r.feed_eof();
    r
}

/// A task reading `LINES` buffered lines in a loop; the count of lines read so far.
fn spawn_line_loop(lp: &EventLoop, count: Rc<Cell<usize>>) -> asyncio::Task<()> {
    let mut r = reader_with_lines(LINES);
    lp.create_task(async move {
        while let Some(line) = r.next_line().await {
            assert_eq!(line.unwrap(), b"line\n");
            count.set(count.get() + 1);
        }
    })
}

/// The test that fails without the budget: while one task loops over a reader whose
/// lines are all buffered, a callback, a due timer and another task each run after at
/// most one budget's worth of lines, not after the whole buffer.
#[test]
fn a_task_looping_over_a_ready_reader_lets_a_timer_a_callback_and_a_task_run() {
    let (lp, clock) = EventLoop::with_test_clock().unwrap();
    let count = Rc::new(Cell::new(0));
    let looping = spawn_line_loop(&lp, count.clone());
    let seen: Rc<RefCell<Vec<(&str, usize)>>> = Rc::default();
    let (s, c) = (seen.clone(), count.clone());
    let other = lp.create_task(async move { s.borrow_mut().push(("task", c.get())) });
    let (s, c) = (seen.clone(), count.clone());
    lp.call_soon(move || s.borrow_mut().push(("callback", c.get())))
        .unwrap();
    let (s, c) = (seen.clone(), count.clone());
    lp.call_later(Duration::ZERO, move || {
        s.borrow_mut().push(("timer", c.get()))
    })
    .unwrap();
    // A timer that becomes due while the loop runs (the clock moves in a later step).
    let (s, c) = (seen.clone(), count.clone());
    lp.call_later(Duration::from_secs(1), move || {
        s.borrow_mut().push(("later timer", c.get()))
    })
    .unwrap();
    let adv = clock.clone();
    lp.create_task(async move { adv.advance(Duration::from_secs(1)) });
    lp.run_until_complete(asyncio::wait_for(looping, LIMIT))
        .unwrap()
        .unwrap()
        .unwrap();
    lp.run_until_complete(other).unwrap().unwrap();
    assert_eq!(count.get(), LINES);
    let seen = seen.borrow();
    assert_eq!(seen.len(), 4, "all four ran: {seen:?}");
    for (what, lines) in seen.iter() {
        assert!(
            *lines <= 2 * BUDGET as usize,
            "{what} ran only after {lines} of {LINES} ready lines were read"
        );
    }
    lp.close().unwrap();
}

/// The budget refills at every step, and a step gets exactly `BUDGET` ready reads: a
/// ticker task that counts its own steps sees the reader's lines arrive in groups of
/// `BUDGET`, one group per step.
#[test]
fn the_budget_refills_at_every_step_and_is_budget_reads_long() {
    let lp = EventLoop::new().unwrap();
    let ticks = Rc::new(Cell::new(0usize));
    let done = Rc::new(Cell::new(false));
    let (t, d) = (ticks.clone(), done.clone());
    lp.create_task(async move {
        while !d.get() {
            t.set(t.get() + 1);
            asyncio::yield_now().await;
        }
    });
    let mut r = reader_with_lines(LINES);
    let t = ticks.clone();
    let groups = lp
        .run_until_complete(asyncio::wait_for(
            async move {
                // Lines read per ticker value.
                let mut groups: Vec<(usize, usize)> = Vec::new();
                while let Some(line) = r.next_line().await {
                    line.unwrap();
                    match groups.last_mut() {
                        Some((tick, n)) if *tick == t.get() => *n += 1,
                        _ => groups.push((t.get(), 1)),
                    }
                }
                done.set(true);
                groups
            },
            LIMIT,
        ))
        .unwrap()
        .unwrap();
    let full = LINES / BUDGET as usize;
    assert!(groups.len() > full, "{} steps", groups.len());
    // Every step but the last read exactly one budget of lines (the last one: the
    // rest, plus the EOF read).
    for (i, (_, n)) in groups[..groups.len() - 1].iter().enumerate() {
        assert_eq!(*n, BUDGET as usize, "step {i} read {n} lines");
    }
    assert_eq!(groups.iter().map(|g| g.1).sum::<usize>(), LINES);
    lp.close().unwrap();
}

/// `unconstrained` opts a section out: the loop reads the whole buffer in one step,
/// and another task runs only after it.
#[test]
fn unconstrained_reads_the_whole_buffer_in_one_step() {
    let lp = EventLoop::new().unwrap();
    let count = Rc::new(Cell::new(0));
    let c = count.clone();
    let mut r = reader_with_lines(LINES);
    let looping = lp.create_task(coop::unconstrained(async move {
        while let Some(line) = r.next_line().await {
            line.unwrap();
            c.set(c.get() + 1);
        }
    }));
    let c = count.clone();
    let other = lp.create_task(async move { c.get() });
    lp.run_until_complete(looping).unwrap().unwrap();
    assert_eq!(lp.run_until_complete(other).unwrap().unwrap(), LINES);
    // And the budget is back for the next step: the same loop, constrained, yields.
    let count = Rc::new(Cell::new(0));
    let looping = spawn_line_loop(&lp, count.clone());
    let c = count.clone();
    let other = lp.create_task(async move { c.get() });
    lp.run_until_complete(looping).unwrap().unwrap();
    assert!(lp.run_until_complete(other).unwrap().unwrap() <= BUDGET as usize);
    lp.close().unwrap();
}

/// `consume_budget` lets a loop of one's own take part: `BUDGET` calls in a row
/// complete, the next one yields.
#[test]
fn consume_budget_yields_once_the_budget_is_spent() {
    run(async {
        let ticks = Rc::new(Cell::new(0usize));
        let t = ticks.clone();
        let ticker = asyncio::create_task(async move {
            for _ in 0..3 {
                t.set(t.get() + 1);
                asyncio::yield_now().await;
            }
        });
        asyncio::yield_now().await; // a fresh step: a full budget
        let start = ticks.get();
        for _ in 0..BUDGET {
            assert!(coop::has_budget_remaining());
            coop::consume_budget().await;
        }
        assert_eq!(ticks.get(), start, "no yield within the budget");
        assert!(!coop::has_budget_remaining());
        coop::consume_budget().await;
        assert!(
            ticks.get() > start,
            "the ticker ran when the budget was spent"
        );
        ticker.await.unwrap();
    });
}

/// Over a real connection: a task writing and draining in a loop (the socket takes
/// every write, so `drain` never waits) lets another connection's round trip finish
/// long before the loop ends.
#[test]
fn a_write_and_drain_loop_lets_another_connection_be_served() {
    const WRITES: usize = 20_000;
    run(async {
        let (_server, (_flood_r, flood_w), (mut srv_r, srv_w)) = connected(1 << 20).await;
        // The peer of the flood reads everything (its own task).
        let sink = asyncio::create_task(async move {
            let mut n = 0;
            while n < WRITES {
                n += srv_r.read(1 << 16).await.unwrap().len();
            }
            srv_w.close();
        });
        let written = Rc::new(Cell::new(0usize));
        let w = written.clone();
        let flood = asyncio::create_task(async move {
            for _ in 0..WRITES {
                flood_w.write(b"x").unwrap();
                flood_w.drain().await.unwrap();
                w.set(w.get() + 1);
            }
            flood_w
        });
        // Another connection: an echo round trip, meanwhile.
        let (_server2, (mut r2, w2), (mut sr2, sw2)) = connected(1 << 16).await;
        let at_connect = written.get();
        w2.write(b"ping\n").unwrap();
        let line = sr2.readline().await.unwrap();
        sw2.write(&line).unwrap();
        assert_eq!(r2.readline().await.unwrap(), b"ping\n");
        let at_round_trip = written.get();
        assert!(
            at_round_trip < WRITES,
            "the round trip waited for the whole flood ({at_connect} then {at_round_trip})"
        );
        let fw = flood.await.unwrap();
        sink.await.unwrap();
        fw.close();
        w2.close();
        sw2.close();
    });
}

/// Writes spend budget without yielding: a relay that writes each line it reads to 9
/// receivers yields after about `BUDGET / 10` lines, not after `BUDGET` lines.
#[test]
fn writes_spend_budget_so_a_fan_out_relay_yields_sooner() {
    run(async {
        let (_server, (_r, w), (mut peer_r, peer_w)) = connected(1 << 20).await;
        const N: usize = 1000;
        let sink = asyncio::create_task(async move {
            let mut n = 0;
            while n < N * 9 * 5 {
                n += peer_r.read(1 << 16).await.unwrap().len();
            }
            peer_w.close();
        });
        let ticks = Rc::new(Cell::new(0usize));
        let done = Rc::new(Cell::new(false));
        let (t, d) = (ticks.clone(), done.clone());
        let ticker = asyncio::create_task(async move {
            while !d.get() {
                t.set(t.get() + 1);
                asyncio::yield_now().await;
            }
        });
        let mut lines = reader_with_lines(N);
        let mut per_step: Vec<(usize, usize)> = Vec::new();
        while let Some(line) = lines.next_line().await {
            let line = line.unwrap();
            for _ in 0..9 {
                w.write(&line).unwrap();
            }
            match per_step.last_mut() {
                Some((tick, n)) if *tick == ticks.get() => *n += 1,
                _ => per_step.push((ticks.get(), 1)),
            }
        }
        done.set(true);
        let most = per_step.iter().map(|g| g.1).max().unwrap();
        // One read and nine writes per line: 10 units.
        assert!(
            most <= BUDGET as usize / 10 + 1,
            "{most} lines relayed in one step"
        );
        assert_eq!(per_step.iter().map(|g| g.1).sum::<usize>(), N);
        ticker.await.unwrap();
        sink.await.unwrap();
        w.close();
    });
}
