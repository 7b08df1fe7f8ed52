//! Streams over real loopback sockets (TCP and Unix): round trips, reads across TCP
//! segments, flow control in both directions, half-close, `wait_closed`, idle memory,
//! and `Server::wait_closed` with stream clients. One test per rule of
//! `asyncio-semantics.md` §1; the error paths are in `test_streams_net_errors.rs`.

mod support_streams;
mod support_transports;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use asyncio::{Address, Error, ServerOptions, StreamWriter};
use support_streams::*;
use support_transports::*;

/// The most one transport read brings in (asyncio's `max_size`, 256 KiB).
const MAX_READ: usize = 256 * 1024;
/// The transport's default write-buffer high-water mark.
const HIGH: usize = 64 * 1024;

fn inet(a: Option<Address>) -> std::net::SocketAddr {
    match a {
        Some(Address::Inet(a)) => a,
        other => panic!("not a TCP address: {other:?}"),
    }
}

#[test]
fn echo_round_trip_with_fresh_reader_and_writer_per_client() {
    run(async {
        // Server side of every connection: (protocol pointer, peername, sockname).
        let seen: Rc<RefCell<Vec<(usize, Address, Address)>>> = Rc::default();
        let s = seen.clone();
        let server = asyncio::start_server(
            move |mut r, w| {
                let s = s.clone();
                async move {
                    let ptr = Rc::as_ptr(w.protocol()) as usize;
                    s.borrow_mut()
                        .push((ptr, w.peername().unwrap(), w.sockname().unwrap()));
                    while let Some(line) = r.next_line().await {
                        w.write(&line?)?;
                        w.drain().await?;
                    }
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

        let (mut ra, wa) = asyncio::open_connection("127.0.0.1", port).await.unwrap();
        let (mut rb, wb) = asyncio::open_connection("127.0.0.1", port).await.unwrap();
        assert_eq!(inet(wa.peername()).port(), port);
        assert_eq!(inet(wa.peername()).ip().to_string(), "127.0.0.1");
        assert_ne!(inet(wa.sockname()), inet(wb.sockname()));

        // A's line is incomplete while B's goes through: the buffers are separate.
        wa.write(b"hello ").unwrap();
        wa.drain().await.unwrap();
        wb.write(b"world\n").unwrap();
        assert_eq!(rb.readline().await.unwrap(), b"world\n");
        wa.write(b"there\n").unwrap();
        assert_eq!(ra.readline().await.unwrap(), b"hello there\n");
        for i in 0..50 {
            let line = format!("line {i}\n");
            wb.write(line.as_bytes()).unwrap();
            assert_eq!(rb.readline().await.unwrap(), line.as_bytes());
        }

        let s = seen.borrow().clone();
        assert_eq!(s.len(), 2, "one callback per client");
        assert_ne!(
            s[0].0, s[1].0,
            "a fresh protocol (reader, writer) per client"
        );
        let clients = [
            (inet(wa.sockname()), inet(wa.peername())),
            (inet(wb.sockname()), inet(wb.peername())),
        ];
        for (_, peer, sock) in &s {
            let pair = (inet(Some(peer.clone())), inet(Some(sock.clone())));
            assert!(clients.contains(&pair), "{pair:?} not in {clients:?}");
        }

        for (r, w) in [(&mut ra, &wa), (&mut rb, &wb)] {
            w.write_eof().unwrap();
            assert_eq!(r.read_to_end().await.unwrap(), b"");
            assert!(r.at_eof());
            w.close();
            w.wait_closed().await.unwrap();
        }
        server.close();
        server.wait_closed().await.unwrap();
    });
}

#[test]
fn unix_echo_round_trip_and_addresses() {
    let dir = TempDir::new("echo");
    let path = dir.path("s.sock");
    let p = path.clone();
    run(async move {
        type Addrs = (Option<Address>, Option<Address>);
        let seen: Rc<RefCell<Vec<Addrs>>> = Rc::default();
        let s = seen.clone();
        let server = asyncio::start_unix_server(
            move |mut r, w| {
                let s = s.clone();
                async move {
                    s.borrow_mut().push((w.peername(), w.sockname()));
                    while let Some(line) = r.next_line().await {
                        w.write(&line?)?;
                    }
                    w.close();
                    w.wait_closed().await
                }
            },
            &p,
        )
        .await
        .unwrap();
        assert_eq!(server.local_addrs(), [Address::Unix(Some(p.clone()))]);

        let (mut r, w) = asyncio::open_unix_connection(&p).await.unwrap();
        assert_eq!(w.peername(), Some(Address::Unix(Some(p.clone()))));
        assert_eq!(w.sockname(), Some(Address::Unix(None)), "client is unnamed");
        let big = pattern(200_000);
        w.write(b"one\ntwo\n").unwrap();
        w.write(&big).unwrap();
        w.write(b"\n").unwrap();
        assert_eq!(r.readline().await.unwrap(), b"one\n");
        assert_eq!(r.readline().await.unwrap(), b"two\n");
        // Over the default limit for readline, so read it exactly.
        assert_eq!(r.readexactly(big.len()).await.unwrap(), big);
        assert_eq!(r.readline().await.unwrap(), b"\n");

        let s = seen.borrow().clone();
        assert_eq!(
            s,
            [(
                Some(Address::Unix(None)),
                Some(Address::Unix(Some(p.clone())))
            )]
        );
        w.close();
        w.wait_closed().await.unwrap();
        server.close();
        server.wait_closed().await.unwrap();
        assert!(!p.exists(), "the socket file is removed on close");
    });
    drop(dir);
    assert!(!path.exists());
}

/// Write `pieces` one by one with a drain and a few loop turns between them, so each
/// arrives in its own TCP segment (loopback delivers a send at once).
async fn trickle(w: &StreamWriter, pieces: &[&[u8]]) {
    for p in pieces {
        w.write(p).unwrap();
        w.drain().await.unwrap();
        for _ in 0..3 {
            asyncio::yield_now().await;
        }
    }
}

#[test]
fn reads_across_many_small_chunks_and_split_separators() {
    run(async {
        let (server, (mut r, w), (_sr, sw)) = connected(asyncio::streams::DEFAULT_LIMIT).await;
        let sender = asyncio::create_task(async move {
            // readline: a line in 1-byte pieces.
            let line = b"a line in tiny pieces\n";
            let pieces: Vec<&[u8]> = line.chunks(1).collect();
            trickle(&sw, &pieces).await;
            // readuntil: a 4-byte separator split 1/2/1 across segments, with a
            // decoy prefix of it ("\r\n\r") inside the data.
            trickle(&sw, &[b"head: x\r", b"\n\rmore\r", b"\n\r", b"\n", b"tail"]).await;
            // readexactly: 10_000 bytes in 7-byte pieces.
            let data = pattern(10_000);
            let pieces: Vec<&[u8]> = data.chunks(7).collect();
            trickle(&sw, &pieces).await;
            // readuntil_any: the match that ends first wins, split across segments.
            trickle(&sw, &[b"key=va", b"lue;", b"\r", b"\nrest\n"]).await;
            sw.close();
            sw.wait_closed().await.unwrap();
        });
        assert_eq!(r.readline().await.unwrap(), b"a line in tiny pieces\n");
        assert_eq!(
            r.readuntil(b"\r\n\r\n").await.unwrap(),
            b"head: x\r\n\rmore\r\n\r\n"
        );
        assert_eq!(r.readexactly(4).await.unwrap(), b"tail");
        let got = r.readexactly(10_000).await.unwrap();
        assert_eq!(got, pattern(10_000));
        assert_eq!(
            r.readuntil_any(&[b"\r\n", b";"]).await.unwrap(),
            b"key=value;"
        );
        assert_eq!(r.readuntil_any(&[b"\r\n", b";"]).await.unwrap(), b"\r\n");
        assert_eq!(r.readline().await.unwrap(), b"rest\n");
        assert_eq!(r.readline().await.unwrap(), b"", "EOF: empty line");
        assert!(r.at_eof());
        sender.await.unwrap();
        w.close();
        w.wait_closed().await.unwrap();
        server.close();
        server.wait_closed().await.unwrap();
    });
}

#[test]
fn read_flow_control_pauses_the_socket_and_keeps_the_buffer_bounded() {
    const LIMIT_: usize = 1024;
    const TOTAL: usize = 8 << 20;
    let bound = 2 * LIMIT_ + MAX_READ;
    run(async move {
        let (server, (_cr, cw), (mut r, sw)) = connected(LIMIT_).await;
        let writer = asyncio::create_task(async move {
            let data = pattern(TOTAL);
            for c in data.chunks(64 * 1024) {
                cw.write(c).unwrap();
                cw.drain().await.unwrap();
            }
            cw.close();
            cw.wait_closed().await.unwrap();
        });
        // Nobody reads: the server transport stops reading once > 2 x limit is
        // buffered.
        let t = sw.transport().clone();
        eventually("the reading transport pauses", || !t.is_reading()).await;
        idle(20).await;
        assert!(!t.is_reading(), "stays paused while nobody reads");
        let held = r.buffered();
        assert!(held > 2 * LIMIT_, "paused only over 2 x limit: {held}");
        assert!(
            held <= bound,
            "buffer bounded while paused: {held} > {bound}"
        );
        assert!(!writer.done(), "the writer is held back by TCP");

        // Read it all in pieces smaller than the limit; check every byte and the bound.
        let mut at = 0;
        let mut resumed = 0;
        let mut was_reading = t.is_reading();
        while at < TOTAL {
            let n = (TOTAL - at).min(1000);
            let chunk = r.readexactly(n).await.unwrap();
            assert!(is_pattern(&chunk, at), "corrupt data at {at}");
            at += n;
            let b = r.buffered();
            assert!(b <= bound, "buffer {b} over {bound} at {at}");
            let reading = t.is_reading();
            if reading && !was_reading {
                resumed += 1;
            }
            was_reading = reading;
        }
        assert!(resumed > 0, "reading resumed");
        assert_eq!(r.read_to_end().await.unwrap(), b"");
        writer.await.unwrap();
        sw.close();
        sw.wait_closed().await.unwrap();
        server.close();
        server.wait_closed().await.unwrap();
    });
}

#[test]
fn read_with_echoes_a_large_stream_in_order_under_flow_control() {
    // The zero-copy echo of `echo_server --lend`, with a small limit so the server's
    // reader pauses its transport many times while bytes are lent to `write`.
    const TOTAL: usize = 4 << 20;
    run(async move {
        let (server, (mut cr, cw), (mut sr, sw)) = connected(1024).await;
        let echo = asyncio::create_task(async move {
            let mut lends = 0;
            loop {
                let sent = sr
                    .read_with(65536, |data| sw.write(data).map(|()| data.len()))
                    .await
                    .unwrap()
                    .unwrap();
                if sent == 0 {
                    break;
                }
                lends += 1;
                sw.drain().await.unwrap();
            }
            sw.close();
            sw.wait_closed().await.unwrap();
            lends
        });
        let writer = asyncio::create_task(async move {
            for c in pattern(TOTAL).chunks(64 * 1024) {
                cw.write(c).unwrap();
                cw.drain().await.unwrap();
            }
            cw.write_eof().unwrap();
            cw
        });
        let back = cr.read_to_end().await.unwrap();
        assert_eq!(back.len(), TOTAL, "every byte came back");
        assert!(is_pattern(&back, 0), "in order, unchanged");
        assert!(echo.await.unwrap() > 1, "in many lent chunks");
        let cw = writer.await.unwrap();
        cw.close();
        cw.wait_closed().await.unwrap();
        server.close();
        server.wait_closed().await.unwrap();
    });
}

#[test]
fn drain_bounds_the_write_buffer_against_a_peer_that_does_not_read() {
    run(async {
        let (server, (_cr, cw), (sr, sw)) = connected(asyncio::streams::DEFAULT_LIMIT).await;
        drain_against_a_silent_peer(cw, sr, &sw).await;
        server.close();
        server.wait_closed().await.unwrap();
    });
}

#[test]
fn unix_drain_bounds_the_write_buffer_against_a_peer_that_does_not_read() {
    let dir = TempDir::new("drain");
    let path = dir.path("d.sock");
    run(async move {
        let (server, acc) = handover_unix_server(&path).await;
        let (_cr, cw) = asyncio::open_unix_connection(&path).await.unwrap();
        let (sr, sw) = acc.next().await;
        drain_against_a_silent_peer(cw, sr, &sw).await;
        server.close();
        server.wait_closed().await.unwrap();
    });
}

/// Write 8 MB in 64 KiB chunks with `drain()` after each while the peer does not
/// read: the write buffer stays under high-water + one chunk and the writer is held
/// back; then the peer reads everything, intact.
async fn drain_against_a_silent_peer(
    cw: StreamWriter,
    mut sr: asyncio::StreamReader,
    sw: &StreamWriter,
) {
    const TOTAL: usize = 8 << 20;
    const CHUNK: usize = 64 * 1024;
    let cw = Rc::new(cw);
    let written = Rc::new(Cell::new(0usize));
    let max_buf = Rc::new(Cell::new(0usize));
    let (w, wr, mb) = (cw.clone(), written.clone(), max_buf.clone());
    let writer = asyncio::create_task(async move {
        let data = pattern(TOTAL);
        for c in data.chunks(CHUNK) {
            w.write(c).unwrap();
            let size = w.transport().get_write_buffer_size();
            mb.set(mb.get().max(size));
            w.drain().await.unwrap();
            wr.set(wr.get() + c.len());
        }
        w.close();
        w.wait_closed().await.unwrap();
    });
    let t = cw.transport().clone();
    let peer = sw.transport().clone();
    eventually(
        "the peer stops reading and the writer blocks in drain",
        || !peer.is_reading() && t.get_write_buffer_size() > HIGH,
    )
    .await;
    // Sends already in flight may still land; after that nothing moves.
    idle(30).await;
    let stuck = written.get();
    idle(30).await;
    assert_eq!(written.get(), stuck, "drain holds the writer back");
    assert!(stuck < TOTAL, "the kernel cannot take 8 MB");
    assert!(!writer.done());
    let m = max_buf.get();
    assert!(m <= HIGH + CHUNK, "write buffer {m} > high + chunk");

    // The peer reads now: every byte arrives, in order.
    let got = sr.read_to_end().await.unwrap();
    assert_eq!(got.len(), TOTAL);
    assert!(got == pattern(TOTAL), "data corrupted");
    writer.await.unwrap();
    let m = max_buf.get();
    assert!(m <= HIGH + CHUNK, "write buffer {m} > high + chunk");
    sw.close();
    sw.wait_closed().await.unwrap();
}

/// Fill `w`'s write buffer over its high-water mark against a peer that does not
/// read, then start `n` tasks that all wait in `drain()`. Returns their outcomes.
async fn blocked_drainers(w: &Rc<StreamWriter>, n: usize) -> Rc<RefCell<Vec<Result<(), Error>>>> {
    w.write(&pattern(8 << 20)).unwrap();
    assert!(w.transport().get_write_buffer_size() > HIGH);
    let out: Rc<RefCell<Vec<Result<(), Error>>>> = Rc::default();
    for _ in 0..n {
        let (w, out) = (w.clone(), out.clone());
        asyncio::create_task(async move {
            let r = w.drain().await;
            out.borrow_mut().push(r);
        });
    }
    idle(20).await;
    assert!(out.borrow().is_empty(), "drainers wait while paused");
    out
}

#[test]
fn writelines_pauses_writing_and_drain_waits() {
    run(async {
        let (server, (_cr, cw), (mut sr, sw)) = connected(asyncio::streams::DEFAULT_LIMIT).await;
        // asyncio 3.12-3.13.0 forgot to pause in writelines (gh-127655).
        let data = pattern(8 << 20);
        let parts: Vec<&[u8]> = data.chunks(100_000).collect();
        cw.writelines(&parts).unwrap();
        assert!(cw.transport().get_write_buffer_size() > HIGH);
        let r = asyncio::wait_for(cw.drain(), Duration::from_millis(30)).await;
        assert!(matches!(r, Err(Error::Timeout)), "drain waits: {r:?}");
        cw.close();
        let got = sr.read_to_end().await.unwrap();
        assert!(got == data, "data corrupted");
        cw.wait_closed().await.unwrap();
        sw.close();
        server.close();
        server.wait_closed().await.unwrap();
    });
}

#[test]
fn many_concurrent_drainers_are_all_released_on_resume() {
    run(async {
        let (server, (_cr, cw), (mut sr, sw)) = connected(asyncio::streams::DEFAULT_LIMIT).await;
        let cw = Rc::new(cw);
        let out = blocked_drainers(&cw, 10).await;
        // The peer reads: the buffer drains to the low-water mark, all are released.
        let mut at = 0;
        while out.borrow().len() < 10 {
            let chunk = sr.read(1 << 20).await.unwrap();
            assert!(!chunk.is_empty());
            assert!(is_pattern(&chunk, at));
            at += chunk.len();
        }
        assert!(out.borrow().iter().all(|r| r.is_ok()), "{:?}", out.borrow());
        cw.close();
        let rest = sr.read_to_end().await.unwrap();
        assert!(is_pattern(&rest, at));
        assert_eq!(at + rest.len(), 8 << 20);
        cw.wait_closed().await.unwrap();
        sw.close();
        server.close();
        server.wait_closed().await.unwrap();
    });
}

#[test]
fn many_concurrent_drainers_are_all_released_when_the_connection_is_lost() {
    run(async {
        // A clean loss (our own abort): asyncio releases drainers normally.
        let (server, acc) = handover_server(asyncio::streams::DEFAULT_LIMIT).await;
        let port = port_of(&server);
        let (_cr, cw) = asyncio::open_connection("127.0.0.1", port).await.unwrap();
        let cw = Rc::new(cw);
        let (_sr, sw) = acc.next().await;
        let out = blocked_drainers(&cw, 10).await;
        cw.transport().abort();
        cw.wait_closed().await.unwrap();
        eventually("all drainers released", || out.borrow().len() == 10).await;
        assert!(out.borrow().iter().all(|r| r.is_ok()), "{:?}", out.borrow());
        sw.close();
        server.close();
        server.wait_closed().await.unwrap();

        // A peer reset: every drainer gets an error.
        let (l, port) = std_listener();
        let (_cr, cw) = asyncio::open_connection("127.0.0.1", port).await.unwrap();
        let peer = accept_now(&l);
        let cw = Rc::new(cw);
        let out = blocked_drainers(&cw, 10).await;
        reset(peer);
        let e = cw.wait_closed().await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
        eventually("all drainers released", || out.borrow().len() == 10).await;
        for r in out.borrow().iter() {
            let e = r.as_ref().unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
        }
    });
}

#[test]
fn half_close_server_reads_to_eof_and_still_answers() {
    run(async {
        let (server, (mut cr, cw), (mut sr, sw)) = connected(asyncio::streams::DEFAULT_LIMIT).await;
        half_close_exchange(&mut cr, &cw, &mut sr, &sw).await;
        server.close();
        server.wait_closed().await.unwrap();
    });
}

#[test]
fn unix_half_close_server_reads_to_eof_and_still_answers() {
    let dir = TempDir::new("half");
    let path = dir.path("h.sock");
    run(async move {
        let (server, acc) = handover_unix_server(&path).await;
        let (mut cr, cw) = asyncio::open_unix_connection(&path).await.unwrap();
        let (mut sr, sw) = acc.next().await;
        half_close_exchange(&mut cr, &cw, &mut sr, &sw).await;
        server.close();
        server.wait_closed().await.unwrap();
    });
}

async fn half_close_exchange(
    cr: &mut asyncio::StreamReader,
    cw: &StreamWriter,
    sr: &mut asyncio::StreamReader,
    sw: &StreamWriter,
) {
    assert!(cw.can_write_eof());
    let body = pattern(300_000);
    cw.write(b"request:").unwrap();
    cw.write(&body).unwrap();
    cw.write_eof().unwrap();
    match cw.write(b"x") {
        Err(Error::Runtime(m)) => assert_eq!(m, "Cannot call write() after write_eof()"),
        other => panic!("write after write_eof: {other:?}"),
    }
    assert!(!cw.is_closing(), "write_eof does not close");

    let got = sr.read_to_end().await.unwrap();
    assert_eq!(&got[..8], b"request:");
    assert!(got[8..] == body[..]);
    assert!(sr.at_eof());
    assert!(
        !sw.is_closing(),
        "a peer's EOF does not make the writer closing"
    );
    // The server answers after the peer's EOF, in several writes.
    for part in [&b"answer "[..], b"after ", b"eof\n"] {
        sw.write(part).unwrap();
        sw.drain().await.unwrap();
    }
    sw.close();
    sw.wait_closed().await.unwrap();

    assert_eq!(cr.readline().await.unwrap(), b"answer after eof\n");
    assert_eq!(cr.read_to_end().await.unwrap(), b"");
    assert!(cr.at_eof());
    cw.close();
    cw.wait_closed().await.unwrap();
}

#[test]
fn wait_closed_after_a_clean_close_many_times_and_at_once() {
    run(async {
        let (server, (_cr, cw), (mut sr, sw)) = connected(asyncio::streams::DEFAULT_LIMIT).await;
        let cw = Rc::new(cw);
        // Several tasks wait before the close.
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let w = cw.clone();
                asyncio::create_task(async move { w.wait_closed().await })
            })
            .collect();
        cw.write(b"bye").unwrap();
        cw.close();
        assert!(cw.is_closing());
        for t in waiters {
            t.await.unwrap().unwrap();
        }
        for _ in 0..5 {
            // Already closed: ready on the first poll.
            asyncio::wait_for(cw.wait_closed(), Duration::ZERO)
                .await
                .expect("returns at once")
                .unwrap();
        }
        assert_eq!(sr.read_to_end().await.unwrap(), b"bye", "flushed first");
        sw.close();
        sw.wait_closed().await.unwrap();
        sw.wait_closed().await.unwrap();
        server.close();
        server.wait_closed().await.unwrap();
    });
}

#[test]
fn idle_connection_holds_no_read_buffer() {
    run(async {
        let parked: Rc<RefCell<Option<asyncio::StreamReader>>> = Rc::default();
        let signal = Rc::new(Signal::default());
        let (p, sig) = (parked.clone(), signal.clone());
        let server = asyncio::start_server(
            move |mut r, w| {
                let (p, sig) = (p.clone(), sig.clone());
                async move {
                    let line = r.readline().await?;
                    w.write(&line)?;
                    w.drain().await?;
                    *p.borrow_mut() = Some(r);
                    sig.notify();
                    w.close();
                    Ok::<(), Error>(())
                }
            },
            Some("127.0.0.1"),
            0,
        )
        .await
        .unwrap();
        let port = port_of(&server);
        let (mut cr, cw) = asyncio::open_connection("127.0.0.1", port).await.unwrap();
        let line = [&[b'x'; 50_000][..], b"\n"].concat();
        cw.write(&line).unwrap();
        assert_eq!(cr.readexactly(line.len()).await.unwrap(), line);
        signal.until(|| parked.borrow().is_some()).await;
        let sr = parked.borrow_mut().take().unwrap();
        assert_eq!(sr.buffered(), 0);
        assert_eq!(sr.allocated_bytes(), 0, "server reader holds no buffer");
        assert_eq!(cr.buffered(), 0);
        assert_eq!(cr.allocated_bytes(), 0, "client reader holds no buffer");
        cw.close();
        cw.wait_closed().await.unwrap();
        server.close();
        server.wait_closed().await.unwrap();
    });
}

#[test]
fn fresh_connection_holds_no_read_buffer() {
    run(async {
        let (server, (cr, cw), (sr, sw)) = connected(asyncio::streams::DEFAULT_LIMIT).await;
        // Let both transports start reading (and find nothing).
        idle(5).await;
        assert_eq!(
            cr.allocated_bytes(),
            0,
            "client reader of a silent connection"
        );
        assert_eq!(
            sr.allocated_bytes(),
            0,
            "server reader of a silent connection"
        );
        cw.close();
        sw.close();
        server.close();
        server.wait_closed().await.unwrap();
    });
}

#[test]
fn reader_waiting_after_a_burst_holds_no_read_buffer() {
    run(async {
        let (server, (_cr, cw), (mut sr, sw)) = connected(asyncio::streams::DEFAULT_LIMIT).await;
        // A burst over 2 x limit: the server transport pauses; a read that takes
        // everything resumes it, and the resumed transport finds nothing more.
        const N: usize = 200_000;
        cw.write(&pattern(N)).unwrap();
        let t = sw.transport().clone();
        eventually("the reading transport pauses", || !t.is_reading()).await;
        let mut at = 0;
        while at < N {
            let chunk = sr.read(N).await.unwrap();
            assert!(is_pattern(&chunk, at));
            at += chunk.len();
        }
        // Now the reader waits on a silent connection (a read that times out is
        // cancel-safe); the resumed transport's read found nothing.
        let r = asyncio::wait_for(sr.readline(), Duration::from_millis(20)).await;
        assert!(matches!(r, Err(Error::Timeout)), "{r:?}");
        assert!(t.is_reading());
        assert_eq!(sr.buffered(), 0);
        assert_eq!(sr.allocated_bytes(), 0, "a waiting reader holds no buffer");
        cw.close();
        assert_eq!(sr.read_to_end().await.unwrap(), b"");
        sw.close();
        server.close();
        server.wait_closed().await.unwrap();
    });
}

#[test]
fn limit_zero_is_a_value_error() {
    let dir = TempDir::new("limit");
    let path = dir.path("l.sock");
    run(async move {
        let (l, port) = std_listener();
        match asyncio::open_connection_with("127.0.0.1", port, 0, Default::default()).await {
            Err(Error::Value(m)) => assert_eq!(m, "Limit cannot be <= 0"),
            other => panic!("{:?}", other.map(|_| ())),
        }
        // Nothing connected.
        l.set_nonblocking(true).unwrap();
        assert!(l.accept().is_err());
        let r = asyncio::start_server_with(
            |_r, _w| async {},
            Some("127.0.0.1"),
            0,
            0,
            ServerOptions::default(),
        )
        .await;
        assert!(matches!(r, Err(Error::Value(ref m)) if m == "Limit cannot be <= 0"));
        let r =
            asyncio::start_unix_server_with(|_r, _w| async {}, &path, 0, Default::default()).await;
        assert!(matches!(r, Err(Error::Value(_))));
        assert!(!path.exists(), "nothing bound");
        let r = asyncio::open_unix_connection_with(&path, 0, Default::default()).await;
        assert!(matches!(r, Err(Error::Value(_))));
    });
}

#[test]
fn server_wait_closed_waits_for_stream_clients_to_close() {
    run(async {
        let release = Rc::new(Signal::default());
        let go = Rc::new(Cell::new(false));
        let (rel, g) = (release.clone(), go.clone());
        let server = asyncio::start_server(
            move |mut r, w| {
                let (rel, g) = (rel.clone(), g.clone());
                async move {
                    let line = r.readline().await?;
                    w.write(&line)?;
                    rel.until(|| g.get()).await;
                    w.write(b"closing\n")?;
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
        let (mut cr, cw) = asyncio::open_connection("127.0.0.1", port).await.unwrap();
        cw.write(b"hi\n").unwrap();
        assert_eq!(cr.readline().await.unwrap(), b"hi\n");
        assert_eq!(server.client_count(), 1);

        server.close();
        assert!(!server.is_serving());
        let server = Rc::new(server);
        let s = server.clone();
        let waiting = asyncio::create_task(async move { s.wait_closed().await });
        idle(20).await;
        assert!(!waiting.done(), "a client is still connected");
        go.set(true);
        release.notify();
        waiting.await.unwrap().unwrap();
        assert_eq!(server.client_count(), 0);
        assert_eq!(cr.readline().await.unwrap(), b"closing\n");
        assert_eq!(cr.read_to_end().await.unwrap(), b"");
        cw.close();
        cw.wait_closed().await.unwrap();
        // Returns at once now.
        asyncio::wait_for(server.wait_closed(), Duration::ZERO)
            .await
            .unwrap()
            .unwrap();
    });
}
