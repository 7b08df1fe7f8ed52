//! The datagram `sock_*` coroutines (CPython's `test_sock_lowlevel.py`:
//! `sock_recvfrom`, `sock_recvfrom_into`, `sock_sendto`), the public readiness
//! primitive of `AsyncSocket` on sockets and pipes, and the Rust-only
//! `DatagramSocket`.

mod support_transports;

use std::io::{ErrorKind, Read, Write};
use std::rc::Rc;

use asyncio::{Address, AsyncSocket, DatagramSocket, Error, EventLoop};
use mio::Interest;
use support_transports::*;

fn lp() -> EventLoop {
    asyncio::get_running_loop().unwrap()
}

fn udp(lp: &EventLoop) -> AsyncSocket<mio::net::UdpSocket> {
    let s = mio::net::UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    AsyncSocket::new(lp, s).unwrap()
}

fn addr_of(s: &AsyncSocket<mio::net::UdpSocket>) -> Address {
    Address::Inet(s.get_ref().local_addr().unwrap())
}

#[test]
fn sock_recvfrom_waits_then_returns_the_datagram_and_sender() {
    run(async {
        let lp = lp();
        let a = Rc::new(udp(&lp));
        let b = udp(&lp);
        let (lp2, a2) = (lp.clone(), a.clone());
        let rx = asyncio::create_task(async move { lp2.sock_recvfrom(&a2, 100).await });
        spin(3).await;
        assert!(!rx.done(), "sock_recvfrom waits for a datagram");
        let n = lp.sock_sendto(&b, b"datagram", &addr_of(&a)).await.unwrap();
        assert_eq!(n, 8);
        let (data, from) = rx.await.unwrap().unwrap();
        assert_eq!(data, b"datagram");
        assert_eq!(from, addr_of(&b));
        // A datagram longer than bufsize is truncated, as by the kernel.
        lp.sock_sendto(&b, b"0123456789", &addr_of(&a))
            .await
            .unwrap();
        let (data, _) = lp.sock_recvfrom(&a, 4).await.unwrap();
        assert_eq!(data, b"0123");
    });
}

#[test]
fn sock_recvfrom_into_honours_nbytes() {
    run(async {
        let lp = lp();
        let a = udp(&lp);
        let b = udp(&lp);
        let mut buf = [0u8; 8];
        let e = lp.sock_recvfrom_into(&a, &mut buf, 9).await.unwrap_err();
        assert!(
            matches!(&e, Error::Value(m) if m == "nbytes is greater than the length of the buffer"),
            "{e}"
        );
        lp.sock_sendto(&b, b"abcdefgh", &addr_of(&a)).await.unwrap();
        let (n, from) = lp.sock_recvfrom_into(&a, &mut buf, 3).await.unwrap();
        assert_eq!((n, &buf[..3]), (3, &b"abc"[..]));
        assert_eq!(from, addr_of(&b));
        assert_eq!(buf[3..], [0; 5], "nothing beyond nbytes was written");
        lp.sock_sendto(&b, b"xy", &addr_of(&a)).await.unwrap();
        let (n, _) = lp.sock_recvfrom_into(&a, &mut buf, 0).await.unwrap();
        assert_eq!(&buf[..n], b"xy");
    });
}

#[test]
fn sock_sendto_and_recvfrom_over_unix_datagram_sockets() {
    let dir = TempDir::new("sockdgram");
    let (pa, pb) = (dir.path("a.sock"), dir.path("b.sock"));
    run(async move {
        let lp = lp();
        let a = AsyncSocket::new(&lp, mio::net::UnixDatagram::bind(&pa).unwrap()).unwrap();
        let b = AsyncSocket::new(&lp, mio::net::UnixDatagram::bind(&pb).unwrap()).unwrap();
        let to_a = Address::Unix(Some(pa.clone()));
        lp.sock_sendto(&b, b"unix", &to_a).await.unwrap();
        let (data, from) = lp.sock_recvfrom(&a, 64).await.unwrap();
        assert_eq!(data, b"unix");
        assert_eq!(from, Address::Unix(Some(pb.clone())));
        // An address of the other family is an OS-level InvalidInput, not a panic.
        let e = lp
            .sock_sendto(&b, b"x", &Address::Inet("127.0.0.1:9".parse().unwrap()))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    });
}

#[test]
fn a_consumed_icmp_error_does_not_leave_the_socket_ready() {
    run(async {
        let lp = lp();
        let freed = {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.local_addr().unwrap()
        };
        let a = Rc::new(udp(&lp));
        a.get_ref().connect(freed).unwrap();
        a.get_ref().send(b"anyone?").unwrap();
        let e = lp.sock_recvfrom(&a, 16).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
        // The error was consumed: the next receive waits instead of spinning.
        let (lp2, a2) = (lp.clone(), a.clone());
        let rx = asyncio::create_task(async move { lp2.sock_recvfrom(&a2, 16).await });
        spin(5).await;
        assert!(!rx.done());
        rx.cancel();
    });
}

#[test]
fn readiness_primitive_on_a_pipe() {
    run(async {
        let lp = lp();
        let (mut tx, rx) = mio::unix::pipe::new().unwrap();
        let rx = Rc::new(AsyncSocket::new(&lp, rx).unwrap());
        // A fresh socket starts ready: the first attempt is the syscall.
        rx.readable().await.unwrap();
        let mut buf = [0u8; 16];
        let e = rx
            .try_io(Interest::READABLE, |mut r| r.read(&mut buf))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WouldBlock);
        // Readiness is now cleared: try_io does not even call the closure.
        let mut called = false;
        let e = rx
            .try_io(Interest::READABLE, |_| {
                called = true;
                Ok(0)
            })
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WouldBlock);
        assert!(!called);
        // readable() waits for the next edge; dropping the wait loses nothing.
        let rx2 = rx.clone();
        let waiting = asyncio::create_task(async move { rx2.readable().await });
        spin(3).await;
        assert!(!waiting.done());
        waiting.cancel();
        spin(1).await;
        let rx3 = rx.clone();
        let waiting = asyncio::create_task(async move { rx3.readable().await });
        spin(3).await;
        assert!(!waiting.done());
        tx.write_all(b"ping").unwrap();
        waiting.await.unwrap().unwrap();
        let n = rx
            .async_io(Interest::READABLE, |mut r| r.read(&mut buf))
            .await
            .unwrap();
        assert_eq!(&buf[..n], b"ping");
        // async_io waits through WouldBlock until data comes.
        let rx4 = rx.clone();
        let reading = asyncio::create_task(async move {
            let mut b = [0u8; 16];
            let n = rx4
                .async_io(Interest::READABLE, |mut r| r.read(&mut b))
                .await?;
            Ok::<_, Error>(b[..n].to_vec())
        });
        spin(3).await;
        assert!(!reading.done());
        tx.write_all(b"pong").unwrap();
        assert_eq!(reading.await.unwrap().unwrap(), b"pong");
    });
}

#[test]
fn writable_and_clear_write_ready_on_a_pipe() {
    run(async {
        let lp = lp();
        let (tx, mut rx) = mio::unix::pipe::new().unwrap();
        let tx = Rc::new(AsyncSocket::new(&lp, tx).unwrap());
        tx.writable().await.unwrap();
        // Fill the pipe through try_io until the kernel pushes back.
        let chunk = [0u8; 4096];
        let mut total = 0;
        loop {
            match tx.try_io(Interest::WRITABLE, |mut w| w.write(&chunk)) {
                Ok(n) => total += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
            assert!(total < 64 << 20, "the pipe never filled");
        }
        let tx2 = tx.clone();
        let waiting = asyncio::create_task(async move { tx2.writable().await });
        spin(3).await;
        assert!(!waiting.done(), "a full pipe is not writable");
        let mut sink = vec![0u8; total];
        let mut got = 0;
        while got < total {
            match rx.read(&mut sink[got..]) {
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        waiting.await.unwrap().unwrap();
        // clear_write_ready forgets it until the next edge.
        tx.clear_write_ready();
        let tx3 = tx.clone();
        let waiting = asyncio::create_task(async move { tx3.writable().await });
        spin(3).await;
        assert!(!waiting.done());
        waiting.cancel();
    });
}

#[test]
fn poll_ready_errors_once_the_loop_is_closed() {
    let el = EventLoop::new().unwrap();
    let s = el.run_until_complete(async { udp(&lp()) }).unwrap();
    el.close().unwrap();
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    assert!(matches!(
        s.poll_read_ready(&mut cx),
        std::task::Poll::Ready(Err(Error::Runtime(_)))
    ));
}

#[test]
fn datagram_socket_send_to_recv_from_connect() {
    run(async {
        let a = DatagramSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let b = DatagramSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        assert_eq!(b.peer_addr().unwrap_err().kind(), ErrorKind::NotConnected);
        b.connect(a.local_addr().unwrap()).unwrap();
        assert_eq!(b.peer_addr().unwrap(), a.local_addr().unwrap());
        let a = Rc::new(a);
        let a2 = a.clone();
        let rx = asyncio::create_task(async move {
            let mut buf = [0u8; 64];
            let (n, from) = a2.recv_from(&mut buf).await?;
            Ok::<_, Error>((buf[..n].to_vec(), from))
        });
        spin(3).await;
        assert!(!rx.done());
        assert_eq!(b.send(b"hi").await.unwrap(), 2);
        let (data, from) = rx.await.unwrap().unwrap();
        assert_eq!(
            (data.as_slice(), from),
            (&b"hi"[..], b.local_addr().unwrap())
        );
        a.send_to(b"back", from).await.unwrap();
        let mut buf = [0u8; 64];
        let n = b.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"back");
    });
}

#[test]
fn datagram_socket_bind_needs_a_running_loop() {
    let e = DatagramSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap_err();
    assert_eq!(e.to_string(), "RuntimeError: no running event loop");
}
