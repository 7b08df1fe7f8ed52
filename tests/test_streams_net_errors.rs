//! Streams over real loopback sockets when things go wrong: drain after close, a peer
//! that disconnects or resets, writers dropped without closing (also after the loop
//! closed), a failing client callback, refused and cancelled connects. The transport
//! regression found by the stream tests (an EOF queued behind data) is checked here
//! with a plain protocol too.

mod support_streams;
mod support_transports;

use std::cell::RefCell;
use std::future::{poll_fn, Future as StdFuture};
use std::io::{ErrorKind, Read, Write};
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use asyncio::{ConnectOptions, Error, EventLoop, ServerOptions};
use support_streams::*;
use support_transports::*;

fn is_connection_error(e: &Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted
    )
}

/// Wait until the std socket `s` sees EOF (or a reset: also "closed"), bounded.
async fn peer_sees_close(s: &mut std::net::TcpStream) -> Vec<u8> {
    s.set_nonblocking(true).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    for _ in 0..5000 {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                asyncio::sleep(Duration::from_millis(1)).await
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("peer read: {e}"),
        }
    }
    panic!("the peer never saw the connection close");
}

#[test]
fn drain_after_close_is_connection_lost() {
    run(async {
        let (server, (_r, w), (mut sr, _sw)) = connected(asyncio::streams::DEFAULT_LIMIT).await;
        w.close();
        w.write(b"x").unwrap(); // accepted and dropped, as in asyncio
        let e = w.drain().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionReset);
        assert_eq!(e.to_string(), Error::connection_lost().to_string());
        // Again: still the same answer, at once.
        let e = w.drain().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionReset);
        w.wait_closed().await.unwrap();
        assert_eq!(sr.read_to_end().await.unwrap(), b"", "the x was never sent");
        server.close();
    });
}

#[test]
fn write_drain_loop_after_peer_disconnect_ends_with_an_error() {
    run(async {
        let (l, port) = std_listener();
        let (mut r, w) = asyncio::open_connection("127.0.0.1", port).await.unwrap();
        let peer = accept_now(&l);
        drop(peer); // a plain close (FIN); our next writes get RST back
        let chunk = [b'z'; 1024];
        let mut outcome = None;
        for i in 0..10_000 {
            w.write(&chunk).unwrap();
            if let Err(e) = w.drain().await {
                outcome = Some((i, e));
                break;
            }
        }
        let (i, e) = outcome.expect("the loop must end with an error, not spin");
        assert!(is_connection_error(&e), "iteration {i}: {e}");
        assert!(w.is_closing());
        // The reader got the EOF first; the error ends the connection.
        let end = r.read(100).await;
        assert!(
            matches!(&end, Ok(v) if v.is_empty()) || end.is_err(),
            "{end:?}"
        );
        assert!(w.wait_closed().await.is_err());
    });
}

#[test]
fn unix_write_drain_loop_after_peer_disconnect_ends_with_an_error() {
    let dir = TempDir::new("gone");
    let path = dir.path("g.sock");
    run(async move {
        let (server, acc) = handover_unix_server(&path).await;
        let (_r, w) = asyncio::open_unix_connection(&path).await.unwrap();
        let (sr, sw) = acc.next().await;
        // The peer goes away without reading.
        sw.transport().abort();
        drop((sr, sw));
        let chunk = [b'u'; 1024];
        let mut outcome = None;
        for i in 0..10_000 {
            w.write(&chunk).unwrap();
            if let Err(e) = w.drain().await {
                outcome = Some((i, e));
                break;
            }
        }
        let (i, e) = outcome.expect("the loop must end with an error, not spin");
        assert!(is_connection_error(&e), "iteration {i}: {e}");
        assert!(w.is_closing());
        server.close();
        server.wait_closed().await.unwrap();
    });
}

#[test]
fn peer_reset_fails_reads_wait_closed_and_drain() {
    run(async {
        let (l, port) = std_listener();
        let (r, w) = asyncio::open_connection("127.0.0.1", port).await.unwrap();
        let mut peer = accept_now(&l);
        peer.write_all(b"partial line").unwrap();
        let reading = asyncio::create_task(async move {
            let mut r = r;
            let first = r.readline().await;
            let again = r.read(10).await;
            (first, again)
        });
        // Let the reader see the partial line and wait for more.
        idle(5).await;
        reset(peer);
        let (first, again) = reading.await.unwrap();
        for res in [first.map(|_| ()), again.map(|_| ())] {
            let e = res.expect_err("reads fail after a reset");
            assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");
        }
        let e = w.wait_closed().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");
        let e = w.wait_closed().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionReset, "again: {e}");
        w.write(b"late").unwrap(); // dropped, never an error
        let e = w.drain().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");
        assert!(w.is_closing());
    });
}

#[test]
fn dropping_an_unclosed_writer_closes_the_connection() {
    run(async {
        // Client side dropped: the server sees EOF.
        let (server, acc) = handover_server(asyncio::streams::DEFAULT_LIMIT).await;
        let port = port_of(&server);
        let (mut cr, cw) = asyncio::open_connection("127.0.0.1", port).await.unwrap();
        let (mut sr, sw) = acc.next().await;
        cw.write(b"last words").unwrap();
        drop(cw);
        assert_eq!(sr.read_to_end().await.unwrap(), b"last words");
        // And our own reader ends cleanly: the transport was closed, not leaked.
        assert_eq!(cr.read_to_end().await.unwrap(), b"");
        sw.close();

        // Server side dropped (a callback that forgets its writer): the client sees EOF.
        let (l, port) = std_listener();
        let (r, w) = asyncio::open_connection("127.0.0.1", port).await.unwrap();
        let mut peer = accept_now(&l);
        w.write(b"bye").unwrap();
        drop(w);
        drop(r);
        assert_eq!(peer_sees_close(&mut peer).await, b"bye");
        server.close();
        server.wait_closed().await.unwrap();
    });
}

#[test]
fn dropping_a_writer_after_the_loop_closed_does_not_panic() {
    let (l, port) = std_listener();
    let lp = EventLoop::new().unwrap();
    let (pair, server, server_pair) = lp
        .run_until_complete(async move {
            let (server, acc) = handover_server(asyncio::streams::DEFAULT_LIMIT).await;
            let sp = port_of(&server);
            let (_r, _w) = asyncio::open_connection("127.0.0.1", sp).await.unwrap();
            let server_pair = acc.next().await;
            let pair = asyncio::open_connection("127.0.0.1", port).await.unwrap();
            ((pair, (_r, _w)), server, server_pair)
        })
        .unwrap();
    let mut peer = accept_now(&l);
    lp.close().unwrap();
    let ((r, w), other) = pair;
    assert!(w.is_closing(), "a closed loop's transports are closing");
    w.write(b"after close").unwrap(); // dropped silently, no panic
    drop(w);
    drop(r);
    drop(other);
    drop(server_pair);
    drop(server);
    drop(lp);
    // Nothing keeps the socket alive: the peer sees it closed.
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 16];
    match peer.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("unexpected data: {:?}", &buf[..n]),
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}"),
    }
}

#[test]
fn callback_error_or_panic_is_reported_and_closes_only_that_connection() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let reports: Rc<RefCell<Vec<(String, String)>>> = Rc::default();
        let rep = reports.clone();
        lp.set_exception_handler(Some(
            move |_: &EventLoop, ctx: &asyncio::ExceptionContext| {
                let exc = ctx.exception.as_ref().map(|e| format!("{e:?}"));
                rep.borrow_mut()
                    .push((ctx.message.clone(), exc.unwrap_or_default()));
            },
        ));
        // Writers kept by a failing callback: the connection must close anyway.
        let kept: Rc<RefCell<Vec<asyncio::StreamWriter>>> = Rc::default();
        let k = kept.clone();
        let server = asyncio::start_server(
            move |mut r, w| {
                let k = k.clone();
                async move {
                    let line = r.readline().await?;
                    match &line[..] {
                        b"err\n" => {
                            k.borrow_mut().push(w);
                            return Err(Error::value("bad request"));
                        }
                        b"panic\n" => panic!("callback bug"),
                        _ => {}
                    }
                    w.write(&line)?;
                    w.close();
                    w.wait_closed().await
                }
            },
            Some("127.0.0.1"),
            0,
        )
        .await
        .unwrap();
        let port = port_of(&server);
        let (mut ok_r, ok_w) = asyncio::open_connection("127.0.0.1", port).await.unwrap();
        for what in [&b"err\n"[..], b"panic\n"] {
            let (mut r, w) = asyncio::open_connection("127.0.0.1", port).await.unwrap();
            w.write(what).unwrap();
            assert_eq!(r.read_to_end().await.unwrap(), b"", "closed on {what:?}");
            w.close();
            w.wait_closed().await.unwrap();
        }
        assert!(kept.borrow()[0].is_closing());
        // The client that connected first is still served.
        ok_w.write(b"fine\n").unwrap();
        assert_eq!(ok_r.readline().await.unwrap(), b"fine\n");
        assert_eq!(ok_r.read_to_end().await.unwrap(), b"");

        let reports = reports.borrow().clone();
        assert_eq!(reports.len(), 2, "{reports:?}");
        for (msg, _) in &reports {
            assert_eq!(msg, "Unhandled exception in client_connected_cb");
        }
        assert!(reports[0].1.contains("bad request"), "{reports:?}");
        assert!(reports[1].1.contains("callback bug"), "{reports:?}");
        server.close();
        server.wait_closed().await.unwrap();
    });
}

#[test]
fn open_connection_to_a_closed_port_is_refused() {
    let dir = TempDir::new("refused");
    let path = dir.path("nobody.sock");
    run(async move {
        let (l, port) = std_listener();
        drop(l);
        match asyncio::open_connection("127.0.0.1", port).await {
            Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}"),
            Ok(_) => panic!("connected to a closed port"),
        }
        match asyncio::open_unix_connection(&path).await {
            Err(e) => assert_eq!(e.kind(), ErrorKind::NotFound, "{e}"),
            Ok(_) => panic!("connected to a missing socket"),
        }
        // A socket file nobody listens on is refused.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        match asyncio::open_unix_connection(&path).await {
            Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}"),
            Ok(_) => panic!("connected to a dead socket"),
        }
    });
}

/// Poll `fut` once.
async fn poll_once<F: StdFuture + Unpin>(fut: &mut F) -> Poll<F::Output> {
    poll_fn(|cx| Poll::Ready(std::pin::Pin::new(&mut *fut).poll(cx))).await
}

#[test]
fn cancelling_open_connection_midway_leaks_nothing() {
    run(async {
        // A listener that never accepts while the connects run: the kernel completes
        // the handshakes, so every stage of open_connection is reachable.
        let (l, port) = std_listener();
        let (mut completed, mut cancelled_connected) = (0, 0);
        for polls in 0..8 {
            let mut fut = Box::pin(asyncio::open_connection("127.0.0.1", port));
            let mut done = None;
            for _ in 0..polls {
                if let Poll::Ready(r) = poll_once(&mut fut).await {
                    done = Some(r.unwrap());
                    break;
                }
                asyncio::yield_now().await;
            }
            drop(fut);
            if done.is_some() {
                completed += 1;
            }
            let finished = done.is_some();
            drop(done); // a finished pair closes through the writer's drop
                        // Whatever was opened is closed: a connection that reached the listener
                        // ends with EOF, nothing stays open.
            l.set_nonblocking(true).unwrap();
            match l.accept() {
                Ok((mut s, _)) => {
                    assert!(peer_sees_close(&mut s).await.is_empty(), "polls={polls}");
                    if !finished {
                        cancelled_connected += 1;
                    }
                }
                Err(e) => assert_eq!(e.kind(), ErrorKind::WouldBlock, "polls={polls}"),
            }
        }
        assert!(completed > 0, "enough polls finish the connect");
        assert!(
            cancelled_connected > 0,
            "some connects were cancelled after the socket connected"
        );
        // Nothing left behind in the accept queue.
        idle(5).await;
        assert_eq!(l.accept().unwrap_err().kind(), ErrorKind::WouldBlock);

        // The same through wait_for with a timeout that expires at once.
        let r =
            asyncio::wait_for(asyncio::open_connection("127.0.0.1", port), Duration::ZERO).await;
        assert!(matches!(r, Err(Error::Timeout)));
        idle(5).await;
        if let Ok((mut s, _)) = l.accept() {
            assert!(peer_sees_close(&mut s).await.is_empty());
        }
    });
}

#[test]
fn connect_timeout_option_bounds_open_connection() {
    run(async {
        let (l, port) = std_listener();
        let opts = ConnectOptions {
            timeout: Some(Duration::from_secs(5)),
            ..Default::default()
        };
        let (_r, w) = asyncio::open_connection_with("127.0.0.1", port, 1024, opts)
            .await
            .unwrap();
        let mut peer = accept_now(&l);
        w.write(b"ok").unwrap();
        w.close();
        assert_eq!(peer_sees_close(&mut peer).await, b"ok");
    });
}

/// The transport bug the half-close test found, with a plain (non-buffered) protocol:
/// data and the peer's FIN queued together must end with `eof_received`, even when the
/// last read of the data is short.
#[test]
fn eof_queued_behind_data_reaches_a_plain_protocol() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let protos: Rc<RefCell<Vec<Rc<Recorder>>>> = Rc::default();
        let ps = protos.clone();
        let server = lp
            .create_server_with(
                move || {
                    let p = Rc::new(Recorder::new(Behaviour::default()));
                    ps.borrow_mut().push(p.clone());
                    asyncio::AnyProtocol::Stream(p)
                },
                Some("127.0.0.1"),
                0,
                ServerOptions::default(),
            )
            .await
            .unwrap();
        let port = port_of(&server);
        let (_r, w) = asyncio::open_connection("127.0.0.1", port).await.unwrap();
        // Wait until the server protocol exists, then send more than one 256 KiB read
        // and the FIN at once.
        eventually("the server protocol", || !protos.borrow().is_empty()).await;
        let p = protos.borrow()[0].clone();
        p.wait_event("made").await;
        let total = 256 * 1024 + 44_000;
        w.write(&pattern(total)).unwrap();
        w.write_eof().unwrap();
        p.wait_lost().await;
        assert_eq!(p.data.borrow().len(), total);
        assert!(*p.data.borrow() == pattern(total));
        assert_eq!(p.sequence(), ["made", "data", "eof", "lost"]);
        w.close();
        server.close();
        server.wait_closed().await.unwrap();
    });
}
