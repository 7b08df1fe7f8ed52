//! Happy Eyeballs (CPython's `test_staggered.py` and the `happy_eyeballs_delay` cases
//! of `test_base_events.py`): `staggered_race` on the TestClock with fake attempts
//! (start order, the delay, a failure starting the next at once, losers dropped, every
//! error kept), and `create_connection` with `happy_eyeballs_delay` over loopback.

mod support_transports;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use asyncio::staggered::staggered_race;
use asyncio::{Address, ConnectOptions, Error, EventLoop, ExtraInfo, Transport};
use support_transports::*;

const ECHO: Behaviour = Behaviour {
    keep_open: false,
    pause_in_made: false,
    echo: true,
    panic_on_data: false,
};

fn peername(t: &Rc<dyn Transport>) -> SocketAddr {
    match t.get_extra_info("peername") {
        Some(ExtraInfo::Address(Address::Inet(a))) => a,
        other => panic!("no peername: {other:?}"),
    }
}

// ----- Happy Eyeballs -----------------------------------------------------------------

type Log = Rc<RefCell<Vec<String>>>;

/// Records its drop: an attempt that lost the race is dropped (cancelled).
struct OnDrop(Log, usize);

impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.borrow_mut().push(format!("drop {}", self.1));
    }
}

/// A fake connect attempt: starts (logged), sleeps `after` on the loop's clock, then
/// succeeds or fails; `None` never finishes.
fn attempt(
    log: &Log,
    i: usize,
    after: Option<u64>,
    ok: bool,
) -> impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = asyncio::Result<usize>>>> {
    let log = log.clone();
    move || {
        Box::pin(async move {
            log.borrow_mut().push(format!("start {i}"));
            let _guard = OnDrop(log.clone(), i);
            let Some(ms) = after else {
                std::future::pending::<()>().await;
                unreachable!()
            };
            asyncio::sleep(Duration::from_millis(ms)).await;
            if ok {
                log.borrow_mut().push(format!("ok {i}"));
                Ok(i)
            } else {
                log.borrow_mut().push(format!("fail {i}"));
                Err(Error::Io(std::io::Error::from_raw_os_error(111)))
            }
        })
    }
}

fn on_test_clock<T: 'static>(f: impl std::future::Future<Output = T> + 'static) -> T {
    let (lp, _clock) = EventLoop::with_test_clock().unwrap();
    let r = lp.run_until_complete(f).unwrap();
    lp.close().unwrap();
    r
}

#[test]
fn staggered_race_starts_the_next_after_the_delay_and_drops_the_losers() {
    let log: Log = Default::default();
    let l = log.clone();
    let race = on_test_clock(async move {
        // 0 hangs; 1 starts after the delay (250 ms) and wins after 100 ms; 2 would
        // start at 500 ms but 1 has won by then.
        let attempts = vec![
            attempt(&l, 0, None, true),
            attempt(&l, 1, Some(100), true),
            attempt(&l, 2, Some(1), true),
        ];
        staggered_race(attempts, Some(Duration::from_millis(250))).await
    });
    assert_eq!(race.winner, Some(1));
    assert_eq!(race.result, Some(1));
    assert_eq!(race.errors.len(), 2);
    assert!(race.errors.iter().all(Option::is_none));
    assert_eq!(
        *log.borrow(),
        ["start 0", "start 1", "ok 1", "drop 1", "drop 0"]
    );
}

#[test]
fn a_failure_starts_the_next_attempt_at_once() {
    let log: Log = Default::default();
    let l = log.clone();
    let race = on_test_clock(async move {
        // 0 hangs; 1 starts at 250 ms and fails 10 ms later, so 2 starts at once (not
        // at 500 ms) and wins 100 ms later, before 3's turn (at 510 ms) comes.
        let attempts = vec![
            attempt(&l, 0, None, true),
            attempt(&l, 1, Some(10), false),
            attempt(&l, 2, Some(100), true),
            attempt(&l, 3, None, true),
        ];
        staggered_race(attempts, Some(Duration::from_millis(250))).await
    });
    assert_eq!(race.winner, Some(2));
    assert_eq!(race.errors.len(), 3);
    assert!(race.errors[1].is_some());
    assert_eq!(
        *log.borrow(),
        ["start 0", "start 1", "fail 1", "drop 1", "start 2", "ok 2", "drop 2", "drop 0"]
    );
}

#[test]
fn without_a_delay_attempts_run_one_after_the_other_and_all_errors_are_kept() {
    let log: Log = Default::default();
    let l = log.clone();
    let race = on_test_clock(async move {
        let attempts = vec![
            attempt(&l, 0, Some(1000), false),
            attempt(&l, 1, Some(1000), false),
        ];
        staggered_race(attempts, None).await
    });
    assert_eq!(race.winner, None);
    assert!(race.result.is_none());
    assert_eq!(race.errors.len(), 2);
    assert!(race.errors.iter().all(Option::is_some));
    assert_eq!(
        *log.borrow(),
        ["start 0", "fail 0", "drop 0", "start 1", "fail 1", "drop 1"]
    );
}

#[test]
fn an_empty_race_has_no_winner() {
    let race = on_test_clock(async move {
        staggered_race(
            Vec::<fn() -> std::future::Ready<asyncio::Result<()>>>::new(),
            None,
        )
        .await
    });
    assert!(race.winner.is_none() && race.errors.is_empty());
}

#[test]
fn happy_eyeballs_connects_past_a_refused_address() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        // "localhost" resolves to ::1 and 127.0.0.1 here (either order); the server
        // listens on 127.0.0.1 only, so the IPv6 attempt is refused and the IPv4 one
        // wins, whichever comes first.
        let (server, port, acc) = recorder_server(ECHO).await;
        let opts = ConnectOptions {
            happy_eyeballs_delay: Some(Duration::from_millis(250)),
            timeout: Some(LIMIT),
            ..Default::default()
        };
        let (t, _p) = lp
            .create_connection(Recorder::default, "localhost", port, opts)
            .await
            .unwrap();
        assert!(peername(&t).is_ipv4());
        acc.nth(0).await;
        t.close();
        server.close();
    });
}
