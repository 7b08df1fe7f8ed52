//! `StreamReader` and `StreamWriter` at the edges where a differential test against
//! CPython's own `asyncio.StreamReader` found the crate diverging (issue 11), one test
//! per rule: when a stored error reaches a read that data already woke, which reads
//! resume a paused transport, what a dropped read leaves behind, what a writer dropped
//! after its loop says, and the cause a too-long line carries.
//!
//! Steps that asyncio runs with "no loop iteration between them" are driven by polling
//! the read's future by hand: a poll is the read resuming.

mod support_reader;
mod support_streams;
mod support_transports;

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use asyncio::{BaseProtocol, Error, Protocol, StreamReader, StreamReaderProtocol};
use support_reader::{with_transport, FakeTransport};

/// One poll with a waker that does nothing: the read runs once.
fn poll_once<F: Future>(f: Pin<&mut F>) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(Waker::noop()))
}

fn ready<T>(p: Poll<T>) -> T {
    match p {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the read should have completed"),
    }
}

fn value_error() -> Error {
    Error::value("boom")
}

fn is_boom(r: &asyncio::Result<impl std::fmt::Debug>) -> bool {
    matches!(r, Err(Error::Value(m)) if m == "boom")
}

fn feed(p: &StreamReaderProtocol, data: &[u8]) {
    Protocol::data_received(p, data);
}

/// asyncio's `set_exception`, as a broken connection does it.
fn fail(p: &StreamReaderProtocol) {
    p.connection_lost(Some(value_error()));
}

fn calls(t: &FakeTransport) -> Vec<&'static str> {
    t.calls.borrow().clone()
}

// ----- 1. a stored error and a woken read -------------------------------------------

#[test]
fn read_woken_by_data_returns_it_though_an_error_was_stored_before_it_resumed() {
    // asyncio: limit 1, read(1) pending, feed_data(b'b'), set_exception -> b'b'.
    let mut r = StreamReader::with_limit(1).unwrap();
    let feeder = StreamReaderProtocol::new(&r);
    {
        let mut read = pin!(r.read(1));
        assert!(poll_once(read.as_mut()).is_pending());
        feed(&feeder, b"b");
        fail(&feeder);
        assert_eq!(ready(poll_once(read.as_mut())).unwrap(), b"b");
    }
    assert_eq!(r.buffered(), 0, "the byte was consumed");
    let again = ready(poll_once(pin!(r.read(1))));
    assert!(
        is_boom(&again),
        "a read that starts now sees the error: {again:?}"
    );
}

#[test]
fn readexactly_woken_then_failed_then_fed_completes_with_every_byte() {
    // asyncio: readexactly(3) pending, feed_data(b'b'), set_exception,
    // feed_data(b'bb') -> b'bbb' (no loop iteration between the steps).
    let mut r = StreamReader::new();
    let feeder = StreamReaderProtocol::new(&r);
    let mut read = pin!(r.readexactly(3));
    assert!(poll_once(read.as_mut()).is_pending());
    feed(&feeder, b"b");
    fail(&feeder);
    feed(&feeder, b"bb");
    assert_eq!(ready(poll_once(read.as_mut())).unwrap(), b"bbb");
}

#[test]
fn a_read_that_waits_again_after_a_wake_ignores_an_error_stored_while_it_was_woken() {
    // asyncio's second `_wait_for_data` does not check `_exception`: only a
    // `set_exception` during that wait (failing its waiter) reaches the read.
    let mut r = StreamReader::new();
    let feeder = StreamReaderProtocol::new(&r);
    let mut read = pin!(r.readexactly(3));
    assert!(poll_once(read.as_mut()).is_pending());
    feed(&feeder, b"b");
    fail(&feeder);
    assert!(
        poll_once(read.as_mut()).is_pending(),
        "woken by data, the read waits again for the rest"
    );
    feed(&feeder, b"bb");
    assert_eq!(ready(poll_once(read.as_mut())).unwrap(), b"bbb");
}

#[test]
fn an_error_stored_while_a_read_waits_fails_it_and_keeps_the_buffer() {
    let mut r = StreamReader::new();
    let feeder = StreamReaderProtocol::new(&r);
    {
        let mut read = pin!(r.readexactly(3));
        assert!(poll_once(read.as_mut()).is_pending());
        feed(&feeder, b"b");
        assert!(poll_once(read.as_mut()).is_pending());
        fail(&feeder);
        // Data after the error does not rescue the read: its waiter already failed.
        let out = ready(poll_once(read.as_mut()));
        assert!(is_boom(&out), "{out:?}");
    }
    assert_eq!(r.buffered(), 1, "the byte stays buffered");
}

#[test]
fn readline_readuntil_and_read_with_woken_by_data_complete_despite_a_later_error() {
    let mut r = StreamReader::new();
    let feeder = StreamReaderProtocol::new(&r);
    {
        let mut line = pin!(r.readline());
        assert!(poll_once(line.as_mut()).is_pending());
        feed(&feeder, b"ab\n");
        fail(&feeder);
        assert_eq!(ready(poll_once(line.as_mut())).unwrap(), b"ab\n");
    }

    let mut r = StreamReader::new();
    let feeder = StreamReaderProtocol::new(&r);
    {
        let mut until = pin!(r.readuntil(b"!!"));
        assert!(poll_once(until.as_mut()).is_pending());
        feed(&feeder, b"x!!");
        fail(&feeder);
        assert_eq!(ready(poll_once(until.as_mut())).unwrap(), b"x!!");
    }

    let mut r = StreamReader::new();
    let feeder = StreamReaderProtocol::new(&r);
    {
        let mut lend = pin!(r.read_with(10, <[u8]>::to_vec));
        assert!(poll_once(lend.as_mut()).is_pending());
        feed(&feeder, b"hi");
        fail(&feeder);
        assert_eq!(ready(poll_once(lend.as_mut())).unwrap(), b"hi");
    }
    assert_eq!(r.buffered(), 0);
}

#[test]
fn read_to_end_woken_by_eof_returns_what_it_has_though_an_error_followed() {
    let mut r = StreamReader::new();
    let feeder = StreamReaderProtocol::new(&r);
    let mut all = pin!(r.read_to_end());
    feed(&feeder, b"abc");
    assert!(
        poll_once(all.as_mut()).is_pending(),
        "collected, waits for EOF"
    );
    Protocol::eof_received(&*feeder);
    fail(&feeder);
    assert_eq!(ready(poll_once(all.as_mut())).unwrap(), b"abc");
}

#[test]
fn read_to_end_woken_by_data_takes_one_block_then_sees_the_error() {
    // asyncio's read() is a loop of read(limit): the read that waited returns its
    // block (limit bytes), and the next read(limit) raises the stored error.
    let mut r = StreamReader::with_limit(2).unwrap();
    let feeder = StreamReaderProtocol::new(&r);
    {
        let mut all = pin!(r.read_to_end());
        assert!(poll_once(all.as_mut()).is_pending());
        feed(&feeder, b"abcde");
        fail(&feeder);
        let out = ready(poll_once(all.as_mut()));
        assert!(is_boom(&out), "{out:?}");
    }
    assert_eq!(r.buffered(), 3, "one block of `limit` bytes was taken");
}

// ----- 2. IncompleteReadError does not resume a paused transport ---------------------

#[test]
fn readexactly_failing_at_eof_leaves_a_paused_transport_paused() {
    let (mut r, _p, t) = with_transport(1);
    r.feed_data(b"abc").unwrap();
    assert_eq!(calls(&t), ["pause"]);
    r.feed_eof();
    let out = ready(poll_once(pin!(r.readexactly(10))));
    assert!(
        matches!(out, Err(Error::IncompleteRead { ref partial, expected: Some(10) }) if partial == b"abc"),
        "{out:?}"
    );
    assert_eq!(calls(&t), ["pause"], "asyncio does not resume here");
    assert!(t.paused.get());
}

#[test]
fn readuntil_and_readline_at_eof_leave_a_paused_transport_paused() {
    // A separator longer than the buffer: no LimitOverrun, so EOF decides.
    let (mut r, _p, t) = with_transport(2);
    r.feed_data(b"abcde").unwrap();
    assert_eq!(calls(&t), ["pause"]);
    r.feed_eof();
    let out = ready(poll_once(pin!(r.readuntil(b"!!!!!"))));
    assert!(
        matches!(out, Err(Error::IncompleteRead { ref partial, expected: None }) if partial == b"abcde"),
        "{out:?}"
    );
    assert_eq!(calls(&t), ["pause"], "asyncio does not resume here");
    // readline's last line comes from the same IncompleteReadError.
    assert_eq!(ready(poll_once(pin!(r.readline()))).unwrap(), b"");
    assert_eq!(calls(&t), ["pause"]);
    // A successful read at EOF runs asyncio's _maybe_resume_transport.
    assert_eq!(ready(poll_once(pin!(r.read(1)))).unwrap(), b"");
    assert_eq!(calls(&t), ["pause", "resume"]);
}

// ----- 3. read_with applies the pause rule only to fed bytes -------------------------

#[test]
fn read_with_does_not_pause_when_nothing_was_fed_like_read() {
    for lend in [false, true] {
        let (mut r, p, t) = with_transport(1);
        {
            // A waiting read resumes the transport, though more than 2 x limit is
            // buffered.
            let mut big = pin!(r.readexactly(10));
            assert!(poll_once(big.as_mut()).is_pending());
            feed(&p, b"abcd");
            assert_eq!(calls(&t), ["pause"]);
            assert!(poll_once(big.as_mut()).is_pending());
            assert_eq!(calls(&t), ["pause", "resume"]);
        }
        assert_eq!(r.buffered(), 4);
        let got = if lend {
            ready(poll_once(pin!(r.read_with(1, <[u8]>::to_vec)))).unwrap()
        } else {
            ready(poll_once(pin!(r.read(1)))).unwrap()
        };
        assert_eq!(got, b"a");
        assert_eq!(
            calls(&t),
            ["pause", "resume"],
            "no pause without a feed (lend={lend})"
        );
    }
}

#[test]
fn read_with_pauses_when_its_callback_fed_past_the_threshold() {
    let (mut r, p, t) = with_transport(2);
    r.feed_data(b"abcd").unwrap();
    let p2 = p.clone();
    let got = ready(poll_once(pin!(r.read_with(1, move |b| {
        feed(&p2, b"xyz");
        b.to_vec()
    }))))
    .unwrap();
    assert_eq!(got, b"a");
    assert_eq!(r.buffered(), 6);
    assert_eq!(calls(&t), ["pause"], "6 bytes > 2 x limit after the feed");
}

// ----- 4. a dropped read clears its waiter -------------------------------------------

/// A waker that counts its clones alive.
struct Counted(AtomicUsize);

impl Wake for Counted {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn a_read_dropped_while_waiting_leaves_no_waiter_behind() {
    let mut r = StreamReader::new();
    let counted = Arc::new(Counted(AtomicUsize::new(0)));
    let waker = Waker::from(counted.clone());
    {
        let mut read = pin!(r.readline());
        let polled = read.as_mut().poll(&mut Context::from_waker(&waker));
        assert!(polled.is_pending());
        assert_eq!(Arc::strong_count(&counted), 3, "the reader holds a clone");
    }
    assert_eq!(Arc::strong_count(&counted), 2, "released on drop");
    assert!(!format!("{r:?}").contains("waiter"), "{r:?}");
    r.feed_data(b"x").unwrap();
    assert_eq!(counted.0.load(Ordering::Relaxed), 0, "nobody to wake");
}

#[test]
fn a_read_woken_then_dropped_does_not_let_the_next_read_skip_the_error() {
    let mut r = StreamReader::new();
    let feeder = StreamReaderProtocol::new(&r);
    {
        let mut read = pin!(r.read(5));
        assert!(poll_once(read.as_mut()).is_pending());
        feed(&feeder, b"data");
    }
    fail(&feeder);
    let out = ready(poll_once(pin!(r.read(5))));
    assert!(
        is_boom(&out),
        "a new read starts by checking the error: {out:?}"
    );
    assert_eq!(r.buffered(), 4);
}

// ----- 5. a writer dropped after its loop closed ------------------------------------

/// Captures `log` records of the current thread (one global logger per test binary).
mod capture {
    use std::cell::RefCell;
    use std::sync::Once;

    thread_local! {
        static CAPTURED: RefCell<Option<Vec<(log::Level, String)>>> = const { RefCell::new(None) };
    }

    struct Capture;

    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &log::Record<'_>) {
            let _ = CAPTURED.try_with(|c| {
                if let Some(v) = c.borrow_mut().as_mut() {
                    v.push((record.level(), record.args().to_string()));
                }
            });
        }
        fn flush(&self) {}
    }

    static LOGGER: Capture = Capture;
    static INIT: Once = Once::new();

    /// Start capturing this thread's records.
    pub fn start() {
        INIT.call_once(|| {
            log::set_logger(&LOGGER).expect("no other logger in this test binary");
            log::set_max_level(log::LevelFilter::Trace);
        });
        CAPTURED.with(|c| *c.borrow_mut() = Some(Vec::new()));
    }

    /// Stop capturing and return what was captured.
    pub fn take() -> Vec<(log::Level, String)> {
        CAPTURED.with(|c| c.borrow_mut().take().unwrap_or_default())
    }
}

fn warnings(logs: &[(log::Level, String)]) -> Vec<&str> {
    logs.iter()
        .filter(|(level, _)| *level == log::Level::Warn)
        .map(|(_, m)| m.as_str())
        .collect()
}

#[test]
fn an_open_writer_dropped_after_its_loop_closed_warns_that_the_loop_is_closed() {
    let (server, (_cr, client), (_sr, accepted)) =
        support_transports::run(support_streams::connected(65536));
    capture::start();
    drop(client);
    let logs = capture::take();
    let warned = warnings(&logs);
    assert_eq!(warned.len(), 1, "{logs:?}");
    assert!(
        warned[0].starts_with("loop is closed: unclosed <StreamWriter"),
        "{warned:?}"
    );
    drop((server, accepted));
}

#[test]
fn a_writer_closed_before_its_loop_closed_is_dropped_silently() {
    let (server, (_cr, client), (_sr, accepted)) = support_transports::run(async {
        let (server, client, accepted) = support_streams::connected(65536).await;
        client.1.close();
        client.1.wait_closed().await.unwrap();
        (server, client, accepted)
    });
    capture::start();
    drop(client);
    let logs = capture::take();
    assert!(warnings(&logs).is_empty(), "{logs:?}");
    drop((server, accepted));
}

// ----- 6. readline's ValueError carries its LimitOverrunError ------------------------

#[test]
fn readline_value_error_over_a_long_line_has_the_limit_overrun_as_its_source() {
    let mut r = StreamReader::with_limit(3).unwrap();
    r.feed_data(b"abcdefg\nok\n").unwrap();
    let e = ready(poll_once(pin!(r.readline()))).unwrap_err();
    assert!(
        matches!(e.unchained(), Error::Value(m) if m == "Separator is found, but chunk is longer than limit"),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "ValueError: Separator is found, but chunk is longer than limit"
    );
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    let source = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<Error>());
    assert!(
        matches!(source, Some(Error::LimitOverrun { consumed: 7, .. })),
        "{source:?}"
    );
    assert_eq!(ready(poll_once(pin!(r.readline()))).unwrap(), b"ok\n");

    // Not found: the context's `consumed` is how far the search got.
    let mut r = StreamReader::with_limit(3).unwrap();
    r.feed_data(b"abcdefgh").unwrap();
    let e = ready(poll_once(pin!(r.readline()))).unwrap_err();
    let source = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<Error>());
    assert!(
        matches!(source, Some(Error::LimitOverrun { consumed: 8, message }) if message == "Separator is not found, and chunk exceed the limit"),
        "{source:?}"
    );
}
