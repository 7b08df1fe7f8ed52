//! Sending files (CPython's `test_sendfile.py`, the fallback cases):
//! `EventLoop::sock_sendfile` and `StreamWriter::sendfile`: whole files, `offset` and
//! `count`, the file position afterwards, flow control, and the argument errors.

mod support_transports;

use std::cell::Cell;
use std::fs::File;
use std::io::{Read, Seek};
use std::net::TcpListener;
use std::rc::Rc;

use asyncio::{AsyncSocket, Error, StreamReader, StreamWriter};
use support_transports::*;

/// A file holding `pattern(len)`, in `dir`.
fn pattern_file(dir: &TempDir, len: usize) -> (File, Vec<u8>) {
    let data = pattern(len);
    let path = dir.path("data.bin");
    std::fs::write(&path, &data).unwrap();
    (File::open(&path).unwrap(), data)
}

/// A peer that reads everything until EOF, on a thread.
fn reading_peer() -> (u16, std::thread::JoinHandle<Vec<u8>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(LIMIT)).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        got
    });
    (port, h)
}

async fn sock_sendfile_case(file: File, offset: u64, count: Option<u64>) -> (u64, Vec<u8>, u64) {
    let lp = asyncio::get_running_loop().unwrap();
    let (port, peer) = reading_peer();
    let sock = AsyncSocket::connect(&lp, ([127, 0, 0, 1], port).into())
        .await
        .unwrap();
    let sent = lp.sock_sendfile(&sock, &file, offset, count).await.unwrap();
    drop(sock);
    while !peer.is_finished() {
        asyncio::sleep(std::time::Duration::from_millis(1)).await;
    }
    let pos = (&file).stream_position().unwrap();
    (sent, peer.join().unwrap(), pos)
}

#[test]
fn sock_sendfile_sends_the_whole_file_and_moves_its_position() {
    let dir = TempDir::new("sendfile-whole");
    // More than one block of the fallback (256 KiB).
    let (file, data) = pattern_file(&dir, 600_000);
    let (sent, got, pos) = run(sock_sendfile_case(file, 0, None));
    assert_eq!(sent, data.len() as u64);
    assert!(
        got == data,
        "the peer got {} bytes, not the file",
        got.len()
    );
    assert_eq!(pos, data.len() as u64);
}

#[test]
fn sock_sendfile_honours_offset_and_count() {
    let dir = TempDir::new("sendfile-slice");
    let (file, data) = pattern_file(&dir, 300_000);
    let (sent, got, pos) = run(sock_sendfile_case(file, 1000, Some(270_000)));
    assert_eq!(sent, 270_000);
    assert!(got == data[1000..271_000]);
    assert_eq!(pos, 271_000);
}

#[test]
fn a_count_past_the_end_stops_at_the_end_and_an_offset_past_it_sends_nothing() {
    let dir = TempDir::new("sendfile-end");
    let (file, data) = pattern_file(&dir, 5000);
    let (sent, got, pos) = run(sock_sendfile_case(file, 4000, Some(10_000)));
    assert_eq!(sent, 1000);
    assert!(got == data[4000..]);
    assert_eq!(pos, 5000);
    let (file, _) = pattern_file(&dir, 5000);
    let (sent, got, pos) = run(sock_sendfile_case(file, 9000, None));
    assert_eq!(
        (sent, got.len(), pos),
        (0, 0, 0),
        "the position is left alone"
    );
}

#[test]
fn a_zero_count_is_a_value_error() {
    let dir = TempDir::new("sendfile-zero");
    let (file, _) = pattern_file(&dir, 10);
    run(async move {
        let lp = asyncio::get_running_loop().unwrap();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let sock = AsyncSocket::connect(&lp, l.local_addr().unwrap())
            .await
            .unwrap();
        match lp.sock_sendfile(&sock, &file, 0, Some(0)).await {
            Err(Error::Value(m)) => assert_eq!(m, "count must be a positive integer (got 0)"),
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn stream_sendfile_respects_flow_control() {
    let dir = TempDir::new("sendfile-stream");
    let (file, data) = pattern_file(&dir, 2 << 20);
    let len = data.len();
    run(async move {
        let file = Rc::new(file);
        let max_buffered = Rc::new(Cell::new(0usize));
        let (f, m) = (file.clone(), max_buffered.clone());
        let server = asyncio::start_server(
            move |_r: StreamReader, w: StreamWriter| {
                let (f, m) = (f.clone(), m.clone());
                async move {
                    // A small kernel buffer, so that what the socket does not take
                    // piles up in the transport unless sendfile drains.
                    if let Some(asyncio::ExtraInfo::Socket(fd)) = w.get_extra_info("socket") {
                        set_sndbuf(&fd, 16 * 1024);
                    }
                    // Sample the transport's buffer while the file goes out.
                    let (t, ms) = (w.transport().clone(), m.clone());
                    let sampler = asyncio::create_task(async move {
                        loop {
                            ms.set(ms.get().max(t.get_write_buffer_size()));
                            asyncio::yield_now().await;
                        }
                    });
                    w.write(b"HEAD")?;
                    let sent = w.sendfile(&f, 0, None).await?;
                    m.set(m.get().max(w.transport().get_write_buffer_size()));
                    sampler.cancel();
                    w.write(b"TAIL")?;
                    w.close();
                    assert_eq!(sent, (2 << 20) as u64);
                    Ok::<(), Error>(())
                }
            },
            Some("127.0.0.1"),
            0,
        )
        .await
        .unwrap();
        let port = port_of(&server);
        let (mut r, _w) = asyncio::open_connection("127.0.0.1", port).await.unwrap();
        // A slow reader: small reads, a yield between each.
        let mut got = Vec::new();
        loop {
            let chunk = r.read(8192).await.unwrap();
            if chunk.is_empty() {
                break;
            }
            got.extend_from_slice(&chunk);
            asyncio::yield_now().await;
        }
        assert_eq!(got.len(), len + 8);
        assert_eq!(&got[..4], b"HEAD");
        assert!(got[4..4 + len] == data[..]);
        assert_eq!(&got[4 + len..], b"TAIL");
        // drain() before each 64 KiB block: the buffer never holds more than the
        // high-water mark plus one block.
        let most = max_buffered.get();
        assert!(most <= 128 * 1024, "{most} bytes buffered");
        assert_eq!((&*file).stream_position().unwrap(), len as u64);
        server.close();
    });
}

#[test]
fn stream_sendfile_on_a_closing_writer_is_a_runtime_error() {
    let dir = TempDir::new("sendfile-closing");
    let (file, _) = pattern_file(&dir, 10);
    run(async move {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let (_r, w) = asyncio::open_connection("127.0.0.1", port).await.unwrap();
        w.close();
        match w.sendfile(&file, 0, None).await {
            Err(Error::Runtime(m)) => assert_eq!(m, "Transport is closing"),
            other => panic!("{other:?}"),
        }
    });
}

// ----- loop.sendfile(transport, ...) ---------------------------------------------------

/// A streams server on 127.0.0.1 whose clients read everything slowly (small reads, a
/// yield between each) into `sink`; returns its port.
async fn slow_sink(sink: Rc<std::cell::RefCell<Vec<u8>>>, done: Rc<Cell<bool>>) -> asyncio::Server {
    asyncio::start_server(
        move |mut r: StreamReader, w: StreamWriter| {
            let (sink, done) = (sink.clone(), done.clone());
            async move {
                loop {
                    let chunk = r.read(8192).await?;
                    if chunk.is_empty() {
                        break;
                    }
                    sink.borrow_mut().extend_from_slice(&chunk);
                    asyncio::yield_now().await;
                }
                done.set(true);
                w.close();
                Ok::<(), Error>(())
            }
        },
        Some("127.0.0.1"),
        0,
    )
    .await
    .unwrap()
}

#[test]
fn loop_sendfile_swaps_the_protocol_back_and_respects_flow_control() {
    let dir = TempDir::new("sendfile-transport");
    let (file, data) = pattern_file(&dir, 2 << 20);
    run(async move {
        let lp = asyncio::get_running_loop().unwrap();
        let sink: Rc<std::cell::RefCell<Vec<u8>>> = Default::default();
        let done = Rc::new(Cell::new(false));
        let server = slow_sink(sink.clone(), done.clone()).await;
        let (t, proto) = lp
            .create_connection(
                Recorder::default,
                "127.0.0.1",
                port_of(&server),
                Default::default(),
            )
            .await
            .unwrap();
        if let Some(asyncio::ExtraInfo::Socket(fd)) = t.get_extra_info("socket") {
            set_sndbuf(&fd, 16 * 1024);
        }
        let most = Rc::new(Cell::new(0usize));
        let (tt, m) = (t.clone(), most.clone());
        let sampler = asyncio::create_task(async move {
            loop {
                m.set(m.get().max(tt.get_write_buffer_size()));
                asyncio::yield_now().await;
            }
        });
        t.write(b"HEAD").unwrap();
        let sent = lp.sendfile(&t, &file, 10, None).await.unwrap();
        most.set(most.get().max(t.get_write_buffer_size()));
        sampler.cancel();
        assert_eq!(sent, data.len() as u64 - 10);
        // The original protocol is back, reading resumed, and it never saw the pauses
        // meant for the sender.
        match t.get_protocol() {
            Some(asyncio::AnyProtocol::Stream(p)) => {
                let ours: Rc<dyn asyncio::Protocol> = proto.clone();
                assert!(Rc::ptr_eq(&p, &ours), "the original protocol is restored");
            }
            _ => panic!("no stream protocol"),
        }
        assert!(t.is_reading());
        assert!(!proto.events.borrow().iter().any(|e| e == "pause_writing"));
        t.write(b"TAIL").unwrap();
        t.close();
        proto.wait_lost().await;
        let most = most.get();
        assert!(most <= 128 * 1024, "{most} bytes buffered");
        while !done.get() {
            asyncio::sleep(std::time::Duration::from_millis(1)).await;
        }
        let got = sink.borrow();
        assert_eq!(got.len(), 4 + data.len() - 10 + 4);
        assert!(got[4..got.len() - 4] == data[10..]);
        assert_eq!(
            (&got[..4], &got[got.len() - 4..]),
            (&b"HEAD"[..], &b"TAIL"[..])
        );
        assert_eq!((&file).stream_position().unwrap(), data.len() as u64);
        server.close();
    });
}

#[test]
fn loop_sendfile_fails_when_the_peer_goes_and_the_protocol_learns_it() {
    let dir = TempDir::new("sendfile-reset");
    let (file, _) = pattern_file(&dir, 8 << 20);
    run(async move {
        let lp = asyncio::get_running_loop().unwrap();
        // The peer reads one chunk, then resets the connection.
        let server = asyncio::start_server(
            |mut r: StreamReader, w: StreamWriter| async move {
                let _ = r.read(1024).await;
                w.transport().abort();
                Ok::<(), Error>(())
            },
            Some("127.0.0.1"),
            0,
        )
        .await
        .unwrap();
        let (t, proto) = lp
            .create_connection(
                Recorder::default,
                "127.0.0.1",
                port_of(&server),
                Default::default(),
            )
            .await
            .unwrap();
        if let Some(asyncio::ExtraInfo::Socket(fd)) = t.get_extra_info("socket") {
            set_sndbuf(&fd, 16 * 1024);
        }
        let r = lp.sendfile(&t, &file, 0, None).await;
        assert!(r.is_err(), "sending 8 MiB to a peer that left succeeded");
        // The original protocol got connection_lost through the stand-in.
        proto.wait_lost().await;
        assert!(
            (&file).stream_position().unwrap() > 0,
            "the position follows what was written"
        );
        server.close();
    });
}

#[test]
fn loop_sendfile_argument_errors() {
    let dir = TempDir::new("sendfile-args");
    let (file, _) = pattern_file(&dir, 10);
    run(async move {
        let lp = asyncio::get_running_loop().unwrap();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let (t, _p) = lp
            .create_connection(Recorder::default, "127.0.0.1", port, Default::default())
            .await
            .unwrap();
        match lp.sendfile(&t, &file, 0, Some(0)).await {
            Err(Error::Value(m)) => assert_eq!(m, "count must be a positive integer (got 0)"),
            other => panic!("{other:?}"),
        }
        t.close();
        match lp.sendfile(&t, &file, 0, None).await {
            Err(Error::Runtime(m)) => assert_eq!(m, "Transport is closing"),
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn what_the_transport_buffered_goes_out_before_the_file() {
    // With the kernel path the file bypasses the transport's buffer, so sendfile must
    // wait until that buffer is empty; the copy path queues behind it anyway.
    let dir = TempDir::new("sendfile-order");
    let (file, data) = pattern_file(&dir, 1 << 20);
    run(async move {
        let lp = asyncio::get_running_loop().unwrap();
        let sink: Rc<std::cell::RefCell<Vec<u8>>> = Default::default();
        let done = Rc::new(Cell::new(false));
        let server = slow_sink(sink.clone(), done.clone()).await;
        let (t, proto) = lp
            .create_connection(
                Recorder::default,
                "127.0.0.1",
                port_of(&server),
                Default::default(),
            )
            .await
            .unwrap();
        if let Some(asyncio::ExtraInfo::Socket(fd)) = t.get_extra_info("socket") {
            set_sndbuf(&fd, 16 * 1024);
        }
        let head = vec![b'H'; 600_000];
        t.write(&head).unwrap();
        assert!(t.get_write_buffer_size() > 0, "the head is still buffered");
        let sent = lp.sendfile(&t, &file, 0, None).await.unwrap();
        assert_eq!(sent, data.len() as u64);
        // The water marks are the transport's own again.
        assert_eq!(t.get_write_buffer_limits(), (16 * 1024, 64 * 1024));
        t.close();
        proto.wait_lost().await;
        while !done.get() {
            asyncio::sleep(std::time::Duration::from_millis(1)).await;
        }
        let got = sink.borrow();
        assert_eq!(got.len(), head.len() + data.len());
        assert!(got[..head.len()] == head[..], "the head comes first, whole");
        assert!(got[head.len()..] == data[..], "then the file");
        server.close();
    });
}

#[test]
fn a_device_file_is_sent_too() {
    // /dev/zero is not a regular file: whether sendfile(2) takes it (recent kernels) or
    // refuses it (then the copy path reads it), the bytes arrive.
    let file = File::open("/dev/zero").unwrap();
    run(async move {
        let lp = asyncio::get_running_loop().unwrap();
        let (port, peer) = reading_peer();
        let sock = AsyncSocket::connect(&lp, ([127, 0, 0, 1], port).into())
            .await
            .unwrap();
        let sent = lp
            .sock_sendfile(&sock, &file, 0, Some(100_000))
            .await
            .unwrap();
        assert_eq!(sent, 100_000);
        drop(sock);
        while !peer.is_finished() {
            asyncio::sleep(std::time::Duration::from_millis(1)).await;
        }
        let got = peer.join().unwrap();
        assert_eq!(got.len(), 100_000);
        assert!(got.iter().all(|&b| b == 0));
    });
}
