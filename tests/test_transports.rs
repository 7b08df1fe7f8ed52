//! The socket transport over real loopback TCP (CPython's `test_selector_events.py`
//! transport cases, `test_events.py` protocol ordering): callback order, flow control
//! in both directions, half-close, close and abort, resets, protocol panics, extra info,
//! buffered protocols. (Connecting and its errors are in `test_server.rs`, with the rest
//! of `src/server.rs`.)

mod support_transports;

use std::cell::{Cell, RefCell};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::rc::Rc;

use asyncio::transports::{DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER};
use asyncio::{Address, AnyProtocol, BaseProtocol, Error, ExtraInfo, ServerOptions, Transport};
use support_transports::*;

/// A connected std socket (`peer`, which the test drives synchronously) and a transport
/// over its other end, made with `connect_accepted_socket`. `before` runs on the peer
/// before the transport exists.
async fn accepted_pair(
    how: Behaviour,
    before: impl FnOnce(&mut TcpStream),
) -> (TcpStream, Rc<dyn Transport>, Rc<Recorder>) {
    let lp = asyncio::get_running_loop().unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut peer = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (ours, _) = l.accept().unwrap();
    // Blocking reads of the peer are bounded too.
    peer.set_read_timeout(Some(LIMIT)).unwrap();
    before(&mut peer);
    let (t, p) = lp
        .connect_accepted_socket(move || Recorder::new(how), ours)
        .await
        .unwrap();
    (peer, t, p)
}

#[test]
fn echo_round_trip_and_callback_order() {
    run(async {
        let (server, port, acc) = recorder_server(Behaviour {
            echo: true,
            ..Default::default()
        })
        .await;
        let (t, p) = client(port, Behaviour::default()).await;
        assert_eq!(p.sequence(), ["made"]);
        t.write(b"hello").unwrap();
        p.wait_bytes(5).await;
        assert_eq!(&*p.data.borrow(), b"hello");
        t.close();
        p.wait_lost().await;
        assert_eq!(p.sequence(), ["made", "data", "lost"]);
        let s = acc.nth(0).await;
        s.wait_lost().await;
        assert_eq!(s.sequence(), ["made", "data", "eof", "lost"]);
        p.assert_lifecycle();
        s.assert_lifecycle();
        server.close();
        server.wait_closed().await.unwrap();
    });
}

#[test]
fn no_data_before_connection_made() {
    run(async {
        // The bytes and the EOF are in the socket before the transport exists.
        let (_peer, _t, p) = accepted_pair(Behaviour::default(), |peer| {
            peer.write_all(b"early bird").unwrap();
            peer.shutdown(Shutdown::Write).unwrap();
        })
        .await;
        assert_eq!(p.events.borrow()[0], "made");
        p.wait_lost().await;
        assert_eq!(p.sequence(), ["made", "data", "eof", "lost"]);
        assert_eq!(&*p.data.borrow(), b"early bird");
    });
}

#[test]
fn data_and_eof_arriving_together_both_reach_the_protocol() {
    run(async {
        let (mut peer, _t, p) = accepted_pair(Behaviour::default(), |_| {}).await;
        spin(3).await; // the transport is up and idle, waiting for an edge
                       // Data and FIN land before the loop polls again: one edge for both.
        peer.write_all(b"last words").unwrap();
        peer.shutdown(Shutdown::Write).unwrap();
        p.wait_lost().await;
        assert_eq!(p.sequence(), ["made", "data", "eof", "lost"]);
        assert_eq!(&*p.data.borrow(), b"last words");
    });
}

#[test]
fn connection_lost_is_called_exactly_once() {
    run(async {
        let (peer, t, p) = accepted_pair(Behaviour::default(), |_| {}).await;
        t.close();
        t.close();
        t.abort();
        peer.shutdown(Shutdown::Both).unwrap();
        p.wait_lost().await;
        spin(5).await;
        t.close();
        t.abort();
        spin(5).await;
        assert_eq!(p.count("lost"), 1);
        assert!(p.lost.borrow().as_ref().unwrap().is_none());
        p.assert_lifecycle();
    });
}

#[test]
fn pause_reading_in_connection_made_holds_data_until_resume_reading() {
    run(async {
        let (mut peer, t, p) = accepted_pair(PAUSED, |peer| peer.write_all(b"one,").unwrap()).await;
        assert!(!t.is_reading());
        peer.write_all(b"two,").unwrap();
        spin(5).await;
        peer.write_all(b"three").unwrap();
        peer.shutdown(Shutdown::Write).unwrap();
        spin(5).await;
        assert_eq!(p.sequence(), ["made"], "nothing may arrive while paused");
        t.resume_reading();
        assert!(t.is_reading());
        p.wait_lost().await;
        assert_eq!(&*p.data.borrow(), b"one,two,three");
        assert_eq!(p.sequence(), ["made", "data", "eof", "lost"]);
    });
}

#[test]
fn pause_and_resume_reading_are_idempotent() {
    run(async {
        let (mut peer, t, p) = accepted_pair(Behaviour::default(), |_| {}).await;
        assert!(t.is_reading());
        t.pause_reading();
        t.pause_reading();
        assert!(!t.is_reading());
        peer.write_all(b"while paused").unwrap();
        spin(5).await;
        assert!(p.data.borrow().is_empty());
        t.resume_reading();
        t.resume_reading();
        assert!(t.is_reading());
        p.wait_bytes(12).await;
        spin(5).await;
        assert_eq!(&*p.data.borrow(), b"while paused", "delivered exactly once");
        t.close();
        assert!(!t.is_reading(), "a closing transport is not reading");
        t.resume_reading();
        assert!(
            !t.is_reading(),
            "resume_reading is a no-op on a closing transport"
        );
    });
}

#[test]
fn writer_waits_for_resume_writing_while_the_peer_does_not_read() {
    run(async {
        const TOTAL: usize = 10 << 20;
        const CHUNK: usize = 64 << 10;
        let (server, port, acc) = recorder_server(PAUSED).await;
        let (t, p) = client(port, Behaviour::default()).await;
        let peer = acc.nth(0).await;
        let data = Rc::new(pattern(TOTAL));
        let written = Rc::new(Cell::new(0usize));
        let max_buffered = Rc::new(Cell::new(0usize));
        let writer = {
            let (t, p, data, written, max_buffered) = (
                t.clone(),
                p.clone(),
                data.clone(),
                written.clone(),
                max_buffered.clone(),
            );
            asyncio::create_task(async move {
                while written.get() < TOTAL {
                    let end = (written.get() + CHUNK).min(TOTAL);
                    t.write(&data[written.get()..end]).unwrap();
                    written.set(end);
                    max_buffered.set(max_buffered.get().max(t.get_write_buffer_size()));
                    // Drain-style: wait while the transport says the buffer is full.
                    p.signal.until(|| !p.paused.get()).await;
                }
            })
        };
        p.wait_event("pause_writing").await;
        let (w, size) = (written.get(), t.get_write_buffer_size());
        assert!(w < TOTAL, "the writer must be waiting");
        assert!(
            size > DEFAULT_HIGH_WATER && size <= DEFAULT_HIGH_WATER + CHUNK,
            "{size}"
        );
        spin(20).await;
        assert_eq!(written.get(), w, "nothing is written while paused");
        assert!(
            t.get_write_buffer_size() <= size,
            "the buffer does not grow"
        );
        peer.transport().resume_reading();
        peer.wait_bytes(TOTAL).await;
        writer.await.unwrap();
        assert!(
            *peer.data.borrow() == *data,
            "10 MB arrive intact and in order"
        );
        assert!(max_buffered.get() <= DEFAULT_HIGH_WATER + CHUNK);
        p.assert_lifecycle(); // pause/resume strictly alternate
        assert!(p.count("pause_writing") >= 1);
        assert_eq!(p.count("pause_writing"), p.count("resume_writing"));
        for (i, s) in p.sizes_at_flow.borrow().iter().enumerate() {
            if i % 2 == 0 {
                assert!(*s > DEFAULT_HIGH_WATER, "paused at {s}");
            } else {
                assert!(*s <= DEFAULT_LOW_WATER, "resumed at {s}");
            }
        }
        t.close();
        server.close();
    });
}

#[test]
fn set_write_buffer_limits_rules_and_errors() {
    run(async {
        let (_peer, t, _p) = accepted_pair(Behaviour::default(), |_| {}).await;
        assert_eq!(
            t.get_write_buffer_limits(),
            (DEFAULT_LOW_WATER, DEFAULT_HIGH_WATER)
        );
        t.set_write_buffer_limits(None, Some(100)).unwrap();
        assert_eq!(t.get_write_buffer_limits(), (100, 400));
        t.set_write_buffer_limits(Some(100), None).unwrap();
        assert_eq!(t.get_write_buffer_limits(), (25, 100));
        t.set_write_buffer_limits(Some(50), Some(50)).unwrap();
        assert_eq!(t.get_write_buffer_limits(), (50, 50));
        let e = t.set_write_buffer_limits(Some(1), Some(2)).unwrap_err();
        assert!(matches!(e, Error::Value(_)), "{e:?}");
        assert_eq!(
            e.to_string(),
            "ValueError: high (1) must be >= low (2) must be >= 0"
        );
        assert_eq!(t.get_write_buffer_limits(), (50, 50), "unchanged on error");
        // The marks are kept in 32 bits: beyond that is an error, never a silent clamp.
        let max = u32::MAX as usize;
        t.set_write_buffer_limits(Some(max), None).unwrap();
        assert_eq!(t.get_write_buffer_limits(), (max / 4, max));
        if let Some(over) = max.checked_add(1) {
            let e = t.set_write_buffer_limits(Some(over), Some(0)).unwrap_err();
            assert!(matches!(e, Error::Value(_)), "{e:?}");
            assert_eq!(
                t.get_write_buffer_limits(),
                (max / 4, max),
                "unchanged on error"
            );
        }
        t.set_write_buffer_limits(None, None).unwrap();
        assert_eq!(
            t.get_write_buffer_limits(),
            (DEFAULT_LOW_WATER, DEFAULT_HIGH_WATER)
        );
        assert_eq!(t.get_write_buffer_size(), 0);
    });
}

#[test]
fn high_water_zero_pauses_as_soon_as_anything_is_buffered() {
    run(async {
        let (server, port, acc) = recorder_server(PAUSED).await;
        let (t, p) = client(port, Behaviour::default()).await;
        let peer = acc.nth(0).await;
        t.set_write_buffer_limits(Some(0), None).unwrap();
        assert_eq!(t.get_write_buffer_limits(), (0, 0));
        let sent = stuff(&t);
        assert_eq!(
            p.sequence(),
            ["made", "pause_writing"],
            "paused inside write()"
        );
        assert!(p.sizes_at_flow.borrow()[0] > 0);
        peer.transport().resume_reading();
        p.wait_event("resume_writing").await;
        assert_eq!(
            p.sizes_at_flow.borrow()[1],
            0,
            "low = 0: resumed only when empty"
        );
        peer.wait_bytes(sent).await;
        assert_eq!(t.get_write_buffer_size(), 0);
        server.close();
    });
}

#[test]
fn lowering_high_water_below_the_buffered_size_pauses_at_once() {
    run(async {
        let (server, port, acc) = recorder_server(PAUSED).await;
        let (t, p) = client(port, Behaviour::default()).await;
        let _peer = acc.nth(0).await;
        t.set_write_buffer_limits(Some(64 << 20), None).unwrap();
        stuff(&t);
        t.write(&[1u8; 1000]).unwrap();
        let size = t.get_write_buffer_size();
        assert!(size > 1000, "{size}");
        assert_eq!(p.count("pause_writing"), 0);
        t.set_write_buffer_limits(Some(size - 1), None).unwrap();
        assert_eq!(p.sequence(), ["made", "pause_writing"]);
        // Raising it again does not resume: only a drain does (asyncio's rule).
        t.set_write_buffer_limits(Some(64 << 20), None).unwrap();
        assert_eq!(p.count("resume_writing"), 0);
        t.abort();
        server.close();
    });
}

#[test]
fn writelines_is_vectored_and_keeps_the_order() {
    run(async {
        let (server, port, acc) = recorder_server(PAUSED).await;
        let (t, _p) = client(port, Behaviour::default()).await;
        let peer = acc.nth(0).await;
        // More slices than one sendmsg takes, empty ones, and a large one that the
        // kernel cannot take at once.
        let mut parts: Vec<Vec<u8>> = (0..3000).map(|i| format!("<{i}>").into_bytes()).collect();
        parts.insert(1500, pattern(8 << 20));
        parts.insert(10, Vec::new());
        let refs: Vec<&[u8]> = parts.iter().map(|v| v.as_slice()).collect();
        t.writelines(&refs).unwrap();
        assert!(t.get_write_buffer_size() > 0);
        // Appended behind what is buffered.
        t.writelines(&[b"-tail-", b"", b"end"]).unwrap();
        t.writelines(&[]).unwrap();
        let mut want = parts.concat();
        want.extend_from_slice(b"-tail-end");
        peer.transport().resume_reading();
        peer.wait_bytes(want.len()).await;
        assert!(*peer.data.borrow() == want);
        server.close();
    });
}

#[test]
fn writelines_runs_the_pause_check() {
    run(async {
        let (server, port, acc) = recorder_server(PAUSED).await;
        let (t, p) = client(port, Behaviour::default()).await;
        let _peer = acc.nth(0).await;
        let big = vec![3u8; 1 << 20];
        let mut calls = 0;
        while p.count("pause_writing") == 0 {
            assert!(calls < 256, "never paused");
            t.writelines(&[&big, b"x", &big]).unwrap();
            calls += 1;
        }
        assert!(t.get_write_buffer_size() > DEFAULT_HIGH_WATER);
        assert!(p.paused.get());
        t.abort();
        server.close();
    });
}

#[test]
fn eof_received_returning_true_keeps_the_transport_writable() {
    run(async {
        let (server, port, acc) = recorder_server(Behaviour {
            keep_open: true,
            ..Default::default()
        })
        .await;
        let (t, p) = client(port, Behaviour::default()).await;
        t.write(b"question").unwrap();
        t.write_eof().unwrap();
        let s = acc.nth(0).await;
        s.wait_event("eof").await;
        let st = s.transport();
        assert!(!st.is_closing(), "half-open, not closing");
        st.write(b"answer").unwrap();
        p.wait_bytes(6).await;
        assert_eq!(&*p.data.borrow(), b"answer");
        st.close();
        p.wait_lost().await;
        s.wait_lost().await;
        assert_eq!(s.sequence(), ["made", "data", "eof", "lost"]);
        assert_eq!(p.sequence(), ["made", "data", "eof", "lost"]);
        server.close();
    });
}

#[test]
fn write_eof_flushes_the_buffer_then_shuts_down_while_we_still_receive() {
    run(async {
        let (server, port, acc) = recorder_server(Behaviour {
            keep_open: true,
            pause_in_made: true,
            ..Default::default()
        })
        .await;
        let (t, p) = client(port, Behaviour::default()).await;
        let s = acc.nth(0).await;
        let sent = stuff(&t);
        t.write(b"!").unwrap();
        t.write_eof().unwrap();
        assert!(t.get_write_buffer_size() > 0, "EOF waits for the buffer");
        assert!(!t.is_closing());
        spin(5).await;
        s.transport().resume_reading();
        s.wait_event("eof").await;
        assert_eq!(s.data.borrow().len(), sent + 1, "everything before the EOF");
        assert_eq!(s.data.borrow().last(), Some(&b'!'));
        s.transport().write(b"thanks").unwrap();
        p.wait_bytes(6).await;
        assert_eq!(&*p.data.borrow(), b"thanks");
        s.transport().close();
        p.wait_lost().await;
        assert_eq!(p.sequence(), ["made", "data", "eof", "lost"]);
        server.close();
    });
}

#[test]
fn write_after_write_eof_is_an_error() {
    run(async {
        let (mut peer, t, _p) = accepted_pair(Behaviour::default(), |_| {}).await;
        assert!(t.can_write_eof());
        t.write(b"bye").unwrap();
        t.write_eof().unwrap();
        t.write_eof().unwrap(); // a no-op the second time
        for e in [
            t.write(b"more").unwrap_err(),
            t.writelines(&[b"more"]).unwrap_err(),
        ] {
            assert!(matches!(e, Error::Runtime(_)), "{e:?}");
            assert_eq!(
                e.to_string(),
                "RuntimeError: Cannot call write() after write_eof()"
            );
        }
        let mut got = Vec::new();
        peer.read_to_end(&mut got).unwrap(); // EOF arrived: bounded
        assert_eq!(got, b"bye");
    });
}

#[test]
fn close_flushes_the_buffer_then_calls_connection_lost_none() {
    run(async {
        let (server, port, acc) = recorder_server(PAUSED).await;
        let (t, p) = client(port, Behaviour::default()).await;
        let s = acc.nth(0).await;
        let sent = stuff(&t);
        t.close();
        assert!(t.is_closing());
        // asyncio accepts writes after close() while the buffer is still flushing.
        t.write(b"late").unwrap();
        spin(5).await;
        assert!(
            p.lost.borrow().is_none(),
            "not before the buffer is flushed"
        );
        s.transport().resume_reading();
        p.wait_lost().await;
        assert!(p.lost.borrow().as_ref().unwrap().is_none());
        s.wait_lost().await;
        assert_eq!(s.data.borrow().len(), sent + 4);
        assert_eq!(s.sequence(), ["made", "data", "eof", "lost"]);
        server.close();
    });
}

#[test]
fn abort_drops_the_buffer_and_calls_connection_lost_none() {
    run(async {
        let (server, port, acc) = recorder_server(PAUSED).await;
        let (t, p) = client(port, Behaviour::default()).await;
        let s = acc.nth(0).await;
        let sent = stuff(&t);
        t.abort();
        assert!(t.is_closing());
        assert_eq!(t.get_write_buffer_size(), 0);
        p.wait_lost().await;
        assert!(p.lost.borrow().as_ref().unwrap().is_none());
        p.assert_lifecycle();
        assert_eq!(p.count("data"), 0);
        assert_eq!(p.count("resume_writing"), 0, "no drain after abort");
        s.transport().resume_reading();
        s.wait_lost().await;
        assert!(s.data.borrow().len() < sent, "the buffered part never left");
        server.close();
    });
}

#[test]
fn writes_after_the_connection_is_lost_are_dropped() {
    run(async {
        let (_peer, t, p) = accepted_pair(Behaviour::default(), |_| {}).await;
        t.abort();
        p.wait_lost().await;
        for _ in 0..10 {
            t.write(b"into the void").unwrap();
            t.writelines(&[b"and", b"more"]).unwrap();
        }
        assert_eq!(t.get_write_buffer_size(), 0);
        t.write_eof().unwrap();
        t.close();
        spin(3).await;
        assert_eq!(p.sequence(), ["made", "lost"]);
    });
}

#[test]
fn peer_reset_gives_connection_lost_with_connection_reset() {
    run(async {
        let (peer, _t, p) = accepted_pair(Behaviour::default(), |_| {}).await;
        set_linger_zero(&peer);
        drop(peer); // RST
        p.wait_lost().await;
        assert_eq!(p.sequence(), ["made", "lost(err)"]);
        assert_eq!(p.lost_error().kind(), ErrorKind::ConnectionReset);
    });
}

#[test]
fn closing_the_loop_releases_open_connections() {
    let (p, s) = run(async {
        let (_server, port, acc) = recorder_server(Behaviour {
            echo: true,
            ..Default::default()
        })
        .await;
        let (t, p) = client(port, Behaviour::default()).await;
        t.write(b"x").unwrap();
        p.wait_bytes(1).await;
        (p, acc.nth(0).await)
    });
    // The loop closed with both ends open: no transport <-> protocol cycle is left.
    assert_eq!(Rc::strong_count(&p), 1);
    assert_eq!(Rc::strong_count(&s), 1);
}

#[test]
fn a_panicking_protocol_is_reported_and_does_not_hurt_its_neighbours() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let reports = capture_reports(&lp);
        let acc = Rc::new(Accepted::default());
        let factory = recorder_factory(&acc, |i| Behaviour {
            panic_on_data: i == 0,
            echo: i != 0,
            ..Default::default()
        });
        let server = lp
            .create_server_with(factory, Some("127.0.0.1"), 0, ServerOptions::default())
            .await
            .unwrap();
        let port = port_of(&server);
        let (bad_t, bad_c) = client(port, Behaviour::default()).await;
        let bad = acc.nth(0).await;
        let (good_t, good_c) = client(port, Behaviour::default()).await;
        let _good = acc.nth(1).await;
        bad_t.write(b"boom").unwrap();
        bad.wait_lost().await;
        assert_eq!(bad.sequence(), ["made", "lost(err)"]);
        assert!(matches!(bad.lost_error(), Error::Panic(m) if m == "protocol bug on purpose"));
        bad_c.wait_lost().await; // the server side was aborted
        {
            let r = reports.borrow();
            assert_eq!(r.len(), 1, "{r:?}");
            assert_eq!(r[0].0, "Fatal error: protocol.data_received() call failed.");
            assert!(matches!(r[0].1, Some(Error::Panic(_))));
        }
        good_t.write(b"still here").unwrap();
        good_c.wait_bytes(10).await;
        assert_eq!(&*good_c.data.borrow(), b"still here");
        assert_eq!(server.client_count(), 1);
        server.close();
    });
}

#[test]
fn extra_info_gives_peername_sockname_and_socket() {
    run(async {
        let (server, port, acc) = recorder_server(Behaviour::default()).await;
        let (t, _p) = client(port, Behaviour::default()).await;
        let s = acc.nth(0).await.transport();
        let addr = |t: &Rc<dyn Transport>, name| match t.get_extra_info(name) {
            Some(ExtraInfo::Address(Address::Inet(a))) => a,
            other => panic!("{name}: {other:?}"),
        };
        assert_eq!(addr(&t, "peername"), ([127, 0, 0, 1], port).into());
        assert_eq!(addr(&s, "sockname"), ([127, 0, 0, 1], port).into());
        assert_eq!(addr(&t, "sockname"), addr(&s, "peername"));
        let fd = |t: &Rc<dyn Transport>| match t.get_extra_info("socket") {
            Some(ExtraInfo::Socket(fd)) => fd,
            other => panic!("socket: {other:?}"),
        };
        assert!(fd(&t) > 2 && fd(&s) > 2 && fd(&t) != fd(&s));
        assert_eq!(t.get_extra_info("no such thing"), None);
        server.close();
    });
}

#[test]
fn the_protocol_stays_reachable_after_create_connection() {
    run(async {
        let (server, port, _acc) = recorder_server(Behaviour {
            echo: true,
            ..Default::default()
        })
        .await;
        let (t, p) = client(port, Behaviour::default()).await;
        assert!(Rc::strong_count(&p) >= 2, "shared with the transport");
        t.write(b"state").unwrap();
        p.wait_bytes(5).await;
        assert_eq!(&*p.data.borrow(), b"state");
        t.close();
        p.wait_lost().await;
        drop(t);
        assert_eq!(Rc::strong_count(&p), 1, "the transport let go of it");
        server.close();
    });
}

#[test]
fn connect_accepted_socket_serves_a_tcp_connection() {
    run(async {
        let (mut peer, t, p) = accepted_pair(
            Behaviour {
                echo: true,
                ..Default::default()
            },
            |_| {},
        )
        .await;
        peer.write_all(b"ping").unwrap();
        p.wait_bytes(4).await;
        let mut buf = [0u8; 4];
        peer.read_exact(&mut buf).unwrap(); // echoed already: bounded
        assert_eq!(&buf, b"ping");
        assert!(matches!(
            t.get_extra_info("peername"),
            Some(ExtraInfo::Address(Address::Inet(a))) if a == peer.local_addr().unwrap()
        ));
        drop(peer);
        p.wait_lost().await;
        assert_eq!(p.sequence(), ["made", "data", "eof", "lost"]);
    });
}

/// A transport for a [`Lender`] over a connection whose peer ran `before`; the result of
/// `connect_accepted_socket_with` (an error if the connection died while starting).
async fn lender_pair(
    size: usize,
    before: impl FnOnce(&mut TcpStream),
) -> (TcpStream, Rc<Lender>, asyncio::Result<()>) {
    let lp = asyncio::get_running_loop().unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut peer = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (ours, _) = l.accept().unwrap();
    before(&mut peer);
    let p = Rc::new(Lender::new(size));
    let p2 = p.clone();
    let r = lp
        .connect_accepted_socket_with(move || AnyProtocol::Buffered(p2), ours)
        .await
        .map(|_| ());
    (peer, p, r)
}

#[test]
fn a_buffered_protocol_receives_everything_through_its_own_buffer() {
    run(async {
        let data = pattern(100_001);
        let (mut peer, p, r) = lender_pair(7, |_| {}).await;
        r.unwrap();
        spin(3).await; // idle, waiting for an edge
                       // A 7-byte buffer: many reads, and a short one at the end right before the EOF,
                       // which arrives in the same edge.
        peer.write_all(&data).unwrap();
        peer.shutdown(Shutdown::Write).unwrap();
        p.signal.until(|| p.lost.borrow().is_some()).await;
        assert_eq!(*p.events.borrow(), ["made", "data", "eof", "lost"]);
        assert!(*p.got.borrow() == data);
        assert!(p.lost.borrow().as_ref().unwrap().is_none());
    });
}

#[test]
fn an_empty_buffer_from_get_buffer_is_fatal() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let reports = capture_reports(&lp);
        let (_peer, p, r) = lender_pair(0, |peer| peer.write_all(b"x").unwrap()).await;
        // The first read runs before the creation returns, so the creation fails too.
        let want = "RuntimeError: get_buffer() returned an empty buffer";
        assert_eq!(r.unwrap_err().to_string(), want);
        p.signal.until(|| p.lost.borrow().is_some()).await;
        assert_eq!(*p.events.borrow(), ["made", "lost"]);
        match &*p.lost.borrow() {
            Some(Some(e)) => assert_eq!(e.to_string(), want),
            other => panic!("{other:?}"),
        }
        assert_eq!(reports.borrow().len(), 1);
        assert_eq!(
            reports.borrow()[0].0,
            "Fatal error: protocol.get_buffer() call failed."
        );
    });
}

/// Counts `data_received` calls per loop iteration (a ticker task advances `tick` once
/// per iteration).
#[derive(Default)]
struct PerTick {
    tick: Rc<Cell<usize>>,
    calls: RefCell<std::collections::BTreeMap<usize, usize>>,
    bytes: Cell<usize>,
    signal: Signal,
}

impl BaseProtocol for PerTick {}

impl asyncio::Protocol for PerTick {
    fn data_received(&self, data: &[u8]) {
        *self.calls.borrow_mut().entry(self.tick.get()).or_default() += 1;
        self.bytes.set(self.bytes.get() + data.len());
        self.signal.notify();
    }
}

#[test]
fn a_fast_peer_gets_at_most_four_reads_per_iteration() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let (ours, mut peer) = std::os::unix::net::UnixStream::pair().unwrap();
        peer.set_nonblocking(true).unwrap();
        set_sndbuf(&peer, 8 << 20);
        let tick = Rc::new(Cell::new(0usize));
        let tk = tick.clone();
        let (t, p) = lp
            .connect_accepted_socket(
                move || PerTick {
                    tick: tk,
                    ..Default::default()
                },
                ours,
            )
            .await
            .unwrap();
        // Several MiB wait in the socket while reading is paused.
        t.pause_reading();
        let chunk = vec![5u8; 64 << 10];
        let mut sent = 0;
        while sent < 4 << 20 {
            match peer.write(&chunk) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(sent >= 3 << 20, "the socket took only {sent} bytes");
        // Each iteration: one more byte (a fresh readiness edge) and one tick.
        let sent = Rc::new(Cell::new(sent));
        let (tk, s2) = (tick.clone(), sent.clone());
        let ticker = asyncio::create_task(async move {
            for _ in 0..200 {
                tk.set(tk.get() + 1);
                if peer.write(b"+").is_ok() {
                    s2.set(s2.get() + 1);
                }
                asyncio::yield_now().await;
            }
            peer
        });
        t.resume_reading();
        let _peer = ticker.await.unwrap();
        p.signal.until(|| p.bytes.get() == sent.get()).await;
        let calls = p.calls.borrow();
        let most = calls.values().max().copied().unwrap_or(0);
        // MAX_READS_PER_EVENT, then the transport yields to the rest of the loop,
        // whatever new edges arrive meanwhile.
        let first: Vec<_> = calls.iter().take(4).collect();
        assert!(
            most <= 4,
            "{most} reads of one transport in one iteration: {first:?}"
        );
    });
}
