//! The streams' poll-level API (`src/streams/poll.rs`, Rust-only): `poll_read`,
//! `poll_fill_buf` + `consume`, `poll_write`, `poll_drain`, `poll_wait_closed`, the
//! owned `StreamPair`; their waker contract (a Pending poll stores the waker it was
//! given; nothing relies on a dropped future), cancel safety, and both flow-control
//! rules through them. Over a hand-fed reader and over real loopback sockets.

mod support_streams;
mod support_transports;

use std::future::poll_fn;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use asyncio::{Error, StreamReader};
use support_streams::*;
use support_transports::*;

/// A waker that counts its wake-ups.
#[derive(Default)]
struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counting() -> (Arc<Counter>, Waker) {
    let c = Arc::new(Counter::default());
    (c.clone(), Waker::from(c))
}

fn wakes(c: &Counter) -> usize {
    c.0.load(Ordering::SeqCst)
}

#[test]
fn poll_read_copies_what_is_buffered_and_zero_at_eof() {
    let mut r = StreamReader::new();
    let (_, waker) = counting();
    let mut cx = Context::from_waker(&waker);
    r.feed_data(b"hello world").unwrap();
    let mut buf = [0u8; 5];
    assert!(matches!(r.poll_read(&mut cx, &mut buf), Poll::Ready(Ok(5))));
    assert_eq!(&buf, b"hello");
    assert_eq!(r.buffered(), 6);
    let mut big = [0u8; 64];
    assert!(matches!(r.poll_read(&mut cx, &mut big), Poll::Ready(Ok(6))));
    assert_eq!(&big[..6], b" world");
    assert!(matches!(r.poll_read(&mut cx, &mut []), Poll::Ready(Ok(0))));
    r.feed_eof();
    assert!(matches!(r.poll_read(&mut cx, &mut big), Poll::Ready(Ok(0))));
    assert!(r.at_eof());
}

#[test]
fn a_pending_poll_read_stores_its_own_waker_and_consumes_nothing() {
    let mut r = StreamReader::new();
    let (first, w1) = counting();
    let (second, w2) = counting();
    let mut buf = [0u8; 8];
    // Two polls from two different contexts (a future made afresh each time): the
    // last one's waker is the one woken.
    assert!(r
        .poll_read(&mut Context::from_waker(&w1), &mut buf)
        .is_pending());
    assert!(r
        .poll_read(&mut Context::from_waker(&w2), &mut buf)
        .is_pending());
    r.feed_data(b"abc").unwrap();
    assert_eq!(wakes(&second), 1, "the last poller is woken");
    assert_eq!(wakes(&first), 0, "a replaced waker is not");
    assert_eq!(r.buffered(), 3, "a pending poll consumed nothing");
    let (eof_w, w3) = counting();
    let mut cx = Context::from_waker(&w3);
    assert!(matches!(r.poll_read(&mut cx, &mut buf), Poll::Ready(Ok(3))));
    assert!(r.poll_read(&mut cx, &mut buf).is_pending());
    r.feed_eof();
    assert_eq!(wakes(&eof_w), 1, "EOF wakes the waiting poller");
    let (err_w, w4) = counting();
    let mut r2 = StreamReader::new();
    assert!(r2
        .poll_read(&mut Context::from_waker(&w4), &mut buf)
        .is_pending());
    r2.set_exception(Error::connection_lost());
    assert_eq!(wakes(&err_w), 1, "an error wakes the waiting poller");
}

#[test]
fn a_stored_error_comes_before_buffered_data() {
    let mut r = StreamReader::new();
    let (_, waker) = counting();
    let mut cx = Context::from_waker(&waker);
    r.feed_data(b"data").unwrap();
    r.set_exception(Error::connection_lost());
    let mut buf = [0u8; 8];
    match r.poll_read(&mut cx, &mut buf) {
        Poll::Ready(Err(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
        other => panic!("expected the stored error, got {other:?}"),
    }
    assert!(matches!(r.poll_fill_buf(&mut cx), Poll::Ready(Err(_))));
}

#[test]
fn fill_buf_lends_without_consuming_and_other_reads_see_the_rest_first() {
    let mut r = StreamReader::new();
    let (_, waker) = counting();
    let mut cx = Context::from_waker(&waker);
    assert!(r.poll_fill_buf(&mut cx).is_pending());
    r.feed_data(b"first line\nsecond").unwrap();
    match r.poll_fill_buf(&mut cx) {
        Poll::Ready(Ok(b)) => assert_eq!(b, b"first line\nsecond"),
        other => panic!("{other:?}"),
    }
    // Polling again without consuming lends the same bytes.
    match r.poll_fill_buf(&mut cx) {
        Poll::Ready(Ok(b)) => assert_eq!(b, b"first line\nsecond"),
        other => panic!("{other:?}"),
    }
    r.consume(6);
    // Fed while the bytes are lent: they come after the lent ones.
    r.feed_data(b" line\n").unwrap();
    assert_eq!(r.buffered(), 17, "buffered counts lent bytes too");
    run(async move {
        assert_eq!(r.readline().await.unwrap(), b"line\n");
        assert_eq!(r.readline().await.unwrap(), b"second line\n");
        r.feed_data(b"xy").unwrap();
        r.feed_eof();
        let (_, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        match r.poll_fill_buf(&mut cx) {
            Poll::Ready(Ok(b)) => assert_eq!(b, b"xy"),
            other => panic!("{other:?}"),
        }
        assert!(!r.at_eof(), "lent bytes are not consumed yet");
        r.consume(100); // more than lent: consumes what was lent
        assert!(r.at_eof());
        assert!(matches!(r.poll_fill_buf(&mut cx), Poll::Ready(Ok(b"")))); // EOF
        assert_eq!(r.allocated_bytes(), 0, "no storage kept once consumed");
    });
}

#[test]
fn poll_read_after_fill_buf_reads_the_lent_bytes_first() {
    let mut r = StreamReader::new();
    let (_, waker) = counting();
    let mut cx = Context::from_waker(&waker);
    r.feed_data(b"abcdef").unwrap();
    assert!(matches!(r.poll_fill_buf(&mut cx), Poll::Ready(Ok(_))));
    r.consume(2);
    r.feed_data(b"gh").unwrap();
    let mut buf = [0u8; 3];
    assert!(matches!(r.poll_read(&mut cx, &mut buf), Poll::Ready(Ok(3))));
    assert_eq!(&buf, b"cde");
    let mut rest = [0u8; 8];
    assert!(matches!(
        r.poll_read(&mut cx, &mut rest),
        Poll::Ready(Ok(1))
    ));
    assert_eq!(&rest[..1], b"f");
    assert!(matches!(
        r.poll_read(&mut cx, &mut rest),
        Poll::Ready(Ok(2))
    ));
    assert_eq!(&rest[..2], b"gh");
}

/// Read `total` bytes of the pattern with `poll_read` (a future made afresh on every
/// poll) or `poll_fill_buf` + `consume`, in small pieces, checking every byte.
async fn read_pattern(r: &mut StreamReader, total: usize, buffered: bool) -> usize {
    let mut at = 0;
    let mut buf = vec![0u8; 1000];
    loop {
        let n = if buffered {
            let n = poll_fn(|cx| {
                r.poll_fill_buf(cx).map_ok(|b| {
                    let n = b.len().min(700);
                    assert!(is_pattern(&b[..n], at), "corrupt data at {at}");
                    n
                })
            })
            .await
            .unwrap();
            r.consume(n);
            n
        } else {
            let n = poll_fn(|cx| r.poll_read(cx, &mut buf)).await.unwrap();
            assert!(is_pattern(&buf[..n], at), "corrupt data at {at}");
            n
        };
        if n == 0 {
            return at;
        }
        at += n;
        assert!(at <= total);
    }
}

fn read_flow_control_through(buffered: bool) {
    const LIMIT: usize = 1024;
    const TOTAL: usize = 4 << 20;
    run(async move {
        let (server, (_cr, cw), (mut r, sw)) = connected(LIMIT).await;
        let writer = asyncio::create_task(async move {
            let data = pattern(TOTAL);
            for c in data.chunks(64 * 1024) {
                cw.write(c).unwrap();
                cw.drain().await.unwrap();
            }
            cw.close();
            cw.wait_closed().await.unwrap();
        });
        let t = sw.transport().clone();
        eventually("the reading transport pauses", || !t.is_reading()).await;
        assert!(r.buffered() > 2 * LIMIT, "paused only over 2 x limit");
        // Reading through the poll API resumes it, and every byte arrives in order.
        assert_eq!(read_pattern(&mut r, TOTAL, buffered).await, TOTAL);
        writer.await.unwrap();
        sw.close();
        sw.wait_closed().await.unwrap();
        server.close();
        server.wait_closed().await.unwrap();
    });
}

#[test]
fn read_flow_control_pauses_and_resumes_through_poll_read() {
    read_flow_control_through(false);
}

#[test]
fn read_flow_control_pauses_and_resumes_through_poll_fill_buf() {
    read_flow_control_through(true);
}

#[test]
fn poll_write_waits_while_paused_and_takes_nothing() {
    run(async {
        let (server, (mut cr, cw), (_sr, sw)) = connected(asyncio::streams::DEFAULT_LIMIT).await;
        // Nobody reads at the client: the server's writes pile up.
        let chunk = pattern(64 * 1024);
        let mut sent = 0usize;
        loop {
            let before = sw.transport().get_write_buffer_size();
            let (_, waker) = counting();
            match sw.poll_write(&mut Context::from_waker(&waker), &chunk) {
                Poll::Ready(Ok(n)) => {
                    assert_eq!(n, chunk.len(), "all or nothing");
                    sent += n;
                }
                Poll::Pending => {
                    assert_eq!(
                        sw.transport().get_write_buffer_size(),
                        before,
                        "a pending poll_write took nothing"
                    );
                    break;
                }
                Poll::Ready(Err(e)) => panic!("{e}"),
            }
            assert!(sent < 64 << 20, "writing never paused");
        }
        assert!(sw.transport().get_write_buffer_size() > 64 * 1024);
        // poll_write is woken once the client reads enough, and goes on.
        let sw = std::rc::Rc::new(sw);
        let w = sw.clone();
        let more = asyncio::create_task(async move {
            poll_fn(|cx| w.poll_write(cx, b"end")).await.unwrap();
            poll_fn(|cx| w.poll_close(cx)).await
        });
        let got = cr.read_to_end().await.unwrap();
        assert_eq!(got.len(), sent + 3);
        assert!(got[..sent]
            .chunks(chunk.len())
            .all(|c| c == &chunk[..c.len()]));
        assert_eq!(&got[sent..], b"end");
        more.await.unwrap().unwrap();
        cw.close();
        cw.wait_closed().await.unwrap();
        server.close();
        server.wait_closed().await.unwrap();
    });
}

#[test]
fn poll_drain_from_fresh_futures_finishes_once_the_transport_is_closing() {
    // The trap of a drain() future made afresh on each poll: once the transport is
    // closing, drain() yields one iteration first, which a fresh future repeats
    // forever. poll_drain keeps no state: it waits only while writing is paused.
    run(async {
        let (server, (mut cr, cw), (_sr, sw)) = connected(asyncio::streams::DEFAULT_LIMIT).await;
        sw.write(&pattern(8 << 20)).unwrap();
        sw.close();
        assert!(sw.is_closing());
        let sw = std::rc::Rc::new(sw);
        let w = sw.clone();
        let drainer = asyncio::create_task(async move {
            // poll_drain is a plain function: every poll is a fresh call, as in an
            // adapter's poll_flush.
            poll_fn(|cx| w.poll_drain(cx)).await
        });
        idle(5).await;
        assert!(
            !drainer.done(),
            "waits while the buffer is over the high-water mark"
        );
        let got = cr.read_to_end().await.unwrap();
        assert_eq!(got.len(), 8 << 20);
        match drainer.await.unwrap() {
            Ok(()) => {}
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
        }
        poll_fn(|cx| sw.poll_wait_closed(cx)).await.unwrap();
        // After the end: the writer's polls report it, at once.
        match poll_fn(|cx| sw.poll_drain(cx)).await {
            Err(e) => assert_eq!(e.to_string(), "Connection lost"),
            Ok(()) => panic!("poll_drain after the connection is lost"),
        }
        match poll_fn(|cx| sw.poll_write(cx, b"x")).await {
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
            Ok(_) => panic!("poll_write after the connection is lost"),
        }
        cw.close();
        cw.wait_closed().await.unwrap();
        server.close();
        server.wait_closed().await.unwrap();
    });
}

#[test]
fn poll_write_after_close_is_broken_pipe_and_poll_close_is_idempotent() {
    run(async {
        let (server, (mut cr, cw), (mut sr, sw)) = connected(asyncio::streams::DEFAULT_LIMIT).await;
        assert!(matches!(poll_fn(|cx| cw.poll_write(cx, b"")).await, Ok(0)));
        poll_fn(|cx| cw.poll_write(cx, b"bye")).await.unwrap();
        cw.close();
        match poll_fn(|cx| cw.poll_write(cx, b"more")).await {
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe),
            Ok(_) => panic!("poll_write after close"),
        }
        poll_fn(|cx| cw.poll_close(cx)).await.unwrap();
        poll_fn(|cx| cw.poll_close(cx)).await.unwrap();
        assert_eq!(
            sr.read_to_end().await.unwrap(),
            b"bye",
            "flushed before the end"
        );
        poll_fn(|cx| sw.poll_close(cx)).await.unwrap();
        assert_eq!(cr.read_to_end().await.unwrap(), b"");
        server.close();
        server.wait_closed().await.unwrap();
    });
}

#[test]
fn a_pair_reads_and_writes_and_splits_again() {
    run(async {
        let (server, (cr, cw), (sr, sw)) = connected(asyncio::streams::DEFAULT_LIMIT).await;
        let mut client = cr.unsplit(cw);
        let mut srv = asyncio::StreamPair::new(sr, sw);
        poll_fn(|cx| client.writer().poll_write(cx, b"ping\n"))
            .await
            .unwrap();
        assert_eq!(srv.reader_mut().readline().await.unwrap(), b"ping\n");
        let (r, w) = srv.halves();
        w.write(b"pong").unwrap();
        w.write_eof().unwrap();
        assert!(r.buffered() == 0);
        let mut buf = [0u8; 16];
        let n = poll_fn(|cx| client.reader_mut().poll_read(cx, &mut buf))
            .await
            .unwrap();
        assert_eq!(&buf[..n], b"pong");
        let (mut cr, cw) = client.into_split();
        assert_eq!(cr.read_to_end().await.unwrap(), b"");
        cw.close();
        cw.wait_closed().await.unwrap();
        let (_, sw) = srv.into_split();
        sw.close();
        sw.wait_closed().await.unwrap();
        server.close();
        server.wait_closed().await.unwrap();
    });
}

#[test]
fn poll_shutdown_half_closes_until_the_peer_is_done_and_drop_then_closes() {
    run(async {
        let (server, (mut cr, cw), (mut sr, sw)) = connected(asyncio::streams::DEFAULT_LIMIT).await;
        poll_fn(|cx| cw.poll_write(cx, b"request")).await.unwrap();
        poll_fn(|cx| cw.poll_shutdown(cx)).await.unwrap();
        assert!(
            !cw.is_closing(),
            "only the write side ends: the reads go on"
        );
        assert_eq!(sr.read_to_end().await.unwrap(), b"request");
        // The server answers, then shuts down: its reader saw EOF, so the whole
        // connection closes, and the poll waits for it.
        poll_fn(|cx| sw.poll_write(cx, b"response")).await.unwrap();
        poll_fn(|cx| sw.poll_shutdown(cx)).await.unwrap();
        assert!(sw.is_closing());
        assert_eq!(cr.read_to_end().await.unwrap(), b"response");
        // A writer dropped after its shutdown closes its transport.
        let t = cw.transport().clone();
        drop(cw);
        assert!(t.is_closing());
        server.close();
        server.wait_closed().await.unwrap();
    });
}
