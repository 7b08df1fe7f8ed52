//! A server that ran out of file descriptors serves again as soon as one of its
//! clients leaves (`src/server/mod.rs`, `ServerInner::detach`), not only when its
//! retry timer (`ACCEPT_RETRY_DELAY`, asyncio's 1 s) fires: asyncio recovers within
//! one retry; re-arming on a client's departure is what keeps a backlog of queued
//! connections from costing one retry per free descriptor.
//!
//! Deterministic: the descriptor limit is lowered in a child process (this test binary
//! again), and the loop runs on a `TestClock` that never advances, so the retry timer
//! cannot fire: every connection served after the limit was hit was re-armed by a
//! departure.

mod support_transports;

use std::io::Write;
use std::net::TcpStream;
use std::process::Command;

use asyncio::EventLoop;
use support_transports::*;

const CHILD_ENV: &str = "ASYNCIO_TEST_ACCEPT_RECOVERY_CHILD";
const TEST: &str = "a_starved_server_accepts_again_when_a_client_leaves_without_its_retry_timer";

const ECHO: Behaviour = Behaviour {
    keep_open: false,
    pause_in_made: false,
    echo: true,
    panic_on_data: false,
};

#[test]
fn a_starved_server_accepts_again_when_a_client_leaves_without_its_retry_timer() {
    if std::env::var_os(CHILD_ENV).is_some() {
        child();
        println!("RECOVERY-CHILD-PASS");
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("RECOVERY-CHILD-PASS"),
        "child failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn child() {
    let (lp, clock) = EventLoop::with_test_clock().unwrap();
    // The clock moves only when told: the retry timer can never fire.
    clock.set_auto_advance(false);
    // A bound in real time: the test clock never moves, so no loop timer can end a hung
    // child; a thread stops the loop instead (and the run then fails).
    let h = lp.threadsafe_handle();
    std::thread::spawn(move || {
        std::thread::sleep(LIMIT);
        let _ = h.call_soon_threadsafe(|| asyncio::get_running_loop().unwrap().stop());
    });
    let reports = capture_reports(&lp);
    let start = clock.now();
    let r = reports.clone();
    lp.run_until_complete(async move {
        let (server, port, acc) = recorder_server(ECHO).await;
        // One client being served; it will leave later and free a descriptor.
        let first = TcpStream::connect(("127.0.0.1", port)).unwrap();
        acc.nth(0).await;
        // Three clients wait in the kernel's accept queue, each with a message sent.
        let mut pending: Vec<Option<TcpStream>> = (0..3)
            .map(|i| {
                let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
                c.write_all(format!("pending {i}").as_bytes()).unwrap();
                Some(c)
            })
            .collect();
        // No descriptor left (the loop has not run since the clients connected).
        let lowest_free = {
            use std::os::fd::AsRawFd;
            std::fs::File::open("/dev/null").unwrap().as_raw_fd()
        };
        let (original, _) = nofile_limits();
        set_soft_nofile(lowest_free as u64);
        assert!(std::fs::File::open("/dev/null").is_err());
        // The listener hits EMFILE, reports it and stops watching.
        while r.borrow().is_empty() {
            asyncio::yield_now().await;
        }
        assert_eq!(r.borrow()[0].0, "socket.accept() out of system resource");
        assert_eq!(acc.len(), 1);
        // The first client leaves: its server side closes, and the next queued client
        // is accepted with the freed descriptor. Each one served then leaves too, which
        // lets the next one in: one departure, one accept, no timer.
        drop(first);
        for (i, client) in pending.iter_mut().enumerate() {
            let p = acc.nth(i + 1).await;
            p.wait_bytes(format!("pending {i}").len()).await;
            client.take();
        }
        assert_eq!(acc.len(), 4);
        set_soft_nofile(original);
        server.close();
    })
    .expect("the loop was stopped by the watchdog: the server never accepted again");
    assert_eq!(
        clock.now(),
        start,
        "the test clock never moved: no retry timer fired"
    );
    assert!(
        reports
            .borrow()
            .iter()
            .all(|(m, _)| m == "socket.accept() out of system resource"),
        "{:?}",
        reports.borrow()
    );
    lp.close().unwrap();
}
