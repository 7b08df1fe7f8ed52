//! Signals on the loop: the signal cases of CPython's `test_unix_events.py`
//! (`SelectorEventLoopSignalTests`), `asyncio.run`'s Ctrl-C (`test_runners.py`), and a
//! graceful shutdown on SIGTERM.
//!
//! Signal dispositions are process-wide, so this file runs without libtest's harness
//! (`harness = false` in Cargo.toml): `main` runs the cases one after the other, on the
//! main thread (which `asyncio::run`'s Ctrl-C handling needs). The cases that end the
//! process (a default action) run in a child: this binary again, with an environment
//! variable naming the case. Only SIGUSR1, SIGUSR2, SIGHUP, SIGTERM and SIGINT are used.

use std::cell::{Cell, RefCell};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::Duration;

use asyncio::signal::{SIGHUP, SIGINT, SIGKILL, SIGSEGV, SIGSTOP, SIGTERM, SIGUSR1, SIGUSR2};
use asyncio::{Error, EventLoop};
use signal_hook::low_level::raise;

const CHILD: &str = "ASYNCIO_TEST_SIGNALS_CHILD";

/// Run the loop until `done` is true (at most `n` iterations of a 1 ms poll, never
/// asserting a time: the bound only keeps a broken case from hanging).
fn run_until(lp: &EventLoop, done: impl Fn() -> bool) {
    for _ in 0..5000 {
        if done() {
            return;
        }
        lp.run_until_complete(asyncio::sleep(Duration::from_millis(1)))
            .unwrap();
    }
    panic!("the condition did not become true");
}

fn counter() -> Rc<Cell<u32>> {
    Rc::new(Cell::new(0))
}

fn add_signal_handler_runs_on_the_loop_not_in_signal_context() {
    let lp = EventLoop::new().unwrap();
    let calls = counter();
    let on_loop = Rc::new(Cell::new(false));
    let (c, o) = (calls.clone(), on_loop.clone());
    lp.add_signal_handler(SIGUSR1, move || {
        c.set(c.get() + 1);
        o.set(asyncio::get_running_loop().is_ok());
    })
    .unwrap();
    raise(SIGUSR1).unwrap();
    // The signal handler only wrote a byte: nothing ran yet.
    assert_eq!(calls.get(), 0);
    run_until(&lp, || calls.get() == 1);
    assert!(on_loop.get(), "the callback ran outside the loop");
    // Once per delivery.
    raise(SIGUSR1).unwrap();
    run_until(&lp, || calls.get() == 2);
    assert!(lp.remove_signal_handler(SIGUSR1).unwrap());
    lp.close().unwrap();
}

fn two_signals_each_reach_their_own_handler() {
    let lp = EventLoop::new().unwrap();
    let seen = Rc::new(RefCell::new(Vec::new()));
    for sig in [SIGUSR1, SIGUSR2] {
        let s = seen.clone();
        lp.add_signal_handler(sig, move || s.borrow_mut().push(sig))
            .unwrap();
    }
    raise(SIGUSR2).unwrap();
    run_until(&lp, || seen.borrow().len() == 1);
    raise(SIGUSR1).unwrap();
    run_until(&lp, || seen.borrow().len() == 2);
    assert_eq!(*seen.borrow(), [SIGUSR2, SIGUSR1]);
    lp.close().unwrap();
}

fn a_second_add_replaces_the_first() {
    let lp = EventLoop::new().unwrap();
    let (first, second) = (counter(), counter());
    let f = first.clone();
    lp.add_signal_handler(SIGUSR1, move || f.set(f.get() + 1))
        .unwrap();
    let s = second.clone();
    lp.add_signal_handler(SIGUSR1, move || s.set(s.get() + 1))
        .unwrap();
    raise(SIGUSR1).unwrap();
    run_until(&lp, || second.get() == 1);
    assert_eq!(first.get(), 0);
    lp.close().unwrap();
}

fn remove_returns_whether_there_was_a_handler() {
    let lp = EventLoop::new().unwrap();
    // No handler at all (no wakeup channel yet).
    assert!(!lp.remove_signal_handler(SIGUSR1).unwrap());
    lp.add_signal_handler(SIGUSR1, || {}).unwrap();
    assert!(!lp.remove_signal_handler(SIGUSR2).unwrap());
    assert!(lp.remove_signal_handler(SIGUSR1).unwrap());
    assert!(!lp.remove_signal_handler(SIGUSR1).unwrap());
    lp.close().unwrap();
}

fn errors_have_asyncios_messages() {
    let lp = EventLoop::new().unwrap();
    for sig in [0, -1, 65, 1000] {
        match lp.add_signal_handler(sig, || {}) {
            Err(Error::Value(m)) => assert_eq!(m, format!("sig {sig} out of range(1, 65)")),
            other => panic!("sig {sig}: {other:?}"),
        }
        assert!(matches!(
            lp.remove_signal_handler(sig),
            Err(Error::Value(_))
        ));
    }
    for sig in [SIGKILL, SIGSTOP] {
        match lp.add_signal_handler(sig, || {}) {
            Err(Error::Runtime(m)) => assert_eq!(m, format!("sig {sig} cannot be caught")),
            other => panic!("sig {sig}: {other:?}"),
        }
    }
    match lp.add_signal_handler(SIGSEGV, || {}) {
        Err(Error::Runtime(m)) => {
            assert!(m.starts_with("sig 11 cannot be caught"), "{m}");
            assert!(m.contains("SIGSEGV"), "{m}");
        }
        other => panic!("SIGSEGV: {other:?}"),
    }
    lp.close().unwrap();
    match lp.add_signal_handler(SIGUSR1, || {}) {
        Err(Error::Runtime(m)) => assert_eq!(m, "Event loop is closed"),
        other => panic!("closed loop: {other:?}"),
    }
    // The range check comes first, as in asyncio.
    assert!(matches!(
        lp.add_signal_handler(0, || {}),
        Err(Error::Value(_))
    ));
}

fn a_signal_while_nobody_polls_is_not_lost() {
    let lp = EventLoop::new().unwrap();
    let calls = counter();
    let c = calls.clone();
    lp.add_signal_handler(SIGHUP, move || c.set(c.get() + 1))
        .unwrap();
    // The loop is not running: the byte waits in the wakeup channel.
    raise(SIGHUP).unwrap();
    run_until(&lp, || calls.get() == 1);
    lp.close().unwrap();
}

fn a_panicking_handler_is_reported_and_the_loop_goes_on() {
    let lp = EventLoop::new().unwrap();
    let reported = Rc::new(RefCell::new(Vec::new()));
    let r = reported.clone();
    lp.set_exception_handler(Some(
        move |_: &EventLoop, ctx: &asyncio::ExceptionContext| {
            r.borrow_mut().push(format!("{:?}", ctx.exception))
        },
    ));
    lp.add_signal_handler(SIGUSR1, || panic!("boom in a signal handler"))
        .unwrap();
    let calls = counter();
    let c = calls.clone();
    lp.add_signal_handler(SIGUSR2, move || c.set(c.get() + 1))
        .unwrap();
    // The panic is expected: keep its message out of the output.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    raise(SIGUSR1).unwrap();
    run_until(&lp, || !reported.borrow().is_empty());
    std::panic::set_hook(hook);
    assert!(reported.borrow()[0].contains("boom in a signal handler"));
    raise(SIGUSR2).unwrap();
    run_until(&lp, || calls.get() == 1);
    lp.close().unwrap();
}

fn each_loop_sees_the_signals_it_registered() {
    let a = EventLoop::new().unwrap();
    let b = EventLoop::new().unwrap();
    let (a_usr1, a_usr2, b_usr2) = (counter(), counter(), counter());
    let c = a_usr1.clone();
    a.add_signal_handler(SIGUSR1, move || c.set(c.get() + 1))
        .unwrap();
    let c = a_usr2.clone();
    a.add_signal_handler(SIGUSR2, move || c.set(c.get() + 1))
        .unwrap();
    let c = b_usr2.clone();
    b.add_signal_handler(SIGUSR2, move || c.set(c.get() + 1))
        .unwrap();
    raise(SIGUSR1).unwrap();
    raise(SIGUSR2).unwrap();
    // Both loops listen to SIGUSR2: both see it; only `a` listens to SIGUSR1.
    run_until(&b, || b_usr2.get() == 1);
    run_until(&a, || a_usr1.get() == 1 && a_usr2.get() == 1);
    // Removing `b`'s handler leaves `a`'s in place.
    assert!(b.remove_signal_handler(SIGUSR2).unwrap());
    raise(SIGUSR2).unwrap();
    run_until(&a, || a_usr2.get() == 2);
    assert_eq!(b_usr2.get(), 1);
    a.close().unwrap();
    b.close().unwrap();
}

fn wait_for_signal_returns_the_number_and_takes_precedence() {
    let lp = EventLoop::new().unwrap();
    let handled = counter();
    let h = handled.clone();
    lp.add_signal_handler(SIGUSR2, move || h.set(h.get() + 1))
        .unwrap();
    let got = lp
        .run_until_complete(async {
            let wait = asyncio::wait_for_signal(&[SIGUSR1, SIGUSR2]);
            raise(SIGUSR2).unwrap();
            wait.await
        })
        .unwrap();
    assert_eq!(got.unwrap(), SIGUSR2);
    // The waiter took the signal; the handler is back afterwards.
    assert_eq!(handled.get(), 0);
    raise(SIGUSR2).unwrap();
    run_until(&lp, || handled.get() == 1);
    // A dropped (cancelled) wait gives the signal back to the handler.
    lp.run_until_complete(async {
        let wait = asyncio::wait_for_signal(&[SIGUSR2]);
        drop(wait);
    })
    .unwrap();
    raise(SIGUSR2).unwrap();
    run_until(&lp, || handled.get() == 2);
    // Errors.
    let errs = lp
        .run_until_complete(async {
            [
                asyncio::wait_for_signal(&[]).await,
                asyncio::wait_for_signal(&[SIGKILL]).await,
                asyncio::wait_for_signal(&[99]).await,
            ]
        })
        .unwrap();
    assert!(matches!(errs[0], Err(Error::Value(_))));
    assert!(matches!(errs[1], Err(Error::Runtime(_))));
    assert!(matches!(errs[2], Err(Error::Value(_))));
    lp.close().unwrap();
    let outside = std::pin::pin!(asyncio::wait_for_signal(&[SIGUSR1]));
    let r = std::future::Future::poll(
        outside,
        &mut std::task::Context::from_waker(std::task::Waker::noop()),
    );
    assert!(matches!(r, std::task::Poll::Ready(Err(Error::Runtime(_)))));
}

/// A client is mid-request when SIGTERM arrives: the server stops accepting, the
/// request is answered within the grace period, then the server is closed.
fn graceful_shutdown_answers_the_request_in_flight() {
    let out = asyncio::run(async {
        let request_seen = Rc::new(asyncio::Event::new());
        let seen = request_seen.clone();
        let server = asyncio::start_server(
            move |mut r: asyncio::StreamReader, w: asyncio::StreamWriter| {
                let seen = seen.clone();
                async move {
                    let line = r.readline().await.unwrap();
                    seen.set();
                    // The answer takes a while: SIGTERM arrives meanwhile.
                    asyncio::sleep(Duration::from_millis(50)).await;
                    w.write(&line).unwrap();
                    w.drain().await.unwrap();
                    w.close();
                }
            },
            Some("127.0.0.1"),
            0,
        )
        .await
        .unwrap();
        let port = match server.local_addrs()[0] {
            asyncio::Address::Inet(a) => a.port(),
            ref other => panic!("not an inet address: {other}"),
        };
        let client = asyncio::create_task(async move {
            let (mut r, w) = asyncio::open_connection("127.0.0.1", port).await.unwrap();
            w.write(b"hello\n").unwrap();
            r.read_to_end().await.unwrap()
        });
        let stop = asyncio::wait_for_signal(&[SIGINT, SIGTERM]);
        let waiter = asyncio::create_task(async move {
            request_seen.wait().await;
            raise(SIGTERM).unwrap();
        });
        let sig = stop.await.unwrap();
        server.close();
        let finished = asyncio::wait_for(server.wait_closed(), Duration::from_secs(10)).await;
        waiter.await.unwrap();
        (sig, finished.is_ok(), client.await.unwrap())
    })
    .unwrap();
    assert_eq!(out, (SIGTERM, true, b"hello\n".to_vec()));
}

// ----- cases that end the process: run in a child ------------------------------------

/// Close restores the default action: SIGUSR1 then terminates the process.
fn child_close_restores_the_default() {
    let lp = EventLoop::new().unwrap();
    lp.add_signal_handler(SIGUSR1, || {}).unwrap();
    lp.close().unwrap();
    println!("closed");
    std::io::stdout().flush().unwrap();
    raise(SIGUSR1).unwrap();
    println!("still alive");
}

/// Remove restores the default action too.
fn child_remove_restores_the_default() {
    let lp = EventLoop::new().unwrap();
    lp.add_signal_handler(SIGHUP, || {}).unwrap();
    assert!(lp.remove_signal_handler(SIGHUP).unwrap());
    println!("removed");
    std::io::stdout().flush().unwrap();
    raise(SIGHUP).unwrap();
    println!("still alive");
}

/// Ctrl-C in `run`: the main task is cancelled and cleans up, `run` returns
/// `KeyboardInterrupt`; afterwards SIGINT has its default action again.
fn child_run_ctrl_c() {
    struct Cleanup;
    impl Drop for Cleanup {
        fn drop(&mut self) {
            println!("main task cleaned up");
        }
    }
    let r = asyncio::run(async {
        let _c = Cleanup;
        raise(SIGINT).unwrap();
        // Cancelled long before this ends.
        asyncio::sleep(Duration::from_secs(60)).await;
        println!("main task finished");
    });
    println!("run returned {:?}", r.map_err(|e| e.to_string()));
    std::io::stdout().flush().unwrap();
    raise(SIGINT).unwrap();
    println!("still alive");
}

/// A second Ctrl-C ends the process at once, even though the loop never got to see
/// the first.
fn child_run_second_ctrl_c() {
    let _ = asyncio::run(async {
        println!("started");
        std::io::stdout().flush().unwrap();
        raise(SIGINT).unwrap();
        raise(SIGINT).unwrap();
        println!("still alive");
    });
    println!("run returned");
}

fn run_child(case: &str) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD, case)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        out.push_str(&line.unwrap());
        out.push('\n');
    }
    (child.wait().unwrap(), out)
}

fn close_and_remove_restore_the_default_action() {
    let (status, out) = run_child("close");
    assert_eq!(status.signal(), Some(SIGUSR1), "{status}: {out}");
    assert_eq!(out, "closed\n");
    let (status, out) = run_child("remove");
    assert_eq!(status.signal(), Some(SIGHUP), "{status}: {out}");
    assert_eq!(out, "removed\n");
}

fn run_handles_ctrl_c_like_asyncio() {
    let (status, out) = run_child("ctrl_c");
    assert_eq!(status.signal(), Some(SIGINT), "{status}: {out}");
    assert_eq!(
        out,
        "main task cleaned up\nrun returned Err(\"KeyboardInterrupt\")\n"
    );
    let (status, out) = run_child("second_ctrl_c");
    assert_eq!(status.signal(), Some(SIGINT), "{status}: {out}");
    assert_eq!(out, "started\n");
}

fn main() {
    if let Ok(case) = std::env::var(CHILD) {
        match case.as_str() {
            "close" => child_close_restores_the_default(),
            "remove" => child_remove_restores_the_default(),
            "ctrl_c" => child_run_ctrl_c(),
            "second_ctrl_c" => child_run_second_ctrl_c(),
            other => panic!("unknown child case {other}"),
        }
        return;
    }
    let cases: &[(&str, fn())] = &[
        (
            "add_signal_handler_runs_on_the_loop_not_in_signal_context",
            add_signal_handler_runs_on_the_loop_not_in_signal_context,
        ),
        (
            "two_signals_each_reach_their_own_handler",
            two_signals_each_reach_their_own_handler,
        ),
        (
            "a_second_add_replaces_the_first",
            a_second_add_replaces_the_first,
        ),
        (
            "remove_returns_whether_there_was_a_handler",
            remove_returns_whether_there_was_a_handler,
        ),
        (
            "errors_have_asyncios_messages",
            errors_have_asyncios_messages,
        ),
        (
            "a_signal_while_nobody_polls_is_not_lost",
            a_signal_while_nobody_polls_is_not_lost,
        ),
        (
            "a_panicking_handler_is_reported_and_the_loop_goes_on",
            a_panicking_handler_is_reported_and_the_loop_goes_on,
        ),
        (
            "each_loop_sees_the_signals_it_registered",
            each_loop_sees_the_signals_it_registered,
        ),
        (
            "wait_for_signal_returns_the_number_and_takes_precedence",
            wait_for_signal_returns_the_number_and_takes_precedence,
        ),
        (
            "graceful_shutdown_answers_the_request_in_flight",
            graceful_shutdown_answers_the_request_in_flight,
        ),
        (
            "close_and_remove_restore_the_default_action",
            close_and_remove_restore_the_default_action,
        ),
        (
            "run_handles_ctrl_c_like_asyncio",
            run_handles_ctrl_c_like_asyncio,
        ),
    ];
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    println!("\nrunning {} tests", cases.len());
    let mut ran = 0;
    for (name, case) in cases {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        print!("test {name} ... ");
        std::io::stdout().flush().unwrap();
        case();
        println!("ok");
        ran += 1;
    }
    println!("\ntest result: ok. {ran} passed; 0 failed\n");
}
