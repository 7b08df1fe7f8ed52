//! `StreamReader` fed by hand (CPython's `test_streams.py`, the reader half): every
//! buffer rule of asyncio's reader, one test per rule. The feeder is a
//! `StreamReaderProtocol`, as on a real connection; flow control is observed through a
//! fake transport that records `pause_reading` / `resume_reading`.

mod support_reader;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use asyncio::{
    create_task, yield_now, BaseProtocol, Error, EventLoop, Protocol, StreamReader,
    StreamReaderProtocol, Transport,
};
use support_reader::{with_transport, FakeTransport};

/// Run `fut` on a fresh loop (bounded: a hang fails the test), then close the loop.
fn run<T: 'static>(fut: impl std::future::Future<Output = T> + 'static) -> T {
    let lp = EventLoop::new().unwrap();
    let out = lp
        .run_until_complete(asyncio::wait_for(fut, Duration::from_secs(10)))
        .unwrap()
        .expect("test timed out");
    lp.close().unwrap();
    out
}

/// A reader already holding `data` and EOF.
fn fed(data: &[u8]) -> StreamReader {
    let r = StreamReader::new();
    r.feed_data(data).unwrap();
    r.feed_eof();
    r
}

/// A reader and the protocol that feeds it, as on a real connection.
fn pair(limit: usize) -> (StreamReader, Rc<StreamReaderProtocol>) {
    let r = StreamReader::with_limit(limit).unwrap();
    let p = StreamReaderProtocol::new(&r);
    (r, p)
}

fn feed(p: &StreamReaderProtocol, data: &[u8]) {
    Protocol::data_received(p, data);
}

fn eof(p: &StreamReaderProtocol) {
    assert!(
        Protocol::eof_received(p),
        "streams keep the connection half-open"
    );
}

/// Let the loop run `n` iterations.
async fn iterations(n: usize) {
    for _ in 0..n {
        yield_now().await;
    }
}

// ----- construction ---------------------------------------------------------------

#[test]
fn a_zero_limit_is_a_value_error() {
    match StreamReader::with_limit(0) {
        Err(Error::Value(m)) => assert_eq!(m, "Limit cannot be <= 0"),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(StreamReader::new().limit(), 65536);
    assert_eq!(StreamReader::with_limit(7).unwrap().limit(), 7);
}

#[test]
fn set_transport_twice_is_an_error() {
    let r = StreamReader::new();
    let t: Rc<dyn Transport> = Rc::new(FakeTransport::default());
    r.set_transport(&t).unwrap();
    assert!(matches!(r.set_transport(&t), Err(Error::Runtime(m)) if m == "Transport already set"));
}

// ----- feed_data / feed_eof / at_eof ------------------------------------------------

#[test]
fn feed_data_after_feed_eof_is_an_error_even_when_empty() {
    let r = StreamReader::new();
    r.feed_eof();
    r.feed_eof(); // idempotent
    for data in [&b"x"[..], b""] {
        assert!(
            matches!(r.feed_data(data), Err(Error::Runtime(m)) if m == "feed_data after feed_eof")
        );
    }
}

#[test]
fn feeding_nothing_changes_nothing() {
    let r = StreamReader::new();
    r.feed_data(b"").unwrap();
    assert_eq!(r.buffered(), 0);
    assert_eq!(r.allocated_bytes(), 0, "an empty reader owns no storage");
}

#[test]
fn at_eof_needs_eof_and_an_empty_buffer() {
    let mut r = StreamReader::new();
    assert!(!r.at_eof());
    r.feed_data(b"ab").unwrap();
    r.feed_eof();
    assert!(!r.at_eof(), "data is still buffered");
    run(async move {
        assert_eq!(r.read(10).await.unwrap(), b"ab");
        assert!(r.at_eof());
    });
}

// ----- read(n) -----------------------------------------------------------------------

#[test]
fn read_zero_returns_at_once_even_with_nothing_buffered() {
    let (mut r, _p) = pair(65536);
    run(async move { assert_eq!(r.read(0).await.unwrap(), b"") });
}

#[test]
fn read_waits_for_data_then_returns_what_is_there() {
    let (mut r, p) = pair(65536);
    run(async move {
        let t = create_task(async move { r.read(100).await });
        iterations(3).await;
        assert!(!t.done(), "read waits while the buffer is empty");
        feed(&p, b"hello");
        assert_eq!(
            t.await.unwrap().unwrap(),
            b"hello",
            "fewer than n: no second wait"
        );
    });
}

#[test]
fn read_returns_at_most_n_and_keeps_the_rest() {
    let mut r = fed(b"abcdef");
    run(async move {
        assert_eq!(r.read(4).await.unwrap(), b"abcd");
        assert_eq!(r.buffered(), 2);
        assert_eq!(r.read(4).await.unwrap(), b"ef");
        assert_eq!(r.read(4).await.unwrap(), b"", "empty at EOF");
        assert_eq!(r.read(4).await.unwrap(), b"", "and again");
    });
}

#[test]
fn read_to_end_collects_every_chunk_until_eof() {
    let (mut r, p) = pair(4);
    run(async move {
        let t = create_task(async move { r.read_to_end().await });
        for chunk in [&b"one "[..], b"two ", b"three"] {
            feed(&p, chunk);
            iterations(2).await;
        }
        assert!(!t.done());
        eof(&p);
        assert_eq!(t.await.unwrap().unwrap(), b"one two three");
    });
}

#[test]
fn read_to_end_of_more_than_twice_the_limit_does_not_deadlock_with_pausing() {
    let (mut r, p, t) = with_transport(4);
    run(async move {
        let reader = create_task(async move { r.read_to_end().await });
        for _ in 0..10 {
            feed(&p, b"0123456789");
            iterations(2).await;
        }
        eof(&p);
        assert_eq!(reader.await.unwrap().unwrap().len(), 100);
        assert!(!t.paused.get(), "the transport is not left paused");
    });
}

// ----- read_with (the zero-copy read) ---------------------------------------------------

#[test]
fn read_with_lends_what_read_would_return_and_consumes_it() {
    let mut r = fed(b"abcdef");
    run(async move {
        assert_eq!(r.read_with(4, |d| d.to_vec()).await.unwrap(), b"abcd");
        assert_eq!(r.buffered(), 2);
        assert_eq!(
            r.read_with(0, |d| d.len()).await.unwrap(),
            0,
            "n = 0 lends nothing"
        );
        assert_eq!(r.read_with(4, |d| d.to_vec()).await.unwrap(), b"ef");
        assert_eq!(
            r.read_with(4, |d| d.len()).await.unwrap(),
            0,
            "EOF lends an empty slice"
        );
        assert_eq!(
            r.allocated_bytes(),
            0,
            "the emptied buffer went back to the pool"
        );
    });
}

#[test]
fn read_with_waits_for_data_and_calls_f_once() {
    let (mut r, p) = pair(65536);
    run(async move {
        let calls = Rc::new(Cell::new(0));
        let c = calls.clone();
        let t = create_task(async move {
            r.read_with(100, move |d| {
                c.set(c.get() + 1);
                d.to_vec()
            })
            .await
        });
        iterations(3).await;
        assert_eq!(calls.get(), 0, "f is not called while the buffer is empty");
        feed(&p, b"hello");
        assert_eq!(t.await.unwrap().unwrap(), b"hello");
        assert_eq!(calls.get(), 1);
    });
}

#[test]
fn bytes_fed_during_the_loan_follow_the_unread_rest() {
    let (mut r, p) = pair(65536);
    feed(&p, b"abcdef");
    run(async move {
        // The feeder reaches the reader's state while the bytes are lent (a transport
        // call made from `f` can do this): no RefCell conflict, no lost byte.
        let lent = r.read_with(2, |d| {
            feed(&p, b"XY");
            d.to_vec()
        });
        assert_eq!(lent.await.unwrap(), b"ab");
        assert_eq!(r.read(100).await.unwrap(), b"cdefXY");
    });
}

#[test]
fn a_panic_in_f_still_consumes_the_lent_bytes_and_keeps_the_rest() {
    use std::future::Future;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::task::{Context, Waker};
    let mut r = fed(b"abcdef");
    {
        // The bytes are buffered, so the first poll calls `f`: no loop needed.
        let mut read = std::pin::pin!(r.read_with(2, |_| -> usize { panic!("f failed") }));
        let mut cx = Context::from_waker(Waker::noop());
        let polled = catch_unwind(AssertUnwindSafe(|| read.as_mut().poll(&mut cx)));
        assert!(polled.is_err(), "the panic reaches the caller");
    }
    run(async move { assert_eq!(r.read(100).await.unwrap(), b"cdef") });
}

#[test]
fn read_with_resumes_a_paused_transport_at_the_limit() {
    let (mut r, p, t) = with_transport(4);
    feed(&p, b"abcdefghi"); // 9 > 2 x 4: paused
    assert!(t.paused.get());
    let tr = t.clone();
    run(async move {
        assert_eq!(r.read_with(4, <[u8]>::len).await.unwrap(), 4);
        assert!(tr.paused.get(), "5 left > limit: still paused");
        assert_eq!(r.read_with(1, <[u8]>::len).await.unwrap(), 1);
        assert!(!tr.paused.get(), "4 left = limit: resumed");
    });
}

#[test]
fn read_with_returns_a_stored_error_without_calling_f() {
    let (mut r, p) = pair(65536);
    feed(&p, b"data");
    r.set_exception(Error::runtime("boom"));
    run(async move {
        let out = r.read_with(10, |_| unreachable!("f must not run")).await;
        assert!(matches!(out, Err(Error::Runtime(_))));
    });
}

// ----- readline ----------------------------------------------------------------------

#[test]
fn readline_returns_the_line_with_its_newline() {
    let mut r = fed(b"line1\nline2\n");
    run(async move {
        assert_eq!(r.readline().await.unwrap(), b"line1\n");
        assert_eq!(r.readline().await.unwrap(), b"line2\n");
        assert_eq!(r.readline().await.unwrap(), b"");
    });
}

#[test]
fn readline_waits_for_a_line_split_over_many_chunks() {
    let (mut r, p) = pair(65536);
    run(async move {
        let t = create_task(async move { (r.readline().await, r) });
        for chunk in [&b"li"[..], b"ne", b" one", b"\nrest"] {
            assert!(!t.done());
            feed(&p, chunk);
            iterations(2).await;
        }
        let (line, r) = t.await.unwrap();
        assert_eq!(line.unwrap(), b"line one\n");
        assert_eq!(r.buffered(), 4, "what follows the newline stays");
    });
}

#[test]
fn readline_at_eof_returns_the_last_partial_line_then_nothing() {
    let mut r = fed(b"complete\npartial");
    run(async move {
        assert_eq!(r.readline().await.unwrap(), b"complete\n");
        assert_eq!(r.readline().await.unwrap(), b"partial");
        assert_eq!(r.readline().await.unwrap(), b"");
        assert!(r.at_eof());
    });
}

#[test]
fn readline_limit_counts_the_line_without_its_newline() {
    let mut r = StreamReader::with_limit(7).unwrap();
    r.feed_data(b"1234567\n").unwrap();
    r.feed_eof();
    run(async move { assert_eq!(r.readline().await.unwrap(), b"1234567\n") });
}

#[test]
fn readline_over_the_limit_drops_that_line_and_its_newline() {
    let mut r = StreamReader::with_limit(7).unwrap();
    r.feed_data(b"12345678\nnext\n").unwrap();
    run(async move {
        match r.readline().await.as_ref().map_err(Error::unchained) {
            Err(Error::Value(m)) => {
                assert_eq!(m, "Separator is found, but chunk is longer than limit")
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            r.readline().await.unwrap(),
            b"next\n",
            "only the long line is gone"
        );
    });
}

#[test]
fn readline_over_the_limit_without_a_newline_clears_the_buffer() {
    let mut r = StreamReader::with_limit(3).unwrap();
    r.feed_data(b"abcdefgh").unwrap();
    run(async move {
        match r.readline().await.as_ref().map_err(Error::unchained) {
            Err(Error::Value(m)) => {
                assert_eq!(m, "Separator is not found, and chunk exceed the limit")
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(r.buffered(), 0);
    });
}

#[test]
fn next_line_iterates_like_async_for() {
    let mut r = fed(b"a\nbb\nccc");
    run(async move {
        let mut lines = Vec::new();
        while let Some(line) = r.next_line().await {
            lines.push(line.unwrap());
        }
        assert_eq!(lines, [b"a\n".to_vec(), b"bb\n".to_vec(), b"ccc".to_vec()]);
    });
}

// ----- readuntil -----------------------------------------------------------------------

#[test]
fn readuntil_finds_a_separator_split_across_chunks() {
    let (mut r, p) = pair(65536);
    run(async move {
        let t = create_task(async move { r.readuntil(b"\r\n\r\n").await });
        for chunk in [&b"head\r"[..], b"\n", b"\r", b"\nbody"] {
            feed(&p, chunk);
            iterations(2).await;
        }
        assert_eq!(t.await.unwrap().unwrap(), b"head\r\n\r\n");
    });
}

#[test]
fn readuntil_found_beyond_the_limit_leaves_the_buffer_untouched() {
    let mut r = StreamReader::with_limit(4).unwrap();
    r.feed_data(b"abcdef!xyz").unwrap();
    run(async move {
        match r.readuntil(b"!").await {
            Err(Error::LimitOverrun { message, consumed }) => {
                assert_eq!(
                    message,
                    "Separator is found, but chunk is longer than limit"
                );
                assert_eq!(consumed, 6, "the separator's start");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(r.buffered(), 10, "can be read again");
        assert_eq!(r.read(6).await.unwrap(), b"abcdef");
        assert_eq!(r.readuntil(b"!").await.unwrap(), b"!");
    });
}

#[test]
fn readuntil_not_found_within_the_limit_leaves_the_buffer_untouched() {
    let mut r = StreamReader::with_limit(4).unwrap();
    r.feed_data(b"abcdefgh").unwrap();
    run(async move {
        match r.readuntil(b"!!").await {
            Err(Error::LimitOverrun { message, consumed }) => {
                assert_eq!(
                    message,
                    "Separator is not found, and chunk exceed the limit"
                );
                assert_eq!(consumed, 7, "buflen + 1 - len(separator)");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(r.buffered(), 8);
    });
}

#[test]
fn readuntil_at_eof_returns_everything_as_incomplete_read() {
    let mut r = fed(b"data\r");
    run(async move {
        match r.readuntil(b"\r\n").await {
            Err(e @ Error::IncompleteRead { .. }) => {
                assert_eq!(
                    e.to_string(),
                    "5 bytes read on a total of undefined expected bytes"
                );
                let Error::IncompleteRead { partial, expected } = e else {
                    unreachable!()
                };
                assert_eq!(partial, b"data\r", "including the partial separator");
                assert_eq!(expected, None);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(r.buffered(), 0, "the buffer is emptied");
    });
}

#[test]
fn empty_separators_are_value_errors_checked_before_the_stored_error() {
    let mut r = fed(b"abc");
    r.set_exception(Error::runtime("stored"));
    run(async move {
        assert!(matches!(r.readuntil(b"").await,
            Err(Error::Value(m)) if m == "Separator should be at least one-byte string"));
        assert!(matches!(r.readuntil_any(&[]).await,
            Err(Error::Value(m)) if m == "Separator should contain at least one element"));
        assert!(matches!(
            r.readuntil_any(&[b"a", b""]).await,
            Err(Error::Value(_))
        ));
        assert!(matches!(r.readuntil(b"c").await, Err(Error::Runtime(m)) if m == "stored"));
    });
}

#[test]
fn readuntil_any_takes_the_match_that_ends_first() {
    let mut r = fed(b"xx\r\nyy\nzz");
    run(async move {
        // "\n" ends at 4, "\r\n" ends at 4 too: the shorter wins (same bytes here);
        // "yy" ends later.
        assert_eq!(
            r.readuntil_any(&[b"yy", b"\r\n", b"\n"]).await.unwrap(),
            b"xx\r\n"
        );
        assert_eq!(r.readuntil_any(&[b"z", b"y\n"]).await.unwrap(), b"yy\n");
        assert_eq!(r.readuntil_any(&[b"zz", b"z"]).await.unwrap(), b"z");
    });
}

#[test]
fn readuntil_any_waits_for_the_longer_separator_across_chunks() {
    let (mut r, p) = pair(65536);
    run(async move {
        let t = create_task(async move { r.readuntil_any(&[b"END", b"!"]).await });
        feed(&p, b"abcE");
        iterations(2).await;
        feed(&p, b"N");
        iterations(2).await;
        assert!(!t.done());
        feed(&p, b"D!");
        assert_eq!(t.await.unwrap().unwrap(), b"abcEND");
    });
}

// ----- readexactly ---------------------------------------------------------------------

#[test]
fn readexactly_waits_until_n_bytes_are_there() {
    let (mut r, p) = pair(65536);
    run(async move {
        let t = create_task(async move { (r.readexactly(6).await, r) });
        feed(&p, b"abc");
        iterations(2).await;
        assert!(!t.done(), "3 of 6 bytes: still waiting");
        feed(&p, b"defgh");
        let (got, r) = t.await.unwrap();
        assert_eq!(got.unwrap(), b"abcdef");
        assert_eq!(r.buffered(), 2);
    });
}

#[test]
fn readexactly_zero_returns_empty_at_once() {
    let (mut r, _p) = pair(65536);
    run(async move { assert_eq!(r.readexactly(0).await.unwrap(), b"") });
}

#[test]
fn readexactly_at_eof_is_incomplete_and_empties_the_buffer() {
    let mut r = fed(b"0123456789");
    run(async move {
        match r.readexactly(20).await {
            Err(e @ Error::IncompleteRead { .. }) => {
                assert_eq!(
                    e.to_string(),
                    "10 bytes read on a total of 20 expected bytes"
                );
                let Error::IncompleteRead { partial, expected } = e else {
                    unreachable!()
                };
                assert_eq!(partial, b"0123456789");
                assert_eq!(expected, Some(20));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(r.buffered(), 0);
        assert!(r.at_eof());
    });
}

#[test]
fn readexactly_beyond_twice_the_limit_resumes_the_transport_to_finish() {
    let (mut r, p, t) = with_transport(4);
    let tr = t.clone();
    run(async move {
        let reader = create_task(async move { r.readexactly(30).await });
        let mut fed = 0;
        while fed < 30 {
            if !tr.paused.get() {
                feed(&p, b"0123456789");
                fed += 10;
            }
            iterations(1).await;
        }
        assert_eq!(reader.await.unwrap().unwrap().len(), 30);
    });
    let calls = t.calls.borrow();
    assert!(
        calls.contains(&"pause") && calls.contains(&"resume"),
        "{calls:?}"
    );
}

// ----- stored exceptions ------------------------------------------------------------

#[test]
fn a_stored_exception_comes_before_buffered_data() {
    let mut r = StreamReader::new();
    r.feed_data(b"abc").unwrap();
    r.set_exception(Error::runtime("boom"));
    run(async move {
        assert!(matches!(r.read(1).await, Err(Error::Runtime(m)) if m == "boom"));
        assert!(matches!(r.readline().await, Err(Error::Runtime(_))));
        assert!(matches!(r.readexactly(1).await, Err(Error::Runtime(_))));
        assert!(matches!(r.read_to_end().await, Err(Error::Runtime(_))));
        assert_eq!(r.buffered(), 3, "the buffer is kept");
        assert!(matches!(r.exception(), Some(Error::Runtime(m)) if m == "boom"));
    });
}

#[test]
fn set_exception_wakes_a_waiting_read() {
    let (mut r, p) = pair(65536);
    run(async move {
        let t = create_task(async move { r.readline().await });
        feed(&p, b"no newline yet");
        iterations(2).await;
        assert!(!t.done());
        p.connection_lost(Some(Error::from(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        ))));
        let got = t.await.unwrap();
        assert_eq!(got.unwrap_err().kind(), std::io::ErrorKind::ConnectionReset);
    });
}

#[test]
fn connection_lost_without_error_is_eof() {
    let (mut r, p) = pair(65536);
    run(async move {
        let t = create_task(async move { r.read_to_end().await });
        feed(&p, b"tail");
        p.connection_lost(None);
        assert_eq!(t.await.unwrap().unwrap(), b"tail");
    });
}

// ----- flow control -------------------------------------------------------------------

#[test]
fn pause_above_twice_the_limit_and_resume_at_the_limit() {
    // asyncio's verified sequence with limit=4.
    let (mut r, p, t) = with_transport(4);
    feed(&p, b"12345678");
    assert!(!t.paused.get(), "8 bytes = 2 x limit: not yet");
    feed(&p, b"9");
    assert!(t.paused.get(), "9 > 2 x limit: paused");
    let tr = t.clone();
    run(async move {
        assert_eq!(r.read(4).await.unwrap(), b"1234");
        assert!(tr.paused.get(), "5 left > limit: still paused");
        assert_eq!(r.read(1).await.unwrap(), b"5");
        assert!(!tr.paused.get(), "4 left = limit: resumed");
    });
    assert_eq!(*t.calls.borrow(), ["pause", "resume"]);
}

#[test]
fn a_read_that_must_wait_resumes_a_paused_transport() {
    let (mut r, p, t) = with_transport(4);
    feed(&p, b"abcdefghi"); // 9 > 2 x 4: paused
    assert!(t.paused.get());
    let tr = t.clone();
    run(async move {
        let reader = create_task(async move { r.readexactly(10).await });
        iterations(2).await;
        assert!(!tr.paused.get(), "a read waiting for more resumed reading");
        assert!(!reader.done());
        feed(&p, b"j");
        assert_eq!(reader.await.unwrap().unwrap(), b"abcdefghij");
    });
    // 10 bytes paused it again; the read that took them all resumed it.
    assert_eq!(*t.calls.borrow(), ["pause", "resume", "pause", "resume"]);
}

#[test]
fn the_reader_holds_no_storage_once_everything_is_read() {
    let (mut r, p) = pair(65536);
    feed(&p, &vec![7u8; 50_000]);
    assert!(r.allocated_bytes() >= 50_000);
    run(async move {
        assert_eq!(r.read(65536).await.unwrap().len(), 50_000);
        assert_eq!(r.allocated_bytes(), 0);
    });
}

// ----- cancel safety ------------------------------------------------------------------

#[test]
fn a_cancelled_read_loses_no_bytes() {
    let (lp, clock) = EventLoop::with_test_clock().unwrap();
    clock.set_auto_advance(true);
    let (mut r, p) = pair(65536);
    let out = lp
        .run_until_complete(async move {
            feed(&p, b"partial ");
            // The read times out (virtual clock) while waiting for its newline.
            let timed_out = asyncio::wait_for(r.readline(), Duration::from_secs(1)).await;
            assert!(matches!(timed_out, Err(Error::Timeout)));
            feed(&p, b"line\n");
            r.readline().await
        })
        .unwrap();
    assert_eq!(out.unwrap(), b"partial line\n");
    lp.close().unwrap();
}

#[test]
fn a_cancelled_readexactly_consumes_nothing() {
    let (lp, clock) = EventLoop::with_test_clock().unwrap();
    clock.set_auto_advance(true);
    let (mut r, p) = pair(65536);
    let out = lp
        .run_until_complete(async move {
            feed(&p, b"abc");
            let timed_out = asyncio::wait_for(r.readexactly(5), Duration::from_secs(1)).await;
            assert!(matches!(timed_out, Err(Error::Timeout)));
            assert_eq!(r.buffered(), 3);
            feed(&p, b"de");
            r.readexactly(5).await
        })
        .unwrap();
    assert_eq!(out.unwrap(), b"abcde");
    lp.close().unwrap();
}

// ----- representation -----------------------------------------------------------------

#[test]
fn debug_shows_only_what_is_not_default() {
    assert_eq!(format!("{:?}", StreamReader::new()), "<StreamReader>");
    let r = StreamReader::with_limit(123).unwrap();
    r.feed_data(b"abcd").unwrap();
    r.feed_eof();
    assert_eq!(format!("{r:?}"), "<StreamReader 4 bytes eof limit=123>");
    r.set_exception(Error::runtime("x"));
    assert!(format!("{r:?}").contains("exception=RuntimeError: x"));
}
