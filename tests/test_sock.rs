//! The low-level socket coroutines (CPython's `test_sock_lowlevel.py`): `sock_connect`,
//! `sock_accept`, `sock_recv`, `sock_recv_into`, `sock_sendall`, over loopback TCP and
//! Unix sockets, with their waiting, EOF, error and cancellation rules.

mod support_transports;

use std::io::{ErrorKind, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use asyncio::{AsyncSocket, Error, EventLoop};
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use support_transports::*;

type Sock = AsyncSocket<TcpStream>;

fn listener(lp: &EventLoop) -> (AsyncSocket<TcpListener>, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = l.local_addr().unwrap();
    (AsyncSocket::new(lp, l).unwrap(), addr)
}

/// Two connected sockets made with `sock_connect` and `sock_accept`.
async fn pair() -> (Sock, Sock) {
    let lp = asyncio::get_running_loop().unwrap();
    let (l, addr) = listener(&lp);
    let client = lp.sock_connect(addr).await.unwrap();
    let (s, _) = lp.sock_accept(&l).await.unwrap();
    (client, AsyncSocket::new(&lp, s).unwrap())
}

#[test]
fn sock_connect_and_sock_accept_make_a_connection() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let (l, addr) = listener(&lp);
        let lp2 = lp.clone();
        let accepting = asyncio::create_task(async move { lp2.sock_accept(&l).await });
        spin(3).await;
        assert!(!accepting.done(), "sock_accept waits for a connection");
        let c = lp.sock_connect(addr).await.unwrap();
        let (s, peer) = accepting.await.unwrap().unwrap();
        assert_eq!(peer, c.get_ref().local_addr().unwrap());
        assert_eq!(s.local_addr().unwrap(), addr);
        assert_eq!(c.get_ref().peer_addr().unwrap(), addr);
    });
}

#[test]
fn sock_connect_to_a_freed_port_is_refused() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let addr: SocketAddr = ([127, 0, 0, 1], freed_port()).into();
        let e = lp.sock_connect(addr).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
    });
}

#[test]
fn sock_recv_waits_for_data() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let (a, b) = pair().await;
        let b = Rc::new(b);
        let b2 = b.clone();
        let lp2 = lp.clone();
        let receiving = asyncio::create_task(async move { lp2.sock_recv(&b2, 100).await });
        spin(5).await;
        assert!(!receiving.done(), "nothing to read yet");
        lp.sock_sendall(&a, b"finally").await.unwrap();
        assert_eq!(receiving.await.unwrap().unwrap(), b"finally");
    });
}

#[test]
fn sock_recv_returns_at_most_n_bytes() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let (a, b) = pair().await;
        lp.sock_sendall(&a, b"abcdefgh").await.unwrap();
        let mut got = lp.sock_recv(&b, 3).await.unwrap();
        assert_eq!(got, b"abc");
        while got.len() < 8 {
            got.extend(lp.sock_recv(&b, 100).await.unwrap());
        }
        assert_eq!(got, b"abcdefgh");
    });
}

#[test]
fn sock_recv_returns_empty_at_eof() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let (a, b) = pair().await;
        lp.sock_sendall(&a, b"last").await.unwrap();
        drop(a);
        let mut got = Vec::new();
        loop {
            let chunk = lp.sock_recv(&b, 100).await.unwrap();
            if chunk.is_empty() {
                break;
            }
            got.extend(chunk);
        }
        assert_eq!(got, b"last");
        assert!(lp.sock_recv(&b, 100).await.unwrap().is_empty(), "EOF again");
    });
}

#[test]
fn sock_recv_into_fills_the_callers_buffer() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let (a, b) = pair().await;
        lp.sock_sendall(&a, b"into").await.unwrap();
        let mut buf = [0u8; 16];
        let n = lp.sock_recv_into(&b, &mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"into");
        let mut empty = [0u8; 0];
        assert_eq!(lp.sock_recv_into(&b, &mut empty).await.unwrap(), 0);
        drop(a);
        assert_eq!(lp.sock_recv_into(&b, &mut buf).await.unwrap(), 0, "EOF");
    });
}

#[test]
fn sock_sendall_sends_more_than_the_socket_buffers_hold() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        const TOTAL: usize = 16 << 20;
        let (a, b) = pair().await;
        let data = Rc::new(pattern(TOTAL));
        let lp2 = lp.clone();
        let reader = asyncio::create_task(async move {
            let mut got = Vec::with_capacity(TOTAL);
            let mut buf = vec![0u8; 256 << 10];
            while got.len() < TOTAL {
                let n = lp2.sock_recv_into(&b, &mut buf).await.unwrap();
                assert!(n > 0, "early EOF at {}", got.len());
                got.extend_from_slice(&buf[..n]);
            }
            got
        });
        lp.sock_sendall(&a, &data).await.unwrap();
        let got = reader.await.unwrap();
        assert!(got == *data, "16 MiB arrive intact");
    });
}

#[test]
fn one_task_reads_while_another_writes_the_same_socket() {
    run(async {
        let (a, b) = pair().await;
        let (a, b) = (Rc::new(a), Rc::new(b));
        const TOTAL: usize = 4 << 20;
        // b echoes; a writes and reads at the same time, from two tasks.
        let b2 = b.clone();
        let echo = asyncio::create_task(async move {
            let mut buf = vec![0u8; 64 << 10];
            loop {
                let n = b2.recv_into(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                b2.sendall(&buf[..n]).await.unwrap();
            }
        });
        let a2 = a.clone();
        let writer = asyncio::create_task(async move {
            a2.sendall(&pattern(TOTAL)).await.unwrap();
        });
        let mut got = Vec::new();
        while got.len() < TOTAL {
            let chunk = a.recv(64 << 10).await.unwrap();
            assert!(!chunk.is_empty());
            got.extend(chunk);
        }
        writer.await.unwrap();
        assert!(got == pattern(TOTAL));
        drop(a);
        echo.await.unwrap();
    });
}

#[test]
fn a_dropped_sock_recv_consumes_nothing() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let (a, b) = pair().await;
        let r = asyncio::wait_for(lp.sock_recv(&b, 100), Duration::from_millis(20)).await;
        assert!(matches!(r, Err(Error::Timeout)));
        lp.sock_sendall(&a, b"kept").await.unwrap();
        assert_eq!(lp.sock_recv(&b, 100).await.unwrap(), b"kept");
    });
}

#[test]
fn sock_recv_after_a_peer_reset_gives_connection_reset() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let (a, b) = pair().await;
        set_linger_zero(a.get_ref());
        drop(a);
        let e = lp.sock_recv(&b, 100).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");
    });
}

#[test]
fn sock_accept_on_a_unix_listener() {
    let dir = TempDir::new("sock-unix");
    let path = dir.path("l.sock");
    run(async move {
        let lp = asyncio::get_running_loop().unwrap();
        let l = AsyncSocket::new(&lp, UnixListener::bind(&path).unwrap()).unwrap();
        let mut c = std::os::unix::net::UnixStream::connect(&path).unwrap();
        c.write_all(b"via unix").unwrap();
        let (s, addr) = l.accept().await.unwrap();
        assert!(addr.as_pathname().is_none(), "the client is unnamed");
        let s: AsyncSocket<UnixStream> = AsyncSocket::new(&lp, s).unwrap();
        assert_eq!(lp.sock_recv(&s, 100).await.unwrap(), b"via unix");
        lp.sock_sendall(&s, b"back").await.unwrap();
        drop(s);
        let mut got = Vec::new();
        std::io::Read::read_to_end(&mut c, &mut got).unwrap();
        assert_eq!(got, b"back");
    });
}

#[test]
fn an_fd_the_loop_watches_cannot_be_registered_again() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let (a, _b) = pair().await;
        let fd = a.as_raw_fd();
        let e = lp.add_reader(fd, || {}).unwrap_err();
        assert!(
            matches!(&e, Error::Runtime(m) if m.contains(&format!("File descriptor {fd} is used by"))),
            "{e:?}"
        );
        // Given back, the socket is the caller's again.
        let s = a.into_inner();
        lp.add_reader(fd, || {}).unwrap();
        let e = AsyncSocket::new(&lp, s).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("RuntimeError: File descriptor {fd} is already registered")
        );
        assert!(lp.remove_reader(fd).unwrap());
    });
}
