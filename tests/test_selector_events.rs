//! `add_reader` / `add_writer` and the registration table (CPython's
//! `test_selector_events.py`, loop half): asyncio's level-triggered meaning on mio's
//! edge-triggered poll, removal, replacement, fds owned by transports, and stale-token
//! safety (a late event for a freed or reused slot never reaches the new owner).

mod support_transports;

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use asyncio::{Error, EventLoop, ExtraInfo};
use support_transports::*;

/// A connected, non-blocking Unix socket pair.
fn socketpair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

/// A callback that counts its calls.
fn counter() -> (Rc<Cell<usize>>, impl Fn() + 'static) {
    let n = Rc::new(Cell::new(0));
    let m = n.clone();
    (n, move || m.set(m.get() + 1))
}

fn lp() -> EventLoop {
    asyncio::get_running_loop().unwrap()
}

#[test]
fn add_reader_is_level_triggered() {
    run(async {
        let (a, mut b) = socketpair();
        b.write_all(b"?").unwrap();
        let calls = Rc::new(Cell::new(0));
        let c = calls.clone();
        let a = Rc::new(a);
        let a2 = a.clone();
        lp().add_reader(a.as_raw_fd(), move || {
            c.set(c.get() + 1);
            if c.get() == 3 {
                // Read only on the third call: until then the byte stays unread.
                let mut buf = [0u8; 1];
                assert_eq!((&*a2).read(&mut buf).unwrap(), 1);
            }
        })
        .unwrap();
        let mut rounds = 0;
        while calls.get() < 3 {
            assert!(
                rounds < 100,
                "the reader was not called again for unread data"
            );
            asyncio::yield_now().await;
            rounds += 1;
        }
        spin(10).await;
        assert_eq!(calls.get(), 3, "drained: no more calls");
        b.write_all(b"!").unwrap();
        spin(3).await;
        assert!(calls.get() > 3, "new data: called again");
        assert!(lp().remove_reader(a.as_raw_fd()).unwrap());
    });
}

#[test]
fn add_writer_is_level_triggered() {
    run(async {
        let (a, _b) = socketpair();
        let (calls, cb) = counter();
        lp().add_writer(a.as_raw_fd(), cb).unwrap();
        spin(10).await;
        assert!(
            calls.get() >= 5,
            "called on every iteration: {}",
            calls.get()
        );
        assert!(lp().remove_writer(a.as_raw_fd()).unwrap());
        let n = calls.get();
        spin(10).await;
        assert_eq!(calls.get(), n, "not called after remove_writer");
    });
}

#[test]
fn remove_reader_and_remove_writer_say_whether_one_was_registered() {
    run(async {
        let (a, _b) = socketpair();
        let fd = a.as_raw_fd();
        assert!(!lp().remove_reader(fd).unwrap());
        assert!(!lp().remove_writer(fd).unwrap());
        lp().add_reader(fd, || {}).unwrap();
        assert!(
            !lp().remove_writer(fd).unwrap(),
            "only a reader is registered"
        );
        assert!(lp().remove_reader(fd).unwrap());
        assert!(!lp().remove_reader(fd).unwrap());
        lp().add_writer(fd, || {}).unwrap();
        assert!(lp().remove_writer(fd).unwrap());
        assert!(!lp().remove_writer(fd).unwrap());
    });
}

#[test]
fn add_reader_replaces_the_previous_reader() {
    run(async {
        let (a, mut b) = socketpair();
        let (first, cb1) = counter();
        let (second, cb2) = counter();
        lp().add_reader(a.as_raw_fd(), cb1).unwrap();
        lp().add_reader(a.as_raw_fd(), cb2).unwrap();
        b.write_all(b"x").unwrap();
        spin(3).await;
        assert_eq!(first.get(), 0);
        assert!(second.get() > 0);
        lp().remove_reader(a.as_raw_fd()).unwrap();
    });
}

#[test]
fn a_reader_and_a_writer_on_one_fd_are_independent() {
    run(async {
        let (a, mut b) = socketpair();
        let fd = a.as_raw_fd();
        let (reads, r) = counter();
        let (writes, w) = counter();
        lp().add_reader(fd, r).unwrap();
        lp().add_writer(fd, w).unwrap();
        b.write_all(b"x").unwrap();
        spin(3).await;
        assert!(reads.get() > 0 && writes.get() > 0);
        assert!(lp().remove_writer(fd).unwrap());
        let (r0, w0) = (reads.get(), writes.get());
        spin(3).await;
        assert!(reads.get() > r0, "the reader stays");
        assert_eq!(writes.get(), w0);
        assert!(lp().remove_reader(fd).unwrap());
    });
}

/// A live TCP transport's fd (the server side of a connection).
async fn transport_fd() -> (RawFd, asyncio::Server, std::net::TcpStream) {
    let (server, port, acc) = recorder_server(Behaviour::default()).await;
    let c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let t = acc.nth(0).await.transport();
    let Some(ExtraInfo::Socket(fd)) = t.get_extra_info("socket") else {
        panic!("no socket")
    };
    (fd, server, c)
}

#[test]
fn add_reader_and_add_writer_on_a_transport_fd_are_errors() {
    run(async {
        let (fd, server, _c) = transport_fd().await;
        let prefix = format!("File descriptor {fd} is used by <tcp transport fd={fd} ");
        for e in [
            lp().add_reader(fd, || {}).unwrap_err(),
            lp().add_writer(fd, || {}).unwrap_err(),
        ] {
            assert!(
                matches!(&e, Error::Runtime(m) if m.starts_with(&prefix)),
                "{e:?}"
            );
        }
        server.close();
    });
}

#[test]
fn remove_reader_and_remove_writer_on_a_transport_fd_are_errors() {
    run(async {
        let (fd, server, _c) = transport_fd().await;
        let prefix = format!("File descriptor {fd} is used by <tcp transport fd={fd} ");
        for e in [
            lp().remove_reader(fd).unwrap_err(),
            lp().remove_writer(fd).unwrap_err(),
        ] {
            assert!(
                matches!(&e, Error::Runtime(m) if m.starts_with(&prefix)),
                "{e:?}"
            );
        }
        server.close();
    });
}

#[test]
fn a_callback_removed_by_an_earlier_one_of_the_same_event_is_not_called() {
    run(async {
        let (a, mut b) = socketpair();
        let fd = a.as_raw_fd();
        b.write_all(b"x").unwrap(); // readable and writable: one event, both bits
        let (writes, w) = counter();
        let (reads, r) = counter();
        lp().add_writer(fd, w).unwrap();
        lp().add_reader(fd, move || {
            r();
            let _ = lp().remove_writer(fd);
        })
        .unwrap();
        spin(3).await;
        assert!(reads.get() > 0);
        assert_eq!(writes.get(), 0, "removed before its turn: never called");
        lp().remove_reader(fd).unwrap();
    });
}

#[test]
fn a_late_event_for_a_freed_slot_never_reaches_the_new_owner() {
    run(async {
        // Two readable fds report in the same poll. Whichever callback runs first
        // removes the other's registration and registers a third fd, which takes the
        // freed slot. The other's event, already queued, must be dropped.
        let (a1, mut a2) = socketpair();
        let (b1, mut b2) = socketpair();
        let (c1, mut c2) = socketpair();
        a2.write_all(b"a").unwrap();
        b2.write_all(b"b").unwrap();
        let (c_calls, c_cb) = counter();
        let c_cb = Rc::new(c_cb);
        let first: Rc<Cell<Option<usize>>> = Default::default();
        let calls: Rc<RefCell<[usize; 2]>> = Default::default();
        let fds = [a1.as_raw_fd(), b1.as_raw_fd()];
        let cfd = c1.as_raw_fd();
        for me in 0..2 {
            let (first, calls, c_cb) = (first.clone(), calls.clone(), c_cb.clone());
            lp().add_reader(fds[me], move || {
                calls.borrow_mut()[me] += 1;
                if first.get().is_none() {
                    first.set(Some(me));
                    assert!(lp().remove_reader(fds[1 - me]).unwrap());
                    let c = c_cb.clone();
                    lp().add_reader(cfd, move || c()).unwrap();
                }
            })
            .unwrap();
        }
        spin(5).await;
        let winner = first.get().expect("a reader ran");
        assert_eq!(
            calls.borrow()[1 - winner],
            0,
            "the removed reader never ran"
        );
        assert_eq!(c_calls.get(), 0, "c is not readable: no event may reach it");
        c2.write_all(b"c").unwrap();
        spin(3).await;
        assert!(c_calls.get() > 0, "the new owner gets its own events");
        for fd in [fds[winner], cfd] {
            assert!(lp().remove_reader(fd).unwrap());
        }
        drop((a1, b1, c1));
    });
}

#[test]
fn a_panicking_callback_is_reported_and_the_loop_goes_on() {
    run(async {
        let reports = capture_reports(&lp());
        let (a, _b) = socketpair();
        lp().add_writer(a.as_raw_fd(), || panic!("writer bug on purpose"))
            .unwrap();
        spin(3).await;
        assert!(lp().remove_writer(a.as_raw_fd()).unwrap());
        let r = reports.borrow();
        assert!(!r.is_empty());
        for (msg, e) in r.iter() {
            assert_eq!(msg, "Exception in callback");
            assert!(matches!(e, Some(Error::Panic(m)) if m == "writer bug on purpose"));
        }
    });
}

#[test]
fn add_reader_on_a_closed_loop_is_an_error() {
    let lp = EventLoop::new().unwrap();
    lp.close().unwrap();
    let (a, _b) = socketpair();
    let e = lp.add_reader(a.as_raw_fd(), || {}).unwrap_err();
    assert_eq!(e.to_string(), "RuntimeError: Event loop is closed");
    assert!(lp.add_writer(a.as_raw_fd(), || {}).is_err());
}

#[test]
fn a_negative_fd_is_a_value_error() {
    // asyncio's `_fileobj_to_fd`: ValueError("Invalid file descriptor: -1").
    let lp = EventLoop::new().unwrap();
    let e = lp.add_reader(-1, || {}).unwrap_err();
    assert_eq!(e.to_string(), "ValueError: Invalid file descriptor: -1");
    assert!(matches!(lp.add_writer(-5, || {}), Err(Error::Value(_))));
    assert!(matches!(lp.remove_reader(-1), Err(Error::Value(_))));
    lp.close().unwrap();
}

#[test]
fn closing_the_loop_drops_its_callbacks() {
    let lp = EventLoop::new().unwrap();
    let (a, _b) = socketpair();
    let held = Rc::new(());
    let h = held.clone();
    lp.add_reader(a.as_raw_fd(), move || {
        let _ = &h;
    })
    .unwrap();
    assert_eq!(Rc::strong_count(&held), 2);
    lp.close().unwrap();
    assert_eq!(Rc::strong_count(&held), 1);
}

/// A busy loop skips every other poll (base_events' module docs), but it still sees
/// I/O: a task that yields on every iteration cannot starve a socket. Here a ticker
/// yields forever while another task waits on a socket; the data is delivered within
/// a couple of iterations of its arrival.
#[test]
fn a_busy_loop_still_sees_io_within_two_iterations() {
    run(async {
        let (a, mut b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let a = asyncio::AsyncSocket::new(&lp(), mio::net::UnixStream::from_std(a)).unwrap();
        let ticks = Rc::new(Cell::new(0u64));
        let stop = Rc::new(Cell::new(false));
        let (t, s) = (ticks.clone(), stop.clone());
        let ticker = asyncio::create_task(async move {
            while !s.get() {
                t.set(t.get() + 1);
                asyncio::yield_now().await;
            }
        });
        let reader = asyncio::create_task(async move { a.recv(16).await });
        spin(5).await; // the reader is parked on the socket
        let before = ticks.get();
        b.write_all(b"ping").unwrap();
        let got = reader.await.unwrap().unwrap();
        let waited = ticks.get() - before;
        stop.set(true);
        ticker.await.unwrap();
        assert_eq!(got, b"ping");
        assert!(waited <= 3, "the data waited {waited} busy iterations");
    });
}
